package rv64

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"ftbox/guestvm/snap"
)

// FP encodings for the tests.
func fpOpR(f7, rm, rd, rs1, rs2 uint32) uint32 { return encR(0x53, rm, f7, rd, rs1, rs2) }
func FADDD(rd, a, b, rm uint32) uint32         { return fpOpR(0x01, rm, rd, a, b) }
func FADDS(rd, a, b, rm uint32) uint32         { return fpOpR(0x00, rm, rd, a, b) }
func FMVDX(rd, rs uint32) uint32               { return fpOpR(0x79, 0, rd, rs, 0) }
func FMVXW(rd, rs uint32) uint32               { return fpOpR(0x70, 0, rd, rs, 0) }
func FSGNJS(rd, a, b uint32) uint32            { return fpOpR(0x10, 0, rd, a, b) }

// fpCPU returns a CPU with FS = Initial running code, traps to a WFI-free
// vector (mtvec = base+0x800).
func fpCPU(t *testing.T, code ...uint32) *CPU {
	t.Helper()
	c, _ := newTest(t, code...)
	c.mstatus |= 1 << 13 // Initial
	c.mtvec = ramBaseT + 0x800
	return c
}

func TestCanonicalNaNAndBoxing(t *testing.T) {
	c := fpCPU(t,
		FADDD(3, 1, 2, rmRNE),  // qNaN with payload + 1 -> canonical
		FADDS(4, 5, 6, rmRNE),  // f5 improperly boxed: canonical NaN in, no NV
		FMVXW(7, 5),            // moves take the raw low bits
		FSGNJS(8, 5, 6),        // canonical NaN with f6's sign, boxed
		FADDS(9, 10, 6, rmRNE), // sNaN: NV, canonical
	)
	c.f[1] = 0x7ff8000000000123
	c.f[2] = 0x3ff0000000000000
	c.f[5] = 0x00000000_3f800000 // 1.0f, not boxed
	c.f[6] = boxS | 0xbf800000   // -1.0f
	c.f[10] = boxS | 0x7f800001  // sNaN
	c.Run(3)
	if c.f[3] != canonD {
		t.Errorf("NaN payload propagated: %#x", c.f[3])
	}
	if c.f[4] != boxS|canonS || c.fcsr != 0 {
		t.Errorf("unboxed input: %#x fflags %#x", c.f[4], c.fcsr)
	}
	if c.x[7] != 0x3f800000 {
		t.Errorf("fmv.x.w of an unboxed register = %#x", c.x[7])
	}
	c.Run(2)
	if c.f[8] != boxS|0xffc00000 {
		t.Errorf("fsgnj.s of an unboxed register = %#x", c.f[8])
	}
	if c.f[9] != boxS|canonS || c.fcsr != fNV {
		t.Errorf("sNaN: %#x fflags %#x", c.f[9], c.fcsr)
	}
}

func TestFcvtSaturation(t *testing.T) {
	const nan, inf = 0x7ff8000000000000, 0x7ff0000000000000
	d := func(v float64) uint64 { return f64(v) }
	cases := []struct {
		in     uint64
		width  uint
		signed bool
		rm     uint8
		want   uint64
		flags  uint8
	}{
		{nan, 32, true, rmRNE, 0x7fffffff, fNV},
		{nan | 1<<63, 32, false, rmRNE, 0xffffffff, fNV}, // NaN -> max even when negative
		{nan, 64, true, rmRNE, 1<<63 - 1, fNV},
		{nan, 64, false, rmRNE, ^uint64(0), fNV},
		{inf, 32, true, rmRNE, 0x7fffffff, fNV},
		{inf | 1<<63, 32, true, rmRNE, 0x80000000, fNV},
		{inf | 1<<63, 64, false, rmRNE, 0, fNV},
		{d(2147483647.5), 32, true, rmRNE, 0x7fffffff, fNV}, // rounds to 2^31: out of range
		{d(2147483647.5), 32, true, rmRTZ, 0x7fffffff, fNX},
		{d(-2147483648.0), 32, true, rmRNE, 0x80000000, 0},
		{d(-2147483648.5), 32, true, rmRUP, 0x80000000, fNX},
		{d(-2147483648.5), 32, true, rmRDN, 0x80000000, fNV},
		{d(-0.3), 32, false, rmRNE, 0, fNX}, // rounds to 0: no NV
		{d(-0.7), 64, false, rmRTZ, 0, fNX},
		{d(-1.0), 64, false, rmRTZ, 0, fNV},
		{d(4294967295.4), 32, false, rmRNE, 0xffffffff, fNX},
		{d(4294967295.5), 32, false, rmRNE, 0xffffffff, fNV},
		{d(9223372036854775808.0), 64, true, rmRNE, 1<<63 - 1, fNV},
		{d(-9223372036854775808.0), 64, true, rmRNE, 1 << 63, 0},
		{d(18446744073709549568.0), 64, false, rmRNE, 0xfffffffffffff800, 0},
		{d(2.5), 64, true, rmRNE, 2, fNX},
		{d(2.5), 64, true, rmRMM, 3, fNX},
		{d(-2.5), 64, true, rmRMM, ^uint64(2), fNX},
		{d(-2.5), 64, true, rmRUP, ^uint64(1), fNX},
		{1, 64, true, rmRUP, 1, fNX}, // smallest subnormal
		{1 | 1<<63, 64, true, rmRDN, ^uint64(0), fNX},
		{1 << 63, 32, false, rmRNE, 0, 0}, // -0
	}
	for _, tc := range cases {
		got, fl := fmtD.toInt(tc.in, tc.width, tc.signed, tc.rm)
		got &= 1<<(tc.width-1)<<1 - 1 // the caller sign-extends 32-bit results
		if got != tc.want || fl != tc.flags {
			t.Errorf("toInt(%#x, %d, signed=%v, rm %d) = %#x flags %#x, want %#x flags %#x",
				tc.in, tc.width, tc.signed, tc.rm, got, fl, tc.want, tc.flags)
		}
	}
}

func TestMinMaxZerosAndNaNs(t *testing.T) {
	const pz, nz, q, s, one = 0, 1 << 63, canonD, 0x7ff0000000000001, 0x3ff0000000000000
	cases := []struct {
		a, b      uint64
		max       bool
		want      uint64
		flags     uint8
		comment   string
		wantFlags bool
	}{
		{pz, nz, false, nz, 0, "min(+0,-0) = -0", true},
		{nz, pz, false, nz, 0, "min(-0,+0) = -0", true},
		{pz, nz, true, pz, 0, "max(+0,-0) = +0", true},
		{q, one, false, one, 0, "one quiet NaN: the other operand", true},
		{one, s, true, one, fNV, "one sNaN: the other operand, NV", true},
		{s, q, false, canonD, fNV, "two NaNs: canonical", true},
		{0x7ff8000000000005, q, true, canonD, 0, "two quiet NaNs: canonical, no NV", true},
	}
	for _, tc := range cases {
		got, fl := fmtD.minMax(tc.a, tc.b, tc.max)
		if got != tc.want || fl != tc.flags {
			t.Errorf("%s: got %#x flags %#x", tc.comment, got, fl)
		}
	}
	// Compares: feq signals only on sNaN, flt/fle on any NaN; -0 == +0.
	if v, fl := fmtD.cmp(2, q, one); v != 0 || fl != 0 {
		t.Errorf("feq qNaN: %d %#x", v, fl)
	}
	if v, fl := fmtD.cmp(2, s, one); v != 0 || fl != fNV {
		t.Errorf("feq sNaN: %d %#x", v, fl)
	}
	if v, fl := fmtD.cmp(1, q, one); v != 0 || fl != fNV {
		t.Errorf("flt qNaN: %d %#x", v, fl)
	}
	if v, _ := fmtD.cmp(2, pz, nz); v != 1 {
		t.Error("feq(+0,-0) != 1")
	}
	if v, _ := fmtD.cmp(1, nz, pz); v != 0 {
		t.Error("flt(-0,+0) != 0")
	}
	if v, _ := fmtD.cmp(0, nz, pz); v != 1 {
		t.Error("fle(-0,+0) != 1")
	}
}

func TestRoundingModesAndFlags(t *testing.T) {
	const one, tie, half = 0x3ff0000000000000, 0x3ca0000000000000, 0x3fe0000000000000 // 1, 2^-53, 0.5
	up := uint64(one + 1)
	for _, tc := range []struct {
		a, b  uint64
		rm    uint8
		want  uint64
		flags uint8
	}{
		{one, tie, rmRNE, one, fNX}, // exactly halfway: to even
		{one, tie, rmRMM, up, fNX},  // away from zero
		{one, tie, rmRUP, up, fNX},
		{one, tie, rmRTZ, one, fNX},
		{one, tie, rmRDN, one, fNX},
		{one | 1<<63, tie | 1<<63, rmRDN, up | 1<<63, fNX},
		{one | 1<<63, tie | 1<<63, rmRUP, one | 1<<63, fNX},
		{one, one | 1<<63, rmRNE, 0, 0},       // x - x = +0
		{one, one | 1<<63, rmRDN, 1 << 63, 0}, // -0 rounding down
		{one, half, rmRNE, 0x3ff8000000000000, 0},
		{0x7fefffffffffffff, 0x7ca0000000000000, rmRNE, 0x7ff0000000000000, fOF | fNX}, // max + half ulp: overflow
		{0x7fefffffffffffff, 0x7ca0000000000000, rmRTZ, 0x7fefffffffffffff, fOF | fNX},
		{0xffefffffffffffff, 0xfca0000000000000, rmRUP, 0xffefffffffffffff, fOF | fNX},
	} {
		got, fl := fmtD.add(tc.a, tc.b, tc.rm)
		if got != tc.want || fl != tc.flags {
			t.Errorf("add(%#x, %#x, rm %d) = %#x flags %#x, want %#x flags %#x", tc.a, tc.b, tc.rm, got, fl, tc.want, tc.flags)
		}
	}
	// Tininess after rounding: max subnormal * (1+2^-52) = (1-2^-104)*2^-1022
	// rounds to the smallest normal in RNE (not tiny: NX only), to the
	// largest subnormal in RTZ (tiny and inexact: UF).
	if got, fl := fmtD.mul(0x000fffffffffffff, 0x3ff0000000000001, rmRNE); got != 0x0010000000000000 || fl != fNX {
		t.Errorf("RNE: %#x flags %#x", got, fl)
	}
	if got, fl := fmtD.mul(0x000fffffffffffff, 0x3ff0000000000001, rmRTZ); got != 0x000fffffffffffff || fl != fUF|fNX {
		t.Errorf("RTZ: %#x flags %#x", got, fl)
	}
	// An exact subnormal result is not an underflow.
	if got, fl := fmtD.mul(0x0000000000000002, 0x3fe0000000000000, rmRNE); got != 1 || fl != 0 {
		t.Errorf("exact subnormal: %#x flags %#x", got, fl)
	}
	// Division by zero, inf*0 in fma even with a quiet NaN addend.
	if got, fl := fmtD.div(one, 0, rmRNE); got != 0x7ff0000000000000 || fl != fDZ {
		t.Errorf("1/0: %#x flags %#x", got, fl)
	}
	if got, fl := fmtD.fma(0x7ff0000000000000, 0, canonD, false, false, rmRNE); got != canonD || fl != fNV {
		t.Errorf("inf*0+qNaN: %#x flags %#x", got, fl)
	}
	// fma rounds once: (1+2^-52)^2 - 1 = 2^-51 + 2^-104 exactly, halfway
	// between 2^-51 and its successor. Unfused, the square would lose the
	// 2^-104 and the result be 2^-51 exactly, without NX.
	if got, fl := fmtD.fma(one+1, one+1, one|1<<63, false, false, rmRNE); got != 0x3cc0000000000000 || fl != fNX {
		t.Errorf("fused RNE: %#x flags %#x", got, fl)
	}
	if got, fl := fmtD.fma(one+1, one+1, one|1<<63, false, false, rmRUP); got != 0x3cc0000000000001 || fl != fNX {
		t.Errorf("fused RUP: %#x flags %#x", got, fl)
	}
	// fnmadd: -(1*1) - (-1) is an exact zero: +0 in RNE.
	if got, _ := fmtD.fma(one, one, one|1<<63, true, true, rmRNE); got != 0 {
		t.Errorf("fnmadd exact zero: %#x", got)
	}
	if got, fl := fmtD.sqrt(0xbff0000000000000, rmRNE); got != canonD || fl != fNV {
		t.Errorf("sqrt(-1): %#x %#x", got, fl)
	}
	if got, fl := fmtD.sqrt(1<<63, rmRNE); got != 1<<63 || fl != 0 {
		t.Errorf("sqrt(-0): %#x %#x", got, fl)
	}
}

func TestFClass(t *testing.T) {
	for in, want := range map[uint64]uint64{
		0xfff0000000000000: 1 << 0, 0xbff0000000000000: 1 << 1, 0x8000000000000001: 1 << 2, 1 << 63: 1 << 3,
		0: 1 << 4, 1: 1 << 5, 0x3ff0000000000000: 1 << 6, 0x7ff0000000000000: 1 << 7,
		0x7ff0000000000001: 1 << 8, canonD: 1 << 9,
	} {
		if got := fmtD.fclass(in); got != want {
			t.Errorf("fclass(%#x) = %#x, want %#x", in, got, want)
		}
	}
}

func TestFSOffTrapsAndDirty(t *testing.T) {
	cldsp := uint32(0x2522) // c.fldsp fa0, 8(sp), in the low half of a word
	c := fpCPU(t,
		FADDD(1, 2, 3, rmRNE),
		CSRRS(5, csrFflags, 0),
		NOP, // replaced by c.fldsp; c.nop
	)
	binary.LittleEndian.PutUint32(c.ram[8:], cldsp|0x0001<<16)
	c.mstatus &^= msFS
	c.Run(1)
	if c.mcause != excIllegal || c.mtval != uint64(FADDD(1, 2, 3, rmRNE)) {
		t.Fatalf("FP op with FS off: cause %d tval %#x", c.mcause, c.mtval)
	}
	c.SetPC(ramBaseT + 4)
	c.Run(1)
	if c.mcause != excIllegal || c.mtval != uint64(CSRRS(5, csrFflags, 0)) {
		t.Fatalf("fflags with FS off: cause %d", c.mcause)
	}
	c.SetPC(ramBaseT + 8)
	c.Run(1)
	if c.mcause != excIllegal || c.mtval != uint64(cldsp) {
		t.Fatalf("c.fldsp with FS off: cause %d tval %#x", c.mcause, c.mtval)
	}

	// Initial -> Dirty on an f register write; SD follows.
	c2 := fpCPU(t, FMVDX(1, 0), CSRRS(5, csrFflags, 0), FADDD(2, 1, 1, rmRNE))
	if v := c2.mustCSR(t, csrMstatus); v&msSD != 0 || v&msFS != 1<<13 {
		t.Fatalf("mstatus %#x", v)
	}
	c2.Run(1)
	if v := c2.mustCSR(t, csrMstatus); v&msFS != msFS || v&msSD == 0 {
		t.Fatalf("after fmv.d.x: mstatus %#x, want FS Dirty and SD", v)
	}
	if v := c2.mustCSR(t, csrSstatus); v&msSD == 0 {
		t.Fatalf("sstatus %#x lacks SD", v)
	}
	// Clean, then a read of fflags leaves it Clean.
	c2.mstatus = c2.mstatus&^msFS | 2<<13
	c2.Run(1)
	if c2.mstatus&msFS != 2<<13 {
		t.Fatal("a read of fflags dirtied FS")
	}
	// Reserved rm and dynamic rm with an invalid frm are illegal.
	c3 := fpCPU(t, FADDD(1, 2, 3, 5), FADDD(1, 2, 3, rmDYN), FADDD(1, 2, 3, rmDYN))
	c3.Run(1)
	if c3.mcause != excIllegal {
		t.Fatal("rm=5 not illegal")
	}
	c3.SetPC(ramBaseT + 4)
	c3.fcsr = 6 << 5
	c3.mcause = 0
	c3.Run(1)
	if c3.mcause != excIllegal {
		t.Fatal("dynamic rm with frm=6 not illegal")
	}
	c3.SetPC(ramBaseT + 8)
	c3.fcsr = rmRUP << 5
	c3.mcause = 0
	c3.f[2], c3.f[3] = 0x3ff0000000000000, 0x3ca0000000000000
	c3.Run(1)
	if c3.mcause != 0 || c3.f[1] != 0x3ff0000000000001 || c3.fcsr != rmRUP<<5|fNX {
		t.Fatalf("dynamic RUP: cause %d f1 %#x fcsr %#x", c3.mcause, c3.f[1], c3.fcsr)
	}
}

func TestFPSnapshot(t *testing.T) {
	c := fpCPU(t, FADDD(1, 2, 3, rmRNE))
	for i := range c.f {
		c.f[i] = uint64(i) * 0x0101010101010101
	}
	c.fcsr = 0x65
	var b bytes.Buffer
	c.Save(snap.NewWriter(&b))
	c2 := fpCPU(t)
	if err := c2.Restore(snap.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	if c2.f != c.f || c2.fcsr != c.fcsr {
		t.Fatal("f registers or fcsr not restored")
	}
	// A snapshot from before F/D has x0 (zero) where the version now is.
	old := append([]byte(nil), b.Bytes()...)
	binary.LittleEndian.PutUint32(old[8+4:], 0)
	if err := c2.Restore(snap.NewReader(old)); err == nil || !strings.Contains(err.Error(), "version 0") {
		t.Fatalf("old snapshot: %v", err)
	}
}

func f64(v float64) uint64 { return math.Float64bits(v) }
