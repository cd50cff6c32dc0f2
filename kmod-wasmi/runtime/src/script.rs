//! A loaded script: its source, limits, error policy, one instance per CPU, and its stats.

use crate::error::{ErrorKind, LoadError};
use crate::guest::{CompiledGuest, Guest, GuestCache};
use crate::host::{Host, LogLevel};
use crate::instance::Instance;
use crate::limits::Limits;
use crate::packet::Packet;
use crate::stats::Stats;
use crate::timers::Take;
use abi::verdict::{OnError, Verdict};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// The entry function name scripts get when a rule names none.
pub const DEFAULT_ENTRY: &str = "process_packet";

/// The result of one call, after the on-error policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict applied (the policy's verdict when the call failed).
    pub verdict: Verdict,
    pub error: Option<ErrorKind>,
    pub fuel: u64,
}

/// An entry function bound with an argument, as a rule's `lua` expression uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    func: String,
    arg: Option<Vec<u8>>,
}

/// A script and its instances, under wasmi's guest unless said otherwise (lpctl runs the
/// same container under wasmtime).
pub struct Script<G: CompiledGuest = Guest> {
    name: String,
    source: Vec<u8>,
    guest: Arc<G>,
    host: Arc<dyn Host>,
    limits: Limits,
    on_error: OnError,
    instances: Vec<Instance<G::Exec>>,
    entries: Vec<Entry>,
    stats: Stats,
    /// Message of the last error, per instance (kept across a rebuild).
    messages: Vec<String>,
}

impl Script<Guest> {
    /// Compiles (or reuses) the guest and builds `instances` instances of the script.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        cache: &mut GuestCache,
        guest_wasm: &[u8],
        name: &str,
        source: &[u8],
        limits: Limits,
        on_error: OnError,
        instances: usize,
        host: Arc<dyn Host>,
    ) -> Result<Script, LoadError> {
        limits.validate().map_err(LoadError::Limit)?;
        let guest = cache.get(guest_wasm, limits.recursion)?;
        Script::with_guest(guest, name, source, limits, on_error, instances, host)
    }
}

impl<G: CompiledGuest> Script<G> {
    /// Builds `instances` instances of the script in `guest`.
    pub fn with_guest(
        guest: Arc<G>,
        name: &str,
        source: &[u8],
        limits: Limits,
        on_error: OnError,
        instances: usize,
        host: Arc<dyn Host>,
    ) -> Result<Script<G>, LoadError> {
        limits.validate().map_err(LoadError::Limit)?;
        let mut built = Vec::with_capacity(instances);
        for cpu in 0..instances.max(1) {
            let mut inst = Instance::new(&*guest, name, source, &limits, host.clone())?;
            inst.set_cpu(cpu);
            built.push(inst);
        }
        Ok(Script {
            name: String::from(name),
            source: Vec::from(source),
            guest,
            host,
            limits,
            on_error,
            instances: built,
            entries: Vec::new(),
            stats: Stats::default(),
            messages: alloc::vec![String::new(); instances.max(1)],
        })
    }

    /// Binds entry function `func` (with the rule's argument) in every instance.
    pub fn bind(&mut self, func: &str, arg: Option<&[u8]>) -> Result<usize, LoadError> {
        let entry = Entry {
            func: String::from(func),
            arg: arg.map(Vec::from),
        };
        if let Some(i) = self.entries.iter().position(|e| *e == entry) {
            return Ok(i);
        }
        for inst in &mut self.instances {
            inst.bind(func, arg)?;
        }
        self.entries.push(entry);
        Ok(self.entries.len() - 1)
    }

    /// Runs `entry` on `pkt` in instance `cpu` and applies the on-error policy.
    pub fn run(&mut self, cpu: usize, entry: usize, pkt: &dyn Packet) -> Outcome {
        let cpu = cpu % self.instances.len();
        let t0 = self.host.clock_ns();
        let (res, fuel) = self.instances[cpu].run(entry, pkt, &self.limits);
        let ns = self.host.clock_ns().saturating_sub(t0);
        let (verdict, error) = match res {
            Ok(v) => (v, None),
            Err(k) => {
                let line = self.instances[cpu].message();
                self.host.log(&self.name, LogLevel::Warn, line.as_bytes());
                self.messages[cpu].clear();
                self.messages[cpu].push_str(line);
                (self.on_error.verdict(), Some(k))
            }
        };
        self.stats.record(verdict, error, fuel, ns);
        if self.instances[cpu].poisoned() {
            self.rebuild(cpu);
        }
        Outcome {
            verdict,
            error,
            fuel,
        }
    }

    /// Replaces a poisoned instance with a fresh one (the script's top-level chunk runs again).
    fn rebuild(&mut self, cpu: usize) {
        let fresh = Instance::new(
            &*self.guest,
            &self.name,
            &self.source,
            &self.limits,
            self.host.clone(),
        )
        .and_then(|mut inst| {
            for e in &self.entries {
                inst.bind(&e.func, e.arg.as_deref())?;
            }
            Ok(inst)
        });
        match fresh {
            Ok(mut inst) => {
                inst.set_cpu(cpu);
                self.instances[cpu] = inst;
                self.stats.rebuilds += 1;
            }
            Err(_) => {
                self.host.log(
                    &self.name,
                    LogLevel::Warn,
                    b"instance rebuild failed; keeping the old one",
                );
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// Fuel, instructions and pcall depth apply from the next call; memory and recursion from
    /// the next instance built.
    pub fn set_limits(&mut self, limits: Limits) -> Result<(), LoadError> {
        limits.validate().map_err(LoadError::Limit)?;
        self.limits = limits;
        Ok(())
    }
    pub fn on_error(&self) -> OnError {
        self.on_error
    }
    pub fn set_on_error(&mut self, p: OnError) {
        self.on_error = p;
    }
    /// Counters: the calls', and the timers' of the host (when it has timers).
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        if let Some(t) = self.host.timers() {
            s.timers = t.counters();
        }
        s
    }

    /// The armed timer due first, at or before `until_ns`: its index and due time. `lpctl
    /// run` fires timers between packets on the capture's clock (the host's timers are
    /// `timers::Polled`).
    pub fn next_timer(&self, until_ns: u64) -> Option<(usize, u64)> {
        self.host.timers()?.next_due(until_ns)
    }

    /// Runs timer `index` (see [`Script::next_timer`]) in the instance that armed it, as a
    /// call of its own with `pkt` (no bytes: where what it sends goes). `None` when nothing ran
    /// (cancelled, or its instance was rebuilt); else the error kind when it failed.
    pub fn fire_timer(&mut self, index: usize, pkt: &dyn Packet) -> Option<Result<(), ErrorKind>> {
        let timers = self.host.timers()?;
        let (slot, gref) = match timers.take(index, 0) {
            Take::Run { slot, gref } => (slot, gref),
            Take::Elsewhere(cpu) => match timers.take(index, cpu as usize) {
                Take::Run { slot, gref } => (slot, gref),
                _ => return None,
            },
            Take::Nothing => return None,
        };
        let cpu = slot.cpu as usize;
        if self.instances.get(cpu).map(|i| i.timer_slot()) != Some(slot) {
            timers.done(index, None);
            return None;
        }
        let (r, fuel) = self.instances[cpu].run_timer(gref, pkt, &self.limits);
        timers.done(index, Some(r.is_err()));
        if let Err(k) = r {
            let line = self.instances[cpu].message();
            self.host.log(&self.name, LogLevel::Warn, line.as_bytes());
            self.messages[cpu].clear();
            self.messages[cpu].push_str(line);
            self.stats.errors[k.index()] += 1;
        }
        self.stats.fuel_total += fuel;
        if self.instances[cpu].poisoned() {
            self.rebuild(cpu);
        }
        Some(r)
    }
    pub fn instances(&self) -> usize {
        self.instances.len()
    }
    pub fn instance(&mut self, cpu: usize) -> &mut Instance<G::Exec> {
        let n = self.instances.len();
        &mut self.instances[cpu % n]
    }
    /// Last error message of instance `cpu`.
    pub fn message(&self, cpu: usize) -> &str {
        &self.messages[cpu % self.messages.len()]
    }
    pub fn guest_hash(&self) -> &[u8; 32] {
        self.guest.hash()
    }
}
