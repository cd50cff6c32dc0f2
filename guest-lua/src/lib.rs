//! `lua.wasm`: Lua 5.4 and the luapkt packet library compiled for wasm32, importing only the
//! host functions of the `lp` module (`abi::guest`).

/// The guest module, as built by `build.rs`.
pub static LUA_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lua.wasm"));

#[cfg(test)]
mod tests;
