//! The `.lpk` package: a valid wasm module (the guest, `lua.wasm`) with two custom sections
//! appended: `luapkt.meta` and `luapkt.script`.
//!
//! `luapkt.meta` is `[version: u8 = 1][name length: u8][name bytes]`; `luapkt.script` is the Lua
//! source. Custom sections do not change what the module does, so the guest part of a package
//! is cached by the hash of the module without those sections.

pub const SECTION_META: &str = "luapkt.meta";
pub const SECTION_SCRIPT: &str = "luapkt.script";
pub const META_VERSION: u8 = 1;
/// Largest Lua source in a package.
pub const SCRIPT_MAX: usize = 1 << 20;
