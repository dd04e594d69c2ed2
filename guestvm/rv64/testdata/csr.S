#include "common.inc"
main:
  csrr a0, mstatus; call phex
  csrr a0, misa; call phex
  CW medeleg
  CW mideleg
  CW mie
  csrw mie, zero
  li a0, -1
  csrw mip, a0
  csrr a0, mip
  andi a0, a0, -129   # MTIP comes from QEMU's CLINT (mtimecmp=0): not ours to compare
  call phex
  csrw mip, zero
  CW mstatus
  CW pmpaddr0
  CW pmpcfg0
  CW pmpaddr0
  CW mcounteren
  CW scounteren
  CW menvcfg
  CW senvcfg
  CW sstatus
  CW sie
  CW sip
  csrw mie, zero
  csrw mip, zero
  csrw mideleg, zero
  li a0, 0x1000000000001800
  csrw mstatus, a0
  csrr a0, mstatus; call phex
  li a0, 0x1000
  csrw mstatus, a0
  csrr a0, mstatus; call phex
  li a0, 0x1003
  csrw mtvec, a0
  csrr a0, mtvec; call phex
  la a0, trap
  csrw mtvec, a0
  CW mepc
  CW sepc
  CW mtval
  CW mcause
  CW scause
  CW stvec
  CW sscratch
  CW mscratch
  CW stval
  li a0, 0x80000000000fffff
  csrw satp, a0
  csrr a0, satp; call phex
  li a0, 0x90000000000fffff
  csrw satp, a0
  csrr a0, satp; call phex
  li a0, 0x8fff00000000000f
  csrw satp, a0
  csrr a0, satp; call phex
  li a0, 0xf0000000000fffff
  csrw satp, a0
  csrr a0, satp; call phex
  csrw satp, zero
  li a0, '-'; call pch
  csrr a0, 0x7c0
  csrw cycle, a0
  csrw mhartid, a0
  csrr a0, mhartid; call phex
  csrr a0, mvendorid; call phex
  csrr a0, marchid; call phex
  csrr a0, mimpid; call phex
  csrr a0, mconfigptr; call phex
  csrr a0, fcsr
  csrr a0, pmpcfg1
  csrr a0, 0x3a3
  CW mhpmevent3
  CW mhpmcounter3
  CW mhpmcounter31
  CW mhpmcounter18
  CW mhpmevent31
  csrr a0, hpmcounter19
  csrrs a0, mstatus, zero; call phex
  csrrc a0, mstatus, zero; call phex
  csrrsi a0, mstatus, 8; call phex
  csrrci a0, mstatus, 8; call phex
  csrrwi a0, mscratch, 21; call phex
  csrr a0, mscratch; call phex
  csrrw zero, 0xc00, zero
  csrrs zero, 0xc00, zero
  li a0, 0x600
  csrw mstatus, a0
  csrr a0, mstatus; call phex
  csrr a0, sstatus; call phex
  li a0, 0x6000
  csrw mstatus, a0
  csrr a0, mstatus; call phex
  call exit
.data
.align 4
data: .dword 0x1122334455667788, 0x99aabbccddeeff00
.bss
.space 4096
stack_top:
