use lpctl::engine::{self, Config, Kind};
use runtime::{Limits, OnError, SlicePacket};
#[test]
fn probe() {
    let src = r#"
local function recurse() string.gsub("x", "x", recurse) end
local function cdepth(n) if n == 0 then return 0 end return select(2, string.gsub("x", "x", function() return cdepth(n - 1) end)) end
function process_packet(pkt)
  local d = pkt.ip.ttl
  if d == 1 then recurse() end
  return lp.QUEUE(cdepth(d))
end"#;
    for rec in [16u32, 64, 128, 256, 1024, 4096] {
        let cfg = Config { name: "p.lua".into(), source: src.as_bytes().to_vec(), function: "process_packet".into(), arg: None,
            limits: Limits { recursion: rec, ..Limits::default() }, on_error: OnError::Break };
        let a = engine::load(Kind::Wasmi, &cfg);
        let b = engine::load(Kind::Wasmtime, &cfg);
        let (mut a, mut b) = match (a, b) { (Ok(a), Ok(b)) => (a, b), (a, b) => { eprintln!("rec {rec}: load {:?} | {:?}", a.err(), b.err()); continue } };
        for ttl in [1u8, 2, 5, 10, 20, 50, 100] {
            let p = vec![0x45u8, 0, 0, 20, 0, 0, 0, 0, ttl, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
            let ra = a.run(&SlicePacket::new(&p));
            let rb = b.run(&SlicePacket::new(&p));
            eprintln!("rec {rec} ttl {ttl}: {:?} {:?} | {:?} {:?}", ra.verdict, ra.error, rb.verdict, rb.error);
        }
    }
}
