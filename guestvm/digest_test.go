package guestvm_test

import (
	"testing"

	"ftbox/guestvm"
	"ftbox/tools/guests"
)

// fullDigest is the digest of a fresh machine restored from m's snapshot:
// every page hashed from scratch, nothing incremental.
func fullDigest(t *testing.T, m *guestvm.Machine) [32]byte {
	t.Helper()
	n, err := guestvm.New(m.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Restore(m.Save()); err != nil {
		t.Fatal(err)
	}
	return n.Digest()
}

// TestIncrementalDigestMatchesFull checks the incremental digest against a
// from-scratch one at many points of a run that writes memory, takes
// frames through DMA and executes code, so a write the tracking missed
// shows up as a mismatch.
func TestIncrementalDigestMatchesFull(t *testing.T) {
	for _, name := range []string{"selftest", "netsvc", "bench"} {
		img, _ := guests.Image(name)
		m, _ := guestvm.New(guestvm.Config{MemSize: 8 << 20})
		if err := m.Load(img); err != nil {
			t.Fatal(err)
		}
		steps := scenario()
		for i := 0; i < 12; i++ {
			m.Run(m.ICount() + 40_000 + uint64(i)*7_919)
			m.TakeFrames()
			if name == "netsvc" && i < len(steps) {
				for _, ev := range steps[i].events {
					ev.ICount = m.ICount()
					m.Inject(ev)
				}
			}
			if d, f := m.Digest(), fullDigest(t, m); d != f {
				t.Fatalf("%s step %d at icount %d: incremental digest %x, full %x", name, i, m.ICount(), d[:8], f[:8])
			}
		}
	}
}

func BenchmarkDigestIdle128M(b *testing.B) {
	img, _ := guests.Image("netsvc")
	m, _ := guestvm.New(guestvm.Config{})
	m.Load(img)
	m.Run(1_000_000)
	m.Digest()
	for b.Loop() {
		m.Digest()
	}
}

// TestRestoreOverUsedMachine restores a snapshot into machines whose RAM
// already holds other data (another guest that ran), so pages the snapshot
// has as zero must really be cleared, not skipped as "known zero".
func TestRestoreOverUsedMachine(t *testing.T) {
	cfg := guestvm.Config{MemSize: 8 << 20}
	src, _ := guestvm.New(cfg)
	img, _ := guests.Image("netsvc")
	src.Load(img)
	src.Run(300_000)
	snap := src.Save()
	want := src.Digest()
	for _, other := range []string{"netsvc", "bench", "selftest"} {
		dst, _ := guestvm.New(cfg)
		oimg, _ := guests.Image(other)
		dst.Load(oimg)
		dst.Run(2_000_000)
		dst.Digest() // pages hashed and armed: the "known zero" shortcut is live
		if err := dst.Restore(snap); err != nil {
			t.Fatal(err)
		}
		if got, full := dst.Digest(), fullDigest(t, dst); got != want || full != want {
			t.Fatalf("restore over a machine that ran %s: digest %x, full %x, want %x", other, got[:8], full[:8], want[:8])
		}
		if string(dst.Save()) != string(snap) {
			t.Fatalf("restore over %s: a new snapshot differs from the one restored", other)
		}
	}
}
