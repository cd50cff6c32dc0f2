/*
 * The packet's raw methods: pkt:bytes(off, n), pkt:u8/u16/u32(off), pkt:set_u8/u16/u32(off, v),
 * pkt:set_bytes(off, s) (checksums are the script's business) and pkt:fix_checksums().
 */
#include "lp_lib.h"

int lp_pkt_bytes(lua_State *L) {
  struct lp_state *S;
  lua_Integer off, n, plen;
  (void)lp_check_obj(L, 1, 1u << C_PKT, "packet", &S);
  off = luaL_checkinteger(L, 2);
  n = luaL_checkinteger(L, 3);
  plen = PKT_LEN(S);
  if (off < 0 || n < 0 || off > plen || n > plen - off)
    return luaL_error(L, "bytes(%I, %I) outside the packet (%I bytes)", off, n, plen);
  lp_push_range(L, S, (uint32_t)off, (uint32_t)n);
  return 1;
}

static int pkt_uint(lua_State *L, uint32_t n) {
  struct lp_state *S;
  lua_Integer off;
  const uint8_t *p;
  (void)lp_check_obj(L, 1, 1u << C_PKT, "packet", &S);
  off = luaL_checkinteger(L, 2);
  if (off < 0 || off > 0xffffffffLL || !(p = lp_pkt_at(S, (uint32_t)off, n)))
    return luaL_error(L, "u%d(%I) outside the packet (%d bytes)", (int)(8 * n), off, (int)PKT_LEN(S));
  lua_pushinteger(L, n == 1 ? p[0] : n == 2 ? rd16(p) : rd32(p));
  return 1;
}
int lp_pkt_u8(lua_State *L) { return pkt_uint(L, 1); }
int lp_pkt_u16(lua_State *L) { return pkt_uint(L, 2); }
int lp_pkt_u32(lua_State *L) { return pkt_uint(L, 4); }

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
  (void)lp_check_obj(L, 1, 1u << C_PKT, "packet", &S);
  off = check_off(L, fn, n, S);
  v = luaL_checkinteger(L, 3);
  if (v < 0 || v > max) return luaL_error(L, "%s: value %I out of range 0..%I", fn, v, max);
  for (i = 0; i < n; i++) b[i] = (uint8_t)((uint64_t)v >> (8 * (n - 1 - i)));
  lp_pkt_write(L, S, off, b, n);
  return 0;
}
int lp_pkt_set_u8(lua_State *L) { return pkt_set_uint(L, 1, "set_u8"); }
int lp_pkt_set_u16(lua_State *L) { return pkt_set_uint(L, 2, "set_u16"); }
int lp_pkt_set_u32(lua_State *L) { return pkt_set_uint(L, 4, "set_u32"); }

int lp_pkt_set_bytes(lua_State *L) {
  struct lp_state *S;
  size_t n;
  const uint8_t *src;
  (void)lp_check_obj(L, 1, 1u << C_PKT, "packet", &S);
  src = lp_bytes_data(L, 3, &n);
  if (!src) src = (const uint8_t *)luaL_checklstring(L, 3, &n);
  if (n > 0xffff) return luaL_error(L, "set_bytes: %d bytes is longer than any packet", (int)n);
  lp_pkt_write(L, S, check_off(L, "set_bytes", (uint32_t)n, S), src, (uint32_t)n);
  return 0;
}

/* pkt:fix_checksums(): the IPv4 header checksum and the transport checksum, from scratch. */
int lp_pkt_fix_checksums(lua_State *L) {
  struct lp_state *S;
  uint32_t len, end, coff, l4, seg, acc = 0, c;
  int pseudo, zero_none, v4;
  uint8_t b[2] = {0, 0};
  (void)lp_check_obj(L, 1, 1u << C_PKT, "packet", &S);
  len = PKT_LEN(S);
  v4 = PKT_NFPROTO(S) == LP_NFPROTO_IPV4;
  if (v4) {
    const uint8_t *h = lp_hdr(L, S, 0, 20);
    uint32_t ihl = (uint32_t)(h[0] & 0xf) * 4;
    end = rd16(h + 2);
    if (ihl < 20 || ihl > len) return luaL_error(L, "fix_checksums: bad IPv4 header length %d", (int)ihl);
    lp_pkt_write(L, S, LP_OFF(iphdr, check), b, 2);
    c = ~lp_sum_range(L, S, 0, ihl, 0) & 0xffff;
    b[0] = (uint8_t)(c >> 8);
    b[1] = (uint8_t)c;
    lp_pkt_write(L, S, LP_OFF(iphdr, check), b, 2);
  } else {
    end = 40 + rd16(lp_hdr(L, S, 0, 40) + 4);
  }
  coff = lp_l4_csum_off(S, &pseudo, &zero_none);
  if (!coff) return 0;
  if (PKT_FLAGS(S) & LP_FLAG_FRAG)
    return luaL_error(L, "fix_checksums: the transport checksum of a fragment covers the other fragments");
  l4 = PKT_L4OFF(S);
  if (end > len || end < l4) return luaL_error(L, "fix_checksums: the IP length (%d) does not match the packet (%d bytes)", (int)end, (int)len);
  seg = end - l4;
  if (pseudo) {
    acc = v4 ? lp_sum_range(L, S, 12, 8, 0) : lp_sum_range(L, S, 8, 32, 0);
    acc += PKT_L4PROTO(S) + (seg >> 16) + (seg & 0xffff);
  }
  if (S->ctx[LP_CTX_CSUM] == LP_CSUM_PARTIAL) {
    c = lp_csum_fold(acc); /* the pseudo-header sum: 0 for ICMP, which has none */
  } else {
    b[0] = b[1] = 0;
    lp_pkt_write(L, S, coff, b, 2);
    c = ~lp_sum_range(L, S, l4, seg, acc) & 0xffff;
    if (zero_none && c == 0) c = 0xffff;
  }
  b[0] = (uint8_t)(c >> 8);
  b[1] = (uint8_t)c;
  lp_pkt_write(L, S, coff, b, 2);
  return 0;
}
