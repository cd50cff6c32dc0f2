/*
 * Packets a script makes: lp.send, lp.reply and the builders of lp.packet. The host checks
 * each packet, the call's caps and the script's rates (kmod-wasmi/runtime/src/sends.rs) and
 * sends it after the call returns.
 *
 *   lp.send(p)                   p: lp.bytes or a string holding a whole IPv4/IPv6 packet
 *   lp.reply(data [, opts])      answers the packet in hand: UDP (the ports swapped), TCP (the
 *                                next segment of the other side), ICMP/ICMPv6 echo (a reply)
 *   lp.packet.udp{src=, dst=, sport=, dport=, payload=, ttl=}                      -> lp.bytes
 *   lp.packet.tcp{src=, dst=, sport=, dport=, seq=, ack=, flags=, window=, payload=, ttl=}
 *   lp.packet.icmp{src=, dst=, type=, code=, id=, seq=, payload=, ttl=}   (ICMPv6 for IPv6)
 *
 * Addresses are text ("10.0.0.1", "2001:db8::1", what pkt.ip.saddr gives); TCP flags letters
 * as tcpdump prints them ("S", "SA", "PA", "FA", "R"). Every checksum is computed. lp.send and
 * lp.reply return true, or nil and why (the caps, the rates, no route): a malformed packet
 * or an argument of the wrong kind is an error.
 */
#include "lp_lib.h"

enum { IP4_HLEN = 20, IP6_HLEN = 40, TCP_HLEN = 20, UDP_HLEN = 8, ICMP_HLEN = 8 };
enum { TCP_FIN = 1, TCP_SYN = 2, TCP_RST = 4, TCP_PSH = 8, TCP_ACK = 16, TCP_URG = 32 };
enum { ICMP_ECHOREPLY = 0, ICMP_ECHO = 8, ICMPV6_ECHO_REQUEST = 128, ICMPV6_ECHO_REPLY = 129 };
#define DEFAULT_TTL 64
#define DEFAULT_WINDOW 65535

/* What a packet is made of: the addresses, the transport header (checksum field zero) and the
 * payload. */
struct spec {
  int alen; /* 4 or 16 */
  uint8_t src[16], dst[16];
  int proto, ttl;
  uint8_t l4[TCP_HLEN];
  uint32_t l4len;
  const uint8_t *pay;
  size_t paylen;
};

static const char *send_error(int code) {
  switch (code) {
    case LP_SEND_E_PACKETS: return "over the call's packets (limit send-packets)";
    case LP_SEND_E_BYTES: return "over the call's bytes (limit send-bytes)";
    case LP_SEND_E_RATE: return "over the script's rate (limits send-rate, send-byte-rate)";
    case LP_SEND_E_ROUTE: return "no route to the destination";
    case LP_SEND_E_MEMORY: return "not enough memory";
    case LP_SEND_E_UNAVAILABLE: return "sending is not possible here";
    default: return "not sent";
  }
}

/* Hands the packet to the host: pushes true, or nil and why; raises for what the script got
 * wrong. */
static int send_result(lua_State *L, const char *fn, int kind, const uint8_t *p, size_t n) {
  int r = n > LP_SEND_PACKET_MAX ? LP_SEND_E_MALFORMED : lp_host_send(lp_state(L), kind, p, (uint32_t)n);
  if (r == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (r == LP_SEND_E_MALFORMED)
    return luaL_error(L, "%s: not an IPv4 or IPv6 packet whose header and length agree (%d bytes)", fn, (int)n);
  if (r == LP_SEND_E_RANGE) return luaL_error(L, "%s: invalid packet", fn);
  luaL_pushfail(L);
  lua_pushstring(L, send_error(r));
  return 2;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v); }

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc) {
  for (; n > 1; p += 2, n -= 2) acc += rd16(p);
  if (n) acc += (uint32_t)p[0] << 8;
  return acc;
}

static uint32_t fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return ~acc & 0xffff;
}

/* Offset of the transport checksum in its header. */
static uint32_t csum_at(int proto) {
  switch (proto) {
    case LP_IPPROTO_TCP: return LP_OFF(tcphdr, check);
    case LP_IPPROTO_UDP: return LP_OFF(udphdr, check);
    default: return LP_OFF(icmphdr, checksum);
  }
}

/* Writes the packet `sp` describes to `out` (ip_len(sp) bytes), checksums computed. */
static size_t ip_len(const struct spec *sp) {
  return (sp->alen == 4 ? IP4_HLEN : IP6_HLEN) + sp->l4len + sp->paylen;
}

static void build(const struct spec *sp, uint8_t *out) {
  size_t hlen = sp->alen == 4 ? IP4_HLEN : IP6_HLEN, l4n = sp->l4len + sp->paylen;
  uint8_t *l4 = out + hlen;
  uint32_t acc = 0;
  memset(out, 0, hlen);
  if (sp->alen == 4) {
    out[0] = 0x45;
    put16(out + LP_OFF(iphdr, tot_len), (uint32_t)(hlen + l4n));
    put16(out + LP_OFF(iphdr, frag_off), 0x4000); /* don't fragment */
    out[LP_OFF(iphdr, ttl)] = (uint8_t)sp->ttl;
    out[LP_OFF(iphdr, protocol)] = (uint8_t)sp->proto;
    memcpy(out + LP_OFF(iphdr, saddr), sp->src, 4);
    memcpy(out + LP_OFF(iphdr, daddr), sp->dst, 4);
    put16(out + LP_OFF(iphdr, check), fold(sum16(out, IP4_HLEN, 0)));
  } else {
    out[0] = 0x60;
    put16(out + LP_OFF(ipv6hdr, payload_len), (uint32_t)l4n);
    out[LP_OFF(ipv6hdr, nexthdr)] = (uint8_t)sp->proto;
    out[LP_OFF(ipv6hdr, hop_limit)] = (uint8_t)sp->ttl;
    memcpy(out + LP_OFF(ipv6hdr, saddr), sp->src, 16);
    memcpy(out + LP_OFF(ipv6hdr, daddr), sp->dst, 16);
  }
  memcpy(l4, sp->l4, sp->l4len);
  if (sp->paylen) memcpy(l4 + sp->l4len, sp->pay, sp->paylen);
  if (sp->proto == LP_IPPROTO_UDP) put16(l4 + LP_OFF(udphdr, len), (uint32_t)l4n);
  put16(l4 + csum_at(sp->proto), 0);
  /* the pseudo-header: all but ICMPv4 */
  if (sp->proto != LP_IPPROTO_ICMP) {
    acc = sum16(sp->src, (size_t)sp->alen, acc);
    acc = sum16(sp->dst, (size_t)sp->alen, acc);
    acc += (uint32_t)sp->proto + (uint32_t)(l4n & 0xffff) + (uint32_t)(l4n >> 16);
  }
  acc = fold(sum16(l4, l4n, acc));
  if (acc == 0 && sp->proto == LP_IPPROTO_UDP) acc = 0xffff; /* 0 means "no checksum" */
  put16(l4 + csum_at(sp->proto), acc);
}

/* The bytes of a payload argument: a string, lp.bytes, a payload view, or nil (none). */
static const uint8_t *payload_arg(lua_State *L, int idx, size_t *n) {
  const uint8_t *p;
  *n = 0;
  if (lua_isnoneornil(L, idx)) return NULL;
  if (lua_type(L, idx) == LUA_TSTRING) return (const uint8_t *)lua_tolstring(L, idx, n);
  if ((p = lp_bytes_data(L, idx, n))) return p;
  if (obj_cls(L, idx) >= 0) {
    lp_view_push(L, idx); /* a payload view, as a string */
    lua_replace(L, idx);
    return (const uint8_t *)lua_tolstring(L, idx, n);
  }
  luaL_typeerror(L, idx, "string, lp.bytes or payload");
  return NULL;
}

/* Builds sp (on the C stack, or in a Lua buffer when larger than a frame) and sends it, or
 * pushes it as lp.bytes (kind < 0). */
static int finish(lua_State *L, const struct spec *sp, const char *fn, int kind) {
  size_t n = ip_len(sp);
  luaL_Buffer b;
  uint8_t small[1600]; /* an Ethernet MTU's packet: built without a Lua allocation */
  uint8_t *out = small;
  if (n > LP_SEND_PACKET_MAX) return luaL_error(L, "%s: packet of %d bytes (at most %d)", fn, (int)n, LP_SEND_PACKET_MAX);
  if (n > sizeof small) out = (uint8_t *)luaL_buffinitsize(L, &b, n);
  build(sp, out);
  if (kind < 0) {
    lp_bytes_push(L, out, n);
    return 1;
  }
  return send_result(L, fn, kind, out, n);
}

/* ---- lp.send ---------------------------------------------------------------------------- */

static int l_send(lua_State *L) {
  size_t n;
  const uint8_t *p = lp_bytes_data(L, 1, &n);
  if (!p) p = (const uint8_t *)luaL_checklstring(L, 1, &n);
  return send_result(L, "lp.send", LP_SEND_KIND_SEND, p, n);
}

/* ---- lp.packet -------------------------------------------------------------------------- */

static lua_Integer int_field(lua_State *L, const char *k, lua_Integer def, lua_Integer max) {
  lua_Integer v;
  int isnum;
  if (lua_getfield(L, 1, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return def;
  }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < 0 || v > max) luaL_error(L, "lp.packet: field '%s' must be an integer 0..%I", k, max);
  lua_pop(L, 1);
  return v;
}

static int addr_field(lua_State *L, const char *k, uint8_t *out) {
  size_t len;
  const char *s;
  int alen;
  if (lua_getfield(L, 1, k) == LUA_TNIL) luaL_error(L, "lp.packet: field '%s' (an address) is missing", k);
  s = luaL_tolstring(L, -1, &len);
  alen = lp_parse_addr(s, len, out);
  if (!alen) luaL_error(L, "lp.packet: field '%s': invalid address '%s'", k, s);
  lua_pop(L, 2);
  return alen;
}

static int tcp_flags(lua_State *L, const char *s) {
  int f = 0;
  for (; *s; s++) switch (*s) {
      case 'F': f |= TCP_FIN; break;
      case 'S': f |= TCP_SYN; break;
      case 'R': f |= TCP_RST; break;
      case 'P': f |= TCP_PSH; break;
      case 'A': case '.': f |= TCP_ACK; break;
      case 'U': f |= TCP_URG; break;
      default: luaL_error(L, "TCP flags: '%c' is none of F S R P A U", *s);
    }
  return f;
}

/* The addresses, TTL and payload of a builder's table (argument 1, left at its index). */
static void common_fields(lua_State *L, struct spec *sp) {
  uint8_t dst[16];
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(sp, 0, sizeof *sp);
  sp->alen = addr_field(L, "src", sp->src);
  if (addr_field(L, "dst", dst) != sp->alen) luaL_error(L, "lp.packet: src and dst of different families");
  memcpy(sp->dst, dst, 16);
  sp->ttl = (int)int_field(L, "ttl", DEFAULT_TTL, 255);
  lua_getfield(L, 1, "payload");
  lua_replace(L, 2); /* kept at index 2: its bytes stay valid */
  sp->pay = payload_arg(L, 2, &sp->paylen);
}

static void ports(lua_State *L, struct spec *sp) {
  put16(sp->l4, (uint32_t)int_field(L, "sport", 0, 65535));
  put16(sp->l4 + 2, (uint32_t)int_field(L, "dport", 0, 65535));
}

static int l_packet_udp(lua_State *L) {
  struct spec sp;
  lua_settop(L, 2);
  common_fields(L, &sp);
  sp.proto = LP_IPPROTO_UDP;
  sp.l4len = UDP_HLEN;
  ports(L, &sp);
  return finish(L, &sp, "lp.packet.udp", -1);
}

static void tcp_header(struct spec *sp, uint32_t seq, uint32_t ack, int flags, uint32_t window) {
  sp->proto = LP_IPPROTO_TCP;
  sp->l4len = TCP_HLEN;
  put32(sp->l4 + LP_OFF(tcphdr, seq), seq);
  put32(sp->l4 + LP_OFF(tcphdr, ack_seq), ack);
  sp->l4[LP_OFF(tcphdr, doff)] = (TCP_HLEN / 4) << 4;
  sp->l4[LP_OFF(tcphdr, flags)] = (uint8_t)flags;
  put16(sp->l4 + LP_OFF(tcphdr, window), window);
}

static int l_packet_tcp(lua_State *L) {
  struct spec sp;
  int flags;
  uint32_t seq, ack, win;
  lua_settop(L, 2);
  common_fields(L, &sp);
  ports(L, &sp);
  seq = (uint32_t)int_field(L, "seq", 0, 0xffffffffLL);
  ack = (uint32_t)int_field(L, "ack", 0, 0xffffffffLL);
  win = (uint32_t)int_field(L, "window", DEFAULT_WINDOW, 65535);
  lua_getfield(L, 1, "flags");
  flags = tcp_flags(L, lua_isnil(L, -1) ? "A" : luaL_checkstring(L, -1));
  lua_pop(L, 1);
  tcp_header(&sp, seq, ack, flags, win);
  return finish(L, &sp, "lp.packet.tcp", -1);
}

static int l_packet_icmp(lua_State *L) {
  struct spec sp;
  lua_settop(L, 2);
  common_fields(L, &sp);
  sp.proto = sp.alen == 4 ? LP_IPPROTO_ICMP : LP_IPPROTO_ICMPV6;
  sp.l4len = ICMP_HLEN;
  sp.l4[0] = (uint8_t)int_field(L, "type", sp.alen == 4 ? ICMP_ECHO : ICMPV6_ECHO_REQUEST, 255);
  sp.l4[1] = (uint8_t)int_field(L, "code", 0, 255);
  put16(sp.l4 + LP_OFF(icmphdr, id), (uint32_t)int_field(L, "id", 0, 65535));
  put16(sp.l4 + LP_OFF(icmphdr, sequence), (uint32_t)int_field(L, "seq", 0, 65535));
  return finish(L, &sp, "lp.packet.icmp", -1);
}

/* ---- lp.reply ----------------------------------------------------------------------------- */

/* An option of lp.reply's table (argument 2), or def. */
static lua_Integer opt_int(lua_State *L, const char *k, lua_Integer def, lua_Integer max) {
  lua_Integer v;
  int isnum;
  if (!lua_istable(L, 2) || lua_getfield(L, 2, k) == LUA_TNIL) {
    if (lua_istable(L, 2)) lua_pop(L, 1);
    return def;
  }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < 0 || v > max) luaL_error(L, "lp.reply: option '%s' must be an integer 0..%I", k, max);
  lua_pop(L, 1);
  return v;
}

static int l_reply(lua_State *L) {
  struct lp_state *S = lp_state(L);
  struct spec sp;
  const uint8_t *ip, *l4;
  uint32_t l4off, iplen;
  int proto;
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  if (!S->in_call) return luaL_error(L, "lp.reply: no packet in hand (called outside a packet's call)");
  if (!(PKT_FLAGS(S) & LP_FLAG_L4) || (PKT_FLAGS(S) & LP_FLAG_NONFIRST))
    return luaL_error(L, "lp.reply: the packet has no transport header to answer");
  memset(&sp, 0, sizeof sp);
  l4off = PKT_L4OFF(S);
  proto = PKT_L4PROTO(S);
  if (PKT_NFPROTO(S) == LP_NFPROTO_IPV4) {
    ip = lp_hdr(L, S, 0, IP4_HLEN);
    sp.alen = 4;
    memcpy(sp.src, ip + LP_OFF(iphdr, daddr), 4);
    memcpy(sp.dst, ip + LP_OFF(iphdr, saddr), 4);
    iplen = rd16(ip + LP_OFF(iphdr, tot_len));
  } else if (PKT_NFPROTO(S) == LP_NFPROTO_IPV6) {
    ip = lp_hdr(L, S, 0, IP6_HLEN);
    sp.alen = 16;
    memcpy(sp.src, ip + LP_OFF(ipv6hdr, daddr), 16);
    memcpy(sp.dst, ip + LP_OFF(ipv6hdr, saddr), 16);
    iplen = IP6_HLEN + rd16(ip + LP_OFF(ipv6hdr, payload_len));
  } else {
    return luaL_error(L, "lp.reply: the packet is not IPv4 or IPv6");
  }
  if (iplen > PKT_LEN(S) || iplen < l4off) iplen = PKT_LEN(S); /* a jumbogram, a bad header */
  sp.ttl = (int)opt_int(L, "ttl", DEFAULT_TTL, 255);
  sp.pay = payload_arg(L, 1, &sp.paylen);
  switch (proto) {
    case LP_IPPROTO_UDP:
      l4 = lp_hdr(L, S, l4off, UDP_HLEN);
      sp.proto = proto;
      sp.l4len = UDP_HLEN;
      put16(sp.l4, rd16(l4 + 2));
      put16(sp.l4 + 2, rd16(l4));
      break;
    case LP_IPPROTO_TCP: {
      uint32_t seq, ack, their, hlen, len;
      int flags, theirs;
      l4 = lp_hdr(L, S, l4off, TCP_HLEN);
      hlen = (uint32_t)(l4[LP_OFF(tcphdr, doff)] >> 4) * 4;
      theirs = l4[LP_OFF(tcphdr, flags)];
      their = rd32(l4 + LP_OFF(tcphdr, seq));
      len = iplen - l4off > hlen ? iplen - l4off - hlen : 0;
      put16(sp.l4, rd16(l4 + 2));
      put16(sp.l4 + 2, rd16(l4));
      if (lua_istable(L, 2)) lua_getfield(L, 2, "flags");
      else lua_pushnil(L);
      flags = tcp_flags(L, lua_isnil(L, -1) ? (sp.paylen ? "PA" : "A") : luaL_checkstring(L, -1));
      lua_pop(L, 1);
      /* the next segment of the other side: it starts where they acknowledged and
       * acknowledges what they sent (a SYN and a FIN count one) */
      seq = (uint32_t)opt_int(L, "seq", (theirs & TCP_ACK) ? rd32(l4 + LP_OFF(tcphdr, ack_seq)) : 0, 0xffffffffLL);
      ack = (uint32_t)opt_int(L, "ack", (lua_Integer)(uint32_t)(their + len + !!(theirs & TCP_SYN) + !!(theirs & TCP_FIN)), 0xffffffffLL);
      tcp_header(&sp, seq, (flags & TCP_ACK) ? ack : 0, flags, (uint32_t)opt_int(L, "window", DEFAULT_WINDOW, 65535));
      break;
    }
    case LP_IPPROTO_ICMP:
    case LP_IPPROTO_ICMPV6: {
      int want = proto == LP_IPPROTO_ICMP ? ICMP_ECHO : ICMPV6_ECHO_REQUEST;
      l4 = lp_hdr(L, S, l4off, ICMP_HLEN);
      if (l4[0] != want) return luaL_error(L, "lp.reply: ICMP type %d is not an echo request", l4[0]);
      sp.proto = proto;
      sp.l4len = ICMP_HLEN;
      sp.l4[0] = proto == LP_IPPROTO_ICMP ? ICMP_ECHOREPLY : ICMPV6_ECHO_REPLY;
      memcpy(sp.l4 + 4, l4 + 4, 4); /* id and sequence */
      if (lua_isnil(L, 1) && iplen > l4off + ICMP_HLEN) {
        /* no data given: echo theirs */
        lp_push_range(L, S, l4off + ICMP_HLEN, iplen - l4off - ICMP_HLEN);
        lua_replace(L, 1);
        sp.pay = (const uint8_t *)lua_tolstring(L, 1, &sp.paylen);
      }
      break;
    }
    default:
      return luaL_error(L, "lp.reply: no reply for protocol %d (UDP, TCP and ICMP echo only)", proto);
  }
  return finish(L, &sp, "lp.reply", LP_SEND_KIND_REPLY);
}

void lp_open_send(lua_State *L) {
  static const luaL_Reg builders[] = {
      {"udp", l_packet_udp}, {"tcp", l_packet_tcp}, {"icmp", l_packet_icmp}, {NULL, NULL}};
  lua_pushcfunction(L, l_send);
  lua_setfield(L, -2, "send");
  lua_pushcfunction(L, l_reply);
  lua_setfield(L, -2, "reply");
  luaL_newlib(L, builders);
  lua_setfield(L, -2, "packet");
}
