# Fault injection (debug kernel only: scripts/debug-kernel.sh, run.sh --kernel-dir): failslab and
# fail_page_alloc through debugfs, (A) for lpctl's own process context only (task-filter,
# make-it-fail, sleeping allocations included) while it loads, replaces and unloads scripts and
# adds and deletes rules, then (B) for every context but only non-sleeping allocations (the
# packet path in softirq, rule binding with bottom halves off, GFP_ATOMIC everywhere) while
# traffic runs through a script that loops on pcall(error, "x"), errors with invalid UTF-8
# ("\255\254"), grows its heap and resumes coroutines, and while rules are added and deleted.
# Commands may fail under injection; the kernel must not crash (a BUG, an Oops, a KASAN report
# or a panic fails the run). Afterwards, with injection off, the module still loads a script,
# serves packets, unloads it and `rmmod nft_lua` succeeds.
# Parts: all by default; kernel command line lp_inject=process or lp_inject=softirq (VM_APPEND)
# runs one of them (a crash in B would hide what A and 90-kmemleak find); lp_inject_rounds=N
# rounds per probability in A (default 4: ~2 min per probability on the debug kernel).
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
D=/sys/kernel/debug
parts=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^lp_inject=//p')
parts=${parts:-all}
rounds=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^lp_inject_rounds=//p')
rounds=${rounds:-4}
note "inject: parts $parts, $rounds rounds per probability in A (lp_inject=, lp_inject_rounds= on the kernel command line)"

grep -q " $D " /proc/mounts || mount -t debugfs debugfs $D
if [ ! -d $D/failslab ] || [ ! -d $D/fail_page_alloc ]; then
  fail "inject: debugfs has failslab and fail_page_alloc" "not a fault-injection kernel (scripts/debug-kernel.sh, run.sh --kernel-dir)"
  exit 0
fi
pass "inject: debugfs has failslab and fail_page_alloc"

grep -q "^$m " /proc/modules || modprobe "$m"
check "inject: $m loaded" grep -q "^$m " /proc/modules
check "inject: peer namespace" peer_up

ATTRS="failslab fail_page_alloc"
TIMES=1000000 # finite, so that TIMES - times is the number of failures injected
# inject_on PROBABILITY TASK_FILTER(Y/N) IGNORE_GFP_WAIT(Y/N)
inject_on() {
  for a in $ATTRS; do
    echo 0 >$D/$a/probability
    echo 1 >$D/$a/interval
    echo 0 >$D/$a/space
    echo 0 >$D/$a/verbose
    echo $TIMES >$D/$a/times
    echo "$2" >$D/$a/task-filter
    echo "$3" >$D/$a/ignore-gfp-wait
  done
  echo 0 >$D/fail_page_alloc/min-order
  for a in $ATTRS; do echo "$1" >$D/$a/probability; done
}
inject_off() { for a in $ATTRS; do echo 0 >$D/$a/probability; done; }
injected() { # failures injected since inject_on, "slab+pages"
  echo "$((TIMES - $(cat $D/failslab/times)))+$((TIMES - $(cat $D/fail_page_alloc/times)))"
}
# failing CMD...: CMD with make-it-fail set (inherited by the exec, by nft that lpctl runs)
failing() { sh -c 'echo 1 >/proc/self/make-it-fail && exec "$@"' sh "$@"; }
# outcome RC: ok, failed (an error exit) or "killed by signal N" (a process crash: userspace)
outcome() {
  if [ "$1" -eq 0 ]; then echo ok
  elif [ "$1" -gt 128 ]; then echo "signal$(($1 - 128))"
  else echo failed; fi
}
stat_of() { # NAME FIELD: a counter from `lpctl script show`
  lpctl script show "$1" 2>/dev/null | grep -E 'run_cnt|errors:' |
    sed -n "s/.*[[:space:]]$2 \([0-9][0-9]*\).*/\1/p" | head -n 1
}
lua_handles() { # TABLE CHAIN SCRIPT: handles of the jumps to lua-SCRIPT and lua-SCRIPT-TAG
  nft -a list chain inet "$1" "$2" 2>/dev/null |
    sed -n "s/.*jump lua-$3\(-[0-9a-f]\{8\}\)\{0,1\} # handle \([0-9]*\).*/\2/p"
}
# drop_script NAME: without injection, its rules (table fi), their chains and the script go
drop_script() {
  for c in in out; do
    for h in $(lua_handles fi $c "$1"); do lpctl rule delete inet fi $c handle "$h" >/dev/null 2>&1; done
  done
  for c in $(nft list table inet fi 2>/dev/null | sed -n "s/^[[:space:]]*chain \(lua-$1\(-[0-9a-f]\{8\}\)\{0,1\}\) {/\1/p"); do
    echo "# leftover chain $c (a failed rule add or delete left it)"
    nft flush chain inet fi "$c"; nft delete chain inet fi "$c"
  done
  wait_until 50 sh -c "! lpctl script list | grep -q '^$1:' || lpctl script unload $1"
}
# cleanup_all: without injection, every lua rule and script goes (a failed delete under
# injection must leave something deletable)
cleanup_all() {
  nft delete table inet fi 2>/dev/null
  for s in $(lpctl script list 2>/dev/null | sed -n 's/^\([^:]*\): tag .*/\1/p'); do
    wait_until 50 lpctl script unload "$s" || echo "cleanup: cannot unload $s" >&2
  done
  [ -z "$(lpctl script list 2>&1)" ]
}

cat >/tmp/ok.lua <<'EOF'
function process_packet(pkt) return lp.ACCEPT end
EOF
cat >/tmp/inj.lua <<'EOF'
-- exercised under injection: nested protected calls (each re-enters the host), errors with
-- invalid UTF-8 messages, heap growth and coroutines on the packet path
local calls = 0
local keep = {}
function process_packet(pkt)
  calls = calls + 1
  local u = pkt.udp
  if not u then return lp.CONTINUE end
  local p = u.dport
  for i = 1, 16 do
    local ok, e = pcall(error, "x")
  end
  local ok, e = pcall(function() error("\255\254") end)
  if p == 7001 then error("\255\254") end
  if p == 7002 then error(string.rep("\255\254\192", 100)) end
  if p == 7003 then
    local t = {}
    for i = 1, 300 do t[i] = string.rep("y", i) end
    keep[calls % 8] = t
  end
  if p == 7004 then
    local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1); error("\255" .. b) end)
    co(1)
    pcall(co, 2)
  end
  if p == 7005 then
    local ok2, e2 = pcall(function() return ("\255"):rep(1 << 20) .. ("\254"):rep(1 << 20) end)
  end
  return lp.ACCEPT
end
function alt(pkt) return lp.CONTINUE end
EOF
nft -f - <<'EOF'
table inet fi {
  chain in { type filter hook input priority filter; policy accept; }
  chain out { type filter hook output priority filter; policy accept; }
}
EOF
check "inject: table inet fi" nft list table inet fi

# ---- A: lpctl's process context ----------------------------------------------------------------
if [ "$parts" = all ] || [ "$parts" = process ]; then
  # a script loaded and bound before: replaced and used under injection
  check "inject A: load base" lpctl script load /tmp/inj.lua --name base --fuel 250000
  check "inject A: rule on base" lpctl rule add inet fi in iifname v0 udp dport 7000-7009 lua script base
  results=
  for p in 2 10 30; do
    i=0
    while [ $i -lt "$rounds" ]; do
      i=$((i + 1))
      s=a$p$i
      inject_on "$p" Y N
      failing lpctl script load /tmp/inj.lua --name "$s" --fuel 250000 >/dev/null 2>&1
      load=$(outcome $?)
      failing lpctl rule add inet fi in iifname v0 udp dport 7100 lua script "$s" >/dev/null 2>&1
      add=$(outcome $?)
      failing lpctl rule add inet fi out udp dport 7101 lua script "$s" function alt >/dev/null 2>&1
      add2=$(outcome $?)
      failing lpctl script load /tmp/inj.lua --name base --replace --fuel 250000 >/dev/null 2>&1
      repl=$(outcome $?)
      failing lpctl script limits base --fuel 200000 --on-error accept >/dev/null 2>&1
      lim=$(outcome $?)
      failing lpctl script show "$s" >/dev/null 2>&1
      show=$(outcome $?)
      del=
      for c in in out; do
        for h in $(lua_handles fi $c "$s"); do
          failing lpctl rule delete inet fi $c handle "$h" >/dev/null 2>&1; del="$del$(outcome $?)/"
        done
      done
      del=${del%/}
      failing lpctl script unload "$s" >/dev/null 2>&1
      unl=$(outcome $?)
      inj=$(injected)
      inject_off
      results="$results p$p: load $load add $add/$add2 replace $repl limits $lim show $show delete ${del:-none} unload $unl ($inj injected);"
      note "inject A p=$p% #$i: load $load, rule add $add/$add2, replace $repl, limits $lim, show $show, rule delete ${del:-none}, unload $unl; injected $inj"
      # without injection: what was left deletes
      drop_script "$s"
    done
  done
  # (a userspace process may die of ENOMEM, e.g. Rust's abort when mmap fails: noted, not a kernel fault)
  case $results in *signal*) note "inject A: killed by a signal: $(echo "$results" | tr ';' '\n' | grep -c signal) run(s)" ;; esac
  check "inject A: no aN script left" sh -c '! lpctl script list | grep -q "^a[0-9]"'
  check "inject A: base still listed" sh -c 'lpctl script list | grep -q "^base: tag "'
  r0=$(stat_of base run_cnt)
  udp_transfer 5 7000 0 >/dev/null
  check_ge "inject A: base (replaced under injection) runs on 5 datagrams" $((${r0:-0} + 5)) "$(stat_of base run_cnt)"
  check "inject A: module Live" grep -q "^$m .* Live " /proc/modules
  check "inject A: cleanup (every rule and script deletes)" cleanup_all
fi

# ---- B: every context, non-sleeping allocations (the packet path) ------------------------------
if [ "$parts" = all ] || [ "$parts" = softirq ]; then
  nft list table inet fi >/dev/null 2>&1 || nft -f - <<'EOF'
table inet fi {
  chain in { type filter hook input priority filter; policy accept; }
  chain out { type filter hook output priority filter; policy accept; }
}
EOF
  check "inject B: load inj" lpctl script load /tmp/inj.lua --name inj --fuel 250000 --on-error accept
  check "inject B: rule on inj (input, udp 7000-7009)" \
    lpctl rule add inet fi in iifname v0 udp dport 7000-7009 lua script inj
  check "inject B: rule on inj (output, udp 7000-7009, process context)" \
    lpctl rule add inet fi out oifname v0 udp dport 7000-7009 lua script inj
  check_eq "inject B: 6 datagrams through inj before injection" 6 "$(udp_transfer 6 7000)"
  runs=0
  for p in 5 25 100; do
    inject_on "$p" N Y
    for port in 7000 7001 7002 7003 7004 7005; do
      in_peer sh -c ". /vm/lib.sh; udp_send 20 $VM_HOST_IP $port" >/dev/null 2>&1
      udp_send 5 "$VM_PEER_IP" "$port" >/dev/null 2>&1
    done
    # rules added and deleted while the packet path fails its allocations
    lpctl rule add inet fi in iifname v0 udp dport 7050 lua script inj function alt >/dev/null 2>&1
    add=$(outcome $?)
    in_peer sh -c ". /vm/lib.sh; udp_send 10 $VM_HOST_IP 7050" >/dev/null 2>&1
    del=none
    hs=$(nft -a list chain inet fi in 2>/dev/null | sed -n 's/.*udp dport 7050 jump lua-inj-[0-9a-f]* # handle \([0-9]*\).*/\1/p')
    for h in $hs; do lpctl rule delete inet fi in handle "$h" >/dev/null 2>&1; del=$(outcome $?); done
    stats=$(lpctl script show inj 2>&1 | grep -E 'run_cnt|errors:' | tr -s ' \t' ' ' | tr '\n' ' ')
    r=$(stat_of inj run_cnt)
    runs=$((runs + ${r:-0}))
    # (a replacement restarts the counters)
    lpctl script load /tmp/inj.lua --name inj --replace --fuel 250000 --on-error accept >/dev/null 2>&1
    repl=$(outcome $?)
    inj=$(injected)
    inject_off
    note "inject B p=$p%: traffic on 7000-7005 both ways, rule add $add, rule delete $del, replace $repl; injected $inj"
    note "inject B p=$p%: inj before the replacement:$stats"
  done
  check "inject B: module Live" grep -q "^$m .* Live " /proc/modules
  check "inject B: inj still listed" sh -c 'lpctl script list | grep -q "^inj: tag "'
  note "inject B: inj ran $runs times under injection"
  check_eq "inject B: 6 datagrams through inj after injection" 6 "$(udp_transfer 6 7000)"
  check_ge "inject B: inj counted them" 6 "$(stat_of inj run_cnt)"
  check_eq "inject B: 3 datagrams erroring with invalid UTF-8 (on-error accept)" 3 "$(udp_transfer 3 7001)"
  check_ge "inject B: lua errors counted" 3 "$(stat_of inj lua)"
  check "inject B: cleanup (every rule and script deletes)" cleanup_all
fi

# ---- after: the module works and unloads -------------------------------------------------------
inject_off
for a in $ATTRS; do echo N >$D/$a/task-filter; echo Y >$D/$a/ignore-gfp-wait; done
nft -f - <<'EOF'
table inet fi {
  chain in { type filter hook input priority filter; policy accept; }
}
EOF
check "inject after: load ok" lpctl script load /tmp/ok.lua --name ok
check "inject after: rule on ok" lpctl rule add inet fi in iifname v0 udp dport 7200 lua script ok
check_eq "inject after: 3 datagrams through ok" 3 "$(udp_transfer 3 7200)"
check_eq "inject after: ok counted 3" 3 "$(stat_of ok run_cnt)"
check "inject after: cleanup" cleanup_all
peer_down
check "inject after: rmmod $m" rmmod "$m"
check "inject after: modprobe $m again" modprobe "$m"
check "inject after: rmmod $m again" rmmod "$m"
