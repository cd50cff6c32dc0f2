/*
 * Reading the packet: packet objects checked against the running call, packet bytes from
 * the context's window or, beyond it, from the host, TCP options.
 */
#include "lp_lib.h"

const char *const lp_cls_names[C_NCLS] = {"packet", "ip", "ip6", "tcp", "udp", "icmp",
                                              "icmp6", "meta", "bytes", "bytes", "eth", "ct"};

/* The class of the packet object at idx, which must be one of `classes` (a bit mask, named
 * `expected` in the error) and belong to the running call. */
int lp_check_obj(lua_State *L, int idx, unsigned classes, const char *expected, struct lp_state **Sp) {
  struct lp_state *S = lp_state(L);
  uintptr_t v = obj_value(L, idx);
  int cls = value_cls(v);
  if (cls < 0 || !(classes & 1u << cls))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s expected, got %s", expected,
                                          cls < 0 ? luaL_typename(L, idx) : lp_cls_names[cls]));
  if (!S->in_call || v >> CLS_BITS != ((struct lp_lib *)S->lib)->gen)
    luaL_error(L, "packet used outside of its call");
  *Sp = S;
  return cls;
}

/* Copies packet bytes [off, off+n) to dst: the window's part from the window (it has the
 * call's writes), the rest from the host. 0 when out of the packet. */
int lp_read_bytes(struct lp_state *S, uint32_t off, uint8_t *dst, uint32_t n) {
  uint32_t len = PKT_LEN(S), win = PKT_WIN(S), m = 0;
  if (off > len || n > len - off) return 0;
  if (off < win) {
    m = n < win - off ? n : win - off;
    memcpy(dst, S->ctx + LP_CTX_WINDOW + off, m);
  }
  return m == n || lp_host_pkt_read(S, off + m, dst + m, n - m) == (int)(n - m);
}

/* Pointer to packet bytes [off, off+n), n <= sizeof scratch, or NULL when out of the packet. */
const uint8_t *lp_pkt_at(struct lp_state *S, uint32_t off, uint32_t n) {
  uint32_t len = PKT_LEN(S), win = PKT_WIN(S);
  uint8_t *scratch = ((struct lp_lib *)S->lib)->scratch;
  if (off > len || n > len - off) return NULL;
  if (off <= win && n <= win - off) return S->ctx + LP_CTX_WINDOW + off;
  if (n > sizeof((struct lp_lib *)0)->scratch || !lp_read_bytes(S, off, scratch, n)) return NULL;
  return scratch;
}

/* Reads a header field, raising a Lua error when the packet is too short. */
const uint8_t *lp_hdr(lua_State *L, struct lp_state *S, uint32_t off, uint32_t n) {
  const uint8_t *p = lp_pkt_at(S, off, n);
  if (!p) luaL_error(L, "packet too short (%d bytes) for a field at offset %d", (int)PKT_LEN(S), (int)off);
  return p;
}

/* Pushes packet bytes [off, off+n) as a Lua string. */
void lp_push_range(lua_State *L, struct lp_state *S, uint32_t off, uint32_t n) {
  uint32_t win = PKT_WIN(S);
  if (off <= win && n <= win - off) {
    lua_pushlstring(L, (const char *)S->ctx + LP_CTX_WINDOW + off, n);
  } else {
    luaL_Buffer b;
    char *dst = luaL_buffinitsize(L, &b, n);
    if (!lp_read_bytes(S, off, (uint8_t *)dst, n)) luaL_error(L, "packet read failed");
    luaL_pushresultsize(&b, n);
  }
}

/* Offset in the packet of TCP option `kind` with length `olen`, or 0 when the segment does not
 * carry it (or its options are malformed). */
uint32_t lp_tcp_opt(lua_State *L, struct lp_state *S, uint8_t kind, uint8_t olen) {
  uint32_t l4 = PKT_L4OFF(S), end, i;
  const uint8_t *h = lp_hdr(L, S, l4, 20);
  end = l4 + (uint32_t)(h[12] >> 4) * 4;
  if (end > PKT_LEN(S)) return 0;
  for (i = l4 + 20; i < end;) {
    const uint8_t *p = lp_pkt_at(S, i, 1);
    uint32_t l;
    if (!p || p[0] == 0) return 0;
    if (p[0] == 1) { i++; continue; }
    if (i + 1 >= end || !(p = lp_pkt_at(S, i, 2))) return 0;
    l = p[1];
    if (l < 2 || i + l > end) return 0;
    if (p[0] == kind) return l == olen ? i : 0;
    i += l;
  }
  return 0;
}
