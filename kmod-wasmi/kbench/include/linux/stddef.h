/* For lp_rt.h in userspace (kbench.c): offsetof. */
#include <stddef.h>
