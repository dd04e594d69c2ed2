package clint

import (
	"bytes"
	"testing"

	"ftbox/guestvm/dev"
	"ftbox/guestvm/snap"
)

type clock struct{ now uint64 }

func (c *clock) Now() uint64 { return c.now }

type lines struct {
	mip   uint64
	stops int
}

func (l *lines) SetIRQ(mask uint64, level bool) {
	if level {
		l.mip |= mask
	} else {
		l.mip &^= mask
	}
}
func (l *lines) RequestStop() { l.stops++ }

func TestResetLikeQEMU(t *testing.T) {
	// QEMU 7.2 (checked with a bare-metal probe): mtimecmp reads 0 at reset
	// and mip.MTIP is already pending.
	clk, cpu := &clock{}, &lines{}
	c := New(clk, cpu)
	if v, ok := c.Read(0x4000, 8); !ok || v != 0 {
		t.Fatalf("mtimecmp %#x %v", v, ok)
	}
	if cpu.mip != dev.MTIP {
		t.Fatalf("mip %#x, want MTIP", cpu.mip)
	}
}

func TestTimer(t *testing.T) {
	clk, cpu := &clock{now: 1000}, &lines{}
	c := New(clk, cpu)
	if !c.Write(0x4000, 8, 5000) || cpu.mip&dev.MTIP != 0 || cpu.stops != 1 {
		t.Fatalf("mip %#x stops %d after programming the future", cpu.mip, cpu.stops)
	}
	if c.Deadline() != 5000 {
		t.Fatal("deadline")
	}
	clk.now = 4999
	c.Update()
	if cpu.mip&dev.MTIP != 0 {
		t.Fatal("early MTIP")
	}
	clk.now = 5000
	c.Update()
	if cpu.mip&dev.MTIP == 0 {
		t.Fatal("no MTIP at deadline")
	}
	// 32-bit halves (RV32 style: hi = ~0 first, then lo, then hi)
	c.Write(0x4004, 4, 0xFFFFFFFF)
	c.Write(0x4000, 4, 0x89ABCDEF)
	c.Write(0x4004, 4, 0x01234567)
	if c.Deadline() != 0x0123456789ABCDEF || cpu.mip&dev.MTIP != 0 || cpu.stops != 4 {
		t.Fatalf("cmp %#x mip %#x stops %d", c.Deadline(), cpu.mip, cpu.stops)
	}
	if v, _ := c.Read(0x4004, 4); v != 0x01234567 {
		t.Fatalf("hi %#x", v)
	}
	if v, _ := c.Read(0x4000, 4); v != 0x89ABCDEF {
		t.Fatalf("lo %#x", v)
	}
	clk.now = 0x1122334455667788
	if v, _ := c.Read(0xBFF8, 8); v != clk.now {
		t.Fatalf("mtime %#x", v)
	}
	if v, _ := c.Read(0xBFFC, 4); v != 0x11223344 {
		t.Fatalf("mtime hi %#x", v)
	}
	c.Write(0xBFF8, 8, 0) // ignored
	if v, _ := c.Read(0xBFF8, 8); v != clk.now {
		t.Fatal("mtime write took effect")
	}
}

func TestMSIPAndAccess(t *testing.T) {
	cpu := &lines{}
	c := New(&clock{}, cpu)
	c.Write(0, 4, 1)
	if v, _ := c.Read(0, 4); v != 1 || cpu.mip&dev.MSIP == 0 {
		t.Fatal("msip not set")
	}
	c.Write(0, 4, 2)
	if cpu.mip&dev.MSIP != 0 {
		t.Fatal("msip not cleared")
	}
	for _, a := range []struct {
		off  uint64
		size int
		ok   bool
	}{
		{0, 1, false}, {0, 8, false}, {4, 4, true}, {0x3FFC, 4, true}, {0x4000, 2, false},
		{0x4004, 8, false}, {0x4008, 8, true}, {0xBFF8, 4, true}, {0xC000, 4, false},
		{0xFFFC, 4, false}, {0x10000, 4, false}, {^uint64(0), 8, false}, {0x4001, 4, false},
	} {
		if _, ok := c.Read(a.off, a.size); ok != a.ok {
			t.Errorf("read %#x/%d ok=%v", a.off, a.size, ok)
		}
		if ok := c.Write(a.off, a.size, 0); ok != a.ok {
			t.Errorf("write %#x/%d ok=%v", a.off, a.size, ok)
		}
	}
}

func TestSnapshot(t *testing.T) {
	clk, cpu := &clock{now: 10}, &lines{}
	c := New(clk, cpu)
	c.Write(0, 4, 1)
	c.Write(0x4000, 8, 77)
	var b bytes.Buffer
	c.Save(snap.NewWriter(&b))
	cpu2 := &lines{}
	c2 := New(&clock{}, cpu2)
	if err := c2.Restore(snap.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	if c2.Deadline() != 77 || cpu2.mip != dev.MSIP {
		t.Fatalf("restored cmp %d mip %#x", c2.Deadline(), cpu2.mip)
	}
	for i := 0; i < b.Len(); i++ {
		if err := c2.Restore(snap.NewReader(b.Bytes()[:i])); err == nil {
			t.Fatalf("truncated at %d restored", i)
		}
	}
}
