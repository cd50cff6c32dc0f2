//! The compiled engine in lpctl: the runtime's (`runtime::compiled_exec`, the kernel's too),
//! the built-in guest translated by wasm2c and compiled into lpctl, in the runtime's script
//! container. Only the built-in guest: a package that carries another guest runs on wasmi or
//! wasmtime.

use super::script::{CliGuest, ScriptEngine};
use super::{Config, Kind};
pub use runtime::compiled_exec::TranslatedGuest;
use std::sync::Arc;

/// A script under the compiled engine, in the runtime's script container.
pub type CompiledEngine = ScriptEngine<TranslatedGuest>;

impl CliGuest for TranslatedGuest {
    const KIND: Kind = Kind::Compiled;
    fn compile(cfg: &Config) -> Result<Arc<TranslatedGuest>, runtime::LoadError> {
        TranslatedGuest::new(cfg.guest_wasm())
    }
}
