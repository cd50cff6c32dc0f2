//! `lpctl script bench`: one script over a capture on several engines in the same run, with the
//! ratio of each to native Lua.

use crate::engine::{self, Kind};
use crate::output::{self, Mode};
use crate::run::{packets, read_capture, Options};
use anyhow::{bail, Result};
use runtime::OwnedPacket;
use serde_json::json;
use std::time::{Duration, Instant};

/// One engine's measurement.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub engine: Kind,
    pub ns_per_packet: f64,
    pub fuel_per_packet: Option<f64>,
    pub packets: u64,
}

/// Runs the capture's packets through `kind` repeatedly for at least `min` (and at least 3
/// passes), after one warm-up pass. Fuel comes from the warm-up pass.
pub fn measure(opts: &Options, kind: Kind, min: Duration) -> Result<Measurement> {
    let cfg = opts.config()?;
    let capture = read_capture(&opts.pcap)?;
    if capture.packets.is_empty() {
        bail!("{}: no IP packets to measure", opts.pcap.display());
    }
    let pkts = packets(&capture, &opts.meta)?;
    // scripts that write packets (NAT) see every pass the capture as it was: each run starts
    // from the original bytes (a copy of ~100 bytes, the same for every engine)
    let originals: Vec<Vec<u8>> = capture.packets.iter().map(|(_, _, d)| d.clone()).collect();
    let restore = |p: &OwnedPacket, orig: &[u8]| p.data.borrow_mut().copy_from_slice(orig);
    let mut eng = engine::load(kind, &cfg)?;
    let mut fuel = 0u64;
    let mut metered = false;
    for (p, o) in pkts.iter().zip(&originals) {
        if let Some(f) = eng.run(p).fuel {
            fuel += f;
            metered = true;
        }
        restore(p, o);
    }
    let mut runs = 0u64;
    let start = Instant::now();
    let mut passes = 0;
    while passes < 3 || start.elapsed() < min {
        for (p, o) in pkts.iter().zip(&originals) {
            std::hint::black_box(eng.run(std::hint::black_box(p)));
            restore(p, o);
        }
        runs += pkts.len() as u64;
        passes += 1;
    }
    let ns = start.elapsed().as_nanos() as f64 / runs as f64;
    Ok(Measurement {
        engine: kind,
        ns_per_packet: ns,
        fuel_per_packet: metered.then(|| fuel as f64 / pkts.len() as f64),
        packets: runs,
    })
}

/// The sandbox's footprint: linear memory of one instance and the Lua heap in it after one
/// pass over the packets, and the time to build an instance from the cached compiled guest.
#[derive(Clone, Copy, Debug)]
pub struct InstanceCost {
    pub memory_bytes: usize,
    pub lua_bytes: usize,
    pub create_us: f64,
    pub compile_ms: f64,
}

pub fn instance_cost(opts: &Options) -> Result<InstanceCost> {
    use runtime::{instance::Instance, GuestCache};
    let cfg = opts.config()?;
    let capture = read_capture(&opts.pcap)?;
    let host = engine::wasmi::CliHost::new(false);
    let mut cache = GuestCache::new();
    let t = Instant::now();
    let guest = cache.get(cfg.guest_wasm(), cfg.limits.recursion)?;
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let new = || Instance::new(&*guest, &cfg.name, &cfg.source, &cfg.limits, host.clone());
    let mut inst = new()?;
    let entry = inst.bind(&cfg.function, cfg.arg.as_deref())?;
    for p in &packets(&capture, &opts.meta)? {
        let _ = inst.run(entry, p, &cfg.limits);
    }
    let n = 20;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(new()?);
    }
    Ok(InstanceCost {
        memory_bytes: inst.memory_size(),
        lua_bytes: inst.lua_memory(),
        create_us: t.elapsed().as_secs_f64() * 1e6 / n as f64,
        compile_ms,
    })
}

pub fn bench(opts: &Options, engines: &[Kind], millis: u64, mode: Mode) -> Result<()> {
    let min = Duration::from_millis(millis);
    let cost = instance_cost(opts)?;
    let results: Vec<Measurement> = engines
        .iter()
        .map(|k| measure(opts, *k, min))
        .collect::<Result<_>>()?;
    let native = results
        .iter()
        .find(|m| m.engine == Kind::Native)
        .map(|m| m.ns_per_packet);
    if mode.json {
        let rows: Vec<_> = results
            .iter()
            .map(|m| {
                json!({
                    "engine": m.engine.to_string(),
                    "ns_per_packet": (m.ns_per_packet * 10.0).round() / 10.0,
                    "fuel_per_packet": m.fuel_per_packet.map(|f| f.round()),
                    "ratio_to_native": native.map(|n| (m.ns_per_packet / n * 100.0).round() / 100.0),
                    "packets": m.packets,
                })
            })
            .collect();
        output::json(
            mode,
            &json!({
                "results": rows,
                "wasmi_instance": {
                    "memory_bytes": cost.memory_bytes,
                    "lua_bytes": cost.lua_bytes,
                    "create_us": (cost.create_us * 10.0).round() / 10.0,
                    "guest_compile_ms": (cost.compile_ms * 10.0).round() / 10.0,
                },
            }),
        );
        return Ok(());
    }
    crate::outln!(
        "{:<10} {:>12} {:>14} {:>10}",
        "engine",
        "ns/packet",
        "fuel/packet",
        "x native"
    );
    for m in &results {
        let fuel = m
            .fuel_per_packet
            .map(|f| format!("{f:.0}"))
            .unwrap_or_else(|| "-".into());
        let ratio = native
            .map(|n| format!("{:.2}", m.ns_per_packet / n))
            .unwrap_or_else(|| "-".into());
        crate::outln!(
            "{:<10} {:>12.1} {:>14} {:>10}",
            m.engine.to_string(),
            m.ns_per_packet,
            fuel,
            ratio
        );
    }
    Ok(())
}
