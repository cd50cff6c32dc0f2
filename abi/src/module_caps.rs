//! Caps on what a guest module may declare, checked before wasmi parses it
//! (`runtime::precheck`).
//!
//! wasmi allocates per declared item while it parses, compiles and instantiates a module; in
//! the kernel that happens under a lock that forces atomic allocations, where a failed
//! allocation is a kernel BUG. Every count a module can claim is therefore capped here at
//! roughly 4x what the built-in guest (`guest-lua`'s `lua.wasm`) declares, rounded, so a
//! rebuilt or somewhat larger guest still fits while a module claiming 300,000 functions does
//! not. Each cap's doc gives the built-in guest's figure when the caps were set (they drift a
//! little as guest-lua's C changes); the test `kmod-wasmi/runtime/tests/hostile_modules.rs` prints the
//! current ones and checks the guest stays at most a third of every cap (exactly one memory).
//!
//! Per-table, per-memory and per-function caps apply to each one; the others to the module.

/// Size of the whole module in bytes. Built-in guest: 600,034 (with its fuel counting).
pub const MAX_MODULE_BYTES: u64 = 2 << 20;

/// Function types (type section entries; only plain function types are accepted). Built-in
/// guest: 42.
pub const MAX_TYPES: u64 = 160;

/// Parameters plus results of one function type. Built-in guest: 9.
pub const MAX_TYPE_ARITY: u64 = 40;

/// Imports of every kind. Built-in guest: 11 (the `lp` host functions: `timer` made it 11,
/// past a third of the earlier cap of 32); the library grows.
pub const MAX_IMPORTS: u64 = 48;

/// Functions declared in the function section (imports not included; the code section may
/// not hold more bodies either). Built-in guest: 580.
pub const MAX_FUNCTIONS: u64 = 2_500;

/// Tables, imported or defined. Built-in guest: 1 (the store allows one anyway).
pub const MAX_TABLES: u64 = 4;

/// Elements of one table: its initial size, and its declared maximum, which is required (a
/// table without one could be grown by `table.grow` up to 2^32 - 1 elements, a limit the
/// store's limiter does not set). Built-in guest: 184 (initial = maximum).
pub const MAX_TABLE_ELEMENTS: u64 = 750;

/// Memories, imported or defined. Built-in guest: 1; the runtime uses exactly one.
pub const MAX_MEMORIES: u64 = 1;

/// Initial size of a memory, in 64 KiB pages: the runtime's largest memory limit
/// (`limits::MAX_MEMORY`, 256 MiB = 4096 pages), not 4x the guest's, since what an instance
/// may use is the script's memory limit. Built-in guest: 2.
///
/// A memory's declared maximum is not capped: wasmi reserves nothing for it, and every store
/// has a limiter (`StoreLimits::memory_size`, the script's `memory` limit, at most
/// `MAX_MEMORY`) that refuses to create or grow a memory past the limit whatever the maximum
/// says. (The built-in guest declares no maximum.)
pub const MAX_MEMORY_PAGES: u64 = crate::limits::MAX_MEMORY / WASM_PAGE;

/// Bytes of a wasm page.
pub const WASM_PAGE: u64 = 64 * 1024;

/// Globals, imported or defined. Built-in guest: 2 (`__stack_pointer`, `lp_fuel`); 16 rather than 4
/// leaves room for the few more a different toolchain adds (`__memory_base`, `__tls_base`, ...).
pub const MAX_GLOBALS: u64 = 16;

/// Exports. Built-in guest: 18.
pub const MAX_EXPORTS: u64 = 64;

/// Element segments. Built-in guest: 1.
pub const MAX_ELEMENT_SEGMENTS: u64 = 4;

/// Items of all element segments together. Built-in guest: 183.
pub const MAX_ELEMENT_ITEMS: u64 = 750;

/// Data segments (the data section's count and the data count section's). Built-in guest: 2.
pub const MAX_DATA_SEGMENTS: u64 = 8;

/// Bytes of all data segments together. Built-in guest: 31,416-31,480.
pub const MAX_DATA_BYTES: u64 = 128 << 10;

/// Bytes of the code section (all function bodies). Built-in guest: 566,974 (396,134 before
/// it counted its own fuel).
pub const MAX_CODE_BYTES: u64 = 2 << 20;

/// Bytes of one function body. Built-in guest: 27,021-27,026 (`luaV_execute`).
pub const MAX_BODY_BYTES: u64 = 128 << 10;

/// Locals one function declares (besides its parameters), summed over its local
/// declarations, each of which may claim up to 2^32 - 1. Built-in guest: 38.
pub const MAX_LOCALS: u64 = 160;

/// Depth of nested blocks (`block`, `loop`, `if`, `try`) in one function. Built-in guest: 129.
pub const MAX_NESTING: u64 = 512;

/// Bytes of all custom sections together (wasmi keeps a copy of each). Built-in guest: 0 (it
/// has none; a package's own sections are cut off before the module is compiled), so this is
/// a fixed allowance for a `name` or `producers` section rather than a multiple.
pub const MAX_CUSTOM_BYTES: u64 = 64 << 10;

/// Instructions of one constant expression (a global's initialiser, a segment's offset, an
/// element). wasmi turns each arithmetic instruction of an extended-const expression into a
/// nested closure that it evaluates and drops recursively: the cap bounds that recursion on
/// the kernel's small stack. Built-in guest: 1 (`i32.const`); 8 leaves room for the
/// `global.get __memory_base; i32.const N; i32.add` of position-independent code.
pub const MAX_CONST_EXPR_OPS: u64 = 8;
