package virtio

import (
	"bytes"
	"encoding/binary"
	"testing"

	"ftbox/guestvm/dev"
	"ftbox/guestvm/snap"
)

const ramBase = 0x80000000

type irqRec struct{ level map[int]bool }

func (r *irqRec) SetLevel(s int, l bool) {
	if r.level == nil {
		r.level = map[int]bool{}
	}
	r.level[s] = l
}

// guest is a minimal driver: it owns a RAM image and lays out the rings of
// both queues at fixed addresses.
type guest struct {
	t    *testing.T
	ram  []byte
	dev  dev.Device
	tr   *Transport
	irq  *irqRec
	num  uint32
	ring [2]struct{ desc, avail, used uint64 }
	// driver-side ring state
	availIdx [2]uint16
	usedSeen [2]uint16
	nextDesc [2]uint16
}

func (g *guest) w32(off uint64, v uint32) {
	g.t.Helper()
	if !g.dev.Write(off, 4, uint64(v)) {
		g.t.Fatalf("write %#x faulted", off)
	}
}

func (g *guest) r32(off uint64) uint32 {
	g.t.Helper()
	v, ok := g.dev.Read(off, 4)
	if !ok {
		g.t.Fatalf("read %#x faulted", off)
	}
	return uint32(v)
}

func (g *guest) mem(gpa uint64, n int) []byte { return g.ram[gpa-ramBase : gpa-ramBase+uint64(n)] }

func newGuest(t *testing.T, onTx func([]byte)) (*guest, *Net) {
	irq := &irqRec{}
	ram := make([]byte, 1<<20)
	n := NewNet(dev.RAM{Base: ramBase, Bytes: ram}, [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}, irq, 3, onTx)
	g := &guest{t: t, ram: ram, dev: n, tr: n.Transport, irq: irq, num: 8}
	for q := 0; q < 2; q++ {
		base := uint64(ramBase + 0x1000 + q*0x1000)
		g.ring[q].desc, g.ring[q].avail, g.ring[q].used = base, base+0x400, base+0x800
	}
	return g, n
}

// setup runs the Linux probe sequence up to DRIVER_OK.
func (g *guest) setup(features uint64) {
	g.w32(RegStatus, 0)
	g.w32(RegStatus, StatusAcknowledge)
	g.w32(RegStatus, StatusAcknowledge|StatusDriver)
	g.w32(RegDriverFeatSel, 0)
	g.w32(RegDriverFeatures, uint32(features))
	g.w32(RegDriverFeatSel, 1)
	g.w32(RegDriverFeatures, uint32(features>>32))
	g.w32(RegStatus, StatusAcknowledge|StatusDriver|StatusFeaturesOK)
	if g.r32(RegStatus)&StatusFeaturesOK == 0 {
		return
	}
	for q := 0; q < 2; q++ {
		g.w32(RegQueueSel, uint32(q))
		if g.r32(RegQueueReady) != 0 || g.r32(RegQueueNumMax) != MaxQueue {
			g.t.Fatalf("queue %d not available", q)
		}
		g.w32(RegQueueNum, g.num)
		r := g.ring[q]
		g.w32(RegQueueDescLow, uint32(r.desc))
		g.w32(RegQueueDescHigh, uint32(r.desc>>32))
		g.w32(RegQueueDriverLow, uint32(r.avail))
		g.w32(RegQueueDriverHigh, uint32(r.avail>>32))
		g.w32(RegQueueDeviceLow, uint32(r.used))
		g.w32(RegQueueDeviceHigh, uint32(r.used>>32))
		g.w32(RegQueueReady, 1)
		if g.r32(RegQueueReady) != 1 {
			return // callers check
		}
	}
	g.w32(RegStatus, StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK)
}

type seg struct {
	addr  uint64
	len   uint32
	write bool
}

// post writes a chain of descriptors and makes it available (no notify).
func (g *guest) post(q int, segs ...seg) uint16 {
	r := g.ring[q]
	head := g.nextDesc[q] % uint16(g.num)
	for i, s := range segs {
		d := (head + uint16(i)) % uint16(g.num)
		b := g.mem(r.desc+16*uint64(d), 16)
		binary.LittleEndian.PutUint64(b[0:], s.addr)
		binary.LittleEndian.PutUint32(b[8:], s.len)
		var flags uint16
		if s.write {
			flags |= DescFWrite
		}
		if i < len(segs)-1 {
			flags |= DescFNext
		}
		binary.LittleEndian.PutUint16(b[12:], flags)
		binary.LittleEndian.PutUint16(b[14:], (d+1)%uint16(g.num))
	}
	g.nextDesc[q] += uint16(len(segs))
	a := g.mem(r.avail, 6+2*int(g.num))
	binary.LittleEndian.PutUint16(a[4+2*(g.availIdx[q]%uint16(g.num)):], head)
	g.availIdx[q]++
	binary.LittleEndian.PutUint16(a[2:], g.availIdx[q])
	return head
}

type usedElem struct {
	id, len uint32
}

func (g *guest) reap(q int) []usedElem {
	u := g.mem(g.ring[q].used, 6+8*int(g.num))
	idx := binary.LittleEndian.Uint16(u[2:])
	var out []usedElem
	for ; g.usedSeen[q] != idx; g.usedSeen[q]++ {
		e := u[4+8*(g.usedSeen[q]%uint16(g.num)):]
		out = append(out, usedElem{binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:])})
	}
	return out
}

func frame(n int, tag byte) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = tag + byte(i)
	}
	return f
}

const allFeatures = FeatureVersion1 | NetFeatureMAC | NetFeatureStatus

func TestIdentification(t *testing.T) {
	g, _ := newGuest(t, nil)
	want := map[uint64]uint32{RegMagic: MagicValue, RegVersion: 2, RegDeviceID: 1, RegVendorID: VendorID}
	for off, v := range want {
		if got := g.r32(off); got != v {
			t.Errorf("reg %#x = %#x, want %#x", off, got, v)
		}
	}
	g.w32(RegDeviceFeatSel, 0)
	lo := g.r32(RegDeviceFeatures)
	g.w32(RegDeviceFeatSel, 1)
	hi := g.r32(RegDeviceFeatures)
	if f := uint64(hi)<<32 | uint64(lo); f != allFeatures {
		t.Errorf("features %#x, want %#x", f, uint64(allFeatures))
	}
	// config: MAC then status
	for i, b := range []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56, NetStatusLinkUp, 0} {
		v, ok := g.dev.Read(RegConfig+uint64(i), 1)
		if !ok || byte(v) != b {
			t.Errorf("config[%d] = %#x,%v want %#x", i, v, ok, b)
		}
	}
	if v, _ := g.dev.Read(RegConfig+6, 2); v != NetStatusLinkUp {
		t.Errorf("status word %#x", v)
	}
	if v, _ := g.dev.Read(RegConfig+8, 4); v != 0xFFFFFFFF {
		t.Errorf("config past end = %#x, want all ones", v)
	}
	if _, ok := g.dev.Read(Size, 4); ok {
		t.Error("read past region succeeded")
	}
	if _, ok := g.dev.Read(0, 3); ok {
		t.Error("3-byte read succeeded")
	}
	if v, ok := g.dev.Read(RegMagic, 2); !ok || v != 0 {
		t.Errorf("16-bit register read = %#x,%v want 0,true (QEMU)", v, ok)
	}

	e := Empty()
	for off, v := range map[uint64]uint64{RegMagic: MagicValue, RegVersion: 2, RegDeviceID: 0, RegVendorID: VendorID, RegQueueNumMax: 0} {
		if got, ok := e.Read(off, 4); !ok || got != v {
			t.Errorf("empty reg %#x = %#x, want %#x", off, got, v)
		}
	}
	e.Write(RegStatus, 4, 0xF)
	if v, _ := e.Read(RegStatus, 4); v != 0 {
		t.Error("empty slot kept a status")
	}
}

func TestNegotiation(t *testing.T) {
	g, _ := newGuest(t, nil)
	g.setup(NetFeatureMAC) // no VERSION_1
	if g.r32(RegStatus)&StatusFeaturesOK != 0 {
		t.Fatal("FEATURES_OK accepted without VERSION_1")
	}
	g.setup(allFeatures | FeatureEventIdx) // not offered
	if g.r32(RegStatus)&StatusFeaturesOK != 0 {
		t.Fatal("FEATURES_OK accepted with an unoffered feature")
	}
	g.setup(FeatureVersion1 | NetFeatureMAC)
	if s := g.r32(RegStatus); s != 0xF {
		t.Fatalf("status %#x after setup", s)
	}
	if g.tr.Features() != FeatureVersion1|NetFeatureMAC {
		t.Fatalf("negotiated %#x", g.tr.Features())
	}
	// reset clears everything
	g.w32(RegStatus, 0)
	g.w32(RegQueueSel, 0)
	if g.r32(RegStatus) != 0 || g.r32(RegQueueReady) != 0 || g.tr.Features() != 0 {
		t.Fatal("reset left state")
	}
}

func TestTX(t *testing.T) {
	var got [][]byte
	g, n := newGuest(t, func(f []byte) { got = append(got, f) })
	g.setup(allFeatures)
	buf := uint64(ramBase + 0x10000)
	f1 := frame(60, 1)
	copy(g.mem(buf+NetHdrLen, 60), f1)
	// header split across two descriptors, frame across two more
	g.post(TXQueue, seg{buf, 5, false}, seg{buf + 5, 7, false}, seg{buf + 12, 20, false}, seg{buf + 32, 40, false})
	f2 := frame(100, 7)
	copy(g.mem(buf+0x1000+NetHdrLen, 100), f2)
	g.post(TXQueue, seg{buf + 0x1000, 112, false})
	g.post(TXQueue, seg{buf + 0x2000, 12 + 10, false}) // runt
	g.w32(RegQueueNotify, TXQueue)
	if len(got) != 2 || !bytes.Equal(got[0], f1) || !bytes.Equal(got[1], f2) {
		t.Fatalf("tx frames %v", got)
	}
	// frames are copies
	g.mem(buf+NetHdrLen, 1)[0] ^= 0xFF
	if got[0][0] != f1[0] {
		t.Fatal("frame aliases guest memory")
	}
	used := g.reap(TXQueue)
	if len(used) != 3 || used[0].id != 0 || used[1].id != 4 || used[2].id != 5 {
		t.Fatalf("used %v", used)
	}
	if g.r32(RegInterruptStatus) != IntUsedBuffer || !g.irq.level[3] {
		t.Fatal("no interrupt")
	}
	g.w32(RegInterruptACK, IntUsedBuffer)
	if g.irq.level[3] {
		t.Fatal("interrupt not acked")
	}
	s := n.Stats()
	if s.TxFrames != 2 || s.TxDropped != 1 || s.Errors != 0 {
		t.Fatalf("stats %+v", s)
	}
	// NO_INTERRUPT suppresses the interrupt
	binary.LittleEndian.PutUint16(g.mem(g.ring[TXQueue].avail, 2), AvailFNoInterrupt)
	g.post(TXQueue, seg{buf + 0x1000, 112, false})
	g.w32(RegQueueNotify, TXQueue)
	if len(got) != 3 || g.r32(RegInterruptStatus) != 0 {
		t.Fatalf("NO_INTERRUPT ignored: %d frames, isr %#x", len(got), g.r32(RegInterruptStatus))
	}
	// too long
	g.post(TXQueue, seg{buf, NetHdrLen + MaxFrame + 1, false})
	g.w32(RegQueueNotify, TXQueue)
	if n.Stats().TxDropped != 2 {
		t.Fatal("oversized frame not dropped")
	}
}

func TestRX(t *testing.T) {
	g, n := newGuest(t, nil)
	// frames before the driver is up wait... and a reset drops them
	n.Deliver(frame(60, 0))
	g.setup(allFeatures)
	if n.Stats().RxPending != 0 || n.Stats().RxDropped != 1 {
		t.Fatalf("frame survived reset: %+v", n.Stats())
	}
	// no buffers yet: frames wait in order
	for i := 0; i < 3; i++ {
		if !n.Deliver(frame(60+i, byte(i*16))) {
			t.Fatal("deliver refused")
		}
	}
	if n.Stats().RxPending != 3 {
		t.Fatalf("pending %d", n.Stats().RxPending)
	}
	buf := uint64(ramBase + 0x20000)
	for i := 0; i < 2; i++ {
		b := buf + uint64(i)*0x800
		g.post(RXQueue, seg{b, 10, true}, seg{b + 10, 1600, true})
	}
	g.w32(RegQueueNotify, RXQueue)
	used := g.reap(RXQueue)
	if len(used) != 2 || n.Stats().RxPending != 1 {
		t.Fatalf("used %v, pending %d", used, n.Stats().RxPending)
	}
	for i, u := range used {
		b := g.mem(buf+uint64(i)*0x800, int(u.len))
		want := append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, frame(60+i, byte(i*16))...)
		if u.len != uint32(len(want)) || !bytes.Equal(b, want) {
			t.Fatalf("rx %d: got % x", i, b)
		}
	}
	if g.r32(RegInterruptStatus)&IntUsedBuffer == 0 {
		t.Fatal("no rx interrupt")
	}
	// a frame arriving now queues behind the pending one
	n.Deliver(frame(80, 0xA0))
	g.post(RXQueue, seg{buf, 2000, true})
	g.post(RXQueue, seg{buf + 0x800, 2000, true})
	g.w32(RegQueueNotify, RXQueue)
	used = g.reap(RXQueue)
	if len(used) != 2 || used[0].len != 12+62 || used[1].len != 12+80 {
		t.Fatalf("order: %v", used)
	}
	if !bytes.Equal(g.mem(buf+12, 62), frame(62, 32)) || !bytes.Equal(g.mem(buf+0x800+12, 80), frame(80, 0xA0)) {
		t.Fatal("pending frames delivered out of order")
	}
	// direct delivery, buffer too small → dropped, buffer returned empty
	g.post(RXQueue, seg{buf, 40, true})
	if n.Deliver(frame(60, 0)) {
		t.Fatal("delivered into a small buffer")
	}
	if u := g.reap(RXQueue); len(u) != 1 || u[0].len != 0 {
		t.Fatalf("small buffer %v", u)
	}
	// bounded pending queue
	for i := 0; i < MaxPendingRX+5; i++ {
		n.Deliver(frame(60, 0))
	}
	s := n.Stats()
	if s.RxPending != MaxPendingRX || s.RxFrames != 4 || s.RxDropped != 1+1+5 {
		t.Fatalf("stats %+v", s)
	}
	if n.Deliver(frame(10, 0)) || n.Deliver(frame(MaxFrame+1, 0)) {
		t.Fatal("bad-size frames accepted")
	}
}

func TestNeedsReset(t *testing.T) {
	buf := uint64(ramBase + 0x10000)
	cases := []struct {
		name string
		q    int
		fix  func(g *guest)
	}{
		{"index out of range", TXQueue, func(g *guest) {
			binary.LittleEndian.PutUint16(g.mem(g.ring[TXQueue].avail+4, 2), 8)
		}},
		{"loop", TXQueue, func(g *guest) {
			d := g.mem(g.ring[TXQueue].desc, 16)
			binary.LittleEndian.PutUint16(d[12:], DescFNext)
			binary.LittleEndian.PutUint16(d[14:], 0)
		}},
		{"next out of range", TXQueue, func(g *guest) {
			d := g.mem(g.ring[TXQueue].desc, 16)
			binary.LittleEndian.PutUint16(d[12:], DescFNext)
			binary.LittleEndian.PutUint16(d[14:], 9)
		}},
		{"outside RAM", TXQueue, func(g *guest) {
			binary.LittleEndian.PutUint64(g.mem(g.ring[TXQueue].desc, 8), 0x1000)
		}},
		{"wraps", TXQueue, func(g *guest) {
			binary.LittleEndian.PutUint64(g.mem(g.ring[TXQueue].desc, 8), ^uint64(0)-4)
		}},
		{"tx writable", TXQueue, func(g *guest) {
			binary.LittleEndian.PutUint16(g.mem(g.ring[TXQueue].desc+12, 2), DescFWrite)
		}},
		{"indirect", TXQueue, func(g *guest) {
			binary.LittleEndian.PutUint16(g.mem(g.ring[TXQueue].desc+12, 2), DescFIndirect)
		}},
		{"avail runs ahead", TXQueue, func(g *guest) {
			binary.LittleEndian.PutUint16(g.mem(g.ring[TXQueue].avail+2, 2), 100)
		}},
		{"rx readable", RXQueue, func(g *guest) {
			binary.LittleEndian.PutUint16(g.mem(g.ring[RXQueue].desc+12, 2), 0)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var sent int
			g, n := newGuest(t, func([]byte) { sent++ })
			g.setup(allFeatures)
			g.post(c.q, seg{buf, 100, c.q == RXQueue})
			c.fix(g)
			if c.q == RXQueue {
				n.Deliver(frame(60, 0))
			} else {
				g.w32(RegQueueNotify, uint32(c.q))
			}
			if g.r32(RegStatus)&StatusDeviceNeedsReset == 0 || g.r32(RegInterruptStatus)&IntConfigChange == 0 {
				t.Fatalf("status %#x isr %#x", g.r32(RegStatus), g.r32(RegInterruptStatus))
			}
			if sent != 0 || n.Stats().Errors != 1 {
				t.Fatalf("sent %d, stats %+v", sent, n.Stats())
			}
			// nothing more happens until reset
			g.post(TXQueue, seg{buf, 100, false})
			g.w32(RegQueueNotify, TXQueue)
			if sent != 0 {
				t.Fatal("broken device transmitted")
			}
			// after a reset the device works again
			*g = guest{t: t, ram: g.ram, dev: g.dev, tr: g.tr, irq: g.irq, num: g.num, ring: g.ring}
			clear(g.ram)
			g.setup(allFeatures)
			copy(g.mem(buf+NetHdrLen, 60), frame(60, 0))
			g.post(TXQueue, seg{buf, 72, false})
			g.w32(RegQueueNotify, TXQueue)
			if sent != 1 || g.r32(RegStatus) != 0xF {
				t.Fatalf("after reset: sent %d status %#x", sent, g.r32(RegStatus))
			}
		})
	}
}

func TestBadQueueConfig(t *testing.T) {
	for _, num := range []uint32{0, 3, 512} {
		g, _ := newGuest(t, nil)
		g.num = num
		g.setup(allFeatures)
		if g.r32(RegQueueReady) != 0 || g.r32(RegStatus)&StatusDeviceNeedsReset == 0 {
			t.Errorf("num %d: queue became ready", num)
		}
	}
	g, _ := newGuest(t, nil)
	g.ring[0].used = ramBase + 1<<20 - 8 // used ring runs past RAM
	g.setup(allFeatures)
	if g.r32(RegStatus)&StatusDeviceNeedsReset == 0 {
		t.Error("ring outside RAM accepted")
	}
}

func TestSnapshot(t *testing.T) {
	g, n := newGuest(t, nil)
	g.setup(allFeatures)
	n.Deliver(frame(60, 1))
	n.Deliver(frame(70, 2))
	var b bytes.Buffer
	n.Save(snap.NewWriter(&b))

	g2, n2 := newGuest(t, nil)
	copy(g2.ram, g.ram)
	if err := n2.Restore(snap.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	var b2 bytes.Buffer
	n2.Save(snap.NewWriter(&b2))
	if !bytes.Equal(b.Bytes(), b2.Bytes()) {
		t.Fatal("save/restore/save differs")
	}
	// the restored device delivers the pending frames
	g2.availIdx, g2.nextDesc = g.availIdx, g.nextDesc
	g2.post(RXQueue, seg{ramBase + 0x20000, 2000, true})
	g2.post(RXQueue, seg{ramBase + 0x21000, 2000, true})
	g2.w32(RegQueueNotify, RXQueue)
	if u := g2.reap(RXQueue); len(u) != 2 || u[1].len != 82 {
		t.Fatalf("used %v", u)
	}
	// truncations and corruptions fail without panicking
	for i := 0; i < b.Len(); i++ {
		_, n3 := newGuest(t, nil)
		if err := n3.Restore(snap.NewReader(b.Bytes()[:i])); err == nil {
			t.Fatalf("truncated at %d restored", i)
		}
	}
	bad := bytes.Clone(b.Bytes())
	binary.LittleEndian.PutUint32(bad[len("virtio-mmio/v1")+8+4:], 0x1FF) // status
	if err := n2.Restore(snap.NewReader(bad)); err == nil {
		t.Fatal("impossible status restored")
	}
	if err := Empty().Restore(snap.NewReader(b.Bytes())); err == nil {
		t.Fatal("net state restored into an empty slot")
	}
}
