package uart

import (
	"fmt"

	"ftbox/guestvm/snap"
)

// Save implements dev.Device.
func (u *UART) Save(w *snap.Writer) {
	w.Tag("uart/v1")
	w.U16(u.divider)
	for _, b := range []byte{u.rbr, u.ier, u.iir, u.lcr, u.mcr, u.lsr, u.msr, u.scr, u.fcr} {
		w.U8(b)
	}
	w.Bool(u.thrPending)
	w.Bool(u.irqLevel)
	// FIFO contents oldest first, so the layout is canonical.
	w.U8(uint8(u.count))
	for i := 0; i < u.count; i++ {
		w.U8(u.fifo[(u.head+i)%FIFOSize])
	}
}

// Restore implements dev.Device. Impossible register values are rejected
// and leave the UART unchanged.
func (u *UART) Restore(r *snap.Reader) error {
	r.Tag("uart/v1")
	n := UART{irq: u.irq, source: u.source, out: u.out}
	n.divider = r.U16()
	for _, p := range []*byte{&n.rbr, &n.ier, &n.iir, &n.lcr, &n.mcr, &n.lsr, &n.msr, &n.scr, &n.fcr} {
		*p = r.U8()
	}
	n.thrPending = r.Bool()
	irqLevel := r.Bool()
	n.count = int(r.U8())
	if n.count > FIFOSize {
		return fmt.Errorf("uart: receive FIFO holds %d bytes, more than %d", n.count, FIFOSize)
	}
	for i := 0; i < n.count; i++ {
		n.fifo[i] = r.U8()
	}
	if err := r.Err(); err != nil {
		return err
	}
	switch {
	case n.ier&^0x0F != 0:
		return fmt.Errorf("uart: impossible IER %#x", n.ier)
	case n.mcr&^0x1F != 0:
		return fmt.Errorf("uart: impossible MCR %#x", n.mcr)
	case n.fcr&^0xC9 != 0:
		return fmt.Errorf("uart: impossible FCR %#x", n.fcr)
	case n.fcr&fcrFE == 0 && n.count != 0:
		return fmt.Errorf("uart: %d bytes in a disabled FIFO", n.count)
	case n.fcr&fcrFE != 0 && (n.count > 0) != (n.lsr&lsrDR != 0):
		return fmt.Errorf("uart: LSR.DR %#x disagrees with FIFO count %d", n.lsr, n.count)
	case n.iir&0x30 != 0 || (n.iir&0xC0 != 0) != (n.fcr&fcrFE != 0):
		return fmt.Errorf("uart: impossible IIR %#x for FCR %#x", n.iir, n.fcr)
	}
	n.itl = [4]int{1, 4, 8, 14}[n.fcr>>6]
	n.irqLevel = irqLevel
	*u = n
	u.updateIRQ()
	u.irq.SetLevel(u.source, u.irqLevel)
	return nil
}
