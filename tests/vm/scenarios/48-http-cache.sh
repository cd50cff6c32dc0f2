# PacketScript's HTTP cache (issue 11, examples/http-cache.lua) on a router between busybox
# wget and busybox httpd: the first GET of a file goes to the server and the script learns the
# response; later GETs are answered by the router itself (the GET dropped, the server's end
# reset), byte-identical, with the requests that reach the server counted (none). Responses
# the cache must not keep pass untouched and reach the server each time: a CGI's answer with
# `Cache-Control: no-store`, a POST's, a file over 8 KiB. A CGI answering without it proves
# the second answer is the cache's (the server's would say "call 2"). Requests per second and
# the time of one, through the server and from the cache, are "# measure:" notes.
# vm-requires: module lpctl
. /vm/lib.sh

# client 10.0.1.2 (c0) -- r-cli 10.0.1.1 [router: root ns] 10.0.2.1 r-srv -- (s0) 10.0.2.2 server
ROUNDS=10 # requests timed each way
WWW=/srv/www

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "http: $m loaded" grep -q "^$m " /proc/modules
check "http: topology (client, router, server)" router_up

mkdir -p $WWW/cgi-bin
head -c 3000 /dev/urandom >$WWW/small.bin # three segments with the headers
head -c 100 /dev/urandom >$WWW/tiny.bin
head -c 20000 /dev/urandom >$WWW/big.bin # over the cache's 8 KiB
# CGIs counting their calls (the count survives in /tmp: the namespaces share the filesystem)
cgi() { # NAME EXTRA-HEADER
  cat >"$WWW/cgi-bin/$1" <<EOF
#!/bin/sh
read -r n 2>/dev/null </tmp/$1.count || n=0
n=\$((n + 1)); echo \$n >/tmp/$1.count
body="call \$n"
printf 'Content-Type: text/plain\r\nContent-Length: %d\r\n$2\r\n%s' "\${#body}" "\$body"
EOF
  chmod +x "$WWW/cgi-bin/$1"
  rm -f "/tmp/$1.count"
}
cgi count ""
cgi nostore 'Cache-Control: no-store\r\n'

httpd_on() {
  in_srv sh -c 'echo $$ >/tmp/httpd.pid; exec httpd -f -p '"$SRV_IP"':80 -h '"$WWW" >/dev/null 2>&1 &
  wait_until 50 in_srv sh -c ". /vm/lib.sh; tcp_listening 80"
}
check "http: the server listens" httpd_on

# get PATH [wget options]: the client fetches PATH from the server's address to /tmp/http.got
get() {
  local path=$1
  shift
  rm -f /tmp/http.got
  in_cli timeout 10 wget -q -O /tmp/http.got "$@" "http://$SRV_IP$path"
}
same() { cmp -s "$WWW/$1" /tmp/http.got; }
body() { cat /tmp/http.got; }
# timed N PATH: N GETs; prints their total time in ms (exits non-zero if one failed)
timed() {
  local i=0 t0 t1
  t0=$(uptime_ms)
  while [ $i -lt "$1" ]; do get "/$2" && same "$2" || return 1; i=$((i + 1)); done
  t1=$(uptime_ms)
  echo $((t1 - t0))
}

# What reaches the server: segments with data (the requests; a bare ACK is 52 bytes with
# timestamps) and resets.
ruleset() {
  nft -f - <<'NFT'
table inet hc {
  chain cachefw {
    type filter hook forward priority filter; policy accept;
  }
  chain toserver {
    type filter hook postrouting priority filter; policy accept;
    oifname "r-srv" tcp dport 80 ip length > 100 counter comment "requests"
    oifname "r-srv" tcp dport 80 tcp flags rst counter comment "resets"
  }
}
NFT
}
check "http: a table counting what goes to the server" ruleset
requests() { nft_rule_packets inet hc toserver requests; }
resets() { nft_rule_packets inet hc toserver resets; }

# the server's path, without the script: the baseline
base=$(timed $ROUNDS small.bin)
check "http: $ROUNDS GETs through the router, no script" test -n "$base"

check "http: the cache script loads" lpctl script load /vm/scenarios/http-cache.lua --name http --fuel max
check "http: lua rule on the forward path" lpctl rule add inet hc cachefw meta l4proto tcp lua script http
for f in small.bin tiny.bin; do
  check "http: $f: first GET (the server answers)" get /$f
  check "http: ... byte-identical" same $f
done
check "http: a CGI's first answer (the server's)" get /cgi-bin/count
check_eq "http: ... is its first call" "call 1" "$(body)"
stat() { lpctl map get http stats "$1"; }
check_eq "http: three misses" 3 "$(stat misses)"
check "http: the script learnt small.bin" lpctl map get http urls "$SRV_IP:80/small.bin"

r0=$(requests) x0=$(resets)
check "http: the counters read (numbers)" test "$r0" -ge 1 -a "$x0" -ge 0
cached=$(timed $ROUNDS small.bin)
check "http: $ROUNDS GETs of small.bin from the cache, byte-identical" test -n "$cached"
check "http: tiny.bin from the cache" get /tiny.bin
check "http: ... byte-identical" same tiny.bin
check "http: the CGI's second answer" get /cgi-bin/count
check_eq "http: ... is the cache's (the server would say call 2)" "call 1" "$(body)"
r1=$(requests) x1=$(resets)
check "http: ... not one request reached the server ($r0 before, $r1 after)" test -n "$r0" -a "$r0" = "$r1"
hits=$((ROUNDS + 2))
check_eq "http: ... $hits hits" $hits "$(stat hits)"
check_eq "http: ... the server's end of each was reset" $((x0 + hits)) "$x1"
if [ -n "$base" ] && [ -n "$cached" ]; then
  note "measure: http small.bin (3000 B) x $ROUNDS: through the server $base ms ($((base / ROUNDS)) ms each, $((ROUNDS * 1000 / (base + 1))) /s); from the cache $cached ms ($((cached / ROUNDS)) ms each, $((ROUNDS * 1000 / (cached + 1))) /s) (TCG)"
fi
# every answered connection ended: the client's FIN acknowledged (none left half-open on the
# client, LAST_ACK 09 or CLOSE_WAIT 08 to port 80), the server's reset (no ESTABLISHED 01)
conns() { # NS STATE: connections with port 80 in STATE
  "$1" cat /proc/net/tcp | awk -v s="$2" '$4 == s && ($2 ~ /:0050$/ || $3 ~ /:0050$/)' | wc -l
}
settled() { [ "$(conns in_cli 09)$(conns in_cli 08)$(conns in_srv 01)$(conns in_srv 08)" = 0000 ]; }
check "http: no connection left open on either side" wait_until 30 settled
check_eq "http: no connection left to the cache" 0 "$(lpctl map list http | sed -n 's/^served: .* entries \([0-9]*\) of .*/\1/p')"

# not cachable: each passes, reaches the server, and is the server's answer
check "http: a no-store answer" get /cgi-bin/nostore
check_eq "http: ... the server's" "call 1" "$(body)"
check "http: ... asked again" get /cgi-bin/nostore
check_eq "http: ... the server's again (not cached)" "call 2" "$(body)"
check "http: a POST" get /cgi-bin/count --post-data x=1
check_eq "http: ... the server's answer" "call 2" "$(body)"
check "http: ... posted again" get /cgi-bin/count --post-data x=1
check_eq "http: ... the server's again" "call 3" "$(body)"
for i in 1 2; do
  check "http: big.bin (over 8 KiB), GET $i" get /big.bin
  check "http: ... byte-identical" same big.bin
done
r2=$(requests)
check_eq "http: ... all six requests reached the server" $((r1 + 6)) "$r2"
check_eq "http: ... the no-store and large answers were seen and not kept" 4 "$(stat uncachable)"
check_eq "http: ... no more hits" $hits "$(stat hits)"
# and the cached ones are still the cache's
check "http: small.bin once more" get /small.bin
check "http: ... byte-identical" same small.bin
check_eq "http: ... from the cache" "$r2" "$(requests)"

lpctl script show http | sed "s/^/# /"
lpctl log http 2>&1 | tail -n 8 | sed "s/^/# /"
check "http: nothing the script sent was refused or failed" sh -c 'lpctl script show http | grep -q "refused 0  failed 0"'
check "http: no errors" sh -c 'lpctl script show http | grep -q "errors: lua 0  memory 0  fuel 0"'

nft delete table inet hc
lpctl script unload http
kill "$(cat /tmp/httpd.pid)" 2>/dev/null
rm -rf $WWW /tmp/count.count /tmp/nostore.count
check "http: the namespaces end" router_down
check "http: no warnings in the kernel log" sh -c '! dmesg | grep -E "WARNING|BUG"'
