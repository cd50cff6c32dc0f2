#!/usr/bin/env bash
# Builds nft_lua.ko for a Debian kernel series: scripts/build-kmod.sh [6.1|6.12]
#
#   1. installs the build packages and the newest linux-headers of the series (idempotent;
#      LUAPKT_KVER=6.1.0-56-amd64 pins an ABI instead of asking apt-cache);
#   2. compiles kmod-wasmi/ffi (the runtime as a staticlib) for x86_64-unknown-none with
#      core/alloc rebuilt for the kernel code model (kmod-wasmi/kernel/README.md) and the
#      mitigation flags the kernel's config asks for (retpolines, return thunks, IBT); its
#      build translates the built-in guest with wasm2c and compiles it with clang-16 and the
#      kernel's flags (the compiled engine, kmod-wasmi/runtime/build.rs);
#   3. merges the staticlib into one relocatable object, lp_rust.rlo: strips LLVM bitcode and
#      unwind tables, localizes compiler_builtins' mem* (the kernel's are used), keeps only
#      what the lp_rt_* entry points reach, folds sections (kmod-wasmi/kernel/lp_rust.lds);
#   4. builds the module out of tree with Kbuild in target/kmod/<KVER>/build and fails on any
#      compiler, objtool or modpost warning;
#   5. checks the result: every undefined symbol is a kernel export, no GOTPCREL relocation,
#      no vector register in the Rust code, objtool clean on it as on the C objects.
# Output: target/kmod/<KVER>/nft_lua.ko (and target/kmod/<KVER>/build.log).
#
# Against a kernel tree built here instead of Debian's headers (the debug kernel of
# scripts/debug-kernel.sh): LUAPKT_KDIR=DIR scripts/build-kmod.sh, or scripts/build-kmod.sh debug
# for LUAPKT_KDIR=target/vm/debug-kernel. DIR is the built tree (make modules_prepare and
# Module.symvers) or a directory whose build/ is one; KVER is its kernel.release, the series
# its first two numbers; no headers package is installed and the Rust objects go to
# target/kmod/rust-<KVER>.
set -euo pipefail
[[ -z "${LUAPKT_KDIR:-}" ]] || LUAPKT_KDIR=$(realpath -m -- "$LUAPKT_KDIR") # relative to the caller
cd "$(dirname "$0")/.."
ROOT=$PWD

SERIES=${1:-6.1}
[[ $SERIES == debug ]] && { LUAPKT_KDIR=${LUAPKT_KDIR:-$ROOT/target/vm/debug-kernel}; SERIES=; }
if [[ -n "${LUAPKT_KDIR:-}" ]]; then # a built kernel tree: its release names the series
  for d in "$LUAPKT_KDIR" "$LUAPKT_KDIR/build"; do
    [[ -f $d/include/config/kernel.release ]] && { LUAPKT_KDIR=$(realpath "$d"); break; }
  done
  [[ -f $LUAPKT_KDIR/include/config/kernel.release && -f $LUAPKT_KDIR/Module.symvers ]] ||
    { echo "build-kmod: error: LUAPKT_KDIR=$LUAPKT_KDIR is not a built kernel tree (include/config/kernel.release, Module.symvers)" >&2; exit 1; }
  SERIES=$(cut -d. -f1,2 "$LUAPKT_KDIR/include/config/kernel.release")
fi
case "$SERIES" in
  6.1) HEADERS_RE='^linux-headers-6\.1\.0-[0-9]+-amd64$' ;;
  6.12) HEADERS_RE='^linux-headers-6\.12\.[0-9]+\+deb12-amd64$' ;;
  *) [[ -n "${LUAPKT_KDIR:-}" ]] || { echo "usage: $0 [6.1|6.12|debug]" >&2; exit 2; } ;;
esac

log() { echo "build-kmod: $*"; }
die() { echo "build-kmod: error: $*" >&2; exit 1; }

# ---- 1. packages -----------------------------------------------------------------------
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  # the VM harness may be installing at the same time: wait for dpkg's lock
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 \
    "${missing[@]}" >/dev/null
}

apt_install build-essential bc flex bison libelf-dev kmod binutils clang-16 wabt

if [[ -n "${LUAPKT_KDIR:-}" ]]; then
  KVER=$(cat "$LUAPKT_KDIR/include/config/kernel.release")
elif [[ -n "${LUAPKT_KVER:-}" ]]; then
  KVER=$LUAPKT_KVER
else
  pkg=$(apt-cache search --names-only "$HEADERS_RE" 2>/dev/null | awk '{print $1}' | sort -V | tail -n1)
  if [[ -z "$pkg" ]]; then
    # no package index (offline): take the newest installed headers of the series
    pkg=$(dpkg-query -W -f '${Package}\n' 'linux-headers-*' 2>/dev/null | grep -E "$HEADERS_RE" | sort -V | tail -n1 || true)
  fi
  [[ -n "$pkg" ]] || die "no linux-headers package for $SERIES (apt-get update?)"
  KVER=${pkg#linux-headers-}
fi
if [[ -n "${LUAPKT_KDIR:-}" ]]; then
  KDIR=$LUAPKT_KDIR
else
  apt_install "linux-headers-$KVER"
  KDIR=/usr/src/linux-headers-$KVER
fi
[[ -f "$KDIR/Makefile" ]] || die "$KDIR is missing"
log "kernel $KVER ($KDIR)"

targets=$(rustup target list --installed)
grep -qx x86_64-unknown-none <<<"$targets" || rustup target add x86_64-unknown-none
grep -q '^rust-src' <<<"$(rustup component list --installed)" || rustup component add rust-src

# ---- 2. Rust ---------------------------------------------------------------------------
conf() { grep -qE "^CONFIG_($1)=y" "$KDIR/include/config/auto.conf"; }
RUSTFLAGS="-C code-model=kernel -C relocation-model=static -C relro-level=off -C panic=abort"
RUSTFLAGS+=" -C force-unwind-tables=no"
conf 'RETPOLINE|MITIGATION_RETPOLINE' && RUSTFLAGS+=" -Zretpoline-external-thunk"
conf 'RETHUNK|MITIGATION_RETHUNK' && RUSTFLAGS+=" -Zfunction-return=thunk-extern"
conf 'X86_KERNEL_IBT' && RUSTFLAGS+=" -Zcf-protection=branch"
log "rustflags: $RUSTFLAGS"
# the same mitigations for the compiled guest's C (kmod-wasmi/runtime/build.rs adds the rest of the
# kernel's flags and soft-float)
KCFLAGS_GUEST=""
conf 'RETPOLINE|MITIGATION_RETPOLINE' && KCFLAGS_GUEST+=" -mretpoline-external-thunk"
conf 'RETHUNK|MITIGATION_RETHUNK' && KCFLAGS_GUEST+=" -mfunction-return=thunk-extern -DLP_W2C_RETHUNK"
conf 'X86_KERNEL_IBT' && KCFLAGS_GUEST+=" -fcf-protection=branch"
log "guest cflags:$KCFLAGS_GUEST"

FFI=kmod-wasmi/ffi
RUST_TARGET_DIR=$ROOT/target/kmod/rust-$SERIES
[[ -n "${LUAPKT_KDIR:-}" ]] && RUST_TARGET_DIR=$ROOT/target/kmod/rust-$KVER
# the ffi crate is a workspace of its own: seed its lockfile from the root one so both
# builds use the same versions of shared dependencies
[[ -f $FFI/Cargo.lock ]] || cp Cargo.lock "$FFI/Cargo.lock"
t0=$(date +%s)
(cd "$FFI" && RUSTC_BOOTSTRAP=1 RUSTFLAGS="$RUSTFLAGS" LUAPKT_GUEST_KCFLAGS="$KCFLAGS_GUEST" \
  cargo build --release --target x86_64-unknown-none -Zbuild-std=core,alloc \
    --target-dir "$RUST_TARGET_DIR" -q)
STATICLIB=$RUST_TARGET_DIR/x86_64-unknown-none/release/libluapkt_kmod.a
log "rust staticlib in $(( $(date +%s) - t0 )) s ($(du -h "$STATICLIB" | cut -f1))"

# ---- 3. one relocatable object ---------------------------------------------------------
OUT=$ROOT/target/kmod/$KVER
BUILD=$OUT/build
mkdir -p "$BUILD"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && ar x "$STATICLIB")
MEMFNS=(memcpy memmove memset memcmp bcmp strlen)
for o in "$TMP"/*.o; do
  args=(--remove-section=.llvmbc --remove-section=.llvmcmd
        --remove-section=.eh_frame --remove-section=.rela.eh_frame)
  for f in "${MEMFNS[@]}"; do args+=(--localize-symbol="$f"); done
  case "$o" in
    *compiler_builtins*) objcopy "${args[@]}" "$o" ;;
    *) objcopy "${args[@]:0:4}" "$o" ;;
  esac
done
# entry points: every lp_rt_* function lp_rt.h declares
mapfile -t ENTRIES < <(grep -oE '\blp_rt_[a-z_]+\(' kmod-wasmi/kernel/lp_rt.h | tr -d '(' | sort -u)
((${#ENTRIES[@]} > 10)) || die "no lp_rt_* entry points found in lp_rt.h"
ld_args=()
for e in "${ENTRIES[@]}"; do ld_args+=(-u "$e"); done
ld -r --gc-sections -z noexecstack "${ld_args[@]}" -T kmod-wasmi/kernel/lp_rust.lds \
  -o "$TMP/lp_rust.rlo" "$TMP"/*.o
# Kbuild compares timestamps: only replace the object when it changed
cmp -s "$TMP/lp_rust.rlo" "$BUILD/lp_rust.rlo" 2>/dev/null || cp "$TMP/lp_rust.rlo" "$BUILD/lp_rust.rlo"
# (nm's output read whole: `nm | grep -q` fails under pipefail when grep exits first)
DEFINED=$(nm "$BUILD/lp_rust.rlo")
for e in "${ENTRIES[@]}"; do
  grep -qE " T $e\$" <<<"$DEFINED" || die "entry point $e is not defined by the Rust object"
done

# ---- 4. Kbuild -------------------------------------------------------------------------
for f in Kbuild nft_lua.c luapkt_genl.c luapkt_timers.c lp_shim.c lp_shim.h lp_rt.h luapkt.h luapkt_abi.h; do
  cmp -s "kmod-wasmi/kernel/$f" "$BUILD/$f" 2>/dev/null || cp "kmod-wasmi/kernel/$f" "$BUILD/$f"
done
# gcc must be the one the kernel was built with (Debian 12's gcc-12 for both series)
CC_TEXT=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\(.*\)"$/\1/p' "$KDIR/include/config/auto.conf")
CC=gcc-12
[[ "$CC_TEXT" == x86_64-linux-gnu-gcc-12* ]] && CC=x86_64-linux-gnu-gcc-12
command -v "$CC" >/dev/null || die "$CC not found (the kernel was built with: $CC_TEXT)"
log "kbuild ($CC)"
if ! make -C "$KDIR" M="$BUILD" CC="$CC" modules >"$OUT/build.log" 2>&1; then
  cat "$OUT/build.log" >&2
  die "kbuild failed"
fi
if grep -iE 'warning|error' "$OUT/build.log" >&2; then
  die "kbuild printed warnings (target/kmod/$KVER/build.log)"
fi
KO=$OUT/nft_lua.ko
cp "$BUILD/nft_lua.ko" "$KO"

# ---- 5. checks -------------------------------------------------------------------------
# undefined symbols must be exported by the kernel or by the modules nft_lua depends on
nm -u "$KO" | awk '{print $2}' | sort -u >"$TMP/undef"
awk '{print $2}' "$KDIR/Module.symvers" | sort -u >"$TMP/exports"
missing=$(comm -23 "$TMP/undef" "$TMP/exports")
[[ -z "$missing" ]] || die "undefined symbols that the kernel does not export: $missing"
gotpc=$(readelf -rW "$KO" | grep -c GOTPCREL || true)
[[ "$gotpc" == 0 ]] || die "$gotpc GOTPCREL relocations (the module loader rejects them)"
vec=$(objdump -d --no-show-raw-insn "$BUILD/lp_rust.rlo" | grep -cE '%[xyz]mm[0-9]' || true)
[[ "$vec" == 0 ]] || die "$vec instructions use vector registers in the Rust object"
# objtool over the Rust object (with the compiled guest): 6.12's Kbuild runs it on the linked
# module (nft_lua.o, --link), which includes it, and its warnings failed the build above; 6.1's
# runs it on each C object only, so here it runs, with the same options, on a copy of ours
# (--orc would add unwind data to it). Retpolines, return thunks, IBT, stack frames.
if grep -q 'objtool/objtool .* --link .*nft_lua\.o' "$BUILD/.nft_lua.o.cmd" 2>/dev/null; then
  log "objtool: Kbuild checked the linked module"
else
  OBJTOOL_ARGS=$(sed -n 's/.*objtool\/objtool \(.*\) --module .*/\1/p' "$BUILD/.lp_shim.o.cmd" | head -n1)
  [[ -n $OBJTOOL_ARGS ]] || die "no objtool command in $BUILD/.lp_shim.o.cmd or .nft_lua.o.cmd"
  cp "$BUILD/lp_rust.rlo" "$TMP/objtool.o"
  # shellcheck disable=SC2086
  "$KDIR/tools/objtool/objtool" $OBJTOOL_ARGS --module "$TMP/objtool.o" >"$TMP/objtool.log" 2>&1 || true
  if grep -v 'Linked object detected' "$TMP/objtool.log" | grep -q .; then
    cat "$TMP/objtool.log" >&2
    die "objtool warns about the Rust object (objtool $OBJTOOL_ARGS)"
  fi
  log "objtool: clean on the Rust object"
fi
depends=$(modinfo -F depends "$KO")
log "ok: $KO ($(du -h "$KO" | cut -f1), text $(size "$KO" | awk 'NR==2{print $1}') bytes," \
  "$(wc -l <"$TMP/undef") undefined symbols, depends: $depends)"
