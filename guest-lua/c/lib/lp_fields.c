/*
 * Reading protocol fields: __index of every packet object (pkt.ip.ttl, pkt.tcp.payload,
 * pkt.meta.iifname, ...), each class's keys, and the packet's methods by name.
 */
#include "lp_lib.h"

static int has_l4(struct lp_state *S, int proto) {
  return (PKT_FLAGS(S) & LP_FLAG_L4) && PKT_L4PROTO(S) == proto;
}

static const int pkt_keys[] = {K_ip, K_tcp, K_udp, K_ip6, K_icmp, K_icmp6, K_len, K_meta, K_bytes, K_u8, K_u16, K_u32,
                               K_eth, K_ct, K_set_u8, K_set_u16, K_set_u32, K_set_bytes, K_fix_checksums};

static int pkt_index(lua_State *L, struct lp_state *S) {
  switch (key_in(L, 2, S_PKT)) {
    case K_ip: if (PKT_NFPROTO(S) == LP_NFPROTO_IPV4) { push_obj(L, C_IP); return 1; } break;
    case K_ip6: if (PKT_NFPROTO(S) == LP_NFPROTO_IPV6) { push_obj(L, C_IP6); return 1; } break;
    case K_tcp: if (has_l4(S, LP_IPPROTO_TCP)) { push_obj(L, C_TCP); return 1; } break;
    case K_udp: if (has_l4(S, LP_IPPROTO_UDP)) { push_obj(L, C_UDP); return 1; } break;
    case K_icmp: if (PKT_NFPROTO(S) == LP_NFPROTO_IPV4 && has_l4(S, LP_IPPROTO_ICMP)) { push_obj(L, C_ICMP); return 1; } break;
    case K_icmp6: if (PKT_NFPROTO(S) == LP_NFPROTO_IPV6 && has_l4(S, LP_IPPROTO_ICMPV6)) { push_obj(L, C_ICMP6); return 1; } break;
    case K_len: lua_pushinteger(L, PKT_LEN(S)); return 1;
    case K_meta: push_obj(L, C_META); return 1;
    case K_bytes: lua_pushcfunction(L, lp_pkt_bytes); return 1;
    case K_u8: lua_pushcfunction(L, lp_pkt_u8); return 1;
    case K_u16: lua_pushcfunction(L, lp_pkt_u16); return 1;
    case K_u32: lua_pushcfunction(L, lp_pkt_u32); return 1;
    case K_eth: if (PKT_FLAGS(S) & LP_FLAG_ETH) { push_obj(L, C_ETH); return 1; } break;
    case K_ct: if (PKT_FLAGS(S) & LP_FLAG_CT) { push_obj(L, C_CT); return 1; } break;
    case K_set_u8: lua_pushcfunction(L, lp_pkt_set_u8); return 1;
    case K_set_u16: lua_pushcfunction(L, lp_pkt_set_u16); return 1;
    case K_set_u32: lua_pushcfunction(L, lp_pkt_set_u32); return 1;
    case K_set_bytes: lua_pushcfunction(L, lp_pkt_set_bytes); return 1;
    case K_fix_checksums: lua_pushcfunction(L, lp_pkt_fix_checksums); return 1;
    default: break;
  }
  lua_pushnil(L);
  return 1;
}

static const int ip_keys[] = {K_saddr, K_daddr, K_protocol, K_ttl, K_length, K_id, K_version, K_hdrlength, K_dscp, K_ecn, K_frag_off, K_checksum};

static int ip_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = lp_hdr(L, S, 0, 20);
  switch (key_in(L, 2, S_IP)) {
    case K_saddr: lp_push_addr(L, h + LP_OFF(iphdr, saddr), 4); return 1;
    case K_daddr: lp_push_addr(L, h + LP_OFF(iphdr, daddr), 4); return 1;
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
  const uint8_t *h = lp_hdr(L, S, 0, 40);
  switch (key_in(L, 2, S_IP6)) {
    case K_saddr: lp_push_addr(L, h + LP_OFF(ipv6hdr, saddr), 16); return 1;
    case K_daddr: lp_push_addr(L, h + LP_OFF(ipv6hdr, daddr), 16); return 1;
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

static int tcp_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = lp_hdr(L, S, PKT_L4OFF(S), 20);
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
      uint32_t o = k == K_mss ? lp_tcp_opt(L, S, 2, 4) : k == K_wscale ? lp_tcp_opt(L, S, 3, 3)
                 : k == K_sack_perm ? lp_tcp_opt(L, S, 4, 2) : lp_tcp_opt(L, S, 8, 10);
      const uint8_t *p;
      if (k == K_sack_perm) { lua_pushboolean(L, o != 0); return 1; }
      if (!o) { lua_pushnil(L); return 1; }
      p = lp_hdr(L, S, o, k == K_mss ? 4 : k == K_wscale ? 3 : 10);
      lua_pushinteger(L, k == K_mss ? rd16(p + 2) : k == K_wscale ? p[2] : k == K_ts_val ? rd32(p + 2) : rd32(p + 6));
      return 1;
    }
    default: lua_pushnil(L); return 1;
  }
}

static const int udp_keys[] = {K_dport, K_sport, K_length, K_payload, K_checksum};

static int udp_index(lua_State *L, struct lp_state *S) {
  const uint8_t *h = lp_hdr(L, S, PKT_L4OFF(S), 8);
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
  const uint8_t *h = lp_hdr(L, S, PKT_L4OFF(S), 4);
  switch (key_in(L, 2, S_ICMP)) {
    case K_type: lua_pushinteger(L, h[0]); return 1;
    case K_code: lua_pushinteger(L, h[1]); return 1;
    case K_checksum: lua_pushinteger(L, rd16(h + 2)); return 1;
    case K_id: h = lp_hdr(L, S, PKT_L4OFF(S), 8); lua_pushinteger(L, rd16(h + 4)); return 1;
    case K_sequence: h = lp_hdr(L, S, PKT_L4OFF(S), 8); lua_pushinteger(L, rd16(h + 6)); return 1;
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

static const int view_keys[] = {K_sub, K_find, K_as};

static int view_index(lua_State *L) {
  switch (key_in(L, 2, S_VIEW)) {
    case K_sub: lua_pushcfunction(L, lp_view_sub); return 1;
    case K_find: lua_pushcfunction(L, lp_view_find); return 1;
    case K_as: lua_pushcfunction(L, lp_proto_as); return 1; /* lp_proto.c */
    default: lua_pushnil(L); return 1;
  }
}

int lp_index(lua_State *L) {
  struct lp_state *S;
  switch (lp_check_obj(L, 1, ALL_CLASSES, "packet", &S)) {
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

void lp_key_sets(uint16_t in_set[K_COUNT]) {
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
  int i;
  for (i = 0; i < S_COUNT; i++)
    for (size_t j = 0; j < sets[i].n; j++) in_set[sets[i].keys[j]] |= (uint16_t)(1u << i);
}
