/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The contract between nft_lua.ko's C glue and its Rust runtime (kmod-wasmi/ffi/src/lib.rs,
 * the only Rust file that crosses the boundary). Each side keeps to this file.
 *
 * Contexts
 *   process	may sleep; no spinlock held, not under rcu_read_lock(). Allocations made by
 *		Rust get GFP_KERNEL (large ones vmalloc).
 *   slot	CPU `cpu` with bottom halves disabled (softirq, or local_bh_disable() in process
 *		context), never re-entered for the same slot. Allocations get GFP_ATOMIC.
 *   any	any context but hard-irq/NMI; no allocation.
 *
 * Rust's own spin locks (inside wasmi's engine, the entry table of a script) disable bottom
 * halves while held (kmod-wasmi/ffi/spin), so process-context and softirq users of one
 * compiled guest cannot deadlock on a CPU. A Rust panic is a kernel BUG (lp_panic).
 *
 * Pointers
 *   Byte buffers passed in are only read during the call; nothing keeps them.
 *   `msg`/`msg_len`: NULL, or a buffer that receives a NUL-terminated, truncated message
 *   when the call fails.
 *   Objects (lp_cache, lp_script, lp_spare) are owned by the C caller from the call that
 *   returns them until the matching *_free.
 */
#ifndef _LP_RT_H
#define _LP_RT_H

#include <linux/types.h>
#include <linux/build_bug.h>
#include <linux/stddef.h>

struct sk_buff;

/* compiled guests, shared by every script of every netns (one per module) */
struct lp_cache;
/* one loaded version of a script: one instance per possible CPU, stats, limits */
struct lp_script;
/* an instance outside its slot: freshly built, or taken out and awaiting a grace period */
struct lp_spare;

/* limits of a script and its on-error policy (LUAPKT_ON_ERROR_*) */
struct lp_limits {
	u64	fuel;
	u64	memory;
	u32	instructions;
	u32	recursion;
	u32	pcall_depth;
	u8	on_error;
	u8	__pad[3];
	u64	load_fuel;	/* building one instance: Lua setup + top-level chunk */
};

/* counters, summed over the instances */
struct lp_stats {
	u64	run_cnt;
	u64	run_time_ns;
	u64	verdicts[5];	/* accept, drop, continue, break, queue */
	u64	errors[7];	/* lua, memory, fuel, instructions, stack, return, trap */
	u64	fuel_total;
	u64	fuel_max;
	u64	rebuilds;
	u64	mem_bytes;	/* linear memory of all instances */
	u64	run_time_max_ns;	/* the longest timed call (time_every) */
};

/*
 * The packet of one call; the skb and the names are only used during that call. The skb is
 * written through lp_skb_write() and lp_skb_write_meta() (slot context), never kept.
 */
struct lp_pkt {
	struct sk_buff	*skb;
	s32	noff;		/* network header offset from skb->data */
	u32	len;		/* bytes from the network header on */
	u32	mark;
	u8	nfproto;
	u8	hook;
	u8	csum_partial;	/* skb->ip_summed == CHECKSUM_PARTIAL */
	u8	has_ct;		/* a conntrack entry (or untracked: state only): ct_* valid */
	char	iifname[16];
	char	oifname[16];
	u32	ct_mark;
	u32	ct_id;		/* nf_ct_get_id() */
	u8	ct_state;	/* nft's `ct state`: NF_CT_STATE_BIT(), untracked 64, else 1 */
	u8	has_eth;	/* eth holds the Ethernet header (bridge, netdev, inet ingress) */
	u8	eth[14];	/* destination, source, type */
};

/* metadata a call changed (LP_META_* in flags say which) */
#define LP_META_MARK	1
#define LP_META_CT_MARK	2
#define LP_META_ETH	4
struct lp_meta_write {
	u32	mark;
	u32	ct_mark;
	u8	flags;
	u8	eth[14];
	u8	__pad;
};

/* the result of one call, after the on-error policy */
struct lp_outcome {
	s32	verdict;	/* LUAPKT_VERDICT_*, or LUAPKT_VERDICT_QUEUE_BASE + n */
	u8	error;		/* 0, or 1 + error kind (lua, memory, fuel, ...) */
	u8	poisoned;	/* this call poisoned its instance: schedule a rebuild */
	u8	__pad[2];
	u64	fuel;
};

static_assert(sizeof(struct lp_limits) == 40);
static_assert(sizeof(struct lp_stats) == 152);
static_assert(sizeof(struct lp_pkt) == 80);
static_assert(offsetof(struct lp_pkt, iifname) == 24);
static_assert(offsetof(struct lp_pkt, ct_mark) == 56);
static_assert(offsetof(struct lp_pkt, ct_state) == 64);
static_assert(offsetof(struct lp_pkt, eth) == 66);
static_assert(sizeof(struct lp_meta_write) == 24);
static_assert(offsetof(struct lp_meta_write, eth) == 9);
static_assert(sizeof(struct lp_outcome) == 16);

/* ---- implemented in Rust (kmod-wasmi/ffi/src/lib.rs) ---- */

/*
 * process. Engines keep a pool of execution stacks sized for @cpus CPUs running calls with
 * nested re-entries, so packets reuse warm stacks instead of allocating.
 */
struct lp_cache *lp_rt_cache_new(u32 cpus);
/* process. Scripts keep the guests they use alive. */
void lp_rt_cache_free(struct lp_cache *cache);
/* process, caller holds the load mutex. Drops unused guests; returns how many stay. */
u32 lp_rt_cache_prune(struct lp_cache *cache);

/* any. The defaults of abi/src/limits.rs. */
void lp_rt_default_limits(struct lp_limits *out);
/* any. 0, -ERANGE (a limit out of range) or -EINVAL (policy). */
int lp_rt_check_limits(const struct lp_limits *limits, char *msg, size_t msg_len);

/*
 * process, caller holds the load mutex (serializes use of @cache); may take long: parses
 * the package, compiles or reuses its guest, builds @instances instances, each running the
 * script's top-level chunk. With @replaces (a live script, read only), its entries are bound
 * in the new instances at the same indices; a function missing in the new script fails the
 * load. The top-level chunk runs in slices of fuel with lp_load_pause() between them. Unless
 * @foreign_ok, a package whose guest is not the built-in one is refused (-EPERM). @engine:
 * LUAPKT_ENGINE_* (another value: -EINVAL); the compiled engine takes only the built-in
 * guest: another one is refused (-ENOEXEC) when the loader named the engine
 * (@engine_named), and runs on wasmi when compiled is only the default. Returns 0
 * and *@out, or -EINVAL (package, syntax, top-level error), -ENOEXEC (guest rejected),
 * -ERANGE (limits), -ENOENT (bound function missing), -ETIME (the load budget ran out),
 * -EINTR (a fatal signal), -EPERM, -ENOMEM.
 */
int lp_rt_load(struct lp_cache *cache, const u8 *pkg, size_t pkg_len,
	       const char *name, size_t name_len, const struct lp_limits *limits,
	       u8 engine, bool engine_named, u32 instances, const struct lp_script *replaces, bool foreign_ok,
	       struct lp_script **out, char *msg, size_t msg_len);
/* any. SHA-256 of the built-in guest (the Lua VM the module was built with). */
void lp_rt_builtin_guest(u8 out[32]);
/* process. No call may be running: unpublished, RCU grace period over, rebuild work done. */
void lp_rt_script_free(struct lp_script *s);

/* any. First 8 bytes of the package's SHA-256. */
void lp_rt_tag(const struct lp_script *s, u8 tag[8]);
/* any. The engine its instances run on (LUAPKT_ENGINE_*), fixed at load. */
u8 lp_rt_engine(const struct lp_script *s);
/* any. Instances (slots), fixed at load. */
u32 lp_rt_instances(const struct lp_script *s);
/* any. The script names lp.QUEUE: its rules are refused where nf_queue cannot reinject. */
bool lp_rt_may_queue(const struct lp_script *s);

/*
 * slot @cpu (bottom halves disabled on @cpu), binds of one script serialized by the caller
 * (the netns mutex). Finds (@func, @arg) in the script's entry table or validates it in
 * instance @cpu and appends it; the index is the same in every instance, other instances
 * bind lazily on their next call. @arg may be NULL (no argument). Returns 0 and *@entry,
 * -ENOENT (no such global function), -ENOSPC (entry table full), -EBUSY (instance @cpu
 * is waiting for a rebuild).
 */
int lp_rt_bind_on_cpu(const struct lp_script *s, u32 cpu, const char *func,
		      size_t func_len, const u8 *arg, size_t arg_len, u32 *entry,
		      char *msg, size_t msg_len);

/*
 * slot @cpu, inside an RCU read-side section that keeps @s alive. Runs @entry on @pkt in
 * instance @cpu and fills @out. A poisoned instance is not run: @out has the policy verdict.
 */
void lp_rt_run_on_cpu(const struct lp_script *s, u32 cpu, u32 entry,
		      const struct lp_pkt *pkt, struct lp_outcome *out);

/*
 * slot @cpu, right after lp_rt_run_on_cpu() filled @out: the verdict cannot be applied where
 * the packet is (lp.QUEUE at a hook nf_queue cannot reinject from). Recounts the call as an
 * error of kind "return" and puts the on-error policy's verdict in @out.
 */
void lp_rt_refuse_verdict(const struct lp_script *s, u32 cpu, struct lp_outcome *out);

/* any. Instance @cpu trapped and waits for a fresh one. */
bool lp_rt_needs_rebuild(const struct lp_script *s, u32 cpu);
/* process. Builds a fresh instance with every entry bound; 0 and *@out or -errno. */
int lp_rt_build_instance(const struct lp_script *s, struct lp_spare **out);
/*
 * process, installs of one slot serialized by the caller. Puts @spare (consumed) in slot
 * @cpu, clears its poison and returns the previous instance: a call that started before may
 * still use it, so free it only after synchronize_rcu().
 */
struct lp_spare *lp_rt_install(const struct lp_script *s, u32 cpu, struct lp_spare *spare);
/* process. */
void lp_rt_spare_free(struct lp_spare *spare);

/* any. */
void lp_rt_stats(const struct lp_script *s, struct lp_stats *out);
/* any. */
void lp_rt_get_limits(const struct lp_script *s, struct lp_limits *out);
/* any, writers serialized by the caller. Applies live; 0, -ERANGE or -EINVAL. */
int lp_rt_set_limits(const struct lp_script *s, const struct lp_limits *limits,
		     char *msg, size_t msg_len);

/* ---- implemented in C (lp_shim.c), called by Rust ---- */

/*
 * any. kmalloc/kvmalloc, GFP by context (see lp_shim.c), falling back on the reserve; NULL
 * if @align > PAGE_SIZE or nothing could serve it.
 */
void *lp_alloc(size_t size, size_t align, bool zero);
/*
 * any (a no-op outside process context). Inside lp_call_on_big_stack() the module's sleeping
 * allocations are __GFP_NOFAIL; the task's next one of at least @size bytes (linear memory,
 * which the runtime allocates fallibly) may fail instead. 0 cancels.
 */
void lp_alloc_fallible_next(size_t size);
/* any. kvfree() (or gives a reserve block back); NULL is ignored. */
void lp_free(void *ptr);
/* process, module init/exit: the reserve that serves allocations the allocator fails. */
int lp_reserve_init(void);
void lp_reserve_free(void);
/* any. Logs @msg and BUG()s. */
void __noreturn lp_panic(const char *msg, size_t len);
/* any. Rate-limited: "luapkt: <name>: <line>"; @level 0 info, 1 warning. */
void lp_log(int level, const char *name, size_t name_len, const char *line, size_t line_len);
/*
 * process (building an instance). cond_resched(); false when a fatal signal is pending or
 * lp_loads_stop() was called.
 */
bool lp_load_pause(void);
/* process (module exit, first): loads in progress stop at their next slice (ESHUTDOWN). */
void lp_loads_stop(void);
/* any. lp_loads_stop() was called. */
bool lp_loads_stopping(void);
/* any. */
u64 lp_ktime_ns(void);
u64 lp_clock_ns(void);
/* any. The time_every module parameter: one call in this many is timed (0 counts as 1). */
u32 lp_time_every_get(void);
#define LP_TIME_EVERY_DEFAULT 16
/* any. */
u32 lp_random_u32(void);
/* slot. skb_copy_bits() at @off bytes past the network header; 0 or -EFAULT. */
int lp_skb_read(const struct lp_pkt *pkt, u32 off, void *dst, u32 len);
/*
 * slot. Writes @len bytes at @off past the network header: skb_ensure_writable() (may
 * reallocate the head or pull paged data into it, GFP_ATOMIC) then skb_store_bits(). A
 * CHECKSUM_COMPLETE skb becomes CHECKSUM_NONE (the stack then verifies it in software).
 * 0, -EFAULT (outside the packet) or -ENOMEM.
 */
int lp_skb_write(const struct lp_pkt *pkt, u32 off, const void *src, u32 len);
/*
 * slot. Applies what @w flags: skb->mark; the conntrack mark (a real entry only, not
 * untracked or a template; an IPCT_MARK event when it changed); the Ethernet header (made
 * writable like packet bytes; only when @pkt has one). Returns 0, or the first -errno of the
 * parts that failed (-ENOENT: no conntrack entry or no Ethernet header, -ENOMEM); the other
 * parts are still applied.
 */
int lp_skb_write_meta(const struct lp_pkt *pkt, const struct lp_meta_write *w);
/*
 * process. Runs @fn(@arg) on a 64 KiB stack of its own and returns what it returns (or
 * -ENOMEM). Every process-context call that compiles or instantiates (lp_rt_load,
 * lp_rt_build_instance, lp_rt_bind_on_cpu) goes through it: those paths need more than the
 * 16 KiB a task stack has, and their sleeping allocations must not fail (see lp_alloc).
 */
int lp_call_on_big_stack(int (*fn)(void *arg), void *arg);
/*
 * process, inside lp_call_on_big_stack(). Between lp_nofail_atomic(true) and (false) the task
 * runs a script with bottom halves disabled (a bind): its allocations are atomic and fallible
 * by design, and load_atomic_allocs does not count them.
 */
void lp_nofail_atomic(bool on);
/* any, preemption disabled. This CPU's innermost armed frame of the compiled guest. */
void **lp_w2c_target_slot(void);
/*
 * any. Guest code of the compiled engine runs between these (see lp_shim.c): enter disables
 * preemption, makes @frame this CPU's innermost armed frame and returns the one before; leave
 * makes @frame the innermost again and enables preemption.
 */
void *lp_w2c_enter(void *frame);
void lp_w2c_leave(void *frame);
/* process. One 64 KiB stack per possible CPU for lp_call_on_cpu_stack(). */
int lp_cpu_stacks_init(void);
void lp_cpu_stacks_free(void);
/*
 * slot (bottom halves disabled). Runs @fn(@arg) on this CPU's own stack: packets call
 * scripts through it, so nested re-entries of the interpreter never eat into the task or
 * irq stack. With @probe, fills the stack with a pattern first and returns how many bytes
 * the call used (slow: measurement only); otherwise returns 0.
 */
unsigned int lp_call_on_cpu_stack(void (*fn)(void *arg), void *arg, bool probe);
/* any (never hard-irq). local_bh_disable()/local_bh_enable(), for Rust's spin locks. */
void lp_bh_disable(void);
void lp_bh_enable(void);

#endif /* _LP_RT_H */
