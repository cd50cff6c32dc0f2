//! The top-level call protocol every engine follows (wasmi, wasmtime in `lpctl`): how a call
//! that a Lua error unwound to the host is finished by `lp_recover`, which failures poison an
//! instance, where the error message comes from, how much fuel a call used, and how its status
//! and its packet writes become the call's result.
//!
//! Engines differ in their store, function and error types only; [`Exec`] is what the runtime
//! needs from them.

use crate::error::{ErrorKind, LoadError};
use crate::imports::{fuel_left, put_fuel, ImportCtx};
use crate::limits::{MESSAGE_FUEL, RECOVER_FUEL};
use crate::packet::ApplyError;
use abi::guest as g;
use abi::verdict::Verdict;
use alloc::string::String;

/// Longest error message copied out of the guest.
pub const MAX_MESSAGE: usize = 1024;
/// Packet bytes a host copy (`pkt_read`, `pkt_write`) moves per unit of fuel: a copy costs
/// about what the guest would pay to move the bytes itself, so fuel keeps bounding a call's
/// time.
pub const COPY_BYTES_PER_FUEL: usize = 16;

/// The guest's exports the runtime calls (`abi::guest::EXPORT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    /// `lp_ctx() -> addr`: the packet context's address.
    Ctx,
    /// `lp_init(seed) -> status`: creates the Lua state.
    Init,
    /// `lp_load(src, len, name, len) -> status`: runs the script's top-level chunk.
    Load,
    /// `lp_run(fref, aref, budget, cap) -> status`: a packet's call.
    Run,
    /// `lp_recover() -> status`: finishes a call a Lua error unwound to the host.
    Recover,
    /// `lp_errmsg() -> addr`, `lp_errlen() -> len`: the last error message.
    ErrMsg,
    ErrLen,
    /// `lp_mem_used() -> bytes`: what the Lua allocator holds.
    MemUsed,
    /// `lp_alloc(len) -> addr`, `lp_free(addr)`: the guest's heap.
    Alloc,
    Free,
    /// `lp_ref_global(name, len) -> ref`, `lp_ref_string(s, len) -> ref`: entries.
    RefGlobal,
    RefString,
    /// `lp_features() -> bits` (`abi::guest::FEATURE_*`); optional.
    Features,
}

/// What the runtime needs from one engine's instance of the guest, besides the imports' view
/// ([`ImportCtx`]): the exports, the shadow-stack pointer and the re-entry depth, and what its
/// errors mean. wasmi's is [`crate::wasmi_exec::WasmiExec`]; lpctl adds wasmtime's.
pub trait Exec: ImportCtx {
    /// Calls export `f` with `args` (as many as it takes); its result, 0 for an export without
    /// one. A run taken in slices ([`crate::imports::CallData::slices`]) gets its fuel from
    /// them also when the engine, not the guest, meters it.
    fn call(&mut self, f: Export, args: &[i32]) -> Result<i32, Self::Error>;
    /// Whether the guest has export `f` (all but [`Export::Features`] are required).
    fn has(&self, f: Export) -> bool;
    /// Whether the soft stop can work: the guest counts its fuel and exports `lp_fuel_stop`.
    fn has_soft_stop(&self) -> bool;
    /// The guest's shadow-stack pointer (`__stack_pointer`).
    fn stack_pointer(&mut self) -> i32;
    /// False when the global cannot be set.
    fn set_stack_pointer(&mut self, sp: i32) -> bool;
    /// Forgets host re-entries (`try` frames): a top-level call starts at depth 0.
    fn reset_depth(&mut self);
    /// The most nested re-entries (`try` frames) the next calls may make.
    fn set_max_depth(&mut self, max: u32);
    /// The error is the `throw` import's: a Lua error unwinding to the host.
    fn is_lua_throw(e: &Self::Error) -> bool;
    /// The error kind of any other trap.
    fn trap_kind(e: &Self::Error) -> ErrorKind;
    /// A trap outside the call protocol (setting up, binding) as a load error.
    fn load_error(e: Self::Error) -> LoadError;
}

/// Fuel left to the running call, the soft stop's held-back share included.
fn fuel<E: Exec>(e: &mut E) -> u64 {
    let soft = e.data().soft;
    fuel_left(e).saturating_add(soft)
}

/// Gives the next call `fuel`, none of it held back.
fn set_fuel<E: Exec>(e: &mut E, fuel: u64) {
    e.data_mut().soft = 0;
    put_fuel(e, fuel);
}

/// How a top-level guest call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest returned this status (a verdict code or a negative error status), possibly
    /// after a Lua error unwound to the host and `lp_recover` ran.
    Status(i32),
    /// A trap that is not a Lua error: the Lua state may be inconsistent.
    Trap(ErrorKind),
}

/// The error kind of a negative guest status.
pub fn status_kind(status: i32) -> ErrorKind {
    match status {
        g::ERR_MEMORY => ErrorKind::Memory,
        g::ERR_RETURN => ErrorKind::Return,
        g::ERR_INSTRUCTIONS => ErrorKind::Instructions,
        g::ERR_STACK => ErrorKind::Stack,
        g::ERR_FUEL => ErrorKind::Fuel,
        _ => ErrorKind::Lua,
    }
}

/// An instance's side of the protocol: its last message, whether it is poisoned, and the fuel
/// its last top-level call used.
#[derive(Debug, Default)]
pub struct CallState {
    /// Message of the last error (Lua message and traceback, or the trap's fixed message).
    pub message: String,
    /// A trap may have left the Lua state inconsistent: the owner rebuilds the instance.
    pub poisoned: bool,
    /// Fuel the last top-level call used, its recovery included.
    pub fuel_used: u64,
}

impl CallState {
    /// A call state whose message never allocates on the packet path: `cap` bytes are
    /// reserved up front (a message is at most [`MAX_MESSAGE`] guest bytes, each of which
    /// becomes at most 3 bytes of UTF-8).
    pub fn with_capacity(cap: usize) -> Self {
        CallState {
            message: String::with_capacity(cap),
            ..CallState::default()
        }
    }

    /// Runs a top-level guest call `f`; a Lua error that unwinds to here is finished by
    /// `lp_recover`. Fills `message` on errors.
    #[inline]
    pub fn call_top<G: Exec>(
        &mut self,
        g: &mut G,
        f: impl FnOnce(&mut G) -> Result<i32, G::Error>,
    ) -> Outcome {
        g.reset_depth();
        let budget = fuel(g);
        self.fuel_used = 0;
        let saved = g.stack_pointer();
        let result = f(g);
        self.fuel_used = budget.saturating_sub(fuel(g));
        let status = match result {
            Ok(st) => st,
            Err(e) if G::is_lua_throw(&e) => {
                if !g.set_stack_pointer(saved) {
                    return self.poison(g, ErrorKind::Trap);
                }
                // Recovery runs __close handlers: give it a fresh, bounded budget.
                let given = fuel(g).max(RECOVER_FUEL);
                set_fuel(g, given);
                g.reset_depth();
                let recovered = g.call(Export::Recover, &[]);
                self.fuel_used += given.saturating_sub(fuel(g));
                match recovered {
                    Ok(st) => st,
                    Err(e) => return self.poison(g, G::trap_kind(&e)),
                }
            }
            Err(e) => return self.poison(g, G::trap_kind(&e)),
        };
        if status < 0 {
            self.fetch_message(g);
        }
        Outcome::Status(status)
    }

    fn poison<G: Exec>(&mut self, g: &mut G, kind: ErrorKind) -> Outcome {
        // With --stack-first the shadow stack sits at the bottom of memory: an overflow
        // wraps the stack pointer and the access traps out of bounds.
        let kind = if kind == ErrorKind::Trap && g.stack_pointer() < 1024 {
            ErrorKind::Stack
        } else {
            kind
        };
        self.poisoned = true;
        self.set_message(kind.message());
        Outcome::Trap(kind)
    }

    fn fetch_message<G: Exec>(&mut self, g: &mut G) {
        self.message.clear();
        set_fuel(g, MESSAGE_FUEL);
        let (Ok(ptr), Ok(len)) = (g.call(Export::ErrMsg, &[]), g.call(Export::ErrLen, &[])) else {
            return;
        };
        let (start, len) = (ptr as u32 as usize, (len.max(0) as usize).min(MAX_MESSAGE));
        if let Some(bytes) = g.memory().get(start..start.saturating_add(len)) {
            // as from_utf8_lossy, but into the reserved buffer: no allocation per error
            for chunk in bytes.utf8_chunks() {
                push_bounded(&mut self.message, chunk.valid());
                if !chunk.invalid().is_empty() {
                    push_bounded(&mut self.message, "\u{FFFD}");
                }
            }
        }
    }

    pub fn set_message(&mut self, m: &str) {
        self.message.clear();
        push_bounded(&mut self.message, m);
    }

    /// The result of a packet call (`lp_run`) that ended with `out`, whose writes were applied
    /// with `applied`, under a fuel limit of `fuel`: the verdict or the error kind, and the fuel
    /// used.
    #[inline]
    pub fn finish_run(
        &mut self,
        out: Outcome,
        applied: Result<usize, ApplyError>,
        fuel: u64,
    ) -> (Result<Verdict, ErrorKind>, u64) {
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
        if let (Ok(_), Err(e)) = (&r, applied) {
            self.set_message(match e {
                ApplyError::BadRange => "the guest reported writes outside its window",
                ApplyError::Refused => "the packet could not be written",
            });
            r = Err(apply_error_kind(e));
        }
        // wasmi charges fuel per region up front: a call that ran out used all of it
        let used = if r == Err(ErrorKind::Fuel) {
            fuel
        } else {
            self.fuel_used
        };
        (r, used)
    }
}

/// Appends what fits in the string's reserved capacity (whole characters): never allocates
/// once the capacity is reserved; a string without capacity grows as usual.
fn push_bounded(s: &mut String, add: &str) {
    if s.capacity() == 0 {
        s.push_str(add);
        return;
    }
    let room = s.capacity() - s.len();
    let mut n = add.len().min(room);
    while !add.is_char_boundary(n) {
        n -= 1;
    }
    s.push_str(&add[..n]);
}

/// The error a failed write-back counts as.
pub fn apply_error_kind(e: ApplyError) -> ErrorKind {
    match e {
        ApplyError::BadRange => ErrorKind::Trap,
        ApplyError::Refused => ErrorKind::Memory,
    }
}
