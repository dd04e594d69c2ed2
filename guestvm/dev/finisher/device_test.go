package finisher

import (
	"bytes"
	"testing"

	"ftbox/guestvm/snap"
)

type lines struct{ stops int }

func (l *lines) SetIRQ(uint64, bool) {}
func (l *lines) RequestStop()        { l.stops++ }

func TestFinisher(t *testing.T) {
	cpu := &lines{}
	f := New(cpu)
	for _, c := range []struct {
		off  uint64
		size int
		val  uint64
		ok   bool
		kind Kind
		code uint32
	}{
		{0, 4, 0x1234, true, None, 0},
		{4, 4, 0x5555, true, None, 0},
		{0, 1, 0x5555, false, None, 0},
		{0, 8, 0x5555, false, None, 0},
		{0x1000, 4, 0x5555, false, None, 0},
		{0, 4, 0x2a3333, true, Fail, 0x2a},
		{0, 4, 0xFFFF5555, true, Pass, 0},
		{0, 2, 0x7777, true, Reset, 0},
		{0, 4, 0x9999, true, Reset, 0}, // ignored: status unchanged
	} {
		if ok := f.Write(c.off, c.size, c.val); ok != c.ok {
			t.Fatalf("write %#x/%d %#x ok=%v", c.off, c.size, c.val, ok)
		}
		if k, code := f.Status(); k != c.kind || code != c.code {
			t.Fatalf("after %#x: %v %#x, want %v %#x", c.val, k, code, c.kind, c.code)
		}
	}
	if cpu.stops != 3 {
		t.Fatalf("stops %d", cpu.stops)
	}
	if v, ok := f.Read(0, 4); v != 0 || !ok {
		t.Fatal("read")
	}
	f.Write(0, 4, 0x10003333)
	var b bytes.Buffer
	f.Save(snap.NewWriter(&b))
	g := New(cpu)
	if err := g.Restore(snap.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	if k, c := g.Status(); k != Fail || c != 0x1000 {
		t.Fatal("restore")
	}
	bad := b.Bytes()
	bad[len(bad)-5] = 9
	if err := g.Restore(snap.NewReader(bad)); err == nil {
		t.Fatal("impossible kind restored")
	}
}
