//! `lpctl script check` and `lpctl script stubs` as a user runs them, and the API table both
//! are made from (cli/src/lua_api.rs) held to what a script finds in the sandbox.

mod common;

use common::{lpctl, root};

fn tmp(name: &str, contents: &str) -> String {
    common::tmp(name, contents.as_bytes())
}

#[test]
fn the_examples_pass() {
    let mut files = Vec::new();
    for dir in ["examples", "examples/bench"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "lua") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 8, "{files:?}");
    for f in files {
        let func = if f.ends_with("nat.lua") {
            "nat"
        } else {
            "process_packet"
        };
        let o = lpctl(&["script", "check", f.to_str().unwrap(), "--function", func]);
        assert!(
            o.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn mistakes_are_reported_at_their_place_with_exit_1() {
    let cases = [
        (
            "function process_packet(p)\n  if p.tcp.dprot == 22 then return lp.DROP end\nend\n",
            ":2:12: error: unknown field 'dprot' of pkt.tcp",
        ),
        (
            "function process_packet(pkt)\n  return lp.ACCEPT\nend\nfunction f() return cout + 1 end\n",
            ":4:21: error: undefined global 'cout'",
        ),
        ("function process_packet(p)\n  return p.tcp.\nend\n", ":2:15: error: syntax:"),
        (
            "function other(p) return lp.ACCEPT end\n",
            ": error: in the sandbox: ",
        ),
        (
            "error('boom')\nfunction process_packet(p) end\n",
            ": error: in the sandbox: ",
        ),
    ];
    for (i, (src, want)) in cases.iter().enumerate() {
        let f = tmp(&format!("bad{i}.lua"), src);
        let o = lpctl(&["script", "check", &f]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "case {i}: {err}");
        assert!(err.contains(&format!("{f}{want}")), "case {i}: {err}");
    }
    // the sandbox's own words for a missing entry and a failing top-level chunk
    let f = tmp("noentry.lua", "function other(p) return lp.ACCEPT end\n");
    let o = lpctl(&[
        "script",
        "check",
        &f,
        "--function",
        "other",
        "--function",
        "nat",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("entry function 'nat' is not defined"));
    // JSON
    let o = lpctl(&[
        "-j",
        "script",
        "check",
        &tmp(
            "j.lua",
            "function process_packet(p) return p.udp.dportt end\n",
        ),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v["luapkt"][1]["finding"];
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(1), Some(41)),
        "{v}"
    );
}

/// `lp`'s members and the globals as a script enumerates them in the sandbox.
fn sandbox_names() -> (Vec<String>, Vec<String>) {
    let script = tmp(
        "enum.lua",
        "local g, l = {}, {}\n\
         for k in pairs(_G) do g[#g + 1] = k end\n\
         for k in pairs(lp) do l[#l + 1] = k end\n\
         table.sort(g) table.sort(l)\n\
         lp.log('G ' .. table.concat(g, ' '))\n\
         lp.log('LP ' .. table.concat(l, ' '))\n\
         function process_packet(p) return lp.ACCEPT end\n",
    );
    let cap = root().join("tests/data/udp8.pcap");
    let o = lpctl(&["run", &script, "--pcap", cap.to_str().unwrap(), "-v"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let words = |tag: &str| -> Vec<String> {
        let line = all
            .lines()
            .find_map(|l| l.split_once(&format!("{tag} ")).map(|(_, r)| r.to_string()))
            .unwrap_or_else(|| panic!("no {tag} line in: {all}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    (words("G"), words("LP"))
}

#[test]
fn the_api_table_is_the_sandboxs() {
    let (globals, lp) = sandbox_names();
    let mut ours: Vec<String> = lpctl::lua_api::GLOBALS
        .iter()
        .map(|s| s.to_string())
        .collect();
    ours.sort();
    assert_eq!(ours, globals, "lua_api::GLOBALS against the sandbox's _G");
    let mut ours: Vec<String> = lpctl::lua_api::LP
        .iter()
        .map(|f| f.name.to_string())
        .collect();
    ours.sort();
    assert_eq!(ours, lp, "lua_api::LP against the sandbox's lp");
}

#[test]
fn stubs_are_luals_meta() {
    let o = lpctl(&["script", "stubs"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.starts_with("---@meta"));
    for class in [
        "lp.packet",
        "lp.ip",
        "lp.ip6",
        "lp.tcp",
        "lp.udp",
        "lp.icmp",
        "lp.meta",
        "lp.ct",
        "lp.eth",
        "lp.view",
        "lp.lib",
    ] {
        assert!(s.contains(&format!("---@class {class}\n")), "{class}");
    }
    // the shipped copy is what lpctl writes
    let shipped = std::fs::read_to_string(root().join("packaging/luals/luapkt.lua")).unwrap();
    assert_eq!(
        shipped, s,
        "packaging/luals/luapkt.lua: regenerate with `lpctl script stubs`"
    );
}
