#include "common.inc"
# pte(reg, tablesym, index, physreg, flags): table[index] = (phys>>12)<<10 | flags
.macro PTE tab, idx, phys, flags
  la t0, \tab
  srli t1, \phys, 12
  slli t1, t1, 10
  ori t1, t1, \flags
  sd t1, (\idx*8)(t0)
.endm
.macro FIX
  li t6, 0x1800
  csrc mstatus, t6
  li t6, 0x0800
  csrs mstatus, t6
.endm
main:
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0         # QEMU denies S/U accesses when no PMP entry is set
  la s0, pt1
  PTE pt2, 0, s0, 0x01          # VA 0..1G -> pt1
  li s0, 0x80001000
  PTE pt2, 1, s0, 0xcf          # VA 1G: misaligned 1G superpage
  li s0, 0x80000000
  PTE pt2, 2, s0, 0x0f          # VA 2G: identity 1G RWX, A/D clear (S only)
  PTE pt2, 3, s0, 0xdf          # VA 3G: same memory, user RWX
  la s0, pt0
  PTE pt1, 0, s0, 0x01          # VA 0..2M -> pt0
  li s0, 0x80000000
  PTE pt1, 1, s0, 0x43          # VA 2M: 2M read-only, A set
  PTE pt1, 2, s0, 0x45          # VA 4M: W only (reserved)
  li s0, 0x10000000
  PTE pt1, 0x80, s0, 0xc7       # VA 0x10000000: UART, 2M RW
  la s0, page0
  PTE pt0, 0, s0, 0x07          # VA 0: RW, A/D clear
  PTE pt0, 1, s0, 0x49          # VA 0x1000: X only
  PTE pt0, 2, s0, 0xd7          # VA 0x2000: user RW
  PTE pt0, 4, s0, 0x41          # VA 0x4000: non-leaf at level 0 (fault)
  la s0, pt2
  srli s0, s0, 12
  li t0, 8
  slli t0, t0, 60
  or s0, s0, t0
  csrw satp, s0
  sfence.vma
  # MPRV=1, MPP=S: data accesses are translated as S
  li t0, 0x20800
  csrs mstatus, t0
  li s1, 0
  ld a0, 0(s1); call phex
  la s2, pt0
  li t0, 0x80000000
  sub s2, s2, t0
  li t0, 0x80000000
  add s2, s2, t0           # VA of pt0 == PA (identity 1G)
  ld a0, 0(s2); call phex  # A set now
  li t0, 0x1234
  sd t0, 0(s1)
  ld a0, 0(s2); call phex  # D set now
  li s1, 0x1000
  ld a0, 0(s1)             # X only: load fault
  FIX
  li t0, 0x80000
  csrs mstatus, t0         # MXR
  ld a0, 0(s1); call phex
  csrc mstatus, t0
  li s1, 0x2000
  ld a0, 0(s1)             # U page from S: fault
  FIX
  li t0, 0x40000
  csrs mstatus, t0         # SUM
  ld a0, 0(s1); call phex
  csrc mstatus, t0
  li s1, 0x3000
  ld a0, 0(s1)             # invalid
  FIX
  sd a0, 0(s1)
  FIX
  li s1, 0x4000
  ld a0, 0(s1)             # non-leaf at last level
  FIX
  li s1, 0x40000000
  ld a0, 0(s1)             # misaligned superpage
  FIX
  li s1, 0x200008
  ld a0, 0(s1); call phex  # 2M read-only
  sd a0, 0(s1)
  FIX
  amoadd.d a0, a0, (s1)
  FIX
  lr.d a0, (s1); call phex
  li s1, 0x400000
  ld a0, 0(s1)             # W-only
  FIX
  li s1, 1
  slli s1, s1, 39
  ld a0, 0(s1)             # non-canonical
  FIX
  ld a0, 8(s2); call phex
  ld a0, 16(s2); call phex
  li a0, '-'; call pch
  li t0, 0x20000
  csrc mstatus, t0         # MPRV off
  # S-mode: delegate U ecall and SSI to S
  la t0, strap
  csrw stvec, t0
  li t0, 0x100
  csrw medeleg, t0
  li t0, 0x2
  csrw mideleg, t0
  la t0, smain
  csrw mepc, t0
  li t0, 0x1800
  csrc mstatus, t0
  li t0, 0x0800
  csrs mstatus, t0
  mret
smain:
  li a0, 0x51
  ecall                    # S ecall -> M (prints)
  li t0, 0x10000000
  li t1, 'S'
  sb t1, 0(t0)             # UART through the page table
  li t1, 10
  sb t1, 0(t0)
  csrr a0, sstatus; call phex
  csrr a0, satp
  csrr a0, mstatus         # illegal from S
  li t0, 0x100000
  csrw sscratch, t0
  # software interrupt to S
  li t0, 2
  csrs sie, t0
  csrs sip, t0             # SSIP writable through sip when delegated
  csrsi sstatus, 2         # SIE: taken now
  nop
  mv a0, s10; call phex
  # to U at the user alias (VA 3G + offset)
  la t0, umain
  li t1, 0x40000000
  add t0, t0, t1
  csrw sepc, t0
  li t0, 0x100
  csrc sstatus, t0
  sret
umain:
  li a0, 0x55
  ecall                    # -> S (delegated)
  mv a0, s10
  mv s9, s11
  li a7, 0
  ecall                    # -> S again; prints through M? no: S handler stores it
  csrr a0, sstatus         # illegal -> M
  wfi                      # illegal in U -> M
  li a0, 0x77
  li a7, 93
  li t0, 0
  csrr t0, cycle           # mcounteren=0 -> illegal -> M
  li a7, 93
  li t0, 0x80000000
  ld a0, 0(t0)             # VA 2G is S-only -> load page fault to M
  ecall                    # -> S, which forwards exit
strap:
  csrr s10, scause
  csrr s11, stval
  bgez s10, 2f
  csrci sip, 2
  sret
2: csrr t0, sepc
  addi t0, t0, 4
  csrw sepc, t0
  bltz s10, 1f
  li t0, 93
  bne a7, t0, 1f
  mv a0, s10
  li t0, 0
  ecall                    # S ecall with a7=93 -> M exits
1: sret
.data
.align 12
pt2: .space 4096
pt1: .space 4096
pt0: .space 4096
page0: .dword 0x1111111111111111, 0x2222222222222222, 0x3333333333333333
.bss
.space 4096
stack_top:
