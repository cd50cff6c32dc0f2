//! The luapkt runtime: loads the Lua-in-wasm guest, runs scripts per packet under limits.
//!
//! `no_std` + `alloc`: the same code runs in the kernel module and in `lpctl`. It sees packets
//! through [`packet::Packet`] and the outside world through [`host::Host`].
// (not for the kernel target, whose build-std adds crates of its own)
#![cfg_attr(not(any(test, target_os = "none")), warn(unused_crate_dependencies))]
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod call;
#[cfg(feature = "compiled")]
pub mod compiled_exec;
pub mod error;
pub mod exports;
pub mod guest;
pub mod headers;
pub mod host;
pub mod imports;
pub mod instance;
pub mod limits;
pub mod maps;
pub mod package;
pub mod packet;
pub mod percpu;
pub mod precheck;
pub mod rings;
pub mod script;
pub mod sends;
pub mod stats;
pub mod timers;
pub mod wasmi_exec;

#[doc(hidden)]
pub use abi as __abi;
pub use abi::verdict::{OnError, Verdict};
pub use error::{ErrorKind, LoadError};
pub use guest::GuestCache;
pub use host::{Host, LogLevel};
pub use limits::Limits;
pub use packet::{Conntrack, Meta, MetaWrite, OwnedPacket, Packet, SlicePacket};
pub use percpu::{EngineKind, PerCpuScript, RunOutcome, SpareInstance, TimerFire};
pub use rings::{ReadOutcome, Rings};
pub use script::{Outcome, Script, DEFAULT_ENTRY};
pub use sends::{SendCounters, SendError, SendKind};
pub use stats::Stats;
pub use timers::{TimerCounters, TimerDriver, Timers};
