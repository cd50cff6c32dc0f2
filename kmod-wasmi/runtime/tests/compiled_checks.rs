//! The compiled engine's runtime (guest-lua/w2c) enforcing each wasm rule on a module built to
//! break them (guest-lua/w2c/checks/checks.wat, translated by wasm2c like the guest): memory
//! bounds on loads and stores, typed and bounded `call_indirect`, the call-depth and
//! native-stack checks in every prologue, a memory whose size never changes, and traps
//! that unwind to the host (our setjmp/longjmp) and leave the instance usable.
#![cfg(feature = "compiled")]

// The runtime's allocator and trap slot, which the checks' C uses, come with it.
use runtime as _;
use std::ffi::c_int;

#[repr(C)]
struct Checks {
    _opaque: [u8; 0],
}

extern "C" {
    fn lp_w2c_checks_init();
    fn lp_w2c_checks_new(memory: u64) -> *mut Checks;
    fn lp_w2c_checks_free(c: *mut Checks);
    fn lp_w2c_checks_call(
        c: *mut Checks,
        x: c_int,
        arg: u32,
        depth: u32,
        stack: u32,
        ret: *mut u32,
    ) -> c_int;
}

// the exports (lp_w2c_checks.c) and the trap codes (wasm-rt.h)
const LOAD: c_int = 0;
const STORE: c_int = 1;
const CALL: c_int = 2;
const RECURSE: c_int = 3;
const GROW: c_int = 4;
const SIZE: c_int = 5;
const DIV: c_int = 6;
const UNREACHABLE: c_int = 7;
const OOB: c_int = 1;
const DIV_BY_ZERO: c_int = 3;
const TRAP_UNREACHABLE: c_int = 5;
const TRAP_CALL_INDIRECT: c_int = 6;
const EXHAUSTION: c_int = 8;

const PAGE: u64 = 65536;

struct Instance(*mut Checks);

impl Instance {
    fn new(memory: u64) -> Option<Instance> {
        static INIT: std::sync::Once = std::sync::Once::new();
        // SAFETY: registers the module's function types, once, before any instance.
        INIT.call_once(|| unsafe { lp_w2c_checks_init() });
        // SAFETY: allocates and instantiates; NULL when the room is short.
        let c = unsafe { lp_w2c_checks_new(memory) };
        (!c.is_null()).then(|| Instance(c))
    }
    /// Export `x` with `arg`, at most `depth` wasm frames and `stack` bytes of native stack.
    fn call_with(&mut self, x: c_int, arg: u32, depth: u32, stack: u32) -> Result<u32, c_int> {
        let mut ret = 0;
        // SAFETY: a live instance; C arms a frame for the call.
        match unsafe { lp_w2c_checks_call(self.0, x, arg, depth, stack, &mut ret) } {
            0 => Ok(ret),
            trap => Err(trap),
        }
    }
    fn call(&mut self, x: c_int, arg: u32) -> Result<u32, c_int> {
        self.call_with(x, arg, 1000, 1 << 20)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: ours, freed once.
        unsafe { lp_w2c_checks_free(self.0) }
    }
}

#[test]
fn loads_and_stores_are_bounds_checked() {
    let mut i = Instance::new(2 * PAGE).unwrap();
    assert_eq!(i.call(STORE, 0), Ok(0));
    assert_eq!(i.call(LOAD, 0), Ok(1));
    assert_eq!(i.call(LOAD, 65532), Ok(0), "the last word of the page");
    for addr in [65533, 65536, 0x7fff_ffff, u32::MAX] {
        assert_eq!(i.call(LOAD, addr), Err(OOB), "load at {addr:#x}");
        assert_eq!(i.call(STORE, addr), Err(OOB), "store at {addr:#x}");
    }
    // the room past the memory's size (allocated for growth) is not reachable before it grows
    assert_eq!(i.call(LOAD, 65536 + 16), Err(OOB));
    assert_eq!(i.call(LOAD, 0), Ok(1), "the instance survives its traps");
}

#[test]
fn indirect_calls_check_the_index_and_the_type() {
    let mut i = Instance::new(PAGE).unwrap();
    assert_eq!(i.call(CALL, 0), Ok(5), "entry 0 has the type");
    assert_eq!(
        i.call(CALL, 1),
        Err(TRAP_CALL_INDIRECT),
        "entry 1 has another type"
    );
    assert_eq!(i.call(CALL, 2), Err(TRAP_CALL_INDIRECT), "past the table");
    assert_eq!(i.call(CALL, u32::MAX), Err(TRAP_CALL_INDIRECT));
    assert_eq!(i.call(CALL, 0), Ok(5));
}

#[test]
fn recursion_is_stopped_by_depth_and_by_native_stack() {
    let mut i = Instance::new(PAGE).unwrap();
    assert_eq!(
        i.call_with(RECURSE, 0, 100, 1 << 20),
        Err(EXHAUSTION),
        "depth 100"
    );
    // a depth no stack could hold: the native-stack floor stops it first
    assert_eq!(
        i.call_with(RECURSE, 0, u32::MAX, 64 << 10),
        Err(EXHAUSTION),
        "64 KiB"
    );
    assert_eq!(i.call(LOAD, 0), Ok(0), "the instance survives");
}

#[test]
fn memory_never_grows() {
    // the module asks for 1 to 4 pages; the host allocated 2. The size is fixed at
    // instantiation (each function keeps it in its locals, lp_w2c_mem.h): memory.grow refuses
    // even what the room would hold
    let mut i = Instance::new(2 * PAGE).unwrap();
    assert_eq!(i.call(SIZE, 0), Ok(1));
    assert_eq!(i.call(GROW, 0), Ok(1), "a growth of 0 gives the size");
    assert_eq!(i.call(GROW, 1), Ok(u32::MAX), "within the room: -1");
    assert_eq!(i.call(GROW, u32::MAX), Ok(u32::MAX));
    assert_eq!(i.call(SIZE, 0), Ok(1));
    assert_eq!(
        i.call(STORE, 65536),
        Err(OOB),
        "the room past the size stays out of reach"
    );
    assert_eq!(i.call(STORE, 65532), Ok(0));
    // less room than the module's initial memory: no instance
    assert!(Instance::new(PAGE / 2).is_none());
}

#[test]
fn other_traps_unwind_to_the_host() {
    let mut i = Instance::new(PAGE).unwrap();
    assert_eq!(i.call(DIV, 0), Err(DIV_BY_ZERO));
    assert_eq!(i.call(DIV, 1), Ok(1));
    assert_eq!(i.call(UNREACHABLE, 0), Err(TRAP_UNREACHABLE));
    // many traps in a row: each longjmp restores the host's registers and stack
    for n in 0..10_000u32 {
        assert_eq!(i.call(DIV, 0), Err(DIV_BY_ZERO), "trap {n}");
    }
    assert_eq!(i.call(CALL, 0), Ok(5));
}
