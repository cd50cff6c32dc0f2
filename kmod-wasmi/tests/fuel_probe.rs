mod common;
use common::*;
use runtime::{Limits, OnError, SlicePacket};
#[test]
#[ignore]
fn probe() {
    for n in [0, 10] {
        let src = format!("function process_packet() for i=1,{n} do end return lp.ACCEPT end");
        let lim = Limits { fuel: 10_000_000_000, instructions: 0, ..Limits::default() };
        let (mut s, _) = load_with(&src, lim, OnError::Break);
        let p = tcp4(1);
        let o = s.run(0, 0, &SlicePacket::new(&p));
        let t = std::time::Instant::now();
        for _ in 0..20000 { s.run(0, 0, &SlicePacket::new(&p)); }
        eprintln!("n={n} fuel={} ns={}", o.fuel, t.elapsed().as_nanos() / 20000);
        let lim = Limits { fuel: 10_000_000_000, instructions: 1_000_000, ..Limits::default() };
        let (mut s, _) = load_with(&src, lim, OnError::Break);
        let o = s.run(0, 0, &SlicePacket::new(&p));
        let t = std::time::Instant::now();
        for _ in 0..20000 { s.run(0, 0, &SlicePacket::new(&p)); }
        eprintln!("  with hook: fuel={} ns={}", o.fuel, t.elapsed().as_nanos() / 20000);
    }
}
