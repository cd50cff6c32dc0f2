/*
 * The packet library's internal header: what its files share. Layered, each file using only
 * those above it:
 *
 *   lp_lib.h        keys, packet objects, the context's fields, header layouts (inline)
 *   lp_packet.c     reading the packet: checked objects, bytes in and beyond the window
 *   lp_write.c      writing the packet, checksums kept by incremental updates
 *   lp_addr.c       addresses as text, lp.cidr
 *   lp_view.c       payload views (byte arrays over the packet)
 *   lp_bytes.c      lp.bytes (byte arrays)
 *   lp_map.c        lp.map (maps shared by a script's instances, kept by the host)
 *   lp_send.c       lp.send, lp.reply, lp.packet (packets a script makes)
 *   lp_timer.c      lp.timer, lp.cancel (deferred work)
 *   lp_proto.c      lp.proto (protocols defined in Lua)
 *   lp_raw.c        the packet's raw methods: pkt:u8(off), pkt:set_bytes(off, s), ...
 *   lp_fields.c     reading protocol fields (__index)
 *   lp_setters.c    writing protocol fields (__newindex)
 *   lp_lib.c        the global `lp`, the packet object's metatable, verdicts
 *   lp_sandbox.c    the sandbox's libraries, error kinds, the message handler
 *
 * lp_host.h is the library's interface to its host (the wasm guest's lp_guest.c, lpctl's native
 * baseline); this header is not part of it. The same files build into the wasm guest and the
 * native baseline, both against the same Lua sources: Lua's C API, and its internal headers
 * where a field read is hot (key_id reads the key's string directly).
 */
#ifndef LP_LIB_H
#define LP_LIB_H

#include <stddef.h>
#include <stdint.h>
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

/* ---- protocols and their headers ------------------------------------------------------
 *
 * IP protocol numbers (<netinet/in.h>'s IPPROTO_*) and header layouts as the kernel's structs
 * (struct iphdr, tcphdr, ...): the guest has no system headers. Multi-byte fields are big
 * endian in the packet; these structs name offsets (LP_OFF), they are never loaded whole.
 */
enum { LP_IPPROTO_ICMP = 1, LP_IPPROTO_TCP = 6, LP_IPPROTO_UDP = 17, LP_IPPROTO_ICMPV6 = 58 };

struct lp_iphdr {
  uint8_t ver_ihl, tos;
  uint16_t tot_len, id, frag_off;
  uint8_t ttl, protocol;
  uint16_t check;
  uint8_t saddr[4], daddr[4];
};
struct lp_ipv6hdr {
  uint8_t ver_tc_flow[4];
  uint16_t payload_len;
  uint8_t nexthdr, hop_limit;
  uint8_t saddr[16], daddr[16];
};
struct lp_tcphdr {
  uint16_t source, dest;
  uint32_t seq, ack_seq;
  uint8_t doff, flags;
  uint16_t window, check, urg_ptr;
};
struct lp_udphdr {
  uint16_t source, dest, len, check;
};
struct lp_icmphdr {
  uint8_t type, code;
  uint16_t checksum, id, sequence;
};
_Static_assert(sizeof(struct lp_iphdr) == 20 && sizeof(struct lp_ipv6hdr) == 40, "IP headers");
_Static_assert(sizeof(struct lp_tcphdr) == 20 && sizeof(struct lp_udphdr) == 8 &&
                   sizeof(struct lp_icmphdr) == 8, "transport headers");
/* Offset of `field` in header `hdr` (e.g. LP_OFF(tcphdr, check)). */
#define LP_OFF(hdr, field) ((uint32_t)offsetof(struct lp_##hdr, field))

/* The value of a hex digit, or -1. */
static inline int lp_hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The key (K_*) the value at idx is, or -1: an interned key string is the same pointer. */
static inline int key_id(lua_State *L, int idx) {
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
static inline int key_in(lua_State *L, int idx, enum key_set set) {
  int k = key_id(L, idx);
  return k >= 0 && (LIB(L)->in_set[k] >> set & 1) ? k : -1;
}

static inline uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

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

static inline void push_obj(lua_State *L, int cls) { lua_pushlightuserdata(L, OBJ_VALUE(LIB(L)->gen, cls)); }

/* The value at idx as a packet object's (class and generation), CLS_MASK (no class) when it
 * is no light userdata. */
static inline uintptr_t obj_value(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA ? (uintptr_t)lua_touserdata(L, idx) : CLS_MASK;
}

/* The class in a packet object's value, or -1 when the value is not one. */
static inline int value_cls(uintptr_t v) { return (v & CLS_MASK) < C_NCLS ? (int)(v & CLS_MASK) : -1; }

/* Class of the packet object at idx (of any call), or -1 when the value is not one. */
static inline int obj_cls(lua_State *L, int idx) { return value_cls(obj_value(L, idx)); }

static inline uint32_t ctx32(const struct lp_state *S, int off) {
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

static inline void put32le(struct lp_state *S, int off, uint32_t v) { memcpy(S->ctx + off, &v, 4); }


/* What a field's change must keep valid. */
#define CK_IP 1     /* the IPv4 header checksum */
#define CK_L4 2     /* the transport checksum: a field it covers */
#define CK_PSEUDO 4 /* the transport checksum: an address of its pseudo-header */

/* ---- lp_packet.c ---- */
extern const char *const lp_cls_names[C_NCLS];
int lp_check_obj(lua_State *L, int idx, unsigned classes, const char *expected, struct lp_state **Sp);
int lp_read_bytes(struct lp_state *S, uint32_t off, uint8_t *dst, uint32_t n);
const uint8_t *lp_pkt_at(struct lp_state *S, uint32_t off, uint32_t n);
const uint8_t *lp_hdr(lua_State *L, struct lp_state *S, uint32_t off, uint32_t n);
void lp_push_range(lua_State *L, struct lp_state *S, uint32_t off, uint32_t n);
uint32_t lp_tcp_opt(lua_State *L, struct lp_state *S, uint8_t kind, uint8_t olen);

/* ---- lp_write.c ---- */
void lp_pkt_write(lua_State *L, struct lp_state *S, uint32_t off, const uint8_t *src, uint32_t n);
uint32_t lp_csum_fold(uint32_t acc);
uint32_t lp_l4_csum_off(struct lp_state *S, int *pseudo, int *zero_none);
void lp_set_field(lua_State *L, struct lp_state *S, uint32_t off, const uint8_t *val, uint32_t n, int ck);
void lp_set_uint(lua_State *L, struct lp_state *S, uint32_t off, uint32_t v, uint32_t n, int ck);
uint32_t lp_sum_range(lua_State *L, struct lp_state *S, uint32_t off, uint32_t n, uint32_t acc);
/* Writes bytes of the payload of the call `gen` (lp_proto.c's views): the transport checksum
 * covers them. */
void lp_payload_write(lua_State *L, uintptr_t gen, uint32_t off, const uint8_t *src, uint32_t n);
/* Reads payload bytes [off, off+n) of the call `gen` (lp_proto.c's views, before a write). */
void lp_payload_read(lua_State *L, uintptr_t gen, uint32_t off, uint8_t *dst, uint32_t n);

/* ---- string.sub's and string.find's index rules (byte arrays and payload views) ---- */

/* The 1-based [*from, *to] that string.sub(s, i, j) takes of n bytes (none if *from > *to). */
static inline void lp_sub_range(lua_Integer n, lua_Integer i, lua_Integer j, lua_Integer *from,
                                lua_Integer *to) {
  if (i < 0) i = n + i + 1 > 0 ? n + i + 1 : 1;
  else if (i == 0) i = 1;
  if (j < 0) j = n + j + 1;
  else if (j > n) j = n;
  *from = i;
  *to = j;
}

/* Where string.find(s, p, init) starts in n bytes (1-based), or 0: past the end, it finds nil. */
static inline lua_Integer lp_find_start(lua_Integer n, lua_Integer init) {
  if (init < 0) init = n + init + 1 > 0 ? n + init + 1 : 1;
  else if (init == 0) init = 1;
  return init > n + 1 ? 0 : init;
}

/* string.find with plain = true over hay[0, n), whose first byte is position `first`: pushes
 * the match's start and end, or nil. Returns the number of values pushed. */
static inline int lp_find_plain(lua_State *L, const uint8_t *hay, size_t n, const uint8_t *needle,
                                size_t nlen, lua_Integer first) {
  size_t i;
  if (nlen == 0) {
    lua_pushinteger(L, first);
    lua_pushinteger(L, first - 1);
    return 2;
  }
  if (nlen <= n)
    for (i = 0; i + nlen <= n; i++)
      if (hay[i] == needle[0] && !memcmp(hay + i, needle, nlen)) {
        lua_pushinteger(L, first + (lua_Integer)i);
        lua_pushinteger(L, first + (lua_Integer)(i + nlen) - 1);
        return 2;
      }
  lua_pushnil(L);
  return 1;
}

/* ---- lp_addr.c ---- */
int lp_parse_addr(const char *s, size_t len, uint8_t *out);
void lp_push_addr(lua_State *L, const uint8_t *a, int alen);
void lp_open_cidr(lua_State *L); /* sets field `cidr` of the table on top (`lp`) */

/* ---- lp_view.c ---- */
/* Pushes the bytes of the payload view at idx (of the running call) as a Lua string; raises an
 * error for anything else. */
void lp_view_push(lua_State *L, int idx);
/* The bytes of that view in place when they lie in the call's window, else NULL (copy them
 * with lp_view_push). */
const uint8_t *lp_view_data(lua_State *L, int idx, size_t *n);
/* The payload view at idx (of the running call): its offset in the packet and its call. */
void lp_view_origin(lua_State *L, int idx, uint32_t *off, uintptr_t *gen);
int lp_view_len(lua_State *L);
int lp_view_tostring(lua_State *L);
int lp_view_sub(lua_State *L);
int lp_view_find(lua_State *L);

/* ---- lp_bytes.c ---- */
void lp_open_bytes(lua_State *L); /* sets field `bytes` of the table on top (`lp`) */
/* ---- lp_map.c ---- */
void lp_open_map(lua_State *L); /* sets field `map` of the table on top (`lp`) */
/* ---- lp_timer.c ---- */
void lp_open_timer(lua_State *L); /* sets fields `timer`, `cancel` of the table on top */
/* ---- lp_send.c ---- */
void lp_open_send(lua_State *L); /* sets fields `send`, `reply`, `packet` of the table on top */
/* Adds method `name` to byte arrays (lp_lib.c adds lp.proto's `as`). */
void lp_bytes_method(lua_State *L, const char *name, lua_CFunction f);
const uint8_t *lp_bytes_data(lua_State *L, int idx, size_t *n);
void lp_bytes_push(lua_State *L, const void *p, size_t n); /* a new byte array: a copy */

/* ---- lp_proto.c ---- */
void lp_open_proto(lua_State *L); /* sets field `proto` of the table on top (`lp`) */
int lp_proto_as(lua_State *L);    /* data:as(name), bytes and payload views */

/* ---- lp_raw.c ---- */
int lp_pkt_bytes(lua_State *L);
int lp_pkt_u8(lua_State *L);
int lp_pkt_u16(lua_State *L);
int lp_pkt_u32(lua_State *L);
int lp_pkt_set_u8(lua_State *L);
int lp_pkt_set_u16(lua_State *L);
int lp_pkt_set_u32(lua_State *L);
int lp_pkt_set_bytes(lua_State *L);
int lp_pkt_fix_checksums(lua_State *L);

/* ---- lp_fields.c ---- */
int lp_index(lua_State *L); /* __index of every packet object */
/* Marks in in_set each key of each class (enum key_set), for key_in. */
void lp_key_sets(uint16_t in_set[K_COUNT]);

/* ---- lp_setters.c ---- */
int lp_newindex(lua_State *L); /* __newindex of every packet object */

#endif
