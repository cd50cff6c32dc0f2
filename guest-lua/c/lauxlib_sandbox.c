/*
 * Lua's auxiliary library, built without files: luaL_loadfilex (the only user of stdio's
 * FILE in it) would drag wasi-libc's stdio — and its WASI imports — into the guest. The file
 * functions it calls are redirected to stubs that fail, and lp_guest.c provides the public
 * luaL_loadfilex, which says there are no files in the sandbox.
 */
#include <stddef.h>
#include <stdio.h>

#undef stdin
#define stdin ((FILE *)0)
#define luaL_loadfilex lp_unused_loadfilex
#define fopen(name, mode) ((void)(name), (void)(mode), (FILE *)0)
#define freopen(name, mode, f) ((void)(name), (void)(mode), (void)(f), (FILE *)0)
#define getc(f) ((void)(f), EOF)
#define fclose(f) ((void)(f), 0)
#define ferror(f) ((void)(f), 1)
#define feof(f) ((void)(f), 1)
#define fread(p, s, n, f) ((void)(p), (void)(s), (void)(n), (void)(f), (size_t)0)

#include "lauxlib.c"
