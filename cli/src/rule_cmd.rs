//! `lpctl rule ...`: nft rules whose verdict comes from a script.
//!
//! Stock nft cannot show an expression it does not know (docs/netlink.md), so a `lua` rule lives alone
//! in a chain of its own, `lua-NAME`, created with a comment that says so, and the user's match
//! goes to the real `nft` as `... jump lua-NAME`. `nft list ruleset` then shows the jump and the
//! chain's comment; `lpctl rule list` and `lpctl nft list` (cli/src/nft_cmd.rs) show the `lua`
//! rules themselves.

use crate::nft_cmd::nft_binary;
use crate::output::{self, Mode};
use crate::script_cmd::envelope;
use anyhow::{bail, Context, Result};
use nft_plugin::nft::{Batch, Chain, Family, LuaExpr, Nftables};
use serde_json::json;
use std::process::Command;

/// A parsed `rule add` command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleAdd {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// nft statements before `lua` (the match), passed to nft as they are.
    pub statements: Vec<String>,
    pub script: String,
    pub func: Option<String>,
    pub arg: Option<String>,
}

/// Parses `FAMILY TABLE CHAIN [nft statements...] lua script NAME [function F] [arg S]`.
pub fn parse_add(words: &[String]) -> Result<RuleAdd> {
    let usage = "usage: lpctl rule add FAMILY TABLE CHAIN [nft statements...] lua script NAME [function F] [arg S]";
    let [family, table, chain, rest @ ..] = words else {
        bail!("{usage}");
    };
    let Some(lua_at) = rest.iter().position(|w| w == "lua") else {
        bail!("no `lua script NAME` in the rule; {usage}");
    };
    let statements = rest[..lua_at].to_vec();
    let mut tail = rest[lua_at + 1..].iter();
    let (mut script, mut func, mut arg) = (None, None, None);
    while let Some(w) = tail.next() {
        let slot = match w.as_str() {
            "script" => &mut script,
            "function" => &mut func,
            "arg" => &mut arg,
            other => bail!(
                "unexpected `{other}` after `lua`: statements after `lua script NAME` are not accepted (the script's verdict decides)"
            ),
        };
        if slot.is_some() {
            bail!("`{w}` given twice");
        }
        let Some(v) = tail.next() else {
            bail!("`{w}` needs a value");
        };
        *slot = Some(v.clone());
    }
    let Some(script) = script else {
        bail!("`lua` needs `script NAME`; {usage}");
    };
    let r = RuleAdd {
        family: family.clone(),
        table: table.clone(),
        chain: chain.clone(),
        statements,
        script,
        func,
        arg,
    };
    r.check_binding()?;
    Ok(r)
}

/// The comment of a lua chain (what stock nft shows of it; at most 128 bytes with a 63-byte name).
pub fn lua_chain_comment(script: &str) -> String {
    format!("lua rule: script {script} (lpctl nft list shows it)")
}

impl RuleAdd {
    /// The script name, function and argument within what the kernel takes.
    pub fn check_binding(&self) -> Result<()> {
        if !runtime::package::valid_name(&self.script) {
            bail!(
                "script name '{}': {}",
                self.script,
                runtime::package::PackageError::BadName
            );
        }
        // (nft's strings cannot carry a double quote: a listing must read back)
        let printable = |s: &str| !s.chars().any(|c| c == '"' || c.is_control());
        if let Some(f) = &self.func {
            if f.is_empty() || f.len() > abi::netlink::NAME_MAX {
                bail!("function '{f}': 1..={} bytes", abi::netlink::NAME_MAX);
            }
            if !printable(f) {
                bail!("function {f:?}: no double quote or control character");
            }
        }
        if let Some(a) = &self.arg {
            if a.len() > abi::netlink::ARG_MAX {
                bail!("arg: at most {} bytes", abi::netlink::ARG_MAX);
            }
            if !printable(a) {
                bail!("arg {a:?}: no double quote or control character");
            }
        }
        Ok(())
    }

    /// The chain holding the `lua` rule: `lua-NAME`, or `lua-NAME-XXXXXXXX` when a function or
    /// argument is given (one chain per distinct binding).
    pub fn lua_chain(&self) -> String {
        if self.func.is_none() && self.arg.is_none() {
            return format!("lua-{}", self.script);
        }
        let key = format!(
            "{}\0{}",
            self.func.as_deref().unwrap_or(""),
            self.arg.as_deref().unwrap_or("")
        );
        let tag = crate::pack::tag(key.as_bytes());
        format!("lua-{}-{}", self.script, &tag[..8])
    }

    pub fn expr(&self) -> LuaExpr {
        let mut e = LuaExpr::new(self.script.clone());
        if let Some(f) = &self.func {
            e = e.with_func(f.clone());
        }
        if let Some(a) = &self.arg {
            e = e.with_arg(a.clone());
        }
        e
    }
}

/// Runs the real nft; its stderr becomes the error.
fn nft(args: &[String]) -> Result<String> {
    let out = Command::new(nft_binary())
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", nft_binary()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        bail!(
            "nft {}: {}",
            args.join(" "),
            first.trim_start_matches("Error: ")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn add(words: &[String], mode: Mode) -> Result<()> {
    let r = parse_add(words)?;
    let family: Family = r.family.parse()?;
    let lua_chain = r.lua_chain();
    let mut nf = Nftables::open()?;
    // 1. the lua rule, alone in its chain (reused when the same binding exists already)
    let created = match nf.get_chain(family, &r.table, &lua_chain) {
        Ok(_) => {
            let rules = nf.list_lua_rules(Some(family), Some(&r.table), Some(&lua_chain))?;
            let want = r.expr();
            if !rules
                .iter()
                .any(|l| l.script == want.script && l.func == want.func && l.arg == want.arg)
            {
                bail!(
                    "chain {} {} {lua_chain} exists but does not hold this lua rule",
                    r.family,
                    r.table
                );
            }
            false
        }
        Err(e) if e.errno() == Some(ENOENT) => {
            let comment = lua_chain_comment(&r.script);
            let mut b = Batch::new();
            b.create_chain(
                Chain::regular(family, r.table.clone(), lua_chain.clone()).with_comment(comment),
            );
            b.add_rule(family, r.table.clone(), lua_chain.clone(), r.expr());
            nf.commit(&b)?;
            true
        }
        Err(e) => return Err(e.into()),
    };
    // 2. the user's match, through the real nft, jumping to it; undo step 1 if nft refuses
    let mut args = vec![
        "add".to_string(),
        "rule".into(),
        r.family.clone(),
        r.table.clone(),
        r.chain.clone(),
    ];
    args.extend(r.statements.iter().cloned());
    args.extend(["jump".to_string(), lua_chain.clone()]);
    if let Err(e) = nft(&args) {
        if created {
            let mut b = Batch::new();
            b.delete_chain(family, r.table.clone(), lua_chain.clone());
            let _ = nf.commit(&b);
        }
        if format!("{e:#}").contains("Operation not supported") {
            // the likeliest cause when the jump (not the match) is refused: nf_tables
            // validated the lua rule against the chain's hook (nft_lua_validate)
            return Err(e.context(format!(
                "rule not added; if script {} names lp.QUEUE, it cannot stand at a netdev or \
                 ingress hook, where nf_queue cannot reinject packets",
                r.script
            )));
        }
        return Err(e);
    }
    if mode.json {
        output::json(
            mode,
            &envelope(
                "rule",
                vec![json!({
                    "family": r.family, "table": r.table, "chain": r.chain,
                    "match": r.statements.join(" "), "lua_chain": lua_chain,
                    "script": r.script, "function": r.func, "arg": r.arg,
                })],
            ),
        );
    }
    Ok(())
}

/// errno of a missing chain.
const ENOENT: i32 = 2;

pub fn list(mode: Mode) -> Result<()> {
    let rules = Nftables::open()?.list_lua_rules(None, None, None)?;
    if mode.json {
        let items = rules
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect();
        output::json(mode, &envelope("rule", items));
        return Ok(());
    }
    for r in &rules {
        let mut line = format!(
            "{} {} {} handle {}: lua script {}",
            r.family, r.table, r.chain, r.handle, r.script
        );
        if let Some(f) = &r.func {
            line.push_str(&format!(" function {f}"));
        }
        if let Some(a) = &r.arg {
            line.push_str(&format!(" arg {a:?}"));
        }
        crate::outln!("{line}");
    }
    Ok(())
}

/// Deletes the user's rule `FAMILY TABLE CHAIN handle H`; when it jumped to a `lua-*` chain that
/// nothing else jumps to, that chain goes too (the kernel refuses while other jumps exist).
pub fn delete(family: &str, table: &str, chain: &str, handle: u64, mode: Mode) -> Result<()> {
    let fam: Family = family.parse()?;
    let listing = nft(&[
        "-j".into(),
        "-a".into(),
        "list".into(),
        "chain".into(),
        family.into(),
        table.into(),
        chain.into(),
    ])?;
    let v: serde_json::Value = serde_json::from_str(&listing).context("nft -j output")?;
    let target = v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("rule"))
        .find(|r| r["handle"].as_u64() == Some(handle))
        .and_then(|r| {
            r["expr"]
                .as_array()?
                .iter()
                .find_map(|e| e["jump"]["target"].as_str().map(str::to_string))
        });
    nft(&[
        "delete".into(),
        "rule".into(),
        family.into(),
        table.into(),
        chain.into(),
        "handle".into(),
        handle.to_string(),
    ])?;
    let mut removed_chain = None;
    if let Some(t) = target.filter(|t| t.starts_with("lua-")) {
        let mut b = Batch::new();
        b.delete_chain(fam, table.to_string(), t.clone());
        if Nftables::open()?.commit(&b).is_ok() {
            removed_chain = Some(t);
        }
    }
    if mode.json {
        output::json(
            mode,
            &envelope(
                "deleted",
                vec![json!({
                    "family": family, "table": table, "chain": chain, "handle": handle,
                    "lua_chain": removed_chain,
                })],
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_the_match_and_the_lua_part() {
        let r = parse_add(&words("inet filter input tcp dport 80 lua script web")).unwrap();
        assert_eq!(r.statements, words("tcp dport 80"));
        assert_eq!(
            (r.script.as_str(), r.func.as_deref(), r.arg.as_deref()),
            ("web", None, None)
        );
        assert_eq!(r.lua_chain(), "lua-web");
        let r = parse_add(&words("ip t c lua script web function check arg x1")).unwrap();
        assert!(r.statements.is_empty());
        assert_eq!(
            (r.func.as_deref(), r.arg.as_deref()),
            (Some("check"), Some("x1"))
        );
        assert!(r.lua_chain().starts_with("lua-web-"));
        assert_ne!(
            r.lua_chain(),
            parse_add(&words("ip t c lua script web function check arg x2"))
                .unwrap()
                .lua_chain()
        );
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let err = |s: &str| parse_add(&words(s)).unwrap_err().to_string();
        assert!(err("inet filter").contains("usage"));
        assert!(err("inet filter input tcp dport 80").contains("no `lua script NAME`"));
        assert!(err("inet filter input lua script web counter")
            .contains("statements after `lua script NAME` are not accepted"));
        assert!(err("inet filter input lua script").contains("`script` needs a value"));
        assert!(err("inet filter input lua function f").contains("needs `script NAME`"));
        assert!(err("inet filter input lua script bad/name").contains("script name 'bad/name'"));
        assert!(err("inet filter input lua script a script b").contains("given twice"));
    }
}
