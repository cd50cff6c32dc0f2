//! One instance of a script: an engine's instance of the guest ([`Exec`]; wasmi's is
//! [`WasmiExec`]), its Lua state holding the script, the entries bound in it, and the last
//! call's message. Setting it up (the Lua state, the top-level chunk in slices of the load
//! budget), binding entries and running a packet's call are the same for every engine.

use crate::call::{status_kind, CallState, Exec, Export, Outcome};
use crate::error::{ErrorKind, LoadError};
use crate::guest::CompiledGuest;
use crate::host::Host;
use crate::imports::{fuel_left, put_fuel, Slices};
use crate::limits::{Limits, BIND_FUEL, SETUP_FUEL};
use crate::packet::{apply_context, fill_context, ApplyError, Packet};
use crate::wasmi_exec::WasmiExec;
use abi::guest as g;
use abi::verdict::Verdict;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Longest log line copied out of the guest.
const MAX_MESSAGE: usize = crate::call::MAX_MESSAGE;

/// A copy of `s`, or `None` when the allocator fails (no abort).
pub(crate) fn try_string(s: &str) -> Option<String> {
    let mut out = String::new();
    out.try_reserve_exact(s.len()).ok()?;
    out.push_str(s);
    Some(out)
}

/// A script's instance under engine `E` (wasmi unless said otherwise).
pub struct Instance<E: Exec = WasmiExec> {
    exec: E,
    ctx_addr: usize,
    /// (function ref, argument ref) per bound entry.
    entries: Vec<(i32, i32)>,
    /// Message, poison and fuel of the last call.
    calls: CallState,
    /// `abi::guest::FEATURE_*` bits of the loaded script.
    features: i32,
}

impl<E: Exec> Instance<E> {
    /// Instantiates `guest`, creates the Lua state and runs the script's top-level chunk (see
    /// [`Instance::start`]).
    pub fn new<G: CompiledGuest<Exec = E>>(
        guest: &G,
        name: &str,
        source: &[u8],
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Result<Instance<E>, LoadError> {
        let exec = guest.instantiate(name, limits, host.clone())?;
        Instance::start(exec, name, source, limits, &*host)
    }
}

impl<E: Exec> Instance<E> {
    /// Creates the Lua state in a fresh instance of the guest and runs the script's top-level
    /// chunk. Process context: the Lua state's setup and the chunk share `limits.load_fuel`,
    /// taken in slices between which the host may reschedule or abort ([`Host::pause`]).
    pub fn start(
        exec: E,
        name: &str,
        source: &[u8],
        limits: &Limits,
        host: &dyn Host,
    ) -> Result<Instance<E>, LoadError> {
        let mut me = Instance {
            exec,
            ctx_addr: 0,
            entries: Vec::new(),
            calls: CallState::with_capacity(MAX_MESSAGE * 3),
            features: !0,
        };
        me.exec.set_max_depth(limits.pcall_depth);
        put_fuel(&mut me.exec, SETUP_FUEL);
        let ctx_addr = me.exec.call(Export::Ctx, &[]).map_err(E::load_error)?;
        me.ctx_addr = ctx_addr as u32 as usize;
        if me
            .exec
            .memory()
            .get(me.ctx_addr..me.ctx_addr.saturating_add(g::ctx::SIZE))
            .is_none()
        {
            return Err(LoadError::Guest("packet context outside memory"));
        }
        // the Lua state's setup and the top-level chunk share the load budget
        let (first, rest) = limits.load_slices();
        me.exec.data_mut().slices = Some(Slices {
            left: rest,
            ..Slices::default()
        });
        put_fuel(&mut me.exec, first);
        let seed = host.seed() as i32;
        let r = me.call_top(Export::Init, &[seed]);
        me.check_budget(limits)?;
        match r {
            Outcome::Status(0) => {}
            Outcome::Status(st) => {
                return Err(LoadError::Init(status_kind(st), me.calls.message.clone()))
            }
            Outcome::Trap(k) => return Err(LoadError::Init(k, String::new())),
        }
        let left = fuel_left(&mut me.exec);
        let src = me.put_bytes(source, Some(SETUP_FUEL))?;
        let nm = me.put_bytes(name.as_bytes(), Some(SETUP_FUEL))?;
        put_fuel(&mut me.exec, left);
        let (slen, nlen) = (source.len() as i32, name.len() as i32);
        let r = me.call_top(Export::Load, &[src, slen, nm, nlen]);
        me.check_budget(limits)?;
        me.exec.data_mut().slices = None;
        me.free_bytes(src, Some(SETUP_FUEL));
        me.free_bytes(nm, Some(SETUP_FUEL));
        match r {
            Outcome::Status(0) => {
                if me.exec.has(Export::Features) {
                    put_fuel(&mut me.exec, SETUP_FUEL);
                    me.features = me.exec.call(Export::Features, &[]).unwrap_or(!0);
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
        match self.exec.data().slices.as_ref() {
            Some(s) if s.interrupted => Err(LoadError::Interrupted),
            Some(s) if s.exhausted => Err(LoadError::Budget(limits.load_fuel)),
            _ => Ok(()),
        }
    }

    /// Copies bytes into guest memory (guest heap), returning their address.
    /// `fuel`: a fresh budget for this step, or `None` to go on with the current one.
    fn put_bytes(&mut self, bytes: &[u8], fuel: Option<u64>) -> Result<i32, LoadError> {
        let len = i32::try_from(bytes.len()).map_err(|_| LoadError::Guest("input too large"))?;
        if let Some(f) = fuel {
            put_fuel(&mut self.exec, f);
        }
        let ptr = self
            .exec
            .call(Export::Alloc, &[len])
            .map_err(|e| self.trapped(e))?;
        if ptr == 0 {
            return Err(LoadError::ScriptMemory);
        }
        let start = ptr as u32 as usize;
        self.exec
            .memory_mut()
            .get_mut(start..start.saturating_add(bytes.len()))
            .ok_or(LoadError::Guest("allocation outside memory"))?
            .copy_from_slice(bytes);
        Ok(ptr)
    }

    fn free_bytes(&mut self, ptr: i32, fuel: Option<u64>) {
        if let Some(f) = fuel {
            put_fuel(&mut self.exec, f);
        }
        if let Err(e) = self.exec.call(Export::Free, &[ptr]) {
            let _ = self.trapped(e);
        }
    }

    /// A trap outside the call protocol (setup, bind): the Lua state may be inconsistent.
    fn trapped(&mut self, e: E::Error) -> LoadError {
        self.calls.poisoned = true;
        E::load_error(e)
    }

    /// Runs a top-level guest call (see [`CallState::call_top`]).
    fn call_top(&mut self, f: Export, args: &[i32]) -> Outcome {
        self.calls.call_top(&mut self.exec, |e| e.call(f, args))
    }

    /// Makes `func` (a global function) callable with `arg`; returns the entry's index.
    /// All of it runs on one budget of [`BIND_FUEL`] (the packet path may bind: it is part of
    /// the per-call ceiling); a trap poisons the instance.
    pub fn bind(&mut self, func: &str, arg: Option<&[u8]>) -> Result<usize, LoadError> {
        let name = self.put_bytes(func.as_bytes(), Some(BIND_FUEL))?;
        let fref = self
            .exec
            .call(Export::RefGlobal, &[name, func.len() as i32]);
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
                let r = self.exec.call(Export::RefString, &[p, a.len() as i32]);
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
        fuel_left(&mut self.exec)
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
        self.run_ref(fref, aref, pkt, limits)
    }

    /// Runs the timer of the guest's function `gref` (`lp.timer`) as a call of its own, with
    /// `pkt` (a packet of no bytes: the embedder's means of sending) in hand: its fuel, and
    /// the error kind when it failed. Whatever the function returns is fine.
    pub fn run_timer(
        &mut self,
        gref: i32,
        pkt: &dyn Packet,
        limits: &Limits,
    ) -> (Result<(), ErrorKind>, u64) {
        let (r, fuel) = self.run_ref(gref, g::TIMER_ARG, pkt, limits);
        match r {
            Ok(_) | Err(ErrorKind::Return) => (Ok(()), fuel),
            Err(k) => (Err(k), fuel),
        }
    }

    /// The instance as timers know it.
    pub fn timer_slot(&self) -> crate::timers::TimerSlot {
        self.exec.data().timer_slot
    }

    /// Says which CPU (slot of its container) the instance serves.
    pub fn set_cpu(&mut self, cpu: usize) {
        self.exec.data_mut().timer_slot.cpu = cpu as u32;
    }

    #[inline]
    fn run_ref(
        &mut self,
        fref: i32,
        aref: i32,
        pkt: &dyn Packet,
        limits: &Limits,
    ) -> (Result<Verdict, ErrorKind>, u64) {
        let ctx_addr = self.ctx_addr;
        if let Some(buf) = self
            .exec
            .memory_mut()
            .get_mut(ctx_addr..ctx_addr + g::ctx::SIZE)
        {
            fill_context(pkt, buf);
        }
        let arm = limits.arm_call(self.exec.has_soft_stop());
        put_fuel(&mut self.exec, arm.fuel);
        self.exec.set_max_depth(arm.reentries);
        {
            let d = self.exec.data_mut();
            d.soft = arm.soft;
            d.send = arm.send;
            // SAFETY: cleared below, before `run` returns and `pkt`'s borrow ends.
            unsafe { d.set_packet(pkt) };
        }
        let out = self.call_top(Export::Run, &[fref, aref, arm.instructions, arm.pcall_cap]);
        {
            let d = self.exec.data_mut();
            d.clear_packet();
            d.soft = 0;
        }
        let applied = match self.exec.memory().get(ctx_addr..ctx_addr + g::ctx::SIZE) {
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
        self.exec.memory().len()
    }

    /// Bytes the Lua allocator holds.
    pub fn lua_memory(&mut self) -> usize {
        put_fuel(&mut self.exec, 1_000_000);
        self.exec.call(Export::MemUsed, &[]).unwrap_or(0).max(0) as usize
    }

    /// Shadow-stack pointer (tests check it is restored after errors).
    pub fn stack_pointer(&mut self) -> i32 {
        self.exec.stack_pointer()
    }
}
