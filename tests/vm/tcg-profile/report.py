#!/usr/bin/env python3
"""scripts/tcg-profile.sh's report: instructions and translation blocks per packet in modes a
(nft alone) and b (the lua rule), by function, the difference first.
usage: report.py DIR ROWS   (DIR holds a.out, a.log, b.out, b.log from the two runs)"""
import base64, bisect, collections, gzip, re, sys

def symbols(log):
    t = open(log, "rb").read().decode("latin1")
    a = t.index("@@kallsyms-begin") + len("@@kallsyms-begin")
    data = re.sub(r"[^A-Za-z0-9+/=]", "", t[a:t.index("@@kallsyms-end")])
    syms = []
    for l in gzip.decompress(base64.b64decode(data)).decode().splitlines():
        p = l.split()
        syms.append((int(p[0], 16), p[2] + (" " + p[3] if len(p) > 3 else "")))
    syms.sort()
    return syms

def window(log):
    m = re.search(r"measure: mode \w window (\d+)", open(log, errors="replace").read())
    if not m:
        sys.exit("tcg-profile: no packet count in %s" % log)
    return int(m.group(1))

def profile(out, syms):
    addrs = [s[0] for s in syms]
    ins, tbs = collections.Counter(), collections.Counter()
    for l in open(out):
        va, n, cnt = l.split()
        va, n, cnt = int(va, 16), int(n), int(cnt)
        i = bisect.bisect_right(addrs, va) - 1
        name = syms[i][1] if i >= 0 and va >= 0xffff000000000000 else "[user]"
        ins[name] += n * cnt
        tbs[name] += cnt
    return ins, tbs

d, rows = sys.argv[1], int(sys.argv[2])
runs = {}
for m in "ab":
    log = "%s/%s.log" % (d, m)
    ins, tbs = profile("%s/%s.out" % (d, m), symbols(log))
    runs[m] = (ins, tbs, window(log))
(ia, ta, pa), (ib, tb, pb) = runs["a"], runs["b"]
print("per packet: instructions a %.0f b %.0f (+%.0f); blocks a %.0f b %.0f (+%.0f)" % (
    sum(ia.values()) / pa, sum(ib.values()) / pb, sum(ib.values()) / pb - sum(ia.values()) / pa,
    sum(ta.values()) / pa, sum(tb.values()) / pb, sum(tb.values()) / pb - sum(ta.values()) / pa))
print("%8s %8s %8s %8s  function" % ("d instr", "d blocks", "a instr", "b instr"))
names = sorted(set(ia) | set(ib), key=lambda n: -abs(ib[n] / pb - ia[n] / pa))
for n in names[:rows]:
    print("%8.0f %8.1f %8.0f %8.0f  %s" % (ib[n] / pb - ia[n] / pa, tb[n] / pb - ta[n] / pa,
                                            ia[n] / pa, ib[n] / pb, n[:90]))
