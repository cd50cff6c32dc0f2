/*
 * The native baseline of `lpctl bench`: the packet library (guest-lua/c/lib) on the host's Lua 5.4 (the
 * vendored build of mlua-sys), behaving like the wasm guest (lp_guest.c) apart from how errors
 * unwind. The Rust half is cli/src/engine/native.rs; together they are the native engine.
 *
 * How the host reaches the state. Each state is one `struct lp_native`, allocated here and owned
 * by the Rust engine through an opaque pointer. It holds:
 *  - the packet context (LP_CTX_SIZE bytes, lp_abi.h), which Rust fills before every packet with
 *    runtime::packet::fill_context, exactly as the sandbox fills guest memory;
 *  - a copy of the `struct lp_native_host` callbacks Rust passes at creation, with Rust's own
 *    pointer `ud`: packet bytes beyond the context's window (pkt_read), log lines (log) and the
 *    clock (now). Nothing else in here calls Rust.
 * lp_state(L)->host points back at the struct lp_native, so nothing is global: any number of
 * states may live in one process, each used by one thread at a time.
 *
 * Errors. Lua raises errors with its own setjmp/longjmp here. Every entry point runs Lua inside
 * lua_pcall, so a longjmp never leaves this file's frames; the Rust callbacks never call Lua, so
 * no longjmp crosses a Rust frame either. Statuses and messages are classified as lp_guest.c does
 * (LP_ERR_*, message + traceback, "out of instructions", "not enough memory", ...).
 *
 * Nested protected calls. The guest refuses pcall, xpcall, load and coroutine resumes nested
 * deeper than its host re-entry cap allows. The same wrappers are installed here with the same
 * limit and message, so scripts see the same thing. The depth counts the wrappers active on the
 * C stack: each one restores the depth it found when its call returns, so an error unwinding
 * through wrappers is accounted for by the wrapper (or top-level call) that catches it, which is
 * always one of them. (Lua's internal protected calls, for __gc and __close, are not counted.)
 *
 * Differences from the guest, by necessity: the memory limit counts the bytes Lua's allocator
 * holds (the guest's is its whole linear memory), there is no fuel, and Lua's C-call limit is the
 * default 200 (the guest's is 100).
 */
#include <stdlib.h>
#include <string.h>

#include "lp_abi.h"
#include "lp_host.h"

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

/* What the host provides; mirrored by `HostCallbacks` in cli/src/engine/native.rs. */
struct lp_native_host {
  void *ud;
  /* Copies packet bytes [off, off+len) to dst (len initialised bytes); returns len or -1. */
  int (*pkt_read)(void *ud, uint32_t off, void *dst, uint32_t len);
  /* Writes packet bytes [off, off+len) from src; returns len or -1. */
  int (*pkt_write)(void *ud, uint32_t off, const void *src, uint32_t len);
  void (*log)(void *ud, int level, const char *s, size_t len);
  int64_t (*now)(void *ud);
  /* lp.map: as the guest's map_declare and map_op imports (abi::guest) */
  int (*map_declare)(void *ud, const void *spec, uint32_t len);
  int (*map_op)(void *ud, int op, int id, const void *key, uint32_t klen, void *val,
                uint32_t vlen);
  /* lp.send: as the guest's send import */
  int (*send)(void *ud, int kind, const void *p, uint32_t len);
};

#define ERRBUF_SIZE 1536
#define WARNBUF_SIZE 512
/* Nested protected calls allowed while the top-level chunk runs (lp_guest.c's initial cap). */
#define LOAD_DEPTH_CAP 8

struct lp_native {
  uint8_t ctx[LP_CTX_SIZE]; /* first: malloc's alignment suits the u32 fields */
  struct lp_state state;    /* lp_state(L); state.host points back here */
  struct lp_native_host host;
  lua_State *L;
  size_t mem_used, mem_limit;
  int depth;     /* protected-call wrappers active on the C stack */
  int depth_cap; /* wrappers refuse when depth + 2 > depth_cap, as in the guest */
  int warn_on, warn_cont;
  size_t warnlen;
  char warnbuf[WARNBUF_SIZE];
  size_t errlen;
  char errbuf[ERRBUF_SIZE];
};

static struct lp_native *native(lua_State *L) { return lp_state(L)->host; }

/* ---- host hooks for the packet library ---- */

int lp_host_pkt_read(struct lp_state *S, uint32_t off, void *dst, uint32_t len) {
  struct lp_native *N = S->host;
  memset(dst, 0, len); /* the host gets initialised bytes to write into */
  return N->host.pkt_read(N->host.ud, off, dst, len);
}

int lp_host_pkt_write(struct lp_state *S, uint32_t off, const void *src, uint32_t len) {
  struct lp_native *N = S->host;
  return N->host.pkt_write(N->host.ud, off, src, len);
}

void lp_host_log(struct lp_state *S, int level, const char *s, size_t len) {
  struct lp_native *N = S->host;
  N->host.log(N->host.ud, level, s, len);
}

int64_t lp_host_now(struct lp_state *S) {
  struct lp_native *N = S->host;
  return N->host.now(N->host.ud);
}

int lp_host_map_declare(struct lp_state *S, const void *spec, uint32_t len) {
  struct lp_native *N = S->host;
  return N->host.map_declare(N->host.ud, spec, len);
}

int lp_host_map_op(struct lp_state *S, int op, int id, const void *key, uint32_t klen, void *val,
                   uint32_t vlen) {
  struct lp_native *N = S->host;
  return N->host.map_op(N->host.ud, op, id, key, klen, val, vlen);
}

/* The native baseline keeps no timers (lpctl's engines over the runtime's container do). */
int lp_host_timer(struct lp_state *S, int op, int ref, int ms) {
  (void)S, (void)op, (void)ref, (void)ms;
  return LP_TIMER_E_UNAVAILABLE;
}
int lp_host_send(struct lp_state *S, int kind, const void *p, uint32_t len) {
  struct lp_native *N = S->host;
  return N->host.send(N->host.ud, kind, p, len);
}

/* ---- allocation: bytes held by Lua, refused past the limit ---- */

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct lp_native *N = ud;
  void *p;
  if (ptr == NULL) osize = 0; /* osize then encodes the object's type */
  if (nsize == 0) {
    free(ptr);
    N->mem_used -= osize;
    return NULL;
  }
  /* growing past the limit fails (Lua collects and retries once); shrinking never does */
  if (nsize > osize && nsize - osize > N->mem_limit - N->mem_used) return NULL;
  p = realloc(ptr, nsize);
  if (p) N->mem_used = N->mem_used - osize + nsize;
  return p;
}

/* ---- warnings (`warn`) go to the log, one line per message ---- */

static void warn_flush(struct lp_native *N) {
  N->host.log(N->host.ud, LP_LOG_WARN, N->warnbuf, N->warnlen);
  N->warnlen = 0;
}

static void warn_add(struct lp_native *N, const char *s) {
  size_t n = strlen(s), room = sizeof N->warnbuf - N->warnlen;
  if (n > room) n = room;
  memcpy(N->warnbuf + N->warnlen, s, n);
  N->warnlen += n;
}

/* lauxlib's warning function ("@on", "@off", messages in pieces), writing to the log. */
static void l_warnf(void *ud, const char *msg, int tocont) {
  struct lp_native *N = ud;
  if (!N->warn_cont && msg[0] == '@') {
    if (!strcmp(msg, "@off")) N->warn_on = 0;
    else if (!strcmp(msg, "@on")) N->warn_on = 1;
    return;
  }
  if (!N->warn_on) return;
  if (!N->warn_cont) warn_add(N, "Lua warning: ");
  warn_add(N, msg);
  N->warn_cont = tocont;
  if (!tocont) warn_flush(N);
}

/* Only reachable through a bug here (every entry point runs Lua protected); Lua aborts next. */
static int l_panic(lua_State *L) {
  static const char what[] = "PANIC: unprotected error in call to Lua API";
  const char *msg = lua_tostring(L, -1);
  lp_host_log(lp_state(L), LP_LOG_WARN, what, sizeof what - 1);
  if (msg) lp_host_log(lp_state(L), LP_LOG_WARN, msg, strlen(msg));
  return 0;
}

/* ---- errors, as lp_guest.c reports them ---- */


static void set_error(struct lp_native *N, const char *s, size_t n) {
  if (n > sizeof N->errbuf) n = sizeof N->errbuf;
  memcpy(N->errbuf, s, n);
  N->errlen = n;
}

static int classify(struct lp_native *N, int status) {
  lua_State *L = N->L;
  size_t n = 0;
  const char *msg;
  switch (status) {
    case LUA_ERRMEM:
      set_error(N, "not enough memory", 17);
      /* no fuel here (the guest leaves this to Lua's emergency collection) */
      lua_settop(L, 0);
      lua_gc(L, LUA_GCCOLLECT);
      return LP_ERR_MEMORY;
    case LUA_ERRSYNTAX:
      msg = lua_tolstring(L, -1, &n);
      set_error(N, msg ? msg : "syntax error", msg ? n : 12);
      return LP_ERR_SYNTAX;
    default:
      break;
  }
  msg = lua_tolstring(L, -1, &n);
  if (!msg) {
    msg = "error object is not a string";
    n = strlen(msg);
  }
  set_error(N, msg, n);
  return lp_error_kind(L, status);
}

/* lua_pcall with msgh. */
static int top_pcall(lua_State *L, int nargs, int nresults) {
  int status, base = lua_gettop(L) - nargs; /* function index */
  lp_kind_reset(L);
  lua_pushcfunction(L, lp_msgh);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return status;
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lp_raise_kind(L, LP_ERR_INSTRUCTIONS, "out of instructions");
}

/* Starts a per-call instruction budget (lua_sethook restarts the count), or removes it. */
static void set_budget(lua_State *L, int budget) {
  if (budget > 0) lua_sethook(L, budget_hook, LUA_MASKCOUNT, budget);
  else if (lua_gethook(L)) lua_sethook(L, NULL, 0, 0);
}

/* ---- nested protected calls, limited as in the guest ---- */

/* pcall, xpcall, load, coroutine.resume and wrapped coroutines. Upvalue 1 is the original. */
static int guarded(lua_State *L) {
  struct lp_native *N = native(L);
  int depth = N->depth;
  if (depth + 2 > N->depth_cap) {
    luaL_where(L, 1);
    lua_pushfstring(L, "too many nested protected calls (limit %d)", N->depth_cap - 1);
    lua_concat(L, 2);
    return lp_raise_top(L, LP_ERR_STACK);
  }
  N->depth = depth + 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  N->depth = depth; /* also undoes wrappers an error unwound through, below this one */
  return lua_gettop(L);
}



/* ---- the state ---- */


static int open_all(lua_State *L) { return lp_open_sandbox(L, guarded); }

/* A new engine state with its callbacks and a limit on the bytes Lua may hold; NULL when even
 * this struct cannot be allocated. The Lua state comes with lp_native_init. */
struct lp_native *lp_native_new(const struct lp_native_host *host, size_t mem_limit) {
  struct lp_native *N = calloc(1, sizeof *N);
  if (!N) return NULL;
  N->host = *host;
  N->mem_limit = mem_limit;
  N->depth_cap = LOAD_DEPTH_CAP;
  N->state.ctx = N->ctx;
  N->state.host = N;
  return N;
}

/* Creates the Lua state and opens the script's libraries: 0 or an LP_ERR_* status. */
int lp_native_init(struct lp_native *N) {
  lua_State *L = lua_newstate(l_alloc, N);
  int status;
  if (!L) {
    set_error(N, "not enough memory", 17);
    return LP_ERR_MEMORY;
  }
  N->L = L;
  /* before any coroutine exists: new threads copy the main thread's extra space */
  *(struct lp_state **)lua_getextraspace(L) = &N->state;
  lua_atpanic(L, l_panic);
  lua_setwarnf(L, l_warnf, N);
  lua_pushcfunction(L, open_all);
  status = top_pcall(L, 0, 0);
  return status == LUA_OK ? 0 : classify(N, status);
}

struct load_args {
  const char *src, *name;
  size_t len, nlen;
  int status;
};

static int p_load(lua_State *L) {
  struct load_args *a = lua_touserdata(L, 1);
  lua_pushliteral(L, "=");
  lua_pushlstring(L, a->name, a->nlen);
  lua_concat(L, 2);
  a->status = luaL_loadbufferx(L, a->src, a->len, lua_tostring(L, -1), "t");
  return 1; /* the chunk or the message */
}

/* Compiles the script (chunk name "=NAME", text only) and runs its top-level chunk with at most
 * `budget` instructions (0: no budget): 0 or an LP_ERR_* status. */
int lp_native_load(struct lp_native *N, const char *src, size_t len, const char *name, size_t nlen, int budget) {
  lua_State *L = N->L;
  struct load_args a;
  int status, err = 0;
  a.src = src;
  a.len = len;
  a.name = name;
  a.nlen = nlen;
  a.status = LUA_OK;
  lua_settop(L, 0);
  lua_pushcfunction(L, p_load);
  lua_pushlightuserdata(L, &a);
  status = lua_pcall(L, 1, 1, 0);
  if (status == LUA_OK) status = a.status;
  if (status != LUA_OK) {
    err = classify(N, status);
  } else {
    set_budget(L, budget);
    status = top_pcall(L, 0, 0);
    set_budget(L, 0);
    if (status != LUA_OK) err = classify(N, status);
  }
  lua_settop(L, 0);
  if (!err) lua_gc(L, LUA_GCCOLLECT); /* as the guest: the load's garbage goes with the load */
  return err;
}

struct ref_args {
  const char *s;
  size_t len;
  int ref;
};

static int p_ref_global(lua_State *L) {
  struct ref_args *a = lua_touserdata(L, 1);
  lua_pushglobaltable(L);
  lua_pushlstring(L, a->s, a->len);
  if (lua_rawget(L, -2) != LUA_TFUNCTION) a->ref = LP_ERR_NO_FUNCTION;
  else a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int p_ref_string(lua_State *L) {
  struct ref_args *a = lua_touserdata(L, 1);
  lua_pushlstring(L, a->s, a->len);
  a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int protected_ref(struct lp_native *N, lua_CFunction f, const char *s, size_t len) {
  lua_State *L = N->L;
  struct ref_args a;
  int status;
  a.s = s;
  a.len = len;
  a.ref = LP_ERR_RUNTIME;
  lua_settop(L, 0);
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, &a);
  status = lua_pcall(L, 1, 0, 0);
  if (status != LUA_OK) a.ref = classify(N, status);
  lua_settop(L, 0);
  return a.ref;
}

/* A reference (> 0) to the global function `name`, LP_ERR_NO_FUNCTION, or another LP_ERR_*. */
int lp_native_ref_global(struct lp_native *N, const char *name, size_t len) {
  return protected_ref(N, p_ref_global, name, len);
}

/* A reference (> 0) to a Lua string (the rule's argument), or an LP_ERR_* status. */
int lp_native_ref_string(struct lp_native *N, const char *s, size_t len) {
  return protected_ref(N, p_ref_string, s, len);
}

/* The packet context Rust fills before lp_native_run: LP_CTX_SIZE bytes. */
uint8_t *lp_native_ctx(struct lp_native *N) { return N->ctx; }

/* One packet: the function `fref` called with the packet and the argument `aref` (0: nil), with
 * at most `budget` Lua instructions (0: no budget) and `cap` as the nested-protected-call cap.
 * A verdict code (> 0) or an LP_ERR_* status. */
int lp_native_run(struct lp_native *N, int fref, int aref, int budget, int cap) {
  lua_State *L = N->L;
  int status, v;
  N->depth_cap = cap;
  N->depth = 0;
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, fref);
  lp_push_packet(L);
  if (aref > 0) lua_rawgeti(L, LUA_REGISTRYINDEX, aref);
  else lua_pushnil(L);
  set_budget(L, budget);
  N->state.in_call = 1;
  status = top_pcall(L, 2, 1);
  N->state.in_call = 0;
  if (status != LUA_OK) {
    int err = classify(N, status);
    lua_settop(L, 0);
    return err;
  }
  v = lp_verdict(L, -1, N->errbuf, sizeof N->errbuf);
  if (v == LP_ERR_RETURN) N->errlen = strlen(N->errbuf);
  lua_settop(L, 0);
  return v;
}

/* The last error's message (and traceback): *len bytes, not NUL-terminated. */
const char *lp_native_errmsg(const struct lp_native *N, size_t *len) {
  *len = N->errlen;
  return N->errbuf;
}

/* Bytes Lua's allocator holds. */
size_t lp_native_mem_used(const struct lp_native *N) { return N->mem_used; }

/* Closes the Lua state (pending __gc finalizers run, and may log) and frees everything. */
void lp_native_free(struct lp_native *N) {
  if (!N) return;
  if (N->L) lua_close(N->L);
  free(N);
}
