//! Compiled guests, cached by content hash: many scripts share one compiled Lua VM.

use crate::call::Exec;
use crate::error::LoadError;
use crate::host::Host;
use crate::limits::Limits;
use crate::wasmi_exec::WasmiExec;
use alloc::sync::Arc;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};
use wasmi::{CompilationMode, Config, Engine, Module};

/// SHA-256 of the built-in guest (guest-lua's `lua.wasm`), the Lua VM lpctl packs by default.
pub const BUILTIN_GUEST_SHA256: [u8; 32] = guest_lua::LUA_WASM_SHA256;

/// Whether `wasm` is the built-in guest (a comparison of bytes: no hash of the module).
pub fn is_builtin(wasm: &[u8]) -> bool {
    wasm == guest_lua::LUA_WASM
}

/// A guest module compiled for one engine configuration.
pub struct Guest {
    pub(crate) engine: Engine,
    pub(crate) module: Module,
    hash: [u8; 32],
    recursion: u32,
    /// The guest counts its own fuel (the built-in guest, instrumented by guest-lua's fuel
    /// pass): wasmi's metering is off. Any other guest is metered by wasmi, whatever it
    /// exports: a counter the guest itself maintains is only as honest as the guest.
    pub(crate) counts_fuel: bool,
}

impl Guest {
    /// SHA-256 of the module bytes.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// Whether fuel is the guest's own count (the same in every engine) or wasmi's.
    pub fn counts_fuel(&self) -> bool {
        self.counts_fuel
    }
}

/// A guest compiled for one engine, which builds instances of it: wasmi's [`Guest`], and
/// lpctl's wasmtime guest. [`crate::Script`] keeps its instances this way.
pub trait CompiledGuest {
    type Exec: Exec;
    /// A fresh instance for script `name` under `limits` (linear memory pre-sized to the
    /// limit), before the Lua state exists ([`crate::instance::Instance::start`] makes it).
    fn instantiate(
        &self,
        name: &str,
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Result<Self::Exec, LoadError>;
    /// SHA-256 of the guest module.
    fn hash(&self) -> &[u8; 32];
}

impl CompiledGuest for Guest {
    type Exec = WasmiExec;
    fn instantiate(
        &self,
        name: &str,
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Result<WasmiExec, LoadError> {
        WasmiExec::instantiate(self, name, limits, host)
    }
    fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
}

/// Engine configuration every luapkt guest runs under; `meter`: wasmi charges fuel.
fn engine(recursion: u32, cached_stacks: usize, meter: bool) -> Engine {
    let mut config = Config::default();
    config
        .consume_fuel(meter)
        // Eager translation: no translation work (or fuel) is charged to the first packets.
        .compilation_mode(CompilationMode::Eager)
        .set_max_recursion_depth(recursion as usize);
    if cached_stacks > 0 {
        config.set_max_cached_stacks(cached_stacks);
    }
    Engine::new(&config)
}

/// Compiled guests by (content hash, recursion limit).
#[derive(Default)]
pub struct GuestCache {
    entries: Vec<Arc<Guest>>,
    /// Execution stacks each engine keeps for reuse (0: wasmi's default).
    cached_stacks: usize,
}

impl GuestCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache whose engines keep up to `n` execution stacks for reuse. Every entry into a
    /// guest (a call, and each re-entry of a protected call) takes one: a pool as large as
    /// the calls that can run at once (CPUs x nested re-entries) means calls reuse warm stacks
    /// instead of allocating, which the kernel's packet path wants.
    pub fn with_cached_stacks(n: usize) -> Self {
        GuestCache {
            entries: Vec::new(),
            cached_stacks: n,
        }
    }

    /// The compiled guest for `bytes`, compiling it on first use.
    pub fn get(&mut self, bytes: &[u8], recursion: u32) -> Result<Arc<Guest>, LoadError> {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(g) = self
            .entries
            .iter()
            .find(|g| g.hash == hash && g.recursion == recursion)
        {
            return Ok(g.clone());
        }
        // Before wasmi sees the module: it allocates per declared item, and in the kernel a
        // failed allocation is fatal. Cache hits were checked when they were compiled.
        crate::precheck::check(bytes).map_err(LoadError::Module)?;
        let counts_fuel = hash == BUILTIN_GUEST_SHA256;
        let engine = engine(recursion, self.cached_stacks, !counts_fuel);
        let module = Module::new(&engine, bytes).map_err(LoadError::Wasm)?;
        let guest = Arc::new(Guest {
            engine,
            module,
            hash,
            recursion,
            counts_fuel,
        });
        self.entries.push(guest.clone());
        Ok(guest)
    }

    /// Drops compiled guests no script uses any more.
    pub fn prune(&mut self) {
        self.entries.retain(|g| Arc::strong_count(g) > 1);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
