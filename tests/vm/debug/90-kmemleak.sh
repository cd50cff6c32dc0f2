# kmemleak (debug kernel only: scripts/debug-kernel.sh, run.sh --kernel-dir): scans once for
# what earlier scenarios left, then exercises the module's allocating and freeing paths (load,
# refused loads, replace, limits, rules with functions and arguments, traffic with errors,
# nested pcalls, a fuel trap and its rebuild, EBUSY, rule delete, unload, a netns dying with a
# script loaded, rmmod with scripts loaded, modprobe/rmmod again), waits past kmemleak's minimum
# age and scans again. Every suspected leak allocated through nft_lua fails the run and is
# printed whole: a backtrace through "[nft_lua]", or through an address the kernel can no longer
# name (0x...: module text since unloaded, or init code freed after the module's init) inside
# nft_lua's core while loaded here (/proc/modules, recorded at each load). Other records with
# unnamed addresses (another module's init code, nft_lua of an earlier scenario) are printed as
# notes; leaks of the rest of the kernel are counted and the first few summarised as notes.
# Then lockdep must still be validating (/proc/lockdep_stats debug_locks 1: a lockdep splat
# anywhere earlier in the boot switches it off).
# The positive control, at the end: kmemleak-test.ko (CONFIG_DEBUG_KMEMLEAK_TEST) leaks on
# purpose at load and must be found.
# Copy this file next to other scenarios (or run tests/vm/debug) to scan after them.
# vm-requires: module lpctl
# vm-modules: kmemleak-test
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
D=/sys/kernel/debug
K=$D/kmemleak
grep -q " $D " /proc/mounts || mount -t debugfs debugfs $D
if [ ! -e $K ] || ! cat $K >/dev/null 2>&1; then
  fail "kmemleak: $K readable" "kmemleak absent or disabled ($(dmesg | grep -i kmemleak | tail -n 1))"
  exit 0
fi
pass "kmemleak: $K readable"

# scan NAME: two scans (a leak must stay unreferenced), then split the report into the records
# that involve nft_lua (/tmp/kml-NAME.lua), those with unnamed frames elsewhere
# (/tmp/kml-NAME.unnamed) and the others (/tmp/kml-NAME.other)
scan() {
  echo scan >$K
  echo scan >$K
  cat $K >/tmp/kml-$1.all
  awk -v lua=/tmp/kml-$1.lua -v other=/tmp/kml-$1.other -v unk=/tmp/kml-$1.unnamed \
      -v ranges="$(tr '\n' ' ' </tmp/kml-ranges 2>/dev/null)" '
    function inrange(a,   i, n, r, p) { # 16 hex digits compare as strings
      n = split(ranges, r, " ")
      for (i = 1; i <= n; i++) { split(r[i], p, ":"); if (a >= p[1] && a < p[2]) return 1 }
      return 0
    }
    function flush() {
      if (rec == "") return
      if (rec ~ /\[nft_lua\]/ || hit) print rec >lua
      else if (unnamed) print rec >unk
      else print rec >other
      rec = ""; hit = 0; unnamed = 0
    }
    /^unreferenced object/ { flush(); rec = $0; next }
    rec != "" {
      rec = rec "\n" $0
      if (match($0, /\] 0x[0-9a-f]+/)) {
        unnamed = 1
        if (inrange(substr($0, RSTART + 4, RLENGTH - 4))) hit = 1
      }
    }
    END { flush() }' /tmp/kml-$1.all
  touch /tmp/kml-$1.lua /tmp/kml-$1.other /tmp/kml-$1.unnamed
}
# record_range: nft_lua's core as loaded now, "start:end" in 16 hex digits (the top 32 bits of
# module addresses are all ones: dash's arithmetic is signed 64-bit)
record_range() {
  set -- $(sed -n "s/^$m \([0-9]*\) .* 0xffffffff\([0-9a-f]\{8\}\).*/\1 \2/p" /proc/modules)
  [ -n "$2" ] || return 0
  printf 'ffffffff%08x:ffffffff%08x\n' $((0x$2)) $((0x$2 + $1)) >>/tmp/kml-ranges
  note "kmemleak: $m core at $(tail -n 1 /tmp/kml-ranges)"
}
count() { grep -c '^unreferenced object' "$1"; }
report() { # NAME WHEN
  n_lua=$(count /tmp/kml-$1.lua)
  n_other=$(count /tmp/kml-$1.other)
  n_unk=$(count /tmp/kml-$1.unnamed)
  note "kmemleak $2: $n_lua suspected leak(s) through nft_lua, $n_unk with unnamed frames outside it, $n_other elsewhere in the kernel"
  sed 's/^/# kmemleak unnamed:   /' /tmp/kml-$1.unnamed | head -n 60
  # the others, briefly: comm and the first frames outside the allocators
  awk '/^unreferenced object/ { if (n++ >= 8) exit; o = $0; c = ""; f = ""; next }
       /comm / { c = $0; sub(/^ */, "", c) }
       /\[</ && f == "" && !/kmalloc|kmem_cache|slab|kmemleak|__alloc|alloc_pages|vmalloc|kasan/ { f = $0; sub(/^ */, "", f); print "# kmemleak other: " o " " c " at " f }' \
    /tmp/kml-$1.other
  if [ "$n_lua" -eq 0 ]; then
    pass "kmemleak $2: no leak through nft_lua"
  else
    fail "kmemleak $2: no leak through nft_lua" "$n_lua suspected leak(s), records follow"
    sed 's/^/#   /' /tmp/kml-$1.lua | head -n 400
  fi
}

: >/tmp/kml-ranges
scan before
report before "after the earlier scenarios"
echo clear >$K # what was reported is not reported again


grep -q "^$m " /proc/modules || modprobe "$m"
check "kmemleak: $m loaded" grep -q "^$m " /proc/modules
record_range
check "kmemleak: peer namespace" peer_up

cat >/tmp/kl.lua <<'EOF'
local seen = 0
local keep = {}
local function nest(n) if n == 0 then return lp.ACCEPT end local ok, v = pcall(nest, n - 1) return v end
function process_packet(pkt)
  seen = seen + 1
  local u = pkt.udp
  if not u then return lp.CONTINUE end
  local p = u.dport
  if p == 7301 then error("\255\254 boom " .. seen) end
  -- (pcall catches the soft stop, "out of fuel", and the loop goes on: cut hard, a trap)
  if p == 7302 then pcall(function() while true do end end) while true do end end
  if p == 7303 then return nest(20) end
  if p == 7304 then keep[seen % 4] = string.rep("k", 10000) end
  return lp.ACCEPT
end
function by_arg(pkt, arg) if arg == "drop" then return lp.DROP end return lp.ACCEPT end
EOF
printf 'function process_packet(p) return lp.ACCEPT end\n' >/tmp/kl2.lua
printf 'function (\n' >/tmp/klbad.lua
printf 'local t = {} for i = 1, 1e9 do t[i] = i end\n' >/tmp/klfat.lua

check "kmemleak: a syntax error is refused" sh -c '! lpctl script load /tmp/klbad.lua --name bad'
check "kmemleak: a top-level chunk out of memory is refused" \
  sh -c '! lpctl script load /tmp/klfat.lua --name fat --memory 1M'
check "kmemleak: load kl" lpctl script load /tmp/kl.lua --name kl --on-error accept --pcall-depth 32 --instructions 0
check "kmemleak: load kl2" lpctl script load /tmp/kl2.lua --name kl2
check "kmemleak: limits" lpctl script limits kl --fuel 100000
nft add table inet kl '{ chain in { type filter hook input priority 0; policy accept; }; chain out { type filter hook output priority 0; policy accept; }; }'
check "kmemleak: rule kl" lpctl rule add inet kl in iifname v0 udp dport 7300-7309 lua script kl
check "kmemleak: rule kl function by_arg arg drop" \
  lpctl rule add inet kl in iifname v0 udp dport 7310 lua script kl function by_arg arg drop
check "kmemleak: rule kl2 (output)" lpctl rule add inet kl out udp dport 7320 lua script kl2
check_eq "kmemleak: 5 accepted" 5 "$(udp_transfer 5 7300)"
check_eq "kmemleak: 5 erroring (on-error accept)" 5 "$(udp_transfer 5 7301)"
check_eq "kmemleak: fuel trap (on-error accept)" 1 "$(udp_transfer 1 7302)"
rebuilt() { [ "$(lpctl script show kl | sed -n 's/.*rebuilds \([0-9][0-9]*\).*/\1/p')" -ge 1 ]; }
check "kmemleak: the trapped instance is rebuilt" wait_until 300 rebuilt
note "kmemleak: kl: $(lpctl script show kl | grep errors: | tr -s ' \t' ' ')"
check_eq "kmemleak: 3 through 20 nested pcalls" 3 "$(udp_transfer 3 7303)"
check_eq "kmemleak: 5 growing the heap" 5 "$(udp_transfer 5 7304)"
check_eq "kmemleak: by_arg drop" 0 "$(udp_transfer 3 7310 0)"
udp_send 3 "$VM_PEER_IP" 7320
check "kmemleak: replace kl" lpctl script load /tmp/kl.lua --name kl --replace --on-error accept
check_eq "kmemleak: 3 through the replacement" 3 "$(udp_transfer 3 7300)"
check "kmemleak: unload refused while bound" sh -c '! lpctl script unload kl 2>/dev/null'
h=$(nft -a list chain inet kl in | sed -n 's/.*jump lua-kl-[0-9a-f]* # handle \([0-9]*\).*/\1/p' | head -n 1)
check "kmemleak: rule delete (by_arg)" lpctl rule delete inet kl in handle "$h"
nft delete table inet kl
check "kmemleak: unload kl" wait_until 50 lpctl script unload kl
check "kmemleak: a script in the peer netns" in_peer lpctl script load /tmp/kl2.lua --name peer
peer_down # the netns dies with its script loaded
check "kmemleak: rmmod $m with kl2 loaded" rmmod "$m"
check "kmemleak: modprobe $m again" modprobe "$m"
record_range
check "kmemleak: load after reload" lpctl script load /tmp/kl2.lua --name again
check "kmemleak: rmmod $m again" rmmod "$m"

# kmemleak reports objects at least 5 s old that no scan found referenced
sleep 6
scan after
report after "after loads, traffic, traps, unloads and rmmod"

# lockdep still on: a splat (or a table overflow) anywhere earlier would have switched it off
if [ -r /proc/lockdep_stats ]; then
  note "lockdep: $(grep -E 'direct dependencies|lock-classes|debug_locks' /proc/lockdep_stats | tr -s ' \t' ' ' | tr '\n' ';')"
  check_eq "lockdep: still validating (debug_locks 1: no splat switched it off)" 1 \
    "$(sed -n 's/^ *debug_locks: *\([0-9]*\).*/\1/p' /proc/lockdep_stats)"
fi

# The positive control, last: its leaks come from its init code, freed after the load, whose
# addresses nft_lua may take at its next load (they would then look like nft_lua's).
echo clear >$K
: >/tmp/kml-ranges # nft_lua is gone: its former addresses prove nothing now
if modprobe kmemleak-test 2>/tmp/kml-modprobe.err; then
  sleep 6
  scan control
  scan control # (vmalloc'd blocks show up a scan later)
  # (its leaks come from its init function, freed after the load: their frames are unnamed)
  check_ge "kmemleak: the positive control (kmemleak-test.ko leaks on purpose) is found" 1 \
    "$(count /tmp/kml-control.all)"
  note "kmemleak: control: $(count /tmp/kml-control.all) record(s): $(count /tmp/kml-control.unnamed) with unnamed frames, $(count /tmp/kml-control.other) named"
else
  note "kmemleak: no positive control: $(cat /tmp/kml-modprobe.err)"
fi
