/* The compiled guest's <assert.h> in the kernel build: its asserts are host invariants
 * (the module initialised before instantiation), which lp_w2c_host.c keeps. */
#ifndef LP_KINCLUDE_ASSERT_H
#define LP_KINCLUDE_ASSERT_H
#define assert(x) ((void)0)
#endif
