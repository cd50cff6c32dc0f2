/*
 * The luapkt Lua library: the global `lp` and the packet object.
 *
 * Only Lua's public C API is used here, so the same file builds into the wasm guest and into the
 * native baseline of `lpctl bench`. The packet object, its protocol classes and payload views are
 * light userdata (see "packet objects" below): handing one out and reading a field allocate
 * nothing (addresses and byte strings excepted, which are Lua strings). Field names are interned
 * once; __index compares the key's interned pointer instead of comparing strings.
 */
#include <string.h>

#include "lauxlib.h"
#include "lp_abi.h"
#include "lp_host.h"
#include "lua.h"
#include "lualib.h"

/* ---- field names ---------------------------------------------------------------------- */

#define LP_KEYS(X)                                                                     \
  X(ip) X(ip6) X(tcp) X(udp) X(icmp) X(icmp6) X(len) X(meta) X(bytes) X(u8) X(u16) X(u32) \
  X(saddr) X(daddr) X(protocol) X(ttl) X(length) X(id) X(version) X(hdrlength) X(dscp)  \
  X(ecn) X(frag_off) X(checksum) X(nexthdr) X(hoplimit) X(flowlabel) X(sport) X(dport)  \
  X(flags) X(syn) X(ack) X(fin) X(rst) X(psh) X(urg) X(ece) X(cwr) X(seq) X(ack_seq)     \
  X(doff) X(window) X(urgptr) X(payload) X(type) X(code) X(sequence) X(mark) X(hook)     \
  X(iifname) X(oifname) X(l4proto) X(nfproto) X(sub) X(find) X(contains) X(as)

enum lp_key {
#define X(k) K_##k,
  LP_KEYS(X)
#undef X
  K_COUNT
};

static const char *const key_names[K_COUNT] = {
#define X(k) #k,
    LP_KEYS(X)
#undef X
};

enum cls { C_PKT, C_IP, C_IP6, C_TCP, C_UDP, C_ICMP, C_ICMP6, C_META, C_TCPPAY, C_UDPPAY, C_NCLS };

/* The library's per-state data (a userdata anchored in the registry, found via lp_state). */
struct lp_lib {
  const char *keyp[K_COUNT]; /* interned key strings: equal keys are the same pointer */
  uintptr_t gen;             /* generation of the current call's objects (lp_push_packet) */
  int find_ref;              /* registry ref of the original string.find */
  uint8_t scratch[64];       /* reads beyond the window */
};
#define LIB(L) ((struct lp_lib *)lp_state(L)->lib)

static int key_of(lua_State *L, int idx, const int *cands, int n) {
  const char *k;
  const char *const *keyp = LIB(L)->keyp;
  int i;
  if (lua_type(L, idx) != LUA_TSTRING) return -1;
  k = lua_tostring(L, idx);
  for (i = 0; i < n; i++)
    if (keyp[cands[i]] == k) return cands[i];
  return -1;
}

/* ---- packet bytes --------------------------------------------------------------------- */

static const char *const cls_names[C_NCLS] = {"packet", "ip", "ip6", "tcp", "udp",
                                              "icmp", "icmp6", "meta", "bytes", "bytes"};

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

/* ---- packet objects ----------------------------------------------------------------------
 *
 * A packet object (the packet, a protocol class, a payload view) is a light userdata whose value
 * encodes its class and the generation of the call that handed it out: (gen << CLS_BITS) | cls.
 * lp_push_packet starts a new generation for every call, so an object kept from an earlier call
 * (in a global, an upvalue, a suspended coroutine, a finalizer) no longer matches, and any use
 * of it raises "packet used outside of its call" -- also when the next packet has the same
 * protocols. Objects whose generation is current but used while no call runs (finalizers
 * between calls) fail the same way through lp_state's in_call. Generations wrap after 2^28
 * calls on wasm32 (2^60 on 64-bit hosts): an object kept for exactly that many calls would be
 * accepted again and would read the packet of the call using it, never anything else.
 * All light userdata share one metatable; scripts have no other light userdata (no C modules,
 * no debug library).
 */
#define CLS_BITS 4
#define CLS_MASK (((uintptr_t)1 << CLS_BITS) - 1)
#define GEN_MASK (UINTPTR_MAX >> CLS_BITS)
_Static_assert(C_NCLS <= 1 << CLS_BITS, "classes must fit in CLS_BITS");
#define ALL_CLASSES ((1u << C_NCLS) - 1)
#define VIEW_CLASSES (1u << C_TCPPAY | 1u << C_UDPPAY)

static void push_obj(lua_State *L, int cls) {
  lua_pushlightuserdata(L, (void *)(LIB(L)->gen << CLS_BITS | (uintptr_t)cls));
}

/* Class of the packet object at idx (of any call), or -1 when the value is not one. */
static int obj_cls(lua_State *L, int idx) {
  uintptr_t cls;
  if (lua_type(L, idx) != LUA_TLIGHTUSERDATA) return -1;
  cls = (uintptr_t)lua_touserdata(L, idx) & CLS_MASK;
  return cls < C_NCLS ? (int)cls : -1;
}

/* The class of the packet object at idx, which must be one of `classes` (a bit mask, named
 * `expected` in the error) and belong to the running call. */
static int check_obj(lua_State *L, int idx, unsigned classes, const char *expected, struct lp_state **Sp) {
  struct lp_state *S = lp_state(L);
  int cls = obj_cls(L, idx);
  if (cls < 0 || !(classes & 1u << cls))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s expected, got %s", expected,
                                          cls < 0 ? luaL_typename(L, idx) : cls_names[cls]));
  if (!S->in_call || (uintptr_t)lua_touserdata(L, idx) >> CLS_BITS != LIB(L)->gen)
    luaL_error(L, "packet used outside of its call");
  *Sp = S;
  return cls;
}

static uint32_t ctx32(const struct lp_state *S, int off) {
  const uint8_t *p = S->ctx + off;
  uint32_t v;
  memcpy(&v, p, 4); /* host writes native (little-endian) order */
  return v;
}
#define PKT_LEN(S) ctx32(S, LP_CTX_LEN)
#define PKT_WIN(S) ctx32(S, LP_CTX_WIN)
#define PKT_L4OFF(S) ctx32(S, LP_CTX_L4OFF)
#define PKT_NFPROTO(S) ((S)->ctx[LP_CTX_NFPROTO])
#define PKT_L4PROTO(S) ((S)->ctx[LP_CTX_L4PROTO])
#define PKT_FLAGS(S) ((S)->ctx[LP_CTX_FLAGS])

/* Pointer to packet bytes [off, off+n), n <= sizeof scratch, or NULL when out of the packet. */
static const uint8_t *pkt_at(struct lp_state *S, uint32_t off, uint32_t n) {
  uint32_t len = PKT_LEN(S), win = PKT_WIN(S);
  uint8_t *scratch = ((struct lp_lib *)S->lib)->scratch;
  if (off > len || n > len - off) return NULL;
  if (off <= win && n <= win - off) return S->ctx + LP_CTX_WINDOW + off;
  if (n > sizeof((struct lp_lib *)0)->scratch || lp_host_pkt_read(S, off, scratch, n) != (int)n) return NULL;
  return scratch;
}

/* Reads a header field, raising a Lua error when the packet is too short. */
static const uint8_t *hdr(lua_State *L, struct lp_state *S, uint32_t off, uint32_t n) {
  const uint8_t *p = pkt_at(S, off, n);
  if (!p) luaL_error(L, "packet too short (%d bytes) for a field at offset %d", (int)PKT_LEN(S), (int)off);
  return p;
}

/* Pushes packet bytes [off, off+n) as a Lua string. */
static void push_range(lua_State *L, struct lp_state *S, uint32_t off, uint32_t n) {
  uint32_t win = PKT_WIN(S);
  if (off <= win && n <= win - off) {
    lua_pushlstring(L, (const char *)S->ctx + LP_CTX_WINDOW + off, n);
  } else {
    luaL_Buffer b;
    char *dst = luaL_buffinitsize(L, &b, n);
    if (lp_host_pkt_read(S, off, dst, n) != (int)n) luaL_error(L, "packet read failed");
    luaL_pushresultsize(&b, n);
  }
}

/* ---- addresses ------------------------------------------------------------------------ */

static size_t fmt_ip4(char *out, const uint8_t *a) {
  size_t n = 0;
  int i;
  for (i = 0; i < 4; i++) {
    unsigned v = a[i];
    if (i) out[n++] = '.';
    if (v >= 100) out[n++] = (char)('0' + v / 100);
    if (v >= 10) out[n++] = (char)('0' + v / 10 % 10);
    out[n++] = (char)('0' + v % 10);
  }
  return n;
}

/* RFC 5952 text form, as nft prints it. */
static size_t fmt_ip6(char *out, const uint8_t *a) {
  static const char hex[] = "0123456789abcdef";
  int best = -1, bestlen = 0, i, n = 0;
  uint16_t w[8];
  for (i = 0; i < 8; i++) w[i] = (uint16_t)(a[2 * i] << 8 | a[2 * i + 1]);
  for (i = 0; i < 8;) {
    int j = i;
    while (j < 8 && w[j] == 0) j++;
    if (j - i > bestlen && j - i >= 2) { best = i; bestlen = j - i; }
    i = j > i ? j : i + 1;
  }
  if (best == 0 && (bestlen == 6 || (bestlen == 5 && w[5] == 0xffff))) {
    /* ::a.b.c.d and ::ffff:a.b.c.d */
    memcpy(out, bestlen == 5 ? "::ffff:" : "::", bestlen == 5 ? 7 : 2);
    n = bestlen == 5 ? 7 : 2;
    return (size_t)n + fmt_ip4(out + n, a + 12);
  }
  for (i = 0; i < 8; i++) {
    int started = 0, s;
    if (i == best) {
      out[n++] = ':';
      if (i == 0) out[n++] = ':';
      i += bestlen - 1;
      continue;
    }
    for (s = 12; s >= 0; s -= 4) {
      int d = (w[i] >> s) & 0xf;
      if (d || started || s == 0) { out[n++] = hex[d]; started = 1; }
    }
    if (i < 7) out[n++] = ':';
  }
  return (size_t)n;
}

static int parse_ip4(const char *s, size_t len, uint8_t *out) {
  size_t i = 0;
  int part;
  for (part = 0; part < 4; part++) {
    unsigned v = 0, digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) { v = v * 10 + (unsigned)(s[i++] - '0'); digits++; }
    if (!digits || v > 255 || (digits > 1 && s[i - digits] == '0')) return 0;
    out[part] = (uint8_t)v;
    if (part < 3) { if (i >= len || s[i] != '.') return 0; i++; }
  }
  return i == len;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int parse_ip6(const char *s, size_t len, uint8_t *out) {
  uint16_t w[8];
  int n = 0, gap = -1;
  size_t i = 0;
  if (len >= 2 && s[0] == ':' && s[1] == ':') { gap = 0; i = 2; }
  else if (len >= 1 && s[0] == ':') return 0;
  while (i < len) {
    unsigned v = 0;
    int d = 0, h;
    size_t start = i;
    if (n >= 8) return 0;
    while (i < len && (h = hexval(s[i])) >= 0 && d < 4) { v = v << 4 | (unsigned)h; i++; d++; }
    if (i < len && s[i] == '.') { /* embedded IPv4 at the end */
      if (n > 6) return 0;
      if (!parse_ip4(s + start, len - start, out)) return 0;
      w[n++] = (uint16_t)(out[0] << 8 | out[1]);
      w[n++] = (uint16_t)(out[2] << 8 | out[3]);
      i = len;
      break;
    }
    if (!d) return 0;
    w[n++] = (uint16_t)v;
    if (i == len) break;
    if (s[i] != ':') return 0;
    i++;
    if (i < len && s[i] == ':') {
      if (gap >= 0) return 0;
      gap = n;
      i++;
    } else if (i == len) return 0;
  }
  if (gap < 0 && n != 8) return 0;
  if (gap >= 0 && n > 7) return 0;
  memset(out, 0, 16);
  {
    int k, tail = gap < 0 ? 0 : n - gap;
    int head = gap < 0 ? n : gap;
    for (k = 0; k < head; k++) { out[2 * k] = (uint8_t)(w[k] >> 8); out[2 * k + 1] = (uint8_t)w[k]; }
    for (k = 0; k < tail; k++) {
      int pos = 8 - tail + k;
      out[2 * pos] = (uint8_t)(w[head + k] >> 8);
      out[2 * pos + 1] = (uint8_t)w[head + k];
    }
  }
  return 1;
}

/* Parses a v4 or v6 address; returns its length in bytes (4 or 16) or 0. */
static int parse_addr(const char *s, size_t len, uint8_t *out) {
  if (memchr(s, ':', len)) return parse_ip6(s, len, out) ? 16 : 0;
  return parse_ip4(s, len, out) ? 4 : 0;
}

static void push_addr(lua_State *L, const uint8_t *a, int alen) {
  char buf[48];
  size_t n = alen == 4 ? fmt_ip4(buf, a) : fmt_ip6(buf, a);
  lua_pushlstring(L, buf, n);
}

/* ---- lp.cidr ---------------------------------------------------------------------------- */

struct cidr { int alen; int plen; uint8_t a[16]; };
#define CIDR_MT "lp.cidr"

static int l_cidr(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *slash = memchr(s, '/', len);
  size_t alen = slash ? (size_t)(slash - s) : len;
  struct cidr *c = lua_newuserdatauv(L, sizeof *c, 0);
  int i;
  c->alen = parse_addr(s, alen, c->a);
  if (!c->alen) return luaL_error(L, "lp.cidr: invalid address in '%s'", s);
  c->plen = c->alen * 8;
  if (slash) {
    const char *p = slash + 1;
    int v = 0, d = 0;
    while (p < s + len && *p >= '0' && *p <= '9' && d < 3) { v = v * 10 + (*p++ - '0'); d++; }
    if (!d || p != s + len || v > c->alen * 8) return luaL_error(L, "lp.cidr: invalid prefix length in '%s'", s);
    c->plen = v;
  }
  /* Keep only the prefix bits: 10.1.2.3/8 is 10.0.0.0/8. */
  for (i = 0; i < c->alen; i++) {
    int bits = c->plen - 8 * i;
    if (bits <= 0) c->a[i] = 0;
    else if (bits < 8) c->a[i] &= (uint8_t)(0xff << (8 - bits));
  }
  luaL_setmetatable(L, CIDR_MT);
  return 1;
}

static int cidr_match(const struct cidr *c, const uint8_t *a, int alen) {
  int full = c->plen / 8, rem = c->plen % 8;
  if (alen != c->alen) return 0;
  if (memcmp(a, c->a, (size_t)full)) return 0;
  if (rem && ((a[full] ^ c->a[full]) & (uint8_t)(0xff << (8 - rem)))) return 0;
  return 1;
}

static int l_cidr_contains(lua_State *L) {
  const struct cidr *c = luaL_checkudata(L, 1, CIDR_MT);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  uint8_t a[16];
  int alen = parse_addr(s, len, a);
  if (!alen) return luaL_error(L, "contains: invalid address '%s'", s);
  lua_pushboolean(L, cidr_match(c, a, alen));
  return 1;
}

static int l_cidr_tostring(lua_State *L) {
  const struct cidr *c = luaL_checkudata(L, 1, CIDR_MT);
  push_addr(L, c->a, c->alen);
  lua_pushfstring(L, "/%d", c->plen);
  lua_concat(L, 2);
  return 1;
}

/* ---- byte arrays over the packet (payload views) ------------------------------------------ */

/* The payload of the current packet's transport header: offset and length. */
static int payload_range(struct lp_state *S, int cls, uint32_t *off, uint32_t *len) {
  uint32_t l4 = PKT_L4OFF(S), plen = PKT_LEN(S), hl;
  if (cls == C_TCPPAY) {
    const uint8_t *p = pkt_at(S, l4 + 12, 1);
    if (!p) return 0;
    hl = (uint32_t)(p[0] >> 4) * 4;
  } else {
    hl = 8;
  }
  if (l4 + hl > plen) return 0;
  *off = l4 + hl;
  *len = plen - (l4 + hl);
  return 1;
}

/* The payload view at index 1 (of the running call): its offset and length in the packet. */
static struct lp_state *view_range(lua_State *L, uint32_t *off, uint32_t *len) {
  struct lp_state *S;
  int cls = check_obj(L, 1, VIEW_CLASSES, "bytes", &S);
  if (!payload_range(S, cls, off, len)) luaL_error(L, "packet too short for its payload");
  return S;
}

/* Pushes the bytes of the payload view at idx (of the running call) as a Lua string; raises
 * an error for anything else. Views are valid for their call only: lp.bytes(view) copies one
 * with this (lp_bytes.c), so a script can keep payload bytes past the call. */
void lp_view_push(lua_State *L, int idx) {
  struct lp_state *S;
  uint32_t off, len;
  int cls = check_obj(L, idx, VIEW_CLASSES, "string, bytes or payload", &S);
  if (!payload_range(S, cls, &off, &len)) {
    luaL_error(L, "packet too short for its payload");
    return; /* not reached: luaL_error does not return */
  }
  push_range(L, S, off, len);
}

static int l_view_len(lua_State *L) {
  uint32_t off, len;
  view_range(L, &off, &len);
  lua_pushinteger(L, len);
  return 1;
}

static int l_view_tostring(lua_State *L) {
  uint32_t off, len;
  struct lp_state *S = view_range(L, &off, &len);
  push_range(L, S, off, len);
  return 1;
}

/* string.sub's index rules. */
static void sub_bounds(lua_Integer n, lua_Integer i, lua_Integer j, lua_Integer *from, lua_Integer *to) {
  if (i < 0) i = n + i + 1 > 0 ? n + i + 1 : 1;
  else if (i == 0) i = 1;
  if (j < 0) j = n + j + 1;
  else if (j > n) j = n;
  *from = i;
  *to = j;
}

static int l_view_sub(lua_State *L) {
  uint32_t off, len;
  lua_Integer from, to;
  struct lp_state *S = view_range(L, &off, &len);
  sub_bounds(len, luaL_checkinteger(L, 2), luaL_optinteger(L, 3, -1), &from, &to);
  if (from > to) lua_pushliteral(L, "");
  else push_range(L, S, off + (uint32_t)(from - 1), (uint32_t)(to - from + 1));
  return 1;
}

static int l_view_find(lua_State *L) {
  uint32_t off, len;
  size_t nlen;
  const char *needle;
  lua_Integer init;
  int plain, base;
  struct lp_state *S = view_range(L, &off, &len);
  needle = luaL_checklstring(L, 2, &nlen);
  init = luaL_optinteger(L, 3, 1);
  plain = lua_toboolean(L, 4);
  if (init < 0) init = (lua_Integer)len + init + 1 > 0 ? (lua_Integer)len + init + 1 : 1;
  else if (init == 0) init = 1;
  if (init > (lua_Integer)len + 1) { lua_pushnil(L); return 1; }
  if (plain) {
    uint32_t win = PKT_WIN(S);
    uint32_t start = off + (uint32_t)(init - 1), avail = off + len - start;
    if (off + len <= win) {
      /* plain search in place: no copy */
      const uint8_t *hay = S->ctx + LP_CTX_WINDOW + start;
      uint32_t i;
      if (nlen == 0) { lua_pushinteger(L, init); lua_pushinteger(L, init - 1); return 2; }
      if (nlen <= avail)
        for (i = 0; i + nlen <= avail; i++)
          if (hay[i] == (uint8_t)needle[0] && !memcmp(hay + i, needle, nlen)) {
            lua_pushinteger(L, init + i);
            lua_pushinteger(L, init + i + (lua_Integer)nlen - 1);
            return 2;
          }
      lua_pushnil(L);
      return 1;
    }
  }
  /* patterns, or a payload beyond the window: the original string.find (not whatever the
   * script made of the global) on a copy; it returns 1 or 2 + #captures values */
  base = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LIB(L)->find_ref);
  push_range(L, S, off, len);
  lua_pushvalue(L, 2);
  lua_pushinteger(L, init);
  lua_pushboolean(L, plain);
  lua_call(L, 4, LUA_MULTRET);
  return lua_gettop(L) - base;
}

/* ---- protocol objects ----------------------------------------------------------------------- */

static int has_l4(struct lp_state *S, int proto) {
  return (PKT_FLAGS(S) & LP_FLAG_L4) && PKT_L4PROTO(S) == proto;
}

static const int pkt_keys[] = {K_ip, K_tcp, K_udp, K_ip6, K_icmp, K_icmp6, K_len, K_meta, K_bytes, K_u8, K_u16, K_u32};

static int l_pkt_bytes(lua_State *L) {
  struct lp_state *S;
  lua_Integer off, n, plen;
  (void)check_obj(L, 1, 1u << C_PKT, "packet", &S);
  off = luaL_checkinteger(L, 2);
  n = luaL_checkinteger(L, 3);
  plen = PKT_LEN(S);
  if (off < 0 || n < 0 || off > plen || n > plen - off)
    return luaL_error(L, "bytes(%I, %I) outside the packet (%I bytes)", off, n, plen);
  push_range(L, S, (uint32_t)off, (uint32_t)n);
  return 1;
}

static int pkt_uint(lua_State *L, uint32_t n) {
  struct lp_state *S;
  lua_Integer off;
  const uint8_t *p;
  (void)check_obj(L, 1, 1u << C_PKT, "packet", &S);
  off = luaL_checkinteger(L, 2);
  if (off < 0 || off > 0xffffffffLL || !(p = pkt_at(S, (uint32_t)off, n)))
    return luaL_error(L, "u%d(%I) outside the packet (%d bytes)", (int)(8 * n), off, (int)PKT_LEN(S));
  lua_pushinteger(L, n == 1 ? p[0] : n == 2 ? rd16(p) : rd32(p));
  return 1;
}
static int l_pkt_u8(lua_State *L) { return pkt_uint(L, 1); }
static int l_pkt_u16(lua_State *L) { return pkt_uint(L, 2); }
static int l_pkt_u32(lua_State *L) { return pkt_uint(L, 4); }

static int pkt_index(lua_State *L, struct lp_state *S) {
  switch (key_of(L, 2, pkt_keys, (int)(sizeof pkt_keys / sizeof *pkt_keys))) {
    case K_ip: if (PKT_NFPROTO(S) == LP_NFPROTO_IPV4) { push_obj(L, C_IP); return 1; } break;
    case K_ip6: if (PKT_NFPROTO(S) == LP_NFPROTO_IPV6) { push_obj(L, C_IP6); return 1; } break;
    case K_tcp: if (has_l4(S, 6)) { push_obj(L, C_TCP); return 1; } break;
    case K_udp: if (has_l4(S, 17)) { push_obj(L, C_UDP); return 1; } break;
    case K_icmp: if (PKT_NFPROTO(S) == LP_NFPROTO_IPV4 && has_l4(S, 1)) { push_obj(L, C_ICMP); return 1; } break;
    case K_icmp6: if (PKT_NFPROTO(S) == LP_NFPROTO_IPV6 && has_l4(S, 58)) { push_obj(L, C_ICMP6); return 1; } break;
    case K_len: lua_pushinteger(L, PKT_LEN(S)); return 1;
    case K_meta: push_obj(L, C_META); return 1;
    case K_bytes: lua_pushcfunction(L, l_pkt_bytes); return 1;
    case K_u8: lua_pushcfunction(L, l_pkt_u8); return 1;
    case K_u16: lua_pushcfunction(L, l_pkt_u16); return 1;
    case K_u32: lua_pushcfunction(L, l_pkt_u32); return 1;
    default: break;
  }
  lua_pushnil(L);
  return 1;
}

static const int ip_keys[] = {K_saddr, K_daddr, K_protocol, K_ttl, K_length, K_id, K_version, K_hdrlength, K_dscp, K_ecn, K_frag_off, K_checksum};

static int ip_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, 0, 20);
  switch (key_of(L, 2, ip_keys, (int)(sizeof ip_keys / sizeof *ip_keys))) {
    case K_saddr: push_addr(L, h + 12, 4); return 1;
    case K_daddr: push_addr(L, h + 16, 4); return 1;
    case K_protocol: lua_pushinteger(L, h[9]); return 1;
    case K_ttl: lua_pushinteger(L, h[8]); return 1;
    case K_length: lua_pushinteger(L, rd16(h + 2)); return 1;
    case K_id: lua_pushinteger(L, rd16(h + 4)); return 1;
    case K_version: lua_pushinteger(L, h[0] >> 4); return 1;
    case K_hdrlength: lua_pushinteger(L, h[0] & 0xf); return 1;
    case K_dscp: lua_pushinteger(L, h[1] >> 2); return 1;
    case K_ecn: lua_pushinteger(L, h[1] & 3); return 1;
    case K_frag_off: lua_pushinteger(L, rd16(h + 6)); return 1;
    case K_checksum: lua_pushinteger(L, rd16(h + 10)); return 1;
    default: lua_pushnil(L); return 1;
  }
}

static const int ip6_keys[] = {K_saddr, K_daddr, K_nexthdr, K_hoplimit, K_length, K_version, K_dscp, K_ecn, K_flowlabel};

static int ip6_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, 0, 40);
  switch (key_of(L, 2, ip6_keys, (int)(sizeof ip6_keys / sizeof *ip6_keys))) {
    case K_saddr: push_addr(L, h + 8, 16); return 1;
    case K_daddr: push_addr(L, h + 24, 16); return 1;
    case K_nexthdr: lua_pushinteger(L, h[6]); return 1;
    case K_hoplimit: lua_pushinteger(L, h[7]); return 1;
    case K_length: lua_pushinteger(L, rd16(h + 4)); return 1;
    case K_version: lua_pushinteger(L, h[0] >> 4); return 1;
    case K_dscp: lua_pushinteger(L, (rd16(h) >> 6) & 0x3f); return 1;
    case K_ecn: lua_pushinteger(L, (h[1] >> 4) & 3); return 1;
    case K_flowlabel: lua_pushinteger(L, rd32(h) & 0xfffff); return 1;
    default: lua_pushnil(L); return 1;
  }
}

static const int tcp_keys[] = {K_dport, K_sport, K_flags, K_syn, K_ack, K_fin, K_rst, K_psh, K_urg, K_ece, K_cwr, K_seq, K_ack_seq, K_window, K_payload, K_doff, K_checksum, K_urgptr};

static int tcp_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, PKT_L4OFF(S), 20);
  int k = key_of(L, 2, tcp_keys, (int)(sizeof tcp_keys / sizeof *tcp_keys));
  switch (k) {
    case K_sport: lua_pushinteger(L, rd16(h)); return 1;
    case K_dport: lua_pushinteger(L, rd16(h + 2)); return 1;
    case K_seq: lua_pushinteger(L, rd32(h + 4)); return 1;
    case K_ack_seq: lua_pushinteger(L, rd32(h + 8)); return 1;
    case K_doff: lua_pushinteger(L, h[12] >> 4); return 1;
    case K_flags: lua_pushinteger(L, h[13]); return 1;
    case K_fin: lua_pushboolean(L, h[13] & 0x01); return 1;
    case K_syn: lua_pushboolean(L, h[13] & 0x02); return 1;
    case K_rst: lua_pushboolean(L, h[13] & 0x04); return 1;
    case K_psh: lua_pushboolean(L, h[13] & 0x08); return 1;
    case K_ack: lua_pushboolean(L, h[13] & 0x10); return 1;
    case K_urg: lua_pushboolean(L, h[13] & 0x20); return 1;
    case K_ece: lua_pushboolean(L, h[13] & 0x40); return 1;
    case K_cwr: lua_pushboolean(L, h[13] & 0x80); return 1;
    case K_window: lua_pushinteger(L, rd16(h + 14)); return 1;
    case K_checksum: lua_pushinteger(L, rd16(h + 16)); return 1;
    case K_urgptr: lua_pushinteger(L, rd16(h + 18)); return 1;
    case K_payload: push_obj(L, C_TCPPAY); return 1;
    default: lua_pushnil(L); return 1;
  }
}

static const int udp_keys[] = {K_dport, K_sport, K_length, K_payload, K_checksum};

static int udp_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, PKT_L4OFF(S), 8);
  switch (key_of(L, 2, udp_keys, (int)(sizeof udp_keys / sizeof *udp_keys))) {
    case K_sport: lua_pushinteger(L, rd16(h)); return 1;
    case K_dport: lua_pushinteger(L, rd16(h + 2)); return 1;
    case K_length: lua_pushinteger(L, rd16(h + 4)); return 1;
    case K_checksum: lua_pushinteger(L, rd16(h + 6)); return 1;
    case K_payload: push_obj(L, C_UDPPAY); return 1;
    default: lua_pushnil(L); return 1;
  }
}

static const int icmp_keys[] = {K_type, K_code, K_checksum, K_id, K_sequence};

static int icmp_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, PKT_L4OFF(S), 4);
  switch (key_of(L, 2, icmp_keys, (int)(sizeof icmp_keys / sizeof *icmp_keys))) {
    case K_type: lua_pushinteger(L, h[0]); return 1;
    case K_code: lua_pushinteger(L, h[1]); return 1;
    case K_checksum: lua_pushinteger(L, rd16(h + 2)); return 1;
    case K_id: h = hdr(L, S, PKT_L4OFF(S), 8); lua_pushinteger(L, rd16(h + 4)); return 1;
    case K_sequence: h = hdr(L, S, PKT_L4OFF(S), 8); lua_pushinteger(L, rd16(h + 6)); return 1;
    default: lua_pushnil(L); return 1;
  }
}

static const int meta_keys[] = {K_mark, K_len, K_l4proto, K_nfproto, K_hook, K_iifname, K_oifname};

static void push_ifname(lua_State *L, const uint8_t *p) {
  size_t n = 0;
  while (n < 16 && p[n]) n++;
  lua_pushlstring(L, (const char *)p, n);
}

static int meta_index(lua_State *L, struct lp_state *S) {
  switch (key_of(L, 2, meta_keys, (int)(sizeof meta_keys / sizeof *meta_keys))) {
    case K_mark: lua_pushinteger(L, ctx32(S, LP_CTX_MARK)); return 1;
    case K_len: lua_pushinteger(L, PKT_LEN(S)); return 1;
    case K_l4proto: lua_pushinteger(L, PKT_L4PROTO(S)); return 1;
    case K_nfproto: lua_pushinteger(L, PKT_NFPROTO(S)); return 1;
    case K_hook: lua_pushinteger(L, S->ctx[LP_CTX_HOOK]); return 1;
    case K_iifname: push_ifname(L, S->ctx + LP_CTX_IIFNAME); return 1;
    case K_oifname: push_ifname(L, S->ctx + LP_CTX_OIFNAME); return 1;
    default: lua_pushnil(L); return 1;
  }
}

static const int view_keys[] = {K_sub, K_find, K_as};

static int view_index(lua_State *L) {
  switch (key_of(L, 2, view_keys, 3)) {
    case K_sub: lua_pushcfunction(L, l_view_sub); return 1;
    case K_find: lua_pushcfunction(L, l_view_find); return 1;
    case K_as: lua_pushcfunction(L, lp_proto_as); return 1; /* lp_proto.c */
    default: lua_pushnil(L); return 1;
  }
}

static int l_index(lua_State *L) {
  struct lp_state *S;
  switch (check_obj(L, 1, ALL_CLASSES, "packet", &S)) {
    case C_PKT: return pkt_index(L, S);
    case C_IP: return ip_index(L, S);
    case C_IP6: return ip6_index(L, S);
    case C_TCP: return tcp_index(L, S);
    case C_UDP: return udp_index(L, S);
    case C_ICMP: case C_ICMP6: return icmp_index(L, S);
    case C_META: return meta_index(L, S);
    default: return view_index(L);
  }
}

static int l_newindex(lua_State *L) {
  int cls = obj_cls(L, 1);
  return luaL_error(L, "%s.%s is read-only", cls >= 0 ? cls_names[cls] : "packet", luaL_tolstring(L, 2, NULL));
}

static int l_obj_tostring(lua_State *L) {
  int cls = obj_cls(L, 1);
  if (cls < 0 || (VIEW_CLASSES & 1u << cls)) return l_view_tostring(L);
  lua_pushfstring(L, "%s: %p", cls_names[cls], lua_touserdata(L, 1));
  return 1;
}

/* ---- lp ------------------------------------------------------------------------------------ */

static int l_queue(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= LP_QUEUE_MAX, 1, "queue number must be 0..65535");
  lua_pushinteger(L, LP_QUEUE_BASE + n);
  return 1;
}

static int l_log(lua_State *L) {
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
    lp_host_log(lp_state(L), LP_LOG_INFO, s, l);
  }
  return 0;
}

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

/* Starts a new call: the objects of earlier calls stop being valid. Called once per call. */
void lp_push_packet(lua_State *L) {
  struct lp_lib *lib = LIB(L);
  lib->gen = (lib->gen + 1) & GEN_MASK;
  if (!lib->gen) lib->gen = 1;
  push_obj(L, C_PKT);
}

int lp_openlib(lua_State *L) {
  static const luaL_Reg lp_funcs[] = {
      {"QUEUE", l_queue}, {"log", l_log}, {"now", l_now}, {"cidr", l_cidr}, {NULL, NULL}};
  static const luaL_Reg cidr_meths[] = {{"contains", l_cidr_contains}, {NULL, NULL}};
  int i;
  struct lp_lib *lib = lua_newuserdatauv(L, sizeof *lib, 0);
  memset(lib, 0, sizeof *lib);
  lp_state(L)->lib = lib;
  lua_setfield(L, LUA_REGISTRYINDEX, "lp.lib");

  /* interned keys, anchored in the registry so they are never collected */
  lua_createtable(L, K_COUNT, 0);
  for (i = 0; i < K_COUNT; i++) {
    lua_pushstring(L, key_names[i]);
    lib->keyp[i] = lua_tostring(L, -1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "lp.keys");

  /* string.find as the string library defined it, for payload:find */
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
  lua_getfield(L, -1, "find");
  lib->find_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);

  /* one metatable for all packet objects: the metatable of light userdata */
  lua_createtable(L, 0, 5);
  lua_pushcfunction(L, l_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, l_obj_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, l_view_len);
  lua_setfield(L, -2, "__len");
  lua_pushliteral(L, "packet");
  lua_setfield(L, -2, "__metatable");
  lua_pushlightuserdata(L, NULL);
  lua_pushvalue(L, -2);
  lua_setmetatable(L, -2);
  lua_pop(L, 2);

  luaL_newmetatable(L, CIDR_MT);
  luaL_newlib(L, cidr_meths);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_cidr_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  luaL_newlib(L, lp_funcs);
  lua_pushinteger(L, LP_ACCEPT);
  lua_setfield(L, -2, "ACCEPT");
  lua_pushinteger(L, LP_DROP);
  lua_setfield(L, -2, "DROP");
  lua_pushinteger(L, LP_CONTINUE);
  lua_setfield(L, -2, "CONTINUE");
  lua_pushinteger(L, LP_BREAK);
  lua_setfield(L, -2, "BREAK");
  lp_open_bytes(L); /* lp.bytes (lp_bytes.c) */
  lp_open_proto(L); /* lp.proto (lp_proto.c) */
  lua_setglobal(L, "lp");

  /* print goes to the script's log */
  lua_pushcfunction(L, l_log);
  lua_setglobal(L, "print");
  return 0;
}

/* ---- the sandbox's libraries (shared by the wasm guest and the native baseline) ---- */

/* The message handler of top-level calls: keeps the message, records a traceback. */
int lp_msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
    else msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
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

int lp_open_sandbox(lua_State *L, lua_CFunction guarded) {
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},        {LUA_COLIBNAME, luaopen_coroutine},
                                  {LUA_TABLIBNAME, luaopen_table},  {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_MATHLIBNAME, luaopen_math},  {LUA_UTF8LIBNAME, luaopen_utf8},
                                  {NULL, NULL}};
  const luaL_Reg *lib;
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
