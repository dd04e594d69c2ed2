/* ftbox guest runtime: UART stdio for picolibc, finisher, trap dispatch, PLIC, FDT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rt.h"

uint64_t rt_hartid;
const void *rt_fdt;
volatile trap_hook_t trap_hook;
void (*volatile timer_irq_hook)(void);
void (*volatile ext_irq_hook)(uint32_t irq);

/* ---- UART ---- */
#define UART_RBR 0
#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_LSR 5
#define LSR_DR   0x01
#define LSR_THRE 0x20

void uart_putc(char c)
{
	while (!(mmio_read8(UART_BASE + UART_LSR) & LSR_THRE))
		;
	mmio_write8(UART_BASE + UART_THR, (uint8_t)c);
}

int uart_getc(void)
{
	if (mmio_read8(UART_BASE + UART_LSR) & LSR_DR)
		return mmio_read8(UART_BASE + UART_RBR);
	return -1;
}

void uart_puts(const char *s)
{
	while (*s) {
		if (*s == '\n')
			uart_putc('\r');
		uart_putc(*s++);
	}
}

static int stdio_put(char c, FILE *f)
{
	(void)f;
	if (c == '\n')
		uart_putc('\r');
	uart_putc(c);
	return (unsigned char)c;
}

static int stdio_get(FILE *f)
{
	(void)f;
	int c;
	while ((c = uart_getc()) < 0)
		;
	return c;
}

static FILE __stdio = FDEV_SETUP_STREAM(stdio_put, stdio_get, NULL, _FDEV_SETUP_RW);
FILE *const stdin = &__stdio;
__strong_reference(stdin, stdout);
__strong_reference(stdin, stderr);

/* ---- finisher ---- */
void finisher_pass(void)
{
	mmio_write32(TEST_BASE, 0x5555);
	for (;;)
		wfi();
}

void finisher_fail(uint32_t code)
{
	mmio_write32(TEST_BASE, ((code & 0xffff) << 16) | 0x3333);
	for (;;)
		wfi();
}

void finisher_reset(void)
{
	mmio_write32(TEST_BASE, 0x7777);
	for (;;)
		wfi();
}

void _exit(int code)
{
	if (code == 0)
		finisher_pass();
	finisher_fail((uint32_t)code);
}

/* picolibc's malloc wants sbrk */
extern char __heap_start[], __heap_end[];
static char *heap_ptr = __heap_start;
void *sbrk(ptrdiff_t incr)
{
	char *p = heap_ptr;
	if (incr < 0 || (size_t)(__heap_end - heap_ptr) < (size_t)incr)
		return (void *)-1;
	heap_ptr += incr;
	return p;
}

/* ---- PLIC ---- */
#define PLIC_PRIORITY(irq)   (PLIC_BASE + 4UL * (irq))
#define PLIC_ENABLE(ctx)     (PLIC_BASE + 0x2000UL + 0x80UL * (ctx))
#define PLIC_THRESHOLD(ctx)  (PLIC_BASE + 0x200000UL + 0x1000UL * (ctx))
#define PLIC_CLAIM(ctx)      (PLIC_BASE + 0x200004UL + 0x1000UL * (ctx))

void plic_set_priority(uint32_t irq, uint32_t prio) { mmio_write32(PLIC_PRIORITY(irq), prio); }
void plic_enable(uint32_t irq, int ctx)
{
	uintptr_t a = PLIC_ENABLE(ctx) + 4 * (irq / 32);
	mmio_write32(a, mmio_read32(a) | (1u << (irq % 32)));
}
void plic_disable(uint32_t irq, int ctx)
{
	uintptr_t a = PLIC_ENABLE(ctx) + 4 * (irq / 32);
	mmio_write32(a, mmio_read32(a) & ~(1u << (irq % 32)));
}
void plic_set_threshold(int ctx, uint32_t t) { mmio_write32(PLIC_THRESHOLD(ctx), t); }
uint32_t plic_claim(int ctx) { return mmio_read32(PLIC_CLAIM(ctx)); }
void plic_complete(int ctx, uint32_t irq) { mmio_write32(PLIC_CLAIM(ctx), irq); }

/* ---- traps ---- */
static void print_hex(const char *name, uint64_t v)
{
	static const char hx[] = "0123456789abcdef";
	uart_puts(name);
	uart_puts("=0x");
	for (int i = 60; i >= 0; i -= 4)
		uart_putc(hx[(v >> i) & 15]);
	uart_puts(" ");
}

void trap_handler(struct trapframe *tf)
{
	if (trap_hook && trap_hook(tf))
		return;
	if (tf->mcause & CAUSE_INTR) {
		uint64_t code = tf->mcause & ~CAUSE_INTR;
		if (code == IRQ_M_TIMER && timer_irq_hook) {
			timer_irq_hook();
			return;
		}
		if (code == IRQ_M_EXT) {
			uint32_t irq;
			while ((irq = plic_claim(0)) != 0) {
				if (ext_irq_hook)
					ext_irq_hook(irq);
				plic_complete(0, irq);
			}
			return;
		}
		if (code == IRQ_M_TIMER) {
			/* nobody wants it: push the deadline away */
			clint_set_mtimecmp(~0ULL);
			return;
		}
	}
	/* unhandled: report without stdio (we may be in the middle of a printf) */
	uart_puts("\nrt: unhandled trap ");
	print_hex("mcause", tf->mcause);
	print_hex("mepc", tf->mepc);
	print_hex("mtval", tf->mtval);
	uart_puts("\n");
	finisher_fail(0x7e);
}

/* ---- FDT ---- */
static uint32_t be32(const void *p)
{
	const uint8_t *b = p;
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

#define FDT_MAGIC      0xd00dfeedu
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE   2
#define FDT_PROP       3
#define FDT_NOP        4
#define FDT_END        9

const char *fdt_bootargs(const void *fdt)
{
	const uint8_t *h = fdt;
	if (!h || ((uintptr_t)h & 3) || be32(h) != FDT_MAGIC)
		return NULL;
	uint32_t totalsize = be32(h + 4);
	uint32_t off_struct = be32(h + 8);
	uint32_t off_strings = be32(h + 12);
	uint32_t size_struct = be32(h + 36);
	if (off_struct >= totalsize || off_strings >= totalsize)
		return NULL;
	const uint8_t *p = h + off_struct;
	const uint8_t *end = p + size_struct;
	const char *strings = (const char *)h + off_strings;
	int depth = 0, chosen_depth = -1;
	while (p + 4 <= end) {
		uint32_t tok = be32(p);
		p += 4;
		switch (tok) {
		case FDT_BEGIN_NODE: {
			const char *name = (const char *)p;
			size_t n = strlen(name);
			depth++;
			if (depth == 2 && chosen_depth < 0 && (strcmp(name, "chosen") == 0 || strncmp(name, "chosen@", 7) == 0))
				chosen_depth = depth;
			p += (n + 1 + 3) & ~3UL;
			break;
		}
		case FDT_END_NODE:
			if (depth == chosen_depth)
				return NULL;
			depth--;
			break;
		case FDT_PROP: {
			uint32_t len = be32(p), nameoff = be32(p + 4);
			const char *val = (const char *)p + 8;
			if (depth == chosen_depth && chosen_depth > 0 && strcmp(strings + nameoff, "bootargs") == 0) {
				if (len == 0 || val[len - 1] != 0)
					return NULL;
				return val;
			}
			p += 8 + ((len + 3) & ~3UL);
			break;
		}
		case FDT_NOP:
			break;
		default:
			return NULL;
		}
	}
	return NULL;
}

int bootarg_get(const char *s, const char *key, char *buf, size_t buflen)
{
	size_t kl = strlen(key);
	if (!s)
		return 0;
	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		const char *w = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		size_t wl = (size_t)(s - w);
		if (wl > kl && strncmp(w, key, kl) == 0 && w[kl] == '=') {
			size_t vl = wl - kl - 1;
			if (vl + 1 > buflen)
				return 0;
			memcpy(buf, w + kl + 1, vl);
			buf[vl] = 0;
			return 1;
		}
	}
	return 0;
}

void rt_init(uint64_t hartid, const void *fdt);
void rt_init(uint64_t hartid, const void *fdt)
{
	rt_hartid = hartid;
	rt_fdt = fdt;
}
