/*
 * Writing protocol fields: __newindex of every packet object. Each write checks its value
 * (an error names the field), changes the bytes and keeps the checksums that cover them.
 */
#include "lp_lib.h"

/* The new value of field `name` of `cls` (at index 3) as an integer in [0, max]. */
static uint32_t check_uint(lua_State *L, int cls, const char *name, lua_Integer max) {
  lua_Integer v;
  int isnum = lua_type(L, 3) == LUA_TNUMBER; /* no strings converted, no booleans */
  v = isnum ? lua_tointegerx(L, 3, &isnum) : 0;
  if (!isnum)
    luaL_error(L, "%s.%s: expected an integer, got %s", lp_cls_names[cls], name,
               lua_type(L, 3) == LUA_TNUMBER ? "a float" : luaL_typename(L, 3));
  if (v < 0 || v > max)
    luaL_error(L, "%s.%s: %I out of range 0..%I", lp_cls_names[cls], name, v, max);
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
    luaL_error(L, "%s.%s: expected an address string, got %s", lp_cls_names[cls], name, luaL_typename(L, 3));
  if (lp_parse_addr(s, len, out) != alen)
    luaL_error(L, "%s.%s: '%s' is not an IPv%d address", lp_cls_names[cls], name, s, alen == 4 ? 4 : 6);
}

static int read_only(lua_State *L, int cls) {
  return luaL_error(L, "%s.%s is read-only", lp_cls_names[cls], luaL_tolstring(L, 2, NULL));
}
static int no_field(lua_State *L, int cls) {
  return luaL_error(L, "%s has no field '%s'", lp_cls_names[cls], luaL_tolstring(L, 2, NULL));
}

static int ip_newindex(lua_State *L, struct lp_state *S) {
  const uint8_t *h = lp_hdr(L, S, 0, 20);
  uint8_t a[16];
  int k = key_in(L, 2, S_IP);
  const char *n = lua_tostring(L, 2);
  switch (k) {
    case K_saddr: check_addr(L, C_IP, n, 4, a); lp_set_field(L, S, LP_OFF(iphdr, saddr), a, 4, CK_IP | CK_PSEUDO); return 0;
    case K_daddr: check_addr(L, C_IP, n, 4, a); lp_set_field(L, S, LP_OFF(iphdr, daddr), a, 4, CK_IP | CK_PSEUDO); return 0;
    case K_ttl: lp_set_uint(L, S, 8, check_uint(L, C_IP, n, 255), 1, CK_IP); return 0;
    case K_id: lp_set_uint(L, S, 4, check_uint(L, C_IP, n, 0xffff), 2, CK_IP); return 0;
    case K_frag_off: lp_set_uint(L, S, 6, check_uint(L, C_IP, n, 0xffff), 2, CK_IP); return 0;
    case K_dscp: lp_set_uint(L, S, 1, check_uint(L, C_IP, n, 63) << 2 | (h[1] & 3u), 1, CK_IP); return 0;
    case K_ecn: lp_set_uint(L, S, 1, (h[1] & 0xfcu) | check_uint(L, C_IP, n, 3), 1, CK_IP); return 0;
    case K_checksum: lp_set_uint(L, S, 10, check_uint(L, C_IP, n, 0xffff), 2, 0); return 0;
    case -1: return no_field(L, C_IP);
    default: return read_only(L, C_IP);
  }
}

static int ip6_newindex(lua_State *L, struct lp_state *S) {
  uint32_t w = rd32(lp_hdr(L, S, 0, 40));
  uint8_t a[16];
  int k = key_in(L, 2, S_IP6);
  const char *n = lua_tostring(L, 2);
  switch (k) {
    case K_saddr: check_addr(L, C_IP6, n, 16, a); lp_set_field(L, S, LP_OFF(ipv6hdr, saddr), a, 16, CK_PSEUDO); return 0;
    case K_daddr: check_addr(L, C_IP6, n, 16, a); lp_set_field(L, S, LP_OFF(ipv6hdr, daddr), a, 16, CK_PSEUDO); return 0;
    case K_hoplimit: lp_set_uint(L, S, 7, check_uint(L, C_IP6, n, 255), 1, 0); return 0;
    /* version(4) | traffic class: dscp(6) ecn(2) | flow label(20) */
    case K_dscp: lp_set_uint(L, S, 0, (w & ~(0x3fu << 22)) | check_uint(L, C_IP6, n, 63) << 22, 4, 0); return 0;
    case K_ecn: lp_set_uint(L, S, 0, (w & ~(3u << 20)) | check_uint(L, C_IP6, n, 3) << 20, 4, 0); return 0;
    case K_flowlabel: lp_set_uint(L, S, 0, (w & ~0xfffffu) | check_uint(L, C_IP6, n, 0xfffff), 4, 0); return 0;
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

static int tcp_newindex(lua_State *L, struct lp_state *S) {
  const uint8_t *h = lp_hdr(L, S, PKT_L4OFF(S), 20);
  uint32_t l4 = PKT_L4OFF(S), o;
  int k = key_in(L, 2, S_TCP);
  const char *n = lua_tostring(L, 2);
  if (tcp_flag(k)) {
    uint32_t f = h[13], bit = (uint32_t)tcp_flag(k);
    f = check_flag(L, n) ? f | bit : f & ~bit;
    lp_set_uint(L, S, l4 + 13, f, 1, CK_L4);
    return 0;
  }
  switch (k) {
    case K_sport: lp_set_uint(L, S, l4, check_uint(L, C_TCP, n, 0xffff), 2, CK_L4); return 0;
    case K_dport: lp_set_uint(L, S, l4 + 2, check_uint(L, C_TCP, n, 0xffff), 2, CK_L4); return 0;
    case K_seq: lp_set_uint(L, S, l4 + 4, check_uint(L, C_TCP, n, 0xffffffff), 4, CK_L4); return 0;
    case K_ack_seq: lp_set_uint(L, S, l4 + 8, check_uint(L, C_TCP, n, 0xffffffff), 4, CK_L4); return 0;
    case K_flags: lp_set_uint(L, S, l4 + 13, check_uint(L, C_TCP, n, 0xff), 1, CK_L4); return 0;
    case K_window: lp_set_uint(L, S, l4 + 14, check_uint(L, C_TCP, n, 0xffff), 2, CK_L4); return 0;
    case K_urgptr: lp_set_uint(L, S, l4 + 18, check_uint(L, C_TCP, n, 0xffff), 2, CK_L4); return 0;
    case K_checksum: lp_set_uint(L, S, l4 + 16, check_uint(L, C_TCP, n, 0xffff), 2, 0); return 0;
    case K_mss: case K_wscale: case K_ts_val: case K_ts_ecr: {
      uint32_t v = k == K_mss ? check_uint(L, C_TCP, n, 0xffff)
                 : k == K_wscale ? check_uint(L, C_TCP, n, 14)
                 : check_uint(L, C_TCP, n, 0xffffffff);
      o = k == K_mss ? lp_tcp_opt(L, S, 2, 4) : k == K_wscale ? lp_tcp_opt(L, S, 3, 3) : lp_tcp_opt(L, S, 8, 10);
      if (!o) return luaL_error(L, "tcp.%s: the segment carries no such option (options are changed, not added)", n);
      if (k == K_mss) lp_set_uint(L, S, o + 2, v, 2, CK_L4);
      else if (k == K_wscale) lp_set_uint(L, S, o + 2, v, 1, CK_L4);
      else lp_set_uint(L, S, o + (k == K_ts_val ? 2 : 6), v, 4, CK_L4);
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
  (void)lp_hdr(L, S, l4, 8);
  switch (k) {
    case K_sport: lp_set_uint(L, S, l4, check_uint(L, C_UDP, n, 0xffff), 2, CK_L4); return 0;
    case K_dport: lp_set_uint(L, S, l4 + 2, check_uint(L, C_UDP, n, 0xffff), 2, CK_L4); return 0;
    case K_checksum: lp_set_uint(L, S, l4 + 6, check_uint(L, C_UDP, n, 0xffff), 2, 0); return 0;
    case -1: return no_field(L, C_UDP);
    default: return read_only(L, C_UDP);
  }
}

static int icmp_newindex(lua_State *L, struct lp_state *S, int cls) {
  uint32_t l4 = PKT_L4OFF(S);
  int k = key_in(L, 2, S_ICMP);
  const char *n = lua_tostring(L, 2);
  switch (k) {
    case K_type: lp_set_uint(L, S, l4, check_uint(L, cls, n, 255), 1, CK_L4); return 0;
    case K_code: lp_set_uint(L, S, l4 + 1, check_uint(L, cls, n, 255), 1, CK_L4); return 0;
    case K_checksum: lp_set_uint(L, S, l4 + 2, check_uint(L, cls, n, 0xffff), 2, 0); return 0;
    case K_id: lp_set_uint(L, S, l4 + 4, check_uint(L, cls, n, 0xffff), 2, CK_L4); return 0;
    case K_sequence: lp_set_uint(L, S, l4 + 6, check_uint(L, cls, n, 0xffff), 2, CK_L4); return 0;
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
      int hi = lp_hexval(s[3 * i]), lo = lp_hexval(s[3 * i + 1]);
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

int lp_newindex(lua_State *L) {
  struct lp_state *S;
  int cls = lp_check_obj(L, 1, ALL_CLASSES, "packet", &S);
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
