//! Differential test: every script of a small corpus runs over the same hand-built packets under
//! wasmi (the kernel's engine), wasmtime and the compiled guest (wasm2c), which must agree on
//! every verdict and error kind. Lua error messages must be identical too; only the fixed
//! messages of traps may differ. The built-in guest counts its own fuel
//! (guest-lua/build/fuel.rs), so fuel must be identical too, to the unit, on every run. Scripts
//! that rewrite packets must leave the same bytes and metadata under every engine.

use lpctl::engine::compiled::TranslatedGuest;
use lpctl::engine::script::{CliGuest, ScriptEngine};
use lpctl::engine::wasmtime::WasmtimeGuest;
use lpctl::engine::{self, Config, Engine, Kind, RunResult};
use runtime::{ErrorKind, Limits, Meta, OnError, SlicePacket, Verdict};
use std::collections::BTreeSet;

// ---- packets ------------------------------------------------------------------------------

#[path = "../../tests/src/packets.rs"]
#[allow(dead_code, unreachable_pub)]
mod packets;
use packets::{tcp, udp, Ip4, Ip6};

/// IPv4 (id 0x1234) with flags and fragment offset `frag_off`.
fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], frag_off: u16, l4: &[u8]) -> Vec<u8> {
    let h = Ip4 {
        id: 0x1234,
        frag_off,
        ..Ip4::default()
    };
    h.packet(proto, src, dst, l4)
}

fn ipv6(next: u8, src: [u16; 8], dst: [u16; 8], l4: &[u8]) -> Vec<u8> {
    let bytes = |a: [u16; 8]| std::net::Ipv6Addr::from(a).octets();
    Ip6::default().packet(next, bytes(src), bytes(dst), l4)
}

/// ICMP / ICMPv6 echo request or reply.
fn echo(ty: u8, id: u16, seq: u16) -> Vec<u8> {
    let mut e = vec![ty, 0, 0, 0];
    e.extend_from_slice(&id.to_be_bytes());
    e.extend_from_slice(&seq.to_be_bytes());
    e.extend_from_slice(b"ping-payload");
    e
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const C: [u8; 4] = [192, 168, 7, 9];
const A6: [u16; 8] = [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1];
const B6: [u16; 8] = [0x2001, 0xdb8, 0, 0, 0, 0, 0, 2];
const C6: [u16; 8] = [0xfe80, 0, 0, 0, 0, 0, 0, 7];

struct Pkt {
    name: &'static str,
    data: Vec<u8>,
    meta: Meta,
}

fn pkt(name: &'static str, data: Vec<u8>) -> Pkt {
    Pkt {
        name,
        data,
        meta: Meta::default(),
    }
}

fn packets() -> Vec<Pkt> {
    let mut big = vec![b'.'; 2300];
    big[2200..2206].copy_from_slice(b"NEEDLE");
    // IPv6 fragment header: UDP, offset 100 (x8), more fragments
    let mut frag6 = vec![17, 0, 0, (100 << 3 | 1) as u8, 0, 0, 0, 42];
    frag6[2] = ((100u16 << 3) >> 8) as u8;
    frag6.extend_from_slice(&[0xab; 24]);
    let mut marked = pkt(
        "tcp4 ssh marked",
        ipv4(6, C, B, 0, &tcp(51000, 22, 0x12, b"SSH-2.0-x")),
    );
    marked.meta = Meta {
        nfproto: 2,
        hook: 1,
        mark: 0x2a,
        iifname: runtime::packet::ifname("eth0"),
        oifname: runtime::packet::ifname("wg-home"),
        ..Meta::default()
    };
    vec![
        pkt("tcp4 syn :80", ipv4(6, A, B, 0, &tcp(40000, 80, 0x02, b""))),
        pkt(
            "tcp4 http GET",
            ipv4(
                6,
                A,
                B,
                0,
                &tcp(
                    40001,
                    80,
                    0x18,
                    b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n",
                ),
            ),
        ),
        pkt(
            "tcp4 :22",
            ipv4(6, B, A, 0, &tcp(40002, 22, 0x10, b"hello")),
        ),
        marked,
        pkt(
            "udp4 dns",
            ipv4(
                17,
                A,
                [8, 8, 8, 8],
                0,
                &udp(5353, 53, b"\x12\x34\x01\x00\x00\x01example"),
            ),
        ),
        pkt("udp4 big", ipv4(17, C, A, 0, &udp(9999, 4000, &big))),
        pkt("icmp4 echo", ipv4(1, B, A, 0, &echo(8, 7, 1))),
        pkt(
            "ipv4 non-first fragment",
            ipv4(6, A, B, 185, &tcp(1, 2, 0x02, b"not a header")),
        ),
        pkt("tcp6 :443", ipv6(6, A6, B6, &tcp(40003, 443, 0x02, b""))),
        pkt(
            "tcp6 http GET",
            ipv6(6, B6, A6, &tcp(40004, 8080, 0x18, b"GET / HTTP/1.0\r\n")),
        ),
        pkt("udp6 :53", ipv6(17, C6, A6, &udp(1234, 53, b"query"))),
        pkt("icmp6 echo", ipv6(58, A6, C6, &echo(128, 9, 2))),
        pkt("ipv6 non-first fragment", ipv6(44, B6, A6, &frag6)),
        // selectors for the error scripts: TCP destination ports 1..=9
        pkt("tcp4 :1", ipv4(6, A, B, 0, &tcp(40010, 1, 0x02, b""))),
        pkt("tcp4 :2", ipv4(6, A, B, 0, &tcp(40011, 2, 0x02, b""))),
        pkt("tcp4 :3", ipv4(6, A, B, 0, &tcp(40012, 3, 0x02, b""))),
        pkt("tcp4 :4", ipv4(6, A, B, 0, &tcp(40013, 4, 0x02, b""))),
        pkt("tcp4 :5", ipv4(6, A, B, 0, &tcp(40014, 5, 0x02, b""))),
        pkt("tcp4 :6", ipv4(6, A, B, 0, &tcp(40015, 6, 0x02, b""))),
        pkt("tcp4 :7", ipv4(6, A, B, 0, &tcp(40016, 7, 0x02, b""))),
        pkt("tcp4 :8", ipv4(6, A, B, 0, &tcp(40017, 8, 0x02, b""))),
        pkt("tcp4 :9", ipv4(6, A, B, 0, &tcp(40018, 9, 0x02, b""))),
        pkt("truncated", vec![0x45, 0, 0, 40, 0, 0]),
    ]
}

// ---- scripts ------------------------------------------------------------------------------

struct Case {
    name: &'static str,
    source: &'static str,
    function: &'static str,
    arg: Option<&'static [u8]>,
    limits: Limits,
    on_error: OnError,
    /// Error kinds this script must produce at least once (the corpus is meant to cover them).
    expect: &'static [ErrorKind],
}

fn case(name: &'static str, source: &'static str) -> Case {
    Case {
        name,
        source,
        function: "process_packet",
        arg: None,
        // the most fuel a call may have: scanning a 2,900-byte payload costs ~150,000
        limits: Limits {
            fuel: abi::limits::MAX_FUEL,
            ..Limits::default()
        },
        on_error: OnError::Break,
        expect: &[],
    }
}

fn corpus() -> Vec<Case> {
    use ErrorKind::*;
    vec![
        case(
            "accept.lua",
            "function process_packet() return lp.ACCEPT end",
        ),
        Case {
            on_error: OnError::Accept,
            ..case(
                "drop.lua",
                "function process_packet(pkt) return lp.DROP end",
            )
        },
        case(
            "ports.lua",
            r#"
function process_packet(pkt)
  local t, u = pkt.tcp, pkt.udp
  if t and t.dport == 22 then return lp.DROP end
  if t and (t.dport == 80 or t.dport == 443) and t.syn then return lp.ACCEPT end
  if u and u.dport == 53 then return lp.QUEUE(u.sport % 4) end
  if t or u then return lp.CONTINUE end
  return lp.BREAK
end"#,
        ),
        case(
            "addresses.lua",
            r#"
local lan, v6, ll = lp.cidr("10.0.0.0/8"), lp.cidr("2001:db8::/32"), lp.cidr("fe80::/10")
local host = lp.cidr("192.168.7.9")
function process_packet(pkt)
  if pkt.ip then
    if host:contains(pkt.ip.saddr) then return lp.DROP end
    if lan:contains(pkt.ip.saddr) and lan:contains(pkt.ip.daddr) then return lp.ACCEPT end
    return false
  end
  local ip6 = pkt.ip6
  if ll:contains(ip6.saddr) or ll:contains(ip6.daddr) then return lp.QUEUE(1) end
  if v6:contains(ip6.saddr) then return lp.ACCEPT end
  return tostring(v6) == "2001:db8::/32"
end"#,
        ),
        case(
            "payload.lua",
            r#"
function process_packet(pkt)
  local l4 = pkt.tcp or pkt.udp
  if not l4 then return nil end
  local pl = l4.payload
  if pl:find("GET ", 1, true) == 1 then return lp.DROP end
  local s, e = pl:find("NEEDLE", 1, true)
  if s then error(("needle at %d-%d of %d: %q"):format(s, e, #pl, pl:sub(s - 2, e + 2)), 0) end
  if pl:find("^SSH%-%d") then return lp.QUEUE(22) end
  if #pl > 0 then return lp.ACCEPT end
  return false
end"#,
        ),
        Case {
            expect: &[Lua],
            ..case(
                "describe.lua",
                r#"
-- (the description goes in fifths, metadata, network, transport, icmp, raw bytes: all of it at
-- once needs more fuel than one call may have, an error's traceback included)
local function hex(s) return ("%02x"):rep(#s):format(s:byte(1, -1)) end
local calls = 0
function process_packet(pkt)
  calls = calls + 1
  local m, p = pkt.meta, {}
  local function add(...) for _, v in ipairs({...}) do p[#p + 1] = tostring(v) end end
  if calls % 5 == 1 then
    add(pkt.len, m.nfproto, m.l4proto, m.mark, m.hook, m.iifname, m.oifname)
  elseif calls % 5 == 2 then
    local ip = pkt.ip or pkt.ip6
    if pkt.ip then add(ip.saddr, ip.daddr, ip.ttl, ip.id, ip.frag_off, ip.protocol)
    elseif pkt.ip6 then add(ip.saddr, ip.daddr, ip.hoplimit, ip.nexthdr, ip.flowlabel) end
  elseif calls % 5 == 3 then
    local t = pkt.tcp
    if t then add("tcp", t.sport, t.dport, t.flags, t.syn, t.ack, t.seq, t.ack_seq, t.window, #t.payload) end
    local u = pkt.udp
    if u then add("udp", u.sport, u.dport, u.length, #u.payload, u.payload:sub(1, 6)) end
  elseif calls % 5 == 4 then
    local i = pkt.icmp or pkt.icmp6
    if i then add("icmp", i.type, i.code, i.id, i.sequence) end
  else
    add(pkt:u8(0), pkt:u16(2), hex(pkt:bytes(0, math.min(8, pkt.len))))
    if pkt.len > 2100 then add(hex(pkt:bytes(2226, 12)), pkt:u32(2290)) end
  end
  error(table.concat(p, " "), 0)
end"#,
            )
        },
        Case {
            expect: &[Lua, Return],
            ..case(
                "verdicts.lua",
                r#"
function process_packet(pkt)
  if pkt.icmp or pkt.icmp6 then return true end
  if pkt.udp then return false end
  local t = pkt.tcp
  if not t then return nil end
  if t.dport == 1 then return lp.QUEUE(3) end
  if t.dport == 2 then return lp.QUEUE(70000) end
  if t.dport == 3 then return "accept" end
  if t.dport == 4 then return 99 end
  if t.dport == 5 then return 1.5 end
  if t.dport == 6 then return {} end
  if t.dport == 7 then return lp.CONTINUE end
  if t.dport == 8 then return lp.QUEUE(0) end
end"#,
            )
        },
        Case {
            on_error: OnError::Drop,
            expect: &[Lua],
            ..case(
                "errors.lua",
                r#"
local closed = 0
function process_packet(pkt)
  local t = pkt.tcp
  if not t then return closed > 0 end
  if t.dport == 1 then local x = nil; return x.field end
  if t.dport == 2 then error("boom") end
  if t.dport == 3 then error({code = 1}) end
  if t.dport == 4 then error(setmetatable({}, {__tostring = function() return "custom" end})) end
  if t.dport == 5 then
    local c <close> = setmetatable({}, {__close = function() closed = closed + 1 end})
    error("closing")
  end
  if t.dport == 6 then return pkt.tcp.nothing.here end
  if t.dport == 7 then pkt.ip.ttl = 1 end
  if t.dport == 8 then return pkt:bytes(0, 100000) end
  if t.dport == 9 then return lp.cidr("10.0.0.0/99") end
  return lp.QUEUE(closed)
end"#,
            )
        },
        Case {
            // the instruction budget (off by default), set
            limits: Limits {
                instructions: 1_000,
                ..Limits::default()
            },
            expect: &[Instructions],
            ..case(
                "loop.lua",
                r#"
local n = 0
function process_packet(pkt)
  n = n + 1
  local t = pkt.tcp
  if t and t.dport == 3 then while true do end end
  if t and t.dport == 4 then local i = 0 repeat i = i + 1 until i < 0 end
  return n % 2 == 0 and lp.ACCEPT or lp.DROP
end"#,
            )
        },
        Case {
            // no instruction budget: fuel cuts the loop, the instance is rebuilt, `n` restarts
            limits: Limits {
                instructions: 0,
                fuel: abi::limits::MAX_FUEL,
                ..Limits::default()
            },
            on_error: OnError::Accept,
            expect: &[Fuel],
            ..case(
                "fuel.lua",
                r#"
local n = 0
function process_packet(pkt)
  n = n + 1
  local t = pkt.tcp
  if t and t.dport == 3 then while true do end end
  return n % 3 == 0 and lp.DROP or lp.CONTINUE
end"#,
            )
        },
        Case {
            limits: Limits {
                memory: 2 << 20,
                ..Limits::default()
            },
            expect: &[Memory],
            ..case(
                "memory.lua",
                r#"
local keep = {}
function process_packet(pkt)
  local t = pkt.tcp
  if t and t.dport == 4 then
    local big = string.rep("x", 10000)
    for i = 1, 1e9 do keep[i] = big .. i end
  end
  if t and t.dport == 5 then keep = {} collectgarbage() end
  if t and t.dport == 6 then return string.rep("y", 1 << 30) end
  return #keep > 0 and lp.DROP or lp.ACCEPT
end"#,
            )
        },
        Case {
            expect: &[Stack],
            ..case(
                "nesting.lua",
                r#"
local function nest(n)
  if n == 0 then return true end
  local ok, err = pcall(nest, n - 1)
  if not ok then error(err, 0) end
  return ok
end
local function recurse() string.gsub("x", "x", recurse) end
local function deep(n) return deep(n + 1) + 1 end
local co = coroutine.wrap(function() for i = 1, 1e9 do coroutine.yield(i) end end)
function process_packet(pkt)
  local t = pkt.tcp
  local port = t and t.dport or 0
  if port == 1 then nest(40) end
  if port == 2 then nest(4) return lp.DROP end
  if port == 3 then recurse() end
  if port == 4 then deep(1) end
  if port == 5 then
    local ok, e = pcall(error, "caught")
    if not ok and e == "caught" then return lp.QUEUE(co()) end
  end
  if port == 6 then
    local ok, e = pcall(nest, 40)
    return ok and lp.ACCEPT or lp.QUEUE(#e)
  end
  if port == 7 then
    local ok, e = xpcall(recurse, function(m) return "handled: " .. tostring(m) end)
    error(e, 0)
  end
  return lp.ACCEPT
end"#,
            )
        },
        Case {
            // one protected call deep: a finalizer that runs inside a __close handler during
            // error recovery needs a second host re-entry, and the host's cap traps it
            limits: Limits {
                pcall_depth: 1,
                instructions: 0,
                fuel: abi::limits::MAX_FUEL,
                ..Limits::default()
            },
            expect: &[Stack, Lua],
            ..case(
                "reentry.lua",
                r#"
local n = 0
function process_packet(pkt)
  n = n + 1
  local t = pkt.tcp
  if t and (t.dport == 5 or t.dport == 6) then
    local c <close> = setmetatable({}, {__close = function()
      if t.dport == 5 then
        for i = 1, 5 do setmetatable({}, {__gc = function() end}) end
        collectgarbage()
        for i = 1, 200 do local x = {i, i, i} end
      end
    end})
    error("unwinding " .. n)
  end
  if t and t.dport == 7 then return pcall(error, "refused") end
  return lp.QUEUE(n)
end"#,
            )
        },
        case(
            "counter.lua",
            r#"
local seen = {}
function process_packet(pkt)
  local ip = pkt.ip or pkt.ip6
  local src = ip.saddr
  seen[src] = (seen[src] or 0) + 1
  if seen[src] > 3 then return lp.DROP end
  if seen[src] == 3 then return lp.QUEUE(seen[src]) end
  return lp.ACCEPT
end"#,
        ),
        Case {
            function: "check",
            arg: Some(b"web"),
            ..case(
                "argument.lua",
                r#"
function process_packet() return lp.DROP end
function check(pkt, arg)
  if arg ~= "web" then return lp.DROP end
  local t = pkt.tcp
  if t and (t.dport == 80 or t.dport == 443 or t.dport == 8080) then return lp.ACCEPT end
  return false
end"#,
            )
        },
        case(
            "fragments.lua",
            r#"
function process_packet(pkt)
  local m = pkt.meta
  if pkt.ip and pkt.ip.frag_off & 0x1fff ~= 0 then
    return (pkt.tcp == nil and m.l4proto == 6) and lp.QUEUE(4) or lp.ACCEPT
  end
  if pkt.ip6 and pkt.ip6.nexthdr == 44 then
    return (pkt.udp == nil and m.l4proto == 17) and lp.QUEUE(6) or lp.ACCEPT
  end
  return m.nfproto == 10
end"#,
        ),
    ]
}

// ---- comparison ---------------------------------------------------------------------------

fn config(c: &Case) -> Config {
    Config {
        name: c.name.to_string(),
        source: c.source.as_bytes().to_vec(),
        function: c.function.to_string(),
        arg: c.arg.map(<[u8]>::to_vec),
        limits: c.limits,
        on_error: c.on_error,
        guest: None,
    }
}

/// The message of a trap: fixed by the host, not by the guest, and engine specific.
fn trap_message(r: &RunResult) -> bool {
    matches!(&r.error, Some((k, m)) if *m == k.message())
}

fn compare(what: &str, a: &RunResult, b: &RunResult, mismatches: &mut Vec<String>) {
    let kind = |r: &RunResult| r.error.as_ref().map(|e| e.0);
    if a.verdict != b.verdict || kind(a) != kind(b) {
        mismatches.push(format!("{what}: {a:?} / {b:?}"));
        return;
    }
    let msg = |r: &RunResult| r.error.as_ref().map(|e| e.1.clone());
    let trap_kind = matches!(
        kind(a),
        Some(ErrorKind::Fuel | ErrorKind::Stack | ErrorKind::Trap)
    );
    if msg(a) != msg(b) && !(trap_kind && (trap_message(a) || trap_message(b))) {
        mismatches.push(format!(
            "{what}: messages differ: {:?} / {:?}",
            msg(a),
            msg(b)
        ));
    }
    if a.fuel.is_none() || b.fuel.is_none() {
        mismatches.push(format!("{what}: fuel not metered"));
    } else if a.fuel != b.fuel {
        mismatches.push(format!("{what}: fuel differs: {:?} / {:?}", a.fuel, b.fuel));
    }
}

#[test]
fn wasmi_wasmtime_and_compiled_agree_on_the_corpus() {
    let packets = packets();
    let corpus = corpus();
    assert!(corpus.len() >= 12);
    let mut mismatches = Vec::new();
    let mut kinds_seen = BTreeSet::new();
    let mut verdicts_seen = BTreeSet::new();
    let mut runs = 0;
    for c in &corpus {
        let cfg = config(c);
        let mut wasmi = engine::load(Kind::Wasmi, &cfg).unwrap_or_else(|e| panic!("wasmi: {e}"));
        let mut wt = engine::load(Kind::Wasmtime, &cfg).unwrap_or_else(|e| panic!("wasmtime: {e}"));
        let mut cc = engine::load(Kind::Compiled, &cfg).unwrap_or_else(|e| panic!("compiled: {e}"));
        assert_eq!(
            (wasmi.kind(), wt.kind(), cc.kind()),
            (Kind::Wasmi, Kind::Wasmtime, Kind::Compiled)
        );
        let mut kinds = BTreeSet::new();
        // twice over: the second pass sees the state (and rebuilds) the first one left
        for pass in 0..2 {
            for p in &packets {
                let sp = SlicePacket {
                    data: &p.data,
                    meta: p.meta,
                };
                let a = wasmi.run(&sp);
                let b = wt.run(&sp);
                let d = cc.run(&sp);
                runs += 1;
                compare(
                    &format!("{} / {} (pass {pass}) wasmi~wasmtime", c.name, p.name),
                    &a,
                    &b,
                    &mut mismatches,
                );
                compare(
                    &format!("{} / {} (pass {pass}) wasmi~compiled", c.name, p.name),
                    &a,
                    &d,
                    &mut mismatches,
                );
                if let Some((k, _)) = &a.error {
                    kinds.insert(format!("{k:?}"));
                } else {
                    verdicts_seen.insert(format!("{:?}", a.verdict));
                }
            }
        }
        for k in c.expect {
            assert!(
                kinds.contains(&format!("{k:?}")),
                "{}: never failed with {k:?} ({kinds:?})",
                c.name
            );
        }
        kinds_seen.extend(kinds);
    }
    assert!(
        mismatches.is_empty(),
        "{} of {runs} runs differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    for k in ["Lua", "Memory", "Fuel", "Instructions", "Stack", "Return"] {
        assert!(
            kinds_seen.contains(k),
            "no script failed with {k}: {kinds_seen:?}"
        );
    }
    for v in ["Accept", "Drop", "Continue", "Break", "Queue(3)"] {
        assert!(
            verdicts_seen.contains(v),
            "no packet got {v}: {verdicts_seen:?}"
        );
    }
}

#[test]
fn every_engine_refuses_bad_scripts_alike() {
    let bad = [
        case("syntax.lua", "function process_packet( return end"),
        case(
            "toplevel.lua",
            "local x = nil\nx.y = 1\nfunction process_packet() end",
        ),
        case("toplevel_error.lua", "error('top level fails')"),
        case("nofunc.lua", "x = 1"),
        Case {
            function: "missing",
            ..case("missing.lua", "function process_packet() end")
        },
        Case {
            limits: Limits {
                fuel: 0,
                ..Limits::default()
            },
            ..case("limits.lua", "function process_packet() end")
        },
        Case {
            limits: Limits {
                memory: 64 << 10,
                ..Limits::default()
            },
            ..case("tiny.lua", "function process_packet() end")
        },
        Case {
            limits: Limits {
                memory: 2 << 20,
                ..Limits::default()
            },
            ..case(
                "bomb.lua",
                "local t = {} for i = 1, 1e9 do t[i] = string.rep('z', 4096) .. i end",
            )
        },
    ];
    for c in &bad {
        let cfg = config(c);
        let a = engine::load(Kind::Wasmi, &cfg).err().map(|e| e.to_string());
        let b = engine::load(Kind::Wasmtime, &cfg)
            .err()
            .map(|e| e.to_string());
        let d = engine::load(Kind::Compiled, &cfg)
            .err()
            .map(|e| e.to_string());
        let a = a.unwrap_or_else(|| panic!("{}: wasmi loaded it", c.name));
        let b = b.unwrap_or_else(|| panic!("{}: wasmtime loaded it", c.name));
        let d = d.unwrap_or_else(|| panic!("{}: compiled loaded it", c.name));
        assert!(a.starts_with(&format!("{}: ", c.name)), "{a}");
        if a.contains("guest module rejected: ") {
            // the engines word their own instantiation failures differently
            let prefix = format!("{}: guest module rejected: ", c.name);
            assert!(
                a.starts_with(&prefix) && b.starts_with(&prefix) && d.starts_with(&prefix),
                "{a} / {b} / {d}"
            );
            continue;
        }
        assert_eq!(a, b, "{}", c.name);
        assert_eq!(a, d, "{}", c.name);
    }
}

fn a_rebuilt_instance_serves_the_next_packet<G: CliGuest>() {
    let limits = Limits {
        instructions: 0,
        fuel: abi::limits::MAX_FUEL,
        ..Limits::default()
    };
    let c = Case {
        limits,
        on_error: OnError::Drop,
        ..case(
            "rebuild.lua",
            // the soft stop ("out of fuel" as a Lua error) is caught and the loop goes on: the
            // second exhaustion is the hard stop, a trap, and the instance is rebuilt
            "local n = 0 function process_packet(pkt) n = n + 1 if pkt.tcp.dport == 3 then pcall(function() while true do end end) while true do end end return lp.QUEUE(n) end",
        )
    };
    let cfg = config(&c);
    let mut wt = ScriptEngine::<G>::load(&cfg).unwrap();
    let all = packets();
    let find = |name: &str| all.iter().find(|p| p.name == name).unwrap();
    let (ok, spin) = (find("tcp4 :1"), find("tcp4 :3"));
    let run = |e: &mut ScriptEngine<G>, p: &Pkt| {
        e.run(&SlicePacket {
            data: &p.data,
            meta: p.meta,
        })
    };
    assert_eq!(run(&mut wt, ok).verdict, Verdict::Queue(1));
    assert_eq!(run(&mut wt, ok).verdict, Verdict::Queue(2));
    let r = run(&mut wt, spin);
    assert_eq!(
        (r.verdict, r.error),
        (Verdict::Drop, Some((ErrorKind::Fuel, "out of fuel".into())))
    );
    assert_eq!(r.fuel, Some(limits.fuel));
    assert_eq!((wt.rebuilds(), wt.message()), (1, "out of fuel"));
    // the top-level chunk ran again: `n` restarted
    assert_eq!(run(&mut wt, ok).verdict, Verdict::Queue(1));
    // a Lua error needs no rebuild
    let short = find("truncated");
    let r = run(&mut wt, short);
    assert_eq!(r.error.map(|e| e.0), Some(ErrorKind::Lua));
    assert!(wt.message().contains("stack traceback"), "{}", wt.message());
    assert_eq!(run(&mut wt, ok).verdict, Verdict::Queue(3));
    assert_eq!((wt.kind(), wt.rebuilds()), (G::KIND, 1));
}

#[test]
fn a_rebuilt_instance_serves_the_next_packet_under_wasmtime() {
    a_rebuilt_instance_serves_the_next_packet::<WasmtimeGuest>();
}

#[test]
fn a_rebuilt_instance_serves_the_next_packet_compiled() {
    a_rebuilt_instance_serves_the_next_packet::<TranslatedGuest>();
}

// ---- written bytes --------------------------------------------------------------------------

/// What a call left: the verdict, the error kind, the packet's bytes and metadata writes.
type Written = (Verdict, Option<ErrorKind>, Vec<u8>, runtime::MetaWrite);

fn run_writes(kind: Kind, cfg: &Config, frames: &[(Vec<u8>, Meta)]) -> Vec<Written> {
    let mut e = engine::load(kind, cfg).unwrap_or_else(|e| panic!("{kind}: {e}"));
    frames
        .iter()
        .map(|(data, meta)| {
            let p = runtime::OwnedPacket::new(data.clone(), *meta);
            let r = e.run(&p);
            let w = p.written.get();
            (r.verdict, r.error.map(|e| e.0), p.into_bytes(), w)
        })
        .collect()
}

#[test]
fn every_engine_writes_the_same_bytes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let nat: Vec<(Vec<u8>, Meta)> = lpctl::pcap::read_file(&root.join("tests/data/nat.pcap"))
        .unwrap()
        .into_iter()
        .filter_map(|f| match f.kind {
            lpctl::pcap::FrameKind::Ip { data, .. } => Some((data, Meta::default())),
            _ => None,
        })
        .collect();
    let setters = r#"
function process_packet(pkt)
  local t, u = pkt.tcp, pkt.udp
  if pkt.ip then pkt.ip.ttl = 7 pkt.ip.dscp = 10 pkt.ip.id = 4242 end
  if pkt.ip6 then pkt.ip6.hoplimit = 9 pkt.ip6.flowlabel = 77 end
  if t then t.sport = 1234 t.dport = (t.dport + 1) % 65536 t.window = 99 t.urg = true end
  if u then u.sport = 53 u.dport = 5353 end
  pkt.meta.mark = 0x2a
  if pkt.len > 60 then pkt:set_u8(pkt.len - 1, 0x41) pkt:set_bytes(pkt.len - 4, "BC") end
  if pkt.len > 2100 then pkt:set_u32(2100, 0xdeadbeef) end
  return lp.ACCEPT
end"#;
    let mine: Vec<(Vec<u8>, Meta)> = packets().into_iter().map(|p| (p.data, p.meta)).collect();
    let cases = [
        (
            Config {
                function: "nat".into(),
                ..config(&case("nat.lua", include_str!("../../examples/nat.lua")))
            },
            &nat,
        ),
        (config(&case("setters.lua", setters)), &mine),
    ];
    for (cfg, frames) in cases {
        let wasmi = run_writes(Kind::Wasmi, &cfg, frames);
        let changed = wasmi
            .iter()
            .zip(frames.iter())
            .filter(|((_, _, after, _), (before, _))| after != before)
            .count();
        assert!(
            changed * 2 >= frames.len(),
            "{}: {changed} packets changed",
            cfg.name
        );
        for kind in [Kind::Wasmtime, Kind::Compiled] {
            let other = run_writes(kind, &cfg, frames);
            for (i, (a, b)) in wasmi.iter().zip(&other).enumerate() {
                assert_eq!(a, b, "{} packet {i}: wasmi / {kind}", cfg.name);
            }
        }
    }
}
