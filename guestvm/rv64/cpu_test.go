package rv64

import (
	"bytes"
	"testing"

	"ftbox/guestvm/snap"
)

func run(t *testing.T, c *CPU, budget uint64) (uint64, Stop) {
	t.Helper()
	return c.Run(budget)
}

func TestALUAndM(t *testing.T) {
	prog := cat(
		li(1, -7), li(2, 3),
		encR(0x33, 4, 1, 3, 1, 2),     // div x3 = -2
		encR(0x33, 6, 1, 4, 1, 2),     // rem x4 = -1
		encR(0x33, 4, 1, 5, 1, 0),     // div by 0 = -1
		encR(0x33, 6, 1, 6, 1, 0),     // rem by 0 = dividend
		encR(0x33, 1, 1, 7, 1, 1),     // mulh(-7,-7) = 0
		encR(0x33, 3, 1, 8, 1, 1),     // mulhu
		encR(0x3b, 4, 1, 9, 1, 0),     // divw by 0
		SLLI(10, 2, 63),               // 1<<63 (x2=3 -> bit 63 set)
		encR(0x33, 1, 0, 11, 2, 1),    // sll x11 = 3 << (-7 & 63 = 57)
		encR(0x3b, 5, 0x20, 12, 1, 2), // sraw
		ADDIW(13, 1, 0),
		encI(0x13, 3, 14, 1, 1), // sltiu -7 < 1? no -> 0
		encI(0x13, 2, 15, 1, 1), // slti -7 < 1 -> 1
	)
	c, _ := newTest(t, prog...)
	if n, why := run(t, c, uint64(len(prog))); n != uint64(len(prog)) || why != StopBudget {
		t.Fatalf("Run = %d %v", n, why)
	}
	m7 := uint64(0xfffffffffffffff9)
	want := map[int]uint64{3: ^uint64(1), 4: ^uint64(0), 5: ^uint64(0), 6: m7, 7: 0,
		8: 0xfffffffffffffff2, 9: ^uint64(0), 10: 1 << 63, 11: 3 << 57, 12: ^uint64(0),
		13: m7, 14: 0, 15: 1}
	for r, v := range want {
		if got := c.Reg(r); got != v {
			t.Errorf("x%d = %#x, want %#x", r, got, v)
		}
	}
	if c.Reg(0) != 0 {
		t.Error("x0 written")
	}
}

func TestMinDivNeg1(t *testing.T) {
	c, _ := newTest(t, ADDI(1, 0, 1), SLLI(1, 1, 63), ADDI(2, 0, -1),
		encR(0x33, 4, 1, 3, 1, 2), encR(0x33, 6, 1, 4, 1, 2))
	c.Run(5)
	if c.Reg(3) != 1<<63 || c.Reg(4) != 0 {
		t.Fatalf("MIN/-1 = %#x rem %#x", c.Reg(3), c.Reg(4))
	}
}

func TestLoadsStoresSignExtension(t *testing.T) {
	prog := cat(
		LUI(1, 0x80008000), SLLI(1, 1, 32), SRLI(1, 1, 32), // x1 = data
		li(2, -2),
		SB(2, 1, 0), LB(3, 1, 0), LBU(4, 1, 0),
		SW(2, 1, 8), LW(5, 1, 8), encI(0x03, 6, 6, 1, 8), // lwu
		SD(2, 1, 17), LD(7, 1, 17), // misaligned: allowed, like QEMU
	)
	c, _ := newTest(t, prog...)
	c.Run(uint64(len(prog)))
	if c.Reg(3) != ^uint64(1) || c.Reg(4) != 0xfe || c.Reg(5) != ^uint64(1) || c.Reg(6) != 0xfffffffe || c.Reg(7) != ^uint64(1) {
		t.Fatalf("regs %#x %#x %#x %#x %#x", c.Reg(3), c.Reg(4), c.Reg(5), c.Reg(6), c.Reg(7))
	}
}

func TestExactBudgetAndICount(t *testing.T) {
	c, _ := newTest(t, ADDI(1, 1, 1), JAL(0, -4))
	for _, b := range []uint64{1, 2, 7, 1000} {
		before := c.ICount()
		n, why := c.Run(b)
		if n != b || why != StopBudget || c.ICount() != before+b {
			t.Fatalf("Run(%d) = %d %v icount +%d", b, n, why, c.ICount()-before)
		}
	}
	if got := c.Reg(1); got != (1+2+7+1000+1)/2 {
		t.Fatalf("x1 = %d", got)
	}
	if v, _ := c.CSR(csrMinstret); v != c.ICount() {
		t.Fatalf("minstret %d icount %d", v, c.ICount())
	}
}

func TestIllegalAndEcallTrap(t *testing.T) {
	c, _ := newTest(t, 0xffffffff, ECALL)
	c.mtvec = ramBaseT + 0x100
	c.Run(1)
	if c.mcause != excIllegal || c.mtval != 0xffffffff || c.mepc != ramBaseT || c.PC() != ramBaseT+0x100 {
		t.Fatalf("illegal: cause %d tval %#x epc %#x pc %#x", c.mcause, c.mtval, c.mepc, c.PC())
	}
	c.SetPC(ramBaseT + 4)
	c.Run(1)
	if c.mcause != excEcallM || c.ICount() != 2 {
		t.Fatalf("ecall: cause %d icount %d", c.mcause, c.ICount())
	}
}

func TestCompressedExpansion(t *testing.T) {
	cases := []struct {
		h    uint32
		want inst
	}{
		{0x4505, inst{op: opADDI, rd: 10, rs1: 0, imm: 1}},                 // c.li a0,1
		{0x852e, inst{op: opADD, rd: 10, rs1: 0, rs2: 11}},                 // c.mv a0,a1
		{0x0505, inst{op: opADDI, rd: 10, rs1: 10, imm: 1}},                // c.addi a0,1
		{0x8082, inst{op: opJALR, rd: sink, rs1: 1}},                       // ret
		{0x6108, inst{op: opLD, rd: 10, rs1: 10, imm: 0}},                  // c.ld a0,0(a0)
		{0xe10c, inst{op: opSD, rd: sink, rs1: 10, rs2: 11}},               // c.sd a1,0(a0)
		{0x1141, inst{op: opADDI, rd: 2, rs1: 2, imm: -16}},                // c.addi sp,-16
		{0x9002, inst{op: opEBREAK, rd: sink}},                             // c.ebreak
		{0x0000, inst{op: opIllegal}},                                      // c.unimp
		{0x8002, inst{op: opIllegal}},                                      // c.jr x0
		{0x6101, inst{op: opIllegal}},                                      // c.addi16sp 0
		{0x9cc1, inst{op: opIllegal}},                                      // reserved
		{0x2002, inst{op: opFLD, rs1: 2, imm: 0x2002}},                     // c.fldsp f0,0(sp)
		{0x2522, inst{op: opFLD, rd: 10, rs1: 2, imm: 8<<32 | 0x2522}},     // c.fldsp fa0,8(sp)
		{0xa10c, inst{op: opFSD, rd: sink, rs1: 10, rs2: 11, imm: 0xa10c}}, // c.fsd fa1,0(a0)
		{0x4002, inst{op: opIllegal}},                                      // c.lwsp x0
	}
	for _, tc := range cases {
		got := decode16(tc.h)
		tc.want.len, tc.want.hw = 2, 1
		if tc.want.op == opIllegal {
			tc.want.imm = int64(tc.h) // the raw encoding, for mtval
		}
		if got != tc.want {
			t.Errorf("%#04x: got %+v want %+v", tc.h, got, tc.want)
		}
	}
}

func TestLRSC(t *testing.T) {
	prog := cat(
		LUI(1, 0x80008000), SLLI(1, 1, 32), SRLI(1, 1, 32),
		ADDI(5, 0, 9),
		AMO(amoLR, 3, 2, 1, 0),
		AMO(amoSC, 3, 3, 1, 5),  // succeeds: x3 = 0
		AMO(amoSC, 3, 4, 1, 5),  // no reservation: x4 = 1
		AMO(amoADD, 3, 6, 1, 5), // x6 = 9, mem = 18
		LD(7, 1, 0),
	)
	c, _ := newTest(t, prog...)
	c.Run(uint64(len(prog)))
	if c.Reg(3) != 0 || c.Reg(4) != 1 || c.Reg(6) != 9 || c.Reg(7) != 18 {
		t.Fatalf("x3=%d x4=%d x6=%d x7=%d", c.Reg(3), c.Reg(4), c.Reg(6), c.Reg(7))
	}
}

func TestWFIIdleAndWake(t *testing.T) {
	c, _ := newTest(t, WFI, ADDI(1, 1, 1), JAL(0, -8))
	n, why := c.Run(100)
	if n != 1 || why != StopIdle || c.PC() != ramBaseT+4 {
		t.Fatalf("Run = %d %v pc %#x", n, why, c.PC())
	}
	c.mie = 1 << irqMTI
	c.mtvec = ramBaseT + 0x200
	putU64(c.ram[0x200:], uint64(JAL(0, 0)))
	c.SetIRQ(1<<irqMTI, true) // MIE=0 in M: wakes but is not taken
	c.SetPC(ramBaseT)
	n, why = c.Run(3)
	if n != 3 || why != StopBudget || c.Reg(1) != 1 {
		t.Fatalf("after wake: %d %v x1=%d", n, why, c.Reg(1))
	}
	c.mstatus |= msMIE
	c.Run(1)
	if c.mcause != interruptBit|irqMTI || c.PC() != ramBaseT+0x200 {
		t.Fatalf("interrupt not taken: mcause %#x pc %#x", c.mcause, c.PC())
	}
}

// QEMU 7.2 order: M-level before S-level, lowest bit number first.
func TestInterruptPriority(t *testing.T) {
	c, _ := newTest(t, NOP)
	c.mstatus |= msMIE
	c.mie = mieMask
	c.SetIRQ(1<<irqMEI|1<<irqMTI|1<<irqMSI, true)
	if irq, _ := c.pendingInterrupt(); irq != irqMSI {
		t.Fatalf("got %d", irq)
	}
	c.SetIRQ(1<<irqMSI, false)
	if irq, _ := c.pendingInterrupt(); irq != irqMTI {
		t.Fatalf("got %d", irq)
	}
	c.SetIRQ(^uint64(0), false)
	c.swip = 1<<irqSSI | 1<<irqSEI
	c.mideleg = 1<<irqSSI | 1<<irqSEI
	if _, ok := c.pendingInterrupt(); ok {
		t.Fatal("S interrupts taken in M")
	}
	c.priv = PrivU
	if irq, _ := c.pendingInterrupt(); irq != irqSSI {
		t.Fatalf("got %d", irq)
	}
	c.swip |= 1 << irqSTI // not delegated: M-level wins
	if irq, _ := c.pendingInterrupt(); irq != irqSTI {
		t.Fatalf("got %d", irq)
	}
}

func TestDelegationToS(t *testing.T) {
	c, _ := newTest(t, ECALL)
	pmpAllowAll(c)
	c.priv = PrivU
	c.medeleg = 1 << excEcallU
	c.stvec = ramBaseT + 0x300
	c.updateMMU()
	c.Run(1)
	if c.priv != PrivS || c.scause != excEcallU || c.sepc != ramBaseT || c.PC() != ramBaseT+0x300 {
		t.Fatalf("priv %d scause %d sepc %#x pc %#x", c.priv, c.scause, c.sepc, c.PC())
	}
	if c.mstatus&msSPP != 0 {
		t.Fatal("SPP should be U")
	}
}

func TestSelfModifyingCode(t *testing.T) {
	// x2 = encoding of "addi x1, x0, 42"; store it over the instruction at
	// offset 16, which first ran as "addi x1, x0, 1".
	prog := cat(
		AUIPC(3, 0),                  // 0: x3 = base
		li(2, int32(ADDI(1, 0, 42))), // 4, 8
		JAL(0, 4),                    // 12
		ADDI(1, 0, 1),                // 16
		SW(2, 3, 16),                 // 20
		JAL(0, -8),                   // 24 -> 16
	)
	c, _ := newTest(t, prog...)
	c.Run(uint64(len(prog)) + 1) // ... through the jump back, then the new instruction
	if c.Reg(1) != 42 {
		t.Fatalf("x1 = %d: stale decoded instruction", c.Reg(1))
	}
}

func TestRequestStopFromBus(t *testing.T) {
	prog := cat(LUI(1, 0x100000), ADDI(2, 0, 0x55), SW(2, 1, 0), ADDI(3, 0, 1), JAL(0, 0))
	c, bus := newTest(t, prog...)
	n, why := c.Run(100)
	if why != StopRequested || n != 3 || !bus.done || c.Reg(3) != 0 {
		t.Fatalf("Run = %d %v", n, why)
	}
}

func TestICountInsideBusCallback(t *testing.T) {
	prog := cat(LUI(1, uartT), ADDI(2, 0, 'x'), SB(2, 1, 0), JAL(0, 0))
	c, _ := newTest(t, prog...)
	var seen uint64
	c.bus = busFunc(func(addr uint64) { seen = c.ICount() })
	c.Run(10)
	if seen != 3 {
		t.Fatalf("ICount in callback = %d, want 3", seen)
	}
}

type busFunc func(addr uint64)

func (f busFunc) Read(addr uint64, size int) (uint64, bool)  { f(addr); return 0, true }
func (f busFunc) Write(addr uint64, size int, v uint64) bool { f(addr); return true }

func TestIRQFromDeviceTakenAfterInstruction(t *testing.T) {
	prog := cat(LUI(1, uartT), ADDI(2, 0, 'x'), SB(2, 1, 0), ADDI(3, 0, 1), JAL(0, 0))
	c, bus := newTest(t, prog...)
	bus.irqOnWrite = 1 << irqMEI
	c.mie = 1 << irqMEI
	c.mstatus |= msMIE
	c.mtvec = ramBaseT + 0x400
	putU64(c.ram[0x400:], uint64(JAL(0, 0)))
	c.Run(4)
	if c.mcause != interruptBit|irqMEI || c.mepc != ramBaseT+12 {
		t.Fatalf("mcause %#x mepc %#x", c.mcause, c.mepc)
	}
}

func TestSaveRestoreRoundTrip(t *testing.T) {
	prog := benchLoop()
	c1, _ := newTest(t, prog...)
	c1.Run(12345)
	var buf bytes.Buffer
	w := snap.NewWriter(&buf)
	c1.Save(w)
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
	ram2 := append([]byte(nil), c1.ram...)
	c2 := New(ram2, ramBaseT, &testBus{})
	if err := c2.Restore(snap.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	c1.Run(54321)
	c2.Run(54321)
	for i := 0; i < 32; i++ {
		if c1.Reg(i) != c2.Reg(i) {
			t.Fatalf("x%d differs", i)
		}
	}
	if c1.PC() != c2.PC() || c1.ICount() != c2.ICount() || !bytes.Equal(c1.ram, c2.ram) {
		t.Fatal("state differs after restore")
	}
	var b1, b2 bytes.Buffer
	c1.Save(snap.NewWriter(&b1))
	c2.Save(snap.NewWriter(&b2))
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatal("snapshots differ")
	}
	if err := c2.Restore(snap.NewReader(buf.Bytes()[:10])); err == nil {
		t.Fatal("truncated snapshot accepted")
	}
}

func TestCSRPrivilege(t *testing.T) {
	c, _ := newTest(t, CSRRS(1, csrMstatus, 0), CSRRW(0, csrCycle, 0), CSRRS(2, csrCycle, 0))
	pmpAllowAll(c)
	c.priv = PrivS
	c.mtvec = ramBaseT + 0x100
	c.updateMMU()
	c.Run(1)
	if c.mcause != excIllegal || c.priv != PrivM {
		t.Fatalf("S read of mstatus: cause %d", c.mcause)
	}
	c.SetPC(ramBaseT + 4)
	c.Run(1)
	if c.mcause != excIllegal || c.mtval != uint64(CSRRW(0, csrCycle, 0)) {
		t.Fatalf("write to cycle: cause %d", c.mcause)
	}
	c.SetPC(ramBaseT + 8)
	c.Run(1)
	if c.Reg(2) != 2 {
		t.Fatalf("cycle read %d, want 2 (instructions retired before it)", c.Reg(2))
	}
}
