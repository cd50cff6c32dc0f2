# Script memory is charged to the loader's memory cgroup: the load itself (every instance's
# linear memory is reserved at load), the rebuild of a trapped instance (a kworker, which
# charges the loader's cgroup too), and a cgroup too small for a script refuses the load with
# ENOMEM, without the OOM killer, as does the largest memory limit on a machine too small for
# it. Unloading gives the memory back.
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
CG=/sys/fs/cgroup
grep -q " $CG cgroup2 " /proc/mounts || mount -t cgroup2 none $CG
echo +memory >$CG/cgroup.subtree_control
mkdir -p $CG/loader
check "memcg: a cgroup with the memory controller" test -f $CG/loader/memory.current

# in_cg CMD...: CMD as a process of the cgroup
cat >/tmp/in_cg <<SH
#!/bin/sh
echo \$\$ >$CG/loader/cgroup.procs && exec "\$@"
SH
chmod +x /tmp/in_cg
in_cg() { /tmp/in_cg "$@"; }
peer_udp() { in_peer sh -c ". /vm/lib.sh; udp_send $1 $VM_HOST_IP $2"; }
current() { cat $CG/loader/memory.current; }
stat_of() { lpctl -j script show "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -n 1; }
MiB=1048576
ncpu=$(grep -c '^processor' /proc/cpuinfo)

cat >/tmp/m.lua <<'LUA'
function process_packet(p)
  -- (pcall catches the soft stop, "out of fuel", and the loop goes on: cut hard, a trap)
  if p.udp and p.udp.dport == 6101 then pcall(function() while true do end end) while true do end end
  return lp.ACCEPT
end
LUA
c0=$(current)
check "memcg: a script with 8 MiB per instance, loaded from the cgroup" \
  in_cg lpctl script load /tmp/m.lua --name m8 --memory 8M --instructions 0
c1=$(current)
note "measure: memory.current $c0 -> $c1 bytes for $ncpu instances of 8 MiB"
check_ge "memcg: the load is charged to the loader's cgroup (at least $ncpu x 8 MiB)" \
  $((ncpu * 8 * MiB)) $((c1 - c0))

# a trap poisons an instance; its rebuild runs in a kworker and must charge the same cgroup:
# were it charged elsewhere, the old instance's uncharge would drop memory.current by 8 MiB
check "memcg: peer namespace" peer_up
nft -f - <<'NFT'
table inet memcg {
  chain input {
    type filter hook input priority filter; policy accept;
  }
}
NFT
check "memcg: rule with the script" lpctl rule add inet memcg input iifname v0 udp dport 6101 lua script m8
peer_udp 3 6101
wait_until 100 sh -c "[ \"\$(lpctl -j script show m8 | sed -n 's/.*\"rebuilds\":\([0-9]*\).*/\1/p')\" -ge 1 ]"
check_ge "memcg: a trapped instance was rebuilt" 1 "$(stat_of m8 rebuilds)"
c2=$(current)
note "measure: memory.current $c1 -> $c2 bytes across $(stat_of m8 rebuilds) rebuild(s)"
check "memcg: the rebuild is charged to the loader's cgroup (memory.current within 4 MiB)" \
  test $((c2 > c1 ? c2 - c1 : c1 - c2)) -lt $((4 * MiB))
nft delete table inet memcg
peer_down

check "memcg: unload" lpctl script unload m8
c3=$(current)
note "measure: memory.current after unload $c3 bytes"
check "memcg: unloading gives the memory back (within 2 MiB of before the load)" \
  test $((c3 - c0)) -lt $((2 * MiB))

# a cgroup too small for the script: ENOMEM, no OOM kill
echo $((c3 + 12 * MiB)) >$CG/loader/memory.max
check "memcg: memory.max 12 MiB above use: 2 x 8 MiB is refused with ENOMEM" \
  sh -c "! /tmp/in_cg lpctl script load /tmp/m.lua --name big --memory 8M 2>/tmp/err && grep -q 'os error 12)' /tmp/err"
check "memcg: ... and nothing of it stays loaded" sh -c '! lpctl script list | grep -q "^big:"'
check "memcg: ... without the OOM killer" sh -c '! dmesg | grep -q "out of memory"'
check "memcg: a script that fits loads in the same cgroup" \
  in_cg lpctl script load /tmp/m.lua --name small --memory 1M
lpctl script unload small
echo max >$CG/loader/memory.max

# the largest memory limit, reserved in full at load, on a guest too small for it (512 MiB of
# RAM, 2 instances of 256 MiB): a clean ENOMEM, no OOM kill, and loads work after it
check "memcg: --memory 256M on every CPU of a 512 MiB machine is refused with ENOMEM" \
  sh -c "! lpctl script load /tmp/m.lua --name huge --memory 256M 2>/tmp/err && grep -q 'os error 12)' /tmp/err"
check "memcg: ... without the OOM killer" sh -c '! dmesg | grep -q "out of memory"'
check "memcg: ... and a script loads after it" lpctl script load /tmp/m.lua --name after
lpctl script unload after
