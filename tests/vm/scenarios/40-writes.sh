# Packet writes and metadata in the kernel, with real traffic from the peer namespace: the skb
# mark and the conntrack mark set by a script and matched by later nft rules, conntrack state
# and id read, the IPv4 TTL decremented on input and on output (the receiving kernel verifies
# the header checksum), a UDP port rewritten at prerouting (receivers verify the checksum: once
# with CHECKSUM_PARTIAL packets, once with full checksums), a write beyond the 2 KiB window of a
# reassembled 3000-byte datagram, a write outside the packet (a Lua error), and the Ethernet
# header read and written in a netdev ingress chain.
# vm-requires: module lpctl
# vm-engines: wasmi
# vm-modules: nft_ct
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "writes: $m loaded" grep -q "^$m " /proc/modules
check "writes: peer namespace" peer_up

stat_of() { # NAME FIELD: a counter from `lpctl script show`
  lpctl script show "$1" | grep -E 'run_cnt|errors:' |
    sed -n "s/.*[[:space:]]$2 \([0-9][0-9]*\).*/\1/p" | head -n 1
}
snmp() { # [in_peer] PROTO FIELD: a counter of /proc/net/snmp in this (or the peer's) netns
  local run=
  [ "$1" = in_peer ] && { run=in_peer; shift; }
  $run cat /proc/net/snmp | awk -v p="$1:" -v f="$2" '
    $1 == p && !n { for (i = 2; i <= NF; i++) col[$i] = i; n = 1; next }
    $1 == p && n { print $col[f] }'
}
rules() { nft list chain "$1" "$2" "$3" | sed 's/^/#   /'; }

cat >/tmp/writes.lua <<'EOF'
-- one function per rule (bound with `function NAME`); every one continues to the next rule
function mark(pkt)
  pkt.meta.mark = 0x2a
  return lp.CONTINUE
end
function ctmark(pkt)
  -- the mark an earlier packet of the flow stored in the conntrack entry
  if pkt.ct.mark == 7 then pkt.meta.mark = 0x21 end
  pkt.ct.mark = 7
  return lp.CONTINUE
end
local state_mark = { new = 0x10, established = 0x11 }
function ctstate(pkt)
  local ct = pkt.ct
  if not ct or ct.id == 0 then pkt.meta.mark = 0x1e return lp.CONTINUE end
  pkt.meta.mark = state_mark[ct.state] or 0x1f
  lp.log("ct state " .. ct.state)
  return lp.CONTINUE
end
function ttl(pkt)
  pkt.ip.ttl = pkt.ip.ttl - 1
  return lp.CONTINUE
end
function dport(pkt)
  pkt.udp.dport = 6001
  return lp.CONTINUE
end
function big(pkt, arg)
  pkt:set_bytes(2500, "XYZ") -- beyond the 2 KiB window: written to the skb at once
  if arg ~= "nofix" then pkt:fix_checksums() end
  return lp.CONTINUE
end
function outside(pkt)
  pkt:set_bytes(pkt.meta.len - 1, "XY")
  return lp.CONTINUE
end
function eth(pkt, arg)
  if not pkt.eth then
    pkt.meta.mark = 0x78
  elseif pkt.eth.src .. "/" .. pkt.eth.dst == arg and pkt.ct == nil then
    -- netdev ingress runs before conntrack: no entry yet, so no pkt.ct
    pkt.meta.mark = 0x77
  else
    pkt.meta.mark = 0x76
    lp.log("eth " .. pkt.eth.src .. "/" .. pkt.eth.dst .. " is not " .. arg)
  end
  return lp.CONTINUE
end
function ethdst(pkt)
  pkt.eth.dst = "02:00:00:00:00:99"
  return lp.CONTINUE
end
EOF
check "writes: lpctl script load writes.lua (on-error accept)" \
  lpctl script load /tmp/writes.lua --name writes --on-error accept

nft -f - <<'EOF'
table inet w {
  chain pre {
    type filter hook prerouting priority filter; policy accept;
  }
  chain in {
    type filter hook input priority filter; policy accept;
    iifname "v0" ct state new,established,related,invalid,untracked counter comment "ct-on"
    iifname "v0" udp dport 6020 ct mark 7 counter comment "ctmark-before"
  }
  chain out {
    type filter hook output priority filter; policy accept;
  }
}
EOF
check "writes: table inet w (conntrack tracks this netns)" nft list table inet w

lua_rule() { # what `lpctl rule add` takes
  lpctl rule add "$@" >/tmp/rule.out 2>&1 || { cat /tmp/rule.out; return 1; }
}
add() { # an nft rule; its error, if any, becomes a note (the counter check then fails)
  nft add rule "$@" 2>/tmp/add.err || note "nft add rule $*: $(head -n 1 /tmp/add.err)"
}

# ---- skb mark ----------------------------------------------------------------------------------
check "writes: rule: udp dport 6030 -> mark" lua_rule inet w in iifname v0 udp dport 6030 lua script writes function mark
add inet w in iifname v0 udp dport 6030 meta mark 0x2a counter comment '"mark"'
check_eq "writes: mark: 3 of 3 datagrams to :6030 delivered" 3 "$(udp_transfer 3 6030)"
check_eq "writes: pkt.meta.mark = 0x2a matched by a later 'meta mark 0x2a' rule" 3 \
  "$(nft_rule_packets inet w in mark)"

# ---- conntrack mark ----------------------------------------------------------------------------
check "writes: rule: udp dport 6020 -> ctmark" lua_rule inet w in iifname v0 udp dport 6020 lua script writes function ctmark
add inet w in iifname v0 udp dport 6020 ct mark 7 counter comment '"ctmark-after"'
add inet w in iifname v0 udp dport 6020 meta mark 0x21 counter comment '"ctmark-seen"'
check_eq "writes: ct mark: 3 of 3 datagrams (one flow) to :6020 delivered" 3 "$(udp_transfer 3 6020)"
check_eq "writes: pkt.ct.mark = 7 matched by a later 'ct mark 7' rule (3 packets)" 3 \
  "$(nft_rule_packets inet w in ctmark-after)"
check_eq "writes: the entry kept it: 'ct mark 7' before the lua rule saw packets 2 and 3" 2 \
  "$(nft_rule_packets inet w in ctmark-before)"
check_eq "writes: the script read it back (pkt.ct.mark == 7) on packets 2 and 3" 2 \
  "$(nft_rule_packets inet w in ctmark-seen)"

# ---- conntrack state and id --------------------------------------------------------------------
check "writes: rule: icmp echo-request -> ctstate" lua_rule inet w in iifname v0 icmp type echo-request lua script writes function ctstate
add inet w in iifname v0 icmp type echo-request meta mark 0x10 counter comment '"ct-new"'
add inet w in iifname v0 icmp type echo-request meta mark 0x11 counter comment '"ct-est"'
add inet w in iifname v0 icmp type echo-request meta mark 0x1e counter comment '"ct-noid"'
add inet w in iifname v0 icmp type echo-request meta mark 0x1f counter comment '"ct-other"'
check_eq "writes: ct state: ping -c 3 gets 3 replies" 3 "$(ping_count 3)"
check_eq "writes: pkt.ct.state 'new' for the first echo request" 1 "$(nft_rule_packets inet w in ct-new)"
check_eq "writes: pkt.ct.state 'established' for the next two (replies seen)" 2 \
  "$(nft_rule_packets inet w in ct-est)"
check_eq "writes: pkt.ct.id is not 0 and no other state was seen" "0 0" \
  "$(nft_rule_packets inet w in ct-noid) $(nft_rule_packets inet w in ct-other)"
check "writes: the script logged 'ct state new' and 'ct state established'" \
  sh -c 'dmesg | grep -q "script writes: ct state new" && dmesg | grep -q "script writes: ct state established"'

# ---- TTL on input ------------------------------------------------------------------------------
check "writes: rule: udp dport 6040 -> ttl" lua_rule inet w in iifname v0 udp dport 6040 lua script writes function ttl
add inet w in iifname v0 udp dport 6040 ip ttl 63 counter comment '"ttl63"'
check_eq "writes: ttl: 3 of 3 datagrams to :6040 delivered" 3 "$(udp_transfer 3 6040)"
check_eq "writes: pkt.ip.ttl - 1 on input: a later 'ip ttl 63' rule counted 3" 3 \
  "$(nft_rule_packets inet w in ttl63)"

# ---- TTL on output: the peer's kernel verifies the IPv4 header checksum ------------------------
in_peer nft -f - <<'EOF'
table ip p {
  chain in {
    type filter hook input priority filter; policy accept;
    udp dport 6041 ip ttl 63 counter comment "ttl63"
  }
}
EOF
check "writes: rule: output udp dport 6041 -> ttl" lua_rule inet w out oifname v0 udp dport 6041 lua script writes function ttl
peer_recv() { # PORT OUT: a receiver in the peer namespace (background; pid in $rx)
  : >"$2"
  in_peer socat -u -b 65536 "UDP-RECV:$1" "OPEN:$2,append" &
  rx=$!
  wait_until 50 in_peer sh -c ". /vm/lib.sh; udp_bound $1"
}
hdr0=$(snmp in_peer Ip InHdrErrors)
peer_recv 6041 /tmp/ttl-out.out
udp_send 3 "$VM_PEER_IP" 6041
wait_until 30 _lines_ge /tmp/ttl-out.out 3
kill "$rx" 2>/dev/null; wait "$rx" 2>/dev/null
check_eq "writes: ttl on output: 3 of 3 datagrams delivered to the peer" 3 "$(wc -l </tmp/ttl-out.out | tr -d ' ')"
check_eq "writes: the peer saw ttl 63" 3 "$(in_peer nft list chain ip p in | sed -n 's/.*counter packets \([0-9]*\) .*/\1/p')"
check_eq "writes: the peer found no IPv4 header error (InHdrErrors unchanged)" "$hdr0" "$(snmp in_peer Ip InHdrErrors)"

# ---- UDP port rewrite at prerouting ------------------------------------------------------------
check "writes: rule: prerouting udp dport 6000 -> dport (6001)" lua_rule inet w pre iifname v0 udp dport 6000 lua script writes function dport
redirect() { # N: datagrams sent to :6000, printed: how many the listener on :6001 received
  local out=/tmp/redir.out
  : >$out
  socat -u UDP-RECV:6001 - >$out &
  rx=$!
  wait_until 50 udp_bound 6001
  in_peer sh -c ". /vm/lib.sh; udp_send $1 $VM_HOST_IP 6000"
  wait_until 30 _lines_ge $out "$1"
  sleep 0.2
  kill "$rx" 2>/dev/null; wait "$rx" 2>/dev/null
  wc -l <$out | tr -d ' '
}
csum0=$(snmp Udp InCsumErrors)
check_eq "writes: dport rewrite (CHECKSUM_PARTIAL from the peer): 5 sent to :6000 arrive on :6001" 5 "$(redirect 5)"
check_eq "writes: no UDP checksum error (InCsumErrors unchanged)" "$csum0" "$(snmp Udp InCsumErrors)"
if in_peer ethtool -K v1 tx off >/dev/null 2>&1; then
  # full checksums from the peer: the packets arrive CHECKSUM_NONE and UDP verifies them
  check_eq "writes: dport rewrite (full checksums): 5 sent to :6000 arrive on :6001" 5 "$(redirect 5)"
  check_eq "writes: no UDP checksum error with full checksums (InCsumErrors unchanged)" "$csum0" \
    "$(snmp Udp InCsumErrors)"
  check_eq "writes: ttl with full checksums: 3 of 3 to :6040" 3 "$(udp_transfer 3 6040)"
  in_peer ethtool -K v1 tx on >/dev/null 2>&1
else
  note "ethtool -K v1 tx off failed: the full-checksum variant is not run"
fi

# ---- a write beyond the window of a 3000-byte datagram -----------------------------------------
# 3000 bytes go as two fragments, reassembled before the input hook (conntrack's defrag) into an
# skb whose bytes past the first fragment are not in its head: the write pulls them in. The
# datagram carries a full checksum (fragmented datagrams are summed in software) and arrives
# CHECKSUM_NONE: UDP verifies it. Offset 2500 from the network header is byte 2472 of the payload.
check "writes: rule: udp dport 6050 -> big" lua_rule inet w in iifname v0 udp dport 6050 lua script writes function big
check "writes: rule: udp dport 6051 -> big nofix" lua_rule inet w in iifname v0 udp dport 6051 lua script writes function big arg nofix
head -c 3000 /dev/zero | tr '\0' 'a' >/tmp/big.src
{ head -c 2472 /tmp/big.src; printf XYZ; tail -c +2476 /tmp/big.src; } >/tmp/big.want
big_transfer() { # PORT: one 3000-byte datagram to PORT; prints the bytes received
  local out=/tmp/big-$1.out
  : >"$out"
  socat -u -b 65536 "UDP-RECV:$1" "OPEN:$out,append" &
  rx=$!
  wait_until 50 udp_bound "$1"
  in_peer socat -u -b 4000 OPEN:/tmp/big.src "UDP-SENDTO:$VM_HOST_IP:$1"
  wait_until 30 sh -c "[ \$(wc -c <$out) -ge 3000 ]"
  sleep 0.2
  kill "$rx" 2>/dev/null; wait "$rx" 2>/dev/null
  wc -c <"$out" | tr -d ' '
}
csum0=$(snmp Udp InCsumErrors)
check_eq "writes: big: the 3000-byte datagram to :6050 arrives" 3000 "$(big_transfer 6050)"
check "writes: big: it carries XYZ at payload byte 2472 and is otherwise intact" cmp /tmp/big.want /tmp/big-6050.out
check_eq "writes: big: no UDP checksum error (fix_checksums over 3028 bytes)" "$csum0" "$(snmp Udp InCsumErrors)"
check_eq "writes: control: the same write without fix_checksums is dropped" 0 "$(big_transfer 6051)"
check_eq "writes: control: UDP counted the bad checksum (InCsumErrors +1)" 1 "$(( $(snmp Udp InCsumErrors) - csum0 ))"

# ---- a write outside the packet ----------------------------------------------------------------
check "writes: rule: udp dport 6060 -> outside" lua_rule inet w in iifname v0 udp dport 6060 lua script writes function outside
lua0=$(stat_of writes lua)
check_eq "writes: outside: on-error accept delivers 2 of 2 to :6060" 2 "$(udp_transfer 2 6060)"
check_eq "writes: outside: 2 Lua errors counted by lpctl script show" 2 "$(( $(stat_of writes lua) - lua0 ))"
check "writes: outside: the error names the offset and the packet's length" \
  sh -c 'dmesg | grep -q "script writes: .*35.*outside the packet.*36 bytes"'

# ---- Ethernet header in a netdev ingress chain -------------------------------------------------
mac_of() { sed -n 's|.* link/ether \([0-9a-f:]*\) .*|\1|p'; }
peer_mac=$(in_peer ip -o link show dev v1 | mac_of) # (/sys/class/net is the root netns's)
host_mac=$(ip -o link show dev v0 | mac_of)
check "writes: MAC addresses of v1 ($peer_mac) and v0 ($host_mac)" test -n "$peer_mac" -a -n "$host_mac"
nft -f - <<'EOF'
table netdev nd {
  chain ing {
    type filter hook ingress device "v0" priority filter; policy accept;
  }
}
EOF
check "writes: netdev table with an ingress chain on v0" nft list table netdev nd
check "writes: rule: netdev ingress udp dport 6070 -> eth (arg src/dst)" \
  lua_rule netdev nd ing udp dport 6070 lua script writes function eth arg "$peer_mac/$host_mac"
check "writes: rule: netdev ingress udp dport 6071 -> ethdst" \
  lua_rule netdev nd ing udp dport 6071 lua script writes function ethdst
add netdev nd ing udp dport 6071 ether daddr 02:00:00:00:00:99 counter comment '"ethdst"'
check "writes: rule: inet input udp dport 6072 -> eth (no Ethernet header there)" \
  lua_rule inet w in iifname v0 udp dport 6072 lua script writes function eth arg "$peer_mac/$host_mac"
add inet w in iifname v0 udp dport 6070 meta mark 0x77 counter comment '"eth"'
add inet w in iifname v0 udp dport 6070 meta mark 0x76 counter comment '"eth-other"'
add inet w in iifname v0 udp dport 6072 meta mark 0x78 counter comment '"noeth"'
check_eq "writes: eth: 3 of 3 to :6070" 3 "$(udp_transfer 3 6070)"
check_eq "writes: pkt.eth.src/dst in netdev ingress are the peer's and v0's MACs, pkt.ct nil there (mark set)" \
  "3 0" "$(nft_rule_packets inet w in eth) $(nft_rule_packets inet w in eth-other)"
# A packet socket on v0 (socat INTERFACE) gets the frames before the ingress hook and keeps a
# clone of each: the skb the script writes is cloned, so the write must unclone its head (the
# mac header lies before skb->data, in the headroom), and the tap keeps the frame as it came.
socat -u -b 65536 INTERFACE:v0 - >/tmp/tap.out 2>/dev/null &
tap=$!
packet_sockets() { [ "$(wc -l </proc/net/packet)" -gt 1 ]; }
wait_until 50 packet_sockets || note "the packet socket on v0 never appeared"
check_eq "writes: ethdst: 2 of 2 to :6071 still delivered (already classified as to this host)" 2 \
  "$(udp_transfer 2 6071)"
kill "$tap" 2>/dev/null; wait "$tap" 2>/dev/null
check_eq "writes: pkt.eth.dst written: a later 'ether daddr 02:00:00:00:00:99' rule counted 2" 2 \
  "$(nft_rule_packets netdev nd ing ethdst)"
tap_hex=$(od -An -v -tx1 /tmp/tap.out | tr -d ' \n')
frame_hdr=$(echo "$host_mac$peer_mac" | tr -d ':')08004500
check_ge "writes: the tap on v0 saw the peer's IPv4 frames with v0's own address" 2 \
  "$(echo "$tap_hex" | grep -o "$frame_hdr" | wc -l)"
check_eq "writes: ... and never the address the script wrote (the skb was uncloned first)" 0 \
  "$(echo "$tap_hex" | grep -o 020000000099 | wc -l)"
check_eq "writes: pkt.eth is nil in an inet input chain: 2 of 2 to :6072" 2 "$(udp_transfer 2 6072)"
check_eq "writes: ... and the script saw no Ethernet header" 2 "$(nft_rule_packets inet w in noeth)"

# ---- cost of a write ---------------------------------------------------------------------------
# The same field read, and read then written, 200 packets each on the same path.
cat >/tmp/ttlread.lua <<'EOF'
function process_packet(pkt)
  if pkt.ip.ttl == 0 then return lp.DROP end
  return lp.CONTINUE
end
EOF
cat >/tmp/ttl.lua <<'EOF'
function process_packet(pkt)
  pkt.ip.ttl = pkt.ip.ttl - 1
  return lp.CONTINUE
end
EOF
lpctl script load /tmp/ttlread.lua --name ttlread >/dev/null
lpctl script load /tmp/ttl.lua --name ttlonly >/dev/null
lua_rule inet w in iifname v0 udp dport 6080 lua script ttlread
lua_rule inet w in iifname v0 udp dport 6081 lua script ttlonly
check_eq "writes: ttl-read script: 200 of 200 to :6080" 200 "$(udp_transfer 200 6080)"
check_eq "writes: ttl-decrement script: 200 of 200 to :6081" 200 "$(udp_transfer 200 6081)"
for s in ttlread ttlonly; do
  n=$(stat_of $s run_cnt)
  t=$(lpctl script show $s | sed -n 's/.*run_time_ns \([0-9][0-9]*\).*/\1/p')
  fuel=$(lpctl script show $s | sed -n 's/.*fuel: total \([0-9][0-9]*\).*/\1/p')
  [ "${n:-0}" -gt 0 ] &&
    note "measure: $s: $n calls, mean $((t / n)) ns and $((fuel / n)) fuel per call (softirq, TCG, conntrack on)"
done
check_eq "writes: no trap, memory or fuel error in the scripts" "0 0 0 0 0 0" \
  "$(stat_of writes trap) $(stat_of writes memory) $(stat_of writes fuel) $(stat_of ttlonly trap) $(stat_of ttlonly memory) $(stat_of ttlonly lua)"

nft delete table netdev nd
nft delete table inet w
peer_down
check "writes: unload writes once the rules are gone" wait_until 50 lpctl script unload writes
check "writes: unload ttlonly and ttlread" wait_until 50 sh -c 'lpctl script unload ttlonly; lpctl script unload ttlread; ! lpctl script list | grep -q "^ttl"'
