//! One instance of a script: a wasmi store with the guest instantiated, its Lua state holding
//! the script, and the host functions of the `lp` import module.
//!
//! Lua errors without wasm exceptions (guest-lua/c/lp_guest.c has the guest half): the guest's
//! `try` import re-enters the guest through `lp_trampoline`, and its `throw` import returns a
//! [`LuaThrow`] trap. The innermost host frame catches it — a `try` (which restores the shadow
//! stack pointer and reports `TRY_THREW`) or the top-level call (which restores it and runs
//! `lp_recover`). Any other trap poisons the instance: its owner rebuilds it.

use crate::call::{status_kind, CallState, GuestCalls, Outcome};
use crate::error::{ErrorKind, LoadError};
use crate::guest::Guest;
use crate::host::Host;
use crate::imports::{self, fuel_left, put_fuel, CallData, ImportCtx};
use crate::limits::Limits;
use crate::packet::{apply_context, fill_context, ApplyError, Packet};
use abi::guest as g;
use abi::verdict::Verdict;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use wasmi::{
    errors::{HostError, InstantiationError, MemoryError, TableError},
    AsContext, AsContextMut, Caller, Error, Func, Global, Linker, Memory, ResourceLimiter,
    ResumableCall, Store, StoreLimits, StoreLimitsBuilder, TrapCode, TypedFunc, Val,
};
use wasmi_core::LimiterError;

/// The most fuel of a packet's call held back for the soft stop: what the interpreter has to
/// reach its next back edge or call and run the message handler of the "out of fuel" error
/// (measured: between 10,000 and 15,000 on a fresh instance, the collector stopped). A call
/// burning it inside one C function traps instead.
pub const SOFT_STOP_FUEL: u64 = 20_000;

/// The soft stop's share of a call's `fuel`: a quarter, at most [`SOFT_STOP_FUEL`].
pub fn soft_stop_fuel(fuel: u64) -> u64 {
    (fuel / 4).min(SOFT_STOP_FUEL)
}

/// Fuel for one setup step of an instance (instantiation, the guest's allocator, looking a
/// function up): far more than the built-in guest needs, and bounded whatever a guest does.
const SETUP_FUEL: u64 = 10_000_000;
/// Fuel for binding an entry (copy its name in, look it up, keep a reference): it may run on
/// the packet path (an entry bound on another CPU), so it stays under the per-call ceiling.
pub const BIND_FUEL: u64 = abi::limits::BIND_FUEL;
/// The top-level chunk runs in slices of this much fuel; between slices the host may
/// reschedule and abort ([`Host::pause`]).
pub const SLICE_FUEL: u64 = abi::limits::LOAD_SLICE_FUEL;
/// Longest log line copied out of the guest.
const MAX_MESSAGE: usize = crate::call::MAX_MESSAGE;

/// The trap `lp.throw` raises: a Lua error unwinding to the nearest host frame.
#[derive(Debug)]
struct LuaThrow;

impl fmt::Display for LuaThrow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("lua error unwinding")
    }
}

impl HostError for LuaThrow {}

/// The trap `lp.try` raises past the re-entry cap.
#[derive(Debug)]
struct DepthExceeded;

impl fmt::Display for DepthExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("host re-entry cap reached")
    }
}

impl HostError for DepthExceeded {}

/// The trap of an `lp.try` the guest makes before its entry points are known (a broken guest).
#[derive(Debug)]
struct NotInitialised;

impl fmt::Display for NotInitialised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("guest not initialised")
    }
}

impl HostError for NotInitialised {}

/// A copy of `s`, or `None` when the allocator fails (no abort).
pub(crate) fn try_string(s: &str) -> Option<String> {
    let mut out = String::new();
    out.try_reserve_exact(s.len()).ok()?;
    out.push_str(s);
    Some(out)
}

/// The budget of a sliced run (the top-level chunk): fuel not yet handed out, and why the
/// run stopped early.
#[derive(Default)]
struct Slices {
    left: u64,
    exhausted: bool,
    interrupted: bool,
}

/// The store's limits, and the host told of every linear-memory allocation before wasmi makes
/// it: the kernel keeps that one allocation fallible while the rest of a load cannot fail
/// ([`Host::linear_memory`]).
struct Limiter {
    limits: StoreLimits,
    host: Arc<dyn Host>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        let ok = self.limits.memory_growing(current, desired, maximum)?;
        if ok && desired > current {
            self.host.linear_memory(desired);
        }
        Ok(ok)
    }

    fn memory_grow_failed(&mut self, error: &MemoryError) -> Result<(), LimiterError> {
        // the announced allocation may not have happened (a fuel check failed first)
        self.host.linear_memory(0);
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: &TableError) -> Result<(), LimiterError> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

pub(crate) struct StoreData {
    limits: Limiter,
    depth: u32,
    max_depth: u32,
    sp: Option<Global>,
    tramp: Option<TypedFunc<i32, ()>>,
    tramp_func: Option<Func>,
    /// Set while a process-context run (the top-level chunk) takes its fuel in slices.
    slices: Option<Slices>,
    memory: Option<Memory>,
    /// The guest's own fuel counter, when the guest counts fuel (`Guest::counts_fuel`);
    /// otherwise wasmi's fuel is the instance's.
    fuel: Option<Global>,
    fuel_stop: Option<TypedFunc<(), ()>>,
    /// The packet in hand, the soft stop's fuel, the host and the script's name.
    call: CallData,
}

/// The imports' view of a wasmi caller (an import running) or store (the host between calls).
macro_rules! import_ctx {
    ($t:ty, $p:ident) => {
        impl ImportCtx for $t {
            type Error = Error;
            fn fuel_trap() -> Error {
                Error::from(TrapCode::OutOfFuel)
            }
            fn data(&self) -> &CallData {
                &$p::data(self).call
            }
            fn data_mut(&mut self) -> &mut CallData {
                &mut $p::data_mut(self).call
            }
            fn memory(&self) -> &[u8] {
                match $p::data(self).memory {
                    Some(m) => m.data(self),
                    None => &[],
                }
            }
            fn memory_mut(&mut self) -> &mut [u8] {
                match $p::data(self).memory {
                    Some(m) => m.data_mut(self),
                    None => &mut [],
                }
            }
            fn counter(&mut self) -> Option<i64> {
                let c = AsContext::as_context(self);
                c.data().fuel.map(|g| g.get(c).i64().unwrap_or(0))
            }
            fn set_counter(&mut self, value: i64) -> Result<(), Error> {
                match $p::data(self).fuel {
                    Some(g) => Ok(g.set(self, Val::I64(value))?),
                    None => Ok(()),
                }
            }
            fn engine_fuel(&self) -> u64 {
                self.get_fuel().unwrap_or(0)
            }
            fn set_engine_fuel(&mut self, fuel: u64) {
                let _ = self.set_fuel(fuel);
            }
            fn fuel_stop(&mut self) -> Result<(), Error> {
                match $p::data(self).fuel_stop {
                    Some(stop) => stop.call(self, ()),
                    None => Ok(()),
                }
            }
            fn take_slice(&mut self, required: u64) -> Result<u64, Error> {
                take_slice(self, required)
            }
        }
    };
}
import_ctx!(Caller<'_, StoreData>, Caller);
import_ctx!(Store<StoreData>, Store);

// SAFETY: nothing in StoreData is thread-bound (`CallData` explains its packet pointer).
unsafe impl Send for StoreData {}

pub struct Instance {
    store: Store<StoreData>,
    memory: Memory,
    sp: Global,
    ctx_addr: usize,
    run: TypedFunc<(i32, i32, i32, i32), i32>,
    recover: TypedFunc<(), i32>,
    errmsg: TypedFunc<(), i32>,
    errlen: TypedFunc<(), i32>,
    mem_used: TypedFunc<(), i32>,
    alloc: TypedFunc<i32, i32>,
    free: TypedFunc<i32, ()>,
    ref_global: TypedFunc<(i32, i32), i32>,
    ref_string: TypedFunc<(i32, i32), i32>,
    /// (function ref, argument ref) per bound entry.
    entries: Vec<(i32, i32)>,
    /// Message, poison and fuel of the last call.
    calls: CallState,
    /// `abi::guest::FEATURE_*` bits of the loaded script.
    features: i32,
}

fn linker(guest: &Guest) -> Result<Linker<StoreData>, LoadError> {
    let mut l = Linker::<StoreData>::new(&guest.engine);
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_TRY,
        |mut caller: Caller<'_, StoreData>, ud: i32| -> Result<i32, Error> {
            let d = caller.data_mut();
            if d.depth >= d.max_depth {
                // the guest refuses script-visible nesting before this: reaching the cap
                // means the guest is misbehaving, and the host stack is what is at stake
                return Err(Error::host(DepthExceeded));
            }
            let (Some(sp), Some(tramp)) = (d.sp, d.tramp) else {
                return Err(Error::host(NotInitialised));
            };
            let sliced = d.slices.is_some();
            let func = d.tramp_func;
            d.depth += 1;
            let saved = sp.get(&caller);
            // the sliced path stays out of line: this frame is on the stack once per nested
            // protected call, and the packet path's stack is 64 KiB for 32 of them
            let r = match (sliced, func) {
                (true, Some(f)) => try_sliced(&mut caller, f, ud),
                _ => tramp.call(&mut caller, ud),
            };
            caller.data_mut().depth -= 1;
            match r {
                Ok(()) => Ok(g::TRY_OK),
                Err(e) if e.downcast_ref::<LuaThrow>().is_some() => {
                    sp.set(&mut caller, saved)?;
                    Ok(g::TRY_THREW)
                }
                Err(e) => Err(e),
            }
        },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_THROW,
        |_: Caller<'_, StoreData>| -> Result<(), Error> { Err(Error::host(LuaThrow)) },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_LOG,
        |mut caller: Caller<'_, StoreData>, level: i32, ptr: i32, len: i32| {
            imports::log(&mut caller, level, ptr, len)
        },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_NOW,
        |caller: Caller<'_, StoreData>| -> i64 { imports::now(&caller) },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_PKT_READ,
        |mut caller: Caller<'_, StoreData>, off: i32, dst: i32, len: i32| -> Result<i32, Error> {
            imports::pkt_read(&mut caller, off, dst, len)
        },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_PKT_WRITE,
        |mut caller: Caller<'_, StoreData>, off: i32, src: i32, len: i32| -> Result<i32, Error> {
            imports::pkt_write(&mut caller, off, src, len)
        },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_OUT_OF_FUEL,
        |mut caller: Caller<'_, StoreData>| -> Result<(), Error> {
            imports::out_of_fuel(&mut caller)
        },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    Ok(l)
}

/// Calls `func` taking fuel in slices from the store's [`Slices`] budget: each time the call
/// runs dry the host may reschedule ([`Host::pause`]) and the call resumes with the next slice.
/// Host errors end the call (they are not resumed).
fn call_sliced(
    mut ctx: impl AsContextMut<Data = StoreData>,
    func: Func,
    inputs: &[Val],
    outputs: &mut [Val],
) -> Result<(), Error> {
    let mut call = func.call_resumable(&mut ctx, inputs, outputs)?;
    loop {
        match call {
            ResumableCall::Finished => return Ok(()),
            ResumableCall::HostTrap(t) => return Err(t.into_host_error()),
            ResumableCall::OutOfFuel(t) => {
                refill(&mut ctx, t.required_fuel())?;
                call = t.resume(&mut ctx, outputs)?;
            }
        }
    }
}

/// A nested protected call of a sliced run (the top-level chunk at load).
#[cold]
#[inline(never)]
fn try_sliced(caller: &mut Caller<'_, StoreData>, tramp: Func, ud: i32) -> Result<(), Error> {
    call_sliced(caller, tramp, &[Val::I32(ud)], &mut [])
}

/// Hands the next slice of a sliced run's budget to wasmi, after letting the host pause.
fn refill(mut ctx: impl AsContextMut<Data = StoreData>, required: u64) -> Result<(), Error> {
    let give = take_slice(&mut ctx, required)?;
    let mut c = ctx.as_context_mut();
    let now = c.get_fuel()?;
    c.set_fuel(now.saturating_add(give))
}

/// Takes the next slice of a sliced run's budget (at least `required`) after letting the host
/// pause; out of fuel when there is no sliced run, the budget cannot cover `required`, or the
/// host says stop.
fn take_slice(mut ctx: impl AsContextMut<Data = StoreData>, required: u64) -> Result<u64, Error> {
    let mut c = ctx.as_context_mut();
    let host = c.data().call.host.clone();
    let Some(s) = c.data_mut().slices.as_mut() else {
        return Err(Error::from(TrapCode::OutOfFuel));
    };
    if s.left < required.max(1) {
        s.left = 0;
        s.exhausted = true;
        return Err(Error::from(TrapCode::OutOfFuel));
    }
    if !host.pause() {
        if let Some(s) = c.data_mut().slices.as_mut() {
            s.interrupted = true;
        }
        return Err(Error::from(TrapCode::OutOfFuel));
    }
    let Some(s) = c.data_mut().slices.as_mut() else {
        return Err(Error::from(TrapCode::OutOfFuel));
    };
    let give = s.left.min(SLICE_FUEL.max(required));
    s.left -= give;
    Ok(give)
}

fn typed<P: wasmi::WasmParams, R: wasmi::WasmResults>(
    inst: &wasmi::Instance,
    store: &Store<StoreData>,
    name: &'static str,
) -> Result<TypedFunc<P, R>, LoadError> {
    inst.get_typed_func::<P, R>(store, name)
        .map_err(|_| LoadError::Guest(name))
}

/// The call protocol's view of an instance: its store and the exports it uses.
struct Calls<'a> {
    store: &'a mut Store<StoreData>,
    sp: Global,
    memory: Memory,
    recover: &'a TypedFunc<(), i32>,
    errmsg: &'a TypedFunc<(), i32>,
    errlen: &'a TypedFunc<(), i32>,
}

impl GuestCalls for Calls<'_> {
    type Error = Error;
    fn fuel(&mut self) -> u64 {
        fuel_left(&mut *self.store).saturating_add(self.store.data().call.soft)
    }
    fn set_fuel(&mut self, fuel: u64) {
        self.store.data_mut().call.soft = 0;
        put_fuel(&mut *self.store, fuel);
    }
    fn stack_pointer(&mut self) -> i32 {
        match self.sp.get(&*self.store) {
            Val::I32(v) => v,
            _ => 0,
        }
    }
    fn set_stack_pointer(&mut self, sp: i32) -> bool {
        self.sp.set(&mut *self.store, Val::I32(sp)).is_ok()
    }
    fn reset_depth(&mut self) {
        self.store.data_mut().depth = 0;
    }
    fn recover(&mut self) -> Result<i32, Error> {
        if self.store.data().slices.is_none() {
            return self.recover.call(&mut *self.store, ());
        }
        // at load, recovery shares the load budget
        let mut out = [Val::I32(0)];
        call_sliced(&mut *self.store, *self.recover.func(), &[], &mut out)?;
        Ok(out[0].i32().unwrap_or(g::ERR_RUNTIME))
    }
    fn error_message(&mut self) -> Option<(i32, i32)> {
        let ptr = self.errmsg.call(&mut *self.store, ()).ok()?;
        let len = self.errlen.call(&mut *self.store, ()).ok()?;
        Some((ptr, len))
    }
    fn memory(&self) -> &[u8] {
        self.memory.data(&*self.store)
    }
    fn is_lua_throw(e: &Error) -> bool {
        e.downcast_ref::<LuaThrow>().is_some()
    }
    fn trap_kind(e: &Error) -> ErrorKind {
        trap_kind(e)
    }
}

fn trap_kind(e: &Error) -> ErrorKind {
    if e.downcast_ref::<DepthExceeded>().is_some() {
        return ErrorKind::Stack;
    }
    match e.as_trap_code() {
        Some(TrapCode::OutOfFuel) => ErrorKind::Fuel,
        Some(TrapCode::StackOverflow) => ErrorKind::Stack,
        // the host could not allocate what the call needed (a wasm frame, a value stack,
        // an error): third_party/wasmi reports that as a trap instead of aborting
        Some(TrapCode::OutOfSystemMemory) => ErrorKind::Memory,
        _ => ErrorKind::Trap,
    }
}

/// Grows linear memory to the memory limit before the guest runs, here in process context,
/// so that no packet's call ever grows it: growth on the packet path would be a large atomic
/// allocation in softirq, failing by memory pressure rather than by the script's own limit and
/// draining the atomic reserves the network stack needs. The guest's allocator (wasi-libc's
/// dlmalloc) adopts the memory between `__heap_base` and the end of memory as its initial
/// heap on its first allocation, so none of the pre-sized memory is lost to it.
fn presize(store: &mut Store<StoreData>, memory: Memory, limit: u64) -> Result<(), LoadError> {
    let have = memory.size(&*store);
    let want = limit / abi::module_caps::WASM_PAGE;
    if want > have {
        memory
            .grow(&mut *store, want - have)
            .map_err(|_| LoadError::NoMemory(limit))?;
    }
    Ok(())
}

/// The host could not allocate the guest's initial linear memory (the one allocation of an
/// instantiation that may fail, [`Host::linear_memory`]): ENOMEM like any memory the script's
/// limit asks for, not a malformed guest.
fn instantiate_error(e: Error, limit: u64) -> LoadError {
    let no_memory = match e.kind() {
        wasmi::errors::ErrorKind::Instantiation(InstantiationError::FailedToInstantiateMemory(
            MemoryError::OutOfSystemMemory,
        )) => true,
        _ => e.as_trap_code() == Some(TrapCode::OutOfSystemMemory),
    };
    if no_memory {
        LoadError::NoMemory(limit)
    } else {
        LoadError::Wasm(e)
    }
}

impl Instance {
    /// Instantiates the guest, creates the Lua state and runs the script's top-level chunk.
    /// Process context: the Lua state's setup and the chunk share `limits.load_fuel`, taken
    /// in slices between which the host may reschedule or abort ([`Host::pause`]).
    pub fn new(
        guest: &Guest,
        name: &str,
        source: &[u8],
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Result<Instance, LoadError> {
        let data = StoreData {
            limits: Limiter {
                limits: StoreLimitsBuilder::new()
                    .memory_size(limits.memory as usize)
                    .instances(1)
                    .memories(1)
                    .tables(1)
                    .build(),
                host: host.clone(),
            },
            depth: 0,
            max_depth: limits.pcall_depth,
            sp: None,
            tramp: None,
            tramp_func: None,
            slices: None,
            memory: None,
            fuel: None,
            fuel_stop: None,
            call: CallData::new(host.clone(), Arc::from(name)),
        };
        let mut store = Store::new(&guest.engine, data);
        store.limiter(|d| &mut d.limits);
        if !guest.counts_fuel {
            store.set_fuel(SETUP_FUEL).map_err(LoadError::Wasm)?;
        }
        let inst = linker(guest)?
            .instantiate_and_start(&mut store, &guest.module)
            .map_err(|e| instantiate_error(e, limits.memory))?;
        if guest.counts_fuel {
            let counter = inst
                .get_global(&store, g::EXPORT_FUEL)
                .filter(|c| c.get(&store).i64().is_some())
                .ok_or(LoadError::Guest(g::EXPORT_FUEL))?;
            store.data_mut().fuel = Some(counter);
            store.data_mut().fuel_stop = inst
                .get_typed_func::<(), ()>(&store, g::EXPORT_FUEL_STOP)
                .ok();
        } else if let Some(counter) = inst.get_global(&store, g::EXPORT_FUEL) {
            // a guest built like ours but not trusted (another hash) keeps counting: its
            // counter is made too large to run out, so that only wasmi's metering stops it
            // (a guest that lowers it itself only gets the out-of-fuel trap sooner)
            let _ = counter.set(&mut store, Val::I64(i64::MAX));
        }
        let memory = inst
            .get_memory(&store, g::EXPORT_MEMORY)
            .ok_or(LoadError::Guest(g::EXPORT_MEMORY))?;
        presize(&mut store, memory, limits.memory)?;
        let sp = inst
            .get_global(&store, g::EXPORT_STACK_POINTER)
            .ok_or(LoadError::Guest(g::EXPORT_STACK_POINTER))?;
        let tramp = typed::<i32, ()>(&inst, &store, g::EXPORT_TRAMPOLINE)?;
        let init = typed::<i32, i32>(&inst, &store, g::EXPORT_INIT)?;
        let ctx = typed::<(), i32>(&inst, &store, g::EXPORT_CTX)?;
        let load = typed::<(i32, i32, i32, i32), i32>(&inst, &store, g::EXPORT_LOAD)?;
        {
            let d = store.data_mut();
            d.sp = Some(sp);
            d.tramp = Some(tramp);
            d.tramp_func = Some(*tramp.func());
            d.memory = Some(memory);
        }
        let mut me = Instance {
            run: typed(&inst, &store, g::EXPORT_RUN)?,
            recover: typed(&inst, &store, g::EXPORT_RECOVER)?,
            errmsg: typed(&inst, &store, g::EXPORT_ERRMSG)?,
            errlen: typed(&inst, &store, g::EXPORT_ERRLEN)?,
            mem_used: typed(&inst, &store, g::EXPORT_MEM_USED)?,
            alloc: typed(&inst, &store, g::EXPORT_ALLOC)?,
            free: typed(&inst, &store, g::EXPORT_FREE)?,
            ref_global: typed(&inst, &store, g::EXPORT_REF_GLOBAL)?,
            ref_string: typed(&inst, &store, g::EXPORT_REF_STRING)?,
            store,
            memory,
            sp,
            ctx_addr: 0,
            entries: Vec::new(),
            calls: CallState::with_capacity(MAX_MESSAGE * 3),
            features: !0,
        };
        put_fuel(&mut me.store, SETUP_FUEL);
        let ctx_addr = ctx.call(&mut me.store, ()).map_err(LoadError::Wasm)?;
        me.ctx_addr = ctx_addr as u32 as usize;
        if me
            .memory
            .data(&me.store)
            .get(me.ctx_addr..me.ctx_addr.saturating_add(g::ctx::SIZE))
            .is_none()
        {
            return Err(LoadError::Guest("packet context outside memory"));
        }
        // the Lua state's setup and the top-level chunk share the load budget
        let first = limits.load_fuel.min(SLICE_FUEL);
        me.store.data_mut().slices = Some(Slices {
            left: limits.load_fuel - first,
            ..Slices::default()
        });
        put_fuel(&mut me.store, first);
        let seed = host.seed() as i32;
        let init_func = *init.func();
        let r = me.call_top(|s| {
            let mut out = [Val::I32(0)];
            call_sliced(s, init_func, &[Val::I32(seed)], &mut out)?;
            Ok(out[0].i32().unwrap_or(g::ERR_RUNTIME))
        });
        me.check_budget(limits)?;
        match r {
            Outcome::Status(0) => {}
            Outcome::Status(st) => {
                return Err(LoadError::Init(status_kind(st), me.calls.message.clone()))
            }
            Outcome::Trap(k) => return Err(LoadError::Init(k, String::new())),
        }
        let left = fuel_left(&mut me.store);
        let src = me.put_bytes(source, Some(SETUP_FUEL))?;
        let nm = me.put_bytes(name.as_bytes(), Some(SETUP_FUEL))?;
        put_fuel(&mut me.store, left);
        let (slen, nlen) = (source.len() as i32, name.len() as i32);
        let load_func = *load.func();
        let r = me.call_top(|s| {
            let mut out = [Val::I32(0)];
            call_sliced(
                s,
                load_func,
                &[Val::I32(src), Val::I32(slen), Val::I32(nm), Val::I32(nlen)],
                &mut out,
            )?;
            Ok(out[0].i32().unwrap_or(g::ERR_RUNTIME))
        });
        me.check_budget(limits)?;
        me.store.data_mut().slices = None;
        me.free_bytes(src, Some(SETUP_FUEL));
        me.free_bytes(nm, Some(SETUP_FUEL));
        match r {
            Outcome::Status(0) => {
                // a guest without the export may do anything
                if let Ok(f) = inst.get_typed_func::<(), i32>(&me.store, g::EXPORT_FEATURES) {
                    put_fuel(&mut me.store, SETUP_FUEL);
                    me.features = f.call(&mut me.store, ()).unwrap_or(!0);
                }
                Ok(me)
            }
            Outcome::Status(g::ERR_SYNTAX) => Err(LoadError::Syntax(me.calls.message.clone())),
            Outcome::Status(st) => Err(LoadError::Init(status_kind(st), me.calls.message.clone())),
            Outcome::Trap(k) => Err(LoadError::Init(k, String::new())),
        }
    }

    /// The load budget's verdict on a sliced run that just ended.
    fn check_budget(&mut self, limits: &Limits) -> Result<(), LoadError> {
        match self.store.data().slices.as_ref() {
            Some(s) if s.interrupted => Err(LoadError::Interrupted),
            Some(s) if s.exhausted => Err(LoadError::Budget(limits.load_fuel)),
            _ => Ok(()),
        }
    }

    /// Copies bytes into guest memory (guest heap), returning their address.
    /// `fuel`: a fresh budget for this step, or `None` to go on with the store's.
    fn put_bytes(&mut self, bytes: &[u8], fuel: Option<u64>) -> Result<i32, LoadError> {
        let len = i32::try_from(bytes.len()).map_err(|_| LoadError::Guest("input too large"))?;
        if let Some(f) = fuel {
            put_fuel(&mut self.store, f);
        }
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(|e| self.trapped(e))?;
        if ptr == 0 {
            return Err(LoadError::ScriptMemory);
        }
        let start = ptr as u32 as usize;
        self.memory
            .data_mut(&mut self.store)
            .get_mut(start..start.saturating_add(bytes.len()))
            .ok_or(LoadError::Guest("allocation outside memory"))?
            .copy_from_slice(bytes);
        Ok(ptr)
    }

    fn free_bytes(&mut self, ptr: i32, fuel: Option<u64>) {
        if let Some(f) = fuel {
            put_fuel(&mut self.store, f);
        }
        if let Err(e) = self.free.call(&mut self.store, ptr) {
            let _ = self.trapped(e);
        }
    }

    /// A trap outside the call protocol (setup, bind): the Lua state may be inconsistent.
    fn trapped(&mut self, e: Error) -> LoadError {
        self.calls.poisoned = true;
        LoadError::Wasm(e)
    }

    /// Runs a top-level guest call (see [`CallState::call_top`]).
    fn call_top(&mut self, f: impl FnOnce(&mut Store<StoreData>) -> Result<i32, Error>) -> Outcome {
        let mut calls = Calls {
            store: &mut self.store,
            sp: self.sp,
            memory: self.memory,
            recover: &self.recover,
            errmsg: &self.errmsg,
            errlen: &self.errlen,
        };
        self.calls.call_top(&mut calls, |c| f(c.store))
    }

    /// Makes `func` (a global function) callable with `arg`; returns the entry's index.
    /// All of it runs on one budget of [`BIND_FUEL`] (the packet path may bind: it is part of
    /// the per-call ceiling); a trap poisons the instance.
    pub fn bind(&mut self, func: &str, arg: Option<&[u8]>) -> Result<usize, LoadError> {
        let name = self.put_bytes(func.as_bytes(), Some(BIND_FUEL))?;
        let fref = self
            .ref_global
            .call(&mut self.store, (name, func.len() as i32));
        let fref = fref.map_err(|e| self.trapped(e));
        self.free_bytes(name, None);
        let fref = fref?;
        if fref < 0 {
            // binding may run in atomic context: the name's copy must not abort
            return Err(try_string(func).map_or(LoadError::OutOfMemory, LoadError::NoFunction));
        }
        let aref = match arg {
            Some(a) => {
                let p = self.put_bytes(a, None)?;
                let r = self.ref_string.call(&mut self.store, (p, a.len() as i32));
                let r = r.map_err(|e| self.trapped(e));
                self.free_bytes(p, None);
                r?
            }
            None => 0,
        };
        self.entries
            .try_reserve(1)
            .map_err(|_| LoadError::OutOfMemory)?;
        self.entries.push((fref, aref));
        Ok(self.entries.len() - 1)
    }

    /// Fuel the last bind left (tests measure what a bind costs).
    pub fn fuel_left(&mut self) -> u64 {
        fuel_left(&mut self.store)
    }

    /// Runs entry `entry` on `pkt`. Returns the verdict or the error kind, and the fuel used.
    pub fn run(
        &mut self,
        entry: usize,
        pkt: &dyn Packet,
        limits: &Limits,
    ) -> (Result<Verdict, ErrorKind>, u64) {
        let Some(&(fref, aref)) = self.entries.get(entry) else {
            self.calls.set_message("no such entry");
            return (Err(ErrorKind::Trap), 0);
        };
        let ctx_addr = self.ctx_addr;
        if let Some(buf) = self
            .memory
            .data_mut(&mut self.store)
            .get_mut(ctx_addr..ctx_addr + g::ctx::SIZE)
        {
            fill_context(pkt, buf);
        }
        let soft = if self.store.data().fuel.is_some() && self.store.data().fuel_stop.is_some() {
            soft_stop_fuel(limits.fuel)
        } else {
            0
        };
        put_fuel(&mut self.store, limits.fuel - soft);
        {
            let d = self.store.data_mut();
            d.call.soft = soft;
            d.max_depth = limits.pcall_depth;
            // SAFETY: cleared below, before `run` returns and `pkt`'s borrow ends.
            unsafe { d.call.set_packet(pkt) };
        }
        let budget = limits.instructions as i32;
        let cap = limits.pcall_depth as i32;
        let run = self.run;
        let out = self.call_top(|s| run.call(s, (fref, aref, budget, cap)));
        {
            let d = self.store.data_mut();
            d.call.clear_packet();
            d.call.soft = 0;
        }
        let applied = match self
            .memory
            .data(&self.store)
            .get(ctx_addr..ctx_addr + g::ctx::SIZE)
        {
            Some(buf) => apply_context(pkt, buf),
            None => Err(ApplyError::BadRange),
        };
        self.calls.finish_run(out, applied, limits.fuel)
    }

    /// True after a trap that may have left the Lua state inconsistent: rebuild it.
    pub fn poisoned(&self) -> bool {
        self.calls.poisoned
    }

    /// Message of the last error (Lua message and traceback, or the trap's fixed message).
    pub fn message(&self) -> &str {
        &self.calls.message
    }

    /// Whether the script's chunk names `lp.QUEUE`: its rules are refused at hooks where a
    /// queue verdict cannot work (a name built at run time is an error at run time instead).
    pub fn may_queue(&self) -> bool {
        self.features & g::FEATURE_QUEUE != 0
    }

    /// Linear memory of the instance in bytes.
    pub fn memory_size(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// Bytes the Lua allocator holds.
    pub fn lua_memory(&mut self) -> usize {
        put_fuel(&mut self.store, 1_000_000);
        self.mem_used.call(&mut self.store, ()).unwrap_or(0).max(0) as usize
    }

    /// Shadow-stack pointer (tests check it is restored after errors).
    pub fn stack_pointer(&self) -> i32 {
        match self.sp.get(&self.store) {
            Val::I32(v) => v,
            _ => 0,
        }
    }
}
