#!/usr/bin/env bash
# Builds the Debian package: scripts/build-deb.sh [OUTDIR]  (default target/deb)
#
# Carries lpctl (release), the module's C glue with dkms.conf and the Rust runtime object of each
# kernel series (run scripts/build-kmod.sh 6.1 and 6.12 first: their lp_rust.rlo are taken from
# the builds they recorded in target/kmod-built-<series>), luapkt.service, man pages and shell
# completions (lpctl generate), and the LuaLS annotations. Prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/deb}
VER=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ -n $VER ]] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }
STAGE=target/deb-stage
rm -rf "$STAGE" && mkdir -p "$STAGE/DEBIAN" "$OUT"

# (LPCTL=PATH: that lpctl instead of a release build; scripts/test.sh gives its debug one)
if [[ -z ${LPCTL:-} ]]; then
  cargo build -q --release -p lpctl
  LPCTL=target/release/lpctl
fi
install -D -m 0755 "$LPCTL" "$STAGE/usr/sbin/lpctl"
strip "$STAGE/usr/sbin/lpctl"

SRC=$STAGE/usr/src/luapkt-$VER
mkdir -p "$SRC"
for f in Kbuild nft_lua.c luapkt_genl.c luapkt_timers.c lp_shim.c lp_shim.h lp_rt.h luapkt.h luapkt_abi.h; do
  install -m 0644 "kmod-wasmi/kernel/$f" "$SRC/$f"
done
for s in 6.1 6.12; do
  [[ -s target/kmod-built-$s ]] || { echo "build-deb: no module built for $s: run scripts/build-kmod.sh $s" >&2; exit 1; }
  rlo=$(dirname "$(cat "target/kmod-built-$s")")/build/lp_rust.rlo
  install -D -m 0644 "$rlo" "$SRC/rust/$s/lp_rust.rlo"
done
sed "s/@VERSION@/$VER/" packaging/dkms/dkms.conf >"$SRC/dkms.conf"
install -m 0755 packaging/dkms/dkms-make.sh "$SRC/dkms-make.sh"

install -D -m 0644 packaging/luapkt.service "$STAGE/lib/systemd/system/luapkt.service"
install -D -m 0644 packaging/luals/luapkt.lua "$STAGE/usr/share/luapkt/luals/luapkt.lua"
mkdir -p "$STAGE/usr/share/man/man8"
"$LPCTL" generate man "$STAGE/usr/share/man/man8"
gzip -9n "$STAGE"/usr/share/man/man8/*.8
"$LPCTL" generate completion bash | install -D -m 0644 /dev/stdin "$STAGE/usr/share/bash-completion/completions/lpctl"
"$LPCTL" generate completion zsh | install -D -m 0644 /dev/stdin "$STAGE/usr/share/zsh/vendor-completions/_lpctl"
"$LPCTL" generate completion fish | install -D -m 0644 /dev/stdin "$STAGE/usr/share/fish/vendor_completions.d/lpctl.fish"
install -D -m 0644 README.md "$STAGE/usr/share/doc/luapkt/README.md"

sed "s/@VERSION@/$VER/" packaging/deb/control >"$STAGE/DEBIAN/control"
echo "Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)" >>"$STAGE/DEBIAN/control"
for f in postinst prerm; do
  sed "s/@VERSION@/$VER/" "packaging/deb/$f" >"$STAGE/DEBIAN/$f"
  chmod 0755 "$STAGE/DEBIAN/$f"
done
deb=$OUT/luapkt_${VER}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$deb" >/dev/null
echo "$deb"
