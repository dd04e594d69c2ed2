/* selftest helpers: running code in S/U mode, S-mode trap vector, fault probes.
 * Built without compressed instructions so a trapping probe is always 4 bytes. */
	.option norvc
	.text

/* uint64_t run_lower(uint64_t mpp_bits, uint64_t (*fn)(uint64_t), uint64_t arg, uint64_t sp)
 * Runs fn(arg) in the privilege mode given by mpp_bits (mstatus.MPP value) on stack sp.
 * When fn returns, lower_tramp does "ecall" with a7 = 0x7e7e; the M-mode trap hook
 * then resumes at run_lower_resume with sp = run_lower_sp and a0 = fn's result. */
	.globl run_lower
run_lower:
	addi	sp, sp, -112
	sd	ra, 0(sp)
	sd	s0, 8(sp)
	sd	s1, 16(sp)
	sd	s2, 24(sp)
	sd	s3, 32(sp)
	sd	s4, 40(sp)
	sd	s5, 48(sp)
	sd	s6, 56(sp)
	sd	s7, 64(sp)
	sd	s8, 72(sp)
	sd	s9, 80(sp)
	sd	s10, 88(sp)
	sd	s11, 96(sp)
	sd	gp, 104(sp)
	la	t0, run_lower_sp
	sd	sp, 0(t0)
	li	t1, 0x1800
	csrc	mstatus, t1
	csrs	mstatus, a0
	csrw	mepc, a1
	mv	a0, a2
	mv	sp, a3
	la	ra, lower_tramp
	mret

	.globl lower_tramp
lower_tramp:
	li	a7, 0x7e7e
	ecall
1:	j	1b

	.globl run_lower_resume
run_lower_resume:
	ld	ra, 0(sp)
	ld	s0, 8(sp)
	ld	s1, 16(sp)
	ld	s2, 24(sp)
	ld	s3, 32(sp)
	ld	s4, 40(sp)
	ld	s5, 48(sp)
	ld	s6, 56(sp)
	ld	s7, 64(sp)
	ld	s8, 72(sp)
	ld	s9, 80(sp)
	ld	s10, 88(sp)
	ld	s11, 96(sp)
	ld	gp, 104(sp)
	addi	sp, sp, 112
	ret

/* S-mode trap vector: records scause/stval/sepc, counts, skips the (4-byte) instruction. */
	.balign 4
	.globl s_trap
s_trap:
	csrw	sscratch, t0
	la	t0, s_trap_info
	sd	t1, 32(t0)
	csrr	t1, scause
	sd	t1, 0(t0)
	csrr	t1, stval
	sd	t1, 8(t0)
	csrr	t1, sepc
	sd	t1, 16(t0)
	addi	t1, t1, 4
	csrw	sepc, t1
	ld	t1, 24(t0)
	addi	t1, t1, 1
	sd	t1, 24(t0)
	ld	t1, 32(t0)
	csrr	t0, sscratch
	sret

/* uint64_t probe_ld(uint64_t addr, uint64_t sentinel): loads 8 bytes; sentinel if the load trapped */
	.globl probe_ld
probe_ld:
	mv	t0, a0
	mv	a0, a1
	ld	a0, 0(t0)
	ret

/* uint64_t probe_lw(uint64_t addr, uint64_t sentinel) */
	.globl probe_lw
probe_lw:
	mv	t0, a0
	mv	a0, a1
	lw	a0, 0(t0)
	ret

/* void probe_sd(uint64_t addr, uint64_t val) */
	.globl probe_sd
probe_sd:
	sd	a1, 0(a0)
	ret

/* void probe_illegal(void): csrrw x0, cycle, x0 (write to a read-only CSR) = 0xc0001073 */
	.globl probe_illegal
probe_illegal:
	.word	0xc0001073
	ret

/* uint64_t probe_csrr_mstatus(uint64_t sentinel): csrr a0, mstatus = 0x30002573 (illegal below M) */
	.globl probe_csrr_mstatus
probe_csrr_mstatus:
	.word	0x30002573
	ret

/* uint64_t probe_ecall(uint64_t a0): ecall with a7 = 0, returns a0 as changed by the handler */
	.globl probe_ecall
	.globl probe_ecall_insn
probe_ecall:
	li	a7, 0
probe_ecall_insn:
	ecall
	ret

	.globl probe_ebreak
probe_ebreak:
	ebreak
	nop
	ret

/* uint64_t probe_sc_fresh(uint64_t *p, uint64_t v): sc.d without a prior lr.d (must fail, returns nonzero) */
	.globl probe_sc_fresh
probe_sc_fresh:
	sc.d	a0, a1, (a0)
	ret

	.data
	.balign 8
	.globl run_lower_sp
run_lower_sp:
	.dword 0
	.globl s_trap_info
s_trap_info:      /* cause, tval, epc, count, saved t1 */
	.dword 0, 0, 0, 0, 0
