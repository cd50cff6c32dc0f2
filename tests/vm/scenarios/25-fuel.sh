# Fuel is the guest's own count (guest-lua/build/fuel.rs): the fuel a packet's call costs in the
# kernel is what `lpctl run` reports offline for the same script and datagram
# (/vm/data/udp8.pcap has the shape of the peer's datagrams), for a trivial script, one that
# reads fields, and one that loops; and a script out of fuel is cut at the same count.
# vm-requires: module lpctl
# vm-engines: wasmi
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "fuel: $m loaded" grep -q "^$m " /proc/modules
check "fuel: peer namespace" peer_up
check "fuel: the datagram's capture is present" test -f /vm/data/udp8.pcap

js() { # NAME FIELD: a number from `lpctl -j script show`
  lpctl -j script show "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -n 1
}
# within PCT SLACK WANT GOT: GOT is WANT +- (PCT percent + SLACK). The slack: the kernel seeds
# each instance's string hash at random (against hash flooding), lpctl run with a fixed seed,
# so a table lookup (`lp.ACCEPT` is two) may take a probe or two more in one than in the
# other, ~13 fuel each: a fixed amount per call, which is more than 3% of a trivial call's.
within() {
  _d=$(( $1 * $3 + 100 * $2 ))
  [ $(( ($4 - $3) * 100 )) -le $_d ] && [ $(( ($3 - $4) * 100 )) -le $_d ]
}
offline() { # SCRIPT [OPTIONS]: the fuel of the capture's one packet under lpctl run
  _s=$1
  shift
  lpctl run --json "$_s" --pcap /vm/data/udp8.pcap "$@" | sed -n 's/.*"fuel":\([0-9]*\),"index":0.*/\1/p'
}

cat >/tmp/f-accept.lua <<'EOF'
function process_packet(pkt) return lp.ACCEPT end
EOF
cat >/tmp/f-fields.lua <<'EOF'
function process_packet(pkt)
  local u = pkt.udp
  if u and u.dport == 7100 and pkt.ip.ttl > 0 and #u.payload == 8 then return lp.ACCEPT end
  return lp.DROP
end
EOF
cat >/tmp/f-loop.lua <<'EOF'
function process_packet(pkt)
  -- (no allocation: a collector step would land on some calls and not others)
  local x = 0
  for i = 1, 200 do x = x + i % 7 end
  return x > 0 and lp.ACCEPT or lp.DROP
end
EOF
cat >/tmp/f-spin.lua <<'EOF'
function process_packet(pkt) while true do end end
EOF

nft -f - <<'NFT'
table inet fuel {
  chain input {
    type filter hook input priority filter; policy accept;
  }
}
NFT
for s in accept fields loop; do
  want=$(offline /tmp/f-$s.lua)
  check "fuel: $s: lpctl run measures it offline ($want fuel)" test -n "$want"
  check "fuel: $s loaded" lpctl script load /tmp/f-$s.lua --name f-$s
  check "fuel: rule on f-$s" lpctl rule add inet fuel input iifname v0 udp dport 7100 lua script f-$s
  check_eq "fuel: $s: 5 datagrams accepted" 5 "$(udp_transfer 5 7100)"
  runs=$(js f-$s run_cnt) total=$(js f-$s fuel_total) max=$(js f-$s fuel_max)
  check_eq "fuel: $s ran once per datagram" 5 "$runs"
  check_eq "fuel: $s: no errors (fuel, lua)" "0 0" "$(js f-$s err_fuel) $(js f-$s err_lua)"
  # the same count, not the same number to the unit: the collector's state (what earlier
  # calls left, per CPU instance) moves a call's fuel by a few tenths of a percent, the hash
  # seed by a few probes (within's slack)
  check "fuel: $s: the kernel's fuel per call is lpctl run's within 3% + 40 ($max, offline $want)" \
    within 3 40 "$want" "$max"
  check "fuel: $s: every call within 3% + 40 ($total for 5)" within 3 200 $((want * 5)) "$total"
  nft flush chain inet fuel input
  for c in $(nft list table inet fuel | sed -n 's/^[[:space:]]*chain \(lua-[^ ]*\) {/\1/p'); do
    nft delete chain inet fuel "$c"
  done
  check "fuel: f-$s unloads" lpctl script unload f-$s
done

# out of fuel: the kernel cuts the call at its fuel, as lpctl run does
want=$(offline /tmp/f-spin.lua --fuel 50000 --on-error accept)
check_eq "fuel: spin: offline, cut at its 50000 fuel" 50000 "$want"
check "fuel: spin loaded (50000 fuel, on-error accept)" \
  lpctl script load /tmp/f-spin.lua --name f-spin --fuel 50000 --on-error accept
check "fuel: rule on f-spin" lpctl rule add inet fuel input iifname v0 udp dport 7100 lua script f-spin
check_eq "fuel: spin: the datagram is accepted by the policy" 1 "$(udp_transfer 1 7100)"
check_eq "fuel: spin: counted as out of fuel" 1 "$(js f-spin err_fuel)"
check_eq "fuel: spin: cut at 50000 fuel in the kernel" 50000 "$(js f-spin fuel_max)"
nft delete table inet fuel
wait_until 50 lpctl script unload f-spin
check "fuel: no script left" sh -c '[ -z "$(lpctl script list)" ]'
