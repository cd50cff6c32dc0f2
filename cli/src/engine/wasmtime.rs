//! The same guest under wasmtime (Cranelift JIT), for differential checks against the sandbox.
//!
//! Only the engine is wasmtime's ([`WasmtimeExec`], the runtime's [`Exec`]): the script's
//! instance is the runtime's own ([`Instance`]: Lua state setup, the top-level chunk in slices
//! of the load budget, binding, a packet's call, the soft stop), and so are the `lp` imports
//! (`runtime::imports`, through [`Cx`]; packet reads and writes go to the packet itself, as in
//! the kernel). What this file adds: Lua errors as a [`LuaThrow`] host error caught by the
//! innermost host frame (a `try`, which restores `__stack_pointer` and reports `TRY_THREW`, or
//! the top-level call), the re-entry cap as a [`DepthExceeded`] trap, and
//! `runtime::script`'s on-error policy with a rebuild after a trap. Fuel is the built-in
//! guest's own count (its `lp_fuel` global, guest-lua/build/fuel.rs), so it is the same number
//! under both engines; another guest is metered by wasmtime per operator, and gets its whole
//! load budget at once (wasmtime cannot resume a call that ran dry). `limits.recursion`
//! counts wasmi frames, which wasmtime can only approximate with a stack size in bytes
//! ([`wasm_stack`]).

use super::script::{CliGuest, ScriptEngine};
use super::{Config, Kind};
use abi::guest as g;
use runtime::call::{Exec, Export};
use runtime::guest::CompiledGuest;
use runtime::imports::{CallData, ImportCtx};
use runtime::{ErrorKind, Host, Limits};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::{Arc, Mutex};
use wasmtime::{
    Caller, Global, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, Trap,
    TypedFunc, Val,
};

/// Fuel for instantiating a guest wasmtime meters (its start function, data segments).
use runtime::limits::SETUP_FUEL;
/// wasmi limits the wasm call depth of one entry into the guest to `limits.recursion` frames;
/// wasmtime limits the native stack all wasm (and host re-entry) frames of a call may use, in
/// bytes. Measured on the Lua guest, a wasmi frame corresponds to about this much native stack
/// under wasmtime (nested C calls of Lua: ~6.4 frames and ~1.1 KiB per level).
const STACK_PER_FRAME: usize = 176;
/// Native stack of one `try` re-entry (host frames plus Lua's protected-call frames): ~2.8 KiB
/// in an optimised build, ~7 KiB in a debug build. wasmi gives every entry its own frame budget.
const STACK_PER_REENTRY: usize = 8 << 10;
/// Upper bound: wasm runs on the caller's native stack (2 MiB for a test thread).
const MAX_WASM_STACK: usize = 1 << 20;

/// The host error `lp.throw` returns: a Lua error unwinding to the nearest host frame.
#[derive(Debug)]
struct LuaThrow;

impl fmt::Display for LuaThrow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("lua error unwinding")
    }
}

impl std::error::Error for LuaThrow {}

/// The host error `lp.try` returns past the re-entry cap.
#[derive(Debug)]
struct DepthExceeded;

impl fmt::Display for DepthExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("host re-entry cap reached")
    }
}

impl std::error::Error for DepthExceeded {}

/// Why an instance could not be built: the runtime's own load errors, or wasmtime's.
enum BuildError {
    Runtime(runtime::LoadError),
    Wasm(wasmtime::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Runtime(e) => e.fmt(f),
            // worded as runtime::LoadError::Wasm
            BuildError::Wasm(e) => write!(f, "guest module rejected: {e}"),
        }
    }
}

impl From<runtime::LoadError> for BuildError {
    fn from(e: runtime::LoadError) -> Self {
        BuildError::Runtime(e)
    }
}

impl From<wasmtime::Error> for BuildError {
    fn from(e: wasmtime::Error) -> Self {
        BuildError::Wasm(e)
    }
}

/// The guest compiled for one wasm stack size, shared by every engine of the process (like
/// the runtime's `GuestCache`): Cranelift compiles `lua.wasm` once per stack size, not once per
/// script or rebuild (~0.6 s in an optimised build, ~11 s in a debug build).
pub struct WasmtimeGuest {
    engine: wasmtime::Engine,
    module: Module,
    hash: [u8; 32],
    /// The built-in guest counts its own fuel (`lp_fuel`), the same count as under wasmi;
    /// any other guest is metered by wasmtime.
    counts_fuel: bool,
}

/// The wasm stack limit that approximates `limits.recursion` (see [`STACK_PER_FRAME`]). Within
/// the default limits the guest's 32 KiB shadow stack runs out first under either engine.
fn wasm_stack(limits: &Limits) -> usize {
    let frames = (limits.recursion as usize).saturating_mul(STACK_PER_FRAME);
    let reentries = (limits.pcall_depth as usize).saturating_mul(STACK_PER_REENTRY);
    frames.saturating_add(reentries).min(MAX_WASM_STACK)
}

/// Compiled guests by (wasm stack size, module bytes).
type GuestCache = Vec<(usize, Vec<u8>, Arc<WasmtimeGuest>)>;

fn guest(stack: usize, wasm: &[u8]) -> Result<Arc<WasmtimeGuest>, wasmtime::Error> {
    static CACHE: Mutex<GuestCache> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, g)) = cache.iter().find(|(s, w, _)| *s == stack && w == wasm) {
        return Ok(g.clone());
    }
    let counts_fuel = wasm == guest_lua::LUA_WASM;
    let mut config = wasmtime::Config::new();
    config.consume_fuel(!counts_fuel).max_wasm_stack(stack);
    let engine = wasmtime::Engine::new(&config)?;
    let module = Module::new(&engine, wasm)?;
    let guest = Arc::new(WasmtimeGuest {
        engine,
        module,
        hash: Sha256::digest(wasm).into(),
        counts_fuel,
    });
    cache.push((stack, wasm.to_vec(), guest.clone()));
    Ok(guest)
}

struct StoreData {
    limits: StoreLimits,
    depth: u32,
    max_depth: u32,
    sp: Option<Global>,
    tramp: Option<TypedFunc<i32, ()>>,
    memory: Option<Memory>,
    /// The guest's own fuel counter (`Guest::counts_fuel`); otherwise wasmtime's fuel.
    fuel: Option<Global>,
    /// The guest's soft stop (`runtime::imports::out_of_fuel`).
    fuel_stop: Option<TypedFunc<(), ()>>,
    /// The packet in hand, the soft stop's fuel, the host and the script's name.
    call: CallData,
}

/// The shared imports' view (`runtime::imports`) of a wasmtime caller (an import running) or
/// store (the host between calls).
struct Cx<'a, T>(&'a mut T);

macro_rules! import_ctx {
    ($t:ty, $p:ident) => {
        impl ImportCtx for Cx<'_, $t> {
            type Error = wasmtime::Error;
            fn fuel_trap() -> wasmtime::Error {
                Trap::OutOfFuel.into()
            }
            fn data(&self) -> &CallData {
                &$p::data(self.0).call
            }
            fn data_mut(&mut self) -> &mut CallData {
                &mut $p::data_mut(self.0).call
            }
            fn memory(&self) -> &[u8] {
                match $p::data(self.0).memory {
                    Some(m) => m.data(&*self.0),
                    None => &[],
                }
            }
            fn memory_mut(&mut self) -> &mut [u8] {
                match $p::data(self.0).memory {
                    Some(m) => m.data_mut(&mut *self.0),
                    None => &mut [],
                }
            }
            fn counter(&mut self) -> Option<i64> {
                let g = $p::data(self.0).fuel?;
                Some(g.get(&mut *self.0).i64().unwrap_or(0))
            }
            fn set_counter(&mut self, value: i64) -> wasmtime::Result<()> {
                match $p::data(self.0).fuel {
                    Some(g) => g.set(&mut *self.0, Val::I64(value)),
                    None => Ok(()),
                }
            }
            fn engine_fuel(&self) -> u64 {
                self.0.get_fuel().unwrap_or(0)
            }
            fn set_engine_fuel(&mut self, fuel: u64) {
                let _ = self.0.set_fuel(fuel);
            }
            fn fuel_stop(&mut self) -> wasmtime::Result<()> {
                match $p::data(self.0).fuel_stop.clone() {
                    Some(stop) => stop.call(&mut *self.0, ()),
                    None => Ok(()),
                }
            }
        }
    };
}
import_ctx!(Caller<'_, StoreData>, Caller);
import_ctx!(Store<StoreData>, Store);

fn linker(engine: &wasmtime::Engine) -> Result<Linker<StoreData>, wasmtime::Error> {
    let mut l = Linker::<StoreData>::new(engine);
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_TRY,
        |mut caller: Caller<'_, StoreData>, ud: i32| -> wasmtime::Result<i32> {
            let d = caller.data_mut();
            if d.depth >= d.max_depth {
                // the guest refuses script-visible nesting before this: reaching the cap
                // means the guest is misbehaving, and the host stack is what is at stake
                return Err(wasmtime::Error::new(DepthExceeded));
            }
            let (Some(sp), Some(tramp)) = (d.sp, d.tramp.clone()) else {
                return Err(wasmtime::Error::msg("guest not initialised"));
            };
            d.depth += 1;
            let saved = sp.get(&mut caller);
            let r = tramp.call(&mut caller, ud);
            caller.data_mut().depth -= 1;
            match r {
                Ok(()) => Ok(g::TRY_OK),
                Err(e) if e.is::<LuaThrow>() => {
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
        |_: Caller<'_, StoreData>| -> wasmtime::Result<()> { Err(wasmtime::Error::new(LuaThrow)) },
    )?;
    // loads are not sliced here: below zero in out_of_fuel is out of fuel, as for a packet's
    // call, after the soft stop
    runtime::wrap_lp_imports!(l, Caller<'_, StoreData>, |caller| Cx(&mut caller));
    Ok(l)
}

fn typed<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    inst: &wasmtime::Instance,
    store: &mut Store<StoreData>,
    name: &'static str,
) -> Result<TypedFunc<P, R>, BuildError> {
    inst.get_typed_func::<P, R>(store, name)
        .map_err(|_| runtime::LoadError::Guest(name).into())
}

/// The call protocol's view of an instance: its store and the exports it uses.
fn trap_kind(e: &wasmtime::Error) -> ErrorKind {
    if e.is::<DepthExceeded>() {
        return ErrorKind::Stack;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ErrorKind::Fuel,
        Some(Trap::StackOverflow) => ErrorKind::Stack,
        _ => ErrorKind::Trap,
    }
}

runtime::guest_exports!(
    Exports,
    TypedFunc,
    wasmtime::Func,
    wasmtime::Instance,
    Store<StoreData>,
    wasmtime::Error,
    BuildError,
    typed
);

/// wasmtime's instance of the guest: the store and the exports the runtime calls.
pub struct WasmtimeExec {
    store: Store<StoreData>,
    memory: Memory,
    sp: Global,
    exports: Exports,
}

impl WasmtimeExec {
    /// Instantiates `guest` for script `name` under `limits` (memory pre-sized to the limit,
    /// as the kernel does: none grown per packet).
    fn instantiate(
        guest: &WasmtimeGuest,
        name: &str,
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Result<WasmtimeExec, BuildError> {
        let data = StoreData {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory as usize)
                .instances(1)
                .memories(1)
                .tables(1)
                .build(),
            depth: 0,
            max_depth: limits.pcall_depth,
            sp: None,
            tramp: None,
            memory: None,
            fuel: None,
            fuel_stop: None,
            call: CallData::new(host, Arc::from(name)),
        };
        let mut store = Store::new(&guest.engine, data);
        store.limiter(|d| &mut d.limits);
        if !guest.counts_fuel {
            store.set_fuel(SETUP_FUEL)?;
        }
        let inst = linker(&guest.engine)?.instantiate(&mut store, &guest.module)?;
        if guest.counts_fuel {
            let counter = inst
                .get_global(&mut store, g::EXPORT_FUEL)
                .ok_or(runtime::LoadError::Guest(g::EXPORT_FUEL))?;
            store.data_mut().fuel = Some(counter);
            store.data_mut().fuel_stop = inst
                .get_typed_func::<(), ()>(&mut store, g::EXPORT_FUEL_STOP)
                .ok();
        } else if let Some(counter) = inst.get_global(&mut store, g::EXPORT_FUEL) {
            // an untrusted guest that counts too: only wasmtime's metering stops it (as
            // runtime::wasmi_exec does)
            let _ = counter.set(&mut store, Val::I64(i64::MAX));
        }
        let memory = inst
            .get_memory(&mut store, g::EXPORT_MEMORY)
            .ok_or(runtime::LoadError::Guest(g::EXPORT_MEMORY))?;
        let (have, want) = (
            memory.size(&store),
            limits.memory / abi::module_caps::WASM_PAGE,
        );
        if want > have {
            memory
                .grow(&mut store, want - have)
                .map_err(|_| runtime::LoadError::NoMemory(limits.memory))?;
        }
        let sp = inst
            .get_global(&mut store, g::EXPORT_STACK_POINTER)
            .ok_or(runtime::LoadError::Guest(g::EXPORT_STACK_POINTER))?;
        let tramp = typed::<i32, ()>(&inst, &mut store, g::EXPORT_TRAMPOLINE)?;
        {
            let d = store.data_mut();
            d.sp = Some(sp);
            d.tramp = Some(tramp);
            d.memory = Some(memory);
        }
        Ok(WasmtimeExec {
            exports: Exports::find(&inst, &mut store)?,
            store,
            memory,
            sp,
        })
    }

    /// wasmtime cannot resume a call that ran dry: a run taken in slices that wasmtime meters
    /// (a foreign guest) gets the rest of its budget at once. The built-in guest takes its
    /// slices through the `out_of_fuel` import, as under wasmi.
    fn give_slices(&mut self) {
        let d = self.store.data_mut();
        if d.fuel.is_some() {
            return;
        }
        let Some(s) = d.call.slices.as_mut() else {
            return;
        };
        let rest = std::mem::take(&mut s.left);
        let now = self.store.get_fuel().unwrap_or(0);
        let _ = self.store.set_fuel(now.saturating_add(rest));
    }
}

impl ImportCtx for WasmtimeExec {
    type Error = wasmtime::Error;
    fn fuel_trap() -> wasmtime::Error {
        Trap::OutOfFuel.into()
    }
    fn data(&self) -> &CallData {
        &self.store.data().call
    }
    fn data_mut(&mut self) -> &mut CallData {
        &mut self.store.data_mut().call
    }
    fn memory(&self) -> &[u8] {
        self.memory.data(&self.store)
    }
    fn memory_mut(&mut self) -> &mut [u8] {
        self.memory.data_mut(&mut self.store)
    }
    fn counter(&mut self) -> Option<i64> {
        Cx(&mut self.store).counter()
    }
    fn set_counter(&mut self, value: i64) -> wasmtime::Result<()> {
        Cx(&mut self.store).set_counter(value)
    }
    fn engine_fuel(&self) -> u64 {
        self.store.get_fuel().unwrap_or(0)
    }
    fn set_engine_fuel(&mut self, fuel: u64) {
        let _ = self.store.set_fuel(fuel);
    }
    fn fuel_stop(&mut self) -> wasmtime::Result<()> {
        Cx(&mut self.store).fuel_stop()
    }
}

impl Exec for WasmtimeExec {
    fn call(&mut self, f: Export, args: &[i32]) -> wasmtime::Result<i32> {
        if self.store.data().call.slices.is_some() {
            self.give_slices();
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
        self.sp.get(&mut self.store).i32().unwrap_or(0)
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
    fn is_lua_throw(e: &wasmtime::Error) -> bool {
        e.is::<LuaThrow>()
    }
    fn trap_kind(e: &wasmtime::Error) -> ErrorKind {
        trap_kind(e)
    }
    fn load_error(e: wasmtime::Error) -> runtime::LoadError {
        runtime::LoadError::Init(trap_kind(&e), e.to_string())
    }
}

/// A script under wasmtime, in the runtime's script container.
pub type WasmtimeEngine = ScriptEngine<WasmtimeGuest>;

impl From<BuildError> for runtime::LoadError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Runtime(e) => e,
            BuildError::Wasm(e) => runtime::LoadError::Rejected(e.to_string()),
        }
    }
}

impl CompiledGuest for WasmtimeGuest {
    type Exec = WasmtimeExec;
    fn instantiate(
        &self,
        name: &str,
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Result<WasmtimeExec, runtime::LoadError> {
        Ok(WasmtimeExec::instantiate(self, name, limits, host)?)
    }
    fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
}

impl CliGuest for WasmtimeGuest {
    const KIND: Kind = Kind::Wasmtime;
    fn compile(cfg: &Config) -> Result<Arc<WasmtimeGuest>, runtime::LoadError> {
        guest(wasm_stack(&cfg.limits), cfg.guest_wasm())
            .map_err(|e| runtime::LoadError::Rejected(e.to_string()))
    }
}
