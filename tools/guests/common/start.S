/*
 * ftbox guest runtime: entry point and M-mode trap vector.
 *
 * Entry (QEMU virt, -bios none): M-mode, a0 = hartid, a1 = FDT address.
 * Harts other than 0 park in WFI forever.
 *
 * Trap convention: mscratch always holds the top of the M-mode trap stack.
 * Every trap (from M, S or U mode) builds a struct trapframe there (see rt.h)
 * and calls trap_handler(tf) in C. The handler may modify any saved register,
 * mepc and mstatus; they are restored before mret. Traps are not re-entrant
 * (a trap taken inside trap_handler would overwrite the frame).
 */
	.section .text.init.enter, "ax"
	.globl _start
_start:
	csrw	mie, zero
	csrw	mip, zero
	csrr	t0, mhartid
	bnez	t0, park
.option push
.option norelax
	la	gp, __global_pointer$
.option pop
	la	sp, __stack_top
	la	tp, __tls_base
	mv	s0, a0
	mv	s1, a1
	/* clear .tbss and .bss (both NOLOAD) */
	la	t0, __tbss_start
	la	t1, __bss_end
1:	bgeu	t0, t1, 2f
	sd	zero, 0(t0)
	addi	t0, t0, 8
	j	1b
2:
	la	t0, __trap_stack_top
	csrw	mscratch, t0
	la	t0, trap_entry
	csrw	mtvec, t0
	mv	a0, s0
	mv	a1, s1
	call	rt_init
	mv	a0, s0
	mv	a1, s1
	call	main
	call	exit
park:
	wfi
	j	park

	.text
	.balign 4
	.globl trap_entry
trap_entry:
	csrrw	sp, mscratch, sp	/* sp = trap stack top, mscratch = interrupted sp */
	addi	sp, sp, -288
	sd	x1, 8(sp)
	sd	x3, 24(sp)
	sd	x4, 32(sp)
	sd	x5, 40(sp)
	sd	x6, 48(sp)
	sd	x7, 56(sp)
	sd	x8, 64(sp)
	sd	x9, 72(sp)
	sd	x10, 80(sp)
	sd	x11, 88(sp)
	sd	x12, 96(sp)
	sd	x13, 104(sp)
	sd	x14, 112(sp)
	sd	x15, 120(sp)
	sd	x16, 128(sp)
	sd	x17, 136(sp)
	sd	x18, 144(sp)
	sd	x19, 152(sp)
	sd	x20, 160(sp)
	sd	x21, 168(sp)
	sd	x22, 176(sp)
	sd	x23, 184(sp)
	sd	x24, 192(sp)
	sd	x25, 200(sp)
	sd	x26, 208(sp)
	sd	x27, 216(sp)
	sd	x28, 224(sp)
	sd	x29, 232(sp)
	sd	x30, 240(sp)
	sd	x31, 248(sp)
	csrr	t0, mscratch		/* interrupted sp */
	sd	t0, 16(sp)
	addi	t0, sp, 288		/* restore mscratch = trap stack top */
	csrw	mscratch, t0
	csrr	t0, mepc
	sd	t0, 256(sp)
	csrr	t0, mstatus
	sd	t0, 264(sp)
	csrr	t0, mcause
	sd	t0, 272(sp)
	csrr	t0, mtval
	sd	t0, 280(sp)
	/* the C handler runs with the runtime's gp/tp */
.option push
.option norelax
	la	gp, __global_pointer$
.option pop
	la	tp, __tls_base
	mv	a0, sp
	call	trap_handler
	ld	t0, 256(sp)
	csrw	mepc, t0
	ld	t0, 264(sp)
	csrw	mstatus, t0
	ld	x1, 8(sp)
	ld	x3, 24(sp)
	ld	x4, 32(sp)
	ld	x5, 40(sp)
	ld	x6, 48(sp)
	ld	x7, 56(sp)
	ld	x8, 64(sp)
	ld	x9, 72(sp)
	ld	x10, 80(sp)
	ld	x11, 88(sp)
	ld	x12, 96(sp)
	ld	x13, 104(sp)
	ld	x14, 112(sp)
	ld	x15, 120(sp)
	ld	x16, 128(sp)
	ld	x17, 136(sp)
	ld	x18, 144(sp)
	ld	x19, 152(sp)
	ld	x20, 160(sp)
	ld	x21, 168(sp)
	ld	x22, 176(sp)
	ld	x23, 184(sp)
	ld	x24, 192(sp)
	ld	x25, 200(sp)
	ld	x26, 208(sp)
	ld	x27, 216(sp)
	ld	x28, 224(sp)
	ld	x29, 232(sp)
	ld	x30, 240(sp)
	ld	x31, 248(sp)
	ld	sp, 16(sp)
	mret
