#!/usr/bin/env bash
# Every test: formatting and lints, the unit/integration tests of all crates (guest, runtime,
# lpctl: verdicts, error kinds, zero-WASI check, packet fields, pcaps, wasmi vs wasmtime), the
# no_std runtime built for the kernel target, nft_lua.ko for Debian 6.1 and 6.12, and the VM
# suite on both kernels (tests/vm: qemu, real nft, traffic between namespaces).
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
echo "== nft_lua.ko for Debian 6.1 and 6.12"
# the modules this run built (target/kmod may hold others: older ABIs, the debug kernel's)
kos=()
for series in 6.1 6.12; do
  ./scripts/build-kmod.sh "$series" | tee /dev/stderr |
    sed -n 's/^build-kmod: ok: \([^ ]*nft_lua\.ko\) .*/\1/p' >target/kmod-built-$series
  kos+=("$(cat target/kmod-built-$series)")
  [[ -f ${kos[-1]} ]] || { echo "test: no nft_lua.ko was built for $series" >&2; exit 1; }
done
echo "== VM suite: the module, lpctl and real traffic in qemu"
cargo build -q -p lpctl
# hostile packages for 60-hostile.sh (crafted counts, a foreign guest, a spinning guest,
# random wasm-smith modules)
rm -rf target/vm/data
cargo run -q -p luapkt-tests --bin hostile-packages -- target/vm/data >/dev/null
# the peer's datagram as a capture, for 25-fuel.sh (the kernel's fuel against lpctl run's)
cp tests/data/udp8.pcap target/vm/data/
# the fuel-ceiling bench (wasmi's loop dispatch, as the kernel, and the compiled engine):
# 60-hostile.sh compares its cost per fuel with the kernel's under the same emulation
bench=$(cargo bench -p luapkt-runtime --bench fuel_ceiling --features portable-dispatch,compiled --no-run 2>&1 |
  sed -n 's/.*(\(target\/release\/deps\/fuel_ceiling-[0-9a-f]*\)).*/\1/p' | tail -n 1)
cp "$bench" target/vm/data/fuel_ceiling
# the first kernel (6.1) runs the scenarios marked "# vm-engines: wasmi" on both engines, the
# second on the default (compiled) only: the engines' code is the same on both kernels
reruns=()
for ko in "${kos[@]}"; do
  # (65-lifecycle.sh runs 1,000 cycles on 6.1: ~8 min of the ~18 of that suite)
  ./tests/vm/run.sh --module "$ko" --lpctl target/debug/lpctl --data target/vm/data --timeout 1800 \
    "${reruns[@]}"
  reruns=(--no-reruns)
done
echo "== the README demo's VM part"
./tests/vm/run.sh --module "${kos[0]}" --lpctl target/debug/lpctl --scenarios tests/vm/demo
