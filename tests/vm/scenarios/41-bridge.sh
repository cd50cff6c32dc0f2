# Scripts in a bridge family chain (hook forward) with real traffic across a bridge: the
# Ethernet header read (pkt.eth.src/dst are the two ends' MACs, type 0x0800), the IPv4/UDP
# headers and the metadata read, pkt.eth.src written (a later `ether saddr` rule and the
# receiving end see the new address), and the IPv4 TTL written (the receiver verifies the header
# checksum; a raw write without fixing it is its control).
# vm-requires: module lpctl
# vm-modules: bridge nft_meta_bridge
# (Debian builds NFT_BRIDGE_META as a module: nf_tables' own meta then refuses the bridge family
# and asks for nft-expr-7-meta, so `meta mark` there needs nft_meta_bridge.)
. /vm/lib.sh

# ba: ba0 10.0.9.1 -- pa [br9, namespace BR] pb -- bb0 10.0.9.2 :bb
# Three namespaces of their own: nothing of this scenario is in the root namespace, and its
# scripts are in BR's registry (lpctl runs there).
BA_IP=10.0.9.1
BB_IP=10.0.9.2
NEW_SRC=02:00:00:00:00:aa

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "bridge: $m loaded" grep -q "^$m " /proc/modules

BA=$(netns_new)
BB=$(netns_new)
BR=$(netns_new)
in_ba() { in_netns "$BA" "$@"; }
in_bb() { in_netns "$BB" "$@"; }
in_br() { in_netns "$BR" "$@"; }

topology() {
  [ -n "$BA" ] && [ -n "$BB" ] && [ -n "$BR" ] || return 1
  ip link add ba0 type veth peer name pa && ip link set ba0 netns "$BA" && ip link set pa netns "$BR" ||
    return 1
  ip link add bb0 type veth peer name pb && ip link set bb0 netns "$BB" && ip link set pb netns "$BR" ||
    return 1
  in_br ip link set lo up && in_br ip link add br9 type bridge forward_delay 0 || return 1
  in_br ip link set pa master br9 && in_br ip link set pb master br9 || return 1
  in_br ip link set br9 up && in_br ip link set pa up && in_br ip link set pb up || return 1
  in_ba ip link set lo up && in_ba ip addr add "$BA_IP/24" dev ba0 && in_ba ip link set ba0 up ||
    return 1
  in_bb ip link set lo up && in_bb ip addr add "$BB_IP/24" dev bb0 && in_bb ip link set bb0 up ||
    return 1
  # Both ends' neighbours resolved and both MACs learned by the bridge before any counter:
  # frames to bb are then forwarded to pb alone (not flooded).
  wait_until 100 in_ba ping -c 1 -W 1 "$BB_IP" && wait_until 50 in_bb ping -c 1 -W 1 "$BA_IP"
}
check "bridge: topology (ba, bb, and br9 with their veths in a third namespace)" topology

mac_of() { sed -n 's|.* link/ether \([0-9a-f:]*\) .*|\1|p'; }
ba_mac=$(in_ba ip -o link show dev ba0 | mac_of)
bb_mac=$(in_bb ip -o link show dev bb0 | mac_of)
check "bridge: MAC addresses of ba0 ($ba_mac) and bb0 ($bb_mac)" test -n "$ba_mac" -a -n "$bb_mac"

snmp() { # RUNNER PROTO FIELD: a counter of /proc/net/snmp in the runner's netns
  "$1" cat /proc/net/snmp | awk -v p="$2:" -v f="$3" '
    $1 == p && !n { for (i = 2; i <= NF; i++) col[$i] = i; n = 1; next }
    $1 == p && n { print $col[f] }'
}
rule_packets() { # RUNNER FAMILY TABLE CHAIN COMMENT (nft_rule_packets in the runner's netns)
  local run=$1
  shift
  $run nft list chain "$1" "$2" "$3" |
    sed -n "s/.* counter packets \([0-9]*\) bytes .*comment \"$4\".*/\1/p" | head -n 1
}

cat >/tmp/bridge.lua <<'EOF'
-- one function per rule; every one continues to the next rule
function eth(pkt, arg)
  local e = pkt.eth
  if not e then
    pkt.meta.mark = 0x78
    lp.log("no pkt.eth in the bridge hook")
  elseif e.src .. "/" .. e.dst == arg and e.type == 0x0800 then
    pkt.meta.mark = 0x77
  else
    pkt.meta.mark = 0x76
    lp.log(string.format("eth %s/%s type 0x%04x is not %s/0x0800", e.src, e.dst, e.type, arg))
  end
  return lp.CONTINUE
end
function ip(pkt, arg)
  local ip, m = pkt.ip, pkt.meta
  local got = ip and string.format("%s>%s proto %d ttl %d dport %d nfproto %d hook %d %s>%s",
    ip.saddr, ip.daddr, ip.protocol, ip.ttl, pkt.udp.dport, m.nfproto, m.hook,
    m.iifname, m.oifname)
  if got == arg then
    pkt.meta.mark = 0x55
  else
    pkt.meta.mark = 0x56
    lp.log("ip " .. tostring(got) .. " is not " .. arg)
  end
  return lp.CONTINUE
end
function ethsrc(pkt, arg)
  pkt.eth.src = arg
  return lp.CONTINUE
end
function ttl(pkt)
  pkt.ip.ttl = pkt.ip.ttl - 1
  return lp.CONTINUE
end
function rawttl(pkt)
  pkt:set_u8(8, pkt.ip.ttl - 1) -- fixes nothing: the header checksum is now wrong
  return lp.CONTINUE
end
EOF
check "bridge: lpctl script load bridge.lua in br9's namespace" \
  in_br lpctl script load /tmp/bridge.lua --name bridge --on-error accept

in_br nft -f - <<'EOF'
table bridge lb {
  chain forward {
    type filter hook forward priority 0; policy accept;
  }
}
EOF
check "bridge: table bridge lb with a chain forward (hook forward; 'fwd' is an nft keyword)" in_br nft list table bridge lb

# bb's view: the Ethernet source of what arrives on bb0, and the TTL of what reaches input.
in_bb nft -f - <<EOF
table netdev nb {
  chain ing {
    type filter hook ingress device "bb0" priority filter; policy accept;
    udp dport 7102 ether saddr $NEW_SRC counter comment "new-src"
    udp dport 7102 ether saddr $ba_mac counter comment "old-src"
  }
}
table ip b {
  chain in {
    type filter hook input priority filter; policy accept;
    udp dport 7103 ip ttl 63 counter comment "ttl63"
  }
}
EOF
check "bridge: bb's netdev ingress chain on bb0 and input chain" in_bb nft list table netdev nb

lua_rule() { # in br9's namespace, what `lpctl rule add` takes
  in_br lpctl rule add "$@" >/tmp/rule.out 2>&1 || { cat /tmp/rule.out; return 1; }
}
add() { # an nft rule in br9's namespace; its error, if any, becomes a note
  in_br nft add rule "$@" 2>/tmp/add.err || note "nft add rule $*: $(head -n 1 /tmp/add.err)"
}

# send N PORT: ba sends N datagrams to bb:PORT through the bridge; prints how many bb received.
send() {
  local n=$1 port=$2 out=/tmp/br-$2.out rx
  : >"$out"
  # nsenter itself (not in_bb, a function: its subshell would be $!) so that kill reaches
  # socat, whose stdout must not be the pipe of the $(send ...) that waits for it
  nsenter -t "$BB" -n socat -u "UDP-RECV:$port" "OPEN:$out,append" >/dev/null 2>&1 &
  rx=$!
  wait_until 50 in_bb sh -c ". /vm/lib.sh; udp_bound $port" || note "bb never bound port $port"
  in_ba sh -c ". /vm/lib.sh; udp_send $n $BB_IP $port"
  wait_until 30 _lines_ge "$out" "$n"
  sleep 0.2
  kill "$rx" 2>/dev/null
  wait "$rx" 2>/dev/null
  wc -l <"$out" | tr -d ' '
}

# ---- Ethernet header read ----------------------------------------------------------------------
check "bridge: rule: bridge forward udp dport 7100 -> eth (arg ba/bb MACs)" \
  lua_rule bridge lb forward udp dport 7100 lua script bridge function eth arg "$ba_mac/$bb_mac"
add bridge lb forward udp dport 7100 meta mark 0x77 counter comment '"eth"'
add bridge lb forward udp dport 7100 meta mark 0x76 counter comment '"eth-other"'
add bridge lb forward udp dport 7100 meta mark 0x78 counter comment '"eth-nil"'
check_eq "bridge: eth: 3 of 3 datagrams ba -> bb :7100 delivered" 3 "$(send 3 7100)"
check_eq "bridge: pkt.eth.src/dst are ba0's and bb0's MACs, pkt.eth.type 0x0800 (mark 0x77 counted 3)" \
  3 "$(rule_packets in_br bridge lb forward eth)"
check_eq "bridge: ... no other header, no nil pkt.eth" "0 0" \
  "$(rule_packets in_br bridge lb forward eth-other) $(rule_packets in_br bridge lb forward eth-nil)"

# ---- IPv4, UDP and metadata read ---------------------------------------------------------------
# pkt.meta.nfproto is the packet's layer 3 family (NFPROTO_IPV4, 2: abi/src/guest.rs), not the
# hook's (NFPROTO_BRIDGE, 7); hook 2 is NF_BR_FORWARD; the devices are the bridge's ports.
want="$BA_IP>$BB_IP proto 17 ttl 64 dport 7101 nfproto 2 hook 2 pa>pb"
check "bridge: rule: bridge forward udp dport 7101 -> ip" \
  lua_rule bridge lb forward udp dport 7101 lua script bridge function ip arg "$want"
add bridge lb forward udp dport 7101 meta mark 0x55 counter comment '"ip"'
add bridge lb forward udp dport 7101 meta mark 0x56 counter comment '"ip-other"'
check_eq "bridge: ip: 3 of 3 to :7101 delivered" 3 "$(send 3 7101)"
check_eq "bridge: pkt.ip saddr/daddr/protocol/ttl, pkt.udp.dport and pkt.meta read as expected ($want)" \
  "3 0" "$(rule_packets in_br bridge lb forward ip) $(rule_packets in_br bridge lb forward ip-other)"

# ---- Ethernet source written -------------------------------------------------------------------
check "bridge: rule: bridge forward udp dport 7102 -> ethsrc $NEW_SRC" \
  lua_rule bridge lb forward udp dport 7102 lua script bridge function ethsrc arg "$NEW_SRC"
add bridge lb forward udp dport 7102 ether saddr "$NEW_SRC" counter comment '"ethsrc"'
check_eq "bridge: ethsrc: 3 of 3 to :7102 delivered" 3 "$(send 3 7102)"
check_eq "bridge: pkt.eth.src written: a later 'ether saddr $NEW_SRC' rule counted 3" 3 \
  "$(rule_packets in_br bridge lb forward ethsrc)"
check_eq "bridge: bb0 received them from $NEW_SRC, none from ba0's $ba_mac (netdev ingress in bb)" \
  "3 0" "$(rule_packets in_bb netdev nb ing new-src) $(rule_packets in_bb netdev nb ing old-src)"

# ---- TTL written: bb's kernel verifies the IPv4 header checksum --------------------------------
check "bridge: rule: bridge forward udp dport 7103 -> ttl" \
  lua_rule bridge lb forward udp dport 7103 lua script bridge function ttl
hdr0=$(snmp in_bb Ip InHdrErrors)
check_eq "bridge: ttl: 3 of 3 to :7103 delivered" 3 "$(send 3 7103)"
check_eq "bridge: bb saw ttl 63 (bridges do not decrement it: the script did)" 3 \
  "$(rule_packets in_bb ip b in ttl63)"
check_eq "bridge: bb found no IPv4 header error (InHdrErrors unchanged)" "$hdr0" \
  "$(snmp in_bb Ip InHdrErrors)"
# Control: the same TTL through the raw writer, checksum left stale, is dropped by bb.
check "bridge: rule: bridge forward udp dport 7104 -> rawttl" \
  lua_rule bridge lb forward udp dport 7104 lua script bridge function rawttl
check_eq "bridge: control: a raw TTL write without fixing the checksum is dropped by bb" 0 \
  "$(send 2 7104)"
check_eq "bridge: control: bb counted both in InHdrErrors" 2 \
  "$(($(snmp in_bb Ip InHdrErrors) - hdr0))"

lua_errs=$(in_br lpctl script show bridge | grep -E 'errors:' | sed 's/^ *//')
note "lpctl script show bridge: $lua_errs"
check "bridge: the script logged nothing unexpected" \
  sh -c '! dmesg | grep -E "script bridge: (no pkt.eth|eth |ip )"'

# Leave nothing behind: the rules and the script first, then the namespaces (br9 and the veths
# go with them).
# (nf_tables releases the rules' references after the commit: unload may be refused at first)
in_br nft flush ruleset
check "bridge: lpctl script unload bridge, once no rule uses it" \
  wait_until 30 in_br lpctl script unload bridge
kill "$BA" "$BB" "$BR" 2>/dev/null
wait "$BA" "$BB" "$BR" 2>/dev/null # (their status, 143, is not the scenario's)
exit 0
