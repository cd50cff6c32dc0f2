/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The contract between nft_lua.ko's C glue and its Rust runtime: the structures both sides
 * share, the runtime's functions (lp_rt_*) and the shims the glue provides to it (lp_shim.c).
 * Generated from kmod-wasmi/ffi/src/lib.rs by `cargo run -p luapkt-tests --bin
 * abi-headers`: do not edit.
 *
 * Contexts (the first word of each comment)
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
 *   "# Safety" says what the caller must hold for Rust's sake.
 */

#ifndef _LP_RT_H
#define _LP_RT_H

#include <linux/types.h>

struct sk_buff;

#define LP_META_MARK 1

#define LP_META_CT_MARK 2

#define LP_META_ETH 4

/**
 * lp_skb_send()'s `kind` of a reply (`abi::guest::send::KIND_REPLY`).
 */
#define LP_SEND_KIND_REPLY 1

/**
 * One call in this many is timed when the `time_every` module parameter is not set.
 */
#define LP_TIME_EVERY_DEFAULT 16

/**
 * Timers one script version may have pending (`abi::limits::TIMERS_MAX`): the glue's array
 * of wake-ups.
 */
#define LP_TIMERS_MAX 64

/**
 * lp_rt_timer_fire(): the timer ran.
 */
#define LP_TIMER_RAN 0

/**
 * It ran and trapped: schedule a rebuild, as after a call that poisoned its instance.
 */
#define LP_TIMER_POISONED 1

/**
 * Nothing ran (cancelled, stopped, or its instance was rebuilt meanwhile).
 */
#define LP_TIMER_NOTHING 2

/**
 * The timer belongs to another CPU (`*cpu`): wake it there, or lp_rt_timer_drop() it when
 * that CPU is offline.
 */
#define LP_TIMER_ELSEWHERE 3

/**
 * `lp_rt_read_records`' `which`: the script's log lines.
 */
#define LP_RECORDS_LOG 0

/**
 * The errors it kept with their packets.
 */
#define LP_RECORDS_ERRORS 1

/**
 * `lp_rt_map_op`'s operations (abi::guest::map's).
 */
#define LP_MAP_GET 0

#define LP_MAP_SET 1

#define LP_MAP_DELETE 2

/**
 * Compiled guests, shared by every script of every netns (one per module).
 */
struct lp_cache;

/**
 * One loaded version of a script: one instance per possible CPU, stats, limits.
 */
struct lp_script;

/**
 * An instance outside its slot: freshly built, or taken out and awaiting a grace period.
 * `lp_rt_install` swaps the one it holds with the slot's.
 */
struct lp_spare;

/**
 * The packet of one call; the skb and the names are only used during that call. The skb is
 * written through lp_skb_write() and lp_skb_write_meta() (slot context), never kept.
 */
struct lp_pkt {
  struct sk_buff *skb;
  /**
   * Network header offset from `skb->data` (may be negative).
   */
  int32_t noff;
  /**
   * Bytes from the network header on.
   */
  uint32_t len;
  uint32_t mark;
  uint8_t nfproto;
  uint8_t hook;
  /**
   * `skb->ip_summed == CHECKSUM_PARTIAL`.
   */
  uint8_t csum_partial;
  /**
   * A conntrack entry (or untracked: state only): `ct_*` are valid.
   */
  uint8_t has_ct;
  char iifname[16];
  char oifname[16];
  uint32_t ct_mark;
  /**
   * nf_ct_get_id().
   */
  uint32_t ct_id;
  /**
   * nft's `ct state`: NF_CT_STATE_BIT(), untracked 64, else 1 (invalid).
   */
  uint8_t ct_state;
  /**
   * `eth` holds the Ethernet header (bridge, netdev, inet ingress).
   */
  uint8_t has_eth;
  /**
   * Destination, source, type.
   */
  uint8_t eth[14];
  /**
   * Sending is allowed: 0 for a packet a script sent, whose transmission this call runs
   * inside (a send would loop).
   */
  uint8_t may_send;
  /**
   * The call's queue of packets to send (a `struct sk_buff_head`; lp_skb_send() adds to
   * it), transmitted by the caller once the call has returned; NULL: nothing can be sent.
   */
  void *sendq;
  /**
   * The packet's network namespace (`struct net`): where what is sent is routed.
   */
  void *net;
};

/**
 * Metadata a call changed (`LP_META_*` in `flags` say which).
 */
struct lp_meta_write {
  uint32_t mark;
  uint32_t ct_mark;
  uint8_t flags;
  uint8_t eth[14];
  uint8_t _pad;
};

/**
 * Limits of a script and its on-error policy.
 */
struct lp_limits {
  uint64_t fuel;
  uint64_t memory;
  uint32_t instructions;
  uint32_t recursion;
  uint32_t pcall_depth;
  /**
   * `LUAPKT_ON_ERROR_*`.
   */
  uint8_t on_error;
  uint8_t _pad[3];
  /**
   * Building one instance: Lua setup and the top-level chunk.
   */
  uint64_t load_fuel;
  /**
   * Packets and bytes a call may send, packets and bytes per second.
   */
  uint32_t send_packets;
  uint32_t send_bytes;
  uint32_t send_rate;
  uint32_t send_byte_rate;
};

/**
 * The result of one call, after the on-error policy.
 */
struct lp_outcome {
  /**
   * `LUAPKT_VERDICT_*`, or `LUAPKT_VERDICT_QUEUE_BASE` + n.
   */
  int32_t verdict;
  /**
   * 0, or 1 + the error kind (lua, memory, fuel, instructions, stack, return, trap).
   */
  uint8_t error;
  /**
   * This call poisoned its instance: schedule a rebuild.
   */
  uint8_t poisoned;
  uint8_t _pad[2];
  uint64_t fuel;
};

/**
 * Counters, summed over the instances.
 */
struct lp_stats {
  uint64_t run_cnt;
  uint64_t run_time_ns;
  /**
   * accept, drop, continue, break, queue.
   */
  uint64_t verdicts[5];
  /**
   * lua, memory, fuel, instructions, stack, return, trap.
   */
  uint64_t errors[7];
  uint64_t fuel_total;
  uint64_t fuel_max;
  uint64_t rebuilds;
  /**
   * Linear memory of all instances.
   */
  uint64_t mem_bytes;
  /**
   * The longest timed call (time_every).
   */
  uint64_t run_time_max_ns;
  /**
   * Lines logged, and lines over the script's log rate (dropped).
   */
  uint64_t log_lines;
  uint64_t log_dropped;
  /**
   * Packets queued for sending and their bytes; sends refused (caps, rates) and failed.
   */
  uint64_t sent_packets;
  uint64_t sent_bytes;
  uint64_t send_refused;
  uint64_t send_failed;
  /**
   * Timers pending, run, failed, and dropped (refused when armed, or their instance or CPU
   * gone).
   */
  uint64_t timers_pending;
  uint64_t timer_runs;
  uint64_t timer_errors;
  uint64_t timers_dropped;
};

/**
 * What `lp_rt_read_records` copied: `len` bytes of whole records, the sequence number to
 * read from next, and the records overwritten before the read reached them.
 */
struct lp_read {
  uint32_t len;
  uint32_t _pad;
  uint64_t next;
  uint64_t lost;
};

/**
 * any. kmalloc/kvmalloc, GFP by context (see lp_shim.c), falling back on the reserve;
 * NULL if `align` > PAGE_SIZE or nothing could serve it.
 */
extern void *lp_alloc(size_t size, size_t align, bool zero);

/**
 * any. kvfree() (or gives a reserve block back); NULL is ignored.
 */
extern void lp_free(void *ptr);

/**
 * any (a no-op outside process context). Inside lp_call_on_big_stack() the module's
 * sleeping allocations are __GFP_NOFAIL; the task's next one of at least `size` bytes
 * (linear memory, which the runtime allocates fallibly) may fail instead. 0 cancels.
 */
extern void lp_alloc_fallible_next(size_t size);

/**
 * process (building an instance). cond_resched(); false when a fatal signal is pending
 * or lp_loads_stop() was called.
 */
extern bool lp_load_pause(void);

/**
 * any. Logs `msg` and BUG()s. Declared returning so that the call is followed by `ud2`,
 * where objtool looks for the end of the panic handler.
 */
extern void lp_panic(const char *msg, size_t len);

/**
 * any. Rate-limited: "luapkt: <name>: <line>"; `level` 0 info, 1 warning.
 */
extern void lp_log(int level, const char *name, size_t name_len, const char *line, size_t line_len);

/**
 * any. ktime_get_ns().
 */
extern uint64_t lp_ktime_ns(void);

/**
 * any. local_clock(): this CPU's scheduler clock, for timing a call.
 */
extern uint64_t lp_clock_ns(void);

/**
 * any. The time_every module parameter: one call in this many is timed (0 counts as 1).
 */
extern uint32_t lp_time_every_get(void);

/**
 * any. get_random_u32().
 */
extern uint32_t lp_random_u32(void);

/**
 * slot. skb_copy_bits() at `off` bytes past the network header; 0 or -EFAULT.
 */
extern int lp_skb_read(const struct lp_pkt *pkt, uint32_t off, void *dst, uint32_t len);

/**
 * slot. Writes `len` bytes at `off` past the network header: skb_ensure_writable() (may
 * reallocate the head or pull paged data into it, GFP_ATOMIC) then skb_store_bits(). A
 * CHECKSUM_COMPLETE skb becomes CHECKSUM_NONE (the stack then verifies it in software).
 * 0, -EFAULT (outside the packet) or -ENOMEM.
 */
extern int lp_skb_write(const struct lp_pkt *pkt, uint32_t off, const void *src, uint32_t len);

/**
 * slot. Applies what `w` flags: skb->mark; the conntrack mark (a real entry only, not
 * untracked or a template; an IPCT_MARK event when it changed); the Ethernet header
 * (made writable like packet bytes; only when `pkt` has one). Returns 0, or the first
 * -errno of the parts that failed (-ENOENT: no conntrack entry or no Ethernet header,
 * -ENOMEM); the other parts are still applied.
 */
extern int lp_skb_write_meta(const struct lp_pkt *pkt, const struct lp_meta_write *w);

/**
 * slot. Makes an skb of `len` bytes at `data` (an IPv4 or IPv6 packet of family
 * `nfproto`, checked by the runtime), routes it in `pkt->net` to its destination (any
 * source address) and queues it on `pkt->sendq`; `kind` 1 (a reply) also attaches the
 * conntrack entry of `pkt`'s skb, as nf_reject does. 0, -ELOOP (`may_send` is 0 or there
 * is no queue), -ENOMEM, or the routing's -errno.
 */
extern int lp_skb_send(const struct lp_pkt *pkt,
                       int kind,
                       uint8_t nfproto,
                       const void *data,
                       uint32_t len);

/**
 * any. Wakes timer `index` of the script version `owner` (the pointer given to
 * lp_rt_timers_start()) `delay_ms` from now on CPU `cpu`, unless the version's timers
 * are being stopped: then false.
 */
extern bool lp_timer_arm(void *owner, uint32_t index, uint32_t cpu, uint32_t delay_ms);

/**
 * any. Stops timer `index`'s wake-up if it has not started: true when it will not run.
 */
extern bool lp_timer_cancel(void *owner, uint32_t index);

/**
 * any. Copies the SHA-256 of the built-in guest (the Lua VM the module was built with) to
 * `out`.
 *
 * # Safety
 * `out` is writable for 32 bytes.
 */
void lp_rt_builtin_guest(uint8_t *out);

/**
 * process. The compiled-guest cache for a machine of `cpus` CPU ids: engines keep a pool
 * of execution stacks sized for `cpus` CPUs running calls with nested re-entries, so packets
 * reuse warm stacks instead of allocating.
 */
struct lp_cache *lp_rt_cache_new(uint32_t cpus);

/**
 * process. Frees the cache; scripts keep the guests they use alive.
 *
 * # Safety
 * `cache` comes from `lp_rt_cache_new` (or is NULL) and is not used afterwards.
 */
void lp_rt_cache_free(struct lp_cache *cache);

/**
 * process, the caller holds the load mutex. Drops compiled guests no script uses any
 * more; returns how many stay cached.
 *
 * # Safety
 * `cache` is valid and the caller serializes its use.
 */
uint32_t lp_rt_cache_prune(struct lp_cache *cache);

/**
 * any. The default limits and on-error policy (`abi/src/limits.rs`).
 *
 * # Safety
 * `out` is writable.
 */
void lp_rt_default_limits(struct lp_limits *out);

/**
 * any. Checks limits without loading anything: 0, -ERANGE (a limit out of range) or
 * -EINVAL (policy), with a message.
 *
 * # Safety
 * `limits` is readable; `msg` is NULL or writable for `msg_len` bytes.
 */
int lp_rt_check_limits(const struct lp_limits *limits, char *msg, size_t msg_len);

/**
 * process, the caller holds the load mutex (it serializes use of `cache`); may take long:
 * parses the package, compiles or reuses its guest, builds `instances` instances, each running
 * the script's top-level chunk. With `replaces` (a live script, read only), its entries are
 * bound in the new instances at the same indices; a function missing in the new script fails
 * the load. The top-level chunk runs in slices of fuel with lp_load_pause() between them.
 * Unless `foreign_ok`, a package whose guest is not the built-in one is refused (-EPERM).
 * `map_room`: the bytes the script's maps may take in all (a declaration past them fails the
 * top-level chunk with a Lua error; a replacement's maps include those it keeps).
 * `engine`: `LUAPKT_ENGINE_*` (another value: -EINVAL); the compiled engine takes only the
 * built-in guest: another one is refused (-ENOEXEC) when the loader named the engine
 * (`engine_named`), and runs on wasmi when compiled is only the default. Returns 0 and
 * `*out`, or -EINVAL (package, syntax, top-level error), -ENOEXEC (guest rejected), -ERANGE
 * (limits), -ENOENT (bound function missing), -ETIME (the load budget ran out), -EINTR (a
 * fatal signal), -EPERM, -ENOMEM, with a message.
 *
 * # Safety
 * `cache` is valid; `pkg`/`name` point to `pkg_len`/`name_len` readable bytes; `limits` is
 * readable; `replaces` is NULL or a live script; `out` is writable; `msg` is NULL or
 * writable for `msg_len` bytes.
 */
int lp_rt_load(struct lp_cache *cache,
               const uint8_t *pkg,
               size_t pkg_len,
               const char *name,
               size_t name_len,
               const struct lp_limits *limits,
               uint8_t engine,
               bool engine_named,
               uint32_t instances,
               const struct lp_script *replaces,
               bool foreign_ok,
               uint64_t map_room,
               struct lp_script **out,
               char *msg,
               size_t msg_len);

/**
 * any. The engine the script's instances run on (`LUAPKT_ENGINE_*`), fixed at load.
 *
 * # Safety
 * `s` is a live script.
 */
uint8_t lp_rt_engine(const struct lp_script *s);

/**
 * process. Frees a script. No call may be running on it: the caller unpublished it,
 * waited for an RCU grace period and cancelled its rebuild work.
 *
 * # Safety
 * `s` comes from `lp_rt_load` (or is NULL) and is not used afterwards.
 */
void lp_rt_script_free(struct lp_script *s);

/**
 * any. Copies the first 8 bytes of the package's SHA-256 to `tag`.
 *
 * # Safety
 * `s` is live; `tag` is writable for 8 bytes.
 */
void lp_rt_tag(const struct lp_script *s, uint8_t *tag);

/**
 * any. Bytes the script's maps take (each allocated in full when declared; a replacement
 * shares those of the script it replaced).
 *
 * # Safety
 * `s` is live.
 */
uint64_t lp_rt_map_bytes(const struct lp_script *s);

/**
 * any. Number of instances (slots), fixed at load.
 *
 * # Safety
 * `s` is live.
 */
uint32_t lp_rt_instances(const struct lp_script *s);

/**
 * any. The script names `lp.QUEUE`: its rules are refused where nf_queue cannot
 * reinject.
 *
 * # Safety
 * `s` is live.
 */
bool lp_rt_may_queue(const struct lp_script *s);

/**
 * slot `cpu` (bottom halves disabled on CPU `cpu`, or a slot no CPU runs); binds of one
 * script serialized by the caller (the netns mutex). Finds (`func`, `arg`) in the script's
 * entry table or validates it in instance `cpu` and appends it; the index is the same in
 * every instance, other instances bind lazily on their next call. `arg` may be NULL (no
 * argument). Returns 0 and `*entry`, -ENOENT (no such global function), -ENOSPC (entry table
 * full) or -EBUSY (instance `cpu` is waiting for a rebuild), with a message.
 *
 * # Safety
 * `s` is live; `func` points to `func_len` bytes; `arg` is NULL or points to `arg_len`
 * bytes; `entry` is writable; `msg` is NULL or writable for `msg_len` bytes; the context
 * above holds.
 */
int lp_rt_bind_on_cpu(const struct lp_script *s,
                      uint32_t cpu,
                      const char *func,
                      size_t func_len,
                      const uint8_t *arg,
                      size_t arg_len,
                      uint32_t *entry,
                      char *msg,
                      size_t msg_len);

/**
 * slot `cpu`, never re-entered, inside an RCU read-side section that keeps `s` alive.
 * Runs entry `entry` on `pkt` in instance `cpu` and fills `out`. A poisoned instance is not
 * run: `out` has the policy's verdict.
 *
 * # Safety
 * `s` is live for the call; `pkt` and `out` are valid; the context above holds.
 */
void lp_rt_run_on_cpu(const struct lp_script *s,
                      uint32_t cpu,
                      uint32_t entry,
                      const struct lp_pkt *pkt,
                      struct lp_outcome *out);

/**
 * slot `cpu`, right after lp_rt_run_on_cpu() filled `out`: the verdict cannot be applied
 * where the packet is (lp.QUEUE at a hook nf_queue cannot reinject from). Recounts the call as
 * an error of kind "return" and puts the on-error policy's verdict in `out`.
 *
 * # Safety
 * `s` is live; `out` was filled by `lp_rt_run_on_cpu` for slot `cpu`; its context holds.
 */
void lp_rt_refuse_verdict(const struct lp_script *s, uint32_t cpu, struct lp_outcome *out);

/**
 * process, before the version is published. Lets the script arm timers: `owner` is what the
 * glue's lp_timer_arm()/lp_timer_cancel() get back.
 *
 * # Safety
 * `s` is live; `owner` stays valid until the script is freed.
 */
void lp_rt_timers_start(const struct lp_script *s, void *owner);

/**
 * any. Stops the script's timers (replaced or unloaded): no more are armed, and wake-ups
 * run nothing. The glue then cancels its wake-ups, synchronously, before freeing it.
 *
 * # Safety
 * `s` is live.
 */
void lp_rt_timers_close(const struct lp_script *s);

/**
 * slot `cpu` (the wake-up's work item, bottom halves disabled on CPU `cpu`), never
 * re-entered. Timer `index` is due: runs it in instance `cpu` as a call of its own with
 * `pkt` (no skb: `len` 0, its `sendq` and `net` for what the timer sends). Returns
 * `LP_TIMER_*`; `LP_TIMER_ELSEWHERE` with `*cpu_out`.
 *
 * # Safety
 * `s` is live (the glue frees it only after cancelling its wake-ups); `pkt` and `cpu_out`
 * are valid; the context above holds.
 */
int lp_rt_timer_fire(const struct lp_script *s,
                     uint32_t index,
                     uint32_t cpu,
                     const struct lp_pkt *pkt,
                     uint32_t *cpu_out);

/**
 * any. Drops timer `index`, whose CPU went offline (counted as dropped).
 *
 * # Safety
 * `s` is live.
 */
void lp_rt_timer_drop(const struct lp_script *s, uint32_t index);

/**
 * any. Instance `cpu` trapped and waits for a fresh one.
 *
 * # Safety
 * `s` is live.
 */
bool lp_rt_needs_rebuild(const struct lp_script *s, uint32_t cpu);

/**
 * process, may sleep. Builds a fresh instance with every entry bound; 0 and `*out`, or
 * -errno.
 *
 * # Safety
 * `s` is live; `out` is writable.
 */
int lp_rt_build_instance(const struct lp_script *s, struct lp_spare **out);

/**
 * process, installs of one slot serialized by the caller. Puts the instance `spare` holds
 * in slot `cpu`, clears the slot's poison and returns `spare` holding the slot's previous
 * instance: a call that started before may still use it, so free it only after
 * synchronize_rcu().
 *
 * # Safety
 * `s` is live; `spare` comes from `lp_rt_build_instance` of `s` (possibly by way of an
 * earlier install).
 */
struct lp_spare *lp_rt_install(const struct lp_script *s, uint32_t cpu, struct lp_spare *spare);

/**
 * process. Frees a spare and the instance it holds.
 *
 * # Safety
 * `spare` comes from `lp_rt_build_instance` (or is NULL), and no call uses its instance.
 */
void lp_rt_spare_free(struct lp_spare *spare);

/**
 * any. Counters summed over the instances.
 *
 * # Safety
 * `s` is live; `out` is writable.
 */
void lp_rt_stats(const struct lp_script *s, struct lp_stats *out);

/**
 * process. Copies the script's log lines (`which` = `LP_RECORDS_LOG`) or the errors it kept
 * with their packets (`LP_RECORDS_ERRORS`) from sequence number `from` on (0: the oldest
 * kept; a number the script never gave, as after a module reload: the oldest too) into
 * `buf`, whole records only (abi/src/records.rs), and fills `out`. 0, or -EINVAL for another
 * `which`.
 *
 * # Safety
 * `s` is live; `buf` is writable for `len` bytes; `out` is writable.
 */
int lp_rt_read_records(const struct lp_script *s,
                       uint8_t which,
                       uint64_t from,
                       uint8_t *buf,
                       size_t len,
                       struct lp_read *out);

/**
 * any. Copies the script's Lua source from byte `offset` on into `buf` (at most `len` bytes)
 * and stores its whole length in `total`. The bytes copied, or -EINVAL for an `offset` past
 * the end.
 *
 * # Safety
 * `s` is live; `buf` is writable for `len` bytes; `total` is writable.
 */
int lp_rt_read_source(const struct lp_script *s,
                      uint32_t offset,
                      uint8_t *buf,
                      size_t len,
                      uint32_t *total);

/**
 * any. Current limits and policy.
 *
 * # Safety
 * `s` is live; `out` is writable.
 */
void lp_rt_get_limits(const struct lp_script *s, struct lp_limits *out);

/**
 * any, writers serialized by the caller. Validates and applies limits and policy live: 0,
 * -ERANGE or -EINVAL, with a message.
 *
 * # Safety
 * `s` is live; `limits` is readable; `msg` is NULL or writable for `msg_len` bytes.
 */
int lp_rt_set_limits(const struct lp_script *s,
                     const struct lp_limits *limits,
                     char *msg,
                     size_t msg_len);

/**
 * any. Copies a record per map of the script (abi/src/records.rs `MapInfo`) into `buf` and
 * returns the bytes written.
 *
 * # Safety
 * `s` is live; `buf` is writable for `len` bytes.
 */
size_t lp_rt_map_list(const struct lp_script *s, uint8_t *buf, size_t len);

/**
 * any. Copies whole entry records of map `name` (abi/src/records.rs `MapEntry`) from
 * `cursor` (0: the start) into `buf`; `*next` is the cursor to go on from (0: done). Returns
 * the bytes written, or -ENOENT (no such map).
 *
 * # Safety
 * `s` is live; `name` points to `name_len` bytes; `buf` is writable for `len` bytes; `next`
 * is writable.
 */
int lp_rt_map_dump(const struct lp_script *s,
                   const char *name,
                   size_t name_len,
                   uint64_t cursor,
                   uint8_t *buf,
                   size_t len,
                   uint64_t *next);

/**
 * any. One operation on map `name`: `op` is abi::guest::map's GET (the value is copied to
 * `val`, at most `vlen` bytes; returns its length), SET (stores `vlen` bytes of `val`: bytes,
 * or a number as a tag and 8 little-endian bytes; returns 0) or DELETE (returns 0). Errors:
 * -ENOENT (no such map or key), -E2BIG (key or value too long), -EINVAL (a value of the
 * wrong type, another op), -ENOSPC (the map is full).
 *
 * # Safety
 * `s` is live; `name`, `key` point to `name_len`, `klen` readable bytes; `val` to `vlen`
 * bytes, writable for GET.
 */
int lp_rt_map_op(const struct lp_script *s,
                 const char *name,
                 size_t name_len,
                 int op,
                 const uint8_t *key,
                 size_t klen,
                 uint8_t *val,
                 size_t vlen);

#endif  /* _LP_RT_H */
