package rv64

import (
	"errors"
	"fmt"
	"strconv"

	"ftbox/guestvm/snap"
)

// stateVersion numbers the layout Save writes. 1 added the f registers and
// fcsr; a snapshot from before then has x0 (zero) where the version is, so
// it is refused rather than misread. 2: 16 PMP entries (was 64) and the
// debug trigger CSRs.
const stateVersion = 2

// Save writes the hart's whole architectural state (everything but RAM):
// x and f registers, PC, privilege, CSRs, instruction count, counter offsets
// and the LR reservation. Decode caches and TLBs are not state.
func (c *CPU) Save(w *snap.Writer) {
	w.Tag("rv64")
	w.U32(stateVersion)
	for i := 0; i < 32; i++ {
		w.U64(c.x[i])
	}
	for _, v := range c.f {
		w.U64(v)
	}
	w.U64(c.pc)
	w.U8(c.priv)
	w.U64(c.icount + c.cur)
	for _, v := range c.csrState() {
		w.U64(*v)
	}
	for _, v := range c.hpmcounter {
		w.U64(v)
	}
	for _, v := range c.hpmevent {
		w.U64(v)
	}
	w.Raw(c.pmpcfg[:])
	for _, v := range c.pmpaddr {
		w.U64(v)
	}
	w.U64(c.tselect)
	for i := range c.tdata1 {
		w.U64(c.tdata1[i])
		w.U64(c.tdata2[i])
	}
}

// Restore reads what Save wrote and flushes decode caches and TLBs.
func (c *CPU) Restore(r *snap.Reader) error {
	r.Tag("rv64")
	if v := r.U32(); r.Err() == nil && v != stateVersion {
		return fmt.Errorf("restore rv64: CPU state version %d, this build reads only version %d", v, stateVersion)
	}
	var x, f [32]uint64
	for i := range x {
		x[i] = r.U64()
	}
	for i := range f {
		f[i] = r.U64()
	}
	pc := r.U64()
	priv := r.U8()
	icount := r.U64()
	var n CPU
	for i, v := range n.csrState() {
		*v = r.U64()
		_ = i
	}
	for i := range n.hpmcounter {
		n.hpmcounter[i] = r.U64()
	}
	for i := range n.hpmevent {
		n.hpmevent[i] = r.U64()
	}
	r.Raw(n.pmpcfg[:])
	for i := range n.pmpaddr {
		n.pmpaddr[i] = r.U64()
	}
	n.tselect = r.U64()
	for i := range n.tdata1 {
		n.tdata1[i] = r.U64()
		n.tdata2[i] = r.U64()
	}
	if err := r.Err(); err != nil {
		return errors.Join(errors.New("restore rv64"), err)
	}
	if priv != PrivU && priv != PrivS && priv != PrivM {
		return errors.New("restore rv64: bad privilege " + strconv.Itoa(int(priv)))
	}
	if n.fcsr > 0xff {
		return errors.New("restore rv64: bad fcsr")
	}
	if x[0] != 0 {
		return errors.New("restore rv64: x0 is not zero")
	}
	if n.tselect >= trigCount {
		return errors.New("restore rv64: bad tselect")
	}
	for _, t := range n.tdata1 {
		if tdata1WARL(0, t) != t {
			return errors.New("restore rv64: bad tdata1")
		}
	}
	c.Reset(pc)
	copy(c.x[:32], x[:])
	c.f = f
	c.priv = priv
	c.icount = icount
	src, dst := n.csrState(), c.csrState()
	for i := range src {
		*dst[i] = *src[i]
	}
	c.hpmcounter, c.hpmevent, c.pmpcfg, c.pmpaddr = n.hpmcounter, n.hpmevent, n.pmpcfg, n.pmpaddr
	c.tselect, c.tdata1, c.tdata2 = n.tselect, n.tdata1, n.tdata2
	c.pmpUpdate() // flushes the TLBs
	c.updateMMU()
	return nil
}

// csrState lists the scalar state Save writes, in order.
func (c *CPU) csrState() []*uint64 {
	return []*uint64{
		&c.mstatus, &c.medeleg, &c.mideleg, &c.mie, &c.swip, &c.hwip,
		&c.mtvec, &c.mscratch, &c.mepc, &c.mcause, &c.mtval, &c.mcounteren,
		&c.menvcfg, &c.mcountinhibit, &c.cycleOff, &c.instretOff, &c.cycleHeld,
		&c.instretHeld, &c.stvec, &c.sscratch, &c.sepc, &c.scause, &c.stval,
		&c.satp, &c.scounteren, &c.senvcfg, &c.resAddr, &c.resVal, &c.fcsr,
	}
}
