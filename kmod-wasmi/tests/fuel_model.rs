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
