//! Every verdict mapping and every error kind, each error followed by a normal packet on the
//! same instance.
mod common;
use common::*;
use runtime::{ErrorKind, Limits, OnError, SlicePacket, Verdict};

fn verdict_of(ret: &str) -> (Verdict, Option<ErrorKind>) {
    let mut s = load(&format!("function process_packet(pkt, arg) {ret} end"));
    let p = tcp4(80);
    let o = s.run(0, 0, &SlicePacket::new(&p));
    (o.verdict, o.error)
}

#[test]
fn verdict_mapping_follows_design() {
    assert_eq!(verdict_of("return lp.ACCEPT"), (Verdict::Accept, None));
    assert_eq!(verdict_of("return lp.DROP"), (Verdict::Drop, None));
    assert_eq!(verdict_of("return lp.CONTINUE"), (Verdict::Continue, None));
    assert_eq!(verdict_of("return lp.BREAK"), (Verdict::Break, None));
    assert_eq!(verdict_of("return lp.QUEUE(7)"), (Verdict::Queue(7), None));
    assert_eq!(
        verdict_of("return lp.QUEUE(65535)"),
        (Verdict::Queue(65535), None)
    );
    assert_eq!(verdict_of("return true"), (Verdict::Continue, None));
    assert_eq!(verdict_of("return"), (Verdict::Continue, None));
    assert_eq!(verdict_of("return nil"), (Verdict::Continue, None));
    assert_eq!(verdict_of(""), (Verdict::Continue, None));
    assert_eq!(verdict_of("return false"), (Verdict::Break, None));
    // the verdict is read where the entry was, in the stack as it is after the call: one that
    // grows the stack (moves it: 120 values where a stack starts with 40 slots) and fills the
    // freed block with DROPs returns CONTINUE (300 values made the collector's work land in the
    // call, past its fuel, as soon as the library's heap grew a little)
    for n in [8, 16, 32] {
        assert_eq!(
            verdict_of(&format!(
                "local grown = select('#', string.byte(string.rep('x', 120), 1, -1)) \
                 local t = {{}} for i = 1, {n} do t[i] = lp.DROP end \
                 return grown == 120 and lp.CONTINUE"
            )),
            (Verdict::Continue, None),
            "{n} DROPs"
        );
    }
    // anything else is an error resolved by the default policy (break)
    for bad in [
        "return 'accept'",
        "return 99",
        "return {}",
        "return 1.5",
        "return lp.QUEUE",
    ] {
        assert_eq!(
            verdict_of(bad),
            (Verdict::Break, Some(ErrorKind::Return)),
            "{bad}"
        );
    }
    assert_eq!(
        verdict_of("return lp.QUEUE(65536)"),
        (Verdict::Break, Some(ErrorKind::Lua))
    );
}

/// One script whose behaviour is chosen by the TCP destination port: 80 is the normal packet.
const MISCHIEF: &str = r#"
local count = 0
local function recurse() string.gsub("x", "x", recurse) end
local function nest(n)
  if n == 0 then return true end
  local ok, err = pcall(nest, n - 1)
  if not ok then error(err, 0) end
  return ok
end
function process_packet(pkt)
  local port = pkt.tcp.dport
  count = count + 1
  if port == 1 then local t = nil; return t.field end
  if port == 2 then error("boom") end
  if port == 3 then while true do end end
  if port == 30 then pcall(function() while true do end end) while true do end end
  if port == 4 then local s = "x" while true do s = s .. s end end
  if port == 5 then recurse() end
  if port == 6 then nest(40) end
  if port == 7 then return "nonsense" end
  if port == 8 then error({code = 1}) end
  if port == 9 then nest(4); return lp.DROP end
  return count
end
"#;

fn expect_error(
    s: &mut runtime::Script,
    port: u16,
    kind: ErrorKind,
    needle: &str,
    policy_verdict: Verdict,
) {
    let p = tcp4(port);
    let o = s.run(0, 0, &SlicePacket::new(&p));
    assert_eq!(o.error, Some(kind), "port {port}: {}", s.message(0));
    assert_eq!(o.verdict, policy_verdict, "port {port}");
    assert!(
        s.message(0).contains(needle),
        "port {port}: message {:?} lacks {needle:?}",
        s.message(0)
    );
    // the same instance serves the next packet normally
    let n = tcp4(80);
    let o = s.run(0, 0, &SlicePacket::new(&n));
    assert_eq!(o.error, None, "after port {port}: {}", s.message(0));
}

#[test]
fn each_error_kind_is_reported_and_the_instance_keeps_serving() {
    // the instruction budget is off by default; port 3 checks that it still works when set
    let limits = Limits {
        memory: 1 << 20,
        fuel: abi::limits::MAX_FUEL,
        instructions: 1_000,
        ..Limits::default()
    };
    let (mut s, host) = load_with(
        MISCHIEF
            .replace("return count", "return lp.ACCEPT")
            .as_str(),
        limits,
        OnError::Break,
    );
    let b = Verdict::Break;
    expect_error(
        &mut s,
        1,
        ErrorKind::Lua,
        "test.lua:13: attempt to index a nil value",
        b,
    );
    expect_error(&mut s, 2, ErrorKind::Lua, "test.lua:14: boom", b);
    expect_error(&mut s, 3, ErrorKind::Instructions, "out of instructions", b);
    // filling 1 MiB takes more fuel than a call may have: the instance is run directly
    let (r, msg) = run_with_test_fuel(&mut s, 0, &SlicePacket::new(&tcp4(4)));
    assert_eq!(r, Err(ErrorKind::Memory), "port 4: {msg}");
    assert!(msg.contains("not enough memory"));
    // C-level recursion exhausts the guest's shadow stack: a trap, and the instance is rebuilt
    expect_error(&mut s, 5, ErrorKind::Stack, "stack", b);
    // 8 nested pcalls, each rethrowing, take ~265,000 fuel: more than a call may have
    let (r, msg) = run_with_test_fuel(&mut s, 0, &SlicePacket::new(&tcp4(6)));
    assert_eq!(r, Err(ErrorKind::Stack), "port 6: {msg}");
    assert!(msg.contains("too many nested protected calls"));
    expect_error(&mut s, 7, ErrorKind::Return, "got string", b);
    expect_error(
        &mut s,
        8,
        ErrorKind::Lua,
        "error object is a table value",
        b,
    );
    // nesting within the cap is fine
    let p = tcp4(9);
    assert_eq!(
        s.run(0, 0, &SlicePacket::new(&p)).verdict,
        Verdict::Drop,
        "{}",
        s.message(0)
    );
    let st = s.stats();
    assert_eq!(st.error_count(ErrorKind::Lua), 3);
    assert_eq!(st.error_count(ErrorKind::Stack), 1);
    assert_eq!(st.run_cnt, 13);
    assert_eq!(st.rebuilds, 1, "only the shadow-stack trap needs a rebuild");
    // errors are logged with a traceback
    let lines = host.lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("boom") && l.contains("stack traceback")),
        "{lines:?}"
    );
}

#[test]
fn fuel_cuts_an_infinite_loop_and_the_instance_is_rebuilt() {
    let limits = Limits {
        instructions: 0,
        fuel: abi::limits::MAX_FUEL,
        ..Limits::default()
    };
    let (mut s, _) = load_with(MISCHIEF, limits, OnError::Drop);
    let n = tcp4(80);
    let first = s.run(0, 0, &SlicePacket::new(&n));
    assert_eq!((first.verdict, first.error), (Verdict::Accept, None));
    // the soft stop: "out of fuel" raised as a Lua error in the loop, the instance kept
    let p = tcp4(3);
    let o = s.run(0, 0, &SlicePacket::new(&p));
    assert_eq!(o.error, Some(ErrorKind::Fuel));
    assert_eq!(o.verdict, Verdict::Drop, "on-error drop");
    assert!(
        s.message(0).starts_with("out of fuel\nstack traceback:"),
        "{}",
        s.message(0)
    );
    assert_eq!(s.stats().rebuilds, 0);
    // the soft stop caught and the loop going on: the hard stop, a trap, a rebuild
    let p = tcp4(30);
    let o = s.run(0, 0, &SlicePacket::new(&p));
    assert_eq!(o.error, Some(ErrorKind::Fuel));
    assert_eq!(o.verdict, Verdict::Drop, "on-error drop");
    assert_eq!(o.fuel, abi::limits::MAX_FUEL);
    assert_eq!(s.message(0), "out of fuel");
    assert_eq!(s.stats().rebuilds, 1);
    // rebuilt: the script's state starts again (count is 1 on the next packet)
    // rebuilt: the top-level chunk ran again, so `count` restarted and the script returns 1
    // (lp.ACCEPT); without the rebuild it would return 3 (lp.CONTINUE)
    let o = s.run(0, 0, &SlicePacket::new(&n));
    assert_eq!((o.verdict, o.error), (Verdict::Accept, None));
}

#[test]
fn on_error_policies() {
    for (policy, verdict) in [
        (OnError::Break, Verdict::Break),
        (OnError::Accept, Verdict::Accept),
        (OnError::Drop, Verdict::Drop),
    ] {
        let (mut s, _) = load_with(
            "function process_packet() error('x') end",
            Limits::default(),
            policy,
        );
        let p = tcp4(80);
        let o = s.run(0, 0, &SlicePacket::new(&p));
        assert_eq!((o.verdict, o.error), (verdict, Some(ErrorKind::Lua)));
        // the fuel of a failed call is what it used, recovery included
        // (a traceback is built: ~150k fuel)
        assert!(o.fuel > 100 && o.fuel < 1_000_000, "fuel {}", o.fuel);
        assert_eq!(s.stats().verdict_count(verdict), 1);
    }
}

#[test]
fn state_persists_between_calls() {
    let mut s = load(
        "local seen = 0 function process_packet(pkt) seen = seen + 1 if seen > 3 then return lp.DROP end return lp.ACCEPT end",
    );
    let p = tcp4(22);
    let got: Vec<Verdict> = (0..5)
        .map(|_| s.run(0, 0, &SlicePacket::new(&p)).verdict)
        .collect();
    assert_eq!(
        got,
        [
            Verdict::Accept,
            Verdict::Accept,
            Verdict::Accept,
            Verdict::Drop,
            Verdict::Drop
        ]
    );
}

#[test]
fn the_argument_reaches_the_entry_function() {
    let (mut s, _) = load_with(
        "function check(pkt, arg) if arg == 'web' then return lp.ACCEPT end return lp.DROP end function process_packet() end",
        Limits::default(),
        OnError::Break,
    );
    let web = s.bind("check", Some(b"web")).unwrap();
    let other = s.bind("check", Some(b"ssh")).unwrap();
    let p = tcp4(22);
    assert_eq!(
        s.run(0, web, &SlicePacket::new(&p)).verdict,
        Verdict::Accept
    );
    assert_eq!(
        s.run(0, other, &SlicePacket::new(&p)).verdict,
        Verdict::Drop
    );
    assert!(s.bind("missing", None).is_err());
}

/// Twelve entries `f0`..`f11`, bound with the arguments "a0".."a11": more bindings than the
/// guest's cache of bound values has slots (8). `body(i)` is the body of `f{i}(pkt, arg)`.
fn twelve_bindings(body: impl Fn(usize) -> String) -> (runtime::Script, Vec<usize>) {
    let src: String = (0..12)
        .map(|i| format!("function f{i}(pkt, arg) {} end\n", body(i)))
        .collect();
    let (mut s, _) = load_with(
        &(src + "function process_packet() end"),
        Limits::default(),
        OnError::Break,
    );
    let entries = (0..12)
        .map(|i| {
            s.bind(&format!("f{i}"), Some(format!("a{i}").as_bytes()))
                .unwrap()
        })
        .collect();
    (s, entries)
}

#[test]
fn many_bindings_each_reach_their_function_and_argument() {
    // the guest keeps the values of bindings in a small cache (8 slots): twelve bindings run
    // forwards, backwards and forwards again evict each other and must not mix
    let (mut s, entries) = twelve_bindings(|i| {
        let v = if i % 2 == 0 { "ACCEPT" } else { "DROP" };
        format!("if arg == 'a{i}' then return lp.{v} end return lp.BREAK")
    });
    let p = tcp4(22);
    let order = (0..12).chain((0..12).rev()).chain(0..12);
    for i in order {
        let want = if i % 2 == 0 {
            Verdict::Accept
        } else {
            Verdict::Drop
        };
        let o = s.run(0, entries[i], &SlicePacket::new(&p));
        assert_eq!((o.verdict, o.error), (want, None), "f{i}");
    }
}

#[test]
fn errors_of_many_bindings_reach_the_message_handler() {
    // a binding missing from the guest's cache is looked up in the registry on its call: the
    // error of that call must still go through the message handler (the Lua error, its text)
    let (mut s, entries) = twelve_bindings(|i| format!("error('boom f{i} <' .. arg .. '>')"));
    let p = tcp4(22);
    for i in (0..12).chain((0..12).rev()) {
        let o = s.run(0, entries[i], &SlicePacket::new(&p));
        assert_eq!(
            (o.verdict, o.error),
            (Verdict::Break, Some(ErrorKind::Lua)),
            "f{i}"
        );
        let msg = s.message(0);
        assert!(msg.contains(&format!("boom f{i} <a{i}>")), "f{i}: {msg}");
    }
}

#[test]
fn bad_scripts_are_refused_at_load() {
    use runtime::{GuestCache, LoadError, Script};
    let mut cache = GuestCache::new();
    let h = host();
    let load = |cache: &mut GuestCache, src: &str, limits: Limits| {
        Script::load(
            cache,
            guest_lua::LUA_WASM,
            "bad.lua",
            src.as_bytes(),
            limits,
            OnError::Break,
            1,
            h.clone(),
        )
    };
    match load(
        &mut cache,
        "function process_packet( return end",
        Limits::default(),
    ) {
        Err(LoadError::Syntax(m)) => assert!(m.starts_with("bad.lua:1:"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("loaded"),
    }
    match load(&mut cache, "error('top level fails')", Limits::default()) {
        Err(LoadError::Init(ErrorKind::Lua, m)) => {
            assert!(m.contains("bad.lua:1: top level fails"), "{m}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("loaded"),
    }
    let zero = Limits {
        fuel: 0,
        ..Limits::default()
    };
    assert!(matches!(
        load(&mut cache, "x = 1", zero),
        Err(LoadError::Limit(_))
    ));
    let mut s = load(&mut cache, "x = 1", Limits::default()).unwrap();
    assert!(matches!(
        s.bind("process_packet", None),
        Err(LoadError::NoFunction(_))
    ));
    // binary chunks are refused by load()
    let mut s2 = load(
        &mut cache,
        "local ok = load(string.dump(function() end)) function process_packet() if ok == nil then return lp.ACCEPT end return lp.DROP end",
        Limits::default(),
    )
    .unwrap();
    s2.bind("process_packet", None).unwrap();
    let p = tcp4(1);
    assert_eq!(s2.run(0, 0, &SlicePacket::new(&p)).verdict, Verdict::Accept);
    // the compiled guest is shared
    assert_eq!(cache.len(), 1);
    drop(s);
}

#[test]
fn no_files_in_the_sandbox() {
    let mut s = load(
        "function process_packet() assert(dofile == nil and loadfile == nil and io == nil and os == nil and require == nil and debug == nil) return lp.ACCEPT end",
    );
    let p = tcp4(1);
    let o = s.run(0, 0, &SlicePacket::new(&p));
    assert_eq!(o.verdict, Verdict::Accept, "{}", s.message(0));
}
