#!/usr/bin/env bash
# Installs what building and testing luapkt needs on a fresh Debian 12 machine (as root):
# clang/lld 16, wasi-libc and the wasm32 compiler-rt for the Lua guest, binaryen, and the
# rustup targets/components for the guest and the kernel build, and what the VM harness
# (tests/vm/run.sh) needs: qemu, static busybox, nft, socat, iproute2, kmod, ethtool, cpio and
# the decompressors for Debian's kernel images and modules. Idempotent and quick when everything
# is present.
set -euo pipefail

APT_PACKAGES=(clang-16 lld-16 llvm-16 wasi-libc libclang-rt-16-dev-wasm32 binaryen wabt python3 libpcap-dev libwrap0
  qemu-system-x86 busybox-static nftables socat iproute2 kmod ethtool util-linux dash binutils cpio xz-utils zstd gzip)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # other scripts (build-kmod.sh, a concurrent run) may hold dpkg's lock: wait for it
  apt-get install -y -qq -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null
fi

targets=$(rustup target list --installed)
for t in x86_64-unknown-none wasm32-unknown-unknown; do
  grep -qx "$t" <<<"$targets" || rustup target add "$t"
done
components=$(rustup component list --installed)
for c in rust-src clippy rustfmt; do
  grep -q "^$c" <<<"$components" || rustup component add "$c"
done

# The VM's TFTP server (tests/vm/scenarios/48-tftp-cache.sh): tftpd-hpa's in.tftpd, unpacked
# from its package into target/vm/peers (installing the package would start a daemon here).
tftpd=$(cd "$(dirname "$0")/.." && pwd)/target/vm/peers/in.tftpd
if [[ ! -x $tftpd ]]; then
  tmp=$(mktemp -d)
  get() { (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root tftpd-hpa >/dev/null 2>&1); }
  get || { apt-get update -qq && get; } || { echo "setup: cannot download tftpd-hpa" >&2; exit 1; }
  dpkg -x "$tmp"/tftpd-hpa_*.deb "$tmp/root"
  mkdir -p "$(dirname "$tftpd")"
  cp "$tmp/root/usr/sbin/in.tftpd" "$tftpd"
  rm -rf "$tmp"
  echo "setup: $tftpd"
fi
