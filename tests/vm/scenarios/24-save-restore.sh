# lpctl save / restore and luapkt.service (issue 12): scripts by source with their limits,
# engine and on-error policy, and the ruleset with its lua rules, saved; a boot simulated (the
# ruleset flushed, the scripts unloaded, the module removed) and the unit's commands run as
# systemd would; a second restore changes nothing; bad save files (truncated, another format, a
# script that fails to load, a rule naming a missing script, an nft syntax error) are refused
# with nothing changed.
# vm-requires: module lpctl
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
grep -q "^$m " /proc/modules || modprobe "$m"
nft flush ruleset
poke() { for _ in 1 2 3; do printf x | socat -u - "UDP-SENDTO:127.0.0.1:$1"; done; }

cat >/tmp/a.lua <<'LUA'
-- MARK
function process_packet(p) return lp.ACCEPT end
function tagged(p, arg) if arg == "x y" then return lp.DROP end return lp.ACCEPT end
LUA
printf 'function process_packet(p) return lp.DROP end\n' >/tmp/b.lua
check "save: scripts load (a: wasmi, fuel 120000, 8 MiB, on-error drop; b: the defaults)" sh -c \
  'lpctl script load /tmp/a.lua --engine wasmi --fuel 120000 --memory 8M --on-error drop &&
   lpctl script load /tmp/b.lua'
cat >/tmp/r.nft <<'NFT'
table inet t {
	chain input {
		type filter hook input priority 0; policy accept;
		iifname lo udp dport 7801 counter lua script a
		iifname lo udp dport 7802 lua script a function tagged arg "x y"
		iifname lo udp dport 7803 lua script b comment "b drops"
	}
}
NFT
check "save: a ruleset with lua rules" lpctl nft -f /tmp/r.nft
check "save: lpctl script source gives the script as loaded" sh -c 'lpctl script source a | cmp - /tmp/a.lua'
check "save: lpctl save -o FILE" lpctl save -o /tmp/luapkt.conf
check "save: ... the same document as on stdout" sh -c 'lpctl save | cmp - /tmp/luapkt.conf'
check "save: ... it holds both scripts and the lua rules" sh -c \
  'grep -q "\"name\": \"a\"" /tmp/luapkt.conf && grep -q "\"name\": \"b\"" /tmp/luapkt.conf &&
   grep -q "lua script a function tagged arg \\\\\"x y\\\\\"" /tmp/luapkt.conf'
# what a script's settings are: tag, engine, policy, limits (not its counters)
settings() { lpctl -j script show "$1" | sed 's/"stats":{[^}]*}//; s/"mem_bytes":[0-9]*//; s/"refs":[0-9]*//'; }
settings a >/tmp/a.set
settings b >/tmp/b.set
lpctl nft -s list ruleset >/tmp/rs

# a boot: no ruleset, no scripts, no module; then luapkt.service's commands
unit=/vm/data/luapkt.service
check "save: the unit starts after nftables.service, from /etc/luapkt/luapkt.conf" sh -c \
  "grep -q '^After=nftables.service' $unit && grep -q '^ExecStart=/usr/sbin/lpctl restore /etc/luapkt/luapkt.conf$' $unit"
nft flush ruleset
check "save: (the boot: scripts unloaded, module removed)" sh -c "lpctl script unload a && lpctl script unload b && rmmod $m"
mkdir -p /etc/luapkt && cp /tmp/luapkt.conf /etc/luapkt/luapkt.conf
sed -n 's/^ExecStartPre=//p; s/^ExecStart=//p' "$unit" |
  sed "s|/usr/sbin/lpctl|lpctl|; s|/sbin/modprobe nft_lua|modprobe $m|" >/tmp/boot.sh
check "save: the unit's commands as systemd runs them (modprobe, lpctl restore)" sh -e /tmp/boot.sh
check "save: ... script a is back: tag, engine, policy, limits" sh -c 'settings() { lpctl -j script show "$1" | sed "s/\"stats\":{[^}]*}//; s/\"mem_bytes\":[0-9]*//; s/\"refs\":[0-9]*//"; }; settings a | cmp - /tmp/a.set'
check "save: ... script b too" sh -c 'settings() { lpctl -j script show "$1" | sed "s/\"stats\":{[^}]*}//; s/\"mem_bytes\":[0-9]*//; s/\"refs\":[0-9]*//"; }; settings b | cmp - /tmp/b.set'
check "save: ... the ruleset, lua rules included" sh -c 'lpctl nft -s list ruleset | cmp - /tmp/rs'
poke 7801
poke 7803
check_ge "save: ... and the lua rules run (a)" 3 "$(script_stat a run_cnt)"
check_ge "save: ... (b)" 3 "$(script_stat b run_cnt)"
n=$(script_stat a run_cnt)
check "save: restoring again" lpctl restore /etc/luapkt/luapkt.conf
check "save: ... changes nothing: the same ruleset" sh -c 'lpctl nft -s list ruleset | cmp - /tmp/rs'
check_ge "save: ... and the scripts were not reloaded (their counters kept)" "$n" "$(script_stat a run_cnt)"

# bad files: an error naming the file, a non-zero exit, nothing changed
lpctl nft -a list ruleset >/tmp/before
same() {
  lpctl nft -a list ruleset >/tmp/after && diff /tmp/before /tmp/after &&
    [ "$(lpctl script list | grep -c '^[a-z]')" = 2 ] && settings a | cmp - /tmp/a.set
}
head -c 300 /tmp/luapkt.conf >/tmp/trunc.conf
check "save: a truncated file is refused" sh -c '! lpctl restore /tmp/trunc.conf 2>/tmp/e && grep -q "trunc.conf: not a luapkt save file" /tmp/e'
check "save: ... nothing changed" same
sed 's/"luapkt_save": 1/"luapkt_save": 9/' /tmp/luapkt.conf >/tmp/v9.conf
check "save: a file of another format is refused" sh -c '! lpctl restore /tmp/v9.conf 2>/tmp/e && grep -q "format 9; this lpctl reads format 1" /tmp/e'
check "save: ... nothing changed" same
# script a's source made to fail at load: the restore replaces a, which fails; what it did
# before (b's limits) is undone
sed "s/-- MARK/error('at load')/" /tmp/luapkt.conf >/tmp/fails.conf
check "save: a script that fails to load" sh -c '! lpctl restore /tmp/fails.conf 2>/tmp/e && grep -q "script a" /tmp/e && grep -q "nothing restored" /tmp/e'
check "save: ... nothing changed (a not replaced, its limits, the ruleset)" same
sed 's/lua script b comment/lua script nosuch comment/' /tmp/luapkt.conf >/tmp/nosuch.conf
check "save: a rule naming a script neither saved nor loaded, pointed at" sh -c \
  '! lpctl restore /tmp/nosuch.conf 2>/tmp/e && grep -q "nosuch.conf (ruleset):[0-9]*:[0-9]*-[0-9]*: Error: script .nosuch. is neither" /tmp/e'
check "save: ... nothing changed" same
sed 's/udp dport 7803/udp dportx 7803/' /tmp/luapkt.conf >/tmp/syntax.conf
check "save: an nft syntax error in the ruleset: nft's message, the file named" sh -c \
  '! lpctl restore /tmp/syntax.conf 2>/tmp/e && grep -q "syntax.conf (ruleset):" /tmp/e && grep -q "nothing was changed" /tmp/e'
check "save: ... nothing changed" same
nft flush ruleset
check "save: scripts unload" sh -c 'lpctl script unload a && lpctl script unload b'
