//! Builds `lua.wasm`: Lua 5.4 (sources from the `lua-src` crate in the cargo registry) plus the
//! luapkt packet library, compiled for wasm32 with clang and linked with wasm-ld, with no WASI
//! imports. (The packet library's native build, for `lpctl bench`, is in cli/build.rs.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs, thread};

#[path = "build/fuel.rs"]
mod fuel;
#[path = "build/regions.rs"]
mod regions;

/// The Lua sources inside the `lua-src` build-dependency (pinned in Cargo.toml).
const LUA_SRC_CRATE: &str = "lua-src-551.0.2";
const LUA_DIR: &str = "lua-5.4.9";

/// Lua's core and the libraries a script gets (no io, os, package, debug).
const LUA_FILES: &[&str] = &[
    "lapi", "lcode", "lctype", "ldebug", "ldo", "ldump", "lfunc", "lgc", "llex", "lmem", "lobject",
    "lopcodes", "lparser", "lstate", "lstring", "ltable", "ltm", "lundump", "lvm", "lzio",
    "lbaselib", "lcorolib", "lmathlib", "lstrlib", "ltablib", "lutf8lib",
];
/// Shadow stack of the guest; enough for Lua's C-call limit of 200.
const STACK_SIZE: u32 = 32 * 1024;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let c_dir = manifest.join("c");
    let lua = find_lua_sources();
    println!("cargo:rerun-if-changed=c");
    println!("cargo:rerun-if-env-changed=LUAPKT_CLANG");
    println!("cargo:rerun-if-env-changed=LUAPKT_WASM_LD");

    let clang = env::var("LUAPKT_CLANG").unwrap_or_else(|_| "clang-16".into());
    let obj_dir = out.join("wasm-obj");
    fs::create_dir_all(&obj_dir).unwrap();
    let common: Vec<String> = vec![
        "--target=wasm32-wasi".into(),
        "--sysroot=/usr".into(),
        "-O2".into(),
        // whole-program LTO: Lua's API functions inline across files, which matters under an
        // interpreter where every wasm call costs a frame (~25% fewer ns per packet)
        "-flto".into(),
        // memcpy/memset become memory.copy/memory.fill: wasmi charges a copy by its size
        // (kmod-wasmi/runtime/src/guest.rs) instead of ~35 fuel per byte of a byte loop, which the
        // per-call fuel ceiling (abi::limits::CALL_FUEL_CEILING) could not afford
        "-mbulk-memory".into(),
        "-ffunction-sections".into(),
        "-fdata-sections".into(),
        "-DLUA_COMPAT_5_3".into(),
        "-include".into(),
        c_dir.join("lp_conf.h").display().to_string(),
        format!("-I{}", c_dir.join("include").display()),
        format!("-I{}", lua.display()),
        format!("-I{}", c_dir.display()),
    ];

    let mut jobs: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for f in LUA_FILES {
        let mut extra = vec!["-w".to_string()];
        if *f == "lmathlib" {
            // math.random's seed comes from the host clock, not WASI
            extra.push("-Dtime=lp_time".into());
        }
        let src = if *f == "lgc" {
            patched_lgc(&lua, &out)
        } else {
            lua.join(format!("{f}.c"))
        };
        jobs.push((src, extra));
    }
    let warn = vec!["-Wall".to_string(), "-Wextra".into(), "-Werror".into()];
    jobs.push((c_dir.join("lauxlib_sandbox.c"), vec!["-w".into()]));
    for f in ["lp_guest.c", "libc_sandbox.c"] {
        jobs.push((c_dir.join(f), warn.clone()));
    }
    // the packet library: every file of c/lib (lpctl's native baseline builds the same list)
    for f in lib_files(&c_dir) {
        jobs.push((f, warn.clone()));
    }

    let objs = compile_all(&clang, &common, &jobs, &obj_dir);
    let wasm = out.join("lua.wasm");
    let mut link = Command::new(&clang);
    link.args([
        "--target=wasm32-wasi",
        "--sysroot=/usr",
        "-nostartfiles",
        "-flto",
        "-mbulk-memory",
    ])
    .args([
        "-Wl,--lto-O2",
        "-Wl,--no-entry",
        "-Wl,--export=__stack_pointer",
        "-Wl,--stack-first",
        &format!("-Wl,-z,stack-size={STACK_SIZE}"),
        "-Wl,--gc-sections",
    ])
    .args(&objs)
    .arg("-o")
    .arg(&wasm);
    run(&mut link, "link lua.wasm");

    let linked = fs::read(&wasm).expect("read lua.wasm");
    // the linked module keeps its name section (the passes drop it, so lua.wasm is the same
    // bytes): function names for fuel profiles (`wasm-objdump -x lua-linked.wasm`)
    fs::write(out.join("lua-linked.wasm"), &linked).expect("write lua-linked.wasm");
    let (with_regions, report) = regions::add_fuel_regions(&linked).expect("fuel-region pass");
    wasmparser::Validator::new()
        .validate_all(&with_regions)
        .expect("the fuel-region pass produced an invalid module");
    let g = abi::guest::IMPORT_MODULE;
    let (metered, fuel) = fuel::add_fuel(
        &with_regions,
        abi::guest::EXPORT_FUEL,
        g,
        abi::guest::IMPORT_OUT_OF_FUEL,
    )
    .expect("fuel pass");
    wasmparser::Validator::new()
        .validate_all(&metered)
        .expect("the fuel pass produced an invalid module");
    fs::write(&wasm, &metered).expect("write lua.wasm");
    let hash = <sha2::Sha256 as sha2::Digest>::digest(&metered);
    let bytes: Vec<String> = hash.iter().map(|b| format!("0x{b:02x}")).collect();
    fs::write(
        out.join("lua_wasm_sha256.rs"),
        format!(
            "/// SHA-256 of [`LUA_WASM`].\npub const LUA_WASM_SHA256: [u8; 32] = [{}];\n",
            bytes.join(", ")
        ),
    )
    .expect("write lua_wasm_sha256.rs");
    // for dependents' build scripts (`links`): lpctl translates the guest with wasm2c
    println!("cargo:wasm={}", wasm.display());
    // and lpctl's native baseline builds the packet library against the same Lua's internal
    // headers (mlua-sys vendors this lua-src too; its include dir has the public ones only)
    println!("cargo:lua_src={}", lua.display());
    // and the library's C: every file of this directory (lib_files), the host interface above it
    println!("cargo:lib_dir={}", c_dir.join("lib").display());
    fs::write(
        out.join("regions.txt"),
        format!(
            "{} functions, {} loops inserted; fuel: {} region charges, {} bulk-memory charges\n",
            report.functions, report.loops, fuel.charges, fuel.bulk
        ),
    )
    .expect("write regions.txt");
}

/// lgc.c with smaller steps: the guest paces the collector one step at a time (`c/lp_guest.c`,
/// "the collector's pace"), and two of Lua's steps cost too much of a call's fuel at once. A
/// sweep step visits 16 objects instead of 100 (freeing 100 cost ~45,000 fuel), and entering
/// the sweep no longer frees every dead object at the head of the object list there and then
/// (`sweeptolive`, an optimisation: the garbage made during the whole cycle, over 90,000 fuel
/// in the atomic step); the sweep steps visit those objects instead, which is correct for
/// objects made after the atomic step too (they carry the new white and are kept).
fn patched_lgc(lua: &Path, out: &Path) -> PathBuf {
    let text = fs::read_to_string(lua.join("lgc.c")).expect("read lgc.c");
    let from = "#define GCSWEEPMAX\t100\n";
    assert_eq!(
        text.matches(from).count(),
        1,
        "lgc.c: GCSWEEPMAX is not defined as expected"
    );
    let enter = "  g->sweepgc = sweeptolive(L, &g->allgc);\n";
    assert_eq!(
        text.matches(enter).count(),
        1,
        "lgc.c: entersweep is not as expected"
    );
    let path = out.join("lgc.c");
    let text = text
        .replace(from, "#define GCSWEEPMAX\t16\n")
        .replace(enter, "  g->sweepgc = &g->allgc;\n");
    fs::write(&path, text).expect("write lgc.c");
    path
}

/// The packet library's C files (c/lib/*.c), in a fixed order.
fn lib_files(c_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(c_dir.join("lib"))
        .expect("read c/lib")
        .map(|e| e.expect("read c/lib").path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    files.sort();
    files
}

fn compile_all(
    clang: &str,
    common: &[String],
    jobs: &[(PathBuf, Vec<String>)],
    obj_dir: &Path,
) -> Vec<PathBuf> {
    let objs: Vec<PathBuf> = jobs
        .iter()
        .map(|(src, _)| obj_dir.join(src.file_stem().unwrap()).with_extension("o"))
        .collect();
    thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .zip(&objs)
            .map(|((src, extra), obj)| {
                s.spawn(move || {
                    let mut cmd = Command::new(clang);
                    cmd.args(common)
                        .args(extra)
                        .arg("-c")
                        .arg(src)
                        .arg("-o")
                        .arg(obj);
                    run(&mut cmd, &format!("compile {}", src.display()));
                })
            })
            .collect();
        for h in handles {
            h.join().expect("compile thread");
        }
    });
    objs
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{what} failed ({s}): {cmd:?}"),
        Err(e) => panic!(
            "{what}: cannot run {:?}: {e}. The guest needs clang-16, lld-16, wasi-libc and \
             libclang-rt-16-dev-wasm32 (see .ci/run)",
            cmd.get_program()
        ),
    }
}

/// `$CARGO_HOME/registry/src/*/lua-src-VERSION/lua-5.4.9`: the build-dependency guarantees
/// cargo has unpacked it.
fn find_lua_sources() -> PathBuf {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME must be set");
    let registry = cargo_home.join("registry").join("src");
    if let Ok(entries) = fs::read_dir(&registry) {
        for e in entries.flatten() {
            let dir = e.path().join(LUA_SRC_CRATE).join(LUA_DIR);
            if dir.join("lua.h").exists() {
                return dir;
            }
        }
    }
    panic!(
        "Lua sources not found under {}/*/{LUA_SRC_CRATE}/{LUA_DIR}",
        registry.display()
    );
}
