# PMP and counter/CSR access from S and U mode, compared with QEMU 7.2.
# ptrap prints "T<mcause><mtval>"; an ecall or a fetch fault returns to M
# at s11, any other trap skips the instruction.
#include "common.inc"
.macro IN mode, label   # run \label in S (1) or U (0) until it ecalls
  la s11, 1f
  li t0, 0x1800
  csrc mstatus, t0
  li t0, (\mode << 11)
  csrs mstatus, t0
  la t0, \label
  csrw mepc, t0
  mret
1:
.endm
.macro CFG0 v           # pmpcfg0 = v
  li t0, \v
  csrw pmpcfg0, t0
.endm
.macro NAPOT n, sym, off, mask
  la t0, \sym
  li t1, \off
  add t0, t0, t1
  srli t0, t0, 2
  ori t0, t0, \mask
  csrw pmpaddr\n, t0
.endm
main:
  la t0, ptrap
  csrw mtvec, t0
  la t0, region            # an ecall where s_loads jumps (when allowed)
  li t1, 0x3000
  add t0, t0, t1
  li t1, 0x00000073
  sw t1, 0(t0)
  # 1: no entry active: QEMU 7.2 makes an mret to S or U illegal
  IN 1, s_loads
  li a0, '1'; call pch
  # 2: entry 15 gives everything
  li t0, -1
  srli t0, t0, 10
  csrw pmpaddr15, t0
  li t0, 0x1f << 56
  csrw pmpcfg2, t0
  IN 1, s_loads
  li a0, '2'; call pch
  # 3: entry 0: page 0 R; 1: off (the TOR base); 2: TOR [0x1000, 0x1800)
  # none; 3: NA4 at 0x2000 W only (reserved, stored); 4: page 3 RW; 5: 16K
  # RWX over all
  NAPOT 0, region, 0, 0x1ff
  la t0, region
  li t1, 0x1000
  add t0, t0, t1
  srli t0, t0, 2
  csrw pmpaddr1, t0
  # entry 2: TOR between pmpaddr1 (0x1000) and pmpaddr2 (0x1800): none
  la t0, region
  li t1, 0x1800
  add t0, t0, t1
  srli t0, t0, 2
  csrw pmpaddr2, t0
  # entry 3: NA4 at 0x2000, W only
  la t0, region
  li t1, 0x2000
  add t0, t0, t1
  srli t0, t0, 2
  csrw pmpaddr3, t0
  NAPOT 4, region, 0x3000, 0x1ff
  NAPOT 5, region, 0, 0x7ff
  CFG0 0x00001f1b12080019
  csrr a0, pmpcfg0; call phex
  IN 1, s_loads
  li a0, '3'; call pch
  IN 0, s_loads
  li a0, '4'; call pch
  # M is not checked without L; MPRV makes it S
  la s0, region
  sd zero, 0(s0)
  li t0, 0x20800
  csrs mstatus, t0
  la s0, region
  sd zero, 0(s0)
  li t0, 0x20000
  csrc mstatus, t0
  li a0, '5'; call pch
  # 6: the TLB follows PMP writes: page 1 cached, then denied
  IN 1, s_tlb
  NAPOT 0, region, 0x1000, 0x1ff
  IN 1, s_tlb
  CFG0 0x00001f1b12080018
  IN 1, s_tlb
  li a0, '6'; call pch
  # 7: counters and CSRs from S and U
  csrw mcounteren, zero
  csrw scounteren, zero
  IN 1, s_ctr
  IN 0, s_ctr
  li t0, 1
  csrw mcounteren, t0
  IN 1, s_ctr
  IN 0, s_ctr
  li t0, -1
  csrw mcounteren, t0
  li t0, 4
  csrw scounteren, t0
  IN 1, s_ctr
  IN 0, s_ctr
  li t0, -1
  csrw scounteren, t0
  IN 0, s_ctr
  li a0, '7'; call pch
  # 8: page-table reads are checked (as S loads)
  la t0, ptroot
  la t1, region         # root[2]: VA 2G..3G -> PA 2G, RWX AD
  li t1, 0x80000000
  srli t1, t1, 12
  slli t1, t1, 10
  ori t1, t1, 0xcf
  sd t1, 16(t0)
  srli t0, t0, 12
  li t1, 8
  slli t1, t1, 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  IN 1, s_loads
  NAPOT 6, ptroot, 0, 0x1ff
  li t0, 0x18 << 48
  csrs pmpcfg0, t0
  sfence.vma
  IN 1, s_loads
  csrw satp, zero
  sfence.vma
  li a0, '8'; call pch
  # 9: a locked entry applies to M and ignores writes
  NAPOT 7, region, 0x4000, 0x1ff
  li t0, 0x99 << 56
  csrs pmpcfg0, t0
  la s0, region
  li t0, 0x4000
  add s0, s0, t0
  ld a0, 0(s0); call phex
  sd zero, 0(s0)
  la s11, 1f
  jalr ra, s0
1:
  li t0, 0xff << 56
  csrc pmpcfg0, t0
  csrr a0, pmpcfg0; call phex
  csrw pmpaddr7, zero
  csrr a0, pmpaddr7
  srli a0, a0, 9; call phex
  li a0, '9'; call pch
  li a0, 10; call pch
  call exit

# S/U-mode test bodies: end with ecall
s_loads:
  la s0, region
  ld a0, 0(s0)             # page 0 (R)
  sd a0, 0(s0)             # store: denied by entry 0
  li t0, 0x1000
  add s1, s0, t0
  ld a0, 0(s1)             # TOR [0x1000, 0x1800): none
  ld a0, 0x7f8(s1)
  ld a0, 0x7fc(s1)         # partly inside the TOR entry
  addi s1, s1, 0x7f0
  ld a0, 0x10(s1)          # above it: entry 5
  li t0, 0x2000
  add s1, s0, t0
  sw zero, 0(s1)           # NA4 W only: store ok
  lw a0, 0(s1)             # load denied
  lw a0, 4(s1)             # next word: entry 5
  ld a0, 0(s1)             # 8 bytes partly in the NA4 entry
  li t0, 0x3000
  add s1, s0, t0
  sd zero, 8(s1)           # page 3 is RW
  jalr ra, s1              # no X: fetch fault, back to M (else the ecall there)
  ecall
s_tlb:
  la s0, region
  li t0, 0x1000
  add s0, s0, t0
  li t0, 0x800
  add s0, s0, t0
  ld a0, 0(s0)
  ld a0, 8(s0)
  ecall
s_ctr:
  csrr zero, cycle
  csrr zero, time
  csrr zero, instret
  csrr zero, hpmcounter3
  csrr zero, hpmcounter18
  csrr zero, hpmcounter19
  csrr zero, senvcfg
  csrr zero, scounteren
  csrr zero, menvcfg
  csrr zero, tselect
  csrr zero, tdata1
  ecall

.align 4
ptrap:
  addi sp, sp, -16
  sd ra, 0(sp)
  sd a0, 8(sp)
  li a0, 'T'; call pch
  csrr a0, mcause; call phex
  csrr a0, mtval; call phex
  csrr t0, mcause
  li t1, 8
  beq t0, t1, 2f
  li t1, 9
  beq t0, t1, 2f
  li t1, 1
  beq t0, t1, 2f
  csrr t0, mepc
  addi t0, t0, 4
  csrw mepc, t0
  j 3f
2: li t0, 0x1800
  csrs mstatus, t0
  csrw mepc, s11
3: ld ra, 0(sp)
  ld a0, 8(sp)
  addi sp, sp, 16
  mret

.data
.align 12
region: .space 0x5000
ptroot: .space 0x1000
.bss
.space 4096
stack_top:
