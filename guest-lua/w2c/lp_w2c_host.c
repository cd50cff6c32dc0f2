/*
 * The compiled engine's host side in C: the guest's `lp` imports (wasm2c names them Z_lpZ_*)
 * and every call into the guest. The imports that are data (log, now, packet bytes, fuel) call
 * the runtime's own, in Rust (lpctl's src/engine/compiled.rs, over runtime::imports); the two
 * that are control flow are here: `try` re-enters the guest under a setjmp of its own, `throw`
 * unwinds to the innermost one. Every call into the guest from Rust is armed the same way and
 * returns the trap code (0: none), so that no longjmp ever crosses a Rust frame.
 */
#include <stdlib.h>

#include "lp_abi.h"
#include "lua_w2c.h"

extern _Thread_local jmp_buf *lp_w2c_target;

/* what Rust provides (status: 0, or the trap code to raise) */
extern void lp_w2c_import_log(void *rust, uint32_t level, uint32_t ptr, uint32_t len);
extern uint64_t lp_w2c_import_now(void *rust);
extern int lp_w2c_import_pkt_read(void *rust, uint32_t off, uint32_t dst, uint32_t len, int32_t *out);
extern int lp_w2c_import_pkt_write(void *rust, uint32_t off, uint32_t src, uint32_t len, int32_t *out);
extern int lp_w2c_import_out_of_fuel(void *rust);

struct Z_lp_instance_t {
  void *rust;
  Z_lua_instance_t *inst;
  uint32_t depth, max_depth; /* host re-entries (`try` frames) and their cap */
  uint32_t recursion;        /* wasm frames per entry into the guest */
};

extern _Thread_local uintptr_t lp_w2c_stack_floor;
/* native stack a top-level call may use below its host frame */
#define LP_W2C_STACK (1u << 20)

struct lp_w2c {
  Z_lua_instance_t inst;
  struct Z_lp_instance_t host;
};

void Z_lpZ_log(struct Z_lp_instance_t *h, u32 level, u32 ptr, u32 len) {
  lp_w2c_import_log(h->rust, level, ptr, len);
}

u64 Z_lpZ_now(struct Z_lp_instance_t *h) {
  return lp_w2c_import_now(h->rust);
}

u32 Z_lpZ_pkt_read(struct Z_lp_instance_t *h, u32 off, u32 dst, u32 len) {
  int32_t r = -1;
  int trap = lp_w2c_import_pkt_read(h->rust, off, dst, len, &r);
  if (trap) wasm_rt_trap(trap);
  return (u32)r;
}

u32 Z_lpZ_pkt_write(struct Z_lp_instance_t *h, u32 off, u32 src, u32 len) {
  int32_t r = -1;
  int trap = lp_w2c_import_pkt_write(h->rust, off, src, len, &r);
  if (trap) wasm_rt_trap(trap);
  return (u32)r;
}

void Z_lpZ_out_of_fuel(struct Z_lp_instance_t *h) {
  int trap = lp_w2c_import_out_of_fuel(h->rust);
  if (trap) wasm_rt_trap(trap);
}

void Z_lpZ_throw(struct Z_lp_instance_t *h) {
  (void)h;
  wasm_rt_trap(LP_W2C_TRAP_THROW);
}

u32 Z_lpZ_try(struct Z_lp_instance_t *h, u32 ud) {
  jmp_buf here;
  jmp_buf *outer = lp_w2c_target;
  uint32_t sp = h->inst->w2c___stack_pointer;
  uint32_t depth = lp_w2c_depth, max = lp_w2c_max_depth;
  int code;
  if (h->depth >= h->max_depth) wasm_rt_trap(LP_W2C_TRAP_DEPTH);
  h->depth++;
  lp_w2c_target = &here;
  lp_w2c_max_depth = depth + h->recursion;
  code = setjmp(here);
  if (code == 0) Z_luaZ_lp_trampoline(h->inst, ud);
  lp_w2c_target = outer;
  lp_w2c_depth = depth;
  lp_w2c_max_depth = max;
  h->depth--;
  if (code == 0) return LP_TRY_OK;
  if (code == LP_W2C_TRAP_THROW) {
    h->inst->w2c___stack_pointer = sp;
    return LP_TRY_THREW;
  }
  wasm_rt_trap(code); /* any other trap goes on to the next frame out */
}

/* ---- called from Rust ---- */

void lp_w2c_init(void) {
  Z_lua_init_module();
}

/* A new instance for `rust` (its import context); NULL when instantiation failed. */
struct lp_w2c *lp_w2c_new(void *rust) {
  jmp_buf here;
  jmp_buf *outer = lp_w2c_target;
  struct lp_w2c *volatile w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->host.rust = rust;
  w->host.inst = &w->inst;
  lp_w2c_target = &here;
  if (setjmp(here)) {
    lp_w2c_target = outer;
    Z_lua_free(&w->inst);
    free(w);
    return NULL;
  }
  Z_lua_instantiate(&w->inst, &w->host);
  lp_w2c_target = outer;
  return w;
}

void lp_w2c_free(struct lp_w2c *w) {
  if (!w) return;
  Z_lua_free(&w->inst);
  free(w);
}

/* Grows linear memory to `pages` and makes that its maximum (the script's memory limit):
 * 0, -1 when the allocator fails, -2 when the guest starts with more than `pages`. */
int lp_w2c_presize(struct lp_w2c *w, uint32_t pages) {
  wasm_rt_memory_t *m = &w->inst.w2c_memory;
  if (pages < m->pages) return -2;
  if (pages > m->pages && wasm_rt_grow_memory(m, pages - m->pages) == (uint32_t)-1) return -1;
  m->max_pages = m->pages;
  return 0;
}

uint8_t *lp_w2c_memory(struct lp_w2c *w, uint64_t *size) {
  *size = w->inst.w2c_memory.size;
  return w->inst.w2c_memory.data;
}

uint64_t *lp_w2c_fuel(struct lp_w2c *w) {
  return &w->inst.w2c_lp_fuel;
}

uint32_t *lp_w2c_stack_pointer(struct lp_w2c *w) {
  return &w->inst.w2c___stack_pointer;
}

/* Forgets host re-entries (a top-level call starts at depth 0). */
void lp_w2c_reset_depth(struct lp_w2c *w) {
  w->host.depth = 0;
}

void lp_w2c_set_reentries(struct lp_w2c *w, uint32_t reentries) {
  w->host.max_depth = reentries;
}

/* `reentries`: nested `try` frames allowed; `recursion`: wasm frames per entry. */
void lp_w2c_limits(struct lp_w2c *w, uint32_t reentries, uint32_t recursion) {
  w->host.max_depth = reentries;
  w->host.recursion = recursion;
}

/* The exports, numbered as runtime::call::Export (compiled.rs keeps the two in step). */
enum { X_CTX, X_INIT, X_LOAD, X_RUN, X_RECOVER, X_ERRMSG, X_ERRLEN, X_MEM_USED, X_ALLOC,
       X_FREE, X_REF_GLOBAL, X_REF_STRING, X_FEATURES, X_FUEL_STOP };

/* Calls export `x` with `a`; its result in *ret. Returns 0, or the trap code. */
int lp_w2c_call(struct lp_w2c *w, int x, const int32_t *a, int32_t *ret) {
  jmp_buf here;
  jmp_buf *outer = lp_w2c_target;
  uint32_t depth = lp_w2c_depth, max = lp_w2c_max_depth;
  uintptr_t floor = lp_w2c_stack_floor;
  Z_lua_instance_t *i = &w->inst;
  int code;
  lp_w2c_target = &here;
  lp_w2c_max_depth = depth + w->host.recursion;
  /* a nested call (the soft stop's, from an import) keeps the outer call's floor */
  if (!outer) lp_w2c_stack_floor = (uintptr_t)__builtin_frame_address(0) - LP_W2C_STACK;
  code = setjmp(here);
  if (code == 0) {
    int32_t r = 0;
    switch (x) {
      case X_CTX: r = (int32_t)Z_luaZ_lp_ctx(i); break;
      case X_INIT: r = (int32_t)Z_luaZ_lp_init(i, (u32)a[0]); break;
      case X_LOAD: r = (int32_t)Z_luaZ_lp_load(i, (u32)a[0], (u32)a[1], (u32)a[2], (u32)a[3]); break;
      case X_RUN: r = (int32_t)Z_luaZ_lp_run(i, (u32)a[0], (u32)a[1], (u32)a[2], (u32)a[3]); break;
      case X_RECOVER: r = (int32_t)Z_luaZ_lp_recover(i); break;
      case X_ERRMSG: r = (int32_t)Z_luaZ_lp_errmsg(i); break;
      case X_ERRLEN: r = (int32_t)Z_luaZ_lp_errlen(i); break;
      case X_MEM_USED: r = (int32_t)Z_luaZ_lp_mem_used(i); break;
      case X_ALLOC: r = (int32_t)Z_luaZ_lp_alloc(i, (u32)a[0]); break;
      case X_FREE: Z_luaZ_lp_free(i, (u32)a[0]); break;
      case X_REF_GLOBAL: r = (int32_t)Z_luaZ_lp_ref_global(i, (u32)a[0], (u32)a[1]); break;
      case X_REF_STRING: r = (int32_t)Z_luaZ_lp_ref_string(i, (u32)a[0], (u32)a[1]); break;
      case X_FEATURES: r = (int32_t)Z_luaZ_lp_features(i); break;
      case X_FUEL_STOP: Z_luaZ_lp_fuel_stop(i); break;
      default: wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
    }
    *ret = r;
  }
  lp_w2c_target = outer;
  lp_w2c_depth = depth;
  lp_w2c_max_depth = max;
  lp_w2c_stack_floor = floor;
  return code;
}
