/*
 * Linear-memory accesses of the generated code, through a view held in each function's locals.
 *
 * wasm2c's own accessors take the memory by pointer and read its base and size from the
 * instance at every load and store: a store through the base may alias them as far as the C
 * compiler knows, so each access was three memory operations (size, base, the access). The
 * build (kmod-wasmi/runtime/build.rs, `view_memory`) rewrites the generated C so that every
 * function copies base and size into constant locals once (LPM_VIEW, after its prologue) and
 * every load and store goes through lpm_* below, which compare with the local size: the
 * compiler keeps both in registers.
 *
 * Why the local copy is the memory's size: an instance's memory is allocated in full and given
 * its final size before any guest code runs (lp_w2c_new; instantiation runs no guest function,
 * which the build checks), and it never changes afterwards: memory.grow fails
 * (wasm_rt_grow_memory), as it does under wasmi for the same guest. Every access is still
 * compared with the size and traps past it, as wasm2c's own accessors do.
 */
#ifndef LP_W2C_MEM_H
#define LP_W2C_MEM_H

#include <stdint.h>

#include "wasm-rt.h"

#ifndef LPM_MIN_SIZE
#error "LPM_MIN_SIZE: the module's initial memory in bytes (kmod-wasmi/runtime/build.rs)"
#endif

/*
 * The size is also at least the module's initial memory (LPM_MIN_SIZE, defined by the build
 * from the generated code: instantiation traps when the room is smaller, lp_w2c_new keeps at
 * least that much): telling the compiler so removes the checks of accesses to fixed
 * addresses below it (the guest's C globals), which could not fail.
 */
#define LPM_VIEW                                                                  \
  uint8_t *const lpm_data __attribute__((unused)) = instance->w2c_memory.data; \
  const uint64_t lpm_size __attribute__((unused)) = instance->w2c_memory.size;  \
  if (lpm_size < LPM_MIN_SIZE) __builtin_unreachable()

/* one out-of-line trap for every access: the checks' cold code is a call each */
__attribute__((noinline, cold, noreturn)) static void lpm_oob(void) {
  wasm_rt_trap(WASM_RT_TRAP_OOB);
}

/* addr is a u32 address plus a u32 offset: no overflow in u64 */
static inline __attribute__((always_inline)) void lpm_check(uint64_t size, uint64_t addr,
                                                            uint64_t len) {
  if (UNLIKELY(addr + len > size)) lpm_oob();
}

#define LPM_LOAD(name, t1, t2, t3)                                                      \
  static inline __attribute__((always_inline)) t3 lpm_##name(uint8_t *data, uint64_t size, \
                                                            uint64_t addr) {              \
    t1 r;                                                                               \
    lpm_check(size, addr, sizeof(t1));                                                  \
    __builtin_memcpy(&r, data + addr, sizeof(t1));                                      \
    return (t3)(t2)r;                                                                   \
  }

#define LPM_STORE(name, t1, t2)                                                            \
  static inline __attribute__((always_inline)) void lpm_##name(uint8_t *data, uint64_t size, \
                                                              uint64_t addr, t2 value) {     \
    t1 w = (t1)value;                                                                      \
    lpm_check(size, addr, sizeof(t1));                                                     \
    __builtin_memcpy(data + addr, &w, sizeof(t1));                                         \
  }

/* wasm2c 1.0's DEFINE_LOAD / DEFINE_STORE list, with its types */
LPM_LOAD(i32_load, uint32_t, uint32_t, uint32_t)
LPM_LOAD(i64_load, uint64_t, uint64_t, uint64_t)
LPM_LOAD(f32_load, float, float, float)
LPM_LOAD(f64_load, double, double, double)
LPM_LOAD(i32_load8_s, int8_t, int32_t, uint32_t)
LPM_LOAD(i64_load8_s, int8_t, int64_t, uint64_t)
LPM_LOAD(i32_load8_u, uint8_t, uint32_t, uint32_t)
LPM_LOAD(i64_load8_u, uint8_t, uint64_t, uint64_t)
LPM_LOAD(i32_load16_s, int16_t, int32_t, uint32_t)
LPM_LOAD(i64_load16_s, int16_t, int64_t, uint64_t)
LPM_LOAD(i32_load16_u, uint16_t, uint32_t, uint32_t)
LPM_LOAD(i64_load16_u, uint16_t, uint64_t, uint64_t)
LPM_LOAD(i64_load32_s, int32_t, int64_t, uint64_t)
LPM_LOAD(i64_load32_u, uint32_t, uint64_t, uint64_t)
LPM_STORE(i32_store, uint32_t, uint32_t)
LPM_STORE(i64_store, uint64_t, uint64_t)
LPM_STORE(f32_store, float, float)
LPM_STORE(f64_store, double, double)
LPM_STORE(i32_store8, uint8_t, uint32_t)
LPM_STORE(i32_store16, uint16_t, uint32_t)
LPM_STORE(i64_store8, uint8_t, uint64_t)
LPM_STORE(i64_store16, uint16_t, uint64_t)
LPM_STORE(i64_store32, uint32_t, uint64_t)

#endif
