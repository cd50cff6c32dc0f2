//! `lpctl save` and `lpctl restore`: the scripts of this network namespace (by their Lua
//! source), their limits, on-error policies and engines, and the nft ruleset with its lua rules
//! in place, as one JSON document; and back, for a boot (luapkt.service, after nftables).
//!
//! A restore checks everything before it changes anything (the document, every script packed,
//! every limit, the ruleset's lua statements against the scripts, nft's dry run of the ruleset),
//! then loads the scripts (a script already loaded with the same package and engine only gets
//! its limits), then replaces the ruleset in one nft transaction (`flush ruleset` first) and adds
//! the lua rules. If a step fails, the steps before are undone: scripts unloaded, replaced ones
//! reloaded from the source they had, limits set back, the ruleset put back. Restoring the same
//! document twice changes nothing the second time.

use crate::nft_cmd::{self, Snapshot};
use crate::nft_text;
use crate::output::{self, Mode};
use crate::script_cmd::{envelope, LimitArgs};
use anyhow::{bail, Context, Result};
use nft_plugin::luapkt::{
    Engine, Limits, LoadRequest, Luapkt, OnError, ScriptInfo, ScriptLimits, SendLimits,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;

/// The document's format; a restore refuses any other.
pub const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveFile {
    /// The format version (FORMAT).
    luapkt_save: u32,
    scripts: Vec<SavedScript>,
    /// `lpctl nft list ruleset`: nft's ruleset with the lua statements in place.
    ruleset: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedScript {
    name: String,
    /// The package's tag when it was saved (a restore by the same lpctl gives it again).
    tag: String,
    engine: Option<String>,
    on_error: String,
    limits: SavedLimits,
    /// The Lua source (as text; `source_hex` when it is not UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_hex: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct SavedLimits {
    fuel: u64,
    instructions: u32,
    memory: u64,
    recursion: u32,
    pcall_depth: u32,
    load_fuel: u64,
    send_packets: u32,
    send_bytes: u32,
    send_rate: u32,
    send_byte_rate: u32,
}

impl From<&ScriptLimits> for SavedLimits {
    fn from(l: &ScriptLimits) -> Self {
        SavedLimits {
            fuel: l.fuel,
            instructions: l.instructions,
            memory: l.memory,
            recursion: l.recursion,
            pcall_depth: l.pcall_depth,
            load_fuel: l.load_fuel,
            send_packets: l.send.send_packets,
            send_bytes: l.send.send_bytes,
            send_rate: l.send.send_rate,
            send_byte_rate: l.send.send_byte_rate,
        }
    }
}

impl SavedLimits {
    fn to_netlink(self) -> Limits {
        Limits {
            fuel: Some(self.fuel),
            instructions: Some(self.instructions),
            memory: Some(self.memory),
            recursion: Some(self.recursion),
            pcall_depth: Some(self.pcall_depth),
            // 0: a kernel that did not report it; the default then
            load_fuel: (self.load_fuel > 0).then_some(self.load_fuel),
            send: SendLimits {
                send_packets: Some(self.send_packets),
                send_bytes: Some(self.send_bytes),
                send_rate: Some(self.send_rate),
                send_byte_rate: Some(self.send_byte_rate),
            },
        }
    }
}

pub fn save(out: Option<&Path>, mode: Mode) -> Result<()> {
    let mut lp = Luapkt::open()?;
    let mut scripts = Vec::new();
    for info in lp.list()? {
        let source = lp
            .source(&info.name)
            .with_context(|| format!("script {}: its source", info.name))?;
        let package = runtime::package::build(guest_lua::LUA_WASM, &info.name, &source)
            .with_context(|| format!("script {}", info.name))?;
        if crate::pack::tag(&package) != info.tag.to_string() {
            eprintln!(
                "Warning: script {} was not loaded with this lpctl's built-in guest (tag {}): \
                 a restore loads its source with the built-in guest",
                info.name, info.tag
            );
        }
        let (text, hex) = match String::from_utf8(source) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(output::hex(e.as_bytes()))),
        };
        scripts.push(SavedScript {
            name: info.name.clone(),
            tag: info.tag.to_string(),
            engine: info.engine.map(|e| e.name().to_string()),
            on_error: info.on_error.name().to_string(),
            limits: SavedLimits::from(&info.limits),
            source: text,
            source_hex: hex,
        });
    }
    let doc = SaveFile {
        luapkt_save: FORMAT,
        scripts,
        ruleset: nft_cmd::merged_ruleset()?,
    };
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    match out {
        Some(path) => {
            // whole or not at all: a file a boot reads must not be cut short
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &text).with_context(|| format!("{}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))?;
            if mode.json {
                output::json(
                    mode,
                    &envelope(
                        "saved",
                        vec![
                            json!({"file": path.display().to_string(), "scripts": doc.scripts.len()}),
                        ],
                    ),
                );
            }
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// A script as the restore will load it: checked, packed.
struct Planned {
    name: String,
    package: Vec<u8>,
    tag: String,
    limits: Limits,
    on_error: OnError,
    engine: Option<Engine>,
}

/// What the restore did to a script, to undo it.
enum Done {
    Loaded(String),
    Replaced {
        name: String,
        package: Vec<u8>,
        info: Box<ScriptInfo>,
    },
    Limits(Box<ScriptInfo>),
}

fn parse_doc(text: &str, file: &str) -> Result<SaveFile> {
    let v: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{file}: not a luapkt save file"))?;
    match v.get("luapkt_save").and_then(|f| f.as_u64()) {
        Some(f) if f == u64::from(FORMAT) => {}
        Some(f) => bail!("{file}: a save file of format {f}; this lpctl reads format {FORMAT}"),
        None => bail!("{file}: not a luapkt save file (no \"luapkt_save\" format number)"),
    }
    serde_json::from_value(v).with_context(|| format!("{file}: not a luapkt save file"))
}

fn plan(doc: &SaveFile, file: &str) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    for s in &doc.scripts {
        let what = format!("{file}: script {}", s.name);
        if out.iter().any(|p| p.name == s.name) {
            bail!("{what}: named twice");
        }
        let source = match (&s.source, &s.source_hex) {
            (Some(t), None) => t.as_bytes().to_vec(),
            (None, Some(h)) => {
                crate::output::unhex(h).with_context(|| format!("{what}: source_hex"))?
            }
            _ => bail!("{what}: needs one of source, source_hex"),
        };
        let package = runtime::package::build(guest_lua::LUA_WASM, &s.name, &source)
            .with_context(|| what.clone())?;
        let limits = s.limits.to_netlink();
        LimitArgs::checked(&limits).with_context(|| format!("{what}: limits"))?;
        out.push(Planned {
            name: s.name.clone(),
            tag: crate::pack::tag(&package),
            package,
            limits,
            on_error: s.on_error.parse().with_context(|| what.clone())?,
            engine: s
                .engine
                .as_deref()
                .map(str::parse)
                .transpose()
                .with_context(|| what.clone())?,
        });
    }
    Ok(out)
}

pub fn restore(file: &Path, mode: Mode) -> Result<()> {
    let name = file.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?
    };
    let doc = parse_doc(&text, &name)?;
    let planned = plan(&doc, &name)?;
    let ruleset_name = format!("{name} (ruleset)");
    // "flush ruleset; " on the ruleset's first line: nft's line numbers stay the document's
    let ruleset = format!("flush ruleset; {}", doc.ruleset);
    let scan = nft_text::scan(&ruleset)
        .map_err(|e| anyhow::anyhow!("{}", e.render(&ruleset, Some(&ruleset_name))))?;
    let mut lp = Luapkt::open()?;
    let loaded = lp.list()?;
    for s in &scan.lua {
        let script = &s.rule.script;
        if !planned.iter().any(|p| &p.name == script) && !loaded.iter().any(|l| &l.name == script) {
            let e = nft_text::TextError {
                msg: format!("script '{script}' is neither in the save file nor loaded"),
                start: s.script_at.0,
                end: s.script_at.1,
            };
            bail!("{}", e.render(&ruleset, Some(&ruleset_name)));
        }
    }
    let rewritten = scan.rewrite(&ruleset);
    nft_cmd::dry_run(&rewritten, &ruleset_name)?;

    let before = Snapshot::take()?;
    let mut done: Vec<Done> = Vec::new();
    let result = apply_scripts(&mut lp, &planned, &loaded, &mut done)
        // refused by nft: nf_tables is as it was
        .and_then(|()| nft_cmd::apply_nft(&rewritten, &ruleset_name))
        .and_then(|()| {
            nft_cmd::add_lua_rules(&scan)
                .context("the lua rules")
                .map_err(|e| match before.restore() {
                    Ok(()) => e,
                    Err(u) => e.context(format!("putting the ruleset back failed too: {u:#}")),
                })
        });
    if let Err(e) = result {
        let mut undo_errors = Vec::new();
        for d in done.into_iter().rev() {
            if let Err(u) = undo(&mut lp, d) {
                undo_errors.push(format!("{u:#}"));
            }
        }
        if undo_errors.is_empty() {
            return Err(e.context(format!(
                "{name}: nothing restored (what was done is undone)"
            )));
        }
        return Err(e.context(format!(
            "{name}: restore failed, and undoing it too: {}",
            undo_errors.join("; ")
        )));
    }
    if mode.json {
        output::json(
            mode,
            &envelope(
                "restored",
                vec![json!({
                    "file": name, "scripts": planned.len(), "lua_rules": scan.lua.len(),
                })],
            ),
        );
    }
    Ok(())
}

fn apply_scripts(
    lp: &mut Luapkt,
    planned: &[Planned],
    loaded: &[ScriptInfo],
    done: &mut Vec<Done>,
) -> Result<()> {
    for p in planned {
        let what = format!("script {}", p.name);
        let current = loaded.iter().find(|l| l.name == p.name);
        let same_engine = |c: &ScriptInfo| p.engine.is_none() || c.engine == p.engine;
        let req = LoadRequest {
            name: &p.name,
            package: &p.package,
            limits: p.limits,
            on_error: Some(p.on_error),
            engine: p.engine,
            replace: current.is_some(),
        };
        match current {
            Some(c) if c.tag.to_string() == p.tag && same_engine(c) => {
                lp.set_limits(&p.name, &p.limits, Some(p.on_error))
                    .with_context(|| what.clone())?;
                done.push(Done::Limits(Box::new(c.clone())));
            }
            Some(c) => {
                // the package it has now, to put back: its source with the built-in guest
                let old = lp.source(&p.name).with_context(|| what.clone())?;
                let package = runtime::package::build(guest_lua::LUA_WASM, &p.name, &old)
                    .with_context(|| what.clone())?;
                lp.load(&req).with_context(|| what.clone())?;
                done.push(Done::Replaced {
                    name: p.name.clone(),
                    package,
                    info: Box::new(c.clone()),
                });
            }
            None => {
                lp.load(&req).with_context(|| what.clone())?;
                done.push(Done::Loaded(p.name.clone()));
            }
        }
    }
    Ok(())
}

fn limits_of(info: &ScriptInfo) -> Limits {
    SavedLimits::from(&info.limits).to_netlink()
}

fn undo(lp: &mut Luapkt, d: Done) -> Result<()> {
    match d {
        Done::Loaded(name) => lp.unload(&name)?,
        Done::Replaced {
            name,
            package,
            info,
        } => {
            lp.load(&LoadRequest {
                name: &name,
                package: &package,
                limits: limits_of(&info),
                on_error: Some(info.on_error),
                engine: info.engine,
                replace: true,
            })?;
        }
        Done::Limits(info) => lp.set_limits(&info.name, &limits_of(&info), Some(info.on_error))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(scripts: &str) -> String {
        format!(r#"{{"luapkt_save": 1, "scripts": [{scripts}], "ruleset": ""}}"#)
    }

    const LIMITS: &str = r#"{"fuel": 100000, "instructions": 0, "memory": 4194304, "recursion": 200,
        "pcall_depth": 8, "load_fuel": 50000000, "send_packets": 0, "send_bytes": 0,
        "send_rate": 0, "send_byte_rate": 0}"#;

    fn script(name: &str, source: &str) -> String {
        format!(
            r#"{{"name": "{name}", "tag": "00", "engine": "compiled", "on_error": "drop",
            "limits": {LIMITS}, "source": {}}}"#,
            serde_json::to_string(source).unwrap()
        )
    }

    #[test]
    fn a_save_file_is_checked_whole() {
        let ok = doc(&script(
            "web",
            "function process_packet(p) return lp.ACCEPT end",
        ));
        let d = parse_doc(&ok, "f").unwrap();
        let p = plan(&d, "f").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].on_error, OnError::Drop);
        assert_eq!(p[0].engine, Some(Engine::Compiled));
        assert_eq!(p[0].limits.fuel, Some(100_000));

        let err = |t: &str| match parse_doc(t, "f") {
            Ok(d) => format!("{:#}", plan(&d, "f").err().expect("an error")),
            Err(e) => format!("{e:#}"),
        };
        assert!(err(&ok.replace("\"luapkt_save\": 1", "\"luapkt_save\": 2"))
            .contains("format 2; this lpctl reads format 1"));
        assert!(err(&ok[..ok.len() / 2]).contains("not a luapkt save file"));
        assert!(err("{}").contains("no \"luapkt_save\""));
        assert!(err(&ok.replace("\"tag\"", "\"colour\": 1, \"tag\""))
            .contains("unknown field `colour`"));
        assert!(err(&doc(&format!(
            "{},{}",
            script("a", "x=1"),
            script("a", "y=1")
        )))
        .contains("named twice"));
        assert!(err(&doc(&script("bad/name", "x=1"))).contains("script bad/name"));
        assert!(err(&ok.replace("\"fuel\": 100000", "\"fuel\": 0")).contains("limits"));
        assert!(err(&ok.replace("\"drop\"", "\"sometimes\""))
            .contains("not one of break, accept, drop"));
        assert!(err(&ok.replace("\"compiled\"", "\"jit\"")).contains("not one of wasmi, compiled"));
        let hex = doc(&script("h", "x")
            .replace("\"source\"", "\"source_hex\"")
            .replace("\"x\"", "\"787a\""));
        assert!(plan(&parse_doc(&hex, "f").unwrap(), "f").is_ok());
        assert!(err(&hex.replace("787a", "78z")).contains("source_hex"));
    }
}
