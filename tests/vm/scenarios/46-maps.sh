# lp.map in the kernel (issue 11): one map shared by a script's instances on every CPU (a
# budget of 10 datagrams holds across two CPUs, where each instance's own globals count
# separately), kept across a replacement; declarations refused with a clear error (sizes, late,
# redeclared with another shape, over the 64 MiB a script may have); a hash map full; maps in
# the script's figures and the namespace's script memory cap; payload views as values (one past
# value_size, one kept from an earlier call).
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "maps: $m loaded" grep -q "^$m " /proc/modules
check "maps: peer namespace" peer_up
check "maps: two CPUs" test "$(nproc)" -ge 2

cat >/tmp/budget.lua <<'EOF'
local seen = lp.map{name = "seen", key_size = 8, max_entries = 16}
local names = lp.map{name = "names", value = "bytes", value_size = 16, max_entries = 4}
local mine = 0 -- this instance's own (one per CPU)
function process_packet(pkt)
  local u = pkt.udp
  if not u or u.dport ~= 7101 then return lp.CONTINUE end
  names:set("last", pkt.ip.saddr)
  mine = mine + 1
  local n = seen:add("udp", 1)
  lp.log("mine " .. mine .. " total " .. n)
  if n > 10 then return lp.DROP end
  return lp.ACCEPT
end
EOF
check "maps: a script with a map loads" lpctl script load /tmp/budget.lua --name budget
nft add table inet mp
nft add chain inet mp in '{ type filter hook input priority 0; policy accept; }'
check "maps: lua rule" lpctl rule add inet mp in iifname v0 udp dport 7101 lua script budget

# 10 datagrams sent from each of two CPUs (the veth's receive path runs on the sender's CPU)
: >/tmp/budget.out
socat -u UDP-RECV:7101 - >/tmp/budget.out &
rx=$!
wait_until 50 udp_bound 7101
in_peer taskset 1 sh -c ". /vm/lib.sh; udp_send 10 $VM_HOST_IP 7101"
in_peer taskset 2 sh -c ". /vm/lib.sh; udp_send 10 $VM_HOST_IP 7101"
sleep 1
kill "$rx" 2>/dev/null
wait "$rx" 2>/dev/null
check_eq "maps: 10 of the 20 pass: the budget is the map's, not a CPU's" 10 "$(wc -l </tmp/budget.out | tr -d ' ')"
log=$(lpctl log budget)
total=$(echo "$log" | sed -n 's/.*mine [0-9]* total \([0-9]*\)$/\1/p' | sort -n | tail -n 1)
mine=$(echo "$log" | sed -n 's/.*mine \([0-9]*\) total.*/\1/p' | sort -n | tail -n 1)
note "maps: the map counted $total, the busiest instance $mine"
check_eq "maps: the map counted all 20" 20 "$total"
check "maps: ... while each instance counted fewer (two CPUs ran the script)" test "${mine:-20}" -lt 20

# lpctl map: the kernel's maps from userspace
check "maps: lpctl map list" sh -c 'lpctl map list budget | grep -q "^seen: hash  value number  key_size 8  value_size 256  entries 1 of 16$"'
check "maps: ... both maps" sh -c 'lpctl map list budget | grep -q "^names: hash  value bytes  key_size 64  value_size 16  entries 1 of 4$"'
check_eq "maps: lpctl map get" 20 "$(lpctl map get budget seen udp)"
check_eq "maps: ... a bytes map" "$VM_PEER_IP" "$(lpctl map get budget names last)"
check "maps: lpctl map dump" sh -c 'lpctl map dump budget seen | grep -qx "udp 20"'
check "maps: -j dump" sh -c 'lpctl -j map dump budget seen | grep -q "{\"entry\":{\"key\":\"udp\",\"value\":20}}"'
check "maps: --hex shows the key in hex" sh -c 'lpctl map dump budget seen --hex | grep -qx "0x756470 20"'
check "maps: lpctl map set" lpctl map set budget seen udp 9
check_eq "maps: ... the script sees it: one more passes, then the budget holds" 1 "$(udp_transfer 3 7101 1)"
check_eq "maps: ... and counts on from it" 12 "$(lpctl map get budget seen udp)"
check "maps: set a bytes value in hex" lpctl map set budget names 6b 6869 --hex
check_eq "maps: ... read back as text" hi "$(lpctl map get budget names k)"
check_eq "maps: ... or in hex" 0x6869 "$(lpctl map get budget names 6b --hex)"
check "maps: delete" lpctl map delete budget names k
check "maps: ... then get fails: no such key" sh -c '! lpctl map get budget names k 2>/tmp/mg.err && grep -q "no such key" /tmp/mg.err'
check "maps: delete of an absent key fails" sh -c '! lpctl map delete budget names k 2>/dev/null'
check "maps: a number map refuses text" sh -c 'lpctl map set budget seen udp many 2>&1 | grep -q "holds numbers"'
check "maps: a key longer than key_size is refused" sh -c '! lpctl map set budget seen 123456789 1 2>/dev/null'
check "maps: a value longer than value_size is refused" sh -c '! lpctl map set budget names k 01234567890123456 2>/dev/null'
check "maps: an unknown map" sh -c 'lpctl map get budget nosuch x 2>&1 | grep -q "has no map nosuch"'
check "maps: an unknown script" sh -c '! lpctl map list nosuch 2>/dev/null'
lpctl map set budget seen udp 20

# a replacement keeps the map
sed 's/n > 10/n > 30/' /tmp/budget.lua >/tmp/budget2.lua
check "maps: replace the script (the same map)" lpctl script load /tmp/budget2.lua --name budget --replace
udp_transfer 1 7101 >/dev/null
check "maps: the replacement counts on from 20" sh -c 'lpctl log budget | tail -n 1 | grep -q "total 21$"'

# declarations the kernel refuses, each a load error naming the map (6.1's netlink errors are
# fixed strings: its kernel log has the message)
refused() { # LABEL WANT FILE NAME [lpctl options...]
  _l=$1 _w=$2 _f=$3 _n=$4
  shift 4
  if lpctl script load "$_f" --name "$_n" "$@" >/tmp/bad.out 2>&1; then _rc=0; else _rc=1; fi
  check "maps: refused: $_l" sh -c "[ $_rc -ne 0 ] &&
    { cat /tmp/bad.out; dmesg | grep 'script $_n not loaded'; } | grep -q '$_w'"
}
nbad=0
bad() { # LABEL WANT DECLARATION
  nbad=$((nbad + 1))
  printf 'local m = %s\nfunction process_packet(pkt) return lp.ACCEPT end\n' "$3" >/tmp/bad.lua
  refused "$1" "$2" /tmp/bad.lua "badmap$nbad"
}
bad "key_size 1000" "key_size must be an integer" 'lp.map{name = "k", key_size = 1000, max_entries = 4}'
bad "no max_entries" "max_entries is required" 'lp.map{name = "k"}'
bad "a name with a space" "invalid declaration" 'lp.map{name = "a b", max_entries = 4}'
bad "4 GiB of values" "invalid declaration" 'lp.map{name = "huge", value = "bytes", value_size = 4096, max_entries = 1048576}'
printf 'local t = {}\nfor i = 1, 17 do t[i] = lp.map{name = "m" .. i, max_entries = 4} end\nfunction process_packet(pkt) return lp.ACCEPT end\n' >/tmp/many.lua
refused "a 17th map" "too many maps" /tmp/many.lua many
printf 'local a = lp.map{name = "x", max_entries = 4}\nlocal b = lp.map{name = "x", max_entries = 8}\nfunction process_packet(pkt) return lp.ACCEPT end\n' >/tmp/redecl.lua
refused "a name declared twice with other shapes" "exists with another declaration" /tmp/redecl.lua redecl
sed 's/key_size = 8, max_entries = 16/key_size = 8, max_entries = 32/' /tmp/budget.lua >/tmp/budget3.lua
refused "a replacement that changes a map's shape" "exists with another declaration" \
  /tmp/budget3.lua budget --replace
check "maps: ... and the script runs on" sh -c 'lpctl script show budget | grep -q "^budget: "'
check "maps: nothing half-loaded" sh -c '! lpctl script list | grep -qE "^(badmap[0-9]|many|redecl):"'

# a large map (~43 MB), declared and freed with its script
printf 'local big = lp.map{name = "big", value = "bytes", value_size = 2000, max_entries = 16384}\nfunction process_packet(pkt) return lp.ACCEPT end\n' >/tmp/big.lua
check "maps: a 43 MB map loads" lpctl script load /tmp/big.lua --name big
mb=$(script_stat big map_bytes)
note "measure: a map of 16384 2000-byte values takes $mb bytes"
check_ge "maps: ... and the script's figures count it (map_bytes)" 32768000 "$mb"
check "maps: ... shown in its text too" sh -c "lpctl script show big | grep -q '  maps $((mb / 1024))K'"
printf 'function process_packet(pkt) return lp.ACCEPT end\n' >/tmp/nomap.lua
lpctl script load /tmp/nomap.lua --name nomap >/dev/null
check_eq "maps: a script without maps shows none" 0 "$(script_stat nomap map_bytes)"
lpctl script unload nomap
# the namespace's script memory cap counts maps: a replacement keeps its maps (counted once);
# raising a limit past the cap with them is refused; a new map past it fails the load
echo $(( (mb >> 20) + 24 )) >/sys/module/$m/parameters/max_netns_mbytes
check "maps: under a cap just above, the script is replaced (its map kept, counted once)" \
  lpctl script load /tmp/big.lua --name big --replace
check "maps: ... and raising its memory past the cap with the map is refused (ENOSPC)" \
  sh -c "! lpctl script limits big --memory 16M 2>/tmp/err && grep -q 'os error 28)' /tmp/err"
check "maps: ... and unloads" lpctl script unload big
echo 16 >/sys/module/$m/parameters/max_netns_mbytes
refused "a map past the namespace's script memory cap (max_netns_mbytes=16)" \
  "past its script memory cap" /tmp/big.lua big
check "maps: ... and nothing of it is left" sh -c '! lpctl script list | grep -q "^big:"'
echo 1024 >/sys/module/$m/parameters/max_netns_mbytes

# a hash map full: a Lua error in the call, counted
cat >/tmp/full.lua <<'EOF'
local m = lp.map{name = "small", max_entries = 4}
local i = 0
function process_packet(pkt)
  i = i + 1
  m:set("k" .. i, i)
  return lp.ACCEPT
end
EOF
check "maps: small map script" lpctl script load /tmp/full.lua --name full
check "maps: its rule" lpctl rule add inet mp in iifname v0 udp dport 7102 lua script full
udp_transfer 10 7102 >/dev/null
check "maps: past 4 entries each insert fails with map full" \
  sh -c 'lpctl log full --level warn | grep -q "lp.map small: map full"'

# payload views as values, hostile: one past value_size, one kept from an earlier call
cat >/tmp/views.lua <<'EOF'
local v = lp.map{name = "v", value = "bytes", value_size = 16, max_entries = 4}
local kept
function process_packet(pkt)
  local pl = pkt.udp.payload
  if #pl > 16 then v:set("big", pl) end -- past value_size: a Lua error
  if kept then
    local ok, e = pcall(v.set, v, "stale", kept)
    lp.log("stale view: " .. tostring(ok) .. " " .. tostring(e))
  end
  kept = pl
  v:set("small", pl)
  return lp.ACCEPT
end
EOF
check "maps: views script" lpctl script load /tmp/views.lua --name views
check "maps: its rule" lpctl rule add inet mp in iifname v0 udp dport 7103 lua script views
in_peer taskset 1 sh -c ". /vm/lib.sh; udp_send 2 $VM_HOST_IP 7103"
in_peer taskset 1 sh -c "head -c 100 /dev/zero | tr '\\0' x | socat -u - UDP-SENDTO:$VM_HOST_IP:7103"
wait_until 50 sh -c 'lpctl log views --level warn | grep -q "value longer"'
check_eq "maps: a payload view is stored as its bytes" 0x303030303030310a \
  "$(lpctl map get views v 736d616c6c --hex)"
check "maps: a view kept from an earlier call is refused, not read" \
  sh -c 'lpctl log views | grep -q "stale view: false .*packet used outside of its call"'
check "maps: ... and nothing is stored for it" sh -c '! lpctl map get views v stale 2>/dev/null'
check "maps: a view longer than value_size is a Lua error" \
  sh -c "lpctl log views --level warn | grep -q \"lp.map v: value longer than the map's value_size\""
check "maps: ... and nothing is stored for it" sh -c '! lpctl map get views v big 2>/dev/null'
check_ge "maps: ... counted as a Lua error" 1 "$(script_stat views err_lua)"

check "maps: cleanup" sh -c 'nft delete table inet mp && lpctl script unload budget && lpctl script unload full && lpctl script unload views'
