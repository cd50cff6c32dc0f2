# Netlink fuzzing of the module: `lpctl selftest fuzz-netlink --count 100000` sends random and
# mutated luapkt requests (every command id, attributes of wrong types and sizes, extreme
# limits, upload sequences with wrong ids, offsets and sizes, garbage packages, truncated
# headers, wrong genl versions) and nf_tables batches creating `lua` expressions with fuzzed
# attributes, over one socket per family, and counts the answers by errno (printed as notes).
# A script loaded before the storm must still be listed and still run on traffic, its rule
# and itself must still delete and unload, and the module must unload; the harness then scans
# the kernel log for BUG/WARNING/Oops. The fuzzer's time is printed as a "# measure:" note.
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "fuzz: $m loaded" grep -q "^$m " /proc/modules
check "fuzz: peer namespace" peer_up

uptime_cs() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }
runs() { lpctl -j script show alive | sed -n 's/.*"run_cnt":\([0-9]*\).*/\1/p'; }

printf '%s\n' 'function process_packet(p) return lp.ACCEPT end' >/tmp/alive.lua
check "fuzz: load the script alive" lpctl script load /tmp/alive.lua --name alive
nft add table inet fz '{ chain in { type filter hook input priority 0; policy accept; }; }'
check "fuzz: rule using alive (udp dport 7100)" \
  lpctl rule add inet fz in iifname v0 udp dport 7100 lua script alive
check_eq "fuzz: 5 datagrams through alive before" 5 "$(udp_transfer 5 7100)"
runs0=$(runs)
check_ge "fuzz: alive ran on them" 5 "$runs0"

t0=$(uptime_cs)
lpctl selftest fuzz-netlink --count 100000 >/tmp/fuzz.out 2>&1
rc=$?
t1=$(uptime_cs)
while IFS= read -r line; do note "$line"; done </tmp/fuzz.out
note "measure: fuzz-netlink: 100000 requests in $(((t1 - t0) * 10)) ms of guest time (TCG)"
check_eq "fuzz: lpctl selftest fuzz-netlink exit status" 0 "$rc"
check "fuzz: luapkt summary printed" grep -qE '^fuzz luapkt: [0-9]+ sent, [0-9]+ refused \(.*\), [0-9]+ accepted' /tmp/fuzz.out
check "fuzz: nf_tables summary printed" grep -qE '^fuzz nf_tables lua: [0-9]+ sent, [0-9]+ refused \(.*\), [0-9]+ accepted' /tmp/fuzz.out
check "fuzz: every request that asked for an answer got one" sh -c '! grep -q UNANSWERED /tmp/fuzz.out'
check "fuzz: no socket error" sh -c '! grep -q "^fuzz socket error" /tmp/fuzz.out'
check "fuzz: cleaned up after itself" grep -q '^fuzz cleanup: table lpfuzz deleted' /tmp/fuzz.out
check "fuzz: no lpfuzz script left" sh -c '! lpctl script list | grep -q "^lpfuzz"'
check "fuzz: no lpfuzz table left" sh -c '! nft list tables | grep -q lpfuzz'

check "fuzz: alive still listed" sh -c 'lpctl script list | grep -q "^alive: tag "'
check_eq "fuzz: 5 datagrams through alive after" 5 "$(udp_transfer 5 7100)"
check_ge "fuzz: alive ran on them" $((runs0 + 5)) "$(runs)"
h=$(nft -a list chain inet fz in | sed -n 's/.*jump lua-alive # handle \([0-9]*\).*/\1/p')
check "fuzz: lpctl rule delete (handle $h)" lpctl rule delete inet fz in handle "$h"
check "fuzz: lpctl script unload alive" lpctl script unload alive
check "fuzz: no script left" sh -c '[ -z "$(lpctl script list)" ]'
nft delete table inet fz
peer_down
check "fuzz: rmmod $m" rmmod "$m"
