mod common;
use common::*;
use runtime::{Limits, OnError, SlicePacket};
#[test]
#[ignore]
fn probe() {
    for src in [
        "function process_packet() return lp.ACCEPT end",
        "function process_packet() return 1 end",
    ] {
        for instr in [0u32, 20000] {
            let lim = Limits {
                instructions: instr,
                ..Limits::default()
            };
            let (mut s, _) = load_with(src, lim, OnError::Break);
            let p = tcp4(1);
            let o = s.run(0, 0, &SlicePacket::new(&p));
            let n = 200_000;
            let t = std::time::Instant::now();
            for _ in 0..n {
                s.run(0, 0, &SlicePacket::new(&p));
            }
            eprintln!(
                "{src} instr={instr} fuel={} ns={}",
                o.fuel,
                t.elapsed().as_nanos() / n
            );
        }
    }
}

#[test]
#[ignore]
fn raw_call_overhead() {
    use wasmi::*;
    let mut cfg = Config::default();
    cfg.consume_fuel(true)
        .compilation_mode(CompilationMode::Eager);
    let engine = Engine::new(&cfg);
    let module = Module::new(&engine, guest_lua::LUA_WASM).unwrap();
    let mut store = Store::new(&engine, ());
    store.set_fuel(u64::MAX / 2).unwrap();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap("lp", "try", |_: Caller<'_, ()>, _: i32| -> i32 { 0 })
        .unwrap();
    linker
        .func_wrap("lp", "throw", |_: Caller<'_, ()>| {})
        .unwrap();
    linker
        .func_wrap("lp", "log", |_: Caller<'_, ()>, _: i32, _: i32, _: i32| {})
        .unwrap();
    linker
        .func_wrap("lp", "now", |_: Caller<'_, ()>| -> i64 { 0 })
        .unwrap();
    linker
        .func_wrap(
            "lp",
            "pkt_read",
            |_: Caller<'_, ()>, _: i32, _: i32, _: i32| -> i32 { 0 },
        )
        .unwrap();
    let inst = linker.instantiate_and_start(&mut store, &module).unwrap();
    let f = inst.get_typed_func::<(), i32>(&store, "lp_ctx").unwrap();
    let n = 1_000_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(f.call(&mut store, ()).unwrap());
    }
    eprintln!("trivial export call: {} ns", t.elapsed().as_nanos() / n);
    let f = inst
        .get_typed_func::<(), i32>(&store, "lp_mem_used")
        .unwrap();
    let before = store.get_fuel().unwrap();
    f.call(&mut store, ()).unwrap();
    eprintln!("lp_mem_used fuel: {}", before - store.get_fuel().unwrap());
}

#[test]
#[ignore]
fn loop_cost() {
    for n in [0u32, 1000] {
        let src = format!("function process_packet() for i=1,{n} do end return lp.ACCEPT end");
        for instr in [0u32, 100_000_000] {
            let lim = Limits { fuel: 10_000_000_000, instructions: instr, ..Limits::default() };
            let (mut s, _) = load_with(&src, lim, OnError::Break);
            let p = tcp4(1);
            let o = s.run(0, 0, &SlicePacket::new(&p));
            eprintln!("loop n={n} instr={instr} fuel={}", o.fuel);
        }
    }
}
