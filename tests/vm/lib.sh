# Shell library for VM scenarios, run by dash (busybox for the small tools).
# A scenario starts with `. /vm/lib.sh`.
#
# Checks (each prints exactly one line, "ok - NAME" or "not ok - NAME: why"):
#   check NAME CMD...          ok when CMD exits 0; on failure CMD's last output line is the why
#                              and its whole output follows as "#   " lines
#   check_eq NAME WANT GOT     ok when the two strings are equal
#   check_ge NAME MIN GOT      ok when the integer GOT >= MIN
#   pass NAME / fail NAME WHY  record a check directly
#   note TEXT...               a diagnostic line ("# TEXT"), shown by run.sh
#   wait_until TENTHS CMD...   retry CMD every 0.1 s until it succeeds, TENTHS times at most
#   wait_bounded SECONDS PID   wait for a background job, killing it after SECONDS
#
# Network: a peer namespace joined to the root namespace by a veth pair
#   peer_up                    v0 10.99.0.1/24 (root ns) <-> v1 10.99.0.2/24 (peer ns, $PEER_PID)
#   in_peer CMD...             run a program in the peer namespace
#   peer_down                  remove both
#   udp_transfer N PORT [EXPECT]  peer sends N datagrams (8 bytes each) to 10.99.0.1:PORT
#                              with socat; prints how many the root-ns receiver got (it waits
#                              up to 3 s for EXPECT of them, default N: pass 0 when they are
#                              meant to be dropped)
#   tcp_transfer BYTES PORT    peer sends BYTES random bytes with busybox nc to 10.99.0.1:PORT;
#                              prints how many arrived (file /tmp/tcp-PORT.out, source /tmp/tcp-PORT.src)
#   udp_send N IP PORT         send N 8-byte datagrams from the current namespace
#   ping_count N               peer pings 10.99.0.1 N times; prints the replies received
#   pktgen_udp9                the peer's pktgen (module pktgen, kpktgend_0) set to send 60-byte
#                              UDP datagrams from port 4000 to $VM_HOST_IP:9 through v1, as fast
#                              as they are taken; pktgen_ctl start|stop starts and stops it
#
# A router between two namespaces:
#   router_up                  client $CLI_IP (c0) -- r-cli 10.0.1.1 [root ns, ip_forward]
#                              10.0.2.1 r-srv -- (s0) $SRV_IP server; sets CLI and SRV (their
#                              pids) for in_cli and in_srv; waits until both reach the router
#   router_down                removes the veths and the namespaces' placeholders
#
# nft counters:
#   nft_rule_packets FAMILY TABLE CHAIN COMMENT   packets of the rule whose comment is COMMENT
#   nft_rule_bytes   FAMILY TABLE CHAIN COMMENT   bytes of that rule
#   nft_counter_packets FAMILY TABLE NAME         packets of the named counter object
#
# Environment from run.sh: KVER, and when given LUAPKT_MODULE (path of nft_lua.ko inside the
# guest, also known to modprobe), LUAPKT_MODULE_NAME (nft_lua), LPCTL (/usr/bin/lpctl).
# `dmesg` in a scenario shows what the kernel logged since the previous scenario ended (/init
# clears it after each one); /run/vm-dmesg.log holds everything before that.

VM_HOST_IP=10.99.0.1
VM_PEER_IP=10.99.0.2
PEER_PID=

_vm_count() { echo x >>/tmp/.vm-checks; }

# VM_CHECK_PREFIX: set by init.sh when it runs a scenario again on another engine.
pass() {
  _vm_count
  echo "ok - ${VM_CHECK_PREFIX:-}$1"
}

fail() {
  _vm_count
  echo "not ok - ${VM_CHECK_PREFIX:-}$1: $2"
}

note() { echo "# $*"; }

check() {
  local name=$1 rc why
  shift
  if "$@" >/tmp/.vm-check.out 2>&1; then
    pass "$name"
  else
    rc=$?
    why=$(grep -v '^[[:space:]]*$' /tmp/.vm-check.out | tail -n 1)
    fail "$name" "${why:-exit status $rc} ($*)"
    sed 's/^/#   /' /tmp/.vm-check.out | head -n 30
  fi
}

check_eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}

check_ge() {
  if [ -n "$3" ] && [ "$3" -ge "$2" ] 2>/dev/null; then
    pass "$1"
  else
    fail "$1" "expected at least $2, got '$3'"
  fi
}

# wait_until TENTHS CMD...: retries CMD every 0.1 s, at most TENTHS times.
wait_until() {
  local n=$1
  shift
  while [ "$n" -gt 0 ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
    n=$((n - 1))
  done
  return 1
}

# wait_bounded SECONDS PID: waits for the background job PID, killing it after SECONDS.
wait_bounded() {
  local wd
  (sleep "$1"; kill "$2" 2>/dev/null) &
  wd=$!
  wait "$2" 2>/dev/null
  kill "$wd" 2>/dev/null
  wait "$wd" 2>/dev/null
  return 0
}

# ---- namespaces and veth --------------------------------------------------------------------

# Process PID lives in a network namespace other than ours.
own_netns() { [ "$(readlink "/proc/$1/ns/net")" != "$(readlink /proc/self/ns/net)" ]; }

# A sleeping process holding a network namespace of its own, for scenarios that need more than
# the peer: VAR=$(netns_new) prints its pid once the namespace exists (kill it when done).
netns_new() {
  unshare -n sleep 3600 >/dev/null 2>&1 &
  _ns=$!
  # unshare execs sleep once the namespace exists: wait for that.
  wait_until 50 own_netns "$_ns" || { echo "netns_new: namespace of $_ns never appeared" >&2; return 1; }
  echo "$_ns"
}

# in_netns PID CMD...: CMD in the network namespace of PID.
in_netns() { _p=$1; shift; nsenter -t "$_p" -n "$@"; }

peer_up() {
  unshare -n sleep 3600 &
  PEER_PID=$!
  wait_until 50 own_netns "$PEER_PID" ||
    { echo "peer_up: namespace of $PEER_PID never appeared" >&2; return 1; }
  ip link add v0 type veth peer name v1 || return 1
  ip link set v1 netns "$PEER_PID" || return 1
  ip addr add "$VM_HOST_IP/24" dev v0
  ip link set v0 up
  in_peer ip link set lo up
  in_peer ip addr add "$VM_PEER_IP/24" dev v1
  in_peer ip link set v1 up
  # Resolve neighbours both ways before any counter exists.
  wait_until 50 in_peer ping -c 1 -W 1 "$VM_HOST_IP" ||
    { echo "peer_up: $VM_HOST_IP unreachable from the peer" >&2; return 1; }
}

in_peer() { nsenter -t "$PEER_PID" -n "$@"; }

pktgen_set() { in_peer sh -c "echo '$1' >/proc/net/pktgen/$2"; }
pktgen_udp9() {
  pktgen_set rem_device_all kpktgend_0 && pktgen_set "add_device v1" kpktgend_0 || return 1
  for c in "count 0" "pkt_size 60" "delay 0" "dst $VM_HOST_IP" \
    "dst_mac $(cat /sys/class/net/v0/address)" "udp_dst_min 9" "udp_dst_max 9" \
    "udp_src_min 4000" "udp_src_max 4000"; do
    pktgen_set "$c" v1 || return 1
  done
}
pktgen_ctl() { in_peer sh -c "echo $1 >/proc/net/pktgen/pgctrl"; }

CLI_IP=10.0.1.2
SRV_IP=10.0.2.2
CLI=
SRV=
in_cli() { in_netns "$CLI" "$@"; }
in_srv() { in_netns "$SRV" "$@"; }

router_up() {
  CLI=$(netns_new) && SRV=$(netns_new) || return 1
  ip link add r-cli type veth peer name c0 && ip link set c0 netns "$CLI" || return 1
  ip link add r-srv type veth peer name s0 && ip link set s0 netns "$SRV" || return 1
  ip addr add 10.0.1.1/24 dev r-cli && ip link set r-cli up || return 1
  ip addr add 10.0.2.1/24 dev r-srv && ip link set r-srv up || return 1
  in_cli ip link set lo up && in_cli ip addr add "$CLI_IP/24" dev c0 && in_cli ip link set c0 up &&
    in_cli ip route add default via 10.0.1.1 || return 1
  in_srv ip link set lo up && in_srv ip addr add "$SRV_IP/24" dev s0 && in_srv ip link set s0 up &&
    in_srv ip route add default via 10.0.2.1 || return 1
  echo 1 >/proc/sys/net/ipv4/ip_forward
  wait_until 50 in_cli ping -c 1 -W 1 10.0.1.1 && wait_until 50 in_srv ping -c 1 -W 1 10.0.2.1
}

router_down() {
  [ -n "$CLI$SRV" ] && kill $CLI $SRV 2>/dev/null
  CLI= SRV=
  # (a server still running in a namespace keeps it: the veths go explicitly)
  ip link del r-cli 2>/dev/null
  ip link del r-srv 2>/dev/null
  ! ip link show r-cli >/dev/null 2>&1 && ! ip link show r-srv >/dev/null 2>&1
}

peer_down() {
  ip link del v0 2>/dev/null
  [ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null
  PEER_PID=
  return 0
}

# ---- traffic --------------------------------------------------------------------------------

_hexport() { printf '%04X' "$1"; }
# Is a socket bound to PORT (v4 or v6)? TCP: in LISTEN state (0A).
udp_bound() { grep -qE ":$(_hexport "$1") 0+:0000 07" /proc/net/udp /proc/net/udp6; }
tcp_listening() { grep -qE ":$(_hexport "$1") 0+:0000 0A" /proc/net/tcp /proc/net/tcp6; }

# udp_records N: N 8-byte records "0000000\n".."000000N\n"
udp_records() {
  local i=0
  while [ "$i" -lt "$1" ]; do
    printf '%07d\n' "$i"
    i=$((i + 1))
  done
}

# udp_send N IP PORT: N datagrams of 8 bytes (socat -b 8 makes one datagram per record).
udp_send() { udp_records "$1" | socat -b 8 -u - "UDP-SENDTO:$2:$3"; }

# milliseconds since boot (10 ms steps): durations measured inside the guest
uptime_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

# script_stat NAME FIELD: a counter of `lpctl -j script show NAME`
script_stat() { lpctl -j script show "$1" | tr ',{}' '\n\n\n' | sed -n "s/^\"$2\":\([0-9]*\)$/\1/p" | head -n 1; }

_lines_ge() { [ "$(wc -l <"$1")" -ge "$2" ]; }

# udp_transfer N PORT [EXPECT [RXPORT]]: the peer sends N datagrams to PORT here, received on
# RXPORT (default PORT: a script may rewrite the port on the way); prints how many arrived.
udp_transfer() {
  local n=$1 port=$2 expect=${3:-$1} rxport=${4:-$2} out=/tmp/udp-$2.out rx
  : >"$out"
  socat -u "UDP-RECV:$rxport" - >"$out" &
  rx=$!
  wait_until 50 udp_bound "$rxport" || echo "udp_transfer: receiver never bound port $rxport" >&2
  in_peer sh -c ". /vm/lib.sh; udp_send $n $VM_HOST_IP $port"
  # Wait for the expected ones (3 s at most), then 0.2 s of grace for any that should not come.
  wait_until 30 _lines_ge "$out" "$expect"
  sleep 0.2
  kill "$rx" 2>/dev/null
  wait "$rx" 2>/dev/null
  wc -l <"$out" | tr -d ' '
}

tcp_transfer() {
  local bytes=$1 port=$2 out=/tmp/tcp-$2.out src=/tmp/tcp-$2.src rx
  head -c "$bytes" /dev/urandom >"$src"
  rm -f /tmp/.vm-hold && mkfifo /tmp/.vm-hold
  # The listener's stdin is a FIFO it holds open itself: it never sees EOF there, so it stays
  # until the peer closes the connection (busybox nc quits on stdin EOF).
  nc -l -p "$port" <>/tmp/.vm-hold >"$out" &
  rx=$!
  wait_until 50 tcp_listening "$port" || echo "tcp_transfer: nothing listens on $port" >&2
  in_peer nc "$VM_HOST_IP" "$port" <"$src"
  wait_bounded 5 "$rx"
  wc -c <"$out" | tr -d ' '
}

ping_count() {
  in_peer ping -c "$1" -i 0.2 -W 1 "$VM_HOST_IP" 2>/dev/null |
    sed -n 's/.* \([0-9]*\) packets received.*/\1/p'
}

# ---- nft ------------------------------------------------------------------------------------

_nft_rule_field() { # FIELD FAMILY TABLE CHAIN COMMENT
  nft list chain "$2" "$3" "$4" |
    sed -n "s/.* counter packets \([0-9]*\) bytes \([0-9]*\) .*comment \"$5\".*/\\$1/p" | head -n 1
}
nft_rule_packets() { _nft_rule_field 1 "$@"; }
nft_rule_bytes() { _nft_rule_field 2 "$@"; }

nft_counter_packets() {
  nft list counter "$1" "$2" "$3" | sed -n 's/.*packets \([0-9]*\) bytes.*/\1/p' | head -n 1
}

# ---- module ---------------------------------------------------------------------------------

# Loads allocate with sleeping, too-small-to-fail allocations; one made with bottom halves
# disabled (under a lock wasmi shares with softirq) is atomic and may fail into a BUG()
# (lp_shim.c, third_party/wasmi/LUAPKT.md). The module counts them since it was loaded.
check_no_atomic_load_allocs() { # LABEL
  check_eq "$1: loads made no atomic allocation (load_atomic_allocs)" 0 \
    "$(cat "/sys/module/$LUAPKT_MODULE_NAME/parameters/load_atomic_allocs")"
}
