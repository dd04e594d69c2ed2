package rvgen

import (
	"fmt"
	"math"
)

func f64bits(v float64) uint64 { return math.Float64bits(v) }
func f32bits(v float32) uint32 { return math.Float32bits(v) }

// F and D: operands drawn from edge cases (zeros, infinities, quiet and
// signalling NaNs, subnormals, the largest and smallest normals, values
// near 2^31, 2^32, 2^63 and 2^64 for the integer conversions, halfway
// cases), every rounding mode in the instruction and through frm, NaN
// boxing (singles sometimes improperly boxed), and mstatus.FS transitions.

func freg(i int) string { return fmt.Sprintf("f%d", i) }

var fpEdgeD = []uint64{
	0, 1 << 63, 0x7ff0000000000000, 0xfff0000000000000, // zeros, infinities
	0x7ff8000000000000, 0x7ff8000000000123, 0xfff8000000000000, // quiet NaNs
	0x7ff0000000000001, 0x7ff4000000000000, 0xfff0000000000abc, // signalling NaNs
	1, 0x000fffffffffffff, 0x8000000000000001, 0x0008000000000000, // subnormals
	0x0010000000000000, 0x8010000000000000, 0x7fefffffffffffff, 0xffefffffffffffff,
	0x3ff0000000000000, 0xbff0000000000000, 0x3ff0000000000001, 0x3fefffffffffffff,
	0x3fe0000000000000, 0x3ff8000000000000, 0x4004000000000000, 0xbfe0000000000000, // 0.5 1.5 2.5 -0.5
	0xbff8000000000000, 0xc004000000000000, 0x3fd0000000000000, 0x3fe8000000000000, // -1.5 -2.5 0.25 0.75
	0x41dfffffffc00000, 0x41dfffffffe00000, 0x41e0000000000000, 0x41e0000000100000, // 2^31-1, -0.5, 2^31, +0.5
	0xc1e0000000000000, 0xc1e0000000100000, 0xc1e0000000200000, 0xc1dfffffffe00000, // -2^31, -0.5, -1, +0.5
	0x41efffffffe00000, 0x41effffffff00000, 0x41f0000000000000, // 2^32-1, 2^32-0.5, 2^32
	0x43dfffffffffffff, 0x43e0000000000000, 0xc3e0000000000000, 0xc3e0000000000001, // near 2^63
	0x43efffffffffffff, 0x43f0000000000000, 0xbfefffffffffffff, // near 2^64, just above -1
	0x3ca0000000000000, 0x3cb0000000000000, 0x3c98000000000000, // 2^-53, 2^-52, 1.5*2^-54
	0x36a0000000000000, 0x3690000000000000, 0x3810000000000000, 0x380fffffe0000000, // single subnormal/normal bounds
	0x47efffffe0000000, 0x47effffff0000000, 0x47f0000000000000, // single max, +half ulp, 2^128
	0x3fb999999999999a, 0x400921fb54442d18, // 0.1, pi
}

var fpEdgeS = []uint32{
	0, 1 << 31, 0x7f800000, 0xff800000,
	0x7fc00000, 0x7fc00123, 0xffc00000,
	0x7f800001, 0x7fa00000, 0xff800abc,
	1, 0x007fffff, 0x80000001, 0x00400000,
	0x00800000, 0x80800000, 0x7f7fffff, 0xff7fffff,
	0x3f800000, 0xbf800000, 0x3f800001, 0x3f7fffff,
	0x3f000000, 0x3fc00000, 0x40200000, 0xbf000000,
	0xbfc00000, 0xc0200000, 0x3e800000, 0x3f400000,
	0x4effffff, 0x4f000000, 0x4f000001, 0xcf000000, 0xcf000001, 0xceffffff, // near 2^31
	0x4f7fffff, 0x4f800000, 0x5effffff, 0x5f000000, 0xdf000000, 0xdf000001, 0x5f7fffff, 0x5f800000,
	0x33800000, 0x34000000, 0x33c00000, 0x3dcccccd, 0x40490fdb,
}

// fpBitsD draws a double: an edge case, a random value of moderate
// exponent (often with few mantissa bits, so sums and products are often
// exact or halfway), or random bits.
func (g *gen) fpBitsD() uint64 {
	switch g.intn(8) {
	case 0, 1, 2:
		return fpEdgeD[g.intn(len(fpEdgeD))]
	case 3, 4:
		e := uint64(1023 + g.between(-8, 8))
		m := g.r.Uint64() & (1<<52 - 1)
		if g.chance(0.5) {
			m &= ^uint64(0) << g.between(30, 52)
		}
		return uint64(g.intn(2))<<63 | e<<52 | m
	case 5: // extreme exponents
		e := uint64(g.between(0, 60))
		if g.chance(0.5) {
			e = uint64(2047 - g.between(1, 60))
		}
		return uint64(g.intn(2))<<63 | e<<52 | g.r.Uint64()&(1<<52-1)
	case 6: // an integer or integer + 1/2 near the conversion bounds
		k := int64(g.value()>>g.intn(64)) / 2
		v := float64(k)
		if g.chance(0.5) {
			v += 0.5
		}
		return f64bits(v)
	}
	return g.r.Uint64()
}

func (g *gen) fpBitsS() uint32 {
	switch g.intn(8) {
	case 0, 1, 2:
		return fpEdgeS[g.intn(len(fpEdgeS))]
	case 3, 4:
		e := uint32(127 + g.between(-8, 8))
		m := g.r.Uint32() & (1<<23 - 1)
		if g.chance(0.5) {
			m &= ^uint32(0) << g.between(8, 23)
		}
		return uint32(g.intn(2))<<31 | e<<23 | m
	case 5:
		e := uint32(g.between(0, 30))
		if g.chance(0.5) {
			e = uint32(255 - g.between(1, 30))
		}
		return uint32(g.intn(2))<<31 | e<<23 | g.r.Uint32()&(1<<23-1)
	case 6:
		k := int32(g.value()>>g.intn(64)) / 2
		v := float32(k)
		if g.chance(0.5) {
			v += 0.5
		}
		return f32bits(v)
	}
	return g.r.Uint32()
}

// fpBox is a single NaN-boxed, now and then improperly (then every
// instruction but the moves and stores must read it as the canonical NaN).
func (g *gen) fpBox(v uint32) uint64 {
	if g.chance(0.05) {
		return g.r.Uint64()&^0xffffffff | uint64(v)
	}
	return 0xffffffff00000000 | uint64(v)
}

// setF loads bits into f register fr through a scratch x register.
func (g *gen) setF(fr int, bits uint64) {
	t := g.dst()
	g.li(t, int64(bits))
	g.ins("fmv.d.x %s, %s", freg(fr), reg(t))
}

// fpOperand picks a source f register, usually loading a fresh value of
// format d (double) into it first.
func (g *gen) fpOperand(d bool) int {
	fr := g.intn(32)
	if g.chance(0.6) {
		if d {
			g.setF(fr, g.fpBitsD())
		} else {
			g.setF(fr, g.fpBox(g.fpBitsS()))
		}
	}
	return fr
}

var rmNames = []string{"rne", "rtz", "rdn", "rup", "rmm", "", "", "dyn"}

// rm picks a rounding mode field: mostly valid static modes and dyn,
// rarely the reserved 5 and 6 (illegal instruction).
func (g *gen) rm() int {
	if !g.opts.NoReserved && g.chance(0.03) {
		return 5 + g.intn(2)
	}
	if g.chance(0.3) {
		return 7
	}
	return g.intn(5)
}

// fpR encodes an OP-FP or fused instruction.
func fpR(op, f7, rs2, rs1, rm, rd int) uint32 {
	return uint32(f7)<<25 | uint32(rs2)<<20 | uint32(rs1)<<15 | uint32(rm)<<12 | uint32(rd)<<7 | uint32(op)
}

// fpRaw emits an encoded FP instruction with its meaning as a comment.
func (g *gen) fpRaw(w uint32, what string) {
	g.ins(".4byte 0x%08x # %s", w, what)
}

func sfx(d bool) string {
	if d {
		return "d"
	}
	return "s"
}

func (g *gen) fpArith() {
	d := g.chance(0.5)
	fm := 0
	if d {
		fm = 1
	}
	s := sfx(d)
	rm := g.rm()
	rd := g.intn(32)
	switch k := g.intn(20); {
	case k < 6: // fadd fsub fmul fdiv, often a halfway case for add/sub
		ops := []string{"fadd", "fsub", "fmul", "fdiv"}
		i := g.intn(4)
		a := g.fpOperand(d)
		var b int
		if i < 2 && g.chance(0.4) {
			b = g.halfULP(a, d)
		} else {
			b = g.fpOperand(d)
		}
		g.fpRM(fpR(0x53, i<<2|fm, b, a, rm, rd), ops[i]+"."+s, rm, "%s, %s, %s", freg(rd), freg(a), freg(b))
	case k < 7:
		a := g.fpOperand(d)
		g.fpRM(fpR(0x53, 0x0b<<2|fm, 0, a, rm, rd), "fsqrt."+s, rm, "%s, %s", freg(rd), freg(a))
	case k < 10: // fused
		ops := []string{"fmadd", "fmsub", "fnmsub", "fnmadd"}
		i := g.intn(4)
		a, b, c := g.fpOperand(d), g.fpOperand(d), g.fpOperand(d)
		w := fpR(0x43+4*i, c<<2|fm, b, a, rm, rd)
		g.fpRM(w, ops[i]+"."+s, rm, "%s, %s, %s, %s", freg(rd), freg(a), freg(b), freg(c))
	case k < 12: // sign injection, min/max
		op := g.pick([]string{"fsgnj", "fsgnjn", "fsgnjx", "fmin", "fmax"})
		g.ins("%s.%s %s, %s, %s", op, s, freg(rd), freg(g.fpOperand(d)), freg(g.fpOperand(d)))
	case k < 14: // compares, fclass
		op := g.pick([]string{"feq", "flt", "fle", "fclass"})
		if op == "fclass" {
			g.ins("fclass.%s %s, %s", s, reg(g.dstOrZero()), freg(g.fpOperand(d)))
		} else {
			g.ins("%s.%s %s, %s, %s", op, s, reg(g.dstOrZero()), freg(g.fpOperand(d)), freg(g.fpOperand(d)))
		}
	case k < 16: // float to integer
		i := g.intn(4)
		a := g.fpOperand(d)
		xd := g.dstOrZero()
		w := fpR(0x53, 0x18<<2|fm, i, a, rm, xd)
		g.fpRM(w, "fcvt."+[]string{"w", "wu", "l", "lu"}[i]+"."+s, rm, "%s, %s", reg(xd), freg(a))
	case k < 18: // integer to float (always encoded: as rejects rm on the exact ones)
		i := g.intn(4)
		xs := g.src()
		if g.chance(0.5) {
			xs = g.dst()
			v := g.value()
			if g.chance(0.3) {
				v = int64(uint64(1)<<g.between(24, 63)) + int64(g.between(-3, 3)) // rounding in every mode
			}
			g.li(xs, v)
		}
		w := fpR(0x53, 0x1a<<2|fm, i, xs, rm, rd)
		g.fpRaw(w, fmt.Sprintf("fcvt.%s.%s %s, %s, %s", s, []string{"w", "wu", "l", "lu"}[i], freg(rd), reg(xs), rmName(rm)))
	case k < 19: // fcvt.s.d / fcvt.d.s
		a := g.fpOperand(!d)
		w := fpR(0x53, 0x08<<2|fm, 1-fm, a, rm, rd)
		g.fpRaw(w, fmt.Sprintf("fcvt.%s.%s %s, %s, %s", s, sfx(!d), freg(rd), freg(a), rmName(rm)))
	default: // moves
		if g.chance(0.5) {
			g.ins("fmv.x.%s %s, %s", map[bool]string{true: "d", false: "w"}[d], reg(g.dstOrZero()), freg(g.fpOperand(d)))
		} else {
			g.ins("fmv.%s.x %s, %s", map[bool]string{true: "d", false: "w"}[d], freg(rd), reg(g.src()))
		}
	}
}

func rmName(rm int) string {
	if n := rmNames[rm]; n != "" {
		return n
	}
	return fmt.Sprintf("rm%d", rm)
}

// fpRM emits an instruction with a rounding mode: through the assembler
// for the valid modes, encoded for the reserved ones.
func (g *gen) fpRM(w uint32, op string, rm int, format string, args ...any) {
	ops := fmt.Sprintf(format, args...)
	if rm == 5 || rm == 6 {
		g.fpRaw(w, fmt.Sprintf("%s %s, rm%d", op, ops, rm))
		return
	}
	g.ins("%s %s, %s", op, ops, rmNames[rm])
}

// halfULP reloads f register a with a random value and another register
// with a value a half, three quarters or two and a half of its ulp (either
// sign), so that a+b and a-b are halfway cases or just off them; it returns
// the other register.
func (g *gen) halfULP(a int, d bool) int {
	b := g.intn(32)
	for b == a {
		b = g.intn(32)
	}
	// Reload a with a known value and b with half its ulp (times 1 or 3,
	// with either sign), so that a+b is exactly halfway or just off it.
	k := uint64([]int{1, 1, 3, 5}[g.intn(4)])
	sign := uint64(g.intn(2))
	if d {
		e := uint64(1023 + g.between(-4, 4))
		av := uint64(g.intn(2))<<63 | e<<52 | g.r.Uint64()&(1<<52-1)
		bv := sign<<63 | (e-53)<<52 | (k>>1)<<51
		if k == 5 {
			bv = sign<<63 | (e-51)<<52 | 1<<50
		}
		g.setF(a, av)
		g.setF(b, bv)
	} else {
		e := uint32(127 + g.between(-4, 4))
		av := uint32(g.intn(2))<<31 | e<<23 | g.r.Uint32()&(1<<23-1)
		bv := uint32(sign)<<31 | (e-24)<<23 | uint32(k>>1)<<22
		if k == 5 {
			bv = uint32(sign)<<31 | (e-22)<<23 | 1<<21
		}
		g.setF(a, g.fpBox(av))
		g.setF(b, 0xffffffff00000000|uint64(bv))
	}
	return b
}

// fpMem emits an FP load or store to the scratch area (or, in a paged
// hop, sometimes through the test pages), sometimes compressed.
func (g *gen) fpMem() {
	d := g.chance(0.6)
	w := 4
	if d {
		w = 8
	}
	load := g.chance(0.5)
	if g.paged && g.chance(0.4) {
		rb := g.dst()
		g.li(rb, g.pagedAddr(w))
		if load {
			g.ins("fl%s %s, 0(%s)", map[bool]string{true: "d", false: "w"}[d], freg(g.intn(32)), reg(rb))
		} else {
			g.ins("fs%s %s, 0(%s)", map[bool]string{true: "d", false: "w"}[d], freg(g.intn(32)), reg(rb))
		}
		return
	}
	switch {
	case d && g.chance(0.25): // c.fld / c.fsd
		t := g.scratchTarget(8, false)
		off := 8 * g.intn(32)
		for t-off < -2048 {
			off -= 8
		}
		rb := g.dstC()
		g.ins("addi %s, gp, %d", reg(rb), t-off)
		op := "c.fsd"
		if load {
			op = "c.fld"
		}
		g.ins("%s %s, %d(%s)", op, freg(8+g.intn(8)), off, reg(rb))
	case d && g.chance(0.25) && g.writable(2): // c.fldsp / c.fsdsp
		t := g.scratchTarget(8, false)
		off := 8 * g.intn(64)
		for t-off < -2048 {
			off -= 8
		}
		g.ins("addi sp, gp, %d", t-off)
		op := "c.fsdsp"
		if load {
			op = "c.fldsp"
		}
		g.ins("%s %s, %d(sp)", op, freg(g.intn(32)), off)
	default:
		rb, imm := g.base(g.scratchTarget(w, g.misaligned()))
		op := map[bool]string{true: "fs", false: "fl"}[!load] + map[bool]string{true: "d", false: "w"}[d]
		g.ins("%s %s, %d(%s)", op, freg(g.intn(32)), imm, reg(rb))
	}
}

// fpCSR reads or writes fflags, frm and fcsr (frm sometimes invalid, so
// that dynamic-rm instructions trap until it is set again).
func (g *gen) fpCSR() {
	frm := g.intn(5)
	if !g.opts.NoReserved && g.chance(0.15) {
		frm = 5 + g.intn(3)
	}
	switch g.intn(8) {
	case 0:
		g.ins("fsrmi %s, %d", reg(g.dstOrZero()), frm)
	case 1:
		t := g.dst()
		g.li(t, int64(frm)|g.value()&^7)
		g.ins("fsrm %s, %s", reg(g.dstOrZero()), reg(t))
	case 2:
		g.ins("fsflagsi %s, %d", reg(g.dstOrZero()), g.intn(32))
	case 3:
		g.ins("fsflags %s, %s", reg(g.dstOrZero()), reg(g.src()))
	case 4:
		t := g.dst()
		g.li(t, int64(frm)<<5|g.value()&^0xe0)
		g.ins("fscsr %s, %s", reg(g.dstOrZero()), reg(t))
	case 5:
		g.ins("%s %s", g.pick([]string{"frcsr", "frrm", "frflags"}), reg(g.dst()))
	case 6:
		op := g.pick([]string{"csrrs", "csrrc"})
		g.ins("%s %s, %s, %s", op, reg(g.dstOrZero()), g.pick([]string{"fflags", "frm", "fcsr"}), reg(g.src()))
	default:
		g.ins("csrrwi %s, frm, %d", reg(g.dstOrZero()), frm)
	}
}

// fpFS sets mstatus.FS. Off: the next few FP items must trap, then FS is
// turned back on. Initial or Clean: an FP register write must make it
// Dirty (and SD set), which a read of mstatus shows.
func (g *gen) fpFS() {
	t := g.dst()
	fs := g.intn(3)
	g.li(t, 0x6000)
	g.ins("csrc mstatus, %s", reg(t))
	if fs > 0 {
		g.li(t, int64(fs)<<13)
		g.ins("csrs mstatus, %s", reg(t))
	}
	g.fsRead()
	if fs == 0 {
		for k := g.between(1, 3); k > 0; k-- {
			g.emit([]class{cFP, cFPMem, cFPCSR}[g.intn(3)], 2)
		}
		g.li(t, 0x6000)
		g.ins("csrs mstatus, %s", reg(t))
		return
	}
	// QEMU 7.2 leaves FS alone for FP instructions that write only an x
	// register or fflags (feq, fcvt.w, ...); the spec has them dirty the
	// state when they change fflags. Make the first one write an f register.
	if g.opts.NoQuirks || g.chance(0.7) {
		g.ins("fmv.d.x %s, %s", freg(g.intn(32)), reg(g.src()))
	}
	g.fsRead()
}

// fsRead reads mstatus's SD and FS into a register.
func (g *gen) fsRead() {
	r, m := g.dst(), g.dst()
	for m == r {
		m = g.dst()
	}
	g.ins("csrr %s, mstatus", reg(r))
	g.li(m, -1<<63|0x6000)
	g.ins("and %s, %s, %s", reg(r), reg(r), reg(m))
}

// fpInit gives every f register a value and fcsr a valid rounding mode at
// the start of a sequence.
func (g *gen) fpInit() {
	for fr := 0; fr < 32; fr++ {
		if g.chance(0.5) {
			g.setF(fr, g.fpBitsD())
		} else {
			g.setF(fr, g.fpBox(g.fpBitsS()))
		}
	}
	t := g.dst()
	g.li(t, int64(g.intn(5))<<5|int64(g.intn(32)))
	g.ins("fscsr %s", reg(t))
}

// fpRandom emits an FP computational encoding with random fields (many
// illegal: reserved formats, funct5, rm, rs2), its rd kept writable as an
// x register as well.
func (g *gen) fpRandom() {
	op := []uint32{0x43, 0x47, 0x4b, 0x4f, 0x53, 0x53, 0x53}[g.intn(7)]
	w := op | g.r.Uint32()&^0xfff
	w |= uint32(g.dst()) << 7
	g.fpRaw(w, "random FP encoding")
}
