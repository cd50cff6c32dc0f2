//! Sandbox limits: defaults and the bounds a request is checked against.

/// Wasm fuel granted to every call (refilled before each packet). The built-in guest counts it
/// itself (guest-lua/build/fuel.rs), so it is the same number under every engine: one unit is
/// roughly one wasm instruction of real work (moves and structure free, calls 4): a Lua VM
/// instruction costs ~30-60 fuel, a trivial `return lp.ACCEPT` ~800 (BENCHMARKS.md).
pub const DEFAULT_FUEL: u64 = 100_000;
/// Upper bound for `fuel`: with the fuel of an error's recovery and message it is the hard
/// per-call ceiling ([`CALL_FUEL_CEILING`]) that no setting lifts.
pub const MAX_FUEL: u64 = CALL_FUEL_CEILING - RECOVER_FUEL - MESSAGE_FUEL - BIND_FUEL;
/// The most fuel one packet's call can consume, everything included: the script's fuel, the
/// recovery of a Lua error that unwound to the host, fetching its message and a lazy bind.
/// Sized so that a call stays under 1 ms in the kernel on the machines luapkt targets: the
/// slowest fuel measured (`cargo bench -p luapkt-runtime --bench fuel_ceiling`, wasmi's
/// portable dispatch as in the kernel) and the figure are in docs/security.md.
pub const CALL_FUEL_CEILING: u64 = 170_000;
/// Fuel for finishing a call whose Lua error unwound to the host (`__close` handlers).
pub const RECOVER_FUEL: u64 = 10_000;
/// Fuel for fetching an error message from the guest.
pub const MESSAGE_FUEL: u64 = 2_000;
/// Fuel for binding one entry (a rule's function and argument) in an instance; a lazy bind on
/// the packet path runs before the call (a bind costs ~1,800-5,100, ~15,000 when the Lua
/// registry grows).
pub const BIND_FUEL: u64 = 20_000;
/// Fuel for building an instance: the Lua state's setup and the script's top-level chunk,
/// per instance, in process context. A load that needs more fails ("top-level chunk used its
/// N fuel"). Changeable per script like the other limits.
pub const DEFAULT_LOAD_FUEL: u64 = 80_000_000;
/// Bounds for `load_fuel`. The largest keeps one instance's build to seconds; it runs in
/// slices of [`LOAD_SLICE_FUEL`] between which the kernel reschedules and checks for a fatal
/// signal, so it never holds a CPU.
pub const MIN_LOAD_FUEL: u64 = 1_000_000;
pub const MAX_LOAD_FUEL: u64 = 4_000_000_000;
/// Fuel of one slice of a load.
pub const LOAD_SLICE_FUEL: u64 = 2_000_000;
/// Lua VM instructions one call may execute before it fails with "out of instructions", a clean
/// Lua error that keeps the instance. Off by default: fuel, which the guest counts itself,
/// bounds every call and stops it softly too (the first time it runs out the interpreter
/// raises "out of fuel", a Lua error that keeps the instance; only a script that catches that
/// and runs on traps), while the budget is a count hook that slows every Lua instruction
/// (15-30% of a packet's time). A script that wants to count instructions sets it.
pub const DEFAULT_INSTRUCTIONS: u32 = 0;
/// Upper bound for `instructions`.
pub const MAX_INSTRUCTIONS: u32 = 1_000_000_000;
/// Linear memory of one instance, in bytes.
pub const DEFAULT_MEMORY: u64 = 1 << 20;
/// Smallest and largest accepted `memory` (one wasm page .. 256 MiB).
pub const MIN_MEMORY: u64 = 64 * 1024;
pub const MAX_MEMORY: u64 = 256 << 20;
/// wasm call-stack depth (frames) inside one entry into the guest.
pub const DEFAULT_RECURSION: u32 = 1024;
/// 2,048 frames keep wasmi's call-frame vector within the kernel's 64 KiB reserve block.
pub const MAX_RECURSION: u32 = 2_048;
/// Nested host re-entries (each protected call — `pcall`, `load`, ... — is one).
/// Each costs host stack: the cap keeps a hostile script from exhausting it.
pub const DEFAULT_PCALL_DEPTH: u32 = 8;
pub const MAX_PCALL_DEPTH: u32 = 32;

/// Packets one call may send (`lp.send`, `lp.reply`); 0 forbids sending.
pub const DEFAULT_SEND_PACKETS: u32 = 8;
pub const MAX_SEND_PACKETS: u32 = 64;
/// Bytes (from the network header) one call may send.
pub const DEFAULT_SEND_BYTES: u32 = 16 * 1024;
pub const MAX_SEND_BYTES: u32 = 256 * 1024;
/// Packets a script may send per second, all CPUs together (a token bucket holding one
/// second's worth).
pub const DEFAULT_SEND_RATE: u32 = 1_000;
pub const MAX_SEND_RATE: u32 = 1_000_000;
/// Bytes a script may send per second, all CPUs together.
pub const DEFAULT_SEND_BYTE_RATE: u32 = 4 << 20;
pub const MAX_SEND_BYTE_RATE: u32 = 1 << 30;
/// Timers (`lp.timer`) one script may have pending, all of its instances together: the kernel
/// sizes a script's timers when it loads.
pub const TIMERS_MAX: usize = 64;
/// Timers a script may arm per second, all CPUs together (a token bucket holding one second's
/// worth): each run is a call of at most the per-call fuel ceiling, so a script's timers take
/// at most this many such calls a second of a CPU.
pub const TIMER_RATE: u32 = 100;
/// The longest delay of a timer: one hour.
pub const TIMER_DELAY_MAX_MS: u32 = 3_600_000;
/// The largest packet a script may send: IPv4's and IPv6's (without jumbograms) length field.
pub const SEND_PACKET_MAX: usize = 65_535;
