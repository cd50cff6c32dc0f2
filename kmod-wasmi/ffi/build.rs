//! Hashes the built-in guest (guest-lua's `lua.wasm`) into the module: a package whose guest
//! has another hash needs CAP_SYS_ADMIN to load (lp_rt_load's `foreign_ok`).

use sha2::{Digest, Sha256};
use std::{env, fs, path::PathBuf};

fn main() {
    let hash = Sha256::digest(guest_lua::LUA_WASM);
    let bytes: Vec<String> = hash.iter().map(|b| format!("0x{b:02x}")).collect();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("builtin_guest.rs");
    fs::write(
        out,
        format!(
            "/// SHA-256 of the built-in guest module.\npub const BUILTIN_GUEST_SHA256: [u8; 32] = [{}];\n",
            bytes.join(", ")
        ),
    )
    .expect("write builtin_guest.rs");
}
