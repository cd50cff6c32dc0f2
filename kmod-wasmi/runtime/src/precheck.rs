//! A cheap walk over a guest module that refuses it before wasmi sees it when anything it
//! declares is above the caps of `abi::module_caps`.
//!
//! wasmi allocates per declared item (functions, types, globals, table elements, locals, ...)
//! while it parses and compiles a module. In the kernel that happens under a lock that forces
//! atomic allocations, and a failed allocation in Rust is a kernel BUG: a module claiming
//! 300,000 functions must be turned away first. [`check`] reads the module with `wasmparser`'s
//! lazy section readers and keeps only running sums: it allocates nothing in proportion to the
//! input (wasmparser's readers allocate only an error, and for a function type at most its
//! parameters; the two instructions whose immediates it collects into vectors — `try_table`,
//! `resume` — are refused before they are read, as is every GC type form), it is linear in the
//! module's size, and it never panics.
//!
//! It is not a validator: a module it accepts may still be invalid, and wasmi's validation
//! decides. It only guarantees that what wasmi is then asked to build is bounded.

use abi::module_caps as caps;
use core::fmt;
use core::ops::Range;
use wasmparser::{
    BinaryReader, BinaryReaderError, ConstExpr, DataKind, ElementItems, ElementKind, Encoding,
    FunctionBody, MemoryType, Operator, OperatorsReader, Parser, Payload, TableInit, TableType,
    TypeRef, ValType,
};

/// What a module declared too much of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// The whole module, in bytes.
    ModuleBytes,
    /// Function types (type section entries).
    Types,
    /// Parameters plus results of one function type.
    TypeArity,
    /// Imports of any kind.
    Imports,
    /// Functions declared in the function section(s).
    Functions,
    /// Tables, imported and defined.
    Tables,
    /// Initial elements of one table.
    TableElements,
    /// Declared maximum elements of one table.
    TableMaximum,
    /// Memories, imported and defined.
    Memories,
    /// Initial 64 KiB pages of one memory.
    MemoryPages,
    /// Globals, imported and defined.
    Globals,
    /// Exports.
    Exports,
    /// Element segments.
    ElementSegments,
    /// Items of all element segments together.
    ElementItems,
    /// Data segments (data section entries or the data count section).
    DataSegments,
    /// Bytes of all data segments together.
    DataBytes,
    /// Bytes of the code section(s).
    CodeBytes,
    /// Bytes of one function body.
    BodyBytes,
    /// Locals one function declares (besides its parameters).
    Locals,
    /// Depth of nested blocks (`block`, `loop`, `if`, `try`) in one function.
    Nesting,
    /// Bytes of all custom sections together.
    CustomBytes,
    /// Instructions of one constant expression (global initialiser, segment offset, element).
    ConstExprOps,
}

impl Item {
    /// Every item, in the order [`check`] meets them.
    pub const ALL: [Item; 22] = [
        Item::ModuleBytes,
        Item::Types,
        Item::TypeArity,
        Item::Imports,
        Item::Functions,
        Item::Tables,
        Item::TableElements,
        Item::TableMaximum,
        Item::Memories,
        Item::MemoryPages,
        Item::Globals,
        Item::Exports,
        Item::ElementSegments,
        Item::ElementItems,
        Item::DataSegments,
        Item::DataBytes,
        Item::CodeBytes,
        Item::BodyBytes,
        Item::Locals,
        Item::Nesting,
        Item::CustomBytes,
        Item::ConstExprOps,
    ];

    /// The cap of this item (`abi::module_caps`).
    pub const fn cap(self) -> u64 {
        match self {
            Item::ModuleBytes => caps::MAX_MODULE_BYTES,
            Item::Types => caps::MAX_TYPES,
            Item::TypeArity => caps::MAX_TYPE_ARITY,
            Item::Imports => caps::MAX_IMPORTS,
            Item::Functions => caps::MAX_FUNCTIONS,
            Item::Tables => caps::MAX_TABLES,
            Item::TableElements => caps::MAX_TABLE_ELEMENTS,
            Item::TableMaximum => caps::MAX_TABLE_ELEMENTS,
            Item::Memories => caps::MAX_MEMORIES,
            Item::MemoryPages => caps::MAX_MEMORY_PAGES,
            Item::Globals => caps::MAX_GLOBALS,
            Item::Exports => caps::MAX_EXPORTS,
            Item::ElementSegments => caps::MAX_ELEMENT_SEGMENTS,
            Item::ElementItems => caps::MAX_ELEMENT_ITEMS,
            Item::DataSegments => caps::MAX_DATA_SEGMENTS,
            Item::DataBytes => caps::MAX_DATA_BYTES,
            Item::CodeBytes => caps::MAX_CODE_BYTES,
            Item::BodyBytes => caps::MAX_BODY_BYTES,
            Item::Locals => caps::MAX_LOCALS,
            Item::Nesting => caps::MAX_NESTING,
            Item::CustomBytes => caps::MAX_CUSTOM_BYTES,
            Item::ConstExprOps => caps::MAX_CONST_EXPR_OPS,
        }
    }

    /// The figure of this item in `counts`.
    pub fn count(self, counts: &ModuleCounts) -> u64 {
        let c = counts;
        match self {
            Item::ModuleBytes => c.module_bytes,
            Item::Types => c.types,
            Item::TypeArity => c.max_type_arity,
            Item::Imports => c.imports,
            Item::Functions => c.functions,
            Item::Tables => c.tables,
            Item::TableElements => c.max_table_elements,
            Item::TableMaximum => c.max_table_maximum,
            Item::Memories => c.memories,
            Item::MemoryPages => c.max_memory_pages,
            Item::Globals => c.globals,
            Item::Exports => c.exports,
            Item::ElementSegments => c.element_segments,
            Item::ElementItems => c.element_items,
            Item::DataSegments => c.data_segments,
            Item::DataBytes => c.data_bytes,
            Item::CodeBytes => c.code_bytes,
            Item::BodyBytes => c.max_body_bytes,
            Item::Locals => c.max_locals,
            Item::Nesting => c.max_nesting,
            Item::CustomBytes => c.custom_bytes,
            Item::ConstExprOps => c.max_const_expr_ops,
        }
    }

    /// Short name (for tables of counts).
    pub fn name(self) -> &'static str {
        match self {
            Item::ModuleBytes => "module bytes",
            Item::Types => "types",
            Item::TypeArity => "type arity",
            Item::Imports => "imports",
            Item::Functions => "functions",
            Item::Tables => "tables",
            Item::TableElements => "table elements",
            Item::TableMaximum => "table maximum",
            Item::Memories => "memories",
            Item::MemoryPages => "memory pages",
            Item::Globals => "globals",
            Item::Exports => "exports",
            Item::ElementSegments => "element segments",
            Item::ElementItems => "element items",
            Item::DataSegments => "data segments",
            Item::DataBytes => "data bytes",
            Item::CodeBytes => "code bytes",
            Item::BodyBytes => "body bytes",
            Item::Locals => "locals",
            Item::Nesting => "nesting",
            Item::CustomBytes => "custom bytes",
            Item::ConstExprOps => "const expr ops",
        }
    }
}

/// What a module declares, as [`check`] measured it. Per-table, per-memory and per-function
/// figures are the largest one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModuleCounts {
    pub module_bytes: u64,
    pub types: u64,
    pub max_type_arity: u64,
    pub imports: u64,
    pub functions: u64,
    pub tables: u64,
    pub max_table_elements: u64,
    pub max_table_maximum: u64,
    pub memories: u64,
    /// Initial size of the largest memory, in 64 KiB pages.
    pub max_memory_pages: u64,
    pub globals: u64,
    pub exports: u64,
    pub element_segments: u64,
    pub element_items: u64,
    pub data_segments: u64,
    pub data_bytes: u64,
    pub code_bytes: u64,
    pub max_body_bytes: u64,
    pub max_locals: u64,
    pub max_nesting: u64,
    pub custom_bytes: u64,
    pub max_const_expr_ops: u64,
}

/// A short message kept inline (the error must be `Copy` and allocation-free).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Message {
    buf: [u8; Message::CAP],
    len: u8,
}

impl Message {
    const CAP: usize = 48;

    fn new(s: &str) -> Message {
        let mut len = s.len().min(Self::CAP);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut buf = [0; Self::CAP];
        buf[..len].copy_from_slice(&s.as_bytes()[..len]);
        Message {
            buf,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Why [`check`] refused a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecheckError {
    /// The module declares more of `item` than its cap. `func` is the function's index
    /// (imports included) for per-function items.
    Exceeded {
        item: Item,
        declared: u64,
        cap: u64,
        func: Option<u32>,
    },
    /// A construct no luapkt guest uses and wasmi would refuse (GC types, exceptions, stack
    /// switching, components, unknown sections), at this byte offset.
    Unsupported { what: &'static str, offset: usize },
    /// The module cannot be read at this byte offset.
    Malformed { offset: usize, message: Message },
}

impl PrecheckError {
    /// The item over its cap, if that is the reason.
    pub fn item(&self) -> Option<Item> {
        match self {
            PrecheckError::Exceeded { item, .. } => Some(*item),
            _ => None,
        }
    }
}

impl fmt::Display for PrecheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PrecheckError::Exceeded {
                item,
                declared: n,
                cap,
                func,
            } => {
                match item {
                    Item::ModuleBytes => write!(f, "module is {n} bytes")?,
                    Item::TypeArity => write!(
                        f,
                        "module declares a function type with {n} parameters and results"
                    )?,
                    Item::TableElements => write!(f, "module declares a table of {n} elements")?,
                    Item::TableMaximum => {
                        write!(f, "module declares a table growable to {n} elements")?
                    }
                    Item::MemoryPages => write!(f, "module declares a memory of {n} pages")?,
                    Item::DataBytes => write!(f, "module declares {n} bytes of data")?,
                    Item::CodeBytes => write!(f, "module declares {n} bytes of code")?,
                    Item::BodyBytes => write!(f, "module declares a function body of {n} bytes")?,
                    Item::Nesting => write!(f, "module declares blocks nested {n} deep")?,
                    Item::CustomBytes => write!(f, "module declares {n} bytes of custom sections")?,
                    Item::ConstExprOps => write!(
                        f,
                        "module declares a constant expression of {n} instructions"
                    )?,
                    other => write!(f, "module declares {n} {}", other.name())?,
                }
                if let Some(i) = func {
                    write!(f, " in function {i}")?;
                }
                write!(f, " (cap {cap})")
            }
            PrecheckError::Unsupported { what, offset } => {
                write!(f, "unsupported {what} at byte {offset}")
            }
            PrecheckError::Malformed { offset, message } => {
                write!(f, "malformed module at byte {offset}: {}", message.as_str())
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PrecheckError {}

impl From<BinaryReaderError> for PrecheckError {
    fn from(e: BinaryReaderError) -> Self {
        PrecheckError::Malformed {
            offset: e.offset(),
            message: Message::new(e.message()),
        }
    }
}

fn malformed(offset: usize, message: &str) -> PrecheckError {
    PrecheckError::Malformed {
        offset,
        message: Message::new(message),
    }
}

/// Refuses `value` above the cap of `item`.
fn cap(item: Item, value: u64, func: Option<u32>) -> Result<(), PrecheckError> {
    let cap = item.cap();
    if value > cap {
        return Err(PrecheckError::Exceeded {
            item,
            declared: value,
            cap,
            func,
        });
    }
    Ok(())
}

/// Adds `n` to a running sum and refuses it above the cap of `item`.
fn add(item: Item, sum: &mut u64, n: u64) -> Result<(), PrecheckError> {
    *sum = sum.saturating_add(n);
    cap(item, *sum, None)
}

/// Records a per-item figure (largest so far) and refuses it above the cap of `item`.
fn max(item: Item, largest: &mut u64, n: u64, func: Option<u32>) -> Result<(), PrecheckError> {
    *largest = (*largest).max(n);
    cap(item, n, func)
}

const WASM_PAGE_LOG2: u32 = 16;

/// Checks `module` against the caps of `abi::module_caps`; returns what it declares.
pub fn check(module: &[u8]) -> Result<ModuleCounts, PrecheckError> {
    let mut c = ModuleCounts::default();
    add(Item::ModuleBytes, &mut c.module_bytes, module.len() as u64)?;
    // index of the next function body, imports included (for per-function errors)
    let mut imported_funcs: u32 = 0;
    let mut body_index: u32 = 0;
    for payload in Parser::new(0).parse_all(module) {
        match payload? {
            Payload::Version {
                encoding, range, ..
            } => {
                if encoding != Encoding::Module {
                    return Err(PrecheckError::Unsupported {
                        what: "component",
                        offset: range.start,
                    });
                }
            }
            Payload::TypeSection(r) => {
                add(Item::Types, &mut c.types, r.count().into())?;
                let start = r.original_position();
                types(module, start..r.range().end, r.count(), &mut c)?;
            }
            Payload::ImportSection(r) => {
                add(Item::Imports, &mut c.imports, r.count().into())?;
                let offset = r.range().start;
                for import in r {
                    match import?.ty {
                        TypeRef::Func(_) => imported_funcs = imported_funcs.saturating_add(1),
                        TypeRef::Table(t) => table(&t, &mut c)?,
                        TypeRef::Memory(m) => memory(&m, &mut c)?,
                        TypeRef::Global(_) => add(Item::Globals, &mut c.globals, 1)?,
                        TypeRef::Tag(_) => {
                            return Err(PrecheckError::Unsupported {
                                what: "tag import",
                                offset,
                            })
                        }
                    }
                }
            }
            Payload::FunctionSection(r) => {
                add(Item::Functions, &mut c.functions, r.count().into())?;
            }
            Payload::TableSection(r) => {
                for t in r {
                    let t = t?;
                    table(&t.ty, &mut c)?;
                    if let TableInit::Expr(e) = t.init {
                        const_expr(module, &e, &mut c)?;
                    }
                }
            }
            Payload::MemorySection(r) => {
                for m in r {
                    memory(&m?, &mut c)?;
                }
            }
            Payload::TagSection(r) => {
                return Err(PrecheckError::Unsupported {
                    what: "tag section",
                    offset: r.range().start,
                })
            }
            Payload::GlobalSection(r) => {
                add(Item::Globals, &mut c.globals, r.count().into())?;
                for g in r {
                    const_expr(module, &g?.init_expr, &mut c)?;
                }
            }
            Payload::ExportSection(r) => {
                add(Item::Exports, &mut c.exports, r.count().into())?;
            }
            Payload::StartSection { .. } => {}
            Payload::ElementSection(r) => {
                add(
                    Item::ElementSegments,
                    &mut c.element_segments,
                    r.count().into(),
                )?;
                for e in r {
                    let e = e?;
                    if let ElementKind::Active { offset_expr, .. } = &e.kind {
                        const_expr(module, offset_expr, &mut c)?;
                    }
                    match e.items {
                        ElementItems::Functions(f) => {
                            add(Item::ElementItems, &mut c.element_items, f.count().into())?;
                        }
                        ElementItems::Expressions(_, x) => {
                            add(Item::ElementItems, &mut c.element_items, x.count().into())?;
                            for item in x {
                                const_expr(module, &item?, &mut c)?;
                            }
                        }
                    }
                }
            }
            // the data section's count is what is summed: this one repeats it
            Payload::DataCountSection { count, .. } => cap(Item::DataSegments, count.into(), None)?,
            Payload::DataSection(r) => {
                add(Item::DataSegments, &mut c.data_segments, r.count().into())?;
                for d in r {
                    let d = d?;
                    if let DataKind::Active { offset_expr, .. } = &d.kind {
                        const_expr(module, offset_expr, &mut c)?;
                    }
                    add(Item::DataBytes, &mut c.data_bytes, d.data.len() as u64)?;
                }
            }
            Payload::CodeSectionStart { count, size, .. } => {
                cap(Item::Functions, count.into(), None)?;
                add(Item::CodeBytes, &mut c.code_bytes, size.into())?;
            }
            Payload::CodeSectionEntry(body) => {
                let index = imported_funcs.saturating_add(body_index);
                body_index = body_index.saturating_add(1);
                function(module, &body, index, &mut c)?;
            }
            Payload::CustomSection(r) => {
                add(
                    Item::CustomBytes,
                    &mut c.custom_bytes,
                    r.range().len() as u64,
                )?;
            }
            Payload::End(_) => break,
            Payload::UnknownSection { range, .. } => {
                return Err(PrecheckError::Unsupported {
                    what: "section",
                    offset: range.start,
                })
            }
            other => {
                let offset = other.as_section().map_or(0, |(_, r)| r.start);
                return Err(PrecheckError::Unsupported {
                    what: "component section",
                    offset,
                });
            }
        }
    }
    Ok(c)
}

/// The type section after its count: only function types (`0x60`) are accepted; their
/// parameters and results are read one by one (no vector of them is built).
fn types(
    module: &[u8],
    range: Range<usize>,
    count: u32,
    c: &mut ModuleCounts,
) -> Result<(), PrecheckError> {
    let bytes = module
        .get(range.clone())
        .ok_or_else(|| malformed(range.start, "type section out of bounds"))?;
    let mut r = BinaryReader::new(bytes, range.start);
    for _ in 0..count {
        let pos = r.original_position();
        if r.read_u8()? != 0x60 {
            return Err(PrecheckError::Unsupported {
                what: "type form (GC types, rec groups)",
                offset: pos,
            });
        }
        let params = r.read_var_u32()?;
        cap(Item::TypeArity, params.into(), None)?;
        for _ in 0..params {
            r.read::<ValType>()?;
        }
        let results = r.read_var_u32()?;
        let arity = u64::from(params) + u64::from(results);
        max(Item::TypeArity, &mut c.max_type_arity, arity, None)?;
        for _ in 0..results {
            r.read::<ValType>()?;
        }
    }
    if !r.eof() {
        return Err(malformed(
            r.original_position(),
            "trailing bytes in type section",
        ));
    }
    Ok(())
}

fn table(t: &TableType, c: &mut ModuleCounts) -> Result<(), PrecheckError> {
    add(Item::Tables, &mut c.tables, 1)?;
    max(
        Item::TableElements,
        &mut c.max_table_elements,
        t.initial,
        None,
    )?;
    // no declared maximum: `table.grow` is bounded only by the index type
    let most = t
        .maximum
        .unwrap_or(if t.table64 { u64::MAX } else { u32::MAX.into() });
    max(Item::TableMaximum, &mut c.max_table_maximum, most, None)
}

fn memory(m: &MemoryType, c: &mut ModuleCounts) -> Result<(), PrecheckError> {
    add(Item::Memories, &mut c.memories, 1)?;
    // in 64 KiB pages, rounded up, whatever the page size the module declares
    let log2 = m.page_size_log2.unwrap_or(WASM_PAGE_LOG2);
    let pages = if log2 >= WASM_PAGE_LOG2 {
        m.initial
            .checked_shl(log2 - WASM_PAGE_LOG2)
            .filter(|p| p >> (log2 - WASM_PAGE_LOG2) == m.initial)
            .unwrap_or(u64::MAX)
    } else {
        let shift = WASM_PAGE_LOG2 - log2;
        (m.initial >> shift) + u64::from(m.initial & ((1 << shift) - 1) != 0)
    };
    // The declared maximum is not capped: wasmi reserves nothing for it, and every store's
    // limiter refuses growth past the script's memory limit (at most abi::limits::MAX_MEMORY).
    max(Item::MemoryPages, &mut c.max_memory_pages, pages, None)
}

/// Instructions whose immediates wasmparser collects into a vector as it reads them.
const COLLECTING_OPCODES: [(u8, &str); 3] = [
    (0x1f, "instruction try_table"),
    (0xe3, "instruction resume"),
    (0xe4, "instruction resume_throw"),
];

/// Reads one instruction, refusing first those whose immediates wasmparser would collect.
fn read_op<'a>(
    module: &[u8],
    ops: &mut OperatorsReader<'a>,
) -> Result<Operator<'a>, PrecheckError> {
    let pos = ops.original_position();
    let opcode = module.get(pos).copied().unwrap_or(0);
    if let Some((_, what)) = COLLECTING_OPCODES.iter().find(|(op, _)| *op == opcode) {
        return Err(PrecheckError::Unsupported { what, offset: pos });
    }
    Ok(ops.read()?)
}

/// A constant expression: wasmi builds one nested closure per arithmetic instruction
/// (extended-const) and evaluates and drops them recursively, so their number is capped.
fn const_expr(module: &[u8], e: &ConstExpr<'_>, c: &mut ModuleCounts) -> Result<(), PrecheckError> {
    let mut ops = e.get_operators_reader();
    let mut n: u64 = 0;
    loop {
        if let Operator::End = read_op(module, &mut ops)? {
            return Ok(());
        }
        n += 1;
        max(Item::ConstExprOps, &mut c.max_const_expr_ops, n, None)?;
    }
}

fn function(
    module: &[u8],
    body: &FunctionBody<'_>,
    index: u32,
    c: &mut ModuleCounts,
) -> Result<(), PrecheckError> {
    let func = Some(index);
    max(
        Item::BodyBytes,
        &mut c.max_body_bytes,
        body.range().len() as u64,
        func,
    )?;
    let mut locals = body.get_locals_reader()?;
    let mut declared: u64 = 0;
    for _ in 0..locals.get_count() {
        let (n, _) = locals.read()?;
        declared = declared.saturating_add(n.into());
        cap(Item::Locals, declared, func)?;
    }
    c.max_locals = c.max_locals.max(declared);
    let mut ops = body.get_operators_reader()?;
    let mut depth: u64 = 0;
    while !ops.eof() {
        match read_op(module, &mut ops)? {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Try { .. } => {
                depth += 1;
                max(Item::Nesting, &mut c.max_nesting, depth, func)?;
            }
            Operator::End | Operator::Delegate { .. } => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}
