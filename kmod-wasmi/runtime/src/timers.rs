//! Deferred work (`lp.timer(ms, fn)`): a function a call hands over to run once, later, in the
//! instance that armed it, as a call of its own (its own fuel; it may send packets, use maps,
//! log and arm timers; it has no packet in hand).
//!
//! A script's timers are a fixed pool of [`TIMERS_MAX`] entries shared by its instances, made
//! when it loads: arming takes a free entry (or fails: too many), never allocates, and is
//! rate-limited per script ([`TIMER_RATE`] a second, all CPUs together), so a script's timers
//! cost at most that many bounded calls a second. The embedder's [`TimerDriver`] wakes an
//! entry when it is due (the kernel: a delayed work item per entry, on the CPU that armed it;
//! `lpctl run`: the capture's clock, [`Timers::next_due`]) and the script container runs it
//! (`PerCpuScript::fire_timer`, `Script::fire_timer`).
//!
//! An entry's states, each change made by one party at a time:
//!
//! | from | to | by |
//! |---|---|---|
//! | free | reserved → armed | [`Timers::arm`], in a call of the arming instance |
//! | armed | firing → free | the container's fire, on the entry's CPU |
//! | armed | cancelled → free | [`Timers::cancel`] (free at once when the driver stopped the wake-up, else at the wake-up, which then runs nothing) |
//! | armed | free | a fire that finds the entry's instance gone (rebuilt after a trap) or the pool closed |
//!
//! An entry becomes free only once its wake-up has run or was stopped, so a wake-up never
//! meets an entry armed again for somebody else before its time. A replaced or unloaded
//! script's pool is [closed](Timers::close): nothing more is armed or run, and the embedder
//! stops its wake-ups before it frees the script.

use crate::sends::Bucket;
use abi::guest::timer as t;
pub use abi::limits::{TIMERS_MAX, TIMER_DELAY_MAX_MS, TIMER_RATE};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// How an embedder wakes a script's timers.
pub trait TimerDriver: Send + Sync {
    /// Wakes entry `index` `delay_ms` from now on CPU `cpu` (where its instance runs); false
    /// when it cannot (the pool is being closed).
    fn arm(&self, index: usize, cpu: usize, delay_ms: u32) -> bool;
    /// Stops entry `index`'s wake-up: true when it will not run (it had not started).
    fn cancel(&self, index: usize) -> bool;
}

/// A driver for embedders that run due timers themselves ([`Timers::next_due`]), as
/// `lpctl run` does on a capture's clock.
pub struct Polled;

impl TimerDriver for Polled {
    fn arm(&self, _: usize, _: usize, _: u32) -> bool {
        true
    }
    fn cancel(&self, _: usize) -> bool {
        true
    }
}

/// The instance a call runs in, as timers know it: the CPU (slot) it serves and its identity
/// ([`next_instance_id`]; a rebuilt instance has a new one, and timers armed by the old one
/// are dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerSlot {
    pub cpu: u32,
    pub instance: u64,
}

static INSTANCE_IDS: AtomicU64 = AtomicU64::new(1);

/// A fresh instance identity (never 0).
pub fn next_instance_id() -> u64 {
    INSTANCE_IDS.fetch_add(1, Ordering::Relaxed)
}

/// Why a timer was not armed or cancelled; each a negative `abi::guest::timer::E_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    TooMany,
    Rate,
    Range,
    Unavailable,
    NotPending,
}

impl TimerError {
    pub fn code(self) -> i32 {
        match self {
            TimerError::TooMany => t::E_TOO_MANY,
            TimerError::Rate => t::E_RATE,
            TimerError::Range => t::E_RANGE,
            TimerError::Unavailable => t::E_UNAVAILABLE,
            TimerError::NotPending => t::E_NOT_PENDING,
        }
    }
}

const FREE: u8 = 0;
const RESERVED: u8 = 1;
const ARMED: u8 = 2;
const CANCELLED: u8 = 3;
const FIRING: u8 = 4;

#[derive(Default)]
struct Entry {
    state: AtomicU8,
    cpu: AtomicU32,
    instance: AtomicU64,
    gref: AtomicI32,
    due_ns: AtomicU64,
}

/// What a wake-up of an entry should do ([`Timers::take`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// Run the guest's function `gref` in the instance `slot`, then [`Timers::done`].
    Run { slot: TimerSlot, gref: i32 },
    /// The entry belongs to CPU `cpu`: wake it there (or [`Timers::drop_entry`] when that
    /// CPU is gone).
    Elsewhere(u32),
    /// Nothing to run (cancelled, closed, or not armed).
    Nothing,
}

/// A script's timer counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerCounters {
    pub pending: u64,
    pub runs: u64,
    pub errors: u64,
    pub dropped: u64,
}

/// The arming rate and the driver, under one lock (arms and cancels are rare).
struct Control {
    bucket: Bucket,
    driver: Option<Box<dyn TimerDriver>>,
}

/// A script's timers: the entries, the arming rate, the driver, the counters.
pub struct Timers {
    entries: [Entry; TIMERS_MAX],
    control: spin::Mutex<Control>,
    closed: AtomicBool,
    runs: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
}

impl Default for Timers {
    /// Timers without a driver: arming is unavailable until [`Timers::set_driver`].
    fn default() -> Timers {
        Timers {
            entries: core::array::from_fn(|_| Entry::default()),
            control: spin::Mutex::new(Control {
                bucket: Bucket::default(),
                driver: None,
            }),
            closed: AtomicBool::new(false),
            runs: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Timers {
    pub fn new(driver: Box<dyn TimerDriver>) -> Timers {
        let t = Timers::default();
        t.set_driver(driver);
        t
    }

    /// Gives the pool its driver (the embedder's, once the script it belongs to exists).
    pub fn set_driver(&self, driver: Box<dyn TimerDriver>) {
        self.control.lock().driver = Some(driver);
    }

    /// Arms a timer for the guest's function `gref` of instance `slot`, `delay_ms` after
    /// `now_ns`. Refusals other than a bad delay are counted as dropped.
    pub fn arm(
        &self,
        slot: TimerSlot,
        gref: i32,
        delay_ms: i32,
        now_ns: u64,
    ) -> Result<(), TimerError> {
        let delay = u32::try_from(delay_ms).map_err(|_| TimerError::Range)?;
        if delay > TIMER_DELAY_MAX_MS {
            return Err(TimerError::Range);
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(TimerError::Unavailable);
        }
        let r = self.arm_entry(slot, gref, delay, now_ns);
        if matches!(r, Err(TimerError::TooMany | TimerError::Rate)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn arm_entry(
        &self,
        slot: TimerSlot,
        gref: i32,
        delay: u32,
        now_ns: u64,
    ) -> Result<(), TimerError> {
        let (index, e) = self
            .entries
            .iter()
            .enumerate()
            .find(|(_, e)| {
                e.state
                    .compare_exchange(FREE, RESERVED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or(TimerError::TooMany)?;
        let mut guard = self.control.lock();
        let c = &mut *guard;
        let Some(driver) = c.driver.as_ref() else {
            e.state.store(FREE, Ordering::Release);
            return Err(TimerError::Unavailable);
        };
        c.bucket.fill(now_ns, TIMER_RATE);
        if c.bucket.tokens < 1 {
            e.state.store(FREE, Ordering::Release);
            return Err(TimerError::Rate);
        }
        e.cpu.store(slot.cpu, Ordering::Relaxed);
        e.instance.store(slot.instance, Ordering::Relaxed);
        e.gref.store(gref, Ordering::Relaxed);
        e.due_ns.store(
            now_ns.saturating_add(u64::from(delay) * 1_000_000),
            Ordering::Relaxed,
        );
        e.state.store(ARMED, Ordering::Release);
        if !driver.arm(index, slot.cpu as usize, delay) {
            e.state.store(FREE, Ordering::Release);
            return Err(TimerError::Unavailable);
        }
        c.bucket.tokens -= 1;
        Ok(())
    }

    /// Cancels the pending timer of the guest's function `gref` in instance `slot`.
    pub fn cancel(&self, slot: TimerSlot, gref: i32) -> Result<(), TimerError> {
        for (index, e) in self.entries.iter().enumerate() {
            if e.state.load(Ordering::Acquire) != ARMED
                || e.instance.load(Ordering::Relaxed) != slot.instance
                || e.gref.load(Ordering::Relaxed) != gref
            {
                continue;
            }
            if e.state
                .compare_exchange(ARMED, CANCELLED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                let stopped = self
                    .control
                    .lock()
                    .driver
                    .as_ref()
                    .is_none_or(|d| d.cancel(index));
                if stopped {
                    e.state.store(FREE, Ordering::Release);
                }
                return Ok(());
            }
        }
        Err(TimerError::NotPending)
    }

    /// A wake-up of entry `index` on CPU `cpu`: what to do. A `Run` makes the entry firing
    /// until [`done`](Self::done).
    pub fn take(&self, index: usize, cpu: usize) -> Take {
        let Some(e) = self.entries.get(index) else {
            return Take::Nothing;
        };
        match e.state.load(Ordering::Acquire) {
            CANCELLED => {
                e.state.store(FREE, Ordering::Release);
                Take::Nothing
            }
            ARMED if self.closed.load(Ordering::Acquire) => {
                e.state.store(FREE, Ordering::Release);
                Take::Nothing
            }
            ARMED => {
                let owner = e.cpu.load(Ordering::Relaxed);
                if owner as usize != cpu {
                    return Take::Elsewhere(owner);
                }
                if e.state
                    .compare_exchange(ARMED, FIRING, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    // cancelled meanwhile (from another CPU's view of the entry)
                    return self.take(index, cpu);
                }
                Take::Run {
                    slot: TimerSlot {
                        cpu: owner,
                        instance: e.instance.load(Ordering::Relaxed),
                    },
                    gref: e.gref.load(Ordering::Relaxed),
                }
            }
            _ => Take::Nothing,
        }
    }

    /// Ends a `Run` of entry `index`: `Some(failed)` when it ran, `None` when its instance was
    /// gone (dropped).
    pub fn done(&self, index: usize, ran: Option<bool>) {
        let Some(e) = self.entries.get(index) else {
            return;
        };
        match ran {
            Some(failed) => {
                self.runs.fetch_add(1, Ordering::Relaxed);
                if failed {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        e.state.store(FREE, Ordering::Release);
    }

    /// Frees an armed entry whose CPU is gone: counted as dropped.
    pub fn drop_entry(&self, index: usize) {
        if let Some(e) = self.entries.get(index) {
            let was = e.state.swap(FREE, Ordering::AcqRel);
            if was == ARMED {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Refuses every arm from now on and makes wake-ups run nothing (a replaced or unloaded
    /// script): the embedder then stops its wake-ups.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The armed entry due first, at or before `until_ns` (ties: the lower index): the entry
    /// and its due time. For embedders with the [`Polled`] driver.
    pub fn next_due(&self, until_ns: u64) -> Option<(usize, u64)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.state.load(Ordering::Acquire) == ARMED)
            .map(|(i, e)| (i, e.due_ns.load(Ordering::Relaxed)))
            .filter(|&(_, due)| due <= until_ns)
            .min_by_key(|&(i, due)| (due, i))
    }

    pub fn counters(&self) -> TimerCounters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TimerCounters {
            pending: self
                .entries
                .iter()
                .filter(|e| e.state.load(Ordering::Relaxed) == ARMED)
                .count() as u64,
            runs: r(&self.runs),
            errors: r(&self.errors),
            dropped: r(&self.dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::vec::Vec;

    /// A driver that records what it was asked and says whether a cancel stops the wake-up.
    #[derive(Default)]
    struct Recorder {
        armed: spin::Mutex<Vec<(usize, usize, u32)>>,
        stops: AtomicBool,
    }

    impl TimerDriver for Arc<Recorder> {
        fn arm(&self, index: usize, cpu: usize, delay_ms: u32) -> bool {
            self.armed.lock().push((index, cpu, delay_ms));
            true
        }
        fn cancel(&self, _: usize) -> bool {
            self.stops.load(Ordering::Relaxed)
        }
    }

    const A: TimerSlot = TimerSlot {
        cpu: 1,
        instance: 7,
    };

    #[test]
    fn an_armed_timer_runs_once_on_its_cpu() {
        let rec = Arc::new(Recorder::default());
        let ts = Timers::new(Box::new(rec.clone()));
        assert_eq!(ts.arm(A, 5, 250, 1_000), Ok(()));
        assert_eq!(*rec.armed.lock(), [(0, 1, 250)]);
        assert_eq!(ts.next_due(u64::MAX), Some((0, 250_001_000)));
        assert_eq!(ts.next_due(250_000_999), None);
        assert_eq!(ts.take(0, 0), Take::Elsewhere(1));
        assert_eq!(ts.take(0, 1), Take::Run { slot: A, gref: 5 });
        assert_eq!(ts.take(0, 1), Take::Nothing, "firing: not twice");
        assert_eq!(ts.counters().pending, 0);
        ts.done(0, Some(true));
        let c = ts.counters();
        assert_eq!((c.runs, c.errors, c.dropped), (1, 1, 0));
        assert_eq!(ts.take(0, 1), Take::Nothing, "free");
    }

    #[test]
    fn the_pool_and_the_rate_bound_timers() {
        let ts = Timers::new(Box::new(Polled));
        for i in 0..TIMERS_MAX {
            assert_eq!(ts.arm(A, i as i32, 10, 0), Ok(()));
        }
        assert_eq!(ts.arm(A, 99, 10, 0), Err(TimerError::TooMany));
        assert_eq!(ts.counters().pending, TIMERS_MAX as u64);
        assert_eq!(ts.arm(A, 1, -1, 0), Err(TimerError::Range));
        assert_eq!(
            ts.arm(A, 1, TIMER_DELAY_MAX_MS as i32 + 1, 0),
            Err(TimerError::Range)
        );
        for i in 0..TIMERS_MAX {
            assert_eq!(ts.cancel(A, i as i32), Ok(()));
        }
        assert_eq!(ts.counters().pending, 0);
        // the bucket started with one second's worth (100): 64 taken, 36 left
        let mut ok = 0;
        for i in 0..60 {
            if ts.arm(A, i, 10, 0).is_ok() {
                ok += 1;
                ts.cancel(A, i).unwrap();
            }
        }
        assert_eq!(ok, TIMER_RATE as usize - TIMERS_MAX);
        assert_eq!(ts.counters().dropped, 1 + 60 - ok as u64);
        // a tenth of a second later: ten more
        assert_eq!(ts.arm(A, 1, 10, 100_000_000), Ok(()));
    }

    #[test]
    fn a_cancel_the_driver_cannot_stop_is_finished_by_the_wake_up() {
        let rec = Arc::new(Recorder::default());
        let ts = Timers::new(Box::new(rec.clone()));
        ts.arm(A, 3, 0, 0).unwrap();
        let other = TimerSlot { instance: 8, ..A };
        assert_eq!(ts.cancel(other, 3), Err(TimerError::NotPending));
        assert_eq!(ts.cancel(A, 4), Err(TimerError::NotPending));
        assert_eq!(ts.cancel(A, 3), Ok(()));
        assert_eq!(ts.cancel(A, 3), Err(TimerError::NotPending));
        // the wake-up was not stopped: the entry stays taken until it comes
        ts.arm(A, 4, 0, 0).unwrap();
        assert_eq!(rec.armed.lock()[1].0, 1, "entry 0 still taken");
        assert_eq!(ts.take(0, 1), Take::Nothing);
        ts.arm(A, 5, 0, 0).unwrap();
        assert_eq!(rec.armed.lock()[2].0, 0, "entry 0 free again");
        rec.stops.store(true, Ordering::Relaxed);
        assert_eq!(ts.cancel(A, 5), Ok(()));
        assert_eq!(ts.take(0, 1), Take::Nothing);
    }

    #[test]
    fn a_closed_pool_arms_and_runs_nothing() {
        let ts = Timers::new(Box::new(Polled));
        ts.arm(A, 3, 0, 0).unwrap();
        ts.close();
        assert_eq!(ts.arm(A, 4, 0, 0), Err(TimerError::Unavailable));
        assert_eq!(ts.take(0, 1), Take::Nothing);
        assert_eq!(ts.counters(), TimerCounters::default());
    }

    #[test]
    fn a_timer_whose_cpu_is_gone_is_dropped() {
        let ts = Timers::new(Box::new(Polled));
        ts.arm(A, 3, 0, 0).unwrap();
        ts.drop_entry(0);
        ts.drop_entry(0);
        assert_eq!(ts.counters().dropped, 1);
        assert_eq!(ts.counters().pending, 0);
    }
}
