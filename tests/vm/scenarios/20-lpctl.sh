# lpctl runs inside the guest with the libraries it was linked against.
# vm-requires: lpctl
. /vm/lib.sh

check "lpctl: runs in the guest ($LPCTL --help)" "$LPCTL" --help
check "lpctl: is on PATH" sh -c 'command -v lpctl'
