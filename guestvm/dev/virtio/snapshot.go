package virtio

import (
	"fmt"

	"ftbox/guestvm/snap"
)

// Save implements dev.Device: the transport's registers and queues, then the
// backend's state.
func (t *Transport) Save(w *snap.Writer) {
	w.Tag("virtio-mmio/v1")
	var id uint32
	if t.be != nil {
		id = t.be.DeviceID()
	}
	w.U32(id)
	w.U32(t.status)
	w.U32(t.devFeatSel)
	w.U32(t.drvFeatSel)
	w.U64(t.drvFeatures)
	w.U64(t.features)
	w.U32(t.queueSel)
	w.U32(t.isr)
	w.U32(t.configGen)
	w.U64(t.errors)
	w.Bool(t.irqLevel)
	w.U8(uint8(len(t.queues)))
	for i := range t.queues {
		q := &t.queues[i]
		w.U32(q.num)
		w.Bool(q.ready)
		w.U64(q.desc)
		w.U64(q.avail)
		w.U64(q.used)
		w.U16(q.lastAvail)
		w.U16(q.usedIdx)
	}
	if t.be != nil {
		t.be.Save(w)
	}
}

// Restore implements dev.Device. Impossible values (a different device,
// unknown status or interrupt bits, features never offered, a ready queue
// with bad rings) are rejected and leave the transport unchanged; a backend
// whose own Restore fails may be left partly restored.
func (t *Transport) Restore(r *snap.Reader) error {
	r.Tag("virtio-mmio/v1")
	n := *t
	n.queues = make([]queue, len(t.queues))
	id := r.U32()
	n.status = r.U32()
	n.devFeatSel = r.U32()
	n.drvFeatSel = r.U32()
	n.drvFeatures = r.U64()
	n.features = r.U64()
	n.queueSel = r.U32()
	n.isr = r.U32()
	n.configGen = r.U32()
	n.errors = r.U64()
	n.irqLevel = r.Bool()
	nq := int(r.U8())
	if err := r.Err(); err != nil {
		return err
	}
	var wantID uint32
	if t.be != nil {
		wantID = t.be.DeviceID()
	}
	switch {
	case id != wantID:
		return fmt.Errorf("virtio: snapshot of device %d restored into device %d", id, wantID)
	case nq != len(t.queues):
		return fmt.Errorf("virtio: snapshot has %d queues, device has %d", nq, len(t.queues))
	case n.status&^0xFF != 0:
		return fmt.Errorf("virtio: impossible status %#x", n.status)
	case n.isr&^(IntUsedBuffer|IntConfigChange) != 0:
		return fmt.Errorf("virtio: impossible interrupt status %#x", n.isr)
	case n.irqLevel != (n.isr != 0):
		return fmt.Errorf("virtio: interrupt line %v disagrees with status %#x", n.irqLevel, n.isr)
	case n.features&^t.offered() != 0 || (n.status&StatusFeaturesOK != 0 && n.features&FeatureVersion1 == 0):
		return fmt.Errorf("virtio: impossible negotiated features %#x", n.features)
	case t.be == nil && (n.status|n.isr|uint32(n.features)|uint32(n.drvFeatures)) != 0:
		return fmt.Errorf("virtio: state for an empty transport")
	}
	for i := range n.queues {
		q := &n.queues[i]
		q.num = r.U32()
		q.ready = r.Bool()
		q.desc = r.U64()
		q.avail = r.U64()
		q.used = r.U64()
		q.lastAvail = r.U16()
		q.usedIdx = r.U16()
		if err := r.Err(); err != nil {
			return err
		}
		if q.ready && !n.ringsValid(q) {
			return fmt.Errorf("virtio: ready queue %d with bad size %d or rings outside RAM", i, q.num)
		}
	}
	if t.be != nil {
		if err := t.be.Restore(r); err != nil {
			return err
		}
	}
	if err := r.Err(); err != nil {
		return err
	}
	n.segs = t.segs
	n.lastErr = ""
	*t = n
	if t.irq != nil {
		t.irq.SetLevel(t.source, t.irqLevel)
	}
	return nil
}
