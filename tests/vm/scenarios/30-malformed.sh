# Malformed control messages to the luapkt generic netlink family: `lpctl selftest netlink`
# sends each (wrong attribute types and lengths, uploads with gaps, rewinds or overruns, SIZE
# above PACKAGE_MAX, DATA above CHUNK_MAX, commits of unknown or incomplete uploads, packages
# that are not wasm or have a truncated custom section, bad or missing names) and prints one
# line per case; each must be refused with the errno the kernel code gives, never crash. Then
# the module must still load and list a script (the harness scans the kernel log).
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
check "malformed: $m loaded" grep -q "^$m " /proc/modules

# a loaded script for the cases that need one (SET_LIMITS naming an engine, with a new
# instruction budget): it must be left as it was
cat >/tmp/held.lua <<'EOT'
function process_packet(pkt) return lp.ACCEPT end
EOT
check "malformed: a script for the cases that need one" lpctl script load /tmp/held.lua --name held
lpctl -j script show held >/tmp/held.before 2>&1
lpctl selftest netlink --script held >/tmp/selftest.out 2>&1
rc=$?
cases=0
while read -r st rest; do
  case "$st" in
  ok)
    cases=$((cases + 1))
    pass "malformed: ${rest#- }"
    ;;
  not)
    cases=$((cases + 1))
    rest=${rest#ok - }
    fail "malformed: ${rest%%: *}" "${rest#*: }"
    ;;
  *) note "selftest: $st $rest" ;;
  esac
done </tmp/selftest.out
check_eq "malformed: lpctl selftest netlink exit status" 0 "$rc"
check_ge "malformed: selftest ran its cases" 30 "$cases"

lpctl -j script show held >/tmp/held.after 2>&1
check "malformed: SET_LIMITS with an ENGINE left the script as it was (limits, engine)" \
  sh -c 'grep -q "\"engine\"" /tmp/held.after && cmp -s /tmp/held.before /tmp/held.after'
check "malformed: ... and its instruction budget is not 12345" sh -c '! grep -q 12345 /tmp/held.after'
check "malformed: the held script unloads" lpctl script unload held
check "malformed: no malformed upload was loaded" sh -c '! lpctl script list | grep -q "^selftest-malformed:"'
cat >/tmp/tiny.lua <<'EOT'
function process_packet(pkt) return lp.ACCEPT end
EOT
check "malformed: the module still loads a script" lpctl script load /tmp/tiny.lua --name tiny
check "malformed: and lists it" sh -c 'lpctl script list | grep -q "^tiny: tag "'
check "malformed: and unloads it" lpctl script unload tiny
check "malformed: rmmod $m" rmmod "$m"
