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
/// `map_declare(spec: i32, len: i32) -> i32`: declares one of the script's maps (`lp.map`):
/// `len` bytes at `spec` in the [`map`] spec layout. Only while the top-level chunk runs;
/// every instance declares the same maps and gets the same ids, which are its number (0, 1,
/// ...) or a negative `map::E_*`.
pub const IMPORT_MAP_DECLARE: &str = "map_declare";
/// `map_op(op: i32, id: i32, key: i32, klen: i32, val: i32, vlen: i32) -> i32`: one operation
/// (`map::GET` ...) on map `id` with the key at `[key, key+klen)`; `val`/`vlen` as the
/// operation says. Returns its result (>= 0) or a negative `map::E_*`.
pub const IMPORT_MAP_OP: &str = "map_op";

/// `send(kind: i32, ptr: i32, len: i32) -> i32`: queues the IPv4 or IPv6 packet at
/// `[ptr, ptr+len)` (from its network header) for transmission after the call returns
/// (`lp.send`, `lp.reply`). 0, or a negative `send::E_*`.
pub const IMPORT_SEND: &str = "send";

/// `lp.send`'s import: kinds and errors.
pub mod send {
    /// Routed to the packet's destination and sent as a locally generated packet (the output
    /// hooks see it).
    pub const KIND_SEND: i32 = 0;
    /// As [`KIND_SEND`], related to the packet in hand: it shares its conntrack entry (as
    /// nft's `reject` does), so a stateful ruleset lets the answer through.
    pub const KIND_REPLY: i32 = 1;

    /// Not an IPv4 or IPv6 packet whose header and length agree.
    pub const E_MALFORMED: i32 = -1;
    /// Over the call's packet cap (limit `send-packets`).
    pub const E_PACKETS: i32 = -2;
    /// Over the call's byte cap (limit `send-bytes`).
    pub const E_BYTES: i32 = -3;
    /// Over the script's rate (limits `send-rate`, `send-byte-rate`).
    pub const E_RATE: i32 = -4;
    /// No route to the destination.
    pub const E_ROUTE: i32 = -5;
    /// No memory for the packet.
    pub const E_MEMORY: i32 = -6;
    /// Sending is not possible here: outside a packet's call, from a packet a script sent
    /// (which would loop), or in an embedder that cannot send.
    pub const E_UNAVAILABLE: i32 = -7;
    /// The range is outside guest memory, or the kind unknown.
    pub const E_RANGE: i32 = -8;
}

/// `timer(op: i32, ref: i32, ms: i32) -> i32`: `timer::ARM` runs the function the guest holds
/// at registry reference `ref` once, `ms` milliseconds from now, in the instance that armed it
/// (`lp.timer`); `timer::CANCEL` cancels the pending timer of that reference (`lp.cancel`).
/// 0, or a negative `timer::E_*`. The host runs a timer as a call of `lp_run(ref, -1, ..)`.
pub const IMPORT_TIMER: &str = "timer";

/// `lp.timer`'s import: operations and errors.
pub mod timer {
    pub const ARM: i32 = 0;
    pub const CANCEL: i32 = 1;
    /// The script has `limits::TIMERS_MAX` timers pending.
    pub const E_TOO_MANY: i32 = -1;
    /// Over the script's timer rate (`limits::TIMER_RATE`).
    pub const E_RATE: i32 = -2;
    /// The delay is negative or over `limits::TIMER_DELAY_MAX_MS`, or the operation unknown.
    pub const E_RANGE: i32 = -3;
    /// Timers are not possible here: while the script loads, or in an embedder without them.
    pub const E_UNAVAILABLE: i32 = -4;
    /// `CANCEL`: no pending timer of this reference (it ran, or was cancelled).
    pub const E_NOT_PENDING: i32 = -5;
}

/// `lp.map`'s imports: operations, the spec layout, value encodings, errors.
pub mod map {
    /// The value is copied to `[val, val+vlen)` (at most `vlen` bytes); returns its length, or
    /// [`ABSENT`]. An LRU map counts it as a use.
    pub const GET: i32 = 0;
    /// Stores the value at `[val, val+vlen)`; returns 0.
    pub const SET: i32 = 1;
    /// Removes the key; returns 1, or 0 when it was absent.
    pub const DELETE: i32 = 2;
    /// Adds the number at `[val, val+NUMBER)` to the key's (absent: 0) and writes the sum back
    /// there; returns [`NUMBER`].
    pub const ADD: i32 = 3;
    /// Entries in the map (the key is ignored).
    pub const LEN: i32 = 4;

    /// A number as values travel: a tag ([`INT`], [`FLOAT`]) and 8 little-endian bytes.
    pub const NUMBER: usize = 9;
    pub const INT: u8 = 1;
    pub const FLOAT: u8 = 2;

    /// The spec: kind (u8: [`KIND_HASH`], [`KIND_LRU`]), value (u8: [`VALUE_NUMBER`],
    /// [`VALUE_BYTES`]), key_size (u16), value_size (u16), max_entries (u32, at byte 8),
    /// then the name's bytes (the rest of the spec).
    pub const SPEC_NAME: usize = 12;
    pub const KIND_HASH: u8 = 0;
    pub const KIND_LRU: u8 = 1;
    pub const VALUE_NUMBER: u8 = 0;
    pub const VALUE_BYTES: u8 = 1;
    /// Longest map name.
    pub const NAME_MAX: usize = 63;

    /// GET: no such key.
    pub const ABSENT: i32 = -1;
    pub const E_KEY: i32 = -2;
    pub const E_VALUE: i32 = -3;
    pub const E_TYPE: i32 = -4;
    pub const E_FULL: i32 = -5;
    /// No map of that id, or an unknown operation.
    pub const E_ID: i32 = -6;
    /// A range outside guest memory.
    pub const E_RANGE: i32 = -7;
    /// The declaration is out of range (sizes, name).
    pub const E_SPEC: i32 = -8;
    /// Declared outside the top-level chunk.
    pub const E_LATE: i32 = -9;
    /// More maps than a script may have, or more bytes.
    pub const E_TOO_MANY: i32 = -10;
    /// A map of that name exists with another declaration.
    pub const E_REDECLARED: i32 = -11;
    /// No memory for the map.
    pub const E_MEMORY: i32 = -12;
    /// Past the bytes the host lets the script's maps take (the kernel: the network
    /// namespace's script memory cap).
    pub const E_ROOM: i32 = -13;
}

pub const TRY_OK: i32 = 0;
pub const TRY_THREW: i32 = 1;

pub const LOG_INFO: i32 = 0;
pub const LOG_WARN: i32 = 1;
/// `lp.debug`: kept in the script's log, not printed to the kernel log.
pub const LOG_DEBUG: i32 = 2;

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
/// `lp_run`'s argument reference for a timer's call: `func_ref` is the timer's function (a
/// registry reference the guest releases as the call starts), called without a packet.
pub const TIMER_ARG: i32 = -1;
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
