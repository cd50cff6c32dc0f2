#!/usr/bin/env bash
# Every test: formatting and lints, the unit/integration tests of all crates (guest, runtime,
# lpctl: verdicts, error kinds, zero-WASI check, packet fields, pcaps, wasmi vs wasmtime), and
# the no_std runtime built for the kernel target.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== runtime for the kernel target (x86_64-unknown-none, build-std)"
./scripts/build-kernel-runtime.sh
echo "== cargo test"
cargo test --workspace
