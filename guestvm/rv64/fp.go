package rv64

// The F and D extensions. FP instructions run out of line through step:
// opFP keeps the raw encoding in imm (mtval for illegal-instruction traps,
// and every field is decoded from it here); the loads and stores keep the
// raw encoding in the low 32 bits of imm and the offset in the high 32.
//
// Single-precision values live NaN-boxed in the 64-bit registers: written
// with the upper 32 bits all ones, and read as the canonical NaN when they
// are not (except by the moves and stores, which take the low bits as they
// are). Any write to an f register or to fflags sets mstatus.FS to Dirty;
// with FS Off every FP instruction and fflags/frm/fcsr access is illegal.

// fpOn reports whether mstatus.FS enables the FPU.
func (c *CPU) fpOn() bool { return c.mstatus&msFS != 0 }

func (c *CPU) fsDirty() { c.mstatus |= msFS }

// setF writes f register i and marks the FP state dirty.
func (c *CPU) setF(i uint32, v uint64) {
	c.f[i&31] = v
	c.fsDirty()
}

// accrue ORs exception flags into fflags.
func (c *CPU) accrue(fl uint8) {
	if fl != 0 {
		c.fcsr |= uint64(fl)
		c.fsDirty()
	}
}

// fS reads f register i as a single: the canonical NaN unless NaN-boxed.
func (c *CPU) fS(i uint32) uint64 {
	v := c.f[i&31]
	if v>>32 != boxS>>32 {
		return canonS
	}
	return v & 0xffffffff
}

// fpRM resolves an instruction's rm field (7: frm); ok=false for the
// reserved values, which make the instruction illegal.
func (c *CPU) fpRM(rm uint32) (uint8, bool) {
	if rm == rmDYN {
		rm = uint32(c.fcsr>>5) & 7
	}
	return uint8(rm), rm <= rmRMM
}

// fpMem executes FLW, FLD, FSW and FSD (and their compressed forms).
func (c *CPU) fpMem(in *inst) {
	if !c.fpOn() {
		c.trap(excIllegal, in.raw())
		return
	}
	va := c.x[in.rs1&31] + uint64(in.imm>>32)
	switch in.op {
	case opFLW:
		v, ok := c.load(va, 4)
		if !ok {
			return
		}
		c.setF(uint32(in.rd), v|boxS)
	case opFLD:
		v, ok := c.load(va, 8)
		if !ok {
			return
		}
		c.setF(uint32(in.rd), v)
	case opFSW:
		if !c.store(va, 4, c.f[in.rs2&31]) {
			return
		}
	case opFSD:
		if !c.store(va, 8, c.f[in.rs2&31]) {
			return
		}
	}
	c.pc += uint64(in.len)
}

// fpOp executes the OP-FP and fused multiply-add major opcodes.
func (c *CPU) fpOp(in *inst) {
	if c.fpOn() && c.fpExec(uint32(in.raw())) {
		c.pc += uint64(in.len)
		return
	}
	c.trap(excIllegal, in.raw())
}

// fpExec executes one FP computational instruction and reports false if
// the encoding is illegal (nothing is changed then).
func (c *CPU) fpExec(w uint32) bool {
	rd := (w >> 7) & 31
	rs1 := (w >> 15) & 31
	rs2 := (w >> 20) & 31
	rs3 := w >> 27
	f3 := (w >> 12) & 7
	f := fmtS
	switch (w >> 25) & 3 {
	case 0:
	case 1:
		f = fmtD
	default: // H and Q are not implemented
		return false
	}
	d := f.bits == 64
	src := func(i uint32) uint64 {
		if d {
			return c.f[i]
		}
		return c.fS(i)
	}
	setRes := func(v uint64, fl uint8) {
		if !d {
			v |= boxS
		}
		c.setF(rd, v)
		c.accrue(fl)
	}
	setX := func(v uint64, fl uint8) {
		if rd != 0 {
			c.x[rd] = v
		}
		c.accrue(fl)
	}
	if op := w & 0x7f; op != 0x53 { // FMADD, FMSUB, FNMSUB, FNMADD
		rm, ok := c.fpRM(f3)
		if !ok {
			return false
		}
		negProd := op == 0x4b || op == 0x4f
		negC := op == 0x47 || op == 0x4f
		setRes(f.fma(src(rs1), src(rs2), src(rs3), negProd, negC, rm))
		return true
	}
	f5 := w >> 27
	switch f5 {
	case 0x00, 0x01, 0x02, 0x03, 0x0b: // fadd, fsub, fmul, fdiv, fsqrt
		if f5 == 0x0b && rs2 != 0 {
			return false
		}
		rm, ok := c.fpRM(f3)
		if !ok {
			return false
		}
		a, b := src(rs1), src(rs2)
		if d && rm == rmRNE {
			op := f5 // 0..3: add sub mul div
			if f5 == 0x0b {
				op = 4
			}
			if v, fl, ok := fastD(op, a, b); ok {
				setRes(v, fl)
				return true
			}
		}
		switch f5 {
		case 0x00:
			setRes(f.add(a, b, rm))
		case 0x01:
			setRes(f.sub(a, b, rm))
		case 0x02:
			setRes(f.mul(a, b, rm))
		case 0x03:
			setRes(f.div(a, b, rm))
		default:
			setRes(f.sqrt(a, rm))
		}
	case 0x04: // fsgnj, fsgnjn, fsgnjx
		a, b := src(rs1), src(rs2)
		s := f.sign()
		switch f3 {
		case 0:
			setRes(a&^s|b&s, 0)
		case 1:
			setRes(a&^s|^b&s, 0)
		case 2:
			setRes(a^b&s, 0)
		default:
			return false
		}
	case 0x05: // fmin, fmax
		if f3 > 1 {
			return false
		}
		setRes(f.minMax(src(rs1), src(rs2), f3 == 1))
	case 0x08: // fcvt.s.d, fcvt.d.s
		if (d && rs2 != 0) || (!d && rs2 != 1) {
			return false
		}
		rm, ok := c.fpRM(f3)
		if !ok {
			return false
		}
		if d {
			setRes(fmtD.cvtF(fmtS, c.fS(rs1), rm))
		} else {
			setRes(fmtS.cvtF(fmtD, c.f[rs1], rm))
		}
	case 0x14: // fle, flt, feq
		if f3 > 2 {
			return false
		}
		setX(f.cmp(f3, src(rs1), src(rs2)))
	case 0x18: // fcvt.{w,wu,l,lu}.{s,d}
		if rs2 > 3 {
			return false
		}
		rm, ok := c.fpRM(f3)
		if !ok {
			return false
		}
		width := uint(32)
		if rs2 >= 2 {
			width = 64
		}
		v, fl := f.toInt(src(rs1), width, rs2&1 == 0, rm)
		if width == 32 {
			v = uint64(int64(int32(v)))
		}
		setX(v, fl)
	case 0x1a: // fcvt.{s,d}.{w,wu,l,lu}
		if rs2 > 3 {
			return false
		}
		rm, ok := c.fpRM(f3)
		if !ok {
			return false
		}
		v := c.x[rs1]
		var neg bool
		switch rs2 {
		case 0:
			v = uint64(int64(int32(v)))
			fallthrough
		case 2:
			if int64(v) < 0 {
				neg, v = true, -v
			}
		case 1:
			v = uint64(uint32(v))
		}
		setRes(f.fromInt(v, neg, rm))
	case 0x1c: // fmv.x.{w,d}, fclass
		if rs2 != 0 {
			return false
		}
		switch f3 {
		case 0: // the raw bits, not unboxed
			v := c.f[rs1]
			if !d {
				v = uint64(int64(int32(v)))
			}
			setX(v, 0)
		case 1:
			setX(f.fclass(src(rs1)), 0)
		default:
			return false
		}
	case 0x1e: // fmv.{w,d}.x
		if rs2 != 0 || f3 != 0 {
			return false
		}
		v := c.x[rs1]
		if !d {
			v &= 0xffffffff
		}
		setRes(v, 0)
	default:
		return false
	}
	return true
}
