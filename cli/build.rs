//! Compiles the C half of the native engine (src/engine/native.rs) for the host: the packet
//! library the wasm guest uses (every file of guest-lua/c/lib, as guest-lua's build names the
//! directory) and its native glue (c/lp_native.c), against the Lua 5.4 headers of mlua-sys's
//! vendored build, whose library the final link brings in (and the internal headers of the same
//! Lua sources, which guest-lua's build finds).

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let native = manifest.join("c").join("lp_native.c");
    let lib_dir = PathBuf::from(
        env::var("DEP_LUAPKT_GUEST_LIB_DIR")
            .expect("DEP_LUAPKT_GUEST_LIB_DIR not set: lpctl must depend directly on guest-lua"),
    );
    // lp_abi.h and lp_host.h
    let c_dir = lib_dir.parent().expect("guest-lua/c").to_path_buf();
    let mut lib: Vec<PathBuf> = std::fs::read_dir(&lib_dir)
        .expect("read guest-lua/c/lib")
        .map(|e| e.expect("read guest-lua/c/lib").path())
        .collect();
    lib.sort();
    let c_files: Vec<&PathBuf> = lib
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .chain([&native])
        .collect();
    // mlua-sys has `links = "lua"`; its build prints `cargo:include=DIR` (lua.h, luaconf.h, ...).
    let lua_include = env::var("DEP_LUA_INCLUDE")
        .expect("DEP_LUA_INCLUDE not set: lpctl must depend directly on mlua-sys (vendored)");

    println!("cargo:rerun-if-changed={}", lib_dir.display());
    for f in lib
        .iter()
        .chain([&native, &c_dir.join("lp_abi.h"), &c_dir.join("lp_host.h")])
    {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rerun-if-env-changed=DEP_LUA_INCLUDE");
    // the packet library reads Lua values directly where a field read is hot (lib/lp_lib.h): the
    // internal headers of the Lua both builds use (guest-lua's build finds them)
    let lua_src = env::var("DEP_LUAPKT_GUEST_LUA_SRC")
        .expect("DEP_LUAPKT_GUEST_LUA_SRC not set: lpctl must depend directly on guest-lua");

    let mut b = cc::Build::new();
    for f in c_files {
        b.file(f);
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
