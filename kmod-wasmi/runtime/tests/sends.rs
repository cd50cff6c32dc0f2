//! lp.send, lp.reply and lp.packet through the kernel's script container: the packets a script
//! makes (checked by parsing them back with every checksum verified), the call's caps, the
//! script's rate, and the errors a script gets.

mod common;

use common::*;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use runtime::{
    EngineKind, GuestCache, Limits, Meta, OnError, OwnedPacket, PerCpuScript, SendKind, Verdict,
};

fn load(src: &str, limits: Limits) -> PerCpuScript {
    load_logged(src, limits).0
}

fn load_logged(src: &str, limits: Limits) -> (PerCpuScript, std::sync::Arc<TestHost>) {
    let h = host();
    let mut cache = GuestCache::new();
    let s = PerCpuScript::load(
        &mut cache,
        EngineKind::Wasmi,
        guest_lua::LUA_WASM,
        "sends",
        src.as_bytes(),
        limits,
        OnError::Break,
        1,
        h.clone(),
        None,
    )
    .unwrap_or_else(|e| panic!("load failed: {e}"));
    // SAFETY: one thread, slot 0 only.
    unsafe { s.bind_on_cpu(0, runtime::DEFAULT_ENTRY, None) }.unwrap();
    (s, h)
}

/// What a packet's call sent.
type Sent = Vec<(SendKind, Vec<u8>)>;

/// Runs the script's entry on `data` and returns the verdict, the error and what it sent.
fn run(s: &PerCpuScript, data: Vec<u8>) -> (Verdict, Option<String>, Sent) {
    let p = OwnedPacket::new(data, Meta::default());
    // SAFETY: one thread, slot 0 only.
    let o = unsafe { s.run_on_cpu(0, 0, &p) };
    let err = o.error.map(|k| format!("{k:?}"));
    (o.verdict, err, p.sent.take())
}

fn sum(b: &[u8], mut acc: u32) -> u32 {
    for c in b.chunks(2) {
        acc += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Parses an IPv4/IPv6 packet and checks the IP header and transport checksums.
fn checked(p: &[u8]) -> SlicedPacket<'_> {
    let s = SlicedPacket::from_ip(p).expect("an IP packet");
    let (pseudo, l4) = match s.net.as_ref().expect("a network header") {
        NetSlice::Ipv4(v4) => {
            let h = v4.header();
            assert_eq!(sum(h.slice(), 0), 0xffff, "IPv4 header checksum");
            let l4 = v4.payload().payload;
            let mut ph = Vec::new();
            ph.extend_from_slice(&h.source());
            ph.extend_from_slice(&h.destination());
            ph.extend_from_slice(&[0, h.protocol().0]);
            ph.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            (if h.protocol().0 == 1 { Vec::new() } else { ph }, l4)
        }
        NetSlice::Ipv6(v6) => {
            let h = v6.header();
            let l4 = v6.payload().payload;
            let mut ph = Vec::new();
            ph.extend_from_slice(&h.source());
            ph.extend_from_slice(&h.destination());
            ph.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            ph.extend_from_slice(&[0, 0, 0, h.next_header().0]);
            (ph, l4)
        }
        _ => panic!("not IP"),
    };
    assert_eq!(sum(l4, sum(&pseudo, 0)), 0xffff, "transport checksum");
    s
}

const UDP_ANSWER: &str = r#"
function process_packet(pkt)
  local ok, why = lp.reply("pong " .. tostring(pkt.udp.payload))
  assert(ok, why)
  return lp.DROP
end
"#;

#[test]
fn a_udp_reply_swaps_addresses_and_ports() {
    let s = load(UDP_ANSWER, Limits::default());
    let req = ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], &udp(40000, 53, b"ping"));
    let (v, err, sent) = run(&s, req);
    assert_eq!((v, err), (Verdict::Drop, None));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, SendKind::Reply);
    let p = checked(&sent[0].1);
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), [10, 0, 0, 2]);
    assert_eq!(ip.header().destination(), [10, 0, 0, 1]);
    assert_eq!(ip.header().ttl(), 64);
    assert!(ip.header().dont_fragment());
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!()
    };
    assert_eq!((u.source_port(), u.destination_port()), (53, 40000));
    assert_eq!(u.payload(), b"pong ping");
    let st = s.stats().sends;
    assert_eq!((st.sent_packets, st.sent_bytes), (1, 37));

    // IPv6 the same way
    let req6 = Ip6::default().packet(17, [0x20; 16], [0x21; 16], &udp(1, 2, b"x"));
    let (_, err, sent) = run(&s, req6);
    assert_eq!(err, None);
    let p = checked(&sent[0].1);
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(
        (ip.header().source(), ip.header().hop_limit()),
        ([0x21; 16], 64)
    );
}

#[test]
fn a_tcp_reply_is_the_next_segment_of_the_other_side() {
    let s = load(
        r#"
function process_packet(pkt, arg)
  local t = pkt.tcp
  if t.syn then assert(lp.reply(nil, {flags = "SA", seq = 7000})) -- a SYN-ACK
  elseif #t.payload > 0 then assert(lp.reply("HTTP/1.0 200 OK\r\n\r\nhi", {flags = "FPA"}))
  else assert(lp.reply(nil, {flags = "R"})) end
  return lp.DROP
end
"#,
        Limits::default(),
    );
    let tcp_with = |flags: u8, payload: &[u8]| {
        let t = Tcp {
            seq: 1000,
            ack_seq: 5000,
            ..Tcp::default()
        };
        ipv4(
            6,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            &t.segment(40000, 80, flags, payload),
        )
    };
    let seg = |flags: u8, payload: &[u8]| {
        let (_, err, sent) = run(&s, tcp_with(flags, payload));
        assert_eq!(err, None);
        let b = sent.into_iter().next().unwrap().1;
        let p = checked(&b);
        let Some(TransportSlice::Tcp(t)) = &p.transport else {
            panic!()
        };
        let flags = (t.syn(), t.ack(), t.psh(), t.fin(), t.rst());
        (
            t.sequence_number(),
            t.acknowledgment_number(),
            flags,
            t.payload().to_vec(),
        )
    };
    // SYN (no ACK): seq as given, ack their seq + 1
    assert_eq!(
        seg(0x02, b""),
        (7000, 1001, (true, true, false, false, false), vec![])
    );
    // data: seq their ack, ack their seq + length
    let (seq, ack, flags, data) = seg(0x18, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        (seq, ack, flags),
        (5000, 1018, (false, true, true, true, false))
    );
    assert_eq!(data, b"HTTP/1.0 200 OK\r\n\r\nhi");
    // a reset without ACK carries no acknowledgment number
    assert_eq!(
        seg(0x10, b""),
        (5000, 0, (false, false, false, false, true), vec![])
    );
}

#[test]
fn icmp_echo_requests_get_replies_and_the_builders_make_valid_packets() {
    let s = load(
        r#"
function process_packet(pkt, arg)
  if pkt.icmp then assert(lp.reply()) return lp.DROP end
  for _, p in ipairs{
    lp.packet.udp{src = "192.0.2.1", dst = "192.0.2.2", sport = 1, dport = 2, payload = "odd"},
    lp.packet.udp{src = "2001:db8::1", dst = "2001:db8::2", sport = 3, dport = 4, ttl = 9},
    lp.packet.tcp{src = "192.0.2.1", dst = "192.0.2.2", sport = 5, dport = 6, flags = "S", seq = 1},
    lp.packet.icmp{src = "2001:db8::1", dst = "2001:db8::2", id = 7, seq = 8, payload = lp.bytes("ab")},
  } do assert(lp.send(p)) end
  return lp.ACCEPT
end
"#,
        Limits::default(),
    );
    let echo = [8, 0, 0, 0, 0, 42, 0, 1, b'd', b'a', b't', b'a'];
    let (_, err, sent) = run(&s, ipv4(1, [10, 0, 0, 1], [10, 0, 0, 2], &echo));
    assert_eq!(err, None);
    let p = checked(&sent[0].1);
    let l4 = &sent[0].1[20..];
    assert_eq!(
        (l4[0], &l4[4..]),
        (0, &echo[4..]),
        "type 0, id, sequence, data"
    );
    drop(p);
    let (_, err, sent) = run(&s, ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], &udp(1, 2, b"")));
    assert_eq!(err, None);
    assert_eq!(sent.len(), 4);
    for (k, b) in &sent {
        assert_eq!(*k, SendKind::Send);
        checked(b);
    }
    assert_eq!(sent[1].1[7], 9, "hop limit");
    assert_eq!(&sent[3].1[40..42], &[128, 0], "an ICMPv6 echo request");
}

#[test]
fn caps_rates_and_bad_packets_are_the_scripts_errors() {
    let src = r#"
local results = {}
local top_ok, top_why = lp.send(lp.packet.udp{src = "10.0.0.1", dst = "10.0.0.2", sport = 1, dport = 2})
function process_packet(pkt, arg)
  local p = lp.packet.udp{src = "10.0.0.1", dst = "10.0.0.2", sport = 1, dport = 2, payload = string.rep("x", 100)}
  local out = {}
  for i = 1, 3 do
    local ok, why = lp.send(p)
    out[#out + 1] = tostring(ok) .. ":" .. tostring(why)
  end
  assert(top_why == "sending is not possible here", top_why)
  local bad = lp.bytes(p)
  bad[4] = 0 -- the total length no longer agrees
  local ok, err = pcall(lp.send, bad)
  assert(not ok and err:find("not an IPv4 or IPv6 packet whose header and length agree (128 bytes)", 1, true), err)
  assert(not pcall(lp.send, 42))
  lp.log(table.concat(out, " "))
  return lp.ACCEPT
end
"#;
    let limits = Limits {
        send_packets: 2,
        send_bytes: 1000,
        send_rate: 3,
        ..Limits::default()
    };
    let (s, h) = load_logged(src, limits);
    let pkt = || ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], &udp(1, 2, b""));
    let (_, err, sent) = run(&s, pkt());
    assert_eq!(
        (err, sent.len()),
        (None, 2),
        "{:?}",
        h.lines.lock().unwrap()
    );
    assert!(
        h.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l
                .ends_with("true:nil true:nil nil:over the call's packets (limit send-packets)")),
        "{:?}",
        h.lines.lock().unwrap()
    );
    let (_, _, sent) = run(&s, pkt());
    assert_eq!(sent.len(), 1, "the rate's third packet");
    let st = s.stats().sends;
    assert_eq!(
        (st.sent_packets, st.refused, st.failed),
        (3, 3, 5),
        "refused: a cap, the rate twice; failed: the top level, two bad packets a call"
    );
    // the byte cap: 128-byte packets against 200 bytes a call (a fresh script: its rate's
    // bucket is empty)
    let s = load(
        src,
        Limits {
            send_bytes: 200,
            ..limits
        },
    );
    let (_, _, sent) = run(&s, pkt());
    assert_eq!(sent.len(), 1);
    assert_eq!(s.stats().sends.refused, 2);
}
