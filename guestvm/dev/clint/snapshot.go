package clint

import (
	"ftbox/guestvm/dev"
	"ftbox/guestvm/snap"
)

// Save implements dev.Device.
func (c *CLINT) Save(w *snap.Writer) {
	w.Tag("clint/v1")
	w.Bool(c.msip)
	w.U64(c.mtimecmp)
	w.Bool(c.mtip)
}

// Restore implements dev.Device. It drives the CPU lines to the restored
// state (MSIP, and MTIP as last driven; the machine's next Update refreshes
// it from the clock).
func (c *CLINT) Restore(r *snap.Reader) error {
	r.Tag("clint/v1")
	msip := r.Bool()
	cmp := r.U64()
	mtip := r.Bool()
	if err := r.Err(); err != nil {
		return err
	}
	c.msip, c.mtimecmp, c.mtip = msip, cmp, mtip
	c.cpu.SetIRQ(dev.MSIP, c.msip)
	c.cpu.SetIRQ(dev.MTIP, c.mtip)
	return nil
}
