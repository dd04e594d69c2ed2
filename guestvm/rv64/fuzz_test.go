package rv64

import "testing"

func checkInst(t *testing.T, w uint32, in inst, want uint8) {
	t.Helper()
	if in.op == opDecode || in.op >= opCount {
		t.Fatalf("raw %#x: bad op %d", w, in.op)
	}
	if in.len != want {
		t.Fatalf("raw %#x: len %d, want %d", w, in.len, want)
	}
	if in.rd > sink || in.rs1 > 31 || in.rs2 > 31 {
		t.Fatalf("raw %#x: register out of range: %+v", w, in)
	}
	if in.rd == 0 && in.op != opIllegal && in.op != opFLW && in.op != opFLD { // FP loads write f registers
		t.Fatalf("raw %#x: rd x0 not redirected to the sink", w)
	}
}

func FuzzDecode(f *testing.F) {
	for _, w := range []uint32{0, 0xffffffff, ADDI(1, 2, -1), 0x8002, 0x6081, ECALL, AMO(2, 3, 1, 2, 0), 0x9c41} {
		f.Add(w)
	}
	f.Fuzz(func(t *testing.T, w uint32) {
		in := decode32(w | 3)
		if in != decode32(w|3) {
			t.Fatal("decode32 not deterministic")
		}
		checkInst(t, w|3, in, 4)
		if in.op == opIllegal && in.raw() != uint64(w|3) {
			t.Fatal("illegal raw mismatch")
		}
		h := w & 0xffff
		if h&3 != 3 {
			c := decode16(h)
			checkInst(t, h, c, 2)
			if c != decode(uint16(h), uint16(w>>16)) {
				t.Fatal("decode dispatch mismatch")
			}
		}
	})
}

// FuzzExecute runs random bytes as code (in M-mode, with traps vectored
// back into the random code) and checks Run never panics nor overruns, and
// ends in the same state as when stepped one instruction at a time.
func FuzzExecute(f *testing.F) {
	f.Add([]byte{0x13, 0, 0, 0}, uint64(0))
	f.Add([]byte{0x73, 0, 0, 0, 0x6f, 0, 0, 0}, uint64(8<<60))
	f.Fuzz(func(t *testing.T, code []byte, seed uint64) {
		if len(code) > 8192 {
			code = code[:8192]
		}
		ram := make([]byte, 64<<10)
		copy(ram, code)
		bus := &testBus{}
		c := New(ram, ramBaseT, bus)
		bus.cpu = c
		c.Reset(ramBaseT)
		c.mtvec = ramBaseT + seed&0xffc
		c.stvec = ramBaseT + seed>>16&0xffc
		c.satp = seed & (0xf<<60 | 0xffff)
		c.satp = c.satp&^(1<<44-1) | (ramBaseT >> 12)
		for i := 1; i < 32; i++ {
			c.x[i] = ramBaseT + uint64(i)*0x100 + seed*uint64(i)
		}
		if seed&1 != 0 {
			c.medeleg = ^uint64(0) & medelegMask
			c.priv = uint8(seed>>1) & 1
			c.updateMMU()
		}
		// A twin stepped one instruction per Run never enters runFast, so it
		// checks the fast loop against the general interpreter.
		twinRAM := append([]byte(nil), ram...)
		twin := New(twinRAM, ramBaseT, &testBus{})
		twin.x, twin.pc, twin.priv = c.x, c.pc, c.priv
		twin.mtvec, twin.stvec, twin.satp, twin.medeleg = c.mtvec, c.stvec, c.satp, c.medeleg
		twin.updateMMU()
		const budget = 3000
		var total uint64
		for k := 0; k < 3; k++ {
			n, why := c.Run(budget)
			if n > budget {
				t.Fatalf("executed %d > budget", n)
			}
			if why == StopBudget && n != budget {
				t.Fatalf("StopBudget after %d", n)
			}
			total += n
		}
		if c.ICount() != total {
			t.Fatalf("icount %d, executed %d", c.ICount(), total)
		}
		for twin.ICount() < total {
			if n, _ := twin.Run(1); n != 1 {
				t.Fatalf("single step executed %d", n)
			}
		}
		if twin.x != c.x || twin.pc != c.pc || twin.priv != c.priv || twin.mcause != c.mcause ||
			twin.mepc != c.mepc || twin.scause != c.scause || string(twinRAM) != string(ram) {
			t.Fatalf("stepped one at a time: pc %#x x %v; in one Run: pc %#x x %v", twin.pc, twin.x[:32], c.pc, c.x[:32])
		}
	})
}
