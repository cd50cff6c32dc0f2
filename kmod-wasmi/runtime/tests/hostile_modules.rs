//! Guest modules built to exhaust wasmi's allocations are refused before wasmi sees them
//! (`runtime::precheck`, `abi::module_caps`), the built-in guest is not, and random modules
//! from wasm-smith go through the precheck, wasmi and an instance build without a panic or a
//! hang.
//!
//! `LUAPKT_SOAK_MODULES=N` raises the number of random modules (scripts/soak-modules.sh).

use abi::module_caps as caps;
use runtime::precheck::{check, Item, PrecheckError};
use runtime::{GuestCache, Host, Limits, LoadError, LogLevel, OnError, Script};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasm_encoder::{BlockType, DataCountSection, DataSection, Instruction, Module, ValType};

// The builders live in one file with hostile-packages (the VM suite's packages).
#[path = "../../../tests/src/hostile.rs"]
#[allow(dead_code)]
#[allow(unreachable_pub)] // luapkt-tests exports them; here they are a private module
mod hostile;
use hostile::*;

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
            m[i] = rng.step() as u8;
        }
        let _ = check(&m);
    }
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
        let Some(bytes) = smith_module(seed, false, 10_000) else {
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
