// SPDX-License-Identifier: GPL-2.0-only
/*
 * What the Rust runtime asks of the kernel (lp_rt.h, "implemented in C"): memory, a panic
 * that stops, a rate-limited log, a clock, randomness, packet bytes and metadata (read and
 * write) and bottom-half control.
 *
 * Allocation context rule: Rust cannot say which context it allocates in, so lp_alloc()
 * asks the preempt count. The packet path runs with bottom halves disabled (softirq, or
 * local_bh_disable() around process-context hooks), and so does any code holding one of
 * Rust's spin locks: preempt_count() != 0, GFP_ATOMIC, kmalloc only. Load, bind
 * preparation, rebuild and free run in process context from genetlink, nf_tables and
 * workqueue handlers with no spinlock held and outside rcu_read_lock(): GFP_KERNEL_ACCOUNT
 * (charged to the loader's memory cgroup), vmalloc for large blocks. Callers of
 * process-context lp_rt_* functions must keep it that way: under PREEMPT_RCU an RCU read-side
 * section does not show in the preempt count.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bottom_half.h>
#include <linux/bug.h>
#include <linux/kernel.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/overflow.h>
#include <linux/preempt.h>
#include <linux/random.h>
#include <linux/ratelimit.h>
#include <linux/sched.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/semaphore.h>
#include <linux/skbuff.h>
#include <linux/if_ether.h>
#include <linux/indirect_call_wrapper.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/vmalloc.h>
#include <asm/irq_stack.h>
#include <net/ip.h>
#include <net/ip6_route.h>
#include <net/route.h>
#include <linux/netfilter.h>
#include <net/netfilter/nf_conntrack.h>
#include <net/netfilter/nf_conntrack_ecache.h>

#include "luapkt_abi.h"
#include "lp_rt.h"
#include "lp_shim.h"

static bool lp_may_sleep(void)
{
	/* without CONFIG_PREEMPT_COUNT preemptible() is 0: always atomic, never wrong */
	return preemptible();
}

/*
 * The reserve. wasmi allocates in a few places the packet path reaches (the box of a Lua
 * error unwinding, the call-frame vector when a call nests deeper than ever before on this CPU,
 * the execution stack of a nested re-entry). Our wasmi (third_party/wasmi) turns a failure
 * there into a trap, a memory error that poisons the instance until its rebuild: correct, but
 * the script's packets get the on-error verdict meanwhile. So when the allocator fails, blocks
 * set aside at module load serve such requests first: per CPU, 32 of 256 bytes, 4 of 4 KiB and
 * one of 64 KiB (a frame vector for 2,048 frames; MAX_RECURSION is 2,048). Blocks are taken
 * and given back with atomic bit operations, so any CPU may free one; a request first tries its
 * own CPU's blocks, then the others'. reserve_hits counts the requests served, reserve_misses
 * those that found no block (the caller then sees the failure).
 */
struct lp_reserve_class {
	unsigned int	size;
	unsigned int	count;
	unsigned int	offset;		/* within a CPU's share */
};

static const struct lp_reserve_class lp_reserve_classes[] = {
	{ .size = 256,		.count = 32,	.offset = 0 },
	{ .size = 4096,		.count = 4,	.offset = 32 * 256 },
	{ .size = 65536,	.count = 1,	.offset = 32 * 256 + 4 * 4096 },
};
#define LP_RESERVE_CLASSES	ARRAY_SIZE(lp_reserve_classes)
#define LP_RESERVE_PER_CPU	(32 * 256 + 4 * 4096 + 65536)

static u8 *lp_reserve_base;		/* nr_cpu_ids shares, vmalloc'd (page aligned) */
static unsigned long *lp_reserve_used;	/* one word per (CPU, class): bit i = block i taken */
static atomic_long_t lp_reserve_hits, lp_reserve_misses;

static int lp_reserve_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(kp->arg));
}

static const struct kernel_param_ops lp_reserve_ops = { .get = lp_reserve_get };
module_param_cb(reserve_hits, &lp_reserve_ops, &lp_reserve_hits, 0444);
MODULE_PARM_DESC(reserve_hits, "allocations the reserve served when the allocator failed");
module_param_cb(reserve_misses, &lp_reserve_ops, &lp_reserve_misses, 0444);
MODULE_PARM_DESC(reserve_misses, "allocations neither the allocator nor the reserve could serve");
/* counted by the too-small-to-fail mode below (lp_nofail_check_atomic) */
static atomic_long_t lp_load_atomic_allocs;
module_param_cb(load_atomic_allocs, &lp_reserve_ops, &lp_load_atomic_allocs, 0444);
MODULE_PARM_DESC(load_atomic_allocs, "allocations loads made with bottom halves disabled (expected 0)");

/*
 * reserve=N leaves failed allocations failed: fault-injection tests use it to reach the
 * failure paths the reserve otherwise hides (tests/vm/debug/80-failslab.sh).
 */
static bool lp_reserve_on = true;
module_param_named(reserve, lp_reserve_on, bool, 0644);
MODULE_PARM_DESC(reserve, "serve allocations the allocator fails from the per-CPU reserve (default Y)");

int lp_reserve_init(void)
{
	lp_reserve_base = vzalloc(array_size(nr_cpu_ids, LP_RESERVE_PER_CPU));
	lp_reserve_used = kcalloc(array_size(nr_cpu_ids, LP_RESERVE_CLASSES),
				  sizeof(*lp_reserve_used), GFP_KERNEL);
	if (!lp_reserve_base || !lp_reserve_used) {
		lp_reserve_free();
		return -ENOMEM;
	}
	return 0;
}

void lp_reserve_free(void)
{
	vfree(lp_reserve_base);
	kfree(lp_reserve_used);
	lp_reserve_base = NULL;
	lp_reserve_used = NULL;
}

static void *lp_reserve_take(size_t size, bool zero)
{
	unsigned int first = raw_smp_processor_id(), n, c, i;
	const struct lp_reserve_class *k;
	unsigned long *used;
	u8 *p;

	for (c = 0; c < LP_RESERVE_CLASSES; c++) {
		k = &lp_reserve_classes[c];
		if (size > k->size)
			continue;
		for (n = 0; n < nr_cpu_ids; n++) {
			unsigned int cpu = (first + n) % nr_cpu_ids;

			used = &lp_reserve_used[cpu * LP_RESERVE_CLASSES + c];
			for (i = 0; i < k->count; i++) {
				if (test_and_set_bit(i, used))
					continue;
				p = lp_reserve_base + (size_t)cpu * LP_RESERVE_PER_CPU +
				    k->offset + (size_t)i * k->size;
				if (zero)
					memset(p, 0, size);
				atomic_long_inc(&lp_reserve_hits);
				return p;
			}
		}
	}
	atomic_long_inc(&lp_reserve_misses);
	return NULL;
}

/* True when @ptr was a reserve block (now given back). */
static bool lp_reserve_give(void *ptr)
{
	size_t off, in_cpu;
	unsigned int cpu, c;

	if (!lp_reserve_base || (u8 *)ptr < lp_reserve_base ||
	    (u8 *)ptr >= lp_reserve_base + (size_t)nr_cpu_ids * LP_RESERVE_PER_CPU)
		return false;
	off = (u8 *)ptr - lp_reserve_base;
	cpu = off / LP_RESERVE_PER_CPU;
	in_cpu = off % LP_RESERVE_PER_CPU;
	for (c = LP_RESERVE_CLASSES; c-- > 0;) {
		const struct lp_reserve_class *k = &lp_reserve_classes[c];

		if (in_cpu >= k->offset) {
			clear_bit((in_cpu - k->offset) / k->size,
				  &lp_reserve_used[cpu * LP_RESERVE_CLASSES + c]);
			return true;
		}
	}
	return true;
}

/*
 * Too small to fail. wasmi compiles and instantiates with infallible allocations (Vec::push,
 * Box::new): a NULL there is a Rust abort, a BUG(). A load's compile and instantiate are
 * bounded by the module caps (precheck.rs), so inside lp_call_on_big_stack() (every
 * process-context load, build and bind) the module's sleeping allocations are made with
 * __GFP_NOFAIL: the page allocator retries until it succeeds, a memory cgroup at its limit
 * charges past it (with __GFP_RETRY_MAYFAIL: no OOM kill) and fault injection skips them.
 * Linear memory, the large part of a script and the part its memory limit sizes, is the
 * exception: wasmi allocates it fallibly (a failure is ENOMEM, "cannot reserve N bytes"), so
 * before it does, the runtime announces its size (lp_alloc_fallible_next()) and the next
 * allocation at least that large keeps __GFP_RETRY_MAYFAIL alone. The mode is per task: a
 * table of the tasks inside, bounded by a semaphore (loads are serialized; rebuilds run in
 * workqueues, a few at a time).
 */
#define LP_NOFAIL_TASKS	8

struct lp_nofail_slot {
	struct task_struct	*task;		/* NULL: free; only the owner reads the rest */
	size_t			fallible_from;	/* 0, or the size of an announced fallible request */
	bool			atomic_ok;	/* between lp_nofail_atomic(true) and (false): a script runs */
};

/*
 * A loading task holding a lock that disables bottom halves (kmod-wasmi/ffi/spin) allocates
 * atomically: such an allocation may fail where __GFP_NOFAIL was meant, and in wasmi's
 * compiler a failure is a BUG(). Our wasmi (third_party/wasmi/LUAPKT.md) allocates outside
 * those locks; load_atomic_allocs counts the allocations that still happen there (the VM tests
 * expect 0). A bind runs a script in its instance with bottom halves disabled, where
 * allocations are atomic and fallible like a packet's: lp_nofail_atomic() marks it.
 */
static atomic_t lp_nofail_inside = ATOMIC_INIT(0);

static struct lp_nofail_slot lp_nofail_slots[LP_NOFAIL_TASKS];
static struct semaphore lp_nofail_sem = __SEMAPHORE_INITIALIZER(lp_nofail_sem, LP_NOFAIL_TASKS);

static struct lp_nofail_slot *lp_nofail_mine(void)
{
	unsigned int i;

	for (i = 0; i < LP_NOFAIL_TASKS; i++)
		if (READ_ONCE(lp_nofail_slots[i].task) == current)
			return &lp_nofail_slots[i];
	return NULL;
}

/* NULL when the task is already inside (the outer call leaves) */
static struct lp_nofail_slot *lp_nofail_enter(void)
{
	unsigned int i;

	if (lp_nofail_mine())
		return NULL;
	down(&lp_nofail_sem);
	for (i = 0; i < LP_NOFAIL_TASKS; i++) {
		struct lp_nofail_slot *s = &lp_nofail_slots[i];

		if (!cmpxchg(&s->task, NULL, current)) {
			s->fallible_from = 0;
			s->atomic_ok = false;
			atomic_inc(&lp_nofail_inside);
			return s;
		}
	}
	/* the semaphore counts free slots: a holder always finds one */
	WARN_ON_ONCE(1);
	up(&lp_nofail_sem);
	return NULL;
}

static void lp_nofail_leave(struct lp_nofail_slot *s)
{
	if (!s)
		return;
	s->fallible_from = 0;
	atomic_dec(&lp_nofail_inside);
	smp_store_release(&s->task, NULL);
	up(&lp_nofail_sem);
}

void lp_nofail_atomic(bool on)
{
	struct lp_nofail_slot *s = lp_nofail_mine();

	if (s)
		s->atomic_ok = on;
}

/* an atomic allocation: is it a loading task's (not a softirq that interrupted one)? */
static void lp_nofail_check_atomic(void)
{
	struct lp_nofail_slot *s;

	if (likely(!atomic_read(&lp_nofail_inside)) || !in_task())
		return;
	s = lp_nofail_mine();
	if (s && !s->atomic_ok)
		atomic_long_inc(&lp_load_atomic_allocs);
}

void lp_alloc_fallible_next(size_t size)
{
	struct lp_nofail_slot *s;

	if (!lp_may_sleep())
		return;
	s = lp_nofail_mine();
	if (s)
		s->fallible_from = size;
}

void *lp_alloc(size_t size, size_t align, bool zero)
{
	struct lp_nofail_slot *nf;
	gfp_t gfp = zero ? __GFP_ZERO : 0;
	void *p;

	if (unlikely(align > PAGE_SIZE || size > INT_MAX))
		return NULL;
	/*
	 * kmalloc aligns to ARCH_KMALLOC_MINALIGN, and power-of-two sizes to their size;
	 * vmalloc to a page. Reserve blocks are aligned to their (power-of-two) size.
	 */
	if (align > ARCH_KMALLOC_MINALIGN)
		size = roundup_pow_of_two(max(size, align));

	/*
	 * __GFP_RETRY_MAYFAIL: a script too large for the loader's memory cgroup (or for the
	 * machine) fails its load with ENOMEM instead of calling in the OOM killer.
	 */
	if (lp_may_sleep()) {
		gfp |= GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN;
		nf = lp_nofail_mine();
		if (nf && nf->fallible_from && size >= nf->fallible_from)
			nf->fallible_from = 0;
		else if (nf)
			gfp |= __GFP_NOFAIL;
		p = kvmalloc(size, gfp);
	} else {
		lp_nofail_check_atomic();
		p = kmalloc(size, GFP_ATOMIC | __GFP_NOWARN | gfp);
	}
	if (unlikely(!p) && READ_ONCE(lp_reserve_on))
		p = lp_reserve_take(size, zero);
	return p;
}

void lp_free(void *ptr)
{
	if (unlikely(lp_reserve_give(ptr)))
		return;
	kvfree(ptr);
}

void __noreturn lp_panic(const char *msg, size_t len)
{
	pr_emerg("rust panic: %.*s\n", (int)min_t(size_t, len, 256), msg);
	BUG();
}

static DEFINE_RATELIMIT_STATE(lp_log_rs, 5 * HZ, 20);

/*
 * A script's line is one kernel log line whatever it holds: %pE escapes every byte that is not
 * printable (newlines that would forge further lines, escape sequences, a level prefix).
 */
#define LP_LOG_LINE_MAX	512

void lp_log(int level, const char *name, size_t name_len, const char *line,
	    size_t line_len)
{
	int nl = min_t(size_t, name_len, LUAPKT_NAME_MAX);
	int ll = min_t(size_t, line_len, LP_LOG_LINE_MAX);

	if (!__ratelimit(&lp_log_rs))
		return;
	if (level)
		pr_warn("script %.*s: %*pE\n", nl, name, ll, line);
	else
		pr_info("script %.*s: %*pE\n", nl, name, ll, line);
}

/* set when the module is going: loads in progress stop at their next slice */
static bool lp_loads_stopped;

void lp_loads_stop(void)
{
	WRITE_ONCE(lp_loads_stopped, true);
}

bool lp_loads_stopping(void)
{
	return READ_ONCE(lp_loads_stopped);
}

bool lp_load_pause(void)
{
	if (!lp_may_sleep())
		return true;
	cond_resched();
	return !fatal_signal_pending(current) && !lp_loads_stopping();
}

u64 lp_ktime_ns(void)
{
	return ktime_get_ns();
}

/*
 * Timing a packet's call (two reads per packet, both on this CPU with bottom halves off):
 * the scheduler clock reads the TSC directly, where ktime_get_ns() goes through the clocksource's
 * read function, an indirect call (a retpoline) under a seqcount.
 */
u64 lp_clock_ns(void)
{
	return local_clock();
}

/* Two clock reads per call cost up to a fifth of a trivial call: time one call in N. */
static unsigned int lp_time_every = LP_TIME_EVERY_DEFAULT;
module_param_named(time_every, lp_time_every, uint, 0644);
MODULE_PARM_DESC(time_every,
		 "time one call in N on each CPU, counted N times in run_time_ns (1: every call; default "
		 __stringify(LP_TIME_EVERY_DEFAULT) ")");

u32 lp_time_every_get(void)
{
	return READ_ONCE(lp_time_every);
}

u32 lp_random_u32(void)
{
	return get_random_u32();
}

/*
 * A call's window is most often a short packet's headers in the skb's head. memcpy() is
 * rep movsb here, one emulated iteration per byte under qemu's TCG (which the VM suite's
 * packet rates are measured on) and a slow start on real CPUs for short lengths; words
 * cost an eighth of that. The barriers keep the compiler from turning the loop back into
 * a memcpy() call.
 */
#define LP_SMALL_COPY 512

static void lp_copy_words(void *dst, const void *src, u32 len)
{
	u8 *d = dst;
	const u8 *s = src;
	u32 i;

	if (len >= 8) {
		for (i = 0; i + 8 <= len; i += 8) {
			__builtin_memcpy(d + i, s + i, 8); /* one load and one store */
			barrier();
		}
		/* the tail as the last 8 bytes, overlapping what was copied (dst is not src) */
		if (i < len)
			__builtin_memcpy(d + len - 8, s + len - 8, 8);
		return;
	}
	for (i = 0; i < len; i++) {
		d[i] = s[i];
		barrier();
	}
}

int lp_skb_read(const struct lp_pkt *pkt, u32 off, void *dst, u32 len)
{
	/* a timer's call has no packet (no skb, len 0) */
	const struct sk_buff *skb = pkt->skb;
	int start = pkt->noff + (int)off;

	if (unlikely(!skb || off > pkt->len || len > pkt->len - off))
		return -EFAULT;
	if (start >= 0 && len <= LP_SMALL_COPY && start + len <= skb_headlen(skb)) {
		lp_copy_words(dst, skb->data + start, len);
		return 0;
	}
	return skb_copy_bits(skb, start, dst, len);
}

/*
 * Packet writes, as nft_payload_set_eval() does them: skb_ensure_writable() unclones the head
 * (pskb_expand_head) and pulls paged data up to the end of the write into it (GFP_ATOMIC;
 * both copy at most the packet, no loop of ours), then skb_store_bits(). Offsets, not
 * pointers, are kept across it: the head may move. A mac header before skb->data (netdev and
 * bridge ingress) is in the head's headroom, which an uncloned head owns and
 * pskb_expand_head() copies: an offset below zero needs no pull, only the uncloning.
 */
static int lp_skb_store(struct sk_buff *skb, int off, const void *src, u32 len)
{
	if (skb_ensure_writable(skb, max_t(int, off + (int)len, 0)))
		return -ENOMEM;
	if (skb_store_bits(skb, off, src, len))
		return -EFAULT;
	/*
	 * The sum the device gave (from skb->data on) no longer covers the bytes: drop it, and
	 * the "already verified" bit with it, so the stack verifies in software. (Checksums the
	 * setters keep stay valid; raw writes are the script's to fix.)
	 */
	if (skb->ip_summed == CHECKSUM_COMPLETE && off + (int)len > 0) {
		skb->ip_summed = CHECKSUM_NONE;
		skb->csum_valid = 0;
	}
	return 0;
}

int lp_skb_write(const struct lp_pkt *pkt, u32 off, const void *src, u32 len)
{
	if (unlikely(!pkt->skb || off > pkt->len || len > pkt->len - off))
		return -EFAULT;
	if (unlikely(!len))
		return 0;
	return lp_skb_store(pkt->skb, pkt->noff + (int)off, src, len);
}

static int lp_skb_set_ct_mark(struct sk_buff *skb, u32 mark)
{
#if IS_ENABLED(CONFIG_NF_CONNTRACK) && IS_ENABLED(CONFIG_NF_CONNTRACK_MARK)
	enum ip_conntrack_info ctinfo;
	struct nf_conn *ct = nf_ct_get(skb, &ctinfo);

	/* as nft_ct_set_eval(): untracked packets have no entry, templates are not entries */
	if (!ct || nf_ct_is_template(ct))
		return -ENOENT;
	if (READ_ONCE(ct->mark) != mark) {
		WRITE_ONCE(ct->mark, mark);
		nf_conntrack_event_cache(IPCT_MARK, ct);
	}
	return 0;
#else
	return -ENOENT;
#endif
}

static int lp_skb_set_eth(const struct lp_pkt *pkt, const u8 *eth)
{
	struct sk_buff *skb = pkt->skb;

	/* the header nft_lua_pkt() found is still there: nothing between moved it */
	if (!pkt->has_eth || !skb_mac_header_was_set(skb) ||
	    skb_mac_header_len(skb) != ETH_HLEN)
		return -ENOENT;
	return lp_skb_store(skb, skb_mac_offset(skb), eth, ETH_HLEN);
}

/*
 * A packet a script sent: an skb of its own (GFP_ATOMIC, at most the send caps' bytes per
 * call), routed now so that "no route" reaches the script, queued for the caller to transmit
 * once the call has returned (nft_lua_transmit). Any source address is allowed, as nf_reject
 * answers for another host: FLOWI_FLAG_ANYSRC. IPv4's total length and header checksum are
 * set again by ip_local_out().
 */
int lp_skb_send(const struct lp_pkt *pkt, int kind, u8 nfproto, const void *data, u32 len)
{
	struct sk_buff_head *q = pkt->sendq;
	struct net *net = pkt->net;
	struct sk_buff *skb;
	int err;

	if (!q || !net || !pkt->may_send)
		return -ELOOP;
	skb = alloc_skb(LL_MAX_HEADER + len, GFP_ATOMIC | __GFP_NOWARN);
	if (!skb)
		return -ENOMEM;
	skb_reserve(skb, LL_MAX_HEADER);
	skb_reset_network_header(skb);
	skb_put_data(skb, data, len);
	if (nfproto == NFPROTO_IPV4) {
		const struct iphdr *iph = ip_hdr(skb);
		struct flowi4 fl4 = {
			.daddr = iph->daddr,
			.saddr = iph->saddr,
			.flowi4_proto = iph->protocol,
			.flowi4_flags = FLOWI_FLAG_ANYSRC,
		};
		struct rtable *rt;

		skb->protocol = htons(ETH_P_IP);
		rt = ip_route_output_key(net, &fl4);
		if (IS_ERR(rt)) {
			err = PTR_ERR(rt);
			goto free;
		}
		skb_dst_set(skb, &rt->dst);
	} else {
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);
		struct flowi6 fl6 = {
			.daddr = ip6h->daddr,
			.saddr = ip6h->saddr,
			.flowi6_proto = ip6h->nexthdr,
			.flowi6_flags = FLOWI_FLAG_ANYSRC,
		};
		struct dst_entry *dst;

		skb->protocol = htons(ETH_P_IPV6);
		dst = ip6_route_output(net, NULL, &fl6);
		if (dst->error) {
			err = dst->error;
			dst_release(dst);
			goto free;
		}
		skb_dst_set(skb, dst);
	}
	/* a reply belongs to the packet's connection (RELATED), as nf_reject's answers do */
	if (kind == LP_SEND_KIND_REPLY && pkt->skb)
		nf_ct_attach(skb, pkt->skb);
	__skb_queue_tail(q, skb);
	return 0;

free:
	kfree_skb(skb);
	return err ? err : -EHOSTUNREACH;
}

int lp_skb_write_meta(const struct lp_pkt *pkt, const struct lp_meta_write *w)
{
	int err = 0, e;

	if (unlikely(!pkt->skb))
		return -ENOENT;
	if (w->flags & LP_META_MARK)
		pkt->skb->mark = w->mark;
	if (w->flags & LP_META_CT_MARK) {
		e = lp_skb_set_ct_mark(pkt->skb, w->ct_mark);
		err = err ?: e;
	}
	if (w->flags & LP_META_ETH) {
		e = lp_skb_set_eth(pkt, w->eth);
		err = err ?: e;
	}
	return err;
}

/*
 * Compiling a guest and building an instance need more stack than a task has: wasmi's module
 * parser and function compiler alone have 6-7 KiB frames (the chain from lp_rt_load reaches
 * ~24 KiB). Process-context calls into those paths switch to a vmalloc'd stack of their own,
 * the way the kernel runs softirqs on the irq stack (call_on_stack(), which objtool and the
 * ORC unwinder know). Sleeping there is fine: a context switch saves and restores %rsp
 * whatever stack it points into, and vmalloc's guard page turns an overflow into a fault.
 *
 * The unwinder does not know this stack: a walk from it (kmemleak, KASAN and lockdep save one
 * per allocation; a WARN) finds no known stack after the task's and checks this CPU's
 * exception and entry stacks, with this_cpu accessors that DEBUG_PREEMPT reports in
 * preemptible code. Migration stays disabled while on this stack, which makes those accesses
 * valid (the task may still sleep and be preempted); the walk then ends empty.
 */
#define LP_CALL_STACK_SIZE	(96 * 1024)

struct lp_stack_call {
	int	(*fn)(void *arg);
	void	*arg;
	int	ret;
};

static void lp_stack_call_fn(struct lp_stack_call *c)
{
	c->ret = c->fn(c->arg);
}

int lp_call_on_big_stack(int (*fn)(void *arg), void *arg)
{
	struct lp_stack_call c = { .fn = fn, .arg = arg };
	struct lp_nofail_slot *nf;
	void *stack;

	might_sleep();
	/* a failure is an error the caller reports (a load's ENOMEM, a counted rebuild failure) */
	stack = __vmalloc(LP_CALL_STACK_SIZE, GFP_KERNEL | __GFP_NOWARN);
	if (!stack)
		return -ENOMEM;
	nf = lp_nofail_enter();
	/* the previous %rsp goes in the top slot; 16 bytes keep calls ABI-aligned */
	migrate_disable();
	call_on_stack(stack + LP_CALL_STACK_SIZE - 16, lp_stack_call_fn,
		      ASM_CALL_ARG1, , [arg1] "r" (&c));
	migrate_enable();
	lp_nofail_leave(nf);
	vfree(stack);
	return c.ret;
}

/*
 * Packets run their script on a per-CPU stack as well: every nested protected call
 * (pcall, coroutines) re-enters the guest through the host and costs native stack, ~1.55 KiB
 * a level on wasmi and ~1.9 KiB on the compiled engine (whose Lua C functions are native
 * frames), measured by 20-nft-lua's stack probe on 6.1: a script allowed MAX_PCALL_DEPTH (32)
 * levels needs ~50 KiB (wasmi) or ~62 KiB (compiled), far more than the task or irq stack it
 * arrives on. The compiled engine stops a call 72 KiB below its entry (lp_w2c_host.c). 96 KiB
 * leaves over 20 KiB for hard interrupts, which run on the current stack when the irq stack
 * is already in use (softirq on the irq stack). The caller has bottom halves disabled, which
 * pins it to the CPU and keeps other users of the CPU's stack (softirqs) out.
 */
#define LP_CPU_STACK_SIZE	(96 * 1024)
#define LP_STACK_PATTERN	0x6c75617061636b74ULL	/* "luapackt" */

static DEFINE_PER_CPU(void *, lp_cpu_stack);

int lp_cpu_stacks_init(void)
{
	unsigned int cpu;
	void *stack;

	for_each_possible_cpu(cpu) {
		stack = vmalloc_node(LP_CPU_STACK_SIZE, cpu_to_node(cpu));
		if (!stack) {
			lp_cpu_stacks_free();
			return -ENOMEM;
		}
		per_cpu(lp_cpu_stack, cpu) = stack;
	}
	return 0;
}

void lp_cpu_stacks_free(void)
{
	unsigned int cpu;

	for_each_possible_cpu(cpu) {
		vfree(per_cpu(lp_cpu_stack, cpu));
		per_cpu(lp_cpu_stack, cpu) = NULL;
	}
}

struct lp_void_call {
	void	(*fn)(void *arg);
	void	*arg;
};

static void lp_void_call_fn(struct lp_void_call *c)
{
	INDIRECT_CALL_1(c->fn, nft_lua_call_fn, c->arg);
}

unsigned int lp_call_on_cpu_stack(void (*fn)(void *arg), void *arg, bool probe)
{
	struct lp_void_call c = { .fn = fn, .arg = arg };
	void *stack = this_cpu_read(lp_cpu_stack);
	void *top = stack + LP_CPU_STACK_SIZE - 16;
	u64 *w;

	if (WARN_ON_ONCE(!in_softirq()))
		return 0;
	if (unlikely(probe))
		for (w = stack; (void *)w < top; w++)
			*w = LP_STACK_PATTERN;

	call_on_stack(top, lp_void_call_fn, ASM_CALL_ARG1, , [arg1] "r" (&c));

	if (likely(!probe))
		return 0;
	for (w = stack; (void *)w < top; w++)
		if (*w != LP_STACK_PATTERN)
			break;
	return top - (void *)w;
}

void lp_bh_disable(void)
{
	local_bh_disable();
}

void lp_bh_enable(void)
{
	local_bh_enable();
}

/*
 * The compiled guest (guest-lua/w2c) unwinds a trap to the innermost host frame that armed
 * one: kept per CPU, since the kernel has no thread-local storage. Guest code runs with
 * preemption disabled (lp_w2c_host.c), so the task that armed the frame is the one running;
 * a softirq interrupting it restores the slot before returning. The only point where a call
 * reschedules, between a load's slices, puts the task's own frame back afterwards.
 */
static DEFINE_PER_CPU(void *, lp_w2c_target);

void **lp_w2c_target_slot(void)
{
	return this_cpu_ptr(&lp_w2c_target);
}

/* One call each way per guest call (the packet path's, every packet). */
void *lp_w2c_enter(void *frame)
{
	void *outer;

	preempt_disable();
	outer = this_cpu_read(lp_w2c_target);
	this_cpu_write(lp_w2c_target, frame);
	return outer;
}

void lp_w2c_leave(void *frame)
{
	this_cpu_write(lp_w2c_target, frame);
	preempt_enable();
}
