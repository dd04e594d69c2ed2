package uart

import (
	"bytes"
	"testing"

	"ftbox/guestvm/snap"
)

// FuzzMMIO drives the UART with arbitrary accesses and input bytes; it must
// never panic, its IRQ line must match IIR, and every reachable state must
// survive a snapshot round trip.
func FuzzMMIO(f *testing.F) {
	f.Add([]byte{0, 2, 0xC7, 0, 1, 0x0F, 1, 'a', 0, 3, 0x80, 2, 0, 0, 0, 4, 0x1A, 1, 'b'})
	f.Fuzz(func(t *testing.T, data []byte) {
		u, irq, _ := newUART()
		for len(data) >= 3 {
			op, a, v := data[0], data[1], data[2]
			data = data[3:]
			switch op % 4 {
			case 0:
				u.Write(uint64(a), 1<<(op>>2%4), uint64(v)*0x0101010101010101)
			case 1:
				u.Receive(v)
			case 2:
				u.Read(uint64(a), 1<<(op>>2%4))
			case 3:
				u.Read(uint64(a)&7, 1)
			}
			if irq.level != (u.iir&0x01 == 0) {
				t.Fatalf("irq %v with IIR %#x", irq.level, u.iir)
			}
			if u.count > FIFOSize {
				t.Fatal("FIFO overflow")
			}
		}
		var b bytes.Buffer
		u.Save(snap.NewWriter(&b))
		v, _, _ := newUART()
		if err := v.Restore(snap.NewReader(b.Bytes())); err != nil {
			t.Fatalf("restore of a reachable state: %v", err)
		}
		var b2 bytes.Buffer
		v.Save(snap.NewWriter(&b2))
		if !bytes.Equal(b.Bytes(), b2.Bytes()) {
			t.Fatal("round trip differs")
		}
	})
}
