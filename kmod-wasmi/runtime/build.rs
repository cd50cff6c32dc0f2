//! With the `compiled` feature: the compiled engine's C (src/compiled_exec.rs). The built-in
//! guest, translated to C by WABT's wasm2c, compiled with the runtime and host glue of
//! guest-lua/w2c: for the host (lpctl), or with the kernel's flags when the target is
//! x86_64-unknown-none (nft_lua.ko; scripts/build-kmod.sh adds the mitigation flags of the
//! kernel's configuration in LUAPKT_GUEST_KCFLAGS).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What every kernel object is built with (arch/x86/Makefile), plus soft-float: wasm2c's
/// functions take and return doubles, which the kernel may not keep in SSE registers.
const KERNEL_CFLAGS: &[&str] = &[
    "--target=x86_64-linux-gnu",
    "-ffreestanding",
    "-nostdlibinc",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-mno-sse",
    "-mno-mmx",
    "-mno-sse2",
    "-mno-3dnow",
    "-mno-avx",
    "-Xclang",
    "-target-feature",
    "-Xclang",
    "+soft-float",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fno-jump-tables",
    "-fno-common",
    "-ffunction-sections",
    "-fdata-sections",
    "-DLP_W2C_KERNEL",
    "-DNDEBUG",
];

fn main() {
    if env::var_os("CARGO_FEATURE_COMPILED").is_none() {
        return;
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let guest = manifest.join("../..").join("guest-lua");
    let w2c_dir = guest.join("w2c");
    let c_dir = guest.join("c");
    let wasm = env::var("DEP_LUAPKT_GUEST_WASM")
        .expect("DEP_LUAPKT_GUEST_WASM not set: guest-lua's build prints it (links)");
    println!("cargo:rerun-if-env-changed=DEP_LUAPKT_GUEST_WASM");
    println!("cargo:rerun-if-env-changed=LUAPKT_GUEST_KCFLAGS");
    // the path stays when guest-lua rebuilds the guest: its content must trigger this too
    println!("cargo:rerun-if-changed={wasm}");
    for f in [
        "wasm-rt.h",
        "lp_w2c_rt.c",
        "lp_w2c_host.c",
        "lp_w2c_jmp.c",
        "kinclude",
        "checks",
    ] {
        println!("cargo:rerun-if-changed={}", w2c_dir.join(f).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        c_dir.join("lp_abi.h").display()
    );
    write_hash(&wasm, &out);

    let c = out.join("lua_w2c.c");
    wasm2c(Path::new(&wasm), "lua", &c);
    let kernel = env::var("TARGET").as_deref() == Ok("x86_64-unknown-none");
    if !kernel {
        checks(&w2c_dir, &out);
    }

    let mut b = cc::Build::new();
    b.file(&c)
        .file(w2c_dir.join("lp_w2c_rt.c"))
        .file(w2c_dir.join("lp_w2c_host.c"))
        .file(w2c_dir.join("lp_w2c_jmp.c"))
        .include(&w2c_dir)
        .include(&out)
        .include(&c_dir)
        // as wasm2c asks: no sibling-call optimisation, IEEE rounding kept
        .flag("-fno-optimize-sibling-calls")
        .flag("-frounding-math")
        // lp_w2c_state is reached from the instance by pointer arithmetic
        .flag("-fno-strict-aliasing")
        .warnings(false)
        .opt_level(2);
    if kernel {
        b.compiler("clang-16")
            .archiver("ar")
            .no_default_flags(true)
            .include(w2c_dir.join("kinclude"));
        for f in KERNEL_CFLAGS {
            b.flag(f);
        }
        for f in env::var("LUAPKT_GUEST_KCFLAGS")
            .unwrap_or_default()
            .split_whitespace()
        {
            b.flag(f);
        }
        b.flag("-O2");
    }
    b.compile("lp_compiled");
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (WABT: scripts/setup.sh installs wabt)"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}

/// wasm2c `wasm` as module `name` into `c` (and its header beside it).
fn wasm2c(wasm: &Path, name: &str, c: &Path) {
    run(Command::new("wasm2c")
        .arg(wasm)
        .args(["-n", name, "-o"])
        .arg(c));
}

/// The runtime's own tests (tests/compiled_checks.rs): a module that breaks each rule the
/// runtime enforces (guest-lua/w2c/checks/checks.wat), translated and compiled the same way
/// with a small host; a library nothing links unless a test calls it.
fn checks(w2c_dir: &Path, out: &Path) {
    let dir = w2c_dir.join("checks");
    let wasm = out.join("checks.wasm");
    run(Command::new("wat2wasm")
        .arg(dir.join("checks.wat"))
        .arg("-o")
        .arg(&wasm));
    let c = out.join("checks_w2c.c");
    wasm2c(&wasm, "checks", &c);
    cc::Build::new()
        .file(&c)
        .file(dir.join("lp_w2c_checks.c"))
        .include(w2c_dir)
        .include(out)
        .flag("-fno-optimize-sibling-calls")
        .flag("-frounding-math")
        .flag("-fno-strict-aliasing")
        .warnings(false)
        .opt_level(2)
        .compile("lp_w2c_checks");
}

/// SHA-256 of the guest translated, checked against the one the runtime embeds.
fn write_hash(wasm: &str, out: &Path) {
    let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("{wasm}: {e}"));
    let hash: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&bytes).into();
    std::fs::write(
        out.join("w2c_sha256.rs"),
        format!("/// SHA-256 of the guest wasm2c translated.\npub const W2C_SHA256: [u8; 32] = {hash:?};\n"),
    )
    .expect("write w2c_sha256.rs");
}
