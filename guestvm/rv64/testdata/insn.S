#include "common.inc"
main:
  li a0, '-'; call pch
  .word 0xffffffff
  .word 0x00000000
  .word 0x00100073
  .word 0x00000073
  .word 0x00000053
  .word 0x00002007
  .word 0x0000700f
  .word 0x0000400b
  .word 0x10400073
  .word 0x12000033
  .word 0x00007003
  .word 0x02009013   # slli with bad funct6 bit 25? (shamt bit 5 fine)
  .word 0x04009013   # bad funct6
  .word 0x0200101b   # slliw shamt[5]=1 -> illegal
  .word 0x4000503b   # sraw ok? funct7 0x20
  .word 0x0000202f   # amoadd.w
  .word 0x1000302f   # lr.d with rs2=0
  .word 0x1010302f   # lr.d rs2!=0 -> illegal
  .word 0x0000402f   # bad width
  .word 0x2000302f   # amoxor
  .word 0x3000302f   # illegal funct5 0x06
  la s0, data
  # compressed
  .option push
  .option rvc
  .half 0x8002   # c.jr x0 -> illegal
  .half 0x0001
  .half 0x0000
  .half 0x0001
  .half 0x6081   # c.lui x1, 0
  .half 0x0001
  .half 0x6101   # c.addi16sp 0
  .half 0x0001
  .half 0x2001   # c.addiw x0
  .half 0x0001
  .half 0x4002   # c.lwsp x0
  .half 0x0001
  .half 0x6002   # c.ldsp x0
  .half 0x0001
  .half 0x9c01   # c.subw? 100 1 11 000 00 001 -> c.subw x8,x8? (reserved? no)
  .half 0x9c41   # c.addw
  .half 0x9c81   # reserved
  .half 0x0001
  .half 0x9cc1   # reserved
  .half 0x0001
  .half 0x2002   # c.fldsp
  .half 0x0001
  .half 0xa002   # c.fsdsp
  .half 0x0001
  .half 0x8000   # reserved quadrant0 100
  .half 0x0001
  .half 0x0001
  .option pop
  li a0, '-'; call pch
  # misaligned data accesses (s0 = 0 here: the compressed tests cleared it)
  ld s1, 1(s0); P s1
  sw s1, 3(s0)
  lw s1, 2(s0); P s1
  lh s1, 5(s0); P s1
  lhu s1, 7(s0); P s1
  sd s1, 9(s0)
  ld s1, 8(s0); P s1
  la s0, data
  ld s1, 1(s0); P s1
  sw s1, 3(s0)
  lw s1, 2(s0); P s1
  lh s1, 5(s0); P s1
  lhu s1, 7(s0); P s1
  sd s1, 9(s0)
  ld s1, 8(s0); P s1
  lr.w s1, (s0)
  addi s2, s0, 2
  lr.w s1, (s2)
  sc.w s1, s1, (s2); P s1
  amoadd.w s1, s1, (s2)
  amoswap.d s1, s1, (s2)
  addi s2, s0, 4
  lr.w s1, (s2)
  sc.d s3, s1, (s2); P s3
  li a0, '-'; call pch
  li s2, 8
  ld s1, 0(s2)
  sd s1, 0(s2)
  amoadd.w s1, s1, (s2)
  lr.w s1, (s2)
  li s2, 0x10000
  lw s1, 0(s2)
  li s2, -8
  ld s1, 0(s2)
  li a0, '-'; call pch
  # LR/SC
  lr.d s1, (s0)
  ecall
  sc.d s1, s1, (s0); P s1
  lr.d s1, (s0)
  sd s1, 0(s0)
  sc.d s1, s1, (s0); P s1
  lr.d s1, (s0)
  addi s1,s1,1
  sd s1, 0(s0)
  sc.d s1, s1, (s0); P s1
  lr.w s1, (s0)
  sc.w s1, s1, (s0); P s1
  sc.w s1, s1, (s0); P s1
  lr.d s1, (s0)
  la t0, 1f
  csrw mepc, t0
  li t0, 0x1800
  csrw mstatus, t0
  mret
1: sc.d s1, s1, (s0); P s1
  li a0, '-'; call pch
  # AMOs
  li s1, -5
  sd s1, 16(s0)
  addi s2, s0, 16
  li s3, 7
  amoadd.d s4, s3, (s2); P s4
  amomin.d s4, s3, (s2); P s4
  amomax.w s4, s3, (s2); P s4
  amominu.w s4, s3, (s2); P s4
  amomaxu.d s4, s3, (s2); P s4
  amoxor.w s4, s3, (s2); P s4
  amoor.d s4, s3, (s2); P s4
  amoand.w s4, s3, (s2); P s4
  amoswap.w s4, s3, (s2); P s4
  ld s4, 16(s0); P s4
  li a0, '-'; call pch
  # M extension edge cases
  li s1, 0x8000000000000000
  li s2, -1
  div s3, s1, s2; P s3
  rem s3, s1, s2; P s3
  div s3, s1, zero; P s3
  rem s3, s1, zero; P s3
  divu s3, s1, zero; P s3
  remu s3, s1, zero; P s3
  mulh s3, s1, s2; P s3
  mulhsu s3, s2, s1; P s3
  mulhu s3, s2, s2; P s3
  li s1, 0x80000000
  divw s3, s1, s2; P s3
  remw s3, s1, s2; P s3
  divuw s3, s1, zero; P s3
  remuw s3, s2, zero; P s3
  mulw s3, s1, s1; P s3
  li s1, 123
  sll s3, s2, s1; P s3
  sraw s3, s2, s1; P s3
  srlw s3, s2, s1; P s3
  sllw s3, s2, s1; P s3
  # fetch from nowhere
  li s1, 0x20000
  jalr ra, s1
  li a0, 'E'; call pch
  call exit
.data
.align 4
data: .dword 0x1122334455667788, 0x99aabbccddeeff00, 0, 0
.bss
.space 4096
stack_top:
