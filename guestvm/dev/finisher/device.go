// Package finisher is QEMU's sifive_test device: a guest writes a magic
// value to offset 0 to pass, fail with a code, or reset the machine.
package finisher

import (
	"fmt"

	"ftbox/guestvm/dev"
	"ftbox/guestvm/snap"
)

// Layout.
const (
	Base = 0x100000
	Size = 0x1000
)

// Magic values (low 16 bits of the word written at offset 0).
const (
	FinisherFail  = 0x3333
	FinisherPass  = 0x5555
	FinisherReset = 0x7777
)

// Kind is what the guest asked for.
type Kind uint8

// Kinds.
const (
	None Kind = iota
	Pass
	Fail
	Reset
)

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	case Reset:
		return "reset"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Finisher is the sifive_test device.
type Finisher struct {
	cpu  dev.Lines
	kind Kind
	code uint32
}

// New returns a finisher with no status.
func New(cpu dev.Lines) *Finisher { return &Finisher{cpu: cpu} }

// Status returns the last request: the kind and, for Fail, the code
// (value >> 16, as QEMU passes to exit).
func (f *Finisher) Status() (kind Kind, code uint32) { return f.kind, f.code }

// Clear forgets the last request (the machine calls it after a reset).
func (f *Finisher) Clear() { f.kind, f.code = None, 0 }

// Read implements dev.Device: reads return 0. As in QEMU, only 16- and
// 32-bit accesses are valid.
func (f *Finisher) Read(off uint64, size int) (uint64, bool) {
	if !valid(off, size) {
		return 0, false
	}
	return 0, true
}

// Write implements dev.Device.
func (f *Finisher) Write(off uint64, size int, val uint64) bool {
	if !valid(off, size) {
		return false
	}
	if off != 0 {
		return true
	}
	status := val & 0xFFFF
	code := uint32(val>>16) & 0xFFFF
	switch status {
	case FinisherPass:
		f.kind, f.code = Pass, 0
	case FinisherFail:
		f.kind, f.code = Fail, code
	case FinisherReset:
		f.kind, f.code = Reset, 0
	default:
		return true
	}
	f.cpu.RequestStop()
	return true
}

func valid(off uint64, size int) bool {
	return (size == 2 || size == 4) && off < Size && off%uint64(size) == 0
}

// Save implements dev.Device.
func (f *Finisher) Save(w *snap.Writer) {
	w.Tag("finisher/v1")
	w.U8(uint8(f.kind))
	w.U32(f.code)
}

// Restore implements dev.Device.
func (f *Finisher) Restore(r *snap.Reader) error {
	r.Tag("finisher/v1")
	k := Kind(r.U8())
	code := r.U32()
	if err := r.Err(); err != nil {
		return err
	}
	if k > Reset {
		return fmt.Errorf("finisher: impossible kind %d", k)
	}
	if code > 0xFFFF || (k != Fail && code != 0) {
		return fmt.Errorf("finisher: impossible code %#x for %v", code, k)
	}
	f.kind, f.code = k, code
	return nil
}
