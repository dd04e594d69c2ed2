package rv64

import (
	"encoding/binary"
	"math/bits"
)

// runFast executes up to budget instructions from c.pc and returns how many
// of them it left unexecuted, with c.pc at the next instruction. It stops
// before any instruction that needs more than registers, RAM and the decode
// cache: an undecoded slot, a fetch that misses the TLB, a load or store that
// misses the RAM fast path or stores into a decoded page, system ops, traps.
//
// It contains no calls: Go's ABI has no callee-saved registers, so a call
// anywhere in the loop made the compiler keep pc, the count and the page in
// stack slots, reloaded and stored on every instruction (half the run time).
// Instead of pc it keeps the page's virtual base and a slot index i; i >=
// slotsPer at the top of the loop means control left the page, which covers
// fall-through, branches and jumps alike and proves the slot index in bounds.
//
// The ALU and M-extension cases repeat exec's on purpose: a shared helper
// would be a call (see above), and exec must execute them too (the first
// instruction of every Run and anything after a slow path goes through
// step). FuzzExecute runs a twin CPU that only single-steps through exec and
// compares the two, so an edit to one copy alone fails it.
func (c *CPU) runFast(budget uint64) (left uint64) {
	x := &c.x
	ram := c.ram
	ramBase := c.ramBase
	ramLen := uint64(len(ram))
	left = budget
	var (
		pg   *codePage
		pgVA uint64 // virtual address of pg
		i    uint64 // slot index of the next instruction in pg
	)
	pc := c.pc

page:
	// Find the decoded page for pc without a call, or leave it to step.
	{
		var off uint64
		if !c.fetchTLB {
			off = pc - ramBase
			if off >= ramLen {
				goto out
			}
		} else {
			e := &c.itlb.x[(pc>>pageShift)&tlbMask]
			if e.tag != pc>>pageShift {
				goto out
			}
			off = pc + e.add
		}
		pn := off >> pageShift
		if pn >= uint64(len(c.code)) {
			goto out
		}
		pg = c.code[pn]
		if pg == nil || pg.gen != c.codeGen {
			goto out
		}
		pgVA = pc &^ (pageSize - 1)
		i = (pc & (pageSize - 1)) >> 1
	}

	for left != 0 {
		if i >= slotsPer {
			pc = pgVA + i<<1
			goto page
		}
		in := &pg.slots[i]
		switch in.op {
		case opDecode, opIllegal: // listed so that the jump table starts at 0
			goto exit
		case opNop:
		case opLUI:
			x[in.rd] = uint64(int64(in.imm))
		case opAUIPC:
			x[in.rd] = pgVA + i<<1 + uint64(int64(in.imm))
		case opJAL:
			x[in.rd] = pgVA + i<<1 + uint64(in.len)
			i += uint64(int64(in.imm >> 1))
			left--
			continue
		case opJALR:
			t := pgVA + i<<1 + uint64(in.len)
			i = ((x[in.rs1]+uint64(int64(in.imm)))&^1 - pgVA) >> 1
			x[in.rd] = t
			left--
			continue
		case opBEQ:
			if x[in.rs1] == x[in.rs2] {
				i += uint64(int64(in.imm >> 1))
				left--
				continue
			}
		case opBNE:
			if x[in.rs1] != x[in.rs2] {
				i += uint64(int64(in.imm >> 1))
				left--
				continue
			}
		case opBLT:
			if int64(x[in.rs1]) < int64(x[in.rs2]) {
				i += uint64(int64(in.imm >> 1))
				left--
				continue
			}
		case opBGE:
			if int64(x[in.rs1]) >= int64(x[in.rs2]) {
				i += uint64(int64(in.imm >> 1))
				left--
				continue
			}
		case opBLTU:
			if x[in.rs1] < x[in.rs2] {
				i += uint64(int64(in.imm >> 1))
				left--
				continue
			}
		case opBGEU:
			if x[in.rs1] >= x[in.rs2] {
				i += uint64(int64(in.imm >> 1))
				left--
				continue
			}

		// Loads and stores: physical RAM offset from the bare check or the
		// data TLB, else out to step. Stores also go out when the page holds
		// decoded code (step invalidates it).
		case opLB, opLBU:
			va := x[in.rs1] + uint64(int64(in.imm))
			var off uint64
			if !c.dataTLB {
				off = va - ramBase
			} else if e := &c.dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift {
				off = va + e.add
			} else {
				goto exit
			}
			if off >= ramLen {
				goto exit
			}
			v := uint64(ram[off])
			if in.op == opLB {
				v = uint64(int8(v))
			}
			x[in.rd] = v
		case opLH, opLHU:
			va := x[in.rs1] + uint64(int64(in.imm))
			var off uint64
			if !c.dataTLB {
				off = va - ramBase
			} else if e := &c.dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-2 {
				off = va + e.add
			} else {
				goto exit
			}
			if off >= ramLen-1 {
				goto exit
			}
			v := uint64(binary.LittleEndian.Uint16(ram[off:]))
			if in.op == opLH {
				v = uint64(int16(v))
			}
			x[in.rd] = v
		case opLW, opLWU:
			va := x[in.rs1] + uint64(int64(in.imm))
			var off uint64
			if !c.dataTLB {
				off = va - ramBase
			} else if e := &c.dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-4 {
				off = va + e.add
			} else {
				goto exit
			}
			if off >= ramLen-3 {
				goto exit
			}
			v := uint64(binary.LittleEndian.Uint32(ram[off:]))
			if in.op == opLW {
				v = uint64(int32(v))
			}
			x[in.rd] = v
		case opLD:
			va := x[in.rs1] + uint64(int64(in.imm))
			var off uint64
			if !c.dataTLB {
				off = va - ramBase
			} else if e := &c.dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-8 {
				off = va + e.add
			} else {
				goto exit
			}
			if off >= ramLen-7 {
				goto exit
			}
			x[in.rd] = binary.LittleEndian.Uint64(ram[off:])
		case opSB:
			va := x[in.rs1] + uint64(int64(in.imm))
			var off uint64
			if !c.dataTLB {
				off = va - ramBase
			} else if e := &c.dtlb.w[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift {
				off = va + e.add
			} else {
				goto exit
			}
			if off >= ramLen || c.codeMap[off>>pageShift] != 0 {
				goto exit
			}
			ram[off] = byte(x[in.rs2])
		case opSH:
			va := x[in.rs1] + uint64(int64(in.imm))
			var off uint64
			if !c.dataTLB {
				off = va - ramBase
			} else if e := &c.dtlb.w[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-2 {
				off = va + e.add
			} else {
				goto exit
			}
			if off >= ramLen-1 || c.codeMap[off>>pageShift]|c.codeMap[(off+1)>>pageShift] != 0 {
				goto exit
			}
			binary.LittleEndian.PutUint16(ram[off:], uint16(x[in.rs2]))
		case opSW:
			va := x[in.rs1] + uint64(int64(in.imm))
			var off uint64
			if !c.dataTLB {
				off = va - ramBase
			} else if e := &c.dtlb.w[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-4 {
				off = va + e.add
			} else {
				goto exit
			}
			if off >= ramLen-3 || c.codeMap[off>>pageShift]|c.codeMap[(off+3)>>pageShift] != 0 {
				goto exit
			}
			binary.LittleEndian.PutUint32(ram[off:], uint32(x[in.rs2]))
		case opSD:
			va := x[in.rs1] + uint64(int64(in.imm))
			var off uint64
			if !c.dataTLB {
				off = va - ramBase
			} else if e := &c.dtlb.w[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-8 {
				off = va + e.add
			} else {
				goto exit
			}
			if off >= ramLen-7 || c.codeMap[off>>pageShift]|c.codeMap[(off+7)>>pageShift] != 0 {
				goto exit
			}
			binary.LittleEndian.PutUint64(ram[off:], x[in.rs2])

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
		default: // undecoded, illegal, system, CSR, atomics: step does them
			goto exit
		}
		// Fall-through to the next instruction.
		i += uint64(in.hw)
		left--
	}
exit:
	pc = pgVA + i<<1
out:
	c.pc = pc
	return left
}
