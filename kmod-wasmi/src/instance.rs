//! One instance of a script: a wasmi store with the guest instantiated, its Lua state holding
//! the script, and the host functions of the `lp` import module.
//!
//! Lua errors without wasm exceptions (guest-lua/c/lp_guest.c has the guest half): the guest's
//! `try` import re-enters the guest through `lp_trampoline`, and its `throw` import returns a
//! [`LuaThrow`] trap. The innermost host frame catches it — a `try` (which restores the shadow
//! stack pointer and reports `TRY_THREW`) or the top-level call (which restores it and runs
//! `lp_recover`). Any other trap poisons the instance: its owner rebuilds it.

use crate::error::{ErrorKind, LoadError};
use crate::guest::Guest;
use crate::host::{Host, LogLevel};
use crate::limits::Limits;
use crate::packet::{apply_context, fill_context, ApplyError, Packet};
use abi::guest as g;
use abi::verdict::Verdict;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;
use wasmi::{
    errors::HostError, Caller, Error, Global, Linker, Memory, Store, StoreLimits,
    StoreLimitsBuilder, TrapCode, TypedFunc, Val,
};

/// Fuel for building an instance: the script's top-level chunk may build large tables.
const LOAD_FUEL: u64 = 4_000_000_000;
/// Fuel for finishing a call whose Lua error unwound to the host (it runs `__close` handlers).
const RECOVER_FUEL: u64 = 1_000_000;
/// Longest log line or error message copied out of the guest.
const MAX_MESSAGE: usize = 1024;

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

/// The packet of the running call, with its lifetime erased (see [`Instance::run`]).
type PacketPtr = NonNull<dyn Packet + 'static>;

pub(crate) struct StoreData {
    limits: StoreLimits,
    depth: u32,
    max_depth: u32,
    sp: Option<Global>,
    tramp: Option<TypedFunc<i32, ()>>,
    memory: Option<Memory>,
    pkt: Option<PacketPtr>,
    host: Arc<dyn Host>,
    name: Arc<str>,
}

// SAFETY: `pkt` is only set for the duration of `Instance::run`, which holds `&mut Instance`
// and the packet borrow; nothing else in StoreData is thread-bound.
unsafe impl Send for StoreData {}

/// How a top-level guest call ended.
enum Outcome {
    /// The guest returned this status (a verdict code or a negative error status), possibly
    /// after a Lua error unwound to the host and `lp_recover` ran.
    Status(i32),
    /// A trap that is not a Lua error: the Lua state may be inconsistent.
    Trap(ErrorKind),
}

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
    message: String,
    poisoned: bool,
    /// Fuel the last top-level call used, its recovery included.
    fuel_used: u64,
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
                return Err(Error::new("guest not initialised"));
            };
            d.depth += 1;
            let saved = sp.get(&caller);
            let r = tramp.call(&mut caller, ud);
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
        |caller: Caller<'_, StoreData>, level: i32, ptr: i32, len: i32| {
            let d = caller.data();
            let Some(mem) = d.memory else { return };
            let data = mem.data(&caller);
            let len = (len.max(0) as usize).min(MAX_MESSAGE);
            let start = ptr as u32 as usize;
            let line = data.get(start..start.saturating_add(len)).unwrap_or(&[]);
            let level = if level == g::LOG_WARN {
                LogLevel::Warn
            } else {
                LogLevel::Info
            };
            d.host.log(&d.name, level, line);
        },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_NOW,
        |caller: Caller<'_, StoreData>| -> i64 { caller.data().host.now_ns() as i64 },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_PKT_READ,
        |mut caller: Caller<'_, StoreData>, off: i32, dst: i32, len: i32| -> i32 {
            let (Some(mem), Some(pkt)) = (caller.data().memory, caller.data().pkt) else {
                return -1;
            };
            let (off, dst, len) = (
                off as u32 as usize,
                dst as u32 as usize,
                len as u32 as usize,
            );
            let Some(out) = mem
                .data_mut(&mut caller)
                .get_mut(dst..dst.saturating_add(len))
            else {
                return -1;
            };
            // SAFETY: `pkt` is set only while `Instance::run` executes, and the packet it
            // points to outlives that call (see `run`).
            let pkt = unsafe { pkt.as_ref() };
            if pkt.read(off, out) {
                len as i32
            } else {
                -1
            }
        },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    l.func_wrap(
        g::IMPORT_MODULE,
        g::IMPORT_PKT_WRITE,
        |caller: Caller<'_, StoreData>, off: i32, src: i32, len: i32| -> i32 {
            let (Some(mem), Some(pkt)) = (caller.data().memory, caller.data().pkt) else {
                return -1;
            };
            let (off, src, len) = (
                off as u32 as usize,
                src as u32 as usize,
                len as u32 as usize,
            );
            let Some(bytes) = mem.data(&caller).get(src..src.saturating_add(len)) else {
                return -1;
            };
            // SAFETY: as in `pkt_read`.
            let pkt = unsafe { pkt.as_ref() };
            if pkt.write(off, bytes) {
                len as i32
            } else {
                -1
            }
        },
    )
    .map_err(|e| LoadError::Wasm(Error::from(e)))?;
    Ok(l)
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
        _ => ErrorKind::Trap,
    }
}

fn status_kind(status: i32) -> ErrorKind {
    match status {
        g::ERR_MEMORY => ErrorKind::Memory,
        g::ERR_RETURN => ErrorKind::Return,
        g::ERR_INSTRUCTIONS => ErrorKind::Instructions,
        g::ERR_STACK => ErrorKind::Stack,
        _ => ErrorKind::Lua,
    }
}

impl Instance {
    /// Instantiates the guest, creates the Lua state and runs the script's top-level chunk.
    pub fn new(
        guest: &Guest,
        name: &str,
        source: &[u8],
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Result<Instance, LoadError> {
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
            pkt: None,
            host: host.clone(),
            name: Arc::from(name),
        };
        let mut store = Store::new(&guest.engine, data);
        store.limiter(|d| &mut d.limits);
        store.set_fuel(LOAD_FUEL).map_err(LoadError::Wasm)?;
        let inst = linker(guest)?
            .instantiate_and_start(&mut store, &guest.module)
            .map_err(LoadError::Wasm)?;
        let memory = inst
            .get_memory(&store, g::EXPORT_MEMORY)
            .ok_or(LoadError::Guest(g::EXPORT_MEMORY))?;
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
            message: String::new(),
            poisoned: false,
            fuel_used: 0,
        };
        let ctx_addr = ctx.call(&mut me.store, ()).map_err(LoadError::Wasm)?;
        me.ctx_addr = ctx_addr as u32 as usize;
        if me
            .memory
            .data(&me.store)
            .get(me.ctx_addr..me.ctx_addr + g::ctx::SIZE)
            .is_none()
        {
            return Err(LoadError::Guest("packet context outside memory"));
        }
        let seed = host.seed() as i32;
        match me.call_top(|s| init.call(s, seed)) {
            Outcome::Status(0) => {}
            Outcome::Status(st) => {
                return Err(LoadError::Init(status_kind(st), me.message.clone()))
            }
            Outcome::Trap(k) => return Err(LoadError::Init(k, String::new())),
        }
        let src = me.put_bytes(source)?;
        let nm = me.put_bytes(name.as_bytes())?;
        let (slen, nlen) = (source.len() as i32, name.len() as i32);
        let r = me.call_top(|s| load.call(s, (src, slen, nm, nlen)));
        me.free_bytes(src);
        me.free_bytes(nm);
        match r {
            Outcome::Status(0) => Ok(me),
            Outcome::Status(g::ERR_SYNTAX) => Err(LoadError::Syntax(me.message.clone())),
            Outcome::Status(st) => Err(LoadError::Init(status_kind(st), me.message.clone())),
            Outcome::Trap(k) => Err(LoadError::Init(k, String::new())),
        }
    }

    /// Copies bytes into guest memory (guest heap), returning their address.
    fn put_bytes(&mut self, bytes: &[u8]) -> Result<i32, LoadError> {
        let len = i32::try_from(bytes.len()).map_err(|_| LoadError::Guest("input too large"))?;
        let _ = self.store.set_fuel(LOAD_FUEL);
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(LoadError::Wasm)?;
        if ptr == 0 {
            return Err(LoadError::Init(
                ErrorKind::Memory,
                String::from("not enough memory"),
            ));
        }
        let start = ptr as u32 as usize;
        self.memory
            .data_mut(&mut self.store)
            .get_mut(start..start + bytes.len())
            .ok_or(LoadError::Guest("allocation outside memory"))?
            .copy_from_slice(bytes);
        Ok(ptr)
    }

    fn free_bytes(&mut self, ptr: i32) {
        let _ = self.store.set_fuel(LOAD_FUEL);
        let _ = self.free.call(&mut self.store, ptr);
    }

    /// Runs a top-level guest call; a Lua error that unwinds to here is finished by
    /// `lp_recover`. Fills `self.message` on errors.
    fn call_top(&mut self, f: impl FnOnce(&mut Store<StoreData>) -> Result<i32, Error>) -> Outcome {
        self.store.data_mut().depth = 0;
        let budget = self.store.get_fuel().unwrap_or(0);
        self.fuel_used = 0;
        let saved = self.sp.get(&self.store);
        let result = f(&mut self.store);
        self.fuel_used = budget.saturating_sub(self.store.get_fuel().unwrap_or(0));
        let status = match result {
            Ok(st) => st,
            Err(e) if e.downcast_ref::<LuaThrow>().is_some() => {
                if self.sp.set(&mut self.store, saved).is_err() {
                    return self.poison(ErrorKind::Trap);
                }
                // Recovery runs __close handlers: give it a fresh, bounded budget.
                let fuel = self.store.get_fuel().unwrap_or(0).max(RECOVER_FUEL);
                let _ = self.store.set_fuel(fuel);
                self.store.data_mut().depth = 0;
                let recovered = self.recover.call(&mut self.store, ());
                self.fuel_used += fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
                match recovered {
                    Ok(st) => st,
                    Err(e) => return self.poison(trap_kind(&e)),
                }
            }
            Err(e) => return self.poison(trap_kind(&e)),
        };
        if status < 0 {
            self.fetch_message();
        }
        Outcome::Status(status)
    }

    fn poison(&mut self, kind: ErrorKind) -> Outcome {
        // With --stack-first the shadow stack sits at the bottom of memory: an overflow
        // wraps the stack pointer and the access traps out of bounds.
        let kind = if kind == ErrorKind::Trap && self.stack_pointer() < 1024 {
            ErrorKind::Stack
        } else {
            kind
        };
        self.poisoned = true;
        self.message.clear();
        self.message.push_str(kind.message());
        Outcome::Trap(kind)
    }

    fn fetch_message(&mut self) {
        self.message.clear();
        let _ = self.store.set_fuel(1_000_000);
        let (Ok(ptr), Ok(len)) = (
            self.errmsg.call(&mut self.store, ()),
            self.errlen.call(&mut self.store, ()),
        ) else {
            return;
        };
        let (start, len) = (ptr as u32 as usize, (len.max(0) as usize).min(MAX_MESSAGE));
        if let Some(bytes) = self.memory.data(&self.store).get(start..start + len) {
            self.message.push_str(&String::from_utf8_lossy(bytes));
        }
    }

    /// Makes `func` (a global function) callable with `arg`; returns the entry's index.
    pub fn bind(&mut self, func: &str, arg: Option<&[u8]>) -> Result<usize, LoadError> {
        let name = self.put_bytes(func.as_bytes())?;
        let _ = self.store.set_fuel(LOAD_FUEL);
        let fref = self
            .ref_global
            .call(&mut self.store, (name, func.len() as i32))
            .map_err(LoadError::Wasm);
        self.free_bytes(name);
        let fref = fref?;
        if fref < 0 {
            return Err(LoadError::NoFunction(String::from(func)));
        }
        let aref = match arg {
            Some(a) => {
                let p = self.put_bytes(a)?;
                let r = self
                    .ref_string
                    .call(&mut self.store, (p, a.len() as i32))
                    .map_err(LoadError::Wasm);
                self.free_bytes(p);
                r?
            }
            None => 0,
        };
        self.entries.push((fref, aref));
        Ok(self.entries.len() - 1)
    }

    /// Runs entry `entry` on `pkt`. Returns the verdict or the error kind, and the fuel used.
    pub fn run(
        &mut self,
        entry: usize,
        pkt: &dyn Packet,
        limits: &Limits,
    ) -> (Result<Verdict, ErrorKind>, u64) {
        let Some(&(fref, aref)) = self.entries.get(entry) else {
            self.message.clear();
            self.message.push_str("no such entry");
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
        let _ = self.store.set_fuel(limits.fuel);
        {
            let d = self.store.data_mut();
            d.max_depth = limits.pcall_depth;
            // SAFETY: only the lifetime is erased. The pointer is cleared below before
            // `run` returns, and it is only dereferenced by `pkt_read` while the guest call
            // made here runs, during which `pkt` is borrowed.
            let erased: &'static (dyn Packet + 'static) = unsafe { core::mem::transmute(pkt) };
            d.pkt = Some(NonNull::from(erased));
        }
        let budget = limits.instructions as i32;
        let cap = limits.pcall_depth as i32;
        let run = self.run;
        let out = self.call_top(|s| run.call(s, (fref, aref, budget, cap)));
        self.store.data_mut().pkt = None;
        let used = self.fuel_used;
        let mut r = match out {
            Outcome::Status(code) if code > 0 => match Verdict::from_code(code) {
                Some(v) => Ok(v),
                None => Err(ErrorKind::Return),
            },
            Outcome::Status(st) => Err(status_kind(st)),
            Outcome::Trap(k) => Err(k),
        };
        // Writes take effect as the script makes them, also when it fails afterwards (those
        // beyond the window already went to the packet): the on-error policy decides the
        // packet's fate, as it would for a packet the script left half-inspected.
        let applied = self
            .memory
            .data(&self.store)
            .get(ctx_addr..ctx_addr + g::ctx::SIZE)
            .map(|buf| apply_context(pkt, buf));
        if let Some(Err(e)) = applied {
            if r.is_ok() {
                self.message.clear();
                self.message.push_str(match e {
                    ApplyError::BadRange => "the guest reported writes outside its window",
                    ApplyError::Refused => "the packet could not be written",
                });
                r = Err(match e {
                    ApplyError::BadRange => ErrorKind::Trap,
                    ApplyError::Refused => ErrorKind::Memory,
                });
            }
        }
        // wasmi charges fuel per block up front: a call that ran out used all of it
        // wasmi charges fuel per region up front: a call that ran out used all of it
        let used = if r == Err(ErrorKind::Fuel) {
            limits.fuel
        } else {
            used
        };
        (r, used)
    }

    /// True after a trap that may have left the Lua state inconsistent: rebuild it.
    pub fn poisoned(&self) -> bool {
        self.poisoned
    }

    /// Message of the last error (Lua message and traceback, or the trap's fixed message).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Linear memory of the instance in bytes.
    pub fn memory_size(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// Bytes the Lua allocator holds.
    pub fn lua_memory(&mut self) -> usize {
        let _ = self.store.set_fuel(1_000_000);
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
