# The demo: a script loaded into nft_lua.ko drops and accepts real traffic from a peer namespace.
# vm-requires: module lpctl
. /vm/lib.sh

show() { "$@" 2>&1 | while IFS= read -r line; do note "  $line"; done; }

check "demo: peer namespace over veth" peer_up
note "\$ lpctl script load demo.lua"
show lpctl script load /vm/scenarios/demo.lua --name demo
nft add table inet demo
nft add chain inet demo input '{ type filter hook input priority 0; }'
note "\$ lpctl rule add inet demo input iifname v0 udp dport 5000-5001 counter lua script demo"
check "demo: rule added" lpctl rule add inet demo input iifname v0 udp dport 5000-5001 counter lua script demo
check_eq "demo: 20 of 20 datagrams to :5000 accepted" 20 "$(udp_transfer 20 5000)"
check_eq "demo: 0 of 20 datagrams to :5001 (dropped by the script)" 0 "$(udp_transfer 20 5001 0)"
note "\$ lpctl script show demo"
show lpctl script show demo
check_eq "demo: the script ran once per datagram" 40 "$(lpctl -j script show demo | sed -n 's/.*"run_cnt":\([0-9]*\).*/\1/p')"
note "\$ lpctl rule add inet demo prerouting iifname v0 udp dport 5002 lua script demo function redirect"
nft add chain inet demo prerouting '{ type filter hook prerouting priority -150; }'
check "demo: redirect rule added" lpctl rule add inet demo prerouting iifname v0 udp dport 5002 lua script demo function redirect
csum_errs() { awk '$1 == "Udp:" && !h { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next }
  $1 == "Udp:" { print $c["InCsumErrors"] }' /proc/net/snmp; }
e0=$(csum_errs)
check_eq "demo: 20 of 20 datagrams sent to :5002 received on :5000 (pkt.udp.dport = 5000)" 20 "$(udp_transfer 20 5002 20 5000)"
check_eq "demo: no UDP checksum error here (InCsumErrors)" "$e0" "$(csum_errs)"
note "\$ lpctl rule list"
show lpctl rule list
note "\$ nft list table inet demo"
show nft list table inet demo
note "script log (dmesg):"
show sh -c 'dmesg | grep -i "demo" | tail -n 3'
