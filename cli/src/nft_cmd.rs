//! `lpctl nft …`: stock nft, plus the `lua script NAME [function F] [arg S]` statement.
//!
//! Everything goes to the real `nft` (LPCTL_NFT names another binary). A text with lua
//! statements (a command line or an `-f` file) is handed to nft rewritten, each lua statement a
//! `jump` to a chain that holds the lua rule (cli/src/nft_text.rs), in one nft transaction after
//! a dry run (`nft -c`) and a check that the scripts are loaded; the lua rules then go into their
//! chains in one netlink batch. Should that fail, the ruleset is put back as it was before.
//! `list` output shows the lua rules in place (text and `-j`); after `delete`, `flush` or
//! `replace`, the lua chains nothing jumps to any more are removed.

use crate::nft_text::{self, Scan, TextError};
use anyhow::{bail, Context, Result};
use nft_plugin::luapkt::Luapkt;
use nft_plugin::nft::{Batch, Family, LuaRule, Nftables};
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};

pub const HELP: &str = "\
lpctl nft [NFT OPTIONS] COMMAND... | -f FILE

Runs the real nft (or $LPCTL_NFT) with the same options and commands, and understands
one more statement, anywhere a rule's statement may stand:

  lua script NAME [function F] [arg S]

It must end the rule (a comment may follow). The script must be loaded (lpctl script
load). Listings (list ruleset|table|chain, also with -a, -j) show lua rules in place;
delete rule ... handle N works on them. With `alias nft='lpctl nft'` the card's syntax
works as typed. Stock nft shows a lua rule as a jump to a chain lua-NAME of its own.

Examples:
  lpctl nft add rule inet filter input tcp dport 80 lua script web
  lpctl nft -a list chain inet filter input
  lpctl nft list ruleset > rules.nft; lpctl nft flush ruleset; lpctl nft -f rules.nft

nft's own help follows.
";

/// nft's options, as nft reads them (before the commands), and what follows.
#[derive(Debug, Default, PartialEq, Eq)]
struct NftArgs {
    /// The options to pass on (without `-f FILE`).
    opts: Vec<String>,
    file: Option<String>,
    words: Vec<String>,
    json: bool,
    check: bool,
    /// -h, -v, -i: nft's business alone.
    own: bool,
    help: bool,
}

/// nft's short options that take a value (nft 1.0: file, define, includepath, debug).
const WITH_VALUE: &[char] = &['f', 'D', 'I', 'd'];

fn parse_args(args: &[String]) -> Result<NftArgs> {
    let mut a = NftArgs::default();
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        if arg == "--" {
            a.words.extend(it.by_ref().cloned());
            break;
        }
        if !arg.starts_with('-') || arg == "-" || arg.len() < 2 {
            a.words.push(arg.clone());
            a.words.extend(it.by_ref().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let takes = matches!(name, "file" | "define" | "includepath" | "debug");
            let value = if takes {
                match inline {
                    Some(v) => Some(v),
                    None => Some(
                        it.next()
                            .cloned()
                            .with_context(|| format!("--{name} needs a value"))?,
                    ),
                }
            } else {
                None
            };
            match name {
                "file" => a.file = value.clone(),
                "json" => a.json = true,
                "check" => a.check = true,
                "help" => a.help = true,
                "version" | "interactive" => a.own = true,
                _ => {}
            }
            if name != "file" {
                a.opts.push(format!("--{name}"));
                if let Some(v) = value {
                    a.opts.push(v);
                }
            }
            continue;
        }
        // bundled short options: -aj, -fFILE, -f FILE
        let flags: Vec<char> = arg[1..].chars().collect();
        for (i, c) in flags.iter().enumerate() {
            if WITH_VALUE.contains(c) {
                let rest: String = flags[i + 1..].iter().collect();
                let value = if rest.is_empty() {
                    it.next()
                        .cloned()
                        .with_context(|| format!("-{c} needs a value"))?
                } else {
                    rest
                };
                if *c == 'f' {
                    a.file = Some(value);
                } else {
                    a.opts.push(format!("-{c}"));
                    a.opts.push(value);
                }
                break;
            }
            match c {
                'j' => a.json = true,
                'c' => a.check = true,
                'h' => a.help = true,
                'v' | 'V' | 'i' => a.own = true,
                _ => {}
            }
            a.opts.push(format!("-{c}"));
        }
    }
    Ok(a)
}

/// The nft lpctl runs (`LPCTL_NFT` names another).
pub(crate) fn nft_binary() -> String {
    std::env::var("LPCTL_NFT").unwrap_or_else(|_| "nft".into())
}

/// What nft reads its commands from.
enum Input<'a> {
    /// The command line (nft joins its words with spaces, as we did).
    Words(&'a str),
    /// A file's text, fed on stdin; errors name `name`, not /dev/stdin.
    File { text: &'a str, name: &'a str },
}

struct NftOut {
    ok: bool,
    code: u8,
    stdout: String,
}

/// Runs nft with `opts` (and `extra`) on `input`; its stderr is passed on (a file's name put
/// back in its messages), its stdout captured.
fn run_nft(opts: &[String], extra: &[&str], input: &Input<'_>) -> Result<NftOut> {
    let mut cmd = Command::new(nft_binary());
    cmd.args(opts).args(extra);
    match input {
        Input::Words(text) => {
            cmd.arg(text).stdin(Stdio::null());
        }
        Input::File { .. } => {
            cmd.args(["-f", "/dev/stdin"]).stdin(Stdio::piped());
        }
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", nft_binary()))?;
    if let Input::File { text, .. } = input {
        let mut stdin = child.stdin.take().context("nft's stdin")?;
        // a write error means nft stopped reading: its status says why
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().context("waiting for nft")?;
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Input::File { name, .. } = input {
        err = err.replace("/dev/stdin:", &format!("{name}:"));
    }
    eprint!("{err}");
    Ok(NftOut {
        ok: out.status.success(),
        code: out.status.code().map_or(1, |c| c.clamp(1, 255) as u8),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

/// Hands the whole command line to nft as it is.
fn exec(args: &[String]) -> ExitCode {
    match Command::new(nft_binary()).args(args).status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().map_or(1, |c| c.clamp(1, 255) as u8)),
        Err(e) => {
            eprintln!("Error: cannot run {}: {e}", nft_binary());
            ExitCode::FAILURE
        }
    }
}

pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let a = parse_args(args)?;
    if a.help {
        println!("{HELP}");
        let _ = std::io::stdout().flush();
        return Ok(exec(&["-h".to_string()]));
    }
    if a.own || (a.file.is_none() && a.words.is_empty()) {
        return Ok(exec(args));
    }
    let (text, name) = match &a.file {
        Some(f) if f == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading stdin")?;
            (s, "/dev/stdin".to_string())
        }
        Some(f) => (
            std::fs::read_to_string(f).with_context(|| format!("Could not open file \"{f}\""))?,
            f.clone(),
        ),
        None => (a.words.join(" "), String::new()),
    };
    let file = a.file.as_ref().map(|_| name.as_str());
    // JSON input (`-j -f`) is nft's alone: the lua statement is nft's text syntax
    let json_input = a.file.is_some() && (a.json || text.trim_start().starts_with('{'));
    let scan = if json_input {
        Scan::default()
    } else {
        match nft_text::scan(&text) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}", e.render(&text, file));
                return Ok(ExitCode::FAILURE);
            }
        }
    };
    if scan.lua.is_empty() && !scan.lists && !scan.removes {
        let Some(name) = file else {
            return Ok(exec(args));
        };
        if std::path::Path::new(name).is_file() {
            return Ok(exec(args));
        }
        // stdin or a pipe, read already (it cannot be read twice): nft gets the text read
        let out = run_nft(&a.opts, &[], &Input::File { text: &text, name })?;
        print!("{}", out.stdout);
        return Ok(if out.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(out.code)
        });
    }
    let code = if scan.lua.is_empty() {
        let input = match file {
            Some(name) => Input::File { text: &text, name },
            None => Input::Words(&text),
        };
        let out = run_nft(&a.opts, &[], &input)?;
        print_output(&out.stdout, &a);
        if !out.ok {
            return Ok(ExitCode::from(out.code));
        }
        0
    } else {
        apply(&a, &text, file, &scan)?
    };
    if scan.removes && !a.check {
        remove_unused_lua_chains();
    }
    Ok(ExitCode::from(code))
}

/// A text with lua statements: checked, applied by nft, then the lua rules added.
fn apply(a: &NftArgs, text: &str, file: Option<&str>, scan: &Scan) -> Result<u8> {
    let loaded: Vec<String> = Luapkt::open()
        .and_then(|mut l| l.list())
        .context("the loaded scripts (is nft_lua loaded?)")?
        .into_iter()
        .map(|s| s.name)
        .collect();
    if let Some(s) = scan.lua.iter().find(|s| !loaded.contains(&s.rule.script)) {
        let e = TextError {
            msg: format!(
                "no script '{}' is loaded in this network namespace (lpctl script load FILE --name {})",
                s.rule.script, s.rule.script
            ),
            start: s.script_at.0,
            end: s.script_at.1,
        };
        eprintln!("{}", e.render(text, file));
        return Ok(1);
    }
    let rewritten = scan.rewrite(text);
    let input = match file {
        Some(name) => Input::File {
            text: &rewritten,
            name,
        },
        None => Input::Words(&rewritten),
    };
    // the dry run (all the user asked for with -c): nothing is applied unless nft takes all
    let dry = run_nft(&a.opts, if a.check { &[] } else { &["-c"] }, &input)?;
    if !dry.ok || a.check {
        return Ok(if dry.ok { 0 } else { dry.code });
    }
    let before = Snapshot::take()?;
    let out = run_nft(&a.opts, &[], &input)?;
    if !out.ok {
        print_output(&out.stdout, a);
        return Ok(out.code);
    }
    if let Err(e) = add_lua_rules(scan) {
        eprintln!("Error: the lua rules: {e:#}; {}", put_back(&before));
        return Ok(1);
    }
    print_output(&out.stdout, a);
    Ok(0)
}

/// Puts the ruleset back as it was, and says so (or why not).
fn put_back(before: &Snapshot) -> String {
    match before.restore() {
        Ok(()) => "the ruleset was put back as it was".to_string(),
        Err(u) => format!("putting the ruleset back failed too: {u:#}"),
    }
}

/// nft's dry run (`-c`) of a file's text (a rewritten one: no lua statements); nft's errors
/// name the file `name`.
pub(crate) fn dry_run(text: &str, name: &str) -> Result<()> {
    let out = run_nft(&[], &["-c"], &Input::File { text, name })?;
    if !out.ok {
        bail!("{name}: nft refused it (above); nothing was changed");
    }
    Ok(())
}

/// Applies a file's rewritten text in one nft transaction (refused: nothing changed).
pub(crate) fn apply_nft(text: &str, name: &str) -> Result<()> {
    let out = run_nft(&[], &[], &Input::File { text, name })?;
    if !out.ok {
        bail!("{name}: nft refused it (above)");
    }
    Ok(())
}

/// `lpctl nft list ruleset`'s text: nft's listing with the lua rules in place.
pub(crate) fn merged_ruleset() -> Result<String> {
    let out = run_nft(&[], &[], &Input::Words("list ruleset"))?;
    if !out.ok {
        bail!("nft list ruleset failed");
    }
    let rules = Nftables::open()?.list_lua_rules(None, None, None)?;
    Ok(nft_text::merge_listing(&out.stdout, &rules))
}

/// Each lua statement's rule in its chain, unless it holds it already; one batch.
pub(crate) fn add_lua_rules(scan: &Scan) -> Result<()> {
    let mut nf = Nftables::open()?;
    let have = nf.list_lua_rules(None, None, None)?;
    let mut b = Batch::new();
    let mut added: Vec<(Family, String, String)> = Vec::new();
    for s in &scan.lua {
        let r = &s.rule;
        let family: Family = r.family.parse()?;
        let chain = r.lua_chain();
        let key = (family, r.table.clone(), chain.clone());
        let present = have
            .iter()
            .any(|h| h.family == family && h.table == r.table && h.chain == chain);
        if present || added.contains(&key) {
            continue;
        }
        b.add_rule(family, r.table.clone(), chain, r.expr());
        added.push(key);
    }
    if !b.is_empty() {
        nf.commit(&b)?;
    }
    Ok(())
}

/// The ruleset as stock nft lists it (lua chains empty) and the lua rules in it.
pub(crate) struct Snapshot {
    listing: String,
    lua: Vec<LuaRule>,
}

impl Snapshot {
    pub(crate) fn take() -> Result<Self> {
        let out = run_nft(&[], &[], &Input::Words("list ruleset"))?;
        if !out.ok {
            bail!("nft list ruleset failed");
        }
        Ok(Snapshot {
            listing: out.stdout,
            lua: Nftables::open()?.list_lua_rules(None, None, None)?,
        })
    }

    /// The ruleset as it was: nft's part in one transaction, then the lua rules.
    pub(crate) fn restore(&self) -> Result<()> {
        let text = format!("flush ruleset\n{}", self.listing);
        let out = run_nft(
            &[],
            &[],
            &Input::File {
                text: &text,
                name: "(the ruleset before)",
            },
        )?;
        if !out.ok {
            bail!("nft refused the earlier ruleset");
        }
        let mut b = Batch::new();
        for r in &self.lua {
            let mut e = nft_plugin::nft::LuaExpr::new(r.script.clone());
            e.func = r.func.clone();
            e.arg = r.arg.clone();
            b.add_rule(r.family, r.table.clone(), r.chain.clone(), e);
        }
        if !b.is_empty() {
            Nftables::open()?.commit(&b)?;
        }
        Ok(())
    }
}

/// Deletes the lua chains no rule jumps to any more (the kernel refuses the others: EBUSY).
fn remove_unused_lua_chains() {
    let Ok(mut nf) = Nftables::open() else {
        return;
    };
    let Ok(rules) = nf.list_lua_rules(None, None, None) else {
        return;
    };
    for r in rules.iter().filter(|r| r.chain.starts_with("lua-")) {
        let mut b = Batch::new();
        b.delete_chain(r.family, r.table.clone(), r.chain.clone());
        let _ = nf.commit(&b);
    }
}

/// nft's standard output, listings with the lua rules in place.
fn print_output(stdout: &str, a: &NftArgs) {
    if stdout.is_empty() {
        return;
    }
    let rules = match Nftables::open().and_then(|mut nf| nf.list_lua_rules(None, None, None)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Warning: the lua rules cannot be listed ({e}); nft's output as it is");
            print!("{stdout}");
            return;
        }
    };
    if a.json {
        let docs: Result<Vec<serde_json::Value>, _> = serde_json::Deserializer::from_str(stdout)
            .into_iter()
            .collect();
        if let Ok(docs) = docs {
            for mut d in docs {
                nft_text::merge_json(&mut d, &rules);
                println!("{d}");
            }
            return;
        }
    }
    print!("{}", nft_text::merge_listing(stdout, &rules));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn nft_options_are_read_as_nft_reads_them() {
        let a = parse_args(&args("-a -j list ruleset")).unwrap();
        assert_eq!(a.opts, args("-a -j"));
        assert!(a.json && !a.check);
        assert_eq!(a.words, args("list ruleset"));
        let a = parse_args(&args("-cf rules.nft")).unwrap();
        assert_eq!((a.file.as_deref(), a.check), (Some("rules.nft"), true));
        assert_eq!(a.opts, args("-c"));
        let a = parse_args(&args("-I /etc/nft --file=x.nft -D x=1")).unwrap();
        assert_eq!(a.file.as_deref(), Some("x.nft"));
        assert_eq!(a.opts, args("-I /etc/nft -D x=1"));
        // the commands start at the first word; what follows is theirs (`-1` is a value)
        let a = parse_args(&args("add rule ip t c meta mark -1 accept")).unwrap();
        assert!(a.opts.is_empty());
        assert_eq!(a.words.len(), 9);
        assert!(parse_args(&args("-v")).unwrap().own);
        assert!(parse_args(&args("-f")).is_err());
    }
}
