//! The Rust side of nft_lua.ko's Rust↔C boundary — the only Rust file that crosses it.
//!
//! Exports the `lp_rt_*` functions the C glue calls and imports the `lp_*` shims it provides.
//! `kmod-wasmi/kernel/lp_rt.h`, the contract both sides follow, is generated from this file:
//! its structures, constants and declarations are this file's, and each function's comment
//! (its first word the context it may be called in) is the doc comment here. Everything else
//! is the runtime (`luapkt-runtime`, `no_std`), which knows nothing of the kernel.
//!
//! Contexts, in short (lp_rt.h's head has the details):
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
    MetaWrite, Packet, PerCpuScript, SendError, SendKind, SpareInstance,
};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// The structures both sides share, and the shims the C glue provides (lp_shim.c). lp_rt.h is
// generated from this file (`cargo run -p luapkt-tests --bin abi-headers`; a test fails when
// it is stale), so the C side compiles against these very types and signatures.

/// `struct sk_buff`, opaque here (lp_rt.h names the kernel's).
///
/// cbindgen:ignore
#[repr(C)]
pub struct SkBuff {
    _opaque: [u8; 0],
}

/// The packet of one call; the skb and the names are only used during that call. The skb is
/// written through lp_skb_write() and lp_skb_write_meta() (slot context), never kept.
#[repr(C)]
pub struct LpPkt {
    pub skb: *mut SkBuff,
    /// Network header offset from `skb->data` (may be negative).
    pub noff: i32,
    /// Bytes from the network header on.
    pub len: u32,
    pub mark: u32,
    pub nfproto: u8,
    pub hook: u8,
    /// `skb->ip_summed == CHECKSUM_PARTIAL`.
    pub csum_partial: u8,
    /// A conntrack entry (or untracked: state only): `ct_*` are valid.
    pub has_ct: u8,
    pub iifname: [c_char; 16],
    pub oifname: [c_char; 16],
    pub ct_mark: u32,
    /// nf_ct_get_id().
    pub ct_id: u32,
    /// nft's `ct state`: NF_CT_STATE_BIT(), untracked 64, else 1 (invalid).
    pub ct_state: u8,
    /// `eth` holds the Ethernet header (bridge, netdev, inet ingress).
    pub has_eth: u8,
    /// Destination, source, type.
    pub eth: [u8; 14],
    /// Sending is allowed: 0 for a packet a script sent, whose transmission this call runs
    /// inside (a send would loop).
    pub may_send: u8,
    /// The call's queue of packets to send (a `struct sk_buff_head`; lp_skb_send() adds to
    /// it), transmitted by the caller once the call has returned; NULL: nothing can be sent.
    pub sendq: *mut c_void,
    /// The packet's network namespace (`struct net`): where what is sent is routed.
    pub net: *mut c_void,
}

/// Metadata a call changed (`LP_META_*` in `flags` say which).
#[repr(C)]
pub struct LpMetaWrite {
    pub mark: u32,
    pub ct_mark: u32,
    pub flags: u8,
    pub eth: [u8; 14],
    pub _pad: u8,
}

pub const LP_META_MARK: u8 = 1;
pub const LP_META_CT_MARK: u8 = 2;
pub const LP_META_ETH: u8 = 4;

/// lp_skb_send()'s `kind` of a reply (`abi::guest::send::KIND_REPLY`).
pub const LP_SEND_KIND_REPLY: c_int = 1;
const _: () = assert!(LP_SEND_KIND_REPLY == abi::guest::send::KIND_REPLY);

/// One call in this many is timed when the `time_every` module parameter is not set.
pub const LP_TIME_EVERY_DEFAULT: u32 = 16;

extern "C" {
    /// any. kmalloc/kvmalloc, GFP by context (see lp_shim.c), falling back on the reserve;
    /// NULL if `align` > PAGE_SIZE or nothing could serve it.
    fn lp_alloc(size: usize, align: usize, zero: bool) -> *mut c_void;
    /// any. kvfree() (or gives a reserve block back); NULL is ignored.
    fn lp_free(ptr: *mut c_void);
    /// any (a no-op outside process context). Inside lp_call_on_big_stack() the module's
    /// sleeping allocations are __GFP_NOFAIL; the task's next one of at least `size` bytes
    /// (linear memory, which the runtime allocates fallibly) may fail instead. 0 cancels.
    fn lp_alloc_fallible_next(size: usize);
    /// process (building an instance). cond_resched(); false when a fatal signal is pending
    /// or lp_loads_stop() was called.
    fn lp_load_pause() -> bool;
    /// any. Logs `msg` and BUG()s. Declared returning so that the call is followed by `ud2`,
    /// where objtool looks for the end of the panic handler.
    fn lp_panic(msg: *const c_char, len: usize);
    /// any. Rate-limited: "luapkt: <name>: <line>"; `level` 0 info, 1 warning.
    fn lp_log(
        level: c_int,
        name: *const c_char,
        name_len: usize,
        line: *const c_char,
        line_len: usize,
    );
    /// any. ktime_get_ns().
    fn lp_ktime_ns() -> u64;
    /// any. local_clock(): this CPU's scheduler clock, for timing a call.
    fn lp_clock_ns() -> u64;
    /// any. The time_every module parameter: one call in this many is timed (0 counts as 1).
    fn lp_time_every_get() -> u32;
    /// any. get_random_u32().
    fn lp_random_u32() -> u32;
    /// slot. skb_copy_bits() at `off` bytes past the network header; 0 or -EFAULT.
    fn lp_skb_read(pkt: *const LpPkt, off: u32, dst: *mut c_void, len: u32) -> c_int;
    /// slot. Writes `len` bytes at `off` past the network header: skb_ensure_writable() (may
    /// reallocate the head or pull paged data into it, GFP_ATOMIC) then skb_store_bits(). A
    /// CHECKSUM_COMPLETE skb becomes CHECKSUM_NONE (the stack then verifies it in software).
    /// 0, -EFAULT (outside the packet) or -ENOMEM.
    fn lp_skb_write(pkt: *const LpPkt, off: u32, src: *const c_void, len: u32) -> c_int;
    /// slot. Applies what `w` flags: skb->mark; the conntrack mark (a real entry only, not
    /// untracked or a template; an IPCT_MARK event when it changed); the Ethernet header
    /// (made writable like packet bytes; only when `pkt` has one). Returns 0, or the first
    /// -errno of the parts that failed (-ENOENT: no conntrack entry or no Ethernet header,
    /// -ENOMEM); the other parts are still applied.
    fn lp_skb_write_meta(pkt: *const LpPkt, w: *const LpMetaWrite) -> c_int;
    /// slot. Makes an skb of `len` bytes at `data` (an IPv4 or IPv6 packet of family
    /// `nfproto`, checked by the runtime), routes it in `pkt->net` to its destination (any
    /// source address) and queues it on `pkt->sendq`; `kind` 1 (a reply) also attaches the
    /// conntrack entry of `pkt`'s skb, as nf_reject does. 0, -ELOOP (`may_send` is 0 or there
    /// is no queue), -ENOMEM, or the routing's -errno.
    fn lp_skb_send(
        pkt: *const LpPkt,
        kind: c_int,
        nfproto: u8,
        data: *const c_void,
        len: u32,
    ) -> c_int;
    /// any. Wakes timer `index` of the script version `owner` (the pointer given to
    /// lp_rt_timers_start()) `delay_ms` from now on CPU `cpu`, unless the version's timers
    /// are being stopped: then false.
    fn lp_timer_arm(owner: *mut c_void, index: u32, cpu: u32, delay_ms: u32) -> bool;
    /// any. Stops timer `index`'s wake-up if it has not started: true when it will not run.
    fn lp_timer_cancel(owner: *mut c_void, index: u32) -> bool;
}

/// A script version's timers as the C glue wakes them: a delayed work item per entry.
struct KernelTimers {
    owner: *mut c_void,
}

// SAFETY: `owner` is the C glue's version, which outlives its script's timers (it stops their
// wake-ups and frees the script before itself); lp_timer_arm/lp_timer_cancel are callable
// from any context and CPU.
unsafe impl Send for KernelTimers {}
// SAFETY: as for Send: the pointer is only passed back to the glue's shims.
unsafe impl Sync for KernelTimers {}

impl runtime::TimerDriver for KernelTimers {
    fn arm(&self, index: usize, cpu: usize, delay_ms: u32) -> bool {
        // SAFETY: `owner` is live (see the impl of Send); no other pointers.
        unsafe { lp_timer_arm(self.owner, index as u32, cpu as u32, delay_ms) }
    }
    fn cancel(&self, index: usize) -> bool {
        // SAFETY: as in `arm`.
        unsafe { lp_timer_cancel(self.owner, index as u32) }
    }
}

/// Timers one script version may have pending (`abi::limits::TIMERS_MAX`): the glue's array
/// of wake-ups.
pub const LP_TIMERS_MAX: usize = 64;
const _: () = assert!(LP_TIMERS_MAX == abi::limits::TIMERS_MAX);

/// lp_rt_timer_fire(): the timer ran.
pub const LP_TIMER_RAN: c_int = 0;
/// It ran and trapped: schedule a rebuild, as after a call that poisoned its instance.
pub const LP_TIMER_POISONED: c_int = 1;
/// Nothing ran (cancelled, stopped, or its instance was rebuilt meanwhile).
pub const LP_TIMER_NOTHING: c_int = 2;
/// The timer belongs to another CPU (`*cpu`): wake it there, or lp_rt_timer_drop() it when
/// that CPU is offline.
pub const LP_TIMER_ELSEWHERE: c_int = 3;

// ---------------------------------------------------------------------------------------
// Allocator and panic handler.

struct KernelAlloc;

// SAFETY: lp_alloc returns NULL or a block of at least `size` bytes aligned to `align`
// (lp_shim.c rounds the size up so kmalloc's natural alignment covers `align`), which stays
// valid until lp_free; lp_free accepts any pointer lp_alloc returned.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { lp_alloc(layout.size(), layout.align(), false).cast() }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { lp_alloc(layout.size(), layout.align(), true).cast() }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`alloc_zeroed` (GlobalAlloc contract).
        unsafe { lp_free(ptr.cast()) }
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
        lp_panic(b.data.as_ptr().cast(), b.len);
        core::arch::asm!("ud2", options(noreturn))
    }
}

// ---------------------------------------------------------------------------------------
// Host and packets.

/// A script's log line in the kernel log (rate-limited printk). Debug lines stay in the
/// script's own log: printk is for what an admin must see.
fn kernel_log(script: &str, level: LogLevel, line: &[u8]) {
    let level = match level {
        LogLevel::Debug => return,
        LogLevel::Info => 0,
        LogLevel::Warn => 1,
    };
    // SAFETY: both slices are valid for the call; lp_log copies nothing past their length.
    unsafe {
        lp_log(
            level,
            script.as_ptr().cast(),
            script.len(),
            line.as_ptr().cast(),
            line.len(),
        )
    }
}

/// `map_room`: bytes the script's maps may take (what its netns's script memory cap left at
/// load).
struct KernelHost {
    map_room: usize,
}

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
        kernel_log(script, level, line)
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
    fn map_room(&self) -> usize {
        self.map_room
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
        unsafe { lp_skb_read(self.0, off32, dst.as_mut_ptr().cast(), len32) == 0 }
    }
    fn meta(&self) -> Meta {
        let p = self.0;
        Meta {
            nfproto: p.nfproto,
            hook: p.hook,
            mark: p.mark,
            // whole `dev->name` copies (two stores, where strscpy() loops)
            iifname: runtime::packet::device_name(p.iifname.map(|c| c as u8)),
            oifname: runtime::packet::device_name(p.oifname.map(|c| c as u8)),
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
        unsafe { lp_skb_write(self.0, off32, src.as_ptr().cast(), len32) == 0 }
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
    fn send(&self, kind: SendKind, nfproto: u8, bytes: &[u8]) -> Result<(), SendError> {
        let len = u32::try_from(bytes.len()).map_err(|_| SendError::Malformed)?;
        let kind = match kind {
            SendKind::Send => abi::guest::send::KIND_SEND,
            SendKind::Reply => LP_SEND_KIND_REPLY,
        };
        // SAFETY: `self.0` is the lp_pkt of the running call (slot context); `bytes` is
        // readable for `len` bytes, copied into the new skb and not kept.
        match unsafe { lp_skb_send(self.0, kind, nfproto, bytes.as_ptr().cast(), len) } {
            0 => Ok(()),
            e if e == -ENOMEM => Err(SendError::Memory),
            e if e == -ELOOP => Err(SendError::Unavailable),
            _ => Err(SendError::Route),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The runtime's side: structures and objects (lp_rt.h, generated like the shims above).

/// Limits of a script and its on-error policy.
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
    /// Building one instance: Lua setup and the top-level chunk.
    pub load_fuel: u64,
    /// Packets and bytes a call may send, packets and bytes per second.
    pub send_packets: u32,
    pub send_bytes: u32,
    pub send_rate: u32,
    pub send_byte_rate: u32,
}

/// Counters, summed over the instances.
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
    /// Linear memory of all instances.
    pub mem_bytes: u64,
    /// The longest timed call (time_every).
    pub run_time_max_ns: u64,
    /// Lines logged, and lines over the script's log rate (dropped).
    pub log_lines: u64,
    pub log_dropped: u64,
    /// Packets queued for sending and their bytes; sends refused (caps, rates) and failed.
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub send_refused: u64,
    pub send_failed: u64,
    /// Timers pending, run, failed, and dropped (refused when armed, or their instance or CPU
    /// gone).
    pub timers_pending: u64,
    pub timer_runs: u64,
    pub timer_errors: u64,
    pub timers_dropped: u64,
}

/// What `lp_rt_read_records` copied: `len` bytes of whole records, the sequence number to
/// read from next, and the records overwritten before the read reached them.
#[repr(C)]
pub struct LpRead {
    pub len: u32,
    pub _pad: u32,
    pub next: u64,
    pub lost: u64,
}

/// `lp_rt_read_records`' `which`: the script's log lines.
pub const LP_RECORDS_LOG: u8 = 0;
/// The errors it kept with their packets.
pub const LP_RECORDS_ERRORS: u8 = 1;

/// The result of one call, after the on-error policy.
#[repr(C)]
pub struct LpOutcome {
    /// `LUAPKT_VERDICT_*`, or `LUAPKT_VERDICT_QUEUE_BASE` + n.
    pub verdict: i32,
    /// 0, or 1 + the error kind (lua, memory, fuel, instructions, stack, return, trap).
    pub error: u8,
    /// This call poisoned its instance: schedule a rebuild.
    pub poisoned: u8,
    pub _pad: [u8; 2],
    pub fuel: u64,
}

// The sizes kbench and the glue were written for (no field may move unnoticed).
const _: () = assert!(size_of::<LpPkt>() == 104);
const _: () = assert!(offset_of!(LpPkt, iifname) == 24);
const _: () = assert!(offset_of!(LpPkt, eth) == 66);
const _: () = assert!(size_of::<LpMetaWrite>() == 24);
const _: () = assert!(size_of::<LpLimits>() == 56);
const _: () = assert!(size_of::<LpStats>() == 232);
const _: () = assert!(size_of::<LpOutcome>() == 16);

/// Compiled guests, shared by every script of every netns (one per module).
pub struct LpCache(GuestCache);

/// One loaded version of a script: one instance per possible CPU, stats, limits.
pub struct LpScript {
    rt: PerCpuScript,
    tag: [u8; 8],
}

/// An instance outside its slot: freshly built, or taken out and awaiting a grace period.
/// `lp_rt_install` swaps the one it holds with the slot's.
pub struct LpSpare(Option<Box<SpareInstance>>);

// errno values (include/uapi/asm-generic/errno-base.h, errno.h)
const EPERM: c_int = 1;
const ENOENT: c_int = 2;
const EINTR: c_int = 4;
const ENOEXEC: c_int = 8;
const ENOMEM: c_int = 12;
const ELOOP: c_int = 40;
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
            send_packets: l.send_packets,
            send_bytes: l.send_bytes,
            send_rate: l.send_rate,
            send_byte_rate: l.send_byte_rate,
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
        send_packets: l.send_packets,
        send_bytes: l.send_bytes,
        send_rate: l.send_rate,
        send_byte_rate: l.send_byte_rate,
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

/// any. Copies the SHA-256 of the built-in guest (the Lua VM the module was built with) to
/// `out`.
///
/// # Safety
/// `out` is writable for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_builtin_guest(out: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping(BUILTIN_GUEST_SHA256.as_ptr(), out, 32) }
}

// ---------------------------------------------------------------------------------------
// Exported API.

/// process. The compiled-guest cache for a machine of `cpus` CPU ids: engines keep a pool
/// of execution stacks sized for `cpus` CPUs running calls with nested re-entries, so packets
/// reuse warm stacks instead of allocating.
#[no_mangle]
pub extern "C" fn lp_rt_cache_new(cpus: u32) -> *mut LpCache {
    // one warm execution stack per call that can run at once: each CPU runs one call, which
    // re-enters the guest once per nested protected call
    let per_cpu = abi::limits::MAX_PCALL_DEPTH as usize + 2;
    let stacks = (cpus as usize).max(1).saturating_mul(per_cpu);
    Box::into_raw(Box::new(LpCache(GuestCache::with_cached_stacks(stacks))))
}

/// process. Frees the cache; scripts keep the guests they use alive.
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

/// process, the caller holds the load mutex. Drops compiled guests no script uses any
/// more; returns how many stay cached.
///
/// # Safety
/// `cache` is valid and the caller serializes its use.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_cache_prune(cache: *mut LpCache) -> u32 {
    // SAFETY: the caller's contract.
    let c = unsafe { &mut (*cache).0 };
    c.prune();
    c.len() as u32
}

/// any. The default limits and on-error policy (`abi/src/limits.rs`).
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_default_limits(out: *mut LpLimits) {
    // SAFETY: the caller's contract.
    unsafe { out.write(limits_to(&Limits::default(), OnError::default())) }
}

/// any. Checks limits without loading anything: 0, -ERANGE (a limit out of range) or
/// -EINVAL (policy), with a message.
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

/// process, the caller holds the load mutex (it serializes use of `cache`); may take long:
/// parses the package, compiles or reuses its guest, builds `instances` instances, each running
/// the script's top-level chunk. With `replaces` (a live script, read only), its entries are
/// bound in the new instances at the same indices; a function missing in the new script fails
/// the load. The top-level chunk runs in slices of fuel with lp_load_pause() between them.
/// Unless `foreign_ok`, a package whose guest is not the built-in one is refused (-EPERM).
/// `map_room`: the bytes the script's maps may take in all (a declaration past them fails the
/// top-level chunk with a Lua error; a replacement's maps include those it keeps).
/// `engine`: `LUAPKT_ENGINE_*` (another value: -EINVAL); the compiled engine takes only the
/// built-in guest: another one is refused (-ENOEXEC) when the loader named the engine
/// (`engine_named`), and runs on wasmi when compiled is only the default. Returns 0 and
/// `*out`, or -EINVAL (package, syntax, top-level error), -ENOEXEC (guest rejected), -ERANGE
/// (limits), -ENOENT (bound function missing), -ETIME (the load budget ran out), -EINTR (a
/// fatal signal), -EPERM, -ENOMEM, with a message.
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
    name: *const c_char,
    name_len: usize,
    limits: *const LpLimits,
    engine: u8,
    engine_named: bool,
    instances: u32,
    replaces: *const LpScript,
    foreign_ok: bool,
    map_room: u64,
    out: *mut *mut LpScript,
    msg: *mut c_char,
    msg_len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let (cache, pkg, name, limits, replaces) = unsafe {
        (
            &mut (*cache).0,
            bytes(pkg, pkg_len),
            bytes(name.cast(), name_len),
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
    let host: Arc<dyn Host> = Arc::new(KernelHost {
        map_room: usize::try_from(map_room).unwrap_or(usize::MAX),
    });
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

/// any. The engine the script's instances run on (`LUAPKT_ENGINE_*`), fixed at load.
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

/// process. Frees a script. No call may be running on it: the caller unpublished it,
/// waited for an RCU grace period and cancelled its rebuild work.
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

/// any. Copies the first 8 bytes of the package's SHA-256 to `tag`.
///
/// # Safety
/// `s` is live; `tag` is writable for 8 bytes.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_tag(s: *const LpScript, tag: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping((*s).tag.as_ptr(), tag, 8) }
}

/// any. Bytes the script's maps take (each allocated in full when declared; a replacement
/// shares those of the script it replaced).
///
/// # Safety
/// `s` is live.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_map_bytes(s: *const LpScript) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { (*s).rt.maps().bytes() as u64 }
}

/// any. Number of instances (slots), fixed at load.
///
/// # Safety
/// `s` is live.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_instances(s: *const LpScript) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { (*s).rt.instances() as u32 }
}

/// any. The script names `lp.QUEUE`: its rules are refused where nf_queue cannot
/// reinject.
///
/// # Safety
/// `s` is live.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_may_queue(s: *const LpScript) -> bool {
    // SAFETY: the caller's contract.
    unsafe { (*s).rt.may_queue() }
}

/// slot `cpu` (bottom halves disabled on CPU `cpu`, or a slot no CPU runs); binds of one
/// script serialized by the caller (the netns mutex). Finds (`func`, `arg`) in the script's
/// entry table or validates it in instance `cpu` and appends it; the index is the same in
/// every instance, other instances bind lazily on their next call. `arg` may be NULL (no
/// argument). Returns 0 and `*entry`, -ENOENT (no such global function), -ENOSPC (entry table
/// full) or -EBUSY (instance `cpu` is waiting for a rebuild), with a message.
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
    func: *const c_char,
    func_len: usize,
    arg: *const u8,
    arg_len: usize,
    entry: *mut u32,
    msg: *mut c_char,
    msg_len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let (s, func) = unsafe { (&(*s).rt, bytes(func.cast(), func_len)) };
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

/// slot `cpu`, never re-entered, inside an RCU read-side section that keeps `s` alive.
/// Runs entry `entry` on `pkt` in instance `cpu` and fills `out`. A poisoned instance is not
/// run: `out` has the policy's verdict.
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

/// slot `cpu`, right after lp_rt_run_on_cpu() filled `out`: the verdict cannot be applied
/// where the packet is (lp.QUEUE at a hook nf_queue cannot reinject from). Recounts the call as
/// an error of kind "return" and puts the on-error policy's verdict in `out`.
///
/// # Safety
/// `s` is live; `out` was filled by `lp_rt_run_on_cpu` for slot `cpu`; its context holds.
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

/// process, before the version is published. Lets the script arm timers: `owner` is what the
/// glue's lp_timer_arm()/lp_timer_cancel() get back.
///
/// # Safety
/// `s` is live; `owner` stays valid until the script is freed.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_timers_start(s: *const LpScript, owner: *mut c_void) {
    // SAFETY: the caller's contract.
    let s = unsafe { &(*s).rt };
    s.set_timer_driver(Box::new(KernelTimers { owner }));
}

/// any. Stops the script's timers (replaced or unloaded): no more are armed, and wake-ups
/// run nothing. The glue then cancels its wake-ups, synchronously, before freeing it.
///
/// # Safety
/// `s` is live.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_timers_close(s: *const LpScript) {
    // SAFETY: the caller's contract.
    unsafe { (*s).rt.timers().close() }
}

/// slot `cpu` (the wake-up's work item, bottom halves disabled on CPU `cpu`), never
/// re-entered. Timer `index` is due: runs it in instance `cpu` as a call of its own with
/// `pkt` (no skb: `len` 0, its `sendq` and `net` for what the timer sends). Returns
/// `LP_TIMER_*`; `LP_TIMER_ELSEWHERE` with `*cpu_out`.
///
/// # Safety
/// `s` is live (the glue frees it only after cancelling its wake-ups); `pkt` and `cpu_out`
/// are valid; the context above holds.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_timer_fire(
    s: *const LpScript,
    index: u32,
    cpu: u32,
    pkt: *const LpPkt,
    cpu_out: *mut u32,
) -> c_int {
    // SAFETY: the caller's contract.
    let (s, pkt) = unsafe { (&(*s).rt, &*pkt) };
    // SAFETY: CPU `cpu`'s slot, bottom halves disabled, never re-entered: fire_timer's
    // contract (that of run_on_cpu).
    match unsafe { s.fire_timer(index as usize, cpu as usize, &SkbPacket(pkt)) } {
        runtime::TimerFire::Ran { poisoned: false } => LP_TIMER_RAN,
        runtime::TimerFire::Ran { poisoned: true } => LP_TIMER_POISONED,
        runtime::TimerFire::Nothing => LP_TIMER_NOTHING,
        runtime::TimerFire::Elsewhere(c) => {
            // SAFETY: the caller's contract.
            unsafe { cpu_out.write(c as u32) };
            LP_TIMER_ELSEWHERE
        }
    }
}

/// any. Drops timer `index`, whose CPU went offline (counted as dropped).
///
/// # Safety
/// `s` is live.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_timer_drop(s: *const LpScript, index: u32) {
    // SAFETY: the caller's contract.
    unsafe { (*s).rt.timers().drop_entry(index as usize) }
}

/// any. Instance `cpu` trapped and waits for a fresh one.
///
/// # Safety
/// `s` is live.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_needs_rebuild(s: *const LpScript, cpu: u32) -> bool {
    // SAFETY: the caller's contract.
    unsafe { (*s).rt.needs_rebuild(cpu as usize) }
}

/// process, may sleep. Builds a fresh instance with every entry bound; 0 and `*out`, or
/// -errno.
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
            unsafe { out.write(Box::into_raw(Box::new(LpSpare(Some(Box::new(spare)))))) };
            0
        }
        Err(e) => {
            s.host_log_rebuild_failure(&e);
            -load_errno(&e)
        }
    }
}

/// process, installs of one slot serialized by the caller. Puts the instance `spare` holds
/// in slot `cpu`, clears the slot's poison and returns `spare` holding the slot's previous
/// instance: a call that started before may still use it, so free it only after
/// synchronize_rcu().
///
/// # Safety
/// `s` is live; `spare` comes from `lp_rt_build_instance` of `s` (possibly by way of an
/// earlier install).
#[no_mangle]
pub unsafe extern "C" fn lp_rt_install(
    s: *const LpScript,
    cpu: u32,
    spare: *mut LpSpare,
) -> *mut LpSpare {
    // SAFETY: the caller's contract.
    let (s, holder) = unsafe { (&(*s).rt, &mut *spare) };
    if let Some(fresh) = holder.0.take() {
        // SAFETY: the caller frees the returned instance only after an RCU grace period,
        // and calls run inside RCU read-side sections: install's contract.
        holder.0 = Some(unsafe { s.install(cpu as usize, fresh) });
    }
    spare
}

/// process. Frees a spare and the instance it holds.
///
/// # Safety
/// `spare` comes from `lp_rt_build_instance` (or is NULL), and no call uses its instance.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_spare_free(spare: *mut LpSpare) {
    if !spare.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(spare) });
    }
}

/// any. Counters summed over the instances.
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
        log_lines: st.log_lines,
        log_dropped: st.log_dropped,
        sent_packets: st.sends.sent_packets,
        sent_bytes: st.sends.sent_bytes,
        send_refused: st.sends.refused,
        send_failed: st.sends.failed,
        timers_pending: st.timers.pending,
        timer_runs: st.timers.runs,
        timer_errors: st.timers.errors,
        timers_dropped: st.timers.dropped,
    };
    // SAFETY: the caller's contract.
    unsafe { out.write(r) };
}

/// process. Copies the script's log lines (`which` = `LP_RECORDS_LOG`) or the errors it kept
/// with their packets (`LP_RECORDS_ERRORS`) from sequence number `from` on (0: the oldest
/// kept; a number the script never gave, as after a module reload: the oldest too) into
/// `buf`, whole records only (abi/src/records.rs), and fills `out`. 0, or -EINVAL for another
/// `which`.
///
/// # Safety
/// `s` is live; `buf` is writable for `len` bytes; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_read_records(
    s: *const LpScript,
    which: u8,
    from: u64,
    buf: *mut u8,
    len: usize,
    out: *mut LpRead,
) -> c_int {
    // SAFETY: the caller's contract.
    let (s, buf) = unsafe { (&(*s).rt, core::slice::from_raw_parts_mut(buf, len)) };
    let o = match which {
        LP_RECORDS_LOG => s.read_log(from, buf),
        LP_RECORDS_ERRORS => s.read_errors(from, buf),
        _ => return -EINVAL,
    };
    let r = LpRead {
        len: o.len as u32,
        _pad: 0,
        next: o.next,
        lost: o.lost,
    };
    // SAFETY: the caller's contract.
    unsafe { out.write(r) };
    0
}

/// any. Copies the script's Lua source from byte `offset` on into `buf` (at most `len` bytes)
/// and stores its whole length in `total`. The bytes copied, or -EINVAL for an `offset` past
/// the end.
///
/// # Safety
/// `s` is live; `buf` is writable for `len` bytes; `total` is writable.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_read_source(
    s: *const LpScript,
    offset: u32,
    buf: *mut u8,
    len: usize,
    total: *mut u32,
) -> c_int {
    // SAFETY: the caller's contract.
    let (src, buf) = unsafe { ((*s).rt.source(), core::slice::from_raw_parts_mut(buf, len)) };
    let Some(rest) = src.get(offset as usize..) else {
        return -EINVAL;
    };
    let n = rest.len().min(buf.len()).min(c_int::MAX as usize);
    buf[..n].copy_from_slice(&rest[..n]);
    // SAFETY: the caller's contract.
    unsafe { total.write(u32::try_from(src.len()).unwrap_or(u32::MAX)) };
    n as c_int
}

/// any. Current limits and policy.
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

/// any, writers serialized by the caller. Validates and applies limits and policy live: 0,
/// -ERANGE or -EINVAL, with a message.
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
        kernel_log(self.name(), LogLevel::Warn, &b.data[..b.len]);
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

// ---------------------------------------------------------------------------------------
// Maps (lp.map), for lpctl map: any context (each stripe's lock disables bottom halves).

/// `lp_rt_map_op`'s operations (abi::guest::map's).
pub const LP_MAP_GET: c_int = 0;
pub const LP_MAP_SET: c_int = 1;
pub const LP_MAP_DELETE: c_int = 2;
const _: () = assert!(
    LP_MAP_GET == abi::guest::map::GET
        && LP_MAP_SET == abi::guest::map::SET
        && LP_MAP_DELETE == abi::guest::map::DELETE
);

/// The id of map `name` of the script.
fn map_id(s: &LpScript, name: *const c_char, name_len: usize) -> Option<usize> {
    // SAFETY: the callers' contract: `name` points to `name_len` readable bytes.
    let name = unsafe { bytes(name.cast(), name_len) };
    s.rt.maps().find(name)
}

/// any. Copies a record per map of the script (abi/src/records.rs `MapInfo`) into `buf` and
/// returns the bytes written.
///
/// # Safety
/// `s` is live; `buf` is writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_map_list(s: *const LpScript, buf: *mut u8, len: usize) -> usize {
    // SAFETY: the caller's contract.
    let (s, buf) = unsafe { (&*s, core::slice::from_raw_parts_mut(buf, len)) };
    s.rt.maps().list(buf)
}

/// any. Copies whole entry records of map `name` (abi/src/records.rs `MapEntry`) from
/// `cursor` (0: the start) into `buf`; `*next` is the cursor to go on from (0: done). Returns
/// the bytes written, or -ENOENT (no such map).
///
/// # Safety
/// `s` is live; `name` points to `name_len` bytes; `buf` is writable for `len` bytes; `next`
/// is writable.
#[no_mangle]
pub unsafe extern "C" fn lp_rt_map_dump(
    s: *const LpScript,
    name: *const c_char,
    name_len: usize,
    cursor: u64,
    buf: *mut u8,
    len: usize,
    next: *mut u64,
) -> c_int {
    // SAFETY: the caller's contract.
    let s = unsafe { &*s };
    let Some(id) = map_id(s, name, name_len) else {
        return -ENOENT;
    };
    let Some(m) = s.rt.maps().get(id) else {
        return -ENOENT;
    };
    // SAFETY: the caller's contract.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, len) };
    let (n, after) = m.map.dump(cursor, buf);
    // SAFETY: the caller's contract.
    unsafe { next.write(after) };
    n as c_int
}

/// any. One operation on map `name`: `op` is abi::guest::map's GET (the value is copied to
/// `val`, at most `vlen` bytes; returns its length), SET (stores `vlen` bytes of `val`: bytes,
/// or a number as a tag and 8 little-endian bytes; returns 0) or DELETE (returns 0). Errors:
/// -ENOENT (no such map or key), -E2BIG (key or value too long), -EINVAL (a value of the
/// wrong type, another op), -ENOSPC (the map is full).
///
/// # Safety
/// `s` is live; `name`, `key` point to `name_len`, `klen` readable bytes; `val` to `vlen`
/// bytes, writable for GET.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lp_rt_map_op(
    s: *const LpScript,
    name: *const c_char,
    name_len: usize,
    op: c_int,
    key: *const u8,
    klen: usize,
    val: *mut u8,
    vlen: usize,
) -> c_int {
    use abi::guest::map as m;
    const E2BIG: c_int = 7;
    // SAFETY: the caller's contract.
    let s = unsafe { &*s };
    let Some(id) = map_id(s, name, name_len) else {
        return -ENOENT;
    };
    if !matches!(op, m::GET | m::SET | m::DELETE) {
        return -EINVAL;
    }
    // SAFETY: the caller's contract.
    let key = unsafe { bytes(key, klen) };
    let val: &mut [u8] = if val.is_null() || vlen == 0 {
        &mut []
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::slice::from_raw_parts_mut(val, vlen) }
    };
    match runtime::imports::op_on_map(s.rt.maps(), op, id as i32, key, val) {
        // DELETE: 1 removed, 0 absent
        0 if op == m::DELETE => -ENOENT,
        1 if op == m::DELETE => 0,
        r if r >= 0 => r,
        m::ABSENT => -ENOENT,
        m::E_KEY | m::E_VALUE => -E2BIG,
        m::E_FULL => -ENOSPC,
        _ => -EINVAL,
    }
}
