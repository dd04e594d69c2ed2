/*
 * bench: a deterministic CPU-bound integer mix for benchmarking emulators.
 * Each round runs: a multiply/xor/shift hash over a buffer, random read-modify-write over a
 * 1 MiB table, an insertion+quick sort of 8K keys, a sieve of Eratosthenes, gcd / base-10
 * conversion (division and modulo), a branchy byte-code interpreter, and recursive calls
 * over a binary tree. Prints a checksum and minstret, then exits pass.
 * The amount of work is fixed (ROUNDS); about 2.5e9 instructions in total.
 */
#include <stdio.h>
#include <string.h>
#include "rt.h"

#ifndef ROUNDS
#define ROUNDS 180
#endif

static uint64_t rng_state;
static inline uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

/* 1. hash over a 64 KiB buffer */
static uint8_t hbuf[64 * 1024];
__attribute__((noinline)) static uint64_t k_hash(uint64_t seed)
{
	uint64_t h = seed ^ 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < sizeof hbuf; i += 8) {
		uint64_t w;
		memcpy(&w, &hbuf[i], 8);
		h ^= w;
		h *= 0x100000001b3ULL;
		h ^= h >> 31;
		h = (h << 7) | (h >> 57);
	}
	/* stir the buffer so the next round differs */
	for (size_t i = 0; i < sizeof hbuf; i += 64)
		hbuf[i] ^= (uint8_t)(h >> (i & 31));
	return h;
}

/* 2. random read-modify-write over a 1 MiB table */
#define TBL_WORDS (1024 * 1024 / 8)
static uint64_t table[TBL_WORDS];
__attribute__((noinline)) static uint64_t k_table(void)
{
	uint64_t acc = 0;
	for (int i = 0; i < 40000; i++) {
		uint64_t r = rng();
		size_t a = r % TBL_WORDS;
		size_t b = (r >> 32) % TBL_WORDS;
		uint64_t v = table[a] + (r | 1);
		table[a] = v;
		table[b] ^= v >> 3;
		acc += table[(a + b) & (TBL_WORDS - 1)];
	}
	return acc;
}

/* 3. sort 8K keys: quicksort with insertion sort for small ranges */
#define NKEYS 8192
static uint32_t keys[NKEYS];
static void isort(uint32_t *a, int n)
{
	for (int i = 1; i < n; i++) {
		uint32_t v = a[i];
		int j = i - 1;
		while (j >= 0 && a[j] > v) {
			a[j + 1] = a[j];
			j--;
		}
		a[j + 1] = v;
	}
}
static void qsort_u32(uint32_t *a, int n)
{
	while (n > 16) {
		uint32_t p = a[n / 2];
		int i = 0, j = n - 1;
		for (;;) {
			while (a[i] < p)
				i++;
			while (a[j] > p)
				j--;
			if (i >= j)
				break;
			uint32_t t = a[i];
			a[i] = a[j];
			a[j] = t;
			i++;
			j--;
		}
		/* recurse on the smaller part */
		if (j + 1 < n - j - 1) {
			qsort_u32(a, j + 1);
			a += j + 1;
			n -= j + 1;
		} else {
			qsort_u32(a + j + 1, n - j - 1);
			n = j + 1;
		}
	}
	isort(a, n);
}
__attribute__((noinline)) static uint64_t k_sort(void)
{
	for (int i = 0; i < NKEYS; i++)
		keys[i] = (uint32_t)rng();
	qsort_u32(keys, NKEYS);
	uint64_t s = 0;
	for (int i = 1; i < NKEYS; i++) {
		if (keys[i - 1] > keys[i])
			return ~0ULL; /* not sorted: poison the checksum */
		s = s * 31 + keys[i];
	}
	return s;
}

/* 4. sieve up to 300000 */
#define SIEVE_N 300000
static uint8_t sieve[SIEVE_N];
__attribute__((noinline)) static uint64_t k_sieve(void)
{
	memset(sieve, 1, sizeof sieve);
	sieve[0] = sieve[1] = 0;
	for (uint32_t i = 2; i * i < SIEVE_N; i++)
		if (sieve[i])
			for (uint32_t j = i * i; j < SIEVE_N; j += i)
				sieve[j] = 0;
	uint64_t count = 0, sum = 0;
	for (uint32_t i = 0; i < SIEVE_N; i++)
		if (sieve[i]) {
			count++;
			sum += i;
		}
	return count * 1000003 + sum;
}

/* 5. division / modulo: gcds and decimal conversion */
static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}
__attribute__((noinline)) static uint64_t k_div(void)
{
	uint64_t acc = 0;
	for (int i = 0; i < 6000; i++) {
		uint64_t a = rng() >> (i & 31), b = (rng() >> 20) | 1;
		acc += gcd(a, b);
		int64_t s = (int64_t)rng();
		acc ^= (uint64_t)(s / (int64_t)((i & 255) + 3)) + (uint64_t)(s % 1000003);
		uint32_t w = (uint32_t)a;
		char digits[24];
		int n = 0;
		do {
			digits[n++] = (char)('0' + w % 10);
			w /= 10;
		} while (w);
		acc += (uint64_t)n * (uint64_t)digits[0];
	}
	return acc;
}

/* 6. a tiny byte-code interpreter (data-dependent branches) */
enum { OP_ADD, OP_SUB, OP_XOR, OP_SHL, OP_JNZ, OP_LOAD, OP_STORE, OP_MUL, NOPS };
static uint8_t code[256];
static uint64_t vmem[64];
__attribute__((noinline)) static uint64_t k_interp(void)
{
	for (int i = 0; i < 256; i++)
		code[i] = (uint8_t)rng();
	uint64_t r[4] = { 1, 2, 3, 4 };
	uint32_t pc = 0;
	for (int steps = 0; steps < 60000; steps++) {
		uint8_t ins = code[pc & 255];
		uint32_t op = ins % NOPS, x = (ins >> 3) & 3, y = (ins >> 5) & 3;
		switch (op) {
		case OP_ADD: r[x] += r[y]; break;
		case OP_SUB: r[x] -= r[y] ^ 5; break;
		case OP_XOR: r[x] ^= r[y] >> 1; break;
		case OP_SHL: r[x] = (r[x] << (r[y] & 7)) | (r[x] >> 57); break;
		case OP_JNZ:
			if (r[x] & 1) {
				pc += (uint32_t)(r[y] & 15);
				continue;
			}
			break;
		case OP_LOAD: r[x] = vmem[r[y] & 63]; break;
		case OP_STORE: vmem[r[y] & 63] = r[x]; break;
		case OP_MUL: r[x] = r[x] * (r[y] | 1); break;
		}
		pc++;
	}
	return r[0] ^ r[1] ^ r[2] ^ r[3];
}

/* 7. recursion: build and walk a binary search tree */
struct node {
	uint32_t key;
	int32_t left, right;
};
#define NNODES 4096
static struct node nodes[NNODES];
static int nnodes;
static int insert(int t, uint32_t key)
{
	if (t < 0) {
		nodes[nnodes].key = key;
		nodes[nnodes].left = nodes[nnodes].right = -1;
		return nnodes++;
	}
	if (key < nodes[t].key)
		nodes[t].left = insert(nodes[t].left, key);
	else
		nodes[t].right = insert(nodes[t].right, key);
	return t;
}
static uint64_t walk(int t, int depth)
{
	if (t < 0)
		return (uint64_t)depth;
	return walk(nodes[t].left, depth + 1) * 3 + walk(nodes[t].right, depth + 1) + nodes[t].key;
}
__attribute__((noinline)) static uint64_t k_tree(void)
{
	nnodes = 0;
	int root = -1;
	for (int i = 0; i < NNODES; i++)
		root = insert(root, (uint32_t)rng());
	return walk(root, 0);
}

int main(uint64_t hartid, const void *fdt)
{
	(void)hartid;
	(void)fdt;
	rng_state = 0x2545f4914f6cdd1dULL;
	for (size_t i = 0; i < sizeof hbuf; i++)
		hbuf[i] = (uint8_t)rng();
	uint64_t sum = 0;
	for (int round = 0; round < ROUNDS; round++) {
		sum = sum * 0x9e3779b97f4a7c15ULL + k_hash(sum);
		sum ^= k_table();
		sum += k_sort();
		sum ^= k_sieve() << (round & 7);
		sum += k_div();
		sum ^= k_interp();
		sum += k_tree();
	}
	uint64_t end = csr_read(minstret);
	printf("bench: rounds %d checksum %016lx\n", ROUNDS, (unsigned long)sum);
	printf("instret: %lu\n", (unsigned long)end);
	return 0;
}
