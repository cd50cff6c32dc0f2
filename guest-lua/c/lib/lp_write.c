/*
 * Writing the packet: writes change the context's window and widen its dirty range, which
 * the host copies to the packet after the call; bytes beyond the window go to the packet at once
 * (pkt_write). Checksums are kept by incremental updates (RFC 1624). See docs/packet-writes.md.
 */
#include "lp_lib.h"

/* ---- writing the packet -----------------------------------------------------------------
 *
 * Writes change the context's window and widen its dirty range, which the host copies to the
 * packet after the call; bytes beyond the window go to the packet at once (lp_pkt_write). See
 * docs/packet-writes.md. Checksums are kept by incremental updates (RFC 1624): a write knows
 * the bytes it replaces, so the cost does not depend on the packet's size.
 */

/* Writes packet bytes [off, off+n); a Lua error when that is not inside the packet. */
void lp_pkt_write(lua_State *L, struct lp_state *S, uint32_t off, const uint8_t *src, uint32_t n) {
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
static uint32_t csum_delta(const uint8_t *old, const uint8_t *new, uint32_t n, uint32_t off) {
  uint32_t so = 0, sn = 0, i;
  for (i = 0; i < n; i++) {
    int shift = ((off + i) & 1) ? 0 : 8;
    so += (uint32_t)old[i] << shift;
    sn += (uint32_t)new[i] << shift;
  }
  /* new - old in one's complement: adding the complement of old's folded sum */
  return sn + (~lp_csum_fold(so) & 0xffff);
}

uint32_t lp_csum_fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return acc;
}

/* Applies `delta` to the 16-bit checksum at packet offset coff. `partial`: the field holds
 * the uncomplemented pseudo-header sum (CHECKSUM_PARTIAL); `zero_none` (UDP): 0 means "no
 * checksum" and stays 0 (over IPv6 too, as Linux's NAT keeps it: zero-checksum tunnels), and a
 * computed 0 is sent as 0xffff. */
static void csum_apply(lua_State *L, struct lp_state *S, uint32_t coff, uint32_t delta, int partial, int zero_none) {
  const uint8_t *p = lp_hdr(L, S, coff, 2);
  uint32_t c = rd16(p);
  uint8_t out[2];
  if (zero_none && !partial && c == 0) return;
  if (partial) c = lp_csum_fold(c + delta);
  else {
    c = ~lp_csum_fold((~c & 0xffff) + delta) & 0xffff;
    if (zero_none && c == 0) c = 0xffff;
  }
  out[0] = (uint8_t)(c >> 8);
  out[1] = (uint8_t)c;
  lp_pkt_write(L, S, coff, out, 2);
}

/* Offset of the transport checksum, or 0 when the packet has none we keep (no transport
 * header here, or a protocol without one). *pseudo: it covers a pseudo-header. */
uint32_t lp_l4_csum_off(struct lp_state *S, int *pseudo, int *zero_none) {
  uint32_t l4 = PKT_L4OFF(S);
  *pseudo = 1;
  *zero_none = 0;
  if (!(PKT_FLAGS(S) & LP_FLAG_L4)) return 0;
  switch (PKT_L4PROTO(S)) {
    case LP_IPPROTO_TCP: return l4 + LP_OFF(tcphdr, check);
    case LP_IPPROTO_UDP: *zero_none = 1; return l4 + LP_OFF(udphdr, check);
    case LP_IPPROTO_ICMPV6: return l4 + LP_OFF(icmphdr, checksum);
    case LP_IPPROTO_ICMP: *pseudo = 0; return l4 + LP_OFF(icmphdr, checksum);
    default: return 0;
  }
}

/* Fixes the transport checksum for a change `delta` of a field it covers (ck: CK_L4 or
 * CK_PSEUDO). */
static void l4_fix(lua_State *L, struct lp_state *S, uint32_t delta, int ck) {
  int pseudo, zero_none, partial = S->ctx[LP_CTX_CSUM] == LP_CSUM_PARTIAL;
  uint32_t coff = lp_l4_csum_off(S, &pseudo, &zero_none);
  if (!coff) return;
  if (ck == CK_PSEUDO && !pseudo) return;
  /* partial: the NIC sums the segment itself, only the pseudo-header part is in the field */
  if (partial && ck != CK_PSEUDO) return;
  csum_apply(L, S, coff, delta, partial, zero_none);
}

/* Writes field bytes [off, off+n) (n <= 16) and keeps the checksums `ck` names valid. */
void lp_set_field(lua_State *L, struct lp_state *S, uint32_t off, const uint8_t *val, uint32_t n, int ck) {
  uint8_t old[16];
  uint32_t delta;
  memcpy(old, lp_hdr(L, S, off, n), n);
  if (!memcmp(old, val, n)) return;
  delta = csum_delta(old, val, n, off);
  lp_pkt_write(L, S, off, val, n);
  if (ck & CK_IP) csum_apply(L, S, LP_OFF(iphdr, check), delta, 0, 0);
  if (ck & (CK_L4 | CK_PSEUDO)) l4_fix(L, S, delta, ck & CK_PSEUDO ? CK_PSEUDO : CK_L4);
}

void lp_set_uint(lua_State *L, struct lp_state *S, uint32_t off, uint32_t v, uint32_t n, int ck) {
  uint8_t b[4];
  uint32_t i;
  for (i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  lp_set_field(L, S, off, b, n, ck);
}

void lp_payload_write(lua_State *L, uintptr_t gen, uint32_t off, const uint8_t *src, uint32_t n) {
  struct lp_state *S = lp_state(L);
  uint8_t old[64];
  if (!S->in_call || gen != LIB(L)->gen)
    luaL_error(L, "the view's packet is gone: views write their packet during its call only");
  while (n) {
    uint32_t k = n < sizeof old ? n : (uint32_t)sizeof old;
    const uint8_t *p = lp_pkt_at(S, off, k);
    if (!p) luaL_error(L, "payload write at offset %d outside the packet", (int)off);
    memcpy(old, p, k);
    {
      uint32_t delta = csum_delta(old, src, k, off);
      lp_pkt_write(L, S, off, src, k);
      l4_fix(L, S, delta, CK_L4);
    }
    off += k;
    src += k;
    n -= k;
  }
}

void lp_payload_read(lua_State *L, uintptr_t gen, uint32_t off, uint8_t *dst, uint32_t n) {
  struct lp_state *S = lp_state(L);
  if (!S->in_call || gen != LIB(L)->gen)
    luaL_error(L, "the view's packet is gone: views write their packet during its call only");
  if (!lp_read_bytes(S, off, dst, n)) luaL_error(L, "payload read at offset %d outside the packet", (int)off);
}

/* One's-complement sum of packet bytes [off, off+n), off even. */
uint32_t lp_sum_range(lua_State *L, struct lp_state *S, uint32_t off, uint32_t n, uint32_t acc) {
  while (n) {
    uint32_t k = n < 64 ? n : 64, i;
    const uint8_t *p = lp_pkt_at(S, off, k);
    if (!p) luaL_error(L, "packet read failed");
    for (i = 0; i < k; i++) acc += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
    acc = lp_csum_fold(acc);
    off += k;
    n -= k;
  }
  return acc;
}
