//! The per-call ceiling, measured: hostile scripts that burn all their fuel in different ways
//! (a bare loop, string building and searching, table churn with the GC, pattern
//! backtracking, errors caught by `pcall`, coroutines, packet copies), each run with the
//! largest fuel a script may have and no instruction budget. Prints nanoseconds per call and
//! per unit of fuel; the slowest fuel is what `abi::limits::CALL_FUEL_CEILING` must keep
//! under 1 ms.
//!
//! `cargo bench -p luapkt-runtime --bench fuel_ceiling --features portable-dispatch` measures
//! wasmi's loop dispatch, as the kernel module runs it.

use abi::limits::{CALL_FUEL_CEILING, MAX_FUEL};
use runtime::{GuestCache, Host, Limits, LogLevel, OnError, Script, SlicePacket};
use std::sync::Arc;
use std::time::Instant;

struct BenchHost(Instant);

impl Host for BenchHost {
    fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn log(&self, _: &str, _: LogLevel, _: &[u8]) {}
    fn seed(&self) -> u32 {
        7
    }
}

const SCRIPTS: &[(&str, &str)] = &[
    ("loop", "function process_packet(p) while true do end end"),
    (
        "arith",
        "function process_packet(p) local x = 0 while true do x = (x * 31 + 7) % 1000003 end end",
    ),
    (
        "string-build",
        "function process_packet(p) local s = '' while true do s = s .. 'x' if #s > 4000 then s = '' end end end",
    ),
    (
        "string-rep",
        "function process_packet(p) while true do local s = string.rep('ab', 30000) end end",
    ),
    (
        "find",
        "local s = string.rep('a', 4000) function process_packet(p) while true do s:find('b', 1, true) end end",
    ),
    (
        "pattern",
        "local s = string.rep('a', 60) function process_packet(p) while true do s:find('a-a-a-a-a-b') end end",
    ),
    (
        "tables-gc",
        "function process_packet(p) local t = {} local i = 0 while true do i = i + 1 t[i] = {i, tostring(i)} if i > 2000 then t = {} i = 0 end end end",
    ),
    (
        "pcall-error",
        "function process_packet(p) while true do pcall(error, 'x') end end",
    ),
    (
        "coroutines",
        "function process_packet(p) while true do local c = coroutine.wrap(function() coroutine.yield(1) end) c() end end",
    ),
    (
        "packet-copy",
        "function process_packet(p) while true do local b = p:bytes(0, #p:bytes(0, 1400)) end end",
    ),
    (
        "bytes-hex",
        "local b = lp.bytes.new(1024, 0x41) function process_packet(p) while true do local h = b:hex() end end",
    ),
    (
        "gsub",
        "local s = string.rep('abc ', 500) function process_packet(p) while true do s:gsub('%w+', string.upper) end end",
    ),
    (
        "big-copy",
        "local s = string.rep('x', 200000) function process_packet(p) while true do local t = s .. 'y' end end",
    ),
    (
        "memory-grow",
        "function process_packet(p) local t = {} while true do t[#t + 1] = string.rep('abcdefgh', 8192) if #t > 100 then t = {} end end end",
    ),
    ("sort", "function process_packet(p) while true do local t = {} for i = 1, 300 do t[i] = (i * 7919) % 300 end table.sort(t) end end"),
];

fn packet() -> Vec<u8> {
    let mut p = vec![0u8; 1400];
    p[0] = 0x45;
    p[2] = (1400 >> 8) as u8;
    p[3] = (1400 & 0xff) as u8;
    p[8] = 64;
    p[9] = 17;
    p
}

fn main() {
    // FUEL_BENCH_WRITE=DIR: writes each script to DIR/NAME.lua and exits (the VM suite loads
    // them into the kernel to measure the same scripts there)
    if let Some(dir) = std::env::var_os("FUEL_BENCH_WRITE") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create FUEL_BENCH_WRITE");
        for (name, src) in SCRIPTS {
            std::fs::write(dir.join(format!("{name}.lua")), src).expect("write a script");
        }
        return;
    }
    let calls: usize = std::env::var("FUEL_BENCH_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let limits = Limits {
        fuel: MAX_FUEL,
        instructions: 0,
        ..Limits::default()
    };
    let host: Arc<dyn Host> = Arc::new(BenchHost(Instant::now()));
    // FUEL_BENCH_ENGINE=compiled: the compiled engine (built with the feature `compiled`)
    let compiled = match std::env::var("FUEL_BENCH_ENGINE").as_deref() {
        Ok("compiled") if cfg!(feature = "compiled") => true,
        Ok("compiled") => panic!("FUEL_BENCH_ENGINE=compiled: built without the feature compiled"),
        Ok("wasmi") | Err(_) => false,
        Ok(e) => panic!("FUEL_BENCH_ENGINE={e}: wasmi or compiled"),
    };
    let mut cache = GuestCache::new();
    let pkt = packet();
    println!(
        "fuel per call {MAX_FUEL} (ceiling {CALL_FUEL_CEILING}), {calls} calls each, engine: {}",
        if compiled {
            "compiled"
        } else if cfg!(feature = "portable-dispatch") {
            "wasmi, portable dispatch (as in the kernel)"
        } else {
            "wasmi, default dispatch"
        }
    );
    println!(
        "{:<14} {:>12} {:>12} {:>10} {:>8}",
        "script", "ns/call", "max ns/call", "ns/fuel", "errors"
    );
    // FUEL_BENCH_ONLY=NAME[,NAME]: some scripts only (the VM suite runs `loop` to compare
    // userspace and kernel under the same emulation)
    let only = std::env::var("FUEL_BENCH_ONLY").ok();
    let mut worst: f64 = 0.0;
    for (name, src) in SCRIPTS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|n| n == *name))
        {
            continue;
        }
        let script = (*name, src.as_bytes(), limits, host.clone());
        let (total, max, fuel, errors) = if compiled {
            #[cfg(feature = "compiled")]
            {
                let guest = runtime::compiled_exec::TranslatedGuest::new(guest_lua::LUA_WASM)
                    .expect("the compiled guest");
                measure(guest, script, calls, &pkt)
            }
            #[cfg(not(feature = "compiled"))]
            unreachable!()
        } else {
            let guest = cache
                .get(guest_lua::LUA_WASM, limits.recursion)
                .expect("the wasmi guest");
            measure(guest, script, calls, &pkt)
        };
        let per_fuel = total as f64 / fuel.max(1) as f64;
        worst = worst.max(per_fuel);
        println!(
            "{:<14} {:>12} {:>12} {:>10.3} {:>8}",
            name,
            total / calls as u128,
            max,
            per_fuel,
            errors
        );
    }
    println!(
        "worst: {worst:.3} ns/fuel -> a call at the ceiling ({CALL_FUEL_CEILING} fuel) takes about {:.0} us",
        worst * CALL_FUEL_CEILING as f64 / 1000.0
    );
}

/// Script `(name, source, limits, host)` in one instance of `guest`: `calls` calls of its entry
/// after one warm-up call. Total and longest ns, fuel, errors.
fn measure<G: runtime::guest::CompiledGuest>(
    guest: Arc<G>,
    (name, src, limits, host): (&str, &[u8], Limits, Arc<dyn Host>),
    calls: usize,
    pkt: &[u8],
) -> (u128, u128, u64, usize) {
    let mut s = Script::with_guest(guest, name, src, limits, OnError::Break, 1, host)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let entry = s.bind(runtime::DEFAULT_ENTRY, None).expect("bind");
    // one warm-up call (first use of stacks, caches)
    let _ = s.run(0, entry, &SlicePacket::new(pkt));
    // the call's own time, as the script's counters measure it: a fuel trap poisons the
    // instance and Script::run rebuilds it afterwards, which is not the call's time
    let (mut total, mut max, mut fuel, mut errors) = (0u128, 0u128, 0u64, 0usize);
    for _ in 0..calls {
        let before = s.stats().run_time_ns;
        let o = s.run(0, entry, &SlicePacket::new(pkt));
        let ns = u128::from(s.stats().run_time_ns - before);
        total += ns;
        max = max.max(ns);
        fuel += o.fuel;
        errors += usize::from(o.error.is_some());
    }
    (total, max, fuel, errors)
}
