#!/usr/bin/env bash
# Builds the no_std runtime for x86_64-unknown-none the way the kernel module links it
# (kmod-wasmi/kernel/README.md): core and alloc rebuilt with kernel code model, no unwinding.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTC_BOOTSTRAP=1 \
RUSTFLAGS="-C code-model=kernel -C relocation-model=static -C relro-level=off -C panic=abort -C force-unwind-tables=no" \
  cargo build -q -p luapkt-runtime --no-default-features --release \
    --target x86_64-unknown-none -Zbuild-std=core,alloc --target-dir target/kernel
echo "kernel-target runtime: ok ($(du -h target/kernel/x86_64-unknown-none/release/libruntime.rlib | cut -f1) rlib)"
