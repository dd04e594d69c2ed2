// Package clint is the SiFive CLINT of QEMU 7.2's virt machine (an ACLINT
// SWI at +0x0 and an MTIMER at +0x4000) for one hart.
//
// Guest time is owned by the machine's deterministic clock: mtime reads
// Clock.Now and writes to it are ignored. As in QEMU 7.2, mtimecmp resets to
// 0, so MTIP is pending from the start (masked by mie until the guest
// programs the timer).
package clint

import (
	"ftbox/guestvm/dev"
)

// Layout of the region (relative to Base).
const (
	Base = 0x2000000
	Size = 0x10000

	offMSIP     = 0x0
	swiEnd      = 0x4000 // ACLINT SWI region is [0, 0x4000)
	offMTimeCmp = 0x4000
	mtimerEnd   = 0xC000 // ACLINT MTIMER region is [0x4000, 0xC000)
	offMTime    = 0xBFF8
)

// CLINT is the core-local interruptor: software interrupt and timer.
type CLINT struct {
	clock dev.Clock
	cpu   dev.Lines

	msip     bool
	mtimecmp uint64
	mtip     bool // last level driven on MTIP
}

// New returns a CLINT in its reset state and drives the CPU lines to match.
func New(clock dev.Clock, cpu dev.Lines) *CLINT {
	c := &CLINT{clock: clock, cpu: cpu}
	c.Reset()
	return c
}

// Reset puts the CLINT in QEMU's reset state: msip clear, mtimecmp 0.
func (c *CLINT) Reset() {
	c.msip = false
	c.mtimecmp = 0
	c.cpu.SetIRQ(dev.MSIP, false)
	c.Update()
}

// Update sets or clears MTIP from now >= mtimecmp. The machine calls it
// between CPU runs (after guest time has moved).
func (c *CLINT) Update() {
	c.mtip = c.clock.Now() >= c.mtimecmp
	c.cpu.SetIRQ(dev.MTIP, c.mtip)
}

// Deadline returns mtimecmp: the guest time at which MTIP becomes pending.
func (c *CLINT) Deadline() uint64 { return c.mtimecmp }

// MTimeCmp returns the current mtimecmp (same as Deadline).
func (c *CLINT) MTimeCmp() uint64 { return c.mtimecmp }

// Read implements dev.Device. As in QEMU, the SWI takes 32-bit accesses
// only, the MTIMER 32- and 64-bit aligned ones; anything else, and the hole
// past the MTIMER, is an access fault. Unimplemented registers read 0.
func (c *CLINT) Read(off uint64, size int) (uint64, bool) {
	if !c.valid(off, size) {
		return 0, false
	}
	switch {
	case off < swiEnd:
		if off == offMSIP && c.msip {
			return 1, true
		}
		return 0, true
	case off == offMTimeCmp:
		if size == 4 {
			return c.mtimecmp & 0xFFFFFFFF, true
		}
		return c.mtimecmp, true
	case off == offMTimeCmp+4:
		return c.mtimecmp >> 32, true
	case off == offMTime:
		now := c.clock.Now()
		if size == 4 {
			return now & 0xFFFFFFFF, true
		}
		return now, true
	case off == offMTime+4:
		return c.clock.Now() >> 32, true
	}
	return 0, true
}

// Write implements dev.Device.
func (c *CLINT) Write(off uint64, size int, val uint64) bool {
	if !c.valid(off, size) {
		return false
	}
	switch {
	case off == offMSIP:
		c.msip = val&1 != 0
		c.cpu.SetIRQ(dev.MSIP, c.msip)
	case off == offMTimeCmp:
		if size == 4 {
			c.mtimecmp = c.mtimecmp&^0xFFFFFFFF | val&0xFFFFFFFF
		} else {
			c.mtimecmp = val
		}
		c.timerChanged()
	case off == offMTimeCmp+4:
		c.mtimecmp = c.mtimecmp&0xFFFFFFFF | (val&0xFFFFFFFF)<<32
		c.timerChanged()
	}
	// mtime writes are ignored: guest time belongs to the machine's clock.
	return true
}

func (c *CLINT) timerChanged() {
	c.Update()
	c.cpu.RequestStop()
}

func (c *CLINT) valid(off uint64, size int) bool {
	switch {
	case off < swiEnd:
		return size == 4 && off%4 == 0
	case off < mtimerEnd:
		return (size == 4 || size == 8) && off%uint64(size) == 0
	}
	return false
}
