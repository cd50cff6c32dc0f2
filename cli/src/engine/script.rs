//! The runtime's script container (`runtime::Script`: instances, entries, the on-error policy,
//! the rebuild after a trap, stats) under any engine whose compiled guest lpctl can make: the
//! kernel's own container, so that offline behaviour after an error is the kernel's.

use super::{error_message, Config, Engine, Kind, LoadError, RunResult, TimerRun};
use runtime::guest::CompiledGuest;
use runtime::{Host, Packet, Script};
use std::sync::Arc;

/// A compiled guest lpctl can make for a script's configuration.
pub trait CliGuest: CompiledGuest + Sized {
    const KIND: Kind;
    /// The guest `cfg` runs in, compiled (or from the process's cache).
    fn compile(cfg: &Config) -> Result<Arc<Self>, runtime::LoadError>;
}

/// A script loaded into one instance under engine `G`, its entry bound.
pub struct ScriptEngine<G: CliGuest> {
    script: Script<G>,
    entry: usize,
}

impl<G: CliGuest> ScriptEngine<G> {
    pub fn load(cfg: &Config) -> Result<Self, LoadError> {
        Self::load_with_host(cfg, super::wasmi::CliHost::new(false))
    }

    pub fn load_with_host(cfg: &Config, host: Arc<dyn Host>) -> Result<Self, LoadError> {
        let fail = |e: runtime::LoadError| LoadError(format!("{}: {e}", cfg.name));
        cfg.limits
            .validate()
            .map_err(|e| fail(runtime::LoadError::Limit(e)))?;
        let guest = G::compile(cfg).map_err(fail)?;
        let mut script = Script::with_guest(
            guest,
            &cfg.name,
            &cfg.source,
            cfg.limits,
            cfg.on_error,
            1,
            host,
        )
        .map_err(fail)?;
        let entry = script
            .bind(&cfg.function, cfg.arg.as_deref())
            .map_err(fail)?;
        Ok(ScriptEngine { script, entry })
    }

    pub fn script(&self) -> &Script<G> {
        &self.script
    }

    /// Instances rebuilt after a trap that may have left the Lua state inconsistent.
    pub fn rebuilds(&self) -> u64 {
        self.script.stats().rebuilds
    }

    /// Message of the last error (Lua message and traceback, or the trap's fixed message).
    pub fn message(&self) -> &str {
        self.script.message(0)
    }
}

impl<G: CliGuest> Engine for ScriptEngine<G> {
    fn kind(&self) -> Kind {
        G::KIND
    }
    fn run(&mut self, pkt: &dyn Packet) -> RunResult {
        let o = self.script.run(0, self.entry, pkt);
        RunResult {
            verdict: o.verdict,
            error: o
                .error
                .map(|k| (k, error_message(k, self.script.message(0)))),
            fuel: Some(o.fuel),
        }
    }

    fn run_timers(&mut self, until_ns: u64, clock: &dyn Fn(u64)) -> Vec<TimerRun> {
        let mut runs = Vec::new();
        while let Some((index, due)) = self.script.next_timer(until_ns) {
            clock(due);
            // a packet of no bytes: what the timer sends collects here
            let pkt = runtime::OwnedPacket::default();
            let Some(r) = self.script.fire_timer(index, &pkt) else {
                continue;
            };
            runs.push(TimerRun {
                at_ns: due,
                error: r
                    .err()
                    .map(|k| (k, error_message(k, self.script.message(0)))),
                sent: pkt.sent.take().into_iter().map(|(_, b)| b).collect(),
            });
        }
        runs
    }
}
