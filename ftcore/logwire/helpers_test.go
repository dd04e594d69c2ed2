package logwire

import (
	"testing"
)

// Fixed key material: the golden files depend on it. Never use these
// values outside tests.
var (
	testPSK = [KeySize]byte{
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
		0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
	}
	nonceP = fill32(0xa0)
	nonceB = fill32(0xb0)
)

const testEpoch = 7

func fill32(base byte) (a [32]byte) {
	for i := range a {
		a[i] = base + byte(i)
	}
	return a
}

// hellos returns the primary's initiating hello and the backup's answer.
func hellos() (hp, hb Hello) {
	hp = Hello{Role: RolePrimary, Epoch: testEpoch, Nonce: nonceP}
	hb = Hello{Role: RoleBackup, Epoch: testEpoch, Nonce: nonceB, Echo: nonceP}
	return hp, hb
}

func endpoint(t testing.TB, opts Options) *Endpoint {
	t.Helper()
	ep, err := NewEndpoint(testPSK, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// pair runs the handshake over the wire and returns both sessions.
func pair(t testing.TB, opts Options) (p, b *Session) {
	t.Helper()
	epP, epB := endpoint(t, opts), endpoint(t, opts)
	hp, hb := hellos()
	fp, err := epP.SealHello(nil, hp)
	if err != nil {
		t.Fatal(err)
	}
	gotP, v, err := epB.OpenHello(fp, 0)
	if err != nil || v != VerdictOK {
		t.Fatalf("backup opens primary hello: %v %v", v, err)
	}
	fb, err := epB.SealHello(nil, hb)
	if err != nil {
		t.Fatal(err)
	}
	gotB, v, err := epP.OpenHello(fb, 0)
	if err != nil || v != VerdictOK {
		t.Fatalf("primary opens backup hello: %v %v", v, err)
	}
	if p, err = epP.NewSession(hp, gotB); err != nil {
		t.Fatal(err)
	}
	if b, err = epB.NewSession(hb, gotP); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func mustSeal(t testing.TB, s *Session, ack, base uint64, es ...Entry) []byte {
	t.Helper()
	b := s.NewBatch(nil, ack, base)
	for _, e := range es {
		if err := b.Add(e); err != nil {
			t.Fatalf("add %T: %v", e, err)
		}
	}
	f, _, err := s.Seal(&b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func collect(es Entries) []Entry {
	var out []Entry
	for e := range es.All() {
		out = append(out, e)
	}
	return out
}

func frameBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// primaryEntries has one of every entry type a primary sends.
func primaryEntries() []Entry {
	return []Entry{
		InputFrame{ICount: 1000, Frame: frameBytes(60, 1)},
		ClockSync{ICount: 1000, Time: 123456789, RateNum: 3, RateDen: 2},
		ConsoleInput{ICount: 2000, Data: []byte("ls\n")},
		Progress{ICount: 5000},
		ReleasedOutput{Watermark: 42},
		Digest{ICount: 4096, Sum: fill32(0x40)},
		Heartbeat{Time: 99, ICount: 5000},
		Fragment{ID: 9, Offset: 3, Total: 10, Piece: []byte{1, 2, 3}},
		Snapshot{ICount: 6000, Outputs: 7, Total: 100, Offset: 96, Sum: fill32(0x70), Data: []byte{9, 8, 7, 6}},
		InSync{ICount: 6001},
	}
}

// backupEntries has one of every entry type a backup sends.
func backupEntries() []Entry {
	return []Entry{
		Ack{Seq: 17, ICount: 4999},
		Heartbeat{Time: 1 << 40, ICount: 4999},
		Digest{ICount: 4096, Sum: fill32(0x40)},
		DivergenceAlarm{ICount: 4096, Local: fill32(0x50), Remote: fill32(0x60)},
	}
}
