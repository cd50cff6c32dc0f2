#!/usr/bin/env bash
# The kernel-flags harness: nft_lua.ko's Rust object (the runtime with wasmi's portable dispatch
# and the compiled guest, built by scripts/build-kmod.sh with the kernel's code model and its
# retpoline/return-thunk/IBT flags) linked into a userspace program (kmod-wasmi/kbench/kbench.c),
# so the kernel's per-packet cost is measured on the real CPU, not only under the VM's emulation.
# Each script of the benchmark suite runs over the same capture as BENCHMARKS.md, on both
# engines, and `lpctl bench` (the same engines built with userspace flags, and native Lua) runs
# it in the same run: the ratios say what the kernel's flags cost.
#
# usage: scripts/kbench.sh [--json] [--check] [--millis N] [SERIES...]
#   SERIES: 6.1, 6.12 (default both); the module must have been built for it from this tree
#   (scripts/build-kmod.sh SERIES). --check fails when a call errs or when a script's fuel is
#   not lpctl's within 3% (scripts/test.sh runs it so, briefly).
set -euo pipefail
cd "$(dirname "$0")/.."

json=0 check=0 millis=500 series=()
while (($#)); do
  case $1 in
    --json) json=1; shift ;;
    --check) check=1; shift ;;
    --millis) millis=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    6.1|6.12) series+=("$1"); shift ;;
    *) echo "kbench: unknown argument: $1" >&2; exit 2 ;;
  esac
done
((${#series[@]})) || series=(6.1 6.12)

OUT=target/kbench
mkdir -p "$OUT"
# (LPCTL=path: that lpctl instead of a release build, e.g. a debug one for --check)
if [[ -z ${LPCTL:-} ]]; then
  cargo build -q --release -p lpctl
  LPCTL=target/release/lpctl
fi

# the captures as kbench reads them: [u32 length][network header and on] per packet
pcap_to_packets() { # PCAP OUT
  python3 - "$1" "$2" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
little = d[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
if not little and d[:4] not in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
    sys.exit("kbench: %s: not a pcap file (pcapng is not read here)" % sys.argv[1])
e = "<" if little else ">"
link = struct.unpack(e + "I", d[20:24])[0]
skip = {1: 14, 113: 16, 101: 0, 228: 0, 229: 0}.get(link)
if skip is None:
    sys.exit("kbench: %s: link type %d" % (sys.argv[1], link))
out, at = [], 24
while at + 16 <= len(d):
    incl = struct.unpack(e + "I", d[at + 8:at + 12])[0]
    p = d[at + 16 + skip:at + 16 + incl]
    at += 16 + incl
    if p and p[0] >> 4 in (4, 6):
        out.append(struct.pack("<I", len(p)) + p)
open(sys.argv[2], "wb").write(b"".join(out))
EOF
}
pcap_to_packets tests/data/mixed.pcap "$OUT/mixed.bin"
pcap_to_packets tests/data/nat.pcap "$OUT/nat.bin"

# script, capture, entry function
cases=()
for s in accept filter payload blocklist counter; do
  cases+=("examples/bench/$s.lua mixed process_packet")
done
cases+=("examples/nat.lua nat nat")

for c in "${cases[@]}"; do
  read -r script _ _ <<<"$c"
  "$LPCTL" pack "$script" -o "$OUT/$(basename "$script" .lua).lpk" >/dev/null
done

results=()
for s in "${series[@]}"; do
  # the module scripts/test.sh built for the series, else the newest built for it
  if [[ -s target/kmod-built-$s ]]; then
    ko=$(dirname "$(cat "target/kmod-built-$s")")/build/lp_rust.rlo
  else
    case $s in 6.1) pat='6.1.0-*' ;; *) pat='6.12.*' ;; esac
    # shellcheck disable=SC2086
    ko=$(ls -td target/kmod/$pat/build/lp_rust.rlo 2>/dev/null | head -n 1 || true)
  fi
  [[ -n $ko && -f $ko ]] || { echo "kbench: no lp_rust.rlo for $s: run scripts/build-kmod.sh $s" >&2; exit 1; }
  # -no-pie: the object is built for the kernel code model (addresses in the low 2 GiB do, as
  # sign-extended 32-bit ones)
  gcc -O2 -no-pie -fno-pie -Wall -Wextra -Werror -Ikmod-wasmi/kbench/include -Ikmod-wasmi/kernel \
    kmod-wasmi/kbench/kbench.c "$ko" -o "$OUT/kbench-$s"
  for c in "${cases[@]}"; do
    read -r script cap func <<<"$c"
    name=$(basename "$script" .lua)
    for engine in 2 1; do
      line=$("$OUT/kbench-$s" "$OUT/$name.lpk" "$OUT/$cap.bin" "$engine" "$millis" "$func")
      results+=("$s $name $engine $line")
    done
  done
done

# the same scripts with userspace flags, and native Lua, in the same run
user=()
for c in "${cases[@]}"; do
  read -r script cap func <<<"$c"
  user+=("$(basename "$script" .lua) $("$LPCTL" -j bench "$script" --pcap "tests/data/$cap.pcap" \
    --function "$func" --millis "$millis" --engines compiled --engines wasmi --engines native)")
done

python3 - "$json" "$check" "${results[@]}" -- "${user[@]}" <<'EOF'
import json, math, sys
args = sys.argv[3:]
sep = args.index("--")
kern, user = args[:sep], args[sep + 1:]
by_user = {}
for u in user:
    name, js = u.split(" ", 1)
    by_user[name] = {r["engine"]: r for r in json.loads(js)["results"]}
rows = []
for k in kern:
    s, name, engine, rest = k.split(" ", 3)
    kv = dict(x.split("=") for x in rest.split())
    eng = {"2": "compiled", "1": "wasmi"}[engine]
    u = by_user[name]
    rows.append({
        "series": s, "script": name, "engine": eng,
        "kernel_flags_ns": float(kv["ns_per_packet"]), "fuel": float(kv["fuel_per_packet"]),
        "errors": int(kv["errors"]),
        "userspace_ns": u[eng]["ns_per_packet"], "native_ns": u["native"]["ns_per_packet"],
        "userspace_fuel": u[eng]["fuel_per_packet"],
    })
bad = ["%(series)s %(script)s %(engine)s: %(errors)d errors, fuel %(fuel).0f (lpctl %(userspace_fuel).0f)" % r
       for r in rows if r["errors"] or abs(r["fuel"] - r["userspace_fuel"]) > 0.03 * r["userspace_fuel"]]
if sys.argv[1] == "1":
    print(json.dumps(rows))
elif sys.argv[2] == "1":
    print("kbench: %d measures: %s" % (len(rows), "ok" if not bad else "FAILED"))
if sys.argv[2] == "1" and bad:
    sys.exit("kbench: " + "; ".join(bad))
if sys.argv[1] == "1" or sys.argv[2] == "1":
    sys.exit(0)
print("| kernel | script | engine | kernel flags ns | userspace ns | kernel / userspace | kernel flags / native | fuel |")
print("|---|---|---|---:|---:|---:|---:|---:|")
geo = {}
for r in rows:
    print("| %s | %s | %s | %.0f | %.0f | %.2f | %.2f | %.0f |" % (
        r["series"], r["script"], r["engine"], r["kernel_flags_ns"], r["userspace_ns"],
        r["kernel_flags_ns"] / r["userspace_ns"], r["kernel_flags_ns"] / r["native_ns"], r["fuel"]))
    geo.setdefault((r["series"], r["engine"]), []).append(r["kernel_flags_ns"] / r["native_ns"])
print()
print("Geometric mean of kernel flags / native: " + "; ".join(
    "%s %s %.2f" % (s, e, math.exp(sum(map(math.log, v)) / len(v))) for (s, e), v in sorted(geo.items())) + ".")
EOF
