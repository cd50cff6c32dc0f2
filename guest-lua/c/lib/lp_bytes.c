/*
 * lp.bytes: owned, mutable byte arrays.
 *
 * A byte array is a full userdata (metatable "lp.bytes") holding its length and its bytes.
 * Constructors: lp.bytes(s) copies a Lua string, another byte array or a payload view;
 * lp.bytes.hex("de ad:be-ef") parses hex digits (spaces, ':' and '-' ignored);
 * lp.bytes.new(n [, fill]). Operations: #b, b[i] (1-based byte, nil out of range), b[i] = v,
 * b:sub, b:find, b:u8/u16/u32(off [, "le"]), b:set_u8/set_u16/set_u32(off, v [, "le"]),
 * b:hex(), b:as(proto) (lp_proto.c), b .. b2, b .. "s", "s" .. b, b == b2 (contents), tostring(b) (the raw bytes).
 *
 * Payload views (pkt.tcp.payload, pkt.udp.payload) are valid for their call only: a view kept
 * past it raises "packet used outside of its call". Copying one with lp.bytes(view) is how a
 * script keeps payload bytes across calls.
 *
 * Only Lua's public C API is used: the file builds into the wasm guest and the native baseline.
 */
#include <stddef.h>
#include <string.h>

#include "lauxlib.h"
#include "lp_lib.h"
#include "lua.h"
#include "lualib.h"

#define BYTES_MT "lp.bytes"
#define BYTES_METHODS "lp.bytes.methods"
/* The largest byte array: lengths and offsets fit in an int on every host. */
#define BYTES_MAX 0x7fffff00

struct bytes {
  size_t n;
  uint8_t d[];
};

static struct bytes *new_bytes(lua_State *L, size_t n) {
  struct bytes *b = lua_newuserdatauv(L, offsetof(struct bytes, d) + n, 0);
  b->n = n;
  luaL_setmetatable(L, BYTES_MT);
  return b;
}

static struct bytes *check_bytes(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, BYTES_MT);
}

/* The bytes of a byte array or a string/number at idx, or NULL. */
static const uint8_t *data_of(lua_State *L, int idx, size_t *len) {
  struct bytes *b = luaL_testudata(L, idx, BYTES_MT);
  if (b) {
    *len = b->n;
    return b->d;
  }
  if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER)
    return (const uint8_t *)lua_tolstring(L, idx, len);
  return NULL;
}

static struct bytes *push_copy(lua_State *L, const void *p, size_t n) {
  struct bytes *b = new_bytes(L, n);
  if (n) memcpy(b->d, p, n);
  return b;
}

const uint8_t *lp_bytes_data(lua_State *L, int idx, size_t *n) {
  struct bytes *b = luaL_testudata(L, idx, BYTES_MT);
  if (!b) return NULL;
  *n = b->n;
  return b->d;
}

void lp_bytes_push(lua_State *L, const void *p, size_t n) { push_copy(L, p, n); }

/* ---- constructors ---------------------------------------------------------------------- */

/* lp.bytes(s): __call of the lp.bytes table, so argument 1 is that table. */
static int l_bytes_call(lua_State *L) {
  size_t n;
  const uint8_t *p;
  lua_remove(L, 1); /* the lp.bytes table: the argument is #1 in errors */
  if (lua_type(L, 1) == LUA_TLIGHTUSERDATA) {
    /* a payload view: copied out of the packet now, so the copy outlives the call */
    lp_view_push(L, 1);
    p = (const uint8_t *)lua_tolstring(L, -1, &n);
  } else {
    p = lua_type(L, 1) == LUA_TNUMBER ? NULL : data_of(L, 1, &n);
    if (!p)
      return luaL_error(L, "lp.bytes: string, bytes or payload expected, got %s", luaL_typename(L, 1));
  }
  push_copy(L, p, n);
  return 1;
}

static int l_bytes_hex_new(lua_State *L) {
  size_t len, i, digits = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  struct bytes *b;
  for (i = 0; i < len; i++) {
    if (s[i] == ' ' || s[i] == ':' || s[i] == '-') continue;
    if (lp_hexval((unsigned char)s[i]) < 0)
      return luaL_error(L, "lp.bytes.hex: invalid hex digit at position %d in '%s'", (int)(i + 1), s);
    digits++;
  }
  if (digits % 2) return luaL_error(L, "lp.bytes.hex: odd number of hex digits in '%s'", s);
  b = new_bytes(L, digits / 2);
  for (i = 0, digits = 0; i < len; i++) {
    int v = lp_hexval((unsigned char)s[i]);
    if (v < 0) continue;
    if (digits % 2) b->d[digits / 2] |= (uint8_t)v;
    else b->d[digits / 2] = (uint8_t)(v << 4);
    digits++;
  }
  return 1;
}

static int l_bytes_new(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1), fill = luaL_optinteger(L, 2, 0);
  struct bytes *b;
  if (n < 0 || n > BYTES_MAX) return luaL_error(L, "lp.bytes.new: invalid length %I", n);
  if (fill < 0 || fill > 255) return luaL_error(L, "lp.bytes.new: fill %I out of range 0..255", fill);
  b = new_bytes(L, (size_t)n);
  memset(b->d, (int)fill, (size_t)n);
  return 1;
}

/* ---- metamethods ---------------------------------------------------------------------- */

static int l_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_bytes(L, 1)->n);
  return 1;
}

static int l_tostring(lua_State *L) {
  struct bytes *b = check_bytes(L, 1);
  lua_pushlstring(L, (const char *)b->d, b->n);
  return 1;
}

/* __index: integer keys read a byte, string keys find a method (upvalue 1: the methods). */
static int l_index(lua_State *L) {
  struct bytes *b = check_bytes(L, 1);
  int isint;
  lua_Integer i = lua_tointegerx(L, 2, &isint);
  if (isint && lua_type(L, 2) == LUA_TNUMBER) {
    if (i >= 1 && (lua_Unsigned)i <= b->n) lua_pushinteger(L, b->d[i - 1]);
    else lua_pushnil(L);
    return 1;
  }
  if (lua_type(L, 2) != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int l_newindex(lua_State *L) {
  struct bytes *b = check_bytes(L, 1);
  int isint;
  lua_Integer i = lua_tointegerx(L, 2, &isint), v;
  if (!isint || lua_type(L, 2) != LUA_TNUMBER)
    return luaL_error(L, "bytes: index must be an integer, got %s", luaL_typename(L, 2));
  if (i < 1 || (lua_Unsigned)i > b->n)
    return luaL_error(L, "bytes: index %I out of range (1..%I)", i, (lua_Integer)b->n);
  v = lua_tointegerx(L, 3, &isint);
  if (!isint || lua_type(L, 3) != LUA_TNUMBER)
    return luaL_error(L, "bytes: value must be an integer 0..255, got %s", luaL_typename(L, 3));
  if (v < 0 || v > 255) return luaL_error(L, "bytes: value %I out of range 0..255", v);
  b->d[i - 1] = (uint8_t)v;
  return 0;
}

static int l_concat(lua_State *L) {
  size_t la, lb;
  const uint8_t *a = data_of(L, 1, &la), *c;
  struct bytes *r;
  if (!a) return luaL_error(L, "attempt to concatenate a %s value with bytes", luaL_typename(L, 1));
  c = data_of(L, 2, &lb);
  if (!c) return luaL_error(L, "attempt to concatenate bytes with a %s value", luaL_typename(L, 2));
  if (la > BYTES_MAX - lb) return luaL_error(L, "bytes: result too large");
  r = new_bytes(L, la + lb);
  if (la) memcpy(r->d, a, la);
  if (lb) memcpy(r->d + la, c, lb);
  return 1;
}

static int l_eq(lua_State *L) {
  struct bytes *a = luaL_testudata(L, 1, BYTES_MT), *b = luaL_testudata(L, 2, BYTES_MT);
  lua_pushboolean(L, a && b && a->n == b->n && (a->n == 0 || !memcmp(a->d, b->d, a->n)));
  return 1;
}

/* ---- methods -------------------------------------------------------------------------- */

static int l_hex(lua_State *L) {
  static const char digits[] = "0123456789abcdef";
  struct bytes *b = check_bytes(L, 1);
  luaL_Buffer buf;
  char *out = luaL_buffinitsize(L, &buf, 2 * b->n);
  size_t i;
  for (i = 0; i < b->n; i++) {
    out[2 * i] = digits[b->d[i] >> 4];
    out[2 * i + 1] = digits[b->d[i] & 0xf];
  }
  luaL_pushresultsize(&buf, 2 * b->n);
  return 1;
}

/* string.sub's index rules. */
static int l_sub(lua_State *L) {
  struct bytes *b = check_bytes(L, 1);
  lua_Integer i, j;
  lp_sub_range((lua_Integer)b->n, luaL_checkinteger(L, 2), luaL_optinteger(L, 3, -1), &i, &j);
  if (i > j) new_bytes(L, 0);
  else push_copy(L, b->d + (i - 1), (size_t)(j - i + 1));
  return 1;
}

/* b:find(needle [, init [, plain]]): needle a string or bytes. Plain searches in place;
 * patterns use the original string.find (upvalue 1) on a copy. */
static int l_find(lua_State *L) {
  struct bytes *b = check_bytes(L, 1);
  size_t nlen;
  const uint8_t *needle = data_of(L, 2, &nlen);
  lua_Integer init;
  int base;
  if (!needle) return luaL_error(L, "find: string or bytes expected, got %s", luaL_typename(L, 2));
  init = lp_find_start((lua_Integer)b->n, luaL_optinteger(L, 3, 1));
  if (!init) {
    lua_pushnil(L);
    return 1;
  }
  if (lua_toboolean(L, 4))
    return lp_find_plain(L, b->d + (init - 1), b->n - (size_t)(init - 1), needle, nlen, init);
  base = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushlstring(L, (const char *)b->d, b->n);
  lua_pushlstring(L, (const char *)needle, nlen);
  lua_pushinteger(L, init);
  lua_call(L, 3, LUA_MULTRET);
  return lua_gettop(L) - base;
}

/* The offset argument (1-based) of a `size`-byte access, as a 0-based index. */
static size_t check_off(lua_State *L, struct bytes *b, const char *what, size_t size) {
  lua_Integer off = luaL_checkinteger(L, 2);
  if (off < 1 || (lua_Unsigned)off > b->n || b->n - (size_t)(off - 1) < size)
    luaL_error(L, "%s: offset %I out of range for %I bytes", what, off, (lua_Integer)b->n);
  return (size_t)(off - 1);
}

/* The byte-order argument at idx: 0 big endian (default, or "be"), 1 "le". */
static int check_order(lua_State *L, int idx, const char *what) {
  const char *o;
  if (lua_isnoneornil(L, idx)) return 0;
  o = luaL_checkstring(L, idx);
  if (!strcmp(o, "le")) return 1;
  if (!strcmp(o, "be")) return 0;
  return luaL_error(L, "%s: byte order must be \"le\" or \"be\", got '%s'", what, o);
}

static int get_uint(lua_State *L, const char *what, size_t size) {
  struct bytes *b = check_bytes(L, 1);
  size_t off = check_off(L, b, what, size), k;
  int le = size > 1 && check_order(L, 3, what);
  uint32_t v = 0;
  for (k = 0; k < size; k++) v = v << 8 | b->d[off + (le ? size - 1 - k : k)];
  lua_pushinteger(L, (lua_Integer)v);
  return 1;
}

static int set_uint(lua_State *L, const char *what, size_t size) {
  struct bytes *b = check_bytes(L, 1);
  size_t off = check_off(L, b, what, size), k;
  lua_Integer v = luaL_checkinteger(L, 3);
  lua_Integer max = (lua_Integer)(((uint64_t)1 << (8 * size)) - 1);
  int le = size > 1 && check_order(L, 4, what);
  if (v < 0 || v > max) return luaL_error(L, "%s: value %I out of range 0..%I", what, v, max);
  for (k = 0; k < size; k++)
    b->d[off + (le ? k : size - 1 - k)] = (uint8_t)((uint64_t)v >> (8 * k));
  return 0;
}

static int l_u8(lua_State *L) { return get_uint(L, "u8", 1); }
static int l_u16(lua_State *L) { return get_uint(L, "u16", 2); }
static int l_u32(lua_State *L) { return get_uint(L, "u32", 4); }
static int l_set_u8(lua_State *L) { return set_uint(L, "set_u8", 1); }
static int l_set_u16(lua_State *L) { return set_uint(L, "set_u16", 2); }
static int l_set_u32(lua_State *L) { return set_uint(L, "set_u32", 4); }

/* ---- registration ---------------------------------------------------------------------- */

void lp_open_bytes(lua_State *L) {
  static const luaL_Reg meths[] = {{"sub", l_sub},         {"hex", l_hex},         {"u8", l_u8},
                                   {"u16", l_u16},         {"u32", l_u32},         {"set_u8", l_set_u8},
                                   {"set_u16", l_set_u16}, {"set_u32", l_set_u32}, {"find", NULL},
                                   {"as", NULL},           {NULL, NULL}};
  static const luaL_Reg ctors[] = {{"hex", l_bytes_hex_new}, {"new", l_bytes_new}, {NULL, NULL}};

  luaL_newmetatable(L, BYTES_MT);
  luaL_newlib(L, meths);
  /* the methods, for lp_bytes_method */
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, BYTES_METHODS);
  /* find: the string library's find as loaded now, not whatever a script makes of it */
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
  lua_getfield(L, -1, "find");
  lua_pushcclosure(L, l_find, 1);
  lua_setfield(L, -3, "find");
  lua_pop(L, 1);
  lua_pushcclosure(L, l_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, l_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, l_concat);
  lua_setfield(L, -2, "__concat");
  lua_pushcfunction(L, l_eq);
  lua_setfield(L, -2, "__eq");
  lua_pushliteral(L, BYTES_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  /* lp.bytes: a table of constructors, callable as lp.bytes(s) */
  luaL_newlib(L, ctors);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_bytes_call);
  lua_setfield(L, -2, "__call");
  lua_pushliteral(L, "lp.bytes");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "bytes");
}

void lp_bytes_method(lua_State *L, const char *name, lua_CFunction f) {
  lua_getfield(L, LUA_REGISTRYINDEX, BYTES_METHODS);
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}
