/*
 * The runtime behind wasm-rt.h: linear memory and tables (in room lp_w2c_new allocated), the
 * function-type registry, and traps that unwind to the innermost host frame (lp_w2c_host.c
 * arms them with lp_setjmp).
 *
 * The same file builds for lpctl and, with -DLP_W2C_KERNEL, for nft_lua.ko: the only
 * difference is where the innermost armed frame is kept (lp_w2c_target_slot()).
 */
#include "wasm-rt.h"

#define PAGE 65536u


#ifdef LP_W2C_KERNEL
/* this CPU's slot (lp_shim.c): guest code runs with preemption disabled (lp_w2c_host.c) */
extern lp_jmp_buf **lp_w2c_target_slot(void);
#else
static _Thread_local lp_jmp_buf *lp_w2c_target;
lp_jmp_buf **lp_w2c_target_slot(void) {
  return &lp_w2c_target;
}
#endif


bool wasm_rt_is_initialized(void) {
  return true;
}

/* lp_longjmp, and lp_w2c_abort (a trap with no host frame armed: a broken invariant of this
 * runtime; the embedder panics), declared returning: the calls are then followed by ud2, where
 * objtool (which does not know them) looks for the end of wasm_rt_trap. */
extern void lp_w2c_longjmp_call(lp_jmp_buf *b, int v) __asm__("lp_longjmp");
extern void lp_w2c_abort_call(void) __asm__("lp_w2c_abort");

/* Only a host entry runs guest code, and it arms a frame first. */
void wasm_rt_trap(wasm_rt_trap_t code) {
  lp_jmp_buf *t = *lp_w2c_target_slot();
  if (t)
    lp_w2c_longjmp_call(t, (int)code);
  else
    lp_w2c_abort_call();
  __builtin_trap();
}

/* Function types: each distinct signature gets one number (call_indirect compares them).
 * Registered once, when the module is initialised (lp_w2c_init, before any instance). A
 * signature past the table's room gets number 0, which no function has: calls through it trap. */
#define MAX_TYPES 256
#define MAX_ARITY 24
static struct sig {
  uint32_t params, results;
  uint8_t types[MAX_ARITY];
} sigs[MAX_TYPES];
static uint32_t nsigs;

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...) {
  struct sig s = {.params = params, .results = results};
  uint32_t i, n = params + results;
  __builtin_va_list ap;
  if (n > MAX_ARITY) return 0;
  __builtin_va_start(ap, results);
  for (i = 0; i < n; i++) s.types[i] = (uint8_t)__builtin_va_arg(ap, int);
  __builtin_va_end(ap);
  for (i = 0; i < nsigs; i++)
    if (!memcmp(&sigs[i], &s, sizeof s)) return i + 1;
  if (nsigs == MAX_TYPES) return 0;
  sigs[nsigs] = s;
  return ++nsigs;
}

/*
 * Memory and the table are allocated by lp_w2c_new before instantiation (the kernel runs guest
 * code with preemption disabled, where it cannot allocate): instantiation takes room
 * from what is there, and fail (a trap, the instance is not made) when it is short.
 */
void wasm_rt_allocate_memory(wasm_rt_memory_t *mem, uint32_t initial_pages, uint32_t max_pages) {
  uint64_t bytes = (uint64_t)initial_pages * PAGE;
  if (!mem->data || bytes > mem->capacity) wasm_rt_trap(LP_W2C_TRAP_MEMORY);
  mem->pages = initial_pages;
  mem->max_pages = max_pages;
  if ((uint64_t)mem->max_pages * PAGE > mem->capacity) mem->max_pages = (uint32_t)(mem->capacity / PAGE);
  mem->size = bytes;
}

/* The guest's memory.grow: the old size for a growth of 0, else -1. An instance's memory has
 * its final size before guest code runs (lp_w2c_new: the script's limit, as under wasmi, where
 * the built-in guest cannot grow it either), and the generated code holds that size in each
 * function's locals (lp_w2c_mem.h): a size that changed would leave them behind. */
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *mem, uint32_t delta) {
  return delta == 0 ? mem->pages : (uint32_t)-1;
}

void wasm_rt_free_memory(wasm_rt_memory_t *mem) {
  (void)mem; /* lp_w2c_free frees what lp_w2c_new allocated */
}

void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *t, uint32_t elements,
                                    uint32_t max_elements) {
  if (!t->data || elements > t->max_size) wasm_rt_trap(LP_W2C_TRAP_MEMORY);
  t->size = elements;
  (void)max_elements; /* tables do not grow (the guest has no table.grow) */
}

void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t *t) {
  (void)t;
}
