//! The packet object as scripts see it: every field of every protocol class on packets built
//! byte by byte, IPv6 address text, fragments and extension headers, payload views (inside and
//! beyond the host's 2048-byte window), raw reads, `lp.cidr`, views kept past their call,
//! logging and metadata. Each script asserts in Lua and returns `lp.ACCEPT`.
mod common;
use common::*;
use runtime::packet::ifname;
use runtime::{Limits, Meta, OnError, Script, SlicePacket, Verdict};
use std::net::Ipv6Addr;

/// Helpers every script gets: `eq` compares value and number subtype, `fails` expects an error
/// containing a plain-text needle, `same` compares two `table.pack`s.
const PRELUDE: &str = r##"
local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v) .. " (" .. (math.type(v) or type(v)) .. ")"
end
local function eq(got, want, what)
  if got ~= want or math.type(got) ~= math.type(want) then
    error(string.format("%s: got %s, want %s", what, show(got), show(want)), 2)
  end
end
local function fails(f, needle, what)
  local ok, err = pcall(f)
  if ok then error((what or needle) .. ": no error", 2) end
  if not tostring(err):find(needle, 1, true) then
    error(string.format("%s: error %q lacks %q", what or needle, tostring(err), needle), 2)
  end
end
local function same(a, b, what)
  if a.n ~= b.n then error(string.format("%s: %d results, want %d", what, a.n, b.n), 2) end
  for i = 1, a.n do
    if a[i] ~= b[i] or math.type(a[i]) ~= math.type(b[i]) then
      error(string.format("%s: result %d is %s, want %s", what, i, show(a[i]), show(b[i])), 2)
    end
  end
end
"##;

/// Loads `src` after the prelude. The exhaustive comparisons run far more Lua than a packet
/// script would: no instruction budget, more fuel and memory than the defaults.
fn script(src: &str) -> (Script, std::sync::Arc<TestHost>) {
    let limits = Limits {
        instructions: 0,
        fuel: abi::limits::MAX_FUEL,
        memory: 8 << 20,
        ..Limits::default()
    };
    load_with(&format!("{PRELUDE}\n{src}"), limits, OnError::Break)
}

/// Runs `s` on `p` with [`TEST_FUEL`] (more than a script may have: the instance is run
/// directly) and requires `lp.ACCEPT` without error.
fn accept(s: &mut Script, entry: usize, p: &[u8], meta: Meta) {
    let (r, msg) = run_with_test_fuel(s, entry, &SlicePacket { data: p, meta });
    assert_eq!(r, Ok(Verdict::Accept), "{msg}");
}

/// `body` becomes process_packet(pkt) (followed by `return lp.ACCEPT`) and runs on `p`.
fn check_meta(p: &[u8], meta: Meta, body: &str) {
    let (mut s, _) = script(&format!(
        "function process_packet(pkt)\n{body}\nreturn lp.ACCEPT\nend"
    ));
    accept(&mut s, 0, p, meta);
}

fn check(p: &[u8], body: &str) {
    check_meta(p, Meta::default(), body)
}

// ---- packet builders ------------------------------------------------------------------------

struct V4<'a> {
    tos: u8,
    id: u16,
    frag: u16,
    ttl: u8,
    proto: u8,
    csum: u16,
    src: [u8; 4],
    dst: [u8; 4],
    options: &'a [u8],
}

impl Default for V4<'_> {
    fn default() -> Self {
        V4 {
            tos: 0,
            id: 1,
            frag: 0,
            ttl: 64,
            proto: 6,
            csum: 0,
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            options: &[],
        }
    }
}

fn v4(h: V4, l4: &[u8]) -> Vec<u8> {
    assert_eq!(h.options.len() % 4, 0);
    let hlen = 20 + h.options.len();
    let total = hlen + l4.len();
    let mut p = vec![0x40 | (hlen / 4) as u8, h.tos];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&h.id.to_be_bytes());
    p.extend_from_slice(&h.frag.to_be_bytes());
    p.extend_from_slice(&[h.ttl, h.proto]);
    p.extend_from_slice(&h.csum.to_be_bytes());
    p.extend_from_slice(&h.src);
    p.extend_from_slice(&h.dst);
    p.extend_from_slice(h.options);
    p.extend_from_slice(l4);
    p
}

fn a6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>()
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .octets()
}

/// IPv6 fixed header (traffic class, flow label, next header, hop limit) + the rest.
fn v6(tc: u8, flow: u32, next: u8, hlim: u8, src: &str, dst: &str, rest: &[u8]) -> Vec<u8> {
    let first = 6u32 << 28 | u32::from(tc) << 20 | (flow & 0xfffff);
    let mut p = first.to_be_bytes().to_vec();
    p.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, hlim]);
    p.extend_from_slice(&a6(src));
    p.extend_from_slice(&a6(dst));
    p.extend_from_slice(rest);
    p
}

fn v6_simple(next: u8, rest: &[u8]) -> Vec<u8> {
    v6(0, 0, next, 64, "2001:db8::1", "2001:db8::2", rest)
}

struct Tcp<'a> {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    csum: u16,
    urg: u16,
    options: &'a [u8],
}

impl Default for Tcp<'_> {
    fn default() -> Self {
        Tcp {
            sport: 40000,
            dport: 80,
            seq: 1,
            ack: 0,
            flags: 0x02,
            window: 1024,
            csum: 0,
            urg: 0,
            options: &[],
        }
    }
}

fn tcp_seg(t: Tcp, payload: &[u8]) -> Vec<u8> {
    assert_eq!(t.options.len() % 4, 0);
    let doff = (20 + t.options.len()) / 4;
    let mut s = Vec::new();
    s.extend_from_slice(&t.sport.to_be_bytes());
    s.extend_from_slice(&t.dport.to_be_bytes());
    s.extend_from_slice(&t.seq.to_be_bytes());
    s.extend_from_slice(&t.ack.to_be_bytes());
    s.extend_from_slice(&[(doff as u8) << 4, t.flags]);
    s.extend_from_slice(&t.window.to_be_bytes());
    s.extend_from_slice(&t.csum.to_be_bytes());
    s.extend_from_slice(&t.urg.to_be_bytes());
    s.extend_from_slice(t.options);
    s.extend_from_slice(payload);
    s
}

fn udp_csum(sport: u16, dport: u16, csum: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = udp(sport, dport, payload);
    u[6..8].copy_from_slice(&csum.to_be_bytes());
    u
}

fn icmp_msg(ty: u8, code: u8, csum: u16, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code];
    m.extend_from_slice(&csum.to_be_bytes());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    m
}

/// Options-style IPv6 extension header (hop-by-hop, routing, destination options).
fn ext6(next: u8, len8: u8) -> Vec<u8> {
    let mut e = vec![0u8; (usize::from(len8) + 1) * 8];
    e[0] = next;
    e[1] = len8;
    if e.len() > 2 {
        e[2] = 1; // PadN
        e[3] = (e.len() - 4) as u8;
    }
    e
}

fn frag6(next: u8, offset8: u16, more: bool) -> Vec<u8> {
    let mut f = vec![next, 0];
    f.extend_from_slice(&((offset8 << 3) | u16::from(more)).to_be_bytes());
    f.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    f
}

// ---- every field, per protocol ---------------------------------------------------------------

#[test]
fn ipv4_tcp_every_field() {
    let seg = tcp_seg(
        Tcp {
            sport: 40000,
            dport: 443,
            seq: 0xdead_beef,
            ack: 0x8000_0001,
            flags: 0x18,
            window: 0xfedc,
            csum: 0xabcd,
            urg: 0x0102,
            options: &[2, 4, 5, 0xb4],
        },
        b"hello world",
    );
    let p = v4(
        V4 {
            tos: 46 << 2 | 1,
            id: 0x1234,
            frag: 0x4000,
            ttl: 63,
            proto: 6,
            csum: 0xbeef,
            src: [192, 168, 1, 10],
            dst: [10, 0, 0, 255],
            options: &[],
        },
        &seg,
    );
    let len = p.len();
    check(
        &p,
        &format!(
            r##"
local ip = pkt.ip
eq(ip.saddr, "192.168.1.10", "saddr")
eq(ip.daddr, "10.0.0.255", "daddr")
eq(ip.version, 4, "version")
eq(ip.hdrlength, 5, "hdrlength")
eq(ip.dscp, 46, "dscp")
eq(ip.ecn, 1, "ecn")
eq(ip.length, {len}, "length")
eq(ip.id, 0x1234, "id")
eq(ip.frag_off, 0x4000, "frag_off")
eq(ip.ttl, 63, "ttl")
eq(ip.protocol, 6, "protocol")
eq(ip.checksum, 0xbeef, "checksum")
eq(ip.nexthdr, nil, "ip has no nexthdr")
eq(pkt.ip6, nil, "ip6")
eq(pkt.udp, nil, "udp")
eq(pkt.icmp, nil, "icmp")
eq(pkt.icmp6, nil, "icmp6")
local t = pkt.tcp
eq(t.sport, 40000, "sport")
eq(t.dport, 443, "dport")
eq(t.seq, 0xdeadbeef, "seq")
eq(t.ack_seq, 0x80000001, "ack_seq")
eq(t.doff, 6, "doff")
eq(t.flags, 0x18, "flags")
eq(t.fin, false, "fin") eq(t.syn, false, "syn") eq(t.rst, false, "rst") eq(t.psh, true, "psh")
eq(t.ack, true, "ack") eq(t.urg, false, "urg") eq(t.ece, false, "ece") eq(t.cwr, false, "cwr")
eq(t.window, 0xfedc, "window")
eq(t.checksum, 0xabcd, "checksum")
eq(t.urgptr, 0x0102, "urgptr")
eq(#t.payload, 11, "#payload")
eq(tostring(t.payload), "hello world", "payload")
eq(t.nosuchfield, nil, "unknown tcp field")
eq(pkt.len, {len}, "len")
eq(pkt.meta.len, {len}, "meta.len")
eq(pkt.meta.l4proto, 6, "meta.l4proto")
eq(pkt.meta.nfproto, 2, "meta.nfproto")
eq(pkt.nosuchfield, nil, "unknown packet field")
eq(pkt[1], nil, "integer key")
"##
        ),
    );
}

#[test]
fn tcp_flag_booleans_for_every_flags_value() {
    let (mut s, _) = script(
        r##"
local names = {"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"}
function process_packet(pkt)
  local t = pkt.tcp
  local f = t.flags
  eq(f, t.dport, "flags")
  for i, n in ipairs(names) do eq(t[n], f & (1 << (i - 1)) ~= 0, n .. " in flags " .. f) end
  return lp.ACCEPT
end"##,
    );
    for flags in 0..=255u8 {
        let p = v4(
            V4::default(),
            &tcp_seg(
                Tcp {
                    dport: u16::from(flags),
                    flags,
                    ..Tcp::default()
                },
                b"",
            ),
        );
        accept(&mut s, 0, &p, Meta::default());
    }
}

#[test]
fn ipv4_udp_every_field() {
    let p = v4(
        V4 {
            proto: 17,
            src: [0, 0, 0, 0],
            dst: [255, 255, 255, 255],
            ..V4::default()
        },
        &udp_csum(5353, 53, 0x1111, b"query"),
    );
    check(
        &p,
        r##"
eq(pkt.ip.saddr, "0.0.0.0", "saddr")
eq(pkt.ip.daddr, "255.255.255.255", "daddr")
eq(pkt.ip.protocol, 17, "protocol")
local u = pkt.udp
eq(u.sport, 5353, "sport")
eq(u.dport, 53, "dport")
eq(u.length, 13, "length")
eq(u.checksum, 0x1111, "checksum")
eq(#u.payload, 5, "#payload")
eq(tostring(u.payload), "query", "payload")
eq(u.flags, nil, "udp has no flags")
eq(pkt.tcp, nil, "tcp")
eq(pkt.icmp, nil, "icmp")
eq(pkt.meta.l4proto, 17, "l4proto")
"##,
    );
}

#[test]
fn ipv4_icmp_every_field() {
    let p = v4(
        V4 {
            proto: 1,
            ..V4::default()
        },
        &icmp_msg(8, 0, 0xf7fe, 0x0102, 0xfffe, b"ping"),
    );
    check(
        &p,
        r##"
local c = pkt.icmp
eq(c.type, 8, "type")
eq(c.code, 0, "code")
eq(c.checksum, 0xf7fe, "checksum")
eq(c.id, 0x0102, "id")
eq(c.sequence, 0xfffe, "sequence")
eq(c.sport, nil, "icmp has no sport")
eq(pkt.icmp6, nil, "icmp6")
eq(pkt.tcp, nil, "tcp")
eq(pkt.udp, nil, "udp")
eq(pkt.meta.l4proto, 1, "l4proto")
"##,
    );
    let p = v4(
        V4 {
            proto: 1,
            ..V4::default()
        },
        &icmp_msg(3, 13, 0, 0, 0, &[]),
    );
    check(
        &p,
        r##"eq(pkt.icmp.type, 3, "type") eq(pkt.icmp.code, 13, "code")"##,
    );
}

#[test]
fn ipv6_tcp_every_field() {
    let seg = tcp_seg(
        Tcp {
            sport: 1,
            dport: 65535,
            seq: 0xffff_ffff,
            ack: 0,
            flags: 0xc1,
            window: 0,
            csum: 0x1234,
            urg: 0xffff,
            options: &[],
        },
        b"v6 data",
    );
    let plen = seg.len();
    let p = v6(
        10 << 2 | 2,
        0xabcde,
        6,
        255,
        "2001:db8::1",
        "fe80::1:2:3:4",
        &seg,
    );
    let len = p.len();
    check(
        &p,
        &format!(
            r##"
local ip = pkt.ip6
eq(ip.version, 6, "version")
eq(ip.dscp, 10, "dscp")
eq(ip.ecn, 2, "ecn")
eq(ip.flowlabel, 0xabcde, "flowlabel")
eq(ip.length, {plen}, "length")
eq(ip.nexthdr, 6, "nexthdr")
eq(ip.hoplimit, 255, "hoplimit")
eq(ip.saddr, "2001:db8::1", "saddr")
eq(ip.daddr, "fe80::1:2:3:4", "daddr")
eq(ip.ttl, nil, "ip6 has no ttl")
eq(pkt.ip, nil, "ip")
eq(pkt.udp, nil, "udp")
eq(pkt.icmp6, nil, "icmp6")
local t = pkt.tcp
eq(t.sport, 1, "sport")
eq(t.dport, 65535, "dport")
eq(t.seq, 0xffffffff, "seq")
eq(t.ack_seq, 0, "ack_seq")
eq(t.doff, 5, "doff")
eq(t.flags, 0xc1, "flags")
eq(t.fin, true, "fin") eq(t.syn, false, "syn") eq(t.ece, true, "ece") eq(t.cwr, true, "cwr")
eq(t.window, 0, "window")
eq(t.checksum, 0x1234, "checksum")
eq(t.urgptr, 0xffff, "urgptr")
eq(tostring(t.payload), "v6 data", "payload")
eq(pkt.len, {len}, "len")
eq(pkt.meta.nfproto, 10, "nfproto")
eq(pkt.meta.l4proto, 6, "l4proto")
"##
        ),
    );
    // all traffic-class and flow-label bits set
    let p = v6(
        0xff,
        0xfffff,
        6,
        1,
        "::1",
        "::",
        &tcp_seg(Tcp::default(), b""),
    );
    check(
        &p,
        r##"
eq(pkt.ip6.dscp, 63, "dscp") eq(pkt.ip6.ecn, 3, "ecn") eq(pkt.ip6.flowlabel, 0xfffff, "flowlabel")
eq(pkt.ip6.hoplimit, 1, "hoplimit") eq(pkt.ip6.version, 6, "version")
"##,
    );
}

#[test]
fn ipv6_udp_every_field() {
    let p = v6(
        0,
        1,
        17,
        64,
        "fe80::1",
        "ff02::fb",
        &udp_csum(5353, 5353, 0xfffe, b"mdns"),
    );
    check(
        &p,
        r##"
eq(pkt.ip6.nexthdr, 17, "nexthdr")
eq(pkt.ip6.flowlabel, 1, "flowlabel")
eq(pkt.ip6.daddr, "ff02::fb", "daddr")
local u = pkt.udp
eq(u.sport, 5353, "sport") eq(u.dport, 5353, "dport") eq(u.length, 12, "length")
eq(u.checksum, 0xfffe, "checksum") eq(tostring(u.payload), "mdns", "payload") eq(#u.payload, 4, "#")
eq(pkt.tcp, nil, "tcp")
eq(pkt.meta.l4proto, 17, "l4proto")
"##,
    );
}

#[test]
fn ipv6_icmp6_every_field() {
    let p = v6(
        0,
        0,
        58,
        64,
        "2001:db8::1",
        "2001:db8::2",
        &icmp_msg(128, 0, 0x8001, 0x4242, 7, b"x"),
    );
    check(
        &p,
        r##"
local c = pkt.icmp6
eq(c.type, 128, "type") eq(c.code, 0, "code") eq(c.checksum, 0x8001, "checksum")
eq(c.id, 0x4242, "id") eq(c.sequence, 7, "sequence")
eq(pkt.icmp, nil, "icmp") eq(pkt.tcp, nil, "tcp")
eq(pkt.meta.l4proto, 58, "l4proto")
"##,
    );
}

#[test]
fn protocol_classes_follow_family_and_protocol() {
    // ICMPv6 inside IPv4 and ICMP inside IPv6 are neither class; unknown protocols are nothing.
    let p = v4(
        V4 {
            proto: 58,
            ..V4::default()
        },
        &icmp_msg(128, 0, 0, 0, 0, &[]),
    );
    check(
        &p,
        r##"eq(pkt.icmp6, nil, "icmp6") eq(pkt.icmp, nil, "icmp") eq(pkt.meta.l4proto, 58, "l4")"##,
    );
    let p = v6_simple(1, &icmp_msg(8, 0, 0, 0, 0, &[]));
    check(
        &p,
        r##"eq(pkt.icmp, nil, "icmp") eq(pkt.icmp6, nil, "icmp6") eq(pkt.meta.l4proto, 1, "l4")"##,
    );
    let p = v4(
        V4 {
            proto: 47,
            ..V4::default()
        },
        &[0; 12],
    );
    check(
        &p,
        r##"
eq(pkt.tcp, nil, "tcp") eq(pkt.udp, nil, "udp") eq(pkt.icmp, nil, "icmp")
eq(pkt.meta.l4proto, 47, "l4proto") eq(pkt.ip.protocol, 47, "protocol")
"##,
    );
}

#[test]
fn ipv4_options_move_the_transport_header() {
    let seg = tcp_seg(
        Tcp {
            dport: 8080,
            ..Tcp::default()
        },
        b"after options",
    );
    let p = v4(
        V4 {
            options: &[1, 1, 1, 0],
            ..V4::default()
        },
        &seg,
    );
    check(
        &p,
        r##"
eq(pkt.ip.hdrlength, 6, "hdrlength")
eq(pkt.tcp.dport, 8080, "dport")
eq(tostring(pkt.tcp.payload), "after options", "payload")
eq(pkt:u8(20), 1, "first option byte")
"##,
    );
}

// ---- IPv6 address text ----------------------------------------------------------------------

#[test]
fn ipv6_addresses_print_like_nft() {
    let (mut s, _) = script(
        r##"
function check(pkt, want)
  eq(pkt.ip6.saddr, want, "saddr")
  eq(pkt.ip6.daddr, want, "daddr")
  -- the text parses back (lp.cidr) to the same address
  eq(tostring(lp.cidr(want)), want .. "/128", "cidr round trip")
  eq(lp.cidr(want .. "/128"):contains(pkt.ip6.saddr), true, "contains")
  return lp.ACCEPT
end
function process_packet() end"##,
    );
    let cases = [
        ("::1", "::1"),
        ("::", "::"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1:2:3:4", "fe80::1:2:3:4"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"),
        ("0:1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7"),
        ("1::", "1::"),
        ("fe80::", "fe80::"),
        ("0:0:1::", "0:0:1::"),
        ("ABCD:EF01::", "abcd:ef01::"),
        ("ff02::1:ff00:42", "ff02::1:ff00:42"),
        (
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        ("::1:0:0", "::1:0:0"),
        // inet_ntop's dotted forms: IPv4-mapped and IPv4-compatible addresses
        ("::ffff:0:0", "::ffff:0.0.0.0"),
        ("::ffff:1:2", "::ffff:0.1.0.2"),
        ("::10.0.0.1", "::10.0.0.1"),
    ];
    for (input, want) in cases {
        let e = s.bind("check", Some(want.as_bytes())).unwrap();
        let p = v6(0, 0, 59, 64, input, input, &[]);
        accept(&mut s, e, &p, Meta::default());
    }
}

// ---- fragments, extension headers, truncation -------------------------------------------------

#[test]
fn ipv4_first_fragment_has_tcp_later_ones_do_not() {
    let seg = tcp_seg(
        Tcp {
            sport: 1234,
            dport: 80,
            ..Tcp::default()
        },
        b"first",
    );
    let first = v4(
        V4 {
            frag: 0x2000,
            ..V4::default()
        },
        &seg,
    );
    check(
        &first,
        r##"
eq(pkt.ip.frag_off, 0x2000, "frag_off")
eq(pkt.tcp.sport, 1234, "sport") eq(pkt.tcp.dport, 80, "dport")
eq(tostring(pkt.tcp.payload), "first", "payload")
"##,
    );
    // offset 185 (1480 bytes): the bytes look like a TCP header but are the middle of the data
    for frag in [185u16, 0x2000 | 185, 0x4000 | 1, 0x1fff] {
        let p = v4(
            V4 {
                frag,
                ..V4::default()
            },
            &seg,
        );
        check(
            &p,
            &format!(
                r##"
eq(pkt.ip.frag_off, {frag}, "frag_off")
eq(pkt.tcp, nil, "tcp")
eq(pkt.udp, nil, "udp")
eq(pkt.meta.l4proto, 6, "meta.l4proto")
eq(pkt.ip.protocol, 6, "protocol")
eq(pkt:u16(20), 1234, "raw bytes are still readable")
"##
            ),
        );
    }
    let p = v4(
        V4 {
            proto: 17,
            frag: 100,
            ..V4::default()
        },
        &udp(1, 2, b"x"),
    );
    check(
        &p,
        r##"eq(pkt.udp, nil, "udp") eq(pkt.meta.l4proto, 17, "l4proto")"##,
    );
    let p = v4(
        V4 {
            proto: 1,
            frag: 100,
            ..V4::default()
        },
        &icmp_msg(8, 0, 0, 0, 0, &[]),
    );
    check(
        &p,
        r##"eq(pkt.icmp, nil, "icmp") eq(pkt.meta.l4proto, 1, "l4proto")"##,
    );
    // DF alone is not a fragment
    let p = v4(
        V4 {
            frag: 0x4000,
            ..V4::default()
        },
        &seg,
    );
    check(&p, r##"eq(pkt.tcp.dport, 80, "dport")"##);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let mut rest = ext6(60, 0); // hop-by-hop: 8 bytes, next destination options
    rest.extend(ext6(6, 1)); // destination options: 16 bytes, next TCP
    rest.extend(tcp_seg(
        Tcp {
            sport: 2222,
            dport: 22,
            flags: 0x10,
            ..Tcp::default()
        },
        b"ssh",
    ));
    let plen = rest.len();
    let p = v6_simple(0, &rest);
    check(
        &p,
        &format!(
            r##"
eq(pkt.ip6.nexthdr, 0, "nexthdr is the fixed header's")
eq(pkt.ip6.length, {plen}, "length")
eq(pkt.meta.l4proto, 6, "l4proto")
eq(pkt.tcp.sport, 2222, "sport") eq(pkt.tcp.dport, 22, "dport") eq(pkt.tcp.ack, true, "ack")
eq(tostring(pkt.tcp.payload), "ssh", "payload")
eq(pkt:u8(40), 60, "hop-by-hop next header")
eq(pkt:u8(48), 6, "destination options next header")
eq(pkt:u16(64), 2222, "tcp at 64")
"##
        ),
    );
    let mut rest = ext6(17, 2); // routing, 24 bytes
    rest.extend(udp(53, 1053, b"answer"));
    let p = v6_simple(43, &rest);
    check(
        &p,
        r##"eq(pkt.udp.sport, 53, "sport") eq(tostring(pkt.udp.payload), "answer", "payload")"##,
    );
}

#[test]
fn ipv6_fragment_header() {
    let mut rest = frag6(17, 0, true);
    rest.extend(udp(1000, 2000, b"part one"));
    check(
        &v6_simple(44, &rest),
        r##"
eq(pkt.ip6.nexthdr, 44, "nexthdr")
eq(pkt.udp.sport, 1000, "sport") eq(pkt.udp.dport, 2000, "dport")
eq(tostring(pkt.udp.payload), "part one", "payload")
eq(pkt.meta.l4proto, 17, "l4proto")
"##,
    );
    // atomic fragment: offset 0, no more fragments
    let mut rest = frag6(6, 0, false);
    rest.extend(tcp_seg(Tcp::default(), b""));
    check(&v6_simple(44, &rest), r##"eq(pkt.tcp.dport, 80, "dport")"##);
    // later fragments: no transport header, but the protocol is known
    for more in [true, false] {
        let mut rest = frag6(17, 185, more);
        rest.extend(udp(1000, 2000, b"middle"));
        check(
            &v6_simple(44, &rest),
            r##"eq(pkt.udp, nil, "udp") eq(pkt.tcp, nil, "tcp") eq(pkt.meta.l4proto, 17, "l4proto")"##,
        );
    }
    // hop-by-hop, then a non-first fragment of TCP
    let mut rest = ext6(44, 0);
    rest.extend(frag6(6, 3, true));
    rest.extend([0u8; 24]);
    check(
        &v6_simple(0, &rest),
        r##"eq(pkt.tcp, nil, "tcp") eq(pkt.meta.l4proto, 6, "l4proto")"##,
    );
}

#[test]
fn truncated_transport_headers_are_absent() {
    let full = tcp_seg(Tcp::default(), b"");
    for cut in [0, 1, 10, 19] {
        let p = v4(V4::default(), &full[..cut]);
        check(
            &p,
            r##"eq(pkt.tcp, nil, "tcp") eq(pkt.meta.l4proto, 6, "l4proto") eq(pkt.ip.protocol, 6, "protocol")"##,
        );
    }
    // data offset past the end of the packet, and below 5
    let mut long = full.clone();
    long[12] = 15 << 4;
    check(
        &v4(V4::default(), &long),
        r##"eq(pkt.tcp, nil, "doff 15")"##,
    );
    let mut short = full.clone();
    short[12] = 4 << 4;
    check(
        &v4(V4::default(), &short),
        r##"eq(pkt.tcp, nil, "doff 4")"##,
    );
    let p = v6_simple(6, &full[..12]);
    check(
        &p,
        r##"eq(pkt.tcp, nil, "tcp") eq(pkt.meta.l4proto, 6, "l4proto")"##,
    );
    let u = udp(1, 2, b"");
    check(
        &v4(
            V4 {
                proto: 17,
                ..V4::default()
            },
            &u[..7],
        ),
        r##"eq(pkt.udp, nil, "udp")"##,
    );
    let m = icmp_msg(8, 0, 0, 0, 0, &[]);
    check(
        &v4(
            V4 {
                proto: 1,
                ..V4::default()
            },
            &m[..4],
        ),
        r##"eq(pkt.icmp, nil, "icmp")"##,
    );
    // ICMPv6 needs only its 4-byte header; reading past it is an error
    let p = v6_simple(58, &m[..4]);
    check(
        &p,
        r##"
local c = pkt.icmp6
eq(c.type, 8, "type") eq(c.code, 0, "code") eq(c.checksum, 0, "checksum")
fails(function() return c.id end, "packet too short", "id")
fails(function() return c.sequence end, "packet too short", "sequence")
"##,
    );
}

#[test]
fn unparseable_packets_keep_family_and_length() {
    // Too short for an IPv4 header: the family comes from the version nibble.
    check(
        &[0x45, 0, 0],
        r##"
eq(pkt.len, 3, "len") eq(pkt.meta.nfproto, 2, "nfproto") eq(pkt.meta.l4proto, 0, "l4proto")
eq(pkt.tcp, nil, "tcp") eq(pkt.ip6, nil, "ip6")
fails(function() return pkt.ip.saddr end, "packet too short", "saddr")
eq(pkt:u8(0), 0x45, "u8")
"##,
    );
    // Nothing at all: the family comes from the metadata.
    check_meta(
        &[],
        Meta {
            nfproto: 10,
            ..Meta::default()
        },
        r##"
eq(pkt.len, 0, "len") eq(pkt.meta.nfproto, 10, "nfproto") eq(pkt.ip, nil, "ip")
fails(function() return pkt.ip6.saddr end, "packet too short", "saddr")
eq(pkt:bytes(0, 0), "", "bytes")
fails(function() return pkt:u8(0) end, "outside the packet", "u8")
"##,
    );
}

// ---- payload views ------------------------------------------------------------------------------

/// Compares every view operation with the same string operation on `tostring(view)`.
const VIEW_VS_STRING: &str = r##"
local function compare(pl, want)
  local s = tostring(pl)
  eq(s, want, "tostring")
  eq(#pl, #s, "#")
  local idx = {0, 1, 2, 3, 5, -1, -2, -3, -5, #s - 1, #s, #s + 1, #s + 5, -#s, -#s - 1, -#s + 1,
               -100, 100, math.maxinteger, math.mininteger}
  for _, i in ipairs(idx) do
    eq(pl:sub(i), s:sub(i), "sub(" .. i .. ")")
    for _, j in ipairs(idx) do eq(pl:sub(i, j), s:sub(i, j), "sub(" .. i .. ", " .. j .. ")") end
  end
  local pats = {"", "a", "GET", "HTTP", "1.1", "%d+", "(%a+)/(%d)%.(%d)", "^GET", "^HTTP", "\r\n\r\n",
                "%s", "()", "x*", "Host: (%w+)", ".-", "$", "123$", "%.", "[%d]", "not there"}
  local inits = {false, 1, 2, 5, 0, -1, -3, -100, 100, #s, #s + 1, #s + 2, math.mininteger, math.maxinteger}
  for _, p in ipairs(pats) do
    for _, init in ipairs(inits) do
      for _, plain in ipairs({"none", false, true}) do
        local got, want, what
        if init == false and plain == "none" then
          got, want, what = table.pack(pl:find(p)), table.pack(s:find(p)), "find(" .. p .. ")"
        elseif plain == "none" then
          got, want, what = table.pack(pl:find(p, init)), table.pack(s:find(p, init)), "find(" .. p .. ", " .. init .. ")"
        else
          local i = init or nil
          got, want = table.pack(pl:find(p, i, plain)), table.pack(s:find(p, i, plain))
          what = "find(" .. p .. ", " .. tostring(i) .. ", " .. tostring(plain) .. ")"
        end
        same(got, want, what)
      end
    end
  end
  -- extra arguments are ignored, as string.find ignores them
  same(table.pack(pl:find("%d", 1, false, "extra")), table.pack(s:find("%d", 1, false, "extra")), "find with 5 args")
  fails(function() return pl:find("[") end, "malformed pattern", "malformed pattern")
  fails(function() return pl:find() end, "string expected", "find without a pattern")
  fails(function() return pl:sub() end, "number expected", "sub without an index")
end
"##;

#[test]
fn tcp_payload_view_matches_string_semantics() {
    let body = b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n123";
    let p = v4(
        V4::default(),
        &tcp_seg(
            Tcp {
                options: &[1, 1, 1, 1, 1, 1, 1, 0],
                ..Tcp::default()
            },
            body,
        ),
    );
    check(
        &p,
        &format!(
            "{VIEW_VS_STRING}\ncompare(pkt.tcp.payload, \"GET /index.html HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n123\")\n\
             eq(pkt.tcp.payload:sub(1, 3), 'GET', 'method call')\n\
             eq(pkt.tcp.payload:find('HTTP', 1, true), 17, 'plain find')\n\
             local a, b, c1, c2, c3 = pkt.tcp.payload:find('(%a+)/(%d)%.(%d)')\n\
             eq(a, 17, 'start') eq(b, 24, 'end') eq(c1, 'HTTP', 'capture 1') eq(c2, '1', 'capture 2') eq(c3, '1', 'capture 3')"
        ),
    );
}

#[test]
fn udp_payload_view_and_empty_payloads() {
    let p = v4(
        V4 {
            proto: 17,
            ..V4::default()
        },
        &udp(1, 2, b"a1b22c333"),
    );
    check(
        &p,
        &format!("{VIEW_VS_STRING}\ncompare(pkt.udp.payload, 'a1b22c333')"),
    );
    let p = v6_simple(17, &udp(1, 2, b""));
    check(
        &p,
        &format!(
            "{VIEW_VS_STRING}\ncompare(pkt.udp.payload, '')\n\
             eq(#pkt.udp.payload, 0, '#') eq(pkt.udp.payload:find(''), 1, 'find empty')\n\
             eq(pkt.udp.payload:find('', 2), nil, 'find past the end')"
        ),
    );
    let p = v4(V4::default(), &tcp_seg(Tcp::default(), b""));
    check(
        &p,
        &format!("{VIEW_VS_STRING}\ncompare(pkt.tcp.payload, '')"),
    );
}

#[test]
fn view_functions_refuse_other_values() {
    let p = v4(V4::default(), &tcp_seg(Tcp::default(), b"abc"));
    check(
        &p,
        r##"
local pl = pkt.tcp.payload
local sub, find = pl.sub, pl.find
eq(sub(pl, 2), "bc", "sub through a local")
fails(function() return sub(pkt, 1) end, "bytes expected", "sub(pkt)")
fails(function() return sub("abc", 1) end, "bytes expected", "sub(string)")
fails(function() return find(pkt.tcp, "a") end, "bytes expected", "find(tcp)")
fails(function() return sub(lp.cidr("10.0.0.0/8"), 1) end, "bytes expected", "sub(cidr)")
fails(function() return #pkt end, "bytes expected", "#pkt")
fails(function() return #pkt.tcp end, "bytes expected", "#tcp")
fails(function() pkt.len = 1 end, "packet.len is read-only", "assign len")
fails(function() pkt.tcp.doff = 1 end, "tcp.doff is read-only", "assign doff")
fails(function() pl.x = 1 end, "is read-only", "assign to payload")
eq(pl.nosuch, nil, "unknown view key")
eq(type(pkt), "userdata", "type")
eq(getmetatable(pkt), "packet", "metatable is protected")
eq(tostring(pkt):match("^packet: "), "packet: ", "tostring(pkt)")
eq(tostring(pkt.tcp):match("^tcp: "), "tcp: ", "tostring(tcp)")
eq(rawequal(pkt.tcp, pkt.tcp), true, "same object")
"##,
    );
}

#[test]
fn payload_find_does_not_depend_on_the_string_global() {
    let p = v4(V4::default(), &tcp_seg(Tcp::default(), b"key=value"));
    check(
        &p,
        r##"
local pl = pkt.tcp.payload
string.find = function() return 99 end
same(table.pack(pl:find("(%a+)=")), table.pack(1, 4, "key"), "string.find replaced")
string = nil
same(table.pack(pl:find("=(%a+)")), table.pack(4, 9, "value"), "string removed")
same(table.pack(pl:find("=", 1, true)), table.pack(4, 4), "plain")
"##,
    );
}

/// Payload bytes of the large packet: a filler with a marker near the end.
fn big_payload(n: usize) -> Vec<u8> {
    let mut b: Vec<u8> = (0..n).map(|k| ((k * 7 + 3) % 256) as u8).collect();
    b[2900..2910].copy_from_slice(b"MARKER123!");
    b
}

#[test]
fn payload_beyond_the_window() {
    // 3000 bytes: the guest's window holds the first 2048, the rest comes through pkt_read
    let n = 3000 - 28;
    let p = v4(
        V4 {
            proto: 17,
            ..V4::default()
        },
        &udp(7, 9, &big_payload(n)),
    );
    assert_eq!(p.len(), 3000);
    check(
        &p,
        &format!(
            r##"
local n = {n}
local t = {{}}
for k = 0, n - 1 do t[#t + 1] = string.char((k * 7 + 3) % 256) end
local want = table.concat(t)
want = want:sub(1, 2900) .. "MARKER123!" .. want:sub(2911)
local pl = pkt.udp.payload
eq(pkt.len, 3000, "len") eq(pkt.ip.length, 3000, "ip.length") eq(pkt.udp.length, n + 8, "udp.length")
eq(#pl, n, "#payload")
local s = tostring(pl)
eq(#s, n, "#tostring")
eq(s == want, true, "tostring content")
for _, i in ipairs({{-1, -2, -10, -n, 1, 2019, 2020, 2021, 2025, n - 3, n, n + 1}}) do
  eq(pl:sub(i), want:sub(i), "sub(" .. i .. ")")
  eq(pl:sub(i, i + 3), want:sub(i, i + 3), "sub(" .. i .. ", +3)")
  eq(pl:sub(-4, i), want:sub(-4, i), "sub(-4, " .. i .. ")")
end
eq(pl:sub(2000, 2100), want:sub(2000, 2100), "sub across the window's end")
eq(pl:sub(-10), want:sub(-10), "last bytes")
-- raw reads past the window, and straddling it
eq(pkt:u8(2048), want:byte(2048 - 28 + 1), "u8(2048)")
eq(pkt:u8(2999), want:byte(n), "u8(2999)")
eq(pkt:u16(2047), want:byte(2020) << 8 | want:byte(2021), "u16(2047)")
eq(pkt:u32(2046), string.unpack(">I4", want, 2019), "u32(2046)")
eq(pkt:u32(2996), string.unpack(">I4", want, n - 3), "u32(2996)")
fails(function() return pkt:u32(2997) end, "outside the packet", "u32(2997)")
fails(function() return pkt:u8(3000) end, "outside the packet", "u8(3000)")
eq(pkt:bytes(2040, 20), want:sub(2040 - 27, 2040 - 28 + 20), "bytes across the window's end")
eq(pkt:bytes(2990, 10), want:sub(-10), "bytes past the window")
eq(pkt:bytes(3000, 0), "", "empty at the end")
eq(#pkt:bytes(0, 3000), 3000, "whole packet")
eq(pkt:bytes(28, n) == want, true, "bytes == payload")
-- find past the window: plain and pattern
same(table.pack(pl:find("MARKER123!", 1, true)), table.pack(2901, 2910), "plain find")
same(table.pack(pl:find("MARK(%u+)(%d+)")), table.pack(2901, 2909, "ER", "123"), "pattern find")
same(table.pack(pl:find("MARKER", 2902, true)), table.pack(nil), "plain find after it")
same(table.pack(pl:find("MARKER", -100)), table.pack(2901, 2906), "negative init")
same(table.pack(pl:find(want:sub(2500, 2510), 1, true)), table.pack(want:find(want:sub(2500, 2510), 1, true)), "filler")
"##
        ),
    );
}

// ---- raw reads ------------------------------------------------------------------------------------

#[test]
fn raw_reads_and_their_bounds() {
    let p = v4(
        V4 {
            proto: 17,
            dst: [255, 255, 255, 254],
            ..V4::default()
        },
        &udp(0x0102, 0x0304, b"\x80\x00\xff"),
    );
    let len = p.len();
    check(
        &p,
        &format!(
            r##"
local len = {len}
eq(pkt:u8(0), 0x45, "u8(0)")
eq(pkt:u16(2), len, "u16(2)")
eq(pkt:u32(12), 0x0a000001, "u32(12)")
eq(pkt:u32(16), 0xfffffffe, "u32 is unsigned")
eq(pkt:u16(20), 0x0102, "u16(20)")
eq(pkt:u8(len - 3), 0x80, "u8 last-2")
eq(pkt:u16(len - 2), 0x00ff, "u16 at the end")
eq(pkt:u32(len - 4), 0x008000ff, "u32 at the end")
eq(pkt:u8("1"), 0, "numeric string offset")
eq(pkt:u8(2.0), pkt:u8(2), "float offset with an integer value")
eq(pkt:bytes(12, 4), "\10\0\0\1", "bytes(12, 4)")
eq(pkt:bytes(0, 0), "", "bytes(0, 0)")
eq(pkt:bytes(len, 0), "", "bytes(len, 0)")
eq(#pkt:bytes(0, len), len, "bytes(0, len)")
eq(pkt.len, len, "len")
for _, bad in ipairs({{
  function() return pkt:u8(len) end, function() return pkt:u8(-1) end,
  function() return pkt:u16(len - 1) end, function() return pkt:u32(len - 3) end,
  function() return pkt:u32(-4) end, function() return pkt:u8(1 << 40) end,
  function() return pkt:u8(math.maxinteger) end, function() return pkt:u16(math.mininteger) end,
  function() return pkt:bytes(-1, 1) end, function() return pkt:bytes(0, len + 1) end,
  function() return pkt:bytes(1, -1) end, function() return pkt:bytes(len + 1, 0) end,
  function() return pkt:bytes(math.maxinteger, 1) end, function() return pkt:bytes(1, math.maxinteger) end,
}}) do
  fails(bad, "outside the packet")
end
fails(function() return pkt:u8(1.5) end, "number has no integer representation", "u8(1.5)")
fails(function() return pkt:u8("x") end, "number expected", "u8('x')")
fails(function() return pkt:u8() end, "number expected", "u8()")
fails(function() return pkt:bytes(1) end, "number expected", "bytes(1)")
fails(function() return pkt.u8(0) end, "packet expected", "u8 without self")
fails(function() return pkt.u8(pkt.tcp or pkt.udp, 0) end, "packet expected", "u8 on udp")
"##
        ),
    );
}

// ---- lp.cidr --------------------------------------------------------------------------------------

#[test]
fn cidr_matching() {
    let p = v4(
        V4 {
            src: [10, 1, 2, 3],
            dst: [192, 168, 0, 1],
            ..V4::default()
        },
        &tcp_seg(Tcp::default(), b""),
    );
    check(
        &p,
        r##"
local function yes(c, a) eq(lp.cidr(c):contains(a), true, c .. " contains " .. a) end
local function no(c, a) eq(lp.cidr(c):contains(a), false, c .. " does not contain " .. a) end
local function text(c, want) eq(tostring(lp.cidr(c)), want, "tostring(" .. c .. ")") end
-- IPv4
yes("10.0.0.0/8", pkt.ip.saddr) no("10.0.0.0/8", pkt.ip.daddr)
yes("10.1.2.3/8", "10.255.255.255") no("10.1.2.3/8", "11.0.0.0") no("10.0.0.0/8", "9.255.255.255")
text("10.1.2.3/8", "10.0.0.0/8")
yes("0.0.0.0/0", "1.2.3.4") yes("0.0.0.0/0", "255.255.255.255") yes("0.0.0.0/0", "0.0.0.0")
text("1.2.3.4/0", "0.0.0.0/0") yes("1.2.3.4/0", "200.0.0.1")
yes("10.0.0.1/32", "10.0.0.1") no("10.0.0.1/32", "10.0.0.2") no("10.0.0.1/32", "10.0.0.0")
text("10.0.0.1/32", "10.0.0.1/32") text("10.0.0.1", "10.0.0.1/32") yes("10.0.0.1", "10.0.0.1")
text("10.15.1.2/13", "10.8.0.0/13")
yes("10.15.1.2/13", "10.8.0.0") yes("10.15.1.2/13", "10.15.255.255")
no("10.15.1.2/13", "10.7.255.255") no("10.15.1.2/13", "10.16.0.0")
yes("128.0.0.0/1", "200.1.1.1") no("128.0.0.0/1", "127.255.255.255") text("255.255.255.255/1", "128.0.0.0/1")
text("192.168.1.255/31", "192.168.1.254/31") yes("192.168.1.255/31", "192.168.1.254") no("192.168.1.255/31", "192.168.1.253")
text("172.31.255.255/20", "172.31.240.0/20") text("172.31.255.255/23", "172.31.254.0/23")
-- families never match each other
no("0.0.0.0/0", "::1") no("::/0", "1.2.3.4") no("::ffff:10.0.0.0/104", "10.1.2.3")
yes("::ffff:10.0.0.0/104", "::ffff:10.1.2.3")
-- IPv6
yes("2001:db8::/32", "2001:db8:ffff::1") no("2001:db8::/32", "2001:db9::") text("2001:db8::/32", "2001:db8::/32")
yes("::/0", "::1") yes("::/0", "ffff::") text("ffff::1/0", "::/0")
yes("2001:db8::1/128", "2001:db8::1") yes("2001:db8::1/128", "2001:DB8:0:0:0:0:0:1") no("2001:db8::1/128", "2001:db8::2")
text("2001:db8::/13", "2000::/13") yes("2001:db8::/13", "2007:ffff::") no("2001:db8::/13", "2008::") no("2001:db8::/13", "1fff::")
text("fe80::3/127", "fe80::2/127") yes("fe80::3/127", "fe80::2") yes("fe80::3/127", "fe80::3") no("fe80::3/127", "fe80::4")
text("2001:db8:1:2:ffff:ffff:ffff:ffff/65", "2001:db8:1:2:8000::/65")
yes("2001:db8:1:2:ffff:ffff:ffff:ffff/65", "2001:db8:1:2:8000::1") no("2001:db8:1:2:ffff:ffff:ffff:ffff/65", "2001:db8:1:2:7fff::")
-- a cidr object is reusable
local c = lp.cidr("192.168.0.0/16")
eq(c:contains(pkt.ip.daddr), true, "reuse 1") eq(c:contains(pkt.ip.saddr), false, "reuse 2")
"##,
    );
}

#[test]
fn cidr_rejects_bad_input_and_names_it() {
    let (mut s, _) = script(
        r##"
local bad = {"", "10.0.0.256", "10.0.0.0/33", "::/129", "abc", "10.0.0.0/", "10.0.0/8", "10.0.0.0.0",
  "1:2:3:4:5:6:7:8:9", "1::2::3", "010.0.0.1", "10.0.0.0/8x", "10.0.0.0/-1", "/8", "10.0.0.0//8",
  ":::", "1:2:3:4:5:6:7", "12345::", "::g", " 10.0.0.1", "10.0.0.1 ", "1:2:3:4:5:6:7:1.2.3.4",
  "::1.2.3", "::1.2.3.4.5", "fe80::1%eth0", "1:", ":1", "1:2:3:4:5:6:7:8::", "10.0.0.0/8/8", "0x0a.0.0.1",
  "10.0.0.0/1000", "::/1280"}
-- at load time as well as per packet
for _, b in ipairs(bad) do fails(function() return lp.cidr(b) end, "'" .. b .. "'", "lp.cidr('" .. b .. "')") end
function process_packet(pkt)
  for _, b in ipairs(bad) do fails(function() return lp.cidr(b) end, "'" .. b .. "'", "lp.cidr('" .. b .. "')") end
  local c = lp.cidr("10.0.0.0/8")
  fails(function() return c:contains("nope") end, "'nope'", "contains('nope')")
  fails(function() return c:contains("10.0.0.1/8") end, "'10.0.0.1/8'", "contains(cidr text)")
  fails(function() return c:contains(nil) end, "string expected", "contains(nil)")
  fails(function() return c.contains(nil, "10.0.0.1") end, "lp.cidr expected", "contains without self")
  fails(function() return lp.cidr() end, "bad argument #1", "lp.cidr()")
  fails(function() return lp.cidr({}) end, "string expected", "lp.cidr({})")
  return lp.ACCEPT
end"##,
    );
    accept(&mut s, 0, &tcp4(1), Meta::default());
}

// ---- views kept past their call ------------------------------------------------------------------

#[test]
fn packet_views_kept_past_their_call_are_refused() {
    let (mut s, _) = script(
        r##"
local OUT = "packet used outside of its call"
local saved_pkt, saved_tcp, saved_pl, saved_meta, saved_ip, co, sub, u8
function process_packet(pkt)
  local t = pkt.tcp or pkt.udp
  if t.dport == 1 then
    saved_pkt, saved_tcp, saved_pl, saved_meta, saved_ip = pkt, pkt.tcp, pkt.tcp.payload, pkt.meta, pkt.ip
    sub, u8 = saved_pl.sub, pkt.u8
    co = coroutine.create(function(p) coroutine.yield(p.len) return p.len end)
    assert(coroutine.resume(co, pkt))
    -- within the call, kept references are fine
    eq(saved_pkt.tcp.dport, 1, "same call") eq(tostring(saved_pl), "abc", "same call payload")
    gc_holder = setmetatable({}, {__gc = function()
      gc_result = table.pack(pcall(function() return saved_pkt.len end))
    end})
    return lp.ACCEPT
  end
  -- a later call: every kept view fails, whatever the packet now is
  fails(function() return saved_pkt.len end, OUT, "pkt.len")
  fails(function() return saved_pkt.tcp end, OUT, "pkt.tcp")
  fails(function() return saved_pkt:u8(0) end, OUT, "pkt:u8")
  fails(function() return saved_pkt:bytes(0, 1) end, OUT, "pkt:bytes")
  fails(function() return saved_tcp.sport end, OUT, "tcp.sport")
  fails(function() return saved_tcp.payload end, OUT, "tcp.payload")
  fails(function() return saved_ip.saddr end, OUT, "ip.saddr")
  fails(function() return saved_meta.mark end, OUT, "meta.mark")
  fails(function() return #saved_pl end, OUT, "#payload")
  fails(function() return tostring(saved_pl) end, OUT, "tostring(payload)")
  fails(function() return saved_pl:sub(1) end, OUT, "payload:sub")
  fails(function() return saved_pl:find("a") end, OUT, "payload:find")
  fails(function() return sub(saved_pl, 1) end, OUT, "kept sub on the kept payload")
  fails(function() return u8(saved_pkt, 0) end, OUT, "kept u8 on the kept packet")
  if coroutine.status(co) == "suspended" then
    fails(function() local ok, err = coroutine.resume(co) if not ok then error(err, 0) end end, OUT, "coroutine")
  end
  -- finalizers that run during a later call see a stale packet too
  if gc_holder then
    gc_holder = nil
    collectgarbage() collectgarbage()
    eq(gc_result and gc_result[1], false, "finalizer's access fails")
    eq(tostring(gc_result[2]):find(OUT, 1, true) ~= nil, true, "finalizer's error: " .. tostring(gc_result[2]))
  end
  -- the functions themselves work on this call's objects
  eq(u8(pkt, 0), pkt:u8(0), "kept u8 on this packet")
  if pkt.tcp then eq(sub(pkt.tcp.payload, 1), tostring(pkt.tcp.payload), "kept sub on this payload") end
  eq(pkt.len > 0, true, "this call's packet works")
  return lp.ACCEPT
end"##,
    );
    let keep = v4(
        V4::default(),
        &tcp_seg(
            Tcp {
                dport: 1,
                ..Tcp::default()
            },
            b"abc",
        ),
    );
    accept(&mut s, 0, &keep, Meta::default());
    // the same protocol again: the very case singleton objects cannot tell apart
    accept(
        &mut s,
        0,
        &v4(
            V4::default(),
            &tcp_seg(
                Tcp {
                    dport: 2,
                    ..Tcp::default()
                },
                b"xyz",
            ),
        ),
        Meta::default(),
    );
    // another protocol, then another family
    accept(
        &mut s,
        0,
        &v4(
            V4 {
                proto: 17,
                ..V4::default()
            },
            &udp(3, 4, b"u"),
        ),
        Meta::default(),
    );
    accept(
        &mut s,
        0,
        &v6_simple(
            6,
            &tcp_seg(
                Tcp {
                    dport: 5,
                    ..Tcp::default()
                },
                b"",
            ),
        ),
        Meta::default(),
    );
    // after a failed call as well
    let (mut s2, _) = script(
        r##"
local saved
function process_packet(pkt)
  if saved == nil then saved = pkt error("first call fails") end
  fails(function() return saved.len end, "packet used outside of its call", "after an error")
  return lp.ACCEPT
end"##,
    );
    let p = tcp4(80);
    let o = s2.run(0, 0, &SlicePacket::new(&p));
    assert!(
        s2.message(0).contains("first call fails"),
        "{o:?} {}",
        s2.message(0)
    );
    accept(&mut s2, 0, &p, Meta::default());
}

#[test]
fn views_stay_valid_for_the_whole_call() {
    let (mut s, _) = script(
        r##"
function process_packet(pkt)
  local pl = pkt.tcp.payload
  local parts = {}
  for i = 1, #pl do parts[i] = pl:sub(i, i) end
  local co = coroutine.wrap(function() return pkt.tcp.dport, tostring(pl) end)
  local d, s = co()
  eq(d, pkt.tcp.dport, "dport in a coroutine") eq(s, table.concat(parts), "payload in a coroutine")
  local ok, v = pcall(function() return pkt.ip.saddr end)
  eq(ok, true, "pcall") eq(v, "10.0.0.1", "saddr in pcall")
  return lp.ACCEPT
end"##,
    );
    for port in [10u16, 11, 12] {
        accept(
            &mut s,
            0,
            &v4(
                V4::default(),
                &tcp_seg(
                    Tcp {
                        dport: port,
                        ..Tcp::default()
                    },
                    b"data",
                ),
            ),
            Meta::default(),
        );
    }
}

// ---- logging, time, metadata -----------------------------------------------------------------------

#[test]
fn log_and_print_write_lines() {
    let (mut s, host) = script(
        r##"
print("loaded")
function process_packet(pkt)
  print("hello", 1, true, nil, 2.5)
  lp.log("payload", pkt.tcp.payload)
  lp.log()
  print(lp.cidr("10.1.0.0/8"))
  lp.log(pkt.ip.saddr .. " -> " .. pkt.ip.daddr)
  lp.log(setmetatable({}, {__tostring = function() return "custom" end}))
  local a = lp.now()
  local b = lp.now()
  eq(math.type(a), "integer", "lp.now is an integer")
  eq(a >= 0 and b >= a, true, "lp.now is monotonic")
  return lp.ACCEPT
end"##,
    );
    accept(
        &mut s,
        0,
        &v4(V4::default(), &tcp_seg(Tcp::default(), b"abc")),
        Meta::default(),
    );
    let lines = host.lines.lock().unwrap().clone();
    assert_eq!(
        lines,
        [
            "Info: loaded",
            "Info: hello\t1\ttrue\tnil\t2.5",
            "Info: payload\tabc",
            "Info: ",
            "Info: 10.0.0.0/8",
            "Info: 10.0.0.1 -> 10.0.0.2",
            "Info: custom",
        ]
    );
}

#[test]
fn meta_fields_come_from_the_packet_metadata() {
    let p = v4(V4::default(), &tcp_seg(Tcp::default(), b""));
    let len = p.len();
    let meta = Meta {
        nfproto: 10, // a wrong hint: the packet's own version wins
        hook: 3,
        mark: 0xdead_beef,
        iifname: ifname("eth0"),
        oifname: ifname("a-very-long-interface-name"),
        ..Meta::default()
    };
    check_meta(
        &p,
        meta,
        &format!(
            r##"
local m = pkt.meta
eq(m.mark, 0xdeadbeef, "mark")
eq(m.hook, 3, "hook")
eq(m.iifname, "eth0", "iifname")
eq(m.oifname, "a-very-long-int", "oifname (15 bytes)")
eq(m.nfproto, 2, "nfproto")
eq(m.l4proto, 6, "l4proto")
eq(m.len, {len}, "len")
eq(m.saddr, nil, "unknown meta key")
eq(pkt.ip6, nil, "ip6") eq(pkt.ip.version, 4, "ip")
"##
        ),
    );
    check(
        &p,
        r##"eq(pkt.meta.mark, 0, "mark") eq(pkt.meta.hook, 0, "hook") eq(pkt.meta.iifname, "", "iifname") eq(pkt.meta.oifname, "", "oifname")"##,
    );
    // a full 16-byte name without a terminating NUL is read up to its end, not past it
    let meta = Meta {
        iifname: [b'x'; 16],
        oifname: *b"0123456789abcdef",
        ..Meta::default()
    };
    check_meta(
        &p,
        meta,
        r##"eq(pkt.meta.iifname, string.rep("x", 16), "iifname") eq(pkt.meta.oifname, "0123456789abcdef", "oifname")"##,
    );
    // marks differ per packet on one instance
    let (mut s, _) = script(
        "function process_packet(pkt, arg) if pkt.meta.mark == pkt.tcp.dport then return lp.ACCEPT end return lp.DROP end",
    );
    for mark in [0u32, 1, 80, 65535] {
        let p = v4(
            V4::default(),
            &tcp_seg(
                Tcp {
                    dport: mark as u16,
                    ..Tcp::default()
                },
                b"",
            ),
        );
        accept(
            &mut s,
            0,
            &p,
            Meta {
                mark,
                ..Meta::default()
            },
        );
    }
}
