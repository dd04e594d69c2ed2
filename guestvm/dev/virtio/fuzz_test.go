package virtio

import (
	"bytes"
	"encoding/binary"
	"testing"

	"ftbox/guestvm/dev"
	"ftbox/guestvm/snap"
)

const seedRAM = 0x400

var fuzzRegs = []uint64{
	RegDeviceFeatSel, RegDriverFeatures, RegDriverFeatSel, RegQueueSel, RegQueueNum, RegQueueReady,
	RegQueueNotify, RegInterruptACK, RegStatus, RegQueueDescLow, RegQueueDescHigh, RegQueueDriverLow,
	RegQueueDriverHigh, RegQueueDeviceLow, RegQueueDeviceHigh, RegConfig, RegConfig + 6, 0x0fd, 0xfff,
}

// FuzzVirtqueue treats the input as a little program: the first 1 KiB (or
// less) seed guest RAM, the rest are ops (register writes, notifies, RAM
// pokes, frame deliveries). The device must never panic or hang, and its
// snapshot must always restore to an identical state.
func FuzzVirtqueue(f *testing.F) {
	// seed: a well-formed TX and RX exchange
	seed := make([]byte, seedRAM)
	le := binary.LittleEndian
	// ring layout used by the seed ops below (queue size 4):
	// desc at 0x000, avail at 0x100, used at 0x200 of RAM; buffer at 0x300
	le.PutUint64(seed[0:], ramBase+0x300)
	le.PutUint32(seed[8:], 100)
	le.PutUint16(seed[0x100+2:], 1)
	op := func(kind byte, a uint8, v uint32) {
		seed = append(seed, kind, a)
		seed = le.AppendUint32(seed, v)
	}
	op(0, 8, 0)
	op(0, 8, 3)
	op(0, 2, 1)
	op(0, 1, 1)
	op(0, 8, 0xb)
	for q := uint32(0); q < 2; q++ {
		op(0, 3, q)
		op(0, 4, 4)
		op(0, 9, ramBase)
		op(0, 11, ramBase+0x100)
		op(0, 13, ramBase+0x200)
		op(0, 5, 1)
	}
	op(0, 8, 0xf)
	op(0, 6, 1)
	op(2, 60, 0)
	op(0, 6, 0)
	f.Add(seed)
	f.Add(seed[:seedRAM])
	f.Fuzz(fuzzVirtqueue)
}

func fuzzVirtqueue(t *testing.T, data []byte) {
	le := binary.LittleEndian
	const ramSize = 0x2000
	ram := make([]byte, ramSize)
	n := copy(ram[:seedRAM], data)
	prog := data[n:]
	var txs int
	irq := &irqRec{}
	net := NewNet(dev.RAM{Base: ramBase, Bytes: ram}, [6]byte{2}, irq, 1, func(fr []byte) {
		txs++
		if len(fr) < MinFrame || len(fr) > MaxFrame {
			t.Fatalf("tx frame of %d bytes", len(fr))
		}
	})
	for len(prog) >= 6 {
		kind, a, v := prog[0], prog[1], le.Uint32(prog[2:])
		prog = prog[6:]
		switch kind % 5 {
		case 0:
			net.Write(fuzzRegs[int(a)%len(fuzzRegs)], 4, uint64(v))
		case 1:
			net.Read(fuzzRegs[int(a)%len(fuzzRegs)]&^3, 4)
			net.Read(uint64(v)%(Size+8), int(a%9))
		case 2:
			fr := make([]byte, int(a)+int(v%1600))
			net.Deliver(fr)
		case 3:
			off := uint64(v) % (ramSize - 4)
			le.PutUint32(ram[off:], uint32(a)*0x01010101)
		case 4:
			net.Write(uint64(v)%(Size+8), int(a%9), uint64(v)*0x9e3779b97f4a7c15)
		}
		if net.Stats().RxPending > MaxPendingRX {
			t.Fatal("pending queue unbounded")
		}
		if irq.level[1] != (net.Transport.isr != 0) {
			t.Fatal("irq line disagrees with interrupt status")
		}
	}
	var b bytes.Buffer
	net.Save(snap.NewWriter(&b))
	n2 := NewNet(dev.RAM{Base: ramBase, Bytes: ram}, [6]byte{}, &irqRec{}, 1, nil)
	if err := n2.Restore(snap.NewReader(b.Bytes())); err != nil {
		t.Fatalf("restore of a live snapshot: %v", err)
	}
	var b2 bytes.Buffer
	n2.Save(snap.NewWriter(&b2))
	if !bytes.Equal(b.Bytes(), b2.Bytes()) {
		t.Fatal("snapshot does not round-trip")
	}
	// and arbitrary bytes never restore into a panic
	_ = n2.Restore(snap.NewReader(data))
}
