/*
 * lp.map: maps shared by every instance of a script (every CPU), kept by the host
 * (kmod-wasmi/runtime/src/maps.rs) and reached through the map_declare and map_op imports.
 *
 *   local flows = lp.map{name = "flows", type = "lru", key_size = 16, value = "number",
 *                        max_entries = 4096}
 *   flows:add(pkt.ip.saddr, 1); flows:get(k); flows:set(k, v); flows:set(k, nil);
 *   flows:delete(k); #flows
 *
 * Keys are strings or lp.bytes of at most key_size bytes (numbers and addresses by their
 * text); values numbers (integers or floats)
 * or, with value = "bytes", strings of at most value_size bytes (returned as strings). Maps
 * are declared at the top level of the script only (when it loads), each once by name.
 */
#include "lp_lib.h"

static const char MAP_MT[] = "lp.map";
/* Values read into a C-stack buffer (larger ones into a Lua buffer). */
#define GET_ON_STACK 1536

struct lp_map {
  int id;
  int bytes;          /* value = "bytes" */
  uint32_t value_max; /* bytes maps: the longest value */
  char name[LP_MAP_NAME_MAX + 1];
};

static const char *map_error(int code) {
  switch (code) {
    case LP_MAP_E_KEY: return "key longer than the map's key_size";
    case LP_MAP_E_VALUE: return "value longer than the map's value_size";
    case LP_MAP_E_TYPE: return "value of the wrong type for the map";
    case LP_MAP_E_FULL: return "map full";
    case LP_MAP_E_SPEC: return "invalid declaration (name 1..63 bytes of [A-Za-z0-9_.-], key_size 1..256, value_size 1..4096, max_entries 1..1048576, at most 64 MiB)";
    case LP_MAP_E_LATE: return "maps are declared at the top level of the script";
    case LP_MAP_E_TOO_MANY: return "too many maps (16 a script, 64 MiB in all)";
    case LP_MAP_E_REDECLARED: return "a map of that name exists with another declaration (unload the script to change it)";
    case LP_MAP_E_MEMORY: return "not enough memory for the map";
    case LP_MAP_E_ROOM: return "the maps would take the network namespace past its script memory cap (module parameter max_netns_mbytes)";
    default: return "map unavailable";
  }
}

static struct lp_map *check_map(lua_State *L) {
  return luaL_checkudata(L, 1, MAP_MT);
}

/* The bytes of a string, lp.bytes or payload view (read in place: a segment's payload is
 * stored without a Lua string made of it), or NULL. */
static const uint8_t *data_of(lua_State *L, int idx, size_t *len) {
  const uint8_t *p;
  int cls;
  if (lua_type(L, idx) == LUA_TSTRING) return (const uint8_t *)lua_tolstring(L, idx, len);
  if ((p = lp_bytes_data(L, idx, len))) return p;
  cls = obj_cls(L, idx);
  if (cls != C_TCPPAY && cls != C_UDPPAY) return NULL;
  if ((p = lp_view_data(L, idx, len))) return p;
  lp_view_push(L, idx); /* past the window: copied */
  lua_replace(L, idx);
  return (const uint8_t *)lua_tolstring(L, idx, len);
}

/* A key: the bytes of a string, lp.bytes or payload view; a number or an address
 * (pkt.ip.saddr) by its text, as tostring gives it (left on the stack). */
static const uint8_t *key_of(lua_State *L, int idx, size_t *len) {
  const uint8_t *k = data_of(L, idx, len);
  if (k) return k;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: case LUA_TBOOLEAN: case LUA_TUSERDATA: case LUA_TLIGHTUSERDATA:
      return (const uint8_t *)luaL_tolstring(L, idx, len);
    default:
      luaL_argerror(L, idx, "map key must be a string, lp.bytes, a number or an address");
      return NULL;
  }
}

static int fail(lua_State *L, const struct lp_map *m, int code) {
  return luaL_error(L, "lp.map %s: %s", m->name, map_error(code));
}

static void push_number(lua_State *L, const uint8_t *v) {
  if (v[0] == LP_MAP_FLOAT) {
    double d;
    memcpy(&d, v + 1, 8);
    lua_pushnumber(L, d);
  } else {
    int64_t n;
    memcpy(&n, v + 1, 8);
    lua_pushinteger(L, (lua_Integer)n);
  }
}

static void encode_number(lua_State *L, int idx, uint8_t *v) {
  if (lua_isinteger(L, idx)) {
    int64_t n = (int64_t)lua_tointeger(L, idx);
    v[0] = LP_MAP_INT;
    memcpy(v + 1, &n, 8);
  } else {
    double d = (double)luaL_checknumber(L, idx);
    v[0] = LP_MAP_FLOAT;
    memcpy(v + 1, &d, 8);
  }
}

static int l_get(lua_State *L) {
  struct lp_map *m = check_map(L);
  size_t klen;
  const uint8_t *k = key_of(L, 2, &klen);
  int r;
  if (!m->bytes) {
    uint8_t v[LP_MAP_NUMBER];
    r = lp_host_map_op(lp_state(L), LP_MAP_GET, m->id, k, (uint32_t)klen, v, sizeof v);
    if (r == LP_MAP_ABSENT) lua_pushnil(L);
    else if (r < 0) return fail(L, m, r);
    else push_number(L, v);
    return 1;
  } else if (m->value_max <= GET_ON_STACK) {
    /* on the C stack: a luaL_Buffer this large would be a userdata with a finalizer, run by
     * the collector through a protected call, one per value read */
    uint8_t v[GET_ON_STACK];
    r = lp_host_map_op(lp_state(L), LP_MAP_GET, m->id, k, (uint32_t)klen, v, m->value_max);
    if (r == LP_MAP_ABSENT) lua_pushnil(L);
    else if (r < 0) return fail(L, m, r);
    else lua_pushlstring(L, (const char *)v, (size_t)r <= m->value_max ? (size_t)r : m->value_max);
    return 1;
  } else {
    luaL_Buffer b;
    uint8_t *v = (uint8_t *)luaL_buffinitsize(L, &b, m->value_max);
    /* the key may have moved if the buffer grew the stack: read it again */
    k = key_of(L, 2, &klen);
    r = lp_host_map_op(lp_state(L), LP_MAP_GET, m->id, k, (uint32_t)klen, v, m->value_max);
    if (r == LP_MAP_ABSENT) {
      lua_pushnil(L);
      return 1;
    }
    if (r < 0) return fail(L, m, r);
    luaL_pushresultsize(&b, (size_t)r <= m->value_max ? (size_t)r : m->value_max);
    return 1;
  }
}

static int l_delete(lua_State *L) {
  struct lp_map *m = check_map(L);
  size_t klen;
  const uint8_t *k = key_of(L, 2, &klen);
  int r = lp_host_map_op(lp_state(L), LP_MAP_DELETE, m->id, k, (uint32_t)klen, NULL, 0);
  if (r < 0) return fail(L, m, r);
  lua_pushboolean(L, r);
  return 1;
}

static int l_set(lua_State *L) {
  struct lp_map *m = check_map(L);
  size_t klen, vlen;
  const uint8_t *k = key_of(L, 2, &klen);
  int r;
  if (lua_isnoneornil(L, 3)) {
    lua_settop(L, 2);
    return l_delete(L);
  }
  if (!m->bytes) {
    uint8_t v[LP_MAP_NUMBER];
    if (!lua_isnumber(L, 3)) return luaL_argerror(L, 3, "a number (the map holds numbers)");
    encode_number(L, 3, v);
    r = lp_host_map_op(lp_state(L), LP_MAP_SET, m->id, k, (uint32_t)klen, v, sizeof v);
  } else {
    const uint8_t *v = data_of(L, 3, &vlen);
    if (!v) return luaL_argerror(L, 3, "a string, lp.bytes or payload (the map holds bytes)");
    r = lp_host_map_op(lp_state(L), LP_MAP_SET, m->id, k, (uint32_t)klen, (void *)v,
                       (uint32_t)vlen);
  }
  if (r < 0) return fail(L, m, r);
  return 0;
}

static int l_add(lua_State *L) {
  struct lp_map *m = check_map(L);
  size_t klen;
  const uint8_t *k = key_of(L, 2, &klen);
  uint8_t v[LP_MAP_NUMBER];
  int r;
  if (m->bytes) return fail(L, m, LP_MAP_E_TYPE);
  if (lua_isnoneornil(L, 3)) lua_pushinteger(L, 1);
  if (!lua_isnumber(L, 3)) return luaL_argerror(L, 3, "a number");
  encode_number(L, 3, v);
  r = lp_host_map_op(lp_state(L), LP_MAP_ADD, m->id, k, (uint32_t)klen, v, sizeof v);
  if (r < 0) return fail(L, m, r);
  push_number(L, v);
  return 1;
}

static int l_len(lua_State *L) {
  struct lp_map *m = check_map(L);
  int r = lp_host_map_op(lp_state(L), LP_MAP_LEN, m->id, NULL, 0, NULL, 0);
  if (r < 0) return fail(L, m, r);
  lua_pushinteger(L, r);
  return 1;
}

static int l_tostring(lua_State *L) {
  struct lp_map *m = check_map(L);
  lua_pushfstring(L, "lp.map: %s", m->name);
  return 1;
}

static lua_Integer opt_int(lua_State *L, const char *field, lua_Integer def, lua_Integer lo,
                           lua_Integer hi) {
  lua_Integer v;
  int isnum;
  lua_getfield(L, 1, field);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < lo || v > hi)
    luaL_error(L, "lp.map: %s must be an integer %I..%I", field, lo, hi);
  lua_pop(L, 1);
  return v;
}

static const char *opt_choice(lua_State *L, const char *field, const char *def) {
  const char *s;
  lua_getfield(L, 1, field);
  s = lua_isnil(L, -1) ? def : lua_tostring(L, -1);
  if (!s) luaL_error(L, "lp.map: %s must be a string", field);
  lua_pop(L, 1); /* the table keeps the string alive */
  return s;
}

/* lp.map{name=, type="hash"|"lru", key_size=64, value="number"|"bytes", value_size=256,
 * max_entries=} */
static int l_map(lua_State *L) {
  uint8_t spec[LP_MAP_SPEC_NAME + LP_MAP_NAME_MAX];
  struct lp_map *m;
  const char *name, *type, *value;
  size_t nlen;
  lua_Integer key_size, value_size, max_entries;
  uint16_t u16;
  uint32_t u32;
  int id;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "name");
  name = lua_tolstring(L, -1, &nlen);
  if (!name || nlen == 0 || nlen > LP_MAP_NAME_MAX)
    return luaL_error(L, "lp.map: name must be a string of 1..%d bytes", LP_MAP_NAME_MAX);
  lua_pop(L, 1);
  type = opt_choice(L, "type", "hash");
  value = opt_choice(L, "value", "number");
  if (strcmp(type, "hash") && strcmp(type, "lru"))
    return luaL_error(L, "lp.map: type must be \"hash\" or \"lru\"");
  if (strcmp(value, "number") && strcmp(value, "bytes"))
    return luaL_error(L, "lp.map: value must be \"number\" or \"bytes\"");
  key_size = opt_int(L, "key_size", 64, 1, 256);
  value_size = opt_int(L, "value_size", 256, 1, 4096);
  lua_getfield(L, 1, "max_entries");
  if (lua_isnil(L, -1)) return luaL_error(L, "lp.map: max_entries is required");
  lua_pop(L, 1);
  max_entries = opt_int(L, "max_entries", 0, 1, 1 << 20);
  if (lp_state(L)->in_call) return luaL_error(L, "lp.map %s: %s", name, map_error(LP_MAP_E_LATE));

  memset(spec, 0, sizeof spec);
  spec[0] = strcmp(type, "lru") ? LP_MAP_KIND_HASH : LP_MAP_KIND_LRU;
  spec[1] = strcmp(value, "bytes") ? LP_MAP_VALUE_NUMBER : LP_MAP_VALUE_BYTES;
  u16 = (uint16_t)key_size;
  memcpy(spec + 2, &u16, 2);
  u16 = (uint16_t)value_size;
  memcpy(spec + 4, &u16, 2);
  u32 = (uint32_t)max_entries;
  memcpy(spec + 8, &u32, 4);
  memcpy(spec + LP_MAP_SPEC_NAME, name, nlen);
  id = lp_host_map_declare(lp_state(L), spec, (uint32_t)(LP_MAP_SPEC_NAME + nlen));
  if (id < 0) return luaL_error(L, "lp.map %s: %s", name, map_error(id));

  m = lua_newuserdatauv(L, sizeof *m, 0);
  memset(m, 0, sizeof *m);
  m->id = id;
  m->bytes = spec[1] == LP_MAP_VALUE_BYTES;
  m->value_max = (uint32_t)value_size;
  memcpy(m->name, name, nlen);
  luaL_setmetatable(L, MAP_MT);
  return 1;
}

void lp_open_map(lua_State *L) {
  static const luaL_Reg meths[] = {{"get", l_get},       {"set", l_set}, {"delete", l_delete},
                                   {"add", l_add},       {NULL, NULL}};
  luaL_newmetatable(L, MAP_MT);
  luaL_newlib(L, meths);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "lp.map");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_map);
  lua_setfield(L, -2, "map");
}
