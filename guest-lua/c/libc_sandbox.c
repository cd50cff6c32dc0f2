/*
 * wasi-libc's snprintf (which Lua uses to format numbers) links its stdio core, whose stdout
 * and stderr objects point at the WASI-backed write/seek/close functions. Nothing in the guest
 * ever writes to those streams, so these definitions take the place of the WASI-backed ones
 * and keep the guest free of WASI imports (a test in guest-lua checks the import list).
 */
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
