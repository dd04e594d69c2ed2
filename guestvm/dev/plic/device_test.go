package plic

import (
	"bytes"
	"encoding/binary"
	"testing"

	"ftbox/guestvm/dev"
	"ftbox/guestvm/snap"
)

type lines struct{ mip uint64 }

func (l *lines) SetIRQ(mask uint64, level bool) {
	if level {
		l.mip |= mask
	} else {
		l.mip &^= mask
	}
}
func (l *lines) RequestStop() {}

func w(t *testing.T, p *PLIC, off uint64, v uint32) {
	t.Helper()
	if !p.Write(off, 4, uint64(v)) {
		t.Fatalf("write %#x faulted", off)
	}
}

func r(t *testing.T, p *PLIC, off uint64) uint32 {
	t.Helper()
	v, ok := p.Read(off, 4)
	if !ok {
		t.Fatalf("read %#x faulted", off)
	}
	return uint32(v)
}

const (
	m0Claim = contextBase + 4
	s1Claim = contextBase + contextStride + 4
	s1Thr   = contextBase + contextStride
)

func TestClaimComplete(t *testing.T) {
	cpu := &lines{}
	p := New(cpu)
	w(t, p, 4*10, 1) // uart priority 1
	w(t, p, 4*1, 1)  // virtio 1 priority 1
	w(t, p, 4*2, 3)
	w(t, p, enableBase+enableStride, 1<<10|1<<1|1<<2) // S context
	p.SetLevel(10, true)
	p.SetLevel(1, true)
	if cpu.mip != dev.SEIP {
		t.Fatalf("mip %#x, want SEIP only", cpu.mip)
	}
	if r(t, p, pendingBase) != 1<<10|1<<1 {
		t.Fatalf("pending %#x", r(t, p, pendingBase))
	}
	// equal priorities: lowest id first
	if got := r(t, p, s1Claim); got != 1 {
		t.Fatalf("claim %d, want 1", got)
	}
	if got := r(t, p, s1Claim); got != 10 {
		t.Fatalf("claim %d, want 10", got)
	}
	if cpu.mip != 0 || r(t, p, s1Claim) != 0 {
		t.Fatal("nothing should be claimable")
	}
	// source 1 is in service: its line stays high but it does not re-pend
	p.SetLevel(1, true)
	if p.Pending(1) {
		t.Fatal("claimed source re-pended")
	}
	w(t, p, s1Claim, 1) // complete: line still high → pending again
	if !p.Pending(1) || cpu.mip != dev.SEIP {
		t.Fatal("completed source with high line not re-pended")
	}
	// line drops before the claim: no longer pending
	p.SetLevel(1, false)
	if p.Pending(1) || cpu.mip != 0 {
		t.Fatal("low line still pending")
	}
	// uart completes with the line low: stays quiet
	p.SetLevel(10, false)
	w(t, p, s1Claim, 10)
	if cpu.mip != 0 {
		t.Fatal("spurious")
	}
	// higher priority wins, threshold masks
	p.SetLevel(1, true)
	p.SetLevel(2, true)
	if got := r(t, p, s1Claim); got != 2 {
		t.Fatalf("claim %d, want 2 (priority 3)", got)
	}
	w(t, p, s1Claim, 2)
	p.SetLevel(2, false)
	w(t, p, s1Thr, 1)
	if cpu.mip != 0 || r(t, p, s1Claim) != 0 {
		t.Fatal("threshold 1 does not mask priority 1")
	}
	w(t, p, s1Thr, 0)
	// M context sees source 1 once enabled there
	w(t, p, enableBase, 1<<1)
	if cpu.mip != dev.MEIP|dev.SEIP {
		t.Fatalf("mip %#x", cpu.mip)
	}
	if got := r(t, p, m0Claim); got != 1 || cpu.mip != 0 {
		t.Fatalf("M claim %d mip %#x", got, cpu.mip)
	}
	// priority 0 never interrupts
	w(t, p, 4*5, 0)
	w(t, p, enableBase, 1<<5)
	p.SetLevel(5, true)
	if cpu.mip != 0 {
		t.Fatal("priority 0 interrupted")
	}
}

func TestRegisters(t *testing.T) {
	p := New(&lines{})
	w(t, p, 4*3, 0xFF)
	if r(t, p, 4*3) != 7 {
		t.Fatal("priority not masked to 3 bits")
	}
	w(t, p, 0, 5)
	if r(t, p, 0) != 0 {
		t.Fatal("source 0 has a priority")
	}
	w(t, p, enableBase, 0xFFFFFFFF)
	w(t, p, enableBase+8, 0xFFFFFFFF)
	if r(t, p, enableBase) != 0xFFFFFFFE || r(t, p, enableBase+8) != 0xFFFFFFFF {
		t.Fatalf("enables %#x %#x", r(t, p, enableBase), r(t, p, enableBase+8))
	}
	// out-of-range sources and unimplemented registers are harmless
	for _, s := range []int{-1, 0, NumSources, 1 << 30} {
		p.SetLevel(s, true)
	}
	for _, off := range []uint64{4 * NumSources, pendingBase + 12, enableBase + 12, enableBase + 2*enableStride,
		contextBase + 8, contextBase + 2*contextStride, Size - 4} {
		w(t, p, off, 0xFFFFFFFF)
		if r(t, p, off) != 0 {
			t.Errorf("%#x reads non-zero", off)
		}
	}
	for _, a := range []struct {
		off  uint64
		size int
	}{{0, 1}, {0, 2}, {0, 8}, {2, 4}, {Size, 4}, {^uint64(3), 4}} {
		if _, ok := p.Read(a.off, a.size); ok {
			t.Errorf("read %#x/%d accepted", a.off, a.size)
		}
		if p.Write(a.off, a.size, 0) {
			t.Errorf("write %#x/%d accepted", a.off, a.size)
		}
	}
	// completing bogus ids does nothing
	w(t, p, m0Claim, 0)
	w(t, p, m0Claim, 4000)
}

func TestSnapshot(t *testing.T) {
	cpu := &lines{}
	p := New(cpu)
	w(t, p, 4*7, 2)
	w(t, p, enableBase+enableStride, 1<<7)
	p.SetLevel(7, true)
	p.SetLevel(8, true)
	var b bytes.Buffer
	p.Save(snap.NewWriter(&b))
	cpu2 := &lines{}
	q := New(cpu2)
	if err := q.Restore(snap.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	if cpu2.mip != dev.SEIP || r(t, q, s1Claim) != 7 {
		t.Fatal("restored PLIC differs")
	}
	for i := 0; i < b.Len(); i += 7 {
		if err := q.Restore(snap.NewReader(b.Bytes()[:i])); err == nil {
			t.Fatalf("truncated at %d restored", i)
		}
	}
	off := len("plic/v1") + 8
	bad := bytes.Clone(b.Bytes())
	binary.LittleEndian.PutUint32(bad[off+4*7:], 8)
	if err := q.Restore(snap.NewReader(bad)); err == nil {
		t.Fatal("priority 8 restored")
	}
	bad = bytes.Clone(b.Bytes())
	binary.LittleEndian.PutUint32(bad[off+4*NumSources+4:], 1) // pending bit 0
	if err := q.Restore(snap.NewReader(bad)); err == nil {
		t.Fatal("pending source 0 restored")
	}
}
