/* What kmod-wasmi/kernel/lp_rt.h takes from the kernel's headers, for kbench.c in userspace. */
#ifndef KBENCH_LINUX_TYPES_H
#define KBENCH_LINUX_TYPES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef int32_t s32;
typedef uint64_t u64;
#define __noreturn __attribute__((noreturn))
#endif
