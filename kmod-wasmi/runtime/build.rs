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
        "lp_w2c_mem.h",
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
    let text = std::fs::read_to_string(c).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
    let header = format!("#include \"{name}_w2c.h\"\n");
    std::fs::write(c, view_memory(&text, &header))
        .unwrap_or_else(|e| panic!("{}: {e}", c.display()));
}

/// wasm2c's loads and stores (its DEFINE_LOAD / DEFINE_STORE list).
const ACCESSORS: &[&str] = &[
    "i32_load",
    "i64_load",
    "f32_load",
    "f64_load",
    "i32_load8_s",
    "i64_load8_s",
    "i32_load8_u",
    "i64_load8_u",
    "i32_load16_s",
    "i64_load16_s",
    "i32_load16_u",
    "i64_load16_u",
    "i64_load32_s",
    "i64_load32_u",
    "i32_store",
    "i64_store",
    "f32_store",
    "f64_store",
    "i32_store8",
    "i32_store16",
    "i64_store8",
    "i64_store16",
    "i64_store32",
];

/// The generated C with every load and store through a per-function view of the memory
/// (guest-lua/w2c/lp_w2c_mem.h says why that is as safe as wasm2c's own accessors): each
/// function copies the memory's base and size after its prologue, and
/// `NAME(&instance->w2c_memory,` becomes `lpm_NAME(lpm_data, lpm_size,`. Panics on an access it
/// does not know (a newer wasm2c), and when instantiation would run guest code (a start
/// function), which would see the memory before it has its final size.
fn view_memory(c: &str, header: &str) -> String {
    const MEM: &str = "(&instance->w2c_memory, ";
    let at = c.find(header).expect("wasm2c's output includes its header");
    let inst = c
        .find("_instantiate(")
        .and_then(|i| c[i..].find('{').map(|j| i + j + 1))
        .expect("wasm2c's output has an instantiate function");
    let body = &c[inst..inst + c[inst..].find("\n}").expect("its end")];
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with("init_") || line.starts_with("assert("),
            "wasm2c output: instantiation runs more than initializers: {line}"
        );
    }
    // the memory's initial pages: no instance has less (lp_w2c_mem.h's LPM_MIN_SIZE)
    const ALLOC: &str = "wasm_rt_allocate_memory(&instance->w2c_memory, ";
    let a = c.find(ALLOC).expect("wasm2c's output allocates the memory") + ALLOC.len();
    let initial: u64 = c[a..a + c[a..].find(',').expect("its arguments")]
        .trim()
        .parse()
        .expect("the initial pages as a number");
    let mut out = String::with_capacity(c.len() + c.len() / 4);
    out.push_str(&c[..at + header.len()]);
    out.push_str(&format!(
        "#define LPM_MIN_SIZE ({initial}ull * 65536u)\n#include \"lp_w2c_mem.h\"\n"
    ));
    let mut rest = &c[at + header.len()..];
    let mut rewritten = 0;
    while let Some(i) = rest.find(MEM) {
        let before = &rest[..i];
        let start = before
            .rfind(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
            .map_or(0, |j| j + 1);
        let ident = &before[start..];
        if ACCESSORS.contains(&ident) {
            out.push_str(&before[..start]);
            out.push_str("lpm_");
            out.push_str(ident);
            out.push_str("(lpm_data, lpm_size, ");
            rewritten += 1;
        } else {
            assert!(
                !ident.contains("_load") && !ident.contains("_store"),
                "wasm2c output: an access this build does not know: {ident}"
            );
            out.push_str(before);
            out.push_str(MEM);
        }
        rest = &rest[i + MEM.len()..];
    }
    out.push_str(rest);
    assert!(rewritten > 0, "wasm2c output: no load or store found");
    out.replace("FUNC_PROLOGUE;", "FUNC_PROLOGUE;\n  LPM_VIEW;")
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
