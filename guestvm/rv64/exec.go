package rv64

import "math/bits"

// Run executes at most budget instructions. It stops exactly at budget
// (StopBudget), after a WFI that found no interrupt pending (StopIdle), or
// after the instruction during which RequestStop was called (StopRequested).
//
// Most instructions run in runFast, a loop with no calls in it so that Go's
// register allocator (which has no callee-saved registers) keeps its state in
// registers. It stops before anything that needs a call, and step executes
// that one instruction.
func (c *CPU) Run(budget uint64) (executed uint64, why Stop) {
	c.stopReq = false
	var n uint64
	for n < budget {
		why := c.step()
		n++
		if why != StopBudget {
			return n, why
		}
		if n < budget {
			k := budget - n - c.runFast(budget-n)
			c.icount += k
			n += k
		}
	}
	return n, StopBudget
}

// step executes one instruction, or takes the instruction fault of fetching
// it, with the general interpreter. Pending interrupts are taken before and
// after it: runFast changes nothing they depend on, so these are all the
// boundaries where one can become takeable.
func (c *CPU) step() Stop {
	if c.mip()&c.mie != 0 {
		c.takeInterrupt()
	}
	c.cur = 1 // ICount inside bus callbacks includes this instruction
	idle := c.exec()
	c.icount++
	c.cur = 0
	if idle {
		return StopIdle
	}
	if c.stopReq {
		c.stopReq = false
		return StopRequested
	}
	if c.mip()&c.mie != 0 {
		c.takeInterrupt()
	}
	return StopBudget
}

// exec executes the instruction at c.pc and leaves c.pc at the next one or
// at a trap vector. It reports whether it was a WFI that found no interrupt
// pending.
func (c *CPU) exec() (idle bool) {
	pc := c.pc
	pg := c.fetchPage(pc)
	if pg == nil {
		return false // instruction fault taken
	}
	in := &pg.slots[(pc>>1)&(slotsPer-1)]
	if in.op == opDecode {
		o := pc & (pageSize - 1)
		lo := uint16(c.ram[pg.off+o]) | uint16(c.ram[pg.off+o+1])<<8
		switch {
		case lo&3 != 3:
			*in = decode16(uint32(lo))
		case o == pageSize-2:
			// The upper half is on the next page: decoded anew each time.
			p, ok := c.fetchCross(pc, lo)
			if !ok {
				return false
			}
			in = p
		default:
			hi := uint16(c.ram[pg.off+o+2]) | uint16(c.ram[pg.off+o+3])<<8
			*in = decode(lo, hi)
		}
	}
	if in.len == 4 && c.fetchTLB && pc&(pageSize-1) != pageSize-2 && !c.upperOK(pc, pg) {
		return false
	}
	x := &c.x
	next := pc + uint64(in.len)
	switch in.op {
	case opIllegal:
		c.trap(excIllegal, in.raw())
		return false
	case opNop:
	case opLUI:
		x[in.rd] = uint64(in.imm)
	case opAUIPC:
		x[in.rd] = pc + uint64(in.imm)
	case opJAL:
		x[in.rd] = next
		next = pc + uint64(in.imm)
	case opJALR:
		t := (x[in.rs1] + uint64(in.imm)) &^ 1
		x[in.rd] = next
		next = t
	case opBEQ, opBNE, opBLT, opBGE, opBLTU, opBGEU:
		a, b := x[in.rs1], x[in.rs2]
		var taken bool
		switch in.op {
		case opBEQ:
			taken = a == b
		case opBNE:
			taken = a != b
		case opBLT:
			taken = int64(a) < int64(b)
		case opBGE:
			taken = int64(a) >= int64(b)
		case opBLTU:
			taken = a < b
		case opBGEU:
			taken = a >= b
		}
		if taken {
			next = pc + uint64(in.imm)
		}
	case opLB, opLH, opLW, opLD, opLBU, opLHU, opLWU:
		size := [...]int{opLB: 1, opLH: 2, opLW: 4, opLD: 8, opLBU: 1, opLHU: 2, opLWU: 4}[in.op]
		v, ok := c.load(x[in.rs1]+uint64(in.imm), size)
		if !ok {
			return false
		}
		switch in.op {
		case opLB:
			v = uint64(int8(v))
		case opLH:
			v = uint64(int16(v))
		case opLW:
			v = uint64(int32(v))
		}
		x[in.rd] = v
	case opSB, opSH, opSW, opSD:
		size := [...]int{opSB: 1, opSH: 2, opSW: 4, opSD: 8}[in.op]
		if !c.store(x[in.rs1]+uint64(in.imm), size, x[in.rs2]) {
			return false
		}
	case opADDI:
		x[in.rd] = x[in.rs1] + uint64(int64(in.imm))
	case opSLTI:
		x[in.rd] = b2u(int64(x[in.rs1]) < int64(in.imm))
	case opSLTIU:
		x[in.rd] = b2u(x[in.rs1] < uint64(int64(in.imm)))
	case opXORI:
		x[in.rd] = x[in.rs1] ^ uint64(int64(in.imm))
	case opORI:
		x[in.rd] = x[in.rs1] | uint64(int64(in.imm))
	case opANDI:
		x[in.rd] = x[in.rs1] & uint64(int64(in.imm))
	case opSLLI:
		x[in.rd] = x[in.rs1] << (in.imm & 63)
	case opSRLI:
		x[in.rd] = x[in.rs1] >> (in.imm & 63)
	case opSRAI:
		x[in.rd] = uint64(int64(x[in.rs1]) >> (in.imm & 63))
	case opADD:
		x[in.rd] = x[in.rs1] + x[in.rs2]
	case opSUB:
		x[in.rd] = x[in.rs1] - x[in.rs2]
	case opSLL:
		x[in.rd] = x[in.rs1] << (x[in.rs2] & 63)
	case opSLT:
		x[in.rd] = b2u(int64(x[in.rs1]) < int64(x[in.rs2]))
	case opSLTU:
		x[in.rd] = b2u(x[in.rs1] < x[in.rs2])
	case opXOR:
		x[in.rd] = x[in.rs1] ^ x[in.rs2]
	case opSRL:
		x[in.rd] = x[in.rs1] >> (x[in.rs2] & 63)
	case opSRA:
		x[in.rd] = uint64(int64(x[in.rs1]) >> (x[in.rs2] & 63))
	case opOR:
		x[in.rd] = x[in.rs1] | x[in.rs2]
	case opAND:
		x[in.rd] = x[in.rs1] & x[in.rs2]
	case opADDIW:
		x[in.rd] = uint64(int64(int32(x[in.rs1]) + int32(in.imm)))
	case opSLLIW:
		x[in.rd] = uint64(int64(int32(uint32(x[in.rs1]) << (in.imm & 31))))
	case opSRLIW:
		x[in.rd] = uint64(int64(int32(uint32(x[in.rs1]) >> (in.imm & 31))))
	case opSRAIW:
		x[in.rd] = uint64(int64(int32(x[in.rs1]) >> (in.imm & 31)))
	case opADDW:
		x[in.rd] = uint64(int64(int32(x[in.rs1] + x[in.rs2])))
	case opSUBW:
		x[in.rd] = uint64(int64(int32(x[in.rs1] - x[in.rs2])))
	case opSLLW:
		x[in.rd] = uint64(int64(int32(uint32(x[in.rs1]) << (x[in.rs2] & 31))))
	case opSRLW:
		x[in.rd] = uint64(int64(int32(uint32(x[in.rs1]) >> (x[in.rs2] & 31))))
	case opSRAW:
		x[in.rd] = uint64(int64(int32(x[in.rs1]) >> (x[in.rs2] & 31)))
	case opMUL:
		x[in.rd] = x[in.rs1] * x[in.rs2]
	case opMULH:
		x[in.rd] = mulh(int64(x[in.rs1]), int64(x[in.rs2]))
	case opMULHSU:
		x[in.rd] = mulhsu(int64(x[in.rs1]), x[in.rs2])
	case opMULHU:
		x[in.rd], _ = bits.Mul64(x[in.rs1], x[in.rs2])
	case opDIV:
		x[in.rd] = div(int64(x[in.rs1]), int64(x[in.rs2]))
	case opDIVU:
		a, b := x[in.rs1], x[in.rs2]
		if b == 0 {
			x[in.rd] = ^uint64(0)
		} else {
			x[in.rd] = a / b
		}
	case opREM:
		x[in.rd] = rem(int64(x[in.rs1]), int64(x[in.rs2]))
	case opREMU:
		a, b := x[in.rs1], x[in.rs2]
		if b != 0 {
			a %= b
		}
		x[in.rd] = a
	case opMULW:
		x[in.rd] = uint64(int64(int32(x[in.rs1] * x[in.rs2])))
	case opDIVW:
		x[in.rd] = divw(int32(x[in.rs1]), int32(x[in.rs2]))
	case opDIVUW:
		a, b := uint32(x[in.rs1]), uint32(x[in.rs2])
		if b == 0 {
			x[in.rd] = ^uint64(0)
		} else {
			x[in.rd] = uint64(int64(int32(a / b)))
		}
	case opREMW:
		x[in.rd] = remw(int32(x[in.rs1]), int32(x[in.rs2]))
	case opREMUW:
		a, b := uint32(x[in.rs1]), uint32(x[in.rs2])
		if b != 0 {
			a %= b
		}
		x[in.rd] = uint64(int64(int32(a)))
	case opWFI:
		if c.priv == PrivU || (c.priv == PrivS && c.mstatus&msTW != 0) {
			c.trap(excIllegal, in.raw())
			return false
		}
		c.pc = next
		return !c.InterruptPending()
	case opAMOW, opAMOD:
		c.amo(in)
		return false
	case opFLW, opFLD, opFSW, opFSD:
		c.fpMem(in)
		return false
	case opFP:
		c.fpOp(in)
		return false
	default: // system and CSR instructions
		c.system(in)
		return false
	}
	c.pc = next
	return false
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func mulh(a, b int64) uint64 {
	hi, _ := bits.Mul64(uint64(a), uint64(b))
	if a < 0 {
		hi -= uint64(b)
	}
	if b < 0 {
		hi -= uint64(a)
	}
	return hi
}

func mulhsu(a int64, b uint64) uint64 {
	hi, _ := bits.Mul64(uint64(a), b)
	if a < 0 {
		hi -= b
	}
	return hi
}

// Division follows the M extension: no traps; x/0 = -1, x%0 = x, and
// MIN/-1 overflows to MIN with remainder 0.
func div(a, b int64) uint64 {
	switch b {
	case 0:
		return ^uint64(0)
	case -1:
		return uint64(-a)
	}
	return uint64(a / b)
}

func rem(a, b int64) uint64 {
	switch b {
	case 0:
		return uint64(a)
	case -1:
		return 0
	}
	return uint64(a % b)
}

func divw(a, b int32) uint64 {
	switch b {
	case 0:
		return ^uint64(0)
	case -1:
		return uint64(int64(-a))
	}
	return uint64(int64(a / b))
}

func remw(a, b int32) uint64 {
	switch b {
	case 0:
		return uint64(int64(a))
	case -1:
		return 0
	}
	return uint64(int64(a % b))
}

// upperOK checks PMP for the upper half of a 32-bit instruction on a page
// that is not in the fetch TLB (PMP may then decide differently for its two
// halves; QEMU fetches them separately) and takes the fault if it fails.
func (c *CPU) upperOK(pc uint64, pg *codePage) bool {
	if c.itlb.x[(pc>>pageShift)&tlbMask].tag == pc>>pageShift {
		return true
	}
	pa := c.ramBase + pg.off + pc&(pageSize-1) + 2
	if c.pmpAllows(pa, 2, accFetch, c.priv) {
		return true
	}
	c.trap(excInstAccess, pc+2)
	return false
}
