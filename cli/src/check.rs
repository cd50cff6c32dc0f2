//! `lpctl script check FILE`: what can be found before a script runs. Its syntax (full_moon's
//! Lua 5.4 parser, for the column), reads of globals neither the sandbox (cli/src/lua_api.rs)
//! nor the script defines, fields the packet, its protocol classes or `lp` do not have (on the
//! entry function's first parameter, any parameter named `pkt`, and locals taken from them:
//! `local tcp = pkt.tcp`), and then the real test: the script loaded in the sandbox offline,
//! its top-level chunk run and each entry function bound (a missing one is an error there).

use crate::engine::{self, Config, Kind};
use crate::lua_api::{self, Class, Field};
use full_moon::ast::{
    self, Block, Call, Expression, FunctionArgs, FunctionBody, Index, LastStmt, Parameter, Prefix,
    Stmt, Suffix, Var,
};
use full_moon::tokenizer::TokenReference;
use full_moon::LuaVersion;
use serde::Serialize;
use std::collections::HashSet;

/// One thing found, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// What a name or expression is known to be.
#[derive(Clone, Copy)]
enum Ty {
    Unknown,
    Pkt,
    Class(&'static Class),
    Lp,
}

struct Local {
    name: String,
    ty: Ty,
}

struct Checker {
    findings: Vec<Finding>,
    scopes: Vec<Vec<Local>>,
    /// Names the script assigns as globals (anywhere).
    defined: HashSet<String>,
    /// Reads of globals, in order.
    reads: Vec<(String, usize, usize)>,
    entries: Vec<String>,
}

fn name_of(t: &TokenReference) -> String {
    t.token().to_string()
}

fn pos(t: &TokenReference) -> (usize, usize) {
    let p = t.token().start_position();
    (p.line(), p.character())
}

impl Checker {
    fn find(&mut self, t: &TokenReference, message: String) {
        let (line, column) = pos(t);
        self.findings.push(Finding {
            line,
            column,
            message,
        });
    }

    fn declare(&mut self, name: String, ty: Ty) {
        if let Some(s) = self.scopes.last_mut() {
            s.push(Local { name, ty });
        }
    }

    fn local(&self, name: &str) -> Option<&Local> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|l| l.name == name)
    }

    fn scoped(&mut self, f: impl FnOnce(&mut Self)) {
        self.scopes.push(Vec::new());
        f(self);
        self.scopes.pop();
    }

    fn block(&mut self, b: &Block) {
        for s in b.stmts() {
            self.stmt(s);
        }
        if let Some(LastStmt::Return(r)) = b.last_stmt() {
            for e in r.returns().iter() {
                self.expr(e);
            }
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Assignment(a) => {
                for e in a.expressions().iter() {
                    self.expr(e);
                }
                for v in a.variables().iter() {
                    self.var(v, true);
                }
            }
            Stmt::LocalAssignment(a) => {
                let exprs: Vec<&Expression> = a.expressions().iter().collect();
                let tys: Vec<Ty> = exprs.iter().map(|e| self.expr(e)).collect();
                for (i, n) in a.names().iter().enumerate() {
                    let ty = tys.get(i).copied().unwrap_or(Ty::Unknown);
                    self.declare(name_of(n), ty);
                }
            }
            Stmt::LocalFunction(f) => {
                self.declare(name_of(f.name()), Ty::Unknown);
                self.function(f.body(), false, false);
            }
            Stmt::FunctionDeclaration(f) => {
                let fname = f.name();
                let names: Vec<&TokenReference> = fname.names().iter().collect();
                let mut entry = false;
                if let Some(first) = names.first() {
                    let n = name_of(first);
                    if names.len() == 1 && fname.method_name().is_none() {
                        if self.local(&n).is_none() {
                            entry = self.entries.contains(&n);
                            self.defined.insert(n);
                        }
                    } else {
                        self.read_name(first);
                    }
                }
                self.function(f.body(), fname.method_name().is_some(), entry);
            }
            Stmt::FunctionCall(c) => {
                self.call(c);
            }
            Stmt::Do(d) => self.scoped(|c| c.block(d.block())),
            Stmt::While(w) => {
                self.expr(w.condition());
                self.scoped(|c| c.block(w.block()));
            }
            Stmt::Repeat(r) => self.scoped(|c| {
                c.block(r.block());
                c.expr(r.until());
            }),
            Stmt::If(i) => {
                self.expr(i.condition());
                self.scoped(|c| c.block(i.block()));
                for ei in i.else_if().into_iter().flatten() {
                    self.expr(ei.condition());
                    self.scoped(|c| c.block(ei.block()));
                }
                if let Some(b) = i.else_block() {
                    self.scoped(|c| c.block(b));
                }
            }
            Stmt::NumericFor(f) => {
                self.expr(f.start());
                self.expr(f.end());
                if let Some(s) = f.step() {
                    self.expr(s);
                }
                self.scoped(|c| {
                    c.declare(name_of(f.index_variable()), Ty::Unknown);
                    c.block(f.block());
                });
            }
            Stmt::GenericFor(f) => {
                for e in f.expressions().iter() {
                    self.expr(e);
                }
                self.scoped(|c| {
                    for n in f.names().iter() {
                        c.declare(name_of(n), Ty::Unknown);
                    }
                    c.block(f.block());
                });
            }
            _ => {}
        }
    }

    /// A function's body; `entry`: its first parameter is the packet.
    fn function(&mut self, body: &FunctionBody, method: bool, entry: bool) {
        self.scoped(|c| {
            if method {
                c.declare("self".into(), Ty::Unknown);
            }
            for (i, p) in body.parameters().iter().enumerate() {
                if let Parameter::Name(n) = p {
                    let name = name_of(n);
                    let pkt = (entry && i == 0) || name == "pkt";
                    c.declare(name, if pkt { Ty::Pkt } else { Ty::Unknown });
                }
            }
            c.block(body.block());
        });
    }

    fn read_name(&mut self, t: &TokenReference) -> Ty {
        let n = name_of(t);
        if let Some(l) = self.local(&n) {
            return l.ty;
        }
        let (line, col) = pos(t);
        let ty = if n == "lp" { Ty::Lp } else { Ty::Unknown };
        self.reads.push((n, line, col));
        ty
    }

    /// A field `name` of something of type `ty`: checked, and what it gives.
    fn field(&mut self, ty: Ty, name: &TokenReference) -> Ty {
        let n = name_of(name);
        let (fields, what): (&[Field], String) = match ty {
            Ty::Pkt => (lua_api::PKT, "the packet".into()),
            Ty::Class(c) => (c.fields, format!("pkt.{}", c.key)),
            Ty::Lp => (lua_api::LP, "lp".into()),
            Ty::Unknown => return Ty::Unknown,
        };
        if !fields.iter().any(|f| f.name == n) {
            self.find(
                name,
                format!(
                    "unknown field '{n}' of {what} (it has: {})",
                    lua_api::field_names(fields)
                ),
            );
            return Ty::Unknown;
        }
        match ty {
            Ty::Pkt => lua_api::class(&n).map_or(Ty::Unknown, Ty::Class),
            _ => Ty::Unknown,
        }
    }

    fn suffixes<'a>(&mut self, mut ty: Ty, suffixes: impl Iterator<Item = &'a Suffix>) -> Ty {
        for s in suffixes {
            ty = match s {
                Suffix::Index(Index::Dot { name, .. }) => self.field(ty, name),
                Suffix::Index(Index::Brackets { expression, .. }) => {
                    self.expr(expression);
                    Ty::Unknown
                }
                Suffix::Call(Call::MethodCall(m)) => {
                    self.field(ty, m.name());
                    self.args(m.args());
                    Ty::Unknown
                }
                Suffix::Call(Call::AnonymousCall(a)) => {
                    self.args(a);
                    Ty::Unknown
                }
                _ => Ty::Unknown,
            };
        }
        ty
    }

    fn prefix(&mut self, p: &Prefix) -> Ty {
        match p {
            Prefix::Name(n) => self.read_name(n),
            Prefix::Expression(e) => {
                self.expr(e);
                Ty::Unknown
            }
            _ => Ty::Unknown,
        }
    }

    fn var(&mut self, v: &Var, write: bool) -> Ty {
        match v {
            Var::Name(n) => {
                if write {
                    let name = name_of(n);
                    match self
                        .scopes
                        .iter_mut()
                        .rev()
                        .flat_map(|s| s.iter_mut().rev())
                        .find(|l| l.name == name)
                    {
                        // reassigned: what it holds is no longer known
                        Some(l) => l.ty = Ty::Unknown,
                        None => {
                            self.defined.insert(name);
                        }
                    }
                    Ty::Unknown
                } else {
                    self.read_name(n)
                }
            }
            Var::Expression(e) => {
                let ty = self.prefix(e.prefix());
                self.suffixes(ty, e.suffixes())
            }
            _ => Ty::Unknown,
        }
    }

    fn call(&mut self, c: &ast::FunctionCall) -> Ty {
        let ty = self.prefix(c.prefix());
        self.suffixes(ty, c.suffixes())
    }

    fn args(&mut self, a: &FunctionArgs) {
        match a {
            FunctionArgs::Parentheses { arguments, .. } => {
                for e in arguments.iter() {
                    self.expr(e);
                }
            }
            FunctionArgs::TableConstructor(t) => self.table(t),
            _ => {}
        }
    }

    fn table(&mut self, t: &ast::TableConstructor) {
        for f in t.fields().iter() {
            match f {
                ast::Field::ExpressionKey { key, value, .. } => {
                    self.expr(key);
                    self.expr(value);
                }
                ast::Field::NameKey { value, .. } => {
                    self.expr(value);
                }
                ast::Field::NoKey(e) => {
                    self.expr(e);
                }
                _ => {}
            }
        }
    }

    fn expr(&mut self, e: &Expression) -> Ty {
        match e {
            Expression::BinaryOperator { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
                Ty::Unknown
            }
            Expression::Parentheses { expression, .. } => self.expr(expression),
            Expression::UnaryOperator { expression, .. } => {
                self.expr(expression);
                Ty::Unknown
            }
            Expression::Function(f) => {
                self.function(f.body(), false, false);
                Ty::Unknown
            }
            Expression::FunctionCall(c) => {
                self.call(c);
                Ty::Unknown
            }
            Expression::TableConstructor(t) => {
                self.table(t);
                Ty::Unknown
            }
            Expression::Var(v) => self.var(v, false),
            _ => Ty::Unknown,
        }
    }
}

/// The findings of the source alone (no sandbox): syntax, globals, fields.
pub fn lint(source: &str, entries: &[String]) -> Vec<Finding> {
    let result = full_moon::parse_fallible(source, LuaVersion::lua54());
    if !result.errors().is_empty() {
        return result
            .errors()
            .iter()
            .map(|e| {
                let (start, _) = e.range();
                Finding {
                    line: start.line(),
                    column: start.character(),
                    message: format!("syntax: {}", e.error_message()),
                }
            })
            .collect();
    }
    let mut c = Checker {
        findings: Vec::new(),
        scopes: vec![Vec::new()],
        defined: HashSet::new(),
        reads: Vec::new(),
        entries: entries.to_vec(),
    };
    c.block(result.ast().nodes());
    let mut seen = HashSet::new();
    for (name, line, column) in std::mem::take(&mut c.reads) {
        if lua_api::GLOBALS.contains(&name.as_str()) || c.defined.contains(&name) {
            continue;
        }
        if seen.insert((name.clone(), line)) {
            c.findings.push(Finding {
                line,
                column,
                message: format!("undefined global '{name}' (a local, a typo, or define it)"),
            });
        }
    }
    c.findings.sort_by_key(|f| (f.line, f.column));
    c.findings
}

/// `lpctl script check`: the findings as `FILE:LINE:COLUMN: error: …` (or JSON); false when
/// there is any.
pub fn run(
    file: &std::path::Path,
    entries: &[String],
    mode: crate::output::Mode,
) -> anyhow::Result<bool> {
    use anyhow::Context;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    let source = String::from_utf8_lossy(&bytes);
    let findings = lint(&source, entries);
    let mut load_error = None;
    if findings.is_empty() {
        load_error = load(&name, &bytes, entries);
    }
    if mode.json {
        let mut items: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| serde_json::json!({"file": name, "line": f.line, "column": f.column, "message": f.message}))
            .collect();
        if let Some(e) = &load_error {
            items.push(serde_json::json!({"file": name, "message": e}));
        }
        crate::output::json(mode, &crate::script_cmd::envelope("finding", items));
    } else {
        for f in &findings {
            eprintln!("{name}:{}:{}: error: {}", f.line, f.column, f.message);
        }
        if let Some(e) = &load_error {
            eprintln!("{name}: error: in the sandbox: {e}");
        }
    }
    Ok(findings.is_empty() && load_error.is_none())
}

/// The script loaded in the sandbox offline with each entry bound: an error message (the
/// sandbox's, which names the line) when it fails.
pub fn load(name: &str, source: &[u8], entries: &[String]) -> Option<String> {
    for entry in entries {
        let cfg = Config {
            name: name.to_string(),
            source: source.to_vec(),
            function: entry.clone(),
            arg: None,
            limits: runtime::Limits::default(),
            on_error: runtime::OnError::Break,
            guest: None,
        };
        if let Err(e) = engine::load(Kind::Compiled, &cfg) {
            return Some(e.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(src: &str) -> Vec<String> {
        lint(src, &["process_packet".into()])
            .into_iter()
            .map(|f| format!("{}:{}: {}", f.line, f.column, f.message))
            .collect()
    }

    #[test]
    fn a_clean_script_has_nothing() {
        let src = "local seen = 0\n\
            local ports = {[22] = true}\n\
            local function helper(pkt) return pkt.tcp and pkt.tcp.dport end\n\
            function process_packet(p, arg)\n\
              local tcp = p.tcp\n\
              if tcp and ports[tcp.dport] and p.meta.iifname == arg then\n\
                seen = seen + 1; lp.log('ssh', seen, p:u8(0), tcp.payload:find('x'))\n\
                return lp.DROP\n\
              end\n\
              for i, v in ipairs({1, 2}) do seen = seen + i + v end\n\
              return helper(p) and lp.ACCEPT or lp.QUEUE(1)\n\
            end\n";
        assert_eq!(msgs(src), Vec::<String>::new());
    }

    #[test]
    fn globals_fields_and_syntax_are_found_where_they_are() {
        let src = "function process_packet(p)\n\
              local tcp = p.tcp\n\
              if tcp.dprot == 22 then return lp.DROPP end\n\
              local ip = p.ipp\n\
              p.meta.markk = 1\n\
              return undefined_thing(p:bytess(0, 4))\n\
            end\n";
        assert_eq!(
            msgs(src),
            [
                "3:8: unknown field 'dprot' of pkt.tcp (it has: sport, dport, flags, syn, ack, fin, rst, psh, urg, ece, cwr, seq, ack_seq, window, doff, checksum, urgptr, payload, mss, wscale, sack_perm, ts_val, ts_ecr)",
                "3:35: unknown field 'DROPP' of lp (it has: ACCEPT, DROP, CONTINUE, BREAK, QUEUE, log, debug, warn, now, cidr, bytes, map, proto, packet, send, reply, timer, cancel)",
                "4:14: unknown field 'ipp' of the packet (it has: ip, ip6, tcp, udp, icmp, icmp6, eth, ct, meta, len, bytes, u8, u16, u32, set_u8, set_u16, set_u32, set_bytes, fix_checksums)",
                "5:8: unknown field 'markk' of pkt.meta (it has: mark, len, l4proto, nfproto, hook, iifname, oifname)",
                "6:8: undefined global 'undefined_thing' (a local, a typo, or define it)",
                "6:26: unknown field 'bytess' of the packet (it has: ip, ip6, tcp, udp, icmp, icmp6, eth, ct, meta, len, bytes, u8, u16, u32, set_u8, set_u16, set_u32, set_bytes, fix_checksums)",
            ]
        );
        let m = msgs("function process_packet(p)\n  return p.tcp.\nend\n");
        assert_eq!(m, ["2:15: syntax: expected identifier after `.`"]);
        // a local reassigned is no longer known to be what it was
        assert_eq!(
            msgs("function process_packet(p)\n local ip = p.ip\n if not ip then ip = p.ip6 end\n return ip.hoplimit\nend\n"),
            Vec::<String>::new()
        );
        // a local shadows, a global defined later counts, locals are scoped
        assert_eq!(
            msgs("local lp = {}\nfunction process_packet(x) count = (count or 0) + lp.anything end\ndo local y = 1 end\nprint(y)\n"),
            ["4:7: undefined global 'y' (a local, a typo, or define it)"]
        );
    }
}
