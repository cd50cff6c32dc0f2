//! Per-script counters, as `lpctl script show` reports them.

use crate::error::ErrorKind;
use abi::verdict::Verdict;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls (packets) run.
    pub run_cnt: u64,
    /// Nanoseconds spent in calls: where only one call in N is timed (`Host::time_every`),
    /// each timed call counts N times (the first on each CPU once), an estimate.
    pub run_time_ns: u64,
    /// Verdicts applied, errors included (resolved by the on-error policy):
    /// accept, drop, continue, break, queue.
    pub verdicts: [u64; 5],
    /// Errors by kind, in `ErrorKind::ALL` order.
    pub errors: [u64; 7],
    /// Fuel used by all calls, and by the most expensive one.
    pub fuel_total: u64,
    pub fuel_max: u64,
    /// Instances rebuilt after a trap.
    pub rebuilds: u64,
    /// The longest timed call, in nanoseconds.
    pub run_time_max_ns: u64,
    /// Lines the script logged (kept and printed), and lines over its rate (dropped).
    pub log_lines: u64,
    pub log_dropped: u64,
    /// What the script sent, and the sends refused (caps, rates) or failed.
    pub sends: crate::sends::SendCounters,
    /// Timers pending, run, failed and dropped (`lp.timer`). A timer's errors and fuel also
    /// count in `errors` and `fuel_total`, not in `run_cnt` (packets).
    pub timers: crate::timers::TimerCounters,
}

pub const VERDICT_NAMES: [&str; 5] = ["accept", "drop", "continue", "break", "queue"];

pub(crate) fn verdict_index(v: Verdict) -> usize {
    match v {
        Verdict::Accept => 0,
        Verdict::Drop => 1,
        Verdict::Continue => 2,
        Verdict::Break => 3,
        Verdict::Queue(_) => 4,
    }
}

impl Stats {
    pub(crate) fn record(
        &mut self,
        applied: Verdict,
        error: Option<ErrorKind>,
        fuel: u64,
        ns: u64,
    ) {
        self.run_cnt += 1;
        self.run_time_ns += ns;
        self.run_time_max_ns = self.run_time_max_ns.max(ns);
        self.verdicts[verdict_index(applied)] += 1;
        if let Some(k) = error {
            self.errors[k.index()] += 1;
        }
        self.fuel_total += fuel;
        self.fuel_max = self.fuel_max.max(fuel);
    }

    pub fn verdict_count(&self, v: Verdict) -> u64 {
        self.verdicts[verdict_index(v)]
    }

    pub fn error_count(&self, k: ErrorKind) -> u64 {
        self.errors[k.index()]
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }
}
