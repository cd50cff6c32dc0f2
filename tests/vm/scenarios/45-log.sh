# A script's log and its kept errors (issue 11): lp.log (lp.debug, lp.warn) lines in the script's own ring, read
# with `lpctl log` (text, JSON, --level, -f following until the script goes), rate-limited per
# script (a flood is dropped and counted, not printed), cut to their longest, kept across a
# replacement; errors kept with their packets and metadata, shown by `lpctl script errors`,
# written as pcapng (-w) and replayed offline by `lpctl run`, reproducing the error.
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "log: $m loaded" grep -q "^$m " /proc/modules
check "log: peer namespace" peer_up

cat >/tmp/logs.lua <<'EOF'
local n = 0
-- made at load: building long strings in a call costs its fuel (allocation drives the GC)
local LONG = string.rep("x", 2000)
function process_packet(pkt)
  local u = pkt.udp
  if not u then return lp.CONTINUE end
  n = n + 1
  local p = u.dport
  if p == 7001 then lp.log("hello " .. n) end
  if p == 7002 then error("boom on " .. p .. " mark " .. pkt.meta.mark) end
  -- a line costs ~1,100 fuel: 25 a call leave room in a call's 100,000 for a collection
  -- cycle (~50,000 fuel on this heap; 50 a call ran out of fuel when one landed there)
  if p == 7003 then for i = 1, 25 do lp.log("flood " .. i) end end
  if p == 7004 then lp.log(LONG) end
  if p == 7005 then lp.debug("quiet " .. n) lp.log("plain " .. n) lp.warn("loud " .. n) end
  return lp.ACCEPT
end
EOF

check "log: script loads" lpctl script load /tmp/logs.lua --name logs
nft add table inet lg
nft add chain inet lg in '{ type filter hook input priority 0; policy accept; }'
check "log: lua rule on udp 7001-7009" \
  lpctl rule add inet lg in iifname v0 udp dport 7001-7009 meta mark set 0x2a lua script logs

check_eq "log: 3 datagrams to :7001 pass" 3 "$(udp_transfer 3 7001)"
out=$(lpctl log logs)
check_eq "log: lpctl log shows the three lines" 3 "$(echo "$out" | grep -c 'info: hello [0-9]')"
check "log: ... stamped with the kernel's time, as dmesg" \
  sh -c "echo '$out' | grep -qE '^\[ *[0-9]+\.[0-9]{6}\] info: hello 1$'"
js=$(lpctl -j log logs)
check "log: -j gives the lines as objects" \
  sh -c "echo '$js' | grep -q '\"level\":\"info\",\"seq\":1,\"text\":\"hello 1\"'"
check "log: -j says how many were lost (none)" sh -c "echo '$js' | grep -q '{\"lost\":0}'"

# levels: lp.debug, lp.log, lp.warn; --level shows that level and above; debug lines stay
# out of the kernel log
check_eq "log: a datagram to :7005 passes" 1 "$(udp_transfer 1 7005)"
out=$(lpctl log logs)
check "log: lpctl log shows debug, info and warn lines, in order" \
  sh -c "echo '$out' | grep -E 'quiet |plain |loud ' | sed 's/^[^]]*] //' | tr '\n' ' ' | grep -qE '^debug: quiet [0-9]+ info: plain [0-9]+ warn: loud [0-9]+ $'"
check_eq "log: --level info hides the debug line" "0 1 1" \
  "$(lpctl log logs --level info | grep -c 'quiet ') $(lpctl log logs --level info | grep -c 'plain ') $(lpctl log logs --level info | grep -c 'loud ')"
check_eq "log: --level warn shows the warning only" "0 0 1" \
  "$(lpctl log logs --level warn | grep -c 'quiet ') $(lpctl log logs --level warn | grep -c 'plain ') $(lpctl log logs --level warn | grep -c 'loud ')"
check "log: -j names the level" sh -c "lpctl -j log logs | grep -q '\"level\":\"debug\",\"seq\":[0-9]*,\"text\":\"quiet '"
check "log: the kernel log has the info and warn lines" \
  sh -c "dmesg | grep -q 'script logs: plain ' && dmesg | grep -q 'script logs: loud '"
check "log: ... not the debug line" sh -c "! dmesg | grep -q 'script logs: quiet '"
check "log: an unknown level is refused, naming the levels" \
  sh -c "! lpctl log logs --level loud 2>/tmp/lv.err && grep -q 'debug, info or warn' /tmp/lv.err"

# errors: kept with their packets, logged as warnings
check_eq "log: 2 datagrams to :7002 pass (the error resolves to continue)" 2 "$(udp_transfer 2 7002)"
warn=$(lpctl log logs --level warn)
check_eq "log: --level warn shows the two errors" 2 "$(echo "$warn" | grep -c 'warn: .*boom on 7002 mark 42')"
check_eq "log: ... and no info line" 0 "$(echo "$warn" | grep -c 'info:')"
errs=$(lpctl script errors logs)
note "$(echo "$errs" | head -n 3)"
check_eq "log: lpctl script errors shows both" 2 "$(echo "$errs" | grep -c '^#[12] .* lua: .*boom on 7002 mark 42')"
check "log: ... with the entry, hook, interface, mark and length" \
  sh -c "echo '$errs' | grep -q 'function process_packet  hook input  iif v0  oif   mark 0x2a  len 36 (36 kept)'"
check "log: -j errors carry the packet" \
  sh -c "lpctl -j script errors logs | grep -q '\"kind\":\"lua\".*\"packet\":\"45'"
check "log: -w writes the packets" lpctl script errors logs -w /tmp/errors.pcapng
check "log: ... a pcapng file" sh -c '[ "$(head -c 4 /tmp/errors.pcapng | od -An -tx1 | tr -d " ")" = 0a0d0d0a ]'
replay=$(lpctl -j run /tmp/logs.lua --pcap /tmp/errors.pcapng)
check "log: lpctl run replays them: the same two errors" \
  sh -c "echo '$replay' | grep -q '\"lua\":2'"
check_eq "log: ... with the packets' own metadata (mark 42)" 2 \
  "$(echo "$replay" | grep -o 'boom on 7002 mark 42' | wc -l)"

# a flood: 40 calls log 1000 lines; the burst is kept, the rest dropped and counted
check_eq "log: 40 datagrams to :7003 pass" 40 "$(udp_transfer 40 7003)"
show=$(lpctl script show logs)
note "$(echo "$show" | grep 'log:')"
dropped=$(echo "$show" | sed -n 's/.*log: lines [0-9]*  dropped \([0-9]*\).*/\1/p')
check_ge "log: the flood is dropped past the burst" 300 "${dropped:-0}"
check "log: dmesg did not get the flood" sh -c '[ "$(dmesg | grep -c "flood")" -le 200 ]'
lines=$(lpctl log logs | wc -l)
check "log: the ring holds what fits in 32 KiB (<= 1024 lines of this size)" test "$lines" -le 1024
# (the last lines, and anything lpctl said, are printed when this fails)
check "log: ... and the newest are there" sh -c 'lpctl log logs >/tmp/log.all; tail -n 3 /tmp/log.all; tail -n 1 /tmp/log.all | grep -q "flood [0-9]"'

# following: new lines as they come; the burst refills at 100 lines a second
sleep 2
lpctl log logs -f >/tmp/follow.out 2>/tmp/follow.err &
fpid=$!
sleep 1
udp_transfer 2 7001 >/dev/null
check "log: -f prints the new lines" wait_until 50 sh -c '[ "$(grep -c "info: hello" /tmp/follow.out)" -ge 5 ]'
check_eq "log: a long line is cut to 1024 bytes" 1 "$(udp_transfer 1 7004)"
longest() { sed -n 's/.*info: \(xx*\)$/\1/p' /tmp/follow.out | awk '{ print length($0) }' | sort -n | tail -n 1; }
check "log: ... as it is kept" wait_until 50 sh -c '[ -n "$(sed -n "/info: xx*$/p" /tmp/follow.out)" ]'
check_eq "log: ... to 1024 bytes" 1024 "$(longest)"

# a replacement keeps the log
sed 's/hello/hi/' /tmp/logs.lua >/tmp/logs2.lua
check "log: replace the script" lpctl script load /tmp/logs2.lua --name logs --replace
udp_transfer 1 7001 >/dev/null
check "log: its log has the old lines and the new" \
  sh -c 'lpctl log logs | grep -q "info: hello" && lpctl log logs | grep -q "info: hi "'
check "log: -f follows across the replacement" wait_until 50 grep -q "info: hi " /tmp/follow.out

# unloading ends a follower with an error naming the script
check "log: rule deleted" sh -c 'nft flush table inet lg && nft delete table inet lg'
check "log: script unloads while followed" lpctl script unload logs
gone() { [ ! -d "/proc/$1" ] || grep -q ') Z' "/proc/$1/stat"; }
check "log: the follower stops by itself" wait_until 30 gone "$fpid"
wait "$fpid"
frc=$?
check "log: ... failing (exit $frc), naming the script" \
  sh -c "[ $frc -ne 0 ] && grep -q 'log of logs' /tmp/follow.err"
check "log: lpctl log of an unknown script fails clearly" \
  sh -c 'lpctl log logs 2>&1 | grep -q "no such script" && ! lpctl log logs 2>/dev/null'
check "log: lpctl script errors of an unknown script fails" sh -c '! lpctl script errors logs 2>/dev/null'
