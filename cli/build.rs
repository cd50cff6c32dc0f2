//! Compiles the C half of the native engine (src/engine/native.rs) for the host: the packet
//! library the wasm guest uses (guest-lua/c/lp_lib.c) and its native glue (lp_native.c), against
//! the Lua 5.4 headers of mlua-sys's vendored build, whose library the final link brings in
//! (and the internal headers of the same Lua sources, which guest-lua's build finds).

use std::env;
use std::path::PathBuf;

const C_FILES: &[&str] = &["lp_lib.c", "lp_bytes.c", "lp_proto.c", "lp_native.c"];
const HEADERS: &[&str] = &["lp_abi.h", "lp_host.h"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let c_dir = manifest.join("..").join("guest-lua").join("c");
    // mlua-sys has `links = "lua"`; its build prints `cargo:include=DIR` (lua.h, luaconf.h, ...).
    let lua_include = env::var("DEP_LUA_INCLUDE")
        .expect("DEP_LUA_INCLUDE not set: lpctl must depend directly on mlua-sys (vendored)");

    for f in C_FILES.iter().chain(HEADERS) {
        println!("cargo:rerun-if-changed={}", c_dir.join(f).display());
    }
    println!("cargo:rerun-if-env-changed=DEP_LUA_INCLUDE");
    // the packet library reads Lua values directly where a field read is hot (lp_lib.c): the
    // internal headers of the Lua both builds use (guest-lua's build finds them)
    let lua_src = env::var("DEP_LUAPKT_GUEST_LUA_SRC")
        .expect("DEP_LUAPKT_GUEST_LUA_SRC not set: lpctl must depend directly on guest-lua");

    let mut b = cc::Build::new();
    for f in C_FILES {
        b.file(c_dir.join(f));
    }
    b.include(&c_dir)
        .include(&lua_include)
        .include(&lua_src)
        // as the guest and mlua-sys's Lua are built
        .define("LUA_COMPAT_5_3", None)
        .warnings(true)
        .extra_warnings(true)
        // a baseline for benchmarks: optimised whatever the profile
        .opt_level(2);
    b.compile("lp_native");
}
