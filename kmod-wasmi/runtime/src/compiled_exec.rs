//! The compiled engine: the built-in guest translated to C by WABT's wasm2c when the runtime is
//! built (build.rs, feature `compiled`), with every wasm check kept (bounds-checked memory,
//! typed `call_indirect`, a depth and native-stack check in every prologue, fuel counted by the
//! guest itself). Its runtime and the `try`/`throw` imports are C (guest-lua/w2c); everything
//! else is the runtime's own: the imports ([`crate::imports`], called back from C), the
//! instance ([`crate::instance`]) and the script containers. The same code runs in lpctl and in
//! the kernel. Only the built-in guest: a package that carries another guest runs on wasmi.

use crate::call::{Exec, Export};
use crate::error::{ErrorKind, LoadError};
use crate::guest::CompiledGuest;
use crate::host::Host;
use crate::imports::{self, CallData, ImportCtx};
use crate::limits::Limits;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::alloc::Layout;
use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering};

/// An instance of the translated guest (lp_w2c_host.c's `struct lp_w2c`).
#[repr(C)]
struct LpW2c {
    _opaque: [u8; 0],
}

extern "C" {
    fn lp_w2c_init();
    fn lp_w2c_new(rust: *mut c_void, memory: u64, err: *mut c_int) -> *mut LpW2c;
    fn lp_w2c_free(w: *mut LpW2c);
    fn lp_w2c_view(w: *mut LpW2c, v: *mut View);
    fn lp_w2c_limits(w: *mut LpW2c, reentries: u32, recursion: u32);
    fn lp_w2c_call(w: *mut LpW2c, x: c_int, a: *const i32, ret: *mut i32) -> c_int;
}

include!(concat!(env!("OUT_DIR"), "/w2c_sha256.rs"));

/// Trap codes (guest-lua/w2c/wasm-rt.h's `wasm_rt_trap_t`).
const TRAP_EXHAUSTION: c_int = 8;
const TRAP_FUEL: c_int = 9;
const TRAP_DEPTH: c_int = 10;
const TRAP_THROW: c_int = 11;
const TRAP_MEMORY: c_int = 12;
/// lp_w2c_host.c's numbers for the exports (its `X_*`).
fn export_number(f: Export) -> c_int {
    match f {
        Export::Ctx => 0,
        Export::Init => 1,
        Export::Load => 2,
        Export::Run => 3,
        Export::Recover => 4,
        Export::ErrMsg => 5,
        Export::ErrLen => 6,
        Export::MemUsed => 7,
        Export::Alloc => 8,
        Export::Free => 9,
        Export::RefGlobal => 10,
        Export::RefString => 11,
        Export::Features => 12,
    }
}
const X_FUEL_STOP: c_int = 13;

/// A trap of the compiled guest: its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trap(c_int);

/// The built-in guest, translated and compiled in.
pub struct TranslatedGuest {
    hash: [u8; 32],
}

/// lp_w2c_init's state: 0 not run, 1 running, 2 done.
static INIT: AtomicU8 = AtomicU8::new(0);

impl TranslatedGuest {
    /// The compiled guest, for a script whose guest module is `guest_wasm`: only the built-in
    /// guest has a translation.
    pub fn new(guest_wasm: &[u8]) -> Result<Arc<TranslatedGuest>, LoadError> {
        if !crate::guest::is_builtin(guest_wasm) {
            return Err(LoadError::Rejected(String::from(
                "the compiled engine runs only the built-in guest",
            )));
        }
        // build.rs translated this very guest (it reruns when lua.wasm changes)
        if W2C_SHA256 != guest_lua::LUA_WASM_SHA256 {
            return Err(LoadError::Rejected(String::from(
                "the compiled guest is not the built-in guest: rebuild",
            )));
        }
        init();
        Ok(Arc::new(TranslatedGuest {
            hash: guest_lua::LUA_WASM_SHA256,
        }))
    }
}

/// Registers the module's function types, once, before any instance.
fn init() {
    loop {
        match INIT.compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: runs once (the state machine above); no instance exists yet.
                unsafe { lp_w2c_init() };
                INIT.store(2, Ordering::Release);
                return;
            }
            Err(2) => return,
            // another caller is registering them (microseconds)
            Err(_) => core::hint::spin_loop(),
        }
    }
}

impl CompiledGuest for TranslatedGuest {
    type Exec = CompiledExec;
    fn instantiate(
        &self,
        name: &str,
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Result<CompiledExec, LoadError> {
        CompiledExec::new(name, limits, host)
    }
    fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
}

/// Where an instance's state lives (lp_w2c_host.c's `struct lp_w2c_view`): fixed for the
/// instance's life, linear memory included (allocated in full when the instance is made, it
/// never grows), so the packet path reads and writes it without a call into C each time.
#[repr(C)]
struct View {
    memory: *mut u8,
    memory_size: u64,
    fuel: *mut u64,
    stack_pointer: *mut u32,
    /// Host re-entries (`try` frames) and their cap.
    depth: *mut u32,
    max_depth: *mut u32,
}

/// What the C imports call back into: the imports' data and the C instance.
struct Inner {
    w: *mut LpW2c,
    view: View,
    call: CallData,
}

/// The compiled guest's instance. `Inner` lives at a fixed address (C holds it) and is
/// reached through a raw pointer, never a `Box`, because C calls back into it while a call
/// made through `&mut self` runs.
pub struct CompiledExec {
    inner: NonNull<Inner>,
}

// SAFETY: the C instance and its memory belong to this value alone; calls into it are made
// with `&mut self`, on whichever thread holds it.
unsafe impl Send for CompiledExec {}

impl CompiledExec {
    fn new(name: &str, limits: &Limits, host: Arc<dyn Host>) -> Result<Self, LoadError> {
        let name: Arc<str> = Arc::from(name);
        let inner = Box::into_raw(Box::new(Inner {
            w: core::ptr::null_mut(),
            view: View {
                memory: core::ptr::null_mut(),
                memory_size: 0,
                fuel: core::ptr::null_mut(),
                stack_pointer: core::ptr::null_mut(),
                depth: core::ptr::null_mut(),
                max_depth: core::ptr::null_mut(),
            },
            call: CallData::new(host.clone(), name),
        }));
        let me = CompiledExec {
            // SAFETY: Box::into_raw never returns null.
            inner: unsafe { NonNull::new_unchecked(inner) },
        };
        // linear memory is allocated in full now (it never grows by allocating): in the
        // kernel this one allocation may fail, as wasmi's does
        host.linear_memory(limits.memory as usize);
        let mut err: c_int = 0;
        // SAFETY: `inner` outlives the C instance (Drop frees the instance first).
        let w = unsafe { lp_w2c_new(inner.cast(), limits.memory, &mut err) };
        if w.is_null() {
            host.linear_memory(0);
            return Err(match err {
                -2 => LoadError::Rejected(format!(
                    "its initial linear memory exceeds the memory limit of {} bytes",
                    limits.memory
                )),
                -3 => LoadError::Rejected(String::from("instantiation trapped")),
                _ => LoadError::NoMemory(limits.memory),
            });
        }
        // SAFETY: `inner` is ours; no call into C is running; the view's pointers are into
        // the instance `w`, which `inner` owns from here on (Drop frees it).
        unsafe {
            (*inner).w = w;
            lp_w2c_view(w, &mut (*inner).view);
            lp_w2c_limits(w, limits.pcall_depth, limits.recursion);
        }
        Ok(me)
    }

    fn w(&self) -> *mut LpW2c {
        // SAFETY: `inner` is live for as long as `self`; only its `w` field is read.
        unsafe { (*self.inner.as_ptr()).w }
    }

    fn inner(&self) -> &Inner {
        // SAFETY: live for as long as `self`; no C call is running while `&self` is held.
        unsafe { self.inner.as_ref() }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        // SAFETY: as above, with `&mut self`.
        unsafe { self.inner.as_mut() }
    }
}

/// Calls export number `x` of `w`.
fn call_raw(w: *mut LpW2c, x: c_int, args: &[i32]) -> Result<i32, Trap> {
    // element by element: a loop over the slice became a call to memcpy, which the kernel
    // does with `rep movsb` (a byte per step under emulation, on every packet)
    let a: [i32; 4] = core::array::from_fn(|i| args.get(i).copied().unwrap_or(0));
    let mut ret = 0;
    // SAFETY: a live instance; `a` holds as many arguments as any export takes. No Rust
    // reference into `Inner` is held across the call (C's imports reach it by pointer).
    let code = unsafe { lp_w2c_call(w, x, a.as_ptr(), &mut ret) };
    if code == 0 {
        Ok(ret)
    } else {
        Err(Trap(code))
    }
}

impl Drop for CompiledExec {
    fn drop(&mut self) {
        // SAFETY: the instance and `inner` are ours and freed once, the instance first.
        unsafe {
            lp_w2c_free(self.w());
            drop(Box::from_raw(self.inner.as_ptr()));
        }
    }
}

impl ImportCtx for Inner {
    type Error = Trap;
    fn fuel_trap() -> Trap {
        Trap(TRAP_FUEL)
    }
    fn data(&self) -> &CallData {
        &self.call
    }
    fn data_mut(&mut self) -> &mut CallData {
        &mut self.call
    }
    fn memory(&self) -> &[u8] {
        // SAFETY: the instance's memory, `memory_size` bytes for its whole life; the guest
        // does not run while the host holds this borrow.
        unsafe { core::slice::from_raw_parts(self.view.memory, self.view.memory_size as usize) }
    }
    fn memory_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `memory`, exclusively.
        unsafe { core::slice::from_raw_parts_mut(self.view.memory, self.view.memory_size as usize) }
    }
    fn counter(&mut self) -> Option<i64> {
        // SAFETY: the global lives in the instance.
        Some(unsafe { *self.view.fuel } as i64)
    }
    fn set_counter(&mut self, value: i64) -> Result<(), Trap> {
        // SAFETY: as above.
        unsafe { *self.view.fuel = value as u64 };
        Ok(())
    }
    fn engine_fuel(&self) -> u64 {
        0
    }
    fn set_engine_fuel(&mut self, _fuel: u64) {}
    fn fuel_stop(&mut self) -> Result<(), Trap> {
        // a nested call from an import; C arms its own frame
        call_raw(self.w, X_FUEL_STOP, &[]).map(|_| ())
    }
}

// The instance is the imports' view of itself: everything goes to `Inner`.
impl ImportCtx for CompiledExec {
    type Error = Trap;
    fn fuel_trap() -> Trap {
        Inner::fuel_trap()
    }
    fn data(&self) -> &CallData {
        self.inner().data()
    }
    fn data_mut(&mut self) -> &mut CallData {
        self.inner_mut().data_mut()
    }
    fn memory(&self) -> &[u8] {
        self.inner().memory()
    }
    fn memory_mut(&mut self) -> &mut [u8] {
        self.inner_mut().memory_mut()
    }
    fn counter(&mut self) -> Option<i64> {
        self.inner_mut().counter()
    }
    fn set_counter(&mut self, value: i64) -> Result<(), Trap> {
        self.inner_mut().set_counter(value)
    }
    fn engine_fuel(&self) -> u64 {
        0
    }
    fn set_engine_fuel(&mut self, _fuel: u64) {}
    fn fuel_stop(&mut self) -> Result<(), Trap> {
        self.inner_mut().fuel_stop()
    }
}

impl Exec for CompiledExec {
    fn call(&mut self, f: Export, args: &[i32]) -> Result<i32, Trap> {
        call_raw(self.w(), export_number(f), args)
    }
    fn has(&self, _f: Export) -> bool {
        true
    }
    fn has_soft_stop(&self) -> bool {
        true
    }
    fn stack_pointer(&mut self) -> i32 {
        // SAFETY: the global lives in the instance; no guest code runs (`&mut self`).
        unsafe { *self.inner().view.stack_pointer as i32 }
    }
    fn set_stack_pointer(&mut self, sp: i32) -> bool {
        // SAFETY: as above.
        unsafe { *self.inner().view.stack_pointer = sp as u32 };
        true
    }
    fn reset_depth(&mut self) {
        // SAFETY: a field of the live instance; no guest code runs.
        unsafe { *self.inner().view.depth = 0 }
    }
    fn set_max_depth(&mut self, max: u32) {
        // SAFETY: as above.
        unsafe { *self.inner().view.max_depth = max }
    }
    fn is_lua_throw(e: &Trap) -> bool {
        e.0 == TRAP_THROW
    }
    fn trap_kind(e: &Trap) -> ErrorKind {
        match e.0 {
            TRAP_FUEL => ErrorKind::Fuel,
            TRAP_DEPTH | TRAP_EXHAUSTION => ErrorKind::Stack,
            TRAP_MEMORY => ErrorKind::Memory,
            _ => ErrorKind::Trap,
        }
    }
    fn load_error(e: Trap) -> LoadError {
        LoadError::Init(Self::trap_kind(&e), String::new())
    }
}

// ---- what C calls: the imports' entry points, the allocator, the abort ----------------

fn inner_of<'a>(rust: *mut c_void) -> &'a mut Inner {
    // SAFETY: C passes back the pointer `CompiledExec::new` gave it, live while the instance
    // is; while the guest runs, no Rust reference to `Inner` is held (see `call_raw`).
    unsafe { &mut *rust.cast::<Inner>() }
}

fn status(r: Result<i32, Trap>, out: *mut i32) -> c_int {
    match r {
        Ok(v) => {
            // SAFETY: C passes a valid out-pointer.
            unsafe { *out = v };
            0
        }
        Err(Trap(code)) => code,
    }
}

#[no_mangle]
extern "C" fn lp_w2c_import_log(rust: *mut c_void, level: u32, ptr: u32, len: u32) {
    imports::log(inner_of(rust), level as i32, ptr as i32, len as i32)
}

#[no_mangle]
extern "C" fn lp_w2c_import_now(rust: *mut c_void) -> u64 {
    imports::now(inner_of(rust)) as u64
}

#[no_mangle]
extern "C" fn lp_w2c_import_pkt_read(
    rust: *mut c_void,
    off: u32,
    dst: u32,
    len: u32,
    out: *mut i32,
) -> c_int {
    let r = imports::pkt_read(inner_of(rust), off as i32, dst as i32, len as i32);
    status(r, out)
}

#[no_mangle]
extern "C" fn lp_w2c_import_pkt_write(
    rust: *mut c_void,
    off: u32,
    src: u32,
    len: u32,
    out: *mut i32,
) -> c_int {
    let r = imports::pkt_write(inner_of(rust), off as i32, src as i32, len as i32);
    status(r, out)
}

#[no_mangle]
extern "C" fn lp_w2c_import_map_declare(rust: *mut c_void, spec: u32, len: u32) -> i32 {
    imports::map_declare(inner_of(rust), spec as i32, len as i32)
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
extern "C" fn lp_w2c_import_map_op(
    rust: *mut c_void,
    op: u32,
    id: u32,
    key: u32,
    klen: u32,
    val: u32,
    vlen: u32,
    out: *mut i32,
) -> c_int {
    let r = imports::map_op(
        inner_of(rust),
        op as i32,
        id as i32,
        key as i32,
        klen as i32,
        val as i32,
        vlen as i32,
    );
    status(r, out)
}

#[no_mangle]
extern "C" fn lp_w2c_import_send(
    rust: *mut c_void,
    kind: u32,
    ptr: u32,
    len: u32,
    out: *mut i32,
) -> c_int {
    let r = imports::send(inner_of(rust), kind as i32, ptr as i32, len as i32);
    status(r, out)
}

#[no_mangle]
extern "C" fn lp_w2c_import_timer(
    rust: *mut c_void,
    op: u32,
    gref: u32,
    ms: u32,
    out: *mut i32,
) -> c_int {
    let r = imports::timer(inner_of(rust), op as i32, gref as i32, ms as i32);
    status(r, out)
}

#[no_mangle]
extern "C" fn lp_w2c_import_out_of_fuel(rust: *mut c_void) -> c_int {
    match imports::out_of_fuel(inner_of(rust)) {
        Ok(()) => 0,
        Err(Trap(code)) => code,
    }
}

/// Alignment of what C allocates (its largest scalar).
const C_ALIGN: usize = 16;

#[no_mangle]
extern "C" fn lp_w2c_zalloc(size: usize) -> *mut c_void {
    let Ok(layout) = Layout::from_size_align(size.max(1), C_ALIGN) else {
        return core::ptr::null_mut();
    };
    // SAFETY: a non-zero size; a null result is handled by C.
    unsafe { alloc::alloc::alloc_zeroed(layout).cast() }
}

#[no_mangle]
extern "C" fn lp_w2c_dealloc(p: *mut c_void, size: usize) {
    if p.is_null() {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(size.max(1), C_ALIGN) {
        // SAFETY: C frees what `lp_w2c_zalloc` gave it, with the size it asked for.
        unsafe { alloc::alloc::dealloc(p.cast(), layout) }
    }
}

#[no_mangle]
extern "C" fn lp_w2c_abort() -> ! {
    panic!("compiled guest: a trap outside any host entry")
}
