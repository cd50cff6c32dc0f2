# Stateless 1:1 NAT in Lua (examples/nat.lua) on a router between a client and a server
# namespace: TCP both ways, UDP (also with checksum 0), ICMP echo and HTTP through the public
# address, with receivers that verify every checksum, once from senders handing the router
# CHECKSUM_PARTIAL packets and once with full checksums; then the throughput of a bulk transfer
# through the Lua NAT and through nft's native NAT (printed as "# measure:" notes).
# vm-requires: module lpctl
# vm-engines: wasmi
# vm-modules: nft_chain_nat nft_nat
. /vm/lib.sh

# client 10.0.1.2 (c0) -- r-cli 10.0.1.1 [router: root ns] 10.0.2.1 r-srv -- (s0) 10.0.2.2 server
# The client only knows the server as 10.0.3.2, which no interface owns.
PUB=10.0.3.2
BULK=4194304 # bytes of the throughput transfer

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "nat: $m loaded" grep -q "^$m " /proc/modules

topology() {
  router_up || return 1
  # Replies leave the router from 10.0.3.2, an address it has no route for.
  for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 >"$f"; done
  # Over veth a CHECKSUM_PARTIAL packet is trusted by its receiver. Without tx checksum offload
  # the router finishes checksums in software before handing a packet over, and the receiver,
  # given CHECKSUM_NONE, verifies it: a checksum NAT broke is dropped and counted.
  ethtool -K r-cli tx off >/dev/null && ethtool -K r-srv tx off >/dev/null
}
check "nat: topology (client, router with ip_forward, server; router veths tx off)" topology

# /proc/net/snmp of a namespace (NS-RUNNER: in_cli or in_srv) as "Proto:Field=value" lines.
snmp_all() {
  "$1" cat /proc/net/snmp |
    awk '$1 in hdr { for (i = 2; i <= NF; i++) print $1 name[$1 i] "=" $i; next }
         { hdr[$1] = 1; for (i = 2; i <= NF; i++) name[$1 i] = $i }'
}
snmp_get() { snmp_all "$1" | sed -n "s/^$2=//p"; } # NS-RUNNER Proto:Field
# The checksum and header errors of both ends.
errors() {
  local ns
  for ns in in_cli in_srv; do
    snmp_all "$ns" | grep -E '^(Ip:InHdrErrors|(Tcp|Udp|Icmp):InCsumErrors)=' | tr '\n' ' '
  done
}

uptime_cs() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }
listening() { in_srv sh -c ". /vm/lib.sh; tcp_listening $1"; }
bound() { in_srv sh -c ". /vm/lib.sh; udp_bound $1"; }

# tcp_up PORT BYTES: the client sends BYTES to the server through the public address; prints
# how many arrived (/tmp/up-PORT.src, /tmp/up-PORT.out).
tcp_up() {
  local port=$1 rx
  head -c "$2" /dev/urandom >/tmp/up-"$port".src
  rm -f /tmp/hold-"$port" && mkfifo /tmp/hold-"$port"
  in_srv nc -l -p "$port" <>/tmp/hold-"$port" >/tmp/up-"$port".out &
  rx=$!
  wait_until 50 listening "$port"
  in_cli timeout 30 nc "$PUB" "$port" </tmp/up-"$port".src
  wait_bounded 10 "$rx"
  wc -c </tmp/up-"$port".out | tr -d ' '
}

# tcp_echo PORT BYTES: the client sends BYTES, the server (nc -e cat) sends them back; prints
# how many came back (/tmp/echo-PORT.src, /tmp/echo-PORT.out).
tcp_echo() {
  local port=$1 rx
  head -c "$2" /dev/urandom >/tmp/echo-"$port".src
  in_srv nc -l -p "$port" -e cat &
  rx=$!
  wait_until 50 listening "$port"
  in_cli timeout 30 nc "$PUB" "$port" </tmp/echo-"$port".src >/tmp/echo-"$port".out
  wait_bounded 10 "$rx"
  wc -c </tmp/echo-"$port".out | tr -d ' '
}

# tcp_down PORT FILE: the server sends FILE to the client; prints the bytes received
# (/tmp/down-PORT.out) and leaves the transfer's duration in centiseconds in /tmp/down-PORT.cs.
tcp_down() {
  local port=$1 rx t0 t1
  rm -f /tmp/hold-"$port" && mkfifo /tmp/hold-"$port"
  in_srv nc -l -p "$port" <"$2" &
  rx=$!
  wait_until 50 listening "$port"
  t0=$(uptime_cs)
  # (the client's stdin never ends: on EOF it would half-close and the server nc would quit)
  in_cli timeout 90 nc "$PUB" "$port" <>/tmp/hold-"$port" >/tmp/down-"$port".out
  t1=$(uptime_cs)
  echo $((t1 - t0)) >/tmp/down-"$port".cs
  wait_bounded 10 "$rx"
  wc -c </tmp/down-"$port".out | tr -d ' '
}

# udp_echo PORT [SOCAT-OPTION]: the client sends one datagram from a connected socket (it only
# accepts replies from 10.0.3.2:PORT); the server answers "<the sender's address> <the line>".
# Prints the answer.
udp_echo() {
  local port=$1 opt=${2:+,$2} srv cli out=/tmp/udp-$1.out
  : >"$out"
  # shellcheck disable=SC2016
  in_srv socat -T 10 "UDP-RECVFROM:$port$opt" SYSTEM:'read l; echo "$SOCAT_PEERADDR $l"' &
  srv=$!
  wait_until 50 bound "$port"
  rm -f /tmp/hold-"$port" && mkfifo /tmp/hold-"$port"
  in_cli socat -T 10 - "UDP:$PUB:$port$opt" <>/tmp/hold-"$port" >"$out" &
  cli=$!
  echo "hello-$port" >/tmp/hold-"$port"
  wait_until 50 grep -q . "$out"
  kill "$cli" "$srv" 2>/dev/null
  wait "$cli" "$srv" 2>/dev/null
  cat "$out"
}

# udp_lost PORT: one datagram the server should not get (a checksum was broken on purpose);
# prints how many it got.
udp_lost() {
  local port=$1 rx
  : >/tmp/lost-"$port"
  in_srv socat -u "UDP-RECV:$port" - >/tmp/lost-"$port" &
  rx=$!
  wait_until 50 bound "$port"
  echo "broken" | in_cli socat -u - "UDP-SENDTO:$PUB:$port"
  sleep 0.5
  kill "$rx" 2>/dev/null
  wait "$rx" 2>/dev/null
  wc -l </tmp/lost-"$port" | tr -d ' '
}

ping_pub() { in_cli ping -c 3 -i 0.2 -W 2 "$PUB" >/tmp/ping.out 2>&1; }

# The HTTP server: a file, and a CGI that answers with the address the request came from.
mkdir -p /tmp/www/cgi-bin
head -c 200000 /dev/urandom >/tmp/www/blob
# shellcheck disable=SC2016
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n' >/tmp/www/cgi-bin/addr
chmod +x /tmp/www/cgi-bin/addr
in_srv httpd -f -p "$SRV_IP:80" -h /tmp/www &
check "nat: httpd listens in the server namespace" wait_until 50 listening 80

# Counters of the server's and the client's view of zero-checksum datagrams.
check "nat: server counts zero-checksum datagrams" in_srv nft -f - <<EOF
table ip seen {
  chain in {
    type filter hook input priority filter;
    udp dport 7002 udp checksum 0 counter comment "zero"
  }
}
EOF
check "nat: client counts zero-checksum datagrams" in_cli nft -f - <<EOF
table ip seen {
  chain in {
    type filter hook input priority filter;
    udp sport 7002 udp checksum 0 counter comment "zero"
  }
}
EOF
seen() { "$1" nft list chain ip seen in | sed -n "s/.*counter packets \([0-9]*\) .*comment \"$2\".*/\1/p"; }

unreachable() { ! in_cli ping -c 1 -W 1 "$PUB" >/dev/null 2>&1; }
check "nat: without NAT 10.0.3.2 is unreachable" unreachable

# The router: every packet it receives is counted (the same counter for Lua and native NAT);
# UDP to port 7009 gets a wrong UDP checksum, to port 7008 a wrong IPv4 header checksum, to
# prove the receivers verify them.
check "nat: router counts packets, spoils UDP to :7008 and :7009" nft -f - <<'EOF'
table ip router {
  chain pre {
    type filter hook prerouting priority raw - 10;
    counter comment "all"
    meta length > 1500 counter comment "gso"
  }
  chain spoil {
    type filter hook prerouting priority filter;
    udp dport 7009 @th,48,16 set 0x1234
    udp dport 7008 @nh,80,16 set 0x1234
  }
}
EOF
meter_packets() { # [COMMENT]: packets of that rule of the router's counters, default all
  nft list chain ip router pre | sed -n "s/.*counter packets \([0-9]*\) .*comment \"${1:-all}\".*/\1/p"
}

check "nat: lpctl script load nat.lua" lpctl script load /vm/scenarios/nat.lua --name nat
nft add table ip nat
nft add chain ip nat pre '{ type filter hook prerouting priority raw; }'
check "nat: lua rule at prerouting, priority raw" \
  lpctl rule add ip nat pre counter lua script nat function nat
lua_packets() { nft list chain ip nat pre | sed -n 's/.*counter packets \([0-9]*\) .*/\1/p'; }
js() { lpctl -j script show nat | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

# One round of traffic through the public address, checks named "nat (MODE): ...".
traffic() {
  local mode=$1 e0 g0
  e0=$(errors) g0=$(meter_packets gso)
  check_eq "nat ($mode): TCP client -> server, 100000 bytes" 100000 "$(tcp_up 7100 100000)"
  check "nat ($mode): TCP data intact" cmp /tmp/up-7100.src /tmp/up-7100.out
  check_eq "nat ($mode): TCP echo, 100000 bytes back" 100000 "$(tcp_echo 7101 100000)"
  check "nat ($mode): TCP echo intact" cmp /tmp/echo-7101.src /tmp/echo-7101.out
  # TCP segments larger than the MTU are GSO packets, which carry CHECKSUM_PARTIAL.
  if [ "$mode" = partial ]; then
    check_ge "nat ($mode): the router got GSO packets (CHECKSUM_PARTIAL)" 1 "$(($(meter_packets gso) - g0))"
  else
    check_eq "nat ($mode): the router got no GSO packet" 0 "$(($(meter_packets gso) - g0))"
  fi
  check_eq "nat ($mode): UDP echo: the server saw the client, the client heard 10.0.3.2" \
    "$CLI_IP hello-7001" "$(udp_echo 7001)"
  ping_pub
  check_eq "nat ($mode): ping 10.0.3.2: 3 replies" 3 \
    "$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping.out)"
  check "nat ($mode): the replies come from 10.0.3.2" grep -q "bytes from $PUB" /tmp/ping.out
  check_eq "nat ($mode): HTTP: the server saw the client's address" "$CLI_IP" \
    "$(in_cli wget -q -O - "http://$PUB/cgi-bin/addr" 2>&1)"
  in_cli wget -q -O /tmp/blob.got "http://$PUB/blob"
  check "nat ($mode): HTTP: 200000-byte file intact" cmp /tmp/www/blob /tmp/blob.got
  rm -f /tmp/blob.got
  # SO_NO_CHECK on both sockets: IPv4 UDP without checksum (0), both ways; 0 must stay 0.
  local z0s z0c
  z0s=$(seen in_srv zero) z0c=$(seen in_cli zero)
  check_eq "nat ($mode): UDP with checksum 0 delivered both ways" "$CLI_IP hello-7002" \
    "$(udp_echo 7002 setsockopt-int=1:11:1)"
  check_eq "nat ($mode): its checksum was still 0 at the server and at the client" "1 1" \
    "$(($(seen in_srv zero) - z0s)) $(($(seen in_cli zero) - z0c))"
  check_eq "nat ($mode): no checksum or header errors in the end namespaces" "$e0" "$(errors)"
  # The controls: checksums broken on purpose are dropped and counted by the server.
  local u0 h0
  u0=$(snmp_get in_srv Udp:InCsumErrors) h0=$(snmp_get in_srv Ip:InHdrErrors)
  check_eq "nat ($mode): control: UDP with a spoiled checksum is dropped" 0 "$(udp_lost 7009)"
  check_eq "nat ($mode): control: UDP with a spoiled IPv4 header checksum is dropped" 0 \
    "$(udp_lost 7008)"
  check_eq "nat ($mode): control: the server counted them (Udp InCsumErrors +1, Ip InHdrErrors +1)" \
    "1 1" "$(($(snmp_get in_srv Udp:InCsumErrors) - u0)) $(($(snmp_get in_srv Ip:InHdrErrors) - h0))"
}

traffic "partial"

# The same with full checksums from the senders: the setters update them incrementally.
in_cli ethtool -K c0 tx off >/dev/null
in_srv ethtool -K s0 tx off >/dev/null
traffic "full"

check_eq "nat: the script ran once per packet the rule saw" "$(lua_packets)" "$(js run_cnt)"
check_eq "nat: no errors in the script (lua, memory, fuel, trap)" "0 0 0 0" \
  "$(js err_lua) $(js err_memory) $(js err_fuel) $(js err_trap)"

# Throughput: the same bulk transfer (server -> client, full checksums) through the Lua NAT and
# through nft's native NAT (conntrack), two rounds each, alternating, the best of each kept (the
# host running qemu is shared). Packets are counted at the router.
nft delete table ip nat
nat_lua() {
  nft add table ip nat && nft add chain ip nat pre '{ type filter hook prerouting priority raw; }' &&
    lpctl rule add ip nat pre counter lua script nat function nat
}
nat_native() {
  nft -f - <<EOF
table ip nat {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr $PUB dnat to $SRV_IP
  }
  chain post {
    type nat hook postrouting priority srcnat;
    ip saddr $SRV_IP snat to $PUB
  }
}
EOF
}
head -c "$BULK" /dev/urandom >/tmp/bulk
sum=$(md5sum </tmp/bulk)
best_lua='' best_native='' pk_lua=0 pk_native=0 rtx_lua=0 rtx_native=0 fuel=0 runs=0 rt_ns=0
better() { [ -z "$1" ] || [ "$2" -lt "$1" ]; } # BEST NEW: is NEW a shorter time?
bulk() { # lua|native PORT: one transfer through that NAT, checked and measured
  local p0 r0 f0 t0 x0 got cs pk rtx
  check "nat: $1 NAT set up (:$2)" "nat_$1"
  r0=$(js run_cnt) f0=$(js fuel_total) t0=$(js run_time_ns)
  p0=$(meter_packets) x0=$(snmp_get in_srv Tcp:RetransSegs)
  got=$(tcp_down "$2" /tmp/bulk)
  cs=$(cat /tmp/down-"$2".cs) pk=$(($(meter_packets) - p0))
  rtx=$(($(snmp_get in_srv Tcp:RetransSegs) - x0))
  check_eq "nat: $1 (:$2): bulk transfer of $BULK bytes complete" "$BULK" "$got"
  check_eq "nat: $1 (:$2): bulk transfer intact (md5)" "$sum" "$(md5sum </tmp/down-"$2".out)"
  rm -f /tmp/down-"$2".*
  if [ "$1" = lua ]; then
    better "$best_lua" "$cs" && best_lua=$cs
    pk_lua=$((pk_lua + pk)) rtx_lua=$((rtx_lua + rtx))
    runs=$((runs + $(js run_cnt) - r0)) fuel=$((fuel + $(js fuel_total) - f0))
    rt_ns=$((rt_ns + $(js run_time_ns) - t0))
  else
    better "$best_native" "$cs" && best_native=$cs
    pk_native=$((pk_native + pk)) rtx_native=$((rtx_native + rtx))
  fi
  nft delete table ip nat
}
for round in 1 2; do
  bulk lua "730$round"
  bulk native "731$round"
done
check_eq "nat: the script ran once per packet of the lua transfers" "$pk_lua" "$runs"
check "nat: the lua rules gone, the script unloads" lpctl script unload nat

rate() { awk -v b="$BULK" -v cs="$1" 'BEGIN { if (cs < 1) cs = 1; printf "%d", b / 1024 * 100 / cs }'; }
per() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", b ? a / b : 0 }'; }
lua_rate=$(rate "$best_lua") native_rate=$(rate "$best_native")
note "measure: NAT throughput lua $lua_rate KiB/s, nft native $native_rate KiB/s," \
  "ratio $(awk -v a="$lua_rate" -v b="$native_rate" 'BEGIN { printf "%.2f", b ? a / b : 0 }')" \
  "($BULK bytes server -> client, full checksums, best of 2, TCG)"
note "measure: NAT packets at the router per transfer: lua $((pk_lua / 2)), native $((pk_native / 2));" \
  "server retransmissions in 2 transfers: lua $rtx_lua, native $rtx_native"
note "measure: NAT script: $runs runs, $(per "$fuel" "$runs") fuel and $(per "$rt_ns" "$runs") ns per packet (TCG)"

nft delete table ip router
router_down
