// Package virtio is the virtio-mmio transport (version 2, "modern", only)
// of QEMU 7.2's virt machine with split virtqueues, and the virtio-net
// backend.
//
// The transport is generic: a Backend supplies the device ID, feature bits,
// config space and queue handling; a transport without a backend is one of
// QEMU's empty slots (DeviceID 0). Everything a guest can do through
// registers or rings is bounded and checked: a malformed ring (descriptor
// index out of range, looping chain, buffer outside RAM, wrong direction,
// indirect descriptors, an avail index that runs ahead of the ring) sets
// DEVICE_NEEDS_RESET, raises a configuration-change interrupt, and the
// device does nothing more until the driver resets it.
package virtio

import (
	"encoding/binary"
	"math/bits"

	"ftbox/guestvm/dev"
	"ftbox/guestvm/snap"
)

// Layout of the virt machine's transports.
const (
	Base     = 0x10001000 // transport i is at Base + i*Stride
	Stride   = 0x1000
	Size     = 0x1000
	Count    = 8
	IRQBase  = 1 // transport i raises PLIC source IRQBase + i
	MaxQueue = 256
	// MaxQueues bounds how many queues a backend may have.
	MaxQueues = 8
)

// Identification values (those of QEMU).
const (
	MagicValue = 0x74726976 // "virt"
	Version    = 2
	VendorID   = 0x554D4551 // "QEMU"
)

// Register offsets.
const (
	RegMagic           = 0x000
	RegVersion         = 0x004
	RegDeviceID        = 0x008
	RegVendorID        = 0x00c
	RegDeviceFeatures  = 0x010
	RegDeviceFeatSel   = 0x014
	RegDriverFeatures  = 0x020
	RegDriverFeatSel   = 0x024
	RegQueueSel        = 0x030
	RegQueueNumMax     = 0x034
	RegQueueNum        = 0x038
	RegQueueReady      = 0x044
	RegQueueNotify     = 0x050
	RegInterruptStatus = 0x060
	RegInterruptACK    = 0x064
	RegStatus          = 0x070
	RegQueueDescLow    = 0x080
	RegQueueDescHigh   = 0x084
	RegQueueDriverLow  = 0x090
	RegQueueDriverHigh = 0x094
	RegQueueDeviceLow  = 0x0a0
	RegQueueDeviceHigh = 0x0a4
	RegConfigGen       = 0x0fc
	RegConfig          = 0x100
)

// Device status bits.
const (
	StatusAcknowledge      = 1
	StatusDriver           = 2
	StatusDriverOK         = 4
	StatusFeaturesOK       = 8
	StatusDeviceNeedsReset = 0x40
	StatusFailed           = 0x80
)

// Interrupt status bits.
const (
	IntUsedBuffer   = 1
	IntConfigChange = 2
)

// Feature bits the transport knows.
const (
	FeatureIndirectDesc = 1 << 28
	FeatureEventIdx     = 1 << 29
	FeatureVersion1     = 1 << 32
)

// Split-ring flags.
const (
	DescFNext     = 1
	DescFWrite    = 2
	DescFIndirect = 4

	AvailFNoInterrupt = 1
)

// Backend is a virtio device behind a Transport.
type Backend interface {
	// DeviceID is the virtio device type (1 = network).
	DeviceID() uint32
	// Features are the device-specific feature bits offered; the transport
	// adds VIRTIO_F_VERSION_1 and never offers indirect descriptors or
	// EVENT_IDX.
	Features() uint64
	// NumQueues is the number of virtqueues, at most MaxQueues.
	NumQueues() int
	// ConfigSize is the size of the config space in bytes.
	ConfigSize() int
	// ConfigRead reads size (1, 2 or 4) bytes at off; off+size <= ConfigSize.
	ConfigRead(off int, size int) uint32
	// ConfigWrite writes size bytes at off; off+size <= ConfigSize.
	ConfigWrite(off int, size int, val uint32)
	// QueueNotify processes queue q: the driver notified it, or the device
	// just became live (called then for every ready queue). Only called
	// while the transport is Live and the queue ready.
	QueueNotify(q int)
	// Reset returns the backend to its reset state (driver wrote status 0).
	Reset()
	// Save and Restore cover the backend's own state.
	Save(w *snap.Writer)
	Restore(r *snap.Reader) error
}

type queue struct {
	num       uint32
	ready     bool
	desc      uint64
	avail     uint64
	used      uint64
	lastAvail uint16
	usedIdx   uint16
}

// Transport is one virtio-mmio register window.
type Transport struct {
	ram    dev.RAM
	irq    dev.IRQSink
	source int
	be     Backend

	status      uint32
	devFeatSel  uint32
	drvFeatSel  uint32
	drvFeatures uint64
	features    uint64 // negotiated (valid once FEATURES_OK is set)
	queueSel    uint32
	queues      []queue
	isr         uint32
	configGen   uint32
	errors      uint64 // times the device entered NEEDS_RESET

	irqLevel bool
	lastErr  string    // diagnostics only, not part of the state
	segs     []Segment // scratch for Pop
}

// NewTransport returns a transport over backend (nil for an empty slot)
// raising PLIC source on irq. The backend must have been built to call back
// into this transport (see Net for how).
func NewTransport(ram dev.RAM, irq dev.IRQSink, source int, backend Backend) *Transport {
	t := &Transport{ram: ram, irq: irq, source: source, be: backend}
	if backend != nil {
		n := backend.NumQueues()
		if n < 0 {
			n = 0
		}
		if n > MaxQueues {
			n = MaxQueues
		}
		t.queues = make([]queue, n)
	}
	return t
}

// Empty returns a transport with no backend: it reads as DeviceID 0 with the
// magic, version and vendor of QEMU's empty slots, everything else zero.
func Empty() *Transport { return NewTransport(dev.RAM{}, nil, 0, nil) }

// Status returns the device status register.
func (t *Transport) Status() uint32 { return t.status }

// Live reports whether the driver has set DRIVER_OK after a successful
// feature negotiation and the device has not failed.
func (t *Transport) Live() bool {
	return t.be != nil && t.status&(StatusDriverOK|StatusFeaturesOK) == StatusDriverOK|StatusFeaturesOK &&
		t.status&StatusDeviceNeedsReset == 0
}

// Broken reports whether the device is in DEVICE_NEEDS_RESET.
func (t *Transport) Broken() bool { return t.status&StatusDeviceNeedsReset != 0 }

// LastError describes why the device last entered NEEDS_RESET.
func (t *Transport) LastError() string { return t.lastErr }

// Errors counts how often the device entered NEEDS_RESET.
func (t *Transport) Errors() uint64 { return t.errors }

// Features returns the negotiated feature bits (0 before FEATURES_OK).
func (t *Transport) Features() uint64 {
	if t.status&StatusFeaturesOK == 0 {
		return 0
	}
	return t.features
}

func (t *Transport) offered() uint64 {
	if t.be == nil {
		return 0
	}
	return t.be.Features()&^(FeatureIndirectDesc|FeatureEventIdx) | FeatureVersion1
}

// Fail puts the device in DEVICE_NEEDS_RESET and raises a configuration
// change interrupt. Backends call it on malformed rings.
func (t *Transport) Fail(reason string) {
	if t.Broken() {
		return
	}
	t.lastErr = reason
	t.errors++
	t.status |= StatusDeviceNeedsReset
	t.isr |= IntConfigChange
	t.updateIRQ()
}

// ConfigChanged bumps the config generation and raises a configuration
// change interrupt (for backends whose config space changes).
func (t *Transport) ConfigChanged() {
	t.configGen++
	if t.status&StatusDriverOK != 0 {
		t.isr |= IntConfigChange
		t.updateIRQ()
	}
}

func (t *Transport) updateIRQ() {
	level := t.isr != 0
	if level != t.irqLevel {
		t.irqLevel = level
		if t.irq != nil {
			t.irq.SetLevel(t.source, level)
		}
	}
}

func (t *Transport) reset() {
	t.status, t.devFeatSel, t.drvFeatSel = 0, 0, 0
	t.drvFeatures, t.features, t.queueSel = 0, 0, 0
	for i := range t.queues {
		t.queues[i] = queue{}
	}
	t.isr = 0
	t.lastErr = ""
	t.updateIRQ()
	if t.be != nil {
		t.be.Reset()
	}
}

// Read implements dev.Device. Registers take aligned 32-bit accesses; as in
// QEMU other sizes and unknown offsets read 0. Config space takes 1, 2 and 4
// byte accesses and reads all-ones past its end.
func (t *Transport) Read(off uint64, size int) (uint64, bool) {
	if !validAccess(off, size) {
		return 0, false
	}
	if t.be == nil {
		if size != 4 {
			return 0, true
		}
		switch off {
		case RegMagic:
			return MagicValue, true
		case RegVersion:
			return Version, true
		case RegVendorID:
			return VendorID, true
		}
		return 0, true
	}
	if off >= RegConfig {
		return uint64(t.configRead(int(off-RegConfig), size)), true
	}
	if size != 4 || off%4 != 0 {
		return 0, true
	}
	var v uint32
	switch off {
	case RegMagic:
		v = MagicValue
	case RegVersion:
		v = Version
	case RegDeviceID:
		v = t.be.DeviceID()
	case RegVendorID:
		v = VendorID
	case RegDeviceFeatures:
		if t.devFeatSel < 2 {
			v = uint32(t.offered() >> (32 * t.devFeatSel))
		}
	case RegQueueNumMax:
		if q := t.selected(); q != nil {
			v = MaxQueue
		}
	case RegQueueReady:
		if q := t.selected(); q != nil && q.ready {
			v = 1
		}
	case RegInterruptStatus:
		v = t.isr
	case RegStatus:
		v = t.status
	case RegConfigGen:
		v = t.configGen
	}
	return uint64(v), true
}

func validAccess(off uint64, size int) bool {
	switch size {
	case 1, 2, 4, 8:
	default:
		return false
	}
	return off < Size && uint64(size) <= Size-off
}

func (t *Transport) selected() *queue {
	if t.queueSel < uint32(len(t.queues)) {
		return &t.queues[t.queueSel]
	}
	return nil
}

func (t *Transport) configRead(off, size int) uint32 {
	if size == 8 || off+size > t.be.ConfigSize() {
		if size >= 4 {
			return 0xFFFFFFFF
		}
		return 1<<(8*size) - 1
	}
	return t.be.ConfigRead(off, size)
}

// Write implements dev.Device.
func (t *Transport) Write(off uint64, size int, val uint64) bool {
	if !validAccess(off, size) {
		return false
	}
	if t.be == nil {
		return true
	}
	if off >= RegConfig {
		o := int(off - RegConfig)
		if size != 8 && o+size <= t.be.ConfigSize() {
			t.be.ConfigWrite(o, size, uint32(val))
		}
		return true
	}
	if size != 4 || off%4 != 0 {
		return true
	}
	v := uint32(val)
	switch off {
	case RegDeviceFeatSel:
		t.devFeatSel = v
	case RegDriverFeatures:
		if t.status&StatusFeaturesOK == 0 && t.drvFeatSel < 2 {
			shift := 32 * t.drvFeatSel
			t.drvFeatures = t.drvFeatures&^(0xFFFFFFFF<<shift) | uint64(v)<<shift
		}
	case RegDriverFeatSel:
		t.drvFeatSel = v
	case RegQueueSel:
		t.queueSel = v
	case RegQueueNum:
		if q := t.selected(); q != nil && !q.ready {
			q.num = v
		}
	case RegQueueReady:
		if q := t.selected(); q != nil {
			if v&1 == 0 {
				q.ready = false
			} else if !q.ready {
				t.enableQueue(q)
			}
		}
	case RegQueueNotify:
		if v < uint32(len(t.queues)) && t.Live() && t.queues[v].ready {
			t.be.QueueNotify(int(v))
		}
	case RegInterruptACK:
		t.isr &^= v
		t.updateIRQ()
	case RegStatus:
		t.writeStatus(v)
	case RegQueueDescLow, RegQueueDescHigh, RegQueueDriverLow, RegQueueDriverHigh,
		RegQueueDeviceLow, RegQueueDeviceHigh:
		q := t.selected()
		if q == nil || q.ready {
			break
		}
		p := map64(q, off)
		if off&4 == 0 {
			*p = *p&^0xFFFFFFFF | uint64(v)
		} else {
			*p = *p&0xFFFFFFFF | uint64(v)<<32
		}
	}
	return true
}

func map64(q *queue, off uint64) *uint64 {
	switch off &^ 4 {
	case RegQueueDescLow:
		return &q.desc
	case RegQueueDriverLow:
		return &q.avail
	}
	return &q.used
}

// ringsValid checks a queue's size and ring placement.
func (t *Transport) ringsValid(q *queue) bool {
	n := uint64(q.num)
	if n == 0 || n > MaxQueue || bits.OnesCount64(n) != 1 {
		return false
	}
	if q.desc%16 != 0 || q.avail%2 != 0 || q.used%4 != 0 {
		return false
	}
	_, ok1 := t.ram.Slice(q.desc, 16*n)
	_, ok2 := t.ram.Slice(q.avail, 6+2*n)
	_, ok3 := t.ram.Slice(q.used, 6+8*n)
	return ok1 && ok2 && ok3
}

func (t *Transport) enableQueue(q *queue) {
	if !t.ringsValid(q) {
		t.Fail("queue enabled with a bad size or rings outside RAM")
		return
	}
	q.ready = true
	q.lastAvail, q.usedIdx = 0, 0
}

func (t *Transport) writeStatus(v uint32) {
	if v == 0 {
		t.reset()
		return
	}
	v &= 0xFF &^ StatusDeviceNeedsReset
	old := t.status
	v |= old & (StatusDeviceNeedsReset | StatusFeaturesOK) // sticky until reset
	if v&StatusFeaturesOK != 0 && old&StatusFeaturesOK == 0 {
		f := t.drvFeatures
		if f&FeatureVersion1 != 0 && f&^t.offered() == 0 {
			t.features = f
		} else {
			v &^= StatusFeaturesOK // rejected: the driver sees the bit unset
		}
	}
	t.status = v
	if old&StatusDriverOK == 0 && t.Live() {
		for i := range t.queues {
			if t.queues[i].ready && t.Live() {
				t.be.QueueNotify(i)
			}
		}
	}
}

// Segment is one descriptor's buffer, aliasing guest RAM.
type Segment struct {
	Buf   []byte
	Write bool // device-writable
}

// Chain is one descriptor chain taken from an available ring. Segs is valid
// until the next Pop.
type Chain struct {
	Head uint16
	Segs []Segment
}

// Len returns the total length of the chain's buffers.
func (c Chain) Len() uint64 {
	var n uint64
	for _, s := range c.Segs {
		n += uint64(len(s.Buf))
	}
	return n
}

// Pending returns how many chains the driver has made available on queue q
// that the device has not taken yet (0 if the queue is not usable).
func (t *Transport) Pending(qi int) int {
	if !t.Live() || qi < 0 || qi >= len(t.queues) || !t.queues[qi].ready {
		return 0
	}
	q := &t.queues[qi]
	avail, ok := t.ram.Slice(q.avail, 6+2*uint64(q.num))
	if !ok {
		return 0
	}
	n := int(binary.LittleEndian.Uint16(avail[2:]) - q.lastAvail)
	if n > int(q.num) {
		return 0
	}
	return n
}

// Pop takes the next available chain of queue qi. ok is false when there is
// none, the queue is not usable, or the ring is malformed (then the device
// has entered NEEDS_RESET). Every segment lies inside RAM; device-readable
// segments precede device-writable ones.
func (t *Transport) Pop(qi int) (c Chain, ok bool) {
	if !t.Live() || qi < 0 || qi >= len(t.queues) || !t.queues[qi].ready {
		return Chain{}, false
	}
	q := &t.queues[qi]
	n := uint64(q.num)
	avail, ok1 := t.ram.Slice(q.avail, 6+2*n)
	descs, ok2 := t.ram.Slice(q.desc, 16*n)
	if !ok1 || !ok2 {
		t.Fail("ring outside RAM")
		return Chain{}, false
	}
	idx := binary.LittleEndian.Uint16(avail[2:])
	if idx == q.lastAvail {
		return Chain{}, false
	}
	if uint64(idx-q.lastAvail) > n {
		t.Fail("avail index ran ahead of the ring")
		return Chain{}, false
	}
	head := binary.LittleEndian.Uint16(avail[4+2*(uint64(q.lastAvail)%n):])
	if uint64(head) >= n {
		t.Fail("descriptor index out of range")
		return Chain{}, false
	}
	segs := t.segs[:0]
	i := uint64(head)
	sawWrite := false
	for count := uint64(0); ; count++ {
		if count >= n {
			t.Fail("descriptor chain longer than the queue")
			return Chain{}, false
		}
		d := descs[16*i : 16*i+16]
		addr := binary.LittleEndian.Uint64(d[0:])
		length := binary.LittleEndian.Uint32(d[8:])
		flags := binary.LittleEndian.Uint16(d[12:])
		next := binary.LittleEndian.Uint16(d[14:])
		if flags&DescFIndirect != 0 {
			t.Fail("indirect descriptor not negotiated")
			return Chain{}, false
		}
		buf, ok := t.ram.Slice(addr, uint64(length))
		if !ok {
			t.Fail("buffer outside RAM")
			return Chain{}, false
		}
		w := flags&DescFWrite != 0
		if sawWrite && !w {
			t.Fail("device-readable descriptor after a device-writable one")
			return Chain{}, false
		}
		sawWrite = sawWrite || w
		segs = append(segs, Segment{Buf: buf, Write: w})
		if flags&DescFNext == 0 {
			break
		}
		if uint64(next) >= n {
			t.Fail("descriptor index out of range")
			return Chain{}, false
		}
		i = uint64(next)
	}
	t.segs = segs
	q.lastAvail++
	return Chain{Head: head, Segs: segs}, true
}

// Push returns chain head to the used ring of queue qi with written bytes
// written. It does not interrupt; call Interrupt after a batch.
func (t *Transport) Push(qi int, head uint16, written uint32) {
	if qi < 0 || qi >= len(t.queues) || !t.queues[qi].ready || t.Broken() {
		return
	}
	q := &t.queues[qi]
	n := uint64(q.num)
	used, ok := t.ram.Slice(q.used, 6+8*n)
	if !ok {
		t.Fail("ring outside RAM")
		return
	}
	e := used[4+8*(uint64(q.usedIdx)%n):]
	binary.LittleEndian.PutUint32(e[0:], uint32(head))
	binary.LittleEndian.PutUint32(e[4:], written)
	q.usedIdx++
	binary.LittleEndian.PutUint16(used[2:], q.usedIdx)
}

// Interrupt raises the used-buffer interrupt for queue qi unless the driver
// suppressed it with VIRTQ_AVAIL_F_NO_INTERRUPT.
func (t *Transport) Interrupt(qi int) {
	if qi < 0 || qi >= len(t.queues) || !t.queues[qi].ready {
		return
	}
	q := &t.queues[qi]
	avail, ok := t.ram.Slice(q.avail, 2)
	if !ok || binary.LittleEndian.Uint16(avail)&AvailFNoInterrupt != 0 {
		return
	}
	t.isr |= IntUsedBuffer
	t.updateIRQ()
}

// QueueSize returns the driver-set size of queue qi (0 if not ready).
func (t *Transport) QueueSize(qi int) int {
	if qi < 0 || qi >= len(t.queues) || !t.queues[qi].ready {
		return 0
	}
	return int(t.queues[qi].num)
}
