/*
 * Addresses: IPv4 and IPv6 as text (nft's forms) and back, and lp.cidr.
 */
#include "lp_lib.h"

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
    while (i < len && (h = lp_hexval(s[i])) >= 0 && d < 4) { v = v << 4 | (unsigned)h; i++; d++; }
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
int lp_parse_addr(const char *s, size_t len, uint8_t *out) {
  if (memchr(s, ':', len)) return parse_ip6(s, len, out) ? 16 : 0;
  return parse_ip4(s, len, out) ? 4 : 0;
}

void lp_push_addr(lua_State *L, const uint8_t *a, int alen) {
  char buf[48];
  size_t n = alen == 4 ? fmt_ip4(buf, a) : fmt_ip6(buf, a);
  lua_pushlstring(L, buf, n);
}

/* ---- lp.cidr: address prefixes ----------------------------------------------------------- */

struct cidr { int alen; int plen; uint8_t a[16]; };
#define CIDR_MT "lp.cidr"

static int l_cidr(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *slash = memchr(s, '/', len);
  size_t alen = slash ? (size_t)(slash - s) : len;
  struct cidr *c = lua_newuserdatauv(L, sizeof *c, 0);
  int i;
  c->alen = lp_parse_addr(s, alen, c->a);
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
  int alen = lp_parse_addr(s, len, a);
  if (!alen) return luaL_error(L, "contains: invalid address '%s'", s);
  lua_pushboolean(L, cidr_match(c, a, alen));
  return 1;
}

static int l_cidr_tostring(lua_State *L) {
  const struct cidr *c = luaL_checkudata(L, 1, CIDR_MT);
  lp_push_addr(L, c->a, c->alen);
  lua_pushfstring(L, "/%d", c->plen);
  lua_concat(L, 2);
  return 1;
}

void lp_open_cidr(lua_State *L) {
  static const luaL_Reg cidr_meths[] = {{"contains", l_cidr_contains}, {NULL, NULL}};
  luaL_newmetatable(L, CIDR_MT);
  luaL_newlib(L, cidr_meths);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_cidr_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_cidr);
  lua_setfield(L, -2, "cidr");
}
