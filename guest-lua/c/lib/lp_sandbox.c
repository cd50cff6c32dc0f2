/*
 * The sandbox's libraries (shared by the wasm guest and the native baseline): which standard
 * libraries a script gets and how `load` and friends are guarded, error kinds raised with an
 * error, the message handler of top-level calls and its traceback.
 */
#include "lp_lib.h"

/* The message handler of top-level calls: keeps the message, records a traceback. */
/* The Lua stack is at its limit (a "stack overflow" error: luaD_growstack left only the
 * error-handling slots). Public API only: the native engine links a Lua built elsewhere. */
static int core_overflow(lua_State *L) {
  lua_Debug ar;
  const char *m;
  if (!lua_checkstack(L, 300)) return 1; /* more than the 200 slots kept for error handling */
  /* The C stack: Lua raises "C stack overflow" some 200 nested calls deep. Its text alone
   * proves nothing (a script can raise any text): the depth must be there too. */
  m = lua_tostring(L, 1);
  return m && strstr(m, "C stack overflow") && lua_getstack(L, 150, &ar);
}

/* The error value raised with a kind: lp_msgh compares the final error with it. */
static const char pending_key = 'k';

int lp_raise_top(lua_State *L, int kind) {
  lp_state(L)->pending = kind;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &pending_key);
  return lua_error(L);
}

int lp_raise_kind(lua_State *L, int kind, const char *msg) {
  lua_pushstring(L, msg);
  return lp_raise_top(L, kind);
}

int lp_error_kind(lua_State *L, int status) {
  int k = lp_state(L)->err_kind;
  if (status == LUA_ERRERR) return LP_ERR_HANDLER;
  return k ? k : LP_ERR_RUNTIME;
}

/* luaL_traceback's format without its search of package.loaded for each function's global
 * name, which costs ~100,000 fuel per error (a call's whole budget is 250,000): names come
 * from the call sites only, and at most 12 levels are listed. Written straight into the
 * buffer: a lua_pushfstring per piece interned a string each, most of the handler's cost. */
#define TRACEBACK_LEVELS 12

static void add_int(luaL_Buffer *b, int v) {
  char digits[12];
  int n = 0;
  unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
  do {
    digits[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) luaL_addchar(b, '-');
  while (n) luaL_addchar(b, digits[--n]);
}

static void traceback(lua_State *L, const char *msg) {
  luaL_Buffer b;
  lua_Debug ar;
  int level = 1;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, msg);
  luaL_addstring(&b, "\nstack traceback:");
  while (lua_getstack(L, level, &ar)) {
    if (level++ > TRACEBACK_LEVELS) {
      luaL_addstring(&b, "\n\t...");
      break;
    }
    lua_getinfo(L, "Sln", &ar);
    luaL_addstring(&b, "\n\t");
    luaL_addstring(&b, ar.short_src);
    luaL_addchar(&b, ':');
    if (ar.currentline > 0) {
      add_int(&b, ar.currentline);
      luaL_addchar(&b, ':');
    }
    if (*ar.namewhat) {
      luaL_addstring(&b, " in ");
      luaL_addstring(&b, ar.namewhat);
      luaL_addstring(&b, " '");
      luaL_addstring(&b, ar.name ? ar.name : "?");
      luaL_addchar(&b, '\'');
    } else if (*ar.what == 'm') {
      luaL_addstring(&b, " in main chunk");
    } else if (*ar.what == 'C') {
      luaL_addstring(&b, " in ?");
    } else {
      luaL_addstring(&b, " in function <");
      luaL_addstring(&b, ar.short_src);
      luaL_addchar(&b, ':');
      add_int(&b, ar.linedefined);
      luaL_addchar(&b, '>');
    }
  }
  luaL_pushresult(&b);
}

int lp_msgh(lua_State *L) {
  struct lp_state *S = lp_state(L);
  const char *msg;
  S->err_kind = 0;
  if (S->pending) {
    /* the error raised with a kind, or the same value rethrown (strings compare by value) */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &pending_key);
    if (lua_rawequal(L, 1, -1)) S->err_kind = S->pending;
    lua_pop(L, 1);
  }
  if (!S->err_kind && core_overflow(L)) S->err_kind = LP_ERR_STACK;
  S->pending = 0;
  msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
    else msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  traceback(L, msg);
  return 1;
}

/* `load` takes text chunks only: bytecode could break the VM's invariants. */
static int l_load_text(lua_State *L) {
  int n = lua_gettop(L);
  if (n < 3) lua_settop(L, 3), n = 3;
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

/* Wraps field `name` of global table `table` (NULL: the globals) with `guarded`. */
static void guard(lua_State *L, const char *table, const char *name, lua_CFunction guarded) {
  if (table) lua_getglobal(L, table);
  else lua_pushglobaltable(L);
  lua_getfield(L, -1, name);
  lua_pushcclosure(L, guarded, 1);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* coroutine.wrap: the function it returns resumes the coroutine, so it is guarded too.
 * Upvalue 1 is the original wrap, upvalue 2 the guard. */
static int guarded_wrap(lua_State *L) {
  lua_CFunction guarded = lua_tocfunction(L, lua_upvalueindex(2));
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  lua_pushcclosure(L, guarded, 1);
  return 1;
}

#define LP_GC_PAUSE 120
#define LP_GC_STEPMUL 200
/* log2 of the bytes allocated between two collector steps (Lua's default: 13, 8 KiB). Smaller
 * steps were meant to cut the 50,000-90,000 fuel some calls pay to the collector; measured, they
 * do not (docs/engines.md): on the guest's small heaps the debt one call's allocations run up
 * covers a whole cycle at any step size, so the cycle still lands on one call. Kept, harmless,
 * until the collector's work per call is capped. */
#define LP_GC_STEPSIZE 10

int lp_open_sandbox(lua_State *L, lua_CFunction guarded) {
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},        {LUA_COLIBNAME, luaopen_coroutine},
                                  {LUA_TABLIBNAME, luaopen_table},  {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_MATHLIBNAME, luaopen_math},  {LUA_UTF8LIBNAME, luaopen_utf8},
                                  {NULL, NULL}};
  const luaL_Reg *lib;
  /* A new GC cycle starts when the heap reaches 1.2x what the last one kept (Lua's default:
   * 2x), and each step does 2x the work (default 1x): the heap then rarely reaches the memory
   * limit, where Lua's emergency full collection
   * would cost one call far more than its fuel (a call can have at most
   * abi::limits::MAX_FUEL; a full collection of a 1 MiB heap costs ~200,000). */
  lua_gc(L, LUA_GCINC, LP_GC_PAUSE, LP_GC_STEPMUL, LP_GC_STEPSIZE);
  for (lib = libs; lib->func; lib++) {
    luaL_requiref(L, lib->name, lib->func, 1);
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  lua_setglobal(L, "dofile");
  lua_pushnil(L);
  lua_setglobal(L, "loadfile");
  lua_getglobal(L, "load");
  lua_pushcclosure(L, l_load_text, 1);
  lua_setglobal(L, "load");
  guard(L, NULL, "pcall", guarded);
  guard(L, NULL, "xpcall", guarded);
  guard(L, NULL, "load", guarded);
  guard(L, "coroutine", "resume", guarded);
  lua_getglobal(L, "coroutine");
  lua_getfield(L, -1, "wrap");
  lua_pushcfunction(L, guarded);
  lua_pushcclosure(L, guarded_wrap, 2);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
  return lp_openlib(L);
}
