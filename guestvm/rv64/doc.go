// Package rv64 is the guest CPU: an RV64IMAFDC (RV64GC) hart with
// M/S/U modes, traps and interrupts per the privileged spec and Sv39 paging.
//
// It is an interpreter over pre-decoded instructions: each 4 KiB code page is
// decoded once into fixed-size slots (compressed instructions expanded), and
// the dispatch loop is a dense switch on a uint8 op. That loop (runFast in
// fast.go) holds only what needs no call, so its state stays in registers;
// everything else goes one instruction at a time through step (exec.go).
// Stores into a page that has been decoded invalidate it, so self-modifying
// code behaves as on QEMU.
//
// Determinism: the CPU reads no clock and no randomness; the instruction count
// is exact at every instruction, so events can be injected at an exact count.
package rv64

// Where the spec leaves a choice, the hart behaves like QEMU 7.2's
// qemu-system-riscv64 -machine virt with
// -cpu rv64,h=false,zba=false,zbb=false,zbc=false,zbs=false,
// sstc=false,svpbmt=false,svinval=false,svnapot=false,Zihintpause=false,
// v=false,sscofpmf=false,marchid=0,mimpid=0 (see qemu_test.go, which checks
// testdata/*.S against QEMU byte for byte): misaligned loads and stores
// succeed (outside RAM they become two aligned accesses, as in QEMU's
// softmmu); misaligned LR/SC/AMOs raise cause 4; the LR reservation is an
// address and value and is dropped on every trap and xRET; mtval holds the
// instruction bits on illegal instruction and 0 on EBREAK/ECALL; interrupts
// are taken M-level first, lowest bit number first; CSR WARL masks match.
// PMP is enforced with QEMU 7.2's 16 entries (see pmp.go, which lists
// the departures), and an mret to S or U with no PMP entry set is illegal,
// as in QEMU 7.2. The debug trigger CSRs (tselect, tdata1-3, tinfo) read and
// write as QEMU 7.2's two triggers do, but triggers never fire.
// One departure from QEMU, where it departs from the spec: any change to
// fflags sets mstatus.FS to Dirty; QEMU 7.2 only dirties FS on f register
// and FP CSR writes, so feq/flt/fle, fcvt to integer and the like leave an
// Initial or Clean FS alone there.
