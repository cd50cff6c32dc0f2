# PacketScript's TFTP cache (issue 11, examples/tftp-cache.lua) on a router between a busybox
# tftp client and a real server (tftpd-hpa's in.tftpd): the first download of each file goes
# to the server and the script learns it; later ones are answered by the router itself,
# byte-identical, with the server's traffic counted (none) and then with the server stopped.
# Files of 3 blocks, of exactly 2 blocks (an empty last block) and of 200 blocks. Downloads per
# second and the time of one, through the server and from the cache, are "# measure:" notes.
# vm-requires: module lpctl
# vm-engines: wasmi
. /vm/lib.sh

# client 10.0.1.2 (c0) -- r-cli 10.0.1.1 [router: root ns] 10.0.2.1 r-srv -- (s0) 10.0.2.2 server
ROUNDS=10 # downloads timed each way

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "tftp: $m loaded" grep -q "^$m " /proc/modules
check "tftp: in.tftpd is in the VM" test -x /usr/sbin/in.tftpd

check "tftp: topology (client, router, server)" router_up

mkdir -p /srv/tftp
head -c 1300 /dev/urandom >/srv/tftp/small.bin  # 3 blocks
head -c 1024 /dev/urandom >/srv/tftp/exact.bin  # 2 full blocks and an empty third
head -c 102400 /dev/urandom >/srv/tftp/big.bin  # 200 full blocks and an empty last
head -c 600 /dev/urandom >/srv/tftp/never.bin   # never downloaded: not cached
# in.tftpd in the foreground (-L), its pid in /tmp/tftpd.pid (in_srv is a function: `$!` would
# be the subshell around nsenter)
tftpd_on() {
  in_srv sh -c 'echo $$ >/tmp/tftpd.pid; exec /usr/sbin/in.tftpd -L -a '"$SRV_IP"':69 -s /srv/tftp -u root' >/dev/null 2>&1 &
  wait_until 50 in_srv sh -c ". /vm/lib.sh; udp_bound 69"
}
tftpd_off() {
  kill "$(cat /tmp/tftpd.pid)" || return 1
  wait_until 50 sh -c '! kill -0 "$(cat /tmp/tftpd.pid)" 2>/dev/null' &&
    ! in_srv sh -c ". /vm/lib.sh; udp_bound 69"
}
check "tftp: the server listens" tftpd_on

# get FILE: the client downloads FILE from the server's address to /tmp/FILE.got
get() { rm -f "/tmp/$1.got"; in_cli timeout 10 tftp -g -r "$1" -l "/tmp/$1.got" "$SRV_IP"; }
same() { cmp -s "/srv/tftp/$1" "/tmp/$1.got"; }
# timed N FILE: N downloads; prints their total time in ms (exits non-zero if one failed)
timed() {
  local i=0 t0 t1
  t0=$(uptime_ms)
  while [ $i -lt "$1" ]; do get "$2" && same "$2" || return 1; i=$((i + 1)); done
  t1=$(uptime_ms)
  echo $((t1 - t0))
}

ruleset() {
  nft -f - <<'NFT'
table inet tc {
  chain cachefw {
    type filter hook forward priority filter; policy accept;
  }
  chain toserver {
    type filter hook postrouting priority filter; policy accept;
    oifname "r-srv" udp dport 69 counter comment "to-server-69"
    oifname "r-srv" meta l4proto udp counter comment "to-server"
  }
}
NFT
}
check "tftp: a table counting what goes to the server" ruleset

# the server's path, without the script: the baseline
base=$(timed $ROUNDS small.bin)
check "tftp: $ROUNDS downloads through the router, no script" test -n "$base"

# the most fuel a call may have: a garbage-collection cycle can land on one call (docs/library.md)
check "tftp: the cache script loads" lpctl script load /vm/scenarios/tftp-cache.lua --name tftp --fuel max
check "tftp: lua rule on the forward path" lpctl rule add inet tc cachefw meta l4proto udp lua script tftp
for f in small.bin exact.bin big.bin; do
  check "tftp: $f: first download (the server answers)" get $f
  check "tftp: ... byte-identical" same $f
done
check_eq "tftp: the script learnt small.bin: 3 blocks" 3 "$(lpctl map get tftp files small.bin)"
check_eq "tftp: ... exact.bin: 3 blocks, the last empty" 3 "$(lpctl map get tftp files exact.bin)"
check_eq "tftp: ... big.bin: 201 blocks" 201 "$(lpctl map get tftp files big.bin)"
check_eq "tftp: three misses" 3 "$(lpctl map get tftp stats misses)"

to_server() { nft_rule_packets inet tc toserver to-server; }
s0=$(to_server)
check "tftp: the counter reads (a number)" test "$s0" -ge 1
cached=$(timed $ROUNDS small.bin)
check "tftp: $ROUNDS downloads from the cache" test -n "$cached"
s1=$(to_server)
check "tftp: ... not one packet went to the server ($s0 before, $s1 after)" test -n "$s0" -a "$s0" = "$s1"
check_eq "tftp: ... $ROUNDS hits" $ROUNDS "$(lpctl map get tftp stats hits)"
if [ -n "$base" ] && [ -n "$cached" ]; then
  note "measure: tftp small.bin (1300 B, 3 blocks) x $ROUNDS: through the server $base ms ($((base / ROUNDS)) ms each, $((ROUNDS * 1000 / (base + 1))) /s); from the cache $cached ms ($((cached / ROUNDS)) ms each, $((ROUNDS * 1000 / (cached + 1))) /s) (TCG)"
fi

check "tftp: the server stops" tftpd_off
for f in small.bin exact.bin big.bin; do
  check "tftp: $f with the server stopped: served by the router" get $f
  check "tftp: ... byte-identical" same $f
done
r0=$(nft_rule_packets inet tc toserver to-server-69)
never() { ! in_cli timeout 6 tftp -g -r never.bin -l /tmp/never.got "$SRV_IP" 2>/dev/null; }
check "tftp: a file never downloaded cannot be had (the server is really gone)" never
check "tftp: ... its requests went on to the server, unanswered" test "$(nft_rule_packets inet tc toserver to-server-69)" -gt "$r0"
lpctl script show tftp | sed "s/^/# /"
lpctl script errors tftp 2>&1 | head -20 | sed "s/^/# /" # (none, when all is well)
check "tftp: nothing the script sent was refused or failed" sh -c 'lpctl script show tftp | grep -q "refused 0  failed 0"'
check "tftp: no errors" sh -c 'lpctl script show tftp | grep -q "errors: lua 0  memory 0  fuel 0"'

nft delete table inet tc
lpctl script unload tftp
rm -rf /srv/tftp
check "tftp: the namespaces end" router_down
check "tftp: no warnings in the kernel log" sh -c '! dmesg | grep -E "WARNING|BUG"'
