/* ftbox guest runtime (M-mode, QEMU virt / ftbox emulator). */
#ifndef FTBOX_RT_H
#define FTBOX_RT_H

#include <stdint.h>
#include <stddef.h>

/* ---- machine map (QEMU 7.2 -machine virt) ---- */
#define RAM_BASE        0x80000000UL
#define TEST_BASE       0x00100000UL   /* sifive_test finisher */
#define CLINT_BASE      0x02000000UL
#define CLINT_MTIMECMP  (CLINT_BASE + 0x4000)
#define CLINT_MTIME     (CLINT_BASE + 0xBFF8)
#define CLINT_HZ        10000000UL
#define PLIC_BASE       0x0c000000UL
#define UART_BASE       0x10000000UL
#define UART_IRQ        10
#define VIRTIO_BASE     0x10001000UL
#define VIRTIO_STRIDE   0x1000UL
#define VIRTIO_COUNT    8
#define VIRTIO_IRQ(i)   (1 + (i))

/* ---- CSR access ---- */
#define csr_read(csr) ({ uint64_t __v; __asm__ volatile("csrr %0, " #csr : "=r"(__v) :: "memory"); __v; })
#define csr_write(csr, val) ({ __asm__ volatile("csrw " #csr ", %0" :: "rK"((uint64_t)(val)) : "memory"); })
#define csr_set(csr, val) ({ __asm__ volatile("csrs " #csr ", %0" :: "rK"((uint64_t)(val)) : "memory"); })
#define csr_clear(csr, val) ({ __asm__ volatile("csrc " #csr ", %0" :: "rK"((uint64_t)(val)) : "memory"); })
#define csr_swap(csr, val) ({ uint64_t __v; __asm__ volatile("csrrw %0, " #csr ", %1" : "=r"(__v) : "rK"((uint64_t)(val)) : "memory"); __v; })

#define MSTATUS_SIE   (1UL << 1)
#define MSTATUS_MIE   (1UL << 3)
#define MSTATUS_SPIE  (1UL << 5)
#define MSTATUS_MPIE  (1UL << 7)
#define MSTATUS_SPP   (1UL << 8)
#define MSTATUS_MPP   (3UL << 11)
#define MSTATUS_MPP_U (0UL << 11)
#define MSTATUS_MPP_S (1UL << 11)
#define MSTATUS_MPP_M (3UL << 11)
#define MSTATUS_MPRV  (1UL << 17)
#define MSTATUS_SUM   (1UL << 18)
#define MSTATUS_MXR   (1UL << 19)

#define MIP_SSIP (1UL << 1)
#define MIP_MSIP (1UL << 3)
#define MIP_STIP (1UL << 5)
#define MIP_MTIP (1UL << 7)
#define MIP_SEIP (1UL << 9)
#define MIP_MEIP (1UL << 11)

#define CAUSE_INTR          (1UL << 63)
#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS  1
#define CAUSE_ILLEGAL_INSN  2
#define CAUSE_BREAKPOINT    3
#define CAUSE_MISALIGNED_LOAD 4
#define CAUSE_LOAD_ACCESS   5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS  7
#define CAUSE_ECALL_U       8
#define CAUSE_ECALL_S       9
#define CAUSE_ECALL_M       11
#define CAUSE_FETCH_PAGE    12
#define CAUSE_LOAD_PAGE     13
#define CAUSE_STORE_PAGE    15
#define IRQ_S_SOFT  1
#define IRQ_M_SOFT  3
#define IRQ_S_TIMER 5
#define IRQ_M_TIMER 7
#define IRQ_S_EXT   9
#define IRQ_M_EXT   11

/* ---- MMIO ---- */
static inline void mmio_write8(uintptr_t a, uint8_t v)   { *(volatile uint8_t *)a = v; }
static inline void mmio_write32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void mmio_write64(uintptr_t a, uint64_t v) { *(volatile uint64_t *)a = v; }
static inline uint8_t  mmio_read8(uintptr_t a)  { return *(volatile uint8_t *)a; }
static inline uint32_t mmio_read32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline uint64_t mmio_read64(uintptr_t a) { return *(volatile uint64_t *)a; }

#define mb()  __asm__ volatile("fence rw, rw" ::: "memory")
#define wmb() __asm__ volatile("fence w, w" ::: "memory")
#define rmb() __asm__ volatile("fence r, r" ::: "memory")
static inline void wfi(void) { __asm__ volatile("wfi" ::: "memory"); }

/* ---- traps ---- */
struct trapframe {
	uint64_t x[32];       /* x[0] unused; x[2] = interrupted sp */
	uint64_t mepc, mstatus, mcause, mtval;
};
/* Called for every trap. Return nonzero if handled. Unhandled traps print a
 * report and exit with failure. Interrupts are routed here too. */
typedef int (*trap_hook_t)(struct trapframe *tf);
extern volatile trap_hook_t trap_hook;
/* Called for machine timer / external interrupts when trap_hook does not handle them. */
extern void (*volatile timer_irq_hook)(void);
extern void (*volatile ext_irq_hook)(uint32_t irq);  /* after PLIC claim; complete is done by the runtime */
void trap_handler(struct trapframe *tf);
void trap_entry(void);

/* ---- UART (NS16550A) ---- */
void uart_putc(char c);
int  uart_getc(void);            /* -1 if nothing */
void uart_puts(const char *s);

/* ---- finisher ---- */
void finisher_pass(void) __attribute__((noreturn));
void finisher_fail(uint32_t code) __attribute__((noreturn));
void finisher_reset(void) __attribute__((noreturn));

/* ---- CLINT ---- */
static inline uint64_t clint_mtime(void) { return mmio_read64(CLINT_MTIME); }
static inline void clint_set_mtimecmp(uint64_t v) { mmio_write64(CLINT_MTIMECMP, v); }

/* ---- PLIC (context 0 = hart 0 M-mode) ---- */
void plic_set_priority(uint32_t irq, uint32_t prio);
void plic_enable(uint32_t irq, int ctx);
void plic_disable(uint32_t irq, int ctx);
void plic_set_threshold(int ctx, uint32_t t);
uint32_t plic_claim(int ctx);
void plic_complete(int ctx, uint32_t irq);

/* ---- FDT ---- */
extern uint64_t rt_hartid;
extern const void *rt_fdt;
/* Returns /chosen/bootargs (NUL-terminated, inside the FDT) or NULL. */
const char *fdt_bootargs(const void *fdt);
/* Value of "key=" in a space-separated bootargs string, copied into buf; returns 1 if found. */
int bootarg_get(const char *bootargs, const char *key, char *buf, size_t buflen);

#endif
