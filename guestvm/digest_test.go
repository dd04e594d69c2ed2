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
