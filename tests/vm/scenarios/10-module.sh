# The luapkt kernel module loads after the nf_tables closure, shows up, unloads, loads again,
# and is found by the alias nft uses to autoload an expression (MODULE_ALIAS_NFT_EXPR("lua")).
# vm-requires: module
. /vm/lib.sh

m=$LUAPKT_MODULE_NAME
in_proc() { grep -q "^$m " /proc/modules; }
in_lsmod() { lsmod | grep -q "^$m "; }
gone() { ! in_proc; }

check "module: nf_tables is loaded first" grep -q '^nf_tables ' /proc/modules
check "module: insmod $LUAPKT_MODULE" insmod "$LUAPKT_MODULE"
check "module: $m in lsmod" in_lsmod
check "module: $m in /proc/modules" in_proc
check "module: $m is Live" grep -q "^$m .* Live " /proc/modules
check "module: rmmod $m" rmmod "$m"
check "module: $m gone from /proc/modules" gone
check "module: insmod again" insmod "$LUAPKT_MODULE"
check "module: $m in lsmod again" in_lsmod
check "module: $m in /proc/modules again" in_proc
check "module: rmmod $m again" rmmod "$m"
check "module: modprobe nft-expr-lua (nft's autoload alias) loads $m" modprobe nft-expr-lua
check "module: $m loaded by alias" in_proc
check "module: rmmod $m after the alias load" rmmod "$m"
check "module: $m gone at the end" gone
