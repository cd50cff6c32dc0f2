#!/usr/bin/env bash
# Soak test of the guest-module precheck: 200,000 random wasm-smith modules (or $1) through
# runtime::precheck, wasmi and an instance build, in release mode
# (kmod-wasmi/runtime/tests/hostile_modules.rs, random_modules_never_panic_or_hang; `cargo test`
# runs 10,000). Deterministic: module N comes from seed N; LUAPKT_SOAK_FIRST=N starts there,
# LUAPKT_SOAK_VERBOSE=1 prints each seed before it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export LUAPKT_SOAK_MODULES=${1:-200000}
exec cargo test -p luapkt-runtime --release --test hostile_modules -- \
  --nocapture --exact random_modules_never_panic_or_hang
