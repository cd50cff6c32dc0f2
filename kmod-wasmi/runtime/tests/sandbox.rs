//! The sandbox's bounds, offline: a load runs on its own budget in slices the host may pause or
//! stop, limits have ceilings no setting lifts, error kinds travel as codes (not as message
//! text), messages never allocate on the packet path, a load that fails at a later instance
//! frees the instances built before it, and a queue verdict the host cannot apply is an error.

mod common;

use common::{host, load_with, roomy, tcp4};
use runtime::{
    ErrorKind, GuestCache, Host, Limits, LoadError, LogLevel, OnError, PerCpuScript, SlicePacket,
    Verdict,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counts live heap bytes of the threads that ask for it (the leak test), and fails every
/// allocation of the threads that ask for that (the allocation-failure test).
struct Counting;

// Per thread: tests run in parallel threads, and each counts only its own allocations.
thread_local! {
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LIVE: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
    static FAILING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static REFUSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    // the kernel's load mode: only announced linear memory may fail (lp_alloc_fallible_next);
    // the n-th announcement (counting down to 0) and later ones fail
    static LINEAR_FAILS_AFTER: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
    static ANNOUNCED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Live bytes this thread allocated while counting.
fn live() -> i64 {
    LIVE.with(|l| l.get())
}

// SAFETY: forwards to the system allocator; the counter is only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if FAILING.with(|f| f.get()) {
            REFUSED.with(|r| r.set(r.get() + 1));
            return std::ptr::null_mut();
        }
        let a = ANNOUNCED.with(|a| a.get());
        if a > 0 && l.size() >= a {
            ANNOUNCED.with(|a| a.set(0));
            REFUSED.with(|r| r.set(r.get() + 1));
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() && COUNTED.with(|c| c.get()) {
            LIVE.with(|c| c.set(c.get() + l.size() as i64));
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTED.with(|c| c.get()) {
            LIVE.with(|c| c.set(c.get() - l.size() as i64));
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// A host that counts pauses, can refuse to go on, and gives each instance a clock of its own
/// (the n-th instance built sees `lp.now() == n`).
#[derive(Default)]
struct PausingHost {
    pauses: AtomicU64,
    stop: AtomicBool,
    built: AtomicU64,
    lines: Mutex<Vec<String>>,
    /// What `linear_memory` was told, in order.
    linear: Mutex<Vec<usize>>,
}

impl Host for PausingHost {
    fn now_ns(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }
    fn log(&self, _: &str, _: LogLevel, line: &[u8]) {
        // the kernel's log (printk) allocates nothing; this one must not fail the test
        if FAILING.with(|f| f.get()) {
            return;
        }
        self.lines
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(line).into_owned());
    }
    fn seed(&self) -> u32 {
        // called once per instance, before its top-level chunk runs
        self.built.fetch_add(1, Ordering::Relaxed) as u32
    }
    fn pause(&self) -> bool {
        self.pauses.fetch_add(1, Ordering::Relaxed);
        !self.stop.load(Ordering::Relaxed)
    }
    fn linear_memory(&self, bytes: usize) {
        self.linear.lock().unwrap().push(bytes);
        LINEAR_FAILS_AFTER.with(|n| match n.get() {
            Some(0) => ANNOUNCED.with(|a| a.set(bytes)),
            Some(k) => n.set(Some(k - 1)),
            None => {}
        });
    }
}

fn load_percpu(
    src: &str,
    n: usize,
    limits: Limits,
    h: Arc<PausingHost>,
) -> Result<PerCpuScript, LoadError> {
    let mut cache = GuestCache::new();
    PerCpuScript::load(
        &mut cache,
        runtime::EngineKind::Wasmi,
        guest_lua::LUA_WASM,
        "sandbox",
        src.as_bytes(),
        limits,
        OnError::Break,
        n,
        h,
        None,
    )
}

const ACCEPT: &str = "function process_packet(p) return lp.ACCEPT end";

#[test]
fn a_top_level_infinite_loop_uses_its_load_fuel_in_slices_and_fails_clearly() {
    let h = Arc::new(PausingHost::default());
    let limits = Limits {
        load_fuel: 50_000_000,
        ..Limits::default()
    };
    let e = load_percpu("while true do end", 1, limits, h.clone())
        .err()
        .expect("an endless top-level chunk must not load");
    assert!(matches!(e, LoadError::Budget(50_000_000)), "{e}");
    assert!(
        e.to_string()
            .contains("top-level chunk used its 50000000 fuel"),
        "{e}"
    );
    let slices = abi::limits::LOAD_SLICE_FUEL;
    let pauses = h.pauses.load(Ordering::Relaxed);
    assert!(
        pauses >= 50_000_000 / slices - 1,
        "the host was asked to pause between slices only {pauses} times"
    );
}

#[test]
fn a_chunk_within_its_budget_loads_across_slices() {
    let h = Arc::new(PausingHost::default());
    // ~30 million fuel of work: several slices
    let src = "local x = 0 for i = 1, 300000 do x = x + i end\n".to_string() + ACCEPT;
    let s = load_percpu(&src, 1, Limits::default(), h.clone()).expect("load");
    assert!(h.pauses.load(Ordering::Relaxed) >= 2);
    let p = tcp4(80);
    // SAFETY: single-threaded.
    let o = unsafe {
        s.run_on_cpu(
            0,
            s.bind_on_cpu(0, "process_packet", None).unwrap(),
            &SlicePacket::new(&p),
        )
    };
    assert_eq!((o.verdict, o.error), (Verdict::Accept, None));
}

#[test]
fn the_host_can_stop_a_load_between_slices() {
    let h = Arc::new(PausingHost::default());
    h.stop.store(true, Ordering::Relaxed);
    let e = load_percpu("while true do end", 1, Limits::default(), h)
        .err()
        .expect("a stopped load must fail");
    assert!(matches!(e, LoadError::Interrupted), "{e}");
}

#[test]
fn a_top_level_memory_bomb_fails_with_memory() {
    let h = Arc::new(PausingHost::default());
    let e = load_percpu(
        "local t = {} while true do t[#t + 1] = string.rep('xxxxxxxxxxxxxxxx', 256) .. #t end",
        1,
        Limits::default(),
        h,
    )
    .err()
    .expect("must not load");
    assert!(matches!(e, LoadError::Init(ErrorKind::Memory, _)), "{e}");
}

#[test]
fn limits_have_ceilings_that_no_setting_lifts() {
    use abi::limits::*;
    const { assert!(MAX_FUEL + RECOVER_FUEL + MESSAGE_FUEL + BIND_FUEL <= CALL_FUEL_CEILING) };
    const { assert!(DEFAULT_FUEL <= MAX_FUEL) };
    for (l, field) in [
        (
            Limits {
                fuel: MAX_FUEL + 1,
                ..Limits::default()
            },
            "fuel",
        ),
        (
            Limits {
                load_fuel: MAX_LOAD_FUEL + 1,
                ..Limits::default()
            },
            "load-fuel",
        ),
        (
            Limits {
                load_fuel: 0,
                ..Limits::default()
            },
            "load-fuel",
        ),
        (
            Limits {
                recursion: MAX_RECURSION + 1,
                ..Limits::default()
            },
            "recursion",
        ),
    ] {
        assert_eq!(l.validate().unwrap_err().field, field);
    }
    // with the budget off, fuel still ends an endless call at the ceiling
    let lim = Limits {
        fuel: MAX_FUEL,
        instructions: 0,
        ..Limits::default()
    };
    let (mut s, _) = load_with(
        "function process_packet(p) while true do end end",
        lim,
        OnError::Accept,
    );
    let o = s.run(0, 0, &SlicePacket::new(&tcp4(1)));
    assert_eq!(o.error, Some(ErrorKind::Fuel));
    assert!(o.fuel <= abi::limits::CALL_FUEL_CEILING);
}

const KINDS: &str = r#"
function process_packet(p)
  local port = p.tcp.dport
  if port == 1 then error("out of instructions") end
  if port == 2 then error("stack overflow") end
  if port == 3 then error("too many nested protected calls (limit 7)") end
  if port == 4 then while true do end end
  if port == 5 then
    -- the budget's own error, caught and thrown again: still the budget's
    local ok, e = pcall(function() while true do end end)
    error(e, 0)
  end
  if port == 6 then
    -- caught, and a new error raised afterwards: a Lua error
    pcall(function() while true do end end)
    error("something else")
  end
  return lp.ACCEPT
end
"#;

#[test]
fn error_kinds_travel_as_codes_not_as_message_text() {
    let lim = Limits {
        fuel: abi::limits::MAX_FUEL,
        instructions: 500,
        ..Limits::default()
    };
    let (mut s, _) = load_with(KINDS, lim, OnError::Break);
    let kind = |s: &mut runtime::Script, port| s.run(0, 0, &SlicePacket::new(&tcp4(port))).error;
    assert_eq!(kind(&mut s, 1), Some(ErrorKind::Lua), "forged budget error");
    assert_eq!(kind(&mut s, 2), Some(ErrorKind::Lua), "forged stack error");
    assert_eq!(
        kind(&mut s, 3),
        Some(ErrorKind::Lua),
        "forged nesting error"
    );
    assert_eq!(kind(&mut s, 4), Some(ErrorKind::Instructions));
    assert_eq!(kind(&mut s, 5), Some(ErrorKind::Instructions));
    assert_eq!(kind(&mut s, 6), Some(ErrorKind::Lua));
}

#[test]
fn error_messages_do_not_allocate_and_invalid_utf8_is_replaced() {
    let (mut s, _) = load_with(
        "function process_packet(p) error('\\255\\254' .. string.rep('mmmmmmmmmm', 150)) end",
        roomy(),
        OnError::Break,
    );
    let p = tcp4(80);
    let inst = s.instance(0);
    let (r, _) = inst.run(0, &SlicePacket::new(&p), &roomy());
    assert_eq!(r, Err(ErrorKind::Lua));
    let first = inst.message().to_string();
    assert!(first.contains('\u{FFFD}'), "{first:?}");
    assert!(first.len() <= runtime::call::MAX_MESSAGE * 3);
    // linear memory is sized at load: after a first call (which sizes wasmi's stacks), errors
    // allocate nothing in the host
    let mem = inst.memory_size();
    COUNTED.with(|c| c.set(true));
    let before = live();
    for _ in 0..100 {
        let _ = inst.run(0, &SlicePacket::new(&p), &roomy());
    }
    let grown = live() - before;
    COUNTED.with(|c| c.set(false));
    assert_eq!(grown, 0, "100 errors grew the host heap by {grown} bytes");
    assert_eq!(inst.memory_size(), mem);
}

#[test]
fn linear_memory_is_sized_at_load_and_packets_never_grow_it() {
    let limits = Limits {
        memory: 2 << 20,
        ..roomy()
    };
    // garbage on every call: tables, strings, closures
    let (mut s, _) = load_with(
        "function process_packet(p) local t = {} for i = 1, 10 do t[i] = {i, tostring(i) .. 'x'} end \
         return lp.ACCEPT end",
        limits,
        OnError::Break,
    );
    let p = tcp4(80);
    let inst = s.instance(0);
    assert_eq!(inst.memory_size() as u64, limits.memory);
    let (r, _) = inst.run(0, &SlicePacket::new(&p), &limits);
    assert_eq!(r, Ok(Verdict::Accept));
    COUNTED.with(|c| c.set(true));
    let before = live();
    for _ in 0..300 {
        let (r, _) = inst.run(0, &SlicePacket::new(&p), &limits);
        assert_eq!(r, Ok(Verdict::Accept));
    }
    let grown = live() - before;
    COUNTED.with(|c| c.set(false));
    assert_eq!(
        grown, 0,
        "300 allocating calls grew the host heap by {grown} bytes"
    );
    assert_eq!(inst.memory_size() as u64, limits.memory);
}

#[test]
fn a_load_failing_at_a_later_instance_frees_the_earlier_ones() {
    // the third instance built fails its top-level chunk: the first two must be freed
    let src =
        "local keep = string.rep('k', 200000)\nif lp.now() >= 3 then error('third instance') end\n"
            .to_string()
            + ACCEPT;
    // warm up once (one-time allocations of the engine and of this thread)
    let h = Arc::new(PausingHost::default());
    let _ = load_percpu(&src, 4, Limits::default(), h);
    let fail = || {
        let h = Arc::new(PausingHost::default());
        let e = load_percpu(&src, 4, Limits::default(), h.clone())
            .err()
            .expect("the third instance fails");
        assert!(e.to_string().contains("third instance"), "{e}");
        assert_eq!(h.built.load(Ordering::Relaxed), 3);
    };
    COUNTED.with(|c| c.set(true));
    for _ in 0..3 {
        fail();
    }
    // what stays after the first failures is the engine's one-time state; each further
    // failed load must leave nothing (two instances of ~300 KiB each were built and dropped)
    let before = live();
    for _ in 0..10 {
        fail();
    }
    let after = live();
    COUNTED.with(|c| c.set(false));
    assert!(
        after <= before + 4096,
        "10 failed loads leaked {} bytes",
        after - before
    );
}

#[test]
fn a_queue_verdict_the_host_cannot_apply_is_an_error_of_the_policy() {
    let h = host();
    let mut cache = GuestCache::new();
    let s = PerCpuScript::load(
        &mut cache,
        runtime::EngineKind::Wasmi,
        guest_lua::LUA_WASM,
        "q",
        b"function process_packet(p) return lp.QUEUE(3) end",
        Limits::default(),
        OnError::Drop,
        1,
        h,
        None,
    )
    .unwrap();
    let p = tcp4(80);
    // SAFETY: single-threaded.
    let mut o = unsafe {
        let e = s.bind_on_cpu(0, "process_packet", None).unwrap();
        s.run_on_cpu(0, e, &SlicePacket::new(&p))
    };
    assert_eq!(o.verdict, Verdict::Queue(3));
    // SAFETY: right after the call, same slot.
    unsafe { s.refuse_verdict(0, &mut o) };
    assert_eq!(
        (o.verdict, o.error),
        (Verdict::Drop, Some(ErrorKind::Return))
    );
    let st = s.stats();
    assert_eq!(st.verdicts, [0, 1, 0, 0, 0]);
    assert_eq!(st.errors[5], 1, "counted as kind return");
}

#[test]
fn a_script_naming_queue_is_known_at_load() {
    let cases = [
        ("function process_packet(p) return lp.QUEUE(1) end", true),
        // nested functions, indexing by a constant string
        (
            "local t = {} function t.f() return function() return lp['QUEUE'](2) end end \
             function process_packet(p) return lp.ACCEPT end",
            true,
        ),
        (ACCEPT, false),
        // a comment is not a name; a name built at run time cannot be seen
        (
            "-- lp.QUEUE\nfunction process_packet(p) return lp['QU' .. 'EUE'](1) end",
            false,
        ),
    ];
    for (src, want) in cases {
        let s = load_percpu(src, 2, Limits::default(), Arc::new(PausingHost::default()))
            .unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(s.may_queue(), want, "{src}");
    }
}

/// Deep C-level recursion in the guest (each `__index` call re-enters the Lua VM through the
/// C stack, several wasm frames a level), a Lua error, and nested protected calls: the three
/// ways a call makes wasmi allocate (frames, value stacks, errors and the stacks of re-entries).
const ALLOCATING: &str = r#"
local deep = setmetatable({}, {__index = function(t, k)
  if k <= 0 then return 0 end
  return t[k - 1] + 1
end})
local function nest(n) if n == 0 then return 1 end return select(2, pcall(nest, n - 1)) end
function process_packet(p)
  local port = p.tcp.dport
  if port == 1 then return deep[50] == 50 and lp.ACCEPT or lp.DROP end
  if port == 2 then error("refused") end
  if port == 3 then return nest(20) == 1 and lp.ACCEPT or lp.DROP end
  return lp.ACCEPT
end
"#;

#[test]
fn a_host_that_cannot_allocate_during_a_call_gets_an_error_not_an_abort() {
    let limits = Limits {
        recursion: abi::limits::MAX_RECURSION,
        pcall_depth: abi::limits::MAX_PCALL_DEPTH,
        ..roomy()
    };
    for port in [1u16, 2, 3] {
        // with memory: what each case does normally
        let (mut s, _) = load_with(ALLOCATING, limits, OnError::Break);
        let (r, _) = s
            .instance(0)
            .run(0, &SlicePacket::new(&tcp4(port)), &limits);
        let normal = if port == 2 {
            Err(ErrorKind::Lua)
        } else {
            Ok(Verdict::Accept)
        };
        assert_eq!(r, normal, "port {port} with memory");

        // a fresh instance (its stacks only as large as its load needed) on a host whose
        // every allocation fails: wasmi must report it, not abort the process (the kernel)
        let (mut s, _) = load_with(ALLOCATING, limits, OnError::Break);
        let p = tcp4(port);
        let pkt = SlicePacket::new(&p);
        let inst = s.instance(0);
        REFUSED.with(|r| r.set(0));
        FAILING.with(|f| f.set(true));
        let (r, _) = inst.run(0, &pkt, &limits);
        FAILING.with(|f| f.set(false));
        let refused = REFUSED.with(|r| r.get());
        assert!(refused > 0, "port {port}: the call never asked for memory");
        assert_eq!(r, Err(ErrorKind::Memory), "port {port}: {refused} refused");
        assert!(inst.poisoned(), "port {port}: a failed call must poison");
        assert_eq!(inst.message(), "out of memory");
    }
}

#[test]
fn a_load_whose_linear_memory_cannot_be_allocated_is_enomem_and_is_announced() {
    // In the kernel a load cannot fail an allocation except linear memory, which the runtime
    // announces to the host first (Host::linear_memory); wasmi allocates it fallibly. Model:
    // every allocation succeeds except the announced one. The first announcement is the
    // guest's initial memory (instantiation), the second the growth to the memory limit.
    let limits = roomy();
    for nth in 0..2 {
        let h = Arc::new(PausingHost::default());
        REFUSED.with(|r| r.set(0));
        LINEAR_FAILS_AFTER.with(|n| n.set(Some(nth)));
        let r = load_percpu(ACCEPT, 1, limits, h.clone());
        LINEAR_FAILS_AFTER.with(|n| n.set(None));
        ANNOUNCED.with(|a| a.set(0));
        let e = r.err().expect("a load without its linear memory must fail");
        assert!(
            matches!(e, LoadError::NoMemory(m) if m == limits.memory),
            "announcement {nth}: {e}"
        );
        assert_eq!(REFUSED.with(|r| r.get()), 1, "announcement {nth}");
        // a failed allocation is followed by a cancel (0): nothing announced stays pending
        let seen = h.linear.lock().unwrap().clone();
        assert_eq!(seen.last(), Some(&0), "announcement {nth}: {seen:?}");
        let seen: Vec<usize> = seen.into_iter().filter(|&b| b > 0).collect();
        assert_eq!(seen.len(), nth as usize + 1, "announcement {nth}: {seen:?}");
        assert!(seen[0] > 0, "the guest's initial memory: {seen:?}");
        if nth == 1 {
            assert_eq!(
                seen[1] as u64, limits.memory,
                "the growth to the limit: {seen:?}"
            );
        }
    }
    // nothing failing: both announced, the load works
    let h = Arc::new(PausingHost::default());
    load_percpu(ACCEPT, 1, limits, h.clone()).expect("load");
    let seen = h.linear.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn binding_on_a_host_that_cannot_allocate_is_an_error_not_an_abort() {
    // binding runs with bottom halves disabled in the kernel (a rule added, or an entry
    // caught up on the packet path): every allocation there must be able to fail
    let h = Arc::new(PausingHost::default());
    let s = load_percpu(
        "function process_packet(p, a) return lp.ACCEPT end function other(p, a) return lp.DROP end",
        2,
        roomy(),
        h,
    )
    .expect("load");
    let p = tcp4(80);
    let pkt = SlicePacket::new(&p);
    let failing = |f: &mut dyn FnMut()| {
        REFUSED.with(|r| r.set(0));
        FAILING.with(|x| x.set(true));
        f();
        FAILING.with(|x| x.set(false));
        REFUSED.with(|r| r.get())
    };
    // a new entry on CPU 0: its copy cannot be made
    let mut r = None;
    let refused = failing(&mut || {
        // SAFETY: single-threaded test: nothing else uses the slots
        r = Some(unsafe { s.bind_on_cpu(0, "other", Some(b"an argument")) });
    });
    assert!(refused > 0);
    assert!(
        matches!(r, Some(Err(LoadError::OutOfMemory))),
        "{:?}",
        r.map(|r| r.map_err(|e| e.to_string()))
    );
    assert_eq!(s.entries(), 0, "a failed bind must not leave an entry");
    // with memory it binds on CPU 0; CPU 1 must catch up on its first packet, which cannot
    // copy the entry: a memory error resolved by the policy, then it catches up later
    // SAFETY: as above
    let e = unsafe { s.bind_on_cpu(0, "other", Some(b"an argument")) }.expect("bind");
    let mut out = None;
    let refused = failing(&mut || {
        // SAFETY: as above
        out = Some(unsafe { s.run_on_cpu(1, e, &pkt) });
    });
    let out = out.expect("ran");
    assert!(refused > 0);
    assert_eq!(out.error, Some(ErrorKind::Memory));
    // SAFETY: as above
    let out = unsafe { s.run_on_cpu(1, e, &pkt) };
    assert_eq!((out.error, out.verdict), (None, Verdict::Drop));
    // a function that does not exist, on a host that cannot copy its name for the error
    let mut r = None;
    failing(&mut || {
        // SAFETY: as above
        r = Some(unsafe { s.bind_on_cpu(0, "missing", None) });
    });
    assert!(matches!(r, Some(Err(LoadError::OutOfMemory))));
}

#[test]
fn the_collector_keeps_a_big_heap_in_memory_and_every_call_in_its_fuel() {
    // A live heap of 6,000 small objects (~1 MB: no big table, whose traversal is one step)
    // and ~1 KB of garbage a call, old objects pointing at new ones. The guest's pace must end
    // its cycles before the heap meets the memory limit, in steps that fit each call's fuel
    // (docs/engines.md, "The collector's pace"); Lua's own pacing ran 112 of 20,000 such calls
    // out of fuel.
    let limits = Limits {
        memory: 4 << 20,
        ..roomy()
    };
    let (mut s, _) = load_with(
        r#"
local head
for i = 1, 6000 do head = {next = head, v = tostring(i)} end
local n = 0
function process_packet(p)
  n = n + 1
  local t = {}
  for i = 1, 8 do t[i] = {i, n} end
  head.v = tostring(n) .. "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
  return lp.ACCEPT
end"#,
        limits,
        OnError::Break,
    );
    let p = tcp4(80);
    let inst = s.instance(0);
    let mut most = 0;
    for i in 0..4000 {
        let (r, fuel) = inst.run(0, &SlicePacket::new(&p), &limits);
        assert_eq!(r, Ok(Verdict::Accept), "call {i}");
        most = most.max(fuel);
    }
    assert!(most < 80_000, "most fuel in one call: {most}");
}
