//! What bounds a script: every limit, where it is defined, validated and armed.
//!
//! | limit | defined | validated | armed | enforced by |
//! |---|---|---|---|---|
//! | `fuel` per call | `abi::limits` (default, maximum, the per-call ceiling) | [`Limits::validate`] | [`Limits::arm_call`]: refilled before each call, a share held back for the soft stop | the guest's own counter (a trap below zero; the soft stop raises "out of fuel" first) |
//! | fuel of the runtime's own steps | here: [`SETUP_FUEL`], [`BIND_FUEL`], [`RECOVER_FUEL`], [`MESSAGE_FUEL`] | constants | by the step that spends it (instance setup, bind, recovery, message) | the guest's counter |
//! | `load_fuel` | `abi::limits` | [`Limits::validate`] | [`Limits::load_slices`]: the top-level chunk in slices of [`SLICE_FUEL`] | the guest's counter; the host may reschedule or stop between slices |
//! | `instructions` | `abi::limits` | [`Limits::validate`] | [`Limits::arm_call`] → `lp_run`'s argument | the guest's count hook (`lp_guest.c`) |
//! | `pcall_depth` | `abi::limits` | [`Limits::validate`] | [`Limits::arm_call`] → the engine's re-entry cap and `lp_run`'s argument | the `try` import (host) and the guest's nesting cap |
//! | `recursion` | `abi::limits` | [`Limits::validate`] | at instantiation (wasmi's engine config, `guest.rs`; `lp_w2c_limits`, `compiled_exec.rs`) | the engine: a trap past the depth |
//! | `memory` | `abi::limits` | [`Limits::validate`] | at instantiation: linear memory allocated in full, never grown | the engine's bounds checks |
//! | `send-packets`, `send-bytes` per call | `abi::limits` | [`Limits::validate`] | [`Limits::arm_call`] → the call's [`SendBudget`] | the `send` import (`imports::send`) |
//! | `send-rate`, `send-byte-rate` per second | `abi::limits` | [`Limits::validate`] | [`Limits::arm_call`] → the call's [`SendBudget`] | the script's token buckets (`sends::SendState`), all CPUs together |
//! | module shape (functions, tables, data) | `abi::module_caps` | `precheck.rs` | before compiling a package's guest | — |
//!
//! Per network namespace (scripts, their memory) the kernel glue checks `abi::module_caps`'
//! parameters (`luapkt_genl.c`); `docs/architecture.md` has the whole map.

use crate::sends::SendBudget;
use abi::limits::*;
use core::fmt;

/// Fuel for one setup step of an instance (instantiation, the guest's allocator, looking a
/// function up): far more than the built-in guest needs, and bounded whatever a guest does.
pub const SETUP_FUEL: u64 = 10_000_000;
/// Fuel for binding an entry (copy its name in, look it up, keep a reference): it may run on
/// the packet path (an entry bound on another CPU), so it stays under the per-call ceiling.
pub const BIND_FUEL: u64 = abi::limits::BIND_FUEL;
/// The top-level chunk runs in slices of this much fuel; between slices the host may
/// reschedule and abort (`Host::pause`).
pub const SLICE_FUEL: u64 = abi::limits::LOAD_SLICE_FUEL;
/// Fuel for finishing a call whose Lua error unwound to the host (it runs `__close` handlers):
/// part of the per-call ceiling (`abi::limits::CALL_FUEL_CEILING`).
pub const RECOVER_FUEL: u64 = abi::limits::RECOVER_FUEL;
/// Fuel for fetching an error message from the guest.
pub const MESSAGE_FUEL: u64 = abi::limits::MESSAGE_FUEL;
/// The most fuel of a packet's call held back for the soft stop: what the interpreter has to
/// reach its next back edge or call and run the message handler of the "out of fuel" error
/// (measured: between 10,000 and 15,000 on a fresh instance, the collector stopped). A call
/// burning it inside one C function traps instead.
pub const SOFT_STOP_FUEL: u64 = 20_000;

/// The soft stop's share of a call's `fuel`: a quarter, at most [`SOFT_STOP_FUEL`].
pub fn soft_stop_fuel(fuel: u64) -> u64 {
    (fuel / 4).min(SOFT_STOP_FUEL)
}

/// How a packet call's limits reach the engine and the guest ([`Limits::arm_call`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallArming {
    /// Fuel the call starts with: `fuel` less the soft stop's share.
    pub fuel: u64,
    /// Fuel held back, given when the guest first runs out so that it can raise "out of fuel".
    pub soft: u64,
    /// Host re-entries (`try` frames) the call may nest.
    pub reentries: u32,
    /// `lp_run`'s arguments: the Lua instruction budget (0: none) and the nesting cap.
    pub instructions: i32,
    pub pcall_cap: i32,
    /// What the call may send, and the script's rates.
    pub send: SendBudget,
}

/// What one script may consume. Set at load, changeable live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel per call, refilled before every packet.
    pub fuel: u64,
    /// Lua VM instructions per call (0: no budget; fuel still bounds the call).
    pub instructions: u32,
    /// Linear memory of one instance, in bytes.
    pub memory: u64,
    /// wasm call-frame depth within one entry into the guest.
    pub recursion: u32,
    /// Nested protected calls (`pcall`, `coroutine.resume`, ...): each re-enters the host.
    pub pcall_depth: u32,
    /// Fuel for building one instance (Lua setup and the top-level chunk), process context.
    pub load_fuel: u64,
    /// Packets and bytes one call may send (`lp.send`, `lp.reply`).
    pub send_packets: u32,
    pub send_bytes: u32,
    /// Packets and bytes the script may send per second, all CPUs together.
    pub send_rate: u32,
    pub send_byte_rate: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            instructions: DEFAULT_INSTRUCTIONS,
            memory: DEFAULT_MEMORY,
            recursion: DEFAULT_RECURSION,
            pcall_depth: DEFAULT_PCALL_DEPTH,
            load_fuel: DEFAULT_LOAD_FUEL,
            send_packets: DEFAULT_SEND_PACKETS,
            send_bytes: DEFAULT_SEND_BYTES,
            send_rate: DEFAULT_SEND_RATE,
            send_byte_rate: DEFAULT_SEND_BYTE_RATE,
        }
    }
}

/// A limit outside its accepted range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitError {
    pub field: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is out of range ({}..={})",
            self.field, self.value, self.min, self.max
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LimitError {}

fn check(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), LimitError> {
    if value < min || value > max {
        return Err(LimitError {
            field,
            value,
            min,
            max,
        });
    }
    Ok(())
}

impl Limits {
    /// What a packet call is given; `soft_stop`: the engine can stop softly (every engine
    /// running a guest that counts its own fuel).
    pub fn arm_call(&self, soft_stop: bool) -> CallArming {
        let soft = if soft_stop {
            soft_stop_fuel(self.fuel)
        } else {
            0
        };
        CallArming {
            fuel: self.fuel - soft,
            soft,
            reentries: self.pcall_depth,
            // validated: within i32 (MAX_INSTRUCTIONS, MAX_PCALL_DEPTH)
            instructions: self.instructions as i32,
            pcall_cap: self.pcall_depth as i32,
            send: SendBudget {
                packets: self.send_packets,
                bytes: self.send_bytes,
                rate: self.send_rate,
                byte_rate: self.send_byte_rate,
            },
        }
    }

    /// The load budget as its first slice and the rest, given slice by slice.
    pub fn load_slices(&self) -> (u64, u64) {
        let first = self.load_fuel.min(SLICE_FUEL);
        (first, self.load_fuel - first)
    }

    /// Checks every field against its range (abi::limits).
    pub fn validate(&self) -> Result<(), LimitError> {
        check("fuel", self.fuel, 1, MAX_FUEL)?;
        check(
            "instructions",
            self.instructions.into(),
            0,
            MAX_INSTRUCTIONS.into(),
        )?;
        check("memory", self.memory, MIN_MEMORY, MAX_MEMORY)?;
        check("recursion", self.recursion.into(), 16, MAX_RECURSION.into())?;
        check(
            "pcall-depth",
            self.pcall_depth.into(),
            1,
            MAX_PCALL_DEPTH.into(),
        )?;
        check("load-fuel", self.load_fuel, MIN_LOAD_FUEL, MAX_LOAD_FUEL)?;
        let u = |v: u32| u64::from(v);
        check("send-packets", u(self.send_packets), 0, u(MAX_SEND_PACKETS))?;
        check("send-bytes", u(self.send_bytes), 0, u(MAX_SEND_BYTES))?;
        check("send-rate", u(self.send_rate), 0, u(MAX_SEND_RATE))?;
        check(
            "send-byte-rate",
            u(self.send_byte_rate),
            0,
            u(MAX_SEND_BYTE_RATE),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_are_enforced() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let zero_fuel = Limits {
            fuel: 0,
            ..Limits::default()
        };
        assert_eq!(zero_fuel.validate().unwrap_err().field, "fuel");
        let huge_mem = Limits {
            memory: 1 << 40,
            ..Limits::default()
        };
        assert_eq!(huge_mem.validate().unwrap_err().field, "memory");
        let deep = Limits {
            pcall_depth: 1000,
            ..Limits::default()
        };
        assert_eq!(deep.validate().unwrap_err().field, "pcall-depth");
    }

    #[test]
    fn a_call_is_armed_with_its_limits() {
        let l = Limits {
            fuel: 100_000,
            instructions: 5_000,
            pcall_depth: 4,
            ..Limits::default()
        };
        let a = l.arm_call(true);
        assert_eq!((a.fuel, a.soft), (80_000, SOFT_STOP_FUEL));
        assert_eq!((a.reentries, a.instructions, a.pcall_cap), (4, 5_000, 4));
        assert_eq!(l.arm_call(false).fuel, 100_000);
        let small = Limits { fuel: 1_000, ..l };
        assert_eq!(
            small.arm_call(true).soft,
            250,
            "a quarter of a small budget"
        );
        let load = Limits {
            load_fuel: 5_000_000,
            ..l
        };
        assert_eq!(load.load_slices(), (SLICE_FUEL, 5_000_000 - SLICE_FUEL));
    }
}
