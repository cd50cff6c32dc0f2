/*
 * The host side of checks.wat for kmod-wasmi/runtime/tests/compiled_checks.rs: an instance laid out
 * as lp_w2c_host.c lays out the guest's (the prologue's state in front, memory and table
 * allocated before instantiation), and each export called under an armed frame.
 */
#include "checks_w2c.h"

extern void *lp_w2c_zalloc(size_t size);
extern void lp_w2c_dealloc(void *p, size_t size);
extern lp_jmp_buf **lp_w2c_target_slot(void);

struct lp_w2c_checks {
  struct lp_w2c_state st;
  Z_checks_instance_t inst;
};
_Static_assert(offsetof(struct lp_w2c_checks, inst) == sizeof(struct lp_w2c_state),
               "the prologue's state must directly precede the instance");

#define TABLE 16u

/* Once, before any instance (the caller serializes it). */
void lp_w2c_checks_init(void) {
  Z_checks_init_module();
}

/* `memory`: bytes of room (the script's limit); NULL when it does not fit the module. */
struct lp_w2c_checks *lp_w2c_checks_new(uint64_t memory) {
  struct lp_w2c_checks *c = lp_w2c_zalloc(sizeof *c);
  lp_jmp_buf here, *outer;
  int code;
  c->inst.w2c_memory.data = lp_w2c_zalloc((size_t)memory);
  c->inst.w2c_memory.capacity = memory;
  c->inst.w2c_T0.data = lp_w2c_zalloc(TABLE * sizeof *c->inst.w2c_T0.data);
  c->inst.w2c_T0.max_size = TABLE;
  outer = *lp_w2c_target_slot();
  *lp_w2c_target_slot() = &here;
  code = lp_setjmp(&here);
  if (code == 0) Z_checks_instantiate(&c->inst);
  *lp_w2c_target_slot() = outer;
  if (code) {
    lp_w2c_dealloc(c->inst.w2c_memory.data, (size_t)memory);
    lp_w2c_dealloc(c->inst.w2c_T0.data, TABLE * sizeof *c->inst.w2c_T0.data);
    lp_w2c_dealloc(c, sizeof *c);
    return NULL;
  }
  return c;
}

void lp_w2c_checks_free(struct lp_w2c_checks *c) {
  Z_checks_free(&c->inst);
  lp_w2c_dealloc(c->inst.w2c_memory.data, (size_t)c->inst.w2c_memory.capacity);
  lp_w2c_dealloc(c->inst.w2c_T0.data, TABLE * sizeof *c->inst.w2c_T0.data);
  lp_w2c_dealloc(c, sizeof *c);
}

enum { C_LOAD, C_STORE, C_CALL, C_RECURSE, C_GROW, C_SIZE, C_DIV, C_UNREACHABLE };

/* Calls export `x` with `arg` under wasm call depth `depth` and native stack `stack` below this
 * frame. Returns 0 and *ret, or the trap code. */
int lp_w2c_checks_call(struct lp_w2c_checks *c, int x, uint32_t arg, uint32_t depth,
                       uint32_t stack, uint32_t *ret) {
  lp_jmp_buf here, *outer = *lp_w2c_target_slot();
  Z_checks_instance_t *i = &c->inst;
  int code;
  c->st.depth = 0;
  c->st.max_depth = depth;
  c->st.stack_floor = (uintptr_t)__builtin_frame_address(0) - stack;
  *lp_w2c_target_slot() = &here;
  code = lp_setjmp(&here);
  if (code == 0) {
    uint32_t r = 0;
    switch (x) {
      case C_LOAD: r = Z_checksZ_load(i, arg); break;
      case C_STORE: r = Z_checksZ_store(i, arg); break;
      case C_CALL: r = Z_checksZ_call(i, arg); break;
      case C_RECURSE: r = Z_checksZ_recurse(i, arg); break;
      case C_GROW: r = Z_checksZ_grow(i, arg); break;
      case C_SIZE: r = Z_checksZ_size(i); break;
      case C_DIV: r = Z_checksZ_div(i, arg); break;
      case C_UNREACHABLE: r = Z_checksZ_unreachable(i, arg); break;
      default: wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
    }
    *ret = r;
  }
  *lp_w2c_target_slot() = outer;
  return code;
}
