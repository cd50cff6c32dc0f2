/*
 * lp.timer and lp.cancel: deferred work. A call hands a function over to run once, `ms`
 * milliseconds later, in this same instance (Lua state), as a call of its own: its own fuel,
 * no packet in hand; it may send, use maps, log and arm timers. The host keeps the schedule
 * (kmod-wasmi/runtime/src/timers.rs: a fixed pool per script, a rate); the function waits in
 * the registry, and the host's call of it (lp_run with LP_TIMER_ARG) releases it.
 */
#include <limits.h>

#include "lp_lib.h"

static const char *timer_error(int e) {
  switch (e) {
    case LP_TIMER_E_TOO_MANY: return "too many timers pending";
    case LP_TIMER_E_RATE: return "over the script's timer rate";
    case LP_TIMER_E_RANGE: return "delay out of range";
    case LP_TIMER_E_UNAVAILABLE:
      return "timers are not available here (arm them from a packet's call or a timer)";
    case LP_TIMER_E_NOT_PENDING: return "not pending";
    default: return "failed";
  }
}

/* lp.timer(ms, fn) -> id, or nil and why (too many pending, over the rate, not available) */
static int l_timer(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  int ref, r;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_argcheck(L, ms >= 0 && ms <= LP_TIMER_DELAY_MAX_MS, 1,
                "delay out of range (0 to 3600000 ms)");
  lua_settop(L, 2);
  ref = luaL_ref(L, LUA_REGISTRYINDEX);
  r = lp_host_timer(lp_state(L), LP_TIMER_ARM, ref, (int)ms);
  if (r < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    luaL_pushfail(L);
    lua_pushstring(L, timer_error(r));
    return 2;
  }
  lua_pushinteger(L, ref);
  return 1;
}

/* lp.cancel(id) -> true, or false and "not pending" (it ran, or was cancelled) */
static int l_cancel(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  int r = LP_TIMER_E_NOT_PENDING;
  /* the host cancels only a pending timer of this instance with this id: any other number
   * (an id that ran, anything made up) is refused there, before the registry is touched */
  if (id > 0 && id <= INT_MAX) r = lp_host_timer(lp_state(L), LP_TIMER_CANCEL, (int)id, 0);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, timer_error(r));
    return 2;
  }
  luaL_unref(L, LUA_REGISTRYINDEX, (int)id);
  lua_pushboolean(L, 1);
  return 1;
}

void lp_open_timer(lua_State *L) {
  lua_pushcfunction(L, l_timer);
  lua_setfield(L, -2, "timer");
  lua_pushcfunction(L, l_cancel);
  lua_setfield(L, -2, "cancel");
}
