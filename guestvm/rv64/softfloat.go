package rv64

import (
	"math/big"
	"math/bits"
)

// IEEE-754 binary32/binary64 arithmetic as RISC-V defines it, in integers
// only: the result of every operation is a function of its operand bits,
// the rounding mode and nothing else, on every host. The host FPU is never
// asked to round (its rounding state is not ours, and Go may fuse a*b+c on
// arm64); only the RNE fast paths in fastfp.go use host floating point,
// where IEEE makes the result unique.
//
// Every operation reduces to an exact intermediate (sign, exp, mant) with
// value mant * 2^exp, mant normalised to bit 63 and bit 0 sticky ("round to
// odd": set when nonzero bits were dropped below it). 64 bits are more than
// p+2 for both formats, so one rounding from there (round) equals rounding
// the exact result.

// fflags bits.
const (
	fNX = 1 << 0 // inexact
	fUF = 1 << 1 // underflow
	fOF = 1 << 2 // overflow
	fDZ = 1 << 3 // divide by zero
	fNV = 1 << 4 // invalid
)

// Rounding modes (the rm field; 7 is dynamic, 5 and 6 are reserved).
const (
	rmRNE = 0
	rmRTZ = 1
	rmRDN = 2
	rmRUP = 3
	rmRMM = 4
	rmDYN = 7
)

// ffmt describes one binary format.
type ffmt struct {
	bits uint // 32 or 64
	man  uint // stored fraction bits
	bias int
	emin int // exponent of the smallest normal
	emax int
}

var (
	fmtS = ffmt{bits: 32, man: 23, bias: 127, emin: -126, emax: 127}
	fmtD = ffmt{bits: 64, man: 52, bias: 1023, emin: -1022, emax: 1023}
)

const (
	canonS = 0x7fc00000
	canonD = 0x7ff8000000000000
	boxS   = 0xffffffff00000000 // NaN boxing of a single in a 64-bit f register
)

func (f ffmt) sign() uint64  { return 1 << (f.bits - 1) }
func (f ffmt) inf() uint64   { return (1<<(f.bits-1) - 1) &^ (1<<f.man - 1) }
func (f ffmt) canon() uint64 { return f.inf() | 1<<(f.man-1) }
func (f ffmt) mask() uint64  { return 1<<(f.bits-1)<<1 - 1 }

// Operand classes.
const (
	clsZero = iota
	clsFinite
	clsInf
	clsQNaN
	clsSNaN
)

// unp is an unpacked operand; for clsFinite value = mant * 2^exp with bit
// 63 of mant set.
type unp struct {
	cls  uint8
	neg  bool
	exp  int
	mant uint64
}

func (u unp) nan() bool { return u.cls >= clsQNaN }

func (f ffmt) unpack(b uint64) unp {
	u := unp{neg: b&f.sign() != 0}
	ebits := f.bits - 1 - f.man
	e := int(b>>f.man) & (1<<ebits - 1)
	frac := b & (1<<f.man - 1)
	switch {
	case e == 1<<ebits-1:
		switch {
		case frac == 0:
			u.cls = clsInf
		case frac>>(f.man-1) != 0:
			u.cls = clsQNaN
		default:
			u.cls = clsSNaN
		}
		return u
	case e == 0:
		if frac == 0 {
			u.cls = clsZero
			return u
		}
		u.exp = f.emin - int(f.man)
	default:
		frac |= 1 << f.man
		u.exp = e - f.bias - int(f.man)
	}
	u.cls = clsFinite
	lz := bits.LeadingZeros64(frac)
	u.mant = frac << lz
	u.exp -= lz
	return u
}

func (f ffmt) zero(neg bool) uint64 {
	if neg {
		return f.sign()
	}
	return 0
}

func (f ffmt) infinity(neg bool) uint64 { return f.zero(neg) | f.inf() }

// nanFlags is NV if any operand is a signalling NaN.
func nanFlags(us ...unp) uint8 {
	for _, u := range us {
		if u.cls == clsSNaN {
			return fNV
		}
	}
	return 0
}

// roundUp decides whether dropping rem (of a field whose half is half)
// from a value with sign neg and kept part odd/even rounds up in mode rm.
func roundUp(rem, half uint64, odd, neg bool, rm uint8) bool {
	switch rm {
	case rmRNE:
		return rem > half || (rem == half && odd)
	case rmRDN:
		return neg && rem != 0
	case rmRUP:
		return !neg && rem != 0
	case rmRMM:
		return rem >= half
	}
	return false // RTZ
}

// shiftRound drops the low shift bits of mant (1 <= shift <= 64) rounding
// in mode rm; it reports the kept part rounded and whether it was inexact.
func shiftRound(mant uint64, shift uint, neg bool, rm uint8) (uint64, bool) {
	kept := mant >> shift // 0 for shift 64
	rem := mant & (1<<shift - 1)
	half := uint64(1) << (shift - 1)
	if roundUp(rem, half, kept&1 != 0, neg, rm) {
		kept++
	}
	return kept, rem != 0
}

// round rounds mant * 2^exp (mant normalised, bit 0 sticky) to format f.
// Tininess is detected after rounding, as RISC-V requires: the result is
// tiny if, rounded to p bits with an unbounded exponent, it is below the
// smallest normal.
func (f ffmt) round(neg bool, exp int, mant uint64, rm uint8) (uint64, uint8) {
	p := f.man + 1
	e := exp + 63 // exponent of the leading bit
	shift := 64 - p
	var flags uint8
	tiny := false
	if e < f.emin {
		k, _ := shiftRound(mant, shift, neg, rm)
		tiny = !(e+1 == f.emin && k == 1<<p)
		d := f.emin - e
		if d > 64-int(shift) { // every bit is below the rounding point
			mant, shift = 1, 64
		} else {
			shift += uint(d)
		}
	}
	kept, inexact := shiftRound(mant, shift, neg, rm)
	if inexact {
		flags |= fNX
		if tiny {
			flags |= fUF
		}
	}
	s := f.zero(neg)
	if e < f.emin {
		// Subnormal; a carry into bit p-1 is the smallest normal's encoding.
		return s | kept, flags
	}
	if kept == 1<<p {
		kept >>= 1
		e++
	}
	if e > f.emax {
		return f.overflow(neg, rm), fOF | fNX
	}
	return s | uint64(e+f.bias)<<f.man | kept&(1<<f.man-1), flags
}

// overflow is the result of an overflow in mode rm: infinity or the largest
// finite number, by direction.
func (f ffmt) overflow(neg bool, rm uint8) uint64 {
	if rm == rmRNE || rm == rmRMM || (rm == rmRUP && !neg) || (rm == rmRDN && neg) {
		return f.infinity(neg)
	}
	return f.zero(neg) | (f.inf() - 1)
}

// u128 is an unsigned 128-bit integer.
type u128 struct{ hi, lo uint64 }

func (a u128) isZero() bool { return a.hi|a.lo == 0 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) add(b u128) u128 {
	lo, c := bits.Add64(a.lo, b.lo, 0)
	hi, _ := bits.Add64(a.hi, b.hi, c)
	return u128{hi, lo}
}

func (a u128) sub(b u128) u128 {
	lo, br := bits.Sub64(a.lo, b.lo, 0)
	hi, _ := bits.Sub64(a.hi, b.hi, br)
	return u128{hi, lo}
}

// shrJam shifts right by n, ORing every bit shifted out into bit 0.
func (a u128) shrJam(n int) u128 {
	switch {
	case n <= 0:
		return a
	case n >= 128:
		if a.isZero() {
			return a
		}
		return u128{0, 1}
	case n >= 64:
		s := uint64(0)
		if a.lo != 0 || a.hi<<(128-n) != 0 {
			s = 1
		}
		return u128{0, a.hi>>(n-64) | s}
	}
	s := uint64(0)
	if a.lo<<(64-n) != 0 {
		s = 1
	}
	return u128{a.hi >> n, a.lo>>n | a.hi<<(64-n) | s}
}

// norm64 normalises a nonzero a*2^exp to a 64-bit mantissa with sticky.
func (a u128) norm64(exp int) (int, uint64) {
	if a.hi == 0 {
		lz := bits.LeadingZeros64(a.lo)
		return exp - lz, a.lo << lz // exact: fits in 64 bits
	}
	lz := bits.LeadingZeros64(a.hi)
	hi := a.hi<<lz | a.lo>>(64-lz) // a.lo>>64 is 0 in Go
	if a.lo<<lz != 0 {
		hi |= 1
	}
	return exp + 64 - lz, hi
}

// sumExact adds x = mx*2^ex and y = my*2^ey (signed, mx and my with bit 127
// or 126 set, or zero) and returns the normalised sum, or zero=true when it
// is exactly zero. Both are shifted right by 2 for headroom and the smaller
// is aligned with jamming: with an exponent difference of 2 or more at most
// one bit cancels, so the jammed bit stays far below any rounding point.
func sumExact(xneg bool, ex int, mx u128, yneg bool, ey int, my u128) (neg bool, exp int, mant uint64, zero bool) {
	mx, my = mx.shrJam(2), my.shrJam(2)
	ex, ey = ex+2, ey+2
	if ey > ex || (ey == ex && mx.less(my)) {
		xneg, ex, mx, yneg, ey, my = yneg, ey, my, xneg, ex, mx
	}
	my = my.shrJam(ex - ey)
	var s u128
	if xneg == yneg {
		s = mx.add(my)
	} else {
		s = mx.sub(my)
	}
	if s.isZero() {
		return false, 0, 0, true
	}
	exp, mant = s.norm64(ex)
	return xneg, exp, mant, false
}

// exactZeroSign is the sign of an exact zero sum of opposite-signed terms.
func exactZeroSign(rm uint8) bool { return rm == rmRDN }

func (f ffmt) add(a, b uint64, rm uint8) (uint64, uint8) {
	x, y := f.unpack(a), f.unpack(b)
	switch {
	case x.nan() || y.nan():
		return f.canon(), nanFlags(x, y)
	case x.cls == clsInf && y.cls == clsInf && x.neg != y.neg:
		return f.canon(), fNV
	case x.cls == clsInf:
		return f.infinity(x.neg), 0
	case y.cls == clsInf:
		return f.infinity(y.neg), 0
	case x.cls == clsZero && y.cls == clsZero:
		if x.neg == y.neg {
			return f.zero(x.neg), 0
		}
		return f.zero(exactZeroSign(rm)), 0
	case x.cls == clsZero:
		return b & f.mask(), 0
	case y.cls == clsZero:
		return a & f.mask(), 0
	}
	neg, exp, mant, zero := sumExact(x.neg, x.exp-64, u128{x.mant, 0}, y.neg, y.exp-64, u128{y.mant, 0})
	if zero {
		return f.zero(exactZeroSign(rm)), 0
	}
	return f.round(neg, exp, mant, rm)
}

func (f ffmt) sub(a, b uint64, rm uint8) (uint64, uint8) {
	y := f.unpack(b)
	if y.nan() { // keep its class; the sign does not matter
		return f.add(a, b, rm)
	}
	return f.add(a, b^f.sign(), rm)
}

func (f ffmt) mul(a, b uint64, rm uint8) (uint64, uint8) {
	x, y := f.unpack(a), f.unpack(b)
	neg := x.neg != y.neg
	switch {
	case x.nan() || y.nan():
		return f.canon(), nanFlags(x, y)
	case (x.cls == clsInf && y.cls == clsZero) || (x.cls == clsZero && y.cls == clsInf):
		return f.canon(), fNV
	case x.cls == clsInf || y.cls == clsInf:
		return f.infinity(neg), 0
	case x.cls == clsZero || y.cls == clsZero:
		return f.zero(neg), 0
	}
	hi, lo := bits.Mul64(x.mant, y.mant)
	exp, mant := u128{hi, lo}.norm64(x.exp + y.exp)
	return f.round(neg, exp, mant, rm)
}

func (f ffmt) div(a, b uint64, rm uint8) (uint64, uint8) {
	x, y := f.unpack(a), f.unpack(b)
	neg := x.neg != y.neg
	switch {
	case x.nan() || y.nan():
		return f.canon(), nanFlags(x, y)
	case (x.cls == clsInf && y.cls == clsInf) || (x.cls == clsZero && y.cls == clsZero):
		return f.canon(), fNV
	case x.cls == clsInf:
		return f.infinity(neg), 0
	case y.cls == clsZero:
		return f.infinity(neg), fDZ
	case x.cls == clsZero || y.cls == clsInf:
		return f.zero(neg), 0
	}
	// mant_x * 2^63 / mant_y: the high word mant_x>>1 < mant_y, and bit 0
	// of mant_x is 0 (at most 53 significant bits), so the numerator is exact.
	q, r := bits.Div64(x.mant>>1, x.mant<<63, y.mant)
	exp := x.exp - y.exp - 63
	lz := bits.LeadingZeros64(q)
	q <<= lz
	exp -= lz
	if r != 0 {
		q |= 1
	}
	return f.round(neg, exp, q, rm)
}

func (f ffmt) sqrt(a uint64, rm uint8) (uint64, uint8) {
	x := f.unpack(a)
	switch {
	case x.nan():
		return f.canon(), nanFlags(x)
	case x.cls == clsZero:
		return a & f.mask(), 0
	case x.neg:
		return f.canon(), fNV
	case x.cls == clsInf:
		return a & f.mask(), 0
	}
	// mant*2^k with k in {63, 64} making exp-k even: a 127/128-bit radicand
	// whose root has 64 bits.
	k := 64
	if (x.exp-k)&1 != 0 {
		k = 63
	}
	n := new(big.Int).Lsh(new(big.Int).SetUint64(x.mant), uint(k))
	s := new(big.Int).Sqrt(n)
	exact := new(big.Int).Mul(s, s).Cmp(n) == 0
	m := s.Uint64()
	if !exact {
		m |= 1
	}
	return f.round(false, (x.exp-k)/2, m, rm)
}

// fma computes (±a*b) ± c with one rounding: negProd negates the product,
// negC the addend (fmsub, fnmsub, fnmadd).
func (f ffmt) fma(a, b, c uint64, negProd, negC bool, rm uint8) (uint64, uint8) {
	x, y, z := f.unpack(a), f.unpack(b), f.unpack(c)
	pneg := x.neg != y.neg != negProd
	zneg := z.neg != negC
	infZero := (x.cls == clsInf && y.cls == clsZero) || (x.cls == clsZero && y.cls == clsInf)
	switch {
	case infZero: // invalid even when c is a quiet NaN
		return f.canon(), fNV
	case x.nan() || y.nan() || z.nan():
		return f.canon(), nanFlags(x, y, z)
	case x.cls == clsInf || y.cls == clsInf:
		if z.cls == clsInf && zneg != pneg {
			return f.canon(), fNV
		}
		return f.infinity(pneg), 0
	case z.cls == clsInf:
		return f.infinity(zneg), 0
	case x.cls == clsZero || y.cls == clsZero:
		if z.cls == clsZero {
			if pneg == zneg {
				return f.zero(pneg), 0
			}
			return f.zero(exactZeroSign(rm)), 0
		}
		return c&f.mask() ^ f.zero(negC), 0
	}
	hi, lo := bits.Mul64(x.mant, y.mant)
	pexp := x.exp + y.exp
	if hi>>63 == 0 { // keep the product's top bit at 127 (exact: lo's top bit moves up)
		hi, lo = hi<<1|lo>>63, lo<<1
		pexp--
	}
	if z.cls == clsZero {
		exp, mant := u128{hi, lo}.norm64(pexp)
		return f.round(pneg, exp, mant, rm)
	}
	neg, exp, mant, zero := sumExact(pneg, pexp, u128{hi, lo}, zneg, z.exp-64, u128{z.mant, 0})
	if zero {
		return f.zero(exactZeroSign(rm)), 0
	}
	return f.round(neg, exp, mant, rm)
}

// cvtF converts a value of format from to format f (fcvt.s.d, fcvt.d.s).
func (f ffmt) cvtF(from ffmt, a uint64, rm uint8) (uint64, uint8) {
	x := from.unpack(a)
	switch x.cls {
	case clsQNaN, clsSNaN:
		return f.canon(), nanFlags(x)
	case clsInf:
		return f.infinity(x.neg), 0
	case clsZero:
		return f.zero(x.neg), 0
	}
	return f.round(x.neg, x.exp, x.mant, rm)
}

// fromInt converts an integer (magnitude mag, sign neg) to format f.
func (f ffmt) fromInt(mag uint64, neg bool, rm uint8) (uint64, uint8) {
	if mag == 0 {
		return 0, 0
	}
	lz := bits.LeadingZeros64(mag)
	return f.round(neg, -lz, mag<<lz, rm)
}

// toInt converts a to an integer of the given width (32 or 64), signed or
// not, rounding in mode rm. Out of range inputs, infinities and NaNs
// saturate with NV (a NaN to the largest value), as the F extension's table
// says; a negative input rounding to 0 converts to unsigned 0 with only NX.
// The result is the two's complement bits (not yet sign-extended).
func (f ffmt) toInt(a uint64, width uint, signed bool, rm uint8) (uint64, uint8) {
	x := f.unpack(a)
	var max, min uint64 // min is the most negative value's bits
	if signed {
		max, min = 1<<(width-1)-1, 1<<(width-1)
	} else {
		max = 1<<(width-1)<<1 - 1
	}
	sat := func(neg bool) (uint64, uint8) {
		if neg {
			return min, fNV
		}
		return max, fNV
	}
	switch x.cls {
	case clsQNaN, clsSNaN:
		return max, fNV
	case clsInf:
		return sat(x.neg)
	case clsZero:
		return 0, 0
	}
	var mag uint64
	var inexact bool
	switch {
	case x.exp > 0:
		return sat(x.neg)
	case x.exp == 0:
		mag = x.mant
	case x.exp < -64:
		mag, inexact = shiftRound(1, 64, x.neg, rm) // below 1/2: only directed modes round up
	default:
		mag, inexact = shiftRound(x.mant, uint(-x.exp), x.neg, rm)
	}
	var flags uint8
	if inexact {
		flags = fNX
	}
	switch {
	case mag == 0:
		return 0, flags
	case !x.neg && mag <= max:
		return mag, flags
	case x.neg && signed && mag <= min:
		return -mag, flags
	}
	return sat(x.neg)
}

// fclass returns the fclass mask of a.
func (f ffmt) fclass(a uint64) uint64 {
	x := f.unpack(a)
	sub := x.cls == clsFinite && a&f.inf() == 0
	var bit uint
	switch x.cls {
	case clsSNaN:
		return 1 << 8
	case clsQNaN:
		return 1 << 9
	case clsInf:
		bit = 7
	case clsZero:
		bit = 4
	default:
		bit = 6
		if sub {
			bit = 5
		}
	}
	if x.neg {
		bit = 7 - bit
	}
	return 1 << bit
}

// key maps a non-NaN encoding to an integer ordered like its value, with
// -0 below +0.
func (f ffmt) key(a uint64) int64 {
	if a&f.sign() != 0 {
		return -int64(a&^f.sign()) - 1
	}
	return int64(a)
}

func (f ffmt) isZero(a uint64) bool { return a&^f.sign()&f.mask() == 0 }

// cmp implements feq (op 2), flt (1) and fle (0). flt and fle signal NV on
// any NaN, feq only on signalling ones.
func (f ffmt) cmp(op uint32, a, b uint64) (uint64, uint8) {
	x, y := f.unpack(a), f.unpack(b)
	if x.nan() || y.nan() {
		if op == 2 {
			return 0, nanFlags(x, y)
		}
		return 0, fNV
	}
	eq := a == b || (f.isZero(a) && f.isZero(b))
	switch op {
	case 2:
		return b2u(eq), 0
	case 1:
		return b2u(!eq && f.key(a) < f.key(b)), 0
	}
	return b2u(eq || f.key(a) < f.key(b)), 0
}

// minMax implements fmin (max=false) and fmax: IEEE 754-2019
// minimumNumber/maximumNumber with -0 < +0. NV on any signalling NaN; one
// NaN gives the other operand, two give the canonical NaN.
func (f ffmt) minMax(a, b uint64, max bool) (uint64, uint8) {
	x, y := f.unpack(a), f.unpack(b)
	fl := nanFlags(x, y)
	switch {
	case x.nan() && y.nan():
		return f.canon(), fl
	case x.nan():
		return b, fl
	case y.nan():
		return a, fl
	}
	if (f.key(a) < f.key(b)) != max {
		return a, 0
	}
	return b, 0
}
