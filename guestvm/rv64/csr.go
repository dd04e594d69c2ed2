package rv64

// CSR numbers.
const (
	csrFflags = 0x001
	csrFrm    = 0x002
	csrFcsr   = 0x003

	csrSstatus    = 0x100
	csrSie        = 0x104
	csrStvec      = 0x105
	csrScounteren = 0x106
	csrSenvcfg    = 0x10a
	csrSscratch   = 0x140
	csrSepc       = 0x141
	csrScause     = 0x142
	csrStval      = 0x143
	csrSip        = 0x144
	csrSatp       = 0x180

	csrMstatus       = 0x300
	csrMisa          = 0x301
	csrMedeleg       = 0x302
	csrMideleg       = 0x303
	csrMie           = 0x304
	csrMtvec         = 0x305
	csrMcounteren    = 0x306
	csrMenvcfg       = 0x30a
	csrMcountinhibit = 0x320
	csrMhpmevent3    = 0x323
	csrMscratch      = 0x340
	csrMepc          = 0x341
	csrMcause        = 0x342
	csrMtval         = 0x343
	csrMip           = 0x344
	csrPmpcfg0       = 0x3a0
	csrPmpcfg2       = 0x3a2
	csrPmpaddr0      = 0x3b0
	csrPmpaddrLast   = csrPmpaddr0 + pmpCount - 1
	csrTselect       = 0x7a0
	csrTdata1        = 0x7a1
	csrTdata2        = 0x7a2
	csrTdata3        = 0x7a3
	csrTinfo         = 0x7a4

	csrMcycle       = 0xb00
	csrMinstret     = 0xb02
	csrMhpmcounter3 = 0xb03

	csrCycle        = 0xc00
	csrTime         = 0xc01
	csrInstret      = 0xc02
	csrHpmcounter3  = 0xc03
	csrMvendorid    = 0xf11
	csrMarchid      = 0xf12
	csrMimpid       = 0xf13
	csrMhartid      = 0xf14
	csrMconfigptr   = 0xf15
	csrHpmcounter31 = 0xc1f

	// QEMU 7.2 implements 16 programmable counters (pmu-num=16):
	// mhpmcounter3..18 exist, 19..31 are illegal; mhpmevent3..31 all exist.
	csrMhpmcounterLast = 0xb12
	csrHpmcounterLast  = 0xc12
)

// mstatus fields.
const (
	msSIE  = 1 << 1
	msMIE  = 1 << 3
	msSPIE = 1 << 5
	msMPIE = 1 << 7
	msSPP  = 1 << 8
	msVS   = 3 << 9
	msMPP  = 3 << 11
	msFS   = 3 << 13
	msXS   = 3 << 15
	msMPRV = 1 << 17
	msSUM  = 1 << 18
	msMXR  = 1 << 19
	msTVM  = 1 << 20
	msTW   = 1 << 21
	msTSR  = 1 << 22
	msUXL  = 3 << 32
	msSXL  = 3 << 34
	msGVA  = 1 << 38
	msMPV  = 1 << 39
	msSD   = 1 << 63

	// Writable bits, as QEMU 7.2 (-cpu rv64,h=false): VS, GVA and MPV are
	// plain storage there, so they are here too.
	mstatusMask = msSIE | msMIE | msSPIE | msMPIE | msSPP | msVS | msFS | msMPP | msMPRV |
		msSUM | msMXR | msTVM | msTW | msTSR | msGVA | msMPV
	sstatusMask = msSIE | msSPIE | msSPP | msVS | msFS | msXS | msSUM | msMXR | msUXL | msSD
)

// Interrupt bits and the WARL masks QEMU 7.2 uses for them.
const (
	irqSSI  = 1
	irqMSI  = 3
	irqSTI  = 5
	irqMTI  = 7
	irqSEI  = 9
	irqMEI  = 11
	sModeIP = 1<<irqSSI | 1<<irqSTI | 1<<irqSEI | 1<<13 // S_MODE_INTERRUPTS incl. LCOFI

	hwIRQMask   = 1<<irqMSI | 1<<irqMTI | 1<<irqSEI | 1<<irqMEI
	mieMask     = 0x2eee
	mipMask     = 0x2666 // software-writable mip bits
	midelegMask = 0x2666
	medelegMask = 0xf0bfff
	menvcfgMask = 0xc0000000000000f1
	senvcfgMask = 0xf1
)

// CSR returns a CSR's value as the guest would read it in M-mode, without
// side effects; ok=false for CSRs that do not exist.
func (c *CPU) CSR(num uint16) (uint64, bool) {
	return c.csrRead(num)
}

// counter returns mcycle/minstret-style values.
func (c *CPU) cycle() uint64 {
	if c.mcountinhibit&1 != 0 {
		return c.cycleHeld
	}
	return c.icount + c.cycleOff
}

func (c *CPU) instret() uint64 {
	if c.mcountinhibit&4 != 0 {
		return c.instretHeld
	}
	return c.icount + c.instretOff
}

func (c *CPU) readMstatus() uint64 {
	v := c.mstatus
	if v&msVS == msVS || v&msFS == msFS || v&msXS == msXS {
		v |= msSD
	}
	return v
}

// csrRead reads a CSR with no privilege check. Counters read the count of
// instructions retired before the executing one.
func (c *CPU) csrRead(num uint16) (uint64, bool) {
	switch num {
	case csrFflags:
		return c.fcsr & 0x1f, true
	case csrFrm:
		return c.fcsr >> 5, true
	case csrFcsr:
		return c.fcsr, true
	case csrSstatus:
		return c.readMstatus() & sstatusMask, true
	case csrSie:
		return c.mie & c.mideleg & sModeIP, true
	case csrStvec:
		return c.stvec, true
	case csrScounteren:
		return c.scounteren, true
	case csrSenvcfg:
		return c.senvcfg, true
	case csrSscratch:
		return c.sscratch, true
	case csrSepc:
		return c.sepc, true
	case csrScause:
		return c.scause, true
	case csrStval:
		return c.stval, true
	case csrSip:
		return c.mip() & c.mideleg & sModeIP, true
	case csrSatp:
		return c.satp, true
	case csrMstatus:
		return c.readMstatus(), true
	case csrMisa:
		return misaValue, true
	case csrMedeleg:
		return c.medeleg, true
	case csrMideleg:
		return c.mideleg, true
	case csrMie:
		return c.mie, true
	case csrMtvec:
		return c.mtvec, true
	case csrMcounteren:
		return c.mcounteren, true
	case csrMenvcfg:
		return c.menvcfg, true
	case csrMcountinhibit:
		return c.mcountinhibit, true
	case csrMscratch:
		return c.mscratch, true
	case csrMepc:
		return c.mepc, true
	case csrMcause:
		return c.mcause, true
	case csrMtval:
		return c.mtval, true
	case csrMip:
		return c.mip(), true
	case csrMcycle, csrCycle:
		return c.cycle(), true
	case csrMinstret, csrInstret:
		return c.instret(), true
	case csrTime:
		if c.timeSrc != nil {
			return c.timeSrc(), true
		}
		return c.ICount(), true
	case csrMvendorid, csrMarchid, csrMimpid, csrMhartid, csrMconfigptr:
		return 0, true
	case csrTselect:
		return c.tselect, true
	case csrTdata1:
		return c.tdata1[c.tselect], true
	case csrTdata2:
		return c.tdata2[c.tselect], true
	case csrTdata3:
		return 0, true
	case csrTinfo:
		return 1<<2 | 1<<6, true // types 2 and 6
	}
	switch {
	case num >= csrMhpmevent3 && num <= 0x33f:
		return c.hpmevent[num-csrMhpmevent3], true
	case num >= csrMhpmcounter3 && num <= csrMhpmcounterLast:
		return c.hpmcounter[num-csrMhpmcounter3], true
	case num >= csrHpmcounter3 && num <= csrHpmcounterLast:
		return c.hpmcounter[num-csrHpmcounter3], true
	case num == csrPmpcfg0 || num == csrPmpcfg2: // odd ones do not exist on RV64
		i := int(num-csrPmpcfg0) * 4
		var v uint64
		for b := 0; b < 8; b++ {
			v |= uint64(c.pmpcfg[i+b]) << (8 * b)
		}
		return v, true
	case num >= csrPmpaddr0 && num <= csrPmpaddrLast:
		return c.pmpaddr[num-csrPmpaddr0], true
	}
	return 0, false
}

// csrAccessOK checks privilege, counter enables and TVM for an access.
func (c *CPU) csrAccessOK(num uint16, write bool) bool {
	if write && num>>10 == 3 {
		return false
	}
	if uint8((num>>8)&3) > c.priv {
		return false
	}
	switch {
	case num >= csrCycle && num <= csrHpmcounter31:
		bit := uint64(1) << (num - csrCycle)
		if c.priv < PrivM && c.mcounteren&bit == 0 {
			return false
		}
		if c.priv < PrivS && c.scounteren&bit == 0 {
			return false
		}
	case num == csrSatp:
		if c.priv == PrivS && c.mstatus&msTVM != 0 {
			return false
		}
	case num >= csrFflags && num <= csrFcsr:
		return c.fpOn()
	}
	return true
}

// csrWrite writes a CSR (existence and privilege already checked) and
// reports whether translation state may have changed.
func (c *CPU) csrWrite(num uint16, v uint64) {
	switch num {
	case csrFflags:
		c.fcsr = c.fcsr&^0x1f | v&0x1f
		c.fsDirty()
	case csrFrm:
		c.fcsr = c.fcsr&0x1f | (v&7)<<5
		c.fsDirty()
	case csrFcsr:
		c.fcsr = v & 0xff
		c.fsDirty()
	case csrSstatus:
		mask := uint64(sstatusMask)
		if v&msUXL == 0 {
			mask &^= msUXL
		}
		c.writeMstatus(c.mstatus&^mask | v&mask)
	case csrSie:
		m := c.mideleg & sModeIP
		c.mie = c.mie&^m | v&m
	case csrStvec:
		if v&3 < 2 {
			c.stvec = v
		}
	case csrScounteren:
		c.scounteren = v
	case csrSenvcfg:
		c.senvcfg = v & senvcfgMask
	case csrSscratch:
		c.sscratch = v
	case csrSepc:
		c.sepc = v
	case csrScause:
		c.scause = v
	case csrStval:
		c.stval = v
	case csrSip:
		m := c.mideleg & (1<<irqSSI | 1<<13) // SSIP and LCOFIP, as QEMU
		c.swip = c.swip&^m | v&m
	case csrSatp:
		switch v >> 60 {
		case 0, 8, 9, 10:
			if v != c.satp {
				c.satp = v
				c.flushTLB()
			}
		}
	case csrMstatus:
		c.writeMstatus(v)
	case csrMedeleg:
		c.medeleg = v & medelegMask
	case csrMideleg:
		c.mideleg = v & midelegMask
	case csrMie:
		c.mie = v & mieMask
	case csrMtvec:
		if v&3 < 2 {
			c.mtvec = v
		}
	case csrMcounteren:
		c.mcounteren = v
	case csrMenvcfg:
		c.menvcfg = v & menvcfgMask
	case csrMcountinhibit:
		// Freeze or thaw the counters at their current values.
		cy, ir := c.cycle(), c.instret()
		c.mcountinhibit = v
		c.setCycle(cy)
		c.setInstret(ir)
	case csrMscratch:
		c.mscratch = v
	case csrMepc:
		c.mepc = v
	case csrMcause:
		c.mcause = v
	case csrMtval:
		c.mtval = v
	case csrMip:
		c.swip = c.swip&^mipMask | v&mipMask
	case csrMcycle:
		c.setCycle(v)
	case csrMinstret:
		c.setInstret(v)
	case csrTselect:
		if v < trigCount {
			c.tselect = v
		}
	case csrTdata1:
		c.tdata1[c.tselect] = tdata1WARL(c.tdata1[c.tselect], v)
	case csrTdata2:
		c.tdata2[c.tselect] = v
	case csrTdata3, csrTinfo:
		// QEMU 7.2 ignores these writes
	default:
		switch {
		case num >= csrMhpmevent3 && num <= 0x33f:
			c.hpmevent[num-csrMhpmevent3] = v
		case num >= csrMhpmcounter3 && num <= csrMhpmcounterLast:
			c.hpmcounter[num-csrMhpmcounter3] = v
		case num == csrPmpcfg0 || num == csrPmpcfg2:
			i := int(num-csrPmpcfg0) * 4
			for b := 0; b < 8; b++ {
				if c.pmpcfg[i+b]&pmpL == 0 { // locked entries ignore writes
					c.pmpcfg[i+b] = uint8(v >> (8 * b))
				}
			}
			c.pmpUpdate()
		case num >= csrPmpaddr0 && num <= csrPmpaddrLast:
			i := int(num - csrPmpaddr0)
			locked := c.pmpcfg[i]&pmpL != 0
			if i+1 < pmpCount && c.pmpcfg[i+1]&(pmpL|pmpA) == pmpL|pmpTOR { // next entry is locked TOR
				locked = true
			}
			if !locked {
				c.pmpaddr[i] = v
				c.pmpUpdate()
			}
		}
	}
}

// setCycle makes the next read of mcycle return v (a write replaces the
// writing instruction's own increment).
func (c *CPU) setCycle(v uint64) {
	c.cycleHeld = v
	c.cycleOff = v - c.icount - c.cur
}

func (c *CPU) setInstret(v uint64) {
	c.instretHeld = v
	c.instretOff = v - c.icount - c.cur
}

func (c *CPU) writeMstatus(v uint64) {
	mask := uint64(mstatusMask)
	if v&msUXL != 0 { // QEMU 7.2 keeps UXL unless a nonzero value is written
		mask |= msUXL
	}
	old := c.mstatus
	c.mstatus = (old&^mask | v&mask) &^ msSD
	c.mstatus = c.mstatus&^msSXL | 2<<34
	if (old^c.mstatus)&(msSUM|msMXR) != 0 {
		// Permissions changed: S-mode entries depend on SUM, loads on MXR.
		flushSet(&c.tlbs[1].r)
		flushSet(&c.tlbs[1].w)
		flushSet(&c.tlbs[0].r)
	}
	c.updateMMU()
}

// Debug triggers: QEMU 7.2 has two (tselect 0..1), of types 2 (mcontrol)
// and 6 (mcontrol6); a trigger resets to an empty type 2. Here they are the
// CSR state only, with QEMU's WARL behaviour: the triggers never fire (QEMU
// raises breakpoint exceptions for address matches).
const (
	trigCount = 2
	trigType2 = 2 << 60
	trigType6 = 6 << 60
)

// tdata1WARL returns tdata1 after writing v, as QEMU 7.2 does: a write of type
// 2 or 6 replaces the trigger with one keeping the mode and access bits
// (load, store, execute, U, S, M; type 6 also VU and VS) and a supported size
// (any, 1, 2, 4 or 8 bytes), dropping dmode, match, chain, action, timing,
// select and hit; other types are ignored. (QEMU 7.2 aborts on writes of
// type 1 or 8..14.)
func tdata1WARL(old, v uint64) uint64 {
	const keep = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<6
	switch v >> 60 {
	case 2:
		n := uint64(trigType2) | v&keep
		if size := (v>>21&3)<<2 | v>>16&3; size <= 3 || size == 5 {
			n |= v & (3<<16 | 3<<21)
		}
		return n
	case 6:
		n := uint64(trigType6) | v&(keep|1<<23|1<<24)
		if size := v >> 16 & 0xf; size <= 3 || size == 5 {
			n |= v & (0xf << 16)
		}
		return n
	}
	return old
}
