// Package dev holds what every guestvm device shares: the MMIO device
// contract, interrupt wiring and the guest-RAM view that DMA goes through.
// Each device lives in its own sub-package (clint, plic, uart, virtio,
// finisher) with its snapshot code beside it.
//
// Devices are driven only by the machine's single owner: no goroutines, no
// locks, no clocks. Anything a device needs to know about time it asks the
// Clock it was built with, which is a pure function of the instruction count.
package dev

import "ftbox/guestvm/snap"

// Device is one MMIO region. Offsets are relative to the region's base.
// size is 1, 2, 4 or 8. A false ok makes the CPU raise an access fault, so a
// device must never panic on any offset, size or value.
type Device interface {
	Read(off uint64, size int) (val uint64, ok bool)
	Write(off uint64, size int, val uint64) (ok bool)
	// Save writes the device's whole state; Restore reads it back. A digest
	// is a hash of what Save writes.
	Save(w *snap.Writer)
	Restore(r *snap.Reader) error
}

// CPU interrupt-pending bits (mip) that hardware drives.
const (
	MSIP uint64 = 1 << 3
	MTIP uint64 = 1 << 7
	SEIP uint64 = 1 << 9
	MEIP uint64 = 1 << 11
)

// Lines is the CPU side of interrupt wiring and of run control; the rv64 CPU
// implements it.
type Lines interface {
	// SetIRQ raises (level true) or lowers the hardware-driven mip bits in mask.
	SetIRQ(mask uint64, level bool)
	// RequestStop asks the CPU to return from Run after the current
	// instruction, so the machine can react (a frame was emitted, the timer
	// was reprogrammed, the finisher was hit).
	RequestStop()
}

// Clock gives guest time (mtime ticks). It is exact mid-Run: it depends only
// on the current instruction count.
type Clock interface {
	Now() uint64
}

// IRQSink is a device's interrupt output (a PLIC source).
type IRQSink interface {
	SetLevel(source int, level bool)
}

// RAM is guest physical memory as DMA sees it: no MMU, bounds-checked.
type RAM struct {
	Base  uint64
	Bytes []byte
	// Touch, if set, is told about every range handed out by Slice, since
	// the caller may write it: the machine uses it to drop decoded
	// instructions and to mark pages dirty for the next digest. Reporting
	// a range that is only read costs a little rehashing, never correctness.
	Touch func(gpa, n uint64)
}

// Slice returns the n bytes at guest physical address gpa, aliasing guest
// memory, or ok=false when any part lies outside RAM (including wrap-around).
func (m RAM) Slice(gpa uint64, n uint64) ([]byte, bool) {
	if gpa < m.Base {
		return nil, false
	}
	off := gpa - m.Base
	size := uint64(len(m.Bytes))
	if off > size || n > size-off {
		return nil, false
	}
	if m.Touch != nil && n > 0 {
		m.Touch(gpa, n)
	}
	return m.Bytes[off : off+n : off+n], true
}
