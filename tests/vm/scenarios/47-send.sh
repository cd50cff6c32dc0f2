# lp.send and lp.reply in the kernel (issue 11): a UDP answer, ICMP echo replies and a TCP reset
# made by scripts reach a real peer (UDP and echo replies over IPv6 too); the call's packet cap and the script's rate refuse what is
# over them (counted, an error value to the script); an unroutable send, a malformed packet, and
# a send from a packet a script sent (which would loop) each fail cleanly and are counted.
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "send: $m loaded" grep -q "^$m " /proc/modules
check "send: peer namespace" peer_up


cat >/tmp/answer.lua <<'EOF'
-- UDP to 7000: "pong <data>"; ICMP (v4, v6) echo requests: a reply; TCP to 7001: a reset. The packets
-- themselves go no further.
function process_packet(pkt)
  local ok, why
  if pkt.udp and pkt.udp.dport == 7000 then
    ok, why = lp.reply("pong " .. tostring(pkt.udp.payload))
  elseif (pkt.icmp and pkt.icmp.type == 8) or (pkt.icmp6 and pkt.icmp6.type == 128) then
    ok, why = lp.reply()
  elseif pkt.tcp and pkt.tcp.dport == 7001 and pkt.tcp.syn then
    ok, why = lp.reply(nil, {flags = "RA"})
  else
    return lp.CONTINUE
  end
  if not ok then lp.log("not sent: " .. why) end
  return lp.DROP
end
EOF
check "send: a script that answers loads" lpctl script load /tmp/answer.lua --name answer
nft add table inet sd
nft add chain inet sd pre '{ type filter hook prerouting priority 0; policy accept; }'
check "send: lua rule at prerouting" lpctl rule add inet sd pre iifname v0 lua script answer

got=$(printf hello | in_peer socat -t 2 - UDP:$VM_HOST_IP:7000)
check_eq "send: the peer gets the script's UDP answer" "pong hello" "$got"
check_eq "send: ... from the port it asked" 1 "$(script_stat answer sent_packets)"
check_ge "send: ping: every echo request answered by the script" 3 "$(ping_count 3)"
check_eq "send: ... three replies sent (the kernel's own never came: the requests were dropped)" 4 "$(script_stat answer sent_packets)"
t0=$(date +%s)
in_peer nc -w 5 $VM_HOST_IP 7001 </dev/null >/tmp/nc.out 2>&1
t1=$(date +%s)
check "send: TCP: the script's reset refuses the connection" grep -q "refused" /tmp/nc.out
check "send: ... at once, not after nc's 5 s timeout" test $((t1 - t0)) -lt 4
check_eq "send: nothing failed or was refused" "0 0" "$(script_stat answer send_refused) $(script_stat answer send_failed)"

# the same answers over IPv6: lp.reply swaps IPv6 addresses, answers ICMPv6 echo requests
ip -6 addr add fd00:99::1/64 dev v0 nodad
in_peer ip -6 addr add fd00:99::2/64 dev v1 nodad
sent0=$(script_stat answer sent_packets)
got=$(printf hello6 | in_peer socat -t 2 - 'UDP6:[fd00:99::1]:7000')
check_eq "send: IPv6: the peer gets the script's UDP answer" "pong hello6" "$got"
got=$(in_peer ping -6 -c 3 -i 0.2 -W 1 fd00:99::1 2>/dev/null | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
check_ge "send: IPv6: ping: every echo request answered by the script" 3 "$got"
check_eq "send: IPv6: ... four answers sent, none failed or refused" "4 0 0" \
  "$(( $(script_stat answer sent_packets) - sent0 )) $(script_stat answer send_refused) $(script_stat answer send_failed)"

# caps: 3 sends a call against --send-packets 2, and --send-rate 5 a second
cat >/tmp/burst.lua <<'EOF'
function process_packet(pkt)
  if not (pkt.udp and pkt.udp.dport == 7002) then return lp.CONTINUE end
  local p = lp.packet.udp{src = pkt.ip.daddr, dst = pkt.ip.saddr, sport = 7002, dport = 7100,
                          payload = "copy\n"}
  for i = 1, 3 do
    local ok, why = lp.send(p)
    if not ok then lp.log(i .. ": " .. why) end
  end
  return lp.DROP
end
EOF
check "send: load with --send-packets 2 --send-rate 5" lpctl script load /tmp/burst.lua --name burst --send-packets 2 --send-rate 5
check "send: ... shown in its limits" sh -c 'lpctl script show burst | grep -q "send limits: packets 2  bytes 16K  rate 5/s  byte-rate 4M/s"'
check "send: ... and in JSON" sh -c 'lpctl -j script show burst >/tmp/burst.json && grep -q "\"send_packets\":2[,}]" /tmp/burst.json && grep -q "\"send_rate\":5[,}]" /tmp/burst.json && grep -q "\"send_bytes\":16384[,}]" /tmp/burst.json'
check "send: lua rule" lpctl rule add inet sd pre iifname v0 udp dport 7002 lua script burst
: >/tmp/copies.out
in_peer socat -u UDP-RECV:7100 - >/tmp/copies.out &
rx=$!
wait_until 50 in_peer sh -c ". /vm/lib.sh; udp_bound 7100"
in_peer sh -c ". /vm/lib.sh; udp_send 5 $VM_HOST_IP 7002"
wait_until 30 _lines_ge /tmp/copies.out 5
sleep 0.3
kill "$rx" 2>/dev/null
wait "$rx" 2>/dev/null
sent=$(script_stat burst sent_packets)
refused=$(script_stat burst send_refused)
note "send: 5 calls x 3 sends at send-packets 2, send-rate 5: sent $sent, refused $refused"
# the bucket starts with a second's worth (5); a slow sender may earn one more meanwhile
check "send: the rate lets 5 through (6 if the sender took over 0.2 s)" test "$sent" -ge 5 -a "$sent" -le 6
check_eq "send: ... every one of them reached the peer" "$sent" "$(wc -l </tmp/copies.out | tr -d ' ')"
check_eq "send: ... each attempt counted, sent or refused" 15 $((sent + refused))
check "send: ... the script was told why: the call's cap" sh -c 'lpctl log burst | grep -q "3: over the call.s packets (limit send-packets)"'
check "send: ... and the rate" sh -c 'lpctl log burst | grep -q "over the script.s rate"'
check "send: lpctl script limits --send-packets 0: sending off, live" lpctl script limits burst --send-packets 0
in_peer sh -c ". /vm/lib.sh; udp_send 1 $VM_HOST_IP 7002"
sleep 0.3
check_eq "send: ... all three refused" $((refused + 3)) "$(script_stat burst send_refused)"
check "send: an out-of-range limit is refused" sh -c '! lpctl script limits burst --send-packets 65 2>/dev/null'

# failures: no route, a malformed packet, a send from a packet a script sent
cat >/tmp/fail.lua <<'EOF'
function process_packet(pkt)
  local u = pkt.udp
  if not u then return lp.CONTINUE end
  if u.dport == 7004 then
    local ok, why = lp.send(lp.packet.udp{src = "10.99.0.1", dst = "192.0.2.1", sport = 1, dport = 2})
    lp.log("unroutable: " .. tostring(ok) .. " " .. tostring(why))
  elseif u.dport == 7005 then
    lp.send("not a packet")
  elseif u.dport == 7003 then
    -- a copy of the datagram: it meets this rule again on its way out
    local ok, why = lp.send(lp.packet.udp{src = pkt.ip.saddr, dst = pkt.ip.daddr,
                                          sport = u.sport, dport = u.dport, payload = u.payload})
    lp.log("copy: " .. tostring(ok) .. " " .. tostring(why))
  end
  return lp.ACCEPT
end
EOF
check "send: a script that fails to send loads" lpctl script load /tmp/fail.lua --name fail
nft add chain inet sd out '{ type filter hook output priority 0; policy accept; }'
check "send: lua rule at output" lpctl rule add inet sd out udp dport 7003-7005 lua script fail
udp_send 1 $VM_PEER_IP 7004
udp_send 1 $VM_PEER_IP 7005
check "send: no route: an error value" sh -c 'lpctl log fail | grep -q "unroutable: nil no route to the destination"'
check "send: a malformed packet: a Lua error naming it" sh -c 'lpctl log fail | grep -q "lp.send: not an IPv4 or IPv6 packet whose header and length agree (12 bytes)"'
check_eq "send: ... counted failed 2, errors lua 1" "2 1" "$(script_stat fail send_failed) $(script_stat fail err_lua)"
: >/tmp/loop.out
in_peer socat -u UDP-RECV:7003 - >/tmp/loop.out &
rx=$!
wait_until 50 in_peer sh -c ". /vm/lib.sh; udp_bound 7003"
udp_send 1 $VM_PEER_IP 7003
wait_until 30 _lines_ge /tmp/loop.out 2
sleep 0.3
kill "$rx" 2>/dev/null
wait "$rx" 2>/dev/null
check_eq "send: the peer gets the packet and its one copy" 2 "$(wc -l </tmp/loop.out | tr -d ' ')"
check "send: the copy, seen by the rule, could not send again" sh -c 'lpctl log fail | grep -q "copy: nil sending is not possible here"'
check "send: ... the first send succeeded" sh -c 'lpctl log fail | grep -q "copy: true nil"'
check_eq "send: ... counted sent 1, failed 3" "1 3" "$(script_stat fail sent_packets) $(script_stat fail send_failed)"

nft delete table inet sd
for s in answer burst fail; do lpctl script unload "$s"; done
check "send: scripts unloaded" sh -c '[ -z "$(lpctl script list)" ]'
peer_down
check "send: no warnings, no leaks reported" sh -c '! dmesg | grep -E "WARNING|BUG|leak"'
