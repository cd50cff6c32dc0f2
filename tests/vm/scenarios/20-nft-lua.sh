# nft_lua end to end: scripts loaded over the luapkt family (lpctl), rules with the lua
# expression, every verdict, errors resolved by the on-error policy, a trapped instance rebuilt,
# atomic replacement, EBUSY while rules use a script, stats, and the probes of stack and load
# time (printed as "# measure:" notes).
# vm-requires: module lpctl
# vm-engines: wasmi
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "lua: $m loaded" grep -q "^$m " /proc/modules
check "lua: peer namespace" peer_up

cat >/tmp/verdicts.lua <<'EOF'
-- one verdict per UDP port
local seen = 0
function process_packet(pkt)
  local u = pkt.udp
  if not u then return lp.CONTINUE end
  seen = seen + 1
  local p = u.dport
  if p == 5010 then return lp.DROP end
  if p == 5011 then return lp.ACCEPT end
  if p == 5012 then return lp.CONTINUE end
  if p == 5013 then return lp.BREAK end
  if p == 5014 then error("boom on " .. p) end
  if p == 5015 then pcall(function() while true do end end) while true do end end
  if p == 5016 then return lp.QUEUE(3) end
  if p == 5020 then return lp.ACCEPT end
  return lp.CONTINUE
end
-- nested protected calls: each re-enters the engine through the host
local function nest(n)
  if n == 0 then return lp.ACCEPT end
  local ok, v = pcall(nest, n - 1)
  return v
end
function deep(pkt) return nest(7) end
function deepest(pkt) return nest(31) end
function by_arg(pkt, arg)
  if arg == "drop" then return lp.DROP end
  return lp.ACCEPT
end
EOF
sed 's/if p == 5010 then return lp.DROP end/if p == 5010 then return lp.ACCEPT end/' \
  /tmp/verdicts.lua >/tmp/verdicts2.lua

stat_of() { # NAME FIELD: a counter from `lpctl script show` (verdict, error kind, run_cnt...)
  lpctl script show "$1" | grep -E 'run_cnt|errors:' |
    sed -n "s/.*[[:space:]]$2 \([0-9][0-9]*\).*/\1/p" | head -n 1
}
uptime_cs() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }

t0=$(uptime_cs)
check "lua: lpctl script load verdicts (on-error drop, fuel-only budget)" \
  lpctl script load /tmp/verdicts.lua --name verdicts --on-error drop \
  --instructions 0 --fuel 100000
t1=$(uptime_cs)
note "measure: script load (package upload, compile, $(nproc) instances) took $(( (t1 - t0) * 10 )) ms of guest time (TCG)"
check "lua: script listed" sh -c 'lpctl script list | grep -q "^verdicts: tag "'
check_eq "lua: one instance per possible CPU" "$(cat /sys/devices/system/cpu/possible | awk -F- '{print $NF + 1}')" \
  "$(lpctl script show verdicts | sed -n 's/.*instances \([0-9]*\).*/\1/p')"
check "lua: loading the same name again fails (EEXIST)" sh -c '! lpctl script load /tmp/verdicts.lua --name verdicts'
check "lua: a syntax error is refused" sh -c 'echo "function (" >/tmp/bad.lua; ! lpctl script load /tmp/bad.lua --name bad'
check "lua: the refused script is not listed" sh -c '! lpctl script list | grep -q "^bad:"'

nft -f - <<'EOF'
table inet lptest {
  chain input {
    type filter hook input priority filter; policy accept;
  }
  chain output {
    type filter hook output priority filter; policy accept;
  }
}
EOF
check "lua: rule add (udp dport 5010-5019 -> lua script verdicts)" \
  lpctl rule add inet lptest input iifname v0 udp dport 5010-5019 lua script verdicts
nft add rule inet lptest input iifname v0 udp dport 5010-5019 counter comment after
check "lua: lpctl rule list shows the rule" sh -c 'lpctl rule list | grep -q verdicts'
check_eq "lua: refs 1" 1 "$(lpctl script show verdicts | sed -n 's/.*refs \([0-9]*\).*/\1/p')"
check "lua: a rule naming a missing script is refused" \
  sh -c '! lpctl rule add inet lptest input udp dport 6000 lua script nosuch'
check "lua: a rule naming a missing function is refused" \
  sh -c '! lpctl rule add inet lptest input udp dport 6001 lua script verdicts function nosuch'

check_eq "lua: DROP: 0 of 5 datagrams to :5010 delivered" 0 "$(udp_transfer 5 5010 0)"
check_eq "lua: ACCEPT: 5 of 5 to :5011 delivered" 5 "$(udp_transfer 5 5011)"
check_eq "lua: ACCEPT is terminal (rule after the jump saw nothing)" 0 \
  "$(nft_rule_packets inet lptest input after)"
check_eq "lua: CONTINUE: 5 of 5 to :5012 delivered" 5 "$(udp_transfer 5 5012)"
check_eq "lua: CONTINUE went on to the next rule" 5 "$(nft_rule_packets inet lptest input after)"
check_eq "lua: BREAK: 5 of 5 to :5013 delivered" 5 "$(udp_transfer 5 5013)"
check_eq "lua: BREAK went on to the next rule" 10 "$(nft_rule_packets inet lptest input after)"
check_eq "lua: error with on-error drop: 0 of 5 to :5014" 0 "$(udp_transfer 5 5014 0)"
check_eq "lua: QUEUE(3) without a listener drops: 0 of 3 to :5016" 0 "$(udp_transfer 3 5016 0)"

check_eq "lua: stats: drop 10 (5 verdicts + 5 errors)" 10 "$(stat_of verdicts drop)"
check_eq "lua: stats: accept 5" 5 "$(stat_of verdicts accept)"
check_eq "lua: stats: continue 5" 5 "$(stat_of verdicts continue)"
check_eq "lua: stats: break 5" 5 "$(stat_of verdicts break)"
check_eq "lua: stats: queue 3" 3 "$(stat_of verdicts queue)"
check_eq "lua: stats: lua errors 5" 5 "$(stat_of verdicts lua)"
check_eq "lua: stats: run_cnt 28" 28 "$(stat_of verdicts run_cnt)"
check "lua: the error was logged with its message" sh -c 'dmesg | grep -q "script verdicts: .*boom on 5014"'
rt=$(stat_of verdicts run_time_ns)
note "measure: mean run time per packet $((rt / 28)) ns (TCG, includes the guest call; sampled)"
# one call in time_every (16) is timed: with a very large one, a CPU's first call is the only
# one timed, so run_time_ns stays as that call left it. The sender is pinned to CPU 0: the
# veth delivers in the sender's softirq, so every call runs on CPU 0.
check_eq "lua: one call in 16 is timed (time_every)" 16 "$(cat /sys/module/$m/parameters/time_every)"
printf 'function process_packet(p) return lp.ACCEPT end\n' >/tmp/sampled.lua
check "lua: sampled: script loaded" lpctl script load /tmp/sampled.lua --name sampled
echo 1000000 >/sys/module/$m/parameters/time_every
check "lua: sampled: rule added" \
  lpctl rule add inet lptest input iifname v0 udp dport 5099 lua script sampled
send_cpu0() { in_peer taskset 1 sh -c ". /vm/lib.sh; udp_send $1 $VM_HOST_IP 5099"; }
send_cpu0 1
wait_until 30 sh -c "[ \"\$(lpctl script show sampled | sed -n 's/.*run_cnt \([0-9]*\).*/\1/p')\" -ge 1 ]"
rt1=$(stat_of sampled run_time_ns)
send_cpu0 20
wait_until 30 sh -c "[ \"\$(lpctl script show sampled | sed -n 's/.*run_cnt \([0-9]*\).*/\1/p')\" -ge 21 ]"
check_eq "lua: sampled: the calls ran" 21 "$(stat_of sampled run_cnt)"
# Timing reads local_clock(). A boot in which the kernel found the vCPUs' TSCs unsynchronized
# (TCG, now and then) clamps it to the scheduler tick's clock between ticks: a short call then
# reads 0 ns, and only "not timed again" below can be checked.
# (the boot's log is in /run/vm-dmesg.log: /init clears dmesg after each scenario)
if { cat /run/vm-dmesg.log; dmesg; } 2>/dev/null | grep -q "Marking TSC unstable"; then
  note "lua: sampled: the TSC is unstable in this boot: the first call read $rt1 ns"
else
  check "lua: sampled: the first call was timed ($rt1 ns)" test "${rt1:-0}" -gt 0
fi
check_eq "lua: sampled: the next 20 were not (time_every 1000000)" "$rt1" "$(stat_of sampled run_time_ns)"
echo 16 >/sys/module/$m/parameters/time_every

# fuel trap: a loop is first stopped softly (an "out of fuel" Lua error); this one catches that
# and loops on, so the call is cut hard: the instance is poisoned, the packet resolves to the
# policy, a fresh instance is built in process context and later packets run normally
check_eq "lua: fuel trap drops by policy: 0 of 1 to :5015" 0 "$(udp_transfer 1 5015 0)"
check_eq "lua: stats: fuel errors 1" 1 "$(stat_of verdicts fuel)"
check "lua: the trapped instance is rebuilt" wait_until 100 sh -c '[ "$(lpctl script show verdicts | sed -n "s/.*rebuilds \([0-9][0-9]*\).*/\1/p")" -ge 1 ]'
check_eq "lua: after the rebuild ACCEPT still works: 5 of 5 to :5011" 5 "$(udp_transfer 5 5011)"

check "lua: set limits live (fuel max, on-error accept)" \
  lpctl script limits verdicts --fuel max --on-error accept
check_eq "lua: error with on-error accept: 5 of 5 to :5014" 5 "$(udp_transfer 5 5014)"

# replacement: same name, new code; the rule keeps working and now sees the new verdict
check "lua: load --replace" lpctl script load /tmp/verdicts2.lua --name verdicts --replace
check_eq "lua: replaced script accepts :5010: 5 of 5" 5 "$(udp_transfer 5 5010)"
check_eq "lua: refs still 1 after the replacement" 1 "$(lpctl script show verdicts | sed -n 's/.*refs \([0-9]*\).*/\1/p')"

# argument binding: one function, two arguments, two rules
check "lua: rule with function by_arg arg drop" \
  lpctl rule add inet lptest input iifname v0 udp dport 5030 lua script verdicts function by_arg arg drop
check "lua: rule with function by_arg arg pass" \
  lpctl rule add inet lptest input iifname v0 udp dport 5031 lua script verdicts function by_arg arg pass
check_eq "lua: by_arg(drop): 0 of 3 to :5030" 0 "$(udp_transfer 3 5030 0)"
check_eq "lua: by_arg(pass): 3 of 3 to :5031" 3 "$(udp_transfer 3 5031)"

# unloading is refused while rules use the script
lpctl script unload verdicts >/tmp/unload.out 2>&1
rc=$?
check "lua: unload while rules use it fails" test "$rc" -ne 0
check "lua: the error says the script is in use" grep -qi "in use" /tmp/unload.out

# kernel stack used by one call, measured on the task stack (OUTPUT hook, process context)
probe_stack() { # PORT: deepest script-stack use of calls made by 5 datagrams sent to PORT
  echo 0 >/sys/module/$m/parameters/stack_max_bytes
  echo 1 >/sys/module/$m/parameters/stack_probe
  udp_send 5 "$VM_PEER_IP" "$1"
  echo 0 >/sys/module/$m/parameters/stack_probe
  cat /sys/module/$m/parameters/stack_max_bytes
}
# Scripts run on a 96 KiB stack per CPU (never on the task or irq stack): measure what a plain
# call and the deepest nesting allowed (pcall-depth 32) use of it. The measures count only if
# the calls ran to their end: a call cut short (by fuel) never reached its deepest frame.
if [ -w /sys/module/$m/parameters/stack_probe ]; then
  lpctl rule add inet lptest output udp dport 5020 lua script verdicts >/dev/null 2>&1
  lpctl rule add inet lptest output udp dport 5021 lua script verdicts function deep >/dev/null 2>&1
  lpctl rule add inet lptest output udp dport 5022 lua script verdicts function deepest >/dev/null 2>&1
  errs0=$(lpctl script show verdicts | grep 'errors:')
  depth=$(probe_stack 5020)
  note "measure: script stack used by one call: $depth bytes"
  check_ge "lua: stack probe saw the call" 1 "$depth"
  check "lua: one call uses less than 4 KiB of stack" test "$depth" -lt 4096
  deep=$(probe_stack 5021)
  note "measure: script stack used by a call nesting 7 pcalls: $deep bytes"
  lpctl script limits verdicts --pcall-depth 32 >/dev/null
  deepest=$(probe_stack 5022)
  note "measure: script stack used by a call nesting 31 pcalls (pcall-depth 32, the maximum): $deepest bytes of 98304"
  check_eq "lua: the probed calls ran to their end (no error of any kind)" "$errs0" \
    "$(lpctl script show verdicts | grep 'errors:')"
  check_ge "lua: the deepest nesting costs the stack of 24 more levels than 7 (1 KiB each at least)" \
    $((deep + 24 * 1024)) "$deepest"
  check "lua: the deepest nesting allowed leaves 16 KiB of the script stack for interrupts" \
    test "$deepest" -lt $((98304 - 16384))
fi

# cost of a call on this (emulated) CPU: an accept-everything script and a field filter
cat >/tmp/fast.lua <<'EOF2'
function process_packet(pkt) return lp.ACCEPT end
EOF2
cat >/tmp/filter.lua <<'EOF2'
function process_packet(pkt)
  local u = pkt.udp
  if pkt.ip and u and u.dport == 5041 and pkt.ip.ttl > 1 then return lp.ACCEPT end
  return lp.DROP
end
EOF2
lpctl script load /tmp/fast.lua --name fast >/dev/null
lpctl script load /tmp/filter.lua --name filter >/dev/null
lpctl rule add inet lptest input iifname v0 udp dport 5040 lua script fast >/dev/null
lpctl rule add inet lptest input iifname v0 udp dport 5041 lua script filter >/dev/null
check_eq "lua: fast script: 200 of 200 to :5040" 200 "$(udp_transfer 200 5040)"
check_eq "lua: filter script: 200 of 200 to :5041" 200 "$(udp_transfer 200 5041)"
for s in fast filter; do
  n=$(stat_of $s run_cnt); t=$(lpctl script show $s | sed -n 's/.*run_time_ns \([0-9][0-9]*\).*/\1/p')
  fuel=$(lpctl script show $s | sed -n 's/.*fuel: total \([0-9][0-9]*\).*/\1/p')
  note "measure: $s: $n calls, mean $((t / n)) ns and $((fuel / n)) fuel per call (softirq, TCG)"
done

# replacing a script while packets flow through it: each packet sees the old or the new one,
# so every datagram of the flood is accepted: delivered, or dropped by the receiving socket
# (counted in RcvbufErrors), never dropped for want of a script
check "lua: rmmod refused while rules use the expression" sh -c "! rmmod $m 2>/dev/null"
rcvbuf_errors() { awk '/^Udp: [0-9]/ {print $6}' /proc/net/snmp; }
: >/tmp/flood.out
socat -u UDP-RECV:5040 - >/tmp/flood.out &
rx=$!
wait_until 50 udp_bound 5040
errs0=$(rcvbuf_errors)
in_peer sh -c ". /vm/lib.sh; udp_send 3000 $VM_HOST_IP 5040" &
flood=$!
for i in 1 2 3; do
  lpctl script load /tmp/fast.lua --name fast --replace >/dev/null || fail "lua: replace $i under traffic" "load failed"
done
wait "$flood"
wait_until 30 _lines_ge /tmp/flood.out 3000
sleep 0.2
kill "$rx" 2>/dev/null; wait "$rx" 2>/dev/null
delivered=$(wc -l </tmp/flood.out | tr -d ' ')
lost=$(( $(rcvbuf_errors) - errs0 ))
note "replace under traffic: $delivered delivered, $lost dropped by the receiving socket"
check_eq "lua: 3000 datagrams through three replacements, each with a verdict" 3000 "$((delivered + lost))"
check_eq "lua: the replaced script serves: 50 of 50 to :5040" 50 "$(udp_transfer 50 5040)"
check_ge "lua: the replaced script counted them" 50 "$(stat_of fast run_cnt)"
check_eq "lua: no lua errors or traps across the replacements" "0 0" \
  "$(stat_of fast lua) $(stat_of fast trap)"

# unload is refused while a rule is bound and allowed after `lpctl rule delete`
lpctl script load /tmp/fast.lua --name tmpdel >/dev/null
check "lua: rule add for tmpdel" lpctl rule add inet lptest input udp dport 5050 lua script tmpdel
check "lua: unload tmpdel refused while bound" sh -c '! lpctl script unload tmpdel 2>/dev/null'
h=$(nft -a list chain inet lptest input | sed -n 's/.*jump lua-tmpdel # handle \([0-9]*\).*/\1/p')
check "lua: lpctl rule delete (handle $h)" lpctl rule delete inet lptest input handle "$h"
check "lua: its lua-tmpdel chain went with it" sh -c '! nft list chain inet lptest lua-tmpdel 2>/dev/null'
check "lua: unload tmpdel once unbound" lpctl script unload tmpdel

# CAP_NET_ADMIN over the network namespace is required: a process in a user namespace of its
# own (root there, nobody here) can neither list nor load scripts of this namespace
check "lua: without CAP_NET_ADMIN over the netns, list is refused" \
  sh -c 'unshare -U -r lpctl script list 2>/tmp/uns.err; test $? -ne 0 && grep -qi "not permitted" /tmp/uns.err'
check "lua: without CAP_NET_ADMIN over the netns, load is refused" \
  sh -c '! unshare -U -r lpctl script load /tmp/fast.lua --name intruder 2>/dev/null'
check "lua: the refused load left nothing behind" sh -c '! lpctl script list | grep -q "^intruder:"'
check "lua: unprivileged user as nobody is refused too" sh -c '! unshare -U lpctl script list 2>/dev/null'
check_eq "lua: a user namespace with its own netns may use its own (empty) registry" "" \
  "$(unshare -U -r -n lpctl script list 2>&1)"

# namespaces: the peer sees none of these scripts, and its own stay its own
check_eq "lua: another netns lists no script" "" "$(in_peer lpctl script list 2>&1)"
check "lua: load a script in the peer netns" in_peer lpctl script load /tmp/fast.lua --name peeronly
check "lua: the root netns does not see it" sh -c '! lpctl script list | grep -q "^peeronly:"'

nft delete table inet lptest
check "lua: unload once the rules are gone" wait_until 50 lpctl script unload verdicts
check "lua: verdicts no longer listed after unload" sh -c '! lpctl script list | grep -q "^verdicts:"'
# fast and filter stay loaded (no rule uses them now): rmmod frees them with the netns state
# the peer netns goes away with its script loaded, then the module with two scripts loaded
check_no_atomic_load_allocs lua
peer_down
check "lua: rmmod $m with scripts loaded" rmmod "$m"
