/*
 * The runtime interface wasm2c's output (WABT 1.0.32) compiles against, written for luapkt's
 * compiled engine (docs/engines.md). Only what the built-in guest's translation uses:
 *  - linear memory with explicit bounds checks (no guard pages, no signal handler);
 *  - a call-depth count in every function prologue, per instance, against a limit
 *    the host sets for each call;
 *  - a trap unwinds (longjmp) to the innermost host frame that armed one (lp_w2c_host.c).
 * The names and layouts are the ones the generated code uses.
 */
#ifndef LP_WASM_RT_H
#define LP_WASM_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WASM_RT_NO_RETURN __attribute__((noreturn))
#define wasm_rt_memcpy __builtin_memcpy

/* explicit bounds checks on every access; a depth count in every prologue */
#define WASM_RT_MEMCHECK_SIGNAL_HANDLER 0
#define WASM_RT_USE_STACK_DEPTH_COUNT 1
#define WABT_BIG_ENDIAN 0

/*
 * Per instance, in front of the instance wasm2c lays out (lp_w2c_host.c's struct lp_w2c): the
 * depth of wasm calls and its limit (the host sets it per entry into the guest, as wasmi limits
 * each entry's frames), and the lowest native stack address guest code may use. Every
 * prologue checks both (a frame below the floor sees a limit of 0); each generated function has
 * its instance in `instance`. Per instance rather than per thread: the kernel has no thread-
 * local storage, and a packet's call (softirq) may interrupt a load's on the same CPU.
 */
struct lp_w2c_state {
  uint32_t depth, max_depth;
  uintptr_t stack_floor;
  uint32_t entries; /* host entries into the guest running now (nested: the soft stop's) */
  uint32_t pad;
};
#define LP_W2C_STATE(inst) ((struct lp_w2c_state *)((char *)(inst) - sizeof(struct lp_w2c_state)))
#define wasm_rt_call_stack_depth (LP_W2C_STATE(instance)->depth)
#define WASM_RT_MAX_CALL_STACK_DEPTH                                     \
  (LIKELY((uintptr_t)__builtin_frame_address(0) >                       \
          LP_W2C_STATE(instance)->stack_floor)                          \
       ? LP_W2C_STATE(instance)->max_depth                              \
       : 0u)

/*
 * Non-local exits (a trap to the host's entry, a Lua error to the innermost `try`): setjmp and
 * longjmp of our own on x86-64 (lp_w2c_jmp.c), the same in the kernel, which has none, and in
 * lpctl, whose tests thereby run the kernel's.
 */
typedef struct {
  uint64_t regs[8]; /* rbx, rbp, r12-r15, rsp, return address */
} lp_jmp_buf;
__attribute__((returns_twice)) int lp_setjmp(lp_jmp_buf *b);
WASM_RT_NO_RETURN void lp_longjmp(lp_jmp_buf *b, int v);

typedef enum {
  WASM_RT_TRAP_NONE,
  WASM_RT_TRAP_OOB,
  WASM_RT_TRAP_INT_OVERFLOW,
  WASM_RT_TRAP_DIV_BY_ZERO,
  WASM_RT_TRAP_INVALID_CONVERSION,
  WASM_RT_TRAP_UNREACHABLE,
  WASM_RT_TRAP_CALL_INDIRECT,
  WASM_RT_TRAP_UNCAUGHT_EXCEPTION,
  WASM_RT_TRAP_EXHAUSTION,
  /* luapkt's own: the host's traps and the Lua error unwinding (lp_w2c_host.c) */
  LP_W2C_TRAP_FUEL,
  LP_W2C_TRAP_DEPTH,
  LP_W2C_TRAP_THROW,
  LP_W2C_TRAP_MEMORY,
} wasm_rt_trap_t;

typedef enum {
  WASM_RT_I32,
  WASM_RT_I64,
  WASM_RT_F32,
  WASM_RT_F64,
  WASM_RT_FUNCREF,
  WASM_RT_EXTERNREF,
} wasm_rt_type_t;

typedef void (*wasm_rt_function_ptr_t)(void);

typedef struct {
  uint32_t func_type;
  wasm_rt_function_ptr_t func;
  void *module_instance;
} wasm_rt_funcref_t;

typedef void *wasm_rt_externref_t;
#define wasm_rt_externref_null_value ((wasm_rt_externref_t)NULL)

/* `capacity`: bytes allocated, set before instantiation (lp_w2c_new): memory grows within it
 * and never allocates while guest code runs. */
typedef struct {
  uint8_t *data;
  uint32_t pages, max_pages;
  uint64_t size;
  uint64_t capacity;
} wasm_rt_memory_t;

typedef struct {
  wasm_rt_funcref_t *data;
  uint32_t max_size, size;
} wasm_rt_funcref_table_t;

typedef struct {
  wasm_rt_externref_t *data;
  uint32_t max_size, size;
} wasm_rt_externref_table_t;

bool wasm_rt_is_initialized(void);
WASM_RT_NO_RETURN void wasm_rt_trap(wasm_rt_trap_t code);
uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...);
void wasm_rt_allocate_memory(wasm_rt_memory_t *mem, uint32_t initial_pages, uint32_t max_pages);
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *mem, uint32_t delta);
void wasm_rt_free_memory(wasm_rt_memory_t *mem);
void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *t, uint32_t elements,
                                    uint32_t max_elements);
void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t *t);

#endif
