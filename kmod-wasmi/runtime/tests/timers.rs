//! lp.timer and lp.cancel through the kernel's script container: a packet's call arms a timer,
//! the embedder's driver is asked to wake it on the CPU that armed it, and the wake-up runs it
//! as a call of its own in that instance (sending, using maps, arming more); the pool's cap,
//! cancelling, errors inside a timer, and a timer's fuel.

mod common;

use common::*;
use runtime::timers::TimerDriver;
use runtime::{
    EngineKind, GuestCache, Limits, Meta, OnError, OwnedPacket, PerCpuScript, TimerFire, Verdict,
};
use std::sync::{Arc, Mutex};

/// A driver that records the wake-ups asked for.
#[derive(Default)]
struct Wakeups(Mutex<Vec<(usize, usize, u32)>>);

struct Driver(Arc<Wakeups>);

impl TimerDriver for Driver {
    fn arm(&self, index: usize, cpu: usize, delay_ms: u32) -> bool {
        self.0 .0.lock().unwrap().push((index, cpu, delay_ms));
        true
    }
    fn cancel(&self, _: usize) -> bool {
        true
    }
}

fn load(src: &str, cpus: usize) -> (PerCpuScript, Arc<Wakeups>, Arc<TestHost>) {
    let h = host();
    let mut cache = GuestCache::new();
    let limits = Limits {
        fuel: abi::limits::MAX_FUEL,
        ..Limits::default()
    };
    let s = PerCpuScript::load(
        &mut cache,
        EngineKind::Wasmi,
        guest_lua::LUA_WASM,
        "timers",
        src.as_bytes(),
        limits,
        OnError::Break,
        cpus,
        h.clone(),
        None,
    )
    .unwrap_or_else(|e| panic!("load failed: {e}"));
    let w = Arc::new(Wakeups::default());
    s.set_timer_driver(Box::new(Driver(w.clone())));
    for cpu in 0..cpus {
        // SAFETY: one thread: no other call on any slot.
        unsafe { s.bind_on_cpu(cpu, runtime::DEFAULT_ENTRY, None) }.unwrap();
    }
    (s, w, h)
}

fn packet() -> OwnedPacket {
    OwnedPacket::new(
        ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], &udp(4000, 53, b"hi")),
        Meta::default(),
    )
}

fn run(s: &PerCpuScript, cpu: usize) -> (Verdict, Option<runtime::ErrorKind>) {
    let p = packet();
    // SAFETY: one thread.
    let o = unsafe { s.run_on_cpu(cpu, 0, &p) };
    (o.verdict, o.error)
}

/// Wakes timer `index` on `cpu`; what it did and what it sent.
fn fire(s: &PerCpuScript, index: usize, cpu: usize) -> (TimerFire, Vec<Vec<u8>>) {
    let p = OwnedPacket::default();
    // SAFETY: one thread.
    let r = unsafe { s.fire_timer(index, cpu, &p) };
    (r, p.sent.take().into_iter().map(|(_, b)| b).collect())
}

const DEFERRED_SEND: &str = r#"
local m = lp.map{name = "fired", type = "hash", key_size = 8, value = "number", max_entries = 4}
function process_packet(pkt)
  local src = pkt.ip.saddr -- a string (the packet's objects are valid in its call only)
  local id, why = lp.timer(50, function(arg)
    assert(arg == nil, "a timer has no packet")
    m:add("fired", 1)
    local p = lp.packet.udp{src = "10.0.0.2", dst = src, sport = 53, dport = 4000, payload = "later"}
    assert(lp.send(p))
  end)
  assert(id, why)
  return lp.ACCEPT
end
"#;

#[test]
fn a_timer_runs_later_in_the_instance_that_armed_it() {
    let (s, w, h) = load(DEFERRED_SEND, 2);
    assert_eq!(run(&s, 1), (Verdict::Accept, None));
    assert_eq!(
        *w.0.lock().unwrap(),
        [(0, 1, 50)],
        "woken on the arming CPU"
    );
    assert_eq!(s.stats().timers.pending, 1);
    // woken on the wrong CPU: sent there
    assert_eq!(fire(&s, 0, 0).0, TimerFire::Elsewhere(1));
    let (r, sent) = fire(&s, 0, 1);
    assert_eq!(r, TimerFire::Ran { poisoned: false });
    assert_eq!(sent.len(), 1, "the timer's packet: {:?}", h.lines);
    assert!(sent[0].ends_with(b"later"));
    assert_eq!(&sent[0][16..20], &[10, 0, 0, 1], "to the packet's source");
    // once
    assert_eq!(fire(&s, 0, 1).0, TimerFire::Nothing);
    let st = s.stats();
    assert_eq!(
        (st.timers.runs, st.timers.errors, st.timers.pending),
        (1, 0, 0)
    );
    assert_eq!(st.sends.sent_packets, 1);
    assert_eq!(st.run_cnt, 1, "a timer is not a packet");
}

#[test]
fn timers_are_bounded_cancellable_and_unavailable_at_load() {
    let src = r#"
local at_load, why_load = lp.timer(10, function() end)
local ids, calls = {}, 0
local function never() error("cancelled, never runs") end
function process_packet(pkt)
  assert(at_load == nil and why_load:find("not available"), tostring(why_load))
  calls = calls + 1
  -- 32 a call (each arm costs ~1,000-2,000 fuel as the registry grows)
  if calls <= 2 then
    for i = 1, 32 do ids[#ids + 1] = assert(lp.timer(1000, never)) end
    return lp.ACCEPT
  end
  local extra, why = lp.timer(1000, never)
  assert(extra == nil and why == "too many timers pending", tostring(why))
  assert(lp.cancel(ids[5]) == true)
  local again, why2 = lp.cancel(ids[5])
  assert(again == false and why2 == "not pending", tostring(why2))
  local made_up = lp.cancel(123456)
  assert(made_up == false)
  -- a freed entry takes a timer again
  assert(lp.timer(0, function() log_ran = true end))
  for pass, bad in ipairs{function() lp.timer(-1, print) end,
                          function() lp.timer(3600001, print) end,
                          function() lp.timer(10, "print") end,
                          function() lp.timer(1.5, print) end} do
    assert(not pcall(bad), "bad arguments are errors: " .. pass)
  end
  return lp.ACCEPT
end
"#;
    let (s, w, h) = load(src, 1);
    for _ in 0..2 {
        assert_eq!(run(&s, 0), (Verdict::Accept, None), "{:?}", h.lines);
    }
    assert_eq!(run(&s, 0), (Verdict::Accept, None), "{:?}", h.lines);
    let st = s.stats().timers;
    assert_eq!((st.pending, st.dropped), (64, 1));
    // the cancelled one's wake-up runs nothing; the one armed after it runs
    let wakeups = w.0.lock().unwrap().clone();
    assert_eq!(wakeups.len(), 65);
    let (last, _, delay) = wakeups[64];
    assert_eq!((last, delay), (4, 0), "entry 4 reused");
    assert_eq!(fire(&s, last, 0).0, TimerFire::Ran { poisoned: false });
    assert_eq!(s.stats().timers.runs, 1);
}

#[test]
fn errors_in_a_timer_are_logged_and_counted_and_the_instance_goes_on() {
    let src = r#"
n = 0
function process_packet(pkt)
  n = n + 1
  if n == 1 then lp.timer(1, function() error("boom in a timer") end) end
  if n == 2 then lp.timer(1, function() while true do end end) end
  if n == 3 then
    -- a timer that re-arms itself: a chain, one run per wake-up
    local left = 3
    local function tick()
      left = left - 1
      if left > 0 then assert(lp.timer(1, tick)) end
    end
    lp.timer(1, tick)
  end
  return lp.ACCEPT
end
"#;
    let (s, w, h) = load(src, 1);
    run(&s, 0);
    assert_eq!(fire(&s, 0, 0).0, TimerFire::Ran { poisoned: false });
    assert!(
        h.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("boom in a timer")),
        "{:?}",
        h.lines
    );
    run(&s, 0);
    assert_eq!(fire(&s, 0, 0).0, TimerFire::Ran { poisoned: false });
    let st = s.stats();
    assert_eq!((st.timers.runs, st.timers.errors), (2, 2));
    assert_eq!(
        st.error_count(runtime::ErrorKind::Fuel),
        1,
        "the loop ran out of fuel"
    );
    assert_eq!(run(&s, 0), (Verdict::Accept, None), "the instance goes on");
    // each wake-up asked for runs once: the chain's three
    let mut runs = 0;
    let mut seen = 2;
    while w.0.lock().unwrap().len() > seen {
        let (index, _, _) = w.0.lock().unwrap()[seen];
        seen += 1;
        assert_eq!(fire(&s, index, 0).0, TimerFire::Ran { poisoned: false });
        runs += 1;
        assert!(runs < 10);
    }
    assert_eq!(runs, 3);
    assert_eq!(s.stats().timers.pending, 0);
}

#[test]
fn a_closed_pool_runs_nothing_and_arms_nothing() {
    let (s, w, _) = load(DEFERRED_SEND, 1);
    run(&s, 0);
    s.timers().close();
    assert_eq!(fire(&s, 0, 0).0, TimerFire::Nothing);
    // the packet's lp.timer now fails, and its assert is the call's error
    assert_eq!(run(&s, 0).1, Some(runtime::ErrorKind::Lua));
    assert_eq!(w.0.lock().unwrap().len(), 1);
    assert_eq!(s.stats().timers.runs, 0);
}
