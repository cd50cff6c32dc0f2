//! `kmod-wasmi/kernel/luapkt_abi.h` mirrors `netlink.rs` and `verdict.rs` for the C glue of
//! the kernel module: parse it and check every value, in both directions.

use abi::netlink::{self, attr, cmd, expr, stat};
use abi::verdict;
use std::collections::HashMap;

const HEADER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../kmod-wasmi/kernel/luapkt_abi.h"
);

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    Str(String),
}

/// Evaluates what the header uses: integers (decimal, hex), names defined earlier,
/// `a << b`, `a - b`, `a + b`, parentheses, string literals.
fn eval(expr: &str, known: &HashMap<String, Value>) -> Value {
    let e = expr.trim();
    if let Some(s) = e.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Value::Str(s.to_string());
    }
    let e = e
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(e);
    for op in ["<<", " - ", " + "] {
        if let Some((a, b)) = e.split_once(op) {
            let (Value::Int(a), Value::Int(b)) = (eval(a, known), eval(b, known)) else {
                panic!("non-integer operands in {expr}");
            };
            return Value::Int(match op {
                "<<" => a << b,
                " - " => a - b,
                _ => a + b,
            });
        }
    }
    if let Some(h) = e.strip_prefix("0x") {
        return Value::Int(i64::from_str_radix(h, 16).unwrap());
    }
    if let Ok(v) = e.parse::<i64>() {
        return Value::Int(v);
    }
    known
        .get(e)
        .cloned()
        .unwrap_or_else(|| panic!("unknown name {e:?} in {expr:?}"))
}

fn strip_comment(line: &str) -> &str {
    line.split("/*").next().unwrap_or("").trim()
}

/// Every `#define NAME VALUE` and enumerator `NAME = VALUE` (or implicit successor) of the header.
fn parse_header() -> HashMap<String, Value> {
    let text = std::fs::read_to_string(HEADER).expect("read luapkt_abi.h");
    let mut known = HashMap::new();
    let mut in_enum = false;
    let mut next = 0i64;
    for raw in text.lines() {
        let line = strip_comment(raw);
        if line.starts_with("enum ") && line.ends_with('{') {
            in_enum = true;
            next = 0;
            continue;
        }
        if in_enum {
            if line.starts_with('}') {
                in_enum = false;
                continue;
            }
            let item = line.trim_end_matches(',');
            if item.is_empty() {
                continue;
            }
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), eval(v, &known)),
                None => (item, Value::Int(next)),
            };
            if let Value::Int(v) = value {
                next = v + 1;
            }
            known.insert(name.to_string(), value);
            continue;
        }
        if let Some(rest) = line.strip_prefix("#define ") {
            let mut parts = rest.splitn(2, char::is_whitespace);
            let name = parts.next().unwrap();
            let Some(value) = parts.next() else { continue }; // include guard
            known.insert(name.to_string(), eval(value, &known));
        }
    }
    known
}

#[test]
fn kernel_header_matches_the_abi() {
    let h = parse_header();
    let int = |v: i64| Value::Int(v);
    let s = |v: &str| Value::Str(v.to_string());
    let want: Vec<(&str, Value)> = vec![
        ("NFT_LUA_EXPR_NAME", s(netlink::EXPR_NAME)),
        ("NFTA_LUA_UNSPEC", int(expr::UNSPEC.into())),
        ("NFTA_LUA_SCRIPT", int(expr::SCRIPT.into())),
        ("NFTA_LUA_FUNC", int(expr::FUNC.into())),
        ("NFTA_LUA_ARG", int(expr::ARG.into())),
        ("NFTA_LUA_FLAGS", int(expr::FLAGS.into())),
        ("NFTA_LUA_MAX", int(expr::MAX.into())),
        ("LUAPKT_NAME_MAX", int(netlink::NAME_MAX as i64)),
        ("LUAPKT_ARG_MAX", int(netlink::ARG_MAX as i64)),
        ("NFT_LUA_F_ALL", int(netlink::EXPR_F_ALL.into())),
        ("LUAPKT_GENL_NAME", s(netlink::GENL_NAME)),
        ("LUAPKT_GENL_VERSION", int(netlink::GENL_VERSION.into())),
        ("LUAPKT_CMD_UNSPEC", int(cmd::UNSPEC.into())),
        ("LUAPKT_CMD_LOAD_BEGIN", int(cmd::LOAD_BEGIN.into())),
        ("LUAPKT_CMD_LOAD_CHUNK", int(cmd::LOAD_CHUNK.into())),
        ("LUAPKT_CMD_LOAD_COMMIT", int(cmd::LOAD_COMMIT.into())),
        ("LUAPKT_CMD_UNLOAD", int(cmd::UNLOAD.into())),
        ("LUAPKT_CMD_GET", int(cmd::GET.into())),
        ("LUAPKT_CMD_SET_LIMITS", int(cmd::SET_LIMITS.into())),
        ("LUAPKT_CMD_LOAD_ABORT", int(cmd::LOAD_ABORT.into())),
        // the highest command
        ("LUAPKT_CMD_MAX", int(cmd::LOAD_ABORT.into())),
        ("LUAPKT_A_UNSPEC", int(attr::UNSPEC.into())),
        ("LUAPKT_A_NAME", int(attr::NAME.into())),
        ("LUAPKT_A_UPLOAD_ID", int(attr::UPLOAD_ID.into())),
        ("LUAPKT_A_SIZE", int(attr::SIZE.into())),
        ("LUAPKT_A_OFFSET", int(attr::OFFSET.into())),
        ("LUAPKT_A_DATA", int(attr::DATA.into())),
        ("LUAPKT_A_FUEL", int(attr::FUEL.into())),
        ("LUAPKT_A_INSTRUCTIONS", int(attr::INSTRUCTIONS.into())),
        ("LUAPKT_A_MEMORY", int(attr::MEMORY.into())),
        ("LUAPKT_A_RECURSION", int(attr::RECURSION.into())),
        ("LUAPKT_A_PCALL_DEPTH", int(attr::PCALL_DEPTH.into())),
        ("LUAPKT_A_ON_ERROR", int(attr::ON_ERROR.into())),
        ("LUAPKT_A_FLAGS", int(attr::FLAGS.into())),
        ("LUAPKT_A_STATS", int(attr::STATS.into())),
        ("LUAPKT_A_TAG", int(attr::TAG.into())),
        ("LUAPKT_A_REFS", int(attr::REFS.into())),
        ("LUAPKT_A_MEM_BYTES", int(attr::MEM_BYTES.into())),
        ("LUAPKT_A_INSTANCES", int(attr::INSTANCES.into())),
        ("LUAPKT_A_PAD", int(attr::PAD.into())),
        ("LUAPKT_A_LOAD_FUEL", int(attr::LOAD_FUEL.into())),
        ("LUAPKT_A_ENGINE", int(attr::ENGINE.into())),
        ("LUAPKT_A_MAX", int(attr::MAX.into())),
        ("LUAPKT_STAT_UNSPEC", int(stat::UNSPEC.into())),
        ("LUAPKT_STAT_RUN_CNT", int(stat::RUN_CNT.into())),
        ("LUAPKT_STAT_RUN_TIME_NS", int(stat::RUN_TIME_NS.into())),
        ("LUAPKT_STAT_ACCEPT", int(stat::ACCEPT.into())),
        ("LUAPKT_STAT_DROP", int(stat::DROP.into())),
        ("LUAPKT_STAT_CONTINUE", int(stat::CONTINUE.into())),
        ("LUAPKT_STAT_BREAK", int(stat::BREAK.into())),
        ("LUAPKT_STAT_QUEUE", int(stat::QUEUE.into())),
        ("LUAPKT_STAT_ERR_LUA", int(stat::ERR_LUA.into())),
        ("LUAPKT_STAT_ERR_MEMORY", int(stat::ERR_MEMORY.into())),
        ("LUAPKT_STAT_ERR_FUEL", int(stat::ERR_FUEL.into())),
        (
            "LUAPKT_STAT_ERR_INSTRUCTIONS",
            int(stat::ERR_INSTRUCTIONS.into()),
        ),
        ("LUAPKT_STAT_ERR_STACK", int(stat::ERR_STACK.into())),
        ("LUAPKT_STAT_ERR_RETURN", int(stat::ERR_RETURN.into())),
        ("LUAPKT_STAT_ERR_TRAP", int(stat::ERR_TRAP.into())),
        ("LUAPKT_STAT_FUEL_TOTAL", int(stat::FUEL_TOTAL.into())),
        ("LUAPKT_STAT_FUEL_MAX", int(stat::FUEL_MAX.into())),
        ("LUAPKT_STAT_REBUILDS", int(stat::REBUILDS.into())),
        ("LUAPKT_STAT_PAD", int(stat::PAD.into())),
        (
            "LUAPKT_STAT_REBUILD_FAILURES",
            int(stat::REBUILD_FAILURES.into()),
        ),
        (
            "LUAPKT_STAT_RUN_TIME_MAX_NS",
            int(stat::RUN_TIME_MAX_NS.into()),
        ),
        ("LUAPKT_STAT_MAX", int(stat::MAX.into())),
        ("LUAPKT_ON_ERROR_BREAK", int(netlink::ON_ERROR_BREAK.into())),
        (
            "LUAPKT_ON_ERROR_ACCEPT",
            int(netlink::ON_ERROR_ACCEPT.into()),
        ),
        ("LUAPKT_ON_ERROR_DROP", int(netlink::ON_ERROR_DROP.into())),
        ("LUAPKT_ENGINE_WASMI", int(netlink::ENGINE_WASMI.into())),
        (
            "LUAPKT_ENGINE_COMPILED",
            int(netlink::ENGINE_COMPILED.into()),
        ),
        ("LUAPKT_FLAG_REPLACE", int(netlink::FLAG_REPLACE.into())),
        ("LUAPKT_PACKAGE_MAX", int(netlink::PACKAGE_MAX.into())),
        ("LUAPKT_CHUNK_MAX", int(netlink::CHUNK_MAX.into())),
        ("LUAPKT_UPLOADS_MAX", int(netlink::UPLOADS_MAX.into())),
        ("LUAPKT_VERDICT_ACCEPT", int(verdict::ACCEPT.into())),
        ("LUAPKT_VERDICT_DROP", int(verdict::DROP.into())),
        ("LUAPKT_VERDICT_CONTINUE", int(verdict::CONTINUE.into())),
        ("LUAPKT_VERDICT_BREAK", int(verdict::BREAK.into())),
        ("LUAPKT_VERDICT_QUEUE_BASE", int(verdict::QUEUE_BASE.into())),
        ("LUAPKT_VERDICT_QUEUE_MAX", int(verdict::QUEUE_MAX.into())),
    ];
    for (name, value) in &want {
        assert_eq!(h.get(*name), Some(value), "{name} in luapkt_abi.h");
    }
    // nothing in the header that the table above does not check (the enums' __*_MAX
    // sentinels and the expression's default function name aside)
    let checked: std::collections::HashSet<&str> = want.iter().map(|(n, _)| *n).collect();
    let mut extra: Vec<&String> = h
        .keys()
        .filter(|k| !k.starts_with("__") && !checked.contains(k.as_str()))
        .filter(|k| k.as_str() != "NFT_LUA_DEFAULT_FUNC")
        .collect();
    extra.sort();
    assert!(
        extra.is_empty(),
        "unchecked names in luapkt_abi.h: {extra:?}"
    );
}

#[test]
fn default_function_matches_the_runtime_name() {
    let h = parse_header();
    assert_eq!(
        h.get("NFT_LUA_DEFAULT_FUNC"),
        Some(&Value::Str("process_packet".into())),
        "runtime::DEFAULT_ENTRY"
    );
}
