#!/usr/bin/env bash
# Builds a debug kernel from Debian's linux-source-6.1 for the VM harness:
#
#   scripts/debug-kernel.sh            # -> target/vm/debug-kernel/
#   tests/vm/run.sh --kernel-dir target/vm/debug-kernel --module ... --lpctl ...
#   LUAPKT_KDIR=target/vm/debug-kernel scripts/build-kmod.sh    (or: scripts/build-kmod.sh debug)
#
# Debian's own config for the source's version (linux-headers-6.1.*-amd64/.config of the same
# package version, else linux-config-6.1's config.amd64_none_amd64) with the fragment
# tests/vm/debug-kernel.config merged on top (scripts/kconfig/merge_config.sh, then
# `make olddefconfig`): fault injection (failslab, fail_page_alloc, debugfs), generic KASAN,
# kmemleak, lockdep (PROVE_LOCKING, PROVE_RCU), DEBUG_ATOMIC_SLEEP, the soft-lockup detector,
# no debug info, and the hardware/filesystem/protocol subsystems the VM never uses switched off
# (about 1,000 modules instead of Debian's 4,000; networking and netfilter untouched), plus
# DEBUG_PREEMPT and kmemleak-test.ko (the positive control of tests/vm/debug/90-kmemleak.sh).
# Built with gcc-12 like Debian's (so scripts/build-kmod.sh finds the same compiler), in tree,
# with `nice -n 19`.
#
# Result, target/vm/debug-kernel/:
#   vmlinux, bzImage, System.map, config, kernelrelease    the kernel (KVER 6.1.N-lpdebug)
#   root/lib/modules/KVER/                                 `make modules_install` (depmod done)
#   linux/  (and build -> linux)                           the built tree: KDIR for out-of-tree
#                                                          modules (Module.symvers, auto.conf)
#   build.log, stamp
# Cached: the stamp holds the source package version and the hashes of the base config, the
# fragment's settings and this script's code (comments do not count); a second run with all of
# them unchanged does nothing. A changed setting rebuilds incrementally in the same tree (adding
# kmemleak-test.ko: 1.5 min); a new source version unpacks afresh.
# KASAN kernels do not boot through the vmlinux's PVH note (xen_prepare_pvh is instrumented and
# runs before KASAN's early shadow exists: a triple fault): run.sh boots the bzImage then.
#
# Cost on this machine (2 cores, no KVM, others' builds and VMs running at the same time):
# unpack 16 s, config 7 s, a clean build (bzImage + 1,027 modules, KASAN inline, make -j2 under
# nice -n 19) 52 min, modules_install ~1 min: 53 min in all. bzImage 14 MB, vmlinux 110 MB
# (no debug info), modules 91 MB, the build tree 2.9 GB. A cached run takes < 1 s; a run after
# an edit of the fragment rebuilds only what the changed options touch.
#
# Environment: JOBS (make -j, default nproc), LUAPKT_DEBUG_KERNEL_OUT (another output dir).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${LUAPKT_DEBUG_KERNEL_OUT:-$ROOT/target/vm/debug-kernel}
FRAG=$ROOT/tests/vm/debug-kernel.config
JOBS=${JOBS:-$(nproc)}
CC=gcc-12 # Debian's 6.1 is built with gcc-12 (CONFIG_CC_VERSION_TEXT); build-kmod.sh uses it too

log() { echo "debug-kernel: $*"; }
die() { echo "debug-kernel: error: $*" >&2; exit 1; }
t_start=$(date +%s)
elapsed() { local s=$(( $(date +%s) - t_start )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # others may hold dpkg's lock (build-kmod.sh, the VM harness): wait for it
  apt-get install -y -qq -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null; }
}

apt_install linux-source-6.1 linux-config-6.1 build-essential gcc-12 bc flex bison libelf-dev \
  libssl-dev openssl dwarves rsync cpio kmod xz-utils python3
SRC_TAR=/usr/src/linux-source-6.1.tar.xz
[[ -f $SRC_TAR ]] || die "$SRC_TAR is missing (linux-source-6.1)"
SRC_VER=$(dpkg-query -W -f '${Version}' linux-source-6.1)

# Debian's config for this very source version: the headers package of the same version has
# the config Debian built with (signing, salt); linux-config-6.1 ships the same minus those.
base_config=
for d in /usr/src/linux-headers-6.1.*-amd64; do
  [[ -f $d/.config ]] || continue
  pkg=linux-headers-${d#/usr/src/linux-headers-}
  if [[ $(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null) == "$SRC_VER" ]]; then
    base_config=$d/.config
  fi
done
if [[ -z $base_config ]]; then
  base_config=$(mktemp)
  xz -dc /usr/src/linux-config-6.1/config.amd64_none_amd64.xz >"$base_config"
  base_desc="linux-config-6.1 $SRC_VER (config.amd64_none_amd64)"
else
  base_desc=$base_config
fi

sha() { sha256sum "$@" | cut -c1-16; }
# (comments do not count: the script's, and the fragment's but its "# CONFIG_X is not set")
stamp="source=$SRC_VER base=$(sha "$base_config")"
stamp+=" fragment=$(grep -E '^(CONFIG_|# CONFIG_)' "$FRAG" | sha -)"
stamp+=" script=$(grep -v '^[[:space:]]*#' "$0" | sha -)"

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock -n 9 || { log "another build holds $OUT/.lock: waiting"; flock 9; }

if [[ -f $OUT/stamp && $(cat "$OUT/stamp") == "$stamp" && -f $OUT/bzImage &&
      -d $OUT/root/lib/modules/$(cat "$OUT/kernelrelease" 2>/dev/null) ]]; then
  log "up to date: $(cat "$OUT/kernelrelease") in $OUT ($stamp); $(elapsed)"
  exit 0
fi
rm -f "$OUT/stamp"
log "source linux-source-6.1 $SRC_VER, base config $base_desc"

# ---- source --------------------------------------------------------------------------------
KSRC=$OUT/linux
if [[ ! -f $KSRC/.lp-source-version || $(cat "$KSRC/.lp-source-version") != "$SRC_VER" ]]; then
  log "unpacking $SRC_TAR"
  rm -rf "$KSRC" "$OUT/.unpack"
  mkdir -p "$OUT/.unpack"
  tar -C "$OUT/.unpack" -xaf "$SRC_TAR"
  mv "$OUT/.unpack/linux-source-6.1" "$KSRC"
  rmdir "$OUT/.unpack"
  # scripts/setlocalversion: no "+" or git hash from an enclosing repository
  : >"$KSRC/.scmversion"
  echo "$SRC_VER" >"$KSRC/.lp-source-version"
  log "unpacked in $(elapsed)"
fi
ln -sfn linux "$OUT/build"

# ---- config --------------------------------------------------------------------------------
kmake() { nice -n 19 make -C "$KSRC" CC="$CC" -j"$JOBS" "$@"; }
cp "$base_config" "$KSRC/.config.lp-new"
(cd "$KSRC" && KCONFIG_CONFIG=.config.lp-new scripts/kconfig/merge_config.sh -m .config.lp-new "$FRAG") \
  >"$OUT/merge.log" 2>&1 || { cat "$OUT/merge.log" >&2; die "merge_config.sh failed"; }
KCONFIG_CONFIG=.config.lp-new kmake -s olddefconfig >>"$OUT/merge.log" 2>&1 ||
  { cat "$OUT/merge.log" >&2; die "make olddefconfig failed"; }
# the fragment must have survived olddefconfig: every "=..." exactly, every "is not set"
bad=0
while IFS= read -r line; do
  grep -qxF -- "$line" "$KSRC/.config.lp-new" || { echo "  wanted $line, got: $(grep -E "^(# )?${line%%=*}[= ]" "$KSRC/.config.lp-new" || echo absent)" >&2; bad=1; }
done < <(grep -E '^CONFIG_' "$FRAG")
((bad == 0)) || die "olddefconfig dropped settings of $FRAG (above)"
while read -r _ sym _; do
  grep -qE "^$sym=[ym]" "$KSRC/.config.lp-new" && log "warning: $sym stays on (something selects it): $(grep -E "^$sym=" "$KSRC/.config.lp-new")"
done < <(grep -E '^# CONFIG_[A-Za-z0-9_]+ is not set' "$FRAG")
# Replace .config only when it changed (Kbuild would otherwise re-check everything).
if cmp -s "$KSRC/.config.lp-new" "$KSRC/.config"; then
  rm "$KSRC/.config.lp-new"
else
  mv "$KSRC/.config.lp-new" "$KSRC/.config"
fi
log "config: $(grep -c '=m$' "$KSRC/.config") modules, $(grep -c '=y$' "$KSRC/.config") built-in options ($(elapsed))"

# ---- build ---------------------------------------------------------------------------------
log "building bzImage and modules with make -j$JOBS under nice -n 19 (log: $OUT/build.log)"
t_build=$(date +%s)
if ! kmake bzImage modules >"$OUT/build.log" 2>&1; then
  tail -n 60 "$OUT/build.log" >&2
  die "kernel build failed ($OUT/build.log)"
fi
KVER=$(cat "$KSRC/include/config/kernel.release")
log "built $KVER in $(( ($(date +%s) - t_build) / 60 )) min"

rm -rf "$OUT/root"
kmake -s modules_install INSTALL_MOD_PATH="$OUT/root" >>"$OUT/build.log" 2>&1 ||
  { tail -n 30 "$OUT/build.log" >&2; die "modules_install failed"; }
[[ -f $OUT/root/lib/modules/$KVER/modules.dep ]] || depmod -b "$OUT/root" "$KVER"

cp "$KSRC/arch/x86/boot/bzImage" "$OUT/bzImage"
cp "$KSRC/vmlinux" "$OUT/vmlinux" # ELF with the PVH note: run.sh boots it directly
cp "$KSRC/System.map" "$OUT/System.map"
cp "$KSRC/.config" "$OUT/config"
echo "$KVER" >"$OUT/kernelrelease"
echo "$stamp" >"$OUT/stamp"
log "done: $KVER: bzImage $(du -h "$OUT/bzImage" | cut -f1), vmlinux $(du -h "$OUT/vmlinux" | cut -f1)," \
  "$(find "$OUT/root/lib/modules/$KVER" -name '*.ko' | wc -l) modules ($(du -sh "$OUT/root" | cut -f1))," \
  "tree $(du -sh "$KSRC" | cut -f1); total $(elapsed)"
