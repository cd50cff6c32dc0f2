# lp.timer in the kernel (issue 11): a packet's call hands a function over to run later, in a
# kworker on the CPU that armed it; it sends to a real peer after its delay. Errors and a
# runaway loop inside a timer are logged and counted and the script goes on; the pool's cap
# refuses the 65th pending timer; unloading with 64 timers pending an hour returns at once and
# leaks nothing; a replacement cancels the old version's timers (nothing it armed is sent); a
# storm of timers arming timers is held to the script's timer rate.
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "timers: $m loaded" grep -q "^$m " /proc/modules
check "timers: peer namespace" peer_up


cat >/tmp/later.lua <<'EOF2'
-- UDP to 7010: "later <data>" to the sender's port 7110, 300 ms later, from a timer.
-- 7011: a timer that fails; 7012: one that loops until its fuel is gone; 7013: 70 timers of
-- an hour (the pool holds 64).
function process_packet(pkt)
  local u = pkt.udp
  if not u then return lp.CONTINUE end
  local me, peer, data = pkt.ip.daddr, pkt.ip.saddr, tostring(u.payload)
  if u.dport == 7010 then
    assert(lp.timer(300, function()
      assert(lp.send(lp.packet.udp{src = me, dst = peer, sport = 7010, dport = 7110,
                                   payload = "later " .. data}))
    end))
  elseif u.dport == 7011 then
    assert(lp.timer(10, function() error("boom in a timer") end))
  elseif u.dport == 7012 then
    assert(lp.timer(10, function() while true do end end))
  elseif u.dport == 7013 then
    local function hour() end
    for i = 1, 70 do
      local ok, why = lp.timer(3600000, hour)
      if not ok then lp.log(i .. ": " .. why) break end
    end
  end
  return lp.DROP
end
EOF2
check "timers: a script with timers loads" lpctl script load /tmp/later.lua --name later --fuel max
nft add table inet tm
nft add chain inet tm pre '{ type filter hook prerouting priority 0; policy accept; }'
check "timers: lua rule at prerouting" lpctl rule add inet tm pre iifname v0 udp dport 7010-7013 lua script later

: >/tmp/later.out
in_peer socat -u UDP-RECV:7110 - >/tmp/later.out &
rx=$!
wait_until 50 in_peer sh -c ". /vm/lib.sh; udp_bound 7110"
t0=$(uptime_ms)
in_peer sh -c "printf 'hello\n' | socat -u - UDP-SENDTO:$VM_HOST_IP:7010"
wait_until 50 _lines_ge /tmp/later.out 1
t1=$(uptime_ms)
check_eq "timers: the peer gets what the timer sent" "later hello" "$(head -n 1 /tmp/later.out)"
note "timers: sent by a 300 ms timer, received $((t1 - t0)) ms after the request"
check "timers: ... not before its delay" test $((t1 - t0)) -ge 290
check_eq "timers: counted: runs 1, pending 0, errors 0" "1 0 0" "$(script_stat later timer_runs) $(script_stat later timers_pending) $(script_stat later timer_errors)"
check_eq "timers: ... its packet among the script's sends" 1 "$(script_stat later sent_packets)"

in_peer sh -c "printf 'x\n' | socat -u - UDP-SENDTO:$VM_HOST_IP:7011"
wait_until 50 sh -c '[ "$(lpctl -j script show later | grep -o "\"timer_errors\":[0-9]*")" = "\"timer_errors\":1" ]'
check "timers: an error in a timer is logged" sh -c 'lpctl log later | grep -q "boom in a timer"'
in_peer sh -c "printf 'x\n' | socat -u - UDP-SENDTO:$VM_HOST_IP:7012"
wait_until 50 sh -c '[ "$(lpctl -j script show later | grep -o "\"timer_errors\":[0-9]*")" = "\"timer_errors\":2" ]'
check_eq "timers: a runaway timer stops at its fuel: errors 2, one of them fuel" "2 1" "$(script_stat later timer_errors) $(script_stat later err_fuel)"
in_peer sh -c "printf 'again\n' | socat -u - UDP-SENDTO:$VM_HOST_IP:7010"
wait_until 50 _lines_ge /tmp/later.out 2
check_eq "timers: ... and the script goes on" "later again" "$(sed -n 2p /tmp/later.out)"
kill "$rx" 2>/dev/null
wait "$rx" 2>/dev/null

in_peer sh -c "printf 'x\n' | socat -u - UDP-SENDTO:$VM_HOST_IP:7013"
wait_until 50 sh -c 'lpctl log later | grep -q "65: too many timers pending"'
check "timers: the 65th pending timer is refused, an error value" sh -c 'lpctl log later | grep -q "65: too many timers pending"'
check_eq "timers: ... 64 pending, 1 dropped" "64 1" "$(script_stat later timers_pending) $(script_stat later timers_dropped)"
check "timers: script show has the line" sh -c 'lpctl script show later | grep -q "timers: pending 64  runs 4  errors 2  dropped 1"'
t0=$(uptime_ms)
nft delete table inet tm
check "timers: unload with 64 timers pending an hour" lpctl script unload later
t1=$(uptime_ms)
note "timers: unloaded in $((t1 - t0)) ms"
check "timers: ... at once" test $((t1 - t0)) -lt 5000

# a replacement cancels the old version's timers: nothing the old one armed is sent
cat >/tmp/old.lua <<'EOF2'
function process_packet(pkt)
  local me, peer = pkt.ip.daddr, pkt.ip.saddr
  assert(lp.timer(5000, function()
    lp.send(lp.packet.udp{src = me, dst = peer, sport = 7014, dport = 7114, payload = "old\n"})
  end))
  return lp.DROP
end
EOF2
cat >/tmp/new.lua <<'EOF2'
function process_packet(pkt) return lp.DROP end
EOF2
check "timers: the old version loads" lpctl script load /tmp/old.lua --name rep
nft add table inet tm
nft add chain inet tm pre '{ type filter hook prerouting priority 0; policy accept; }'
check "timers: lua rule" lpctl rule add inet tm pre iifname v0 udp dport 7014 lua script rep
: >/tmp/old.out
in_peer socat -u UDP-RECV:7114 - >/tmp/old.out &
rx=$!
wait_until 50 in_peer sh -c ". /vm/lib.sh; udp_bound 7114"
in_peer sh -c "printf 'x\n' | socat -u - UDP-SENDTO:$VM_HOST_IP:7014"
wait_until 30 sh -c '[ "$(lpctl -j script show rep | grep -o "\"timers_pending\":[0-9]*")" = "\"timers_pending\":1" ]'
# (5 s: a replacement builds every instance first, which takes a while under emulation; the
# old version's timer, armed before it, is due within 5 s of its end)
t0=$(uptime_ms)
check "timers: replaced while its timer is pending" lpctl script load /tmp/new.lua --name rep --replace
note "timers: the replacement took $(($(uptime_ms) - t0)) ms"
sleep 5.2
kill "$rx" 2>/dev/null
wait "$rx" 2>/dev/null
check_eq "timers: ... the old version's timer never sent" 0 "$(wc -l </tmp/old.out | tr -d ' ')"
check_eq "timers: ... the new version has none" "0 0" "$(script_stat rep timers_pending) $(script_stat rep timer_runs)"

nft delete table inet tm
lpctl script unload rep

# a storm: every timer arms two more at once; the rate (100 a second after a burst of 100)
# bounds what runs, the rest is refused and counted, and the script unloads at once
cat >/tmp/storm.lua <<'EOF2'
local function again()
  for i = 1, 2 do
    local id, why = lp.timer(0, again)
    if not id then lp.log("refused: " .. why) end
  end
end
function process_packet(pkt)
  again()
  return lp.DROP
end
EOF2
check "timers: a timer storm script loads" lpctl script load /tmp/storm.lua --name storm
nft add table inet tms
nft add chain inet tms pre '{ type filter hook prerouting priority 0; policy accept; }'
check "timers: its rule" lpctl rule add inet tms pre iifname v0 udp dport 7015 lua script storm
t0=$(uptime_ms)
in_peer sh -c "printf 'x\n' | socat -u - UDP-SENDTO:$VM_HOST_IP:7015"
sleep 3
runs=$(script_stat storm timer_runs)
dropped=$(script_stat storm timers_dropped)
t1=$(uptime_ms)
note "measure: a timer storm ran $runs timers and refused $dropped in $((t1 - t0)) ms"
check_ge "timers: the storm ran (at least the burst of 100)" 100 "$runs"
check "timers: ... no more than the rate allows (100 + 100 a second, +100 in flight)" \
  test "$runs" -le $(( 100 + (t1 - t0) / 10 + 100 ))
check_ge "timers: ... the rest refused and counted" 100 "$dropped"
check "timers: ... each refusal an error value naming the rate" \
  sh -c 'lpctl log storm | grep -q "refused: over the script.s timer rate"'
t0=$(uptime_ms)
nft delete table inet tms
check "timers: the storm's script unloads" lpctl script unload storm
t1=$(uptime_ms)
check "timers: ... at once" test $((t1 - t0)) -lt 5000
check "timers: scripts unloaded" sh -c '[ -z "$(lpctl script list)" ]'
peer_down
check "timers: no warnings, no leaks reported" sh -c '! dmesg | grep -E "WARNING|BUG|leak"'
