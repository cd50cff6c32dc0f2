//! The sandbox: the runtime that the kernel module links, run in userspace.

use super::{error_message, Config, Engine, Kind, LoadError, RunResult};
use runtime::{GuestCache, Host, LogLevel, Packet, Script};
use std::sync::Arc;
use std::time::Instant;

/// `lpctl`'s host: the process clock, logs on stderr.
pub struct CliHost {
    start: Instant,
    /// Print script log lines (`lp.log`, `print`, error reports) to stderr.
    pub verbose: bool,
}

impl CliHost {
    pub fn new(verbose: bool) -> Arc<CliHost> {
        Arc::new(CliHost {
            start: Instant::now(),
            verbose,
        })
    }
}

impl Host for CliHost {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn log(&self, script: &str, level: LogLevel, line: &[u8]) {
        if self.verbose {
            let tag = if level == LogLevel::Warn {
                "warn"
            } else {
                "log"
            };
            eprintln!("{tag}: {script}: {}", String::from_utf8_lossy(line));
        }
    }
    fn seed(&self) -> u32 {
        // Offline runs are reproducible: the same script and capture give the same results on
        // every engine (the kernel seeds each instance at random against hash flooding).
        0x9e37_79b9
    }
}

pub struct WasmiEngine {
    script: Script,
    entry: usize,
}

impl WasmiEngine {
    pub fn load(cfg: &Config) -> Result<Self, LoadError> {
        Self::load_with_host(cfg, CliHost::new(false))
    }

    pub fn load_with_host(cfg: &Config, host: Arc<dyn Host>) -> Result<Self, LoadError> {
        let mut cache = GuestCache::new();
        let mut script = Script::load(
            &mut cache,
            cfg.guest_wasm(),
            &cfg.name,
            &cfg.source,
            cfg.limits,
            cfg.on_error,
            1,
            host,
        )
        .map_err(|e| LoadError(format!("{}: {e}", cfg.name)))?;
        let entry = script
            .bind(&cfg.function, cfg.arg.as_deref())
            .map_err(|e| LoadError(format!("{}: {e}", cfg.name)))?;
        Ok(WasmiEngine { script, entry })
    }

    pub fn script(&self) -> &Script {
        &self.script
    }
}

impl Engine for WasmiEngine {
    fn kind(&self) -> Kind {
        Kind::Wasmi
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
}
