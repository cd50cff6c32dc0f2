//! The guest ABI: what `lua.wasm` imports from its host, what it exports, and the layout of the
//! packet context the host writes into guest memory before every call.
//!
//! For C, `guest-lua/c/lp_abi.h` is generated from this file (`tests/src/c_headers.rs`).

/// Import module of every host function. The guest imports nothing else (no WASI).
pub const IMPORT_MODULE: &str = "lp";

/// `try(ud: i32) -> i32`: call the guest export [`EXPORT_TRAMPOLINE`] with `ud`, re-entering the
/// same instance. Returns [`TRY_OK`], or [`TRY_THREW`] when a Lua error unwound to it. Past the
/// re-entry cap (`lp_run`'s `cap`) it traps instead of calling.
pub const IMPORT_TRY: &str = "try";
/// `throw()`: never returns; unwinds to the nearest `try` (or to the top-level call).
pub const IMPORT_THROW: &str = "throw";
/// `log(level: i32, ptr: i32, len: i32)`: one line of the script's log.
pub const IMPORT_LOG: &str = "log";
/// `now() -> i64`: monotonic nanoseconds.
pub const IMPORT_NOW: &str = "now";
/// `pkt_read(off: i32, dst: i32, len: i32) -> i32`: copy packet bytes `[off, off+len)` (from the
/// network header) to guest memory at `dst`; returns `len`, or -1 if out of the packet.
pub const IMPORT_PKT_READ: &str = "pkt_read";
/// `pkt_write(off: i32, src: i32, len: i32) -> i32`: write guest bytes `[src, src+len)` to the
/// packet at `[off, off+len)` (from the network header), for writes beyond the window (those
/// inside it are made in the window and applied after the call, see [`ctx::DIRTY_LO`]).
/// Returns `len`, or -1 when the range is not in the packet or the packet cannot be written.
pub const IMPORT_PKT_WRITE: &str = "pkt_write";

/// `out_of_fuel()`: the guest's fuel counter went below zero. The host traps (out of fuel) or
/// refills the counter and returns, and the guest goes on (guest-lua/build/fuel.rs).
pub const IMPORT_OUT_OF_FUEL: &str = "out_of_fuel";
pub const TRY_OK: i32 = 0;
pub const TRY_THREW: i32 = 1;

pub const LOG_INFO: i32 = 0;
pub const LOG_WARN: i32 = 1;

/// `lp_trampoline(ud: i32)`: runs the protected body `ud` describes (called by the host's `try`).
pub const EXPORT_TRAMPOLINE: &str = "lp_trampoline";
/// `lp_init(pcall_depth: i32) -> i32`: creates the Lua state; 0 or an error status.
pub const EXPORT_INIT: &str = "lp_init";
/// `lp_ctx() -> i32`: address of the packet context ([`ctx`]).
pub const EXPORT_CTX: &str = "lp_ctx";
/// `lp_alloc(len: i32) -> i32` / `lp_free(ptr: i32)`: guest heap for host-provided strings.
pub const EXPORT_ALLOC: &str = "lp_alloc";
pub const EXPORT_FREE: &str = "lp_free";
/// `lp_load(src, src_len, name, name_len) -> i32`: compiles and runs the script's top-level chunk.
pub const EXPORT_LOAD: &str = "lp_load";
/// `lp_ref_global(name, len) -> i32`: a reference to the global function `name`, or
/// [`ERR_NO_FUNCTION`].
pub const EXPORT_REF_GLOBAL: &str = "lp_ref_global";
/// `lp_ref_string(ptr, len) -> i32`: a reference to a Lua string (the rule's argument).
pub const EXPORT_REF_STRING: &str = "lp_ref_string";
/// `lp_run(func_ref, arg_ref, instructions, cap) -> i32`: one packet, with at most
/// `instructions` Lua instructions (0: no budget) and `cap` host re-entries. A verdict code (`verdict`),
/// or a negative error status. A Lua error that no `pcall` catches unwinds out of this call as
/// a `throw` trap; the host then calls [`EXPORT_RECOVER`].
pub const EXPORT_RUN: &str = "lp_run";
/// `lp_recover() -> i32`: completes a `lp_run` (or `lp_load`) whose Lua error unwound to the host;
/// returns the negative error status.
pub const EXPORT_RECOVER: &str = "lp_recover";
/// `lp_errmsg() -> i32`, `lp_errlen() -> i32`: the last error message (and traceback).
pub const EXPORT_ERRMSG: &str = "lp_errmsg";
pub const EXPORT_ERRLEN: &str = "lp_errlen";
/// `lp_mem_used() -> i32`: bytes the Lua allocator holds.
pub const EXPORT_MEM_USED: &str = "lp_mem_used";
/// `lp_features() -> i32`: what the loaded script's compiled chunk shows it may do, as
/// `FEATURE_*` bits (set by `lp_load`). A guest without this export may do anything.
pub const EXPORT_FEATURES: &str = "lp_features";
/// The chunk names the field `QUEUE` (`lp.QUEUE(n)`): it may return a queue verdict.
pub const FEATURE_QUEUE: i32 = 1;
/// The shadow-stack pointer global the host restores after unwinding.
/// The guest's fuel counter: a mutable i64 global the guest decrements as it runs (fuel in the
/// guest, guest-lua/build/fuel.rs). Absent from guests that leave metering to the engine.
pub const EXPORT_FUEL: &str = "lp_fuel";
/// Bytes of a guest's `memory.copy` or `memory.fill` per unit of fuel.
pub const FUEL_BULK_BYTES: u32 = 8;
pub const EXPORT_STACK_POINTER: &str = "__stack_pointer";
/// `lp_fuel_stop() -> ()`: called by the host (from `lp.out_of_fuel`, when a packet's call first
/// runs low) to make the Lua interpreter raise "out of fuel" at its next back edge or call.
pub const EXPORT_FUEL_STOP: &str = "lp_fuel_stop";
pub const EXPORT_MEMORY: &str = "memory";

/// Error statuses (negative) returned by `lp_run`, `lp_load`, `lp_recover`, `lp_init`.
pub const ERR_RUNTIME: i32 = -1;
pub const ERR_MEMORY: i32 = -2;
pub const ERR_RETURN: i32 = -3;
pub const ERR_INSTRUCTIONS: i32 = -4;
pub const ERR_STACK: i32 = -5;
pub const ERR_SYNTAX: i32 = -6;
pub const ERR_NO_FUNCTION: i32 = -7;
pub const ERR_HANDLER: i32 = -8;
/// The call's fuel ran low in Lua code: a Lua error raised at the interpreter's next back edge
/// or call (the soft stop, `EXPORT_FUEL_STOP`); the instance is kept.
pub const ERR_FUEL: i32 = -9;

/// Layout of the packet context at `lp_ctx()`.
///
/// The host fills it before every call. The guest may change the window (packet writes), `MARK`
/// and `CT_MARK`; it says what it changed in `DIRTY_LO`/`DIRTY_HI` and `OUT`, which the host
/// zeroes before the call and reads (as untrusted input) after it.
pub mod ctx {
    /// u32: packet length in bytes, from the network header.
    pub const LEN: usize = 0;
    /// u32: bytes of the packet present in the window at [`WINDOW`].
    pub const WIN: usize = 4;
    /// u32: offset of the transport header from the network header (valid with [`FLAG_L4`]).
    pub const L4OFF: usize = 8;
    /// u32: packet mark (the guest writes it and sets [`OUT_MARK`]).
    pub const MARK: usize = 12;
    /// u8: NFPROTO_IPV4 (2) or NFPROTO_IPV6 (10).
    pub const NFPROTO: usize = 16;
    /// u8: transport protocol number (valid with [`FLAG_L4`] or for fragments).
    pub const L4PROTO: usize = 17;
    /// u8: `FLAG_*`.
    pub const FLAGS: usize = 18;
    /// u8: netfilter hook number.
    pub const HOOK: usize = 19;
    /// u8: `CSUM_*`: how the transport checksum field is to be kept.
    pub const CSUM: usize = 20;
    /// u8: conntrack state bits as nft's `ct state` (`CT_*`), valid with [`FLAG_CT`].
    pub const CT_STATE: usize = 21;
    /// u8: `OUT_*` bits the guest sets for what it changed besides packet bytes.
    pub const OUT: usize = 22;
    /// [u8; 16] each, NUL-padded interface names.
    pub const IIFNAME: usize = 24;
    pub const OIFNAME: usize = 40;
    /// u32: conntrack mark (valid with [`FLAG_CT`]; the guest writes it and sets [`OUT_CT_MARK`]).
    pub const CT_MARK: usize = 56;
    /// u32: conntrack id (valid with [`FLAG_CT`]).
    pub const CT_ID: usize = 60;
    /// u32 each: the window bytes `[DIRTY_LO, DIRTY_HI)` were written by the guest; `DIRTY_HI`
    /// 0 means none. The host copies them to the packet after the call.
    pub const DIRTY_LO: usize = 64;
    pub const DIRTY_HI: usize = 68;
    /// [u8; 14]: the Ethernet header (destination, source, type), valid with [`FLAG_ETH`]; the
    /// guest writes it in place and sets [`OUT_ETH`].
    pub const ETH: usize = 72;
    pub const ETH_LEN: usize = 14;
    /// The first `WIN` bytes of the packet.
    pub const WINDOW: usize = 128;
    /// Capacity of the window; later bytes are read through `pkt_read`.
    pub const WINDOW_CAP: usize = 2048;
    pub const SIZE: usize = WINDOW + WINDOW_CAP;

    /// The packet is a fragment (IPv4 MF or offset, IPv6 fragment header).
    pub const FLAG_FRAG: u8 = 1;
    /// A fragment other than the first: it carries no transport header.
    pub const FLAG_NONFIRST: u8 = 2;
    /// A complete transport header of `L4PROTO` starts at `L4OFF`.
    pub const FLAG_L4: u8 = 4;
    /// Conntrack information is present (`CT_STATE`, `CT_MARK`, `CT_ID`).
    pub const FLAG_CT: u8 = 8;
    /// The packet has an Ethernet header (`ETH`): bridge and netdev hooks, Ethernet captures.
    pub const FLAG_ETH: u8 = 16;

    /// The transport checksum field is complete: setters update it incrementally.
    pub const CSUM_COMPLETE: u8 = 0;
    /// The transport checksum will be finished by the NIC or the stack (Linux
    /// CHECKSUM_PARTIAL): its field holds the pseudo-header sum, so only pseudo-header changes
    /// (addresses) update it.
    pub const CSUM_PARTIAL: u8 = 1;

    /// nft's `ct state` bits.
    pub const CT_INVALID: u8 = 1;
    pub const CT_ESTABLISHED: u8 = 2;
    pub const CT_RELATED: u8 = 4;
    pub const CT_NEW: u8 = 8;
    pub const CT_UNTRACKED: u8 = 64;

    /// `OUT` bits.
    pub const OUT_MARK: u8 = 1;
    pub const OUT_CT_MARK: u8 = 2;
    pub const OUT_ETH: u8 = 4;

    pub const NFPROTO_IPV4: u8 = 2;
    pub const NFPROTO_IPV6: u8 = 10;
}
