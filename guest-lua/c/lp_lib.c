/*
 * The luapkt Lua library: the global `lp` and the packet object.
 *
 * The same file builds into the wasm guest and into the native baseline of `lpctl bench`, both
 * against the same Lua sources: Lua's C API, and its internal headers where a field read is hot
 * (key_id reads the key's string directly). The packet object, its protocol classes and payload
 * views are light userdata (see "packet objects" below): handing one out and reading a field
 * allocate nothing (addresses and byte strings excepted, which are Lua strings). Field names are
 * interned once; __index finds the key by its interned pointer in a small hash of the keys
 * (KEY_BUCKET), and whether the class has it by a bit (key_in).
 */
#include <string.h>

#include "lauxlib.h"
#include "lp_abi.h"
#include "lp_host.h"
#include "lua.h"
#include "lualib.h"

#include "lobject.h"
#include "lstate.h"

/* ---- field names ---------------------------------------------------------------------- */

#define LP_KEYS(X)                                                                     \
  X(ip) X(ip6) X(tcp) X(udp) X(icmp) X(icmp6) X(len) X(meta) X(bytes) X(u8) X(u16) X(u32) \
  X(saddr) X(daddr) X(protocol) X(ttl) X(length) X(id) X(version) X(hdrlength) X(dscp)  \
  X(ecn) X(frag_off) X(checksum) X(nexthdr) X(hoplimit) X(flowlabel) X(sport) X(dport)  \
  X(flags) X(syn) X(ack) X(fin) X(rst) X(psh) X(urg) X(ece) X(cwr) X(seq) X(ack_seq)     \
  X(doff) X(window) X(urgptr) X(payload) X(type) X(code) X(sequence) X(mark) X(hook)     \
  X(iifname) X(oifname) X(l4proto) X(nfproto) X(sub) X(find) X(contains) X(as) X(eth)  \
  X(ct) X(dst) X(src) X(state) X(mss) X(wscale) X(sack_perm) X(ts_val) X(ts_ecr)        \
  X(set_u8) X(set_u16) X(set_u32) X(set_bytes) X(fix_checksums)

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

enum cls { C_PKT, C_IP, C_IP6, C_TCP, C_UDP, C_ICMP, C_ICMP6, C_META, C_TCPPAY, C_UDPPAY, C_ETH, C_CT, C_NCLS };

/* Key strings by bucket (KEY_BUCKET), as K + 1 (0: free): a field read finds its key with one
 * or two pointer comparisons instead of a walk through the class's keys. */
#define KEY_BUCKETS 128
#define KEY_WAYS 2
#define KEY_BUCKET(s, len) (((len) + (uint8_t)(s)[0] * 14u + (uint8_t)(s)[(len) - 1]) & (KEY_BUCKETS - 1))
_Static_assert(K_COUNT < 255, "keys are stored as K + 1 in a byte");

/* The library's per-state data (a userdata anchored in the registry, found via lp_state). */
struct lp_lib {
  const char *keyp[K_COUNT]; /* interned key strings: equal keys are the same pointer */
  uint8_t bucket[KEY_BUCKETS][KEY_WAYS];
  uint16_t in_set[K_COUNT]; /* the key sets (enum key_set) each key is in, as bits */
  uintptr_t gen;             /* generation of the current call's objects (lp_push_packet) */
  int find_ref;              /* registry ref of the original string.find */
  uint8_t scratch[64];       /* reads beyond the window */
};
#define LIB(L) ((struct lp_lib *)lp_state(L)->lib)

/* The key (K_*) the value at idx is, or -1: an interned key string is the same pointer. */
static int key_id(lua_State *L, int idx) {
  const struct lp_lib *lib = LIB(L);
  const uint8_t *b;
  const char *k;
  size_t len;
  int j;
  StkId o = L->ci->func.p + idx;
  TString *ts;
  if (o >= L->top.p || !ttisshrstring(s2v(o))) return -1; /* every key is a short string */
  ts = tsvalue(s2v(o));
  k = getstr(ts);
  len = ts->shrlen;
  if (len == 0) return -1;
  b = lib->bucket[KEY_BUCKET(k, len)];
  for (j = 0; j < KEY_WAYS && b[j]; j++)
    if (lib->keyp[b[j] - 1] == k) return b[j] - 1;
  return -1;
}

/* The sets of keys (a class's fields and methods) key_in checks against. */
enum key_set { S_CT, S_ETH, S_ICMP, S_IP, S_IP6, S_META, S_PKT, S_TCP, S_UDP, S_VIEW, S_COUNT };
_Static_assert(S_COUNT <= 16, "key sets are bits of a uint16_t");

/* The key at idx when it is in `set`, else -1. */
static int key_in(lua_State *L, int idx, enum key_set set) {
  int k = key_id(L, idx);
  return k >= 0 && (LIB(L)->in_set[k] >> set & 1) ? k : -1;
}

/* ---- packet bytes --------------------------------------------------------------------- */

static const char *const cls_names[C_NCLS] = {"packet", "ip", "ip6", "tcp", "udp", "icmp",
                                              "icmp6", "meta", "bytes", "bytes", "eth", "ct"};

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
_Static_assert(C_NCLS < 1 << CLS_BITS, "classes must fit in CLS_BITS, with CLS_MASK left for no class");
#define ALL_CLASSES ((1u << C_NCLS) - 1)
#define VIEW_CLASSES (1u << C_TCPPAY | 1u << C_UDPPAY)

/* The value of a packet object of class cls handed out by call gen. */
#define OBJ_VALUE(gen, cls) ((void *)((gen) << CLS_BITS | (uintptr_t)(cls)))

static void push_obj(lua_State *L, int cls) { lua_pushlightuserdata(L, OBJ_VALUE(LIB(L)->gen, cls)); }

/* The value at idx as a packet object's (class and generation), CLS_MASK (no class) when it
 * is no light userdata. */
static uintptr_t obj_value(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA ? (uintptr_t)lua_touserdata(L, idx) : CLS_MASK;
}

/* The class in a packet object's value, or -1 when the value is not one. */
static int value_cls(uintptr_t v) { return (v & CLS_MASK) < C_NCLS ? (int)(v & CLS_MASK) : -1; }

/* Class of the packet object at idx (of any call), or -1 when the value is not one. */
static int obj_cls(lua_State *L, int idx) { return value_cls(obj_value(L, idx)); }

/* The class of the packet object at idx, which must be one of `classes` (a bit mask, named
 * `expected` in the error) and belong to the running call. */
static int check_obj(lua_State *L, int idx, unsigned classes, const char *expected, struct lp_state **Sp) {
  struct lp_state *S = lp_state(L);
  uintptr_t v = obj_value(L, idx);
  int cls = value_cls(v);
  if (cls < 0 || !(classes & 1u << cls))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s expected, got %s", expected,
                                          cls < 0 ? luaL_typename(L, idx) : cls_names[cls]));
  if (!S->in_call || v >> CLS_BITS != ((struct lp_lib *)S->lib)->gen)
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

/* Copies packet bytes [off, off+n) to dst: the window's part from the window (it has the
 * call's writes), the rest from the host. 0 when out of the packet. */
static int read_bytes(struct lp_state *S, uint32_t off, uint8_t *dst, uint32_t n) {
  uint32_t len = PKT_LEN(S), win = PKT_WIN(S), m = 0;
  if (off > len || n > len - off) return 0;
  if (off < win) {
    m = n < win - off ? n : win - off;
    memcpy(dst, S->ctx + LP_CTX_WINDOW + off, m);
  }
  return m == n || lp_host_pkt_read(S, off + m, dst + m, n - m) == (int)(n - m);
}

/* Pointer to packet bytes [off, off+n), n <= sizeof scratch, or NULL when out of the packet. */
static const uint8_t *pkt_at(struct lp_state *S, uint32_t off, uint32_t n) {
  uint32_t len = PKT_LEN(S), win = PKT_WIN(S);
  uint8_t *scratch = ((struct lp_lib *)S->lib)->scratch;
  if (off > len || n > len - off) return NULL;
  if (off <= win && n <= win - off) return S->ctx + LP_CTX_WINDOW + off;
  if (n > sizeof((struct lp_lib *)0)->scratch || !read_bytes(S, off, scratch, n)) return NULL;
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
    if (!read_bytes(S, off, (uint8_t *)dst, n)) luaL_error(L, "packet read failed");
    luaL_pushresultsize(&b, n);
  }
}

/* ---- writing the packet -----------------------------------------------------------------
 *
 * Writes change the context's window and widen its dirty range, which the host copies to the
 * packet after the call; bytes beyond the window go to the packet at once (pkt_write). See
 * docs/packet-writes.md. Checksums are kept by incremental updates (RFC 1624): a write knows
 * the bytes it replaces, so the cost does not depend on the packet's size.
 */

static void put32le(struct lp_state *S, int off, uint32_t v) { memcpy(S->ctx + off, &v, 4); }

/* Writes packet bytes [off, off+n); a Lua error when that is not inside the packet. */
static void pkt_write(lua_State *L, struct lp_state *S, uint32_t off, const uint8_t *src, uint32_t n) {
  uint32_t len = PKT_LEN(S), win = PKT_WIN(S), m = 0;
  if (off > len || n > len - off)
    luaL_error(L, "write of %d bytes at offset %d outside the packet (%d bytes)", (int)n, (int)off, (int)len);
  if (off < win) m = n < win - off ? n : win - off;
  /* the part that can fail first (the kernel may lack memory to make the skb writable): a
   * failed write changes nothing */
  if (m < n && lp_host_pkt_write(S, off + m, src + m, n - m) != (int)(n - m))
    luaL_error(L, "packet write at offset %d failed", (int)(off + m));
  if (m) {
    uint32_t lo = ctx32(S, LP_CTX_DIRTY_LO), hi = ctx32(S, LP_CTX_DIRTY_HI);
    memcpy(S->ctx + LP_CTX_WINDOW + off, src, m);
    if (hi == 0 || off < lo) put32le(S, LP_CTX_DIRTY_LO, off);
    if (off + m > hi) put32le(S, LP_CTX_DIRTY_HI, off + m);
  }
}

/* The one's-complement change of replacing old by new at packet offset off (the parity of off
 * places each byte in its 16-bit word: every checksummed region starts at an even offset). */
static uint32_t csum_fold(uint32_t acc);
static uint32_t csum_delta(const uint8_t *old, const uint8_t *new, uint32_t n, uint32_t off) {
  uint32_t so = 0, sn = 0, i;
  for (i = 0; i < n; i++) {
    int shift = ((off + i) & 1) ? 0 : 8;
    so += (uint32_t)old[i] << shift;
    sn += (uint32_t)new[i] << shift;
  }
  /* new - old in one's complement: adding the complement of old's folded sum */
  return sn + (~csum_fold(so) & 0xffff);
}

static uint32_t csum_fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return acc;
}

/* Applies `delta` to the 16-bit checksum at packet offset coff. `partial`: the field holds
 * the uncomplemented pseudo-header sum (CHECKSUM_PARTIAL); `zero_none` (UDP): 0 means "no
 * checksum" and stays 0 (over IPv6 too, as Linux's NAT keeps it: zero-checksum tunnels), and a
 * computed 0 is sent as 0xffff. */
static void csum_apply(lua_State *L, struct lp_state *S, uint32_t coff, uint32_t delta, int partial, int zero_none) {
  const uint8_t *p = hdr(L, S, coff, 2);
  uint32_t c = rd16(p);
  uint8_t out[2];
  if (zero_none && !partial && c == 0) return;
  if (partial) c = csum_fold(c + delta);
  else {
    c = ~csum_fold((~c & 0xffff) + delta) & 0xffff;
    if (zero_none && c == 0) c = 0xffff;
  }
  out[0] = (uint8_t)(c >> 8);
  out[1] = (uint8_t)c;
  pkt_write(L, S, coff, out, 2);
}

/* What a field's change must keep valid. */
#define CK_IP 1     /* the IPv4 header checksum */
#define CK_L4 2     /* the transport checksum: a field it covers */
#define CK_PSEUDO 4 /* the transport checksum: an address of its pseudo-header */

/* Offset of the transport checksum, or 0 when the packet has none we keep (no transport
 * header here, or a protocol without one). *pseudo: it covers a pseudo-header. */
static uint32_t l4_csum_off(struct lp_state *S, int *pseudo, int *zero_none) {
  uint32_t l4 = PKT_L4OFF(S);
  *pseudo = 1;
  *zero_none = 0;
  if (!(PKT_FLAGS(S) & LP_FLAG_L4)) return 0;
  switch (PKT_L4PROTO(S)) {
    case 6: return l4 + 16;
    case 17: *zero_none = 1; return l4 + 6;
    case 58: return l4 + 2;
    case 1: *pseudo = 0; return l4 + 2;
    default: return 0;
  }
}

/* Fixes the transport checksum for a change `delta` of a field it covers (ck: CK_L4 or
 * CK_PSEUDO). */
static void l4_fix(lua_State *L, struct lp_state *S, uint32_t delta, int ck) {
  int pseudo, zero_none, partial = S->ctx[LP_CTX_CSUM] == LP_CSUM_PARTIAL;
  uint32_t coff = l4_csum_off(S, &pseudo, &zero_none);
  if (!coff) return;
  if (ck == CK_PSEUDO && !pseudo) return;
  /* partial: the NIC sums the segment itself, only the pseudo-header part is in the field */
  if (partial && ck != CK_PSEUDO) return;
  csum_apply(L, S, coff, delta, partial, zero_none);
}

/* Writes field bytes [off, off+n) (n <= 16) and keeps the checksums `ck` names valid. */
static void set_field(lua_State *L, struct lp_state *S, uint32_t off, const uint8_t *val, uint32_t n, int ck) {
  uint8_t old[16];
  uint32_t delta;
  memcpy(old, hdr(L, S, off, n), n);
  if (!memcmp(old, val, n)) return;
  delta = csum_delta(old, val, n, off);
  pkt_write(L, S, off, val, n);
  if (ck & CK_IP) csum_apply(L, S, 10, delta, 0, 0);
  if (ck & (CK_L4 | CK_PSEUDO)) l4_fix(L, S, delta, ck & CK_PSEUDO ? CK_PSEUDO : CK_L4);
}

static void set_uint(lua_State *L, struct lp_state *S, uint32_t off, uint32_t v, uint32_t n, int ck) {
  uint8_t b[4];
  uint32_t i;
  for (i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  set_field(L, S, off, b, n, ck);
}

/* Writes bytes of the payload of the call `gen` (lp_proto.c's views): the transport checksum
 * covers them. */
void lp_payload_write(lua_State *L, uintptr_t gen, uint32_t off, const uint8_t *src, uint32_t n) {
  struct lp_state *S = lp_state(L);
  uint8_t old[64];
  if (!S->in_call || gen != LIB(L)->gen)
    luaL_error(L, "the view's packet is gone: views write their packet during its call only");
  while (n) {
    uint32_t k = n < sizeof old ? n : (uint32_t)sizeof old;
    const uint8_t *p = pkt_at(S, off, k);
    if (!p) luaL_error(L, "payload write at offset %d outside the packet", (int)off);
    memcpy(old, p, k);
    {
      uint32_t delta = csum_delta(old, src, k, off);
      pkt_write(L, S, off, src, k);
      l4_fix(L, S, delta, CK_L4);
    }
    off += k;
    src += k;
    n -= k;
  }
}

/* Reads payload bytes [off, off+n) of the call `gen` (lp_proto.c's views, before a write). */
void lp_payload_read(lua_State *L, uintptr_t gen, uint32_t off, uint8_t *dst, uint32_t n) {
  struct lp_state *S = lp_state(L);
  if (!S->in_call || gen != LIB(L)->gen)
    luaL_error(L, "the view's packet is gone: views write their packet during its call only");
  if (!read_bytes(S, off, dst, n)) luaL_error(L, "payload read at offset %d outside the packet", (int)off);
}

/* One's-complement sum of packet bytes [off, off+n), off even. */
static uint32_t sum_range(lua_State *L, struct lp_state *S, uint32_t off, uint32_t n, uint32_t acc) {
  while (n) {
    uint32_t k = n < 64 ? n : 64, i;
    const uint8_t *p = pkt_at(S, off, k);
    if (!p) luaL_error(L, "packet read failed");
    for (i = 0; i < k; i++) acc += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
    acc = csum_fold(acc);
    off += k;
    n -= k;
  }
  return acc;
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
  uint32_t l4 = PKT_L4OFF(S), end = PKT_LEN(S), hl, n;
  const uint8_t *p;
  /* the datagram ends where IP says: link-layer padding (hooks before the IP stack trims it)
   * is not payload */
  if (PKT_NFPROTO(S) == LP_NFPROTO_IPV4 && (p = pkt_at(S, 2, 2)) && rd16(p) < end) end = rd16(p);
  if (PKT_NFPROTO(S) == LP_NFPROTO_IPV6 && (p = pkt_at(S, 4, 2)) && rd16(p) && 40u + rd16(p) < end)
    end = 40u + rd16(p);
  if (cls == C_TCPPAY) {
    if (!(p = pkt_at(S, l4 + 12, 1))) return 0;
    hl = (uint32_t)(p[0] >> 4) * 4;
  } else {
    hl = 8;
    if ((p = pkt_at(S, l4 + 4, 2)) && (n = rd16(p)) >= 8 && l4 + n < end) end = l4 + n;
  }
  if (l4 + hl > end) return 0;
  *off = l4 + hl;
  *len = end - (l4 + hl);
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

/* The payload view at idx (of the running call): its offset in the packet and its call. */
void lp_view_origin(lua_State *L, int idx, uint32_t *off, uintptr_t *gen) {
  struct lp_state *S;
  uint32_t len;
  int cls = check_obj(L, idx, VIEW_CLASSES, "payload", &S);
  if (!payload_range(S, cls, off, &len)) luaL_error(L, "packet too short for its payload");
  *gen = LIB(L)->gen;
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

static const int pkt_keys[] = {K_ip, K_tcp, K_udp, K_ip6, K_icmp, K_icmp6, K_len, K_meta, K_bytes, K_u8, K_u16, K_u32,
                               K_eth, K_ct, K_set_u8, K_set_u16, K_set_u32, K_set_bytes, K_fix_checksums};
static int l_pkt_set_u8(lua_State *L);
static int l_pkt_set_u16(lua_State *L);
static int l_pkt_set_u32(lua_State *L);
static int l_pkt_set_bytes(lua_State *L);
static int l_pkt_fix_checksums(lua_State *L);

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
  switch (key_in(L, 2, S_PKT)) {
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
    case K_eth: if (PKT_FLAGS(S) & LP_FLAG_ETH) { push_obj(L, C_ETH); return 1; } break;
    case K_ct: if (PKT_FLAGS(S) & LP_FLAG_CT) { push_obj(L, C_CT); return 1; } break;
    case K_set_u8: lua_pushcfunction(L, l_pkt_set_u8); return 1;
    case K_set_u16: lua_pushcfunction(L, l_pkt_set_u16); return 1;
    case K_set_u32: lua_pushcfunction(L, l_pkt_set_u32); return 1;
    case K_set_bytes: lua_pushcfunction(L, l_pkt_set_bytes); return 1;
    case K_fix_checksums: lua_pushcfunction(L, l_pkt_fix_checksums); return 1;
    default: break;
  }
  lua_pushnil(L);
  return 1;
}

static const int ip_keys[] = {K_saddr, K_daddr, K_protocol, K_ttl, K_length, K_id, K_version, K_hdrlength, K_dscp, K_ecn, K_frag_off, K_checksum};

static int ip_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, 0, 20);
  switch (key_in(L, 2, S_IP)) {
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
  switch (key_in(L, 2, S_IP6)) {
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

static const int tcp_keys[] = {K_dport, K_sport, K_flags, K_syn, K_ack, K_fin, K_rst, K_psh, K_urg, K_ece, K_cwr, K_seq, K_ack_seq, K_window, K_payload, K_doff, K_checksum, K_urgptr, K_mss, K_wscale, K_sack_perm, K_ts_val, K_ts_ecr};
static uint32_t tcp_opt(lua_State *L, struct lp_state *S, uint8_t kind, uint8_t olen);

static int tcp_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, PKT_L4OFF(S), 20);
  int k = key_in(L, 2, S_TCP);
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
    case K_mss: case K_wscale: case K_ts_val: case K_ts_ecr: case K_sack_perm: {
      uint32_t o = k == K_mss ? tcp_opt(L, S, 2, 4) : k == K_wscale ? tcp_opt(L, S, 3, 3)
                 : k == K_sack_perm ? tcp_opt(L, S, 4, 2) : tcp_opt(L, S, 8, 10);
      const uint8_t *p;
      if (k == K_sack_perm) { lua_pushboolean(L, o != 0); return 1; }
      if (!o) { lua_pushnil(L); return 1; }
      p = hdr(L, S, o, k == K_mss ? 4 : k == K_wscale ? 3 : 10);
      lua_pushinteger(L, k == K_mss ? rd16(p + 2) : k == K_wscale ? p[2] : k == K_ts_val ? rd32(p + 2) : rd32(p + 6));
      return 1;
    }
    default: lua_pushnil(L); return 1;
  }
}

static const int udp_keys[] = {K_dport, K_sport, K_length, K_payload, K_checksum};

static int udp_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, PKT_L4OFF(S), 8);
  switch (key_in(L, 2, S_UDP)) {
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
  switch (key_in(L, 2, S_ICMP)) {
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
  switch (key_in(L, 2, S_META)) {
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

static int eth_index(lua_State *L, struct lp_state *S);
static int ct_index(lua_State *L, struct lp_state *S);

static const int view_keys[] = {K_sub, K_find, K_as};

static int view_index(lua_State *L) {
  switch (key_in(L, 2, S_VIEW)) {
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
    case C_ETH: return eth_index(L, S);
    case C_CT: return ct_index(L, S);
    default: return view_index(L);
  }
}

/* ---- setters -------------------------------------------------------------------------------- */

/* The new value of field `name` of `cls` (at index 3) as an integer in [0, max]. */
static uint32_t check_uint(lua_State *L, int cls, const char *name, lua_Integer max) {
  lua_Integer v;
  int isnum = lua_type(L, 3) == LUA_TNUMBER; /* no strings converted, no booleans */
  v = isnum ? lua_tointegerx(L, 3, &isnum) : 0;
  if (!isnum)
    luaL_error(L, "%s.%s: expected an integer, got %s", cls_names[cls], name,
               lua_type(L, 3) == LUA_TNUMBER ? "a float" : luaL_typename(L, 3));
  if (v < 0 || v > max)
    luaL_error(L, "%s.%s: %I out of range 0..%I", cls_names[cls], name, v, max);
  return (uint32_t)v;
}

/* The new value of a TCP flag (index 3): a boolean, or 0/1. */
static int check_flag(lua_State *L, const char *name) {
  if (lua_type(L, 3) == LUA_TBOOLEAN) return lua_toboolean(L, 3);
  return (int)check_uint(L, C_TCP, name, 1);
}

/* The new value of address field `name` (index 3): text of an address of alen bytes. */
static void check_addr(lua_State *L, int cls, const char *name, int alen, uint8_t *out) {
  size_t len = 0;
  const char *s = lua_type(L, 3) == LUA_TSTRING ? lua_tolstring(L, 3, &len) : NULL;
  if (!s)
    luaL_error(L, "%s.%s: expected an address string, got %s", cls_names[cls], name, luaL_typename(L, 3));
  if (parse_addr(s, len, out) != alen)
    luaL_error(L, "%s.%s: '%s' is not an IPv%d address", cls_names[cls], name, s, alen == 4 ? 4 : 6);
}

static int read_only(lua_State *L, int cls) {
  return luaL_error(L, "%s.%s is read-only", cls_names[cls], luaL_tolstring(L, 2, NULL));
}
static int no_field(lua_State *L, int cls) {
  return luaL_error(L, "%s has no field '%s'", cls_names[cls], luaL_tolstring(L, 2, NULL));
}

static int ip_newindex(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, 0, 20);
  uint8_t a[16];
  int k = key_in(L, 2, S_IP);
  const char *n = lua_tostring(L, 2);
  switch (k) {
    case K_saddr: check_addr(L, C_IP, n, 4, a); set_field(L, S, 12, a, 4, CK_IP | CK_PSEUDO); return 0;
    case K_daddr: check_addr(L, C_IP, n, 4, a); set_field(L, S, 16, a, 4, CK_IP | CK_PSEUDO); return 0;
    case K_ttl: set_uint(L, S, 8, check_uint(L, C_IP, n, 255), 1, CK_IP); return 0;
    case K_id: set_uint(L, S, 4, check_uint(L, C_IP, n, 0xffff), 2, CK_IP); return 0;
    case K_frag_off: set_uint(L, S, 6, check_uint(L, C_IP, n, 0xffff), 2, CK_IP); return 0;
    case K_dscp: set_uint(L, S, 1, check_uint(L, C_IP, n, 63) << 2 | (h[1] & 3u), 1, CK_IP); return 0;
    case K_ecn: set_uint(L, S, 1, (h[1] & 0xfcu) | check_uint(L, C_IP, n, 3), 1, CK_IP); return 0;
    case K_checksum: set_uint(L, S, 10, check_uint(L, C_IP, n, 0xffff), 2, 0); return 0;
    case -1: return no_field(L, C_IP);
    default: return read_only(L, C_IP);
  }
}

static int ip6_newindex(lua_State *L, struct lp_state *S) {
  uint32_t w = rd32(hdr(L, S, 0, 40));
  uint8_t a[16];
  int k = key_in(L, 2, S_IP6);
  const char *n = lua_tostring(L, 2);
  switch (k) {
    case K_saddr: check_addr(L, C_IP6, n, 16, a); set_field(L, S, 8, a, 16, CK_PSEUDO); return 0;
    case K_daddr: check_addr(L, C_IP6, n, 16, a); set_field(L, S, 24, a, 16, CK_PSEUDO); return 0;
    case K_hoplimit: set_uint(L, S, 7, check_uint(L, C_IP6, n, 255), 1, 0); return 0;
    /* version(4) | traffic class: dscp(6) ecn(2) | flow label(20) */
    case K_dscp: set_uint(L, S, 0, (w & ~(0x3fu << 22)) | check_uint(L, C_IP6, n, 63) << 22, 4, 0); return 0;
    case K_ecn: set_uint(L, S, 0, (w & ~(3u << 20)) | check_uint(L, C_IP6, n, 3) << 20, 4, 0); return 0;
    case K_flowlabel: set_uint(L, S, 0, (w & ~0xfffffu) | check_uint(L, C_IP6, n, 0xfffff), 4, 0); return 0;
    case -1: return no_field(L, C_IP6);
    default: return read_only(L, C_IP6);
  }
}

static int tcp_flag(int k) {
  switch (k) {
    case K_fin: return 0x01; case K_syn: return 0x02; case K_rst: return 0x04; case K_psh: return 0x08;
    case K_ack: return 0x10; case K_urg: return 0x20; case K_ece: return 0x40; case K_cwr: return 0x80;
    default: return 0;
  }
}

/* Offset in the packet of TCP option `kind` with length `olen`, or 0 when the segment does not
 * carry it (or its options are malformed). */
static uint32_t tcp_opt(lua_State *L, struct lp_state *S, uint8_t kind, uint8_t olen) {
  uint32_t l4 = PKT_L4OFF(S), end, i;
  const uint8_t *h = hdr(L, S, l4, 20);
  end = l4 + (uint32_t)(h[12] >> 4) * 4;
  if (end > PKT_LEN(S)) return 0;
  for (i = l4 + 20; i < end;) {
    const uint8_t *p = pkt_at(S, i, 1);
    uint32_t l;
    if (!p || p[0] == 0) return 0;
    if (p[0] == 1) { i++; continue; }
    if (i + 1 >= end || !(p = pkt_at(S, i, 2))) return 0;
    l = p[1];
    if (l < 2 || i + l > end) return 0;
    if (p[0] == kind) return l == olen ? i : 0;
    i += l;
  }
  return 0;
}

static int tcp_newindex(lua_State *L, struct lp_state *S) {
  const uint8_t *h = hdr(L, S, PKT_L4OFF(S), 20);
  uint32_t l4 = PKT_L4OFF(S), o;
  int k = key_in(L, 2, S_TCP);
  const char *n = lua_tostring(L, 2);
  if (tcp_flag(k)) {
    uint32_t f = h[13], bit = (uint32_t)tcp_flag(k);
    f = check_flag(L, n) ? f | bit : f & ~bit;
    set_uint(L, S, l4 + 13, f, 1, CK_L4);
    return 0;
  }
  switch (k) {
    case K_sport: set_uint(L, S, l4, check_uint(L, C_TCP, n, 0xffff), 2, CK_L4); return 0;
    case K_dport: set_uint(L, S, l4 + 2, check_uint(L, C_TCP, n, 0xffff), 2, CK_L4); return 0;
    case K_seq: set_uint(L, S, l4 + 4, check_uint(L, C_TCP, n, 0xffffffff), 4, CK_L4); return 0;
    case K_ack_seq: set_uint(L, S, l4 + 8, check_uint(L, C_TCP, n, 0xffffffff), 4, CK_L4); return 0;
    case K_flags: set_uint(L, S, l4 + 13, check_uint(L, C_TCP, n, 0xff), 1, CK_L4); return 0;
    case K_window: set_uint(L, S, l4 + 14, check_uint(L, C_TCP, n, 0xffff), 2, CK_L4); return 0;
    case K_urgptr: set_uint(L, S, l4 + 18, check_uint(L, C_TCP, n, 0xffff), 2, CK_L4); return 0;
    case K_checksum: set_uint(L, S, l4 + 16, check_uint(L, C_TCP, n, 0xffff), 2, 0); return 0;
    case K_mss: case K_wscale: case K_ts_val: case K_ts_ecr: {
      uint32_t v = k == K_mss ? check_uint(L, C_TCP, n, 0xffff)
                 : k == K_wscale ? check_uint(L, C_TCP, n, 14)
                 : check_uint(L, C_TCP, n, 0xffffffff);
      o = k == K_mss ? tcp_opt(L, S, 2, 4) : k == K_wscale ? tcp_opt(L, S, 3, 3) : tcp_opt(L, S, 8, 10);
      if (!o) return luaL_error(L, "tcp.%s: the segment carries no such option (options are changed, not added)", n);
      if (k == K_mss) set_uint(L, S, o + 2, v, 2, CK_L4);
      else if (k == K_wscale) set_uint(L, S, o + 2, v, 1, CK_L4);
      else set_uint(L, S, o + (k == K_ts_val ? 2 : 6), v, 4, CK_L4);
      return 0;
    }
    case -1: return no_field(L, C_TCP);
    default: return read_only(L, C_TCP);
  }
}

static int udp_newindex(lua_State *L, struct lp_state *S) {
  uint32_t l4 = PKT_L4OFF(S);
  int k = key_in(L, 2, S_UDP);
  const char *n = lua_tostring(L, 2);
  (void)hdr(L, S, l4, 8);
  switch (k) {
    case K_sport: set_uint(L, S, l4, check_uint(L, C_UDP, n, 0xffff), 2, CK_L4); return 0;
    case K_dport: set_uint(L, S, l4 + 2, check_uint(L, C_UDP, n, 0xffff), 2, CK_L4); return 0;
    case K_checksum: set_uint(L, S, l4 + 6, check_uint(L, C_UDP, n, 0xffff), 2, 0); return 0;
    case -1: return no_field(L, C_UDP);
    default: return read_only(L, C_UDP);
  }
}

static int icmp_newindex(lua_State *L, struct lp_state *S, int cls) {
  uint32_t l4 = PKT_L4OFF(S);
  int k = key_in(L, 2, S_ICMP);
  const char *n = lua_tostring(L, 2);
  switch (k) {
    case K_type: set_uint(L, S, l4, check_uint(L, cls, n, 255), 1, CK_L4); return 0;
    case K_code: set_uint(L, S, l4 + 1, check_uint(L, cls, n, 255), 1, CK_L4); return 0;
    case K_checksum: set_uint(L, S, l4 + 2, check_uint(L, cls, n, 0xffff), 2, 0); return 0;
    case K_id: set_uint(L, S, l4 + 4, check_uint(L, cls, n, 0xffff), 2, CK_L4); return 0;
    case K_sequence: set_uint(L, S, l4 + 6, check_uint(L, cls, n, 0xffff), 2, CK_L4); return 0;
    default: return no_field(L, cls);
  }
}

static int meta_newindex(lua_State *L, struct lp_state *S) {
  int k = key_in(L, 2, S_META);
  if (k == K_mark) {
    put32le(S, LP_CTX_MARK, check_uint(L, C_META, "mark", 0xffffffff));
    S->ctx[LP_CTX_OUT] |= LP_OUT_MARK;
    return 0;
  }
  return k < 0 ? no_field(L, C_META) : read_only(L, C_META);
}

static const int ct_keys[] = {K_state, K_mark, K_id};

static int ct_index(lua_State *L, struct lp_state *S) {
  switch (key_in(L, 2, S_CT)) {
    case K_state: {
      uint8_t st = S->ctx[LP_CTX_CT_STATE];
      lua_pushstring(L, st & LP_CT_INVALID ? "invalid" : st & LP_CT_ESTABLISHED ? "established"
                        : st & LP_CT_RELATED ? "related" : st & LP_CT_NEW ? "new"
                        : st & LP_CT_UNTRACKED ? "untracked" : "invalid");
      return 1;
    }
    case K_mark: lua_pushinteger(L, ctx32(S, LP_CTX_CT_MARK)); return 1;
    case K_id: lua_pushinteger(L, ctx32(S, LP_CTX_CT_ID)); return 1;
    default: lua_pushnil(L); return 1;
  }
}

static int ct_newindex(lua_State *L, struct lp_state *S) {
  int k = key_in(L, 2, S_CT);
  if (k == K_mark) {
    uint32_t v = check_uint(L, C_CT, "mark", 0xffffffff);
    if (S->ctx[LP_CTX_CT_STATE] & LP_CT_UNTRACKED)
      return luaL_error(L, "ct.mark: the packet is untracked (no conntrack entry to mark)");
    put32le(S, LP_CTX_CT_MARK, v);
    S->ctx[LP_CTX_OUT] |= LP_OUT_CT_MARK;
    return 0;
  }
  return k < 0 ? no_field(L, C_CT) : read_only(L, C_CT);
}

static const int eth_keys[] = {K_dst, K_src, K_type};

static void push_mac(lua_State *L, const uint8_t *m) {
  static const char hex[] = "0123456789abcdef";
  char b[17];
  int i;
  for (i = 0; i < 6; i++) {
    b[3 * i] = hex[m[i] >> 4];
    b[3 * i + 1] = hex[m[i] & 15];
    if (i < 5) b[3 * i + 2] = ':';
  }
  lua_pushlstring(L, b, 17);
}

static int eth_index(lua_State *L, struct lp_state *S) {
  const uint8_t *e = S->ctx + LP_CTX_ETH;
  switch (key_in(L, 2, S_ETH)) {
    case K_dst: push_mac(L, e); return 1;
    case K_src: push_mac(L, e + 6); return 1;
    case K_type: lua_pushinteger(L, rd16(e + 12)); return 1;
    default: lua_pushnil(L); return 1;
  }
}

static int eth_newindex(lua_State *L, struct lp_state *S) {
  uint8_t *e = S->ctx + LP_CTX_ETH;
  int k = key_in(L, 2, S_ETH);
  if (k == K_type) {
    uint32_t v = check_uint(L, C_ETH, "type", 0xffff);
    e[12] = (uint8_t)(v >> 8);
    e[13] = (uint8_t)v;
  } else if (k == K_dst || k == K_src) {
    size_t len = 0;
    const char *s = lua_type(L, 3) == LUA_TSTRING ? lua_tolstring(L, 3, &len) : NULL;
    uint8_t m[6];
    int i;
    if (!s || len != 17) goto bad;
    for (i = 0; i < 6; i++) {
      int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
      if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':' && s[3 * i + 2] != '-')) goto bad;
      m[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(e + (k == K_dst ? 0 : 6), m, 6);
  } else {
    return no_field(L, C_ETH);
  }
  S->ctx[LP_CTX_OUT] |= LP_OUT_ETH;
  return 0;
bad:
  return luaL_error(L, "eth.%s: expected a MAC address like \"02:00:00:00:00:01\", got %s",
                    lua_tostring(L, 2), luaL_tolstring(L, 3, NULL));
}

/* ---- raw writers ------------------------------------------------------------------------------ */

static uint32_t check_off(lua_State *L, const char *fn, uint32_t n, struct lp_state *S) {
  lua_Integer off = luaL_checkinteger(L, 2), len = PKT_LEN(S);
  if (off < 0 || off > len || (lua_Integer)n > len - off)
    luaL_error(L, "%s(%I): %d bytes at that offset are outside the packet (%I bytes)", fn, off, (int)n, len);
  return (uint32_t)off;
}

static int pkt_set_uint(lua_State *L, uint32_t n, const char *fn) {
  struct lp_state *S;
  uint32_t off;
  lua_Integer v, max = n == 4 ? 0xffffffffLL : ((lua_Integer)1 << (8 * n)) - 1;
  uint8_t b[4];
  uint32_t i;
  (void)check_obj(L, 1, 1u << C_PKT, "packet", &S);
  off = check_off(L, fn, n, S);
  v = luaL_checkinteger(L, 3);
  if (v < 0 || v > max) return luaL_error(L, "%s: value %I out of range 0..%I", fn, v, max);
  for (i = 0; i < n; i++) b[i] = (uint8_t)((uint64_t)v >> (8 * (n - 1 - i)));
  pkt_write(L, S, off, b, n);
  return 0;
}
static int l_pkt_set_u8(lua_State *L) { return pkt_set_uint(L, 1, "set_u8"); }
static int l_pkt_set_u16(lua_State *L) { return pkt_set_uint(L, 2, "set_u16"); }
static int l_pkt_set_u32(lua_State *L) { return pkt_set_uint(L, 4, "set_u32"); }

static int l_pkt_set_bytes(lua_State *L) {
  struct lp_state *S;
  size_t n;
  const uint8_t *src;
  (void)check_obj(L, 1, 1u << C_PKT, "packet", &S);
  src = lp_bytes_data(L, 3, &n);
  if (!src) src = (const uint8_t *)luaL_checklstring(L, 3, &n);
  if (n > 0xffff) return luaL_error(L, "set_bytes: %d bytes is longer than any packet", (int)n);
  pkt_write(L, S, check_off(L, "set_bytes", (uint32_t)n, S), src, (uint32_t)n);
  return 0;
}

/* pkt:fix_checksums(): the IPv4 header checksum and the transport checksum, from scratch. */
static int l_pkt_fix_checksums(lua_State *L) {
  struct lp_state *S;
  uint32_t len, end, coff, l4, seg, acc = 0, c;
  int pseudo, zero_none, v4;
  uint8_t b[2] = {0, 0};
  (void)check_obj(L, 1, 1u << C_PKT, "packet", &S);
  len = PKT_LEN(S);
  v4 = PKT_NFPROTO(S) == LP_NFPROTO_IPV4;
  if (v4) {
    const uint8_t *h = hdr(L, S, 0, 20);
    uint32_t ihl = (uint32_t)(h[0] & 0xf) * 4;
    end = rd16(h + 2);
    if (ihl < 20 || ihl > len) return luaL_error(L, "fix_checksums: bad IPv4 header length %d", (int)ihl);
    pkt_write(L, S, 10, b, 2);
    c = ~sum_range(L, S, 0, ihl, 0) & 0xffff;
    b[0] = (uint8_t)(c >> 8);
    b[1] = (uint8_t)c;
    pkt_write(L, S, 10, b, 2);
  } else {
    end = 40 + rd16(hdr(L, S, 0, 40) + 4);
  }
  coff = l4_csum_off(S, &pseudo, &zero_none);
  if (!coff) return 0;
  if (PKT_FLAGS(S) & LP_FLAG_FRAG)
    return luaL_error(L, "fix_checksums: the transport checksum of a fragment covers the other fragments");
  l4 = PKT_L4OFF(S);
  if (end > len || end < l4) return luaL_error(L, "fix_checksums: the IP length (%d) does not match the packet (%d bytes)", (int)end, (int)len);
  seg = end - l4;
  if (pseudo) {
    acc = v4 ? sum_range(L, S, 12, 8, 0) : sum_range(L, S, 8, 32, 0);
    acc += PKT_L4PROTO(S) + (seg >> 16) + (seg & 0xffff);
  }
  if (S->ctx[LP_CTX_CSUM] == LP_CSUM_PARTIAL) {
    c = csum_fold(acc); /* the pseudo-header sum: 0 for ICMP, which has none */
  } else {
    b[0] = b[1] = 0;
    pkt_write(L, S, coff, b, 2);
    c = ~sum_range(L, S, l4, seg, acc) & 0xffff;
    if (zero_none && c == 0) c = 0xffff;
  }
  b[0] = (uint8_t)(c >> 8);
  b[1] = (uint8_t)c;
  pkt_write(L, S, coff, b, 2);
  return 0;
}

static int l_newindex(lua_State *L) {
  struct lp_state *S;
  int cls = check_obj(L, 1, ALL_CLASSES, "packet", &S);
  switch (cls) {
    case C_IP: return ip_newindex(L, S);
    case C_IP6: return ip6_newindex(L, S);
    case C_TCP: return tcp_newindex(L, S);
    case C_UDP: return udp_newindex(L, S);
    case C_ICMP: case C_ICMP6: return icmp_newindex(L, S, cls);
    case C_META: return meta_newindex(L, S);
    case C_CT: return ct_newindex(L, S);
    case C_ETH: return eth_newindex(L, S);
    default: return read_only(L, cls);
  }
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
  {
    /* each class's keys as bits of in_set, for key_in */
    static const struct {
      const int *keys;
      size_t n;
    } sets[S_COUNT] = {
        [S_CT] = {ct_keys, sizeof ct_keys / sizeof *ct_keys},
        [S_ETH] = {eth_keys, sizeof eth_keys / sizeof *eth_keys},
        [S_ICMP] = {icmp_keys, sizeof icmp_keys / sizeof *icmp_keys},
        [S_IP] = {ip_keys, sizeof ip_keys / sizeof *ip_keys},
        [S_IP6] = {ip6_keys, sizeof ip6_keys / sizeof *ip6_keys},
        [S_META] = {meta_keys, sizeof meta_keys / sizeof *meta_keys},
        [S_PKT] = {pkt_keys, sizeof pkt_keys / sizeof *pkt_keys},
        [S_TCP] = {tcp_keys, sizeof tcp_keys / sizeof *tcp_keys},
        [S_UDP] = {udp_keys, sizeof udp_keys / sizeof *udp_keys},
        [S_VIEW] = {view_keys, sizeof view_keys / sizeof *view_keys},
    };
    for (i = 0; i < S_COUNT; i++)
      for (size_t j = 0; j < sets[i].n; j++) lib->in_set[sets[i].keys[j]] |= (uint16_t)(1u << i);
  }

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
