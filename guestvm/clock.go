package guestvm

import "math/bits"

// clock is guest time as a pure function of the instruction count:
// mtime = t0 + (icount - i0) * num / den. Only a clock-sync event, injected
// at an exact instruction count, changes (t0, i0, num, den); so the backup,
// fed the same events, reads the same time at every instruction.
type clock struct {
	t0, i0   uint64
	num, den uint64
	icount   func() uint64
}

// Default rate: one instruction is one nanosecond at the 10 MHz timebase,
// which is what QEMU's -icount shift=0 gives, so offline runs see the same
// time as the reference.
const (
	defaultRateNum = 1
	defaultRateDen = 100
	// TimebaseHz is the frequency of mtime, as in QEMU's virt machine.
	TimebaseHz = 10_000_000
)

// at returns mtime at instruction count ic (ic >= i0).
func (c *clock) at(ic uint64) uint64 {
	hi, lo := bits.Mul64(ic-c.i0, c.num)
	if hi >= c.den { // would overflow 64 bits of ticks: saturate
		return ^uint64(0)
	}
	q, _ := bits.Div64(hi, lo, c.den)
	s, carry := bits.Add64(c.t0, q, 0)
	if carry != 0 {
		return ^uint64(0)
	}
	return s
}

// Now implements dev.Clock.
func (c *clock) Now() uint64 { return c.at(c.icount()) }

// reach returns the first instruction count >= from at which mtime >= t, or
// ok=false if time never gets there (a stopped clock, or beyond 2^64).
func (c *clock) reach(t, from uint64) (uint64, bool) {
	if c.at(from) >= t {
		return from, true
	}
	if c.num == 0 {
		return 0, false
	}
	// Smallest x with floor(x*num/den) >= t-t0, i.e. x*num >= (t-t0)*den.
	hi, lo := bits.Mul64(t-c.t0, c.den)
	lo, carry := bits.Add64(lo, c.num-1, 0)
	hi += carry
	if hi >= c.num {
		return 0, false
	}
	x, _ := bits.Div64(hi, lo, c.num)
	ic, carry := bits.Add64(c.i0, x, 0)
	if carry != 0 {
		return 0, false
	}
	return ic, true
}

// sync moves the clock: from instruction count ic on, time starts at
// max(now, t) and advances num/den ticks per instruction. Time never goes
// backwards.
func (c *clock) sync(ic, t, num, den uint64) {
	now := c.at(ic)
	if t < now {
		t = now
	}
	c.t0, c.i0 = t, ic
	if den != 0 {
		c.num, c.den = num, den
	}
}
