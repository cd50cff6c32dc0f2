//! wasmi's instance of the guest ([`WasmiExec`]): a store with the guest instantiated, the
//! host functions of the `lp` import module, and the exports the runtime calls
//! ([`crate::call::Exec`]). The reference engine, and the kernel's.
//!
//! Lua errors without wasm exceptions (guest-lua/c/lp_guest.c has the guest half): the guest's
//! `try` import re-enters the guest through `lp_trampoline`, and its `throw` import returns a
//! `LuaThrow` trap. The innermost host frame catches it — a `try` (which restores the shadow
//! stack pointer and reports `TRY_THREW`) or the top-level call (which restores it and runs
//! `lp_recover`). Any other trap poisons the instance: its owner rebuilds it.

use crate::call::{Exec, Export};
use crate::error::{ErrorKind, LoadError};
use crate::guest::Guest;
use crate::host::Host;
use crate::imports::{self, CallData, ImportCtx};
use crate::limits::Limits;
use abi::guest as g;
use alloc::sync::Arc;
use core::fmt;
use wasmi::{
    errors::{HostError, InstantiationError, LinkerError, MemoryError, TableError},
    AsContext, AsContextMut, Caller, Error, Func, Global, Linker, Memory, ResourceLimiter,
    ResumableCall, Store, StoreLimits, StoreLimitsBuilder, TrapCode, TypedFunc, Val,
};
use wasmi_core::LimiterError;

/// Fuel for instantiating (engine-metered guests: the start function, data segments).
use crate::limits::SETUP_FUEL;

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
        }
    };
}
import_ctx!(Caller<'_, StoreData>, Caller);
import_ctx!(Store<StoreData>, Store);

// SAFETY: nothing in StoreData is thread-bound (`CallData` explains its packet pointer).
unsafe impl Send for StoreData {}

/// The `lp` imports, linked (wasmi reports a failure as a `LinkerError`; the caller maps it).
fn linker(guest: &Guest) -> Result<Linker<StoreData>, LinkerError> {
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
            let sliced = d.call.slices.is_some();
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
    )?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_THROW,
        |_: Caller<'_, StoreData>| -> Result<(), Error> { Err(Error::host(LuaThrow)) },
    )?;
    crate::wrap_lp_imports!(l, Caller<'_, StoreData>, |caller| caller);
    Ok(l)
}

/// Calls `func` taking fuel in slices from the run's [`imports::Slices`] budget: each time the call
/// runs dry the host may reschedule ([`Host::pause`]) and the call resumes with the next slice.
/// Host errors end the call (they are not resumed).
fn call_sliced<C>(ctx: &mut C, func: Func, inputs: &[Val], outputs: &mut [Val]) -> Result<(), Error>
where
    C: AsContextMut<Data = StoreData> + ImportCtx<Error = Error>,
{
    let mut call = func.call_resumable(&mut *ctx, inputs, outputs)?;
    loop {
        match call {
            ResumableCall::Finished => return Ok(()),
            ResumableCall::HostTrap(t) => return Err(t.into_host_error()),
            ResumableCall::OutOfFuel(t) => {
                let give = imports::take_slice(ctx, t.required_fuel())?;
                let now = ctx.as_context().get_fuel()?;
                ctx.as_context_mut().set_fuel(now.saturating_add(give))?;
                call = t.resume(&mut *ctx, outputs)?;
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

fn typed<P: wasmi::WasmParams, R: wasmi::WasmResults>(
    inst: &wasmi::Instance,
    store: &Store<StoreData>,
    name: &'static str,
) -> Result<TypedFunc<P, R>, LoadError> {
    inst.get_typed_func::<P, R>(store, name)
        .map_err(|_| LoadError::Guest(name))
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

crate::guest_exports!(
    Exports,
    TypedFunc,
    Func,
    wasmi::Instance,
    Store<StoreData>,
    Error,
    LoadError,
    typed
);

/// wasmi's instance of the guest.
pub struct WasmiExec {
    store: Store<StoreData>,
    memory: Memory,
    sp: Global,
    exports: Exports,
}

impl WasmiExec {
    /// Instantiates `guest` for script `name` under `limits` (memory pre-sized to the limit).
    pub fn instantiate(
        guest: &Guest,
        name: &str,
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Result<WasmiExec, LoadError> {
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
            memory: None,
            fuel: None,
            fuel_stop: None,
            call: CallData::new(host, Arc::from(name)),
        };
        let mut store = Store::new(&guest.engine, data);
        store.limiter(|d| &mut d.limits);
        if !guest.counts_fuel {
            store.set_fuel(SETUP_FUEL).map_err(LoadError::Wasm)?;
        }
        let inst = linker(guest)
            .map_err(|e| LoadError::Wasm(Error::from(e)))?
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
        {
            let d = store.data_mut();
            d.sp = Some(sp);
            d.tramp = Some(tramp);
            d.tramp_func = Some(*tramp.func());
            d.memory = Some(memory);
        }
        Ok(WasmiExec {
            exports: Exports::find(&inst, &mut store)?,
            store,
            memory,
            sp,
        })
    }

    /// A call of a run taken in slices (the top-level chunk at load, and what it calls).
    #[cold]
    fn call_in_slices(&mut self, f: Export, args: &[i32]) -> Result<i32, Error> {
        let func = self
            .exports
            .func(f)
            .ok_or(Error::from(TrapCode::UnreachableCodeReached))?;
        let mut inputs = [Val::I32(0), Val::I32(0), Val::I32(0), Val::I32(0)];
        for (v, a) in inputs.iter_mut().zip(args) {
            *v = Val::I32(*a);
        }
        let n = args.len().min(inputs.len());
        let mut out = [Val::I32(0)];
        let results = if f == Export::Free { 0 } else { 1 };
        call_sliced(&mut self.store, func, &inputs[..n], &mut out[..results])?;
        Ok(out[0].i32().unwrap_or(g::ERR_RUNTIME))
    }
}

impl ImportCtx for WasmiExec {
    type Error = Error;
    fn fuel_trap() -> Error {
        <Store<StoreData> as ImportCtx>::fuel_trap()
    }
    fn data(&self) -> &CallData {
        ImportCtx::data(&self.store)
    }
    fn data_mut(&mut self) -> &mut CallData {
        ImportCtx::data_mut(&mut self.store)
    }
    fn memory(&self) -> &[u8] {
        self.memory.data(&self.store)
    }
    fn memory_mut(&mut self) -> &mut [u8] {
        self.memory.data_mut(&mut self.store)
    }
    fn counter(&mut self) -> Option<i64> {
        self.store.counter()
    }
    fn set_counter(&mut self, value: i64) -> Result<(), Error> {
        self.store.set_counter(value)
    }
    fn engine_fuel(&self) -> u64 {
        self.store.engine_fuel()
    }
    fn set_engine_fuel(&mut self, fuel: u64) {
        self.store.set_engine_fuel(fuel)
    }
    fn fuel_stop(&mut self) -> Result<(), Error> {
        ImportCtx::fuel_stop(&mut self.store)
    }
}

impl Exec for WasmiExec {
    fn call(&mut self, f: Export, args: &[i32]) -> Result<i32, Error> {
        if self.store.data().call.slices.is_some() {
            return self.call_in_slices(f, args);
        }
        self.exports.call(&mut self.store, f, args)
    }
    fn has(&self, f: Export) -> bool {
        self.exports.has(f)
    }
    fn has_soft_stop(&self) -> bool {
        let d = self.store.data();
        d.fuel.is_some() && d.fuel_stop.is_some()
    }
    fn stack_pointer(&mut self) -> i32 {
        self.sp.get(&self.store).i32().unwrap_or(0)
    }
    fn set_stack_pointer(&mut self, sp: i32) -> bool {
        self.sp.set(&mut self.store, Val::I32(sp)).is_ok()
    }
    fn reset_depth(&mut self) {
        self.store.data_mut().depth = 0;
    }
    fn set_max_depth(&mut self, max: u32) {
        self.store.data_mut().max_depth = max;
    }
    fn is_lua_throw(e: &Error) -> bool {
        e.downcast_ref::<LuaThrow>().is_some()
    }
    fn trap_kind(e: &Error) -> ErrorKind {
        trap_kind(e)
    }
    fn load_error(e: Error) -> LoadError {
        LoadError::Wasm(e)
    }
}
