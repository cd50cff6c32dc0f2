/*
 * kbench: the module's Rust object (lp_rust.rlo: the runtime, wasmi with portable dispatch and
 * the compiled guest, built with the kernel's code model and mitigation flags) linked into a
 * userspace program, so that the kernel's per-packet cost is measured on the real CPU rather
 * than only under the VM's emulation. scripts/kbench.sh builds and runs it.
 *
 * What the module's C glue gives the Rust object (kmod-wasmi/kernel/lp_shim.c) is stood in for
 * here with libc: allocation, time, the packet's bytes. The mitigation thunks the object calls
 * (__x86_indirect_thunk_r11, __x86_return_thunk) are the plain instructions they replace, as
 * on a CPU that needs no retpolines: what is measured is the code the flags produce, not the
 * mitigations the running kernel would choose.
 *
 * usage: kbench PACKAGE.lpk PACKETS ENGINE MILLIS [FUNCTION]
 *   ENGINE 1 (wasmi) or 2 (compiled). PACKETS holds IPv4/IPv6 packets, network header first,
 *   each preceded by its length (u32, little-endian); every round runs each of them once, as
 *   `lpctl bench` runs a capture. Writes go to a scratch copy: every call sees the packet as
 *   it was, as in `lpctl bench`.
 * Prints one line: engine=N ns_per_packet=X fuel_per_packet=F packets=C errors=E
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lp_rt.h" /* the ABI, with include/linux/ standing in for the kernel's headers */

/* the module's skb, as far as this harness goes: the packet's bytes */
struct sk_buff {
	const u8 *data;
	u32 len;
};

/* ---- lp_shim.c's functions, in userspace ---- */

void *lp_alloc(size_t size, size_t align, bool zero)
{
	void *p;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, size ? size : 1))
		return NULL;
	if (zero)
		memset(p, 0, size);
	return p;
}

void lp_alloc_fallible_next(size_t size) { (void)size; }
void lp_free(void *ptr) { free(ptr); }

void lp_panic(const char *msg, size_t len)
{
	fprintf(stderr, "kbench: rust panic: %.*s\n", (int)len, msg);
	abort();
}

void lp_log(int level, const char *name, size_t name_len, const char *line, size_t line_len)
{
	fprintf(stderr, "kbench: %s script %.*s: %.*s\n", level ? "warn" : "info", (int)name_len,
		name, (int)line_len, line);
}

bool lp_load_pause(void) { return true; }

u64 lp_ktime_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (u64)t.tv_sec * 1000000000u + (u64)t.tv_nsec;
}

u64 lp_clock_ns(void) { return lp_ktime_ns(); }

/* as the module by default: the cost measured is the kernel's */
u32 lp_time_every_get(void) { return LP_TIME_EVERY_DEFAULT; }

/* lpctl's seed (CliHost::seed), fixed: the same string hashes as lpctl's run, so the same
 * table probes and the same fuel in every run */
u32 lp_random_u32(void) { return 0x9e3779b9u; }

int lp_skb_read(const struct lp_pkt *pkt, u32 off, void *dst, u32 len)
{
	if (off > pkt->len || len > pkt->len - off)
		return -14; /* EFAULT */
	memcpy(dst, pkt->skb->data + pkt->noff + off, len);
	return 0;
}

static u8 scratch[65536];

int lp_skb_write(const struct lp_pkt *pkt, u32 off, const void *src, u32 len)
{
	if (off > pkt->len || len > pkt->len - off || pkt->noff + off + len > sizeof(scratch))
		return -14; /* EFAULT */
	memcpy(scratch + pkt->noff + off, src, len);
	return 0;
}

int lp_skb_write_meta(const struct lp_pkt *pkt, const struct lp_meta_write *w)
{
	(void)pkt, (void)w;
	return 0;
}

/* the bench's packets cannot send: as a packet a script sent */
int lp_skb_send(const struct lp_pkt *pkt, int kind, u8 nfproto, const void *data, u32 len)
{
	(void)pkt, (void)kind, (void)nfproto, (void)data, (void)len;
	return -40; /* ELOOP */
}

bool lp_timer_arm(void *owner, u32 index, u32 cpu, u32 delay_ms)
{
	(void)owner, (void)index, (void)cpu, (void)delay_ms;
	return false;
}

bool lp_timer_cancel(void *owner, u32 index)
{
	(void)owner, (void)index;
	return false;
}

void lp_bh_disable(void) {}
void lp_bh_enable(void) {}

static void *w2c_target;
void **lp_w2c_target_slot(void) { return &w2c_target; }
void *lp_w2c_enter(void *frame)
{
	void *outer = w2c_target;

	w2c_target = frame;
	return outer;
}
void lp_w2c_leave(void *frame) { w2c_target = frame; }

/* the thunks the kernel's flags call instead of `jmp *%r11` and `ret` */
__asm__(".text\n"
	".globl __x86_indirect_thunk_r11\n"
	"__x86_indirect_thunk_r11:\n"
	"	jmp *%r11\n"
	".globl __x86_return_thunk\n"
	"__x86_return_thunk:\n"
	"	ret\n"
	"	int3\n");

/* ---- the benchmark ---- */

static u8 *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	u8 *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f) {
		perror(path);
		exit(2);
	}
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r);
	fclose(f);
	*len = n;
	return buf;
}

#define MAX_PACKETS 4096

int main(int argc, char **argv)
{
	static struct lp_pkt pkts[MAX_PACKETS];
	static struct sk_buff skbs[MAX_PACKETS];
	struct lp_limits limits;
	struct lp_script *s;
	struct lp_cache *cache;
	struct lp_outcome out;
	const char *func = argc > 5 ? argv[5] : "process_packet";
	char msg[256] = "";
	size_t pkg_len, file_len, at = 0;
	u8 *pkg, *file;
	u64 t0, t1, calls = 0, min_ns, fuel = 0, errors = 0;
	u32 entry, n = 0;
	int engine, err;

	if (argc < 5) {
		fprintf(stderr, "usage: kbench PACKAGE.lpk PACKETS ENGINE MILLIS [FUNCTION]\n");
		return 2;
	}
	pkg = slurp(argv[1], &pkg_len);
	file = slurp(argv[2], &file_len);
	engine = atoi(argv[3]);
	min_ns = (u64)atoi(argv[4]) * 1000000u;

	while (at + 4 <= file_len && n < MAX_PACKETS) {
		u32 len;

		memcpy(&len, file + at, 4);
		at += 4;
		if (len == 0 || len > file_len - at || len > sizeof(scratch)) {
			fprintf(stderr, "kbench: %s: bad packet length %u at %zu\n", argv[2], len, at - 4);
			return 2;
		}
		skbs[n].data = file + at;
		skbs[n].len = len;
		pkts[n].skb = &skbs[n];
		pkts[n].len = len;
		pkts[n].nfproto = (file[at] >> 4) == 6 ? 10 : 2; /* NFPROTO_IPV6 : NFPROTO_IPV4 */
		pkts[n].hook = 1;				   /* NF_INET_LOCAL_IN */
		strcpy(pkts[n].iifname, "v0");
		at += len;
		n++;
	}
	if (!n) {
		fprintf(stderr, "kbench: %s: no packets\n", argv[2]);
		return 2;
	}

	cache = lp_rt_cache_new(1);
	lp_rt_default_limits(&limits);
	err = lp_rt_load(cache, pkg, pkg_len, "kbench", 6, &limits, (u8)engine, true, 1, NULL,
			 false, ~0ULL, &s, msg, sizeof(msg));
	if (err) {
		fprintf(stderr, "kbench: load: %d: %s\n", err, msg);
		return 1;
	}
	if (lp_rt_engine(s) != engine) {
		fprintf(stderr, "kbench: loaded on engine %d, not %d\n", lp_rt_engine(s), engine);
		return 1;
	}
	err = lp_rt_bind_on_cpu(s, 0, func, strlen(func), NULL, 0, &entry, msg, sizeof(msg));
	if (err) {
		fprintf(stderr, "kbench: bind %s: %d: %s\n", func, err, msg);
		return 1;
	}

	/* one pass for the fuel (and the warm-up), then whole passes until the time is up */
	for (u32 i = 0; i < n; i++) {
		lp_rt_run_on_cpu(s, 0, entry, &pkts[i], &out);
		fuel += out.fuel;
		errors += out.error != 0;
	}
	t0 = lp_ktime_ns();
	do {
		for (int r = 0; r < 10; r++)
			for (u32 i = 0; i < n; i++)
				lp_rt_run_on_cpu(s, 0, entry, &pkts[i], &out);
		calls += 10 * (u64)n;
		t1 = lp_ktime_ns();
	} while (t1 - t0 < min_ns);
	printf("engine=%d ns_per_packet=%.1f fuel_per_packet=%.0f packets=%llu errors=%llu\n", engine,
	       (double)(t1 - t0) / (double)calls, (double)fuel / n, (unsigned long long)calls,
	       (unsigned long long)errors);
	return 0;
}
