# Packet rate with a lua rule, against nft alone (issue 9's measure): the kernel's pktgen in the
# peer namespace sends 60-byte UDP datagrams to port 9 through the veth as fast as the host side
# takes them (the receive path runs on the sending CPU, so the rate is the cost of a packet);
# the host counts what reaches its prerouting chain in 4 s (a counting rule first) with
# (a) `udp dport 9 accept`, (b) the same match with `lua script` returning accept, on
# the compiled engine and on wasmi (nft's NAT against examples/nat.lua is 50-nat.sh's). Rates
# and ratios are "# measure:" lines.
# vm-requires: module lpctl
# vm-modules: pktgen
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "pktgen: module loads" modprobe pktgen
check "pktgen: peer namespace" peer_up
check "pktgen: the peer has pktgen's control files" in_peer test -w /proc/net/pktgen/pgctrl

mac=$(cat /sys/class/net/v0/address)
pg() { in_peer sh -c "echo '$1' >/proc/net/pktgen/$2"; }
pg rem_device_all kpktgend_0
pg "add_device v1" kpktgend_0
for c in "count 0" "pkt_size 60" "delay 0" "dst $VM_HOST_IP" "dst_mac $mac" \
  "udp_dst_min 9" "udp_dst_max 9" "udp_src_min 4000" "udp_src_max 4000"; do
  pg "$c" v1
done

# rate NAME: packets per second the host's chain counted during 4 s of pktgen
rate() {
  in_peer sh -c 'echo start >/proc/net/pktgen/pgctrl' &
  pgp=$!
  sleep 1
  p0=$(nft_rule_packets inet pg pre rx)
  sleep 4
  p1=$(nft_rule_packets inet pg pre rx)
  in_peer sh -c 'echo stop >/proc/net/pktgen/pgctrl'
  wait $pgp 2>/dev/null
  echo $(( (p1 - p0) / 4 ))
}

printf 'function process_packet(p) return lp.ACCEPT end\n' >/tmp/acc.lua
check "pktgen: accept script on the compiled engine" \
  lpctl script load /tmp/acc.lua --name acc --engine compiled
check "pktgen: accept script on wasmi" lpctl script load /tmp/acc.lua --name accw --engine wasmi

# the counting rule comes first and is the same in every case (6.1 has no named counters
# without nft_objref)
nft -f - <<'NFT'
table inet pg {
  chain pre {
    type filter hook prerouting priority raw; policy accept;
    iifname v0 udp dport 9 counter comment "rx"
    iifname v0 udp dport 9 accept
  }
}
NFT
a=$(rate)
check_ge "pktgen: (a) nft alone: packets counted" 1000 "$a"
# lua_rate SCRIPT ENGINE: the rate with the counting rule and a lua rule running SCRIPT, in R
lua_rate() {
  nft flush chain inet pg pre
  nft add rule inet pg pre iifname v0 udp dport 9 counter comment '"rx"'
  check "pktgen: lua rule on the $2 engine" \
    lpctl rule add inet pg pre iifname v0 udp dport 9 lua script "$1"
  R=$(rate)
  check_ge "pktgen: (b) with the lua rule ($2): packets counted" 1000 "$R"
  check_ge "pktgen: ... the script ($2) ran for them" 1000 \
    "$(lpctl -j script show "$1" | sed -n 's/.*"run_cnt":\([0-9]*\).*/\1/p')"
}
lua_rate acc compiled
b=$R
lua_rate accw wasmi
w=$R
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "?" }'; }
note "measure: pktgen 60-byte UDP, packets/s at the host's prerouting (TCG): (a) nft accept $a, (b) + lua accept: compiled $b (b/a $(ratio "$a" "$b")), wasmi $w (b/a $(ratio "$a" "$w"))"
