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
	CHECK("mix", h, 0); /* placeholder, replaced below */
	group_end("arith");
}
