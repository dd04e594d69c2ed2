package rvgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

const regGP = 3 // holds scratch_mid for the whole program; never written

type gen struct {
	r     *rand.Rand
	b     strings.Builder
	opts  Options
	label int
	// keep: registers random code must not write (bit i = xi), e.g. a loop
	// counter. x3 (gp) is always kept.
	keep  uint32
	inHop bool
	hopS  bool // the hop runs in S mode (else U)
	paged bool // the hop runs with Sv39 translation on
}

func (g *gen) w(format string, args ...any) {
	fmt.Fprintf(&g.b, format, args...)
	g.b.WriteByte('\n')
}

func (g *gen) ins(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if strings.HasPrefix(line, "c.") {
		// explicit compressed forms need rvc enabled at that point
		g.b.WriteString("\t.option push\n\t.option rvc\n\t" + line + "\n\t.option pop\n")
		return
	}
	g.b.WriteString("\t" + line + "\n")
}

func (g *gen) newLabel(kind string) string {
	g.label++
	return fmt.Sprintf(".L%s_%d", kind, g.label)
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func (g *gen) intn(n int) int { return g.r.IntN(n) }

// between returns a uniform integer in [lo, hi].
func (g *gen) between(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }

func reg(i int) string { return fmt.Sprintf("x%d", i) }

func (g *gen) writable(i int) bool {
	return i != 0 && i != regGP && g.keep&(1<<i) == 0
}

// dst picks a destination register random code may write (never x0).
func (g *gen) dst() int {
	for {
		i := 1 + g.intn(31)
		if g.writable(i) {
			return i
		}
	}
}

// dstOrZero is dst, with x0 now and then (a HINT, must do nothing).
func (g *gen) dstOrZero() int {
	if g.chance(0.04) {
		return 0
	}
	return g.dst()
}

// dstC picks a writable register among x8..x15 (the compressed set).
func (g *gen) dstC() int {
	for {
		i := 8 + g.intn(8)
		if g.writable(i) {
			return i
		}
	}
}

// src picks any register as an operand.
func (g *gen) src() int {
	if g.chance(0.05) {
		return 0
	}
	return 1 + g.intn(31)
}

func (g *gen) srcC() int { return 8 + g.intn(8) }

// value draws an operand value with edge cases over-represented.
func (g *gen) value() int64 {
	switch g.intn(20) {
	case 0:
		return 0
	case 1:
		return 1
	case 2:
		return -1
	case 3:
		return -1 << 63
	case 4:
		return 1<<63 - 1
	case 5:
		return 0x80000000
	case 6:
		return -0x80000000
	case 7:
		return 0x7fffffff
	case 8:
		return 0xffffffff
	case 9:
		return int64(g.between(-64, 64))
	case 10:
		return int64(int32(g.r.Uint32()))
	case 11:
		return int64(g.r.Uint32())
	case 12:
		return 1 << g.intn(64)
	case 13:
		return int64(uint64(1)<<g.intn(64) - 1)
	case 14:
		return int64(g.r.Uint64() &^ 0xffffffff) // upper half only
	default:
		return int64(g.r.Uint64())
	}
}

func (g *gen) li(rd int, v int64) { g.ins("li %s, %d", reg(rd), v) }

func (g *gen) imm12() int {
	switch g.intn(8) {
	case 0:
		return 0
	case 1:
		return -1
	case 2:
		return 2047
	case 3:
		return -2048
	default:
		return g.between(-2048, 2047)
	}
}

func (g *gen) pick(list []string) string { return list[g.intn(len(list))] }

// ---------------------------------------------------------------- sequences

func (g *gen) sequence(i int) {
	g.w("")
	g.w("seq_%d:", i)
	if g.chance(0.7) {
		g.ins(".option rvc")
	} else {
		g.ins(".option norvc")
	}
	g.fpInit()
	for r := 1; r < 32; r++ {
		if r == regGP {
			continue
		}
		g.li(r, g.value())
	}
	n := g.between(g.opts.MinLen, g.opts.MaxLen)
	probe := slices.Contains(g.opts.ProbeSeqs, i)
	for k := 0; k < n; k++ {
		g.w("# item %d.%d", i, k)
		if probe {
			g.probe(0x8000 + k)
		}
		if g.chance(0.03) {
			if g.chance(0.5) {
				g.ins(".option rvc")
			} else {
				g.ins(".option norvc")
			}
		}
		g.item(0)
	}
	g.w("# item %d.end", i)
	g.ins(".option norvc")
	for r := 1; r < 32; r++ {
		g.ins("sd %s, %d(gp)", reg(r), offRegSave+8*r)
	}
	g.ins("call fsave")
	g.ins("li a0, %d", i)
	g.ins("la sp, stack_top")
	g.ins("call dump")
	g.ins("j seq_%d", i+1)
}

// probe dumps the state like the end of a sequence, printed as sequence
// number id, and restores every register.
func (g *gen) probe(id int) {
	g.w("# probe")
	g.ins(".option push")
	g.ins(".option norvc")
	for r := 1; r < 32; r++ {
		g.ins("sd %s, %d(gp)", reg(r), offRegSave+8*r)
	}
	g.ins("call fsave")
	g.ins("li a0, %d", id)
	g.ins("la sp, stack_top")
	g.ins("call dump")
	g.ins("call fsrestore")
	for r := 1; r < 32; r++ {
		if r != regGP {
			g.ins("ld %s, %d(gp)", reg(r), offRegSave+8*r)
		}
	}
	g.ins(".option pop")
	g.w("# probe end")
}

type class int

const (
	cALU class = iota
	cALUImm
	cShift
	cLUI
	cLI
	cMulDiv
	cLoad
	cStore
	cAMO
	cLRSC
	cCompressed
	cBranch
	cJump
	cLoop
	cCSR
	cTrap
	cFence
	cHop
	cFP
	cFPMem
	cFPCSR
	cFPFS
	nClasses
)

var weights = [nClasses]int{
	cALU: 14, cALUImm: 10, cShift: 6, cLUI: 3, cLI: 3, cMulDiv: 10,
	cLoad: 8, cStore: 8, cAMO: 4, cLRSC: 2, cCompressed: 12,
	cBranch: 4, cJump: 2, cLoop: 1, cCSR: 6, cTrap: 4, cFence: 1, cHop: 1,
	cFP: 16, cFPMem: 4, cFPCSR: 2, cFPFS: 1,
}

// item emits one random item. depth > 0 inside skipped blocks and loop
// bodies, where only straight-line items are allowed.
func (g *gen) item(depth int) {
	for {
		total := 0
		for _, w := range weights {
			total += w
		}
		x := g.intn(total)
		c := class(0)
		for ; c < nClasses; c++ {
			if x < weights[c] {
				break
			}
			x -= weights[c]
		}
		switch c {
		case cBranch, cJump, cLoop:
			if depth > 0 {
				continue
			}
		case cHop:
			if depth > 0 || g.inHop || g.opts.NoHops {
				continue
			}
		case cLRSC, cTrap:
			if depth > 1 {
				continue
			}
		case cFPFS: // csrc mstatus would trap outside M
			if depth > 0 || g.inHop {
				continue
			}
		}
		g.emit(c, depth)
		return
	}
}

func (g *gen) emit(c class, depth int) {
	switch c {
	case cALU:
		op := g.pick([]string{"add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and",
			"addw", "subw", "sllw", "srlw", "sraw"})
		g.ins("%s %s, %s, %s", op, reg(g.dstOrZero()), reg(g.src()), reg(g.src()))
	case cALUImm:
		op := g.pick([]string{"addi", "slti", "sltiu", "xori", "ori", "andi", "addiw"})
		g.ins("%s %s, %s, %d", op, reg(g.dstOrZero()), reg(g.src()), g.imm12())
	case cShift:
		if g.chance(0.5) {
			op := g.pick([]string{"slli", "srli", "srai"})
			g.ins("%s %s, %s, %d", op, reg(g.dstOrZero()), reg(g.src()), g.intn(64))
		} else {
			op := g.pick([]string{"slliw", "srliw", "sraiw"})
			g.ins("%s %s, %s, %d", op, reg(g.dstOrZero()), reg(g.src()), g.intn(32))
		}
	case cLUI:
		op := g.pick([]string{"lui", "auipc"})
		imm := g.intn(1 << 20)
		if g.chance(0.3) {
			imm = g.pick20()
		}
		g.ins("%s %s, 0x%x", op, reg(g.dstOrZero()), imm)
	case cLI:
		g.li(g.dst(), g.value())
	case cMulDiv:
		g.mulDiv()
	case cLoad:
		g.load()
	case cStore:
		g.store()
	case cAMO:
		g.amo()
	case cLRSC:
		g.lrsc()
	case cCompressed:
		g.compressed()
	case cBranch:
		g.branch()
	case cJump:
		g.jump()
	case cLoop:
		g.loop()
	case cCSR:
		g.csr()
	case cTrap:
		g.trap()
	case cFence:
		switch g.intn(4) {
		case 0:
			g.ins("fence")
		case 1:
			g.ins("fence.i")
		case 2:
			sets := []string{"r", "w", "rw", "i", "o", "io", "iorw"}
			g.ins("fence %s, %s", g.pick(sets), g.pick(sets))
		default:
			g.ins("sfence.vma %s, %s", reg(g.src()), reg(g.src()))
		}
	case cHop:
		g.hop()
	case cFP:
		if g.chance(0.04) {
			g.fpRandom()
		} else {
			g.fpArith()
		}
	case cFPMem:
		g.fpMem()
	case cFPCSR:
		g.fpCSR()
	case cFPFS:
		g.fpFS()
	}
}

func (g *gen) pick20() int {
	return []int{0, 1, 0x80000, 0x7ffff, 0xfffff, 0x80001}[g.intn(6)]
}

// ---------------------------------------------------------------- M extension

func (g *gen) mulDiv() {
	ops := []string{"mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu",
		"mulw", "divw", "divuw", "remw", "remuw"}
	op := g.pick(ops)
	rs1, rs2 := g.src(), g.src()
	if g.chance(0.45) {
		rs1, rs2 = g.dst(), g.dst()
		w := strings.HasSuffix(op, "w")
		switch g.intn(5) {
		case 0, 1: // by zero
			g.li(rs1, g.value())
			if g.chance(0.5) && w {
				g.li(rs2, int64(g.r.Uint64()&^0xffffffff)) // zero low word only
			} else {
				g.li(rs2, 0)
			}
		case 2: // overflow
			if w {
				v := int64(-0x80000000)
				if g.chance(0.5) {
					v = int64(g.r.Uint64()&^0xffffffff) | 0x80000000
				}
				g.li(rs1, v)
				g.li(rs2, int64(g.r.Uint64()|0xffffffff))
			} else {
				g.li(rs1, -1<<63)
				g.li(rs2, -1)
			}
		default:
			g.li(rs1, g.value())
			g.li(rs2, g.value())
		}
		if rs1 == rs2 {
			rs2 = g.src()
		}
	}
	g.ins("%s %s, %s, %s", op, reg(g.dstOrZero()), reg(rs1), reg(rs2))
}

// ---------------------------------------------------------------- memory

// scratchTarget picks a gp-relative offset of an access of width bytes
// inside the scratch area; aligned unless misaligned.
func (g *gen) scratchTarget(width int, misaligned bool) int {
	t := g.between(ScratchLo, ScratchHi-width-1)
	if misaligned && width > 1 {
		t = t&^(width-1) + 1 + g.intn(width-1)
		if t > ScratchHi-width {
			t -= width
		}
		return t
	}
	return t &^ (width - 1)
}

// base sets a fresh register to gp+a and returns it with imm so that
// base+imm is the gp-relative offset t.
func (g *gen) base(t int) (int, int) {
	lo, hi := max(-2048, t-2047), min(2047, t+2048)
	imm := g.between(lo, hi)
	if g.chance(0.3) {
		imm = 0
	}
	rb := g.dst()
	g.ins("addi %s, gp, %d", reg(rb), t-imm)
	return rb, imm
}

func (g *gen) misaligned() bool { return !g.opts.NoMisaligned && g.chance(0.06) }

var loads = []struct {
	op string
	w  int
}{{"lb", 1}, {"lbu", 1}, {"lh", 2}, {"lhu", 2}, {"lw", 4}, {"lwu", 4}, {"ld", 8}}

var stores = []struct {
	op string
	w  int
}{{"sb", 1}, {"sh", 2}, {"sw", 4}, {"sd", 8}}

// pagedAddr returns a virtual address for an access of width bytes that
// goes through the hop's page tables: mostly the 8 test pages at
// 0xc0000000, sometimes an unmapped, non-canonical or misaligned-superpage
// address.
func (g *gen) pagedAddr(width int) int64 {
	switch g.intn(10) {
	case 0:
		return []int64{0x0, 0x8000000000, -0x8000000000 - 8, 0x100000000, 0xc0200000, 0xc0008000}[g.intn(6)]
	default:
		off := g.between(0, ScratchHi-ScratchLo-width) &^ (width - 1)
		return 0xc0000000 + int64(g.intn(8))<<12 + int64(off)
	}
}

func (g *gen) pagedAccess() {
	rb := g.dst()
	if g.chance(0.5) {
		l := loads[g.intn(len(loads))]
		g.li(rb, g.pagedAddr(l.w))
		g.ins("%s %s, 0(%s)", l.op, reg(g.dstOrZero()), reg(rb))
	} else if g.chance(0.8) || g.opts.NoQuirks {
		s := stores[g.intn(len(stores))]
		g.li(rb, g.pagedAddr(s.w))
		g.ins("%s %s, 0(%s)", s.op, reg(g.src()), reg(rb))
	} else {
		g.li(rb, g.pagedAddr(8))
		g.ins("amoor.d %s, %s, (%s)", reg(g.dstOrZero()), reg(g.src()), reg(rb))
	}
}

func (g *gen) load() {
	if g.paged && g.chance(0.5) {
		g.pagedAccess()
		return
	}
	l := loads[g.intn(len(loads))]
	rb, imm := g.base(g.scratchTarget(l.w, g.misaligned()))
	g.ins("%s %s, %d(%s)", l.op, reg(g.dstOrZero()), imm, reg(rb))
}

func (g *gen) store() {
	if g.paged && g.chance(0.5) {
		g.pagedAccess()
		return
	}
	s := stores[g.intn(len(stores))]
	rb, imm := g.base(g.scratchTarget(s.w, g.misaligned()))
	g.ins("%s %s, %d(%s)", s.op, reg(g.src()), imm, reg(rb))
}

func (g *gen) ordering() string {
	return []string{"", "", ".aq", ".rl", ".aqrl"}[g.intn(5)]
}

func (g *gen) amo() {
	op := g.pick([]string{"amoswap", "amoadd", "amoxor", "amoand", "amoor",
		"amomin", "amomax", "amominu", "amomaxu"})
	w, sfx := 4, ".w"
	if g.chance(0.5) {
		w, sfx = 8, ".d"
	}
	mis := !g.opts.NoMisaligned && !g.opts.NoQuirks && g.chance(0.04)
	rb := g.dst()
	g.ins("addi %s, gp, %d", reg(rb), g.scratchTarget(w, mis))
	g.ins("%s%s%s %s, %s, (%s)", op, sfx, g.ordering(), reg(g.dstOrZero()), reg(g.src()), reg(rb))
}

func (g *gen) lrsc() {
	w, sfx := 4, ".w"
	if g.chance(0.5) {
		w, sfx = 8, ".d"
	}
	rb := g.dst()
	g.keep |= 1 << rb
	g.ins("addi %s, gp, %d", reg(rb), g.scratchTarget(w, !g.opts.NoMisaligned && g.chance(0.03)))
	kind := g.intn(10)
	if g.opts.NoImplDefined && kind >= 7 {
		kind = 0
	}
	switch kind {
	case 0, 1, 2, 3, 4: // the well-formed pair
		g.ins("lr%s%s %s, (%s)", sfx, g.ordering(), reg(g.dstOrZero()), reg(rb))
		for k := g.intn(4); k > 0; k-- {
			g.emit(cALU, 2)
		}
		g.ins("sc%s%s %s, %s, (%s)", sfx, g.ordering(), reg(g.dstOrZero()), reg(g.src()), reg(rb))
	case 5: // sc without lr: must fail
		g.ins("sc%s%s %s, %s, (%s)", sfx, g.ordering(), reg(g.dst()), reg(g.src()), reg(rb))
	case 6: // lr, a store to the same address, sc
		g.ins("lr%s %s, (%s)", sfx, reg(g.dst()), reg(rb))
		g.ins("s%s %s, 0(%s)", sfx[1:], reg(g.src()), reg(rb))
		g.ins("sc%s %s, %s, (%s)", sfx, reg(g.dst()), reg(g.src()), reg(rb))
	case 7: // sc to another address
		g.ins("lr%s %s, (%s)", sfx, reg(g.dst()), reg(rb))
		rb2 := g.dst()
		g.ins("addi %s, gp, %d", reg(rb2), g.scratchTarget(w, false))
		g.ins("sc%s %s, %s, (%s)", sfx, reg(g.dst()), reg(g.src()), reg(rb2))
	case 8: // lr/sc of another width
		other := ".d"
		if sfx == ".d" {
			other = ".w"
		}
		g.ins("addi %s, gp, %d", reg(rb), g.scratchTarget(8, false))
		g.ins("lr%s %s, (%s)", other, reg(g.dst()), reg(rb))
		g.ins("sc%s %s, %s, (%s)", sfx, reg(g.dst()), reg(g.src()), reg(rb))
	default: // a trap between lr and sc
		g.ins("lr%s %s, (%s)", sfx, reg(g.dst()), reg(rb))
		g.ins("ebreak")
		g.ins("sc%s %s, %s, (%s)", sfx, reg(g.dst()), reg(g.src()), reg(rb))
	}
	g.keep &^= 1 << rb
}

// ---------------------------------------------------------------- compressed

func (g *gen) cimm6() int {
	if g.chance(0.2) {
		return []int{-32, 31, -1, 1}[g.intn(4)]
	}
	return g.between(-32, 31)
}

func (g *gen) nz(f func() int) int {
	for {
		if v := f(); v != 0 {
			return v
		}
	}
}

func (g *gen) compressed() {
	switch g.intn(26) {
	case 0:
		g.ins("c.addi %s, %d", reg(g.dst()), g.nz(g.cimm6))
	case 1:
		g.ins("c.addiw %s, %d", reg(g.dst()), g.cimm6())
	case 2:
		g.ins("c.li %s, %d", reg(g.dst()), g.cimm6())
	case 3:
		rd := g.dst()
		for rd == 2 {
			rd = g.dst()
		}
		imm := g.between(1, 31)
		if g.chance(0.5) {
			imm = g.between(0xfffe0, 0xfffff)
		}
		g.ins("c.lui %s, 0x%x", reg(rd), imm)
	case 4:
		g.ins("c.slli %s, %d", reg(g.dst()), g.between(1, 63))
	case 5:
		g.ins("c.srli %s, %d", reg(g.dstC()), g.between(1, 63))
	case 6:
		g.ins("c.srai %s, %d", reg(g.dstC()), g.between(1, 63))
	case 7:
		g.ins("c.andi %s, %d", reg(g.dstC()), g.cimm6())
	case 8:
		g.ins("c.mv %s, %s", reg(g.dst()), reg(g.nz(g.src)))
	case 9:
		g.ins("c.add %s, %s", reg(g.dst()), reg(g.nz(g.src)))
	case 10, 11:
		op := g.pick([]string{"c.and", "c.or", "c.xor", "c.sub", "c.addw", "c.subw"})
		g.ins("%s %s, %s", op, reg(g.dstC()), reg(g.srcC()))
	case 12:
		g.ins("c.nop")
	case 13, 14: // c.ld / c.lw
		w := 4 << g.intn(2)
		t := g.scratchTarget(w, false)
		off := w * g.intn(32)
		for t-off < -2048 {
			off -= w
		}
		rb := g.dstC()
		g.ins("addi %s, gp, %d", reg(rb), t-off)
		op := "c.lw"
		if w == 8 {
			op = "c.ld"
		}
		g.ins("%s %s, %d(%s)", op, reg(g.dstC()), off, reg(rb))
	case 15, 16: // c.sd / c.sw
		w := 4 << g.intn(2)
		t := g.scratchTarget(w, false)
		off := w * g.intn(32)
		for t-off < -2048 {
			off -= w
		}
		rb := g.dstC()
		g.ins("addi %s, gp, %d", reg(rb), t-off)
		op := "c.sw"
		if w == 8 {
			op = "c.sd"
		}
		g.ins("%s %s, %d(%s)", op, reg(g.srcC()), off, reg(rb))
	case 17, 18: // sp-relative loads and stores
		if !g.writable(2) {
			g.ins("c.nop")
			return
		}
		w := 4 << g.intn(2)
		t := g.scratchTarget(w, false)
		off := w * g.intn(64)
		for t-off < -2048 {
			off -= w
		}
		g.ins("addi sp, gp, %d", t-off)
		sfx := "w"
		if w == 8 {
			sfx = "d"
		}
		if g.chance(0.5) {
			g.ins("c.l%ssp %s, %d(sp)", sfx, reg(g.dst()), off)
		} else {
			g.ins("c.s%ssp %s, %d(sp)", sfx, reg(g.src()), off)
		}
	case 19:
		g.ins("c.addi4spn %s, sp, %d", reg(g.dstC()), 4*g.between(1, 255))
	case 20:
		if g.writable(2) {
			g.ins("c.addi16sp sp, %d", 16*g.nz(func() int { return g.between(-32, 31) }))
		}
	default: // let the assembler compress what it can
		g.ins(".option push")
		g.ins(".option rvc")
		for k := g.between(1, 3); k > 0; k-- {
			g.emit([]class{cALU, cALUImm, cShift, cLoad, cStore}[g.intn(5)], 2)
		}
		g.ins(".option pop")
	}
}

// ---------------------------------------------------------------- control flow

func (g *gen) block(depth int) {
	for k := g.between(1, 5); k > 0; k-- {
		g.item(depth + 1)
	}
}

func (g *gen) branch() {
	l := g.newLabel("br")
	if g.chance(0.2) {
		op := g.pick([]string{"c.beqz", "c.bnez"})
		g.ins("%s %s, %s", op, reg(g.srcC()), l)
	} else {
		op := g.pick([]string{"beq", "bne", "blt", "bge", "bltu", "bgeu"})
		a, b := g.src(), g.src()
		if g.chance(0.15) {
			b = a
		}
		g.ins("%s %s, %s, %s", op, reg(a), reg(b), l)
	}
	g.block(0)
	g.w("%s:", l)
}

func (g *gen) jump() {
	l := g.newLabel("j")
	switch g.intn(5) {
	case 0:
		g.ins("jal %s, %s", reg(g.dstOrZero()), l)
	case 1: // jalr with an offset, sometimes odd (bit 0 is cleared)
		rt := g.dst()
		k := g.between(-64, 64)
		odd := g.intn(2)
		g.ins("la %s, %s", reg(rt), l)
		g.ins("addi %s, %s, %d", reg(rt), reg(rt), -k)
		g.ins("jalr %s, %d(%s)", reg(g.dstOrZero()), k+odd, reg(rt))
	case 2:
		g.ins("c.j %s", l)
	default:
		rt := g.dst()
		g.ins("la %s, %s", reg(rt), l)
		if g.chance(0.5) && g.writable(1) {
			g.ins("c.jalr %s", reg(rt))
		} else {
			g.ins("c.jr %s", reg(rt))
		}
	}
	g.block(0)
	g.w("%s:", l)
}

func (g *gen) loop() {
	rc := g.dst()
	g.keep |= 1 << rc
	l := g.newLabel("loop")
	g.li(rc, int64(g.between(1, 6)))
	g.w("%s:", l)
	for k := g.between(1, 4); k > 0; k-- {
		g.emit([]class{cALU, cALUImm, cShift, cMulDiv, cLoad, cStore, cAMO, cCompressed}[g.intn(8)], 2)
	}
	g.ins("addi %s, %s, -1", reg(rc), reg(rc))
	g.ins("bnez %s, %s", reg(rc), l)
	g.keep &^= 1 << rc
}

// ---------------------------------------------------------------- CSRs

type csrKind int

const (
	csrFree csrKind = iota // any value may be written
	csrMIE                 // never set MTIE (timer state is not compared)
	csrSATP                // mode 0 (or Sv39 in M mode) only
	csrEPC                 // mepc/sepc: odd writes are impl-defined-ish
	csrRO                  // read-only: writes trap
	csrNone                // not implemented: every access traps
)

var csrs = []struct {
	name string
	kind csrKind
}{
	{"mscratch", csrFree}, {"sscratch", csrFree}, {"mepc", csrEPC}, {"sepc", csrEPC},
	{"mtval", csrFree}, {"stval", csrFree}, {"mcause", csrFree}, {"scause", csrFree},
	{"medeleg", csrFree}, {"mideleg", csrFree}, {"mcounteren", csrFree}, {"scounteren", csrFree},
	{"mie", csrMIE}, {"sie", csrMIE}, {"satp", csrSATP},
	{"mhartid", csrRO}, {"0x8c0", csrNone}, {"0x5c0", csrNone}, {"0xbc0", csrNone},
}

func (g *gen) csrValue(kind csrKind) int64 {
	v := g.value()
	switch kind {
	case csrMIE:
		v &^= 0x80
	case csrSATP:
		v &= 1<<60 - 1
		if !g.inHop && g.chance(0.3) {
			v |= -1 << 63 // mode 8 (Sv39)
		}
	case csrEPC:
		if g.opts.NoImplDefined {
			v &^= 1
		}
	}
	return v
}

func (g *gen) csr() {
	c := csrs[g.intn(len(csrs))]
	if (c.kind == csrRO || c.kind == csrNone) && g.chance(0.6) {
		c = csrs[g.intn(len(csrs))] // rarer
	}
	for g.opts.NoQuirks && slices.Contains([]string{}, c.name) {
		c = csrs[g.intn(len(csrs))]
	}
	rd := g.dstOrZero()
	if g.chance(0.15) {
		rd = 0
	}
	if c.kind == csrSATP && g.paged {
		g.ins("csrr %s, satp", reg(g.dst())) // a write could unmap the code
		return
	}
	// QEMU 7.2 decides whether csrrs/csrrc write a read-only CSR by the
	// value of rs1, not by rs1 != x0 as the specification does.
	roQuirk := c.kind == csrRO && g.opts.NoQuirks
	controlled := c.kind == csrMIE || c.kind == csrSATP || (c.kind == csrEPC && g.opts.NoImplDefined) || roQuirk
	switch g.intn(7) {
	case 0, 1: // read
		g.ins("csrr %s, %s", reg(g.dst()), c.name)
	case 2: // csrrw
		rs := g.src()
		if controlled || g.chance(0.3) {
			rs = g.dst()
			g.li(rs, g.csrValue(c.kind))
		}
		g.ins("csrrw %s, %s, %s", reg(rd), c.name, reg(rs))
	case 3: // csrrs
		rs := g.src()
		if controlled || g.chance(0.3) {
			rs = g.dst()
			v := g.csrValue(c.kind)
			if c.kind == csrSATP {
				v &= 1<<60 - 1
			}
			if roQuirk && v == 0 {
				v = 1
			}
			g.li(rs, v)
		}
		g.ins("csrrs %s, %s, %s", reg(rd), c.name, reg(rs))
	case 4: // csrrc
		rs := g.src()
		if c.kind == csrSATP || roQuirk || g.chance(0.3) {
			rs = g.dst()
			v := g.value()
			if roQuirk && v == 0 {
				v = 1
			}
			if c.kind == csrSATP {
				v &= 1<<60 - 1
			}
			g.li(rs, v)
		}
		g.ins("csrrc %s, %s, %s", reg(rd), c.name, reg(rs))
	default:
		op := g.pick([]string{"csrrwi", "csrrsi", "csrrci"})
		imm := g.intn(32)
		if c.kind == csrEPC && g.opts.NoImplDefined && op != "csrrci" {
			imm &^= 1
		}
		if c.kind == csrSATP && op == "csrrwi" {
			op = "csrrsi"
		}
		g.ins("%s %s, %s, %d", op, reg(rd), c.name, imm)
	}
}

// ---------------------------------------------------------------- traps

// unmapped addresses: below RAM where the virt machine has nothing, just
// past 128 MiB of RAM, and far above every window.
var unmapped = []int64{0x0, 0x8, 0x88000000, 0x88000800, 0x10000000000, 0x100000000000}

func (g *gen) trap() {
	switch g.intn(12) {
	case 0:
		g.ins("ecall")
	case 1:
		g.ins("ebreak")
	case 2:
		g.ins("c.ebreak")
	case 3:
		g.ins(".4byte 0x00000000")
	case 4:
		g.ins(".2byte 0x0000")
	case 5: // any FP opcode with FS off (t0..t2 are restored after the trap)
		if g.inHop {
			g.ins(".4byte 0x%08x", 0x53|7<<25|g.r.Uint32()&0x1fffff80) // reserved fmt 3: illegal
			return
		}
		op := []uint32{0x07, 0x27, 0x43, 0x47, 0x4b, 0x4f, 0x53}[g.intn(7)]
		t := g.dst()
		g.li(t, 0x6000)
		g.ins("csrc mstatus, %s", reg(t))
		g.ins(".4byte 0x%08x", op|g.r.Uint32()&^0x7f)
		g.ins("csrs mstatus, %s", reg(t))
	case 6: // custom / reserved major opcodes, and unused funct3/funct7
		var w uint32
		switch g.intn(6) {
		case 0:
			w = []uint32{0x0b, 0x2b, 0x5b, 0x7b}[g.intn(4)] | g.r.Uint32()&^0x7f
		case 1: // OP-IMM-32 with funct3 2,3,4,6,7
			w = 0x1b | []uint32{2, 3, 4, 6, 7}[g.intn(5)]<<12 | g.r.Uint32()&^0x7fff
		case 2: // LOAD with funct3 7
			w = 0x03 | 7<<12 | g.r.Uint32()&^0x7fff
		case 3: // STORE with funct3 4..7
			w = 0x23 | uint32(4+g.intn(4))<<12 | g.r.Uint32()&^0x7fff
		case 4: // BRANCH with funct3 2,3 ; JALR with funct3 != 0
			if g.chance(0.5) {
				w = 0x63 | uint32(2+g.intn(2))<<12 | g.r.Uint32()&^0x7fff
			} else {
				w = 0x67 | uint32(1+g.intn(7))<<12 | g.r.Uint32()&^0x7fff
			}
		default: // OP with an unused funct7
			f7 := []uint32{0x02, 0x08, 0x0c, 0x40, 0x60, 0x7f}[g.intn(6)]
			w = 0x33 | f7<<25 | g.r.Uint32()&0x01fff000 | g.r.Uint32()&0xf80
		}
		g.ins(".4byte 0x%08x", w)
	case 7, 8: // access faults
		rb := g.dst()
		g.li(rb, unmapped[g.intn(len(unmapped))]+int64(8*g.intn(4)))
		k := g.intn(3)
		if g.opts.NoQuirks {
			k = g.intn(2)
		}
		switch k {
		case 0:
			l := loads[g.intn(len(loads))]
			g.ins("%s %s, 0(%s)", l.op, reg(g.dst()), reg(rb))
		case 1:
			s := stores[g.intn(len(stores))]
			g.ins("%s %s, 0(%s)", s.op, reg(g.src()), reg(rb))
		default:
			g.ins("amoadd.d %s, %s, (%s)", reg(g.dst()), reg(g.src()), reg(rb))
		}
	case 9: // CSR traps: write a read-only CSR, touch an absent one
		if g.chance(0.5) {
			g.ins("csrrw %s, mhartid, %s", reg(g.dst()), reg(g.nz(g.src)))
		} else {
			g.ins("csrr %s, 0x%x", reg(g.dst()), []int{0x8c0, 0x5c0, 0xbc0, 0x7ff}[g.intn(4)])
		}
	case 10: // privileged instructions out of place (only M-safe ones in M)
		switch {
		case g.inHop && g.hopS: // sret would execute in S mode, wfi would wait
			g.ins("mret")
		case g.inHop:
			g.ins("%s", g.pick([]string{"mret", "sret", "wfi"}))
		default:
			g.ins("ecall")
		}
	default:
		if g.opts.NoReserved {
			g.ins(".2byte 0x0000")
			return
		}
		// reserved compressed encodings
		var h uint32
		switch g.intn(5) {
		case 0: // c.addi4spn with nzuimm = 0, rd' != 0
			h = uint32(1+g.intn(7)) << 2
		case 1: // c.lui rd, 0
			rd := g.dst()
			for rd == 2 {
				rd = g.dst()
			}
			h = 0x6001 | uint32(rd)<<7
		case 2: // c.addi16sp with 0
			h = 0x6101
		case 3: // c.jr x0
			h = 0x8002
		default: // c.ldsp x0 / c.lwsp x0
			h = []uint32{0x6002, 0x4002}[g.intn(2)] | uint32(g.intn(32))<<2
		}
		g.ins(".2byte 0x%04x", h)
	}
}

// ---------------------------------------------------------------- privilege hops

// hop drops to S or U mode with mret, runs a few random items there and
// comes back with an ecall the M handler recognises by its address.
func (g *gen) hop() {
	g.inHop = true
	g.hopS = g.chance(0.5)
	body, end := g.newLabel("hop"), g.newLabel("hopend")
	t := g.dst()
	// delegate a random set of exceptions to S, never the ecalls from U/S
	deleg := g.r.Uint64() & (1<<0 | 1<<2 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<12 | 1<<13 | 1<<15)
	g.paged = !g.opts.NoPaging && g.chance(0.5)
	if g.chance(0.3) || (g.paged && !g.hopS) {
		deleg = 0 // the S handler is not executable through a U page
	}
	g.li(t, int64(deleg))
	g.ins("csrw medeleg, %s", reg(t))
	if g.paged {
		root := "pt_rootU"
		if g.hopS {
			root = "pt_rootS"
		}
		g.ins("la %s, %s", reg(t), root)
		g.ins("srli %s, %s, 12", reg(t), reg(t))
		g.ins("sd %s, %d(gp)", reg(t), offHopEnd) // park it
		g.ins("li %s, %d", reg(t), -1<<63|int64(g.intn(1<<16))<<44)
		t2 := g.dst()
		for t2 == t {
			t2 = g.dst()
		}
		g.ins("ld %s, %d(gp)", reg(t2), offHopEnd)
		g.ins("or %s, %s, %s", reg(t), reg(t), reg(t2))
		g.ins("csrw satp, %s", reg(t))
		g.ins("sfence.vma")
		// SUM and MXR
		g.ins("li %s, 0xc0000", reg(t))
		g.ins("csrc mstatus, %s", reg(t))
		g.ins("li %s, 0x%x", reg(t), g.intn(4)<<18)
		g.ins("csrs mstatus, %s", reg(t))
	} else {
		g.ins("csrw satp, x0")
	}
	g.ins("la %s, %s", reg(t), end)
	g.ins("sd %s, %d(gp)", reg(t), offHopEnd)
	g.ins("li %s, 0x1800", reg(t))
	g.ins("csrc mstatus, %s", reg(t))
	if g.hopS {
		g.ins("li %s, 0x800", reg(t))
		g.ins("csrs mstatus, %s", reg(t))
	}
	g.ins("la %s, %s", reg(t), body)
	g.ins("csrw mepc, %s", reg(t))
	g.ins("mret")
	g.w("%s:", body)
	for k := g.between(3, 12); k > 0; k-- {
		g.item(0)
	}
	g.w("%s:", end)
	g.ins("ecall")
	g.inHop, g.paged = false, false
}

// ---------------------------------------------------------------- data

func (g *gen) data() {
	g.w("")
	g.w("\t.data")
	g.w("\t.p2align 12")
	g.w("scratch:")
	for i := 0; i < (ScratchHi-ScratchLo)/8; i++ {
		g.w("\t.dword 0x%016x", uint64(g.value()))
	}
	g.w("\t.space %d", scratchSize-(ScratchHi-ScratchLo))
}
