/*
 * Force-included into every Lua source file of the wasm guest (clang -include).
 *
 * Lua raises errors with setjmp/longjmp; wasm32 without the exception-handling proposal has
 * neither, so errors go through the host instead (see lp_guest.c):
 *  - LUAI_TRY asks the host to call the protected body back (import lp.try), except for the
 *    outermost one of a host call, which runs inline: that host call is then the catch frame.
 *  - LUAI_THROW traps through the host (import lp.throw); the host resumes after the nearest
 *    try, or ends the top-level call and runs lp_recover.
 * LUAI_TRY is used once, in ldo.c's luaD_rawrunprotected, whose body is always `(*f)(L, ud);`,
 * so the macro passes `f` and `ud` from that scope.
 */
#ifndef LP_CONF_H
#define LP_CONF_H

struct lua_State;
struct lua_longjmp;

#define luai_jmpbuf int
/* Lua's hook mask only needs to be volatile: no signals in wasm. */
#define l_signalT int
void lp_try(struct lua_State *L, struct lua_longjmp *c, void (*f)(struct lua_State *, void *), void *ud);
__attribute__((noreturn)) void lp_throw(struct lua_longjmp *c);
#define LUAI_TRY(L, c, a) lp_try((L), (c), f, ud);
#define LUAI_THROW(L, c) lp_throw((c))

/* Nested C calls (and parser levels) a script may make: sized so that the deepest nesting
 * fits the guest's 32 KiB shadow stack, so it ends in a clean "C stack overflow" error. */
#define LUAI_MAXCCALLS 100

/* The string-hash seed comes from the host (random per instance); no clock, no WASI. */
extern unsigned int lp_seed;
#define luai_makeseed(L) (lp_seed)
#define l_randomizePivot() (lp_seed ^ 0x9e3779b9u)

/* Everything Lua would write to stdout/stderr goes to the script's log. */
void lp_writestring(const char *s, unsigned long l);
void lp_writeline(void);
void lp_writestringerror(const char *fmt, const char *p);
#define lua_writestring(s, l) lp_writestring((s), (l))
#define lua_writeline() lp_writeline()
#define lua_writestringerror(s, p) lp_writestringerror((s), (p))

/* Lua turns every integer into text (tostring, concatenation, the line numbers of error
 * messages) with snprintf(buf, n, "%lld", v); wasi-libc's printf core costs ~1,000 fuel a
 * call for that. lp_snprintf (libc_sandbox.c) formats "%lld" itself and hands any other
 * format to vsnprintf. */
int lp_snprintf(char *s, __SIZE_TYPE__ n, const char *fmt, ...);
#define snprintf lp_snprintf

#endif
