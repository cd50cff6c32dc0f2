#!/bin/sh
# /init of the test VM (dash, not busybox's ash: see run.sh). Mounts, loads the harness's kernel
# modules, runs every /vm/scenarios/*.sh in order (each in its own process, under a timeout,
# from a clean state) and powers off. Lines starting "@@vm " are markers for tests/vm/run.sh;
# "ok - " and "not ok - " lines are checks.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /root /var && ln -s /run /var/run
. /vm/env
echo
echo "@@vm init uptime=$(cut -d' ' -f1 /proc/uptime)"

ip link set lo up
failed_mods=
for m in $(cat /vm/modules); do
  modprobe "$m" 2>/tmp/modprobe.err || failed_mods="$failed_mods $m($(tr '\n' ' ' </tmp/modprobe.err))"
done
if [ -z "$failed_mods" ]; then
  echo "ok - vm: load kernel modules ($(tr '\n' ' ' </vm/modules | sed 's/ $//'))"
else
  echo "not ok - vm: load kernel modules: failed:$failed_mods"
fi

# The kernel log so far belongs to the boot; after each scenario, what it added follows it.
echo "@@vm dmesg boot"
dmesg -c | tee -a /run/vm-dmesg.log

# What a scenario leaves behind must not leak into the next one: its processes (namespaces die
# with them), its interfaces and its ruleset. Kernel modules stay loaded.
reset_state() {
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" -eq 1 ] || kill -9 "$p" 2>/dev/null
  done
  for l in /sys/class/net/*; do
    l=${l##*/}
    [ "$l" = lo ] || ip link del "$l" 2>/dev/null
  done
  nft flush ruleset 2>/dev/null
}

# The engine scripts load on when a scenario names none (nft_lua's default_engine: 1 wasmi,
# 2 compiled), for one run and every modprobe in it; `set_engine` alone: the module's own.
ENGINE_PARAM=/sys/module/${LUAPKT_MODULE_NAME:-none}/parameters/default_engine
set_engine() {
  if [ -n "${1:-}" ]; then
    mkdir -p /etc/modprobe.d
    echo "options $LUAPKT_MODULE_NAME default_engine=$1" >/etc/modprobe.d/luapkt-engine.conf
    [ ! -w "$ENGINE_PARAM" ] || echo "$1" >"$ENGINE_PARAM"
  else
    rm -f /etc/modprobe.d/luapkt-engine.conf
    [ ! -w "$ENGINE_PARAM" ] || echo "$ENGINE_DEFAULT" >"$ENGINE_PARAM"
  fi
}

run_scenario() { # FILE NAME
  s=$1
  name=$2
  echo "@@vm begin $name"
  rm -f /tmp/.vm-checks # lib.sh appends a line per check
  # a scenario may ask for more time: "# vm-timeout: SECONDS"
  t=$(sed -n 's/^# vm-timeout: *\([0-9][0-9]*\).*/\1/p' "$s" | head -n 1)
  [ -n "$t" ] && [ "$t" -gt "$VM_SCENARIO_TIMEOUT" ] || t=$VM_SCENARIO_TIMEOUT
  (cd /tmp && exec timeout "$t" /bin/sh "$s") 2>&1
  rc=$?
  n=0
  [ -f /tmp/.vm-checks ] && n=$(wc -l </tmp/.vm-checks)
  if [ "$rc" -ne 0 ]; then
    echo "not ok - $name: scenario exited with status $rc$([ "$rc" -eq 143 ] && echo " (timeout ${t}s)")"
  fi
  echo "@@vm dmesg $name"
  dmesg -c | tee -a /run/vm-dmesg.log
  echo "@@vm end $name rc=$rc checks=$n"
  reset_state
}

# A scenario marked "# vm-engines: ENGINE" (wasmi or compiled, the one the module does not
# default to) runs a second time with scripts on it, its checks named "ENGINE: ..." (lib.sh's
# VM_CHECK_PREFIX), unless run.sh was given --no-reruns.
for s in /vm/scenarios/*.sh; do
  [ -e "$s" ] || continue
  name=$(basename "$s" .sh)
  run_scenario "$s" "$name"
  e=$(sed -n 's/^# vm-engines:[[:space:]]*\([a-z]*\).*/\1/p' "$s" | head -n 1)
  if [ -n "$e" ] && [ -n "${LUAPKT_MODULE_NAME:-}" ] && [ "${VM_ENGINE_RERUNS:-1}" = 1 ]; then
    modprobe "$LUAPKT_MODULE_NAME" 2>/dev/null
    ENGINE_DEFAULT=$(cat "$ENGINE_PARAM" 2>/dev/null || echo 1)
    case $e in wasmi) set_engine 1 ;; compiled) set_engine 2 ;; esac
    export VM_CHECK_PREFIX="$e: "
    run_scenario "$s" "$name@$e"
    unset VM_CHECK_PREFIX
    set_engine
  fi
done

echo "@@vm done uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
