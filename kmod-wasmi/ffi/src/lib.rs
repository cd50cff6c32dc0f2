//! The Rust side of nft_lua.ko's Rust↔C boundary — the only Rust file that crosses it.
//!
//! Exports the `lp_rt_*` functions the C glue calls and imports the `lp_*` shims it provides;
//! `kmod-wasmi/kernel/lp_rt.h` is the contract both sides follow (context, locks, lifetimes)
//! and declares the same functions and structures. Everything else is the runtime
//! (`luapkt-runtime`, `no_std`), which knows nothing of the kernel.
//!
//! Contexts, in short (lp_rt.h has the details):
//! - process context, may sleep: cache, load, free, build/install, limits, stats;
//! - bottom halves disabled on CPU `cpu`, never re-entered: `lp_rt_run_on_cpu`,
//!   `lp_rt_bind_on_cpu` (the per-CPU contract of `runtime::PerCpuScript`).
//!
//! Memory comes from `lp_alloc`, which picks GFP flags by context (GFP_KERNEL when it may
//! sleep, GFP_ATOMIC otherwise). A failed infallible allocation panics, and a panic is a
//! kernel BUG: the packet path therefore allocates only when a script grows its heap (through
//! `memory.grow`, which fails cleanly) or on the first call after an entry was bound.
#![no_std]

extern crate alloc;

use abi::netlink;
use abi::verdict::OnError;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, c_void};
use core::fmt::{self, Write};
use core::mem::{offset_of, size_of};
use runtime::guest::BUILTIN_GUEST_SHA256;
use runtime::{
    package, Conntrack, EngineKind, ErrorKind, GuestCache, Host, Limits, LoadError, LogLevel, Meta,
    MetaWrite, Packet, PerCpuScript, SpareInstance,
};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// Shims the C glue provides (lp_shim.c).

/// A packet as the C glue hands it over (`struct lp_pkt`): valid for one call.
#[repr(C)]
pub struct LpPkt {
    /// `struct sk_buff *`, opaque here; written only through `lp_skb_write*`.
    pub skb: *mut c_void,
    /// Offset of the network header from `skb->data` (may be negative).
    pub noff: i32,
    /// Bytes from the network header to the end of the packet.
    pub len: u32,
    pub mark: u32,
    pub nfproto: u8,
    pub hook: u8,
    /// `CHECKSUM_PARTIAL` with the offload at this packet's transport header.
    pub csum_partial: u8,
    /// A conntrack entry (or an untracked packet: state only): `ct_*` are valid.
    pub has_ct: u8,
    pub iifname: [u8; 16],
    pub oifname: [u8; 16],
    pub ct_mark: u32,
    pub ct_id: u32,
    /// nft's `ct state` bits (`abi::guest::ctx::CT_*`): invalid (1) without an entry.
    pub ct_state: u8,
    /// `eth` holds the Ethernet header.
    pub has_eth: u8,
    pub eth: [u8; 14],
}

/// `struct lp_meta_write`: what a call changed besides packet bytes (`LP_META_*` in `flags`).
#[repr(C)]
pub struct LpMetaWrite {
    pub mark: u32,
    pub ct_mark: u32,
    pub flags: u8,
    pub eth: [u8; 14],
    pub _pad: u8,
}

const LP_META_MARK: u8 = 1;
const LP_META_CT_MARK: u8 = 2;
const LP_META_ETH: u8 = 4;

extern "C" {
    /// kvmalloc/kmalloc with GFP flags chosen by context; NULL on failure or `align` > PAGE_SIZE.
    fn lp_alloc(size: usize, align: usize, zero: bool) -> *mut u8;
    /// kvfree; NULL is ignored.
    fn lp_free(ptr: *mut u8);
    /// Inside lp_call_on_big_stack the task's sleeping allocations cannot fail; its next one
    /// of at least `size` bytes may (0 cancels). A no-op outside process context.
    fn lp_alloc_fallible_next(size: usize);
    /// Between slices of a load: cond_resched(); false when a fatal signal is pending.
    fn lp_load_pause() -> bool;
    /// Logs the message and BUG()s: never returns.
    /// Does not return (BUG()); declared returning so that the call is followed by `ud2`,
    /// where objtool looks for the end of the panic handler.
    fn lp_panic(msg: *const u8, len: usize);
    /// Rate-limited printk: `luapkt: <name>: <line>`; `level` 0 info, 1 warning.
    fn lp_log(level: c_int, name: *const u8, name_len: usize, line: *const u8, line_len: usize);
    /// ktime_get_ns().
    fn lp_ktime_ns() -> u64;
    /// local_clock(): this CPU's scheduler clock, for timing a call.
    fn lp_clock_ns() -> u64;
    /// The `time_every` module parameter.
    fn lp_time_every_get() -> u32;
    /// get_random_u32().
    fn lp_random_u32() -> u32;
    /// skb_copy_bits() from `off` bytes past the network header; 0 or a negative errno.
    fn lp_skb_read(pkt: *const LpPkt, off: u32, dst: *mut u8, len: u32) -> c_int;
    /// skb_ensure_writable() + skb_store_bits() at `off` bytes past the network header;
    /// 0 or a negative errno.
    fn lp_skb_write(pkt: *const LpPkt, off: u32, src: *const u8, len: u32) -> c_int;
    /// Applies the flagged metadata writes; 0 or the first negative errno.
    fn lp_skb_write_meta(pkt: *const LpPkt, w: *const LpMetaWrite) -> c_int;
}

// ---------------------------------------------------------------------------------------
// Allocator and panic handler.

struct KernelAlloc;

// SAFETY: lp_alloc returns NULL or a block of at least `size` bytes aligned to `align`
// (lp_shim.c rounds the size up so kmalloc's natural alignment covers `align`), which stays
// valid until lp_free; lp_free accepts any pointer lp_alloc returned.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { lp_alloc(layout.size(), layout.align(), false) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { lp_alloc(layout.size(), layout.align(), true) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`alloc_zeroed` (GlobalAlloc contract).
        unsafe { lp_free(ptr) }
    }
}

#[global_allocator]
static ALLOCATOR: KernelAlloc = KernelAlloc;

/// Formats into a fixed buffer, truncating.
struct Buf<const N: usize> {
    data: [u8; N],
    len: usize,
}

impl<const N: usize> Buf<N> {
    fn new() -> Self {
        Buf {
            data: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Write for Buf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(N - self.len);
        self.data[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut b = Buf::<256>::new();
    let _ = write!(b, "{info}");
    // SAFETY: `b.data[..b.len]` is initialized; lp_panic does not return, and `ud2` after it
    // is never reached.
    unsafe {
        lp_panic(b.data.as_ptr(), b.len);
        core::arch::asm!("ud2", options(noreturn))
    }
}

// ---------------------------------------------------------------------------------------
// Host and packets.

struct KernelHost;

impl Host for KernelHost {
    fn now_ns(&self) -> u64 {
        // SAFETY: no arguments; callable in any context.
        unsafe { lp_ktime_ns() }
    }
    fn clock_ns(&self) -> u64 {
        // SAFETY: no arguments; callable in any context.
        unsafe { lp_clock_ns() }
    }
    fn time_every(&self) -> u32 {
        // SAFETY: no arguments; callable in any context.
        unsafe { lp_time_every_get() }
    }
    fn log(&self, script: &str, level: LogLevel, line: &[u8]) {
        let level = match level {
            LogLevel::Info => 0,
            LogLevel::Warn => 1,
        };
        // SAFETY: both slices are valid for the call; lp_log copies nothing past their length.
        unsafe {
            lp_log(
                level,
                script.as_ptr(),
                script.len(),
                line.as_ptr(),
                line.len(),
            )
        }
    }
    fn seed(&self) -> u32 {
        // SAFETY: no arguments; callable in any context.
        unsafe { lp_random_u32() }
    }
    fn linear_memory(&self, bytes: usize) {
        // SAFETY: no pointers; any context (it only acts for a task inside
        // lp_call_on_big_stack, on that task's own slot).
        unsafe { lp_alloc_fallible_next(bytes) }
    }
    fn pause(&self) -> bool {
        // SAFETY: no arguments; only building an instance pauses, which runs in process
        // context without spin locks held (lp_load_pause checks and only then reschedules).
        unsafe { lp_load_pause() }
    }
}

/// An skb seen from its network header.
struct SkbPacket<'a>(&'a LpPkt);

impl Packet for SkbPacket<'_> {
    fn len(&self) -> usize {
        self.0.len as usize
    }
    fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        let (Ok(off32), Ok(len32)) = (u32::try_from(off), u32::try_from(dst.len())) else {
            return false;
        };
        if off32.checked_add(len32).is_none_or(|end| end > self.0.len) {
            return false;
        }
        // SAFETY: `self.0` is the lp_pkt of the running call (its skb lives until the call
        // returns); `dst` is writable for `len32` bytes.
        unsafe { lp_skb_read(self.0, off32, dst.as_mut_ptr(), len32) == 0 }
    }
    fn meta(&self) -> Meta {
        let p = self.0;
        Meta {
            nfproto: p.nfproto,
            hook: p.hook,
            mark: p.mark,
            iifname: p.iifname,
            oifname: p.oifname,
            csum_partial: p.csum_partial != 0,
            ct: (p.has_ct != 0).then_some(Conntrack {
                state: p.ct_state,
                mark: p.ct_mark,
                id: p.ct_id,
            }),
            eth: (p.has_eth != 0).then_some(p.eth),
        }
    }
    fn write(&self, off: usize, src: &[u8]) -> bool {
        let (Ok(off32), Ok(len32)) = (u32::try_from(off), u32::try_from(src.len())) else {
            return false;
        };
        if off32.checked_add(len32).is_none_or(|end| end > self.0.len) {
            return false;
        }
        // SAFETY: `self.0` is the lp_pkt of the running call, whose skb the C caller owns
        // until the call returns (slot context, as lp_skb_write requires); `src` is readable
        // for `len32` bytes and not kept.
        unsafe { lp_skb_write(self.0, off32, src.as_ptr(), len32) == 0 }
    }
    fn write_meta(&self, w: &MetaWrite) -> bool {
        let mut m = LpMetaWrite {
            mark: 0,
            ct_mark: 0,
            flags: 0,
            eth: [0; 14],
            _pad: 0,
        };
        if let Some(v) = w.mark {
            m.flags |= LP_META_MARK;
            m.mark = v;
        }
        if let Some(v) = w.ct_mark {
            m.flags |= LP_META_CT_MARK;
            m.ct_mark = v;
        }
        if let Some(e) = w.eth {
            m.flags |= LP_META_ETH;
            m.eth = e;
        }
        if m.flags == 0 {
            return true;
        }
        // SAFETY: as in `write`; `m` lives across the call and is only read. A part the
        // packet cannot take (no memory to unclone the head for the Ethernet header) fails
        // the call: the on-error policy decides.
        unsafe { lp_skb_write_meta(self.0, &m) == 0 }
    }
}

// ---------------------------------------------------------------------------------------
// Shared structures (lp_rt.h): layouts checked on both sides.

/// `struct lp_limits`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LpLimits {
    pub fuel: u64,
    pub memory: u64,
    pub instructions: u32,
    pub recursion: u32,
    pub pcall_depth: u32,
    /// `LUAPKT_ON_ERROR_*`.
    pub on_error: u8,
    pub _pad: [u8; 3],
    pub load_fuel: u64,
}

/// `struct lp_stats`.
#[repr(C)]
pub struct LpStats {
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// accept, drop, continue, break, queue.
    pub verdicts: [u64; 5],
    /// lua, memory, fuel, instructions, stack, return, trap.
    pub errors: [u64; 7],
    pub fuel_total: u64,
    pub fuel_max: u64,
    pub rebuilds: u64,
    pub mem_bytes: u64,
    pub run_time_max_ns: u64,
}

/// `struct lp_outcome`.
#[repr(C)]
pub struct LpOutcome {
    /// Verdict code (`LUAPKT_VERDICT_*`, or QUEUE_BASE + n).
    pub verdict: i32,
    /// 0, or 1 + the error kind's index.
    pub error: u8,
    /// This call poisoned its instance: schedule a rebuild.
    pub poisoned: u8,
    pub _pad: [u8; 2],
    pub fuel: u64,
}

const _: () = assert!(size_of::<LpPkt>() == 80);
const _: () = assert!(offset_of!(LpPkt, iifname) == 24);
const _: () = assert!(offset_of!(LpPkt, ct_mark) == 56);
const _: () = assert!(offset_of!(LpPkt, ct_state) == 64);
const _: () = assert!(offset_of!(LpPkt, eth) == 66);
const _: () = assert!(size_of::<LpMetaWrite>() == 24);
const _: () = assert!(offset_of!(LpMetaWrite, eth) == 9);
const _: () = assert!(size_of::<LpLimits>() == 40);
const _: () = assert!(size_of::<LpStats>() == 152);
const _: () = assert!(size_of::<LpOutcome>() == 16);

/// Compiled guests shared by every script (`struct lp_cache`).
pub struct LpCache(GuestCache);

/// One loaded version of a script (`struct lp_script`).
pub struct LpScript {
    rt: PerCpuScript,
    tag: [u8; 8],
}

/// An instance built for a slot, or taken out of one (`struct lp_spare`).
pub type LpSpare = SpareInstance;

// errno values (include/uapi/asm-generic/errno-base.h, errno.h)
const EPERM: c_int = 1;
const ENOENT: c_int = 2;
const EINTR: c_int = 4;
const ENOEXEC: c_int = 8;
const ENOMEM: c_int = 12;
const EBUSY: c_int = 16;
const EINVAL: c_int = 22;
const ERANGE: c_int = 34;
const ENOSPC: c_int = 28;
const ETIME: c_int = 62;

/// Writes `args` into `msg[..len]`, NUL-terminated and truncated (nothing when `msg` is NULL).
fn put_msg(msg: *mut c_char, len: usize, args: fmt::Arguments<'_>) {
    if msg.is_null() || len == 0 {
        return;
    }
    let mut b = Buf::<512>::new();
    let _ = b.write_fmt(args);
    let n = b.len.min(len - 1);
    // SAFETY: the caller gives `len` writable bytes at `msg` (lp_rt.h); n + 1 <= len.
    unsafe {
        core::ptr::copy_nonoverlapping(b.data.as_ptr(), msg.cast::<u8>(), n);
        *msg.add(n) = 0;
    }
}

fn load_errno(e: &LoadError) -> c_int {
    match e {
        LoadError::Guest(_) | LoadError::Wasm(_) | LoadError::Rejected(_) => ENOEXEC,
        LoadError::Module(_) => ENOEXEC,
        LoadError::Syntax(_) => EINVAL,
        LoadError::Init(ErrorKind::Memory, _) => ENOMEM,
        LoadError::Init(..) => EINVAL,
        LoadError::NoFunction(_) => ENOENT,
        LoadError::Limit(_) => ERANGE,
        LoadError::Budget(_) => ETIME,
        LoadError::NoMemory(_) => ENOMEM,
        LoadError::Interrupted => EINTR,
        LoadError::TooManyEntries => ENOSPC,
        LoadError::Unavailable => EBUSY,
        LoadError::OutOfMemory | LoadError::ScriptMemory => ENOMEM,
    }
}

fn limits_from(l: &LpLimits) -> Result<(Limits, OnError), c_int> {
    let on_error = match l.on_error {
        abi::netlink::ON_ERROR_BREAK => OnError::Break,
        abi::netlink::ON_ERROR_ACCEPT => OnError::Accept,
        abi::netlink::ON_ERROR_DROP => OnError::Drop,
        _ => return Err(EINVAL),
    };
    Ok((
        Limits {
            fuel: l.fuel,
            instructions: l.instructions,
            memory: l.memory,
            recursion: l.recursion,
            pcall_depth: l.pcall_depth,
            load_fuel: l.load_fuel,
        },
        on_error,
    ))
}

fn limits_to(l: &Limits, on_error: OnError) -> LpLimits {
    LpLimits {
        fuel: l.fuel,
        memory: l.memory,
        instructions: l.instructions,
        recursion: l.recursion,
        pcall_depth: l.pcall_depth,
        on_error: match on_error {
            OnError::Break => abi::netlink::ON_ERROR_BREAK,
            OnError::Accept => abi::netlink::ON_ERROR_ACCEPT,
            OnError::Drop => abi::netlink::ON_ERROR_DROP,
        },
        _pad: [0; 3],
        load_fuel: l.load_fuel,
    }
}

/// A byte slice from a C pointer and length; empty for NULL.
///
/// # Safety
/// Unless NULL, `p` points to `len` readable bytes that outlive `'a`.
unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::slice::from_raw_parts(p, len) }
    }
}

// ---------------------------------------------------------------------------------------
// The built-in guest: the Lua VM this module was built with (guest-lua's lua.wasm, known by
// its hash). Packages carrying any other guest need CAP_SYS_ADMIN (lp_rt_load's `foreign_ok`),
// and only the built-in guest's own fuel count is trusted (runtime::guest).

/// Copies the SHA-256 of the built-in guest to `out`.
///
/// # Safety
/// `out` is writable for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_builtin_guest(out: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping(BUILTIN_GUEST_SHA256.as_ptr(), out, 32) }
}

// ---------------------------------------------------------------------------------------
// Exported API (lp_rt.h documents each function).

/// Creates the compiled-guest cache for a machine of `cpus` CPU ids. Process context.
#[no_mangle]
pub extern "C" fn lp_rt_cache_new(cpus: u32) -> *mut LpCache {
    // one warm execution stack per call that can run at once: each CPU runs one call, which
    // re-enters the guest once per nested protected call
    let per_cpu = abi::limits::MAX_PCALL_DEPTH as usize + 2;
    let stacks = (cpus as usize).max(1).saturating_mul(per_cpu);
    Box::into_raw(Box::new(LpCache(GuestCache::with_cached_stacks(stacks))))
}

/// Frees the cache (scripts keep the guests they use alive). Process context.
///
/// # Safety
/// `cache` comes from `lp_rt_cache_new` (or is NULL) and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_cache_free(cache: *mut LpCache) {
    if !cache.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(cache) });
    }
}

/// Drops compiled guests no script uses any more; returns how many stay cached.
///
/// # Safety
/// `cache` is valid and the caller serializes its use (the load mutex).
#[no_mangle]
pub unsafe extern "C" fn lp_rt_cache_prune(cache: *mut LpCache) -> u32 {
    // SAFETY: the caller's contract.
    let c = unsafe { &mut (*cache).0 };
    c.prune();
    c.len() as u32
}

/// The default limits and on-error policy (`abi::limits`).
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_default_limits(out: *mut LpLimits) {
    // SAFETY: the caller's contract.
    unsafe { out.write(limits_to(&Limits::default(), OnError::default())) }
}

/// Checks limits without loading anything: 0 or -ERANGE/-EINVAL with a message.
///
/// # Safety
/// `limits` is readable; `msg` is NULL or writable for `msg_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_check_limits(
    limits: *const LpLimits,
    msg: *mut c_char,
    msg_len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let (l, _) = match limits_from(unsafe { &*limits }) {
        Ok(x) => x,
        Err(e) => {
            put_msg(msg, msg_len, format_args!("invalid on-error policy"));
            return -e;
        }
    };
    match l.validate() {
        Ok(()) => 0,
        Err(e) => {
            put_msg(msg, msg_len, format_args!("invalid limit: {e}"));
            -ERANGE
        }
    }
}

/// Parses a package, compiles (or reuses) its guest and builds `instances` instances running
/// the script's top-level chunk; with `replaces`, binds its entries in the same order.
/// Process context, may sleep for long; the caller serializes calls (the cache is not
/// locked here). Returns 0 and `*out`, or a negative errno and a message in `msg`.
///
/// # Safety
/// `cache` is valid; `pkg`/`name` point to `pkg_len`/`name_len` readable bytes; `limits` is
/// readable; `replaces` is NULL or a live script; `out` is writable; `msg` is NULL or
/// writable for `msg_len` bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lp_rt_load(
    cache: *mut LpCache,
    pkg: *const u8,
    pkg_len: usize,
    name: *const u8,
    name_len: usize,
    limits: *const LpLimits,
    engine: u8,
    engine_named: bool,
    instances: u32,
    replaces: *const LpScript,
    foreign_ok: bool,
    out: *mut *mut LpScript,
    msg: *mut c_char,
    msg_len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let (cache, pkg, name, limits, replaces) = unsafe {
        (
            &mut (*cache).0,
            bytes(pkg, pkg_len),
            bytes(name, name_len),
            &*limits,
            replaces.as_ref(),
        )
    };
    let Ok(name) = core::str::from_utf8(name) else {
        put_msg(msg, msg_len, format_args!("invalid name"));
        return -EINVAL;
    };
    let (limits, on_error) = match limits_from(limits) {
        Ok(x) => x,
        Err(e) => {
            put_msg(msg, msg_len, format_args!("invalid on-error policy"));
            return -e;
        }
    };
    let p = match package::parse(pkg) {
        Ok(p) => p,
        Err(e) => {
            put_msg(msg, msg_len, format_args!("invalid package: {e}"));
            return -EINVAL;
        }
    };
    let builtin = runtime::guest::is_builtin(p.module);
    if !foreign_ok && !builtin {
        put_msg(
            msg,
            msg_len,
            format_args!(
                "the package's guest is not the built-in Lua guest: loading another guest needs CAP_SYS_ADMIN in the initial user namespace"
            ),
        );
        return -EPERM;
    }
    let engine = match engine {
        netlink::ENGINE_WASMI => EngineKind::Wasmi,
        // the default gives way to the reference engine for another guest
        netlink::ENGINE_COMPILED if !engine_named && !builtin => EngineKind::Wasmi,
        netlink::ENGINE_COMPILED => EngineKind::Compiled,
        n => {
            put_msg(msg, msg_len, format_args!("unknown engine {n}"));
            return -EINVAL;
        }
    };
    let host: Arc<dyn Host> = Arc::new(KernelHost);
    let rt = match PerCpuScript::load(
        cache,
        engine,
        p.module,
        name,
        p.script,
        limits,
        on_error,
        instances as usize,
        host,
        replaces.map(|s| &s.rt),
    ) {
        Ok(rt) => rt,
        Err(e) => {
            put_msg(msg, msg_len, format_args!("{e}"));
            return -load_errno(&e);
        }
    };
    let digest = Sha256::digest(pkg);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&digest[..8]);
    let s = Box::new(LpScript { rt, tag });
    // SAFETY: the caller's contract.
    unsafe { out.write(Box::into_raw(s)) };
    0
}

/// The engine `s`'s instances run on (`LUAPKT_ENGINE_*`).
///
/// # Safety
/// `s` is a live script.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_engine(s: *const LpScript) -> u8 {
    // SAFETY: the caller's contract.
    match unsafe { (*s).rt.engine() } {
        EngineKind::Wasmi => netlink::ENGINE_WASMI,
        EngineKind::Compiled => netlink::ENGINE_COMPILED,
    }
}

/// Frees a script. Process context; no call may be running on it (the caller waited for an
/// RCU grace period after unpublishing it, and cancelled its rebuild work).
///
/// # Safety
/// `s` comes from `lp_rt_load` (or is NULL) and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_script_free(s: *mut LpScript) {
    if !s.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(s) });
    }
}

/// Copies the first 8 bytes of the package's SHA-256 to `tag`.
///
/// # Safety
/// `s` is live; `tag` is writable for 8 bytes.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_tag(s: *const LpScript, tag: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping((*s).tag.as_ptr(), tag, 8) }
}

/// Number of instances (slots).
///
/// # Safety
/// `s` is live.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_instances(s: *const LpScript) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { (*s).rt.instances() as u32 }
}

/// Whether the script names `lp.QUEUE` (its rules are refused where a queue verdict cannot work).
///
/// # Safety
/// `s` is live.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_may_queue(s: *const LpScript) -> bool {
    // SAFETY: the caller's contract.
    unsafe { (*s).rt.may_queue() }
}

/// Finds or adds the entry `(func, arg)`, validating a new one in instance `cpu`.
/// Bottom halves disabled on CPU `cpu` (or `cpu` is a slot no CPU runs); binds of one script
/// serialized by the caller. 0 and `*entry`, or a negative errno and a message.
///
/// # Safety
/// `s` is live; `func` points to `func_len` bytes; `arg` is NULL or points to `arg_len`
/// bytes; `entry` is writable; `msg` is NULL or writable for `msg_len` bytes; the context
/// above holds.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lp_rt_bind_on_cpu(
    s: *const LpScript,
    cpu: u32,
    func: *const u8,
    func_len: usize,
    arg: *const u8,
    arg_len: usize,
    entry: *mut u32,
    msg: *mut c_char,
    msg_len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let (s, func) = unsafe { (&(*s).rt, bytes(func, func_len)) };
    let arg = if arg.is_null() {
        None
    } else {
        // SAFETY: the caller's contract.
        Some(unsafe { bytes(arg, arg_len) })
    };
    let Ok(func) = core::str::from_utf8(func) else {
        put_msg(msg, msg_len, format_args!("invalid function name"));
        return -EINVAL;
    };
    // SAFETY: the caller runs on CPU `cpu` with bottom halves disabled and serializes binds:
    // PerCpuScript::bind_on_cpu's contract.
    match unsafe { s.bind_on_cpu(cpu as usize, func, arg) } {
        Ok(i) => {
            // SAFETY: the caller's contract.
            unsafe { entry.write(i as u32) };
            0
        }
        Err(e) => {
            put_msg(msg, msg_len, format_args!("{e}"));
            -load_errno(&e)
        }
    }
}

/// Runs entry `entry` on the packet in instance `cpu` and fills `out`. Bottom halves
/// disabled on CPU `cpu`, never re-entered; RCU read side held by the caller.
///
/// # Safety
/// `s` is live for the call; `pkt` and `out` are valid; the context above holds.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_run_on_cpu(
    s: *const LpScript,
    cpu: u32,
    entry: u32,
    pkt: *const LpPkt,
    out: *mut LpOutcome,
) {
    // SAFETY: the caller's contract.
    let (s, pkt) = unsafe { (&(*s).rt, &*pkt) };
    // SAFETY: only CPU `cpu`, bottom halves disabled, never re-entered: run_on_cpu's contract.
    let o = unsafe { s.run_on_cpu(cpu as usize, entry as usize, &SkbPacket(pkt)) };
    let r = LpOutcome {
        verdict: o.verdict.code(),
        error: o.error.map_or(0, |k| {
            1 + ErrorKind::ALL.iter().position(|x| *x == k).unwrap_or(6) as u8
        }),
        poisoned: u8::from(o.poisoned),
        _pad: [0; 2],
        fuel: o.fuel,
    };
    // SAFETY: the caller's contract.
    unsafe { out.write(r) };
}

/// Recounts the call that filled `out` as an error (its verdict cannot be applied here) and
/// puts the on-error policy's verdict in `out`. Slot context, right after the call.
///
/// # Safety
/// `s` is live; `out` was filled by `lp_rt_run_on_cpu` for slot `cpu`; run_on_cpu's context.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_refuse_verdict(s: *const LpScript, cpu: u32, out: *mut LpOutcome) {
    // SAFETY: the caller's contract.
    let (s, o) = unsafe { (&(*s).rt, &mut *out) };
    let mut r = runtime::RunOutcome {
        verdict: runtime::Verdict::from_code(o.verdict).unwrap_or(runtime::Verdict::Break),
        error: None,
        fuel: o.fuel,
        poisoned: o.poisoned != 0,
    };
    if o.error != 0 {
        r.error = ErrorKind::ALL.get(usize::from(o.error) - 1).copied();
    }
    // SAFETY: slot `cpu`'s owner, right after its call: run_on_cpu's contract.
    unsafe { s.refuse_verdict(cpu as usize, &mut r) };
    o.verdict = r.verdict.code();
    o.error = 1 + ErrorKind::ALL
        .iter()
        .position(|x| *x == ErrorKind::Return)
        .unwrap_or(5) as u8;
}

/// True when slot `cpu` waits for a fresh instance. Any context.
///
/// # Safety
/// `s` is live.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_needs_rebuild(s: *const LpScript, cpu: u32) -> bool {
    // SAFETY: the caller's contract.
    unsafe { (*s).rt.needs_rebuild(cpu as usize) }
}

/// Builds a fresh instance with every entry bound. Process context, may sleep.
///
/// # Safety
/// `s` is live; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_build_instance(s: *const LpScript, out: *mut *mut LpSpare) -> c_int {
    // SAFETY: the caller's contract.
    let s = unsafe { &(*s).rt };
    match s.build_instance() {
        Ok(spare) => {
            // SAFETY: the caller's contract.
            unsafe { out.write(Box::into_raw(Box::new(spare))) };
            0
        }
        Err(e) => {
            s.host_log_rebuild_failure(&e);
            -load_errno(&e)
        }
    }
}

/// Installs `spare` in slot `cpu` and returns the previous instance, which a call that began
/// before may still use: free it with `lp_rt_spare_free` after an RCU grace period. Process
/// context; installs of one slot serialized by the caller.
///
/// # Safety
/// `s` is live; `spare` comes from `lp_rt_build_instance` of `s` and is consumed.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_install(
    s: *const LpScript,
    cpu: u32,
    spare: *mut LpSpare,
) -> *mut LpSpare {
    // SAFETY: the caller's contract.
    let (s, spare) = unsafe { (&(*s).rt, Box::from_raw(spare)) };
    // SAFETY: the caller frees the returned instance only after an RCU grace period, and calls
    // run inside RCU read-side sections: install's contract.
    let old = unsafe { s.install(cpu as usize, spare) };
    Box::into_raw(old)
}

/// Frees an instance. Process context.
///
/// # Safety
/// `spare` comes from `lp_rt_build_instance`/`lp_rt_install` (or is NULL), and no call uses it.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_spare_free(spare: *mut LpSpare) {
    if !spare.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(spare) });
    }
}

/// Counters summed over the instances. Any context.
///
/// # Safety
/// `s` is live; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_stats(s: *const LpScript, out: *mut LpStats) {
    // SAFETY: the caller's contract.
    let s = unsafe { &(*s).rt };
    let st = s.stats();
    let r = LpStats {
        run_cnt: st.run_cnt,
        run_time_ns: st.run_time_ns,
        verdicts: st.verdicts,
        errors: st.errors,
        fuel_total: st.fuel_total,
        fuel_max: st.fuel_max,
        rebuilds: st.rebuilds,
        mem_bytes: s.memory_bytes(),
        run_time_max_ns: st.run_time_max_ns,
    };
    // SAFETY: the caller's contract.
    unsafe { out.write(r) };
}

/// Current limits and policy. Any context.
///
/// # Safety
/// `s` is live; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_get_limits(s: *const LpScript, out: *mut LpLimits) {
    // SAFETY: the caller's contract.
    let s = unsafe { &(*s).rt };
    // SAFETY: the caller's contract.
    unsafe { out.write(limits_to(&s.limits(), s.on_error())) };
}

/// Validates and applies limits and policy live. Any context; writers serialized by the
/// caller. 0, or a negative errno and a message.
///
/// # Safety
/// `s` is live; `limits` is readable; `msg` is NULL or writable for `msg_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_set_limits(
    s: *const LpScript,
    limits: *const LpLimits,
    msg: *mut c_char,
    msg_len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let (s, l) = unsafe { (&(*s).rt, &*limits) };
    let (limits, on_error) = match limits_from(l) {
        Ok(x) => x,
        Err(e) => {
            put_msg(msg, msg_len, format_args!("invalid on-error policy"));
            return -e;
        }
    };
    if let Err(e) = s.set_limits(limits) {
        put_msg(msg, msg_len, format_args!("{e}"));
        return -load_errno(&e);
    }
    s.set_on_error(on_error);
    0
}

trait RebuildLog {
    fn host_log_rebuild_failure(&self, e: &LoadError);
}

impl RebuildLog for PerCpuScript {
    fn host_log_rebuild_failure(&self, e: &LoadError) {
        let mut b = Buf::<256>::new();
        let _ = write!(b, "instance rebuild failed: {e}");
        KernelHost.log(self.name(), LogLevel::Warn, &b.data[..b.len]);
    }
}

// ---------------------------------------------------------------------------------------
// The compiled guest's libm (guest-lua/w2c/kinclude/math.h): soft-float, as the rest of the
// module. wasm2c's wrappers handle NaN before calling these.

macro_rules! guest_libm {
    ($($name:ident = $f:ident($t:ty)),* $(,)?) => {$(
        #[no_mangle]
        extern "C" fn $name(x: $t) -> $t {
            libm::$f(x)
        }
    )*};
}

guest_libm!(
    lp_w2c_floor = floor(f64),
    lp_w2c_ceil = ceil(f64),
    lp_w2c_trunc = trunc(f64),
    lp_w2c_sqrt = sqrt(f64),
    lp_w2c_rint = rint(f64),
    lp_w2c_floorf = floorf(f32),
    lp_w2c_ceilf = ceilf(f32),
    lp_w2c_truncf = truncf(f32),
    lp_w2c_sqrtf = sqrtf(f32),
    lp_w2c_rintf = rintf(f32),
);
