//! Native Lua: the script on the host's Lua 5.4 (mlua-sys's vendored build) with the very same
//! packet library as the sandbox (guest-lua/c/lib compiled for the host by build.rs), as
//! the baseline of `lpctl bench`.
//!
//! The C half is cli/c/lp_native.c; this file is the only Rust that crosses to it.
//!  - Packet metadata and the first bytes of the packet reach C the way they reach the guest: a
//!    packet context (`abi::guest::ctx`) inside the C state, filled by
//!    [`runtime::packet::fill_context`] before every call.
//!  - Everything else C needs from the host goes through [`HostCallbacks`]: packet bytes beyond
//!    the context's window (`pkt_read`), log lines and the clock. Their `ud` is a [`HostData`]
//!    this engine owns; during a call it also points at the call's packet.
//!  - Lua errors unwind with setjmp/longjmp inside the C half only: every C entry point runs Lua
//!    protected, and the callbacks below never call Lua, so no longjmp crosses a Rust frame.
//!  - Each engine has its own Lua state and C data: engines are independent, in any threads.

use super::{error_message, wasmi::CliHost, Config, Engine, Kind, LoadError, RunResult};
use abi::guest as g;
use runtime::call::status_kind;
use runtime::packet::{apply_context, fill_context};
use runtime::{ErrorKind, Host, Limits, LogLevel, OnError, Packet, Verdict};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::Arc;

// Nothing in Rust calls mlua-sys: this brings in its Lua library, which lp_native.c links to.
use mlua_sys as _;

/// Longest log line or error message taken from C (as the sandbox does).
const MAX_MESSAGE: usize = 1024;
/// Lua instructions the top-level chunk may run. The sandbox bounds it by fuel; this is a bound
/// far above what that fuel allows, so that a runaway chunk fails instead of hanging.
const LOAD_INSTRUCTIONS: c_int = 100_000_000;
/// Without an instruction budget a packet's call is bounded by fuel alone, which native Lua
/// does not count: it gets one Lua instruction per this much fuel instead (a Lua instruction
/// costs 30-60 fuel in the sandbox, so this trips later than fuel would), and running out is
/// reported as out of fuel.
const FUEL_PER_INSTRUCTION: u64 = 8;

/// `struct lp_native_host` in lp_native.c.
#[repr(C)]
struct HostCallbacks {
    ud: *mut c_void,
    pkt_read: unsafe extern "C" fn(*mut c_void, u32, *mut c_void, u32) -> c_int,
    pkt_write: unsafe extern "C" fn(*mut c_void, u32, *const c_void, u32) -> c_int,
    log: unsafe extern "C" fn(*mut c_void, c_int, *const c_char, usize),
    now: unsafe extern "C" fn(*mut c_void) -> i64,
    map_declare: unsafe extern "C" fn(*mut c_void, *const c_void, u32) -> c_int,
    map_op: unsafe extern "C" fn(
        *mut c_void,
        c_int,
        c_int,
        *const c_void,
        u32,
        *mut c_void,
        u32,
    ) -> c_int,
    send: unsafe extern "C" fn(*mut c_void, c_int, *const c_void, u32) -> c_int,
}

/// `struct lp_native` in lp_native.c: opaque.
#[repr(C)]
struct LpNative {
    _private: [u8; 0],
}

extern "C" {
    fn lp_native_new(host: *const HostCallbacks, mem_limit: usize) -> *mut LpNative;
    fn lp_native_init(n: *mut LpNative) -> c_int;
    fn lp_native_load(
        n: *mut LpNative,
        src: *const c_char,
        len: usize,
        name: *const c_char,
        nlen: usize,
        budget: c_int,
    ) -> c_int;
    fn lp_native_ref_global(n: *mut LpNative, name: *const c_char, len: usize) -> c_int;
    fn lp_native_ref_string(n: *mut LpNative, s: *const c_char, len: usize) -> c_int;
    fn lp_native_ctx(n: *mut LpNative) -> *mut u8;
    fn lp_native_run(
        n: *mut LpNative,
        fref: c_int,
        aref: c_int,
        budget: c_int,
        cap: c_int,
    ) -> c_int;
    fn lp_native_errmsg(n: *const LpNative, len: *mut usize) -> *const c_char;
    fn lp_native_mem_used(n: *const LpNative) -> usize;
    fn lp_native_free(n: *mut LpNative);
}

/// What the callbacks reach through `ud`.
struct HostData {
    host: Arc<dyn Host>,
    name: String,
    /// During [`NativeEngine::run`], a `*const &dyn Packet` to the call's packet; else null.
    pkt: Cell<*const c_void>,
    /// What the running call may still send.
    send: Cell<runtime::sends::SendBudget>,
}

/// `pkt_read`: packet bytes `[off, off+len)` into `dst`; `len`, or -1 when out of the packet.
unsafe extern "C" fn cb_pkt_read(ud: *mut c_void, off: u32, dst: *mut c_void, len: u32) -> c_int {
    // SAFETY: `ud` is the engine's `HostData`, alive as long as its C state (see `Drop`).
    let data = unsafe { &*(ud as *const HostData) };
    let pkt = data.pkt.get();
    if pkt.is_null() || dst.is_null() {
        return -1;
    }
    // SAFETY: a non-null `pkt` was set by `NativeEngine::run` to a `&dyn Packet` on its stack,
    // and is reset before `run` returns; C only calls back while `run` is inside C.
    let pkt: &dyn Packet = unsafe { *(pkt as *const &dyn Packet) };
    // SAFETY: lp_host_pkt_read passes `len` writable, initialised (zeroed) bytes at `dst` that
    // nothing else uses during this call.
    let out = unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, len as usize) };
    match catch_unwind(AssertUnwindSafe(|| pkt.read(off as usize, out))) {
        Ok(true) => len as c_int,
        _ => -1,
    }
}

/// `pkt_write`: `src[..len]` to packet bytes `[off, off+len)`; `len`, or -1.
unsafe extern "C" fn cb_pkt_write(
    ud: *mut c_void,
    off: u32,
    src: *const c_void,
    len: u32,
) -> c_int {
    // SAFETY: as in `cb_pkt_read`.
    let data = unsafe { &*(ud as *const HostData) };
    let pkt = data.pkt.get();
    if pkt.is_null() || src.is_null() {
        return -1;
    }
    // SAFETY: as in `cb_pkt_read`.
    let pkt: &dyn Packet = unsafe { *(pkt as *const &dyn Packet) };
    // SAFETY: C passes `len` readable bytes at `src`, valid for this call.
    let bytes = unsafe { std::slice::from_raw_parts(src as *const u8, len as usize) };
    match catch_unwind(AssertUnwindSafe(|| pkt.write(off as usize, bytes))) {
        Ok(true) => len as c_int,
        _ => -1,
    }
}

/// `log`: one line of the script's log.
unsafe extern "C" fn cb_log(ud: *mut c_void, level: c_int, s: *const c_char, len: usize) {
    // SAFETY: as in `cb_pkt_read`.
    let data = unsafe { &*(ud as *const HostData) };
    let line: &[u8] = if s.is_null() {
        &[]
    } else {
        // SAFETY: C passes `len` readable bytes at `s`, valid for this call.
        unsafe { std::slice::from_raw_parts(s as *const u8, len.min(MAX_MESSAGE)) }
    };
    let level = LogLevel::from_code(level);
    // a panicking host must not unwind into C
    let _ = catch_unwind(AssertUnwindSafe(|| data.host.log(&data.name, level, line)));
}

/// `now`: monotonic nanoseconds.
unsafe extern "C" fn cb_now(ud: *mut c_void) -> i64 {
    // SAFETY: as in `cb_pkt_read`.
    let data = unsafe { &*(ud as *const HostData) };
    catch_unwind(AssertUnwindSafe(|| data.host.now_ns() as i64)).unwrap_or(0)
}

/// `map_declare`: declares a map (lp_map.c refuses it outside the top-level chunk).
unsafe extern "C" fn cb_map_declare(ud: *mut c_void, spec: *const c_void, len: u32) -> c_int {
    // SAFETY: as in `cb_pkt_read`.
    let data = unsafe { &*(ud as *const HostData) };
    if spec.is_null() {
        return g::map::E_RANGE;
    }
    // SAFETY: C passes `len` readable bytes at `spec`, valid for this call.
    let spec = unsafe { std::slice::from_raw_parts(spec as *const u8, len as usize) };
    catch_unwind(AssertUnwindSafe(|| {
        runtime::imports::declare_map(&*data.host, spec)
    }))
    .unwrap_or(g::map::E_MEMORY)
}

/// `map_op`: one operation on a map, as the guest's import.
unsafe extern "C" fn cb_map_op(
    ud: *mut c_void,
    op: c_int,
    id: c_int,
    key: *const c_void,
    klen: u32,
    val: *mut c_void,
    vlen: u32,
) -> c_int {
    // SAFETY: as in `cb_pkt_read`.
    let data = unsafe { &*(ud as *const HostData) };
    let Some(maps) = data.host.maps() else {
        return g::map::E_ID;
    };
    let k: &[u8] = if key.is_null() || klen == 0 {
        &[]
    } else {
        // SAFETY: C passes `klen` readable bytes at `key`, valid for this call.
        unsafe { std::slice::from_raw_parts(key as *const u8, klen as usize) }
    };
    let v: &mut [u8] = if val.is_null() || vlen == 0 {
        &mut []
    } else {
        // SAFETY: C passes `vlen` writable bytes at `val` that nothing else uses meanwhile.
        unsafe { std::slice::from_raw_parts_mut(val as *mut u8, vlen as usize) }
    };
    catch_unwind(AssertUnwindSafe(|| {
        runtime::imports::op_on_map(maps, op, id, k, v)
    }))
    .unwrap_or(g::map::E_ID)
}

/// `send`: a packet the script built, as the guest's import.
unsafe extern "C" fn cb_send(ud: *mut c_void, kind: c_int, p: *const c_void, len: u32) -> c_int {
    // SAFETY: as in `cb_pkt_read`.
    let data = unsafe { &*(ud as *const HostData) };
    let bytes: &[u8] = if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: C passes `len` readable bytes at `p`, valid for this call.
        unsafe { std::slice::from_raw_parts(p as *const u8, len as usize) }
    };
    let pkt = data.pkt.get();
    // SAFETY: as in `cb_pkt_read`.
    let pkt: Option<&dyn Packet> =
        (!pkt.is_null()).then(|| unsafe { *(pkt as *const &dyn Packet) });
    let mut budget = data.send.get();
    let r = catch_unwind(AssertUnwindSafe(|| {
        runtime::imports::send_packet(&*data.host, &mut budget, pkt, kind, bytes)
    }))
    .unwrap_or(g::send::E_UNAVAILABLE);
    data.send.set(budget);
    r
}

pub struct NativeEngine {
    state: NonNull<LpNative>,
    /// From `Box::into_raw`; freed in `Drop` after the C state, whose callbacks use it.
    data: NonNull<HostData>,
    fref: c_int,
    aref: c_int,
    limits: Limits,
    on_error: OnError,
    message: String,
}

// SAFETY: the C state and `HostData` belong to this engine alone and have no thread affinity
// (no thread-locals, no globals in lp_native.c, the library or Lua); `&mut self` serialises every
// use. `HostData::host` is `Send + Sync`.
unsafe impl Send for NativeEngine {}

impl NativeEngine {
    pub fn load(cfg: &Config) -> Result<Self, LoadError> {
        Self::load_with_host(cfg, CliHost::new(false))
    }

    /// Same load errors, with the same messages, as [`super::wasmi::WasmiEngine`].
    pub fn load_with_host(cfg: &Config, host: Arc<dyn Host>) -> Result<Self, LoadError> {
        use runtime::LoadError as E;
        let fail = |e: E| LoadError(format!("{}: {e}", cfg.name));
        cfg.limits.validate().map_err(|e| fail(E::Limit(e)))?;

        let data = Box::into_raw(Box::new(HostData {
            host,
            name: cfg.name.clone(),
            pkt: Cell::new(ptr::null()),
            send: Cell::new(Default::default()),
        }));
        let callbacks = HostCallbacks {
            ud: data as *mut c_void,
            pkt_read: cb_pkt_read,
            pkt_write: cb_pkt_write,
            log: cb_log,
            now: cb_now,
            map_declare: cb_map_declare,
            map_op: cb_map_op,
            send: cb_send,
        };
        let mem_limit = usize::try_from(cfg.limits.memory).unwrap_or(usize::MAX);
        // SAFETY: `callbacks` is read during the call (C keeps a copy); its `ud` stays valid
        // for the C state's life, as `Drop` frees the state before `data`.
        let state = unsafe { lp_native_new(&callbacks, mem_limit) };
        // SAFETY: non-null and from `Box::into_raw` just above.
        let data = unsafe { NonNull::new_unchecked(data) };
        let Some(state) = NonNull::new(state) else {
            // SAFETY: no C state holds `data`: it is ours to free.
            drop(unsafe { Box::from_raw(data.as_ptr()) });
            return Err(fail(E::Init(ErrorKind::Memory, "not enough memory".into())));
        };
        let mut me = NativeEngine {
            state,
            data,
            fref: 0,
            aref: 0,
            limits: cfg.limits,
            on_error: cfg.on_error,
            message: String::new(),
        };

        // SAFETY: a fresh state from lp_native_new, initialised once.
        let st = unsafe { lp_native_init(me.state.as_ptr()) };
        if st != 0 {
            return Err(fail(E::Init(status_kind(st), me.fetch_message())));
        }
        // SAFETY: source and name are read during the call only (Lua copies what it keeps).
        let st = unsafe {
            lp_native_load(
                me.state.as_ptr(),
                cfg.source.as_ptr() as *const c_char,
                cfg.source.len(),
                cfg.name.as_ptr() as *const c_char,
                cfg.name.len(),
                LOAD_INSTRUCTIONS,
            )
        };
        match st {
            0 => {}
            g::ERR_SYNTAX => return Err(fail(E::Syntax(me.fetch_message()))),
            st => return Err(fail(E::Init(status_kind(st), me.fetch_message()))),
        }
        let func = &cfg.function;
        // SAFETY: the name is read during the call only.
        let fref = unsafe {
            lp_native_ref_global(
                me.state.as_ptr(),
                func.as_ptr() as *const c_char,
                func.len(),
            )
        };
        match fref {
            r if r > 0 => me.fref = r,
            g::ERR_NO_FUNCTION => return Err(fail(E::NoFunction(func.clone()))),
            st => return Err(fail(E::Init(status_kind(st), me.fetch_message()))),
        }
        if let Some(arg) = &cfg.arg {
            // SAFETY: the argument is read during the call only (Lua copies it).
            let aref = unsafe {
                lp_native_ref_string(me.state.as_ptr(), arg.as_ptr() as *const c_char, arg.len())
            };
            if aref <= 0 {
                return Err(fail(E::Init(status_kind(aref), me.fetch_message())));
            }
            me.aref = aref;
        }
        Ok(me)
    }

    fn data(&self) -> &HostData {
        // SAFETY: `data` is valid until `Drop`; only shared references to it are ever made.
        unsafe { self.data.as_ref() }
    }

    /// The last error's message (with traceback), as the sandbox copies it out of the guest.
    fn fetch_message(&self) -> String {
        let mut len = 0usize;
        // SAFETY: the state is valid; the returned buffer holds `len` bytes and is not
        // modified before the copy below (no C runs in between).
        let bytes = unsafe {
            let p = lp_native_errmsg(self.state.as_ptr(), &mut len);
            std::slice::from_raw_parts(p as *const u8, len.min(MAX_MESSAGE))
        };
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Message of the last failed call (Lua message and traceback).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Bytes the Lua allocator holds.
    pub fn lua_memory(&self) -> usize {
        // SAFETY: the state is valid; this reads one counter.
        unsafe { lp_native_mem_used(self.state.as_ptr()) }
    }
}

impl Engine for NativeEngine {
    fn kind(&self) -> Kind {
        Kind::Native
    }

    fn run(&mut self, pkt: &dyn Packet) -> RunResult {
        // SAFETY: the context is `ctx::SIZE` bytes inside the C state, which no C code uses
        // while this slice lives.
        let ctx = unsafe {
            std::slice::from_raw_parts_mut(lp_native_ctx(self.state.as_ptr()), g::ctx::SIZE)
        };
        fill_context(pkt, ctx);
        let pkt_ref: &dyn Packet = pkt;
        self.data()
            .pkt
            .set(&pkt_ref as *const &dyn Packet as *const c_void);
        self.data().send.set(self.limits.arm_call(false).send);
        let by_fuel = self.limits.instructions == 0;
        let budget = if by_fuel {
            (self.limits.fuel / FUEL_PER_INSTRUCTION).max(1)
        } else {
            u64::from(self.limits.instructions)
        };
        let budget = c_int::try_from(budget).unwrap_or(c_int::MAX);
        let cap = c_int::try_from(self.limits.pcall_depth).unwrap_or(c_int::MAX);
        // SAFETY: the state is valid and `fref`/`aref` are its references; `pkt_ref` outlives
        // the call, and `pkt` is reset right after it.
        let code = unsafe { lp_native_run(self.state.as_ptr(), self.fref, self.aref, budget, cap) };
        self.data().pkt.set(ptr::null());
        self.data().send.set(Default::default());
        // SAFETY: as above; C is done with the context until the next call.
        let ctx =
            unsafe { std::slice::from_raw_parts(lp_native_ctx(self.state.as_ptr()), g::ctx::SIZE) };
        let applied = apply_context(pkt, ctx);

        let mut res = match code {
            c if c > 0 => Verdict::from_code(c).ok_or(ErrorKind::Return),
            st => match status_kind(st) {
                ErrorKind::Instructions if by_fuel => Err(ErrorKind::Fuel),
                kind => Err(kind),
            },
        };
        if let (Ok(_), Err(e)) = (&res, applied) {
            res = Err(runtime::call::apply_error_kind(e));
        }
        match res {
            Ok(verdict) => RunResult {
                verdict,
                error: None,
                fuel: None,
            },
            Err(kind) => {
                self.message = if code > 0 {
                    // lp_verdict only returns verdict codes; kept for parity with the sandbox
                    kind.message().to_string()
                } else {
                    self.fetch_message()
                };
                let data = self.data();
                data.host
                    .log(&data.name, LogLevel::Warn, self.message.as_bytes());
                RunResult {
                    verdict: self.on_error.verdict(),
                    error: Some((kind, error_message(kind, &self.message))),
                    fuel: None,
                }
            }
        }
    }
}

impl Drop for NativeEngine {
    fn drop(&mut self) {
        // SAFETY: the state came from lp_native_new and is freed once; its finalizers may still
        // call back, so `data` is freed only after it.
        unsafe { lp_native_free(self.state.as_ptr()) };
        // SAFETY: from `Box::into_raw` in `load_with_host`; nothing refers to it any more.
        drop(unsafe { Box::from_raw(self.data.as_ptr()) });
    }
}
