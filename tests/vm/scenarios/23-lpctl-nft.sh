# `lpctl nft`: stock nft plus the lua statement (issue 12), against the real nft: command lines
# and -f files with lua statements (blocks, sets, function, arg, comment), listings with the lua
# rules in place (text, -a, -j), delete by handle, the round trip list > file, flush, -f file;
# and bad input (unknown script, a syntax error, a lua statement nft-style wrong, a lua rule the
# kernel refuses after nft took the rest) each refused with nothing applied.
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
nft flush ruleset
printf 'function process_packet(p) return lp.ACCEPT end\n' >/tmp/cnt.lua
printf 'function process_packet(p) return lp.DROP end\nfunction other(p, a) return lp.ACCEPT end\n' >/tmp/drop.lua
printf 'function process_packet(p) return lp.QUEUE(1) end\n' >/tmp/q.lua
check "nft: scripts load" sh -c 'lpctl script load /tmp/cnt.lua && lpctl script load /tmp/drop.lua &&
  lpctl script load /tmp/q.lua'

# packets to 127.0.0.1:PORT (nothing listens: the input hook sees them all the same)
poke() { for _ in 1 2 3; do printf x | socat -u - "UDP-SENDTO:127.0.0.1:$1"; done; }

check "nft: plain nft commands pass through (add table, a chain with a block)" sh -c \
  "lpctl nft add table inet t && lpctl nft 'add chain inet t input { type filter hook input priority 0; policy accept; }'"
check "nft: -v is nft's" sh -c 'lpctl nft -v | grep -q "^nftables v"'
check "nft: a command line with a lua statement" \
  lpctl nft add rule inet t input iifname lo udp dport 7777 counter lua script cnt
poke 7777
check_ge "nft: ... the lua rule runs for its packets" 3 "$(script_stat cnt run_cnt)"
check "nft: ... stock nft shows a jump to its chain" sh -c 'nft list chain inet t input | grep -q "udp dport 7777 counter packets [0-9]* bytes [0-9]* jump lua-cnt$"'
check "nft: ... lpctl nft list chain shows the lua statement in place" \
  sh -c 'lpctl nft list chain inet t input | grep -q "udp dport 7777 counter packets [0-9]* bytes [0-9]* lua script cnt$"'
check "nft: ... and -a its handle" \
  sh -c 'lpctl nft -a list chain inet t input | grep -q "lua script cnt # handle [0-9]*$"'
check "nft: ... list ruleset hides the lua chains" \
  sh -c 'lpctl nft list ruleset >/tmp/l && grep -q "lua script cnt" /tmp/l && ! grep -q "lua-" /tmp/l'
check "nft: ... -j lists it as a lua statement, without the chain" sh -c \
  'lpctl nft -j list ruleset >/tmp/j && grep -q "{\"lua\":{\"script\":\"cnt\"}}" /tmp/j && ! grep -q "lua-" /tmp/j'
printf "alias nft='lpctl nft'\nnft add rule inet t input udp dport 7776 lua script cnt arg alias\n" >/tmp/alias.sh
check "nft: with alias nft='lpctl nft', the card's syntax as typed" sh /tmp/alias.sh
check "nft: ... (the rule is there)" sh -c 'lpctl nft list chain inet t input | grep -q "udp dport 7776 lua script cnt arg .alias.$"'
check "nft: ... lpctl -j nft is nft -j" sh -c 'lpctl -j nft list table inet t | grep -q "\"lua\":{\"script\":\"cnt\"}"'

cat >/tmp/f.nft <<'NFT'
# a file with blocks, a set, function, arg, comments
define drops = { 7780, 7781 }
table inet t {
	set seen { type ipv4_addr; elements = { 10.9.9.9,
		10.9.9.8 } }
	chain input {
		iifname lo udp dport $drops lua script drop comment "dropper"
		iifname lo udp dport 7782 lua script drop function other arg "a b" # same script, another binding
	}
}
table ip t2 { chain c { type filter hook output priority 0; policy accept; udp dport 7783 lua script cnt; } }
NFT
check "nft: -f FILE with lua statements in blocks" lpctl nft -f /tmp/f.nft
check "nft: ... its bindings are in place (function, arg)" sh -c \
  'lpctl rule list | grep -q "lua script drop function other arg \"a b\"" && [ "$(lpctl rule list | grep -c "lua script drop")" = 2 ]'
check "nft: ... and listed as written" sh -c 'lpctl nft list table inet t | grep -q "udp dport { 7780, 7781 } lua script drop comment \"dropper\"" &&
  lpctl nft list table inet t | grep -q "udp dport 7782 lua script drop function other arg \"a b\""'
d0=$(script_stat drop run_cnt)
poke 7780
check_ge "nft: ... the file's lua rule runs" "$((d0 + 3))" "$(script_stat drop run_cnt)"

# stdin (read once: what lpctl read goes to nft), with and without lua statements; JSON input
check "nft: -f - without a lua statement" sh -c 'echo "add table inet stdin1" | lpctl nft -f - && nft list table inet stdin1'
check "nft: -f - with one" sh -c 'echo "add table inet stdin2; add chain inet stdin2 c; add rule inet stdin2 c udp dport 7790 lua script cnt" | lpctl nft -f - &&
  lpctl nft list table inet stdin2 | grep -q "udp dport 7790 lua script cnt"'
check "nft: -j -f FILE (JSON) is nft's" sh -c 'echo "{\"nftables\": [{\"delete\": {\"table\": {\"family\": \"inet\", \"name\": \"stdin1\"}}}]}" >/tmp/d.json &&
  lpctl nft -j -f /tmp/d.json && ! nft list table inet stdin1 2>/dev/null'
check "nft: a delete of a table takes its lua chains with it" sh -c 'lpctl nft delete table inet stdin2 && ! lpctl rule list | grep -q stdin2'

# the round trip: list > file, flush, -f file gives the same ruleset, lua rules included
lpctl nft -s list ruleset >/tmp/r1
check "nft: round trip: flush ruleset" lpctl nft flush ruleset
check "nft: ... the flush took the lua rules" sh -c '[ -z "$(lpctl rule list)" ]'
check "nft: ... -f of the listing" lpctl nft -f /tmp/r1
lpctl nft -s list ruleset >/tmp/r2
check "nft: ... gives the same ruleset" cmp /tmp/r1 /tmp/r2
check "nft: ... lua rules included" sh -c '[ "$(lpctl rule list | wc -l)" = 5 ]'
c0=$(script_stat cnt run_cnt)
poke 7777
check_ge "nft: ... and they run again" "$((c0 + 3))" "$(script_stat cnt run_cnt)"

# bad input: an error like nft's, a non-zero exit, nothing applied
lpctl nft -a list ruleset >/tmp/before
lpctl nft list ruleset >/tmp/before-n
# the same ruleset, handles included (nothing was re-created) or, after a rollback, not
same() { lpctl nft -a list ruleset >/tmp/after && diff /tmp/before /tmp/after && [ "$(lpctl rule list | wc -l)" = 5 ]; }
same_rules() { lpctl nft list ruleset >/tmp/after && diff /tmp/before-n /tmp/after && [ "$(lpctl rule list | wc -l)" = 5 ]; }
check "nft: an unknown script is refused, pointed at" sh -c \
  '! lpctl nft add rule inet t input tcp dport 1 lua script nosuch 2>/tmp/e && grep -q "no script .nosuch. is loaded" /tmp/e && grep -q "^ *^^^^^^$" /tmp/e'
check "nft: ... nothing applied" same
printf 'table inet t {\n\tchain input {\n\t\ttcp dport 2 lua script cnt\n\t\ttcp dportx 3 accept\n\t}\n}\n' >/tmp/bad.nft
check "nft: a syntax error in a file with lua statements is nft's, with the file's name and line" sh -c \
  '! lpctl nft -f /tmp/bad.nft 2>/tmp/e && grep -q "^/tmp/bad.nft:4:" /tmp/e'
check "nft: ... nothing applied" same
printf 'table inet t {\n\tchain input {\n\t\ttcp dport 2 lua function f\n\t}\n}\n' >/tmp/bad2.nft
check "nft: a lua statement without a script: file:line:column and carets" sh -c \
  '! lpctl nft -f /tmp/bad2.nft 2>/tmp/e && grep -q "^/tmp/bad2.nft:3:15-28: Error: .lua. needs .script NAME." /tmp/e && grep -q "^[[:space:]]*^^^^^^^^^^^^^^$" /tmp/e'
check "nft: ... nothing applied" same
check "nft: statements after the lua statement are refused" sh -c \
  '! lpctl nft add rule inet t input lua script cnt accept 2>/tmp/e && grep -q "unexpected .accept." /tmp/e'
check "nft: ... nothing applied" same
# nft takes the text (a jump to an empty chain), the kernel refuses the lua rule (lp.QUEUE at
# netdev ingress): the ruleset is put back
cat >/tmp/q.nft <<'NFT'
table netdev nd {
	chain ing {
		type filter hook ingress device lo priority 0; policy accept;
		lua script q
	}
}
add rule inet t input udp dport 7790 lua script cnt
NFT
check "nft: a lua rule the kernel refuses after nft took the rest: an error, the ruleset put back" sh -c \
  '! lpctl nft -f /tmp/q.nft 2>/tmp/e && grep -q "put back as it was" /tmp/e'
check "nft: ... nothing applied (no netdev table, no port 7790)" same_rules
c0=$(script_stat cnt run_cnt)
poke 7777
check_ge "nft: ... and the earlier lua rules run" "$((c0 + 3))" "$(script_stat cnt run_cnt)"

# delete by handle: the rule and its lua chain
h=$(lpctl nft -a list chain inet t input | sed -n 's/.*dport 7777 .*lua script cnt # handle \([0-9]*\)$/\1/p')
check "nft: delete rule ... handle N of a lua rule" lpctl nft delete rule inet t input handle "$h"
check "nft: ... its lua chain went with it" sh -c '! nft list chain inet t lua-cnt 2>/dev/null'
check "nft: ... the other binding of the script stays (ip t2)" sh -c 'lpctl rule list | grep -q "^ip t2 lua-cnt"'
check "nft: flush ruleset" lpctl nft flush ruleset
check "nft: scripts unload (no rule holds them)" sh -c 'lpctl script unload cnt && lpctl script unload drop && lpctl script unload q'
