#!/usr/bin/env bash
# The main job, offline: a script that drops SSH runs over a capture through the sandbox, then
# the same script is measured on wasmi, wasmtime and native Lua.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build -q --release -p lpctl
LPCTL=target/release/lpctl
echo "== lpctl run examples/drop-ssh.lua --pcap tests/data/mixed.pcap"
$LPCTL run examples/drop-ssh.lua --pcap tests/data/mixed.pcap | tail -n 6
echo "== lpctl -p run ... (JSON stats)"
$LPCTL -p run examples/drop-ssh.lua --pcap tests/data/mixed.pcap | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["stats"], indent=2))'
echo "== lpctl bench examples/drop-ssh.lua --pcap tests/data/mixed.pcap"
$LPCTL bench examples/drop-ssh.lua --pcap tests/data/mixed.pcap
