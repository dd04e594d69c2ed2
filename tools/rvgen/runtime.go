package rvgen

// LinkLD is the linker script every generated program is linked with: one
// load image at 0x80000000 (the QEMU virt RAM base, where -bios none jumps).
const LinkLD = `OUTPUT_ARCH(riscv)
ENTRY(_start)
SECTIONS
{
  . = 0x80000000;
  .text : { *(.text.init) *(.text .text.*) }
  . = ALIGN(4096);
  .data : { *(.data .data.* .rodata .rodata.* .sdata .sdata.* .srodata .srodata.*) }
  . = ALIGN(16);
  .bss : { *(.bss .bss.* .sbss .sbss.* COMMON) }
  . = ALIGN(16);
  . = . + 0x2000;
  stack_top = .;
  _end = .;
}
`

// Layout of the gp-relative area. gp points at scratch+2048 for the whole
// program and random code never writes it, so everything in the area is one
// 12-bit offset away. Random memory operations use [ScratchLo, ScratchHi);
// the rest belongs to the runtime.
const (
	ScratchLo   = -2048 // first scratch byte, relative to gp
	ScratchHi   = 1536  // one past the last scratch byte
	offSave     = 1536  // 8 dwords: M handler temporaries
	offSSave    = 1600  // 8 dwords: S handler temporaries
	offHopEnd   = 1664  // address of the ecall that ends a privilege hop
	offTrapCnt  = 1672  // traps taken since the last dump
	offRegSave  = 1680  // x0..x31 as saved after a sequence (x0 slot unused)
	maxTrapLog  = 48    // trap records kept per sequence
	scratchSize = 4096
)

// runtimeAsm is the fixed part of every program: start-up, the M- and S-mode
// trap handlers, the register/memory/trap dump and the UART and finisher
// helpers. %[1]d etc. are filled by Generate (see runtimeArgs).
const runtimeAsm = `
	.equ UART_BASE, 0x10000000
	.equ FINISHER, 0x100000
	.equ OFF_SAVE, %[1]d
	.equ OFF_SSAVE, %[2]d
	.equ OFF_HOPEND, %[3]d
	.equ OFF_TRAPCNT, %[4]d
	.equ OFF_REGSAVE, %[5]d
	.equ MAX_TRAPLOG, %[6]d
	.equ SCRATCH_DWORDS, %[7]d

	.section .text.init, "ax", @progbits
	.globl _start
_start:
	la t0, m_trap
	csrw mtvec, t0
	la t0, s_trap
	csrw stvec, t0
	li t0, -1
	csrw pmpaddr0, t0
	li t0, 0x1f
	csrw pmpcfg0, t0
	la gp, scratch+2048
	la sp, stack_top
	li t0, 0x6000             # FS = Dirty: the FPU is on
	csrs mstatus, t0
	# Sv39 tables for paged hops: l0 maps 8 pages at 0xc0000000 onto the
	# scratch page with the permissions in pt_flags; l1[0] -> l0;
	# root[3] -> l1 in both roots.
	la t0, pt_l0
	la t1, scratch
	srli t1, t1, 12
	slli t1, t1, 10
	la t2, pt_flags
	li t3, 8
1:	ld t4, 0(t2)
	or t4, t4, t1
	sd t4, 0(t0)
	addi t0, t0, 8
	addi t2, t2, 8
	addi t3, t3, -1
	bnez t3, 1b
	la t0, pt_l0
	srli t0, t0, 12
	slli t0, t0, 10
	ori t0, t0, 1
	la t1, pt_l1
	sd t0, 0(t1)
	la t0, pt_l1
	srli t0, t0, 12
	slli t0, t0, 10
	ori t0, t0, 1
	la t1, pt_rootS
	sd t0, 24(t1)
	la t1, pt_rootU
	sd t0, 24(t1)
	la a0, str_banner
	call puts
	j seq_0

# ---------------------------------------------------------------- M-mode trap
	.p2align 2
m_trap:
	sd t0, OFF_SAVE+0(gp)
	sd t1, OFF_SAVE+8(gp)
	sd t2, OFF_SAVE+16(gp)
	sd t3, OFF_SAVE+24(gp)
	csrr t0, mcause
	ld t1, OFF_TRAPCNT(gp)
	li t2, MAX_TRAPLOG
	bgeu t1, t2, 1f
	la t2, traplog
	slli t3, t1, 5
	add t2, t2, t3
	sd t0, 0(t2)
	csrr t3, mtval
	sd t3, 8(t2)
	csrr t3, mepc
	sd t3, 16(t2)
	csrr t3, mstatus
	srli t3, t3, 11
	andi t3, t3, 3
	ori t3, t3, 0x10          # 0x1P: taken to M from privilege P
	sd t3, 24(t2)
1:	addi t1, t1, 1
	sd t1, OFF_TRAPCNT(gp)
	bltz t0, m_intr
	csrr t1, mepc
	addi t2, t0, -8
	beqz t2, 2f
	addi t2, t0, -9
	bnez t2, m_skip
2:	ld t2, OFF_HOPEND(gp)     # ecall from U/S: the end of a hop?
	bne t1, t2, m_skip
	sd zero, OFF_HOPEND(gp)
	li t2, 0x1800             # yes: come back to M after the ecall
	csrs mstatus, t2
m_skip:
	lhu t2, 0(t1)
	andi t2, t2, 3
	addi t1, t1, 2
	addi t2, t2, -3
	bnez t2, 3f
	addi t1, t1, 2
3:	csrw mepc, t1
	ld t0, OFF_SAVE+0(gp)
	ld t1, OFF_SAVE+8(gp)
	ld t2, OFF_SAVE+16(gp)
	ld t3, OFF_SAVE+24(gp)
	mret
m_intr:                       # not expected: record it and mask everything
	csrw mie, zero
	ld t0, OFF_SAVE+0(gp)
	ld t1, OFF_SAVE+8(gp)
	ld t2, OFF_SAVE+16(gp)
	ld t3, OFF_SAVE+24(gp)
	mret

# ---------------------------------------------------------------- S-mode trap
	.p2align 2
s_trap:
	sd t0, OFF_SSAVE+0(gp)
	sd t1, OFF_SSAVE+8(gp)
	sd t2, OFF_SSAVE+16(gp)
	sd t3, OFF_SSAVE+24(gp)
	csrr t0, scause
	ld t1, OFF_TRAPCNT(gp)
	li t2, MAX_TRAPLOG
	bgeu t1, t2, 1f
	la t2, traplog
	slli t3, t1, 5
	add t2, t2, t3
	sd t0, 0(t2)
	csrr t3, stval
	sd t3, 8(t2)
	csrr t3, sepc
	sd t3, 16(t2)
	csrr t3, sstatus
	srli t3, t3, 8
	andi t3, t3, 1
	ori t3, t3, 0x20          # 0x2P: taken to S from privilege P
	sd t3, 24(t2)
1:	addi t1, t1, 1
	sd t1, OFF_TRAPCNT(gp)
	bltz t0, s_intr
	csrr t1, sepc
	lhu t2, 0(t1)
	andi t2, t2, 3
	addi t1, t1, 2
	addi t2, t2, -3
	bnez t2, 3f
	addi t1, t1, 2
3:	csrw sepc, t1
	ld t0, OFF_SSAVE+0(gp)
	ld t1, OFF_SSAVE+8(gp)
	ld t2, OFF_SSAVE+16(gp)
	ld t3, OFF_SSAVE+24(gp)
	sret
s_intr:
	csrw sie, zero
	ld t0, OFF_SSAVE+0(gp)
	ld t1, OFF_SSAVE+8(gp)
	ld t2, OFF_SSAVE+16(gp)
	ld t3, OFF_SSAVE+24(gp)
	sret

# ---------------------------------------------------------------- FP state
# After the x registers are saved: record mstatus, turn the FPU on, save
# f0..f31 and fcsr at fregsave (clobbers t0, t1).
fsave:
	la t0, fregsave
	csrr t1, mstatus
	sd t1, 264(t0)
	li t1, 0x6000
	csrs mstatus, t1
	frcsr t1
	sd t1, 256(t0)
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	fsd f\n, \n*8(t0)
	.endr
	ret

# Put mstatus.FS back as fsave found it (clobbers t0..t2).
fsrestore:
	la t0, fregsave
	ld t1, 264(t0)
	li t2, 0x6000
	csrc mstatus, t2
	and t1, t1, t2
	csrs mstatus, t1
	ret

# ---------------------------------------------------------------- dump
# a0 = sequence number. Registers were saved at OFF_REGSAVE(gp).
	.p2align 2
dump:
	addi sp, sp, -48
	sd ra, 0(sp)
	sd s0, 8(sp)
	sd s1, 16(sp)
	sd s2, 24(sp)
	mv s0, a0
	la a0, str_seq
	call puts
	mv a0, s0
	li a1, 4
	call puthex
	li a0, 10
	call putc
	li s0, 1
	addi s1, gp, OFF_REGSAVE+8
4:	li a0, 120
	call putc
	mv a0, s0
	call putdec2
	li a0, 61
	call putc
	ld a0, 0(s1)
	li a1, 16
	call puthex
	andi t0, s0, 3
	li a0, 32
	bnez t0, 5f
	li a0, 10
5:	addi t0, s0, -31
	bnez t0, 6f
	li a0, 10
6:	call putc
	addi s0, s0, 1
	addi s1, s1, 8
	li t0, 32
	bne s0, t0, 4b
	# f registers, fcsr, mstatus.FS and SD as fsave found them
	li s0, 0
	la s1, fregsave
10:	li a0, 102
	call putc
	mv a0, s0
	call putdec2
	li a0, 61
	call putc
	ld a0, 0(s1)
	li a1, 16
	call puthex
	andi t0, s0, 3
	addi t0, t0, -3
	li a0, 32
	bnez t0, 11f
	li a0, 10
11:	call putc
	addi s0, s0, 1
	addi s1, s1, 8
	li t0, 32
	bne s0, t0, 10b
	la a0, str_fcsr
	call puts
	la s1, fregsave
	ld a0, 256(s1)
	li a1, 2
	call puthex
	la a0, str_fs
	call puts
	ld a0, 264(s1)
	srli a0, a0, 13
	andi a0, a0, 3
	li a1, 1
	call puthex
	la a0, str_sd
	call puts
	ld a0, 264(s1)
	srli a0, a0, 63
	li a1, 1
	call puthex
	li a0, 10
	call putc
	# FNV-1a style hash over the scratch dwords
	addi t0, gp, -2048
	li t1, SCRATCH_DWORDS
	li t2, 0xcbf29ce484222325
	li t3, 0x100000001b3
7:	ld t4, 0(t0)
	xor t2, t2, t4
	mul t2, t2, t3
	addi t0, t0, 8
	addi t1, t1, -1
	bnez t1, 7b
	mv s0, t2
	la a0, str_mem
	call puts
	mv a0, s0
	li a1, 16
	call puthex
	la a0, str_traps
	call puts
	ld s2, OFF_TRAPCNT(gp)
	mv a0, s2
	li a1, 4
	call puthex
	li a0, 10
	call putc
	li t0, MAX_TRAPLOG
	bleu s2, t0, 2f
	mv s2, t0
2:	la s1, traplog
8:	beqz s2, 9f
	la a0, str_tcause
	call puts
	ld a0, 0(s1)
	li a1, 16
	call puthex
	la a0, str_ttval
	call puts
	ld a0, 8(s1)
	li a1, 16
	call puthex
	la a0, str_tepc
	call puts
	ld a0, 16(s1)
	li a1, 16
	call puthex
	la a0, str_tmode
	call puts
	ld a0, 24(s1)
	li a1, 2
	call puthex
	li a0, 10
	call putc
	addi s1, s1, 32
	addi s2, s2, -1
	j 8b
9:	sd zero, OFF_TRAPCNT(gp)
	ld ra, 0(sp)
	ld s0, 8(sp)
	ld s1, 16(sp)
	ld s2, 24(sp)
	addi sp, sp, 48
	ret

# ---------------------------------------------------------------- UART
putc:
	li t0, UART_BASE
1:	lbu t1, 5(t0)
	andi t1, t1, 0x20
	beqz t1, 1b
	sb a0, 0(t0)
	ret

# a0 = NUL-terminated string
puts:
	addi sp, sp, -16
	sd ra, 0(sp)
	sd s0, 8(sp)
	mv s0, a0
1:	lbu a0, 0(s0)
	beqz a0, 2f
	call putc
	addi s0, s0, 1
	j 1b
2:	ld ra, 0(sp)
	ld s0, 8(sp)
	addi sp, sp, 16
	ret

# a0 = value, a1 = number of hex digits (low ones)
puthex:
	addi sp, sp, -32
	sd ra, 0(sp)
	sd s0, 8(sp)
	sd s1, 16(sp)
	mv s0, a0
	slli s1, a1, 2
1:	addi s1, s1, -4
	srl a0, s0, s1
	andi a0, a0, 15
	li t0, 10
	bltu a0, t0, 2f
	addi a0, a0, 39          # 'a'-'0'-10
2:	addi a0, a0, 48
	call putc
	bnez s1, 1b
	ld ra, 0(sp)
	ld s0, 8(sp)
	ld s1, 16(sp)
	addi sp, sp, 32
	ret

# a0 = 0..99, printed as two decimal digits (no division)
putdec2:
	addi sp, sp, -16
	sd ra, 0(sp)
	sd s0, 8(sp)
	li t1, 48
	li t2, 10
1:	bltu a0, t2, 2f
	addi a0, a0, -10
	addi t1, t1, 1
	j 1b
2:	mv s0, a0
	mv a0, t1
	call putc
	addi a0, s0, 48
	call putc
	ld ra, 0(sp)
	ld s0, 8(sp)
	addi sp, sp, 16
	ret

finish:
	la a0, str_done
	call puts
	li t0, FINISHER
	li t1, 0x5555
	sw t1, 0(t0)
1:	j 1b

	.section .rodata
	.p2align 3
pt_flags:                     # V=1 R=2 W=4 X=8 U=0x10 A=0x40 D=0x80
	.dword 0xc7               # 0: RW
	.dword 0x43               # 1: R
	.dword 0x07               # 2: RW, A=0 D=0
	.dword 0x47               # 3: RW, D=0
	.dword 0xc5               # 4: W without R (reserved)
	.dword 0xc6               # 5: not valid
	.dword 0xc9               # 6: X only
	.dword 0xd7               # 7: RW, U

	.data
	.p2align 12
pt_rootS:                     # [2] = RAM gigapage RWX, [3] -> pt_l1, [4] = misaligned gigapage
	.dword 0, 0, 0x200000cf, 0, 0x200004cf
	.space 4096-5*8
pt_rootU:                     # the same with U set on the RAM gigapage
	.dword 0, 0, 0x200000df, 0, 0x200004df
	.space 4096-5*8
pt_l1:                        # [0] -> pt_l0, [1] = misaligned megapage
	.dword 0, 0x200004cf
	.space 4096-2*8
pt_l0:
	.space 4096
str_banner: .asciz "rvgen seed %[8]d\n"
str_seq:    .asciz "seq "
str_mem:    .asciz "mem="
str_traps:  .asciz " traps="
str_tcause: .asciz "  trap cause="
str_ttval:  .asciz " tval="
str_tepc:   .asciz " epc="
str_tmode:  .asciz " mode="
str_done:   .asciz "done\n"
str_fcsr:   .asciz "fcsr="
str_fs:     .asciz " fs="
str_sd:     .asciz " sd="

	.bss
	.p2align 3
traplog: .space 32*MAX_TRAPLOG
fregsave: .space 8*34
`
