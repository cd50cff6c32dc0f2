//! `spin`'s `Mutex` and `RwLock` for the kernel build of luapkt.
//!
//! wasmi keeps spin locks inside its `Engine` (the pool of value stacks, the function-type
//! registry), and the runtime guards its entry tables with one. The kernel runs guest code both
//! in process context (load, bind, rebuild) and in softirq context (packets), on the same
//! engine. With crates.io `spin`, a softirq that interrupts a process-context holder on the
//! same CPU spins forever. These locks disable bottom halves for as long as they are held
//! (`lp_bh_disable`/`lp_bh_enable`, C shims over `local_bh_disable`/`local_bh_enable`), like
//! `spin_lock_bh`: a holder cannot be interrupted by a softirq, and holders on other CPUs
//! always make progress. Nesting is fine: bottom-half disabling counts.
//!
//! Allocations made while a lock is held see a non-zero preempt count and get GFP_ATOMIC
//! (kmod-wasmi/kernel/lp_shim.c), which may fail: a process-context holder that must not fail
//! allocates before it locks, or uses [`mutex::SpinMutex`] for a lock no softirq takes.
//! Outside the kernel target the hooks do nothing.
#![no_std]

use core::cell::UnsafeCell;
use core::fmt;
use core::hint::spin_loop;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[cfg(target_os = "none")]
mod bh {
    extern "C" {
        fn lp_bh_disable();
        fn lp_bh_enable();
    }
    #[inline]
    pub fn disable() {
        // SAFETY: plain C functions without arguments; callable in any context the locks are
        // used in (process and softirq; never hard-irq).
        unsafe { lp_bh_disable() }
    }
    #[inline]
    pub fn enable() {
        // SAFETY: pairs with a `disable` on the same CPU (a guard is not Send).
        unsafe { lp_bh_enable() }
    }
}

#[cfg(not(target_os = "none"))]
mod bh {
    #[inline]
    pub fn disable() {}
    #[inline]
    pub fn enable() {}
}

/// A mutual-exclusion spin lock that disables bottom halves while held (`BH`, the default;
/// see [`mutex::SpinMutex`] for the exception).
pub struct Mutex<T: ?Sized, const BH: bool = true> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `T` to one holder at a time.
unsafe impl<T: ?Sized + Send, const BH: bool> Send for Mutex<T, BH> {}
// SAFETY: as above; `T: Send` is enough because only one thread sees `&mut T` at a time.
unsafe impl<T: ?Sized + Send, const BH: bool> Sync for Mutex<T, BH> {}

/// Holds a [`Mutex`]; releases it and re-enables bottom halves on drop. Not `Send`: bottom
/// halves must be re-enabled on the CPU that disabled them.
pub struct MutexGuard<'a, T: ?Sized, const BH: bool = true> {
    lock: &'a Mutex<T, BH>,
    _not_send: core::marker::PhantomData<*mut ()>,
}

// SAFETY: a shared guard only gives `&T`.
unsafe impl<T: ?Sized + Sync, const BH: bool> Sync for MutexGuard<'_, T, BH> {}

impl<T, const BH: bool> Mutex<T, BH> {
    pub const fn new(value: T) -> Self {
        Mutex {
            locked: AtomicBool::new(false),
            data: UnsafeCell::new(value),
        }
    }

    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized, const BH: bool> Mutex<T, BH> {
    pub fn lock(&self) -> MutexGuard<'_, T, BH> {
        if BH {
            bh::disable();
        }
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
        MutexGuard {
            lock: self,
            _not_send: core::marker::PhantomData,
        }
    }

    pub fn try_lock(&self) -> Option<MutexGuard<'_, T, BH>> {
        if BH {
            bh::disable();
        }
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            Some(MutexGuard {
                lock: self,
                _not_send: core::marker::PhantomData,
            })
        } else {
            if BH {
                bh::enable();
            }
            None
        }
    }

    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default, const BH: bool> Default for Mutex<T, BH> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug, const BH: bool> fmt::Debug for Mutex<T, BH> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Some(g) => f.debug_struct("Mutex").field("data", &&*g).finish(),
            None => f.write_str("Mutex { <locked> }"),
        }
    }
}

impl<T: ?Sized, const BH: bool> Deref for MutexGuard<'_, T, BH> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, const BH: bool> DerefMut for MutexGuard<'_, T, BH> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, and it is borrowed mutably.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized, const BH: bool> Drop for MutexGuard<'_, T, BH> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
        if BH {
            bh::enable();
        }
    }
}

/// crates.io `spin`'s module path for its plain spin mutex, which wasmi names for the locks
/// only compilation takes (third_party/wasmi/LUAPKT.md).
pub mod mutex {
    /// A spin lock that leaves bottom halves alone, for locks no softirq ever takes. Code
    /// holding it in process context may allocate with sleeping allocations (GFP_KERNEL,
    /// `__GFP_NOFAIL` in a load); under a bottom-half-disabling lock the same allocation is
    /// atomic and may fail. Meant for locks one task takes at a time (nobody spins on a holder
    /// that sleeps).
    pub type SpinMutex<T> = super::Mutex<T, false>;
}

/// `state` value of a write-locked [`RwLock`]; otherwise it counts readers.
const WRITER: usize = usize::MAX;

/// A readers-writer spin lock that disables bottom halves while held.
pub struct RwLock<T: ?Sized> {
    state: AtomicUsize,
    data: UnsafeCell<T>,
}

// SAFETY: readers share `&T` (needs `Sync`), a writer gets `&mut T` alone (needs `Send`).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: core::marker::PhantomData<*mut ()>,
}

pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: core::marker::PhantomData<*mut ()>,
}

// SAFETY: shared guards only give `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    pub const fn new(value: T) -> Self {
        RwLock {
            state: AtomicUsize::new(0),
            data: UnsafeCell::new(value),
        }
    }

    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    fn try_read_state(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s < WRITER - 1
            && self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    fn try_write_state(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        bh::disable();
        while !self.try_read_state() {
            spin_loop();
        }
        RwLockReadGuard {
            lock: self,
            _not_send: core::marker::PhantomData,
        }
    }

    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        bh::disable();
        if self.try_read_state() {
            Some(RwLockReadGuard {
                lock: self,
                _not_send: core::marker::PhantomData,
            })
        } else {
            bh::enable();
            None
        }
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        bh::disable();
        while !self.try_write_state() {
            spin_loop();
        }
        RwLockWriteGuard {
            lock: self,
            _not_send: core::marker::PhantomData,
        }
    }

    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        bh::disable();
        if self.try_write_state() {
            Some(RwLockWriteGuard {
                lock: self,
                _not_send: core::marker::PhantomData,
            })
        } else {
            bh::enable();
            None
        }
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_read() {
            Some(g) => f.debug_struct("RwLock").field("data", &&*g).finish(),
            None => f.write_str("RwLock { <locked> }"),
        }
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard proves no writer holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write guard proves exclusive access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write guard proves exclusive access, and it is borrowed mutably.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.state.fetch_sub(1, Ordering::Release);
        bh::enable();
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.state.store(0, Ordering::Release);
        bh::enable();
    }
}
