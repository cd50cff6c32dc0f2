//! Sandbox limits: defaults and the bounds a request is checked against.

/// Wasm fuel granted to every call (refilled before each packet).
///
/// wasmi charges a region's fuel when the region is entered, and the blocks of a `switch` are
/// not regions of their own: every Lua VM instruction is charged for all of `luaV_execute`'s
/// cases (~8,400 fuel, BENCHMARKS.md). Fuel is therefore a generous, deterministic upper bound
/// on work; the Lua instruction budget below is the limit loops normally hit first.
pub const DEFAULT_FUEL: u64 = 250_000_000;
/// Upper bound for `fuel`.
pub const MAX_FUEL: u64 = 10_000_000_000;
/// Lua VM instructions one call may execute before it fails with "out of instructions".
/// 0 disables the budget (fuel still bounds the call).
pub const DEFAULT_INSTRUCTIONS: u32 = 20_000;
/// Upper bound for `instructions`.
pub const MAX_INSTRUCTIONS: u32 = 1_000_000_000;
/// Linear memory of one instance, in bytes.
pub const DEFAULT_MEMORY: u64 = 1 << 20;
/// Smallest and largest accepted `memory` (one wasm page .. 256 MiB).
pub const MIN_MEMORY: u64 = 64 * 1024;
pub const MAX_MEMORY: u64 = 256 << 20;
/// wasm call-stack depth (frames) inside one entry into the guest.
pub const DEFAULT_RECURSION: u32 = 1024;
pub const MAX_RECURSION: u32 = 16_384;
/// Nested host re-entries (each protected call — `pcall`, `load`, ... — is one).
/// Each costs host stack: the cap keeps a hostile script from exhausting it.
pub const DEFAULT_PCALL_DEPTH: u32 = 8;
pub const MAX_PCALL_DEPTH: u32 = 32;
