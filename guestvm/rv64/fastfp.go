package rv64

import "math"

// RNE fast paths for binary64 +, -, *, / and sqrt on the host's IEEE
// arithmetic. Go rounds float64 operations to nearest even on every host
// (the runtime never changes the rounding mode), and IEEE makes these
// results unique, so they equal the exact path's (TestFastPathMatchesExact
// checks it). Flags come from exactness: with operands and result well
// inside the normal range (exponents within ±900) nothing can overflow or
// underflow, only NX can be raised, and the rounding error is itself a
// float64 computed exactly (TwoSum for sums, math.FMA residuals for the
// rest). Anything else (NaNs, infinities, zeros, subnormals, huge or tiny
// values) returns ok=false and takes the exact path.

// inRange reports whether the float64 bits b are normal with an unbiased
// exponent within ±900.
func inRange(b uint64) bool {
	e := int(b>>52) & 0x7ff
	return e >= 1023-900 && e <= 1023+900
}

// fastD computes op (0 add, 1 sub, 2 mul, 3 div, 4 sqrt) in RNE.
func fastD(op uint32, a, b uint64) (uint64, uint8, bool) {
	if !inRange(a) || (op != 4 && !inRange(b)) {
		return 0, 0, false
	}
	x, y := math.Float64frombits(a), math.Float64frombits(b)
	var r, err float64
	switch op {
	case 0, 1:
		if op == 1 {
			y = -y
		}
		r = x + y
		bb := r - x
		err = (x - (r - bb)) + (y - bb) // TwoSum: exact error of the sum
	case 2:
		r = float64(x * y) // the conversion forbids fusing with what follows
		err = math.FMA(x, y, -r)
	case 3:
		r = x / y
		err = math.FMA(r, y, -x) // the remainder, exact in this range
	case 4:
		if x < 0 {
			return 0, 0, false
		}
		r = math.Sqrt(x)
		err = math.FMA(r, r, -x)
	default:
		return 0, 0, false
	}
	rb := math.Float64bits(r)
	if !inRange(rb) {
		return 0, 0, false
	}
	var fl uint8
	if err != 0 {
		fl = fNX
	}
	return rb, fl, true
}
