package rv64

import (
	"testing"
)

// benchLoop is a branchy integer mix: loads, stores, mul, div, branches,
// compare, shifts; about 16 instructions per iteration, all in one page,
// data in another.
func benchLoop() []uint32 {
	const (
		a0, a1, s1, s2, s3, t0, t1, t2, t3, t4, t5, t6 = 10, 11, 9, 18, 19, 5, 6, 7, 28, 29, 30, 31
	)
	prog := cat(
		LUI(a0, ramBaseT+0x10000), // data page (LUI sign-extends: fix below)
		SLLI(a0, a0, 32), SRLI(a0, a0, 32),
		ADDI(s3, 0, 7),
		ADDI(s1, 0, 0),
		// loop:
		LD(t0, a0, 0),
		ADDI(t0, t0, 3),
		MUL(t1, t0, s1),
		DIVU(t2, t1, s3),
		XOR(t3, t2, t0),
		SD(t3, a0, 8),
		encI(0x13, 7, t4, s1, 1), // andi t4, s1, 1
		BEQ(t4, 0, 8),
		ADDI(t5, t5, 1),
		SW(t3, a0, 16),
		LW(t6, a0, 16),
		ADD(a1, a1, t6),
		SRLI(t6, t1, 3),
		BLTU(t6, t0, 8),
		ADDI(t5, t5, -1),
		ADDI(s1, s1, 1),
		JAL(0, -4*16), // back to loop
	)
	return prog
}

func BenchmarkDispatch(b *testing.B) {
	c, _ := newTest(b, benchLoop()...)
	const step = 1 << 20
	b.ReportAllocs()
	b.ResetTimer()
	var total uint64
	for i := 0; i < b.N; i++ {
		n, why := c.Run(step)
		if why != StopBudget || n != step {
			b.Fatalf("Run = %d, %v", n, why)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds()/1e6, "MIPS")
}

// BenchmarkDispatchSv39 runs the same loop in S-mode under Sv39 (identity
// 1 GiB page), exercising the TLB fast path.
func BenchmarkDispatchSv39(b *testing.B) {
	c, _ := newTest(b, benchLoop()...)
	// Root table at RAM+0x20000: entry 2 maps VA 2G..3G to PA 2G, RWXAD.
	pt := uint64(0x20000)
	putU64(c.ram[pt+2*8:], (ramBaseT>>12)<<10|0xcf)
	c.satp = 8<<60 | (ramBaseT+pt)>>12
	pmpAllowAll(c)
	c.priv = PrivS
	c.flushTLB()
	const step = 1 << 20
	b.ReportAllocs()
	b.ResetTimer()
	var total uint64
	for i := 0; i < b.N; i++ {
		n, _ := c.Run(step)
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds()/1e6, "MIPS")
}

// BenchmarkDispatchBareS runs the loop in S-mode without paging: PMP applies,
// so accesses go through the TLB as identity entries.
func BenchmarkDispatchBareS(b *testing.B) {
	c, _ := newTest(b, benchLoop()...)
	pmpAllowAll(c)
	c.priv = PrivS
	c.updateMMU()
	const step = 1 << 20
	b.ReportAllocs()
	b.ResetTimer()
	var total uint64
	for i := 0; i < b.N; i++ {
		n, _ := c.Run(step)
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds()/1e6, "MIPS")
}

func TestRunDoesNotAllocate(t *testing.T) {
	c, _ := newTest(t, benchLoop()...)
	c.Run(1000)
	if a := testing.AllocsPerRun(10, func() { c.Run(100000) }); a != 0 {
		t.Fatalf("Run allocates %v times per call", a)
	}
}

func putU64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}
