//! All of luapkt's netlink, in Rust.
//!
//! - [`nft`]: nf_tables over `NETLINK_NETFILTER`. Stock nft and libnftnl cannot build or parse
//!   a `lua` expression (docs/netlink.md), so this crate encodes the few
//!   messages luapkt needs itself: atomic batches that create tables and chains (with nft's
//!   chain comment), append rules made of a `lua` expression, delete rules and chains; and
//!   dumps that list chains and rules, decoding `lua` expressions in full and every other
//!   expression by name.
//! - [`luapkt`]: the `luapkt` generic netlink family: load (chunked upload), unload, get, dump,
//!   set limits.
//! - [`Transport`]: the seam between both and the kernel. [`Socket`] is the real one; the
//!   crate's unit tests use a fake kernel (`src/fake.rs`) that records requests and plays back
//!   canned replies.
//!
//! Every number shared with the kernel comes from `abi::netlink`; nf_tables' own numbers are
//! those of `include/uapi/linux/netfilter/nf_tables.h`. Framing and attribute parsing sit on
//! `netlink-packet-core`, the socket on `netlink-sys`. Replies are untrusted input: a reply
//! that does not decode is [`Error::Malformed`], never a panic.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod conn;
pub mod error;
#[cfg(test)]
mod fake;
pub mod genl;
pub mod luapkt;
pub mod nfqueue;
pub mod nft;
pub mod transport;
mod wire;

pub use error::{Error, KernelError, Result};
pub use genl::{resolve_family, FamilyInfo};
pub use luapkt::{
    Limits, LoadRequest, Luapkt, MapInfo, OnError, RecordBatch, Ring, ScriptInfo, ScriptLimits,
    Stats, Tag,
};
pub use nft::{
    BaseChain, Batch, Chain, ChainType, Expr, Family, Hook, LuaExpr, LuaRule, Nftables, Policy,
    Rule,
};
pub use transport::{Protocol, Socket, Transport};
