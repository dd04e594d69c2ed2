package rv64

// inst is one pre-decoded instruction slot (16 bytes). Compressed
// instructions are expanded to their 32-bit equivalents at decode time, so the
// executor never sees the C encoding; len keeps the original length for the
// next PC.
//
// imm is 64-bit because amd64 has no indexed sign-extending 32-bit load: an
// int32 here cost two extra host instructions per use in the dispatch loop.
// That leaves no room for the raw encoding, which only illegal-instruction
// traps need (as mtval): opIllegal and SYSTEM ops keep it in imm (see raw),
// and CSR ops take their CSR number from it. imm comes first: with op first,
// BenchmarkDispatch ran 30 % slower, apparently from 4 KiB aliasing between
// slot loads and register stores (so it depends on where guest code sits).
type inst struct {
	imm int64 // immediate; raw encoding for opIllegal and SYSTEM ops; AMO function for atomics
	op  uint8
	rd  uint8 // 32 (the sink register) when the architectural rd is x0
	rs1 uint8
	rs2 uint8
	len uint8 // 2 or 4
	hw  uint8 // len/2: slots to the next instruction
}

// raw returns the encoding of an opIllegal, SYSTEM or FP instruction (FP
// loads and stores keep their offset in the upper half of imm).
func (in *inst) raw() uint64 { return uint64(uint32(in.imm)) }

// Ops. opDecode must be zero: a zeroed slot means "not decoded yet".
const (
	opDecode uint8 = iota
	opIllegal
	opNop
	opLUI // rd = imm
	opAUIPC
	opJAL
	opJALR
	opBEQ
	opBNE
	opBLT
	opBGE
	opBLTU
	opBGEU
	opLB
	opLH
	opLW
	opLD
	opLBU
	opLHU
	opLWU
	opSB
	opSH
	opSW
	opSD
	opADDI
	opSLTI
	opSLTIU
	opXORI
	opORI
	opANDI
	opSLLI
	opSRLI
	opSRAI
	opADD
	opSUB
	opSLL
	opSLT
	opSLTU
	opXOR
	opSRL
	opSRA
	opOR
	opAND
	opADDIW
	opSLLIW
	opSRLIW
	opSRAIW
	opADDW
	opSUBW
	opSLLW
	opSRLW
	opSRAW
	opMUL
	opMULH
	opMULHSU
	opMULHU
	opDIV
	opDIVU
	opREM
	opREMU
	opMULW
	opDIVW
	opDIVUW
	opREMW
	opREMUW
	opFENCEI
	opECALL
	opEBREAK
	opMRET
	opSRET
	opWFI
	opSFENCE
	opCSRRW
	opCSRRS
	opCSRRC
	opCSRRWI
	opCSRRSI
	opCSRRCI
	// Atomics: imm holds the AMO function (amo* constants), op the width.
	opAMOW
	opAMOD
	// F and D: imm holds the raw encoding (see fp.go); rd, rs1 and rs2 of
	// the loads and stores are the architectural numbers (f0 is a register).
	opFLW
	opFLD
	opFSW
	opFSD
	opFP
	opCount
)

// AMO functions (funct5 of the A extension).
const (
	amoADD  = 0x00
	amoSWAP = 0x01
	amoLR   = 0x02
	amoSC   = 0x03
	amoXOR  = 0x04
	amoOR   = 0x08
	amoAND  = 0x0c
	amoMIN  = 0x10
	amoMAX  = 0x14
	amoMINU = 0x18
	amoMAXU = 0x1c
)

const sink = 32 // writes to x0 land here

func rdOf(r uint32) uint8 {
	if r == 0 {
		return sink
	}
	return uint8(r)
}

func sext(v uint32, bits uint) int32 {
	s := 32 - bits
	return int32(v<<s) >> s
}

// decode32 decodes a 32-bit instruction.
func decode32(w uint32) inst {
	in := inst{len: 4, hw: 2, op: opIllegal}
	var imm int32
	rd := (w >> 7) & 31
	rs1 := (w >> 15) & 31
	rs2 := (w >> 20) & 31
	f3 := (w >> 12) & 7
	f7 := w >> 25
	in.rd = rdOf(rd)
	in.rs1 = uint8(rs1)
	in.rs2 = uint8(rs2)
	immI := int32(w) >> 20
	immS := int32(w&0xfe000000)>>20 | int32((w>>7)&31)
	switch w & 0x7f {
	case 0x37: // LUI
		in.op, imm = opLUI, int32(w&0xfffff000)
	case 0x17:
		in.op, imm = opAUIPC, int32(w&0xfffff000)
	case 0x6f:
		in.op = opJAL
		imm = sext((w>>31)<<20|((w>>12)&0xff)<<12|((w>>20)&1)<<11|((w>>21)&0x3ff)<<1, 21)
	case 0x67:
		if f3 == 0 {
			in.op, imm = opJALR, immI
		}
	case 0x63:
		if f3 != 2 && f3 != 3 {
			in.op = [8]uint8{opBEQ, opBNE, 0, 0, opBLT, opBGE, opBLTU, opBGEU}[f3]
			imm = sext((w>>31)<<12|((w>>7)&1)<<11|((w>>25)&0x3f)<<5|((w>>8)&0xf)<<1, 13)
		}
	case 0x03:
		if f3 != 7 {
			in.op = [8]uint8{opLB, opLH, opLW, opLD, opLBU, opLHU, opLWU}[f3]
			imm = immI
		}
	case 0x23:
		if f3 < 4 {
			in.op = [4]uint8{opSB, opSH, opSW, opSD}[f3]
			imm = immS
		}
	case 0x13:
		imm = immI
		switch f3 {
		case 0:
			in.op = opADDI
		case 2:
			in.op = opSLTI
		case 3:
			in.op = opSLTIU
		case 4:
			in.op = opXORI
		case 6:
			in.op = opORI
		case 7:
			in.op = opANDI
		case 1:
			if w>>26 == 0 {
				in.op, imm = opSLLI, int32((w>>20)&63)
			}
		case 5:
			switch w >> 26 {
			case 0:
				in.op, imm = opSRLI, int32((w>>20)&63)
			case 0x10:
				in.op, imm = opSRAI, int32((w>>20)&63)
			}
		}
	case 0x33:
		switch f7 {
		case 0:
			in.op = [8]uint8{opADD, opSLL, opSLT, opSLTU, opXOR, opSRL, opOR, opAND}[f3]
		case 0x20:
			switch f3 {
			case 0:
				in.op = opSUB
			case 5:
				in.op = opSRA
			}
		case 1:
			in.op = [8]uint8{opMUL, opMULH, opMULHSU, opMULHU, opDIV, opDIVU, opREM, opREMU}[f3]
		}
	case 0x1b:
		switch f3 {
		case 0:
			in.op, imm = opADDIW, immI
		case 1:
			if f7 == 0 {
				in.op, imm = opSLLIW, int32(rs2)
			}
		case 5:
			switch f7 {
			case 0:
				in.op, imm = opSRLIW, int32(rs2)
			case 0x20:
				in.op, imm = opSRAIW, int32(rs2)
			}
		}
	case 0x3b:
		switch f7 {
		case 0:
			switch f3 {
			case 0:
				in.op = opADDW
			case 1:
				in.op = opSLLW
			case 5:
				in.op = opSRLW
			}
		case 0x20:
			switch f3 {
			case 0:
				in.op = opSUBW
			case 5:
				in.op = opSRAW
			}
		case 1:
			switch f3 {
			case 0:
				in.op = opMULW
			case 4:
				in.op = opDIVW
			case 5:
				in.op = opDIVUW
			case 6:
				in.op = opREMW
			case 7:
				in.op = opREMUW
			}
		}
	case 0x0f:
		switch f3 {
		case 0: // FENCE (any fields, as QEMU): ordering is a no-op here
			in.op = opNop
		case 1:
			in.op = opFENCEI
		}
	case 0x73:
		switch f3 {
		case 0:
			switch {
			case w == 0x00000073:
				in.op = opECALL
			case w == 0x00100073:
				in.op = opEBREAK
			case w == 0x30200073:
				in.op = opMRET
			case w == 0x10200073:
				in.op = opSRET
			case w == 0x10500073:
				in.op = opWFI
			case f7 == 0x09 && rd == 0:
				in.op = opSFENCE
			}
		case 1:
			in.op = opCSRRW
		case 2:
			in.op = opCSRRS
		case 3:
			in.op = opCSRRC
		case 5:
			in.op = opCSRRWI
		case 6:
			in.op = opCSRRSI
		case 7:
			in.op = opCSRRCI
		}
	case 0x2f:
		if f3 != 2 && f3 != 3 {
			break
		}
		f5 := w >> 27
		switch f5 {
		case amoLR:
			if rs2 != 0 {
				break
			}
			fallthrough
		case amoADD, amoSWAP, amoSC, amoXOR, amoOR, amoAND, amoMIN, amoMAX, amoMINU, amoMAXU:
			in.op = opAMOW
			if f3 == 3 {
				in.op = opAMOD
			}
			imm = int32(f5)
		}
	}
	switch w & 0x7f {
	case 0x07: // FLW, FLD
		if f3 == 2 || f3 == 3 {
			in.op, in.rd = opFLW+uint8(f3-2), uint8(rd)
			return fpMemInst(in, immI, w)
		}
	case 0x27: // FSW, FSD
		if f3 == 2 || f3 == 3 {
			in.op, in.rd = opFSW+uint8(f3-2), sink
			return fpMemInst(in, immS, w)
		}
	case 0x43, 0x47, 0x4b, 0x4f, 0x53: // fused multiply-add, OP-FP: fp.go decodes the rest
		in.op, in.rd, in.imm = opFP, sink, int64(w)
		return in
	}
	in.imm = int64(imm)
	switch {
	case in.op == opIllegal:
		in.rd, in.rs1, in.rs2, in.imm = 0, 0, 0, int64(w)
	case w&0x7f == 0x73: // SYSTEM: CSR number and mtval for illegal cases
		in.imm = int64(w)
	}
	return in
}

func decode16(h uint32) inst {
	in := inst{len: 2, hw: 1, op: opIllegal}
	f3 := (h >> 13) & 7
	rdp := uint8(8 + (h>>2)&7) // rd'/rs2' in bits 4:2
	rs1p := uint8(8 + (h>>7)&7)
	rd := (h >> 7) & 31
	rs2 := (h >> 2) & 31
	b12 := (h >> 12) & 1
	imm6 := sext(b12<<5|(h>>2)&31, 6)
	set := func(op uint8, d, s1, s2 uint8, imm int32) {
		in.op, in.rd, in.rs1, in.rs2, in.imm = op, d, s1, s2, int64(imm)
		if in.rd == 0 {
			in.rd = sink
		}
	}
	switch h & 3 {
	case 0:
		switch f3 {
		case 0: // C.ADDI4SPN
			imm := ((h>>11)&3)<<4 | ((h>>7)&0xf)<<6 | ((h>>6)&1)<<2 | ((h>>5)&1)<<3
			if imm != 0 {
				set(opADDI, rdp, 2, 0, int32(imm))
			}
		case 1: // C.FLD (RV64 has no C.FLW: f3 3 is C.LD)
			in.op, in.rd, in.rs1 = opFLD, rdp, rs1p
			return fpMemInst(in, int32(((h>>10)&7)<<3|((h>>5)&3)<<6), h)
		case 5: // C.FSD
			in.op, in.rd, in.rs1, in.rs2 = opFSD, sink, rs1p, rdp
			return fpMemInst(in, int32(((h>>10)&7)<<3|((h>>5)&3)<<6), h)
		case 2: // C.LW
			set(opLW, rdp, rs1p, 0, int32(((h>>10)&7)<<3|((h>>6)&1)<<2|((h>>5)&1)<<6))
		case 3: // C.LD
			set(opLD, rdp, rs1p, 0, int32(((h>>10)&7)<<3|((h>>5)&3)<<6))
		case 6: // C.SW
			set(opSW, sink, rs1p, rdp, int32(((h>>10)&7)<<3|((h>>6)&1)<<2|((h>>5)&1)<<6))
		case 7: // C.SD
			set(opSD, sink, rs1p, rdp, int32(((h>>10)&7)<<3|((h>>5)&3)<<6))
		}
	case 1:
		switch f3 {
		case 0: // C.ADDI (rd=0: C.NOP/hint)
			set(opADDI, uint8(rd), uint8(rd), 0, imm6)
		case 1: // C.ADDIW
			if rd != 0 {
				set(opADDIW, uint8(rd), uint8(rd), 0, imm6)
			}
		case 2: // C.LI
			set(opADDI, uint8(rd), 0, 0, imm6)
		case 3:
			if rd == 2 { // C.ADDI16SP
				imm := sext(b12<<9|((h>>6)&1)<<4|((h>>5)&1)<<6|((h>>3)&3)<<7|((h>>2)&1)<<5, 10)
				if imm != 0 {
					set(opADDI, 2, 2, 0, imm)
				}
			} else if imm6 != 0 { // C.LUI
				set(opLUI, uint8(rd), 0, 0, imm6<<12)
			}
		case 4:
			switch (h >> 10) & 3 {
			case 0: // C.SRLI
				set(opSRLI, rs1p, rs1p, 0, int32(b12<<5|(h>>2)&31))
			case 1: // C.SRAI
				set(opSRAI, rs1p, rs1p, 0, int32(b12<<5|(h>>2)&31))
			case 2: // C.ANDI
				set(opANDI, rs1p, rs1p, 0, imm6)
			case 3:
				op := [8]uint8{opSUB, opXOR, opOR, opAND, opSUBW, opADDW, 0, 0}[b12<<2|(h>>5)&3]
				if op != 0 {
					set(op, rs1p, rs1p, rdp, 0)
				}
			}
		case 5: // C.J
			set(opJAL, sink, 0, 0, sext(b12<<11|((h>>11)&1)<<4|((h>>9)&3)<<8|((h>>8)&1)<<10|
				((h>>7)&1)<<6|((h>>6)&1)<<7|((h>>3)&7)<<1|((h>>2)&1)<<5, 12))
		case 6, 7: // C.BEQZ, C.BNEZ
			op := opBEQ
			if f3 == 7 {
				op = opBNE
			}
			set(op, sink, rs1p, 0, sext(b12<<8|((h>>10)&3)<<3|((h>>5)&3)<<6|((h>>3)&3)<<1|((h>>2)&1)<<5, 9))
		}
	case 2:
		switch f3 {
		case 0: // C.SLLI
			set(opSLLI, uint8(rd), uint8(rd), 0, int32(b12<<5|rs2))
		case 1: // C.FLDSP (f0 allowed)
			in.op, in.rd, in.rs1 = opFLD, uint8(rd), 2
			return fpMemInst(in, int32(b12<<5|((h>>5)&3)<<3|((h>>2)&7)<<6), h)
		case 5: // C.FSDSP
			in.op, in.rd, in.rs1, in.rs2 = opFSD, sink, 2, uint8(rs2)
			return fpMemInst(in, int32(((h>>10)&7)<<3|((h>>7)&7)<<6), h)
		case 2: // C.LWSP
			if rd != 0 {
				set(opLW, uint8(rd), 2, 0, int32(b12<<5|((h>>4)&7)<<2|((h>>2)&3)<<6))
			}
		case 3: // C.LDSP
			if rd != 0 {
				set(opLD, uint8(rd), 2, 0, int32(b12<<5|((h>>5)&3)<<3|((h>>2)&7)<<6))
			}
		case 4:
			switch {
			case b12 == 0 && rs2 == 0: // C.JR
				if rd != 0 {
					set(opJALR, sink, uint8(rd), 0, 0)
				}
			case b12 == 0: // C.MV
				set(opADD, uint8(rd), 0, uint8(rs2), 0)
			case rd == 0 && rs2 == 0: // C.EBREAK
				set(opEBREAK, sink, 0, 0, 0)
			case rs2 == 0: // C.JALR
				set(opJALR, 1, uint8(rd), 0, 0)
			default: // C.ADD
				set(opADD, uint8(rd), uint8(rd), uint8(rs2), 0)
			}
		case 6: // C.SWSP
			set(opSW, sink, 2, uint8(rs2), int32(((h>>9)&0xf)<<2|((h>>7)&3)<<6))
		case 7: // C.SDSP
			set(opSD, sink, 2, uint8(rs2), int32(((h>>10)&7)<<3|((h>>7)&7)<<6))
		}
	}
	if in.op == opIllegal {
		in.rd, in.rs1, in.rs2, in.imm = 0, 0, 0, int64(h)
	}
	return in
}

// fpMemInst finishes an FP load or store: offset and raw encoding in imm.
func fpMemInst(in inst, off int32, raw uint32) inst {
	in.imm = int64(off)<<32 | int64(raw)
	return in
}

// decode decodes the instruction whose low 16 bits are lo and, for a 32-bit
// instruction, high 16 bits hi.
func decode(lo, hi uint16) inst {
	if lo&3 != 3 {
		return decode16(uint32(lo))
	}
	return decode32(uint32(lo) | uint32(hi)<<16)
}
