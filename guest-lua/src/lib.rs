//! `lua.wasm`: Lua 5.4 and the luapkt packet library compiled for wasm32, importing only the
//! host functions of the `lp` module (`abi::guest`).
// (not for the kernel target, whose build-std adds crates of its own)
#![cfg_attr(not(any(test, target_os = "none")), warn(unused_crate_dependencies))]
#![cfg_attr(not(test), no_std)]

/// The guest module, as built by `build.rs`.
pub static LUA_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lua.wasm"));

// LUA_WASM_SHA256: the SHA-256 of LUA_WASM. The guest counts its own fuel (build/fuel.rs);
// engines trust that count for this module only, and meter any other guest themselves.
include!(concat!(env!("OUT_DIR"), "/lua_wasm_sha256.rs"));

#[cfg(test)]
mod tests;
