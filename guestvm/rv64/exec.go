package rv64

import (
	"encoding/binary"
	"math/bits"
)

// enter publishes the loop's local state before an out-of-line operation:
// the PC of the executing instruction and the count retired before it.
func (c *CPU) enter(pc, retired uint64) {
	c.pc = pc
	c.icount = retired
	c.cur = 1
}

// Run executes at most budget instructions. It stops exactly at budget
// (StopBudget), after a WFI that found no interrupt pending (StopIdle), or
// after the instruction during which RequestStop was called (StopRequested).
//
// The loop keeps pc, the instruction count and the current code page in
// locals; every out-of-line operation publishes them with enter and comes
// back through resync (state may have changed: reload everything, check
// interrupts) or resume (only devices may have changed: check interrupts).
func (c *CPU) Run(budget uint64) (executed uint64, why Stop) {
	if budget == 0 {
		return 0, StopBudget
	}
	c.stopReq = false
	base := c.icount
	var n uint64
	x := &c.x
	ram := c.ram
	ramBase := c.ramBase
	ramLen := uint64(len(ram))
	codeMap := c.codeMap
	var (
		pc      uint64
		pg      *codePage
		pageTag uint64
		dpaging bool
		dtlb    *tlbSet
		in      *inst
	)

resync:
	pc = c.pc
	pageTag = noTag
	c.icount, c.cur = base+n, 0
	if c.stopReq {
		c.stopReq = false
		return n, StopRequested
	}
	if c.mip()&c.mie != 0 && c.takeInterrupt() {
		pc = c.pc
	}
	dpaging = c.dataPaging
	dtlb = c.dtlb
	goto loop

resume:
	// After an out-of-line load/store that did not trap: translation is
	// unchanged, but a device may have raised a line or asked to stop.
	c.icount, c.cur = base+n, 0
	c.pc = pc
	if c.stopReq || c.mip()&c.mie != 0 {
		goto resync
	}

loop:
	for n < budget {
		n++
		if pc>>pageShift != pageTag {
			c.enter(pc, base+n-1)
			if pg = c.fetchPage(pc); pg == nil {
				goto resync // instruction fault taken
			}
			pageTag = pc >> pageShift
		}
		in = &pg.slots[(pc>>1)&(slotsPer-1)]
	dispatch:
		switch in.op {
		case opDecode:
			o := pc & (pageSize - 1)
			off := pg.off + o
			lo := binary.LittleEndian.Uint16(ram[off:])
			if lo&3 == 3 {
				if o == pageSize-2 {
					c.enter(pc, base+n-1)
					p, ok := c.fetchCross(pc, lo)
					if !ok {
						goto resync
					}
					in = p
					goto dispatch
				}
				*in = decode32(binary.LittleEndian.Uint32(ram[off:]))
			} else {
				*in = decode16(uint32(lo))
			}
			goto dispatch
		case opIllegal:
			c.enter(pc, base+n-1)
			c.trap(excIllegal, uint64(in.raw))
			goto resync
		case opNop:
			pc += uint64(in.len)
		case opLUI:
			x[in.rd&63] = uint64(int64(in.imm))
			pc += uint64(in.len)
		case opAUIPC:
			x[in.rd&63] = pc + uint64(int64(in.imm))
			pc += uint64(in.len)
		case opJAL:
			x[in.rd&63] = pc + uint64(in.len)
			pc += uint64(int64(in.imm))
		case opJALR:
			t := pc + uint64(in.len)
			pc = (x[in.rs1&63] + uint64(int64(in.imm))) &^ 1
			x[in.rd&63] = t
		case opBEQ:
			if x[in.rs1&63] == x[in.rs2&63] {
				pc += uint64(int64(in.imm))
			} else {
				pc += uint64(in.len)
			}
		case opBNE:
			if x[in.rs1&63] != x[in.rs2&63] {
				pc += uint64(int64(in.imm))
			} else {
				pc += uint64(in.len)
			}
		case opBLT:
			if int64(x[in.rs1&63]) < int64(x[in.rs2&63]) {
				pc += uint64(int64(in.imm))
			} else {
				pc += uint64(in.len)
			}
		case opBGE:
			if int64(x[in.rs1&63]) >= int64(x[in.rs2&63]) {
				pc += uint64(int64(in.imm))
			} else {
				pc += uint64(in.len)
			}
		case opBLTU:
			if x[in.rs1&63] < x[in.rs2&63] {
				pc += uint64(int64(in.imm))
			} else {
				pc += uint64(in.len)
			}
		case opBGEU:
			if x[in.rs1&63] >= x[in.rs2&63] {
				pc += uint64(int64(in.imm))
			} else {
				pc += uint64(in.len)
			}
		case opLB:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			if !dpaging {
				if off := va - ramBase; off < ramLen {
					x[in.rd&63] = uint64(int8(ram[off]))
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-1 {
				off := va + e.add
				x[in.rd&63] = uint64(int8(ram[off]))
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			v, ok := c.load(va, 1)
			if !ok {
				goto resync
			}
			x[in.rd&63] = uint64(int8(v))
			pc += uint64(in.len)
			goto resume
		case opLH:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			if !dpaging {
				if off := va - ramBase; off < ramLen-1 {
					x[in.rd&63] = uint64(int16(binary.LittleEndian.Uint16(ram[off:])))
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-2 {
				off := va + e.add
				x[in.rd&63] = uint64(int16(binary.LittleEndian.Uint16(ram[off:])))
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			v, ok := c.load(va, 2)
			if !ok {
				goto resync
			}
			x[in.rd&63] = uint64(int16(v))
			pc += uint64(in.len)
			goto resume
		case opLW:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			if !dpaging {
				if off := va - ramBase; off < ramLen-3 {
					x[in.rd&63] = uint64(int32(binary.LittleEndian.Uint32(ram[off:])))
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-4 {
				off := va + e.add
				x[in.rd&63] = uint64(int32(binary.LittleEndian.Uint32(ram[off:])))
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			v, ok := c.load(va, 4)
			if !ok {
				goto resync
			}
			x[in.rd&63] = uint64(int32(v))
			pc += uint64(in.len)
			goto resume
		case opLD:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			if !dpaging {
				if off := va - ramBase; off < ramLen-7 {
					x[in.rd&63] = binary.LittleEndian.Uint64(ram[off:])
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-8 {
				off := va + e.add
				x[in.rd&63] = binary.LittleEndian.Uint64(ram[off:])
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			v, ok := c.load(va, 8)
			if !ok {
				goto resync
			}
			x[in.rd&63] = v
			pc += uint64(in.len)
			goto resume
		case opLBU:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			if !dpaging {
				if off := va - ramBase; off < ramLen {
					x[in.rd&63] = uint64(ram[off])
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-1 {
				off := va + e.add
				x[in.rd&63] = uint64(ram[off])
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			v, ok := c.load(va, 1)
			if !ok {
				goto resync
			}
			x[in.rd&63] = v
			pc += uint64(in.len)
			goto resume
		case opLHU:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			if !dpaging {
				if off := va - ramBase; off < ramLen-1 {
					x[in.rd&63] = uint64(binary.LittleEndian.Uint16(ram[off:]))
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-2 {
				off := va + e.add
				x[in.rd&63] = uint64(binary.LittleEndian.Uint16(ram[off:]))
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			v, ok := c.load(va, 2)
			if !ok {
				goto resync
			}
			x[in.rd&63] = v
			pc += uint64(in.len)
			goto resume
		case opLWU:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			if !dpaging {
				if off := va - ramBase; off < ramLen-3 {
					x[in.rd&63] = uint64(binary.LittleEndian.Uint32(ram[off:]))
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.r[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-4 {
				off := va + e.add
				x[in.rd&63] = uint64(binary.LittleEndian.Uint32(ram[off:]))
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			v, ok := c.load(va, 4)
			if !ok {
				goto resync
			}
			x[in.rd&63] = v
			pc += uint64(in.len)
			goto resume
		case opSB:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			v := x[in.rs2&63]
			if !dpaging {
				if off := va - ramBase; off < ramLen {
					ram[off] = byte(v)
					if codeMap[off>>pageShift] != 0 {
						c.noteWrite(off, 1)
					}
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.w[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-1 {
				off := va + e.add
				ram[off] = byte(v)
				if codeMap[off>>pageShift] != 0 {
					c.invalidate(off, 1)
				}
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			if !c.store(va, 1, v) {
				goto resync
			}
			pc += uint64(in.len)
			goto resume
		case opSH:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			v := x[in.rs2&63]
			if !dpaging {
				if off := va - ramBase; off < ramLen-1 {
					binary.LittleEndian.PutUint16(ram[off:], uint16(v))
					if codeMap[off>>pageShift] != 0 || codeMap[(off+1)>>pageShift] != 0 {
						c.noteWrite(off, 2)
					}
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.w[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-2 {
				off := va + e.add
				binary.LittleEndian.PutUint16(ram[off:], uint16(v))
				if codeMap[off>>pageShift] != 0 {
					c.invalidate(off, 2)
				}
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			if !c.store(va, 2, v) {
				goto resync
			}
			pc += uint64(in.len)
			goto resume
		case opSW:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			v := x[in.rs2&63]
			if !dpaging {
				if off := va - ramBase; off < ramLen-3 {
					binary.LittleEndian.PutUint32(ram[off:], uint32(v))
					if codeMap[off>>pageShift] != 0 || codeMap[(off+3)>>pageShift] != 0 {
						c.noteWrite(off, 4)
					}
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.w[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-4 {
				off := va + e.add
				binary.LittleEndian.PutUint32(ram[off:], uint32(v))
				if codeMap[off>>pageShift] != 0 {
					c.invalidate(off, 4)
				}
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			if !c.store(va, 4, v) {
				goto resync
			}
			pc += uint64(in.len)
			goto resume
		case opSD:
			va := x[in.rs1&63] + uint64(int64(in.imm))
			v := x[in.rs2&63]
			if !dpaging {
				if off := va - ramBase; off < ramLen-7 {
					binary.LittleEndian.PutUint64(ram[off:], v)
					if codeMap[off>>pageShift] != 0 || codeMap[(off+7)>>pageShift] != 0 {
						c.noteWrite(off, 8)
					}
					pc += uint64(in.len)
					continue
				}
			} else if e := &dtlb.w[(va>>pageShift)&tlbMask]; e.tag == va>>pageShift && va&(pageSize-1) <= pageSize-8 {
				off := va + e.add
				binary.LittleEndian.PutUint64(ram[off:], v)
				if codeMap[off>>pageShift] != 0 {
					c.invalidate(off, 8)
				}
				pc += uint64(in.len)
				continue
			}
			c.enter(pc, base+n-1)
			if !c.store(va, 8, v) {
				goto resync
			}
			pc += uint64(in.len)
			goto resume

		case opADDI:
			x[in.rd&63] = x[in.rs1&63] + uint64(int64(in.imm))
			pc += uint64(in.len)
		case opSLTI:
			x[in.rd&63] = b2u(int64(x[in.rs1&63]) < int64(in.imm))
			pc += uint64(in.len)
		case opSLTIU:
			x[in.rd&63] = b2u(x[in.rs1&63] < uint64(int64(in.imm)))
			pc += uint64(in.len)
		case opXORI:
			x[in.rd&63] = x[in.rs1&63] ^ uint64(int64(in.imm))
			pc += uint64(in.len)
		case opORI:
			x[in.rd&63] = x[in.rs1&63] | uint64(int64(in.imm))
			pc += uint64(in.len)
		case opANDI:
			x[in.rd&63] = x[in.rs1&63] & uint64(int64(in.imm))
			pc += uint64(in.len)
		case opSLLI:
			x[in.rd&63] = x[in.rs1&63] << (in.imm & 63)
			pc += uint64(in.len)
		case opSRLI:
			x[in.rd&63] = x[in.rs1&63] >> (in.imm & 63)
			pc += uint64(in.len)
		case opSRAI:
			x[in.rd&63] = uint64(int64(x[in.rs1&63]) >> (in.imm & 63))
			pc += uint64(in.len)
		case opADD:
			x[in.rd&63] = x[in.rs1&63] + x[in.rs2&63]
			pc += uint64(in.len)
		case opSUB:
			x[in.rd&63] = x[in.rs1&63] - x[in.rs2&63]
			pc += uint64(in.len)
		case opSLL:
			x[in.rd&63] = x[in.rs1&63] << (x[in.rs2&63] & 63)
			pc += uint64(in.len)
		case opSLT:
			x[in.rd&63] = b2u(int64(x[in.rs1&63]) < int64(x[in.rs2&63]))
			pc += uint64(in.len)
		case opSLTU:
			x[in.rd&63] = b2u(x[in.rs1&63] < x[in.rs2&63])
			pc += uint64(in.len)
		case opXOR:
			x[in.rd&63] = x[in.rs1&63] ^ x[in.rs2&63]
			pc += uint64(in.len)
		case opSRL:
			x[in.rd&63] = x[in.rs1&63] >> (x[in.rs2&63] & 63)
			pc += uint64(in.len)
		case opSRA:
			x[in.rd&63] = uint64(int64(x[in.rs1&63]) >> (x[in.rs2&63] & 63))
			pc += uint64(in.len)
		case opOR:
			x[in.rd&63] = x[in.rs1&63] | x[in.rs2&63]
			pc += uint64(in.len)
		case opAND:
			x[in.rd&63] = x[in.rs1&63] & x[in.rs2&63]
			pc += uint64(in.len)
		case opADDIW:
			x[in.rd&63] = uint64(int64(int32(x[in.rs1&63]) + in.imm))
			pc += uint64(in.len)
		case opSLLIW:
			x[in.rd&63] = uint64(int64(int32(uint32(x[in.rs1&63]) << (in.imm & 31))))
			pc += uint64(in.len)
		case opSRLIW:
			x[in.rd&63] = uint64(int64(int32(uint32(x[in.rs1&63]) >> (in.imm & 31))))
			pc += uint64(in.len)
		case opSRAIW:
			x[in.rd&63] = uint64(int64(int32(x[in.rs1&63]) >> (in.imm & 31)))
			pc += uint64(in.len)
		case opADDW:
			x[in.rd&63] = uint64(int64(int32(x[in.rs1&63] + x[in.rs2&63])))
			pc += uint64(in.len)
		case opSUBW:
			x[in.rd&63] = uint64(int64(int32(x[in.rs1&63] - x[in.rs2&63])))
			pc += uint64(in.len)
		case opSLLW:
			x[in.rd&63] = uint64(int64(int32(uint32(x[in.rs1&63]) << (x[in.rs2&63] & 31))))
			pc += uint64(in.len)
		case opSRLW:
			x[in.rd&63] = uint64(int64(int32(uint32(x[in.rs1&63]) >> (x[in.rs2&63] & 31))))
			pc += uint64(in.len)
		case opSRAW:
			x[in.rd&63] = uint64(int64(int32(x[in.rs1&63]) >> (x[in.rs2&63] & 31)))
			pc += uint64(in.len)
		case opMUL:
			x[in.rd&63] = x[in.rs1&63] * x[in.rs2&63]
			pc += uint64(in.len)
		case opMULH:
			x[in.rd&63] = mulh(int64(x[in.rs1&63]), int64(x[in.rs2&63]))
			pc += uint64(in.len)
		case opMULHSU:
			x[in.rd&63] = mulhsu(int64(x[in.rs1&63]), x[in.rs2&63])
			pc += uint64(in.len)
		case opMULHU:
			x[in.rd&63], _ = bits.Mul64(x[in.rs1&63], x[in.rs2&63])
			pc += uint64(in.len)
		case opDIV:
			x[in.rd&63] = div(int64(x[in.rs1&63]), int64(x[in.rs2&63]))
			pc += uint64(in.len)
		case opDIVU:
			a, b := x[in.rs1&63], x[in.rs2&63]
			if b == 0 {
				x[in.rd&63] = ^uint64(0)
			} else {
				x[in.rd&63] = a / b
			}
			pc += uint64(in.len)
		case opREM:
			x[in.rd&63] = rem(int64(x[in.rs1&63]), int64(x[in.rs2&63]))
			pc += uint64(in.len)
		case opREMU:
			a, b := x[in.rs1&63], x[in.rs2&63]
			if b != 0 {
				a %= b
			}
			x[in.rd&63] = a
			pc += uint64(in.len)
		case opMULW:
			x[in.rd&63] = uint64(int64(int32(x[in.rs1&63] * x[in.rs2&63])))
			pc += uint64(in.len)
		case opDIVW:
			x[in.rd&63] = divw(int32(x[in.rs1&63]), int32(x[in.rs2&63]))
			pc += uint64(in.len)
		case opDIVUW:
			a, b := uint32(x[in.rs1&63]), uint32(x[in.rs2&63])
			if b == 0 {
				x[in.rd&63] = ^uint64(0)
			} else {
				x[in.rd&63] = uint64(int64(int32(a / b)))
			}
			pc += uint64(in.len)
		case opREMW:
			x[in.rd&63] = remw(int32(x[in.rs1&63]), int32(x[in.rs2&63]))
			pc += uint64(in.len)
		case opREMUW:
			a, b := uint32(x[in.rs1&63]), uint32(x[in.rs2&63])
			if b != 0 {
				a %= b
			}
			x[in.rd&63] = uint64(int64(int32(a)))
			pc += uint64(in.len)
		case opWFI:
			c.enter(pc, base+n-1)
			if c.priv == PrivU || (c.priv == PrivS && c.mstatus&msTW != 0) {
				c.trap(excIllegal, uint64(in.raw))
				goto resync
			}
			pc += uint64(in.len)
			if !c.InterruptPending() {
				c.pc, c.icount, c.cur = pc, base+n, 0
				return n, StopIdle
			}
			c.pc = pc
			goto resync
		case opAMOW, opAMOD:
			c.enter(pc, base+n-1)
			c.amo(in)
			goto resync
		default: // system and CSR instructions
			c.enter(pc, base+n-1)
			c.system(in)
			goto resync
		}
	}
	c.pc, c.icount, c.cur = pc, base+n, 0
	return n, StopBudget
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
