# NFQUEUE mode (issue 12): `lpctl serve --queue N SCRIPT...` with a real `queue num N` rule and
# no nft_lua module: the peer's datagrams are accepted, dropped and rewritten by Lua in
# userspace; two scripts judge in turn; a second server cannot take the bound queue; a script
# that fails to load is refused before the queue is bound.
# vm-requires: lpctl
# vm-modules: nfnetlink_queue nft_queue
. /vm/lib.sh

check "nfqueue: peer namespace" peer_up
cat >/tmp/q.lua <<'LUA'
function process_packet(p)
  local udp = p.udp
  if not udp then return lp.CONTINUE end
  if udp.dport == 7101 then return lp.DROP end
  if udp.dport == 7102 then
    p:set_bytes(p.ip.hdrlength * 4 + 8, "REWRITE")
    p:fix_checksums()
    return lp.ACCEPT
  end
  if udp.dport == 7103 then p.meta.mark = 42 end
  return lp.CONTINUE
end
LUA
printf 'function process_packet(p) if p.udp and p.udp.dport == 7104 then return lp.DROP end return lp.ACCEPT end\n' >/tmp/q2.lua
nft -f - <<'NFT'
table inet q {
	chain input {
		type filter hook input priority 0; policy accept;
		iifname v0 udp dport 7100-7104 queue num 3
	}
	# a packet accepted from the queue goes on at the hook's next chain, not the next rule
	chain after {
		type filter hook input priority 10; policy accept;
		iifname v0 udp dport 7103 meta mark 42 counter comment "marked"
	}
}
NFT
check "nfqueue: the queue rule" nft list chain inet q input
queue_bound() { grep -qE "^ *3 " /proc/net/netfilter/nfnetlink_queue; }
lpctl -j serve --queue 3 /tmp/q.lua /tmp/q2.lua --count 15 >/tmp/serve.json 2>/tmp/serve.err &
srv=$!
check "nfqueue: lpctl serve binds queue 3" wait_until 100 queue_bound
check "nfqueue: a second server cannot take it" sh -c '! lpctl serve --queue 3 /tmp/q.lua --count 1 2>/tmp/e && grep -q "queue 3" /tmp/e'
check_eq "nfqueue: accepted by the second script (7100)" 3 "$(udp_transfer 3 7100)"
check_eq "nfqueue: dropped by the first (7101)" 0 "$(udp_transfer 3 7101 0)"
check_eq "nfqueue: rewritten (7102) arrive" 3 "$(udp_transfer 3 7102)"
check "nfqueue: ... with the bytes the script wrote" grep -q "^REWRITE" /tmp/udp-7102.out
check_eq "nfqueue: marked by the first, accepted by the second (7103)" 3 "$(udp_transfer 3 7103)"
check_ge "nfqueue: ... the mark is on the packets after the queue" 3 "$(nft_rule_packets inet q after marked)"
check_eq "nfqueue: dropped by the second (7104)" 0 "$(udp_transfer 3 7104 0)"
wait_bounded 10 "$srv"
check "nfqueue: the server stops after --count packets" sh -c "! kill -0 $srv 2>/dev/null"
check "nfqueue: ... and tallies them" sh -c 'grep -q "\"packets\":15" /tmp/serve.json && grep -q "\"drop\":6" /tmp/serve.json && grep -q "\"rewritten\":3" /tmp/serve.json'
note "measure: $(cat /tmp/serve.json)"
printf 'function process_packet(p) return lp.ACCEPT end\nerror("at load")\n' >/tmp/bad.lua
check "nfqueue: a script that fails to load is refused, naming it" sh -c \
  '! lpctl serve --queue 4 /tmp/bad.lua 2>/tmp/e && grep -q "bad.lua" /tmp/e && ! grep -qE "^ *4 " /proc/net/netfilter/nfnetlink_queue'
nft delete table inet q
