package virtio

import (
	"fmt"

	"ftbox/guestvm/dev"
	"ftbox/guestvm/snap"
)

// virtio-net constants.
const (
	NetDeviceID = 1

	NetFeatureMAC    = 1 << 5
	NetFeatureStatus = 1 << 16

	NetStatusLinkUp = 1

	// NetHdrLen is the size of struct virtio_net_hdr_v1 (with num_buffers),
	// the header of every frame under VIRTIO_F_VERSION_1.
	NetHdrLen = 12

	RXQueue = 0
	TXQueue = 1

	MinFrame = 14       // Ethernet header
	MaxFrame = 1514 + 4 // with an 802.1Q tag

	// MaxPendingRX bounds the frames kept while the guest has no RX buffer.
	MaxPendingRX = 256

	netConfigSize = 8 // mac[6], status u16
)

// NetStats are the device's counters.
type NetStats struct {
	TxFrames  uint64 // frames handed to onTx
	RxFrames  uint64 // frames written into guest RX buffers
	TxDropped uint64 // guest frames too short or too long
	RxDropped uint64 // frames not delivered: bad size, RX buffer too small, pending queue full, reset
	Errors    uint64 // times the device entered DEVICE_NEEDS_RESET
	RxPending uint64 // frames waiting for an RX buffer now
}

// Net is a virtio-net device on its virtio-mmio transport. It is a
// dev.Device through the embedded Transport.
type Net struct {
	*Transport
	b *netBackend
}

type netBackend struct {
	t       *Transport
	mac     [6]byte
	onTx    func(frame []byte)
	pending [][]byte
	stats   NetStats
}

// NewNet returns a virtio-net device with the given MAC. onTx receives every
// frame the guest transmits, synchronously from inside the guest's
// QueueNotify write; the frame is a fresh copy the callee may keep. onTx may
// call Deliver.
func NewNet(ram dev.RAM, mac [6]byte, irq dev.IRQSink, source int, onTx func(frame []byte)) *Net {
	b := &netBackend{mac: mac, onTx: onTx}
	t := NewTransport(ram, irq, source, b)
	b.t = t
	return &Net{Transport: t, b: b}
}

// MAC returns the device's MAC address.
func (n *Net) MAC() [6]byte { return n.b.mac }

// Stats returns the device's counters.
func (n *Net) Stats() NetStats {
	s := n.b.stats
	s.Errors = n.t().errors
	s.RxPending = uint64(len(n.b.pending))
	return s
}

func (n *Net) t() *Transport { return n.Transport }

// Deliver offers a received frame to the guest. The frame is copied; the
// caller keeps its buffer. If the guest has no RX buffer posted the frame
// waits in a bounded queue and is delivered, in order, when buffers arrive.
// It returns false when the frame was dropped (bad size, queue full, or RX
// buffer too small).
func (n *Net) Deliver(frame []byte) bool {
	b := n.b
	if len(frame) < MinFrame || len(frame) > MaxFrame {
		b.stats.RxDropped++
		return false
	}
	if len(b.pending) == 0 {
		switch b.deliverOne(frame) {
		case rxDelivered:
			return true
		case rxDropped:
			return false
		}
	}
	if len(b.pending) >= MaxPendingRX {
		b.stats.RxDropped++
		return false
	}
	b.pending = append(b.pending, append([]byte(nil), frame...))
	return true
}

type rxResult int

const (
	rxDelivered rxResult = iota
	rxNoBuffer
	rxDropped
)

var rxHeader = [NetHdrLen]byte{10: 1} // num_buffers = 1, all else 0

func (b *netBackend) deliverOne(frame []byte) rxResult {
	t := b.t
	c, ok := t.Pop(RXQueue)
	if !ok {
		return rxNoBuffer
	}
	for _, s := range c.Segs {
		if !s.Write {
			t.Fail("device-readable buffer on the RX queue")
			return rxNoBuffer
		}
	}
	need := uint64(NetHdrLen + len(frame))
	if c.Len() < need {
		t.Push(RXQueue, c.Head, 0)
		t.Interrupt(RXQueue)
		b.stats.RxDropped++
		return rxDropped
	}
	scatter(c.Segs, rxHeader[:], frame)
	t.Push(RXQueue, c.Head, uint32(need))
	t.Interrupt(RXQueue)
	b.stats.RxFrames++
	return rxDelivered
}

// scatter copies the concatenation of parts into segs (which hold enough).
func scatter(segs []Segment, parts ...[]byte) {
	si, so := 0, 0
	for _, p := range parts {
		for len(p) > 0 && si < len(segs) {
			k := copy(segs[si].Buf[so:], p)
			p = p[k:]
			so += k
			if so == len(segs[si].Buf) {
				si, so = si+1, 0
			}
		}
	}
}

func (b *netBackend) DeviceID() uint32 { return NetDeviceID }
func (b *netBackend) Features() uint64 { return NetFeatureMAC | NetFeatureStatus }
func (b *netBackend) NumQueues() int   { return 2 }
func (b *netBackend) ConfigSize() int  { return netConfigSize }

func (b *netBackend) ConfigRead(off, size int) uint32 {
	var cfg [netConfigSize]byte
	copy(cfg[:], b.mac[:])
	cfg[6] = NetStatusLinkUp
	var v uint32
	for i := 0; i < size; i++ {
		v |= uint32(cfg[off+i]) << (8 * i)
	}
	return v
}

// ConfigWrite ignores writes: without VIRTIO_NET_F_CTRL_MAC_ADDR the config
// space is read-only under VERSION_1.
func (b *netBackend) ConfigWrite(off, size int, val uint32) {}

func (b *netBackend) QueueNotify(q int) {
	switch q {
	case RXQueue:
		b.flushPending()
	case TXQueue:
		b.transmit()
	}
}

func (b *netBackend) flushPending() {
	for len(b.pending) > 0 && b.t.Live() {
		r := b.deliverOne(b.pending[0])
		if r == rxNoBuffer {
			break
		}
		b.pending[0] = nil
		b.pending = b.pending[1:]
	}
	if len(b.pending) == 0 {
		b.pending = nil
	}
}

func (b *netBackend) transmit() {
	t := b.t
	sent := false
	// At most one ring's worth per notify, even if the guest keeps moving
	// its avail index (rings may overlap what the device writes).
	for budget := t.QueueSize(TXQueue); budget > 0; budget-- {
		c, ok := t.Pop(TXQueue)
		if !ok {
			break
		}
		var total uint64
		for _, s := range c.Segs {
			if s.Write {
				t.Fail("device-writable buffer on the TX queue")
				return
			}
			total += uint64(len(s.Buf))
		}
		if total < NetHdrLen+MinFrame || total > NetHdrLen+MaxFrame {
			b.stats.TxDropped++
		} else {
			frame := make([]byte, 0, total-NetHdrLen)
			skip := NetHdrLen
			for _, s := range c.Segs {
				p := s.Buf
				if skip > 0 {
					k := min(skip, len(p))
					p, skip = p[k:], skip-k
				}
				frame = append(frame, p...)
			}
			b.stats.TxFrames++
			if b.onTx != nil {
				b.onTx(frame)
			}
		}
		t.Push(TXQueue, c.Head, 0)
		sent = true
	}
	if sent {
		t.Interrupt(TXQueue)
	}
}

// Reset drops frames waiting for RX buffers: they were meant for the driver
// that just reset the device.
func (b *netBackend) Reset() {
	b.stats.RxDropped += uint64(len(b.pending))
	b.pending = nil
}

func (b *netBackend) Save(w *snap.Writer) {
	w.Tag("virtio-net/v1")
	w.Raw(b.mac[:])
	s := b.stats
	for _, v := range []uint64{s.TxFrames, s.RxFrames, s.TxDropped, s.RxDropped} {
		w.U64(v)
	}
	w.U32(uint32(len(b.pending)))
	for _, f := range b.pending {
		w.Bytes(f)
	}
}

func (b *netBackend) Restore(r *snap.Reader) error {
	r.Tag("virtio-net/v1")
	var mac [6]byte
	r.Raw(mac[:])
	var s NetStats
	for _, p := range []*uint64{&s.TxFrames, &s.RxFrames, &s.TxDropped, &s.RxDropped} {
		*p = r.U64()
	}
	np := r.U32()
	if err := r.Err(); err != nil {
		return err
	}
	if np > MaxPendingRX {
		return fmt.Errorf("virtio-net: %d pending RX frames exceed %d", np, MaxPendingRX)
	}
	var pending [][]byte
	for i := uint32(0); i < np; i++ {
		f := r.Bytes(MaxFrame)
		if err := r.Err(); err != nil {
			return err
		}
		if len(f) < MinFrame {
			return fmt.Errorf("virtio-net: pending RX frame of %d bytes", len(f))
		}
		pending = append(pending, f)
	}
	b.mac, b.stats, b.pending = mac, s, pending
	return nil
}
