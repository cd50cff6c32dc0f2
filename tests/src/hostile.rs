//! Hostile wasm modules, shared by the runtime's tests (`kmod-wasmi/runtime/tests/hostile_modules.rs`,
//! which includes this file) and by `hostile-packages`, which packs them for the VM suite:
//! modules that declare far more than `abi::module_caps` allows, and random ones from
//! wasm-smith with counts sometimes far above the caps.

use arbitrary::Unstructured;
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, CustomSection, DataCountSection, DataSection,
    ElementSection, Elements, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, ImportSection, Instruction, MemorySection, MemoryType, Module,
    RawSection, RefType, TableSection, TableType, TypeSection, ValType,
};

// ---------------------------------------------------------------------------------------
// Hand-built modules

pub fn one_type(m: &mut Module) {
    let mut t = TypeSection::new();
    t.ty().function([], []);
    m.section(&t);
}

/// `n` functions declared in the function section, no bodies (~n bytes).
pub fn many_functions(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    one_type(&mut m);
    let mut f = FunctionSection::new();
    for _ in 0..n {
        f.function(0);
    }
    m.section(&f);
    m.finish()
}

pub fn many_types(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    let mut t = TypeSection::new();
    for _ in 0..n {
        t.ty().function([], []);
    }
    m.section(&t);
    m.finish()
}

pub fn many_globals(n: u32) -> Vec<u8> {
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

pub fn table(minimum: u64, maximum: Option<u64>) -> Vec<u8> {
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

pub fn memory(pages: u64) -> Vec<u8> {
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

pub fn many_data_segments(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    let mut d = DataSection::new();
    for _ in 0..n {
        d.passive([]);
    }
    m.section(&d);
    m.finish()
}

pub fn data_count(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    m.section(&DataCountSection { count: n });
    m.finish()
}

/// One passive data segment of `len` real bytes.
pub fn big_data(len: usize) -> Vec<u8> {
    let mut m = Module::new();
    let mut d = DataSection::new();
    d.passive(vec![0xa5; len]);
    m.section(&d);
    m.finish()
}

/// A data segment whose length claims 4 GiB - 1 with no bytes behind it.
pub fn lying_data() -> Vec<u8> {
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
pub fn function(locals: Vec<(u32, ValType)>, body: &[Instruction<'_>]) -> Vec<u8> {
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

pub fn nested_blocks(depth: usize) -> Vec<u8> {
    let mut body = vec![Instruction::Block(BlockType::Empty); depth];
    body.extend(std::iter::repeat_n(Instruction::End, depth));
    function(Vec::new(), &body)
}

pub fn custom(len: usize) -> Vec<u8> {
    let mut m = Module::new();
    m.section(&CustomSection {
        name: "x".into(),
        data: vec![0; len].into(),
    });
    m.finish()
}

/// A global initialised by `i32.const 1 (i32.const 1 i32.add) x n` (extended-const).
pub fn long_const_expr(n: usize) -> Vec<u8> {
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

pub fn many_imports(n: u32) -> Vec<u8> {
    let mut m = Module::new();
    one_type(&mut m);
    let mut i = ImportSection::new();
    for _ in 0..n {
        i.import("lp", "now", EntityType::Function(0));
    }
    m.section(&i);
    m.finish()
}

pub fn many_exports(n: u32) -> Vec<u8> {
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

pub fn many_element_items(n: usize) -> Vec<u8> {
    let mut m = Module::new();
    let mut e = ElementSection::new();
    e.passive(Elements::Functions(vec![0; n].into()));
    m.section(&e);
    m.finish()
}

pub fn wide_type(params: usize) -> Vec<u8> {
    let mut m = Module::new();
    let mut t = TypeSection::new();
    t.ty().function(vec![ValType::I32; params], []);
    m.section(&t);
    m.finish()
}

/// A module with `sections` appended as raw sections after the header.
pub fn raw(sections: &[(u8, &[u8])]) -> Vec<u8> {
    let mut m = Module::new();
    for (id, data) in sections {
        m.section(&RawSection { id: *id, data });
    }
    m.finish()
}

// ---------------------------------------------------------------------------------------
// Random modules

/// xorshift64: deterministic, seedable, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for _ in 0..4 {
            r.step();
        }
        r
    }
    pub fn step(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.step() % n.max(1)
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A wasm-smith configuration whose counts are sometimes far above the caps.
pub fn smith_config(r: &mut Rng) -> wasm_smith::Config {
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

/// A wasm-smith configuration with counts mostly under the caps and only the features wasmi
/// has, so that some modules compile and instantiate (and run their exports).
pub fn tame_config(r: &mut Rng) -> wasm_smith::Config {
    wasm_smith::Config {
        max_funcs: r.pick(&[4, 50, 500]),
        max_types: r.pick(&[4, 50]),
        max_globals: r.pick(&[2, 8]),
        max_imports: r.pick(&[0, 0, 4]),
        max_exports: r.pick(&[4, 16]),
        max_data_segments: r.pick(&[2, 4]),
        max_element_segments: r.pick(&[1, 2]),
        max_elements: r.pick(&[10, 100]),
        max_tables: 1,
        max_table_elements: r.pick(&[10, 500]),
        max_memory32_bytes: r.pick(&[1 << 16, 1 << 20, 1 << 24]),
        max_instructions: r.pick(&[10, 100, 1_000]),
        table_max_size_required: true,
        allow_start_export: r.chance(50),
        simd_enabled: false,
        relaxed_simd_enabled: false,
        exceptions_enabled: false,
        gc_enabled: false,
        threads_enabled: false,
        memory64_enabled: false,
        custom_page_sizes_enabled: false,
        extended_const_enabled: false,
        ..wasm_smith::Config::default()
    }
}

/// One random module from seed `seed` (`tame`: [`tame_config`], else [`smith_config`]), whose
/// loops and calls count down a global from `steps`; None when wasm-smith cannot build one.
pub fn smith_module(seed: u64, tame: bool, steps: u32) -> Option<Vec<u8>> {
    let mut r = Rng::new(seed);
    let config = if tame {
        tame_config(&mut r)
    } else {
        smith_config(&mut r)
    };
    if std::env::var_os("LUAPKT_SOAK_VERBOSE").is_some() {
        eprintln!("seed {seed}: {config:?}");
    }
    let len = r.pick(&[64, 512, 2_048, 8_192]);
    let data: Vec<u8> = (0..len).map(|_| r.step() as u8).collect();
    let mut u = Unstructured::new(&data);
    let mut m = wasm_smith::Module::new(config, &mut u).ok()?;
    // loops and recursion count down a global: a start function cannot spin for long
    let _ = m.ensure_termination(steps);
    Some(m.to_bytes())
}
