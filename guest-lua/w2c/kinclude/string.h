/* The compiled guest's <string.h> in the kernel build: the kernel's own functions. */
#ifndef LP_KINCLUDE_STRING_H
#define LP_KINCLUDE_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
#endif
