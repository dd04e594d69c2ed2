// Package rv64 is the guest CPU: an RV64IMAC + Zicsr + Zifencei hart with
// M/S/U modes, traps and interrupts per the privileged spec and Sv39 paging.
//
// It is an interpreter over pre-decoded instructions: each 4 KiB code page is
// decoded once into fixed-size slots (compressed instructions expanded), and
// the dispatch loop is a dense switch on a uint8 op. Stores into a page that
// has been decoded invalidate it, so self-modifying code behaves as on QEMU.
//
// Determinism: the CPU reads no clock and no randomness; the instruction count
// is exact at every instruction, so events can be injected at an exact count.
package rv64
