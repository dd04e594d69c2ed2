#include "common.inc"
# F/D corners against QEMU: FS Off traps (mtval), FS Initial/Clean -> Dirty
# and SD, C.FLD/C.FSD, NaN boxing through loads and moves, frm/fflags/fcsr.
#define FSDUMP csrr a0, mstatus; li t0, 0x8000000000006000; and a0, a0, t0; call phex
main:
  li t0, 0x6000
  csrc mstatus, t0
  FSDUMP
  fadd.d f1, f2, f3          # FS Off: illegal, mtval = the encoding
  csrr a0, fflags
  .option rvc
  c.fld f8, 8(s0)            # compressed: mtval is 16 bits
  .option norvc
  li t0, 0x2000              # FS = Initial
  csrs mstatus, t0
  FSDUMP
  csrr a0, fcsr              # reads leave it Initial
  FSDUMP
  li t0, 0x7ff0000000000001
  fmv.d.x f1, t0             # an f register write: Dirty, SD
  FSDUMP
  li t0, 0x6000
  csrc mstatus, t0
  li t0, 0x4000              # Clean
  csrs mstatus, t0
  csrw fflags, zero          # a CSR write: Dirty
  FSDUMP
  la t1, data
  flw f2, 0(t1)              # boxed on load
  fmv.x.d a0, f2; call phex
  fld f3, 8(t1)
  fmv.x.w a0, f3; call phex  # low bits, sign-extended, no unboxing
  fadd.s f4, f3, f2          # f3 improperly boxed: canonical NaN, no NV
  fmv.x.d a0, f4; call phex
  csrr a0, fflags; call phex
  fsd f2, 16(t1)
  ld a0, 16(t1); call phex
  fsw f3, 24(t1)
  ld a0, 24(t1); call phex
  la s0, data+32
  .option rvc
  fmv.d.x f11, t1
  c.fsd f11, 0(s0)
  .option norvc
  fmv.d.x f11, zero
  .option rvc
  c.fld f11, 0(s0)
  .option norvc
  ld a0, 32(t1); call phex
  fmv.x.d a0, f11; call phex
  li t0, 0xfe
  fscsr a0, t0
  call phex
  frcsr a0; call phex
  frrm a0; call phex
  fadd.d f5, f1, f1, dyn     # frm = 7: illegal
  .4byte 0x02f0f2d3          # fadd.d f5, f1, f15, rm 5: illegal
  fsrmi 3
  li t0, 0x3ff0000000000000
  fmv.d.x f6, t0
  li t0, 0x3ca0000000000000
  fmv.d.x f7, t0
  fadd.d f8, f6, f7, dyn     # RUP: 1 + ulp
  fmv.x.d a0, f8; call phex
  frcsr a0; call phex
  fsflagsi 0
  fmin.d f9, f1, f6          # sNaN: the other operand, NV
  fmv.x.d a0, f9; call phex
  frflags a0; call phex
  fsflagsi 0
  li t0, 0x6000
  csrc mstatus, t0
  li t0, 0x2000
  csrs mstatus, t0
  feq.d a0, f1, f6           # NV into fflags
  frflags a0; call phex
  # Not compared: FS now. The spec (and guestvm) make it Dirty, as fflags
  # changed; QEMU 7.2 leaves it Initial for FP instructions that write no
  # f register (feq/flt/fle, fcvt to integer, fclass, fmv.x).
  call exit
.data
.align 3
data:
  .word 0x3f800000, 0
  .dword 0x00000000bf800000
  .dword 0, 0, 0
.bss
.space 4096
stack_top:
