# Fault injection (debug kernel only: scripts/debug-kernel.sh, run.sh --kernel-dir): failslab and
# fail_page_alloc through debugfs (Documentation/fault-injection/fault-injection.rst).
#  A. lpctl's process context only (task-filter + /proc/self/make-it-fail, sleeping allocations
#     included): each command (script load, load --replace, rule add with a function, rule
#     delete, script unload, script limits) is first measured (how many bytes go through the
#     injection points when nothing fails: what `space` loses from a large budget; and what
#     `lpctl --version` alone costs: fork, exec, libraries) and then run with exactly one failure
#     (probability 100, times 1) at evenly spread points between the two (`space`): the failure
#     lands in lpctl, in the nft that lpctl runs, or in the kernel's handling of the request,
#     nft_lua's compile, instantiate and bind included. A command may fail; what it leaves must
#     delete cleanly; a replaced script keeps serving.
#  B. every context, non-sleeping allocations only (the packet path in softirq and with bottom
#     halves off on output, rule binding, GFP_ATOMIC everywhere), at 10, 50 and 100 %: traffic
#     through a script that loops on pcall(error, "x"), errors with invalid UTF-8 ("\255\254"),
#     grows its heap, nests pcalls 28 deep, recurses through the C stack inside 30 nested pcalls
#     (--recursion 2048 --pcall-depth 32: the most frames and execution stacks a call may
#     allocate) and resumes nested coroutines on freshly replaced instances (cold stack pools),
#     traps on fuel (rebuild); rules added and deleted meanwhile. wasmi (third_party/wasmi)
#     reports a failed frame, stack or error allocation as a trap: a memory error, not a BUG.
#  C. the rebuild work (kworkers, sleeping allocations): every kworker gets make-it-fail while
#     packets trap on fuel (each trap schedules a rebuild), at 30 and 100 %; the instance must
#     come back once injection stops.
# The kernel must not crash (a BUG, an Oops, a KASAN report or a panic fails the run). Then,
# injection off, the module still loads a script, serves packets, unloads, and rmmod succeeds.
#  A starts with a cold load: no script uses the guest, so the load compiles it (wasmi translates
#  the whole Lua VM) before it instantiates; three times as many failure points land there.
#  wasmi's compile and instantiate allocate infallibly: inside them the module's allocations are
#  too small to fail (__GFP_NOFAIL, lp_shim.c), except linear memory, which fails into ENOMEM.
# Kernel command line (VM_APPEND): lp_inject=process|softirq|rebuild runs part A, B or C only (a
# crash in B would hide what A and 90-kmemleak find); lp_inject_points=N failure points per
# command in A (default 8 for failslab, half as many for fail_page_alloc); lp_inject_cmds="cold
# load ..." runs only those commands of A.
# vm-requires: module lpctl
# vm-timeout: 1800
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
D=/sys/kernel/debug
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p"; }
parts=$(arg lp_inject)
parts=${parts:-all}
points=$(arg lp_inject_points)
points=${points:-8}
cmds=$(arg lp_inject_cmds | tr ',' ' ')
cmds=${cmds:-cold load replace ruleadd ruledel unload limits}
note "inject: parts $parts, $points failure points per command in A (lp_inject=, lp_inject_points=)"

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
TIMES=1000000     # finite, so that TIMES - times is the number of failures injected
BUDGET=2000000000 # `space` while measuring a command
# (dash has no local variables: helpers use loop variables of their own)
inject_off() { for _ia in $ATTRS; do echo 0 >$D/$_ia/probability; done; }
# inject_on PROBABILITY TASK_FILTER(Y/N) IGNORE_GFP_WAIT(Y/N): both capabilities, no budget
inject_on() {
  inject_off
  for _ib in $ATTRS; do
    echo 1 >$D/$_ib/interval
    echo 0 >$D/$_ib/space
    echo 0 >$D/$_ib/verbose
    echo $TIMES >$D/$_ib/times
    echo "$2" >$D/$_ib/task-filter
    echo "$3" >$D/$_ib/ignore-gfp-wait
  done
  echo 0 >$D/fail_page_alloc/min-order
  for _ib in $ATTRS; do echo "$1" >$D/$_ib/probability; done
}
injected() { # failures injected since inject_on, "slab+pages"
  echo "$((TIMES - $(cat $D/failslab/times)))+$((TIMES - $(cat $D/fail_page_alloc/times)))"
}
# arm ATTR SPACE: ATTR only, for make-it-fail tasks, sleeping allocations too: one failure, once
# SPACE bytes went through its injection points
arm() {
  inject_off
  echo 1 >$D/$1/interval
  echo 0 >$D/$1/verbose
  echo Y >$D/$1/task-filter
  echo N >$D/$1/ignore-gfp-wait
  echo 0 >$D/fail_page_alloc/min-order
  echo 1 >$D/$1/times
  echo "$2" >$D/$1/space
  echo 100 >$D/$1/probability
}
# failing CMD...: CMD (a function too) in a subshell with make-it-fail set: what it forks and
# execs (lpctl, the nft that lpctl runs) inherits it
failing() { (echo 1 >/proc/self/make-it-fail && "$@"); }
# bounded SECONDS WHAT CMD...: CMD, output discarded, killed after SECONDS (a reply or a packet
# lost to an injected failure must not hang the run); a kill is noted
bounded() {
  _bs=$1 _bw=$2
  shift 2
  "$@" >/dev/null 2>&1 &
  _bp=$! _bt=0
  while kill -0 $_bp 2>/dev/null; do
    if [ $_bt -ge $((_bs * 10)) ]; then
      kill $_bp 2>/dev/null
      note "inject: $_bw: still running after $_bs s, killed"
      break
    fi
    sleep 0.1
    _bt=$((_bt + 1))
  done
  wait $_bp 2>/dev/null
  return 0
}
# outcome RC: ok, failed (an error exit) or signalN (killed: a userspace crash)
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
  for _dc in in out; do
    for _dh in $(lua_handles fi $_dc "$1"); do lpctl rule delete inet fi $_dc handle "$_dh" >/dev/null 2>&1; done
  done
  for _dc in $(nft list table inet fi 2>/dev/null | sed -n "s/^[[:space:]]*chain \(lua-$1\(-[0-9a-f]\{8\}\)\{0,1\}\) {/\1/p"); do
    echo "# leftover chain $_dc (a failed rule add or delete left it)"
    nft flush chain inet fi "$_dc"; nft delete chain inet fi "$_dc"
  done
  wait_until 50 sh -c "! lpctl script list | grep -q '^$1:' || lpctl script unload $1"
}
# cleanup_all: without injection, every lua rule and script goes
cleanup_all() {
  nft delete table inet fi 2>/dev/null
  for _cs in $(lpctl script list 2>/dev/null | sed -n 's/^\([^:]*\): tag .*/\1/p'); do
    wait_until 50 lpctl script unload "$_cs" || echo "cleanup: cannot unload $_cs" >&2
  done
  [ -z "$(lpctl script list 2>&1)" ]
}
make_table() {
  nft list table inet fi >/dev/null 2>&1 || nft -f - <<'EOF'
table inet fi {
  chain in { type filter hook input priority filter; policy accept; }
  chain out { type filter hook output priority filter; policy accept; }
}
EOF
}

cat >/tmp/ok.lua <<'EOF'
function process_packet(pkt) return lp.ACCEPT end
EOF
cat >/tmp/inj.lua <<'EOF'
-- exercised under injection: protected calls (each re-enters the host), errors with invalid
-- UTF-8 messages, heap growth, deep pcall nesting and coroutines on the packet path
local calls = 0
local keep = {}
local function nest(n) if n == 0 then return lp.ACCEPT end local ok, v = pcall(nest, n - 1) return v end
function deep(pkt) return nest(28) end
-- many wasm frames and execution stacks at once: C-level recursion (each __index call re-enters the Lua
-- VM through the C stack, several wasm frames a level) inside 30 nested pcalls, each of which
-- runs on an execution stack of its own that a cold pool must allocate (in softirq)
local chain = setmetatable({}, {__index = function(t, k)
  if k <= 0 then return 0 end
  return t[k - 1] + 1
end})
local function cnest(n) if n == 0 then return chain[10] == 10 and lp.ACCEPT or lp.DROP end
  local ok, v = pcall(cnest, n - 1) if not ok then error(v, 0) end return v end
function cdeep(pkt) return cnest(30) end
function cos(pkt) -- coroutines resumed inside coroutines, 8 levels
  local function level(n)
    if n == 0 then coroutine.yield(1) return lp.ACCEPT end
    local co = coroutine.create(level)
    local ok, v = coroutine.resume(co, n - 1)
    coroutine.resume(co)
    coroutine.yield(v)
    return lp.ACCEPT
  end
  coroutine.wrap(level)(8)
  return lp.ACCEPT
end
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
  if p == 7006 then return deep(pkt) end
  if p == 7007 then return cos(pkt) end
  -- (pcall catches the soft stop, "out of fuel", and the loop goes on: cut hard, a trap)
  if p == 7008 then pcall(function() while true do end end) while true do end end
  return lp.ACCEPT
end
function alt(pkt, arg) return lp.CONTINUE end
EOF
make_table
check "inject: table inet fi" nft list table inet fi

# ---- A: lpctl's process context, one failure at spread points ---------------------------------
# Each command: prep_X (the state before, no injection), run_X (under failing), undo_X.
# (the reserve off: it would serve the failed allocation and hide the path)
prep_cold() {
  wait_until 50 sh -c '[ -z "$(lpctl script list 2>&1)" ]'
  echo N >/sys/module/$m/parameters/reserve
}
run_cold() { lpctl script load /tmp/inj.lua --name a --fuel 100000; }
undo_cold() { echo Y >/sys/module/$m/parameters/reserve; drop_script a; }
prep_load() { :; }
run_load() { lpctl script load /tmp/inj.lua --name a --fuel 100000; }
undo_load() { drop_script a; }
prep_replace() { :; }
run_replace() { lpctl script load /tmp/inj.lua --name base --replace --fuel 100000 --pcall-depth 32; }
undo_replace() { :; }
prep_ruleadd() { lpctl script load /tmp/inj.lua --name a >/dev/null 2>&1; }
run_ruleadd() { lpctl rule add inet fi in iifname v0 udp dport 7100 lua script a function alt arg x; }
undo_ruleadd() { drop_script a; }
prep_ruledel() {
  lpctl script load /tmp/inj.lua --name a >/dev/null 2>&1
  lpctl rule add inet fi in iifname v0 udp dport 7100 lua script a >/dev/null 2>&1
  H=$(lua_handles fi in a | head -n 1)
}
run_ruledel() { lpctl rule delete inet fi in handle "${H:-0}"; }
undo_ruledel() { drop_script a; }
prep_unload() { lpctl script load /tmp/inj.lua --name a >/dev/null 2>&1; }
run_unload() { lpctl script unload a; }
undo_unload() { drop_script a; }
prep_limits() { :; }
run_limits() { lpctl script limits base --fuel 80000 --on-error accept; }
undo_limits() { :; }

if [ "$parts" = all ] || [ "$parts" = process ]; then
  leftovers=0 crashes=0
  check "inject A: no script loaded (a cold load compiles the guest)" sh -c '[ -z "$(lpctl script list 2>&1)" ]'
  for cmd in $cmds; do
    if [ $cmd != cold ] && ! lpctl script list 2>/dev/null | grep -q '^base: '; then
      check "inject A: load base" lpctl script load /tmp/inj.lua --name base --fuel 100000 --pcall-depth 32
      check "inject A: rule on base" lpctl rule add inet fi in iifname v0 udp dport 7000-7009 lua script base
    fi
    for attr in $ATTRS; do
      n=$points
      [ $attr = fail_page_alloc ] && n=$(( (points + 1) / 2 ))
      [ $cmd = cold ] && n=$((n * 3))
      # lpctl's own start (fork, exec, libraries): failures there say nothing about the kernel
      arm $attr $BUDGET
      failing lpctl --version >/dev/null 2>&1
      start=$((BUDGET - $(cat $D/$attr/space)))
      # the command's budget: the bytes through the injection points when nothing fails
      prep_$cmd
      arm $attr $BUDGET
      failing run_$cmd >/tmp/inj-cmd.out 2>&1
      rc=$?
      total=$((BUDGET - $(cat $D/$attr/space)))
      inject_off
      undo_$cmd >/dev/null
      if [ "$rc" -ne 0 ] || [ "$total" -le 0 ]; then
        note "inject A $cmd/$attr: the measuring run $(outcome $rc) ($(tail -n 1 /tmp/inj-cmd.out)), $total bytes: skipped"
        continue
      fi
      res=
      k=0
      while [ $k -lt $n ]; do
        space=$((start + (total - start) * (2 * k + 1) / (2 * n)))
        prep_$cmd
        arm $attr $space
        failing run_$cmd >/tmp/inj-cmd.out 2>&1
        rc=$?
        hit=$((1 - $(cat $D/$attr/times)))
        inject_off
        o=$(outcome $rc)
        [ $hit -eq 1 ] || o="$o(nothing failed)"
        case $o in signal*) crashes=$((crashes + 1)) ;; esac
        res="$res @$space:$o"
        case $o in failed) note "inject A $cmd/$attr @$space: $(grep -v '^[[:space:]]*$' /tmp/inj-cmd.out | tail -n 1)" ;; esac
        l=$(undo_$cmd | grep -c 'leftover chain')
        leftovers=$((leftovers + l))
        [ "$l" -eq 0 ] || note "inject A $cmd/$attr @$space: a lua chain was left behind"
        k=$((k + 1))
      done
      note "inject A $cmd/$attr: $total bytes ($start to start lpctl); one failure at:$res"
    done
  done
  note "inject A: $leftovers lua chain(s) left behind by failed commands, $crashes userspace process(es) killed by a signal"
  check "inject A: no script a left" sh -c '! lpctl script list | grep -q "^a: "'
  if [ "$cmds" != cold ]; then
    check "inject A: base still listed" sh -c 'lpctl script list | grep -q "^base: tag "'
    r0=$(stat_of base run_cnt)
    udp_transfer 5 7000 0 >/dev/null
    check_ge "inject A: base (replaced with failures injected) runs on 5 datagrams" $((${r0:-0} + 5)) "$(stat_of base run_cnt)"
  fi
  check "inject A: module Live" grep -q "^$m .* Live " /proc/modules
  check "inject A: cleanup (every rule and script deletes)" cleanup_all
fi

# ---- B: every context, non-sleeping allocations (the packet path) ------------------------------
load_inj() { lpctl script load /tmp/inj.lua --name inj --fuel 108000 --recursion 2048 --pcall-depth 32 --on-error accept "$@"; }
if [ "$parts" = all ] || [ "$parts" = softirq ]; then
  make_table
  check "inject B: load inj" load_inj
  check "inject B: rule on inj (input, udp 7000-7009)" \
    lpctl rule add inet fi in iifname v0 udp dport 7000-7009 lua script inj
  check "inject B: rule on inj function deep (input, udp 7010)" \
    lpctl rule add inet fi in iifname v0 udp dport 7010 lua script inj function deep
  check "inject B: rule on inj function cos (input, udp 7011)" \
    lpctl rule add inet fi in iifname v0 udp dport 7011 lua script inj function cos
  check "inject B: rule on inj function cdeep (input, udp 7012)" \
    lpctl rule add inet fi in iifname v0 udp dport 7012 lua script inj function cdeep
  check "inject B: rule on inj (output, udp 7000-7009: process context, bottom halves off)" \
    lpctl rule add inet fi out oifname v0 udp dport 7000-7009 lua script inj
  check_eq "inject B: 6 datagrams through inj before injection" 6 "$(udp_transfer 6 7000)"
  check_eq "inject B: 3 datagrams through C recursion in 30 nested pcalls before injection" 3 "$(udp_transfer 3 7012)"
  runs=0 memerr=0 traps=0
  for p in 10 50 100; do
    # fresh instances (cold stack pools) each round, replaced without injection
    load_inj --replace >/dev/null 2>&1 || note "inject B p=$p%: replace without injection failed"
    inject_on "$p" N Y
    for port in 7000 7001 7002 7003 7004 7005 7006 7007 7009 7010 7011 7012 7008; do
      bounded 30 "send to $port" in_peer sh -c ". /vm/lib.sh; udp_send 10 $VM_HOST_IP $port"
    done
    for port in 7000 7001 7002 7003 7004 7005 7006 7007; do
      bounded 30 "send from $port" sh -c ". /vm/lib.sh; udp_send 5 $VM_PEER_IP $port"
    done
    # a rule added and deleted while atomic allocations fail (binding runs with bottom halves off)
    timeout 60 lpctl rule add inet fi in iifname v0 udp dport 7050 lua script inj function alt >/tmp/inj-cmd.out 2>&1
    add=$(outcome $?)
    [ "$add" = ok ] || add="$add ($(grep -v '^[[:space:]]*$' /tmp/inj-cmd.out | tail -n 1))"
    bounded 30 "send to 7050" in_peer sh -c ". /vm/lib.sh; udp_send 10 $VM_HOST_IP 7050"
    del=none
    hs=$(timeout 30 nft -a list chain inet fi in 2>/dev/null | sed -n 's/.*udp dport 7050 jump lua-inj-[0-9a-f]* # handle \([0-9]*\).*/\1/p')
    for h in $hs; do
      timeout 60 lpctl rule delete inet fi in handle "$h" >/tmp/inj-cmd.out 2>&1
      del=$(outcome $?)
      [ "$del" = ok ] || del="$del ($(grep -v '^[[:space:]]*$' /tmp/inj-cmd.out | tail -n 1))"
    done
    inj=$(injected)
    inject_off
    stats=$(lpctl script show inj 2>&1 | grep -E 'run_cnt|errors:' | tr -s ' \t' ' ' | tr '\n' ' ')
    r=$(stat_of inj run_cnt); runs=$((runs + ${r:-0}))
    r=$(stat_of inj memory); memerr=$((memerr + ${r:-0}))
    r=$(stat_of inj rebuilds); traps=$((traps + ${r:-0}))
    note "inject B p=$p%: traffic on 7000-7012 in, 7000-7007 out, rule add $add, rule delete $del; injected $inj (slab+pages)"
    note "inject B p=$p%: inj:$stats"
  done
  note "inject B: inj ran $runs times under injection: $memerr memory errors, $traps rebuilds (fuel traps)"
  # the same at 100 % without the reserve (reserve=N): every allocation wasmi makes during a
  # call now fails for real (a Lua error's box, a cold pool's stack, frame growth) and must be
  # a memory error that poisons the instance, never a BUG
  load_inj --replace >/dev/null 2>&1 || note "inject B no reserve: replace without injection failed"
  m0=$(stat_of inj memory)
  hits0=$(cat /sys/module/$m/parameters/reserve_hits)
  echo N >/sys/module/$m/parameters/reserve
  inject_on 100 N Y
  for port in 7000 7001 7004 7006 7010 7011 7012; do
    bounded 30 "send to $port (no reserve)" in_peer sh -c ". /vm/lib.sh; udp_send 10 $VM_HOST_IP $port"
  done
  inj=$(injected)
  inject_off
  echo Y >/sys/module/$m/parameters/reserve
  m1=$(stat_of inj memory)
  note "inject B no reserve: injected $inj (slab+pages); inj:$(lpctl script show inj 2>&1 | grep -E 'errors:' | tr -s ' \t' ' ')"
  check_ge "inject B no reserve: failed allocations during calls are memory errors (was ${m0:-0})" $((${m0:-0} + 1)) "${m1:-0}"
  check_eq "inject B no reserve: the reserve served nothing while off" 0 "$(( $(cat /sys/module/$m/parameters/reserve_hits) - ${hits0:-0} ))"
  check "inject B: module Live" grep -q "^$m .* Live " /proc/modules
  check "inject B: inj still listed" sh -c 'lpctl script list | grep -q "^inj: tag "'
  check "inject B: inj replaces without injection" load_inj --replace
  check_eq "inject B: 6 datagrams through inj after injection" 6 "$(udp_transfer 6 7000)"
  check_ge "inject B: inj counted them" 6 "$(stat_of inj run_cnt)"
  check_eq "inject B: 3 datagrams erroring with invalid UTF-8 (on-error accept)" 3 "$(udp_transfer 3 7001)"
  check_ge "inject B: lua errors counted" 3 "$(stat_of inj lua)"
  check_eq "inject B: 3 datagrams through 28 nested pcalls" 3 "$(udp_transfer 3 7010)"
  check_eq "inject B: 3 datagrams through C recursion in 30 nested pcalls" 3 "$(udp_transfer 3 7012)"
  check "inject B: cleanup (every rule and script deletes)" cleanup_all
fi

# ---- C: the rebuild work (kworkers), sleeping allocations --------------------------------------
kworkers_fail() { # 1|0: make-it-fail for every kworker
  for _kp in /proc/[0-9]*; do
    case $(cat $_kp/comm 2>/dev/null) in kworker*) echo "$1" >$_kp/make-it-fail 2>/dev/null ;; esac
  done
}
if [ "$parts" = all ] || [ "$parts" = rebuild ]; then
  make_table
  check "inject C: load inj" load_inj
  check "inject C: rule on inj (input, udp 7000-7009)" \
    lpctl rule add inet fi in iifname v0 udp dport 7000-7009 lua script inj
  for p in 30 100; do
    kworkers_fail 1
    inject_on "$p" Y N
    for i in 1 2 3; do
      in_peer sh -c ". /vm/lib.sh; udp_send 2 $VM_HOST_IP 7008" >/dev/null 2>&1
      sleep 1
      in_peer sh -c ". /vm/lib.sh; udp_send 3 $VM_HOST_IP 7000" >/dev/null 2>&1
    done
    inj=$(injected)
    inject_off
    kworkers_fail 0
    note "inject C p=$p%: injected $inj (slab+pages); inj:$(lpctl script show inj 2>&1 | grep -E 'errors:' | tr -s ' \t' ' ')"
  done
  check "inject C: module Live" grep -q "^$m .* Live " /proc/modules
  # without injection, the trapped instances come back (a failed rebuild must be retried)
  in_peer sh -c ". /vm/lib.sh; udp_send 2 $VM_HOST_IP 7008" >/dev/null 2>&1
  sleep 2
  r0=$(stat_of inj run_cnt)
  f0=$(stat_of inj fuel)
  udp_transfer 5 7000 >/dev/null
  note "inject C after: inj:$(lpctl script show inj 2>&1 | grep -E 'run_cnt|errors:' | tr -s ' \t' ' ' | tr '\n' ' ')"
  check_ge "inject C: inj runs again after injection (5 datagrams)" $((${r0:-0} + 5)) "$(stat_of inj run_cnt)"
  check "inject C: cleanup (every rule and script deletes)" cleanup_all
fi

# ---- after: the module works and unloads -------------------------------------------------------
inject_off
for attr in $ATTRS; do echo N >$D/$attr/task-filter; echo Y >$D/$attr/ignore-gfp-wait; echo 0 >$D/$attr/space; done
make_table
check "inject after: load ok" lpctl script load /tmp/ok.lua --name ok
check "inject after: rule on ok" lpctl rule add inet fi in iifname v0 udp dport 7200 lua script ok
check_eq "inject after: 3 datagrams through ok" 3 "$(udp_transfer 3 7200)"
check_eq "inject after: ok counted 3" 3 "$(stat_of ok run_cnt)"
check "inject after: cleanup" cleanup_all
# what part A's cold loads hit: wasmi allocating under a lock that disables bottom halves
check_no_atomic_load_allocs "inject after"
peer_down
check "inject after: rmmod $m" rmmod "$m"
check "inject after: modprobe $m again" modprobe "$m"
check "inject after: rmmod $m again" rmmod "$m"
