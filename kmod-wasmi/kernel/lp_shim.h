/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What lp_shim.c provides besides the shims the Rust runtime imports (those are declared in
 * lp_rt.h, generated from the runtime's FFI): the module's stacks and allocation modes, the
 * compiled guest's trap frames (guest-lua/w2c/lp_w2c_host.c declares the three it calls),
 * and bottom-half control for Rust's spin locks (kmod-wasmi/ffi/spin). Contexts as in lp_rt.h.
 */
#ifndef _LP_SHIM_H
#define _LP_SHIM_H

#include <linux/types.h>

/* process, module init/exit: the reserve that serves allocations the allocator fails. */
int lp_reserve_init(void);
void lp_reserve_free(void);
/* process (module exit, first): loads in progress stop at their next slice (ESHUTDOWN). */
void lp_loads_stop(void);
/* any. lp_loads_stop() was called. */
bool lp_loads_stopping(void);
/*
 * process. Runs @fn(@arg) on a 96 KiB stack of its own and returns what it returns (or
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
/* process. One 96 KiB stack per possible CPU for lp_call_on_cpu_stack(). */
int lp_cpu_stacks_init(void);
void lp_cpu_stacks_free(void);
/*
 * slot (bottom halves disabled). Runs @fn(@arg) on this CPU's own stack: packets call
 * scripts through it, so nested re-entries of the interpreter never eat into the task or
 * irq stack. With @probe, fills the stack with a pattern first and returns how many bytes
 * the call used (slow: measurement only); otherwise returns 0.
 */
unsigned int lp_call_on_cpu_stack(void (*fn)(void *arg), void *arg, bool probe);
/* The packet path's function (nft_lua.c), which lp_call_on_cpu_stack() calls directly: the
 * kernel's retpolines would make the call through the pointer cost more than the rest of the
 * stack switch. */
void nft_lua_call_fn(void *arg);
/* any (never hard-irq). local_bh_disable()/local_bh_enable(), for Rust's spin locks. */
void lp_bh_disable(void);
void lp_bh_enable(void);

#endif /* _LP_SHIM_H */
