/* The compiled guest's <alloca.h> in the kernel build (wasm2c includes it; the guest's
 * translation does not call it). */
#ifndef LP_KINCLUDE_ALLOCA_H
#define LP_KINCLUDE_ALLOCA_H
#define alloca __builtin_alloca
#endif
