/*
 * The wasm guest: a Lua 5.4 state per instance, the exports the host calls (abi/src/guest.rs),
 * and Lua error handling without wasm exceptions (lp_conf.h).
 *
 * Error handling, precisely. Every protected call of Lua goes through luaD_rawrunprotected,
 * whose LUAI_TRY is lp_try:
 *  - inside a host call (lp_run, lp_load, lp_init), the first lp_try runs its body inline and
 *    remembers its lua_longjmp: a Lua error that reaches it unwinds the whole host call (trap);
 *    the host restores __stack_pointer and calls lp_recover, which finishes luaD_pcall's error
 *    path exactly as Lua would have after the longjmp;
 *  - every nested lp_try (pcall, coroutine.resume, load, ...) asks the host to call
 *    lp_trampoline re-entrantly; a throw unwinds to the host frame of the innermost one, which
 *    returns LP_TRY_THREW. Each re-entry costs host stack: the host traps past its cap, and the
 *    guest refuses script-visible protected calls before that with a Lua error (guarded()).
 * Lua's throw always targets the innermost handler, so the innermost host frame (try or
 * top-level call) is always the one that must catch it.
 */
#include <stdlib.h>
#include <string.h>

#include "lp_abi.h"
#include "lp_host.h"

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

#include "ldo.h"
#include "lgc.h"
#include "lstate.h"
#include "lstring.h"
#include "lvm.h"

#define EXPORT(name) __attribute__((export_name(name)))
#define IMPORT(name) __attribute__((import_module("lp"), import_name(name)))

IMPORT("try") int host_try(void *ud);
IMPORT("throw") __attribute__((noreturn)) void host_throw(void);
IMPORT("log") void host_log(int level, const char *p, int len);
IMPORT("now") long long host_now(void);
IMPORT("pkt_read") int host_pkt_read(unsigned off, void *dst, unsigned len);
IMPORT("pkt_write") int host_pkt_write(unsigned off, const void *src, unsigned len);
IMPORT("out_of_fuel") void host_out_of_fuel(void);
IMPORT("map_declare") int host_map_declare(const void *spec, unsigned len);
IMPORT("map_op") int host_map_op(int op, int id, const void *key, unsigned klen, void *val,
                                 unsigned vlen);
IMPORT("send") int host_send(int kind, const void *p, unsigned len);
IMPORT("timer") int host_timer(int op, int ref, int ms);

/* The fuel pass (guest-lua/build/fuel.rs) calls lp.out_of_fuel wherever the guest's fuel
 * counter drops below zero. Nothing in C calls it: this export keeps the import linked. */
EXPORT("lp_out_of_fuel") void lp_out_of_fuel(void) { host_out_of_fuel(); }

/* Must match ldo.c's private struct (luai_jmpbuf is int, lp_conf.h). */
struct lua_longjmp {
  struct lua_longjmp *previous;
  luai_jmpbuf b;
  volatile int status;
};

unsigned int lp_seed = 0x2545f491u;

static lua_State *LS;
static struct lp_state state;
static uint8_t ctx_buf[LP_CTX_SIZE] __attribute__((aligned(8)));
static size_t mem_used;
/* Host re-entries (lp_try frames) now active, and the cap the host enforces with a trap.
 * Script-visible protected calls are refused with a Lua error two levels below the cap, so
 * Lua's own internal protected calls (closing variables after an error) always fit. */
static int try_depth;
static int depth_cap = 8;

static char errbuf[1536];
static int errlen;

/* The host call currently running, when its first protected call runs inline. */
static struct {
  int armed;
  struct lua_longjmp *lj;      /* the inline handler */
  int threw;                   /* a throw reached lj: status and previous saved below */
  int run;                     /* lp_run's call: old_ci, old_allowhook and old_top are the base level's */
  int status;
  struct lua_longjmp *previous;
  /* luaD_pcall's state, to finish its error path in lp_recover */
  CallInfo *old_ci;
  lu_byte old_allowhook;
  ptrdiff_t old_errfunc;
  ptrdiff_t old_top;
  l_uint32 old_nCcalls;
  int nresults;
} top;

/* ---- host hooks for the packet library ---- */

int lp_host_pkt_read(struct lp_state *S, uint32_t off, void *dst, uint32_t len) {
  (void)S;
  return host_pkt_read(off, dst, len);
}
int lp_host_pkt_write(struct lp_state *S, uint32_t off, const void *src, uint32_t len) {
  (void)S;
  return host_pkt_write(off, src, len);
}
void lp_host_log(struct lp_state *S, int level, const char *s, size_t len) {
  (void)S;
  host_log(level, s, (int)len);
}
int64_t lp_host_now(struct lp_state *S) {
  (void)S;
  return host_now();
}
int lp_host_map_declare(struct lp_state *S, const void *spec, uint32_t len) {
  (void)S;
  return host_map_declare(spec, len);
}
int lp_host_map_op(struct lp_state *S, int op, int id, const void *key, uint32_t klen, void *val,
                   uint32_t vlen) {
  (void)S;
  return host_map_op(op, id, key, klen, val, vlen);
}
int lp_host_send(struct lp_state *S, int kind, const void *p, uint32_t len) {
  (void)S;
  return host_send(kind, p, len);
}
int lp_host_timer(struct lp_state *S, int op, int ref, int ms) {
  (void)S;
  return host_timer(op, ref, ms);
}

/* ---- Lua's output and libc bits that would otherwise need WASI ---- */

static char line[256];
static size_t linelen;

void lp_writestring(const char *s, unsigned long l) {
  while (l--) {
    if (linelen == sizeof line) lp_writeline();
    line[linelen++] = *s++;
  }
}
void lp_writeline(void) {
  host_log(LP_LOG_INFO, line, (int)linelen);
  linelen = 0;
}
void lp_writestringerror(const char *fmt, const char *p) {
  (void)fmt;
  host_log(LP_LOG_WARN, p, (int)strlen(p));
}

/*
 * lmathlib seeds math.random from time() (it is compiled with -Dtime=lp_time) and the Lua
 * state's address, which is the same in every instance: with seconds alone, the instances of a
 * script (one per CPU) built within one second would draw the same numbers. The clock in ns and
 * the host's per-instance seed (set by lp_init before the libraries open) tell them apart.
 */
long long lp_time(void *unused) {
  (void)unused;
  return (long long)((unsigned long long)host_now() ^ ((unsigned long long)lp_seed << 32));
}

/* lauxlib is compiled with -DluaL_loadfilex=lp_unused_loadfilex: no files in the sandbox. */
int luaL_loadfilex(lua_State *L, const char *filename, const char *mode) {
  (void)mode;
  lua_pushfstring(L, "cannot open %s: no files in the sandbox", filename ? filename : "stdin");
  return LUA_ERRFILE;
}

/* ---- error handling (lp_conf.h) ---- */

struct tramp {
  void (*f)(lua_State *, void *);
  lua_State *L;
  void *ud;
};

EXPORT("lp_trampoline") void lp_trampoline(struct tramp *t) { t->f(t->L, t->ud); }

void lp_try(lua_State *L, struct lua_longjmp *c, void (*f)(lua_State *, void *), void *ud) {
  struct tramp t;
  if (top.armed) {
    top.armed = 0;
    top.lj = c;
    f(L, ud);
    return;
  }
  t.f = f;
  t.L = L;
  t.ud = ud;
  try_depth++;
  /* LP_TRY_THREW: luaD_throw already stored the status in c. Past its cap the host traps. */
  (void)host_try(&t);
  try_depth--;
  (void)c;
}

/* pcall, xpcall, load, coroutine.resume and wrapped coroutines: refused with a Lua error
 * before the host's re-entry cap is reached. Upvalue 1 is the original function. */
static int guarded(lua_State *L) {
  if (try_depth + 2 > depth_cap) {
    luaL_where(L, 1);
    lua_pushfstring(L, "too many nested protected calls (limit %d)", depth_cap - 1);
    lua_concat(L, 2);
    return lp_raise_top(L, LP_ERR_STACK);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}



void lp_throw(struct lua_longjmp *c) {
  if (c == top.lj) {
    /* lj lives in a frame the unwinding discards: keep what lp_recover needs */
    top.threw = 1;
    top.status = c->status;
    top.previous = c->previous;
  }
  host_throw();
}


static void set_error(const char *s, size_t n) {
  if (n > sizeof errbuf) n = sizeof errbuf;
  memcpy(errbuf, s, n);
  errlen = (int)n;
}

static int classify(lua_State *L, int status) {
  size_t n = 0;
  const char *msg;
  switch (status) {
    case LUA_ERRMEM:
      set_error("not enough memory", 17);
      /* no full collection here: it could cost more than the fuel an error's recovery has;
       * Lua's allocator collects (emergency GC) before it fails again */
      lua_settop(L, 0);
      return LP_ERR_MEMORY;
    case LUA_ERRSYNTAX:
      msg = lua_tolstring(L, -1, &n);
      set_error(msg ? msg : "syntax error", msg ? n : 12);
      return LP_ERR_SYNTAX;
    default:
      break;
  }
  msg = lua_tolstring(L, -1, &n);
  if (!msg) {
    msg = "error object is not a string";
    n = strlen(msg);
  }
  set_error(msg, n);
  return lp_error_kind(L, status);
}

/* lua_pcall whose outermost try runs inline (the host call is the catch frame); the message
 * handler msgh must already sit just below the function. */
static int top_pcall_h(lua_State *L, int nargs, int nresults) {
  int status, base = lua_gettop(L) - nargs - 1; /* msgh index */
  lp_kind_reset(L);
  top.old_ci = L->ci;
  top.old_allowhook = L->allowhook;
  top.old_errfunc = L->errfunc;
  top.old_nCcalls = L->nCcalls;
  top.old_top = savestack(L, L->top.p - (nargs + 1));
  top.nresults = nresults;
  top.run = 0;
  top.threw = 0;
  top.lj = NULL;
  top.armed = 1;
  status = lua_pcall(L, nargs, nresults, base);
  top.armed = 0;
  top.lj = NULL;
  return status;
}

/* top_pcall_h for a function already on the stack: inserts msgh below it, removes it after. */
static int top_pcall(lua_State *L, int nargs, int nresults) {
  int status, base = lua_gettop(L) - nargs; /* function index */
  lua_pushcfunction(L, lp_msgh);
  lua_insert(L, base);
  status = top_pcall_h(L, nargs, nresults);
  lua_remove(L, base);
  return status;
}

/* Finishes luaD_pcall's error path for a throw that unwound the host call (see top). */
static int top_recover(lua_State *L) {
  int status = top.threw ? top.status : LUA_ERRRUN;
  top.lj = NULL;
  top.armed = 0;
  if (top.threw) L->errorJmp = top.previous;
  if (top.run) {
    top.old_ci = &L->base_ci;
    top.old_allowhook = 1;
    top.old_top = savestack(L, L->base_ci.func.p + 2);
  }
  L->nCcalls = top.old_nCcalls;
  L->ci = top.old_ci;
  L->allowhook = top.old_allowhook;
  status = luaD_closeprotected(L, top.old_top, status);
  luaD_seterrorobj(L, status, restorestack(L, top.old_top));
  luaD_shrinkstack(L);
  L->errfunc = top.old_errfunc;
  return status;
}

/* ---- allocation ---- */

/* Bytes Lua allocated (growths count, frees do not): what the collector's pace follows. */
static size_t alloc_total;
/* Blocks Lua freed: a sweep step frees up to 100 objects, ~45,000 fuel. */
static size_t free_count;

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    free(ptr);
    free_count += ptr != NULL;
    mem_used -= osize;
    return NULL;
  } else {
    void *p = realloc(ptr, nsize);
    if (p) {
      mem_used += nsize - osize;
      if (nsize > osize) alloc_total += nsize - osize;
    }
    return p;
  }
}

/* ---- the collector's pace ----
 *
 * Lua's incremental collector, paced here rather than by Lua once the script is loaded. Lua
 * turns allocation into collector work in units so coarse for the guest's small heaps that a
 * call allocating a few KiB paid for a whole cycle (~50,000-80,000 fuel) on top of its own
 * work, and a call that needed 60,000 ran out of fuel. Here the collector is stopped for good
 * (LUA_GCSTOP) and a call first does single steps of Lua's (lua_gc LUA_GCSTEP 0, with a step
 * multiplier and size of 1) for what earlier calls allocated: as many as spread the last
 * cycle's steps over half the heap it kept (a step per LP_GC_STRIDE bytes at most), at most
 * LP_GC_STEPS, and no more once a call's steps freed LP_GC_FREES blocks (a freed block costs
 * ~450 fuel); behind (the heap half again past what the last cycle kept) up to
 * LP_GC_STEPS_BEHIND, whatever they free. A cycle starts once
 * the heap has grown past LP_GC_PAUSE_PACED percent of what the last one kept, as Lua's
 * would. Two of Lua's steps were still too large: the build compiles lgc.c with sweep steps
 * of 16 objects (100 cost ~45,000 fuel) and without the sweep of every dead object at the
 * head of the object list that entering the sweep did inside the atomic step (all the
 * garbage made during the cycle: over 90,000 fuel). A step is now ~300-10,000 fuel: a call
 * pays at most ~30,000 to the collector. A heap that outgrows this pace meets the memory
 * limit, where Lua's emergency collection runs as before. */
#define LP_GC_STRIDE 256
#define LP_GC_FREES 40
#define LP_GC_STEPS_BEHIND 64
#define LP_GC_STEPS 16
static int gc_paced;
static size_t alloc_paid;
static size_t gc_threshold; /* the heap's size at which the next cycle starts */
static size_t gc_kept;      /* the heap's size after the last cycle */
static size_t gc_cycle_steps, gc_cycle_last; /* steps of this cycle, of the last one */

static __attribute__((noinline)) void gc_pay(lua_State *L) {
  global_State *g = G(L);
  size_t owed = alloc_total - alloc_paid, frees, per, cap;
  int n, done = 0, behind;
  if (g->gcstate == GCSpause && gettotalbytes(g) < gc_threshold) {
    alloc_paid = alloc_total;
    return;
  }
  /* bytes of allocation a step pays for: the last cycle's steps spread over half the heap it
   * kept, so that a cycle ends before the heap has grown by half again */
  per = gc_kept / 2 / (gc_cycle_last + 1) + 1;
  if (per > LP_GC_STRIDE) per = LP_GC_STRIDE;
  /* behind: the heap has grown by half past what the last cycle kept (or than a first guess
   * had it): more steps, whatever they free */
  behind = gettotalbytes(g) > gc_kept + gc_kept / 2;
  cap = behind ? LP_GC_STEPS_BEHIND : LP_GC_STEPS;
  n = (int)(owed / per) + 1;
  if ((size_t)n > cap) n = (int)cap;
  frees = free_count;
  while (done < n) {
    /* ~one sweep step's worth of frees a call, unless the collector is far behind */
    if (free_count - frees >= LP_GC_FREES && !behind) break;
    done++;
    gc_cycle_steps++;
    if (lua_gc(L, LUA_GCSTEP, 0)) {
      /* the cycle ended: Lua's setpause() left the heap's threshold as total - debt */
      l_mem debt = g->GCdebt;
      gc_threshold = gettotalbytes(g) + (debt < 0 ? (size_t)-debt : 0);
      gc_kept = gettotalbytes(g);
      gc_cycle_last = gc_cycle_steps;
      gc_cycle_steps = 0;
      alloc_paid = alloc_total;
      return;
    }
  }
  alloc_paid += (size_t)done * per;
  if (alloc_paid > alloc_total) alloc_paid = alloc_total;
}

/* From now on the guest paces the collector (after the load's full collection). */
#define LP_GC_PAUSE_PACED 120
static void gc_pace(lua_State *L) {
  /* a step multiplier and size of 1 (stored as 0: Lua keeps a quarter of the multiplier):
   * LUA_GCSTEP 0 then does one single step */
  lua_gc(L, LUA_GCINC, LP_GC_PAUSE_PACED, 1, 1);
  lua_gc(L, LUA_GCSTOP);
  gc_paced = 1;
  alloc_paid = alloc_total;
  gc_kept = gettotalbytes(G(L));
  gc_cycle_last = gc_kept / 512; /* a guess until a cycle has been counted */
  gc_threshold = gc_kept / 100 * LP_GC_PAUSE_PACED;
}

EXPORT("lp_alloc") void *lp_alloc(int len) { return malloc(len > 0 ? (size_t)len : 1); }
EXPORT("lp_free") void lp_free(void *p) { free(p); }
EXPORT("lp_ctx") uint8_t *lp_ctx(void) { return ctx_buf; }
EXPORT("lp_errmsg") char *lp_errmsg(void) { return errbuf; }
EXPORT("lp_errlen") int lp_errlen(void) { return errlen; }
EXPORT("lp_mem_used") int lp_mem_used(void) { return (int)mem_used; }

/* ---- state ---- */


static int open_all(lua_State *L) { return lp_open_sandbox(L, guarded); }

/* Constructors run here, once (as a reactor's _initialize would run them). It also matters that
 * the guest names this function: wasm-ld wraps every export of a module that does not in a
 * call of wasi-libc's exit-time work (__wasm_call_dtors) after it, on every packet. */
extern void __wasm_call_ctors(void);

EXPORT("lp_init") int lp_init(unsigned seed) {
  lua_State *L;
  int status;
  __wasm_call_ctors();
  lp_seed = seed;
  L = lua_newstate(l_alloc, NULL);
  if (!L) {
    set_error("not enough memory", 17);
    return LP_ERR_MEMORY;
  }
  LS = L;
  state.ctx = ctx_buf;
  *(struct lp_state **)lua_getextraspace(L) = &state;
  lua_pushcfunction(L, open_all);
  status = top_pcall(L, 0, 0);
  return status == LUA_OK ? 0 : classify(L, status);
}

EXPORT("lp_recover") int lp_recover(void) {
  lua_State *L = LS;
  try_depth = 0;
  int status = top_recover(L);
  int err = classify(L, status);
  state.in_call = 0;
  lua_settop(L, 0);
  return err;
}

/* CallInfos lp_load leaves ready for packet calls. */
#define PRESET_CIS 6

/* Features of the loaded chunk (LP_FEATURE_*), for the host to check where the script's
 * rules stand. */
static int features;

/*
 * Whether a function or any function nested in it names the field QUEUE (`lp.QUEUE(n)`,
 * `lp["QUEUE"]`): its rules are then refused at hooks where nf_queue cannot reinject a
 * packet. A name built at run time escapes this and is an error at run time instead. The
 * parser bounds nesting (LUAI_MAXCCALLS), and so this recursion.
 */
static int names_queue(const Proto *p) {
  for (int i = 0; i < p->sizek; i++) {
    const TValue *k = &p->k[i];
    if (ttisstring(k) && tsslen(tsvalue(k)) == 5 && memcmp(getstr(tsvalue(k)), "QUEUE", 5) == 0)
      return 1;
  }
  for (int i = 0; i < p->sizep; i++)
    if (names_queue(p->p[i]))
      return 1;
  return 0;
}

EXPORT("lp_features") int lp_features(void) { return features; }

EXPORT("lp_load") int lp_load(const char *src, int len, const char *name, int nlen) {
  lua_State *L = LS;
  int status;
  lua_settop(L, 0);
  lua_pushliteral(L, "=");
  lua_pushlstring(L, name, (size_t)nlen);
  lua_concat(L, 2);
  status = luaL_loadbufferx(L, src, (size_t)len, lua_tostring(L, -1), "t");
  if (status != LUA_OK) {
    int err = classify(L, status);
    lua_settop(L, 0);
    return err;
  }
  lua_remove(L, 1);
  features = names_queue(clLvalue(s2v(L->top.p - 1))->p) ? LP_FEATURE_QUEUE : 0;
  status = top_pcall(L, 0, 0);
  if (status != LUA_OK) {
    int err = classify(L, status);
    lua_settop(L, 0);
    return err;
  }
  lua_settop(L, 0);
  /* the load's garbage is collected now, on the load budget: otherwise the first packets pay
   * for it in GC steps, on the per-call fuel */
  lua_gc(L, LUA_GCCOLLECT);
  gc_pace(L);
  /* CallInfos for a packet call's first levels (the entry, a metamethod, a library function):
   * the collection just freed the load's spare ones, and the first call to go that deep would
   * pay ~170 fuel for them that later calls do not */
  for (int i = 0; i < PRESET_CIS; i++)
    if (!luaE_extendCI(L, 0)) break;
  return 0;
}

/* Registry values of the entries and arguments lp_run has met, by ref: a copy stays valid
 * because nothing releases a ref while the instance lives (the registry anchors the value for
 * the collector, and scripts cannot reach the registry). Saves a registry lookup per call. */
#define REF_CACHE 8
static struct {
  int ref;
  TValue v;
} ref_cache[REF_CACHE];

static const TValue *ref_cache_put(int ref, const TValue *v) {
  unsigned i = (unsigned)ref % REF_CACHE;
  ref_cache[i].v = *v;
  ref_cache[i].ref = ref;
  return &ref_cache[i].v;
}

static const TValue *ref_value(lua_State *L, int ref) {
  unsigned i = (unsigned)ref % REF_CACHE;
  if (ref_cache[i].ref == ref && ref > 0) return &ref_cache[i].v;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  L->top.p--;
  return ref_cache_put(ref, s2v(L->top.p));
}

/* luaL_ref on the value on top, which also goes into the cache: lp_ref_global and
 * lp_ref_string fill it on the bind's fuel, not the first packet's. */
static int ref_top(lua_State *L) {
  TValue v = *s2v(L->top.p - 1);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (ref > 0) ref_cache_put(ref, &v);
  return ref;
}

/* Binding an entry runs on a small fixed fuel (abi::limits::BIND_FUEL), maybe on the packet
 * path: its few allocations must not run a GC step, whose cost grows with the heap. The
 * collector is stopped meanwhile, and its debt put back afterwards: lua_gc(LUA_GCRESTART)
 * zeroes it, which made the next allocation start a collection step at once, on the next
 * packet's fuel (the first call after a load or a rebuild paid ~45,000 fuel for it). */
static l_mem gc_stop(lua_State *L) {
  l_mem debt = G(L)->GCdebt;
  if (gc_paced) return 0; /* stopped for good: no step but gc_pay's */
  lua_gc(L, LUA_GCSTOP);
  return debt;
}

static void gc_restart(lua_State *L, l_mem debt) {
  if (gc_paced) return;
  lua_gc(L, LUA_GCRESTART);
  luaE_setdebt(G(L), debt);
}

EXPORT("lp_ref_global") int lp_ref_global(const char *name, int nlen) {
  lua_State *L = LS;
  int r = LP_ERR_NO_FUNCTION;
  l_mem debt;
  lua_settop(L, 0);
  debt = gc_stop(L);
  lua_pushglobaltable(L);
  lua_pushlstring(L, name, (size_t)nlen);
  if (lua_rawget(L, -2) == LUA_TFUNCTION) r = ref_top(L);
  gc_restart(L, debt);
  lua_settop(L, 0);
  return r;
}

EXPORT("lp_ref_string") int lp_ref_string(const char *s, int len) {
  lua_State *L = LS;
  int r;
  l_mem debt = gc_stop(L);
  lua_pushlstring(L, s, (size_t)len);
  r = ref_top(L);
  gc_restart(L, debt);
  return r;
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lp_raise_kind(L, LP_ERR_INSTRUCTIONS, "out of instructions");
}

/* The instruction budget the count hook is set for (0: no hook). */
static int hook_budget;

/* The soft stop: a one-instruction count hook, set from outside the interpreter (the host's
 * out-of-fuel import, when a packet's call first runs low), fires at the interpreter's next
 * back edge, call or return, where raising a Lua error is safe. It puts the budget's hook (or
 * none) back first, so it fires once. */
static int stop_pending;
/* The collector stopped for the soft stop's unwinding (its debt, put back at the next call). */
static int stop_gc;
static l_mem stop_gc_debt;

static void fuel_stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  stop_pending = 0;
  /* the unwinding (message handler, traceback) runs on the held-back fuel: no GC step in it,
   * whose cost grows with the heap */
  if (!stop_gc) {
    stop_gc_debt = gc_stop(L);
    stop_gc = 1;
  }
  if (hook_budget > 0) lua_sethook(L, budget_hook, LUA_MASKCOUNT, hook_budget);
  else lua_sethook(L, NULL, 0, 0);
  lp_raise_kind(L, LP_ERR_FUEL, "out of fuel");
}

/* lua_sethook is safe from anywhere (Lua's own interpreter sets it from a signal handler): it
 * only stores the hook and marks the running functions to look at it. Only the main thread's
 * interpreter sees it: a loop inside a coroutine runs on until the hard stop (a trap). */
EXPORT("lp_fuel_stop") void lp_fuel_stop(void) {
  if (!state.in_call) return;
  stop_pending = 1;
  lua_sethook(LS, fuel_stop_hook, LUA_MASKCOUNT, 1);
}

/*
 * A packet's call: lua_pcall(L, 2, 1, msgh) on [msgh, entry, packet, argument] without the
 * API's layers (they were ~40% of the fuel of `return lp.ACCEPT`). Between host calls the
 * stack is empty at the base level, so the four values are stored in place. The protected
 * call is luaD_pcall's and luaD_rawrunprotected's bookkeeping with lp_try's inline case: a
 * throw unwinds the host call and lp_recover finishes it (top_recover).
 */
static struct lua_longjmp run_lj; /* lp_run's handler (lp_run never nests) */

/* luaD_precall(L, func, 1) (ldo.c, Lua 5.4.9) for the common case: a Lua function whose frame
 * fits the stack, with a CallInfo left from an earlier call; anything else goes to Lua's. */
static CallInfo *run_precall(lua_State *L, StkId func) {
  if (ttisLclosure(s2v(func))) {
    Proto *p = clLvalue(s2v(func))->p;
    CallInfo *ci = L->ci->next;
    int narg = cast_int(L->top.p - func) - 1;
    if (ci != NULL && L->stack_last.p - L->top.p > p->maxstacksize) {
      ci->func.p = func;
      ci->nresults = 1;
      ci->callstatus = 0;
      ci->top.p = func + 1 + p->maxstacksize;
      ci->u.l.savedpc = p->code;
      L->ci = ci;
      for (; narg < p->numparams; narg++) setnilvalue(s2v(L->top.p++));
      return ci;
    }
  }
  return luaD_precall(L, func, 1);
}

/* The slow part of lp_run's start: a soft stop's leftovers, a new instruction budget. */
static __attribute__((noinline)) void run_prepare(lua_State *L, int budget) {
  if (stop_gc) {
    stop_gc = 0;
    gc_restart(L, stop_gc_debt);
  }
  /* a soft stop the last call did not reach: its hook must not fire in this one */
  if (stop_pending) {
    stop_pending = 0;
    hook_budget = -1;
  }
  /* The budget is per call: restart the count (lua_sethook only when the budget changes). */
  if (budget != hook_budget) {
    if (budget > 0) lua_sethook(L, budget_hook, LUA_MASKCOUNT, budget);
    else lua_sethook(L, NULL, 0, 0);
    hook_budget = budget;
  } else if (budget > 0) {
    L->hookcount = L->basehookcount;
  }
}

/* The slow part of lp_run's end: any result but a plain verdict. */
static __attribute__((noinline)) int run_verdict(lua_State *L) {
  int v = lp_verdict(L, -1, errbuf, sizeof errbuf);
  if (v == LP_ERR_RETURN) errlen = (int)strlen(errbuf);
  return v;
}
_Static_assert(LP_DROP == LP_ACCEPT + 1 && LP_CONTINUE == LP_ACCEPT + 2 && LP_BREAK == LP_ACCEPT + 3,
               "lp_run checks the plain verdicts as one range");

/* A timer's call (aref LP_TIMER_ARG): the function waits at registry reference fref, released
 * now (a timer runs once; the reference is reused, so it never enters ref_cache), and is
 * called with neither packet nor argument. Packet objects of earlier calls stop being valid,
 * as at any call. */
static __attribute__((noinline)) void timer_prepare(lua_State *L, int fref, StkId base) {
  for (int i = 0; i < 4; i++) setnilvalue(s2v(base + i));
  L->top.p = base + 4;
  lua_rawgeti(L, LUA_REGISTRYINDEX, fref);
  setobj2s(L, base + 1, s2v(L->top.p - 1));
  L->top.p--;
  luaL_unref(L, LUA_REGISTRYINDEX, fref);
  (void)lp_packet_new(L);
}

EXPORT("lp_run") int lp_run(int fref, int aref, int budget, int cap) {
  lua_State *L = LS;
  struct lua_longjmp *lj = &run_lj;
  StkId base, func;
  CallInfo *ci;
  int v;
  depth_cap = cap;
  try_depth = 0;
  if (alloc_total - alloc_paid >= LP_GC_STRIDE) gc_pay(L);
  base = L->base_ci.func.p + 1;
  L->top.p = base; /* lua_settop(L, 0): nothing to close at the base level */
  func = base + 1;
  /* The lookups first: a cache miss pushes the registry's value at L->top (base) on its way,
   * so the message handler goes there after them. Each value is copied before the next
   * lookup, which may reuse its cache slot. */
  if (aref >= 0) {
    setobj2s(L, func, ref_value(L, fref));
    if (aref > 0) {
      setobj2s(L, base + 3, ref_value(L, aref));
    } else {
      setnilvalue(s2v(base + 3));
    }
    setpvalue(s2v(base + 2), lp_packet_new(L));
  } else {
    timer_prepare(L, fref, base);
  }
  setfvalue(s2v(base), lp_msgh);
  L->top.p = base + 4;
  if (stop_gc | stop_pending | (budget != hook_budget) | (budget > 0)) run_prepare(L, budget);
  state.pending = 0; /* lp_kind_reset */
  state.err_kind = 0;
  /* luaD_pcall's state for top_recover (the rest is the base level's: top.run) */
  top.run = 1;
  top.old_errfunc = L->errfunc;
  top.old_nCcalls = L->nCcalls;
  top.threw = 0;
  lj->status = LUA_OK;
  lj->previous = L->errorJmp;
  L->errorJmp = lj;
  top.lj = lj;
  L->errfunc = savestack(L, base);
  state.in_call = 1;
  /* luaD_callnoyield (the base level is far from LUAI_MAXCCALLS) */
  L->nCcalls += nyci;
  if ((ci = run_precall(L, func)) != NULL) {
    ci->callstatus = CIST_FRESH;
    luaV_execute(L, ci);
  }
  state.in_call = 0;
  L->nCcalls = top.old_nCcalls;
  L->errorJmp = lj->previous;
  L->errfunc = top.old_errfunc;
  top.lj = NULL;
  /* the result sits where the entry was, in a stack the call may have moved (grown) */
  base = L->base_ci.func.p + 1;
  func = base + 1;
  if (ttisinteger(s2v(func))) {
    lua_Integer r = ivalue(s2v(func));
    if (r >= LP_ACCEPT && r <= LP_BREAK) {
      L->top.p = base;
      return (int)r;
    }
  }
  v = run_verdict(L);
  L->top.p = base;
  return v;
}
