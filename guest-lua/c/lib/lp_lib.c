/*
 * The luapkt Lua library's entry: the global `lp`, `print`, the one metatable of packet
 * objects (light userdata: handing one out and reading a field allocate nothing, addresses and
 * byte strings excepted), verdicts and the packet of each call. Field names are interned once;
 * __index finds the key by its interned pointer in a small hash of the keys (KEY_BUCKET), and
 * whether the class has it by a bit (key_in).
 */
#include "lp_lib.h"

static const char *const key_names[K_COUNT] = {
#define X(k) #k,
    LP_KEYS(X)
#undef X
};

static int l_obj_tostring(lua_State *L) {
  int cls = obj_cls(L, 1);
  if (cls < 0 || (VIEW_CLASSES & 1u << cls)) return lp_view_tostring(L);
  lua_pushfstring(L, "%s: %p", lp_cls_names[cls], lua_touserdata(L, 1));
  return 1;
}

static int l_queue(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= LP_QUEUE_MAX, 1, "queue number must be 0..65535");
  lua_pushinteger(L, LP_QUEUE_BASE + n);
  return 1;
}

/* A line of the script's log at `level`: the arguments joined by tabs, as print does. */
static int log_at(lua_State *L, int level) {
  int n = lua_gettop(L), i;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    size_t l;
    const char *s = luaL_tolstring(L, i, &l);
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_addvalue(&b);
    (void)s;
    (void)l;
  }
  luaL_pushresult(&b);
  {
    size_t l;
    const char *s = lua_tolstring(L, -1, &l);
    lp_host_log(lp_state(L), level, s, l);
  }
  return 0;
}

static int l_log(lua_State *L) { return log_at(L, LP_LOG_INFO); }
static int l_warn(lua_State *L) { return log_at(L, LP_LOG_WARN); }
static int l_debug(lua_State *L) { return log_at(L, LP_LOG_DEBUG); }

static int l_now(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lp_host_now(lp_state(L)));
  return 1;
}

int lp_verdict(lua_State *L, int idx, char *why, size_t n) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: case LUA_TNONE: return LP_CONTINUE;
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? LP_CONTINUE : LP_BREAK;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer v = lua_tointeger(L, idx);
        if (v == LP_ACCEPT || v == LP_DROP || v == LP_CONTINUE || v == LP_BREAK ||
            (v >= LP_QUEUE_BASE && v <= LP_QUEUE_BASE + LP_QUEUE_MAX))
          return (int)v;
        snprintf(why, n, "invalid return value: %lld is not a verdict", (long long)v);
        return LP_ERR_RETURN;
      }
      break;
    default: break;
  }
  snprintf(why, n, "invalid return value: expected a verdict, got %s", luaL_typename(L, idx));
  return LP_ERR_RETURN;
}

/* Starts a new call: the objects of earlier calls stop being valid. Called once per call;
 * returns the packet object's value (a light userdata). */
void *lp_packet_new(lua_State *L) {
  struct lp_lib *lib = LIB(L);
  lib->gen = (lib->gen + 1) & GEN_MASK;
  if (!lib->gen) lib->gen = 1;
  return OBJ_VALUE(lib->gen, C_PKT);
}

void lp_push_packet(lua_State *L) { lua_pushlightuserdata(L, lp_packet_new(L)); }

int lp_openlib(lua_State *L) {
  static const luaL_Reg lp_funcs[] = {
      {"QUEUE", l_queue}, {"log", l_log}, {"warn", l_warn}, {"debug", l_debug}, {"now", l_now}, {"cidr", NULL}, {NULL, NULL}};
  int i;
  struct lp_lib *lib = lua_newuserdatauv(L, sizeof *lib, 0);
  memset(lib, 0, sizeof *lib);
  lp_state(L)->lib = lib;
  lua_setfield(L, LUA_REGISTRYINDEX, "lp.lib");

  /* interned keys, anchored in the registry so they are never collected */
  lua_createtable(L, K_COUNT, 0);
  for (i = 0; i < K_COUNT; i++) {
    lua_pushstring(L, key_names[i]);
    size_t len;
    const char *k = lua_tolstring(L, -1, &len);
    uint8_t *b = lib->bucket[KEY_BUCKET(k, len)];
    int j = 0;
    while (j < KEY_WAYS && b[j]) j++;
    if (j == KEY_WAYS) return luaL_error(L, "lp: more than %d keys in the bucket of '%s'", KEY_WAYS, k);
    b[j] = (uint8_t)(i + 1);
    lib->keyp[i] = k;
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "lp.keys");
  lp_key_sets(lib->in_set); /* each class's keys as bits of in_set, for key_in */

  /* string.find as the string library defined it, for payload:find */
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
  lua_getfield(L, -1, "find");
  lib->find_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);

  /* one metatable for all packet objects: the metatable of light userdata */
  lua_createtable(L, 0, 5);
  lua_pushcfunction(L, lp_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, lp_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, l_obj_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, lp_view_len);
  lua_setfield(L, -2, "__len");
  lua_pushliteral(L, "packet");
  lua_setfield(L, -2, "__metatable");
  lua_pushlightuserdata(L, NULL);
  lua_pushvalue(L, -2);
  lua_setmetatable(L, -2);
  lua_pop(L, 2);

  luaL_newlib(L, lp_funcs);
  lua_pushinteger(L, LP_ACCEPT);
  lua_setfield(L, -2, "ACCEPT");
  lua_pushinteger(L, LP_DROP);
  lua_setfield(L, -2, "DROP");
  lua_pushinteger(L, LP_CONTINUE);
  lua_setfield(L, -2, "CONTINUE");
  lua_pushinteger(L, LP_BREAK);
  lua_setfield(L, -2, "BREAK");
  lp_open_cidr(L);  /* lp.cidr (lp_addr.c) */
  lp_open_bytes(L); /* lp.bytes (lp_bytes.c) */
  lp_open_map(L);   /* lp.map (lp_map.c) */
  lp_open_send(L);  /* lp.send, lp.reply, lp.packet (lp_send.c) */
  lp_open_timer(L); /* lp.timer, lp.cancel (lp_timer.c) */
  lp_open_proto(L); /* lp.proto (lp_proto.c) */
  lp_bytes_method(L, "as", lp_proto_as);
  lua_setglobal(L, "lp");

  /* print goes to the script's log */
  lua_pushcfunction(L, l_log);
  lua_setglobal(L, "print");
  return 0;
}
