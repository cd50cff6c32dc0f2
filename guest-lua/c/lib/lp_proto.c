/*
 * lp.proto: protocols defined in Lua (read side).
 *
 * lp.proto.define{name = "tftp", fields = {{name = "opcode", offset = 0, bits = 16}, ...},
 * payload = 32 | function(view), detect = function(pkt)} checks the definition and returns the
 * protocol object (a full userdata, metatable "lp.proto"); lp.proto.get(name) finds it again and
 * lp.proto.detect(pkt) returns the name of the first protocol (in definition order) whose
 * detect returns a true value, or nil.
 *
 * Fields are unsigned big-endian integers of 1..32 bits at any bit offset (network bit order:
 * bit 0 is the most significant bit of byte 0). A field's offset or bit length may be a function
 * of the view (fields depending on other fields); those are called on every read. `payload` is
 * the bit offset (a multiple of 8) where the payload starts; by default the end of the last
 * fixed field, rounded up to a byte.
 *
 * data:as(name or protocol), for byte arrays, payload views and strings, copies the bytes into a
 * view object (metatable "lp.protoview"): v.field reads a field (nil when it lies past the end),
 * #v is the number of bytes viewed, v.payload the bytes after the header as lp.bytes (nil when
 * the header is longer than the data), v.proto the protocol, v:bytes() all the bytes as
 * lp.bytes. Being copies, views outlive the packet call.
 *
 * v.field = n writes the field (n must fit its bits) in the view and in what the view was made
 * from: a byte array is changed in place; a packet payload is written in the packet, with its
 * transport checksum kept, during the packet's call (later, writing is an error; reading goes
 * on from the copy); a string cannot change, so only the view does. A write merges into the
 * source's current bytes, so views and raw writes over the same bytes compose. v.payload is a
 * new lp.bytes: views made from it write that copy, not the packet.
 *
 * Only Lua's public C API is used: the file builds into the wasm guest and the native baseline.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lauxlib.h"
#include "lp_lib.h"
#include "lua.h"

#define PROTO_MT "lp.proto"
#define PVIEW_MT "lp.protoview"
#define PROTOS_KEY "lp.protos" /* registry: [i] = protocols in order, [name] = protocol */
#define FIELDS_MAX 1024
#define OFF_MAX ((lua_Integer)1 << 40) /* bit offsets: well past any byte array */
#define FN (-1)                        /* offset, bits or payload given by a function */

struct pfield {
  int64_t off, bits;
};

struct proto {
  int n;
  int64_t payload;
  struct pfield f[];
};

/* Where a view's bytes came from, to write through to. */
enum { SRC_STRING, SRC_BYTES, SRC_PAYLOAD };

struct pview {
  size_t n;
  int src;
  uint32_t pkt_off; /* SRC_PAYLOAD: offset of the payload in the packet */
  uintptr_t gen;    /* SRC_PAYLOAD: the call the payload belongs to */
  uint8_t d[];
};

/* Slots of a protocol's definition table (its user value). */
enum { D_NAME = 1, D_INDEX, D_NAMES, D_OFFFN, D_BITSFN, D_PAYLOADFN, D_DETECT };

/* Names a field cannot take: the view's own properties and methods. */
static const char *const reserved[] = {"payload", "proto", "bytes", NULL};

/* ---- definition -------------------------------------------------------------------------- */

/* The integer at idx (a number with an integer value) or 0 with *ok = 0. */
static lua_Integer int_at(lua_State *L, int idx, int *ok) {
  lua_Integer v = 0;
  *ok = lua_type(L, idx) == LUA_TNUMBER;
  if (*ok) v = lua_tointegerx(L, idx, ok);
  return v;
}

static int l_define(lua_State *L) {
  const char *name, *fname;
  struct proto *p;
  lua_Integer n, i, j, end = 0;
  int ok;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "name"); /* 2 */
  if (lua_type(L, 2) != LUA_TSTRING || lua_rawlen(L, 2) == 0)
    return luaL_error(L, "lp.proto.define: name (a non-empty string) expected, got %s", luaL_typename(L, 2));
  name = lua_tostring(L, 2);
  lua_getfield(L, LUA_REGISTRYINDEX, PROTOS_KEY); /* 3 */
  lua_pushvalue(L, 2);
  if (lua_rawget(L, 3) != LUA_TNIL) return luaL_error(L, "lp.proto.define: protocol '%s' already defined", name);
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "fields") != LUA_TTABLE) /* 4 */
    return luaL_error(L, "lp.proto.define: %s: fields (a table) expected, got %s", name, luaL_typename(L, 4));
  n = (lua_Integer)lua_rawlen(L, 4);
  if (n > FIELDS_MAX) return luaL_error(L, "lp.proto.define: %s: more than %d fields", name, FIELDS_MAX);
  p = lua_newuserdatauv(L, offsetof(struct proto, f) + (size_t)n * sizeof(struct pfield), 1); /* 5 */
  p->n = (int)n;
  lua_createtable(L, 7, 0); /* 6: the definition */
  lua_createtable(L, 0, (int)n); /* 7: name -> index */
  lua_createtable(L, (int)n, 0); /* 8: index -> name */
  lua_createtable(L, 0, 0); /* 9: offset functions */
  lua_createtable(L, 0, 0); /* 10: bit length functions */
  for (i = 1; i <= n; i++) {
    const char *const *r;
    lua_Integer v;
    if (lua_rawgeti(L, 4, i) != LUA_TTABLE) /* 11 */
      return luaL_error(L, "lp.proto.define: %s: field %I must be a table, got %s", name, i, luaL_typename(L, 11));
    lua_getfield(L, 11, "name"); /* 12 */
    if (lua_type(L, 12) != LUA_TSTRING || lua_rawlen(L, 12) == 0)
      return luaL_error(L, "lp.proto.define: %s: field %I has no name", name, i);
    fname = lua_tostring(L, 12);
    for (r = reserved; *r; r++)
      if (!strcmp(fname, *r))
        return luaL_error(L, "lp.proto.define: %s: field '%s' clashes with the view's '%s'", name, fname, *r);
    lua_pushvalue(L, 12);
    if (lua_rawget(L, 7) != LUA_TNIL)
      return luaL_error(L, "lp.proto.define: %s: duplicate field '%s'", name, fname);
    lua_pop(L, 1);
    lua_pushvalue(L, 12);
    lua_pushinteger(L, i);
    lua_rawset(L, 7);
    lua_pushvalue(L, 12);
    lua_rawseti(L, 8, i);

    if (lua_getfield(L, 11, "offset") == LUA_TFUNCTION) { /* 13 */
      p->f[i - 1].off = FN;
      lua_pushvalue(L, 13);
      lua_rawseti(L, 9, i);
    } else {
      v = int_at(L, 13, &ok);
      if (!ok)
        return luaL_error(L, "lp.proto.define: %s: field '%s': offset must be an integer bit offset or a function, got %s",
                          name, fname, luaL_typename(L, 13));
      if (v < 0) return luaL_error(L, "lp.proto.define: %s: field '%s': negative offset %I", name, fname, v);
      if (v > OFF_MAX) return luaL_error(L, "lp.proto.define: %s: field '%s': offset %I too large", name, fname, v);
      p->f[i - 1].off = v;
    }
    if (lua_getfield(L, 11, "bits") == LUA_TFUNCTION) { /* 14 */
      p->f[i - 1].bits = FN;
      lua_pushvalue(L, 14);
      lua_rawseti(L, 10, i);
    } else {
      v = int_at(L, 14, &ok);
      if (!ok)
        return luaL_error(L, "lp.proto.define: %s: field '%s': bits must be an integer or a function, got %s",
                          name, fname, luaL_typename(L, 14));
      if (v < 1 || v > 32) return luaL_error(L, "lp.proto.define: %s: field '%s': bits %I outside 1..32", name, fname, v);
      p->f[i - 1].bits = v;
    }
    if (p->f[i - 1].off != FN && p->f[i - 1].bits != FN && p->f[i - 1].off + p->f[i - 1].bits > end)
      end = p->f[i - 1].off + p->f[i - 1].bits;
    lua_settop(L, 10);
  }
  /* fixed fields must not overlap */
  for (i = 0; i < n; i++)
    for (j = i + 1; j < n; j++) {
      const struct pfield *a = &p->f[i], *b = &p->f[j];
      if (a->off == FN || a->bits == FN || b->off == FN || b->bits == FN) continue;
      if (a->off < b->off + b->bits && b->off < a->off + a->bits) {
        lua_rawgeti(L, 8, i + 1);
        lua_rawgeti(L, 8, j + 1);
        return luaL_error(L, "lp.proto.define: %s: fields '%s' and '%s' overlap", name, lua_tostring(L, -2),
                          lua_tostring(L, -1));
      }
    }
  /* payload */
  switch (lua_getfield(L, 1, "payload")) { /* 11 */
    case LUA_TNIL: p->payload = (end + 7) / 8 * 8; break;
    case LUA_TFUNCTION:
      p->payload = FN;
      lua_pushvalue(L, 11);
      lua_rawseti(L, 6, D_PAYLOADFN);
      break;
    default: {
      lua_Integer v = int_at(L, 11, &ok);
      if (!ok)
        return luaL_error(L, "lp.proto.define: %s: payload must be a bit offset or a function, got %s", name,
                          luaL_typename(L, 11));
      if (v < 0 || v > OFF_MAX || v % 8)
        return luaL_error(L, "lp.proto.define: %s: payload offset %I is not a non-negative multiple of 8 bits", name, v);
      p->payload = v;
    }
  }
  /* detect */
  lua_getfield(L, 1, "detect"); /* 12 */
  if (!lua_isnil(L, 12) && lua_type(L, 12) != LUA_TFUNCTION)
    return luaL_error(L, "lp.proto.define: %s: detect must be a function, got %s", name, luaL_typename(L, 12));
  lua_rawseti(L, 6, D_DETECT);
  lua_settop(L, 10);
  lua_rawseti(L, 6, D_BITSFN);
  lua_rawseti(L, 6, D_OFFFN);
  lua_rawseti(L, 6, D_NAMES);
  lua_rawseti(L, 6, D_INDEX);
  lua_pushvalue(L, 2);
  lua_rawseti(L, 6, D_NAME);
  lua_setiuservalue(L, 5, 1);
  luaL_setmetatable(L, PROTO_MT);
  /* register: by name and in order */
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 5);
  lua_rawset(L, 3);
  lua_pushvalue(L, 5);
  lua_rawseti(L, 3, (lua_Integer)lua_rawlen(L, 3) + 1);
  return 1;
}

static int l_get(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, PROTOS_KEY);
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  return 1;
}

static int l_detect(lua_State *L) {
  lua_Integer i, n;
  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, PROTOS_KEY); /* 2 */
  n = (lua_Integer)lua_rawlen(L, 2);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);           /* 3: the protocol */
    lua_getiuservalue(L, 3, 1);     /* 4: its definition */
    if (lua_rawgeti(L, 4, D_DETECT) == LUA_TFUNCTION) {
      lua_pushvalue(L, 1);
      lua_call(L, 1, 1);
      if (lua_toboolean(L, -1)) {
        lua_rawgeti(L, 4, D_NAME);
        return 1;
      }
    }
    lua_settop(L, 2);
  }
  lua_pushnil(L);
  return 1;
}

static int l_proto_index(lua_State *L) {
  luaL_checkudata(L, 1, PROTO_MT);
  if (lua_type(L, 2) == LUA_TSTRING && !strcmp(lua_tostring(L, 2), "name")) {
    lua_getiuservalue(L, 1, 1);
    lua_rawgeti(L, -1, D_NAME);
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

static int l_proto_tostring(lua_State *L) {
  luaL_checkudata(L, 1, PROTO_MT);
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, D_NAME);
  lua_pushfstring(L, "proto: %s", lua_tostring(L, -1));
  return 1;
}

/* ---- views -------------------------------------------------------------------------------- */

/* data:as(name or protocol): data a byte array, a payload view or a string. */
int lp_proto_as(lua_State *L) {
  size_t n;
  const uint8_t *d;
  struct pview *v;
  int src = SRC_STRING;
  uint32_t pkt_off = 0;
  uintptr_t gen = 0;
  lua_settop(L, 2);
  if (lua_type(L, 1) == LUA_TLIGHTUSERDATA) {
    lp_view_push(L, 1); /* 3: the payload's bytes, copied */
    d = (const uint8_t *)lua_tolstring(L, 3, &n);
    lp_view_origin(L, 1, &pkt_off, &gen);
    src = SRC_PAYLOAD;
  } else if ((d = lp_bytes_data(L, 1, &n)) != NULL) {
    src = SRC_BYTES;
  } else {
    if (lua_type(L, 1) != LUA_TSTRING)
      return luaL_error(L, "as: bytes, payload or string expected, got %s", luaL_typename(L, 1));
    d = (const uint8_t *)lua_tolstring(L, 1, &n);
  }
  if (!luaL_testudata(L, 2, PROTO_MT)) {
    if (lua_type(L, 2) != LUA_TSTRING)
      return luaL_error(L, "as: protocol name expected, got %s", luaL_typename(L, 2));
    lua_getfield(L, LUA_REGISTRYINDEX, PROTOS_KEY);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) == LUA_TNIL) return luaL_error(L, "as: unknown protocol '%s'", lua_tostring(L, 2));
    lua_replace(L, 2);
  }
  v = lua_newuserdatauv(L, offsetof(struct pview, d) + n, 2);
  v->n = n;
  v->src = src;
  v->pkt_off = pkt_off;
  v->gen = gen;
  if (n) memcpy(v->d, d, n);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  if (src == SRC_BYTES) { /* the byte array written through */
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 2);
  }
  luaL_setmetatable(L, PVIEW_MT);
  return 1;
}

/* Calls the function in definition slot `slot` (index 4: the definition) on the view (index 1)
 * with key i (0: the slot itself). Returns 0 when it returns nil, else 1 and the integer. */
static int call_fn(lua_State *L, int slot, lua_Integer i, const char *what, lua_Integer *out) {
  int ok;
  lua_rawgeti(L, 4, slot);
  if (i) {
    lua_rawgeti(L, -1, i);
    lua_remove(L, -2);
  }
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  *out = int_at(L, -1, &ok);
  if (!ok) {
    lua_rawgeti(L, 4, D_NAME);
    return luaL_error(L, "%s: %s function returned %s, not an integer", lua_tostring(L, -1), what,
                      luaL_typename(L, -2));
  }
  lua_pop(L, 1);
  return 1;
}

/* Bit offset and length of field i (1-based) of the view at index 1 (3: its protocol, 4: the
 * definition); 0 when the field is absent (a function returned nil, or it lies past the end). */
static int locate(lua_State *L, struct pview *v, struct proto *p, lua_Integer i, uint64_t *offp, uint64_t *bitsp) {
  lua_Integer off = p->f[i - 1].off, bits = p->f[i - 1].bits;
  if (off == FN && !call_fn(L, D_OFFFN, i, "field offset", &off)) return 0;
  if (bits == FN && !call_fn(L, D_BITSFN, i, "field bits", &bits)) return 0;
  if (off < 0 || bits < 1 || bits > 32) {
    lua_rawgeti(L, 4, D_NAME);
    lua_rawgeti(L, 4, D_NAMES);
    lua_rawgeti(L, -1, i);
    return luaL_error(L, "%s: field '%s': invalid offset %I or bits %I (bits must be 1..32)", lua_tostring(L, -3),
                      lua_tostring(L, -1), off, bits);
  }
  if ((uint64_t)off + (uint64_t)bits > (uint64_t)v->n * 8) return 0;
  *offp = (uint64_t)off;
  *bitsp = (uint64_t)bits;
  return 1;
}

/* Pushes field i (1-based) of the view at index 1 (3: its protocol, 4: the definition). */
static int push_field(lua_State *L, struct pview *v, struct proto *p, lua_Integer i) {
  uint64_t off, bits, acc = 0, first, last, k, shift;
  if (!locate(L, v, p, i, &off, &bits)) {
    lua_pushnil(L);
    return 1;
  }
  first = off / 8;
  last = (off + bits - 1) / 8;
  for (k = first; k <= last; k++) acc = acc << 8 | v->d[k];
  shift = (last - first + 1) * 8 - (off % 8 + bits);
  lua_pushinteger(L, (lua_Integer)((acc >> shift) & ((((uint64_t)1) << bits) - 1)));
  return 1;
}

/* Writes field i of the view at index 1 (3: its protocol, 4: the definition) to the integer at
 * vidx, in the view and in what it was made from. */
static int set_field(lua_State *L, struct pview *v, struct proto *p, lua_Integer i, int vidx) {
  uint64_t off, bits, acc = 0, first, last, k, shift, mask;
  uint8_t nb[5];
  lua_Integer val;
  int ok;
  val = int_at(L, vidx, &ok);
  lua_rawgeti(L, 4, D_NAMES);
  lua_rawgeti(L, -1, i); /* the field's name, for errors */
  if (!ok) {
    lua_rawgeti(L, 4, D_NAME);
    return luaL_error(L, "%s view: %s: expected an integer, got %s", lua_tostring(L, -1), lua_tostring(L, -2),
                      luaL_typename(L, vidx));
  }
  if (!locate(L, v, p, i, &off, &bits)) {
    lua_rawgeti(L, 4, D_NAME);
    return luaL_error(L, "%s view: %s is absent from these %d bytes", lua_tostring(L, -1), lua_tostring(L, -2),
                      (int)v->n);
  }
  mask = (((uint64_t)1) << bits) - 1;
  if (val < 0 || (uint64_t)val > mask) {
    lua_rawgeti(L, 4, D_NAME);
    return luaL_error(L, "%s view: %s: %I does not fit in %d bits", lua_tostring(L, -1), lua_tostring(L, -2), val,
                      (int)bits);
  }
  first = off / 8;
  last = (off + bits - 1) / 8;
  /* merge into the source's bytes as they are now (another view or a raw write may have
   * changed the bits around this field since the view was made) */
  memcpy(nb, v->d + first, (size_t)(last - first + 1));
  if (v->src == SRC_PAYLOAD) {
    lp_payload_read(L, v->gen, v->pkt_off + (uint32_t)first, nb, (uint32_t)(last - first + 1));
  } else if (v->src == SRC_BYTES) {
    size_t n;
    const uint8_t *b;
    lua_getiuservalue(L, 1, 2);
    b = lp_bytes_data(L, -1, &n);
    if (b && last < n) memcpy(nb, b + first, (size_t)(last - first + 1));
    lua_pop(L, 1);
  }
  for (k = first; k <= last; k++) acc = acc << 8 | nb[k - first];
  shift = (last - first + 1) * 8 - (off % 8 + bits);
  acc = (acc & ~(mask << shift)) | ((uint64_t)val << shift);
  for (k = last + 1; k-- > first;) { /* at most 5 bytes: 32 bits at any bit offset */
    nb[k - first] = (uint8_t)acc;
    acc >>= 8;
  }
  /* the source first: when it cannot be written (a packet whose call is over), nothing is */
  if (v->src == SRC_PAYLOAD) {
    lp_payload_write(L, v->gen, v->pkt_off + (uint32_t)first, nb, (uint32_t)(last - first + 1));
  } else if (v->src == SRC_BYTES) {
    size_t n;
    uint8_t *b;
    lua_getiuservalue(L, 1, 2);
    b = (uint8_t *)lp_bytes_data(L, -1, &n);
    if (b && last < n) memcpy(b + first, nb, (size_t)(last - first + 1));
  }
  memcpy(v->d + first, nb, (size_t)(last - first + 1));
  return 0;
}

static int l_pview_bytes(lua_State *L) {
  struct pview *v = luaL_checkudata(L, 1, PVIEW_MT);
  lp_bytes_push(L, v->d, v->n);
  return 1;
}

static int l_pview_index(lua_State *L) {
  struct pview *v = luaL_checkudata(L, 1, PVIEW_MT);
  struct proto *p;
  const char *k;
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, 1); /* 3 */
  p = lua_touserdata(L, 3);
  lua_getiuservalue(L, 3, 1); /* 4 */
  if (lua_type(L, 2) != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  lua_rawgeti(L, 4, D_INDEX);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, -2) == LUA_TNUMBER) {
    lua_Integer i = lua_tointeger(L, -1);
    lua_settop(L, 4);
    return push_field(L, v, p, i);
  }
  lua_settop(L, 4);
  k = lua_tostring(L, 2);
  if (!strcmp(k, "payload")) {
    lua_Integer off = p->payload;
    if (off == FN && !call_fn(L, D_PAYLOADFN, 0, "payload", &off)) {
      lua_pushnil(L);
      return 1;
    }
    if (off < 0 || off % 8) {
      lua_rawgeti(L, 4, D_NAME);
      return luaL_error(L, "%s: payload offset %I is not a non-negative multiple of 8 bits", lua_tostring(L, -1), off);
    }
    if ((uint64_t)off / 8 > v->n) lua_pushnil(L);
    else lp_bytes_push(L, v->d + off / 8, v->n - (size_t)(off / 8));
    return 1;
  }
  if (!strcmp(k, "proto")) {
    lua_pushvalue(L, 3);
    return 1;
  }
  if (!strcmp(k, "bytes")) {
    lua_pushcfunction(L, l_pview_bytes);
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

static int l_pview_newindex(lua_State *L) {
  struct pview *v = luaL_checkudata(L, 1, PVIEW_MT);
  struct proto *p;
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, 1); /* 4: protocol */
  p = lua_touserdata(L, 4);
  lua_getiuservalue(L, 4, 1); /* 5: definition */
  lua_rotate(L, 3, -1);       /* the helpers' layout: 3 protocol, 4 definition, 5 value */
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_rawgeti(L, 4, D_INDEX);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) == LUA_TNUMBER) {
      lua_Integer i = lua_tointeger(L, -1);
      lua_settop(L, 5);
      return set_field(L, v, p, i, 5);
    }
  }
  lua_rawgeti(L, 4, D_NAME);
  return luaL_error(L, "%s view: no field '%s' (payload, proto and bytes are read-only)", lua_tostring(L, -1),
                    luaL_tolstring(L, 2, NULL));
}

static int l_pview_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)((struct pview *)luaL_checkudata(L, 1, PVIEW_MT))->n);
  return 1;
}

static int l_pview_tostring(lua_State *L) {
  struct pview *v = luaL_checkudata(L, 1, PVIEW_MT);
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, -1, 1);
  lua_rawgeti(L, -1, D_NAME);
  lua_pushfstring(L, "%s view: %I bytes", lua_tostring(L, -1), (lua_Integer)v->n);
  return 1;
}

/* ---- registration ------------------------------------------------------------------------- */

void lp_open_proto(lua_State *L) {
  static const luaL_Reg funcs[] = {{"define", l_define}, {"get", l_get}, {"detect", l_detect}, {NULL, NULL}};
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, PROTOS_KEY);

  luaL_newmetatable(L, PROTO_MT);
  lua_pushcfunction(L, l_proto_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_proto_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, PROTO_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  luaL_newmetatable(L, PVIEW_MT);
  lua_pushcfunction(L, l_pview_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_pview_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, l_pview_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, l_pview_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, PVIEW_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "proto");
}
