#!/usr/bin/env bash
# Every test: formatting and lints, the unit/integration tests of all crates (guest, runtime,
# lpctl: verdicts, error kinds, zero-WASI check, packet fields, pcaps, wasmi vs wasmtime), the
# no_std runtime built for the kernel target, nft_lua.ko for Debian 6.1 and 6.12, and the VM
# suite on both kernels (tests/vm: qemu, real nft, traffic between namespaces; on 6.1 with the
# module DKMS built from the Debian package this run built and installed).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features lpctl/selftest -- -D warnings
echo "== runtime for the kernel target (x86_64-unknown-none, build-std)"
./scripts/build-kernel-runtime.sh
echo "== cargo test"
cargo test --workspace
echo "== nft_lua.ko for Debian 6.1 and 6.12"
# the modules this run built (target/kmod may hold others: older ABIs, the debug kernel's)
kos=()
for series in 6.1 6.12; do
  ./scripts/build-kmod.sh "$series" | tee -a /dev/stderr |
    sed -n 's/^build-kmod: ok: \([^ ]*nft_lua\.ko\) .*/\1/p' >target/kmod-built-$series
  kos+=("$(cat target/kmod-built-$series)")
  [[ -f ${kos[-1]} ]] || { echo "test: no nft_lua.ko was built for $series" >&2; exit 1; }
done
cargo build -q -p lpctl --features selftest
echo "== the kernel-flags harness: the modules' Rust objects in a userspace bench (scripts/kbench.sh)"
LPCTL=target/debug/lpctl ./scripts/kbench.sh --check --millis 20
echo "== the Debian package: built, installed here; DKMS builds nft_lua.ko (the 6.1 suite runs that one)"
deb=$(LPCTL=target/debug/lpctl ./scripts/build-deb.sh)
dkms_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=900 dkms >/dev/null
}
# (package lists older than dkms's current version: update them once and try again)
dpkg -s dkms >/dev/null 2>&1 || dkms_install || { apt-get update -qq && dkms_install; }
# dpkg -i also when this version is installed: its postinst runs DKMS again on this build
dpkg -i "$deb" >/dev/null
kver=$(basename "$(dirname "${kos[0]}")")
dkms_ko=target/vm/nft_lua-dkms-$kver.ko
mkdir -p target/vm
if [[ -f /lib/modules/$kver/updates/dkms/nft_lua.ko.xz ]]; then
  xz -dc "/lib/modules/$kver/updates/dkms/nft_lua.ko.xz" >"$dkms_ko"
else
  cp "/lib/modules/$kver/updates/dkms/nft_lua.ko" "$dkms_ko"
fi
[[ $(modinfo -F vermagic "$dkms_ko") == "$(modinfo -F vermagic "${kos[0]}")" ]] ||
  { echo "test: the DKMS-built module is not for $kver" >&2; exit 1; }
echo "test: DKMS built $dkms_ko from $deb"
echo "== VM suite: the module, lpctl and real traffic in qemu"
# hostile packages for 60-hostile.sh (crafted counts, a foreign guest, a spinning guest,
# random wasm-smith modules)
rm -rf target/vm/data
cargo run -q -p luapkt-tests --bin hostile-packages -- target/vm/data >/dev/null
# the peer's datagram as a capture, for 25-fuel.sh (the kernel's fuel against lpctl run's)
cp tests/data/udp8.pcap target/vm/data/
# the systemd unit, whose commands 24-save-restore.sh runs as a boot would
cp packaging/luapkt.service target/vm/data/
# the fuel-ceiling bench (wasmi's loop dispatch, as the kernel, and the compiled engine):
# 60-hostile.sh compares its cost per fuel with the kernel's under the same emulation
bench=$(cargo bench -p luapkt-runtime --bench fuel_ceiling --features portable-dispatch,compiled --no-run 2>&1 |
  sed -n 's/.*(\(target\/release\/deps\/fuel_ceiling-[0-9a-f]*\)).*/\1/p' | tail -n 1)
cp "$bench" target/vm/data/fuel_ceiling
# Both kernels at once: a TCG guest keeps about one of the two cores busy (its second vCPU
# mostly idles), so the suites overlap instead of queueing. The first kernel (6.1) runs the
# scenarios marked "# vm-engines: wasmi" on both engines, the second on the default (compiled)
# only: the engines' code is the same on both kernels. The second then runs the README demo's
# VM part on the first kernel. Each line is prefixed with its kernel; a suite's failure fails
# the run once both are over.
vm_suite() { # KO [run.sh options...]
  ./tests/vm/run.sh --module "$1" --lpctl target/debug/lpctl --data target/vm/data --timeout 1800 "${@:2}"
}
# (65-lifecycle.sh runs 1,000 cycles on 6.1: ~8 min of the ~16 of that suite; 6.1 runs the
# module DKMS built from the Debian package)
{ vm_suite "$dkms_ko" 2>&1 | sed -u 's/^/[6.1] /'; exit "${PIPESTATUS[0]}"; } &
first=$!
{
  vm_suite "${kos[1]}" --no-reruns 2>&1 | sed -u 's/^/[6.12] /'
  rc=${PIPESTATUS[0]}
  echo "== the README demo's VM part"
  ./tests/vm/run.sh --module "${kos[0]}" --lpctl target/debug/lpctl --scenarios tests/vm/demo 2>&1 |
    sed -u 's/^/[demo] /'
  ((rc == 0)) && rc=${PIPESTATUS[0]}
  exit "$rc"
} &
second=$!
rc1=0 rc2=0
wait "$first" || rc1=$?
wait "$second" || rc2=$?
# Packet rates (tests/vm/bench: pktgen through a veth, nft alone against a lua rule) on a
# quiet machine: one VM at a time, after the suites. Under the other VM's load a guest's
# rate swings by up to 15% between seconds, which the ratio of two rates measured in turns
# does not survive; alone, a kernel's rounds agree within a few percent.
rc3=0
series=(6.1 6.12)
for i in 0 1; do
  ./tests/vm/run.sh --module "${kos[$i]}" --lpctl target/debug/lpctl --scenarios tests/vm/bench \
    2>&1 | sed -u "s/^/[bench ${series[$i]}] /" || rc3=1
done
if ((rc1 || rc2 || rc3)); then
  echo "test: VM suites failed (6.1: exit $rc1; 6.12 and the demo: exit $rc2; packet rates: $rc3)" >&2
  exit 1
fi
