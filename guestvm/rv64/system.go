package rv64

// system executes SYSTEM, CSR and fence instructions (the out-of-line
// part of the dispatch loop). c.pc is the instruction's address; on return
// it is the next PC or a trap vector.
func (c *CPU) system(in *inst) {
	next := c.pc + uint64(in.len)
	switch in.op {
	case opECALL:
		cause := uint64(excEcallU)
		switch c.priv {
		case PrivS:
			cause = excEcallS
		case PrivM:
			cause = excEcallM
		}
		c.trap(cause, 0)
		return
	case opEBREAK:
		c.trap(excBreakpoint, 0) // QEMU 7.2 leaves mtval 0
		return
	case opMRET:
		if c.priv != PrivM {
			break
		}
		// QEMU 7.2: an mret to S or U with no PMP entry set is illegal
		// (the spec lets it return, to fault on the first fetch).
		if c.pmpRules == 0 && c.mstatus&msMPP != msMPP {
			break
		}
		c.mret()
		return
	case opSRET:
		if c.priv == PrivU || (c.priv == PrivS && c.mstatus&msTSR != 0) {
			break
		}
		c.sret()
		return
	case opSFENCE:
		if c.priv == PrivU || (c.priv == PrivS && c.mstatus&msTVM != 0) {
			break
		}
		c.flushTLB()
		c.pc = next
		return
	case opFENCEI:
		c.flushCode()
		c.pc = next
		return
	case opCSRRW, opCSRRS, opCSRRC, opCSRRWI, opCSRRSI, opCSRRCI:
		if c.csrOp(in) {
			c.pc = next
			return
		}
	}
	c.trap(excIllegal, in.raw())
}

// csrOp performs a Zicsr instruction and reports false when it is illegal.
func (c *CPU) csrOp(in *inst) bool {
	num := uint16(in.imm>>20) & 0xfff
	var src uint64
	if in.op >= opCSRRWI {
		src = uint64(in.rs1) // zimm
	} else {
		src = c.x[in.rs1&31]
	}
	write := true
	switch in.op {
	case opCSRRS, opCSRRC, opCSRRSI, opCSRRCI:
		write = in.rs1 != 0
	}
	if !c.csrAccessOK(num, write) {
		return false
	}
	old, ok := c.csrRead(num)
	if !ok {
		return false
	}
	if write {
		v := src
		switch in.op {
		case opCSRRS, opCSRRSI:
			v = old | src
		case opCSRRC, opCSRRCI:
			v = old &^ src
		}
		c.csrWrite(num, v)
	}
	c.x[in.rd&63] = old
	return true
}

// amo executes LR, SC and the AMOs. Like QEMU 7.2: a misaligned address
// raises a load-address-misaligned exception (cause 4) for all of them; the
// reservation is an address plus the loaded value, and SC succeeds when the
// address matches and memory still holds that value; SC to any other
// address fails without touching memory.
func (c *CPU) amo(in *inst) {
	size := 4
	if in.op == opAMOD {
		size = 8
	}
	va := c.x[in.rs1&31]
	fn := in.imm
	next := c.pc + 4
	sx := func(v uint64) uint64 {
		if size == 4 {
			return uint64(int64(int32(v)))
		}
		return v
	}
	if fn == amoSC && va != c.resAddr {
		c.resAddr = noTag
		c.x[in.rd&63] = 1
		c.pc = next
		return
	}
	if va&uint64(size-1) != 0 {
		c.trap(excLoadMisaligned, va)
		return
	}
	acc := accStore
	if fn == amoLR {
		acc = accLoad
	}
	pa, cause, ok := c.translateFor(va, acc, uint64(size))
	if !ok {
		c.trap(cause, va)
		return
	}
	old, ok := c.physRead(pa, size)
	if !ok {
		c.trap(excLoadAccess, va) // QEMU reads first, even for AMOs
		return
	}
	old = sx(old)
	switch fn {
	case amoLR:
		c.resAddr, c.resVal = va, old
		c.x[in.rd&63] = old
		c.pc = next
		return
	case amoSC:
		r := uint64(1)
		if old == c.resVal {
			if !c.physWrite(pa, size, c.x[in.rs2&31]) {
				c.trap(excStoreAccess, va)
				return
			}
			r = 0
		}
		c.resAddr = noTag
		c.x[in.rd&63] = r
		c.pc = next
		return
	}
	src := sx(c.x[in.rs2&31])
	var v uint64
	switch fn {
	case amoSWAP:
		v = src
	case amoADD:
		v = old + src
	case amoXOR:
		v = old ^ src
	case amoAND:
		v = old & src
	case amoOR:
		v = old | src
	case amoMIN:
		v = old
		if int64(src) < int64(old) {
			v = src
		}
	case amoMAX:
		v = old
		if int64(src) > int64(old) {
			v = src
		}
	case amoMINU:
		v = old
		if cmpU(src, old, size) < 0 {
			v = src
		}
	case amoMAXU:
		v = old
		if cmpU(src, old, size) > 0 {
			v = src
		}
	}
	if !c.physWrite(pa, size, v) {
		c.trap(excStoreAccess, va)
		return
	}
	c.x[in.rd&63] = old
	c.pc = next
}

// cmpU compares the low size bytes of a and b as unsigned numbers.
func cmpU(a, b uint64, size int) int {
	if size == 4 {
		a, b = uint64(uint32(a)), uint64(uint32(b))
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
