//! Fuel follows the work done: guards guest-lua's fuel-region pass (without it a trivial call
//! cost ~27,000 fuel and each Lua instruction ~8,400) and the cost of the entry path.
mod common;
use common::*;
use runtime::{Limits, OnError, SlicePacket};

fn fuel_of(src: &str, instructions: u32) -> u64 {
    let lim = Limits {
        fuel: abi::limits::MAX_FUEL,
        instructions,
        ..Limits::default()
    };
    let (mut s, _) = load_with(src, lim, OnError::Break);
    let p = tcp4(1);
    // the cheapest of a few calls: the garbage collector's steps come and go
    (0..4)
        .map(|_| {
            let o = s.run(0, 0, &SlicePacket::new(&p));
            assert_eq!(o.error, None, "{}", s.message(0));
            o.fuel
        })
        .min()
        .unwrap_or(0)
}

#[test]
fn a_trivial_call_costs_about_two_thousand_fuel() {
    let accept = fuel_of("function process_packet() return lp.ACCEPT end", 0);
    assert!(
        (500..=1_800).contains(&accept),
        "return lp.ACCEPT: {accept} fuel"
    );
    let with_budget = fuel_of("function process_packet() return lp.ACCEPT end", 50_000);
    assert!(
        with_budget < accept + 600,
        "instruction budget overhead: {with_budget} vs {accept}"
    );
}

#[test]
fn a_lua_loop_iteration_costs_about_a_hundred_fuel() {
    let base = fuel_of(
        "function process_packet() for i = 1, 0 do end return lp.ACCEPT end",
        0,
    );
    let loop1k = fuel_of(
        "function process_packet() for i = 1, 1000 do end return lp.ACCEPT end",
        0,
    );
    let per_iteration = (loop1k - base) / 1000;
    assert!(
        (20..=200).contains(&per_iteration),
        "{per_iteration} fuel per FORLOOP"
    );
}

#[test]
fn the_first_call_after_a_load_costs_what_the_next_ones_do() {
    // binding stops the collector; restarting it must not leave a GC step for the first
    // packet (it cost the first call of every fresh instance ~45,000 fuel: 48,984 vs 3,825)
    let lim = roomy();
    for src in [
        "function process_packet(p) local ip = p.ip return ip and ip.saddr and lp.ACCEPT end",
        "function process_packet(p) return tostring(p.len) and lp.ACCEPT end",
    ] {
        let (mut s, _) = load_with(src, lim, OnError::Break);
        let p = tcp4(1);
        let fuel: Vec<u64> = (0..3)
            .map(|_| s.run(0, 0, &SlicePacket::new(&p)).fuel)
            .collect();
        assert!(
            fuel[0] < fuel[1] * 3 / 2,
            "{src}: first call {} fuel, then {:?}",
            fuel[0],
            &fuel[1..]
        );
    }
}

#[test]
fn a_loop_out_of_fuel_is_stopped_softly_and_keeps_its_instance() {
    // No instruction budget (no count hook): fuel alone bounds the call. The first time the
    // guest's counter runs out, the host hands over the held-back share and the interpreter
    // raises "out of fuel" at its next back edge: a Lua error, the instance and its state kept.
    let src = r#"
        local n = 0
        function process_packet(pkt)
          n = n + 1
          if pkt.tcp.dport == 1 then while true do end end
          if pkt.tcp.dport == 2 then
            -- caught, then looping on: the second exhaustion is the hard stop (a trap)
            pcall(function() while true do end end)
            while true do end
          end
          return n
        end
    "#;
    let limits = Limits {
        fuel: 100_000,
        instructions: 0,
        ..Limits::default()
    };
    let (mut s, _h) = common::load_with(src, limits, runtime::OnError::Accept);
    let run = |s: &mut runtime::Script, port: u16| {
        let p = common::tcp4(port);
        let pkt = runtime::SlicePacket::new(&p);
        s.run(0, 0, &pkt)
    };
    let o = run(&mut s, 1);
    assert_eq!(o.error, Some(runtime::ErrorKind::Fuel));
    assert!(
        s.instance(0).message().contains("out of fuel"),
        "{}",
        s.instance(0).message()
    );
    assert!(o.fuel <= 100_000, "{}", o.fuel);
    // the state survived: the counter went on (n = 2 now, a verdict code of 2 is DROP)
    let o = run(&mut s, 80);
    assert_eq!(o.error, None, "{}", s.instance(0).message());
    assert_eq!(o.verdict, runtime::Verdict::Drop);
    // caught once, the loop runs into the hard stop: a trap, the instance rebuilt (n restarts)
    let o = run(&mut s, 2);
    assert_eq!(o.error, Some(runtime::ErrorKind::Fuel));
    let o = run(&mut s, 80);
    assert_eq!(o.error, None);
    assert_eq!(
        o.verdict,
        runtime::Verdict::Accept,
        "a rebuilt instance starts at n = 1"
    );
}

/// A guest that is not the built-in one (here: the built-in guest with a custom section, so
/// another hash) is not trusted to count its own fuel: wasmi meters it, its own counter is
/// set out of reach at instantiation (otherwise its first charge would call `out_of_fuel`,
/// which traps for an untrusted guest, and no instance could be built), and an endless loop
/// is cut by wasmi's fuel: a trap, not the soft stop.
#[test]
fn a_foreign_guest_is_metered_by_wasmi_and_its_own_count_is_ignored() {
    let mut foreign = guest_lua::LUA_WASM.to_vec();
    foreign.extend_from_slice(&[0, 2, 1, b'x']);
    let src = "function process_packet(p) if p.tcp.dport == 2 then while true do end end \
               return lp.ACCEPT end";
    let limits = Limits {
        fuel: 50_000,
        instructions: 0,
        ..Limits::default()
    };
    let mut cache = runtime::GuestCache::new();
    let mut s = runtime::Script::load(
        &mut cache,
        &foreign,
        "foreign.lua",
        src.as_bytes(),
        limits,
        OnError::Accept,
        1,
        host(),
    )
    .unwrap_or_else(|e| panic!("a foreign guest must load: {e}"));
    s.bind(runtime::DEFAULT_ENTRY, None).unwrap();
    let o = s.run(0, 0, &SlicePacket::new(&tcp4(1)));
    assert_eq!(
        (o.verdict, o.error),
        (runtime::Verdict::Accept, None),
        "{}",
        s.message(0)
    );
    assert!(o.fuel > 0 && o.fuel < 50_000, "{}", o.fuel);
    let o = s.run(0, 0, &SlicePacket::new(&tcp4(2)));
    assert_eq!(o.error, Some(runtime::ErrorKind::Fuel), "{}", s.message(0));
    assert_eq!(o.fuel, 50_000);
    assert_eq!(
        s.stats().rebuilds,
        1,
        "a fuel trap poisons the instance: rebuilt"
    );
}
