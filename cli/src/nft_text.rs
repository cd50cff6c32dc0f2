//! nft's input language, as far as `lpctl nft` must understand it: where a rule of a command
//! line or of an `-f` file says `lua script NAME [function F] [arg S]`, in which table, and the
//! commands whose output or effect concerns lua rules (`list`, `delete`, `flush`, `replace`).
//! Everything else is nft's to parse; this only tokenizes (words, strings, braces, separators,
//! comments) and follows the nesting of `table { chain { ... } }` blocks.
//!
//! A lua statement becomes `jump lua-…` to a chain of its own (the chain that holds the lua
//! rule, `lpctl rule add`'s), declared in the same table block or command line, so nft applies
//! the text as one transaction; the lua rules go in afterwards (cli/src/nft_cmd.rs). Listings go
//! the other way: `jump lua-…` back to the lua statement, the lua chains left out.

use crate::rule_cmd::{lua_chain_comment, RuleAdd};
use nft_plugin::nft::LuaRule;
use std::collections::HashMap;
use std::fmt;

/// The nft families, as nft's grammar names them (`ip` when a command leaves it out).
const FAMILIES: [&str; 6] = ["ip", "ip6", "inet", "arp", "bridge", "netdev"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Word,
    Str,
    Open,
    Close,
    /// `;` or a newline
    Sep,
}

#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

/// A mistake in the input, with the bytes it is about (for nft's way of pointing at them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextError {
    pub msg: String,
    pub start: usize,
    pub end: usize,
}

impl TextError {
    fn at(t: &Token, msg: impl Into<String>) -> Self {
        TextError {
            msg: msg.into(),
            start: t.start,
            end: t.end,
        }
    }

    /// As nft reports an error: `FILE:LINE:COL-COL: Error: …` (or `Error: …` for a command
    /// line), the line, and carets under the bytes.
    pub fn render(&self, text: &str, file: Option<&str>) -> String {
        let start = self.start.min(text.len());
        let end = self.end.clamp(start, text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = &text[line_start..line_end];
        let col = start - line_start;
        let width = (end.min(line_end) - start).max(1);
        let pad: String = line[..col]
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let head = match file {
            Some(f) => {
                let n = text[..start].matches('\n').count() + 1;
                format!("{f}:{n}:{}-{}: Error: ", col + 1, col + width)
            }
            None => "Error: ".into(),
        };
        format!("{head}{}\n{line}\n{pad}{}", self.msg, "^".repeat(width))
    }
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, TextError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let (kind, end) = match c {
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            // a backslash before a newline joins the lines (nft's scanner does so)
            b'\\' if b.get(i + 1) == Some(&b'\n') => {
                i += 2;
                continue;
            }
            b'\n' | b';' => (Tok::Sep, i + 1),
            b'{' => (Tok::Open, i + 1),
            b'}' => (Tok::Close, i + 1),
            b'"' => match text[i + 1..].find('"') {
                Some(n) => (Tok::Str, i + 1 + n + 1),
                None => {
                    return Err(TextError {
                        msg: "unterminated string".into(),
                        start: i,
                        end: b.len(),
                    })
                }
            },
            _ => {
                let n = b[i..]
                    .iter()
                    .position(|c| b" \t\r\n;{}\"#".contains(c))
                    .unwrap_or(b.len() - i);
                (Tok::Word, i + n)
            }
        };
        out.push(Token {
            kind,
            start: i,
            end,
        });
        i = end;
    }
    Ok(out)
}

/// A `lua script …` statement found in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LuaStmt {
    /// The binding: family, table, the user's chain, script, function, argument.
    pub rule: RuleAdd,
    /// The bytes of `lua script NAME …` (the statement's end, a trailing comment excluded).
    pub start: usize,
    pub end: usize,
    /// Where the text's script name is (for errors about the script).
    pub script_at: (usize, usize),
}

/// What `lpctl nft` needs to know of a text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub lua: Vec<LuaStmt>,
    /// The text has `list` commands (their output is merged).
    pub lists: bool,
    /// The text has commands that may leave a lua chain without a jump to it (`delete`,
    /// `flush`, `replace`): the unused ones are removed afterwards.
    pub removes: bool,
    /// Insertions that declare the lua chains: (offset, text), in offset order.
    inserts: Vec<(usize, String)>,
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    at: usize,
    scan: Scan,
}

/// Where a block's statements are.
#[derive(Clone)]
enum Ctx {
    Top,
    Table {
        family: String,
        table: String,
    },
    Chain {
        family: String,
        table: String,
        chain: String,
    },
}

impl<'a> Parser<'a> {
    fn word(&self, t: &Token) -> &'a str {
        &self.text[t.start..t.end]
    }

    /// A word's or string's value (a string without its quotes).
    fn value(&self, t: &Token) -> &'a str {
        match t.kind {
            Tok::Str => &self.text[t.start + 1..t.end - 1],
            _ => self.word(t),
        }
    }

    /// The next statement: its tokens up to a separator or a brace of the enclosing block.
    /// Braces inside it (sets, maps, a block it opens) are taken whole, up to the matching one,
    /// except when `opens_block` says the statement's first `{` opens a block to parse: then
    /// the statement ends before it.
    fn statement(
        &mut self,
        opens_block: impl Fn(&[&str]) -> bool,
    ) -> Result<Vec<Token>, TextError> {
        let mut st: Vec<Token> = Vec::new();
        let mut depth = 0usize;
        while let Some(t) = self.toks.get(self.at).copied() {
            match t.kind {
                Tok::Sep if depth == 0 => break,
                Tok::Close if depth == 0 => break,
                Tok::Open if depth == 0 => {
                    let words: Vec<&str> = st.iter().map(|t| self.word(t)).collect();
                    if opens_block(&words) {
                        break;
                    }
                    depth += 1;
                }
                Tok::Open => depth += 1,
                Tok::Close => depth -= 1,
                _ => {}
            }
            st.push(t);
            self.at += 1;
        }
        if depth > 0 {
            let t = st.last().copied().unwrap_or(Token {
                kind: Tok::Sep,
                start: self.text.len(),
                end: self.text.len(),
            });
            return Err(TextError::at(&t, "unbalanced '{'"));
        }
        Ok(st)
    }

    fn peek(&self) -> Option<Token> {
        self.toks.get(self.at).copied()
    }

    /// Statements of a block up to its `}` (consumed; None at the top level).
    fn block(&mut self, ctx: Ctx, open: Option<Token>) -> Result<Option<usize>, TextError> {
        loop {
            let Some(t) = self.peek() else {
                return match open {
                    Some(o) => Err(TextError::at(&o, "this '{' is not closed")),
                    None => Ok(None),
                };
            };
            match t.kind {
                Tok::Sep => {
                    self.at += 1;
                    continue;
                }
                Tok::Close => {
                    if open.is_none() {
                        return Err(TextError::at(&t, "'}' without '{'"));
                    }
                    self.at += 1;
                    return Ok(Some(t.start));
                }
                _ => {}
            }
            let st = self.statement(|w| opens(&ctx, w))?;
            if st.is_empty() {
                // a '{' opening a statement: a block of its own (e.g. JSON): taken whole
                let t = self.statement(|_| false)?;
                if t.is_empty() {
                    self.at += 1;
                }
                continue;
            }
            let words: Vec<&str> = st.iter().map(|t| self.word(t)).collect();
            let next_open = self.peek().filter(|t| t.kind == Tok::Open);
            match (&ctx, next_open) {
                (_, Some(o)) => {
                    self.at += 1;
                    let inner = self.inner_ctx(&ctx, &words);
                    let n0 = self.scan.lua.len();
                    let close = self.block(inner.clone().unwrap_or(Ctx::Top), Some(o))?;
                    match (&ctx, inner, close) {
                        // a table block: the lua chains before its `}`
                        (_, Some(Ctx::Table { .. }), Some(close)) => self.declare(n0, close, false),
                        // a chain block of its own: as commands before it
                        (Ctx::Top, Some(Ctx::Chain { .. }), _) => {
                            self.declare(n0, st[0].start, true)
                        }
                        _ => {}
                    }
                }
                (
                    Ctx::Chain {
                        family,
                        table,
                        chain,
                    },
                    None,
                ) => {
                    let (f, t, c) = (family.clone(), table.clone(), chain.clone());
                    self.rule(&st, 0, &f, &t, &c, None)?;
                }
                (Ctx::Top, None) => self.command(&st, &words)?,
                (Ctx::Table { .. }, None) => {}
            }
        }
    }

    /// The context a block opened by this statement has (None: not one that holds rules).
    fn inner_ctx(&self, ctx: &Ctx, words: &[&str]) -> Option<Ctx> {
        let w: Vec<&str> = match words.first() {
            Some(&"add") | Some(&"create") => words[1..].to_vec(),
            _ => words.to_vec(),
        };
        match (ctx, w.as_slice()) {
            (Ctx::Top, ["table", rest @ ..]) => {
                let (family, names) = family_of(rest);
                Some(Ctx::Table {
                    family,
                    table: names.first()?.to_string(),
                })
            }
            (Ctx::Top, ["chain", rest @ ..]) => {
                let (family, names) = family_of(rest);
                Some(Ctx::Chain {
                    family,
                    table: names.first()?.to_string(),
                    chain: names.get(1)?.to_string(),
                })
            }
            (Ctx::Table { family, table }, ["chain", name]) => Some(Ctx::Chain {
                family: family.clone(),
                table: table.clone(),
                chain: name.to_string(),
            }),
            _ => None,
        }
    }

    /// A command at the top level.
    fn command(&mut self, st: &[Token], words: &[&str]) -> Result<(), TextError> {
        match words {
            [verb, "rule", rest @ ..] if matches!(*verb, "add" | "insert" | "replace") => {
                if *verb == "replace" {
                    self.scan.removes = true;
                }
                let skip = usize::from(FAMILIES.contains(&rest.first().copied().unwrap_or("")));
                let (family, names) = family_of(rest);
                let [table, chain, ..] = names else {
                    return Ok(()); // nft's to refuse
                };
                // `handle N`, `position N`, `index N` before the statements
                let mut first = 2 + skip + 2;
                while matches!(words.get(first), Some(&"handle" | &"position" | &"index")) {
                    first += 2;
                }
                let (t, c) = (table.to_string(), chain.to_string());
                self.rule(st, first, &family, &t, &c, Some(st[0].start))
            }
            ["rule", ..] => Ok(()),
            ["list", ..] => {
                self.scan.lists = true;
                Ok(())
            }
            ["delete" | "destroy" | "flush", ..] => {
                self.scan.removes = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A rule's statements, from token `first`: records its lua statement if it has one.
    /// `command_at`: the command's start, for a command line's chain declaration.
    fn rule(
        &mut self,
        st: &[Token],
        first: usize,
        family: &str,
        table: &str,
        chain: &str,
        command_at: Option<usize>,
    ) -> Result<(), TextError> {
        // `lua` outside any braces (a set holding the word is nft's) and followed by one of the
        // statement's keys (`jump lua` names a chain)
        let mut depth = 0usize;
        let mut found = None;
        for (i, t) in st.iter().enumerate() {
            match t.kind {
                Tok::Open => depth += 1,
                Tok::Close => depth = depth.saturating_sub(1),
                Tok::Word
                    if i >= first
                        && depth == 0
                        && self.word(t) == "lua"
                        && st.get(i + 1).is_some_and(|n| {
                            n.kind == Tok::Word
                                && matches!(self.word(n), "script" | "function" | "arg")
                        }) =>
                {
                    found = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(i) = found else {
            return Ok(());
        };
        let lua = st[i];
        let mut j = i + 1;
        let (mut script, mut func, mut arg) = (None, None, None);
        let mut end = lua.end;
        while let Some(k) = st.get(j) {
            let key = self.word(k);
            let slot = match (k.kind, key) {
                (Tok::Word, "script") => &mut script,
                (Tok::Word, "function") => &mut func,
                (Tok::Word, "arg") => &mut arg,
                (Tok::Word, "comment") => break,
                _ => {
                    return Err(TextError::at(
                        k,
                        format!(
                            "unexpected `{key}` in a lua statement: `lua script NAME [function F] [arg S]` ends the rule (a comment may follow)"
                        ),
                    ))
                }
            };
            let Some(v) = st
                .get(j + 1)
                .filter(|v| matches!(v.kind, Tok::Word | Tok::Str))
            else {
                return Err(TextError::at(k, format!("`{key}` needs a value")));
            };
            if slot.is_some() {
                return Err(TextError::at(k, format!("`{key}` given twice")));
            }
            *slot = Some(*v);
            end = v.end;
            j += 2;
        }
        if let Some(c) = st.get(j) {
            // `comment STRING` and nothing after it
            if st.len() != j + 2 || !matches!(st[j + 1].kind, Tok::Str | Tok::Word) {
                return Err(TextError::at(
                    c,
                    "a lua statement may only be followed by `comment \"…\"`",
                ));
            }
        }
        let Some(script) = script else {
            return Err(TextError {
                msg: "`lua` needs `script NAME`".into(),
                start: lua.start,
                end,
            });
        };
        let rule = RuleAdd {
            family: family.to_string(),
            table: table.to_string(),
            chain: chain.to_string(),
            statements: Vec::new(),
            script: self.value(&script).to_string(),
            func: func.map(|t| self.value(&t).to_string()),
            arg: arg.map(|t| self.value(&t).to_string()),
        };
        if let Err(e) = rule.check_binding() {
            return Err(TextError::at(&script, format!("{e:#}")));
        }
        if let Some(at) = command_at {
            self.scan.inserts.push((
                at,
                format!("add chain {family} {table} {}; ", chain_decl(&rule)),
            ));
        }
        self.scan.lua.push(LuaStmt {
            rule,
            start: lua.start,
            end,
            script_at: (script.start, script.end),
        });
        Ok(())
    }

    /// Declares the chains of the lua statements found since the `n0`th, at `at`: inside a
    /// table block (`chain lua-X { … } `) or as commands (`add chain F T lua-X { … }; `).
    fn declare(&mut self, n0: usize, at: usize, as_command: bool) {
        let mut seen = Vec::new();
        let mut decl = String::new();
        for s in &self.scan.lua[n0..] {
            let r = &s.rule;
            if seen.contains(&r.lua_chain()) {
                continue;
            }
            seen.push(r.lua_chain());
            if as_command {
                decl.push_str(&format!(
                    "add chain {} {} {}; ",
                    r.family,
                    r.table,
                    chain_decl(r)
                ));
            } else {
                // separators around it: nft wants one after a block before what follows
                decl.push_str(&format!("; chain {}; ", chain_decl(r)));
            }
        }
        if !decl.is_empty() {
            self.scan.inserts.push((at, decl));
        }
    }
}

/// `lua-X { comment "…"; }`: the chain of a binding.
fn chain_decl(r: &RuleAdd) -> String {
    format!(
        "{} {{ comment \"{}\"; }}",
        r.lua_chain(),
        lua_chain_comment(&r.script)
    )
}

/// Whether a statement in this context opens a block with its `{`.
fn opens(ctx: &Ctx, words: &[&str]) -> bool {
    let w = match words.first() {
        Some(&"add") | Some(&"create") => &words[1..],
        _ => words,
    };
    match ctx {
        Ctx::Top => matches!(w.first(), Some(&"table") | Some(&"chain")),
        Ctx::Table { .. } => matches!(w.first(), Some(&"chain")) && w.len() == 2,
        Ctx::Chain { .. } => false,
    }
}

/// Splits an optional family off the front (nft's default: ip).
fn family_of<'s, 'w>(words: &'s [&'w str]) -> (String, &'s [&'w str]) {
    match words.first() {
        Some(f) if FAMILIES.contains(f) => (f.to_string(), &words[1..]),
        _ => ("ip".to_string(), words),
    }
}

/// Finds the lua statements and the commands that matter in an nft text.
pub fn scan(text: &str) -> Result<Scan, TextError> {
    let mut p = Parser {
        text,
        toks: tokenize(text)?,
        at: 0,
        scan: Scan::default(),
    };
    p.block(Ctx::Top, None)?;
    p.scan.inserts.sort_by_key(|(at, _)| *at);
    Ok(p.scan)
}

impl Scan {
    /// The text nft can read: each lua statement a `jump` to its chain, the chains declared.
    pub fn rewrite(&self, text: &str) -> String {
        let mut edits: Vec<(usize, usize, String)> = self
            .lua
            .iter()
            .map(|s| (s.start, s.end, format!("jump {}", s.rule.lua_chain())))
            .chain(self.inserts.iter().map(|(at, s)| (*at, *at, s.clone())))
            .collect();
        edits.sort_by_key(|(s, _, _)| *s);
        let mut out = String::with_capacity(text.len() + 64);
        let mut at = 0;
        for (s, e, with) in edits {
            out.push_str(&text[at..s]);
            out.push_str(&with);
            at = e;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// The lua statement of a binding, as nft would print it.
pub fn lua_statement(r: &LuaRule) -> String {
    let mut s = format!("lua script {}", r.script);
    if let Some(f) = &r.func {
        s.push_str(&format!(" function {}", quoted_if_needed(f)));
    }
    if let Some(a) = &r.arg {
        s.push_str(&format!(" arg \"{a}\""));
    }
    s
}

fn quoted_if_needed(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        s.to_string()
    } else {
        format!("\"{s}\"")
    }
}

type ChainKey = (String, String, String);

fn by_chain(rules: &[LuaRule]) -> HashMap<ChainKey, &LuaRule> {
    rules
        .iter()
        .filter(|r| r.chain.starts_with("lua-"))
        .map(|r| ((r.family.to_string(), r.table.clone(), r.chain.clone()), r))
        .collect()
}

/// nft's text listing with the lua rules in place: a rule's final `jump lua-X` (a comment may
/// follow) shown as the lua statement, and the lua chains nothing else refers to left out (a
/// jump in a map, a goto keep theirs, as nft printed them).
pub fn merge_listing(text: &str, rules: &[LuaRule]) -> String {
    let chains = by_chain(rules);
    // pass 1: each line's table and chain block, with its jumps replaced
    let (mut family, mut table) = (String::new(), String::new());
    let mut block: Option<ChainKey> = None;
    // (line, its table, the lua chain block it is in)
    let mut lines: Vec<(String, (String, String), Option<ChainKey>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        match words.as_slice() {
            ["table", f, n, "{", ..] if FAMILIES.contains(f) => {
                family = f.to_string();
                table = n.to_string();
            }
            ["chain", n, "{", ..] => {
                let key = (family.clone(), table.clone(), n.to_string());
                block = chains.contains_key(&key).then_some(key);
            }
            _ => {}
        }
        let own = block.clone();
        if t == "}" && line.starts_with("\t}") && !line.starts_with("\t\t") {
            block = None;
        }
        lines.push((
            replace_jump(line, &family, &table, &chains),
            (family.clone(), table.clone()),
            own,
        ));
    }
    // pass 2: the lua chains still named outside their own block
    let referenced = |key: &ChainKey| {
        lines.iter().any(|(l, (f, t), own)| {
            own.as_ref() != Some(key)
                && (f, t) == (&key.0, &key.1)
                && !l.trim_start().starts_with("chain ")
                && l.match_indices(key.2.as_str()).any(|(at, _)| {
                    let before = l[..at].chars().next_back();
                    let after = l[at + key.2.len()..].chars().next();
                    !before.is_some_and(|c| c.is_alphanumeric() || "-_.".contains(c))
                        && !after.is_some_and(|c| c.is_alphanumeric() || "-_.".contains(c))
                })
        })
    };
    let hidden: Vec<ChainKey> = chains.keys().filter(|k| !referenced(k)).cloned().collect();
    // pass 3: out, the hidden chains' blocks (and the blank line before each) left out
    let mut out: Vec<&str> = Vec::new();
    let mut after_hidden = false;
    for (l, _, own) in &lines {
        if own.as_ref().is_some_and(|k| hidden.contains(k)) {
            if out.last().is_some_and(|p| p.trim().is_empty()) {
                out.pop();
            }
            after_hidden = true;
            continue;
        }
        if after_hidden
            && l.trim().is_empty()
            && out.last().is_some_and(|p| p.trim_end().ends_with('{'))
        {
            after_hidden = false;
            continue;
        }
        after_hidden = false;
        out.push(l);
    }
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// A rule's final `jump lua-X` (outside any braces; only a comment or nft's `# handle` may
/// follow) as the lua statement of X.
fn replace_jump(
    line: &str,
    family: &str,
    table: &str,
    chains: &HashMap<ChainKey, &LuaRule>,
) -> String {
    let Some(at) = line.rfind("jump lua-") else {
        return line.to_string();
    };
    let before = &line[..at];
    if before.matches('{').count() != before.matches('}').count()
        || !(before.is_empty() || before.ends_with([' ', '\t']))
    {
        return line.to_string();
    }
    let name_start = at + "jump ".len();
    let name_end = line[name_start..]
        .find([' ', '\t'])
        .map_or(line.len(), |n| name_start + n);
    let rest = line[name_end..].trim_start();
    if !(rest.is_empty() || rest.starts_with("comment ") || rest.starts_with('#')) {
        return line.to_string();
    }
    let key = (
        family.to_string(),
        table.to_string(),
        line[name_start..name_end].to_string(),
    );
    match chains.get(&key) {
        Some(r) => format!("{before}{}{}", lua_statement(r), &line[name_end..]),
        None => line.to_string(),
    }
}

/// nft's JSON listing with the lua rules in place: `{"jump": {"target": "lua-X"}}` shown as
/// `{"lua": {"script": …, "function": …, "arg": …}}`, the lua chains left out.
pub fn merge_json(v: &mut serde_json::Value, rules: &[LuaRule]) {
    let chains = by_chain(rules);
    let Some(items) = v.get_mut("nftables").and_then(|n| n.as_array_mut()) else {
        return;
    };
    let key = |o: &serde_json::Value, name: &str| -> Option<ChainKey> {
        Some((
            o.get("family")?.as_str()?.to_string(),
            o.get("table")?.as_str()?.to_string(),
            o.get(name)?.as_str()?.to_string(),
        ))
    };
    for item in items.iter_mut() {
        let Some(rule) = item.get_mut("rule") else {
            continue;
        };
        let (Some(f), Some(t)) = (
            rule.get("family")
                .and_then(|x| x.as_str())
                .map(str::to_string),
            rule.get("table")
                .and_then(|x| x.as_str())
                .map(str::to_string),
        ) else {
            continue;
        };
        // the rule's final statement only (a jump in a map or a goto stays nft's)
        let Some(e) = rule
            .get_mut("expr")
            .and_then(|e| e.as_array_mut())
            .and_then(|e| e.last_mut())
        else {
            continue;
        };
        let Some(target) = e.pointer("/jump/target").and_then(|t| t.as_str()) else {
            continue;
        };
        if let Some(r) = chains.get(&(f.clone(), t.clone(), target.to_string())) {
            let mut lua = serde_json::json!({ "script": r.script });
            if let Some(func) = &r.func {
                lua["function"] = func.clone().into();
            }
            if let Some(arg) = &r.arg {
                lua["arg"] = arg.clone().into();
            }
            *e = serde_json::json!({ "lua": lua });
        }
    }
    // the lua chains nothing names any more
    let text = serde_json::to_string(&*items).unwrap_or_default();
    items.retain(|item| match item.get("chain") {
        Some(c) => key(c, "name").is_none_or(|k| {
            !chains.contains_key(&k) || text.contains(&format!("\"target\":\"{}\"", k.2))
        }),
        None => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use nft_plugin::nft::Family;

    fn lua_rule(
        family: Family,
        table: &str,
        chain: &str,
        script: &str,
        arg: Option<&str>,
    ) -> LuaRule {
        LuaRule {
            family,
            table: table.into(),
            chain: chain.into(),
            handle: 3,
            script: script.into(),
            func: None,
            arg: arg.map(str::to_string),
        }
    }

    #[test]
    fn a_command_line_rule_becomes_a_jump_and_its_chain() {
        let text = "add rule inet filter input tcp dport { 80, 443 } counter lua script web";
        let s = scan(text).unwrap();
        assert_eq!(s.lua.len(), 1);
        let r = &s.lua[0].rule;
        assert_eq!(
            (r.family.as_str(), r.table.as_str(), r.chain.as_str()),
            ("inet", "filter", "input")
        );
        assert_eq!(r.script, "web");
        assert_eq!(&text[s.lua[0].script_at.0..s.lua[0].script_at.1], "web");
        assert_eq!(
            s.rewrite(text),
            "add chain inet filter lua-web { comment \"lua rule: script web (lpctl nft list shows it)\"; }; \
             add rule inet filter input tcp dport { 80, 443 } counter jump lua-web"
        );
        // the family defaults to ip, as in nft; handle/position words are skipped
        let s =
            scan("insert rule t c position 4 lua script x function f arg \"a b\" comment \"hi\"")
                .unwrap();
        let r = &s.lua[0].rule;
        assert_eq!(
            (r.family.as_str(), r.table.as_str(), r.chain.as_str()),
            ("ip", "t", "c")
        );
        assert_eq!(
            (r.func.as_deref(), r.arg.as_deref()),
            (Some("f"), Some("a b"))
        );
        assert!(s
            .rewrite(
                "insert rule t c position 4 lua script x function f arg \"a b\" comment \"hi\""
            )
            .ends_with(&format!("position 4 jump {} comment \"hi\"", r.lua_chain())));
    }

    #[test]
    fn a_file_is_followed_through_its_blocks() {
        let text = "flush ruleset\n\
            define ports = { 80, 443 }\n\
            table inet filter { # handle 1\n\
            \tset s {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1,\n\t\t\t10.0.0.2 }\n\t}\n\
            \tchain input {\n\
            \t\ttype filter hook input priority filter; policy accept;\n\
            \t\tip saddr @s tcp dport $ports lua script web\n\
            \t\tudp dport 53 lua script dns arg \"x\" comment \"c\" # handle 7\n\
            \t\tcounter\n\
            \t}\n\
            }\n\
            table ip t2 { chain c { lua script web; }; }\n\
            add rule ip6 t3 c tcp dport 1 accept\n";
        let s = scan(text).unwrap();
        assert!(s.removes && !s.lists);
        let got: Vec<_> = s
            .lua
            .iter()
            .map(|l| {
                format!(
                    "{} {} {} {}",
                    l.rule.family, l.rule.table, l.rule.chain, l.rule.script
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "inet filter input web",
                "inet filter input dns",
                "ip t2 c web"
            ]
        );
        let out = s.rewrite(text);
        assert!(out.contains("tcp dport $ports jump lua-web\n"));
        assert!(out.contains(&format!(
            "udp dport 53 jump {} comment \"c\" # handle 7",
            s.lua[1].rule.lua_chain()
        )));
        // declared before each table's closing brace, on the same line (nft's line numbers hold)
        assert_eq!(out.lines().count(), text.lines().count());
        assert!(out.contains("chain lua-web { comment"));
        assert!(out.contains("table ip t2 { chain c { jump lua-web; }; ; chain lua-web { comment"));
        // nothing rewritten in a text without lua statements
        let plain = "table inet x { chain y { tcp dport 22 accept } }";
        assert_eq!(scan(plain).unwrap().rewrite(plain), plain);
    }

    #[test]
    fn mistakes_are_pointed_at() {
        let e = |t: &str| scan(t).unwrap_err();
        let t = "add rule inet f c tcp dport 80 lua script";
        let err = e(t);
        assert_eq!(err.msg, "`script` needs a value");
        assert_eq!(
            err.render(t, None),
            format!(
                "Error: `script` needs a value\n{t}\n{}^^^^^^",
                " ".repeat(35)
            )
        );
        let t = "table inet f {\n\tchain c {\n\t\tlua function f\n\t}\n}\n";
        let err = e(t);
        assert!(err.render(t, Some("r.nft")).starts_with(
            "r.nft:3:3-16: Error: `lua` needs `script NAME`\n\t\tlua function f\n\t\t^^^^"
        ));
        assert!(e("add rule ip t c lua script a counter")
            .msg
            .contains("unexpected `counter`"));
        assert!(e("add rule ip t c lua script a script b")
            .msg
            .contains("given twice"));
        assert!(e("add rule ip t c lua script bad/name")
            .msg
            .contains("script name 'bad/name'"));
        assert!(e("add rule ip t c lua script a comment \"x\" accept")
            .msg
            .contains("only be followed by"));
        assert!(e("table ip t { chain c { lua script a }")
            .msg
            .contains("not closed"));
        assert!(e("add rule ip t c comment \"x")
            .msg
            .contains("unterminated"));
    }

    #[test]
    fn listings_show_the_lua_rules_in_place() {
        let listing = "table inet filter { # handle 1\n\
            \tchain input { # handle 1\n\
            \t\ttype filter hook input priority filter; policy accept;\n\
            \t\ttcp dport 80 counter packets 0 bytes 0 jump lua-web # handle 4\n\
            \t\tudp dport 53 jump lua-web-1a84db30 comment \"c\"\n\
            \t\tudp dport 54 jump lua-other\n\
            \t}\n\
            \n\
            \tchain lua-web { # handle 2\n\
            \t\tcomment \"lua rule: script web\"\n\
            \t}\n\
            \n\
            \tchain lua-web-1a84db30 { # handle 5\n\
            \t\tcomment \"lua rule: script web\"\n\
            \t}\n\
            }\n\
            table ip filter {\n\
            \tchain lua-web {\n\
            \t}\n\
            }\n";
        let rules = [
            lua_rule(Family::Inet, "filter", "lua-web", "web", None),
            lua_rule(
                Family::Inet,
                "filter",
                "lua-web-1a84db30",
                "web",
                Some("x y"),
            ),
        ];
        let got = merge_listing(listing, &rules);
        assert_eq!(
            got,
            "table inet filter { # handle 1\n\
            \tchain input { # handle 1\n\
            \t\ttype filter hook input priority filter; policy accept;\n\
            \t\ttcp dport 80 counter packets 0 bytes 0 lua script web # handle 4\n\
            \t\tudp dport 53 lua script web arg \"x y\" comment \"c\"\n\
            \t\tudp dport 54 jump lua-other\n\
            \t}\n\
            }\n\
            table ip filter {\n\
            \tchain lua-web {\n\
            \t}\n\
            }\n"
        );
        // and the merged text reads back to the same bindings
        let s = scan(&got).unwrap();
        assert_eq!(s.lua.len(), 2);
        assert_eq!(s.lua[1].rule.arg.as_deref(), Some("x y"));
        assert_eq!(
            s.lua[1].rule.lua_chain(),
            RuleAdd {
                arg: Some("x y".into()),
                ..s.lua[0].rule.clone()
            }
            .lua_chain()
        );
    }

    #[test]
    fn jumps_in_maps_gotos_and_the_word_lua_stay_nfts() {
        let rules = [lua_rule(Family::Inet, "t", "lua-a", "a", None)];
        let listing = "table inet t {\n\tchain c {\n\t\ttcp dport vmap { 80 : jump lua-a, 443 : accept }\n\t\tudp dport 1 goto lua-a\n\t\tudp dport 2 jump lua-a\n\t}\n\n\tchain lua-a {\n\t\tcomment \"x\"\n\t}\n}\n";
        let got = merge_listing(listing, &rules);
        // the rule's final jump only; the chain stays, other statements still name it
        assert!(
            got.contains("vmap { 80 : jump lua-a, 443 : accept }"),
            "{got}"
        );
        assert!(
            got.contains("goto lua-a") && got.contains("udp dport 2 lua script a"),
            "{got}"
        );
        assert!(got.contains("chain lua-a {"), "{got}");
        // `lua` as a chain name or a set element is not a lua statement
        for t in [
            "add rule ip t c jump lua",
            "add rule ip t c iifname { eth0, lua } accept",
        ] {
            let s = scan(t).unwrap();
            assert!(s.lua.is_empty(), "{t}");
            assert_eq!(s.rewrite(t), t);
        }
        // what a listing cannot carry is refused up front
        assert!(scan("add rule ip t c lua script a arg \"x\\\"y\"").is_err());
        let e = scan("add rule ip t c lua script a function \"f\tg\"").unwrap_err();
        assert!(e.msg.contains("control character"), "{}", e.msg);
    }

    /// Any text, however broken: an error or a scan, never a panic (the offsets it keeps and
    /// renders stay on character boundaries).
    #[test]
    fn random_text_never_panics() {
        const PIECES: &[&str] = &[
            "add", "rule", "table", "chain", "inet", "t", "c", "lua", "script", "function", "arg",
            "comment", "{", "}", ";", "\n", "\"", "\"x y\"", "#", "\\\n", " ", "\t", "jump", "é",
            "·", "list", "delete", "a/b",
        ];
        let mut seed = 0x6c70_6e66_7431u64;
        for _ in 0..5000 {
            let mut text = String::new();
            let n = (seed % 24) as usize;
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(PIECES[(seed % PIECES.len() as u64) as usize]);
            }
            match scan(&text) {
                Ok(s) => {
                    let _ = s.rewrite(&text);
                }
                Err(e) => {
                    let _ = e.render(&text, Some("f"));
                    let _ = e.render(&text, None);
                }
            }
        }
    }

    #[test]
    fn json_listings_too() {
        let mut v: serde_json::Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "inet", "name": "filter", "handle": 1}},
            {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1}},
            {"chain": {"family": "inet", "table": "filter", "name": "lua-web", "handle": 2}},
            {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4, "expr": [
              {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
              {"jump": {"target": "lua-web"}}]}}]}"#,
        )
        .unwrap();
        merge_json(
            &mut v,
            &[lua_rule(
                Family::Inet,
                "filter",
                "lua-web",
                "web",
                Some("a"),
            )],
        );
        let items = v["nftables"].as_array().unwrap();
        assert_eq!(items.len(), 4);
        assert!(!items
            .iter()
            .any(|i| i.pointer("/chain/name").and_then(|n| n.as_str()) == Some("lua-web")));
        assert_eq!(
            items[3]["rule"]["expr"][1],
            serde_json::json!({"lua": {"script": "web", "arg": "a"}})
        );
    }
}
