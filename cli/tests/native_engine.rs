//! The native engine (native Lua + the same packet library, cli/src/engine/native.rs): verdicts,
//! every error kind followed by a normal packet, and agreement with the sandbox (wasmi) on
//! packet fields, error messages, load errors and nested protected calls.

use lpctl::engine::native::NativeEngine;
use lpctl::engine::wasmi::WasmiEngine;
use lpctl::engine::{Config, Engine, Kind, RunResult};
use runtime::packet::ifname;
use runtime::{ErrorKind, Host, Limits, LogLevel, Meta, OnError, SlicePacket, Verdict};
use std::sync::{Arc, Mutex};

// ---- helpers ----------------------------------------------------------------------------------

/// Collects log lines as `Info: ...` / `Warn: ...`.
#[derive(Default)]
struct TestHost {
    lines: Mutex<Vec<String>>,
}

impl Host for TestHost {
    fn now_ns(&self) -> u64 {
        42
    }
    fn log(&self, _script: &str, level: LogLevel, line: &[u8]) {
        let l = String::from_utf8_lossy(line).into_owned();
        self.lines.lock().unwrap().push(format!("{level:?}: {l}"));
    }
    fn seed(&self) -> u32 {
        0x1234_5678
    }
}

impl TestHost {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

fn config(src: &str, arg: Option<&str>) -> Config {
    Config {
        name: "t.lua".into(),
        source: src.as_bytes().to_vec(),
        function: "process_packet".into(),
        arg: arg.map(|a| a.as_bytes().to_vec()),
        // the test scripts do more per call than packet scripts: the most fuel a call may have
        limits: Limits {
            fuel: abi::limits::MAX_FUEL,
            ..Limits::default()
        },
        on_error: OnError::Break,
        guest: None,
    }
}

/// MISCHIEF's memory error fills the heap: a small one keeps that within a call's fuel.
fn mischief() -> Config {
    Config {
        limits: Limits {
            memory: 256 << 10,
            // the budget trips before the fuel (port 3), the C stack before the budget (port 5)
            instructions: 1_500,
            fuel: abi::limits::MAX_FUEL,
            ..config(MISCHIEF, None).limits
        },
        ..config(MISCHIEF, None)
    }
}

fn native(cfg: &Config) -> (NativeEngine, Arc<TestHost>) {
    let h = Arc::new(TestHost::default());
    let e = NativeEngine::load_with_host(cfg, h.clone())
        .unwrap_or_else(|e| panic!("native load failed: {e}"));
    (e, h)
}

fn wasmi(cfg: &Config) -> (WasmiEngine, Arc<TestHost>) {
    let h = Arc::new(TestHost::default());
    let e = WasmiEngine::load_with_host(cfg, h.clone())
        .unwrap_or_else(|e| panic!("wasmi load failed: {e}"));
    (e, h)
}

/// What both engines must agree on (fuel is the sandbox's alone).
fn outcome(r: RunResult) -> (Verdict, Option<(ErrorKind, String)>) {
    (r.verdict, r.error)
}

fn run(e: &mut dyn Engine, p: &[u8]) -> (Verdict, Option<(ErrorKind, String)>) {
    outcome(e.run(&SlicePacket::new(p)))
}

// The shared builders (luapkt-tests' packets.rs) with odd values in every field, so that a
// field read from the wrong offset shows.
#[path = "../../tests/src/packets.rs"]
#[allow(dead_code, unreachable_pub)]
mod packets;
use packets::{udp_with, Ip4, Ip6, Tcp};

/// IPv4 header (tos 0x2e, id 0x1234, DF, TTL 61, checksum 0xbeef) + transport header + payload.
fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let h = Ip4 {
        tos: 0x2e,
        id: 0x1234,
        frag_off: 0x4000,
        ttl: 61,
        check: 0xbeef,
    };
    h.packet(proto, src, dst, l4)
}

/// IPv6 header (traffic class 0xb8, flow label 0x12345, hop limit 33) + transport header + payload.
fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], l4: &[u8]) -> Vec<u8> {
    let h = Ip6 {
        traffic_class: 0xb8,
        flow_label: 0x12345,
        hop_limit: 33,
    };
    h.packet(next, src, dst, l4)
}

/// TCP (seq 1000, ack 0xdeadbeef, window 29200, checksum 0x1111, urgent pointer 7).
fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let h = Tcp {
        seq: 1000,
        ack_seq: 0xdead_beef,
        window: 29200,
        check: 0x1111,
        urg_ptr: 7,
    };
    h.segment(sport, dport, flags, payload)
}

/// UDP with checksum 0x2222.
fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    udp_with(0x2222, sport, dport, payload)
}

fn icmp(ty: u8, id: u16, seq: u16) -> Vec<u8> {
    let mut i = vec![ty, 0, 0x33, 0x44];
    i.extend_from_slice(&id.to_be_bytes());
    i.extend_from_slice(&seq.to_be_bytes());
    i.extend_from_slice(b"ping");
    i
}

fn tcp4(dport: u16) -> Vec<u8> {
    ipv4(
        6,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        &tcp(40000, dport, 0x02, b""),
    )
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = last;
    a
}

// ---- verdicts ---------------------------------------------------------------------------------

fn verdict_of(ret: &str) -> (Verdict, Option<(ErrorKind, String)>) {
    let cfg = config(
        &format!("function process_packet(pkt, arg) {ret} end"),
        None,
    );
    let (mut e, _) = native(&cfg);
    assert_eq!(e.kind(), Kind::Native);
    let r = e.run(&SlicePacket::new(&tcp4(80)));
    assert_eq!(r.fuel, None);
    outcome(r)
}

#[test]
fn verdict_mapping() {
    for (ret, v) in [
        ("return lp.ACCEPT", Verdict::Accept),
        ("return lp.DROP", Verdict::Drop),
        ("return lp.CONTINUE", Verdict::Continue),
        ("return lp.BREAK", Verdict::Break),
        ("return lp.QUEUE(7)", Verdict::Queue(7)),
        ("return lp.QUEUE(0)", Verdict::Queue(0)),
        ("return lp.QUEUE(65535)", Verdict::Queue(65535)),
        ("return true", Verdict::Continue),
        ("return false", Verdict::Break),
        ("return nil", Verdict::Continue),
        ("return", Verdict::Continue),
        ("", Verdict::Continue),
        ("return lp.DROP, 'ignored'", Verdict::Drop),
    ] {
        assert_eq!(verdict_of(ret), (v, None), "{ret}");
    }
    for (ret, msg) in [
        ("return 99", "invalid return value: 99 is not a verdict"),
        ("return 0", "invalid return value: 0 is not a verdict"),
        (
            "return 'accept'",
            "invalid return value: expected a verdict, got string",
        ),
        (
            "return {}",
            "invalid return value: expected a verdict, got table",
        ),
        (
            "return 1.5",
            "invalid return value: expected a verdict, got number",
        ),
        (
            "return lp.QUEUE",
            "invalid return value: expected a verdict, got function",
        ),
    ] {
        assert_eq!(
            verdict_of(ret),
            (Verdict::Break, Some((ErrorKind::Return, msg.into()))),
            "{ret}"
        );
    }
    let (v, err) = verdict_of("return lp.QUEUE(65536)");
    assert_eq!(v, Verdict::Break);
    let (kind, msg) = err.unwrap();
    assert_eq!(kind, ErrorKind::Lua);
    assert!(
        msg.starts_with("lua: t.lua:1: bad argument #1 to 'QUEUE'"),
        "{msg}"
    );
}

#[test]
fn arg_and_on_error_policy() {
    let src = "function process_packet(pkt, arg)\n\
               if arg == 'drop' then return lp.DROP end\n\
               if arg == nil then return lp.ACCEPT end\n\
               error('bad arg ' .. arg)\nend";
    let (mut e, _) = native(&config(src, Some("drop")));
    assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Drop, None));
    let (mut e, _) = native(&config(src, None));
    assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Accept, None));
    for (policy, v) in [
        (OnError::Break, Verdict::Break),
        (OnError::Accept, Verdict::Accept),
        (OnError::Drop, Verdict::Drop),
    ] {
        let cfg = Config {
            on_error: policy,
            guest: None,
            ..config(src, Some("x"))
        };
        let (mut e, h) = native(&cfg);
        let msg = "lua: t.lua:4: bad arg x".to_string();
        assert_eq!(run(&mut e, &tcp4(80)), (v, Some((ErrorKind::Lua, msg))));
        // the error is reported in the log, with its traceback
        let lines = h.take();
        assert!(
            lines[0].starts_with("Warn: t.lua:4: bad arg x\nstack traceback:"),
            "{lines:?}"
        );
    }
}

// ---- errors, each followed by a normal packet ---------------------------------------------------

/// Behaviour chosen by the TCP destination port; 80 is the normal packet.
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
  if port == 4 then local t, k = {}, string.rep("x", 1000) for i = 1, 1e9 do t[i] = string.rep(k, 100) .. i end end
  if port == 5 then recurse() end
  if port == 6 then nest(40) end
  if port == 7 then return "nonsense" end
  if port == 8 then error({code = 1}) end
  if port == 9 then error() end
  if port == 10 then return lp.QUEUE(70000) end
  if port == 11 then error(setmetatable({}, {__tostring = function() return "custom" end})) end
  if port == 12 then local ok, e = pcall(error, "caught"); return ok and lp.ACCEPT or lp.DROP end
  if port == 13 then return pkt:u32(5000) end
  return count > 0 and lp.DROP
end
"#;

fn errors_script_cases() -> Vec<(u16, ErrorKind, &'static str)> {
    vec![
        (
            1,
            ErrorKind::Lua,
            "lua: t.lua:13: attempt to index a nil value (local 't')",
        ),
        (2, ErrorKind::Lua, "lua: t.lua:14: boom"),
        (3, ErrorKind::Instructions, "out of instructions"),
        (4, ErrorKind::Memory, "not enough memory"),
        (5, ErrorKind::Stack, "stack overflow"),
        (
            6,
            ErrorKind::Stack,
            "too many nested protected calls (limit 7)",
        ),
        (
            7,
            ErrorKind::Return,
            "invalid return value: expected a verdict, got string",
        ),
        (8, ErrorKind::Lua, "lua: (error object is a table value)"),
        (9, ErrorKind::Lua, "lua: (error object is a nil value)"),
        (
            10,
            ErrorKind::Lua,
            "bad argument #1 to 'QUEUE' (queue number must be 0..65535)",
        ),
        (11, ErrorKind::Lua, "lua: custom"),
        (
            13,
            ErrorKind::Lua,
            "lua: t.lua:25: u32(5000) outside the packet (40 bytes)",
        ),
    ]
}

#[test]
fn every_error_kind_then_a_normal_packet() {
    let cfg = mischief();
    let (mut e, h) = native(&cfg);
    let normal = tcp4(80);
    assert_eq!(run(&mut e, &normal), (Verdict::Drop, None));
    for (port, kind, needle) in errors_script_cases() {
        let (v, err) = run(&mut e, &tcp4(port));
        assert_eq!(v, Verdict::Break, "port {port}");
        let (k, msg) = err.unwrap_or_else(|| panic!("port {port}: no error"));
        assert_eq!(k, kind, "port {port}: {msg}");
        assert!(
            msg.contains(needle),
            "port {port}: {msg:?} lacks {needle:?}"
        );
        assert!(!msg.contains('\n'), "port {port}: one line: {msg:?}");
        // the full message (with traceback) went to the log
        let lines = h.take();
        assert_eq!(lines.len(), 1, "port {port}: {lines:?}");
        assert!(lines[0].starts_with("Warn: "), "{lines:?}");
        if kind == ErrorKind::Lua {
            assert!(e.message().contains("stack traceback:"), "{}", e.message());
        }
        // the state is intact: the next packet is normal
        assert_eq!(
            run(&mut e, &normal),
            (Verdict::Drop, None),
            "after port {port}"
        );
        assert!(
            e.lua_memory() < 256 * 1024,
            "after port {port}: {} bytes",
            e.lua_memory()
        );
    }
    assert_eq!(run(&mut e, &tcp4(12)), (Verdict::Drop, None));
}

#[test]
fn errors_match_the_sandbox() {
    let cfg = mischief();
    let (mut n, _) = native(&cfg);
    let (mut w, _) = wasmi(&cfg);
    let mut ports: Vec<u16> = errors_script_cases().iter().map(|c| c.0).collect();
    ports.extend([12, 80]);
    for port in ports {
        let p = tcp4(port);
        let (a, b) = (run(&mut n, &p), run(&mut w, &p));
        if port == 5 {
            // both overflow the C stack; the depth (and so the message) is engine-specific
            assert_eq!(a.1.as_ref().map(|e| e.0), Some(ErrorKind::Stack));
            assert_eq!(b.1.as_ref().map(|e| e.0), Some(ErrorKind::Stack));
        } else {
            assert_eq!(a, b, "port {port}");
        }
        assert_eq!(
            run(&mut n, &tcp4(80)),
            run(&mut w, &tcp4(80)),
            "after port {port}"
        );
    }
}

#[test]
fn memory_limit_is_per_engine_and_recovers() {
    let src = "local keep = {}\n\
               function process_packet(pkt, arg)\n\
                 if pkt.tcp.dport == 1 then keep[#keep + 1] = string.rep('k', 100000) return lp.ACCEPT end\n\
                 if pkt.tcp.dport == 2 then keep = {} collectgarbage() return lp.ACCEPT end\n\
                 return lp.DROP\nend";
    let cfg = Config {
        limits: Limits {
            memory: 512 * 1024,
            ..Limits::default()
        },
        ..config(src, None)
    };
    let (mut e, _) = native(&cfg);
    let base = e.lua_memory();
    let mut ok = 0;
    loop {
        let (v, err) = run(&mut e, &tcp4(1));
        if let Some((k, msg)) = err {
            assert_eq!((k, msg.as_str()), (ErrorKind::Memory, "not enough memory"));
            break;
        }
        assert_eq!(v, Verdict::Accept);
        ok += 1;
        assert!(ok < 10, "memory limit not enforced");
    }
    assert!(ok >= 3, "only {ok} allocations fit");
    assert!(e.lua_memory() <= 512 * 1024);
    // what is still referenced stays: at most one more allocation fits (the failed one's
    // garbage, collected, may leave room for it, depending on the base's size), then they fail
    let again = (0..2)
        .map(|_| run(&mut e, &tcp4(1)).1.map(|x| x.0))
        .collect::<Vec<_>>();
    assert!(again.contains(&Some(ErrorKind::Memory)), "{again:?}");
    assert!(e.lua_memory() <= 512 * 1024);
    assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Drop, None));
    assert_eq!(run(&mut e, &tcp4(2)), (Verdict::Accept, None));
    assert!(
        e.lua_memory() < base + 64 * 1024,
        "{} vs {base}",
        e.lua_memory()
    );
    assert_eq!(run(&mut e, &tcp4(1)), (Verdict::Accept, None));
}

#[test]
fn instruction_budget() {
    let src = "function process_packet(pkt, n)\n\
               local x = 0 for i = 1, tonumber(n) do x = x + i end return lp.DROP end";
    let limits = Limits {
        instructions: 10_000,
        ..Limits::default()
    };
    let cfg = |n: &str, limits| Config {
        limits,
        ..config(src, Some(n))
    };
    let (mut e, _) = native(&cfg("1000", limits));
    assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Drop, None));
    // the budget is per call, not cumulative
    for _ in 0..50 {
        assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Drop, None));
    }
    let (mut e, _) = native(&cfg("100000", limits));
    let instr = Some((ErrorKind::Instructions, "out of instructions".to_string()));
    assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Break, instr.clone()));
    assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Break, instr));
    // 0: no instruction budget; fuel, which native Lua does not count, still bounds the call
    // (one instruction per abi::limits::DEFAULT_FUEL / 8 of fuel), as it does in the sandbox
    let no_budget = Limits {
        instructions: 0,
        ..limits
    };
    let (mut e, _) = native(&cfg("1000", no_budget));
    assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Drop, None));
    let (mut e, _) = native(&cfg("1000000", no_budget));
    let (verdict, error) = run(&mut e, &tcp4(80));
    assert_eq!(verdict, Verdict::Break);
    assert_eq!(error.map(|e| e.0), Some(ErrorKind::Fuel));
}

// ---- the sandbox's environment ------------------------------------------------------------------

#[test]
fn environment_matches_the_sandbox() {
    let src = r#"
function process_packet(pkt)
  local bin = string.dump(function() return 1 end)
  local f, err = load(bin, "bin", "b")
  print("print", 1, nil, true)
  lp.log("log", 2.5)
  warn("@on")
  warn("careful", " now")
  local checks = {
    dofile == nil, loadfile == nil, io == nil, os == nil, debug == nil, package == nil,
    require == nil, f == nil, err == "attempt to load a binary chunk (mode is 't')",
    load("return 7")() == 7, lp.now() == 42, math.type(lp.ACCEPT) == "integer",
    utf8 ~= nil, coroutine ~= nil, table ~= nil, string ~= nil, math ~= nil,
    getmetatable(pkt) == "packet", not pcall(function() pkt.x = 1 end),
  }
  for i, ok in ipairs(checks) do
    if not ok then lp.log("check " .. i .. " failed") return lp.ACCEPT end
  end
  return lp.DROP
end
"#;
    let cfg = config(src, None);
    let (mut n, nh) = native(&cfg);
    let (mut w, wh) = wasmi(&cfg);
    assert_eq!(
        run(&mut n, &tcp4(80)),
        (Verdict::Drop, None),
        "{:?}",
        nh.take()
    );
    assert_eq!(
        run(&mut w, &tcp4(80)),
        (Verdict::Drop, None),
        "{:?}",
        wh.take()
    );
    let lines = nh.take();
    assert_eq!(
        lines,
        [
            "Info: print\t1\tnil\ttrue",
            "Info: log\t2.5",
            "Warn: Lua warning: careful now"
        ]
    );
    // the sandbox logs the same lines (its warnings come in pieces)
    let wl = wh.take();
    assert_eq!(wl[..2], lines[..2]);
}

// ---- load errors -----------------------------------------------------------------------------

fn load_errors(cfg: &Config) -> (String, String) {
    let n = NativeEngine::load(cfg)
        .err()
        .expect("native load should fail")
        .to_string();
    let w = WasmiEngine::load(cfg)
        .err()
        .expect("wasmi load should fail")
        .to_string();
    (n, w)
}

#[test]
fn load_errors_match_the_sandbox() {
    let (n, w) = load_errors(&config(
        "function process_packet(pkt)\n  return 1 +\nend",
        None,
    ));
    assert_eq!(
        n,
        "t.lua: syntax error: t.lua:3: unexpected symbol near 'end'"
    );
    assert_eq!(n, w);

    let (n, w) = load_errors(&config("\x1bLua", None));
    assert!(n.starts_with("t.lua: syntax error: "), "{n}");
    assert_eq!(n, w);

    let (n, w) = load_errors(&config("local x = 1", None));
    assert_eq!(
        n,
        "t.lua: entry function 'process_packet' is not defined (a global function)"
    );
    assert_eq!(n, w);

    let (n, w) = load_errors(&config("process_packet = 5", None));
    assert_eq!(n, w);

    let (n, w) = load_errors(&config("error('at load')", None));
    // one line: the traceback goes to the log
    assert_eq!(n, "t.lua: top-level chunk failed: t.lua:1: at load");
    assert_eq!(n, w);

    let (n, w) = load_errors(&config(
        "local t = {} for i = 1, 1e9 do t[i] = {} end",
        None,
    ));
    assert_eq!(n, "t.lua: top-level chunk failed: not enough memory");
    assert_eq!(n, w);

    let bad = Config {
        limits: Limits {
            pcall_depth: 0,
            ..Limits::default()
        },
        ..config("function process_packet() end", None)
    };
    let (n, w) = load_errors(&bad);
    assert_eq!(
        n,
        "t.lua: invalid limit: pcall-depth 0 is out of range (1..=32)"
    );
    assert_eq!(n, w);

    // a runaway top-level chunk fails instead of hanging
    let n = NativeEngine::load(&config("while true do end", None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        n.starts_with("t.lua: top-level chunk failed: out of instructions"),
        "{n}"
    );
}

// ---- nested protected calls ---------------------------------------------------------------------

const NEST: &str = r#"
local function nest(n)
  if n == 0 then return lp.DROP end
  local ok, v = pcall(nest, n - 1)
  if not ok then error(v, 0) end
  return v
end
local function co_nest(n)
  if n == 0 then return lp.DROP end
  local ok, v = coroutine.resume(coroutine.create(co_nest), n - 1)
  if not ok then error(v, 0) end
  return v
end
function process_packet(pkt, arg)
  local n = pkt.tcp.dport
  if arg == "leak" then
    -- errors unwinding through the wrappers must not use up the depth
    -- (argument errors of functions called from C search package.loaded for the function's
    -- name: ~50,000 fuel each, so those two run on one shallow packet each)
    pcall(coroutine.wrap(function() error("x") end))
    pcall(load, 5)
    if n == 0 then pcall(pcall) end
    if n == 1 then pcall(coroutine.resume, 5) end
  end
  if arg == "co" then
    -- nine coroutines deep sits near the fuel ceiling: a collector step landing in the same
    -- call (where depends on the heap's exact size) would tip it over
    collectgarbage("stop")
    return co_nest(n)
  end
  return nest(n)
end
"#;

#[test]
fn nested_protected_calls_match_the_sandbox() {
    for arg in ["plain", "leak", "co"] {
        for depth in [2u32, 8] {
            let cfg = Config {
                limits: Limits {
                    pcall_depth: depth,
                    // the "leak" loop is heavy for the sandbox's default fuel; native has none
                    fuel: abi::limits::MAX_FUEL,
                    ..Limits::default()
                },
                ..config(NEST, Some(arg))
            };
            let (mut n, _) = native(&cfg);
            let (mut w, _) = wasmi(&cfg);
            let mut refused = None;
            for nest in 0..=10u16 {
                let p = tcp4(nest);
                let a = run(&mut n, &p);
                assert_eq!(a, run(&mut w, &p), "{arg}, cap {depth}, nest {nest}");
                if let (Some((kind, _)), None) = (&a.1, refused) {
                    refused = Some(nest);
                    assert_eq!(*kind, ErrorKind::Stack);
                }
            }
            // the cap as the guest enforces it: `depth - 1` nested calls, not `depth`
            assert_eq!(refused, Some(depth as u16), "{arg} cap {depth}");
        }
    }
}

// ---- packet fields ------------------------------------------------------------------------------

/// Logs every field as a line `path=value` (or the error reading it), and returns DROP only when
/// the checks in the argument (`path=value;...`) all pass.
const FIELDS: &str = r#"
local paths = {
  "len", "meta.len", "meta.mark", "meta.hook", "meta.iifname", "meta.oifname", "meta.l4proto",
  "meta.nfproto", "ip.saddr", "ip.daddr", "ip.protocol", "ip.ttl", "ip.length", "ip.id",
  "ip.version", "ip.hdrlength", "ip.dscp", "ip.ecn", "ip.frag_off", "ip.checksum",
  "ip6.saddr", "ip6.daddr", "ip6.nexthdr", "ip6.hoplimit", "ip6.length", "ip6.version",
  "ip6.dscp", "ip6.ecn", "ip6.flowlabel", "tcp.sport", "tcp.dport", "tcp.flags", "tcp.syn",
  "tcp.ack", "tcp.fin", "tcp.rst", "tcp.psh", "tcp.urg", "tcp.ece", "tcp.cwr", "tcp.seq",
  "tcp.ack_seq", "tcp.doff", "tcp.window", "tcp.checksum", "tcp.urgptr", "tcp.payload",
  "udp.sport", "udp.dport", "udp.length", "udp.checksum", "udp.payload", "icmp.type",
  "icmp.code", "icmp.checksum", "icmp.id", "icmp.sequence", "icmp6.type", "icmp6.code",
  "icmp6.id", "ip.nonsense", "tcp.nonsense",
}

local function get(pkt, path)
  local v = pkt
  for part in path:gmatch("[^.]+") do
    if v == nil then return nil end
    v = v[part]
  end
  return v
end

local function show(ok, v)
  if not ok then return "error(" .. tostring(v) .. ")" end
  -- (a long string or payload shows its start and its length: %q costs ~40 fuel per byte,
  -- and a copy's allocation makes the collector work in proportion)
  if (type(v) == "string" or type(v) == "userdata") and #v > 64 then
    return string.format("%q...(%d)", v:sub(1, 64), #v)
  end
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local extra = {
  function(pkt, pay) return pkt:u8(0), pkt:u16(2), pkt:u32(4) end,
  function(pkt, pay) return pkt:bytes(0, 4) end,
  function(pkt, pay) return pkt:u32(pkt.len - 4), pkt:bytes(pkt.len - 6, 6) end,
  function(pkt, pay) return pkt:u8(pkt.len) end,
  function(pkt, pay) return pkt:bytes(2200, 8) end,
  function(pkt, pay) return #pay, pay:sub(1, 5), pay:sub(-4), pay:sub(3, 2) end,
  function(pkt, pay) return pay:find("MARK", 1, true) end,
  -- (a pattern scan costs ~100 fuel per byte: on the big payload it starts near MARK)
  function(pkt, pay) return pay:find("M(A)RK", #pay > 2000 and 2000 or 1) end,
  function(pkt, pay) return pay:find("nope", 1, true) end,
  function(pkt, pay) return tostring(pay:sub(-10)) end,
  function(pkt, pay)
    local c4 = lp.cidr("10.0.0.0/8")
    return tostring(c4), c4:contains((pkt.ip or pkt.ip6).saddr)
  end,
  function(pkt, pay)
    local c6 = lp.cidr("2001:db8::/32")
    return tostring(c6), c6:contains((pkt.ip or pkt.ip6).daddr)
  end,
}

-- the checks ("path=want;...") are split into items two per field part, not all in the
-- part that checks them (plain finds: a pattern costs ~1,000 fuel per character)
local items, pos, parsed_for = {}, 1, nil
local function parse_some(a, n)
  if parsed_for ~= a then items, pos, parsed_for = {}, 1, a end
  while n > 0 and pos <= #a do
    local j = a:find(";", pos, true) or #a + 1
    local item = a:sub(pos, j - 1)
    local e = item:find("=", 1, true)
    if e then items[#items + 1] = {item:sub(1, e - 1), item:sub(e + 1)} end
    pos, n = j + 1, n - 1
  end
end

-- one part per call (FIELD_PARTS calls per packet): a call has at most abi::limits::MAX_FUEL,
-- and each field looked up, logged and compared here costs ~20,000-40,000
local part = 0
function process_packet(pkt, arg)
  part = part % 90 + 1
  -- a collection cycle's end (the sweep of everything that died since it started) can cost a
  -- call ~100,000 fuel: collecting at the start of each part keeps the garbage to one part's
  collectgarbage()
  local out = {}
  if part <= 62 then
    parse_some(arg or "", 2)
    local per = 1
    for i = (part - 1) * per + 1, math.min(part * per, #paths) do
      local path = paths[i]
      out[#out + 1] = path .. "=" .. show(pcall(get, pkt, path))
    end
    for _, line in ipairs(out) do lp.log(line) end
    return lp.DROP
  end
  if part >= 75 then
    parse_some(arg or "", math.huge)
    local failed = {}
    for k, item in ipairs(items) do
      if k % 16 == part - 75 then
        local path, want = item[1], item[2]
        local ok, v = pcall(get, pkt, path)
        if not ok or tostring(v) ~= want then failed[#failed + 1] = path .. "=" .. tostring(v) end
      end
    end
    if #failed > 0 then lp.log("failed: " .. table.concat(failed, " ")) return lp.BREAK end
    return lp.DROP
  end
  local f = extra[part - 62]
  if f then
    local r = table.pack(pcall(f, pkt, pkt.tcp and pkt.tcp.payload or pkt.udp and pkt.udp.payload))
    local parts = {}
    for j = 2, r.n do parts[#parts + 1] = show(true, r[j]) end
    out[#out + 1] = "extra" .. (part - 62) .. "=" .. (r[1] and table.concat(parts, ",") or show(false, r[2]))
  end
  for _, line in ipairs(out) do lp.log(line) end
  return lp.DROP
end
"#;

/// Calls FIELDS makes per packet (its parts).
const FIELD_PARTS: usize = 90;

/// Runs every part of FIELDS on `pkt`; the outcome of the last, the first failure otherwise.
fn run_fields(e: &mut dyn Engine, pkt: &SlicePacket) -> (Verdict, Option<(ErrorKind, String)>) {
    let mut last = (Verdict::Drop, None);
    for _ in 0..FIELD_PARTS {
        last = outcome(e.run(pkt));
        if last != (Verdict::Drop, None) {
            break;
        }
    }
    last
}

struct Case {
    name: &'static str,
    data: Vec<u8>,
    meta: Meta,
    checks: &'static str,
}

fn cases() -> Vec<Case> {
    let meta = Meta {
        nfproto: 0,
        hook: 1,
        mark: 0xabcd,
        iifname: ifname("eth0"),
        oifname: ifname("wlan-very-long-name"),
        ..Meta::default()
    };
    let mut big = vec![b'.'; 2300];
    big[2100..2104].copy_from_slice(b"MARK");
    big[2290..].copy_from_slice(b"0123456789");
    let mut frag = ipv4(
        17,
        [192, 168, 1, 1],
        [192, 168, 1, 2],
        &udp(53, 5353, b"frag"),
    );
    frag[6] = 0x00;
    frag[7] = 0x10; // offset 16 * 8: a non-first fragment
    vec![
        Case {
            name: "tcp4",
            data: ipv4(
                6,
                [10, 1, 2, 3],
                [8, 8, 4, 4],
                &tcp(443, 51000, 0x12, b"GET / HTTP/1.1 MARK"),
            ),
            meta,
            checks: "ip.saddr=10.1.2.3;ip.daddr=8.8.4.4;ip.ttl=61;ip.id=4660;ip.dscp=11;ip.ecn=2;\
                     tcp.sport=443;tcp.dport=51000;tcp.syn=true;tcp.ack=true;tcp.fin=false;\
                     tcp.ack_seq=3735928559;tcp.payload=GET / HTTP/1.1 MARK;meta.mark=43981;\
                     meta.iifname=eth0;meta.oifname=wlan-very-long-;meta.hook=1;len=59",
        },
        Case {
            name: "udp4",
            data: ipv4(
                17,
                [172, 16, 0, 9],
                [10, 0, 0, 53],
                &udp(5353, 53, b"\x00\x01query MARK"),
            ),
            meta: Meta::default(),
            checks: "ip.protocol=17;udp.sport=5353;udp.dport=53;udp.length=20;meta.l4proto=17;\
                     meta.nfproto=2;tcp=nil;ip6=nil",
        },
        Case {
            name: "icmp4",
            data: ipv4(1, [10, 9, 9, 9], [10, 0, 0, 1], &icmp(8, 0x0102, 0x0304)),
            meta: Meta::default(),
            checks: "icmp.type=8;icmp.code=0;icmp.id=258;icmp.sequence=772;icmp.checksum=13124",
        },
        Case {
            name: "tcp6",
            data: ipv6(6, v6(1), v6(2), &tcp(22, 60000, 0x11, b"ssh MARK")),
            meta,
            checks: "ip6.saddr=2001:db8::1;ip6.daddr=2001:db8::2;ip6.nexthdr=6;ip6.hoplimit=33;\
                     ip6.flowlabel=74565;ip6.dscp=46;tcp.fin=true;tcp.dport=60000;ip=nil",
        },
        Case {
            name: "udp6",
            data: ipv6(17, [0; 16], v6(0xff), &udp(1, 2, b"six MARK")),
            meta: Meta::default(),
            checks: "ip6.saddr=::;ip6.daddr=2001:db8::ff;udp.dport=2;meta.nfproto=10",
        },
        Case {
            name: "icmp6",
            data: ipv6(58, v6(3), v6(4), &icmp(128, 7, 9)),
            meta: Meta::default(),
            checks: "icmp6.type=128;icmp6.id=7;icmp=nil",
        },
        Case {
            name: "big udp4 beyond the window",
            data: ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], &udp(9, 10, &big)),
            meta: Meta::default(),
            checks: "len=2328;udp.length=2308;ip.length=2328",
        },
        Case {
            name: "non-first fragment",
            data: frag,
            meta: Meta::default(),
            checks: "ip.frag_off=16;udp=nil;ip.protocol=17",
        },
        Case {
            name: "truncated",
            data: vec![0x45, 0, 0, 40, 0, 0],
            meta: Meta::default(),
            checks: "len=6;tcp=nil",
        },
    ]
}

#[test]
fn packet_fields_agree_with_the_sandbox() {
    for case in cases() {
        let cfg = Config {
            limits: Limits {
                instructions: 0,
                fuel: abi::limits::MAX_FUEL,
                ..config(FIELDS, None).limits
            },
            ..config(FIELDS, Some(case.checks))
        };
        let (mut n, nh) = native(&cfg);
        let (mut w, wh) = wasmi(&cfg);
        let pkt = SlicePacket {
            data: &case.data,
            meta: case.meta,
        };
        let a = run_fields(&mut n, &pkt);
        let b = run_fields(&mut w, &pkt);
        let (nl, wl) = (nh.take(), wh.take());
        assert_eq!(a, (Verdict::Drop, None), "{}: {nl:?}", case.name);
        assert_eq!(a, b, "{}: {wl:?}", case.name);
        assert_eq!(nl, wl, "{}", case.name);
        assert!(
            nl.len() > 70 && nl.iter().all(|l| !l.contains("failed")),
            "{}",
            case.name
        );
    }
    // the window boundary: bytes past it come through the host callback
    let big = &cases()[6];
    let (mut n, nh) = native(&config(FIELDS, None));
    run_fields(&mut n, &SlicePacket::new(&big.data));
    let lines = nh.take();
    for want in [
        "extra3=909588537,\"456789\"",
        "extra5=\"........\"",
        "extra7=2101,2104",
    ] {
        assert!(
            lines.iter().any(|l| l == &format!("Info: {want}")),
            "{want}: {lines:?}"
        );
    }
}

// ---- independence -------------------------------------------------------------------------------

#[test]
fn engines_in_parallel_threads_are_independent() {
    let threads: Vec<_> = (0..6u32)
        .map(|i| {
            std::thread::spawn(move || {
                let src = "local n = 0\n\
                           function process_packet(pkt, arg)\n\
                             n = n + 1\n\
                             if arg == 'hog' and n % 3 == 0 then local t = {} while true do t[#t+1] = {} end end\n\
                             if arg == 'loop' and n % 3 == 0 then while true do end end\n\
                             return n % 2 == 0 and lp.DROP or lp.ACCEPT\n\
                           end";
                let arg = ["hog", "loop", "plain"][i as usize % 3];
                let cfg = Config {
                    limits: Limits { memory: (256 + 64 * u64::from(i)) * 1024, ..Limits::default() },
                    ..config(src, Some(arg))
                };
                let mut engines: Vec<NativeEngine> = (0..3).map(|_| native(&cfg).0).collect();
                for k in 1..=60u32 {
                    for e in &mut engines {
                        let (v, err) = run(e, &tcp4(80));
                        let expect_err = arg != "plain" && k % 3 == 0;
                        assert_eq!(err.is_some(), expect_err, "thread {i}, call {k}: {err:?}");
                        if !expect_err {
                            let want = if k % 2 == 0 { Verdict::Drop } else { Verdict::Accept };
                            assert_eq!(v, want, "thread {i}, call {k}");
                        }
                        assert!(e.lua_memory() as u64 <= cfg.limits.memory);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn engine_moves_between_threads_and_drops_cleanly() {
    let src = "setmetatable({}, {__gc = function() lp.log('collected') end})\n\
               function process_packet() return lp.ACCEPT end";
    let (mut e, h) = native(&config(src, None));
    let mut e = std::thread::spawn(move || {
        assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Accept, None));
        e
    })
    .join()
    .unwrap();
    assert_eq!(run(&mut e, &tcp4(80)), (Verdict::Accept, None));
    drop(e);
    // the finalizer ran when the state closed, and its log line still arrived
    assert!(h.take().iter().any(|l| l == "Info: collected"));
}

// ---- lp.bytes -------------------------------------------------------------------------------------

#[test]
fn bytes_match_the_sandbox() {
    // every operation, results and error messages logged: both engines must log the same lines
    // one operation per packet (14 per round and a collection, two rounds): a call has at most
    // abi::limits::MAX_FUEL, and each of these costs tens of thousands (an argument error
    // ~46,000: Lua looks for the function's name in every loaded module, and the collector's
    // steps land where allocations do)
    let src = r#"
kept = nil
local b
local step = 0
local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  for i = 1, r.n do
    if getmetatable(r[i]) == "lp.bytes" then r[i] = "bytes:" .. r[i]:hex() else r[i] = tostring(r[i]) end
  end
  lp.log(table.concat(r, " "))
end
local pkt
local ops = {
    function() try(function() return #b, b[1], b[7], b:u8(6), b:u16(1), b:u16(1, "le"), b:u32(2), b:u32(2, "le") end) end,
    function() try(function() b:set_u16(5, 0x1234, "le") b:set_u32(1, 0xcafef00d) b[6] = 7 return b end) end,
    function() try(function() return b:sub(2, -2), b:find("\xfe\xf0", 1, true), b:find("%z") end) end,
    function() try(function() return b .. "x", "x" .. b, b == lp.bytes(tostring(b)), tostring(lp.bytes("hi")) end) end,
    function() try(lp.bytes.hex, "abc") end,
    function() try(lp.bytes.hex, "0g") end,
    function() try(lp.bytes.new, -1) end,
    function() try(function() b[7] = 1 end) end,
    function() try(function() b[1] = 300 end) end,
    function() try(function() return b:u32(4) end) end,
    function() try(function() b:set_u16(1, 70000) end) end,
    function() try(function() return b:u16(1, "xx") end) end,
    function() try(lp.bytes, pkt) end,
    function()
      if kept then try(function() return kept, kept == lp.bytes(pkt.tcp.payload) end) end
      kept = lp.bytes(pkt.tcp.payload)
    end,
    -- a collection of its own between rounds: where the collector's steps land then depends
    -- on this script's allocations only, not on the size of the library's heap
    function() collectgarbage() end,
}
function process_packet(p)
  pkt = p
  step = step % 15 + 1
  if step == 1 then b = lp.bytes.hex("de ad:be-ef 01 02") end
  ops[step]()
  return lp.DROP
end
"#;
    let cfg = config(src, None);
    let (mut n, nh) = native(&cfg);
    let (mut w, wh) = wasmi(&cfg);
    for payload in [&b"one"[..], b"two"] {
        let p = ipv4(6, [10, 0, 0, 1], [10, 0, 0, 2], &tcp(1, 2, 0x18, payload));
        for _ in 0..15 {
            assert_eq!(run(&mut n, &p), (Verdict::Drop, None), "{:?}", nh.take());
            assert_eq!(run(&mut w, &p), (Verdict::Drop, None), "{:?}", wh.take());
        }
    }
    let (nl, wl) = (nh.take(), wh.take());
    assert_eq!(nl.len(), 2 * 13 + 1, "{nl:#?}");
    assert!(nl.iter().all(|l| l.starts_with("Info: ")), "{nl:#?}");
    assert_eq!(
        nl[0],
        "Info: true 6 222 nil 2 57005 44510 2914971393 32489133"
    );
    assert_eq!(nl.last().unwrap(), "Info: true bytes:6f6e65 false");
    assert_eq!(nl, wl);
}
