//! The sandbox: the runtime that the kernel module links, run in userspace.

use super::script::{CliGuest, ScriptEngine};
use super::{Config, Kind};
use runtime::guest::Guest;
use runtime::{GuestCache, Host, LogLevel};
use std::sync::Arc;
use std::time::Instant;

/// `lpctl`'s host: the process clock, logs on stderr.
pub struct CliHost {
    start: Instant,
    /// The capture's clock (`lpctl run`), nanoseconds plus one; 0: the process's clock.
    clock: std::sync::atomic::AtomicU64,
    /// Print script log lines (`lp.log`, `print`, error reports) to stderr.
    pub verbose: bool,
    /// The script's maps (`lp.map`), as the kernel keeps them for all of a script's instances.
    pub maps: runtime::maps::ScriptMaps,
    /// Its send rates and counters (`lp.send`).
    pub sends: runtime::sends::SendState,
    /// Its timers (`lp.timer`), run between packets on the capture's clock
    /// ([`super::Engine::run_timers`]).
    pub timers: runtime::Timers,
}

impl CliHost {
    pub fn new(verbose: bool) -> Arc<CliHost> {
        Arc::new(CliHost {
            start: Instant::now(),
            clock: std::sync::atomic::AtomicU64::new(0),
            verbose,
            maps: runtime::maps::ScriptMaps::default(),
            sends: runtime::sends::SendState::default(),
            timers: runtime::Timers::new(Box::new(runtime::timers::Polled)),
        })
    }
}

impl CliHost {
    /// From now on the script's clock reads `ns` (a capture's time), until the next call.
    pub fn set_clock(&self, ns: u64) {
        self.clock
            .store(ns.saturating_add(1), std::sync::atomic::Ordering::Relaxed);
    }
}

impl Host for CliHost {
    fn now_ns(&self) -> u64 {
        match self.clock.load(std::sync::atomic::Ordering::Relaxed) {
            0 => self.start.elapsed().as_nanos() as u64,
            t => t - 1,
        }
    }
    fn clock_ns(&self) -> u64 {
        // timing a call: always the process's clock
        self.start.elapsed().as_nanos() as u64
    }
    fn log(&self, script: &str, level: LogLevel, line: &[u8]) {
        if self.verbose {
            let tag = match level {
                LogLevel::Warn => "warn",
                LogLevel::Info => "log",
                LogLevel::Debug => "debug",
            };
            eprintln!("{tag}: {script}: {}", String::from_utf8_lossy(line));
        }
    }
    fn seed(&self) -> u32 {
        // Offline runs are reproducible: the same script and capture give the same results on
        // every engine (the kernel seeds each instance at random against hash flooding).
        0x9e37_79b9
    }
    fn maps(&self) -> Option<&runtime::maps::ScriptMaps> {
        Some(&self.maps)
    }
    fn sends(&self) -> Option<&runtime::sends::SendState> {
        Some(&self.sends)
    }
    fn timers(&self) -> Option<&runtime::Timers> {
        Some(&self.timers)
    }
}

/// The sandbox's engine: wasmi, as in the kernel.
pub type WasmiEngine = ScriptEngine<Guest>;

impl CliGuest for Guest {
    const KIND: Kind = Kind::Wasmi;
    fn compile(cfg: &Config) -> Result<Arc<Guest>, runtime::LoadError> {
        GuestCache::new().get(cfg.guest_wasm(), cfg.limits.recursion)
    }
}
