/*
 * netsvc: a tiny interrupt-driven network service on virtio-net (virtio-mmio v2).
 *
 *   ARP      replies to requests for our IP
 *   ICMP     echo reply (any size up to the 1500-byte MTU)
 *   UDP 7    echo (RFC 862)
 *   UDP 7000 counter service:
 *              "INCR <name> <reqid>"  -> "<reqid> <value>"   (value after increment; first INCR gives 1)
 *              "GET <name> <reqid>"   -> "<reqid> <value>"   (0 if the name is unknown)
 *            Tokens are separated by one or more spaces/tabs; one trailing "\n" or "\r\n" is ignored.
 *            <name> and <reqid> are 1..63 bytes of printable non-space ASCII. Replies carry no newline.
 *            Errors get a reply "ERR <text>":  "ERR malformed" (wrong verb / token count / bad token),
 *            "ERR full" (INCR of a new name while the 4096-entry table is full).
 *            Empty datagrams are dropped.
 *   everything else (IPv6, TCP, other UDP ports, IP fragments, bad checksums, frames for other MACs) is ignored.
 *
 * IP: NETSVC_IP (build-time, default 10.77.0.10), overridden by "ip=A.B.C.D" in /chosen/bootargs
 * (anything after the address, e.g. "/24" or ":...", is ignored).
 * The main loop sleeps in WFI whenever there is no work.
 */
#include <stdio.h>
#include <string.h>
#include "rt.h"
#include "virtio.h"

#ifndef NETSVC_IP
#define NETSVC_IP "10.77.0.10"
#endif

#define QSZ      32
#define BUFSZ    2048
#define RXQ      0
#define TXQ      1

struct vq {
	uint16_t n;               /* queue size in use */
	uint16_t last_used;       /* next used index to consume */
	uint16_t avail_idx;       /* shadow of avail->idx */
	struct virtq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[n], used_event */
	volatile uint16_t *used_hdr; /* flags, idx */
	volatile struct virtq_used_elem *used_ring;
};

static struct virtq_desc rx_desc[QSZ] __attribute__((aligned(4096)));
static uint16_t rx_avail[QSZ + 3] __attribute__((aligned(4096)));
static uint32_t rx_used[2 + 2 * QSZ + 1] __attribute__((aligned(4096)));
static struct virtq_desc tx_desc[QSZ] __attribute__((aligned(4096)));
static uint16_t tx_avail[QSZ + 3] __attribute__((aligned(4096)));
static uint32_t tx_used[2 + 2 * QSZ + 1] __attribute__((aligned(4096)));
static uint8_t rx_buf[QSZ][BUFSZ] __attribute__((aligned(4096)));
static uint8_t tx_buf[QSZ][BUFSZ] __attribute__((aligned(4096)));

static struct vq rxq, txq;
static uint16_t tx_free[QSZ];
static int tx_nfree;

static uintptr_t vbase;
static uint32_t virq;
static uint8_t mymac[6];
static uint8_t myip[4];
static uint16_t ip_id;

/* ---- small helpers ---- */
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	while (len > 1) {
		sum += (uint32_t)((p[0] << 8) | p[1]);
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t pseudo_sum(const uint8_t *src, const uint8_t *dst, uint8_t proto, uint16_t len)
{
	uint32_t s = 0;
	s = csum_add(s, src, 4);
	s = csum_add(s, dst, 4);
	s += proto;
	s += len;
	return s;
}

static int parse_ip(const char *s, uint8_t out[4])
{
	for (int i = 0; i < 4; i++) {
		unsigned v = 0;
		int digits = 0;
		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (unsigned)(*s++ - '0');
			if (++digits > 3)
				return 0;
		}
		if (!digits || v > 255)
			return 0;
		out[i] = (uint8_t)v;
		if (i < 3) {
			if (*s != '.')
				return 0;
			s++;
		}
	}
	return *s == 0 || *s == '/' || *s == ':';
}

/* ---- virtio ---- */
static inline uint32_t vr(uint32_t off) { return mmio_read32(vbase + off); }
static inline void vw(uint32_t off, uint32_t v) { mmio_write32(vbase + off, v); }

static void die(const char *msg)
{
	printf("netsvc: %s\n", msg);
	finisher_fail(1);
}

static void setup_queue(struct vq *q, int sel, struct virtq_desc *desc, uint16_t *avail, uint32_t *used)
{
	vw(VIRTIO_MMIO_QUEUE_SEL, (uint32_t)sel);
	if (vr(VIRTIO_MMIO_QUEUE_READY))
		die("queue already ready");
	uint32_t max = vr(VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (max == 0)
		die("queue not available");
	q->n = (uint16_t)(max < QSZ ? max : QSZ);
	q->desc = desc;
	q->avail = avail;
	q->used_hdr = (volatile uint16_t *)used;
	q->used_ring = (volatile struct virtq_used_elem *)(used + 1);
	q->last_used = 0;
	q->avail_idx = 0;
	vw(VIRTIO_MMIO_QUEUE_NUM, q->n);
	vw(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(uintptr_t)desc);
	vw(VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)((uint64_t)(uintptr_t)desc >> 32));
	vw(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(uintptr_t)avail);
	vw(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)((uint64_t)(uintptr_t)avail >> 32));
	vw(VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(uintptr_t)used);
	vw(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)((uint64_t)(uintptr_t)used >> 32));
	vw(VIRTIO_MMIO_QUEUE_READY, 1);
}

static void avail_push(struct vq *q, uint16_t id)
{
	q->avail[2 + (q->avail_idx % q->n)] = id;
	q->avail_idx++;
	wmb();
	q->avail[1] = q->avail_idx;
}

static void virtio_net_init(void)
{
	int slot = -1;
	for (int i = 0; i < VIRTIO_COUNT; i++) {
		uintptr_t b = VIRTIO_BASE + (uintptr_t)i * VIRTIO_STRIDE;
		if (mmio_read32(b + VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MAGIC)
			continue;
		if (mmio_read32(b + VIRTIO_MMIO_DEVICE_ID) == 1) {
			slot = i;
			break;
		}
	}
	if (slot < 0)
		die("no virtio-net device");
	vbase = VIRTIO_BASE + (uintptr_t)slot * VIRTIO_STRIDE;
	virq = VIRTIO_IRQ(slot);
	if (vr(VIRTIO_MMIO_VERSION) != 2)
		die("virtio-mmio version is not 2 (QEMU: -global virtio-mmio.force-legacy=false)");

	vw(VIRTIO_MMIO_STATUS, 0);
	while (vr(VIRTIO_MMIO_STATUS) != 0)
		;
	vw(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	vw(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);

	vw(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint32_t f_lo = vr(VIRTIO_MMIO_DEVICE_FEATURES);
	vw(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	uint32_t f_hi = vr(VIRTIO_MMIO_DEVICE_FEATURES);
	if (!(f_hi & (1u << (VIRTIO_F_VERSION_1 - 32))))
		die("device does not offer VIRTIO_F_VERSION_1");
	uint32_t d_lo = f_lo & (1u << VIRTIO_NET_F_MAC);
	uint32_t d_hi = 1u << (VIRTIO_F_VERSION_1 - 32);
	vw(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vw(VIRTIO_MMIO_DRIVER_FEATURES, d_lo);
	vw(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vw(VIRTIO_MMIO_DRIVER_FEATURES, d_hi);
	vw(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	if (!(vr(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
		die("device rejected features");

	setup_queue(&rxq, RXQ, rx_desc, rx_avail, rx_used);
	setup_queue(&txq, TXQ, tx_desc, tx_avail, tx_used);

	for (uint16_t i = 0; i < rxq.n; i++) {
		rx_desc[i].addr = (uint64_t)(uintptr_t)rx_buf[i];
		rx_desc[i].len = BUFSZ;
		rx_desc[i].flags = VIRTQ_DESC_F_WRITE;
		rx_desc[i].next = 0;
		avail_push(&rxq, i);
	}
	for (uint16_t i = 0; i < txq.n; i++) {
		tx_desc[i].addr = (uint64_t)(uintptr_t)tx_buf[i];
		tx_desc[i].len = 0;
		tx_desc[i].flags = 0;
		tx_desc[i].next = 0;
		tx_free[tx_nfree++] = i;
	}

	if (d_lo & (1u << VIRTIO_NET_F_MAC)) {
		uint32_t gen;
		do {
			gen = vr(VIRTIO_MMIO_CONFIG_GENERATION);
			for (int i = 0; i < 6; i++)
				mymac[i] = mmio_read8(vbase + VIRTIO_MMIO_CONFIG + (uintptr_t)i);
		} while (gen != vr(VIRTIO_MMIO_CONFIG_GENERATION));
	} else {
		static const uint8_t def[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
		memcpy(mymac, def, 6);
	}

	vw(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	mb();
	vw(VIRTIO_MMIO_QUEUE_NOTIFY, RXQ);
}

static void tx_reclaim(void)
{
	while (txq.last_used != txq.used_hdr[1]) {
		rmb();
		uint32_t id = txq.used_ring[txq.last_used % txq.n].id;
		txq.last_used++;
		if (id < txq.n && tx_nfree < QSZ)
			tx_free[tx_nfree++] = (uint16_t)id;
	}
}

/* Get a TX frame buffer (after the virtio-net header); NULL if the ring is full. */
static uint8_t *tx_get(uint16_t *idp)
{
	if (tx_nfree == 0)
		tx_reclaim();
	if (tx_nfree == 0)
		return NULL;
	uint16_t id = tx_free[--tx_nfree];
	*idp = id;
	memset(tx_buf[id], 0, VNET_HDR_LEN);
	return tx_buf[id] + VNET_HDR_LEN;
}

static int tx_pending;

static void tx_send(uint16_t id, size_t framelen)
{
	if (framelen < 60) {   /* pad to the Ethernet minimum */
		memset(tx_buf[id] + VNET_HDR_LEN + framelen, 0, 60 - framelen);
		framelen = 60;
	}
	tx_desc[id].len = (uint32_t)(VNET_HDR_LEN + framelen);
	tx_desc[id].flags = 0;
	avail_push(&txq, id);
	tx_pending = 1;
}

/* ---- counters ---- */
#define NCOUNTERS 4096
#define NAMEMAX   63
struct counter {
	char name[NAMEMAX + 1];
	uint64_t value;
};
static struct counter counters[NCOUNTERS];
static uint32_t ncounters;

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h;
}

/* Find the counter; if create, insert it (value 0). NULL if absent / table full. */
static struct counter *counter_lookup(const char *name, size_t n, int create, int *full)
{
	uint32_t h = name_hash(name, n) % NCOUNTERS;
	for (uint32_t i = 0; i < NCOUNTERS; i++) {
		struct counter *c = &counters[(h + i) % NCOUNTERS];
		if (c->name[0] == 0) {
			if (!create)
				return NULL;
			if (ncounters >= NCOUNTERS) {
				*full = 1;
				return NULL;
			}
			memcpy(c->name, name, n);
			c->name[n] = 0;
			c->value = 0;
			ncounters++;
			return c;
		}
		if (strncmp(c->name, name, n) == 0 && c->name[n] == 0)
			return c;
	}
	if (create)
		*full = 1;
	return NULL;
}

static size_t fmt_u64(char *out, uint64_t v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* Handle one counter request; writes the reply into out and returns its length (0 = no reply). */
static size_t counter_request(const uint8_t *req, size_t len, char *out)
{
	const char *tok[4];
	size_t tl[4];
	int nt = 0;
	if (len == 0)
		return 0;
	if (len >= 1 && req[len - 1] == '\n') {
		len--;
		if (len >= 1 && req[len - 1] == '\r')
			len--;
	}
	size_t i = 0;
	while (i < len) {
		while (i < len && (req[i] == ' ' || req[i] == '\t'))
			i++;
		if (i >= len)
			break;
		size_t s = i;
		while (i < len && req[i] != ' ' && req[i] != '\t') {
			if (req[i] < 0x21 || req[i] > 0x7e)
				goto malformed;
			i++;
		}
		if (nt >= 4)
			goto malformed;
		tok[nt] = (const char *)req + s;
		tl[nt] = i - s;
		nt++;
	}
	if (nt != 3 || tl[1] > NAMEMAX || tl[2] > NAMEMAX)
		goto malformed;
	int incr;
	if (tl[0] == 4 && memcmp(tok[0], "INCR", 4) == 0)
		incr = 1;
	else if (tl[0] == 3 && memcmp(tok[0], "GET", 3) == 0)
		incr = 0;
	else
		goto malformed;
	int full = 0;
	struct counter *c = counter_lookup(tok[1], tl[1], incr, &full);
	if (full) {
		memcpy(out, "ERR full", 8);
		return 8;
	}
	uint64_t v = 0;
	if (c) {
		if (incr)
			c->value++;
		v = c->value;
	}
	memcpy(out, tok[2], tl[2]);
	size_t n = tl[2];
	out[n++] = ' ';
	n += fmt_u64(out + n, v);
	return n;
malformed:
	memcpy(out, "ERR malformed", 13);
	return 13;
}

/* ---- packet handling ---- */
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void handle_arp(const uint8_t *f, size_t len)
{
	if (len < 14 + 28)
		return;
	const uint8_t *a = f + 14;
	if (get16(a) != 1 || get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4 || get16(a + 6) != 1)
		return;
	if (memcmp(a + 24, myip, 4) != 0)
		return;
	uint16_t id;
	uint8_t *o = tx_get(&id);
	if (!o)
		return;
	memcpy(o, a + 8, 6);          /* dst = sender hw */
	memcpy(o + 6, mymac, 6);
	put16(o + 12, 0x0806);
	uint8_t *r = o + 14;
	put16(r, 1);
	put16(r + 2, 0x0800);
	r[4] = 6;
	r[5] = 4;
	put16(r + 6, 2);
	memcpy(r + 8, mymac, 6);
	memcpy(r + 14, myip, 4);
	memcpy(r + 18, a + 8, 6);     /* tha = sha */
	memcpy(r + 24, a + 14, 4);    /* tpa = spa */
	tx_send(id, 14 + 28);
}

/* Build Ethernet + IPv4 headers for a reply to frame f (ip header at f+14); returns pointer to the L4 payload. */
static uint8_t *ip_reply_start(uint8_t *o, const uint8_t *f, uint8_t proto)
{
	const uint8_t *ip = f + 14;
	memcpy(o, f + 6, 6);          /* back to the sender's MAC */
	memcpy(o + 6, mymac, 6);
	put16(o + 12, 0x0800);
	uint8_t *r = o + 14;
	r[0] = 0x45;
	r[1] = 0;
	put16(r + 4, ip_id++);
	put16(r + 6, 0x4000);         /* DF */
	r[8] = 64;
	r[9] = proto;
	memcpy(r + 12, myip, 4);
	memcpy(r + 16, ip + 12, 4);
	return r + 20;
}

static void ip_reply_finish(uint8_t *o, size_t l4len)
{
	uint8_t *r = o + 14;
	put16(r + 2, (uint16_t)(20 + l4len));
	put16(r + 10, 0);
	put16(r + 10, csum_fold(csum_add(0, r, 20)));
}

static void handle_icmp(const uint8_t *f, const uint8_t *l4, size_t l4len)
{
	if (l4len < 8 || l4[0] != 8 || l4[1] != 0)
		return;
	if (csum_fold(csum_add(0, l4, l4len)) != 0)
		return;
	if (20 + l4len > 1500)
		return;
	uint16_t id;
	uint8_t *o = tx_get(&id);
	if (!o)
		return;
	uint8_t *p = ip_reply_start(o, f, 1);
	memcpy(p, l4, l4len);
	p[0] = 0;
	p[1] = 0;
	put16(p + 2, 0);
	put16(p + 2, csum_fold(csum_add(0, p, l4len)));
	ip_reply_finish(o, l4len);
	tx_send(id, 14 + 20 + l4len);
}

static void udp_reply(const uint8_t *f, const uint8_t *udp, const uint8_t *data, size_t dlen)
{
	if (20 + 8 + dlen > 1500)
		return;
	uint16_t id;
	uint8_t *o = tx_get(&id);
	if (!o)
		return;
	uint8_t *u = ip_reply_start(o, f, 17);
	put16(u, get16(udp + 2));     /* src port = the port they sent to */
	put16(u + 2, get16(udp));
	put16(u + 4, (uint16_t)(8 + dlen));
	put16(u + 6, 0);
	memmove(u + 8, data, dlen);
	uint32_t s = pseudo_sum(myip, f + 14 + 12, 17, (uint16_t)(8 + dlen));
	uint16_t c = csum_fold(csum_add(s, u, 8 + dlen));
	put16(u + 6, c ? c : 0xffff);
	ip_reply_finish(o, 8 + dlen);
	tx_send(id, 14 + 20 + 8 + dlen);
}

static void handle_udp(const uint8_t *f, const uint8_t *l4, size_t l4len)
{
	if (l4len < 8)
		return;
	uint16_t ulen = get16(l4 + 4);
	if (ulen < 8 || ulen > l4len)
		return;
	const uint8_t *ip = f + 14;
	if (get16(l4 + 6) != 0) {
		uint32_t s = pseudo_sum(ip + 12, ip + 16, 17, ulen);
		if (csum_fold(csum_add(s, l4, ulen)) != 0)
			return;
	}
	uint16_t dport = get16(l4 + 2);
	const uint8_t *data = l4 + 8;
	size_t dlen = ulen - 8u;
	if (dport == 7) {
		udp_reply(f, l4, data, dlen);
	} else if (dport == 7000) {
		char out[NAMEMAX + 1 + 24];
		size_t n = counter_request(data, dlen, out);
		if (n)
			udp_reply(f, l4, (const uint8_t *)out, n);
	}
}

static void handle_ipv4(const uint8_t *f, size_t len)
{
	if (len < 14 + 20)
		return;
	const uint8_t *ip = f + 14;
	if ((ip[0] >> 4) != 4)
		return;
	size_t ihl = (size_t)(ip[0] & 15) * 4;
	size_t tot = get16(ip + 2);
	if (ihl < 20 || tot < ihl || 14 + tot > len)
		return;
	if (csum_fold(csum_add(0, ip, ihl)) != 0)
		return;
	if (get16(ip + 6) & 0x3fff)   /* MF or fragment offset: fragments are ignored */
		return;
	if (memcmp(ip + 16, myip, 4) != 0)
		return;
	const uint8_t *l4 = ip + ihl;
	size_t l4len = tot - ihl;
	switch (ip[9]) {
	case 1:
		handle_icmp(f, l4, l4len);
		break;
	case 17:
		handle_udp(f, l4, l4len);
		break;
	default:
		break;
	}
}

static void handle_frame(const uint8_t *f, size_t len)
{
	if (len < 14)
		return;
	int to_me = memcmp(f, mymac, 6) == 0;
	int to_bcast = memcmp(f, bcast, 6) == 0;
	uint16_t type = get16(f + 12);
	if (type == 0x0806 && (to_me || to_bcast))
		handle_arp(f, len);
	else if (type == 0x0800 && to_me)
		handle_ipv4(f, len);
}

static int rx_poll(void)
{
	int work = 0, reposted = 0;
	while (rxq.last_used != rxq.used_hdr[1]) {
		rmb();
		volatile struct virtq_used_elem *e = &rxq.used_ring[rxq.last_used % rxq.n];
		uint32_t id = e->id, len = e->len;
		rxq.last_used++;
		work = 1;
		if (id >= rxq.n)
			continue;
		if (len > VNET_HDR_LEN && len <= BUFSZ)
			handle_frame(rx_buf[id] + VNET_HDR_LEN, len - VNET_HDR_LEN);
		avail_push(&rxq, (uint16_t)id);
		reposted = 1;
	}
	if (reposted) {
		mb();
		vw(VIRTIO_MMIO_QUEUE_NOTIFY, RXQ);
	}
	if (tx_pending) {
		tx_pending = 0;
		mb();
		vw(VIRTIO_MMIO_QUEUE_NOTIFY, TXQ);
	}
	tx_reclaim();
	return work;
}

static void net_irq(uint32_t irq)
{
	if (irq != virq)
		return;
	uint32_t st = vr(VIRTIO_MMIO_INTERRUPT_STATUS);
	if (st)
		vw(VIRTIO_MMIO_INTERRUPT_ACK, st);
}

int main(uint64_t hartid, const void *fdt)
{
	(void)hartid;
	char ipbuf[64];
	const char *args = fdt_bootargs(fdt);
	if (!parse_ip(NETSVC_IP, myip))
		die("bad NETSVC_IP");
	if (bootarg_get(args, "ip", ipbuf, sizeof ipbuf)) {
		if (!parse_ip(ipbuf, myip))
			printf("netsvc: ignoring bad ip= bootarg\n");
	}

	virtio_net_init();

	ext_irq_hook = net_irq;
	plic_set_priority(virq, 1);
	plic_set_threshold(0, 0);
	plic_enable(virq, 0);
	csr_set(mie, MIP_MEIP);

	printf("netsvc: %u.%u.%u.%u mac %02x:%02x:%02x:%02x:%02x:%02x up\n",
	       myip[0], myip[1], myip[2], myip[3],
	       mymac[0], mymac[1], mymac[2], mymac[3], mymac[4], mymac[5]);

	for (;;) {
		while (rx_poll())
			;
		/* Sleep until an interrupt is pending; MIE is off so there is no
		 * lost-wakeup race: WFI wakes on a pending enabled interrupt and
		 * the trap is taken as soon as MIE is set again. */
		csr_clear(mstatus, MSTATUS_MIE);
		if (rxq.last_used == rxq.used_hdr[1])
			wfi();
		csr_set(mstatus, MSTATUS_MIE);
	}
}
