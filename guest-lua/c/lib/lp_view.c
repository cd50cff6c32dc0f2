/*
 * Payload views: the TCP and UDP payloads of the packet as byte arrays over it (#v, v:sub,
 * v:find, tostring(v)), valid during their call.
 */
#include "lp_lib.h"

/* The payload of the current packet's transport header: offset and length. */
static int payload_range(struct lp_state *S, int cls, uint32_t *off, uint32_t *len) {
  uint32_t l4 = PKT_L4OFF(S), end = PKT_LEN(S), hl, n;
  const uint8_t *p;
  /* the datagram ends where IP says: link-layer padding (hooks before the IP stack trims it)
   * is not payload */
  if (PKT_NFPROTO(S) == LP_NFPROTO_IPV4 && (p = lp_pkt_at(S, 2, 2)) && rd16(p) < end) end = rd16(p);
  if (PKT_NFPROTO(S) == LP_NFPROTO_IPV6 && (p = lp_pkt_at(S, 4, 2)) && rd16(p) && 40u + rd16(p) < end)
    end = 40u + rd16(p);
  if (cls == C_TCPPAY) {
    if (!(p = lp_pkt_at(S, l4 + 12, 1))) return 0;
    hl = (uint32_t)(p[0] >> 4) * 4;
  } else {
    hl = 8;
    if ((p = lp_pkt_at(S, l4 + 4, 2)) && (n = rd16(p)) >= 8 && l4 + n < end) end = l4 + n;
  }
  if (l4 + hl > end) return 0;
  *off = l4 + hl;
  *len = end - (l4 + hl);
  return 1;
}

/* The payload view at idx (of the running call; else an error naming `expected`): its offset
 * and length in the packet. */
static struct lp_state *view_at(lua_State *L, int idx, const char *expected, uint32_t *off,
                                uint32_t *len) {
  struct lp_state *S;
  int cls = lp_check_obj(L, idx, VIEW_CLASSES, expected, &S);
  if (!payload_range(S, cls, off, len)) luaL_error(L, "packet too short for its payload");
  return S;
}

/* The view methods' own argument (index 1). */
static struct lp_state *view_range(lua_State *L, uint32_t *off, uint32_t *len) {
  return view_at(L, 1, "bytes", off, len);
}

/* Views are valid for their call only: lp.bytes(view) copies one with this (lp_bytes.c), so a
 * script can keep payload bytes past the call. */
void lp_view_push(lua_State *L, int idx) {
  uint32_t off, len;
  struct lp_state *S = view_at(L, idx, "string, bytes or payload", &off, &len);
  lp_push_range(L, S, off, len);
}

/* The bytes of the payload view at idx in place, when they lie in the call's window (a
 * packet's first LP_CTX_WINDOW_CAP bytes); NULL otherwise (the caller copies: lp_view_push). */
const uint8_t *lp_view_data(lua_State *L, int idx, size_t *n) {
  uint32_t off, len;
  struct lp_state *S = view_at(L, idx, "payload", &off, &len);
  if (off > PKT_WIN(S) || len > PKT_WIN(S) - off) return NULL;
  *n = len;
  return S->ctx + LP_CTX_WINDOW + off;
}

/* The payload view at idx (of the running call): its offset in the packet and its call. */
void lp_view_origin(lua_State *L, int idx, uint32_t *off, uintptr_t *gen) {
  uint32_t len;
  view_at(L, idx, "payload", off, &len);
  *gen = LIB(L)->gen;
}

int lp_view_len(lua_State *L) {
  uint32_t off, len;
  view_range(L, &off, &len);
  lua_pushinteger(L, len);
  return 1;
}

int lp_view_tostring(lua_State *L) {
  uint32_t off, len;
  struct lp_state *S = view_range(L, &off, &len);
  lp_push_range(L, S, off, len);
  return 1;
}

int lp_view_sub(lua_State *L) {
  uint32_t off, len;
  lua_Integer from, to;
  struct lp_state *S = view_range(L, &off, &len);
  lp_sub_range(len, luaL_checkinteger(L, 2), luaL_optinteger(L, 3, -1), &from, &to);
  if (from > to) lua_pushliteral(L, "");
  else lp_push_range(L, S, off + (uint32_t)(from - 1), (uint32_t)(to - from + 1));
  return 1;
}

int lp_view_find(lua_State *L) {
  uint32_t off, len;
  size_t nlen;
  const char *needle;
  lua_Integer init;
  int plain, base;
  struct lp_state *S = view_range(L, &off, &len);
  needle = luaL_checklstring(L, 2, &nlen);
  init = lp_find_start(len, luaL_optinteger(L, 3, 1));
  plain = lua_toboolean(L, 4);
  if (!init) {
    lua_pushnil(L);
    return 1;
  }
  if (plain && off + len <= PKT_WIN(S)) {
    /* plain search in place: no copy */
    uint32_t start = off + (uint32_t)(init - 1);
    return lp_find_plain(L, S->ctx + LP_CTX_WINDOW + start, off + len - start,
                         (const uint8_t *)needle, nlen, init);
  }
  /* patterns, or a payload beyond the window: the original string.find (not whatever the
   * script made of the global) on a copy; it returns 1 or 2 + #captures values */
  base = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LIB(L)->find_ref);
  lp_push_range(L, S, off, len);
  lua_pushvalue(L, 2);
  lua_pushinteger(L, init);
  lua_pushboolean(L, plain);
  lua_call(L, 4, LUA_MULTRET);
  return lua_gettop(L) - base;
}
