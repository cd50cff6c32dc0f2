/* The packet library's interface to whoever hosts it: the wasm guest (lp_guest.c, through the
 * `lp` imports) or lpctl's native baseline (cli/c/lp_native.c). What the host provides
 * (lp_host_*) and what it calls (the library's entry points, in lib/). The library's files share
 * lib/lp_lib.h among themselves; hosts never include it. */
#ifndef LP_HOST_H
#define LP_HOST_H

#include <stddef.h>
#include <stdint.h>
#include "lua.h"

/* Per-state data, reached through lua_getextraspace(L). */
struct lp_state {
  uint8_t *ctx;          /* packet context, LP_CTX_SIZE bytes (lp_abi.h) */
  void *host;            /* the host's own pointer */
  void *lib;             /* the library's per-state data (lib/lp_lib.h's struct lp_lib) */
  int in_call;           /* a packet call is running: packet views are valid */
  /* Error kinds travel as codes, never read back from message text (a script can raise any
   * text): the sandbox notes the kind of an error it raises (LP_ERR_INSTRUCTIONS from the
   * budget hook, LP_ERR_STACK from the nesting cap) in `pending` with the error value;
   * lp_msgh turns it into `err_kind` when the top-level error is that value (or sees a Lua
   * stack overflow). */
  int pending;
  int err_kind;
};

static inline struct lp_state *lp_state(lua_State *L) {
  return *(struct lp_state **)lua_getextraspace(L);
}

/* Copies packet bytes [off, off+len) to dst; returns len or -1 when out of the packet. */
int lp_host_pkt_read(struct lp_state *S, uint32_t off, void *dst, uint32_t len);
/* Writes src to packet bytes [off, off+len) (beyond the context's window); len or -1. */
int lp_host_pkt_write(struct lp_state *S, uint32_t off, const void *src, uint32_t len);
void lp_host_log(struct lp_state *S, int level, const char *s, size_t len);
/* lp.map (lib/lp_map.c): declares a map from `len` bytes of spec (abi::guest::map's layout);
 * its id or LP_MAP_E_*. One operation on map `id` (LP_MAP_GET ...: abi::guest::IMPORT_MAP_OP);
 * its result or LP_MAP_E_* (LP_MAP_ABSENT). */
int lp_host_map_declare(struct lp_state *S, const void *spec, uint32_t len);
int lp_host_map_op(struct lp_state *S, int op, int id, const void *key, uint32_t klen, void *val,
                   uint32_t vlen);
int64_t lp_host_now(struct lp_state *S);
/* lp.send (lib/lp_send.c): queues the IPv4/IPv6 packet p[0..len) (LP_SEND_KIND_*); 0 or
 * LP_SEND_E_*. */
int lp_host_send(struct lp_state *S, int kind, const void *p, uint32_t len);
/* lp.timer (lib/lp_timer.c): arms (LP_TIMER_ARM) or cancels (LP_TIMER_CANCEL) the timer of the
 * function at registry reference `ref`; 0 or LP_TIMER_E_*. */
int lp_host_timer(struct lp_state *S, int op, int ref, int ms);

/* the library (lib/lp_lib.c, lib/lp_sandbox.c) */
int lp_openlib(lua_State *L);             /* the global `lp`, `print`, the packet object */
/* The base, coroutine, table, string, math and utf8 libraries without files (no dofile,
 * loadfile; load takes text only), pcall/xpcall/load/coroutine.resume/coroutine.wrap wrapped
 * with `guarded` (upvalue 1: the original), then lp_openlib. */
int lp_open_sandbox(lua_State *L, lua_CFunction guarded);
/* Message handler for top-level calls: keeps the message and appends a traceback; records
 * the error's kind (see lp_state.pending). */
int lp_msgh(lua_State *L);
/* Raises `msg` (or the value on top) as an error of kind `kind` (LP_ERR_INSTRUCTIONS,
 * LP_ERR_STACK): that value, rethrown as it is, keeps the kind; any other error value is a
 * Lua error whatever its text. */
int lp_raise_kind(lua_State *L, int kind, const char *msg);
int lp_raise_top(lua_State *L, int kind);
/* Before a top-level call. */
static inline void lp_kind_reset(lua_State *L) { lp_state(L)->pending = 0; lp_state(L)->err_kind = 0; }
/* After a top-level call failed with status LUA_ERRRUN or LUA_ERRERR: LP_ERR_INSTRUCTIONS,
 * LP_ERR_STACK or LP_ERR_RUNTIME (LP_ERR_HANDLER for LUA_ERRERR). */
int lp_error_kind(lua_State *L, int status);
/* Starts a call: its packet object (earlier calls' objects stop being valid), as a value for
 * lua_pushlightuserdata, or pushed. */
void *lp_packet_new(lua_State *L);
void lp_push_packet(lua_State *L);
/* Decodes the value at idx as a verdict code (> 0) or returns LP_ERR_RETURN and writes the
 * reason to why[0..n). */
int lp_verdict(lua_State *L, int idx, char *why, size_t n);
#endif
