/* The kernel's one-argument static_assert, for lp_rt.h in userspace (kbench.c). */
#ifndef KBENCH_LINUX_BUILD_BUG_H
#define KBENCH_LINUX_BUILD_BUG_H
#undef static_assert
#define static_assert(expr, ...) _Static_assert(expr, #expr)
#endif
