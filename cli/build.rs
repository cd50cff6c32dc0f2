//! Compiles the C half of the native engine (src/engine/native.rs) for the host: the packet
//! library the wasm guest uses (guest-lua/c/lp_lib.c) and its native glue (lp_native.c), against
//! the Lua 5.4 headers of mlua-sys's vendored build, whose library the final link brings in.

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

    let mut b = cc::Build::new();
    for f in C_FILES {
        b.file(c_dir.join(f));
    }
    b.include(&c_dir)
        .include(&lua_include)
        // as the guest and mlua-sys's Lua are built
        .define("LUA_COMPAT_5_3", None)
        .warnings(true)
        .extra_warnings(true)
        // a baseline for benchmarks: optimised whatever the profile
        .opt_level(2);
    b.compile("lp_native");
    compiled_guest(&manifest);
}

/// The compiled engine (src/engine/compiled.rs): the built-in guest translated to C by WABT's
/// wasm2c and compiled with the runtime and host glue of guest-lua/w2c.
fn compiled_guest(manifest: &std::path::Path) {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let w2c_dir = manifest.join("..").join("guest-lua").join("w2c");
    let c_dir = manifest.join("..").join("guest-lua").join("c");
    let wasm = env::var("DEP_LUAPKT_GUEST_WASM")
        .expect("DEP_LUAPKT_GUEST_WASM not set: guest-lua's build prints it (links)");
    println!("cargo:rerun-if-env-changed=DEP_LUAPKT_GUEST_WASM");
    // the path stays when guest-lua rebuilds the guest: its content must trigger this too
    println!("cargo:rerun-if-changed={wasm}");
    let bytes = std::fs::read(&wasm).unwrap_or_else(|e| panic!("{wasm}: {e}"));
    let hash: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&bytes).into();
    std::fs::write(
        out.join("w2c_sha256.rs"),
        format!("/// SHA-256 of the guest wasm2c translated.\npub const W2C_SHA256: [u8; 32] = {hash:?};\n"),
    )
    .expect("write w2c_sha256.rs");
    for f in ["wasm-rt.h", "lp_w2c_rt.c", "lp_w2c_host.c"] {
        println!("cargo:rerun-if-changed={}", w2c_dir.join(f).display());
    }
    let c = out.join("lua_w2c.c");
    let status = std::process::Command::new("wasm2c")
        .arg(&wasm)
        .args(["-n", "lua", "-o"])
        .arg(&c)
        .status()
        .unwrap_or_else(|e| panic!("wasm2c: {e} (WABT's wasm2c: scripts/setup.sh installs wabt)"));
    assert!(status.success(), "wasm2c {wasm} failed: {status}");
    cc::Build::new()
        .file(&c)
        .file(w2c_dir.join("lp_w2c_rt.c"))
        .file(w2c_dir.join("lp_w2c_host.c"))
        .include(&w2c_dir)
        .include(&out)
        .include(&c_dir)
        // as wasm2c asks: no sibling-call optimisation, IEEE rounding kept
        .flag("-fno-optimize-sibling-calls")
        .flag("-frounding-math")
        .warnings(false)
        .opt_level(2)
        .compile("lp_compiled");
}
