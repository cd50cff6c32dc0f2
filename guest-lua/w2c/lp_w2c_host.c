/*
 * The compiled engine's host side in C: the guest's `lp` imports (wasm2c names them Z_lpZ_*)
 * and every call into the guest. The imports that are data (log, now, packet bytes, fuel) call
 * the runtime's own, in Rust (kmod-wasmi/runtime/src/compiled_exec.rs, over runtime::imports); the two
 * that are control flow are here: `try` re-enters the guest under a lp_setjmp of its own,
 * `throw` unwinds to the innermost one. Every call into the guest from Rust is armed the same
 * way and returns the trap code (0: none), so that no longjmp ever crosses a Rust frame.
 *
 * In the kernel (-DLP_W2C_KERNEL) guest code runs with preemption disabled: the innermost
 * armed frame is kept per CPU, and another task must not run guest code on this CPU while this
 * one is inside. The one place a call may reschedule is between the slices of a load's budget
 * (the out_of_fuel import): preemption is enabled around it and this task's frame put back
 * after. Softirqs nest (a packet's call interrupting a load's) and restore what they found.
 */
#include "lp_abi.h"
#include "lua_w2c.h"

/* what Rust provides (status: 0, or the trap code to raise) */
extern void lp_w2c_import_log(void *rust, uint32_t level, uint32_t ptr, uint32_t len);
extern uint64_t lp_w2c_import_now(void *rust);
extern int lp_w2c_import_pkt_read(void *rust, uint32_t off, uint32_t dst, uint32_t len, int32_t *out);
extern int lp_w2c_import_pkt_write(void *rust, uint32_t off, uint32_t src, uint32_t len, int32_t *out);
extern int lp_w2c_import_out_of_fuel(void *rust);
extern int32_t lp_w2c_import_map_declare(void *rust, uint32_t spec, uint32_t len);
extern int lp_w2c_import_map_op(void *rust, uint32_t op, uint32_t id, uint32_t key, uint32_t klen,
                                uint32_t val, uint32_t vlen, int32_t *out);
extern int lp_w2c_import_send(void *rust, uint32_t kind, uint32_t ptr, uint32_t len, int32_t *out);
extern int lp_w2c_import_timer(void *rust, uint32_t op, uint32_t ref, uint32_t ms, int32_t *out);
/* zeroed, 16-byte aligned, NULL on failure; freed with the size it was allocated with */
extern void *lp_w2c_zalloc(size_t size);
extern void lp_w2c_dealloc(void *p, size_t size);
extern lp_jmp_buf **lp_w2c_target_slot(void);

/* lp_w2c_enter(frame): preemption off, `frame` the innermost armed frame, the previous one
 * returned; lp_w2c_leave(frame): `frame` the innermost again, preemption on. One call each
 * way around every call into the guest. */
#ifdef LP_W2C_KERNEL
extern lp_jmp_buf *lp_w2c_enter(lp_jmp_buf *frame);
extern void lp_w2c_leave(lp_jmp_buf *frame);
/* native stack a top-level call may use below its host frame: the script stacks (and the
 * load's) are 96 KiB; 72 KiB is room for the deepest pcall nesting allowed (31 levels under
 * the entry, ~62 KiB on this engine: ~1.9 KiB a level, every Lua C function on the way is a
 * native frame here) and for C recursion to Lua's own limit (~65 KiB), and leaves the rest
 * to the frames above the entry and to interrupts */
#define LP_W2C_STACK (72u << 10)
#else
static inline lp_jmp_buf *lp_w2c_enter(lp_jmp_buf *frame) {
  lp_jmp_buf *outer = *lp_w2c_target_slot();
  *lp_w2c_target_slot() = frame;
  return outer;
}
static inline void lp_w2c_leave(lp_jmp_buf *frame) {
  *lp_w2c_target_slot() = frame;
}
#define LP_W2C_STACK (1u << 20)
#endif

/* table elements room is made for (the built-in guest has 185) */
#define LP_W2C_TABLE_MAX 1024u

struct Z_lp_instance_t {
  void *rust;
  Z_lua_instance_t *inst;
  uint32_t depth, max_depth; /* host re-entries (`try` frames) and their cap */
  uint32_t recursion;        /* wasm frames per entry into the guest */
};

/* The state wasm-rt.h's prologue check reads sits right in front of the instance. */
struct lp_w2c {
  struct lp_w2c_state st;
  Z_lua_instance_t inst;
  struct Z_lp_instance_t host;
};
_Static_assert(offsetof(struct lp_w2c, inst) == sizeof(struct lp_w2c_state),
               "the prologue's state must directly precede the instance");

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

u32 Z_lpZ_map_declare(struct Z_lp_instance_t *h, u32 spec, u32 len) {
  lp_jmp_buf *mine = *lp_w2c_target_slot();
  int32_t r;
  /* declaring allocates the map in full (process context, while the top-level chunk runs):
   * preemption on around it, as between a load's slices */
  lp_w2c_leave(mine);
  r = lp_w2c_import_map_declare(h->rust, spec, len);
  lp_w2c_enter(mine);
  return (u32)r;
}

u32 Z_lpZ_map_op(struct Z_lp_instance_t *h, u32 op, u32 id, u32 key, u32 klen, u32 val, u32 vlen) {
  int32_t r = -1;
  int trap = lp_w2c_import_map_op(h->rust, op, id, key, klen, val, vlen, &r);
  if (trap) wasm_rt_trap(trap);
  return (u32)r;
}

u32 Z_lpZ_send(struct Z_lp_instance_t *h, u32 kind, u32 ptr, u32 len) {
  int32_t r = -1;
  int trap = lp_w2c_import_send(h->rust, kind, ptr, len, &r);
  if (trap) wasm_rt_trap(trap);
  return (u32)r;
}

u32 Z_lpZ_timer(struct Z_lp_instance_t *h, u32 op, u32 ref, u32 ms) {
  int32_t r = -1;
  int trap = lp_w2c_import_timer(h->rust, op, ref, ms, &r);
  if (trap) wasm_rt_trap(trap);
  return (u32)r;
}

void Z_lpZ_out_of_fuel(struct Z_lp_instance_t *h) {
  lp_jmp_buf *mine = *lp_w2c_target_slot();
  int trap;
  /* the next slice of a load may come after a reschedule (see the top) */
  lp_w2c_leave(mine);
  trap = lp_w2c_import_out_of_fuel(h->rust);
  lp_w2c_enter(mine);
  if (trap) wasm_rt_trap(trap);
}

/* The generated code calls this as a function that returns: it must have a return path (never
 * taken; `h` is never NULL) or objtool, seeing a dead end, calls what follows unreachable. */
void Z_lpZ_throw(struct Z_lp_instance_t *h) {
  if (LIKELY(h != NULL)) wasm_rt_trap(LP_W2C_TRAP_THROW);
}

u32 Z_lpZ_try(struct Z_lp_instance_t *h, u32 ud) {
  struct lp_w2c_state *st = LP_W2C_STATE(h->inst);
  lp_jmp_buf here;
  lp_jmp_buf *outer = *lp_w2c_target_slot();
  uint32_t sp = h->inst->w2c___stack_pointer;
  uint32_t depth = st->depth, max = st->max_depth;
  int code;
  if (h->depth >= h->max_depth) wasm_rt_trap(LP_W2C_TRAP_DEPTH);
  h->depth++;
  st->max_depth = depth + h->recursion;
  *lp_w2c_target_slot() = &here;
  code = lp_setjmp(&here);
  if (code == 0) Z_luaZ_lp_trampoline(h->inst, ud);
  *lp_w2c_target_slot() = outer;
  st->depth = depth;
  st->max_depth = max;
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

void lp_w2c_free(struct lp_w2c *w) {
  if (!w) return;
  Z_lua_free(&w->inst);
  if (w->inst.w2c_memory.data) lp_w2c_dealloc(w->inst.w2c_memory.data, w->inst.w2c_memory.capacity);
  if (w->inst.w2c_T0.data)
    lp_w2c_dealloc(w->inst.w2c_T0.data, LP_W2C_TABLE_MAX * sizeof *w->inst.w2c_T0.data);
  lp_w2c_dealloc(w, sizeof *w);
}

/*
 * A new instance for `rust` (its import context) whose linear memory is `memory` bytes,
 * allocated here in full. *err: 0, -1 when an allocation failed, -2 when the guest's initial
 * or maximum memory does not fit `memory`, -3 when instantiation trapped otherwise.
 */
struct lp_w2c *lp_w2c_new(void *rust, uint64_t memory, int *err) {
  lp_jmp_buf here;
  lp_jmp_buf *outer;
  struct lp_w2c *w;
  int code;
  *err = -1;
  if (memory < 65536u || memory != (size_t)memory) {
    *err = -2;
    return NULL;
  }
  w = lp_w2c_zalloc(sizeof *w);
  if (!w) return NULL;
  w->host.rust = rust;
  w->host.inst = &w->inst;
  /* the memory first: the embedder's announced allocation is the next one this large */
  w->inst.w2c_memory.data = lp_w2c_zalloc((size_t)memory);
  w->inst.w2c_memory.capacity = memory;
  w->inst.w2c_T0.data = lp_w2c_zalloc(LP_W2C_TABLE_MAX * sizeof *w->inst.w2c_T0.data);
  w->inst.w2c_T0.max_size = LP_W2C_TABLE_MAX;
  if (!w->inst.w2c_memory.data || !w->inst.w2c_T0.data) {
    lp_w2c_free(w);
    return NULL;
  }
  outer = lp_w2c_enter(&here);
  code = lp_setjmp(&here);
  if (code == 0) Z_lua_instantiate(&w->inst, &w->host);
  lp_w2c_leave(outer);
  if (code) {
    *err = code == LP_W2C_TRAP_MEMORY ? -2 : -3;
    lp_w2c_free(w);
    return NULL;
  }
  /* As wasmi's instances (and the other engines'): linear memory is the script's limit from
   * the start, memory.size says so and the guest's allocator never grows it. Fuel, and where
   * memory runs out, are then the same number in every engine. */
  {
    wasm_rt_memory_t *m = &w->inst.w2c_memory;
    uint32_t pages = (uint32_t)(memory / 65536u);
    /* never below the initial memory: the generated code relies on it (lp_w2c_mem.h) */
    if (pages > m->max_pages || pages < m->pages) {
      *err = -2;
      lp_w2c_free(w);
      return NULL;
    }
    m->pages = m->max_pages = pages;
    m->size = (uint64_t)pages * 65536u;
  }
  *err = 0;
  return w;
}

/* Where the host reads and writes an instance's state (compiled_exec.rs's `View`): fixed for
 * the instance's life, linear memory included (allocated in full, it never grows: see
 * lp_w2c_new), so the host takes them once instead of a call each time. */
struct lp_w2c_view {
  uint8_t *memory;
  uint64_t memory_size;
  uint64_t *fuel;
  uint32_t *stack_pointer;
  uint32_t *depth;     /* host re-entries: 0 at a top-level call */
  uint32_t *max_depth; /* their cap */
};

void lp_w2c_view(struct lp_w2c *w, struct lp_w2c_view *v) {
  v->memory = w->inst.w2c_memory.data;
  v->memory_size = w->inst.w2c_memory.size;
  v->fuel = &w->inst.w2c_lp_fuel;
  v->stack_pointer = &w->inst.w2c___stack_pointer;
  v->depth = &w->host.depth;
  v->max_depth = &w->host.max_depth;
}

/* `reentries`: nested `try` frames allowed; `recursion`: wasm frames per entry. */
void lp_w2c_limits(struct lp_w2c *w, uint32_t reentries, uint32_t recursion) {
  w->host.max_depth = reentries;
  w->host.recursion = recursion;
}

/* The exports, numbered as compiled_exec.rs's `export_number`. */
enum { X_CTX, X_INIT, X_LOAD, X_RUN, X_RECOVER, X_ERRMSG, X_ERRLEN, X_MEM_USED, X_ALLOC,
       X_FREE, X_REF_GLOBAL, X_REF_STRING, X_FEATURES, X_FUEL_STOP };

/* Calls export `x` with `a`; its result in *ret. Returns 0, or the trap code. */
int lp_w2c_call(struct lp_w2c *w, int x, const int32_t *a, int32_t *ret) {
  struct lp_w2c_state *st = &w->st;
  lp_jmp_buf here;
  lp_jmp_buf *outer;
  uint32_t depth = st->depth, max = st->max_depth;
  uintptr_t floor = st->stack_floor;
  Z_lua_instance_t *i = &w->inst;
  int code;
  outer = lp_w2c_enter(&here);
  st->max_depth = depth + w->host.recursion;
  /* a nested call (the soft stop's, from an import) keeps the outer call's floor */
  if (st->entries++ == 0)
    st->stack_floor = (uintptr_t)__builtin_frame_address(0) - LP_W2C_STACK;
  code = lp_setjmp(&here);
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
  st->entries--;
  st->depth = depth;
  st->max_depth = max;
  st->stack_floor = floor;
  lp_w2c_leave(outer);
  return code;
}
