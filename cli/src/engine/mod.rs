//! The engines `lpctl run` and `lpctl bench` drive: the sandbox (wasmi, the kernel's engine),
//! wasmtime (the same guest under a JIT, for differential checks) and native Lua (the same
//! packet library compiled for the host, as a baseline).

use runtime::{ErrorKind, Limits, OnError, Packet, Verdict};
use std::fmt;

pub mod compiled;
pub mod native;
pub mod script;
pub mod wasmi;
pub mod wasmtime;

/// Which engine runs a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Wasmi,
    Wasmtime,
    /// The built-in guest translated to C (wasm2c) and compiled into lpctl.
    Compiled,
    Native,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Wasmi => "wasmi",
            Kind::Wasmtime => "wasmtime",
            Kind::Compiled => "compiled",
            Kind::Native => "native",
        })
    }
}

/// Everything needed to instantiate a script.
#[derive(Clone, Debug)]
pub struct Config {
    /// Chunk name in messages (the file name).
    pub name: String,
    pub source: Vec<u8>,
    pub function: String,
    pub arg: Option<Vec<u8>>,
    pub limits: Limits,
    pub on_error: OnError,
    /// The guest module, when it comes from a package; `None`: the built-in `lua.wasm`.
    pub guest: Option<Vec<u8>>,
}

impl Config {
    /// The guest module the script runs in.
    pub fn guest_wasm(&self) -> &[u8] {
        self.guest.as_deref().unwrap_or(guest_lua::LUA_WASM)
    }
}

/// The result of one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// The verdict applied: the policy's verdict when the call failed.
    pub verdict: Verdict,
    /// The error kind and its message (`lua: script.lua:4: boom`, `out of fuel`, ...).
    pub error: Option<(ErrorKind, String)>,
    /// Fuel used, for engines that meter it.
    pub fuel: Option<u64>,
}

/// A script instantiated in one engine.
pub trait Engine {
    fn kind(&self) -> Kind;
    fn run(&mut self, pkt: &dyn Packet) -> RunResult;
    /// Runs the timers due at or before `until_ns`, earliest first, each on the clock `clock`
    /// sets to its due time (a timer may arm more: those due by `until_ns` run too). Engines
    /// without timers run none.
    fn run_timers(&mut self, _until_ns: u64, _clock: &dyn Fn(u64)) -> Vec<TimerRun> {
        Vec::new()
    }
}

/// A timer that ran (`lp.timer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerRun {
    /// When it ran: its due time on the capture's clock.
    pub at_ns: u64,
    pub error: Option<(ErrorKind, String)>,
    /// The packets it sent, in order.
    pub sent: Vec<Vec<u8>>,
}

/// Why a script could not be instantiated: one line naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

pub fn load(kind: Kind, cfg: &Config) -> Result<Box<dyn Engine>, LoadError> {
    load_with_host(kind, cfg, wasmi::CliHost::new(false))
}

/// An engine whose instance uses `host` (its log, its clock, its maps).
pub fn load_with_host(
    kind: Kind,
    cfg: &Config,
    host: std::sync::Arc<dyn runtime::Host>,
) -> Result<Box<dyn Engine>, LoadError> {
    match kind {
        Kind::Wasmi => Ok(Box::new(wasmi::WasmiEngine::load_with_host(cfg, host)?)),
        Kind::Wasmtime => Ok(Box::new(wasmtime::WasmtimeEngine::load_with_host(
            cfg, host,
        )?)),
        Kind::Compiled => Ok(Box::new(compiled::CompiledEngine::load_with_host(
            cfg, host,
        )?)),
        Kind::Native => Ok(Box::new(native::NativeEngine::load_with_host(cfg, host)?)),
    }
}

/// The message for an error as users see it: Lua errors are prefixed with `lua: `, and only
/// the first line (the traceback follows in logs) is kept.
pub fn error_message(kind: ErrorKind, guest_message: &str) -> String {
    let first = guest_message.lines().next().unwrap_or("");
    match kind {
        ErrorKind::Lua => format!("lua: {first}"),
        ErrorKind::Return => first.to_string(),
        _ if first.is_empty() => kind.message().to_string(),
        ErrorKind::Stack if !first.contains("stack") && !first.contains("nested") => {
            kind.message().to_string()
        }
        _ => first.to_string(),
    }
}
