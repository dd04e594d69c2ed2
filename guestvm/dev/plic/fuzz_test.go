package plic

import (
	"bytes"
	"encoding/binary"
	"testing"

	"ftbox/guestvm/dev"
	"ftbox/guestvm/snap"
)

// FuzzMMIO drives the PLIC with arbitrary register accesses and line
// changes; it must never panic, the CPU lines must always equal "some
// context has a claimable source", and every reachable state must survive a
// snapshot round trip.
func FuzzMMIO(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 40, 1, 0, 0, 0, 0x20, 0x80, 0, 0, 0, 4, 2, 10, 0, 0, 0, 0, 1, 0, 0, 0x20, 4, 1, 0, 0, 0})
	regs := []uint64{0, 4, 40, 0x17c, 0x180, pendingBase, pendingBase + 8, enableBase, enableBase + 4,
		enableBase + 8, enableBase + enableStride, enableBase + enableStride + 4, contextBase, contextBase + 4,
		contextBase + contextStride, contextBase + contextStride + 4, contextBase + 2*contextStride + 4}
	f.Fuzz(func(t *testing.T, data []byte) {
		cpu := &lines{}
		p := New(cpu)
		for len(data) >= 6 {
			op, a, v := data[0], data[1], binary.LittleEndian.Uint32(data[2:])
			data = data[6:]
			switch op % 4 {
			case 0:
				p.Write(regs[int(a)%len(regs)], 4, uint64(v))
			case 1:
				p.Read(regs[int(a)%len(regs)], 4)
			case 2:
				p.SetLevel(int(int8(a)), v&1 != 0)
			case 3:
				p.Write(uint64(v)%(Size+8), int(a%9), uint64(v))
			}
			want := uint64(0)
			if p.best(0) != 0 {
				want |= dev.MEIP
			}
			if p.best(1) != 0 {
				want |= dev.SEIP
			}
			if cpu.mip != want {
				t.Fatalf("mip %#x, want %#x", cpu.mip, want)
			}
		}
		var b bytes.Buffer
		p.Save(snap.NewWriter(&b))
		q := New(&lines{})
		if err := q.Restore(snap.NewReader(b.Bytes())); err != nil {
			t.Fatalf("restore of a reachable state: %v", err)
		}
		var b2 bytes.Buffer
		q.Save(snap.NewWriter(&b2))
		if !bytes.Equal(b.Bytes(), b2.Bytes()) {
			t.Fatal("round trip differs")
		}
	})
}
