//! A script run from many CPUs at once: one instance per CPU, each touched only by its CPU.
//!
//! [`crate::Script`] takes `&mut self` for a call: fine for `lpctl`, which owns its script. The
//! kernel runs packets of one script on every CPU concurrently, without a lock on the hot path,
//! so [`PerCpuScript`] is shared (`&self`) and splits its state by who may touch it:
//!
//! | state | touched by | how |
//! |---|---|---|
//! | instance `cpu` (wasm store, Lua state, bound entries) | the owner of slot `cpu` only | [`PerCpuScript::run_on_cpu`], [`PerCpuScript::bind_on_cpu`] (`unsafe`: the caller guarantees exclusivity) |
//! | counters of slot `cpu` | written by its owner, read by anyone | relaxed atomics, one writer |
//! | limits, on-error policy | anyone | atomics, changed live |
//! | entry table (function, argument) | appended by binders (serialized by the caller), read by owners | spin lock, rarely taken |
//! | the instance pointer of slot `cpu` | swapped by [`PerCpuScript::install`] (`unsafe`: the caller defers the drop) | atomic pointer |
//!
//! In the kernel the owner of slot `cpu` is CPU `cpu` with bottom halves disabled: softirqs do
//! not nest on a CPU, so calls for one slot never overlap. After a trap a slot is *poisoned*:
//! its calls resolve to the on-error policy until a fresh instance is built in process context
//! ([`PerCpuScript::build_instance`]) and installed.

use crate::error::{ErrorKind, LoadError};
use crate::guest::{Guest, GuestCache};
use crate::host::{Host, LogLevel};
use crate::instance::Instance;
use crate::limits::Limits;
use crate::maps::ScriptMaps;
use crate::packet::Packet;
use crate::rings::{ErrorContext, ReadOutcome, RingHost, Rings};
use crate::sends::SendState;
use crate::stats::{verdict_index, Stats};
use crate::timers::{Take, TimerDriver, TimerSlot, Timers};
use crate::wasmi_exec::WasmiExec;
use abi::verdict::{OnError, Verdict};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Distinct (function, argument) pairs one script can have bound: rules with the same pair
/// share an entry, and entries live as long as the script.
pub const ENTRIES_MAX: usize = 1024;

/// An entry function bound with an argument.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    func: String,
    arg: Option<Vec<u8>>,
}

impl Entry {
    /// An empty entry with room, allocated fallibly, for a function name of `func` bytes and
    /// an argument of `arg` bytes: binding runs with bottom halves disabled, where an
    /// allocation that aborts would be a crash.
    fn with_room(func: usize, arg: Option<usize>) -> Result<Entry, LoadError> {
        let mut f = String::new();
        f.try_reserve_exact(func)
            .map_err(|_| LoadError::OutOfMemory)?;
        let arg = match arg {
            Some(n) => {
                let mut v = Vec::new();
                v.try_reserve_exact(n).map_err(|_| LoadError::OutOfMemory)?;
                Some(v)
            }
            None => None,
        };
        Ok(Entry { func: f, arg })
    }

    /// Fills an entry made by [`Entry::with_room`] for these lengths: allocates nothing.
    fn fill(&mut self, func: &str, arg: Option<&[u8]>) {
        self.func.push_str(func);
        if let (Some(dst), Some(src)) = (self.arg.as_mut(), arg) {
            dst.extend_from_slice(src);
        }
    }

    /// A copy of `func` and `arg`, allocated fallibly.
    fn try_new(func: &str, arg: Option<&[u8]>) -> Result<Entry, LoadError> {
        let mut e = Entry::with_room(func.len(), arg.map(<[u8]>::len))?;
        e.fill(func, arg);
        Ok(e)
    }
}

/// The engine a script's instances run on, chosen when it is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EngineKind {
    /// wasmi, the reference: any guest.
    #[default]
    Wasmi,
    /// The built-in guest compiled into the module (`crate::compiled_exec`).
    Compiled,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Wasmi => "wasmi",
            EngineKind::Compiled => "compiled",
        }
    }
}

/// A script's guest under its engine.
enum AnyGuest {
    Wasmi(Arc<Guest>),
    #[cfg(feature = "compiled")]
    Compiled(Arc<crate::compiled_exec::TranslatedGuest>),
}

/// An instance under either engine: one match per call, no virtual dispatch inside.
// (wasmi's is the larger by far; both live boxed in a slot)
#[allow(clippy::large_enum_variant)]
enum AnyInstance {
    Wasmi(Instance<WasmiExec>),
    #[cfg(feature = "compiled")]
    Compiled(Instance<crate::compiled_exec::CompiledExec>),
}

/// `$body` with `$i` bound to the instance, whichever engine it runs on.
macro_rules! with_instance {
    ($inst:expr, $i:ident => $body:expr) => {
        match $inst {
            AnyInstance::Wasmi($i) => $body,
            #[cfg(feature = "compiled")]
            AnyInstance::Compiled($i) => $body,
        }
    };
}

impl AnyInstance {
    fn bind(&mut self, func: &str, arg: Option<&[u8]>) -> Result<usize, LoadError> {
        with_instance!(self, i => i.bind(func, arg))
    }
    fn run(
        &mut self,
        entry: usize,
        pkt: &dyn Packet,
        limits: &Limits,
    ) -> (Result<Verdict, ErrorKind>, u64) {
        with_instance!(self, i => i.run(entry, pkt, limits))
    }
    fn run_timer(
        &mut self,
        gref: i32,
        pkt: &dyn Packet,
        limits: &Limits,
    ) -> (Result<(), ErrorKind>, u64) {
        with_instance!(self, i => i.run_timer(gref, pkt, limits))
    }
    fn timer_slot(&self) -> TimerSlot {
        with_instance!(self, i => i.timer_slot())
    }
    fn set_cpu(&mut self, cpu: usize) {
        with_instance!(self, i => i.set_cpu(cpu))
    }
    fn poisoned(&self) -> bool {
        with_instance!(self, i => i.poisoned())
    }
    /// The line a failed call logs: its message, or the error kind's own when it left none.
    fn error_line(&self, k: ErrorKind) -> &str {
        let msg = with_instance!(self, i => i.message());
        if msg.is_empty() {
            k.message()
        } else {
            msg
        }
    }
    fn may_queue(&self) -> bool {
        with_instance!(self, i => i.may_queue())
    }
    fn memory_size(&self) -> usize {
        with_instance!(self, i => i.memory_size())
    }
}

/// An instance with the number of entries bound in it (entries are bound in table order, so
/// entry `i` of the table is entry `i` of every instance).
pub struct SpareInstance {
    inst: AnyInstance,
    bound: usize,
}

impl SpareInstance {
    /// Linear memory of the instance, in bytes.
    pub fn memory_size(&self) -> usize {
        self.inst.memory_size()
    }
}

/// The result of one call, after the on-error policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The verdict to apply (the policy's verdict when the call failed or the slot is poisoned).
    pub verdict: Verdict,
    pub error: Option<ErrorKind>,
    pub fuel: u64,
    /// This call poisoned the slot: its owner should get a fresh instance built and installed.
    pub poisoned: bool,
}

/// What a timer's wake-up did ([`PerCpuScript::fire_timer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerFire {
    /// It ran; `poisoned`: it trapped, the slot needs a fresh instance (as after a call).
    Ran { poisoned: bool },
    /// The timer belongs to CPU `.0`: wake it there (or drop it, `Timers::drop_entry`, when
    /// that CPU is gone).
    Elsewhere(usize),
    /// Nothing ran (cancelled, closed, or its instance rebuilt meanwhile: dropped).
    Nothing,
}

/// Counters of one slot: written by the slot's owner only, read by anyone. One writer makes
/// load + store enough (on x86-64 both are plain moves, as the kernel's 64-bit per-CPU stats).
#[derive(Default)]
struct SlotStats {
    run_cnt: AtomicU64,
    run_time_ns: AtomicU64,
    verdicts: [AtomicU64; 5],
    errors: [AtomicU64; 7],
    fuel_total: AtomicU64,
    fuel_max: AtomicU64,
    run_time_max_ns: AtomicU64,
    mem_bytes: AtomicU64,
}

fn bump(a: &AtomicU64, v: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
}

impl SlotStats {
    /// Counts a call; `timed`: it was timed at `ns`, standing for `timed.1` calls.
    fn record(
        &self,
        applied: Verdict,
        error: Option<ErrorKind>,
        fuel: u64,
        timed: Option<(u64, u32)>,
    ) {
        bump(&self.run_cnt, 1);
        if let Some((ns, every)) = timed {
            bump(&self.run_time_ns, ns.saturating_mul(u64::from(every)));
            if ns > self.run_time_max_ns.load(Ordering::Relaxed) {
                self.run_time_max_ns.store(ns, Ordering::Relaxed);
            }
        }
        bump(&self.verdicts[verdict_index(applied)], 1);
        if let Some(k) = error {
            bump(&self.errors[k.index()], 1);
        }
        bump(&self.fuel_total, fuel);
        if fuel > self.fuel_max.load(Ordering::Relaxed) {
            self.fuel_max.store(fuel, Ordering::Relaxed);
        }
    }
}

/// One CPU's instance and counters, on a cache line of its own.
#[repr(align(64))]
struct Slot {
    /// Owned (`Box<SpareInstance>`); never null.
    inst: AtomicPtr<SpareInstance>,
    /// Set by the owner after a trap; cleared by `install`.
    poisoned: AtomicBool,
    /// Re-entrancy guard: a nested call on the same slot is refused, not run.
    busy: AtomicBool,
    /// Calls until the next timed one (`Host::time_every`); the owner's only.
    until_timed: AtomicU32,
    stats: SlotStats,
    _owns: PhantomData<Box<SpareInstance>>,
}

/// Limits readable while they change. A call reads each field once; a call that races with
/// `set_limits` may see some old and some new fields, each of them valid.
struct AtomicLimits {
    fuel: AtomicU64,
    instructions: AtomicU32,
    memory: AtomicU64,
    recursion: AtomicU32,
    pcall_depth: AtomicU32,
    load_fuel: AtomicU64,
    /// packets and bytes per call, per second
    send: [AtomicU32; 4],
}

impl AtomicLimits {
    fn new(l: &Limits) -> Self {
        AtomicLimits {
            fuel: AtomicU64::new(l.fuel),
            instructions: AtomicU32::new(l.instructions),
            memory: AtomicU64::new(l.memory),
            recursion: AtomicU32::new(l.recursion),
            pcall_depth: AtomicU32::new(l.pcall_depth),
            load_fuel: AtomicU64::new(l.load_fuel),
            send: [l.send_packets, l.send_bytes, l.send_rate, l.send_byte_rate].map(AtomicU32::new),
        }
    }
    fn get(&self) -> Limits {
        Limits {
            fuel: self.fuel.load(Ordering::Relaxed),
            instructions: self.instructions.load(Ordering::Relaxed),
            memory: self.memory.load(Ordering::Relaxed),
            recursion: self.recursion.load(Ordering::Relaxed),
            pcall_depth: self.pcall_depth.load(Ordering::Relaxed),
            load_fuel: self.load_fuel.load(Ordering::Relaxed),
            send_packets: self.send[0].load(Ordering::Relaxed),
            send_bytes: self.send[1].load(Ordering::Relaxed),
            send_rate: self.send[2].load(Ordering::Relaxed),
            send_byte_rate: self.send[3].load(Ordering::Relaxed),
        }
    }
    fn set(&self, l: &Limits) {
        self.fuel.store(l.fuel, Ordering::Relaxed);
        self.instructions.store(l.instructions, Ordering::Relaxed);
        self.memory.store(l.memory, Ordering::Relaxed);
        self.recursion.store(l.recursion, Ordering::Relaxed);
        self.pcall_depth.store(l.pcall_depth, Ordering::Relaxed);
        self.load_fuel.store(l.load_fuel, Ordering::Relaxed);
        let send = [l.send_packets, l.send_bytes, l.send_rate, l.send_byte_rate];
        for (a, v) in self.send.iter().zip(send) {
            a.store(v, Ordering::Relaxed);
        }
    }
}

fn on_error_code(p: OnError) -> u8 {
    match p {
        OnError::Break => 0,
        OnError::Accept => 1,
        OnError::Drop => 2,
    }
}

fn on_error_from(c: u8) -> OnError {
    match c {
        1 => OnError::Accept,
        2 => OnError::Drop,
        _ => OnError::Break,
    }
}

fn load_error_kind(e: &LoadError) -> ErrorKind {
    match e {
        LoadError::Init(k, _) => *k,
        LoadError::OutOfMemory | LoadError::ScriptMemory => ErrorKind::Memory,
        _ => ErrorKind::Trap,
    }
}

/// A loaded script shared by every CPU (see the module documentation).
pub struct PerCpuScript {
    name: String,
    source: Vec<u8>,
    guest: AnyGuest,
    /// The embedder's host behind a [`RingHost`]: the instances log into `rings`.
    host: Arc<dyn Host>,
    rings: Arc<Rings>,
    maps: Arc<ScriptMaps>,
    sends: Arc<SendState>,
    /// The version's own: a replacement starts without timers (the old ones are cancelled).
    timers: Arc<Timers>,
    limits: AtomicLimits,
    on_error: AtomicU8,
    entries: spin::Mutex<Vec<Entry>>,
    slots: Box<[Slot]>,
    rebuilds: AtomicU64,
    /// The script's chunk names `lp.QUEUE` (a property of the source: the same in every
    /// instance).
    may_queue: bool,
}

// SAFETY: the only state that is not itself Sync is each slot's instance (`SpareInstance`, which
// is Send). It is reached through `run_on_cpu`/`bind_on_cpu`, whose contracts give one caller
// at a time exclusive use of a slot, and through `install`, which only swaps the pointer.
// Everything else is atomics, a lock, or immutable after `load`.
unsafe impl Sync for PerCpuScript {}

impl PerCpuScript {
    /// Compiles (or reuses) the guest for `engine` and builds `instances` instances, each with
    /// the entries of `entries_from` bound in the same order (a replacement keeps the indices
    /// rules hold). Process context: allocates and runs the top-level chunk once per instance.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        cache: &mut GuestCache,
        engine: EngineKind,
        guest_wasm: &[u8],
        name: &str,
        source: &[u8],
        limits: Limits,
        on_error: OnError,
        instances: usize,
        host: Arc<dyn Host>,
        entries_from: Option<&PerCpuScript>,
    ) -> Result<PerCpuScript, LoadError> {
        limits.validate().map_err(LoadError::Limit)?;
        let guest = match engine {
            EngineKind::Wasmi => AnyGuest::Wasmi(cache.get(guest_wasm, limits.recursion)?),
            #[cfg(feature = "compiled")]
            EngineKind::Compiled => {
                AnyGuest::Compiled(crate::compiled_exec::TranslatedGuest::new(guest_wasm)?)
            }
            #[cfg(not(feature = "compiled"))]
            EngineKind::Compiled => {
                return Err(LoadError::Rejected(String::from(
                    "the compiled engine is not built in",
                )))
            }
        };
        let mut entries = Vec::new();
        // reserved in full: appending an entry (in atomic context) never reallocates
        entries
            .try_reserve_exact(ENTRIES_MAX)
            .map_err(|_| LoadError::OutOfMemory)?;
        if let Some(s) = entries_from {
            let mut i = 0;
            while let Some(e) = s.entry_copy(i)? {
                entries.push(e);
                i += 1;
            }
        }
        // a replacement keeps the log, errors, maps and send rates of the script it replaces
        let (rings, maps, sends) = match entries_from {
            Some(s) => (s.rings.clone(), s.maps.clone(), s.sends.clone()),
            None => (
                Arc::new(Rings::new().ok_or(LoadError::OutOfMemory)?),
                Arc::new(ScriptMaps::default()),
                Arc::new(SendState::default()),
            ),
        };
        let timers = Arc::new(Timers::default());
        let host: Arc<dyn Host> = Arc::new(RingHost {
            inner: host,
            rings: rings.clone(),
            maps: maps.clone(),
            sends: sends.clone(),
            timers: timers.clone(),
        });
        let mut me = PerCpuScript {
            name: String::from(name),
            source: Vec::from(source),
            guest,
            host,
            rings,
            maps,
            sends,
            timers,
            limits: AtomicLimits::new(&limits),
            on_error: AtomicU8::new(on_error_code(on_error)),
            entries: spin::Mutex::new(entries),
            slots: Box::new([]),
            rebuilds: AtomicU64::new(0),
            may_queue: false,
        };
        let n = instances.max(1);
        // instances are built before any slot owns one: a failure at instance k drops the
        // k built so far with the Vec (no slot, no raw pointer yet)
        let mut built = Vec::new();
        built
            .try_reserve_exact(n)
            .map_err(|_| LoadError::OutOfMemory)?;
        for _ in 0..n {
            built.push(me.build_instance()?);
        }
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(n)
            .map_err(|_| LoadError::OutOfMemory)?;
        me.may_queue = built.iter().any(|s| s.inst.may_queue());
        for (cpu, mut spare) in built.into_iter().enumerate() {
            spare.inst.set_cpu(cpu);
            slots.push(Slot {
                inst: AtomicPtr::new(Box::into_raw(Box::new(spare))),
                poisoned: AtomicBool::new(false),
                busy: AtomicBool::new(false),
                until_timed: AtomicU32::new(0),
                stats: SlotStats::default(),
                _owns: PhantomData,
            });
        }
        me.slots = slots.into_boxed_slice();
        for s in me.slots.iter() {
            // SAFETY: the pointer was just made from a Box and nothing else can see it yet.
            let size = unsafe { (*s.inst.load(Ordering::Relaxed)).memory_size() };
            s.stats.mem_bytes.store(size as u64, Ordering::Relaxed);
        }
        Ok(me)
    }

    /// Builds a fresh instance with every entry of the table bound. Process context.
    pub fn build_instance(&self) -> Result<SpareInstance, LoadError> {
        let limits = self.limits.get();
        let (name, source, host) = (&self.name, &self.source, self.host.clone());
        let inst = match &self.guest {
            AnyGuest::Wasmi(g) => {
                AnyInstance::Wasmi(Instance::new(&**g, name, source, &limits, host)?)
            }
            #[cfg(feature = "compiled")]
            AnyGuest::Compiled(g) => {
                AnyInstance::Compiled(Instance::new(&**g, name, source, &limits, host)?)
            }
        };
        let mut spare = SpareInstance { inst, bound: 0 };
        self.catch_up(&mut spare)?;
        Ok(spare)
    }

    /// Binds the entries `spare` lacks, in table order. The lock is not held while the guest
    /// runs: in the kernel it disables bottom halves, and a bind may grow guest memory.
    fn catch_up(&self, spare: &mut SpareInstance) -> Result<(), LoadError> {
        loop {
            let Some(e) = self.entry_copy(spare.bound)? else {
                return Ok(());
            };
            let i = spare.inst.bind(&e.func, e.arg.as_deref())?;
            if i != spare.bound {
                return Err(LoadError::Guest("entry table out of step"));
            }
            spare.bound += 1;
        }
    }

    /// A copy of entry `i` (`None` past the end). Nothing is allocated under the lock, which
    /// disables bottom halves in the kernel (atomic allocations): the copy's room is reserved
    /// first. Entries are never changed or removed once appended, so the two looks agree.
    fn entry_copy(&self, i: usize) -> Result<Option<Entry>, LoadError> {
        let Some((flen, alen)) = self
            .entries
            .lock()
            .get(i)
            .map(|e| (e.func.len(), e.arg.as_ref().map(Vec::len)))
        else {
            return Ok(None);
        };
        let mut copy = Entry::with_room(flen, alen)?;
        let entries = self.entries.lock();
        let e = entries
            .get(i)
            .ok_or(LoadError::Guest("entry table shrank"))?;
        copy.fill(&e.func, e.arg.as_deref());
        Ok(Some(copy))
    }

    /// Looks `(func, arg)` up in the entry table, or validates it in instance `cpu` and
    /// appends it. Returns the entry's index, the same in every instance.
    ///
    /// # Safety
    /// Same contract as [`run_on_cpu`](Self::run_on_cpu) for slot `cpu`; in addition, calls of
    /// `bind_on_cpu` for one script are serialized by the caller (the kernel holds its
    /// registry mutex and disables bottom halves on CPU `cpu`).
    pub unsafe fn bind_on_cpu(
        &self,
        cpu: usize,
        func: &str,
        arg: Option<&[u8]>,
    ) -> Result<usize, LoadError> {
        let known = self
            .entries
            .lock()
            .iter()
            .position(|e| e.func == func && e.arg.as_deref() == arg);
        if let Some(i) = known {
            return Ok(i);
        }
        let slot = self
            .slots
            .get(cpu)
            .ok_or(LoadError::Guest("no such instance"))?;
        if slot.poisoned.load(Ordering::Acquire) || slot.busy.swap(true, Ordering::Acquire) {
            return Err(LoadError::Unavailable);
        }
        // SAFETY: the caller guarantees nothing else uses slot `cpu` now (contract above);
        // the pointer is a live Box until `install` swaps it, which never frees it itself.
        let spare = unsafe { &mut *slot.inst.load(Ordering::Acquire) };
        let r = self.catch_up(spare).and_then(|()| {
            // binders are serialized: only this call appends to the table
            if self.entries.lock().len() >= ENTRIES_MAX {
                return Err(LoadError::TooManyEntries);
            }
            let entry = Entry::try_new(func, arg)?;
            let i = spare.inst.bind(func, arg)?;
            let mut entries = self.entries.lock();
            if i != entries.len() || i != spare.bound {
                return Err(LoadError::Guest("entry table out of step"));
            }
            // room for ENTRIES_MAX was reserved at load: no reallocation under the lock
            entries.push(entry);
            spare.bound += 1;
            Ok(i)
        });
        if spare.inst.poisoned() {
            // a trap while binding: counted here (poisoned slots' calls count nothing), the
            // owner's next call sees the poison, the caller schedules the rebuild
            bump(&slot.stats.errors[ErrorKind::Trap.index()], 1);
            slot.poisoned.store(true, Ordering::Release);
        }
        slot.busy.store(false, Ordering::Release);
        r
    }

    /// Runs entry `entry` on `pkt` in instance `cpu`, applies the on-error policy and counts
    /// the call in slot `cpu`.
    ///
    /// # Safety
    /// Calls for slot `cpu` (this, [`bind_on_cpu`](Self::bind_on_cpu)) never overlap. In the
    /// kernel: only CPU `cpu` calls it, with bottom halves disabled, and never re-entered
    /// (a nested call is detected and refused, but the caller must not rely on it).
    pub unsafe fn run_on_cpu(&self, cpu: usize, entry: usize, pkt: &dyn Packet) -> RunOutcome {
        let policy = self.on_error().verdict();
        let Some(slot) = self.slots.get(cpu) else {
            return RunOutcome {
                verdict: policy,
                error: Some(ErrorKind::Trap),
                fuel: 0,
                poisoned: false,
            };
        };
        if slot.busy.swap(true, Ordering::Acquire) {
            return RunOutcome {
                verdict: policy,
                error: Some(ErrorKind::Trap),
                fuel: 0,
                poisoned: false,
            };
        }
        let out = if slot.poisoned.load(Ordering::Acquire) {
            // the trap was counted when it happened; until a fresh instance is installed
            // every call resolves to the policy
            slot.stats.record(policy, None, 0, None);
            RunOutcome {
                verdict: policy,
                error: None,
                fuel: 0,
                poisoned: false,
            }
        } else {
            // SAFETY: exclusive use of slot `cpu` (contract above); the Box stays alive
            // until `install`'s caller drops it after this call has returned.
            let spare = unsafe { &mut *slot.inst.load(Ordering::Acquire) };
            self.run_slot(slot, spare, entry, pkt, policy)
        };
        slot.busy.store(false, Ordering::Release);
        out
    }

    fn run_slot(
        &self,
        slot: &Slot,
        spare: &mut SpareInstance,
        entry: usize,
        pkt: &dyn Packet,
        policy: Verdict,
    ) -> RunOutcome {
        let until = slot.until_timed.load(Ordering::Relaxed);
        let t0 = (until == 0).then(|| self.host.clock_ns());
        let (res, fuel) = if entry >= spare.bound {
            // an entry bound on another CPU after this instance was built
            match self.catch_up(spare) {
                Ok(()) => spare.inst.run(entry, pkt, &self.limits.get()),
                Err(e) => (Err(load_error_kind(&e)), 0),
            }
        } else {
            spare.inst.run(entry, pkt, &self.limits.get())
        };
        let timed = match t0 {
            Some(t0) => {
                let ns = self.host.clock_ns().saturating_sub(t0);
                let every = self.host.time_every().max(1);
                slot.until_timed.store(every - 1, Ordering::Relaxed);
                // a sample stands for itself and the untimed calls before it: the slot's first
                // call (the coldest) for itself only
                let first = slot.stats.run_cnt.load(Ordering::Relaxed) == 0;
                Some((ns, if first { 1 } else { every }))
            }
            None => {
                slot.until_timed.store(until - 1, Ordering::Relaxed);
                None
            }
        };
        let (verdict, error) = match res {
            Ok(v) => (v, None),
            Err(k) => {
                let line = spare.inst.error_line(k);
                self.host.log(&self.name, LogLevel::Warn, line.as_bytes());
                self.keep_error(entry, pkt, k, line.as_bytes());
                (policy, Some(k))
            }
        };
        slot.stats.record(verdict, error, fuel, timed);
        slot.stats
            .mem_bytes
            .store(spare.inst.memory_size() as u64, Ordering::Relaxed);
        let poisoned = spare.inst.poisoned();
        if poisoned {
            slot.poisoned.store(true, Ordering::Release);
        }
        RunOutcome {
            verdict,
            error,
            fuel,
            poisoned,
        }
    }

    /// Turns the outcome of a call on slot `cpu` that the embedder cannot apply (a queue
    /// verdict where packets cannot be queued) into an error of kind [`ErrorKind::Return`]
    /// resolved by the on-error policy, and recounts it.
    ///
    /// # Safety
    /// Same contract as [`run_on_cpu`](Self::run_on_cpu) for slot `cpu`, called right after
    /// the call that produced `out`.
    pub unsafe fn refuse_verdict(&self, cpu: usize, out: &mut RunOutcome) {
        let policy = self.on_error().verdict();
        if let Some(slot) = self.slots.get(cpu) {
            let t = &slot.stats;
            let was = &t.verdicts[verdict_index(out.verdict)];
            was.store(
                was.load(Ordering::Relaxed).saturating_sub(1),
                Ordering::Relaxed,
            );
            bump(&t.verdicts[verdict_index(policy)], 1);
            if out.error.is_none() {
                bump(&t.errors[ErrorKind::Return.index()], 1);
            }
        }
        self.host.log(
            &self.name,
            LogLevel::Warn,
            b"lp.QUEUE at a hook where packets cannot be queued (netdev, ingress)",
        );
        out.verdict = policy;
        out.error = Some(ErrorKind::Return);
    }

    /// True when slot `cpu` trapped and waits for a fresh instance.
    pub fn needs_rebuild(&self, cpu: usize) -> bool {
        self.slots
            .get(cpu)
            .is_some_and(|s| s.poisoned.load(Ordering::Acquire))
    }

    /// Makes `fresh` the instance of slot `cpu` and clears its poison. Returns the previous
    /// instance, or gives `fresh` back when there is no slot `cpu`.
    ///
    /// # Safety
    /// A call on slot `cpu` that started before `install` may still be using the previous
    /// instance: the caller drops it only once such calls have returned (the kernel waits for
    /// an RCU grace period: calls run with bottom halves disabled). Calls of `install` for one
    /// slot are serialized by the caller.
    pub unsafe fn install(&self, cpu: usize, mut fresh: Box<SpareInstance>) -> Box<SpareInstance> {
        let Some(slot) = self.slots.get(cpu) else {
            return fresh;
        };
        // timers armed by the instance it replaces are dropped when they come (another identity)
        fresh.inst.set_cpu(cpu);
        slot.stats
            .mem_bytes
            .store(fresh.memory_size() as u64, Ordering::Relaxed);
        let old = slot.inst.swap(Box::into_raw(fresh), Ordering::AcqRel);
        slot.poisoned.store(false, Ordering::Release);
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        // SAFETY: every pointer stored in a slot comes from Box::into_raw and is owned by it;
        // the swap moved ownership of `old` to us.
        unsafe { Box::from_raw(old) }
    }

    /// Counters summed over all slots.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for slot in self.slots.iter() {
            let t = &slot.stats;
            s.run_cnt += r(&t.run_cnt);
            s.run_time_ns += r(&t.run_time_ns);
            for (d, a) in s.verdicts.iter_mut().zip(&t.verdicts) {
                *d += r(a);
            }
            for (d, a) in s.errors.iter_mut().zip(&t.errors) {
                *d += r(a);
            }
            s.fuel_total += r(&t.fuel_total);
            s.fuel_max = s.fuel_max.max(r(&t.fuel_max));
            s.run_time_max_ns = s.run_time_max_ns.max(r(&t.run_time_max_ns));
        }
        s.rebuilds = self.rebuilds.load(Ordering::Relaxed);
        (s.log_lines, s.log_dropped) = self.rings.counters();
        s.sends = self.sends.counters();
        s.timers = self.timers.counters();
        s
    }

    /// The script's timers (the embedder gives them their driver, and closes them before it
    /// drops a replaced or unloaded script).
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Gives the script's timers the embedder's driver: until then `lp.timer` is unavailable.
    pub fn set_timer_driver(&self, driver: alloc::boxed::Box<dyn TimerDriver>) {
        self.timers.set_driver(driver)
    }

    /// A wake-up of timer `index` on CPU `cpu`: runs it in instance `cpu` as a call of its
    /// own with `pkt` (no bytes; the embedder's means of sending) when it is that CPU's and its
    /// instance is still there.
    ///
    /// # Safety
    /// Same contract as [`run_on_cpu`](Self::run_on_cpu) for slot `cpu`.
    pub unsafe fn fire_timer(&self, index: usize, cpu: usize, pkt: &dyn Packet) -> TimerFire {
        let (slot_id, gref) = match self.timers.take(index, cpu) {
            Take::Run { slot, gref } => (slot, gref),
            Take::Elsewhere(c) => return TimerFire::Elsewhere(c as usize),
            Take::Nothing => return TimerFire::Nothing,
        };
        let Some(slot) = self.slots.get(cpu) else {
            self.timers.done(index, None);
            return TimerFire::Nothing;
        };
        if slot.busy.swap(true, Ordering::Acquire) {
            self.timers.done(index, None);
            return TimerFire::Nothing;
        }
        // SAFETY: exclusive use of slot `cpu` (contract above), as in `run_on_cpu`.
        let spare = unsafe { &mut *slot.inst.load(Ordering::Acquire) };
        let out = if slot.poisoned.load(Ordering::Acquire) || spare.inst.timer_slot() != slot_id {
            self.timers.done(index, None);
            TimerFire::Nothing
        } else {
            let (r, fuel) = spare.inst.run_timer(gref, pkt, &self.limits.get());
            if let Err(k) = r {
                let line = spare.inst.error_line(k);
                self.host.log(&self.name, LogLevel::Warn, line.as_bytes());
                bump(&slot.stats.errors[k.index()], 1);
            }
            bump(&slot.stats.fuel_total, fuel);
            self.timers.done(index, Some(r.is_err()));
            let poisoned = spare.inst.poisoned();
            if poisoned {
                slot.poisoned.store(true, Ordering::Release);
            }
            TimerFire::Ran { poisoned }
        };
        slot.busy.store(false, Ordering::Release);
        out
    }

    /// Keeps the error of a call of `entry` on `pkt` in the errors ring. Slot context.
    fn keep_error(&self, entry: usize, pkt: &dyn Packet, kind: ErrorKind, message: &[u8]) {
        // binders hold the lock with bottom halves disabled: never against this CPU's call
        let entries = self.entries.lock();
        let (func, arg) = entries.get(entry).map_or((&b""[..], &b""[..]), |e| {
            (e.func.as_bytes(), e.arg.as_deref().unwrap_or(b""))
        });
        self.rings.error(
            self.host.now_ns(),
            pkt,
            &ErrorContext {
                kind,
                func,
                arg,
                message,
            },
        );
    }

    /// The script's log lines from sequence number `from` (0: the oldest kept) that fit in
    /// `out`, as `abi::records` log records. Any context.
    /// The Lua source the script was loaded with (what its instances are rebuilt from).
    pub fn source(&self) -> &[u8] {
        &self.source
    }

    pub fn read_log(&self, from: u64, out: &mut [u8]) -> ReadOutcome {
        self.rings.read_log(from, out)
    }

    /// The script's maps.
    pub fn maps(&self) -> &ScriptMaps {
        &self.maps
    }

    /// The errors kept with their packets, likewise.
    pub fn read_errors(&self, from: u64, out: &mut [u8]) -> ReadOutcome {
        self.rings.read_errors(from, out)
    }

    /// Linear memory of all instances, in bytes (as of each slot's last call).
    pub fn memory_bytes(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.stats.mem_bytes.load(Ordering::Relaxed))
            .sum()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn instances(&self) -> usize {
        self.slots.len()
    }
    /// Entries bound so far.
    pub fn entries(&self) -> usize {
        self.entries.lock().len()
    }
    pub fn limits(&self) -> Limits {
        self.limits.get()
    }
    /// Changes the limits live: fuel, instructions and pcall depth apply from the next call,
    /// memory from the next instance built; recursion is fixed by the compiled guest and
    /// applies from the next load.
    pub fn set_limits(&self, limits: Limits) -> Result<(), LoadError> {
        limits.validate().map_err(LoadError::Limit)?;
        self.limits.set(&limits);
        Ok(())
    }
    pub fn on_error(&self) -> OnError {
        on_error_from(self.on_error.load(Ordering::Relaxed))
    }
    pub fn set_on_error(&self, p: OnError) {
        self.on_error.store(on_error_code(p), Ordering::Relaxed);
    }
    /// Whether the script may return `lp.QUEUE(n)`: rules at hooks where nf_queue cannot
    /// reinject a packet are refused when added.
    pub fn may_queue(&self) -> bool {
        self.may_queue
    }
    pub fn guest_hash(&self) -> &[u8; 32] {
        match &self.guest {
            AnyGuest::Wasmi(g) => g.hash(),
            #[cfg(feature = "compiled")]
            AnyGuest::Compiled(g) => crate::guest::CompiledGuest::hash(&**g),
        }
    }
    /// The engine its instances run on.
    pub fn engine(&self) -> EngineKind {
        match &self.guest {
            AnyGuest::Wasmi(_) => EngineKind::Wasmi,
            #[cfg(feature = "compiled")]
            AnyGuest::Compiled(_) => EngineKind::Compiled,
        }
    }
}

impl Drop for PerCpuScript {
    fn drop(&mut self) {
        for s in self.slots.iter() {
            let p = s.inst.swap(ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: slots own their instance (Box::into_raw); `&mut self` means no call
                // is running.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}
