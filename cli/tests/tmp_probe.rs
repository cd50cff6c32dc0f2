use lpctl::engine::{self, Config, Kind};
use runtime::{Limits, OnError, SlicePacket};
#[test]
fn probe() {
    let src = r#"
local function cdepth(n) if n == 0 then return 0 end return select(2, string.gsub("x", "x", function() return cdepth(n - 1) end)) end
local function nest(n)
  if n == 0 then return true end
  local ok, err = pcall(nest, n - 1)
  if not ok then error(err, 0) end
  return ok
end
function process_packet(pkt)
  if pkt.ip.id == 1 then nest(pkt.ip.ttl) else cdepth(pkt.ip.ttl) end
  return lp.QUEUE(pkt.ip.ttl)
end"#;
    for (rec, depth) in [(16u32, 1u32), (16, 8), (32, 8), (64, 8), (96, 8), (128, 8), (192, 8), (256, 8), (1024, 8), (64, 32), (256, 32), (1024, 32), (16384, 32)] {
        let cfg = Config { name: "p.lua".into(), source: src.as_bytes().to_vec(), function: "process_packet".into(), arg: None,
            limits: Limits { recursion: rec, pcall_depth: depth, instructions: 0, ..Limits::default() }, on_error: OnError::Break };
        let mut out = String::new();
        for kind in [Kind::Wasmi, Kind::Wasmtime] {
            let Ok(mut e) = engine::load(kind, &cfg) else { out += &format!(" {kind}: load fails"); continue };
            for id in [0u8, 1] {
                let mut max = 0;
                for ttl in 1..=45u8 {
                    let p = vec![0x45u8, 0, 0, 20, 0, id, 0, 0, ttl, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
                    if e.run(&SlicePacket::new(&p)).error.is_none() { max = ttl } else { break }
                }
                out += &format!(" {kind} {}: {max}", if id == 1 { "pcall" } else { "C" });
            }
        }
        eprintln!("rec {rec} pcall {depth}:{out}");
    }
}
