//! The C headers made from Rust: the guest's `guest-lua/c/lp_abi.h` and the kernel glue's
//! `kmod-wasmi/kernel/luapkt_abi.h` from `abi` (every value comes from the Rust constant; the
//! names are listed once, here), and `kmod-wasmi/kernel/lp_rt.h`, the glue's contract with the
//! runtime, from the FFI's own structures and signatures (`kmod-wasmi/ffi/src/lib.rs`, by
//! cbindgen). `cargo run -p luapkt-tests --bin abi-headers` writes the files, and the test
//! below (run by `cargo test`, so in CI) fails when a checked-in header is not what this module
//! makes.

use abi::guest::{self as g, ctx};
use abi::netlink::{self as nl, attr, cmd, expr, stat};
use abi::verdict as v;
use std::fmt::{Display, Write};
use std::path::Path;

/// A header as it is written: `#define`s, enums and comments, in order.
struct Header {
    text: String,
}

impl Header {
    fn new(top: &str, guard: &str) -> Header {
        let mut text = String::new();
        text.push_str(top);
        let _ = write!(text, "#ifndef {guard}\n#define {guard}\n");
        Header { text }
    }

    fn line(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self.text.push('\n');
        self
    }

    fn define(&mut self, name: &str, value: impl Display) -> &mut Self {
        let _ = writeln!(self.text, "#define {name} {value}");
        self
    }

    fn string(&mut self, name: &str, value: &str) -> &mut Self {
        self.define(name, format_args!("\"{value}\""))
    }

    /// `enum NAME { PREFIX_UNSPEC = 0, PREFIX_X = n, ..., __PREFIX_MAX };` and `PREFIX_MAX`,
    /// which must be `max` (the Rust side's own maximum): the enum lists every value.
    fn enumeration(&mut self, name: &str, prefix: &str, items: &[(&str, u16, &str)], max: u16) {
        let _ = writeln!(self.text, "enum {name} {{");
        for (i, (item, value, what)) in items.iter().enumerate() {
            assert_eq!(
                usize::from(*value),
                i,
                "{prefix}{item}: enums list every value in order"
            );
            let comment = if what.is_empty() {
                String::new()
            } else {
                format!(" /* {what} */")
            };
            let _ = writeln!(self.text, "\t{prefix}{item} = {value},{comment}");
        }
        assert_eq!(
            items.len() - 1,
            usize::from(max),
            "{name}: the last value is the maximum"
        );
        let _ = writeln!(self.text, "\t__{prefix}MAX\n}};");
        let _ = writeln!(self.text, "#define {prefix}MAX (__{prefix}MAX - 1)");
    }

    fn finish(mut self, guard: &str) -> String {
        let _ = writeln!(self.text, "\n#endif /* {guard} */");
        self.text
    }
}

/// A comment, a name prefix and the `#define`s under it.
type Group = (&'static str, &'static str, &'static [(&'static str, u8)]);

const GENERATED: &str =
    "Generated from abi/ by `cargo run -p luapkt-tests --bin abi-headers`: do not edit";

/// `guest-lua/c/lp_abi.h`: the guest ABI (`abi::guest`, `abi::verdict`) for the guest's C.
pub fn guest_header() -> String {
    let mut h = Header::new(
        &format!("/* The guest ABI for the guest's C (abi/src/guest.rs, abi/src/verdict.rs).\n * {GENERATED}. */\n"),
        "LP_ABI_H",
    );
    h.line("\n/* verdict codes (lp.ACCEPT, ...) */")
        .define("LP_ACCEPT", v::ACCEPT)
        .define("LP_DROP", v::DROP)
        .define("LP_CONTINUE", v::CONTINUE)
        .define("LP_BREAK", v::BREAK)
        .define("LP_QUEUE_BASE", format_args!("{:#x}", v::QUEUE_BASE))
        .define("LP_QUEUE_MAX", format_args!("{:#x}", v::QUEUE_MAX));
    h.line("\n/* what the `try` import returns */")
        .define("LP_TRY_OK", g::TRY_OK)
        .define("LP_TRY_THREW", g::TRY_THREW);
    h.line("\n/* lp_features() bits */")
        .define("LP_FEATURE_QUEUE", g::FEATURE_QUEUE);
    h.line("\n/* levels of the `log` import */")
        .define("LP_LOG_INFO", g::LOG_INFO)
        .define("LP_LOG_WARN", g::LOG_WARN)
        .define("LP_LOG_DEBUG", g::LOG_DEBUG);
    h.line("\n/* lp.map: operations, values, the spec's layout and results (abi::guest::map) */");
    for (name, value) in [
        ("GET", g::map::GET),
        ("SET", g::map::SET),
        ("DELETE", g::map::DELETE),
        ("ADD", g::map::ADD),
        ("LEN", g::map::LEN),
        ("ABSENT", g::map::ABSENT),
        ("E_KEY", g::map::E_KEY),
        ("E_VALUE", g::map::E_VALUE),
        ("E_TYPE", g::map::E_TYPE),
        ("E_FULL", g::map::E_FULL),
        ("E_ID", g::map::E_ID),
        ("E_RANGE", g::map::E_RANGE),
        ("E_SPEC", g::map::E_SPEC),
        ("E_LATE", g::map::E_LATE),
        ("E_TOO_MANY", g::map::E_TOO_MANY),
        ("E_REDECLARED", g::map::E_REDECLARED),
        ("E_MEMORY", g::map::E_MEMORY),
        ("E_ROOM", g::map::E_ROOM),
    ] {
        h.define(&format!("LP_MAP_{name}"), format_args!("({value})"));
    }
    h.define("LP_MAP_NUMBER", g::map::NUMBER)
        .define("LP_MAP_INT", g::map::INT)
        .define("LP_MAP_FLOAT", g::map::FLOAT)
        .define("LP_MAP_SPEC_NAME", g::map::SPEC_NAME)
        .define("LP_MAP_KIND_HASH", g::map::KIND_HASH)
        .define("LP_MAP_KIND_LRU", g::map::KIND_LRU)
        .define("LP_MAP_VALUE_NUMBER", g::map::VALUE_NUMBER)
        .define("LP_MAP_VALUE_BYTES", g::map::VALUE_BYTES)
        .define("LP_MAP_NAME_MAX", g::map::NAME_MAX);
    h.line("\n/* lp.send: kinds and results (abi::guest::send) */");
    for (name, value) in [
        ("KIND_SEND", g::send::KIND_SEND),
        ("KIND_REPLY", g::send::KIND_REPLY),
        ("E_MALFORMED", g::send::E_MALFORMED),
        ("E_PACKETS", g::send::E_PACKETS),
        ("E_BYTES", g::send::E_BYTES),
        ("E_RATE", g::send::E_RATE),
        ("E_ROUTE", g::send::E_ROUTE),
        ("E_MEMORY", g::send::E_MEMORY),
        ("E_UNAVAILABLE", g::send::E_UNAVAILABLE),
        ("E_RANGE", g::send::E_RANGE),
    ] {
        h.define(&format!("LP_SEND_{name}"), format_args!("({value})"));
    }
    h.define("LP_SEND_PACKET_MAX", abi::limits::SEND_PACKET_MAX);
    h.line("\n/* lp.timer: operations and results (abi::guest::timer) */");
    for (name, value) in [
        ("ARM", g::timer::ARM),
        ("CANCEL", g::timer::CANCEL),
        ("E_TOO_MANY", g::timer::E_TOO_MANY),
        ("E_RATE", g::timer::E_RATE),
        ("E_RANGE", g::timer::E_RANGE),
        ("E_UNAVAILABLE", g::timer::E_UNAVAILABLE),
        ("E_NOT_PENDING", g::timer::E_NOT_PENDING),
        ("ARG", g::TIMER_ARG),
    ] {
        h.define(&format!("LP_TIMER_{name}"), format_args!("({value})"));
    }
    h.define("LP_TIMER_DELAY_MAX_MS", abi::limits::TIMER_DELAY_MAX_MS);
    h.line("\n/* statuses of a failed call (negative) */");
    for (name, value) in [
        ("RUNTIME", g::ERR_RUNTIME),
        ("MEMORY", g::ERR_MEMORY),
        ("RETURN", g::ERR_RETURN),
        ("INSTRUCTIONS", g::ERR_INSTRUCTIONS),
        ("STACK", g::ERR_STACK),
        ("SYNTAX", g::ERR_SYNTAX),
        ("NO_FUNCTION", g::ERR_NO_FUNCTION),
        ("HANDLER", g::ERR_HANDLER),
        ("FUEL", g::ERR_FUEL),
    ] {
        h.define(&format!("LP_ERR_{name}"), format_args!("({value})"));
    }
    h.line("\n/* the packet context: byte offsets of its fields */");
    for (name, value) in [
        ("LEN", ctx::LEN),
        ("WIN", ctx::WIN),
        ("L4OFF", ctx::L4OFF),
        ("MARK", ctx::MARK),
        ("NFPROTO", ctx::NFPROTO),
        ("L4PROTO", ctx::L4PROTO),
        ("FLAGS", ctx::FLAGS),
        ("HOOK", ctx::HOOK),
        ("CSUM", ctx::CSUM),
        ("CT_STATE", ctx::CT_STATE),
        ("OUT", ctx::OUT),
        ("IIFNAME", ctx::IIFNAME),
        ("OIFNAME", ctx::OIFNAME),
        ("CT_MARK", ctx::CT_MARK),
        ("CT_ID", ctx::CT_ID),
        ("DIRTY_LO", ctx::DIRTY_LO),
        ("DIRTY_HI", ctx::DIRTY_HI),
        ("ETH", ctx::ETH),
        ("ETH_LEN", ctx::ETH_LEN),
        ("WINDOW", ctx::WINDOW),
        ("WINDOW_CAP", ctx::WINDOW_CAP),
    ] {
        h.define(&format!("LP_CTX_{name}"), value);
    }
    assert_eq!(ctx::SIZE, ctx::WINDOW + ctx::WINDOW_CAP);
    h.define("LP_CTX_SIZE", "(LP_CTX_WINDOW + LP_CTX_WINDOW_CAP)");
    let groups: [Group; 5] = [
        (
            "context flags (LP_CTX_FLAGS)",
            "LP_FLAG_",
            &[
                ("FRAG", ctx::FLAG_FRAG),
                ("NONFIRST", ctx::FLAG_NONFIRST),
                ("L4", ctx::FLAG_L4),
                ("CT", ctx::FLAG_CT),
                ("ETH", ctx::FLAG_ETH),
            ],
        ),
        (
            "checksum state (LP_CTX_CSUM)",
            "LP_CSUM_",
            &[
                ("COMPLETE", ctx::CSUM_COMPLETE),
                ("PARTIAL", ctx::CSUM_PARTIAL),
            ],
        ),
        (
            "conntrack state bits (LP_CTX_CT_STATE), as nft's `ct state`",
            "LP_CT_",
            &[
                ("INVALID", ctx::CT_INVALID),
                ("ESTABLISHED", ctx::CT_ESTABLISHED),
                ("RELATED", ctx::CT_RELATED),
                ("NEW", ctx::CT_NEW),
                ("UNTRACKED", ctx::CT_UNTRACKED),
            ],
        ),
        (
            "metadata the call changed (LP_CTX_OUT)",
            "LP_OUT_",
            &[
                ("MARK", ctx::OUT_MARK),
                ("CT_MARK", ctx::OUT_CT_MARK),
                ("ETH", ctx::OUT_ETH),
            ],
        ),
        (
            "families (LP_CTX_NFPROTO)",
            "LP_NFPROTO_",
            &[("IPV4", ctx::NFPROTO_IPV4), ("IPV6", ctx::NFPROTO_IPV6)],
        ),
    ];
    for (what, prefix, items) in groups {
        h.line(&format!("\n/* {what} */"));
        for (name, value) in items {
            h.define(&format!("{prefix}{name}"), value);
        }
    }
    h.finish("LP_ABI_H")
}

/// `kmod-wasmi/kernel/luapkt_abi.h`: the netlink ABI (`abi::netlink`, `abi::verdict`) for the
/// kernel module's C.
pub fn kernel_header() -> String {
    let mut h = Header::new(
        &format!(
            "/* SPDX-License-Identifier: GPL-2.0-only */\n/*\n * luapkt netlink ABI: the nft \
             expression \"lua\" and the generic netlink family \"luapkt\"\n * \
             (abi/src/netlink.rs, abi/src/verdict.rs).\n * {GENERATED}.\n */\n"
        ),
        "_LUAPKT_ABI_H",
    );
    h.line("").string("NFT_LUA_EXPR_NAME", nl::EXPR_NAME);
    h.line("\n/* attributes of the \"lua\" expression */");
    h.enumeration(
        "nft_lua_attributes",
        "NFTA_LUA_",
        &[
            ("UNSPEC", expr::UNSPEC, ""),
            ("SCRIPT", expr::SCRIPT, "NLA_NUL_STRING, script name"),
            ("FUNC", expr::FUNC, "NLA_NUL_STRING, entry function"),
            ("ARG", expr::ARG, "NLA_BINARY, argument passed to the entry"),
            ("FLAGS", expr::FLAGS, "NLA_U32 (big endian), NFT_LUA_F_*"),
        ],
        expr::MAX,
    );
    h.line("")
        .define(
            "LUAPKT_NAME_MAX",
            format_args!("{} /* bytes, without the terminating NUL */", nl::NAME_MAX),
        )
        .define("LUAPKT_ARG_MAX", nl::ARG_MAX)
        .define(
            "NFT_LUA_F_ALL",
            format_args!("{} /* no flag defined yet */", nl::EXPR_F_ALL),
        )
        .string("NFT_LUA_DEFAULT_FUNC", runtime::DEFAULT_ENTRY);
    h.line("")
        .string("LUAPKT_GENL_NAME", nl::GENL_NAME)
        .define("LUAPKT_GENL_VERSION", nl::GENL_VERSION)
        .line("");
    let cmds = [
        ("UNSPEC", cmd::UNSPEC, ""),
        ("LOAD_BEGIN", cmd::LOAD_BEGIN, ""),
        ("LOAD_CHUNK", cmd::LOAD_CHUNK, ""),
        ("LOAD_COMMIT", cmd::LOAD_COMMIT, ""),
        ("UNLOAD", cmd::UNLOAD, ""),
        ("GET", cmd::GET, ""),
        ("SET_LIMITS", cmd::SET_LIMITS, ""),
        ("LOAD_ABORT", cmd::LOAD_ABORT, ""),
        ("LOG_READ", cmd::LOG_READ, ""),
        ("ERRORS_READ", cmd::ERRORS_READ, ""),
        ("MAP_LIST", cmd::MAP_LIST, ""),
        ("MAP_DUMP", cmd::MAP_DUMP, ""),
        ("MAP_GET", cmd::MAP_GET, ""),
        ("MAP_SET", cmd::MAP_SET, ""),
        ("MAP_DELETE", cmd::MAP_DELETE, ""),
        ("SOURCE_READ", cmd::SOURCE_READ, ""),
    ]
    .map(|(n, v, w)| (n, u16::from(v), w));
    h.enumeration(
        "luapkt_commands",
        "LUAPKT_CMD_",
        &cmds,
        u16::from(cmd::SOURCE_READ),
    );
    h.line("");
    h.enumeration(
        "luapkt_attributes",
        "LUAPKT_A_",
        &[
            ("UNSPEC", attr::UNSPEC, ""),
            ("NAME", attr::NAME, "NLA_NUL_STRING"),
            ("UPLOAD_ID", attr::UPLOAD_ID, "NLA_U32"),
            ("SIZE", attr::SIZE, "NLA_U32"),
            ("OFFSET", attr::OFFSET, "NLA_U32"),
            ("DATA", attr::DATA, "NLA_BINARY"),
            ("FUEL", attr::FUEL, "NLA_U64"),
            ("INSTRUCTIONS", attr::INSTRUCTIONS, "NLA_U32"),
            ("MEMORY", attr::MEMORY, "NLA_U64"),
            ("RECURSION", attr::RECURSION, "NLA_U32"),
            ("PCALL_DEPTH", attr::PCALL_DEPTH, "NLA_U32"),
            ("ON_ERROR", attr::ON_ERROR, "NLA_U8"),
            ("FLAGS", attr::FLAGS, "NLA_U32"),
            ("STATS", attr::STATS, "nested, LUAPKT_STAT_*"),
            ("TAG", attr::TAG, "NLA_BINARY, 8 bytes"),
            ("REFS", attr::REFS, "NLA_U32"),
            ("MEM_BYTES", attr::MEM_BYTES, "NLA_U64"),
            ("INSTANCES", attr::INSTANCES, "NLA_U32"),
            ("PAD", attr::PAD, ""),
            ("LOAD_FUEL", attr::LOAD_FUEL, "NLA_U64"),
            ("ENGINE", attr::ENGINE, "NLA_U8, LUAPKT_ENGINE_*"),
            (
                "LOG_SEQ",
                attr::LOG_SEQ,
                "NLA_U64, a record's sequence number",
            ),
            (
                "LOG_DATA",
                attr::LOG_DATA,
                "NLA_BINARY, records (abi/src/records.rs)",
            ),
            (
                "LOG_LOST",
                attr::LOG_LOST,
                "NLA_U64, records overwritten unread",
            ),
            (
                "MAP_NAME",
                attr::MAP_NAME,
                "NLA_NUL_STRING, a map of the script",
            ),
            ("MAP_KEY", attr::MAP_KEY, "NLA_BINARY, a map key"),
            ("MAP_VALUE", attr::MAP_VALUE, "NLA_BINARY, a map value"),
            ("SEND_PACKETS", attr::SEND_PACKETS, "NLA_U32"),
            ("SEND_BYTES", attr::SEND_BYTES, "NLA_U32"),
            ("SEND_RATE", attr::SEND_RATE, "NLA_U32"),
            ("SEND_BYTE_RATE", attr::SEND_BYTE_RATE, "NLA_U32"),
            (
                "MAP_BYTES",
                attr::MAP_BYTES,
                "NLA_U64, bytes of the script's maps",
            ),
        ],
        attr::MAX,
    );
    h.line("");
    h.enumeration(
        "luapkt_stat_attributes",
        "LUAPKT_STAT_",
        &[
            ("UNSPEC", stat::UNSPEC, ""),
            ("RUN_CNT", stat::RUN_CNT, ""),
            ("RUN_TIME_NS", stat::RUN_TIME_NS, ""),
            ("ACCEPT", stat::ACCEPT, ""),
            ("DROP", stat::DROP, ""),
            ("CONTINUE", stat::CONTINUE, ""),
            ("BREAK", stat::BREAK, ""),
            ("QUEUE", stat::QUEUE, ""),
            ("ERR_LUA", stat::ERR_LUA, ""),
            ("ERR_MEMORY", stat::ERR_MEMORY, ""),
            ("ERR_FUEL", stat::ERR_FUEL, ""),
            ("ERR_INSTRUCTIONS", stat::ERR_INSTRUCTIONS, ""),
            ("ERR_STACK", stat::ERR_STACK, ""),
            ("ERR_RETURN", stat::ERR_RETURN, ""),
            ("ERR_TRAP", stat::ERR_TRAP, ""),
            ("FUEL_TOTAL", stat::FUEL_TOTAL, ""),
            ("FUEL_MAX", stat::FUEL_MAX, ""),
            ("REBUILDS", stat::REBUILDS, ""),
            ("PAD", stat::PAD, ""),
            ("REBUILD_FAILURES", stat::REBUILD_FAILURES, ""),
            ("RUN_TIME_MAX_NS", stat::RUN_TIME_MAX_NS, ""),
            ("LOG_LINES", stat::LOG_LINES, ""),
            ("LOG_DROPPED", stat::LOG_DROPPED, ""),
            ("SENT_PACKETS", stat::SENT_PACKETS, ""),
            ("SENT_BYTES", stat::SENT_BYTES, ""),
            ("SEND_REFUSED", stat::SEND_REFUSED, ""),
            ("SEND_FAILED", stat::SEND_FAILED, ""),
            ("TIMERS_PENDING", stat::TIMERS_PENDING, ""),
            ("TIMER_RUNS", stat::TIMER_RUNS, ""),
            ("TIMER_ERRORS", stat::TIMER_ERRORS, ""),
            ("TIMERS_DROPPED", stat::TIMERS_DROPPED, ""),
        ],
        stat::MAX,
    );
    h.line("")
        .define("LUAPKT_ON_ERROR_BREAK", nl::ON_ERROR_BREAK)
        .define("LUAPKT_ON_ERROR_ACCEPT", nl::ON_ERROR_ACCEPT)
        .define("LUAPKT_ON_ERROR_DROP", nl::ON_ERROR_DROP)
        .line("")
        .define("LUAPKT_ENGINE_WASMI", nl::ENGINE_WASMI)
        .define("LUAPKT_ENGINE_COMPILED", nl::ENGINE_COMPILED)
        .line("")
        .define("LUAPKT_FLAG_REPLACE", nl::FLAG_REPLACE)
        .line("")
        .define("LUAPKT_PACKAGE_MAX", nl::PACKAGE_MAX)
        .define("LUAPKT_CHUNK_MAX", nl::CHUNK_MAX)
        .define("LUAPKT_UPLOADS_MAX", nl::UPLOADS_MAX)
        .define(
            "LUAPKT_READ_MAX",
            format_args!(
                "{} /* record bytes in one LOG_READ/ERRORS_READ reply */",
                abi::records::READ_MAX
            ),
        )
        .define("LUAPKT_MAP_KEY_MAX", abi::records::MAP_KEY_MAX)
        .define("LUAPKT_MAP_VALUE_MAX", abi::records::MAP_VALUE_MAX)
        .define("LUAPKT_MAP_NAME_MAX", abi::guest::map::NAME_MAX);
    h.line("\n/* verdict codes the runtime returns */")
        .define("LUAPKT_VERDICT_ACCEPT", v::ACCEPT)
        .define("LUAPKT_VERDICT_DROP", v::DROP)
        .define("LUAPKT_VERDICT_CONTINUE", v::CONTINUE)
        .define("LUAPKT_VERDICT_BREAK", v::BREAK)
        .define(
            "LUAPKT_VERDICT_QUEUE_BASE",
            format_args!("{:#x}", v::QUEUE_BASE),
        )
        .define(
            "LUAPKT_VERDICT_QUEUE_MAX",
            format_args!("{:#x}", v::QUEUE_MAX),
        );
    h.finish("_LUAPKT_ABI_H")
}

/// What `lp_rt.h` says before the declarations: the terms its comments use.
const RUNTIME_CONTRACT: &str = "/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The contract between nft_lua.ko's C glue and its Rust runtime: the structures both sides
 * share, the runtime's functions (lp_rt_*) and the shims the glue provides to it (lp_shim.c).
 * GENERATED
 *
 * Contexts (the first word of each comment)
 *   process	may sleep; no spinlock held, not under rcu_read_lock(). Allocations made by
 *		Rust get GFP_KERNEL (large ones vmalloc).
 *   slot	CPU `cpu` with bottom halves disabled (softirq, or local_bh_disable() in process
 *		context), never re-entered for the same slot. Allocations get GFP_ATOMIC.
 *   any	any context but hard-irq/NMI; no allocation.
 *
 * Rust's own spin locks (inside wasmi's engine, the entry table of a script) disable bottom
 * halves while held (kmod-wasmi/ffi/spin), so process-context and softirq users of one
 * compiled guest cannot deadlock on a CPU. A Rust panic is a kernel BUG (lp_panic).
 *
 * Pointers
 *   Byte buffers passed in are only read during the call; nothing keeps them.
 *   `msg`/`msg_len`: NULL, or a buffer that receives a NUL-terminated, truncated message
 *   when the call fails.
 *   Objects (lp_cache, lp_script, lp_spare) are owned by the C caller from the call that
 *   returns them until the matching *_free.
 *   \"# Safety\" says what the caller must hold for Rust's sake.
 */";

/// `kmod-wasmi/kernel/lp_rt.h`: cbindgen's C for `kmod-wasmi/ffi/src/lib.rs` (its `repr(C)`
/// structures, public constants, exported `lp_rt_*` functions and the `extern` shims it
/// imports), with the kernel's names for the types. The glue and `lp_shim.c` compile against
/// it, so a signature that differs on one side fails the module's build.
pub fn runtime_header() -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kmod-wasmi/ffi/src/lib.rs");
    let mut config = cbindgen::Config {
        language: cbindgen::Language::C,
        style: cbindgen::Style::Tag,
        header: Some(RUNTIME_CONTRACT.replace(
            "GENERATED",
            "Generated from kmod-wasmi/ffi/src/lib.rs by `cargo run -p luapkt-tests --bin\n * abi-headers`: do not edit.",
        )),
        include_guard: Some("_LP_RT_H".into()),
        no_includes: true,
        sys_includes: vec!["linux/types.h".into()],
        usize_is_size_t: true,
        after_includes: Some("\nstruct sk_buff;".into()),
        documentation_style: cbindgen::DocumentationStyle::Doxy,
        cpp_compat: false,
        ..Default::default()
    };
    for (rust, c) in [
        ("SkBuff", "struct sk_buff"),
        ("LpPkt", "lp_pkt"),
        ("LpMetaWrite", "lp_meta_write"),
        ("LpLimits", "lp_limits"),
        ("LpStats", "lp_stats"),
        ("LpOutcome", "lp_outcome"),
        ("LpRead", "lp_read"),
        ("LpCache", "lp_cache"),
        ("LpScript", "lp_script"),
        ("LpSpare", "lp_spare"),
    ] {
        config.export.rename.insert(rust.into(), c.into());
    }
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(src)
        .generate()
        .expect("cbindgen reads kmod-wasmi/ffi/src/lib.rs");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen writes UTF-8")
}

/// Each generated header and where it is checked in, relative to the repository's root.
pub fn headers() -> [(&'static str, String); 3] {
    [
        ("guest-lua/c/lp_abi.h", guest_header()),
        ("kmod-wasmi/kernel/luapkt_abi.h", kernel_header()),
        ("kmod-wasmi/kernel/lp_rt.h", runtime_header()),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_checked_in_headers_are_the_generated_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (path, text) in super::headers() {
            let on_disk = std::fs::read_to_string(root.join(path)).unwrap_or_default();
            assert!(
                on_disk == text,
                "{path} is not what abi/ makes: run `cargo run -p luapkt-tests --bin abi-headers`"
            );
        }
    }
}
