//! `hostile-packages OUTDIR`: writes the crafted `.lpk` packages the kernel VM tests load
//! (tests/vm/hostile/60-hostile.sh): modules declaring far more than `abi::module_caps`
//! allows (each must be refused before wasmi sees it), a guest that is not the built-in one
//! but works, a guest that spins in `lp_init`, and 200 random modules from wasm-smith.
//! Prints one line per file.

use abi::guest as g;
use luapkt_tests::hostile;
use runtime::precheck;
use std::path::Path;
use std::process::ExitCode;
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, CustomSection, ExportKind, ExportSection, Function,
    FunctionSection, GlobalSection, GlobalType, Instruction, MemorySection, MemoryType, Module,
    TypeSection, ValType,
};

/// The script every package carries (valid Lua: only the guest is hostile).
const SCRIPT: &[u8] = b"function process_packet(p) return lp.ACCEPT end\n";

/// 300,000 functions declared, no bodies: ~300 KB.
fn funcs300k() -> Vec<u8> {
    hostile::many_functions(300_000)
}

fn types() -> Vec<u8> {
    hostile::many_types(100_000)
}

fn globals() -> Vec<u8> {
    hostile::many_globals(100_000)
}

/// A table of 2^31 elements.
fn tables() -> Vec<u8> {
    hostile::table(1 << 31, Some(1 << 31))
}

/// 100,000 (empty) data segments.
fn datacount() -> Vec<u8> {
    hostile::many_data_segments(100_000)
}

/// One function declaring 2^32 - 1 locals.
fn locals() -> Vec<u8> {
    hostile::function(vec![(u32::MAX, ValType::I32)], &[])
}

/// A memory of 1 GiB minimum (16,384 pages).
fn memory() -> Vec<u8> {
    hostile::memory(16_384)
}

/// The built-in guest with one custom section appended: another hash, same behaviour.
fn foreign() -> Vec<u8> {
    let mut m = guest_lua::LUA_WASM.to_vec();
    let x = CustomSection {
        name: "x".into(),
        data: b"not the built-in guest"[..].into(),
    };
    wasm_encoder::Section::append_to(&x, &mut m);
    m
}

/// A guest with every export the runtime instantiates, whose `lp_init` never returns: it
/// passes the precheck and wasmi, and spins when an instance is built.
fn spin() -> Vec<u8> {
    use ValType::I32;
    let mut m = Module::new();
    let mut t = TypeSection::new();
    t.ty().function([I32], []); // 0: lp_trampoline, lp_free
    t.ty().function([I32], [I32]); // 1: lp_init, lp_alloc
    t.ty().function([], [I32]); // 2: lp_ctx, lp_recover, lp_errmsg, lp_errlen, lp_mem_used
    t.ty().function([I32, I32, I32, I32], [I32]); // 3: lp_load, lp_run
    t.ty().function([I32, I32], [I32]); // 4: lp_ref_global, lp_ref_string
    m.section(&t);
    // (export, type, result): None for no result, Some(v) returns v; lp_init spins
    let funcs: [(&str, u32, Option<i32>); 13] = [
        (g::EXPORT_TRAMPOLINE, 0, None),
        (g::EXPORT_INIT, 1, Some(0)),
        (g::EXPORT_CTX, 2, Some(1024)),
        (g::EXPORT_ALLOC, 1, Some(8192)),
        (g::EXPORT_FREE, 0, None),
        (g::EXPORT_LOAD, 3, Some(0)),
        (g::EXPORT_REF_GLOBAL, 4, Some(1)),
        (g::EXPORT_REF_STRING, 4, Some(1)),
        (g::EXPORT_RUN, 3, Some(0)),
        (g::EXPORT_RECOVER, 2, Some(g::ERR_RUNTIME)),
        (g::EXPORT_ERRMSG, 2, Some(0)),
        (g::EXPORT_ERRLEN, 2, Some(0)),
        (g::EXPORT_MEM_USED, 2, Some(0)),
    ];
    let mut fs = FunctionSection::new();
    for (_, ty, _) in funcs {
        fs.function(ty);
    }
    m.section(&fs);
    let mut mem = MemorySection::new();
    mem.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&mem);
    let mut gs = GlobalSection::new();
    let sp = GlobalType {
        val_type: I32,
        mutable: true,
        shared: false,
    };
    gs.global(sp, &ConstExpr::i32_const(65536));
    m.section(&gs);
    let mut ex = ExportSection::new();
    for (i, (name, _, _)) in funcs.iter().enumerate() {
        ex.export(name, ExportKind::Func, i as u32);
    }
    ex.export(g::EXPORT_MEMORY, ExportKind::Memory, 0);
    ex.export(g::EXPORT_STACK_POINTER, ExportKind::Global, 0);
    m.section(&ex);
    let mut code = CodeSection::new();
    for (name, _, result) in funcs {
        let mut f = Function::new([]);
        if name == g::EXPORT_INIT {
            f.instruction(&Instruction::Loop(BlockType::Empty));
            f.instruction(&Instruction::Br(0));
            f.instruction(&Instruction::End);
            f.instruction(&Instruction::Unreachable);
        } else if let Some(v) = result {
            f.instruction(&Instruction::I32Const(v));
        }
        f.instruction(&Instruction::End);
        code.function(&f);
    }
    m.section(&code);
    m.finish()
}

fn write(dir: &Path, file: &str, module: &[u8]) -> Result<(), String> {
    let name = file.trim_end_matches(".lpk");
    let pkg = runtime::package::build(module, name, SCRIPT).map_err(|e| format!("{file}: {e}"))?;
    let path = dir.join(file);
    std::fs::write(&path, &pkg).map_err(|e| format!("{}: {e}", path.display()))?;
    let verdict = match precheck::check(module) {
        Ok(_) => "passes the precheck".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    println!("{}: {} bytes, {verdict}", path.display(), pkg.len());
    Ok(())
}

fn run(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    type Build = fn() -> Vec<u8>;
    let crafted: [(&str, Build); 7] = [
        ("funcs300k.lpk", funcs300k),
        ("types.lpk", types),
        ("globals.lpk", globals),
        ("tables.lpk", tables),
        ("datacount.lpk", datacount),
        ("locals.lpk", locals),
        ("memory.lpk", memory),
    ];
    for (file, build) in crafted {
        let module = build();
        if precheck::check(&module).is_ok() {
            return Err(format!("{file}: the precheck accepts it"));
        }
        write(dir, file, &module)?;
    }
    for (file, module) in [("foreign.lpk", foreign()), ("spin.lpk", spin())] {
        if let Err(e) = precheck::check(&module) {
            return Err(format!("{file}: refused by the precheck: {e}"));
        }
        write(dir, file, &module)?;
    }
    for n in 0..200u64 {
        // a seed wasm-smith cannot build a module from is replaced by the next free one
        let module = (0..)
            .map(|k: u64| n + 1_000 * k)
            .take(100)
            .find_map(|seed| hostile::smith_module(seed, n % 2 == 0, 100_000))
            .ok_or_else(|| format!("smith{n}: wasm-smith built no module"))?;
        write(dir, &format!("smith{n}.lpk"), &module)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: hostile-packages OUTDIR");
        return ExitCode::from(2);
    };
    match run(Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostile-packages: {e}");
            ExitCode::FAILURE
        }
    }
}
