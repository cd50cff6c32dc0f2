//! Guest modules built to exhaust wasmi's allocations are refused before wasmi sees them
//! (`runtime::precheck`, `abi::module_caps`), the built-in guest is not, and random modules
//! from wasm-smith go through the precheck, wasmi and an instance build without a panic or a
//! hang.
//!
//! `LUAPKT_SOAK_MODULES=N` raises the number of random modules (scripts/soak-modules.sh).

use abi::module_caps as caps;
use arbitrary::Unstructured;
use runtime::precheck::{check, Item, PrecheckError};
use runtime::{GuestCache, Host, Limits, LoadError, LogLevel, OnError, Script};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, CustomSection, DataCountSection, DataSection,
    ElementSection, Elements, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, ImportSection, Instruction, MemorySection, MemoryType, Module,
    RawSection, RefType, TableSection, TableType, TypeSection, ValType,
};

// ---------------------------------------------------------------------------------------
// Hand-built hostile modules

fn one_type(m: &mut Module) {
    let mut t = TypeSection::new();
    t.ty().function([], []);
    m.section(&t);
}

/// `n` functions declared in the function section, no bodies (~n bytes).
fn many_functions(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    one_type(&mut m);
    let mut f = FunctionSection::new();
    for _ in 0..n {
        f.function(0);
    }
    m.section(&f);
    m.finish()
}

fn many_types(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    let mut t = TypeSection::new();
    for _ in 0..n {
        t.ty().function([], []);
    }
    m.section(&t);
    m.finish()
}

fn many_globals(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    let mut g = GlobalSection::new();
    let ty = GlobalType {
        val_type: ValType::I32,
        mutable: false,
        shared: false,
    };
    for _ in 0..n {
        g.global(ty, &ConstExpr::i32_const(0));
    }
    m.section(&g);
    m.finish()
}

fn table(minimum: u64, maximum: Option<u64>) -> Vec<u8> {
    let mut m = Module::new();
    let mut t = TableSection::new();
    t.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum,
        maximum,
        shared: false,
    });
    m.section(&t);
    m.finish()
}

fn memory(pages: u64) -> Vec<u8> {
    let mut m = Module::new();
    let mut s = MemorySection::new();
    s.memory(MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&s);
    m.finish()
}

fn many_data_segments(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    let mut d = DataSection::new();
    for _ in 0..n {
        d.passive([]);
    }
    m.section(&d);
    m.finish()
}

fn data_count(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    m.section(&DataCountSection { count: n });
    m.finish()
}

/// One passive data segment of `len` real bytes.
fn big_data(len: usize) -> Vec<u8> {
    let mut m = Module::new();
    let mut d = DataSection::new();
    d.passive(vec![0xa5; len]);
    m.section(&d);
    m.finish()
}

/// A data segment whose length claims 4 GiB - 1 with no bytes behind it.
fn lying_data() -> Vec<u8> {
    let mut m = Module::new();
    // count 1, passive (1), length 0xffff_ffff as LEB128
    let body = [1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f];
    m.section(&RawSection {
        id: 11,
        data: &body,
    });
    m.finish()
}

/// One function whose body is `body` with locals `locals`.
fn function(locals: Vec<(u32, ValType)>, body: &[Instruction<'_>]) -> Vec<u8> {
    let mut m = Module::new();
    one_type(&mut m);
    let mut fs = FunctionSection::new();
    fs.function(0);
    m.section(&fs);
    let mut f = Function::new(locals);
    for i in body {
        f.instruction(i);
    }
    f.instruction(&Instruction::End);
    let mut c = CodeSection::new();
    c.function(&f);
    m.section(&c);
    m.finish()
}

fn nested_blocks(depth: usize) -> Vec<u8> {
    let mut body = vec![Instruction::Block(BlockType::Empty); depth];
    body.extend(std::iter::repeat_n(Instruction::End, depth));
    function(Vec::new(), &body)
}

fn custom(len: usize) -> Vec<u8> {
    let mut m = Module::new();
    m.section(&CustomSection {
        name: "x".into(),
        data: vec![0; len].into(),
    });
    m.finish()
}

/// A global initialised by `i32.const 1 (i32.const 1 i32.add) x n` (extended-const).
fn long_const_expr(n: usize) -> Vec<u8> {
    let mut insns = vec![Instruction::I32Const(1)];
    for _ in 0..n {
        insns.push(Instruction::I32Const(1));
        insns.push(Instruction::I32Add);
    }
    let mut m = Module::new();
    let mut g = GlobalSection::new();
    let ty = GlobalType {
        val_type: ValType::I32,
        mutable: false,
        shared: false,
    };
    g.global(ty, &ConstExpr::extended(insns));
    m.section(&g);
    m.finish()
}

fn many_imports(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    one_type(&mut m);
    let mut i = ImportSection::new();
    for _ in 0..n {
        i.import("lp", "now", EntityType::Function(0));
    }
    m.section(&i);
    m.finish()
}

fn many_exports(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    one_type(&mut m);
    let mut fs = FunctionSection::new();
    fs.function(0);
    m.section(&fs);
    let mut e = ExportSection::new();
    for k in 0..n {
        e.export(&format!("f{k}"), ExportKind::Func, 0);
    }
    m.section(&e);
    m.finish()
}

fn many_element_items(n: usize) -> Vec<u8> {
    let mut m = Module::new();
    let mut e = ElementSection::new();
    e.passive(Elements::Functions(vec![0; n].into()));
    m.section(&e);
    m.finish()
}

fn wide_type(params: usize) -> Vec<u8> {
    let mut m = Module::new();
    let mut t = TypeSection::new();
    t.ty().function(vec![ValType::I32; params], []);
    m.section(&t);
    m.finish()
}

/// A module with `sections` appended as raw sections after the header.
fn raw(sections: &[(u8, &[u8])]) -> Vec<u8> {
    let mut m = Module::new();
    for (id, data) in sections {
        m.section(&RawSection { id: *id, data });
    }
    m.finish()
}

/// Checks that `module` is refused by `check` and by `GuestCache::get` with the same error,
/// quickly; returns the error.
fn refused(what: &str, module: &[u8]) -> PrecheckError {
    let t = Instant::now();
    let e = match check(module) {
        Err(e) => e,
        Ok(c) => panic!("{what}: accepted by check: {c:?}"),
    };
    match GuestCache::new().get(module, 1024) {
        Err(LoadError::Module(e2)) => assert_eq!(e2, e, "{what}"),
        Err(other) => panic!("{what}: refused by wasmi, not the precheck: {other}"),
        Ok(_) => panic!("{what}: compiled"),
    }
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "{what}: took {took:?}");
    println!(
        "{what:>28} ({:>8} bytes, {took:>10.2?}): guest module refused: {e}",
        module.len()
    );
    e
}

fn exceeds(what: &str, module: &[u8], item: Item, declared: u64) {
    match refused(what, module) {
        PrecheckError::Exceeded {
            item: i,
            declared: d,
            cap,
            ..
        } => {
            assert_eq!((i, d), (item, declared), "{what}");
            assert_eq!(cap, item.cap(), "{what}");
        }
        e => panic!("{what}: {e}"),
    }
}

#[test]
fn hostile_modules_are_refused_before_wasmi() {
    let funcs = many_functions(300_000);
    exceeds("300,000 functions", &funcs, Item::Functions, 300_000);
    assert_eq!(
        check(&funcs).unwrap_err().to_string(),
        format!(
            "module declares 300000 functions (cap {})",
            caps::MAX_FUNCTIONS
        )
    );
    match GuestCache::new().get(&funcs, 1024) {
        Err(e) => assert_eq!(
            e.to_string(),
            format!(
                "guest module refused: module declares 300000 functions (cap {})",
                caps::MAX_FUNCTIONS
            )
        ),
        Ok(_) => unreachable!(),
    }
    exceeds("100,000 types", &many_types(100_000), Item::Types, 100_000);
    exceeds(
        "100,000 globals",
        &many_globals(100_000),
        Item::Globals,
        100_000,
    );
    exceeds(
        "table of 2^31 elements",
        &table(1 << 31, Some(1 << 31)),
        Item::TableElements,
        1 << 31,
    );
    exceeds(
        "table without a maximum",
        &table(1, None),
        Item::TableMaximum,
        u32::MAX.into(),
    );
    exceeds(
        "100,000 data segments",
        &many_data_segments(100_000),
        Item::DataSegments,
        100_000,
    );
    exceeds(
        "data count 2^32-1",
        &data_count(u32::MAX),
        Item::DataSegments,
        u32::MAX.into(),
    );
    exceeds(
        "1 MiB of data",
        &big_data(1 << 20),
        Item::DataBytes,
        1 << 20,
    );
    match refused("data segment claiming 4 GiB", &lying_data()) {
        PrecheckError::Malformed { offset, .. } => assert!(offset > 8),
        e => panic!("{e}"),
    }
    exceeds(
        "2^32-1 locals",
        &function(vec![(u32::MAX, ValType::I32)], &[]),
        Item::Locals,
        u32::MAX.into(),
    );
    let many_groups: Vec<(u32, ValType)> = vec![(100, ValType::I64); 50];
    exceeds(
        "50 x 100 locals",
        &function(many_groups, &[]),
        Item::Locals,
        200,
    );
    exceeds(
        "1 GiB memory minimum",
        &memory(16_384),
        Item::MemoryPages,
        16_384,
    );
    exceeds(
        "10,000 nested blocks",
        &nested_blocks(10_000),
        Item::Nesting,
        caps::MAX_NESTING + 1,
    );
    exceeds(
        "1 MiB custom section",
        &custom(1 << 20),
        Item::CustomBytes,
        (1 << 20) + 2,
    );
    let huge = custom(3 << 20);
    exceeds(
        "3 MiB custom section",
        &huge,
        Item::ModuleBytes,
        huge.len() as u64,
    );
    exceeds(
        "10,000 imports",
        &many_imports(10_000),
        Item::Imports,
        10_000,
    );
    exceeds("1,000 exports", &many_exports(1000), Item::Exports, 1000);
    exceeds(
        "100,000 element items",
        &many_element_items(100_000),
        Item::ElementItems,
        100_000,
    );
    exceeds("type of 500 params", &wide_type(500), Item::TypeArity, 500);
    exceeds(
        "global of 10,000 additions",
        &long_const_expr(10_000),
        Item::ConstExprOps,
        caps::MAX_CONST_EXPR_OPS + 1,
    );
    let body = vec![Instruction::Nop; 200_000];
    exceeds(
        "200 KB function body",
        &function(Vec::new(), &body),
        Item::BodyBytes,
        200_002,
    );

    // constructs no guest uses, whose immediates wasmparser would collect into vectors
    let rec_group = [1, 0x4e, 0xff, 0xff, 0x3f]; // rec group claiming 1,048,575 types
    assert!(matches!(
        refused("rec group", &raw(&[(1, &rec_group)])),
        PrecheckError::Unsupported { .. }
    ));
    let try_table = function(
        Vec::new(),
        &[Instruction::TryTable(BlockType::Empty, Vec::new().into())],
    );
    assert!(matches!(
        refused("try_table", &try_table),
        PrecheckError::Unsupported { .. }
    ));
    assert!(matches!(
        refused("tag section", &raw(&[(13, &[0])])),
        PrecheckError::Unsupported { .. }
    ));
    assert!(matches!(
        refused("unknown section", &raw(&[(42, &[0])])),
        PrecheckError::Unsupported { .. }
    ));
    let component = b"\0asm\x0d\x00\x01\x00";
    assert!(check(component).is_err());
    assert!(matches!(
        refused("not wasm", b"\0asn\x01\0\0\0"),
        PrecheckError::Malformed { offset: 0, .. }
    ));
}

#[test]
fn builtin_guest_passes_with_margin() {
    let t = Instant::now();
    let c = check(guest_lua::LUA_WASM).unwrap_or_else(|e| panic!("built-in guest: {e}"));
    println!("built-in guest checked in {:?}", t.elapsed());
    for item in Item::ALL {
        let n = item.count(&c);
        println!("{:>18}: {n:>8} (cap {})", item.name(), item.cap());
        if item == Item::Memories {
            assert_eq!(n, 1);
        } else {
            assert!(
                n * 3 <= item.cap(),
                "{}: {n} of {}",
                item.name(),
                item.cap()
            );
        }
    }
    assert_eq!(c.module_bytes, guest_lua::LUA_WASM.len() as u64);
    assert!(c.functions > 100 && c.code_bytes > 100_000, "{c:?}");

    // a data count section repeats the data section's count: not counted twice
    let mut m = Module::new();
    m.section(&DataCountSection {
        count: caps::MAX_DATA_SEGMENTS as u32,
    });
    let mut d = DataSection::new();
    for _ in 0..caps::MAX_DATA_SEGMENTS {
        d.passive([1, 2, 3]);
    }
    m.section(&d);
    let c = check(&m.finish()).unwrap();
    assert_eq!(c.data_segments, caps::MAX_DATA_SEGMENTS);

    // a custom section appended (what a foreign package's guest looks like) still passes
    let mut foreign = guest_lua::LUA_WASM.to_vec();
    foreign.extend_from_slice(&[0, 2, 1, b'x']);
    assert!(check(&foreign).is_ok());
}

#[test]
fn builtin_guest_prefixes_and_mutations_never_panic() {
    let g = guest_lua::LUA_WASM;
    // every cut in the header and the first sections, then some further in
    // (a cut at a section boundary is a valid prefix: the precheck is no validator)
    let mut refused = 0;
    for cut in (0..4096).chain((4096..g.len()).step_by(g.len() / 64)) {
        refused += usize::from(check(&g[..cut]).is_err());
    }
    assert!(refused > 4000, "{refused}");
    let mut rng = Rng::new(0x5eed);
    for _ in 0..32 {
        let mut m = g.to_vec();
        for _ in 0..4 {
            let i = rng.below(m.len() as u64) as usize;
            m[i] = rng.next() as u8;
        }
        let _ = check(&m);
    }
}

// ---------------------------------------------------------------------------------------
// Random modules

/// xorshift64: deterministic, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for _ in 0..4 {
            r.next();
        }
        r
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A wasm-smith configuration whose counts are sometimes far above the caps.
fn smith_config(r: &mut Rng) -> wasm_smith::Config {
    let mut c = wasm_smith::Config {
        max_funcs: r.pick(&[4, 50, 500, 3_000]),
        max_types: r.pick(&[4, 50, 200, 1_000]),
        max_globals: r.pick(&[2, 16, 100, 1_000]),
        max_imports: r.pick(&[0, 4, 30]),
        max_exports: r.pick(&[4, 16, 100]),
        max_data_segments: r.pick(&[2, 8, 50]),
        max_element_segments: r.pick(&[2, 8, 50]),
        max_elements: r.pick(&[10, 100, 2_000]),
        max_tables: r.pick(&[1, 2, 5]),
        max_table_elements: r.pick(&[10, 100, 500, 1_000_000, 1 << 31]),
        max_memory32_bytes: r.pick(&[1 << 16, 1 << 20, 1 << 30, 1 << 32]),
        max_instructions: r.pick(&[10, 100, 1_000]),
        max_type_size: r.pick(&[20, 1_000]),
        memory_max_size_required: r.chance(50),
        table_max_size_required: r.chance(85),
        allow_start_export: r.chance(50),
        min_uleb_size: r.pick(&[1, 1, 1, 2, 5]),
        simd_enabled: r.chance(10),
        relaxed_simd_enabled: false,
        exceptions_enabled: r.chance(10),
        gc_enabled: r.chance(10),
        threads_enabled: r.chance(10),
        memory64_enabled: r.chance(10),
        custom_page_sizes_enabled: r.chance(10),
        generate_custom_sections: r.chance(20),
        ..wasm_smith::Config::default()
    };
    // sometimes force large counts, whatever the random bytes say
    if r.chance(5) {
        c.min_funcs = r.pick(&[100, 3_000]);
        c.max_funcs = c.max_funcs.max(c.min_funcs);
    }
    if r.chance(5) {
        c.min_types = r.pick(&[50, 300]);
        c.max_types = c.max_types.max(c.min_types);
        // wasm-smith 0.228 can loop forever reaching a minimum of types with GC types
        // (rec groups it cannot clone once its input is exhausted)
        c.gc_enabled = false;
    }
    if r.chance(5) {
        c.min_globals = r.pick(&[10, 100]);
        c.max_globals = c.max_globals.max(c.min_globals);
    }
    if r.chance(5) {
        c.min_data_segments = r.pick(&[4, 20]);
        c.max_data_segments = c.max_data_segments.max(c.min_data_segments);
    }
    c
}

/// One random module from seed `seed`, or None when wasm-smith cannot build one.
fn smith_module(seed: u64) -> Option<Vec<u8>> {
    let mut r = Rng::new(seed);
    let config = smith_config(&mut r);
    if std::env::var_os("LUAPKT_SOAK_VERBOSE").is_some() {
        eprintln!("seed {seed}: {config:?}");
    }
    let len = r.pick(&[64, 512, 2_048, 8_192]);
    let data: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
    let mut u = Unstructured::new(&data);
    let mut m = wasm_smith::Module::new(config, &mut u).ok()?;
    // loops and recursion count down a global: a start function cannot spin for long
    let _ = m.ensure_termination(10_000);
    Some(m.to_bytes())
}

struct QuietHost;

impl Host for QuietHost {
    fn now_ns(&self) -> u64 {
        0
    }
    fn log(&self, _: &str, _: LogLevel, _: &[u8]) {}
    fn seed(&self) -> u32 {
        1
    }
}

#[derive(Debug, Default)]
struct Tally {
    tried: u64,
    not_generated: u64,
    precheck: u64,
    precheck_by_item: std::collections::BTreeMap<&'static str, u64>,
    wasmi: u64,
    accepted: u64,
    /// Accepted modules that wasmi instantiated (the load then failed for lack of exports).
    instantiated: u64,
    /// Accepted modules that loaded as a script (none should: no guest ABI).
    loaded: u64,
    slowest: (Duration, u64),
}

#[test]
fn random_modules_never_panic_or_hang() {
    let n: u64 = std::env::var("LUAPKT_SOAK_MODULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let host: Arc<dyn Host> = Arc::new(QuietHost);
    let script = b"function process_packet(p) return lp.ACCEPT end";
    let first: u64 = std::env::var("LUAPKT_SOAK_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let verbose = std::env::var_os("LUAPKT_SOAK_VERBOSE").is_some();
    let engine = wasmi::Engine::default();
    let t0 = Instant::now();
    let mut t = Tally::default();
    for seed in first..first + n {
        t.tried += 1;
        let start = Instant::now();
        let Some(bytes) = smith_module(seed) else {
            t.not_generated += 1;
            continue;
        };
        if verbose {
            eprintln!("seed {seed}: {} bytes", bytes.len());
        }
        match check(&bytes) {
            Err(e) => {
                t.precheck += 1;
                let key = e.item().map_or(
                    match e {
                        PrecheckError::Unsupported { .. } => "unsupported",
                        _ => "malformed",
                    },
                    Item::name,
                );
                *t.precheck_by_item.entry(key).or_default() += 1;
                // no false refusals: what the precheck cannot read or does not support,
                // wasmi refuses too (these modules are small: asking wasmi is safe here)
                if e.item().is_none() && wasmi::Module::new(&engine, &bytes[..]).is_ok() {
                    panic!("seed {seed}: precheck refused a module wasmi accepts: {e}");
                }
                assert!(
                    !e.to_string().is_empty(),
                    "seed {seed}: empty error message"
                );
            }
            Ok(_) => {
                let mut cache = GuestCache::new();
                match cache.get(&bytes, 1024) {
                    Err(LoadError::Wasm(_)) => t.wasmi += 1,
                    Err(e) => panic!("seed {seed}: unexpected error {e}"),
                    Ok(_) => {
                        t.accepted += 1;
                        // the guest lacks the ABI exports: the load fails, what matters is
                        // that it fails cleanly
                        let r = Script::load(
                            &mut cache,
                            &bytes,
                            "smith",
                            script,
                            Limits::default(),
                            OnError::Break,
                            1,
                            host.clone(),
                        );
                        match r {
                            Ok(_) => t.loaded += 1,
                            Err(LoadError::Guest(_)) => t.instantiated += 1,
                            Err(_) => {}
                        }
                    }
                }
            }
        }
        let took = start.elapsed();
        if took > t.slowest.0 {
            t.slowest = (took, seed);
        }
    }
    let total = t0.elapsed();
    println!(
        "random modules: {} tried, {} not generated, {} refused by precheck, {} refused by wasmi, \
         {} accepted ({} instantiated, {} loaded as scripts) in {total:.1?}; \
         slowest: seed {} in {:.1?}",
        t.tried,
        t.not_generated,
        t.precheck,
        t.wasmi,
        t.accepted,
        t.instantiated,
        t.loaded,
        t.slowest.1,
        t.slowest.0
    );
    println!("refused by precheck, by reason: {:?}", t.precheck_by_item);
    assert!(
        t.slowest.0 < Duration::from_secs(10),
        "seed {} took {:?}",
        t.slowest.1,
        t.slowest.0
    );
    // the generator must exercise every path
    if n >= 1_000 {
        assert!(t.precheck > 0 && t.wasmi > 0 && t.accepted > 0, "{t:?}");
    }
}
