#!/usr/bin/env bash
# What a lua rule costs a packet under the VM's emulation, counted rather than timed: a qemu
# TCG plugin (tests/vm/tcg-profile/plugin.c) counts each translation block's executions while
# pktgen sends 60-byte UDP datagrams into the prerouting chain, once with nft's own accept (a)
# and once with a lua rule returning accept (b), and the report gives guest instructions and
# blocks per packet by function, the lua rule's difference first (docs/engines.md, "What a
# lua rule adds to a packet in the VM"). Unlike packet rates the host's speed does not move
# them (two runs of one module: +1,928 and +1,834 instructions a packet, the per-function
# figures within a few percent): for comparing two builds of the module.
#
# usage: scripts/tcg-profile.sh [--seconds N] [--rows N] MODULE.ko
#   MODULE.ko: a module scripts/build-kmod.sh built (its kernel is the VM's); lpctl is
#   target/debug/lpctl (cargo build -p lpctl). Output in target/tcg-profile/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=8 rows=30 ko=
while (($#)); do
  case $1 in
    --seconds) seconds=${2:?}; shift 2 ;;
    --rows) rows=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) echo "tcg-profile: unknown option: $1" >&2; exit 2 ;;
    *) ko=$1; shift ;;
  esac
done
[[ -f $ko ]] || { echo "tcg-profile: no module given (scripts/build-kmod.sh builds one)" >&2; exit 2; }
[[ -x target/debug/lpctl ]] || { echo "tcg-profile: no target/debug/lpctl (cargo build -p lpctl)" >&2; exit 2; }
ko=$(realpath "$ko")
src=tests/vm/tcg-profile
out=target/tcg-profile
rm -rf "$out" && mkdir -p "$out/data"
gcc -O2 -shared -fPIC -Wall -Wextra -o "$out/plugin.so" "$src/plugin.c" -lpthread
for a in 13370000 13380000; do
  gcc -nostdlib -static -Wl,-Ttext=0x$a -Wl,--build-id=none -o "$out/data/mark-$a" "$src/mark.S"
done
for mode in a b; do
  mkdir -p "$out/scenarios-$mode"
  sed -e "s/@MODE@/$mode/" -e "s/@SECONDS@/$seconds/" "$src/profile.sh.in" \
    >"$out/scenarios-$mode/71-profile.sh"
  VM_QEMU_ARGS="-plugin $PWD/$out/plugin.so,out=$PWD/$out/$mode.out" \
    ./tests/vm/run.sh --module "$ko" --lpctl target/debug/lpctl --data "$out/data" \
    --scenarios "$out/scenarios-$mode" --no-reruns >"$out/$mode.run" 2>&1 ||
    { cat "$out/$mode.run" >&2; echo "tcg-profile: the VM run of mode $mode failed" >&2; exit 1; }
  log=$(sed -n 's/^vm: serial log: //p' "$out/$mode.run")
  cp "$log" "$out/$mode.log"
  [[ -s $out/$mode.out ]] || { echo "tcg-profile: the plugin wrote no counts (mode $mode)" >&2; exit 1; }
done
python3 "$src/report.py" "$out" "$rows" | tee "$out/report.txt"
