#!/usr/bin/env bash
# Boots a real Debian kernel in qemu (TCG) with a busybox initramfs, real nft, iproute2, socat
# and kmod, runs every scenario in tests/vm/scenarios inside it and reports one line per check.
#
#   tests/vm/run.sh [--kernel 6.1|6.12|KVER] [--module PATH/nft_lua.ko] [--lpctl PATH]
#                   [--scenarios DIR] [--data DIR] [--timeout SECONDS] [--keep]
#                   [--kernel-dir DIR] [--memory SIZE] [--no-reruns]
#
#   --kernel     series (newest ABI apt knows) or exact version; default: the one the module
#                was built for (its vermagic), else 6.1
#   --module     nft_lua.ko for that kernel: enables scenarios marked "# vm-requires: module"
#   --lpctl      an lpctl binary (copied stripped, with its libraries): "# vm-requires: lpctl"
#   --data       files the scenarios read, copied to /vm/data (hostile packages, ...)
#   --timeout    wall-clock limit for qemu (default 900 s, or $VM_TIMEOUT)
#   --keep       keep target/vm/work-KVER.* (initramfs tree, qemu stderr, serial log)
#   --kernel-dir a kernel built here instead of a Debian package (scripts/debug-kernel.sh:
#                target/vm/debug-kernel): DIR/kernelrelease, DIR/vmlinux or DIR/bzImage
#                (always the bzImage with KASAN), DIR/root/lib/modules/KVER, DIR/config.
#                A debug kernel (KASAN, lockdep or kmemleak in DIR/config) gets -m 1G, a
#                3600 s timeout and 600 s per scenario unless --memory, --timeout or
#                $VM_TIMEOUT, $VM_SCENARIO_TIMEOUT say otherwise
#   --memory     guest memory (qemu -m; default 512M, 1G for a debug kernel)
#   --no-reruns  run scenarios marked "# vm-engines: ENGINE" once, on the module's default
#                engine only (by default init.sh runs them again on ENGINE)
#   environment: VM_SCENARIO_TIMEOUT (per scenario in the guest, default 120 s),
#                VM_APPEND (extra kernel command line, e.g. loglevel=7)
#                VM_QEMU_ARGS (extra qemu arguments, split on spaces; e.g. scripts/tcg-profile.sh's -plugin)
#
# The guest boots with softlockup_panic=1: a CPU held too long by anything (a script) panics
# the run, which then fails.
# Exits non-zero when a check failed, when a scenario did not finish (the guest died or hung),
# or when the kernel log shows BUG:, WARNING:, Oops, Call Trace or a panic.
# Caches kernels under target/vm/cache/; the serial log of the last run is
# target/vm/serial-KVER.log. See tests/vm/README.md.
set -euo pipefail

VM_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
OUT=$REPO/target/vm
CACHE=$OUT/cache

kernel= # default: the kernel the module was built for, else 6.1
module=
lpctl=
scenarios=$VM_DIR/scenarios
keep=0
reruns=1
timeout=${VM_TIMEOUT:-900}
timeout_given=${VM_TIMEOUT:+1}
kernel_dir=
memory=

usage() { sed -n '2,/^set -e/{/^#/s/^# \{0,1\}//p}' "$0"; exit "${1:-0}"; }
die() { echo "vm: error: $*" >&2; exit 2; }
log() { echo "vm: $*" >&2; }

while (($#)); do
  case $1 in
    --kernel) kernel=${2:?}; shift 2 ;;
    --module) module=${2:?}; shift 2 ;;
    --lpctl) lpctl=${2:?}; shift 2 ;;
    --scenarios) scenarios=${2:?}; shift 2 ;;
    --data) data=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; timeout_given=1; shift 2 ;;
    --kernel-dir) kernel_dir=${2:?}; shift 2 ;;
    --memory) memory=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-reruns) reruns=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "vm: unknown argument: $1" >&2; usage 2 >&2 ;;
  esac
done
[[ -z $module || -f $module ]] || die "--module: no such file: $module"
[[ -z $lpctl || -x $lpctl ]] || die "--lpctl: not an executable file: $lpctl"
[[ -d $scenarios ]] || die "--scenarios: no such directory: $scenarios"
[[ -z ${data:-} || -d $data ]] || die "--data: no such directory: $data"
[[ -n $module ]] && module=$(realpath "$module")
[[ -n $lpctl ]] && lpctl=$(realpath "$lpctl")
scenarios=$(realpath "$scenarios")
if [[ -n $kernel_dir ]]; then
  [[ -d $kernel_dir ]] || die "--kernel-dir: no such directory: $kernel_dir"
  kernel_dir=$(realpath "$kernel_dir")
  [[ -z $kernel ]] || die "--kernel and --kernel-dir exclude each other"
  [[ -f $kernel_dir/kernelrelease ]] || die "--kernel-dir: $kernel_dir/kernelrelease is missing (scripts/debug-kernel.sh writes it)"
  kernel=$(cat "$kernel_dir/kernelrelease")
  [[ -d $kernel_dir/root/lib/modules/$kernel ]] || die "--kernel-dir: $kernel_dir/root/lib/modules/$kernel is missing"
  if grep -qE '^CONFIG_(KASAN|PROVE_LOCKING|DEBUG_KMEMLEAK)=y' "$kernel_dir/config" 2>/dev/null; then
    # KASAN, lockdep and kmemleak under TCG: more memory (KASAN's shadow is 1/8 of it), more time
    memory=${memory:-1G}
    [[ -n $timeout_given ]] || timeout=3600
    export VM_SCENARIO_TIMEOUT=${VM_SCENARIO_TIMEOUT:-600}
  fi
fi
memory=${memory:-512M}

t_start=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

"$REPO/scripts/setup.sh" >&2

# ---------------------------------------------------------------------------------------------
# The kernel: the newest ABI of the series that apt knows, or the exact one the module was
# built for (a module only loads into the kernel whose vermagic it carries).

series_regex() {
  case $1 in
    6.1) echo '^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
    6.12) echo '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' ;;
    *) return 1 ;;
  esac
}

newest_in_series() { # SERIES -> KVER, from apt's lists (updated once if they know nothing)
  local re pkgs
  re=$(series_regex "$1")
  pkgs=$(apt-cache search --names-only "$re" 2>/dev/null | cut -d' ' -f1 | grep -E "$re" || true)
  if [[ -z $pkgs ]]; then
    log "apt knows no $1 kernel image; running apt-get update"
    apt-get update -qq >&2 || true
    pkgs=$(apt-cache search --names-only "$re" 2>/dev/null | cut -d' ' -f1 | grep -E "$re" || true)
  fi
  if [[ -z $pkgs ]]; then # offline: the newest one already cached
    pkgs=$(find "$CACHE" -maxdepth 1 -name '*.ready' -printf 'linux-image-%f\n' 2>/dev/null |
      sed 's/\.ready$//' | grep -E "$re" || true)
    [[ -n $pkgs ]] && log "using a cached $1 kernel (apt lists have none)"
  fi
  [[ -n $pkgs ]] || die "no linux-image package for series $1 (pattern $re)"
  sort -V <<<"$pkgs" | tail -n1 | sed 's/^linux-image-//'
}

mod_kver=
if [[ -n $module ]]; then
  mod_kver=$(modinfo -F vermagic "$module" | awk '{ print $1 }')
  [[ -n $mod_kver ]] || die "$module has no vermagic (is it a kernel module?)"
fi
[[ -n $kernel ]] || kernel=${mod_kver:-6.1}
case $kernel in
  6.1|6.12)
    if [[ -n $mod_kver ]]; then
      [[ $mod_kver == "$kernel".* ]] ||
        die "$module was built for $mod_kver, not for the $kernel series: omit --kernel, or pass the series it was built for"
      kver=$mod_kver
    else
      kver=$(newest_in_series "$kernel")
    fi ;;
  [0-9]*-amd64) kver=$kernel ;;
  *) [[ -n $kernel_dir ]] || # (--kernel-dir: its own release, whatever it looks like)
       die "--kernel: expected 6.1, 6.12 or a full version such as 6.1.0-56-amd64, got $kernel"
     kver=$kernel ;;
esac
if [[ -n $mod_kver && $mod_kver != "$kver" ]]; then
  die "$module was built for $mod_kver but the kernel is $kver: rebuild it against linux-headers-$kver or pass --kernel $mod_kver"
fi

kroot=$CACHE/$kver
[[ -z $kernel_dir ]] || kroot=$kernel_dir # its modules are in root/ too: nothing to fetch
fetch_kernel() {
  local pkg=linux-image-$kver deb
  mkdir -p "$CACHE/debs"
  deb=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort -V | tail -n1)
  if [[ -z $deb ]]; then
    log "downloading $pkg"
    # (its stderr is kept for failures only: as root it always warns about the _apt sandbox)
    if ! (cd "$CACHE/debs" && apt-get download -qq "$pkg") 2>"$CACHE/download.err"; then
      cat "$CACHE/download.err" >&2
      die "apt-get download $pkg failed (is the ABI still in the archive? try --kernel with the series)"
    fi
    deb=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort -V | tail -n1)
    [[ -n $deb ]] || die "apt-get download $pkg produced no .deb"
  fi
  log "extracting $(basename "$deb")"
  rm -rf "$kroot" && mkdir -p "$kroot"
  dpkg-deb -x "$deb" "$kroot/root"
  depmod -b "$kroot/root" "$kver"
  extract_vmlinux "$kroot/root/boot/vmlinuz-$kver" "$kroot/vmlinux" ||
    log "no uncompressed vmlinux could be extracted: booting the bzImage"
  touch "$CACHE/$kver.ready"
}

# The bzImage carries the kernel as an xz (6.1) or zstd (6.12) stream; the uncompressed ELF boots
# directly through its PVH note, which saves the decompression under TCG (measured: ~4 s instead of ~12 s of qemu wall for
# a minimal run on 6.1).
extract_vmlinux() { # BZIMAGE OUT
  local img=$1 out=$2 magic off tool
  for magic in '\xfd7zXZ\x00:xz' '\x28\xb5\x2f\xfd:zstd'; do
    tool=${magic##*:}
    for off in $(LC_ALL=C grep -obUaP "${magic%:*}" "$img" | cut -d: -f1); do
      case $tool in
        xz) tail -c +$((off + 1)) "$img" | xz -dc --single-stream >"$out" 2>/dev/null || true ;;
        zstd) tail -c +$((off + 1)) "$img" | zstd -dcq 2>/dev/null >"$out" || true ;;
      esac
      if [[ $(head -c 4 "$out" | od -An -c | tr -d ' ') == 177ELF ]] &&
        readelf -n "$out" 2>/dev/null | grep -q 'Xen'; then
        return 0
      fi
    done
  done
  rm -f "$out"
  return 1
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock" # one extraction at a time when runs overlap
flock 9
[[ -n $kernel_dir ]] || [[ -f $CACHE/$kver.ready && -d $kroot/root/lib/modules/$kver ]] || fetch_kernel
flock -u 9
kimage=$kroot/vmlinux
[[ -f $kimage ]] || kimage=$kroot/root/boot/vmlinuz-$kver
if [[ -n $kernel_dir ]]; then # the ELF boots through its PVH note when it has one, but not
  # with KASAN: the PVH entry's C code (xen_prepare_pvh) is instrumented and runs before KASAN's
  # early shadow is mapped: a triple fault before the first line on the console (6.1)
  readelf -n "$kimage" 2>/dev/null | grep -q Xen || kimage=$kernel_dir/bzImage
  grep -q '^CONFIG_KASAN=y' "$kernel_dir/config" 2>/dev/null && kimage=$kernel_dir/bzImage
  [[ -f $kimage ]] || die "--kernel-dir: neither $kernel_dir/vmlinux (with a PVH note) nor $kernel_dir/bzImage"
fi
log "kernel $kver ($(basename "$kimage")${kernel_dir:+ from $kernel_dir, -m $memory, timeout $timeout s}) prepared in $(elapsed "$t_start") s"

# ---------------------------------------------------------------------------------------------
# Scenarios: every *.sh of the directory, minus those whose "# vm-requires:" names something
# not given (module, lpctl). "# vm-modules:" lines name kernel modules to bring (with their
# dependencies): modprobe and nft's autoload find them, nothing loads them up front.

declare -a scen_files=() scen_names=()
extra_mods=()
for f in "$scenarios"/*.sh; do
  [[ -e $f ]] || continue
  req=$(sed -n 's/^# vm-requires:[[:space:]]*//p' "$f" | tr '\n' ' ')
  skip=0
  for r in $req; do
    case $r in
      module) [[ -n $module ]] || skip=1 ;;
      lpctl) [[ -n $lpctl ]] || skip=1 ;;
      *) die "$f: unknown vm-requires: $r (known: module lpctl)" ;;
    esac
  done
  ((skip)) && continue
  scen_files+=("$f")
  scen_names+=("$(basename "$f" .sh)")
  # run again on another engine by init.sh ("# vm-engines: ENGINE")
  eng=$(sed -n 's/^# vm-engines:[[:space:]]*\([a-z]*\).*/\1/p' "$f" | head -n 1)
  if [[ -n $module && -n $eng ]] && ((reruns)); then
    scen_names+=("$(basename "$f" .sh)@$eng")
  fi
  # shellcheck disable=SC2207
  extra_mods+=($(sed -n 's/^# vm-modules:[[:space:]]*//p' "$f"))
done
((${#scen_files[@]})) || die "no scenario to run in $scenarios"

# ---------------------------------------------------------------------------------------------
# The initramfs.

work=$(mktemp -d "$OUT/work-$kver.XXXXXX")
((keep)) || trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib64,proc,sys,dev,tmp,run,etc,vm/scenarios}
mkdir -p "$root/lib/modules/$kver"

copy_file() { # SRC DEST-IN-ROOT (follows symlinks)
  mkdir -p "$root$(dirname "$2")"
  cp -L "$1" "$root$2"
}
copy_binary() { # SRC DEST-IN-ROOT: the binary and every library ldd lists
  local lib
  copy_file "$1" "$2"
  if ldd "$1" 2>&1 | grep -q 'not found'; then
    die "$1: missing libraries: $(ldd "$1" | grep 'not found' | tr -s ' \t' ' ')"
  fi
  for lib in $(ldd "$1" 2>/dev/null | grep -oE '(^|[[:space:]])/[^[:space:]]+' || true); do
    [[ -e $root$lib ]] || copy_file "$lib" "$lib"
  done
}

# Debian's static busybox prefers its own applets to anything on PATH (FEATURE_PREFER_APPLETS):
# its ash would run busybox's ip and modprobe, and its nsenter would exec applets too. So the
# shell is dash, and nsenter/unshare come from util-linux; busybox provides everything else.
copy_file "$(command -v busybox)" /bin/busybox
copy_binary "$(command -v dash)" /bin/dash
ln -s dash "$root/bin/sh"
copy_binary "$(command -v nsenter)" /usr/bin/nsenter
copy_binary "$(command -v unshare)" /usr/bin/unshare
copy_binary "$(command -v nft)" /usr/sbin/nft
copy_binary "$(command -v socat)" /usr/bin/socat
copy_binary /usr/sbin/ip /usr/sbin/ip # iproute2: busybox's ip cannot name a veth peer
copy_binary "$(command -v ethtool)" /usr/sbin/ethtool # veth offloads (tx off: receivers verify checksums)
copy_binary "$(command -v kmod)" /usr/bin/kmod
for t in modprobe insmod rmmod lsmod modinfo depmod; do ln -s ../usr/bin/kmod "$root/sbin/$t"; done
if [[ -n $lpctl ]]; then # stripped: a release lpctl with debug info is ~200 MB
  copy_binary "$lpctl" /usr/bin/lpctl
  strip --strip-unneeded "$root/usr/bin/lpctl"
fi
# tftpd-hpa's server (scripts/setup.sh unpacks it): busybox has a client only
[[ -x $OUT/peers/in.tftpd ]] && copy_binary "$OUT/peers/in.tftpd" /usr/sbin/in.tftpd
for a in $("$root/bin/busybox" --list); do
  for d in bin sbin usr/bin usr/sbin; do [[ -e $root/$d/$a ]] && continue 2; done
  ln -s busybox "$root/bin/$a"
done
for f in /etc/protocols /etc/services; do [[ -f $f ]] && copy_file "$f" "$f"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

# Kernel modules: the closure (with softdeps) of what the harness and the scenarios use, in load
# order, decompressed; then depmod so modprobe (and nft's autoload) work inside the guest.
base_mods=(crc32c_generic libcrc32c nfnetlink nf_tables veth)
if [[ -n $module ]]; then
  # shellcheck disable=SC2207
  base_mods+=($(modinfo -F depends "$module" | tr ',' ' '))
fi
declare -A seen=()
preload=()
for m in "${base_mods[@]}" "${extra_mods[@]}"; do
  [[ -n ${seen[$m]:-} ]] && continue
  seen[$m]=1
  deps=$(modprobe -d "$kroot/root" -S "$kver" --show-depends "$m" 2>&1) ||
    die "kernel $kver has no module $m: $deps"
  while read -r kind path _; do
    [[ $kind == insmod ]] || continue
    rel=${path#"$kroot/root"}
    dest=${rel%.xz}; dest=${dest%.zst}; dest=${dest%.gz}
    [[ -e $root$dest ]] && continue
    mkdir -p "$root$(dirname "$dest")"
    case $rel in
      *.xz) xz -dc "$path" >"$root$dest" ;;
      *.zst) zstd -dcq "$path" -o "$root$dest" ;;
      *.gz) gzip -dc "$path" >"$root$dest" ;;
      *) cp "$path" "$root$dest" ;;
    esac
  done <<<"$deps"
  # The harness's own modules are loaded by /init; the scenarios' are there for modprobe and
  # nft's autoload (request_module -> /sbin/modprobe, kmod's).
  if grep -q '^insmod ' <<<"$deps" && [[ " ${base_mods[*]} " == *" $m "* ]]; then
    preload+=("$m")
  fi
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
  [[ -f $kroot/root/lib/modules/$kver/$f ]] && cp "$kroot/root/lib/modules/$kver/$f" "$root/lib/modules/$kver/"
done
guest_module=
if [[ -n $module ]]; then
  # Named after the module's own name (not the file's), as depmod and modprobe expect.
  mod_name=$(modinfo -F name "$module" 2>/dev/null || true)
  [[ -n $mod_name ]] || mod_name=$(basename "$module" .ko | tr '-' '_')
  guest_module=/lib/modules/$kver/extra/$mod_name.ko
  copy_file "$module" "$guest_module"
  strip --strip-debug "$root$guest_module" # as INSTALL_MOD_STRIP=1; symbols stay for traces
fi
depmod -b "$root" "$kver"

# The harness itself.
cp "$VM_DIR/init.sh" "$root/init"
cp "$VM_DIR/lib.sh" "$root/vm/lib.sh"
chmod +x "$root/init"
for f in "${scen_files[@]}"; do cp "$f" "$root/vm/scenarios/"; done
# Lua files beside the scenarios (symlinks to examples/ welcome) travel with them.
for f in "$scenarios"/*.lua; do [[ -e $f ]] && cp -L "$f" "$root/vm/scenarios/"; done
# Test data (hostile packages, ...) under /vm/data.
if [[ -n ${data:-} ]]; then mkdir -p "$root/vm/data" && cp -rL "$data"/. "$root/vm/data/"; fi
printf '%s\n' "${preload[@]}" >"$root/vm/modules"
{
  echo "KVER=$kver"
  echo "VM_SCENARIO_TIMEOUT=${VM_SCENARIO_TIMEOUT:-120}"
  echo "VM_ENGINE_RERUNS=$reruns"
  if [[ -n $module ]]; then
    echo "LUAPKT_MODULE=$guest_module"
    echo "LUAPKT_MODULE_NAME=$mod_name"
  fi
  [[ -n $lpctl ]] && echo "LPCTL=/usr/bin/lpctl"
  echo "export KVER VM_SCENARIO_TIMEOUT VM_ENGINE_RERUNS${module:+ LUAPKT_MODULE LUAPKT_MODULE_NAME}${lpctl:+ LPCTL}"
} >"$root/vm/env"

initrd=$work/initramfs.cpio
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio -o -0 -H newc -R 0:0 --quiet >"$initrd")
log "initramfs: $(du -sh --apparent-size "$initrd" | cut -f1) uncompressed, ${#preload[@]} module(s) preloaded, scenarios: ${scen_names[*]}"
log "prepared in $(elapsed "$t_start") s; booting"

# ---------------------------------------------------------------------------------------------
# Boot. The guest's /init prints "@@vm" markers around every scenario and powers off.

serial=$work/serial.log
t_boot=$(date +%s.%N)
qemu_rc=0
timeout -k 5 "$timeout" qemu-system-x86_64 \
  -machine q35,accel=tcg -cpu max -smp 2 -m "$memory" \
  -nographic -no-reboot -nic none \
  -kernel "$kimage" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 oops=panic softlockup_panic=1 quiet ${VM_APPEND:-}" \
  ${VM_QEMU_ARGS:-} \
  </dev/null >"$serial" 2>"$work/qemu.stderr" || qemu_rc=$?
boot_wall=$(elapsed "$t_boot")
sed -i 's/\r$//' "$serial"
# the last run's, for reading after the fact (scenarios from another directory than the suite's,
# e.g. the demo's, keep their own: a suite may run at the same time)
serial_kept=$OUT/serial-$kver.log
[[ $scenarios == "$VM_DIR/scenarios" ]] || serial_kept=$OUT/serial-$kver-$(basename "$scenarios").log
cp "$serial" "$serial_kept"
if ((qemu_rc == 124 || qemu_rc == 137)); then
  log "qemu killed after the ${timeout} s timeout"
elif ((qemu_rc != 0)); then
  log "qemu exited with status $qemu_rc: $(tr '\n' ' ' <"$work/qemu.stderr")"
fi

# ---------------------------------------------------------------------------------------------
# Verdict.

passed=0 failed=0
while IFS= read -r line; do
  case $line in
    "ok - "*) passed=$((passed + 1)); echo "$line" ;;
    "not ok - "*) failed=$((failed + 1)); echo "$line" ;;
    "# "*) echo "$line" ;;
  esac
done <"$serial"

for name in "${scen_names[@]}"; do
  end=$(grep -E "^@@vm end $name rc=[0-9]+ checks=[0-9]+$" "$serial" | tail -n1 || true)
  if [[ -z $end ]]; then
    echo "not ok - $name: did not finish (the guest died, hung or timed out)"
    failed=$((failed + 1))
  elif [[ $end == *" checks=0" ]]; then
    echo "not ok - $name: ran no check"
    failed=$((failed + 1))
  fi
done
if ! grep -q '^@@vm done' "$serial"; then
  echo "not ok - vm: the guest did not reach poweroff (serial log: $serial_kept)"
  failed=$((failed + 1))
fi

# The kernel log: console lines and each scenario's dmesg, attributed to the scenario (or the
# boot) during which they were printed.
bad_re='BUG:|WARNING:|Oops|Call Trace|Kernel panic'
# An allocation failure the kernel reports (warn_alloc: "page allocation failure" or "vmalloc
# error", then a stack dump) is not a bug: fault injection (tests/vm/debug) makes the kernel's
# own allocations fail too, and not all of them are __GFP_NOWARN. Its Call Trace is excused.
alloc_warn_re='page allocation failure|vmalloc error: size'
alloc_warn_at=-100
section=boot
declare -A bad=()
bad_order=()
lineno=0
while IFS= read -r line; do
  lineno=$((lineno + 1))
  case $line in
    "@@vm begin "*) section=${line#@@vm begin } ;;
    "@@vm done"*) section=shutdown ;;
    "ok - "*|"not ok - "*|"# "*|"@@vm "*) ;;
    *)
      [[ $line =~ $alloc_warn_re ]] && alloc_warn_at=$lineno
      if [[ $line == *"Call Trace"* ]] && ((lineno - alloc_warn_at <= 4)); then
        :
      elif [[ $line =~ $bad_re ]]; then
        [[ -n ${bad[$section]:-} ]] || bad_order+=("$section")
        bad[$section]+="#   $lineno: $line"$'\n'
      fi ;;
  esac
done <"$serial"
if ((${#bad_order[@]} == 0)); then
  echo "ok - vm: kernel log has no BUG:, WARNING:, Oops, Call Trace or panic"
  passed=$((passed + 1))
fi
for section in "${bad_order[@]}"; do
  n=$(printf '%s' "${bad[$section]}" | grep -c '')
  echo "not ok - vm: kernel log during $section: $n offending line(s) ($serial_kept)"
  # (|| true: with more than a pipe's worth of lines printf dies of SIGPIPE when head is done,
  # and pipefail + set -e would end the run before its summary)
  printf '%s' "${bad[$section]}" | head -n 40 || true
  failed=$((failed + 1))
done

guest_up=$(sed -n 's/^@@vm init uptime=//p' "$serial" | head -n1)
guest_done=$(sed -n 's/^@@vm done uptime=//p' "$serial" | head -n1)
log "kernel $kver: guest /init at ${guest_up:-?} s, poweroff at ${guest_done:-?} s (guest clock);" \
  "qemu wall ${boot_wall} s; total $(elapsed "$t_start") s; initramfs $(du -sh --apparent-size "$initrd" | cut -f1)"
log "serial log: $serial_kept"
((keep)) && log "kept $work (initramfs tree, initramfs, qemu stderr, serial log)"
echo "$passed passed, $failed failed"
((failed == 0))
