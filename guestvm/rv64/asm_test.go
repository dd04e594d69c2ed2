package rv64

import (
	"encoding/binary"
	"testing"
)

// A tiny RV64 encoder for hand-assembled tests.

func encR(op, f3, f7, rd, rs1, rs2 uint32) uint32 {
	return f7<<25 | rs2<<20 | rs1<<15 | f3<<12 | rd<<7 | op
}

func encI(op, f3, rd, rs1 uint32, imm int32) uint32 {
	return uint32(imm)<<20 | rs1<<15 | f3<<12 | rd<<7 | op
}

func encS(op, f3, rs1, rs2 uint32, imm int32) uint32 {
	u := uint32(imm)
	return (u>>5&0x7f)<<25 | rs2<<20 | rs1<<15 | f3<<12 | (u&31)<<7 | op
}

func encB(f3, rs1, rs2 uint32, off int32) uint32 {
	u := uint32(off)
	return (u>>12&1)<<31 | (u>>5&0x3f)<<25 | rs2<<20 | rs1<<15 | f3<<12 | (u>>1&0xf)<<8 | (u>>11&1)<<7 | 0x63
}

func encJ(rd uint32, off int32) uint32 {
	u := uint32(off)
	return (u>>20&1)<<31 | (u>>1&0x3ff)<<21 | (u>>11&1)<<20 | (u>>12&0xff)<<12 | rd<<7 | 0x6f
}

func ADDI(rd, rs1 uint32, imm int32) uint32  { return encI(0x13, 0, rd, rs1, imm) }
func ADDIW(rd, rs1 uint32, imm int32) uint32 { return encI(0x1b, 0, rd, rs1, imm) }
func SLLI(rd, rs1, sh uint32) uint32         { return encI(0x13, 1, rd, rs1, int32(sh)) }
func SRLI(rd, rs1, sh uint32) uint32         { return encI(0x13, 5, rd, rs1, int32(sh)) }
func SRAI(rd, rs1, sh uint32) uint32         { return encI(0x13, 5, rd, rs1, int32(sh|0x400)) }
func LUI(rd uint32, imm uint32) uint32       { return imm&0xfffff000 | rd<<7 | 0x37 }
func AUIPC(rd uint32, imm uint32) uint32     { return imm&0xfffff000 | rd<<7 | 0x17 }
func ADD(rd, a, b uint32) uint32             { return encR(0x33, 0, 0, rd, a, b) }
func SUB(rd, a, b uint32) uint32             { return encR(0x33, 0, 0x20, rd, a, b) }
func XOR(rd, a, b uint32) uint32             { return encR(0x33, 4, 0, rd, a, b) }
func MUL(rd, a, b uint32) uint32             { return encR(0x33, 0, 1, rd, a, b) }
func DIVU(rd, a, b uint32) uint32            { return encR(0x33, 5, 1, rd, a, b) }
func REMU(rd, a, b uint32) uint32            { return encR(0x33, 7, 1, rd, a, b) }
func LD(rd, rs1 uint32, imm int32) uint32    { return encI(0x03, 3, rd, rs1, imm) }
func LW(rd, rs1 uint32, imm int32) uint32    { return encI(0x03, 2, rd, rs1, imm) }
func LB(rd, rs1 uint32, imm int32) uint32    { return encI(0x03, 0, rd, rs1, imm) }
func LBU(rd, rs1 uint32, imm int32) uint32   { return encI(0x03, 4, rd, rs1, imm) }
func SD(rs2, rs1 uint32, imm int32) uint32   { return encS(0x23, 3, rs1, rs2, imm) }
func SW(rs2, rs1 uint32, imm int32) uint32   { return encS(0x23, 2, rs1, rs2, imm) }
func SB(rs2, rs1 uint32, imm int32) uint32   { return encS(0x23, 0, rs1, rs2, imm) }
func BEQ(a, b uint32, off int32) uint32      { return encB(0, a, b, off) }
func BNE(a, b uint32, off int32) uint32      { return encB(1, a, b, off) }
func BLT(a, b uint32, off int32) uint32      { return encB(4, a, b, off) }
func BLTU(a, b uint32, off int32) uint32     { return encB(6, a, b, off) }
func JAL(rd uint32, off int32) uint32        { return encJ(rd, off) }
func JALR(rd, rs1 uint32, imm int32) uint32  { return encI(0x67, 0, rd, rs1, imm) }
func CSRRW(rd, csr, rs1 uint32) uint32       { return encI(0x73, 1, rd, rs1, int32(csr)) }
func CSRRS(rd, csr, rs1 uint32) uint32       { return encI(0x73, 2, rd, rs1, int32(csr)) }
func CSRRC(rd, csr, rs1 uint32) uint32       { return encI(0x73, 3, rd, rs1, int32(csr)) }
func CSRRWI(rd, csr, z uint32) uint32        { return encI(0x73, 5, rd, z, int32(csr)) }
func AMO(f5, f3, rd, rs1, rs2 uint32) uint32 { return encR(0x2f, f3, f5<<2, rd, rs1, rs2) }

const (
	ECALL      = 0x00000073
	EBREAK     = 0x00100073
	MRET       = 0x30200073
	SRET       = 0x10200073
	WFI        = 0x10500073
	SFENCE     = 0x12000073
	FENCEI     = 0x0000100f
	NOP        = 0x00000013
	ramBaseT   = 0x80000000
	ramSizeT   = 1 << 20
	uartT      = 0x10000000
	finisherT  = 0x100000
	scratchOff = 0x8000 // data area used by tests
)

// testBus is a fake bus: a UART transmit register and a finisher.
type testBus struct {
	out   []byte
	done  bool
	cpu   *CPU
	reads int
	// irqOnWrite raises these mip bits when the UART is written.
	irqOnWrite uint64
}

func (b *testBus) Read(addr uint64, size int) (uint64, bool) {
	b.reads++
	switch {
	case addr == uartT+5:
		return 0x60, true
	case addr >= uartT && addr < uartT+8:
		return 0, true
	case addr >= 0x2000000 && addr < 0x2010000: // stand-in CLINT: reads 0
		return 0, true
	}
	return 0, false
}

func (b *testBus) Write(addr uint64, size int, v uint64) bool {
	switch {
	case addr == uartT:
		b.out = append(b.out, byte(v))
		if b.irqOnWrite != 0 && b.cpu != nil {
			b.cpu.SetIRQ(b.irqOnWrite, true)
		}
		return true
	case addr >= uartT && addr < uartT+8:
		return true
	case addr == finisherT:
		b.done = true
		if b.cpu != nil {
			b.cpu.RequestStop()
		}
		return true
	}
	return false
}

// newTest builds a CPU with 1 MiB of RAM holding code at its base.
func newTest(t testing.TB, code ...uint32) (*CPU, *testBus) {
	t.Helper()
	ram := make([]byte, ramSizeT)
	for i, w := range code {
		binary.LittleEndian.PutUint32(ram[4*i:], w)
	}
	bus := &testBus{}
	c := New(ram, ramBaseT, bus)
	bus.cpu = c
	c.Reset(ramBaseT)
	return c, bus
}

// pmpAllowAll gives S and U mode all of memory, as firmware must before
// dropping to them (with PMP implemented, no match denies S and U).
func pmpAllowAll(c *CPU) {
	c.pmpaddr[0] = ^uint64(0) >> 10
	c.pmpcfg[0] = pmpNAP | pmpR | pmpW | pmpX
	c.pmpUpdate()
	c.updateMMU()
}

// li returns instructions loading a 32-bit sign-extended constant.
func li(rd uint32, v int32) []uint32 {
	lo := v << 20 >> 20
	hi := uint32(v - lo)
	if hi == 0 {
		return []uint32{ADDI(rd, 0, lo)}
	}
	return []uint32{LUI(rd, hi), ADDIW(rd, rd, lo)}
}

func cat(parts ...any) []uint32 {
	var out []uint32
	for _, p := range parts {
		switch v := p.(type) {
		case uint32:
			out = append(out, v)
		case []uint32:
			out = append(out, v...)
		default:
			panic("cat: bad part")
		}
	}
	return out
}

func (c *CPU) mustCSR(t testing.TB, n uint16) uint64 {
	t.Helper()
	v, ok := c.CSR(n)
	if !ok {
		t.Fatalf("CSR %#x missing", n)
	}
	return v
}
