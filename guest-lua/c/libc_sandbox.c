/*
 * wasi-libc's snprintf (which Lua uses to format numbers) links its stdio core, whose stdout
 * and stderr objects point at the WASI-backed write/seek/close functions. Nothing in the guest
 * ever writes to those streams, so these definitions take the place of the WASI-backed ones
 * and keep the guest free of WASI imports (a test in guest-lua checks the import list).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

size_t __stdio_write(FILE *f, const unsigned char *buf, size_t len) {
  (void)f;
  (void)buf;
  (void)len;
  return 0;
}

off_t __stdio_seek(FILE *f, off_t off, int whence) {
  (void)f;
  (void)off;
  (void)whence;
  return -1;
}

int __stdio_close(FILE *f) {
  (void)f;
  return 0;
}

/* Nothing is buffered in guest stdio, so nothing needs flushing at exit. Defining this keeps
 * libc's exit-time flush — a destructor — out of the module: with a destructor present, the
 * linker wraps every export in a call to it, which cost ~90 fuel per host call. */
void __stdio_exit_needed(void) {}

/* snprintf(s, n, "%lld", v), as C99 defines it: the length the whole number needs, at most
 * n - 1 bytes of it written and a NUL (when n > 0). */
static int format_lld(char *s, size_t n, long long v) {
  char digits[24];
  int len = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    digits[len++] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u != 0);
  if (v < 0)
    digits[len++] = '-';
  if (n > 0) {
    size_t w = (size_t)len < n - 1 ? (size_t)len : n - 1;
    for (size_t i = 0; i < w; i++)
      s[i] = digits[len - 1 - (int)i];
    s[w] = '\0';
  }
  return len;
}

int lp_snprintf(char *s, size_t n, const char *fmt, ...) {
  va_list ap;
  int r;
  va_start(ap, fmt);
  if (fmt[0] == '%' && fmt[1] == 'l' && fmt[2] == 'l' && fmt[3] == 'd' && fmt[4] == '\0')
    r = format_lld(s, n, va_arg(ap, long long));
  else
    r = vsnprintf(s, n, fmt, ap);
  va_end(ap);
  return r;
}
