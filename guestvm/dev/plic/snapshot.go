package plic

import (
	"fmt"

	"ftbox/guestvm/snap"
)

// Save implements dev.Device.
func (p *PLIC) Save(w *snap.Writer) {
	w.Tag("plic/v1")
	for _, v := range p.priority {
		w.U32(v)
	}
	for i := 0; i < words; i++ {
		w.U32(p.level[i])
		w.U32(p.pending[i])
		w.U32(p.claimed[i])
	}
	for c := 0; c < NumContexts; c++ {
		for i := 0; i < words; i++ {
			w.U32(p.enable[c][i])
		}
		w.U32(p.threshold[c])
	}
}

// Restore implements dev.Device; impossible values (priorities above 7,
// bits for nonexistent sources, pending while in service or while the line
// is low) are rejected and leave the PLIC unchanged.
func (p *PLIC) Restore(r *snap.Reader) error {
	r.Tag("plic/v1")
	n := PLIC{cpu: p.cpu}
	for i := range n.priority {
		n.priority[i] = r.U32()
	}
	for i := 0; i < words; i++ {
		n.level[i] = r.U32()
		n.pending[i] = r.U32()
		n.claimed[i] = r.U32()
	}
	for c := 0; c < NumContexts; c++ {
		for i := 0; i < words; i++ {
			n.enable[c][i] = r.U32()
		}
		n.threshold[c] = r.U32()
	}
	if err := r.Err(); err != nil {
		return err
	}
	if n.priority[0] != 0 {
		return fmt.Errorf("plic: priority of source 0 is %d", n.priority[0])
	}
	for i, v := range n.priority {
		if v > MaxPriority {
			return fmt.Errorf("plic: priority %d of source %d exceeds %d", v, i, MaxPriority)
		}
	}
	for i := 0; i < words; i++ {
		bad := (n.level[i] | n.pending[i] | n.claimed[i]) &^ validMask[i]
		for c := 0; c < NumContexts; c++ {
			bad |= n.enable[c][i] &^ validMask[i]
		}
		if bad != 0 {
			return fmt.Errorf("plic: state word %d names nonexistent sources %#x", i, bad)
		}
		if n.pending[i]&n.claimed[i] != 0 || n.pending[i]&^n.level[i] != 0 {
			return fmt.Errorf("plic: pending bits %#x inconsistent with lines %#x / in service %#x",
				n.pending[i], n.level[i], n.claimed[i])
		}
	}
	for c, t := range n.threshold {
		if t > MaxPriority {
			return fmt.Errorf("plic: threshold %d of context %d exceeds %d", t, c, MaxPriority)
		}
	}
	*p = n
	p.update()
	return nil
}
