//! The per-CPU script the kernel uses: slots run concurrently, entries bind lazily, a poisoned
//! slot resolves to the policy until a fresh instance is installed, counters add up.

mod common;

use common::{host, tcp4};
use runtime::{
    EngineKind, ErrorKind, GuestCache, Limits, OnError, PerCpuScript, SlicePacket, Verdict,
};
use runtime::{Host, LogLevel};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const COUNTER: &str = "
local seen = 0
function process_packet(pkt)
  seen = seen + 1
  if seen > 2 then return lp.DROP end
  return lp.ACCEPT
end
function check(pkt, arg) if arg == 'web' then return lp.ACCEPT end return lp.BREAK end
function spin(pkt) pcall(function() while true do end end) while true do end end
";

/// Each test runs on every engine the kernel has (`compiled` with the feature).
macro_rules! on_each_engine {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn wasmi() {
                super::$name(runtime::EngineKind::Wasmi)
            }
            #[cfg(feature = "compiled")]
            #[test]
            fn compiled() {
                super::$name(runtime::EngineKind::Compiled)
            }
        }
    )*};
}

on_each_engine!(
    slots_run_concurrently_and_keep_their_own_state,
    entries_bind_lazily_with_the_same_index_everywhere,
    a_poisoned_slot_applies_the_policy_until_a_fresh_instance_is_installed,
    limits_and_policy_change_live_and_a_replacement_keeps_entries,
    one_call_in_time_every_is_timed_and_counted_that_many_times,
    maps_take_no_more_than_the_room_the_host_leaves,
);

fn load(
    engine: EngineKind,
    src: &str,
    n: usize,
    limits: Limits,
    on_error: OnError,
) -> PerCpuScript {
    let mut cache = GuestCache::new();
    PerCpuScript::load(
        &mut cache,
        engine,
        guest_lua::LUA_WASM,
        "percpu",
        src.as_bytes(),
        limits,
        on_error,
        n,
        host(),
        None,
    )
    .unwrap_or_else(|e| panic!("load failed: {e}"))
}

fn slots_run_concurrently_and_keep_their_own_state(engine: EngineKind) {
    let s = Arc::new(load(engine, COUNTER, 4, Limits::default(), OnError::Break));
    // SAFETY: single-threaded here; slot 0 is used by this thread only.
    let e = unsafe { s.bind_on_cpu(0, "process_packet", None) }.unwrap();
    assert_eq!(e, 0);
    let threads: Vec<_> = (0..4)
        .map(|cpu| {
            let s = s.clone();
            std::thread::spawn(move || {
                let p = tcp4(80);
                (0..3)
                    // SAFETY: each thread owns one slot.
                    .map(|_| unsafe { s.run_on_cpu(cpu, e, &SlicePacket::new(&p)) }.verdict)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(
            t.join().unwrap(),
            [Verdict::Accept, Verdict::Accept, Verdict::Drop],
            "each CPU has its own Lua state"
        );
    }
    let st = s.stats();
    assert_eq!(st.run_cnt, 12);
    assert_eq!(st.verdict_count(Verdict::Accept), 8);
    assert_eq!(st.verdict_count(Verdict::Drop), 4);
    assert!(s.memory_bytes() >= 4 * 64 * 1024);
}

fn entries_bind_lazily_with_the_same_index_everywhere(engine: EngineKind) {
    let s = load(engine, COUNTER, 3, Limits::default(), OnError::Break);
    let p = tcp4(80);
    // SAFETY: single-threaded: no two calls overlap.
    unsafe {
        assert_eq!(s.bind_on_cpu(1, "process_packet", None).unwrap(), 0);
        assert_eq!(s.bind_on_cpu(2, "check", Some(b"web")).unwrap(), 1);
        assert_eq!(s.bind_on_cpu(0, "check", Some(b"ssh")).unwrap(), 2);
        assert_eq!(
            s.bind_on_cpu(1, "check", Some(b"web")).unwrap(),
            1,
            "shared"
        );
        assert!(s.bind_on_cpu(0, "missing", None).is_err());
        assert_eq!(s.entries(), 3);
        for cpu in 0..3 {
            let web = s.run_on_cpu(cpu, 1, &SlicePacket::new(&p));
            let ssh = s.run_on_cpu(cpu, 2, &SlicePacket::new(&p));
            assert_eq!(
                (web.verdict, web.error),
                (Verdict::Accept, None),
                "cpu {cpu}"
            );
            assert_eq!(
                (ssh.verdict, ssh.error),
                (Verdict::Break, None),
                "cpu {cpu}"
            );
        }
        let bad = s.run_on_cpu(0, 7, &SlicePacket::new(&p));
        assert_eq!(bad.error, Some(ErrorKind::Trap));
        let none = s.run_on_cpu(9, 0, &SlicePacket::new(&p));
        assert_eq!(none.error, Some(ErrorKind::Trap));
    }
}

fn a_poisoned_slot_applies_the_policy_until_a_fresh_instance_is_installed(engine: EngineKind) {
    let limits = Limits {
        instructions: 0,
        fuel: abi::limits::MAX_FUEL,
        ..Limits::default()
    };
    let s = load(engine, COUNTER, 2, limits, OnError::Drop);
    let p = tcp4(80);
    // SAFETY: single-threaded: no two calls overlap, and the old instance is dropped after
    // the last call that could use it.
    unsafe {
        let main = s.bind_on_cpu(0, "process_packet", None).unwrap();
        let spin = s.bind_on_cpu(0, "spin", None).unwrap();
        assert_eq!(
            s.run_on_cpu(0, main, &SlicePacket::new(&p)).verdict,
            Verdict::Accept
        );
        let o = s.run_on_cpu(0, spin, &SlicePacket::new(&p));
        assert_eq!(
            (o.verdict, o.error, o.poisoned),
            (Verdict::Drop, Some(ErrorKind::Fuel), true)
        );
        assert!(s.needs_rebuild(0));
        assert!(!s.needs_rebuild(1));
        let o = s.run_on_cpu(0, main, &SlicePacket::new(&p));
        assert_eq!(
            (o.verdict, o.error, o.poisoned),
            (Verdict::Drop, None, false),
            "policy"
        );
        assert_eq!(
            s.run_on_cpu(1, main, &SlicePacket::new(&p)).verdict,
            Verdict::Accept
        );
        let fresh = s.build_instance().unwrap();
        let old = s.install(0, Box::new(fresh));
        drop(old);
        assert!(!s.needs_rebuild(0));
        // fresh Lua state: the counter starts again
        let o = s.run_on_cpu(0, main, &SlicePacket::new(&p));
        assert_eq!((o.verdict, o.error), (Verdict::Accept, None));
    }
    let st = s.stats();
    assert_eq!(st.rebuilds, 1);
    assert_eq!(st.error_count(ErrorKind::Fuel), 1);
    assert_eq!(st.run_cnt, 5);
}

fn limits_and_policy_change_live_and_a_replacement_keeps_entries(engine: EngineKind) {
    let s = load(engine, COUNTER, 1, Limits::default(), OnError::Break);
    let p = tcp4(80);
    // SAFETY: single-threaded.
    let spin = unsafe {
        s.bind_on_cpu(0, "process_packet", None).unwrap();
        s.bind_on_cpu(0, "check", Some(b"web")).unwrap();
        s.bind_on_cpu(0, "spin", None).unwrap()
    };
    assert!(s
        .set_limits(Limits {
            fuel: 0,
            ..Limits::default()
        })
        .is_err());
    let tight = Limits {
        fuel: 100_000,
        instructions: 0,
        ..Limits::default()
    };
    s.set_limits(tight).unwrap();
    assert_eq!(s.limits(), tight);
    s.set_on_error(OnError::Accept);
    // SAFETY: single-threaded.
    let o = unsafe { s.run_on_cpu(0, spin, &SlicePacket::new(&p)) };
    assert_eq!(
        (o.verdict, o.error),
        (Verdict::Accept, Some(ErrorKind::Fuel))
    );
    assert_eq!(o.fuel, 100_000);

    let mut cache = GuestCache::new();
    let v2 = "function process_packet() return lp.BREAK end
              function check(pkt, arg) return lp.DROP end
              function spin() return lp.CONTINUE end";
    let next = PerCpuScript::load(
        &mut cache,
        engine,
        guest_lua::LUA_WASM,
        "percpu",
        v2.as_bytes(),
        Limits::default(),
        OnError::Break,
        2,
        host(),
        Some(&s),
    )
    .unwrap();
    assert_eq!(next.entries(), 3);
    // SAFETY: single-threaded.
    unsafe {
        assert_eq!(
            next.run_on_cpu(1, 1, &SlicePacket::new(&p)).verdict,
            Verdict::Drop
        );
        assert_eq!(
            next.run_on_cpu(1, 2, &SlicePacket::new(&p)).verdict,
            Verdict::Continue
        );
    }
    let missing = PerCpuScript::load(
        &mut cache,
        engine,
        guest_lua::LUA_WASM,
        "percpu",
        b"function process_packet() end",
        Limits::default(),
        OnError::Break,
        1,
        host(),
        Some(&s),
    );
    assert!(
        missing.is_err(),
        "a replacement must define every bound function"
    );
}

/// A clock that advances 1,000 ns per read and times one call in four, as the kernel's
/// `time_every` module parameter does.
#[derive(Default)]
struct SamplingHost {
    reads: AtomicU64,
}

impl Host for SamplingHost {
    fn now_ns(&self) -> u64 {
        0
    }
    fn clock_ns(&self) -> u64 {
        1000 * self.reads.fetch_add(1, Ordering::Relaxed)
    }
    fn time_every(&self) -> u32 {
        4
    }
    fn log(&self, _script: &str, _level: LogLevel, _line: &[u8]) {}
    fn seed(&self) -> u32 {
        1
    }
}

fn one_call_in_time_every_is_timed_and_counted_that_many_times(engine: EngineKind) {
    let h = Arc::new(SamplingHost::default());
    let mut cache = GuestCache::new();
    let src = "function process_packet(p) return lp.ACCEPT end";
    let s = PerCpuScript::load(
        &mut cache,
        engine,
        guest_lua::LUA_WASM,
        "sampled",
        src.as_bytes(),
        Limits::default(),
        OnError::Break,
        2,
        h.clone(),
        None,
    )
    .unwrap();
    let p = tcp4(80);
    // SAFETY: single-threaded: no two calls overlap.
    unsafe {
        s.bind_on_cpu(0, "process_packet", None).unwrap();
        for _ in 0..10 {
            s.run_on_cpu(0, 0, &SlicePacket::new(&p));
        }
        // slot 1 keeps its own count: its first call is timed
        s.run_on_cpu(1, 0, &SlicePacket::new(&p));
    }
    // slot 0 timed calls 1, 5 and 9, slot 1 its first: two reads each, 1,000 ns apart
    assert_eq!(h.reads.load(Ordering::Relaxed), 8);
    let st = s.stats();
    assert_eq!(st.run_cnt, 11);
    // a slot's first call counts once (the coldest: not a sample of the others), the later
    // samples four times each (themselves and the three untimed calls before them)
    assert_eq!(st.run_time_ns, (1 + 4 + 4 + 1) * 1000);
    assert_eq!(st.run_time_max_ns, 1000);
}

/// A host that lets a script's maps take `room` bytes (the kernel: what the network
/// namespace's script memory cap leaves).
struct RoomHost(usize);

impl Host for RoomHost {
    fn now_ns(&self) -> u64 {
        0
    }
    fn log(&self, _script: &str, _level: LogLevel, _line: &[u8]) {}
    fn seed(&self) -> u32 {
        1
    }
    fn map_room(&self) -> usize {
        self.0
    }
}

fn maps_take_no_more_than_the_room_the_host_leaves(engine: EngineKind) {
    const MAPS: &str = "
local a = lp.map{name = 'a', key_size = 16, max_entries = 1000}
local b = lp.map{name = 'b', key_size = 16, value = 'bytes', value_size = 64, max_entries = 100}
function process_packet(p) return lp.ACCEPT end";
    let load = |room: usize, src: &str, from: Option<&PerCpuScript>| {
        PerCpuScript::load(
            &mut GuestCache::new(),
            engine,
            guest_lua::LUA_WASM,
            "maps",
            src.as_bytes(),
            Limits::default(),
            OnError::Break,
            2,
            Arc::new(RoomHost(room)),
            from,
        )
    };
    let all = load(usize::MAX, MAPS, None).unwrap();
    let bytes = all.maps().bytes();
    let a = all.maps().iter().next().unwrap().map.spec().bytes();
    assert!(a > 0 && bytes > a, "{a} of {bytes}");
    // room for both maps, exactly
    let fits = load(bytes, MAPS, None).unwrap();
    assert_eq!(fits.maps().bytes(), bytes);
    // a byte short: the second declaration fails the load, naming the cap
    let e = load(bytes - 1, MAPS, None)
        .err()
        .expect("a load past the room");
    let msg = format!("{e}");
    assert!(
        msg.contains("script memory cap") && msg.contains("max_netns_mbytes"),
        "{msg}"
    );
    assert!(
        msg.contains("maps:3:"),
        "the declaration past the room: {msg}"
    );
    // a replacement keeps the maps it shares (no room needed for them), not a new one
    let kept = load(0, MAPS, Some(&fits)).unwrap();
    assert_eq!(kept.maps().bytes(), bytes);
    let more = format!("{MAPS}\nlocal c = lp.map{{name = 'c', key_size = 8, max_entries = 1}}");
    let e = load(bytes, &more, Some(&fits))
        .err()
        .expect("a new map past the room");
    assert!(format!("{e}").contains("max_netns_mbytes"), "{e}");
}
