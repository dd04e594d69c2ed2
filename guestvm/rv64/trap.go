package rv64

import "math/bits"

// Exception causes.
const (
	excInstMisaligned  = 0
	excInstAccess      = 1
	excIllegal         = 2
	excBreakpoint      = 3
	excLoadMisaligned  = 4
	excLoadAccess      = 5
	excStoreMisaligned = 6
	excStoreAccess     = 7
	excEcallU          = 8
	excEcallS          = 9
	excEcallM          = 11
	excInstPage        = 12
	excLoadPage        = 13
	excStorePage       = 15
)

const interruptBit = 1 << 63

// trap takes an exception (or, with interruptBit in cause, an interrupt) at
// c.pc, which must be the faulting instruction (or the next one to execute).
func (c *CPU) trap(cause, tval uint64) {
	deleg := c.medeleg
	if cause&interruptBit != 0 {
		deleg = c.mideleg
	}
	code := cause &^ interruptBit
	if c.priv <= PrivS && code < 64 && deleg>>code&1 != 0 {
		c.scause = cause
		c.sepc = c.pc
		c.stval = tval
		s := c.mstatus &^ (msSPP | msSPIE | msSIE)
		if c.mstatus&msSIE != 0 {
			s |= msSPIE
		}
		if c.priv == PrivS {
			s |= msSPP
		}
		c.mstatus = s
		c.pc = trapVector(c.stvec, cause)
		c.setPriv(PrivS)
	} else {
		c.mcause = cause
		c.mepc = c.pc
		c.mtval = tval
		s := c.mstatus &^ (msMPP | msMPIE | msMIE)
		if c.mstatus&msMIE != 0 {
			s |= msMPIE
		}
		s |= uint64(c.priv) << 11
		c.mstatus = s
		c.pc = trapVector(c.mtvec, cause)
		c.setPriv(PrivM)
	}
}

func trapVector(tvec, cause uint64) uint64 {
	base := tvec &^ 3
	if tvec&1 != 0 && cause&interruptBit != 0 {
		return base + 4*(cause&^interruptBit)
	}
	return base
}

// setPriv changes privilege. Like QEMU's riscv_cpu_set_mode it drops the LR
// reservation, so traps and xRETs always break an LR/SC pair.
func (c *CPU) setPriv(p uint8) {
	c.resAddr = noTag
	if p != c.priv {
		c.priv = p
	}
	c.updateMMU()
}

// pendingInterrupt returns the interrupt to take now, if any. QEMU 7.2
// (without AIA) takes M-level interrupts before S-level ones and, within a
// level, the lowest-numbered pending bit first (so MSI > MTI > MEI and
// SSI > STI > SEI), which is what the differential tests compare against.
func (c *CPU) pendingInterrupt() (uint64, bool) {
	pend := c.mip() & c.mie
	if pend == 0 {
		return 0, false
	}
	mEnabled := c.priv < PrivM || c.mstatus&msMIE != 0
	if m := pend &^ c.mideleg; m != 0 && mEnabled {
		return uint64(bits.TrailingZeros64(m)), true
	}
	sEnabled := c.priv < PrivS || (c.priv == PrivS && c.mstatus&msSIE != 0)
	if s := pend & c.mideleg; s != 0 && sEnabled {
		return uint64(bits.TrailingZeros64(s)), true
	}
	return 0, false
}

// takeInterrupt takes a pending, enabled interrupt and reports whether it did.
func (c *CPU) takeInterrupt() bool {
	irq, ok := c.pendingInterrupt()
	if !ok {
		return false
	}
	c.trap(interruptBit|irq, 0)
	return true
}

func (c *CPU) mret() {
	s := c.mstatus
	prev := uint8((s & msMPP) >> 11)
	if prev == 2 { // reserved MPP value (QEMU stores it); run as S
		prev = PrivS
	}
	s &^= msMIE | msMPP
	if c.mstatus&msMPIE != 0 {
		s |= msMIE
	}
	s |= msMPIE
	if prev != PrivM {
		s &^= msMPRV
	}
	c.mstatus = s
	c.pc = c.mepc &^ 1
	c.setPriv(prev)
}

func (c *CPU) sret() {
	s := c.mstatus
	prev := PrivU
	if s&msSPP != 0 {
		prev = PrivS
	}
	s &^= msSIE | msSPP | msMPRV
	if c.mstatus&msSPIE != 0 {
		s |= msSIE
	}
	s |= msSPIE
	c.mstatus = s
	c.pc = c.sepc &^ 1
	c.setPriv(prev)
}
