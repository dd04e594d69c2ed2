package rv64

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// randF64 draws float64 bits with edge cases and subnormals over-represented.
func randF64(r *rand.Rand) uint64 {
	switch r.IntN(10) {
	case 0: // subnormal
		return r.Uint64() & (1<<63 | 1<<52 - 1) // exponent 0
	case 1: // tiny exponents
		return r.Uint64()&(1<<63|1<<52-1) | uint64(r.IntN(60))<<52
	case 2: // huge exponents
		return r.Uint64()&(1<<63|1<<52-1) | uint64(2046-r.IntN(60))<<52
	case 3: // few significant bits
		return r.Uint64()&(1<<63|0x7ff<<52) | r.Uint64()&0xff<<44
	case 4:
		return []uint64{0, 1 << 63, 0x7ff0000000000000, 0xfff0000000000000, canonD, 0x7ff0000000000001,
			1, 0x000fffffffffffff, 0x0010000000000000, 0x7fefffffffffffff, 0x3ff0000000000000}[r.IntN(11)] ^ uint64(r.IntN(2))<<63
	}
	return r.Uint64()
}

func randF32(r *rand.Rand) uint64 {
	switch r.IntN(10) {
	case 0:
		return uint64(r.Uint32() & (1<<31 | 1<<23 - 1))
	case 1:
		return uint64(r.Uint32()&(1<<31|1<<23-1) | uint32(r.IntN(30))<<23)
	case 2:
		return uint64(r.Uint32()&(1<<31|1<<23-1) | uint32(254-r.IntN(30))<<23)
	case 3:
		return uint64(r.Uint32()&(1<<31|0xff<<23) | r.Uint32()&0xff<<15)
	case 4:
		return uint64([]uint32{0, 1 << 31, 0x7f800000, 0xff800000, canonS, 0x7f800001, 1, 0x7fffff, 0x800000, 0x7f7fffff, 0x3f800000}[r.IntN(11)] ^ uint32(r.IntN(2))<<31)
	}
	return uint64(r.Uint32())
}

func nativeD(op int, a, b, c float64) float64 {
	switch op {
	case 0:
		return a + b
	case 1:
		return a - b
	case 2:
		return float64(a * b)
	case 3:
		return a / b
	case 4:
		return math.Sqrt(a)
	}
	return math.FMA(a, b, c)
}

func exactD(op int, a, b, c uint64) (uint64, uint8) {
	switch op {
	case 0:
		return fmtD.add(a, b, rmRNE)
	case 1:
		return fmtD.sub(a, b, rmRNE)
	case 2:
		return fmtD.mul(a, b, rmRNE)
	case 3:
		return fmtD.div(a, b, rmRNE)
	case 4:
		return fmtD.sqrt(a, rmRNE)
	}
	return fmtD.fma(a, b, c, false, false, rmRNE)
}

// TestRNEMatchesHost checks the integer arithmetic in round-to-nearest-even
// against the host's IEEE operations (on non-NaN results; NaNs are
// canonical here, not on the host).
func TestRNEMatchesHost(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 400000; i++ {
		op := i % 6
		a, b, c := randF64(r), randF64(r), randF64(r)
		want := nativeD(op, math.Float64frombits(a), math.Float64frombits(b), math.Float64frombits(c))
		got, _ := exactD(op, a, b, c)
		if math.IsNaN(want) {
			if got != canonD {
				t.Fatalf("op %d %#x %#x %#x: got %#x, want canonical NaN", op, a, b, c, got)
			}
			continue
		}
		if got != math.Float64bits(want) {
			t.Fatalf("op %d %#x %#x %#x: got %#x, want %#x", op, a, b, c, got, math.Float64bits(want))
		}
	}
	for i := 0; i < 400000; i++ {
		op := i % 6
		a, b, c := randF32(r), randF32(r), randF32(r)
		fa, fb, fc := math.Float32frombits(uint32(a)), math.Float32frombits(uint32(b)), math.Float32frombits(uint32(c))
		var want float32
		var got uint64
		switch op {
		case 0:
			want, got = fa+fb, first(fmtS.add(a, b, rmRNE))
		case 1:
			want, got = fa-fb, first(fmtS.sub(a, b, rmRNE))
		case 2:
			want, got = float32(fa*fb), first(fmtS.mul(a, b, rmRNE))
		case 3:
			want, got = fa/fb, first(fmtS.div(a, b, rmRNE))
		case 4:
			want, got = float32(math.Sqrt(float64(fa))), first(fmtS.sqrt(a, rmRNE))
		default:
			// float32(math.FMA(...)) would round twice; big.Float is exact.
			want, got = fma32(fa, fb, fc), first(fmtS.fma(a, b, c, false, false, rmRNE))
		}
		if want != want {
			if got != canonS {
				t.Fatalf("S op %d %#x %#x %#x: got %#x, want canonical NaN", op, a, b, c, got)
			}
			continue
		}
		if got != uint64(math.Float32bits(want)) {
			t.Fatalf("S op %d %#x %#x %#x: got %#x, want %#x", op, a, b, c, got, math.Float32bits(want))
		}
	}
}

func fma32(a, b, c float32) float32 {
	if a != a || b != b || c != c || math.IsInf(float64(a), 0) || math.IsInf(float64(b), 0) || math.IsInf(float64(c), 0) ||
		a == 0 || b == 0 {
		return float32(math.FMA(float64(a), float64(b), float64(c))) // exact or special: no double rounding
	}
	p := new(big.Float).SetPrec(1000).Mul(big.NewFloat(float64(a)), big.NewFloat(float64(b)))
	p.Add(p, big.NewFloat(float64(c)))
	if p.Sign() == 0 {
		return 0
	}
	f, _ := p.Float32()
	return f
}

func first(v uint64, _ uint8) uint64 { return v }

// TestFastPathMatchesExact checks the binary64 RNE fast paths against the
// exact integer path, results and flags, on random operands (subnormals,
// huge and tiny values included, where the fast path must decline).
func TestFastPathMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	taken := 0
	for i := 0; i < 1000000; i++ {
		op := uint32(i % 5)
		a, b := randF64(r), randF64(r)
		if i%7 == 0 { // operands close in magnitude: cancellation
			b = a ^ 1<<63 + uint64(r.IntN(1<<20))
		}
		v, fl, ok := fastD(op, a, b)
		if !ok {
			continue
		}
		taken++
		want, wfl := exactD(int(op), a, b, 0)
		if v != want || fl != wfl {
			t.Fatalf("op %d %#x %#x: fast %#x flags %#x, exact %#x flags %#x", op, a, b, v, fl, want, wfl)
		}
	}
	t.Logf("fast path taken for %d of 1000000", taken)
	if taken < 100000 {
		t.Fatalf("fast path taken only %d times", taken)
	}
}
