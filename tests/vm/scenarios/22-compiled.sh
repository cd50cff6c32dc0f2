# The compiled engine in the kernel (the built-in guest translated by wasm2c into nft_lua.ko,
# the module's default): chosen per script at load and shown, refused for another guest when
# named and given way to wasmi when it is only the default, and the wasm checks that keep it a
# sandbox hit for real on packets: fuel (an endless loop), native stack (C recursion through
# metamethods, measured on the script stack), linear memory (a memory bomb), a trap rebuilt.
# Every other scenario runs on it too; those marked "# vm-engines: wasmi" once more on wasmi.
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "compiled: $m loaded" grep -q "^$m " /proc/modules
D=/vm/data
stat_of() { # NAME FIELD: a number from `lpctl -j script show`
  lpctl -j script show "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -n 1
}

cat >/tmp/c.lua <<'LUA'
-- a verdict per port; the hostile ones hit a wasm check each
local mt = {}
mt.__index = function(t, k) return setmetatable({}, mt)[k] end
local hog = {}
function process_packet(p)
  local u = p.udp
  if not u then return lp.CONTINUE end
  local d = u.dport
  if d == 7001 then return lp.DROP end
  if d == 7002 then return lp.ACCEPT end
  -- an endless loop: the soft stop (a Lua error) is caught and the loop goes on: cut hard
  if d == 7003 then pcall(function() while true do end end) while true do end end
  if d == 7004 then
    -- C recursion: every level re-enters the VM through a C call (Lua stops it at 200)
    local ok = pcall(function() return setmetatable({}, mt).x end)
    return ok and lp.DROP or lp.ACCEPT
  end
  if d == 7005 then hog[#hog + 1] = string.rep("m", 8 << 20) end -- more than linear memory
  if d == 7006 then error("thrown on " .. d) end
  return lp.CONTINUE
end
LUA
check "compiled: load --engine compiled" \
  lpctl script load /tmp/c.lua --name c --engine compiled --on-error accept --fuel max --instructions 0
check "compiled: script show names the engine" sh -c 'lpctl script show c | grep -q "engine compiled"'
check "compiled: ... and its JSON" sh -c 'lpctl -j script show c | grep -q "\"engine\":\"compiled\""'
check "compiled: load --engine wasmi" lpctl script load /tmp/c.lua --name w --engine wasmi
check "compiled: ... shown as wasmi" sh -c 'lpctl script show w | grep -q "engine wasmi"'
check "compiled: an unknown engine is refused by lpctl" \
  sh -c '! lpctl script load /tmp/c.lua --name x --engine jit 2>/tmp/err && grep -q "engine jit" /tmp/err'
check "compiled: another guest named onto the compiled engine is refused (ENOEXEC)" \
  sh -c "! lpctl script load $D/foreign.lpk --name f --engine compiled 2>/tmp/err && grep -q 'os error 8)' /tmp/err"
check_eq "compiled: the module's default engine is compiled (2)" 2 \
  "$(cat /sys/module/$m/parameters/default_engine)"
was=$(cat /sys/module/$m/parameters/default_engine)
echo 2 >/sys/module/$m/parameters/default_engine
check "compiled: default_engine=2: another guest runs on wasmi" \
  sh -c "lpctl script load $D/foreign.lpk --name f && lpctl script show f | grep -q 'engine wasmi'"
check "compiled: default_engine=2: the built-in guest runs compiled" \
  sh -c 'lpctl script load /tmp/c.lua --name d && lpctl script show d | grep -q "engine compiled"'
echo 1 >/sys/module/$m/parameters/default_engine
check "compiled: default_engine=1: the built-in guest runs on wasmi" \
  sh -c 'lpctl script load /tmp/c.lua --name d1 && lpctl script show d1 | grep -q "engine wasmi"'
check "compiled: default_engine refuses 3" sh -c "! echo 3 >/sys/module/$m/parameters/default_engine"
echo "$was" >/sys/module/$m/parameters/default_engine
lpctl script unload f; lpctl script unload d; lpctl script unload d1; lpctl script unload w

check "compiled: top-level infinite loop refused by its load fuel (ETIME)" \
  sh -c "printf 'while true do end\n' >/tmp/spin.lua; ! lpctl script load /tmp/spin.lua --name spin --engine compiled --load-fuel 200000000 2>/tmp/err && grep -q 'os error 62)' /tmp/err"
check "compiled: top-level memory bomb refused (ENOMEM)" \
  sh -c "printf 'local t = {} while true do t[#t + 1] = string.rep(\"x\", 4096) .. #t end\n' >/tmp/bomb.lua; ! lpctl script load /tmp/bomb.lua --name bomb --engine compiled 2>/tmp/err && grep -q 'os error 12)' /tmp/err"
lpctl script load /tmp/spin.lua --name killed --engine compiled --load-fuel 10000000000 >/dev/null 2>&1 &
kp=$!
sleep 2
kill -9 $kp 2>/dev/null
wait $kp 2>/dev/null
check "compiled: a load killed mid-way leaves nothing" sh -c '! lpctl script list | grep -q "^killed:"'

check "compiled: peer namespace" peer_up
nft -f - <<'NFT'
table inet lpcomp {
  chain input {
    type filter hook input priority filter; policy accept;
  }
}
NFT
check "compiled: rule add (udp dport 7001-7006 -> lua script c)" \
  lpctl rule add inet lpcomp input iifname v0 udp dport 7001-7006 lua script c
check_eq "compiled: drop verdict (7001): nothing arrives" 0 "$(udp_transfer 5 7001)"
check_eq "compiled: accept verdict (7002): all arrive" 5 "$(udp_transfer 5 7002)"
check_eq "compiled: an endless loop per packet is cut by fuel (a trap), policy accept" 5 "$(udp_transfer 5 7003)"
check_ge "compiled: ... counted as fuel errors" 1 "$(stat_of c err_fuel)"
wait_until 100 sh -c "lpctl -j script show c | grep -q '\"rebuilds\":[1-9]'"
check_ge "compiled: ... the trapped instance is rebuilt" 1 "$(stat_of c rebuilds)"
if [ -w /sys/module/$m/parameters/stack_probe ]; then
  echo 0 >/sys/module/$m/parameters/stack_max_bytes
  echo 1 >/sys/module/$m/parameters/stack_probe
fi
r=$(udp_transfer 3 7004)
if [ -w /sys/module/$m/parameters/stack_probe ]; then
  echo 0 >/sys/module/$m/parameters/stack_probe
  s=$(cat /sys/module/$m/parameters/stack_max_bytes)
  note "measure: C recursion to Lua's limit on the compiled engine used $s bytes of the 98304-byte script stack"
  check "compiled: ... and stays 16 KiB clear of the script stack's end" test "$s" -lt $((98304 - 16384))
fi
check_eq "compiled: C recursion ends in Lua's error (caught) or a stack error, not a crash" 3 "$r"
check_eq "compiled: an allocation past linear memory ends in the policy (accept)" 2 "$(udp_transfer 2 7005)"
check_ge "compiled: ... counted as memory errors" 1 "$(stat_of c err_memory)"
check_eq "compiled: a Lua error resolves to the policy (accept)" 3 "$(udp_transfer 3 7006)"
check_ge "compiled: ... counted as a Lua error" 1 "$(stat_of c err_lua)"
check_eq "compiled: after all that, verdicts still apply (drop)" 0 "$(udp_transfer 3 7001)"
check_no_atomic_load_allocs "compiled"
nft delete table inet lpcomp
check "compiled: unload" lpctl script unload c
