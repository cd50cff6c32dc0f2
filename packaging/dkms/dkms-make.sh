#!/bin/sh
# DKMS's MAKE: dkms-make.sh KERNELVER KERNEL_SOURCE_DIR (in the module's source tree).
# Picks the Rust runtime object of the kernel's series and builds the module with the compiler
# the kernel was built with (a module must match its kernel's).
set -eu
kver=$1 ksrc=$2
case $kver in
  6.12.*) series=6.12 ;;
  6.1.*) series=6.1 ;;
  *) echo "luapkt: no Rust runtime object for kernel $kver (this package carries: $(ls rust | tr '\n' ' '))" >&2; exit 1 ;;
esac
[ -f "rust/$series/lp_rust.rlo" ] || { echo "luapkt: rust/$series/lp_rust.rlo missing" >&2; exit 1; }
cp "rust/$series/lp_rust.rlo" lp_rust.rlo
cc=gcc
text=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\(.*\)"$/\1/p' "$ksrc/include/config/auto.conf" 2>/dev/null || true)
case $text in
  x86_64-linux-gnu-gcc-12*) cc=x86_64-linux-gnu-gcc-12 ;;
  gcc-12*) cc=gcc-12 ;;
esac
command -v "$cc" >/dev/null 2>&1 || cc=gcc
exec make -C "$ksrc" M="$(pwd)" CC="$cc" modules
