/*
 * The runtime behind wasm-rt.h for the userspace build of the compiled engine: linear memory
 * and tables on the heap, the function-type registry, and traps that unwind to the innermost
 * host frame (lp_w2c_host.c arms them with setjmp).
 */
#include <stdarg.h>
#include <stdlib.h>

#include "wasm-rt.h"

_Thread_local uint32_t lp_w2c_depth;
_Thread_local uint32_t lp_w2c_max_depth;
_Thread_local uintptr_t lp_w2c_stack_floor;
/* the innermost armed host frame of this thread (NULL: none, a trap aborts) */
_Thread_local jmp_buf *lp_w2c_target;

#define PAGE 65536u

bool wasm_rt_is_initialized(void) {
  return true;
}

void wasm_rt_trap(wasm_rt_trap_t code) {
  if (!lp_w2c_target) abort();
  longjmp(*lp_w2c_target, (int)code);
}

/* Function types: each distinct signature gets one number (call_indirect compares them).
 * Registered once, when the module is initialised (lp_w2c_init, under a Once). */
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
  va_list ap;
  if (n > MAX_ARITY) abort();
  va_start(ap, results);
  for (i = 0; i < n; i++) s.types[i] = (uint8_t)va_arg(ap, int);
  va_end(ap);
  for (i = 0; i < nsigs; i++)
    if (!memcmp(&sigs[i], &s, sizeof s)) return i + 1;
  if (nsigs == MAX_TYPES) abort();
  sigs[nsigs] = s;
  return ++nsigs;
}

void wasm_rt_allocate_memory(wasm_rt_memory_t *mem, uint32_t initial_pages, uint32_t max_pages) {
  mem->data = calloc((size_t)initial_pages ? initial_pages : 1, PAGE);
  if (!mem->data) wasm_rt_trap(LP_W2C_TRAP_MEMORY);
  mem->pages = initial_pages;
  mem->max_pages = max_pages;
  mem->size = (uint64_t)initial_pages * PAGE;
}

/* The guest's memory.grow: the old size in pages, or -1 past the maximum the host set (the
 * script's memory limit) or when the allocator fails. */
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *mem, uint32_t delta) {
  uint32_t old = mem->pages;
  uint64_t pages = (uint64_t)old + delta;
  uint8_t *data;
  if (delta == 0) return old;
  if (pages > mem->max_pages) return (uint32_t)-1;
  data = realloc(mem->data, (size_t)pages * PAGE);
  if (!data) return (uint32_t)-1;
  memset(data + (size_t)old * PAGE, 0, (size_t)delta * PAGE);
  mem->data = data;
  mem->pages = (uint32_t)pages;
  mem->size = pages * PAGE;
  return old;
}

void wasm_rt_free_memory(wasm_rt_memory_t *mem) {
  free(mem->data);
  mem->data = NULL;
  mem->size = mem->pages = 0;
}

void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *t, uint32_t elements,
                                    uint32_t max_elements) {
  t->data = calloc(elements ? elements : 1, sizeof *t->data);
  if (!t->data) wasm_rt_trap(LP_W2C_TRAP_MEMORY);
  t->size = elements;
  t->max_size = max_elements;
}

void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t *t) {
  free(t->data);
  t->data = NULL;
  t->size = 0;
}
