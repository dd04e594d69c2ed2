/*
 * selftest: checks the CPU and machine features the ftbox emulator must get right.
 * One line per group, then "selftest: PASS" (finisher pass) or "selftest: FAIL n" (finisher fail n).
 * Output is deterministic: no timer values, addresses or timing-dependent counts are printed.
 */
#include <stdio.h>
#include <string.h>
#include "rt.h"

/* ---- lower.S ---- */
uint64_t run_lower(uint64_t mpp_bits, uint64_t (*fn)(uint64_t), uint64_t arg, uint64_t sp);
void run_lower_resume(void);
void lower_tramp(void);
extern uint64_t run_lower_sp;
void s_trap(void);
extern volatile uint64_t s_trap_info[5];   /* cause, tval, epc, count, (scratch) */
uint64_t probe_ld(uint64_t addr, uint64_t sentinel);
uint64_t probe_lw(uint64_t addr, uint64_t sentinel);
void probe_sd(uint64_t addr, uint64_t val);
void probe_illegal(void);
uint64_t probe_csrr_mstatus(uint64_t sentinel);
uint64_t probe_ecall(uint64_t a0);
extern char probe_ecall_insn[];
void probe_ebreak(void);
uint64_t probe_sc_fresh(uint64_t *p, uint64_t v);

#define MAGIC_RETURN 0x7e7e

static int total_fail;
static int group_fail, group_checks;

static void check(const char *what, uint64_t got, uint64_t want)
{
	group_checks++;
	if (got != want) {
		group_fail++;
		printf("  FAIL %s: got 0x%lx want 0x%lx\n", what, (unsigned long)got, (unsigned long)want);
	}
}
#define CHECK(what, got, want) check(what, (uint64_t)(got), (uint64_t)(want))
#define CHECK_TRUE(what, cond) check(what, (cond) ? 1 : 0, 1)

static void group_begin(void)
{
	group_fail = 0;
	group_checks = 0;
}

static void group_end(const char *name)
{
	if (group_fail)
		printf("%s: FAIL (%d of %d checks)\n", name, group_fail, group_checks);
	else
		printf("%s: ok (%d checks)\n", name, group_checks);
	total_fail += group_fail;
}

/* ---- trap bookkeeping (M-mode) ---- */
static volatile int trap_armed;
static volatile uint64_t trap_count, trap_cause, trap_tval, trap_epc, trap_mpp;
static volatile uint64_t ticks, tick_target, tick_period, msi_count;

static int selftest_hook(struct trapframe *tf)
{
	uint64_t cause = tf->mcause;
	if (cause & CAUSE_INTR) {
		uint64_t code = cause & ~CAUSE_INTR;
		if (code == IRQ_M_TIMER) {
			ticks++;
			if (ticks >= tick_target) {
				clint_set_mtimecmp(~0ULL);
				csr_clear(mie, MIP_MTIP);
			} else {
				clint_set_mtimecmp(mmio_read64(CLINT_MTIMECMP) + tick_period);
			}
			return 1;
		}
		if (code == IRQ_M_SOFT) {
			msi_count++;
			mmio_write32(CLINT_BASE, 0);
			return 1;
		}
		return 0;
	}
	if ((cause == CAUSE_ECALL_U || cause == CAUSE_ECALL_S) && tf->x[17] == MAGIC_RETURN) {
		tf->mepc = (uint64_t)(uintptr_t)run_lower_resume;
		tf->mstatus = (tf->mstatus & ~MSTATUS_MPP) | MSTATUS_MPP_M;
		tf->x[2] = run_lower_sp;
		return 1;
	}
	if (!trap_armed)
		return 0;
	trap_count++;
	trap_cause = cause;
	trap_tval = tf->mtval;
	trap_epc = tf->mepc;
	trap_mpp = (tf->mstatus & MSTATUS_MPP) >> 11;
	if (cause == CAUSE_FETCH_ACCESS || cause == CAUSE_MISALIGNED_FETCH)
		tf->mepc = tf->x[1];       /* we got here by a call: return to the caller */
	else
		tf->mepc += 4;             /* all probes are 4-byte instructions */
	if (cause == CAUSE_ECALL_M || cause == CAUSE_ECALL_U || cause == CAUSE_ECALL_S)
		tf->x[10] = tf->x[10] * 3 + 1; /* visible effect on a0 */
	return 1;
}

static void arm(void)
{
	trap_count = 0;
	trap_cause = trap_tval = trap_epc = ~0ULL;
	trap_armed = 1;
}

static void disarm(void) { trap_armed = 0; }

static uint64_t lower_stack[1024] __attribute__((aligned(16)));
#define LOWER_SP ((uint64_t)(uintptr_t)&lower_stack[1024])

/* ---- 1. integer arithmetic ---- */
#define RR(op, a, b) ({ uint64_t __r; __asm__ volatile(op " %0, %1, %2" : "=r"(__r) : "r"((uint64_t)(a)), "r"((uint64_t)(b))); __r; })
#define RI(op, a, imm) ({ uint64_t __r; __asm__ volatile(op " %0, %1, " #imm : "=r"(__r) : "r"((uint64_t)(a))); __r; })

static void test_arith(void)
{
	const uint64_t MIN64 = 0x8000000000000000ULL, M1 = ~0ULL;
	group_begin();
	CHECK("add wrap", RR("add", 0x7fffffffffffffffULL, 1), MIN64);
	CHECK("sub wrap", RR("sub", 0, 1), M1);
	CHECK("addw sext", RR("addw", 0x7fffffff, 1), 0xffffffff80000000ULL);
	CHECK("addiw sext", RI("addiw", 0x17fffffffULL, 1), 0xffffffff80000000ULL);
	CHECK("subw", RR("subw", 0, 1), M1);
	CHECK("sll", RR("sll", 1, 63), MIN64);
	CHECK("sll mask", RR("sll", 1, 64 + 3), 8);
	CHECK("srl", RR("srl", MIN64, 63), 1);
	CHECK("sra", RR("sra", MIN64, 63), M1);
	CHECK("sllw", RR("sllw", 1, 31), 0xffffffff80000000ULL);
	CHECK("srlw", RR("srlw", 0xffffffff80000000ULL, 31), 1);
	CHECK("sraw", RR("sraw", 0x80000000ULL, 31), M1);
	CHECK("sraiw", RI("sraiw", 0x80000000ULL, 4), 0xfffffffff8000000ULL);
	CHECK("slt", RR("slt", M1, 0), 1);
	CHECK("sltu", RR("sltu", M1, 0), 0);
	CHECK("sltiu", RI("sltiu", 0, -1), 1);
	CHECK("xor", RR("xor", 0xf0f0, 0xff00), 0x0ff0);
	/* M extension */
	CHECK("mul", RR("mul", 0x123456789ULL, 0x987654321ULL), 0x123456789ULL * 0x987654321ULL);
	CHECK("mulh", RR("mulh", M1, M1), 0);
	CHECK("mulh neg", RR("mulh", MIN64, 2), M1);
	CHECK("mulhu", RR("mulhu", M1, M1), 0xfffffffffffffffeULL);
	CHECK("mulhsu", RR("mulhsu", M1, M1), M1);
	CHECK("mulw", RR("mulw", 0x10000, 0x10000), 0);
	CHECK("mulw sext", RR("mulw", 0x8000, 0x10000), 0xffffffff80000000ULL);
	CHECK("div", RR("div", (uint64_t)-7, 2), (uint64_t)-3);
	CHECK("rem", RR("rem", (uint64_t)-7, 2), (uint64_t)-1);
	CHECK("divu", RR("divu", 100, 7), 14);
	CHECK("remu", RR("remu", 100, 7), 2);
	CHECK("div by 0", RR("div", 42, 0), M1);
	CHECK("divu by 0", RR("divu", 42, 0), M1);
	CHECK("rem by 0", RR("rem", (uint64_t)-42, 0), (uint64_t)-42);
	CHECK("remu by 0", RR("remu", 42, 0), 42);
	CHECK("div overflow", RR("div", MIN64, M1), MIN64);
	CHECK("rem overflow", RR("rem", MIN64, M1), 0);
	CHECK("divw", RR("divw", 0xffffffff00000007ULL, 0x2), 3);
	CHECK("divw by 0", RR("divw", 5, 0), M1);
	CHECK("divuw by 0", RR("divuw", 5, 0), M1);
	CHECK("remw by 0", RR("remw", 0x80000005ULL, 0), 0xffffffff80000005ULL);
	CHECK("remuw by 0", RR("remuw", 0x80000005ULL, 0), 0xffffffff80000005ULL);
	CHECK("divw overflow", RR("divw", 0x80000000ULL, M1), 0xffffffff80000000ULL);
	CHECK("remw overflow", RR("remw", 0x80000000ULL, M1), 0);
	CHECK("divuw", RR("divuw", 0xfffffffeULL, 1), 0xfffffffffffffffeULL);
	CHECK("remuw", RR("remuw", 0x1ffffffffULL, 0x10), 0xf);
	/* a small deterministic mix */
	uint64_t h = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < 1000; i++) {
		h ^= h >> 29;
		h *= 0xbf58476d1ce4e5b9ULL;
		h += (uint64_t)i * 0x94d049bb133111ebULL;
		h ^= h / ((uint64_t)i + 3);
	}
	CHECK("mix", h, 0x40312a8ec5ad528fULL);
	group_end("arith");
}

/* ---- 2. atomics ---- */

#define AMO(insn, p, v) ({ uint64_t __r; __asm__ volatile(insn " %0, %2, (%1)" : "=r"(__r) : "r"(p), "r"((uint64_t)(v)) : "memory"); __r; })

static volatile uint64_t atom64 __attribute__((aligned(8)));
static volatile uint32_t atom32[2] __attribute__((aligned(8)));

static void test_atomics(void)
{
	group_begin();
	uint64_t old, sc;
	/* LR/SC */
	atom64 = 100;
	__asm__ volatile("lr.d %0, (%2)\n\tsc.d %1, %3, (%2)" : "=&r"(old), "=&r"(sc) : "r"(&atom64), "r"(200ULL) : "memory");
	CHECK("lr.d value", old, 100);
	CHECK("sc.d success", sc, 0);
	CHECK("sc.d stored", atom64, 200);
	CHECK("sc.d without reservation fails", probe_sc_fresh((uint64_t *)&atom64, 300) != 0, 1);
	CHECK("failed sc.d leaves memory", atom64, 200);
	atom32[0] = 0x80000000u;
	__asm__ volatile("lr.w %0, (%2)\n\tsc.w %1, %3, (%2)" : "=&r"(old), "=&r"(sc) : "r"(&atom32[0]), "r"(7ULL) : "memory");
	CHECK("lr.w sign-extends", old, 0xffffffff80000000ULL);
	CHECK("sc.w success", sc, 0);
	CHECK("sc.w stored", atom32[0], 7);
	/* an LR/SC increment loop */
	atom64 = 0;
	for (int i = 0; i < 100; i++) {
		uint64_t tmp, fail;
		do {
			__asm__ volatile("lr.d %0, (%2)\n\taddi %0, %0, 3\n\tsc.d %1, %0, (%2)" : "=&r"(tmp), "=&r"(fail) : "r"(&atom64) : "memory");
		} while (fail);
	}
	CHECK("lr/sc loop", atom64, 300);
	/* AMO .d */
	atom64 = 10;
	CHECK("amoswap.d old", AMO("amoswap.d", &atom64, 20), 10);
	CHECK("amoswap.d new", atom64, 20);
	CHECK("amoadd.d old", AMO("amoadd.d", &atom64, -25), 20);
	CHECK("amoadd.d new", atom64, (uint64_t)-5);
	CHECK("amoand.d", (AMO("amoand.d", &atom64, 0xff), atom64), 0xfb);
	CHECK("amoor.d", (AMO("amoor.d", &atom64, 0x100), atom64), 0x1fb);
	CHECK("amoxor.d", (AMO("amoxor.d", &atom64, 0x1ff), atom64), 0x004);
	CHECK("amomax.d", (AMO("amomax.d", &atom64, -1), atom64), 4);
	CHECK("amomin.d", (AMO("amomin.d", &atom64, -1), atom64), (uint64_t)-1);
	CHECK("amomaxu.d", (AMO("amomaxu.d", &atom64, 5), atom64), (uint64_t)-1);
	CHECK("amominu.d", (AMO("amominu.d", &atom64, 5), atom64), 5);
	/* AMO .w: results sign-extended, upper neighbour untouched */
	atom32[0] = 0x7fffffff;
	atom32[1] = 0x12345678;
	CHECK("amoadd.w old", AMO("amoadd.w", &atom32[0], 1), 0x7fffffff);
	CHECK("amoadd.w wrap", atom32[0], 0x80000000u);
	CHECK("amoswap.w sext", AMO("amoswap.w", &atom32[0], 5), 0xffffffff80000000ULL);
	CHECK("amomax.w", (AMO("amomax.w", &atom32[0], 0xfffffff0ULL), atom32[0]), 5);
	CHECK("amomaxu.w", (AMO("amomaxu.w", &atom32[0], 0xfffffff0ULL), atom32[0]), 0xfffffff0u);
	CHECK("amomin.w", (AMO("amomin.w", &atom32[0], 1), atom32[0]), 0xfffffff0u);
	CHECK("amominu.w", (AMO("amominu.w", &atom32[0], 1), atom32[0]), 1);
	CHECK("amoor.w", (AMO("amoor.w", &atom32[0], 0x80000000ULL), atom32[0]), 0x80000001u);
	CHECK("amoand.w", (AMO("amoand.w", &atom32[0], 0xffff0001ULL), atom32[0]), 0x80000001u);
	CHECK("amoxor.w", (AMO("amoxor.w", &atom32[0], 0x80000000ULL), atom32[0]), 1);
	CHECK("amo.w neighbour", atom32[1], 0x12345678);
	group_end("atomics");
}

/* ---- 3. CSRs ---- */
static void test_csrs(void)
{
	group_begin();
	/* mscratch holds the runtime's trap stack: save and restore with interrupts off */
	uint64_t saved = csr_read(mscratch);
	csr_write(mscratch, 0x0123456789abcdefULL);
	uint64_t v1 = csr_read(mscratch);
	uint64_t v2 = csr_swap(mscratch, 0x55);
	uint64_t v3 = csr_read(mscratch);
	csr_write(mscratch, saved);
	CHECK("mscratch rw", v1, 0x0123456789abcdefULL);
	CHECK("csrrw old", v2, 0x0123456789abcdefULL);
	CHECK("csrrw new", v3, 0x55);

	uint64_t misa = csr_read(misa);
	CHECK("misa.MXL", misa >> 62, 2);
	const char *need = "IMAFDCSU";
	for (const char *c = need; *c; c++) {
		char what[16] = "misa has X";
		what[9] = *c;
		CHECK(what, (misa >> (*c - 'A')) & 1, 1);
	}
	CHECK("misa exact (rv64imafdcsu)", misa, (2ULL << 62) | (1 << ('I' - 'A')) | (1 << ('M' - 'A')) | (1 << ('A' - 'A')) |
	      (1 << ('F' - 'A')) | (1 << ('D' - 'A')) | (1 << ('C' - 'A')) | (1 << ('S' - 'A')) | (1 << ('U' - 'A')));
	CHECK("mhartid", csr_read(mhartid), 0);

	/* mstatus bits */
	csr_clear(mstatus, MSTATUS_MIE);
	CHECK("mstatus.MIE clear", csr_read(mstatus) & MSTATUS_MIE, 0);
	csr_set(mstatus, MSTATUS_MIE);
	CHECK("mstatus.MIE set", csr_read(mstatus) & MSTATUS_MIE, MSTATUS_MIE);
	csr_clear(mstatus, MSTATUS_MIE);
	csr_set(mstatus, MSTATUS_MPP);
	CHECK("mstatus.MPP=M", csr_read(mstatus) & MSTATUS_MPP, MSTATUS_MPP);
	csr_clear(mstatus, MSTATUS_MPP);
	csr_set(mstatus, MSTATUS_MPP_S);
	CHECK("mstatus.MPP=S", csr_read(mstatus) & MSTATUS_MPP, MSTATUS_MPP_S);
	csr_clear(mstatus, MSTATUS_MPP);
	CHECK("mstatus.MPP=U", csr_read(mstatus) & MSTATUS_MPP, 0);
	csr_set(mstatus, MSTATUS_SUM | MSTATUS_MXR);
	CHECK("mstatus.SUM|MXR", csr_read(mstatus) & (MSTATUS_SUM | MSTATUS_MXR), MSTATUS_SUM | MSTATUS_MXR);
	csr_clear(mstatus, MSTATUS_SUM | MSTATUS_MXR);
	CHECK("mstatus.UXL", (csr_read(mstatus) >> 32) & 3, 2);
	CHECK("mstatus.SXL", (csr_read(mstatus) >> 34) & 3, 2);
	CHECK("mstatus.FS off", (csr_read(mstatus) >> 13) & 3, 0);
	/* sstatus is a view of mstatus */
	csr_set(mstatus, MSTATUS_SIE);
	CHECK("sstatus.SIE mirrors", csr_read(sstatus) & MSTATUS_SIE, MSTATUS_SIE);
	csr_clear(sstatus, MSTATUS_SIE);
	CHECK("mstatus.SIE cleared via sstatus", csr_read(mstatus) & MSTATUS_SIE, 0);

	/* mtvec / medeleg / mideleg / mcounteren */
	uint64_t tv = csr_read(mtvec);
	CHECK("mtvec", tv, (uint64_t)(uintptr_t)trap_entry);
	csr_write(mcounteren, 7);
	CHECK("mcounteren", csr_read(mcounteren) & 7, 7);
	csr_write(mcounteren, 0);
	CHECK("mcounteren clear", csr_read(mcounteren) & 7, 0);
	csr_write(medeleg, 1 << CAUSE_LOAD_PAGE);
	CHECK("medeleg", csr_read(medeleg), 1 << CAUSE_LOAD_PAGE);
	csr_write(medeleg, 0);
	csr_write(mideleg, MIP_STIP);
	CHECK("mideleg", csr_read(mideleg) & MIP_STIP, MIP_STIP);
	csr_write(mideleg, 0);
	csr_write(sscratch, 0xabc);
	CHECK("sscratch", csr_read(sscratch), 0xabc);
	csr_write(sepc, 0x80001002);
	CHECK("sepc", csr_read(sepc), 0x80001002);
	csr_write(satp, 0);
	CHECK("satp bare", csr_read(satp), 0);

	/* counters: monotonic, minstret counts retired instructions */
	uint64_t i0 = csr_read(minstret);
	uint64_t c0 = csr_read(mcycle);
	__asm__ volatile("nop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop");
	uint64_t i1 = csr_read(minstret);
	uint64_t c1 = csr_read(mcycle);
	CHECK_TRUE("minstret advances by >= 10", i1 - i0 >= 10);
	CHECK_TRUE("mcycle monotonic", c1 >= c0);
	uint64_t prev = csr_read(minstret);
	int mono = 1;
	for (int i = 0; i < 100; i++) {
		uint64_t n = csr_read(minstret);
		if (n <= prev)
			mono = 0;
		prev = n;
	}
	CHECK_TRUE("minstret strictly increasing", mono);
	CHECK_TRUE("instret == minstret-ish", csr_read(instret) >= prev);
	uint64_t t0 = clint_mtime();
	uint64_t tc = csr_read(time);
	CHECK_TRUE("time CSR >= mtime", tc >= t0);
	group_end("csr");
}

/* ---- 4. traps ---- */
static uint64_t u_ecall_fn(uint64_t arg)
{
	uint64_t r = probe_ecall(arg);        /* ECALL_U: handler does a0 = a0*3+1 */
	return r + 1000 * probe_csrr_mstatus(5);  /* illegal in U: returns 5 untouched */
}

static uint64_t u_counter_fn(uint64_t arg)
{
	uint64_t a = csr_read(instret);
	uint64_t b = csr_read(instret);
	(void)arg;
	return b > a;
}

static void test_traps(void)
{
	group_begin();
	trap_hook = selftest_hook;

	arm();
	uint64_t r = probe_ecall(7);
	disarm();
	CHECK("ecall M: count", trap_count, 1);
	CHECK("ecall M: mcause", trap_cause, CAUSE_ECALL_M);
	CHECK("ecall M: mepc", trap_epc, (uint64_t)(uintptr_t)probe_ecall_insn);
	CHECK("ecall M: a0 changed", r, 22);

	arm();
	probe_illegal();
	disarm();
	CHECK("illegal: mcause", trap_cause, CAUSE_ILLEGAL_INSN);
	CHECK("illegal: mtval = insn", trap_tval, 0xc0001073);
	CHECK("illegal: mepc", trap_epc, (uint64_t)(uintptr_t)probe_illegal);

	arm();
	probe_ebreak();
	disarm();
	CHECK("ebreak: mcause", trap_cause, CAUSE_BREAKPOINT);
	CHECK("ebreak: mepc", trap_epc, (uint64_t)(uintptr_t)probe_ebreak);

	arm();
	r = probe_ld(0, 0x5a5a);
	disarm();
	CHECK("load 0x0: mcause", trap_cause, CAUSE_LOAD_ACCESS);
	CHECK("load 0x0: mtval", trap_tval, 0);
	CHECK("load 0x0: value untouched", r, 0x5a5a);

	arm();
	probe_sd(0x8, 1);
	disarm();
	CHECK("store 0x8: mcause", trap_cause, CAUSE_STORE_ACCESS);
	CHECK("store 0x8: mtval", trap_tval, 8);

	arm();
	((void (*)(void))0x0)();
	disarm();
	CHECK("fetch 0x0: mcause", trap_cause, CAUSE_FETCH_ACCESS);
	CHECK("fetch 0x0: mtval", trap_tval, 0);

	/* misaligned accesses to RAM are performed (QEMU does not trap) */
	static volatile uint8_t mis[16] __attribute__((aligned(8)));
	for (int i = 0; i < 16; i++)
		mis[i] = (uint8_t)(0x10 + i);
	arm();
	r = probe_ld((uint64_t)(uintptr_t)&mis[3], 0);
	probe_sd((uint64_t)(uintptr_t)&mis[5], 0x1122334455667788ULL);
	uint64_t rw = probe_lw((uint64_t)(uintptr_t)&mis[1], 0);
	disarm();
	CHECK("misaligned: no trap", trap_count, 0);
	CHECK("misaligned ld", r, 0x1a19181716151413ULL);
	CHECK("misaligned sd", mis[5] | (mis[12] << 8), 0x1188);
	CHECK("misaligned lw", rw, 0x14131211ULL);

	/* U mode: PMP must allow everything (QEMU: no PMP entry => U/S denied) */
	csr_write(pmpaddr0, ~0ULL >> 10);
	csr_write(pmpcfg0, 0x1f);            /* NAPOT, RWX */
	arm();
	r = run_lower(MSTATUS_MPP_U, u_ecall_fn, 4, LOWER_SP);
	disarm();
	CHECK("U: traps", trap_count, 2);
	CHECK("U: last mcause (illegal csr)", trap_cause, CAUSE_ILLEGAL_INSN);
	CHECK("U: mtval = insn", trap_tval, 0x30002573);
	CHECK("U: MPP was U", trap_mpp, 0);
	CHECK("U: result", r, 13 + 5000);
	/* ecall from U on its own */
	arm();
	r = run_lower(MSTATUS_MPP_U, (uint64_t (*)(uint64_t))probe_ecall, 10, LOWER_SP);
	disarm();
	CHECK("ecall U: mcause", trap_cause, CAUSE_ECALL_U);
	CHECK("ecall U: a0", r, 31);
	/* counters from U need mcounteren (and scounteren for U) */
	csr_write(mcounteren, 7);
	csr_write(scounteren, 7);
	arm();
	r = run_lower(MSTATUS_MPP_U, u_counter_fn, 0, LOWER_SP);
	disarm();
	CHECK("U: instret readable with mcounteren", trap_count, 0);
	CHECK("U: instret advances", r, 1);
	csr_write(mcounteren, 0);
	csr_write(scounteren, 0);
	arm();
	r = run_lower(MSTATUS_MPP_U, u_counter_fn, 0, LOWER_SP);
	disarm();
	CHECK("U: instret illegal without mcounteren", trap_count, 2);
	CHECK("U: illegal cause", trap_cause, CAUSE_ILLEGAL_INSN);

	/* ecall from S */
	arm();
	r = run_lower(MSTATUS_MPP_S, (uint64_t (*)(uint64_t))probe_ecall, 1, LOWER_SP);
	disarm();
	CHECK("ecall S: mcause", trap_cause, CAUSE_ECALL_S);
	CHECK("ecall S: MPP was S", trap_mpp, 1);
	CHECK("ecall S: a0", r, 4);
	group_end("traps");
}

/* ---- 5. interrupts ---- */
static void test_interrupts(void)
{
	group_begin();
	/* mip.MTIP follows mtime >= mtimecmp */
	csr_clear(mie, ~0ULL);
	clint_set_mtimecmp(0);
	CHECK("mip.MTIP when mtimecmp=0", csr_read(mip) & MIP_MTIP, MIP_MTIP);
	clint_set_mtimecmp(~0ULL);
	CHECK("mip.MTIP clear when mtimecmp=max", csr_read(mip) & MIP_MTIP, 0);

	/* timer ticks: period 1 ms, 5 ticks, sleeping in WFI */
	const uint64_t N = 5;
	ticks = 0;
	tick_target = N;
	tick_period = CLINT_HZ / 1000;
	clint_set_mtimecmp(clint_mtime() + tick_period);
	csr_set(mie, MIP_MTIP);
	csr_set(mstatus, MSTATUS_MIE);
	uint64_t guard = 0;
	while (ticks < N && guard++ < 1000000)
		wfi();
	csr_clear(mstatus, MSTATUS_MIE);
	CHECK("timer ticks", ticks, N);
	CHECK("MTIE off after last tick", csr_read(mie) & MIP_MTIP, 0);

	/* WFI with MIE=0 still wakes on a pending enabled interrupt; no trap is taken */
	ticks = 0;
	tick_target = 1;
	clint_set_mtimecmp(clint_mtime() + tick_period);
	csr_set(mie, MIP_MTIP);
	guard = 0;
	while (!(csr_read(mip) & MIP_MTIP) && guard++ < 1000000)
		wfi();
	CHECK("wfi wake with MIE=0", (csr_read(mip) & MIP_MTIP) != 0, 1);
	CHECK("no trap while MIE=0", ticks, 0);
	csr_set(mstatus, MSTATUS_MIE);    /* now it is taken */
	csr_clear(mstatus, MSTATUS_MIE);
	CHECK("trap taken once MIE=1", ticks, 1);

	/* machine software interrupt via CLINT msip */
	msi_count = 0;
	csr_set(mie, MIP_MSIP);
	mmio_write32(CLINT_BASE, 1);
	CHECK("mip.MSIP set", (csr_read(mip) & MIP_MSIP) != 0, 1);
	csr_set(mstatus, MSTATUS_MIE);
	__asm__ volatile("nop");
	csr_clear(mstatus, MSTATUS_MIE);
	csr_clear(mie, MIP_MSIP);
	CHECK("msi taken", msi_count, 1);
	CHECK("mip.MSIP cleared", csr_read(mip) & MIP_MSIP, 0);
	group_end("interrupts");
}

/* ---- 6. Sv39 paging in S mode ---- */
#define PTE_V (1UL << 0)
#define PTE_R (1UL << 1)
#define PTE_W (1UL << 2)
#define PTE_X (1UL << 3)
#define PTE_U (1UL << 4)
#define PTE_G (1UL << 5)
#define PTE_A (1UL << 6)
#define PTE_D (1UL << 7)
#define PTE(pa, fl) ((((uint64_t)(uintptr_t)(pa)) >> 12) << 10 | (fl))

static uint64_t pt_root[512] __attribute__((aligned(4096)));
static uint64_t pt_l1[512] __attribute__((aligned(4096)));
static uint64_t pt_l0[512] __attribute__((aligned(4096)));
static uint8_t page_a[4096] __attribute__((aligned(4096)));
static uint8_t page_b[4096] __attribute__((aligned(4096)));
/* the 2 MiB page's frame: first 2 MiB-aligned RAM above the image (a static 2 MiB-aligned
 * array would pad the ELF file to 2 MiB) */
extern char __image_end[];
#define mega ((uint8_t *)(((uintptr_t)__image_end + (2UL << 20) - 1) & ~((2UL << 20) - 1)))

#define VA_MEGA  0x40000000UL   /* 2 MiB page -> mega */
#define VA_A     0x40200000UL   /* 4 KiB page -> page_a, RW, A/D clear */
#define VA_RO    0x40201000UL   /* 4 KiB page -> page_b, read-only */
#define VA_NONE  0x40202000UL   /* invalid */
#define VA_USER  0x40203000UL   /* 4 KiB page -> page_b, U=1 */

struct s_results {
	uint64_t mega_read, mega_pte_after_read, mega_pte_after_write, mega_readback;
	uint64_t a_read, a_pte_after_read, a_pte_after_write;
	uint64_t ro_read, ro_store_traps, ro_cause, ro_tval, ro_unchanged;
	uint64_t none_val, none_cause, none_tval;
	uint64_t user_cause, user_val_sum;
	uint64_t remap_before, remap_after;
	uint64_t gig_read;
	uint64_t satp_mode;
};
static struct s_results sr;

static uint64_t s_paging_fn(uint64_t arg)
{
	(void)arg;
	csr_write(stvec, (uint64_t)(uintptr_t)s_trap);
	sr.satp_mode = csr_read(satp) >> 60;
	/* 1 GiB identity page: read a global through it */
	sr.gig_read = probe_ld((uint64_t)(uintptr_t)&page_b[8], 0);
	/* 2 MiB page: read sets A, write sets D */
	sr.mega_read = probe_ld(VA_MEGA + 4096, 0);
	sr.mega_pte_after_read = pt_l1[0];
	probe_sd(VA_MEGA + 8192, 0xfeedface);
	sr.mega_pte_after_write = pt_l1[0];
	sr.mega_readback = probe_ld(VA_MEGA + 8192, 0);
	/* 4 KiB page */
	sr.a_read = probe_ld(VA_A + 16, 0);
	sr.a_pte_after_read = pt_l0[0];
	probe_sd(VA_A + 24, 0xa5a5);
	sr.a_pte_after_write = pt_l0[0];
	/* read-only page: store page fault (delegated to S) */
	sr.ro_read = probe_ld(VA_RO, 0);
	uint64_t n0 = s_trap_info[3];
	probe_sd(VA_RO + 32, 0xbad);
	sr.ro_store_traps = s_trap_info[3] - n0;
	sr.ro_cause = s_trap_info[0];
	sr.ro_tval = s_trap_info[1];
	sr.ro_unchanged = probe_ld(VA_RO + 32, 0);
	/* invalid page: load page fault */
	sr.none_val = probe_ld(VA_NONE + 40, 0x1234);
	sr.none_cause = s_trap_info[0];
	sr.none_tval = s_trap_info[1];
	/* U page from S without SUM: load page fault; with SUM: allowed */
	s_trap_info[0] = 0;
	uint64_t v1 = probe_ld(VA_USER, 7);
	sr.user_cause = s_trap_info[0];
	csr_set(sstatus, MSTATUS_SUM);
	uint64_t v2 = probe_ld(VA_USER, 7);
	csr_clear(sstatus, MSTATUS_SUM);
	sr.user_val_sum = v1 * 1000 + (v2 == 0x0b0b0b0b0b0b0b0bULL);
	/* change a PTE, SFENCE.VMA, see the new mapping */
	sr.remap_before = probe_ld(VA_A + 48, 0);
	pt_l0[0] = PTE(page_b, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
	__asm__ volatile("sfence.vma %0, zero" :: "r"(VA_A) : "memory");
	sr.remap_after = probe_ld(VA_A + 48, 0);
	return 0x600d;
}

static void test_paging(void)
{
	group_begin();
	memset(page_a, 0x0a, sizeof page_a);
	memset(page_b, 0x0b, sizeof page_b);
	((volatile uint64_t *)mega)[4096 / 8] = 0x1111222233334444ULL;
	/* root: [0] 1G identity (MMIO: UART etc.), [1] -> L1 (test area), [2] 1G identity RAM */
	pt_root[0] = PTE(0x00000000UL, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
	pt_root[1] = PTE(pt_l1, PTE_V);
	pt_root[2] = PTE(0x80000000UL, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D);
	pt_l1[0] = PTE(mega, PTE_V | PTE_R | PTE_W);                 /* 2M leaf, A/D clear */
	pt_l1[1] = PTE(pt_l0, PTE_V);
	pt_l0[0] = PTE(page_a, PTE_V | PTE_R | PTE_W);               /* A/D clear */
	pt_l0[1] = PTE(page_b, PTE_V | PTE_R | PTE_A);               /* read-only */
	pt_l0[2] = 0;
	pt_l0[3] = PTE(page_b, PTE_V | PTE_R | PTE_U | PTE_A);       /* user page */
	s_trap_info[3] = 0;
	csr_write(medeleg, (1 << CAUSE_LOAD_PAGE) | (1 << CAUSE_STORE_PAGE) | (1 << CAUSE_FETCH_PAGE));
	csr_write(satp, (8ULL << 60) | ((uint64_t)(uintptr_t)pt_root >> 12));
	__asm__ volatile("sfence.vma" ::: "memory");
	arm();
	uint64_t r = run_lower(MSTATUS_MPP_S, s_paging_fn, 0, LOWER_SP);
	disarm();
	csr_write(satp, 0);
	__asm__ volatile("sfence.vma" ::: "memory");
	csr_write(medeleg, 0);
	CHECK("S: returned", r, 0x600d);
	CHECK("S: no M-mode traps", trap_count, 0);
	CHECK("satp mode Sv39", sr.satp_mode, 8);
	CHECK("1G page read", sr.gig_read, 0x0b0b0b0b0b0b0b0bULL);
	CHECK("2M page read", sr.mega_read, 0x1111222233334444ULL);
	CHECK("2M PTE A after read", sr.mega_pte_after_read & (PTE_A | PTE_D), PTE_A);
	CHECK("2M PTE D after write", sr.mega_pte_after_write & (PTE_A | PTE_D), PTE_A | PTE_D);
	CHECK("2M readback", sr.mega_readback, 0xfeedface);
	CHECK("2M write reached memory", ((volatile uint64_t *)mega)[8192 / 8], 0xfeedface);
	CHECK("4K page read", sr.a_read, 0x0a0a0a0a0a0a0a0aULL);
	CHECK("4K PTE A after read", sr.a_pte_after_read & (PTE_A | PTE_D), PTE_A);
	CHECK("4K PTE D after write", sr.a_pte_after_write & (PTE_A | PTE_D), PTE_A | PTE_D);
	CHECK("4K write reached memory", *(volatile uint64_t *)&page_a[24], 0xa5a5);
	CHECK("RO page read", sr.ro_read, 0x0b0b0b0b0b0b0b0bULL);
	CHECK("RO store traps once", sr.ro_store_traps, 1);
	CHECK("RO store scause", sr.ro_cause, CAUSE_STORE_PAGE);
	CHECK("RO store stval", sr.ro_tval, VA_RO + 32);
	CHECK("RO page unchanged", sr.ro_unchanged, 0x0b0b0b0b0b0b0b0bULL);
	CHECK("invalid PTE: load skipped", sr.none_val, 0x1234);
	CHECK("invalid PTE: scause", sr.none_cause, CAUSE_LOAD_PAGE);
	CHECK("invalid PTE: stval", sr.none_tval, VA_NONE + 40);
	CHECK("U page from S: scause", sr.user_cause, CAUSE_LOAD_PAGE);
	CHECK("U page from S: SUM", sr.user_val_sum, 7 * 1000 + 1);
	CHECK("before sfence remap", sr.remap_before, 0x0a0a0a0a0a0a0a0aULL);
	CHECK("after sfence remap", sr.remap_after, 0x0b0b0b0b0b0b0b0bULL);
	CHECK("S traps total", s_trap_info[3], 3);
	group_end("paging");
}

int main(uint64_t hartid, const void *fdt)
{
	(void)hartid;
	(void)fdt;
	printf("selftest: start\n");
	test_arith();
	test_atomics();
	test_csrs();
	test_traps();
	test_interrupts();
	test_paging();
	trap_hook = 0;
	if (total_fail) {
		printf("selftest: FAIL %d\n", total_fail);
		finisher_fail((uint32_t)(total_fail < 0xffff ? total_fail : 0xffff));
	}
	printf("selftest: PASS\n");
	finisher_pass();
}
