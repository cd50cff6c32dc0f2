//! nf_tables over `NETLINK_NETFILTER`: tables, chains with nft's comments, rules with the `lua`
//! expression, and listings that recognise `lua` expressions (every other expression is
//! reported by name only).
//!
//! Changes go in a [`Batch`], committed atomically: the kernel applies all of it or nothing.

use std::{fmt, str::FromStr};

use abi::netlink::{self as nl, expr as lua_attr};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST,
};
use serde::{ser::SerializeMap, Serialize, Serializer};

use crate::{
    conn::{Conn, Expect, Mark, Pending, Reply},
    error::{Error, Result},
    transport::{Protocol, Socket, Transport},
    wire::{self, required, Decoded, Malformed, MessageBuilder},
};

// include/uapi/linux/netfilter/nfnetlink.h
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNETLINK_V0: u8 = 0;
const AF_UNSPEC: u8 = 0;
/// Size of `struct nfgenmsg`.
const NFGENMSG_LEN: usize = 4;

// include/uapi/linux/netfilter/nf_tables.h
const NFT_MSG_NEWTABLE: u8 = 0;
const NFT_MSG_NEWCHAIN: u8 = 3;
const NFT_MSG_GETCHAIN: u8 = 4;
const NFT_MSG_DELCHAIN: u8 = 5;
const NFT_MSG_NEWRULE: u8 = 6;
const NFT_MSG_GETRULE: u8 = 7;
const NFT_MSG_DELRULE: u8 = 8;
/// Sent with echoed changes: the ruleset's new generation (ignored).
#[cfg(test)]
const NFT_MSG_NEWGEN: u8 = 15;

const NFTA_TABLE_NAME: u16 = 1;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_HANDLE: u16 = 2;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_CHAIN_USERDATA: u16 = 12;

const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_HOOK_DEV: u16 = 3;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

/// `NFT_NAME_MAXLEN`: table and chain names, with their NUL.
const NFT_NAME_MAXLEN: usize = 256;
/// libnftnl's `NFTNL_UDATA_COMMENT_MAXLEN`: the longest comment nft itself accepts.
pub const COMMENT_MAX: usize = 128;
/// libnftnl's `NFTNL_UDATA_CHAIN_COMMENT` and `NFTNL_UDATA_RULE_COMMENT`.
const UDATA_COMMENT: u8 = 0;

/// An nftables address family (`nfgenmsg.nfgen_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ip,
    Ip6,
    Inet,
    Arp,
    Bridge,
    Netdev,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Ip,
        Family::Ip6,
        Family::Inet,
        Family::Arp,
        Family::Bridge,
        Family::Netdev,
    ];

    /// `NFPROTO_*`.
    pub fn number(self) -> u8 {
        match self {
            Family::Inet => 1,
            Family::Ip => 2,
            Family::Arp => 3,
            Family::Netdev => 5,
            Family::Bridge => 7,
            Family::Ip6 => 10,
        }
    }

    pub fn from_number(number: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.number() == number)
    }

    /// nft's name: `ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Arp => "arp",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    format!("family {s}"),
                    "not one of ip, ip6, inet, arp, bridge, netdev",
                )
            })
    }
}

/// A base chain's hook. The numbers behind the names depend on the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
    Ingress,
    Egress,
    /// A hook number this crate has no name for.
    Other(u32),
}

impl Hook {
    const NAMED: [Hook; 7] = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
        Hook::Ingress,
        Hook::Egress,
    ];

    /// `NF_INET_*`, `NF_ARP_*` or `NF_NETDEV_*`, as `family` numbers its hooks.
    pub fn number(self, family: Family) -> Option<u32> {
        use {Family::*, Hook::*};
        match (family, self) {
            (_, Other(n)) => Some(n),
            (Ip | Ip6 | Inet | Bridge, Prerouting) => Some(0),
            (Ip | Ip6 | Inet | Bridge, Input) => Some(1),
            (Ip | Ip6 | Inet | Bridge, Forward) => Some(2),
            (Ip | Ip6 | Inet | Bridge, Output) => Some(3),
            (Ip | Ip6 | Inet | Bridge, Postrouting) => Some(4),
            (Inet, Ingress) => Some(5),
            (Arp, Input) => Some(0),
            (Arp, Output) => Some(1),
            (Arp, Forward) => Some(2),
            (Netdev, Ingress) => Some(0),
            (Netdev, Egress) => Some(1),
            _ => None,
        }
    }

    pub fn from_number(family: Family, number: u32) -> Self {
        Self::NAMED
            .into_iter()
            .find(|h| h.number(family) == Some(number))
            .unwrap_or(Hook::Other(number))
    }

    /// nft's name, or the number.
    pub fn name(self) -> String {
        match self {
            Hook::Prerouting => "prerouting".into(),
            Hook::Input => "input".into(),
            Hook::Forward => "forward".into(),
            Hook::Output => "output".into(),
            Hook::Postrouting => "postrouting".into(),
            Hook::Ingress => "ingress".into(),
            Hook::Egress => "egress".into(),
            Hook::Other(n) => n.to_string(),
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Hook {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::NAMED
            .into_iter()
            .find(|h| h.name() == s)
            .ok_or_else(|| Error::invalid(format!("hook {s}"), "unknown hook"))
    }
}

impl Serialize for Hook {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Hook::Other(n) => s.serialize_u32(*n),
            named => s.serialize_str(&named.name()),
        }
    }
}

/// A base chain's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

impl ChainType {
    pub fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// A base chain's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    /// `NF_ACCEPT`, `NF_DROP`.
    fn number(self) -> u32 {
        match self {
            Policy::Drop => 0,
            Policy::Accept => 1,
        }
    }
}

/// What makes a chain a base chain: where it hooks into the stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseChain {
    #[serde(rename = "type")]
    pub chain_type: ChainType,
    pub hook: Hook,
    pub priority: i32,
    /// The kernel's default (accept) when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// The device of an ingress/egress hook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// A chain: to create (`handle` is ignored) or as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    pub family: Family,
    pub table: String,
    pub name: String,
    /// The kernel's handle (set in listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// `None` for a regular chain (reached by `jump`/`goto`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseChain>,
    /// nft's chain comment (`NFTNL_UDATA_CHAIN_COMMENT` in `NFTA_CHAIN_USERDATA`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Chain {
    /// A regular chain.
    pub fn regular(family: Family, table: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            family,
            table: table.into(),
            name: name.into(),
            handle: None,
            base: None,
            comment: None,
        }
    }

    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    pub fn with_base(mut self, base: BaseChain) -> Self {
        self.base = Some(base);
        self
    }

    fn describe(&self) -> String {
        format!("chain {} {} {}", self.family, self.table, self.name)
    }
}

/// The `lua` expression: run `func` of script `script` with `arg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LuaExpr {
    /// `NFTA_LUA_SCRIPT`: the loaded script's name.
    pub script: String,
    /// `NFTA_LUA_FUNC`: the entry function; `None` is the kernel's default, `process_packet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub func: Option<String>,
    /// `NFTA_LUA_ARG`: the string passed to the entry function (sent without a NUL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
    /// `NFTA_LUA_FLAGS` (sent only when not 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl LuaExpr {
    pub fn new(script: impl Into<String>) -> Self {
        Self {
            script: script.into(),
            func: None,
            arg: None,
            flags: 0,
        }
    }

    pub fn with_func(mut self, func: impl Into<String>) -> Self {
        self.func = Some(func.into());
        self
    }

    pub fn with_arg(mut self, arg: impl Into<String>) -> Self {
        self.arg = Some(arg.into());
        self
    }
}

/// One expression of a listed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Lua(LuaExpr),
    /// Any other expression, by its name (`payload`, `cmp`, `counter`...).
    Other(String),
}

/// Serialises as nft's JSON does, one key per expression: `{"lua": {...}}`, `{"cmp": null}`.
impl Serialize for Expr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Expr::Lua(lua) => map.serialize_entry(nl::EXPR_NAME, lua)?,
            Expr::Other(name) => map.serialize_entry(name, &())?,
        }
        map.end()
    }
}

/// A rule as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub family: Family,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    /// nft's rule comment (`NFTNL_UDATA_RULE_COMMENT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub exprs: Vec<Expr>,
}

impl Rule {
    /// The rule's `lua` expressions.
    pub fn lua(&self) -> impl Iterator<Item = &LuaExpr> {
        self.exprs.iter().filter_map(|e| match e {
            Expr::Lua(lua) => Some(lua),
            Expr::Other(_) => None,
        })
    }
}

/// A `lua` expression with the rule that holds it: what `lpctl rule list` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LuaRule {
    pub family: Family,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub script: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub func: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    AddTable {
        family: Family,
        name: String,
    },
    AddChain {
        chain: Chain,
        exclusive: bool,
    },
    AddRule {
        family: Family,
        table: String,
        chain: String,
        lua: LuaExpr,
    },
    DeleteRule {
        family: Family,
        table: String,
        chain: String,
        handle: u64,
    },
    DeleteChain {
        family: Family,
        table: String,
        name: String,
    },
}

/// Changes applied together by [`Nftables::commit`]: all of them, or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Creates the table unless it exists (`nft add table`).
    pub fn add_table(&mut self, family: Family, name: impl Into<String>) -> &mut Self {
        self.ops.push(Op::AddTable {
            family,
            name: name.into(),
        });
        self
    }

    /// Creates the chain; an existing chain of that name is left as it is (`nft add chain`).
    pub fn add_chain(&mut self, chain: Chain) -> &mut Self {
        self.ops.push(Op::AddChain {
            chain,
            exclusive: false,
        });
        self
    }

    /// Creates the chain; fails with EEXIST if it exists (`nft create chain`).
    pub fn create_chain(&mut self, chain: Chain) -> &mut Self {
        self.ops.push(Op::AddChain {
            chain,
            exclusive: true,
        });
        self
    }

    /// Appends a rule made of the `lua` expression alone to the chain.
    pub fn add_rule(
        &mut self,
        family: Family,
        table: impl Into<String>,
        chain: impl Into<String>,
        lua: LuaExpr,
    ) -> &mut Self {
        self.ops.push(Op::AddRule {
            family,
            table: table.into(),
            chain: chain.into(),
            lua,
        });
        self
    }

    pub fn delete_rule(
        &mut self,
        family: Family,
        table: impl Into<String>,
        chain: impl Into<String>,
        handle: u64,
    ) -> &mut Self {
        self.ops.push(Op::DeleteRule {
            family,
            table: table.into(),
            chain: chain.into(),
            handle,
        });
        self
    }

    /// Deletes a chain with its rules, as `nft delete chain` does; the kernel refuses with EBUSY
    /// while a rule elsewhere jumps to it.
    pub fn delete_chain(
        &mut self,
        family: Family,
        table: impl Into<String>,
        name: impl Into<String>,
    ) -> &mut Self {
        self.ops.push(Op::DeleteChain {
            family,
            table: table.into(),
            name: name.into(),
        });
        self
    }
}

/// An nf_tables client.
pub struct Nftables<T = Socket> {
    conn: Conn<T>,
}

impl Nftables<Socket> {
    /// Opens a `NETLINK_NETFILTER` socket in the caller's network namespace.
    pub fn open() -> Result<Self> {
        let socket = Socket::open(Protocol::Netfilter)
            .map_err(|e| Error::io("nf_tables: netlink socket", e))?;
        Ok(Self::with_transport(socket))
    }
}

impl<T: Transport> Nftables<T> {
    pub fn with_transport(transport: T) -> Self {
        Self {
            conn: Conn::new(transport),
        }
    }

    pub fn transport(&self) -> &T {
        &self.conn.transport
    }

    pub fn into_transport(self) -> T {
        self.conn.transport
    }

    /// Applies `batch` atomically. Returns the rules it added, as the kernel echoed them
    /// (with their handles).
    pub fn commit(&mut self, batch: &Batch) -> Result<Vec<Rule>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let begin_seq = self.conn.next_seq();
        let mut datagram = batch_control(NFNL_MSG_BATCH_BEGIN, begin_seq);
        let mut pending = Vec::with_capacity(batch.ops.len());
        for op in &batch.ops {
            let seq = self.conn.next_seq();
            let (bytes, request) = encode(op, seq)?;
            datagram.extend_from_slice(&bytes);
            pending.push(request);
        }
        datagram.extend_from_slice(&batch_control(NFNL_MSG_BATCH_END, self.conn.next_seq()));
        let begin = Pending::new(begin_seq, "nf_tables transaction");
        let answers = self
            .conn
            .exchange(&datagram, &pending, Some(&begin), Expect::Ack)?;
        answers
            .replies
            .iter()
            .filter(|r| r.message_type == nft_type(NFT_MSG_NEWRULE))
            .map(|r| {
                let what = pending
                    .iter()
                    .find(|p| p.seq == r.seq)
                    .map_or(begin.what.as_str(), |p| p.what.as_str());
                decode_rule(&r.payload).map_err(|e| Error::malformed(what, e.0))
            })
            .collect()
    }

    /// Every rule of `family` (all families when `None`), of `table` and `chain` when given.
    pub fn list_rules(
        &mut self,
        family: Option<Family>,
        table: Option<&str>,
        chain: Option<&str>,
    ) -> Result<Vec<Rule>> {
        let what = describe_filter("rules", family, table, chain);
        let replies = self.dump(&what, NFT_MSG_GETRULE, family, |m| {
            if let Some(table) = table {
                m.attr_str(NFTA_RULE_TABLE, table);
            }
            if let Some(chain) = chain {
                m.attr_str(NFTA_RULE_CHAIN, chain);
            }
        })?;
        decode_all(&what, &replies, NFT_MSG_NEWRULE, decode_rule)
    }

    /// Every `lua` expression in the rules [`Self::list_rules`] returns, with its rule.
    pub fn list_lua_rules(
        &mut self,
        family: Option<Family>,
        table: Option<&str>,
        chain: Option<&str>,
    ) -> Result<Vec<LuaRule>> {
        let rules = self.list_rules(family, table, chain)?;
        Ok(rules
            .iter()
            .flat_map(|rule| {
                rule.lua().map(|lua| LuaRule {
                    family: rule.family,
                    table: rule.table.clone(),
                    chain: rule.chain.clone(),
                    handle: rule.handle,
                    script: lua.script.clone(),
                    func: lua.func.clone(),
                    arg: lua.arg.clone(),
                })
            })
            .collect())
    }

    /// Every chain of `family` (all when `None`), of `table` when given.
    pub fn list_chains(
        &mut self,
        family: Option<Family>,
        table: Option<&str>,
    ) -> Result<Vec<Chain>> {
        let what = describe_filter("chains", family, table, None);
        let replies = self.dump(&what, NFT_MSG_GETCHAIN, family, |m| {
            if let Some(table) = table {
                m.attr_str(NFTA_CHAIN_TABLE, table);
            }
        })?;
        decode_all(&what, &replies, NFT_MSG_NEWCHAIN, decode_chain)
    }

    /// One chain; ENOENT when it does not exist.
    pub fn get_chain(&mut self, family: Family, table: &str, name: &str) -> Result<Chain> {
        let what = format!("chain {family} {table} {name}");
        check_name(&what, "table", table)?;
        check_name(&what, "chain", name)?;
        let seq = self.conn.next_seq();
        let mut m = nft_request(NFT_MSG_GETCHAIN, NLM_F_ACK, seq, family.number());
        m.attr_str(NFTA_CHAIN_TABLE, table)
            .attr_str(NFTA_CHAIN_NAME, name);
        let answers =
            self.conn
                .exchange(&m.finish(), &[Pending::new(seq, &what)], None, Expect::Ack)?;
        let mut chains = decode_all(&what, &answers.replies, NFT_MSG_NEWCHAIN, decode_chain)?;
        match (chains.pop(), chains.is_empty()) {
            (Some(chain), true) => Ok(chain),
            _ => Err(Error::malformed(what, "expected exactly one chain")),
        }
    }

    fn dump(
        &mut self,
        what: &str,
        msg: u8,
        family: Option<Family>,
        attrs: impl Fn(&mut MessageBuilder),
    ) -> Result<Vec<Reply>> {
        let family = family.map_or(AF_UNSPEC, Family::number);
        self.conn.dump(what, |seq| {
            let mut m = nft_request(msg, NLM_F_DUMP, seq, family);
            attrs(&mut m);
            m.finish()
        })
    }
}

fn describe_filter(
    objects: &str,
    family: Option<Family>,
    table: Option<&str>,
    chain: Option<&str>,
) -> String {
    let mut what = format!("list {objects}");
    for part in [family.map(Family::name), table, chain]
        .into_iter()
        .flatten()
    {
        what.push(' ');
        what.push_str(part);
    }
    what
}

fn nft_type(msg: u8) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | u16::from(msg)
}

/// `struct nfgenmsg { family, version, res_id (big endian) }`.
fn nfgenmsg(family: u8, res_id: u16) -> [u8; NFGENMSG_LEN] {
    let [hi, lo] = res_id.to_be_bytes();
    [family, NFNETLINK_V0, hi, lo]
}

fn nft_request(msg: u8, flags: u16, seq: u32, family: u8) -> MessageBuilder {
    MessageBuilder::new(nft_type(msg), NLM_F_REQUEST | flags, seq)
        .fixed_header(&nfgenmsg(family, 0))
}

/// `NFNL_MSG_BATCH_BEGIN`/`_END`, addressed to the nf_tables subsystem as libnftnl does.
fn batch_control(message_type: u16, seq: u32) -> Vec<u8> {
    MessageBuilder::new(message_type, NLM_F_REQUEST, seq)
        .fixed_header(&nfgenmsg(AF_UNSPEC, NFNL_SUBSYS_NFTABLES))
        .finish()
}

fn check_name(what: &str, kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() >= NFT_NAME_MAXLEN || name.contains('\0') {
        return Err(Error::invalid(
            what,
            format!(
                "{kind} name must be 1 to {} bytes without NUL",
                NFT_NAME_MAXLEN - 1
            ),
        ));
    }
    Ok(())
}

/// Script names as the `luapkt` family accepts them: 1 to `NAME_MAX` bytes of `[A-Za-z0-9_.-]`.
pub fn check_script_name(name: &str) -> Result<()> {
    let valid = (1..=nl::NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !valid {
        return Err(Error::invalid(
            format!("script {name}"),
            format!(
                "a script name is 1 to {} characters of A-Z a-z 0-9 _ . -",
                nl::NAME_MAX
            ),
        ));
    }
    Ok(())
}

fn check_lua(what: &str, lua: &LuaExpr) -> Result<()> {
    check_script_name(&lua.script)?;
    if let Some(func) = &lua.func {
        if func.is_empty() || func.len() > nl::NAME_MAX || func.contains('\0') {
            return Err(Error::invalid(
                what,
                format!(
                    "function name must be 1 to {} bytes without NUL",
                    nl::NAME_MAX
                ),
            ));
        }
    }
    if let Some(arg) = &lua.arg {
        if arg.len() > nl::ARG_MAX {
            return Err(Error::invalid(
                what,
                format!(
                    "argument of {} bytes, at most {} allowed",
                    arg.len(),
                    nl::ARG_MAX
                ),
            ));
        }
    }
    Ok(())
}

/// nft's userdata TLVs (`struct nftnl_udata { u8 type; u8 len; value }`) holding one comment,
/// NUL-terminated as `nftnl_udata_put_strz` writes it.
fn comment_udata(what: &str, comment: &str) -> Result<Vec<u8>> {
    if comment.len() > COMMENT_MAX || comment.contains('\0') {
        return Err(Error::invalid(
            what,
            format!("comment must be at most {COMMENT_MAX} bytes without NUL"),
        ));
    }
    let mut udata = Vec::with_capacity(comment.len() + 3);
    udata.push(UDATA_COMMENT);
    udata.push((comment.len() + 1) as u8);
    udata.extend_from_slice(comment.as_bytes());
    udata.push(0);
    Ok(udata)
}

/// The comment in nft's userdata. Userdata is whatever userspace stored, unchecked by the
/// kernel: anything that is not a well-formed comment is no comment.
fn udata_comment(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while let [kind, len, tail @ ..] = rest {
        let value = tail.get(..usize::from(*len))?;
        if *kind == UDATA_COMMENT {
            let (last, text) = value.split_last()?;
            return (*last == 0)
                .then(|| String::from_utf8(text.to_vec()).ok())
                .flatten();
        }
        rest = &tail[usize::from(*len)..];
    }
    None
}

/// Records where an attribute written by `write` lands in the message.
fn mark(
    m: &mut MessageBuilder,
    marks: &mut Vec<Mark>,
    label: String,
    enoent_hint: Option<String>,
    write: impl FnOnce(&mut MessageBuilder),
) {
    let start = m.offset();
    write(m);
    marks.push(Mark {
        start,
        end: m.offset(),
        label,
        enoent_hint,
    });
}

fn encode(op: &Op, seq: u32) -> Result<(Vec<u8>, Pending)> {
    let mut marks = Vec::new();
    let (m, what) = match op {
        Op::AddTable { family, name } => {
            let what = format!("table {family} {name}");
            check_name(&what, "table", name)?;
            let mut m = nft_request(
                NFT_MSG_NEWTABLE,
                NLM_F_CREATE | NLM_F_ACK,
                seq,
                family.number(),
            );
            m.attr_str(NFTA_TABLE_NAME, name);
            (m, what)
        }
        Op::AddChain { chain, exclusive } => {
            let what = chain.describe();
            check_name(&what, "table", &chain.table)?;
            check_name(&what, "chain", &chain.name)?;
            let udata = chain
                .comment
                .as_deref()
                .map(|c| comment_udata(&what, c))
                .transpose()?;
            let excl = if *exclusive { NLM_F_EXCL } else { 0 };
            let mut m = nft_request(
                NFT_MSG_NEWCHAIN,
                NLM_F_CREATE | excl | NLM_F_ACK,
                seq,
                chain.family.number(),
            );
            mark(
                &mut m,
                &mut marks,
                format!("table {}", chain.table),
                None,
                |m| {
                    m.attr_str(NFTA_CHAIN_TABLE, &chain.table);
                },
            );
            m.attr_str(NFTA_CHAIN_NAME, &chain.name);
            if let Some(base) = &chain.base {
                let hook = base.hook.number(chain.family).ok_or_else(|| {
                    Error::invalid(
                        &what,
                        format!("no {} hook in family {}", base.hook, chain.family),
                    )
                })?;
                mark(
                    &mut m,
                    &mut marks,
                    format!("hook {}", base.hook),
                    None,
                    |m| {
                        m.begin_nest(NFTA_CHAIN_HOOK)
                            .attr_u32_be(NFTA_HOOK_HOOKNUM, hook)
                            .attr_u32_be(NFTA_HOOK_PRIORITY, base.priority as u32);
                        if let Some(device) = &base.device {
                            m.attr_str(NFTA_HOOK_DEV, device);
                        }
                        m.end_nest();
                    },
                );
                if let Some(policy) = base.policy {
                    m.attr_u32_be(NFTA_CHAIN_POLICY, policy.number());
                }
                mark(
                    &mut m,
                    &mut marks,
                    format!("type {}", base.chain_type.name()),
                    None,
                    |m| {
                        m.attr_str(NFTA_CHAIN_TYPE, base.chain_type.name());
                    },
                );
            }
            if let Some(udata) = &udata {
                m.attr(NFTA_CHAIN_USERDATA, udata);
            }
            (m, what)
        }
        Op::AddRule {
            family,
            table,
            chain,
            lua,
        } => {
            let what = format!("rule {family} {table} {chain}");
            check_name(&what, "table", table)?;
            check_name(&what, "chain", chain)?;
            check_lua(&what, lua)?;
            let mut m = nft_request(
                NFT_MSG_NEWRULE,
                NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK | NLM_F_ECHO,
                seq,
                family.number(),
            );
            mark(&mut m, &mut marks, format!("table {table}"), None, |m| {
                m.attr_str(NFTA_RULE_TABLE, table);
            });
            mark(&mut m, &mut marks, format!("chain {chain}"), None, |m| {
                m.attr_str(NFTA_RULE_CHAIN, chain);
            });
            m.begin_nest(NFTA_RULE_EXPRESSIONS);
            let hint = format!(
                "nft_lua is not loaded, or no script {} is loaded",
                lua.script
            );
            mark(
                &mut m,
                &mut marks,
                "expression lua".into(),
                Some(hint),
                |m| {
                    m.begin_nest(NFTA_LIST_ELEM)
                        .attr_str(NFTA_EXPR_NAME, nl::EXPR_NAME)
                        .begin_nest(NFTA_EXPR_DATA)
                        .attr_str(lua_attr::SCRIPT, &lua.script);
                    if let Some(func) = &lua.func {
                        m.attr_str(lua_attr::FUNC, func);
                    }
                    if let Some(arg) = &lua.arg {
                        m.attr(lua_attr::ARG, arg.as_bytes());
                    }
                    if lua.flags != 0 {
                        m.attr_u32_be(lua_attr::FLAGS, lua.flags);
                    }
                    m.end_nest().end_nest();
                },
            );
            m.end_nest();
            (m, what)
        }
        Op::DeleteRule {
            family,
            table,
            chain,
            handle,
        } => {
            let what = format!("rule {family} {table} {chain} handle {handle}");
            check_name(&what, "table", table)?;
            check_name(&what, "chain", chain)?;
            let mut m = nft_request(NFT_MSG_DELRULE, NLM_F_ACK, seq, family.number());
            mark(&mut m, &mut marks, format!("table {table}"), None, |m| {
                m.attr_str(NFTA_RULE_TABLE, table);
            });
            mark(&mut m, &mut marks, format!("chain {chain}"), None, |m| {
                m.attr_str(NFTA_RULE_CHAIN, chain);
            });
            mark(&mut m, &mut marks, format!("handle {handle}"), None, |m| {
                m.attr_u64_be(NFTA_RULE_HANDLE, *handle);
            });
            (m, what)
        }
        Op::DeleteChain {
            family,
            table,
            name,
        } => {
            let what = format!("chain {family} {table} {name}");
            check_name(&what, "table", table)?;
            check_name(&what, "chain", name)?;
            let mut m = nft_request(NFT_MSG_DELCHAIN, NLM_F_ACK, seq, family.number());
            mark(&mut m, &mut marks, format!("table {table}"), None, |m| {
                m.attr_str(NFTA_CHAIN_TABLE, table);
            });
            m.attr_str(NFTA_CHAIN_NAME, name);
            (m, what)
        }
    };
    let mut pending = Pending::new(seq, what);
    pending.marks = marks;
    Ok((m.finish(), pending))
}

fn decode_all<V>(
    what: &str,
    replies: &[Reply],
    msg: u8,
    decode: fn(&[u8]) -> Decoded<V>,
) -> Result<Vec<V>> {
    replies
        .iter()
        .map(|r| {
            if r.message_type != nft_type(msg) {
                return Err(Error::malformed(
                    what,
                    format!("unexpected message type {:#06x}", r.message_type),
                ));
            }
            decode(&r.payload).map_err(|e| Error::malformed(what, e.0))
        })
        .collect()
}

/// The family of an nf_tables message, and its attributes.
fn split_nfgenmsg(payload: &[u8]) -> Decoded<(Family, &[u8])> {
    let (header, attrs) = payload
        .split_first_chunk::<NFGENMSG_LEN>()
        .ok_or_else(|| Malformed::new("shorter than nfgenmsg"))?;
    let family = Family::from_number(header[0])
        .ok_or_else(|| Malformed::new(format!("unknown family {}", header[0])))?;
    Ok((family, attrs))
}

fn decode_rule(payload: &[u8]) -> Decoded<Rule> {
    let (family, attrs) = split_nfgenmsg(payload)?;
    let (mut table, mut chain, mut handle) = (None, None, None);
    let mut comment = None;
    let mut exprs = Vec::new();
    for attr in wire::attrs(attrs) {
        let attr = attr?;
        match attr.kind {
            NFTA_RULE_TABLE => table = Some(attr.str("NFTA_RULE_TABLE")?),
            NFTA_RULE_CHAIN => chain = Some(attr.str("NFTA_RULE_CHAIN")?),
            NFTA_RULE_HANDLE => handle = Some(attr.u64_be("NFTA_RULE_HANDLE")?),
            NFTA_RULE_USERDATA => comment = udata_comment(attr.value),
            NFTA_RULE_EXPRESSIONS => {
                for elem in wire::attrs(attr.value) {
                    let elem = elem?;
                    if elem.kind != NFTA_LIST_ELEM {
                        return Err(Malformed::new(format!(
                            "attribute {} in NFTA_RULE_EXPRESSIONS",
                            elem.kind
                        )));
                    }
                    exprs.push(decode_expr(elem.value)?);
                }
            }
            _ => {}
        }
    }
    Ok(Rule {
        family,
        table: required(table, "NFTA_RULE_TABLE")?,
        chain: required(chain, "NFTA_RULE_CHAIN")?,
        handle: required(handle, "NFTA_RULE_HANDLE")?,
        comment,
        exprs,
    })
}

fn decode_expr(elem: &[u8]) -> Decoded<Expr> {
    let (mut name, mut data) = (None, None);
    for attr in wire::attrs(elem) {
        let attr = attr?;
        match attr.kind {
            NFTA_EXPR_NAME => name = Some(attr.str("NFTA_EXPR_NAME")?),
            NFTA_EXPR_DATA => data = Some(attr.value),
            _ => {}
        }
    }
    let name = required(name, "NFTA_EXPR_NAME")?;
    if name != nl::EXPR_NAME {
        return Ok(Expr::Other(name));
    }
    let mut lua = LuaExpr::new(String::new());
    let mut script = None;
    for attr in wire::attrs(data.unwrap_or_default()) {
        let attr = attr?;
        match attr.kind {
            lua_attr::SCRIPT => script = Some(attr.str("NFTA_LUA_SCRIPT")?),
            lua_attr::FUNC => lua.func = Some(attr.str("NFTA_LUA_FUNC")?),
            lua_attr::ARG => lua.arg = Some(String::from_utf8_lossy(attr.value).into_owned()),
            lua_attr::FLAGS => lua.flags = attr.u32_be("NFTA_LUA_FLAGS")?,
            _ => {}
        }
    }
    lua.script = required(script, "NFTA_LUA_SCRIPT")?;
    Ok(Expr::Lua(lua))
}

fn decode_chain(payload: &[u8]) -> Decoded<Chain> {
    let (family, attrs) = split_nfgenmsg(payload)?;
    let (mut table, mut name, mut handle) = (None, None, None);
    let (mut hook, mut chain_type, mut policy) = (None, None, None);
    let mut comment = None;
    for attr in wire::attrs(attrs) {
        let attr = attr?;
        match attr.kind {
            NFTA_CHAIN_TABLE => table = Some(attr.str("NFTA_CHAIN_TABLE")?),
            NFTA_CHAIN_NAME => name = Some(attr.str("NFTA_CHAIN_NAME")?),
            NFTA_CHAIN_HANDLE => handle = Some(attr.u64_be("NFTA_CHAIN_HANDLE")?),
            NFTA_CHAIN_USERDATA => comment = udata_comment(attr.value),
            NFTA_CHAIN_TYPE => {
                chain_type = Some(match attr.str("NFTA_CHAIN_TYPE")?.as_str() {
                    "filter" => ChainType::Filter,
                    "nat" => ChainType::Nat,
                    "route" => ChainType::Route,
                    other => return Err(Malformed::new(format!("chain type {other}"))),
                })
            }
            NFTA_CHAIN_POLICY => {
                policy = Some(match attr.u32_be("NFTA_CHAIN_POLICY")? {
                    0 => Policy::Drop,
                    1 => Policy::Accept,
                    other => return Err(Malformed::new(format!("chain policy {other}"))),
                })
            }
            NFTA_CHAIN_HOOK => {
                let (mut number, mut priority, mut device) = (None, None, None);
                for attr in wire::attrs(attr.value) {
                    let attr = attr?;
                    match attr.kind {
                        NFTA_HOOK_HOOKNUM => number = Some(attr.u32_be("NFTA_HOOK_HOOKNUM")?),
                        NFTA_HOOK_PRIORITY => {
                            priority = Some(attr.u32_be("NFTA_HOOK_PRIORITY")? as i32)
                        }
                        NFTA_HOOK_DEV => device = Some(attr.str("NFTA_HOOK_DEV")?),
                        _ => {}
                    }
                }
                hook = Some((
                    Hook::from_number(family, required(number, "NFTA_HOOK_HOOKNUM")?),
                    required(priority, "NFTA_HOOK_PRIORITY")?,
                    device,
                ));
            }
            _ => {}
        }
    }
    let base = match hook {
        None => None,
        Some((hook, priority, device)) => Some(BaseChain {
            chain_type: required(chain_type, "NFTA_CHAIN_TYPE")?,
            hook,
            priority,
            policy,
            device,
        }),
    };
    Ok(Chain {
        family,
        table: required(table, "NFTA_CHAIN_TABLE")?,
        name: required(name, "NFTA_CHAIN_NAME")?,
        handle,
        base,
        comment,
    })
}

// The tests check exact bytes, written for a little-endian host.
#[cfg(all(test, target_endian = "little"))]
mod tests;

#[cfg(all(test, feature = "host-kernel-tests"))]
mod host_tests;
