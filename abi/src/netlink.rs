//! Netlink numbers: the nft expression `lua` and the generic netlink family `luapkt`.
//!
//! For the kernel's C, `kmod-wasmi/kernel/luapkt_abi.h` is generated from this file
//! (`tests/src/c_headers.rs`).

/// Name of the nft expression (`MODULE_ALIAS_NFT_EXPR("lua")`).
pub const EXPR_NAME: &str = "lua";

/// Attributes of the `lua` expression (`NFTA_LUA_*`).
pub mod expr {
    pub const UNSPEC: u16 = 0;
    /// NLA_NUL_STRING, at most [`super::NAME_MAX`] bytes: the script's name.
    pub const SCRIPT: u16 = 1;
    /// NLA_NUL_STRING, at most [`super::NAME_MAX`] bytes: entry function (default `process_packet`).
    pub const FUNC: u16 = 2;
    /// NLA_BINARY, at most [`super::ARG_MAX`] bytes: the string passed to the entry function.
    pub const ARG: u16 = 3;
    /// NLA_U32 (big endian, as nft's other expressions): [`super::EXPR_F_*`] bits.
    pub const FLAGS: u16 = 4;
    pub const MAX: u16 = 4;
}

/// Longest script or function name, in bytes (without the terminating NUL).
pub const NAME_MAX: usize = 63;
/// Longest rule argument, in bytes.
pub const ARG_MAX: usize = 256;
/// No expression flag is defined yet: any bit set is refused with EOPNOTSUPP.
pub const EXPR_F_ALL: u32 = 0;

/// Generic netlink family name and version.
pub const GENL_NAME: &str = "luapkt";
pub const GENL_VERSION: u8 = 1;

/// Commands of the `luapkt` family.
pub mod cmd {
    pub const UNSPEC: u8 = 0;
    /// Starts an upload: NAME, SIZE (package bytes), limits, ON_ERROR, FLAGS. Replies UPLOAD_ID.
    pub const LOAD_BEGIN: u8 = 1;
    /// One chunk of an upload: UPLOAD_ID, OFFSET (must equal the bytes received so far), DATA.
    pub const LOAD_CHUNK: u8 = 2;
    /// Completes an upload: UPLOAD_ID. Validates, compiles and instantiates, then publishes the
    /// script (or, with FLAG_REPLACE, swaps it in atomically). Replies like GET.
    pub const LOAD_COMMIT: u8 = 3;
    /// NAME. Fails with EBUSY while rules use the script (the extack message names them).
    pub const UNLOAD: u8 = 4;
    /// NAME: one script; without NAME (NLM_F_DUMP): every script of the namespace.
    pub const GET: u8 = 5;
    /// NAME and the limits / ON_ERROR to change, live.
    pub const SET_LIMITS: u8 = 6;
    /// Aborts an upload: UPLOAD_ID (uploads also expire when their socket closes).
    pub const LOAD_ABORT: u8 = 7;
    /// NAME, LOG_SEQ (the first line wanted; 0 or absent: the oldest kept): the script's log
    /// lines from there (`records::LogHeader` records in LOG_DATA, at most
    /// `records::READ_MAX` bytes), LOG_SEQ the number to ask from next, LOG_LOST the lines
    /// overwritten before they could be read.
    pub const LOG_READ: u8 = 8;
    /// The same for the errors kept with their packets (`records::ErrorHeader` records).
    pub const ERRORS_READ: u8 = 9;
    /// NAME: the script's maps (`records::MapInfo` records in LOG_DATA).
    pub const MAP_LIST: u8 = 10;
    /// NAME, MAP_NAME, LOG_SEQ (a cursor, 0 to start): entries (`records::MapEntry` records in
    /// LOG_DATA, at most `records::READ_MAX` bytes) and LOG_SEQ, the cursor to ask from next
    /// (0: done). A map that changes meanwhile may show an entry twice or not at all.
    pub const MAP_DUMP: u8 = 11;
    /// NAME, MAP_NAME, MAP_KEY: the value in MAP_VALUE (ENOENT: no such key).
    pub const MAP_GET: u8 = 12;
    /// NAME, MAP_NAME, MAP_KEY, MAP_VALUE: stores it (needs what loading needs).
    pub const MAP_SET: u8 = 13;
    /// NAME, MAP_NAME, MAP_KEY: removes it (ENOENT: no such key).
    pub const MAP_DELETE: u8 = 14;
    /// NAME, OFFSET (absent: 0): the script's Lua source from OFFSET on, in DATA (at most
    /// `records::READ_MAX` bytes), with SIZE, the source's whole length, and OFFSET; ask again
    /// from OFFSET + the bytes received until SIZE is reached (what `lpctl save` keeps).
    /// EINVAL for an OFFSET past the end. Reading needs what showing the script needs.
    pub const SOURCE_READ: u8 = 15;
}

/// Attributes of the `luapkt` family.
pub mod attr {
    pub const UNSPEC: u16 = 0;
    /// NLA_NUL_STRING, at most NAME_MAX bytes, `[A-Za-z0-9_.-]`.
    pub const NAME: u16 = 1;
    /// NLA_U32.
    pub const UPLOAD_ID: u16 = 2;
    /// NLA_U32: total package size, at most [`super::PACKAGE_MAX`].
    pub const SIZE: u16 = 3;
    /// NLA_U32.
    pub const OFFSET: u16 = 4;
    /// NLA_BINARY, at most [`super::CHUNK_MAX`] bytes.
    pub const DATA: u16 = 5;
    /// NLA_U64.
    pub const FUEL: u16 = 6;
    /// NLA_U32.
    pub const INSTRUCTIONS: u16 = 7;
    /// NLA_U64: bytes of linear memory per instance.
    pub const MEMORY: u16 = 8;
    /// NLA_U32.
    pub const RECURSION: u16 = 9;
    /// NLA_U32.
    pub const PCALL_DEPTH: u16 = 10;
    /// NLA_U8: [`super::ON_ERROR_BREAK`], `_ACCEPT`, `_DROP`.
    pub const ON_ERROR: u16 = 11;
    /// NLA_U32: [`super::FLAG_REPLACE`].
    pub const FLAGS: u16 = 12;
    /// Nested: `stat::*`.
    pub const STATS: u16 = 13;
    /// NLA_BINARY, 8 bytes: the first bytes of the package's SHA-256 (like bpftool's tag).
    pub const TAG: u16 = 14;
    /// NLA_U32: rules bound to the script.
    pub const REFS: u16 = 15;
    /// NLA_U64: linear memory of all instances, in bytes.
    pub const MEM_BYTES: u16 = 16;
    /// NLA_U32: instances (one per possible CPU).
    pub const INSTANCES: u16 = 17;
    pub const PAD: u16 = 18;
    /// NLA_U64: fuel for building one instance (Lua setup and the top-level chunk).
    pub const LOAD_FUEL: u16 = 19;
    /// NLA_U8: the engine a script's instances run on, [`super::ENGINE_WASMI`] or
    /// [`super::ENGINE_COMPILED`] (absent at load: the module's default).
    pub const ENGINE: u16 = 20;
    /// NLA_U64: a record's sequence number (`cmd::LOG_READ`, `cmd::ERRORS_READ`).
    pub const LOG_SEQ: u16 = 21;
    /// NLA_BINARY: records (`records`).
    pub const LOG_DATA: u16 = 22;
    /// NLA_U64: records overwritten before this read reached them.
    pub const LOG_LOST: u16 = 23;
    /// NLA_NUL_STRING: a map of the script.
    pub const MAP_NAME: u16 = 24;
    /// NLA_BINARY: a key (at most `records::MAP_KEY_MAX` bytes).
    pub const MAP_KEY: u16 = 25;
    /// NLA_BINARY: a value: bytes, or a number as `guest::map::NUMBER` bytes (a tag and 8
    /// little-endian bytes).
    pub const MAP_VALUE: u16 = 26;
    /// NLA_U32 each: the send limits (`limits::*_SEND_*`): packets and bytes per call, packets
    /// and bytes per second.
    pub const SEND_PACKETS: u16 = 27;
    pub const SEND_BYTES: u16 = 28;
    pub const SEND_RATE: u16 = 29;
    pub const SEND_BYTE_RATE: u16 = 30;
    /// NLA_U64: bytes of the script's maps (allocated in full when declared).
    pub const MAP_BYTES: u16 = 31;
    pub const MAX: u16 = 31;
}

/// Counters nested in `attr::STATS`, all NLA_U64.
pub mod stat {
    pub const UNSPEC: u16 = 0;
    pub const RUN_CNT: u16 = 1;
    pub const RUN_TIME_NS: u16 = 2;
    pub const ACCEPT: u16 = 3;
    pub const DROP: u16 = 4;
    pub const CONTINUE: u16 = 5;
    pub const BREAK: u16 = 6;
    pub const QUEUE: u16 = 7;
    pub const ERR_LUA: u16 = 8;
    pub const ERR_MEMORY: u16 = 9;
    pub const ERR_FUEL: u16 = 10;
    pub const ERR_INSTRUCTIONS: u16 = 11;
    pub const ERR_STACK: u16 = 12;
    pub const ERR_RETURN: u16 = 13;
    pub const ERR_TRAP: u16 = 14;
    pub const FUEL_TOTAL: u16 = 15;
    pub const FUEL_MAX: u16 = 16;
    pub const REBUILDS: u16 = 17;
    pub const PAD: u16 = 18;
    /// Instance rebuilds that failed (retried with a growing delay, then given up).
    pub const REBUILD_FAILURES: u16 = 19;
    /// The longest single call, in nanoseconds.
    pub const RUN_TIME_MAX_NS: u16 = 20;
    /// Lines the script logged (kept in its log ring, and printed).
    pub const LOG_LINES: u16 = 21;
    /// Lines over the script's log rate (`records::LOG_PER_SEC`): neither kept nor printed.
    pub const LOG_DROPPED: u16 = 22;
    /// Packets the script queued for sending, and their bytes.
    pub const SENT_PACKETS: u16 = 23;
    pub const SENT_BYTES: u16 = 24;
    /// Sends refused by the script's caps and rates.
    pub const SEND_REFUSED: u16 = 25;
    /// Sends that failed: malformed, unroutable, no memory, not possible where the call ran.
    pub const SEND_FAILED: u16 = 26;
    /// Timers pending now (`lp.timer`).
    pub const TIMERS_PENDING: u16 = 27;
    /// Timer runs, and those that failed (a Lua error or a trap; the error is logged).
    pub const TIMER_RUNS: u16 = 28;
    pub const TIMER_ERRORS: u16 = 29;
    /// Timers that did not run: refused when armed (too many, rate), or dropped because their
    /// instance was rebuilt or their CPU went offline. Cancelled ones are not counted.
    pub const TIMERS_DROPPED: u16 = 30;
    pub const MAX: u16 = 30;
}

pub const ON_ERROR_BREAK: u8 = 0;
pub const ON_ERROR_ACCEPT: u8 = 1;
pub const ON_ERROR_DROP: u8 = 2;

/// wasmi, the reference engine: any guest.
pub const ENGINE_WASMI: u8 = 1;
/// The built-in guest compiled into the module (wasm2c): only the built-in guest.
pub const ENGINE_COMPILED: u8 = 2;

/// Replace a loaded script of the same name atomically.
pub const FLAG_REPLACE: u32 = 1;

/// Largest package the kernel accepts.
pub const PACKAGE_MAX: u32 = 4 << 20;
/// Largest DATA attribute of one chunk.
pub const CHUNK_MAX: u32 = 32 << 10;
/// Uploads in flight per network namespace.
pub const UPLOADS_MAX: u32 = 16;
