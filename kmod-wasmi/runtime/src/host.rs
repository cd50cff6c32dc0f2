//! What the runtime needs from whoever embeds it: a clock, a log and randomness.
//! The kernel glue implements it with ktime, a rate-limited printk and get_random_u32;
//! `lpctl` with the system clock and stderr.

/// Severity of a script's log line, least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `lp.debug`: the script's log only (hosts do not print it).
    Debug,
    /// `lp.log`, `print`.
    Info,
    /// `lp.warn`, and the script's errors.
    Warn,
}

impl LogLevel {
    /// The level's code in the guest ABI and the log records (`abi::guest::LOG_*`).
    pub const fn code(self) -> u8 {
        (match self {
            LogLevel::Debug => abi::guest::LOG_DEBUG,
            LogLevel::Info => abi::guest::LOG_INFO,
            LogLevel::Warn => abi::guest::LOG_WARN,
        }) as u8
    }
    /// The level of a code; an unknown one is info.
    pub const fn from_code(code: i32) -> LogLevel {
        match code {
            abi::guest::LOG_DEBUG => LogLevel::Debug,
            abi::guest::LOG_WARN => LogLevel::Warn,
            _ => LogLevel::Info,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
        }
    }
}

impl core::str::FromStr for LogLevel {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            _ => Err("expected debug, info or warn"),
        }
    }
}

pub trait Host: Send + Sync {
    /// Monotonic nanoseconds (`lp.now`).
    fn now_ns(&self) -> u64;
    /// Nanoseconds for timing a call: only differences read on one CPU are used, so the
    /// kernel reads its CPU's scheduler clock (a direct `rdtsc`), not ktime's clocksource
    /// (a seqcount and an indirect call, a retpoline's worth): two reads per timed call.
    fn clock_ns(&self) -> u64 {
        self.now_ns()
    }
    /// One call in this many is timed on each CPU (0 counts as 1), and its time counted that
    /// many times (a CPU's first call, which is timed, once): `run_time_ns` estimates the
    /// total, `run_time_max_ns` is the longest timed call. Two clock reads cost as much as a
    /// fifth of a trivial call (more where the scheduler clock is unstable, as under
    /// emulation); the kernel samples (module parameter `time_every`), `lpctl` times every
    /// call.
    fn time_every(&self) -> u32 {
        1
    }
    /// One line of a script's log (`lp.log`, `print`, Lua warnings, error reports).
    fn log(&self, script: &str, level: LogLevel, line: &[u8]);
    /// Seed for a new Lua state's string hashing.
    fn seed(&self) -> u32;
    /// Called between slices of a long process-context run (building an instance runs the
    /// top-level chunk in slices of `abi::limits::LOAD_SLICE_FUEL`): the kernel reschedules
    /// here. `false` stops the run (the loader got a fatal signal).
    fn pause(&self) -> bool {
        true
    }
    /// Linear memory is about to be allocated or grown to `bytes` (0: the announced
    /// allocation did not happen). The kernel makes a load's other allocations unable to fail
    /// (wasmi's compile and instantiate would abort on a failure) and keeps this one, the
    /// script-sized one, fallible: an ENOMEM, not a forced charge.
    fn linear_memory(&self, _bytes: usize) {}
    /// Bytes all of the script's maps may take (besides `maps::BYTES_MAX`): the kernel's is
    /// what the network namespace's script memory cap left when the script was loaded.
    fn map_room(&self) -> usize {
        usize::MAX
    }
    /// The script's maps (`lp.map`), shared by its instances; `None`: scripts here cannot
    /// declare maps.
    fn maps(&self) -> Option<&crate::maps::ScriptMaps> {
        None
    }
    /// The script's send rates and counters (`lp.send`); `None`: scripts here cannot send.
    fn sends(&self) -> Option<&crate::sends::SendState> {
        None
    }
    /// The script's timers (`lp.timer`); `None`: scripts here cannot arm timers.
    fn timers(&self) -> Option<&crate::timers::Timers> {
        None
    }
}
