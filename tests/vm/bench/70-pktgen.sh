# Packet rate with a lua rule, against nft alone (issue 9's measure): the kernel's pktgen in the
# peer namespace sends 60-byte UDP datagrams to port 9 through the veth as fast as the host side
# takes them (the receive path runs on the sending CPU, so the rate is the cost of a packet);
# the host counts what reaches its prerouting chain in 3 s (a counting rule first) with
# (a) `udp dport 9 accept`, (b) the same match with `lua script` returning accept, on
# the compiled engine and on wasmi (nft's NAT against examples/nat.lua is 50-nat.sh's), and
# (q) the same match with `queue num 5` to `lpctl serve` running the script in userspace
# (NFQUEUE mode; counted in a later chain, where accepted packets go on; lpctl is the suite's
# debug build). Rates and ratios are "# measure:" lines.
# vm-requires: module lpctl
# vm-modules: pktgen nfnetlink_queue nft_queue
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "pktgen: module loads" modprobe pktgen
check "pktgen: peer namespace" peer_up
check "pktgen: the peer has pktgen's control files" in_peer test -w /proc/net/pktgen/pgctrl

check "pktgen: set up in the peer" pktgen_udp9

# rate [CHAIN COMMENT]: packets per second the host's counting rule (default: the first, pre
# rx) counted during 3 s of pktgen
rate() {
  pktgen_ctl start &
  pgp=$!
  sleep 1
  p0=$(nft_rule_packets inet pg "${1:-pre}" "${2:-rx}")
  sleep 3
  p1=$(nft_rule_packets inet pg "${1:-pre}" "${2:-rx}")
  pktgen_ctl stop
  wait $pgp 2>/dev/null
  echo $(( (p1 - p0) / 3 ))
}

printf 'function process_packet(p) return lp.ACCEPT end\n' >/tmp/acc.lua
check "pktgen: accept script on the compiled engine" \
  lpctl script load /tmp/acc.lua --name acc --engine compiled
check "pktgen: accept script on wasmi" lpctl script load /tmp/acc.lua --name accw --engine wasmi

# the counting rule comes first and is the same in every case (6.1 has no named counters
# without nft_objref)
nft add table inet pg
nft add chain inet pg pre '{ type filter hook prerouting priority raw; policy accept; }'
# what the queue gives back goes on at the hook's next chain
nft add chain inet pg after '{ type filter hook prerouting priority -290; policy accept; }'
nft add rule inet pg after iifname v0 udp dport 9 counter comment '"rxq"'
# chain_with RULE...: the chain as the counting rule and RULE (nft's own or `lua script S`)
chain_with() {
  nft flush chain inet pg pre
  nft add rule inet pg pre iifname v0 udp dport 9 counter comment '"rx"'
  case $1 in
    lua) lpctl rule add inet pg pre iifname v0 udp dport 9 lua script "$2" ;;
    queue) nft add rule inet pg pre iifname v0 udp dport 9 queue num 5 ;;
    *) nft add rule inet pg pre iifname v0 udp dport 9 accept ;;
  esac
}
# The three cases take turns, five rounds, and each rate is the median of its rounds: a
# slow spell of the host (scripts/test.sh runs this alone, after the suites, but the machine
# is still shared) then touches one round of each case rather than all of one case.
lpctl serve --queue 5 /tmp/acc.lua >/tmp/serve.out 2>&1 &
srv=$!
queue_bound() { grep -qE "^ *5 " /proc/net/netfilter/nfnetlink_queue; }
check "pktgen: lpctl serve binds queue 5" wait_until 300 queue_bound
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "?" }'; }
A="" B="" W="" Q="" RB="" RW=""
for round in 1 2 3 4 5; do
  a=0 && chain_with nft && a=$(rate) && A="$A $a"
  check "pktgen: lua rule on the compiled engine (round $round)" chain_with lua acc
  b=$(rate) && B="$B $b"
  check "pktgen: lua rule on wasmi (round $round)" chain_with lua accw
  w=$(rate) && W="$W $w"
  check "pktgen: queue rule to lpctl serve (round $round)" chain_with queue
  Q="$Q $(rate after rxq)"
  # each round's ratio, of rates measured seconds apart: the host's speed drifts between
  # rounds (nft alone's rates within a run spread 40-90k), much less within one
  RB="$RB $(ratio "$a" "$b")" RW="$RW $(ratio "$a" "$w")"
done
check "pktgen: lpctl serve kept serving" sh -c "kill -0 $srv || { cat /tmp/serve.out; false; }"
kill "$srv" 2>/dev/null
median() { printf '%s\n' $1 | sort -n | sed -n 3p; }
a=$(median "$A") b=$(median "$B") w=$(median "$W") q=$(median "$Q")
rb=$(median "$RB") rw=$(median "$RW")
check_ge "pktgen: (a) nft alone: packets counted" 1000 "$a"
check_ge "pktgen: (b) with the lua rule (compiled): packets counted" 1000 "$b"
check_ge "pktgen: (b) with the lua rule (wasmi): packets counted" 1000 "$w"
check_ge "pktgen: (q) through the queue and lpctl serve: packets counted" 30 "$q"
for s in acc accw; do
  check_ge "pktgen: ... the script $s ran for them" 3000 \
    "$(lpctl -j script show "$s" | sed -n 's/.*"run_cnt":\([0-9]*\).*/\1/p')"
done
note "measure: pktgen 60-byte UDP, packets/s at the host's prerouting (TCG), median of 5 interleaved rounds (a:$A; b:$B; wasmi:$W; the rounds' b/a:$RB; wasmi:$RW): (a) nft accept $a, (b) + lua accept: compiled $b (b/a $rb, the median of the rounds' ratios; $(ratio "$a" "$b") of the medians), wasmi $w (b/a $rw; $(ratio "$a" "$w"))"
note "measure: pktgen NFQUEUE mode (q:$Q): (q) queue num 5 + lpctl serve (debug build), same script: $q packets/s (q/a $(ratio "$a" "$q"); the kernel path (b, compiled) per packet: $(ratio "$q" "$b")x faster)"
