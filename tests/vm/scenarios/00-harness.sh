# Proves the harness with stock nft: traffic from a peer namespace over veth is delivered and
# counted exactly by an inet table's input rules, and a drop rule is observed.
. /vm/lib.sh

check "harness: nft is usable" nft list ruleset
check "harness: peer namespace with veth (10.99.0.1 <-> 10.99.0.2)" peer_up

nft -f - <<'EOF'
table inet vmtest {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "v0" meta l4proto icmp counter comment "icmp"
    iifname "v0" udp dport 5000 counter comment "udp-5000"
    iifname "v0" udp dport 5001 counter drop comment "udp-5001-drop"
    iifname "v0" tcp dport 5002 tcp flags & (syn | ack) == syn counter comment "tcp-syn"
    iifname "v0" tcp dport 5002 counter comment "tcp-5002"
  }
}
EOF
check "harness: table inet vmtest loaded" nft list table inet vmtest

check_eq "harness: ping -c 3 from the peer gets 3 replies" 3 "$(ping_count 3)"
check_eq "harness: icmp counter is exactly 3" 3 "$(nft_rule_packets inet vmtest input icmp)"

check_eq "harness: 10 UDP datagrams to :5000 all delivered" 10 "$(udp_transfer 10 5000)"
check_eq "harness: udp :5000 counter is exactly 10" 10 "$(nft_rule_packets inet vmtest input udp-5000)"
check_eq "harness: udp :5000 counter bytes = 10 x (20 + 8 + 8)" 360 "$(nft_rule_bytes inet vmtest input udp-5000)"

check_eq "harness: 10 UDP datagrams to :5001 all dropped" 0 "$(udp_transfer 10 5001 0)"
check_eq "harness: drop rule counted exactly 10" 10 "$(nft_rule_packets inet vmtest input udp-5001-drop)"

check_eq "harness: TCP transfer of 100000 bytes with nc" 100000 "$(tcp_transfer 100000 5002)"
check "harness: TCP data arrived intact" cmp /tmp/tcp-5002.src /tmp/tcp-5002.out
check_eq "harness: exactly one TCP SYN counted" 1 "$(nft_rule_packets inet vmtest input tcp-syn)"
check_ge "harness: tcp :5002 counter saw the connection (>= 3 packets)" 3 \
  "$(nft_rule_packets inet vmtest input tcp-5002)"

# Nothing else reached these rules: the icmp counter is still 3.
check_eq "harness: icmp counter unchanged by UDP/TCP" 3 "$(nft_rule_packets inet vmtest input icmp)"

nft delete table inet vmtest
check "harness: table deleted" sh -c '! nft list table inet vmtest'
peer_down
