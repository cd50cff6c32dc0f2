//! Sandbox limits: defaults and the bounds a request is checked against.

/// Wasm fuel granted to every call (refilled before each packet). One unit is roughly one wasm
/// instruction (guest-lua's fuel-region pass makes wasmi charge only the code that runs): a Lua
/// VM instruction costs ~90-160 fuel, a trivial `return lp.ACCEPT` ~2,000 (BENCHMARKS.md).
pub const DEFAULT_FUEL: u64 = 10_000_000;
/// Upper bound for `fuel`.
pub const MAX_FUEL: u64 = 10_000_000_000;
/// Lua VM instructions one call may execute before it fails with "out of instructions", a clean
/// Lua error that keeps the instance (running out of fuel is a trap: the instance is rebuilt).
/// Sized to trip before the default fuel does. 0 disables the budget (fuel still bounds the call).
pub const DEFAULT_INSTRUCTIONS: u32 = 50_000;
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
