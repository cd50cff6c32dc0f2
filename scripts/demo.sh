#!/usr/bin/env bash
# The main job: nft_lua.ko in a real Debian 6.1 kernel (qemu), a Lua script loaded with lpctl
# dropping and accepting real UDP traffic from a peer namespace and rewriting a port, then
# `lpctl script show`, the lua rules and nft's view with its counters. Then the same engine
# offline: `lpctl run` over a capture (and examples/nat.lua rewriting one) and `lpctl bench` on
# wasmi, wasmtime and native Lua.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build-kmod.sh 6.1
cargo build -q -p lpctl
ko=$(ls target/kmod/6.1.*/nft_lua.ko | head -n 1)
echo "== in the kernel (tests/vm/demo/00-demo.sh, examples/demo.lua)"
./tests/vm/run.sh --module "$ko" --lpctl target/debug/lpctl --scenarios tests/vm/demo
cargo build -q --release -p lpctl
LPCTL=target/release/lpctl
echo "== offline: lpctl run examples/drop-ssh.lua --pcap tests/data/mixed.pcap"
$LPCTL run examples/drop-ssh.lua --pcap tests/data/mixed.pcap | tail -n 4
echo "== offline: lpctl run examples/nat.lua --function nat --pcap tests/data/nat.pcap --out target/nat-out.pcap"
$LPCTL run examples/nat.lua --function nat --pcap tests/data/nat.pcap --out target/nat-out.pcap | tail -n 2
echo "== offline: lpctl bench examples/bench/filter.lua --pcap tests/data/mixed.pcap"
$LPCTL bench examples/bench/filter.lua --pcap tests/data/mixed.pcap
