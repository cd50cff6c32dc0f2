//! Packet writes: every setter of every protocol class, the checksums each keeps (verified by a
//! full recomputation here, not by the guest's incremental arithmetic), read-only fields, raw
//! writers, writes beyond the 2 KiB window, metadata writes and the host's check of the dirty
//! range the guest reports.
mod common;
use common::*;
use runtime::packet::apply_context;
use runtime::{Conntrack, Meta, OwnedPacket, Script, Verdict};

/// RFC 1071 sum over `data`, starting from `acc`.
fn sum(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(c[0]) << 8 | c.get(1).map_or(0, |&b| u32::from(b));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum over `data` (with its checksum field) verifies.
fn verifies(data: &[u8], pseudo: u32) -> bool {
    fold(sum(data, pseudo)) == 0xffff
}

fn pseudo(p: &[u8], l4proto: u8) -> u32 {
    if p[0] >> 4 == 4 {
        let seg = p.len() as u32 - u32::from(p[0] & 0xf) * 4;
        sum(&p[12..20], 0) + u32::from(l4proto) + seg
    } else {
        let seg = p.len() as u32 - 40;
        sum(&p[8..40], 0) + u32::from(l4proto) + (seg >> 16) + (seg & 0xffff)
    }
}

/// Sets the IPv4 header checksum and the transport checksum at `coff` (0: none).
fn with_checksums(mut p: Vec<u8>, coff: usize, l4proto: u8) -> Vec<u8> {
    let v4 = p[0] >> 4 == 4;
    let l4 = if v4 { usize::from(p[0] & 0xf) * 4 } else { 40 };
    if v4 {
        p[10..12].fill(0);
        let c = !fold(sum(&p[..l4], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    if coff != 0 {
        p[l4 + coff..l4 + coff + 2].fill(0);
        let ps = if l4proto == 1 { 0 } else { pseudo(&p, l4proto) };
        let c = !fold(sum(&p[l4..], ps));
        p[l4 + coff..l4 + coff + 2].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Every checksum of `p` verifies.
fn assert_valid(p: &[u8], what: &str) {
    let v4 = p[0] >> 4 == 4;
    let (l4, proto) = if v4 {
        assert!(verifies(&p[..20], 0), "{what}: IPv4 header checksum");
        (usize::from(p[0] & 0xf) * 4, p[9])
    } else {
        (40, p[6])
    };
    let ps = if proto == 1 { 0 } else { pseudo(p, proto) };
    if proto == 17 && v4 && p[l4 + 6..l4 + 8] == [0, 0] {
        return; // no UDP checksum
    }
    assert!(verifies(&p[l4..], ps), "{what}: transport checksum");
}

fn tcp4_full(payload: &[u8]) -> Vec<u8> {
    with_checksums(
        ipv4(
            6,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            &tcp(40000, 80, 0x18, payload),
        ),
        16,
        6,
    )
}

fn udp4_full(payload: &[u8]) -> Vec<u8> {
    with_checksums(
        ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], &udp(5353, 53, payload)),
        6,
        17,
    )
}

/// 2001:db8::1 -> 2001:db8::2, the default header fields.
fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
    let addr = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().octets();
    Ip6::default().packet(next, addr("2001:db8::1"), addr("2001:db8::2"), l4)
}

fn icmp_echo(ty: u8) -> Vec<u8> {
    let mut i = vec![ty, 0, 0, 0, 0x12, 0x34, 0, 1];
    i.extend_from_slice(b"ping data");
    i
}

/// Loads `body` as process_packet(pkt) (prelude included) and runs it once on `p`.
fn run_on(body: &str, p: Vec<u8>, meta: Meta) -> (Vec<u8>, OwnedPacket, Script) {
    let src = format!("{PRELUDE}\nfunction process_packet(pkt)\n{body}\nreturn lp.ACCEPT\nend");
    let mut s = load(&src);
    let pkt = OwnedPacket::new(p, meta);
    // test bodies check many fields in one call: more fuel than a script may have
    let (r, msg) = run_with_test_fuel(&mut s, 0, &pkt);
    assert_eq!(r, Ok(Verdict::Accept), "{msg}");
    let bytes = pkt.data.borrow().clone();
    (bytes, pkt, s)
}

fn write(body: &str, p: Vec<u8>) -> Vec<u8> {
    run_on(body, p, Meta::default()).0
}

#[test]
fn ipv4_setters_keep_both_checksums() {
    let p = write(
        r#"
        local ip = pkt.ip
        ip.daddr = "192.168.7.9"
        ip.saddr = "172.16.0.1"
        ip.ttl = ip.ttl - 1
        ip.id = 0xbeef
        ip.dscp = 46
        ip.ecn = 1
        ip.frag_off = 0x4000
        eq(ip.daddr, "192.168.7.9", "daddr") eq(ip.saddr, "172.16.0.1", "saddr")
        eq(ip.ttl, 63, "ttl") eq(ip.id, 0xbeef, "id") eq(ip.dscp, 46, "dscp") eq(ip.ecn, 1, "ecn")
        eq(ip.frag_off, 0x4000, "frag_off")
        "#,
        tcp4_full(b"hello"),
    );
    assert_eq!(&p[16..20], &[192, 168, 7, 9]);
    assert_eq!(&p[12..16], &[172, 16, 0, 1]);
    assert_eq!(p[8], 63);
    assert_eq!(&p[4..6], &[0xbe, 0xef]);
    assert_eq!(p[1], 46 << 2 | 1);
    assert_valid(&p, "tcp4");
    // UDP: the pseudo-header too
    let p = write(
        r#"pkt.ip.daddr = "8.8.4.4" pkt.ip.saddr = "1.2.3.4""#,
        udp4_full(b"query"),
    );
    assert_valid(&p, "udp4");
    // ICMP has no pseudo-header: only the IPv4 header checksum changes
    let before = with_checksums(ipv4(1, [10, 0, 0, 1], [10, 0, 0, 2], &icmp_echo(8)), 2, 1);
    let p = write(r#"pkt.ip.daddr = "10.9.9.9""#, before.clone());
    assert_eq!(p[20..], before[20..], "ICMP bytes unchanged");
    assert_valid(&p, "icmp");
}

#[test]
fn transport_setters_keep_their_checksum() {
    let p = write(
        r#"
        local t = pkt.tcp
        t.sport = 1234 t.dport = 8080 t.seq = 0xfffffffe t.ack_seq = 7 t.window = 512
        t.urgptr = 3 t.syn = true t.psh = false t.fin = 1 t.flags = t.flags | 0x80
        eq(t.sport, 1234, "sport") eq(t.dport, 8080, "dport") eq(t.seq, 0xfffffffe, "seq")
        eq(t.ack_seq, 7, "ack_seq") eq(t.window, 512, "window") eq(t.urgptr, 3, "urgptr")
        eq(t.syn, true, "syn") eq(t.psh, false, "psh") eq(t.fin, true, "fin") eq(t.cwr, true, "cwr")
        "#,
        tcp4_full(b"odd-length payload!"),
    );
    assert_eq!(&p[20..24], &[0x04, 0xd2, 0x1f, 0x90]);
    assert_valid(&p, "tcp setters");
    let p = write(
        r#"pkt.udp.sport = 1 pkt.udp.dport = 65535 eq(pkt.udp.dport, 65535, "dport")"#,
        udp4_full(b"x"),
    );
    assert_valid(&p, "udp setters");
    let p = write(
        r#"local i = pkt.icmp i.type = 0 i.code = 0 i.id = 99 i.sequence = 0x7fff
           eq(i.type, 0, "type") eq(i.id, 99, "id") eq(i.sequence, 0x7fff, "seq")"#,
        with_checksums(ipv4(1, [10, 0, 0, 1], [10, 0, 0, 2], &icmp_echo(8)), 2, 1),
    );
    assert_valid(&p, "icmp setters");
}

#[test]
fn ipv6_setters_and_icmpv6() {
    let mut t = tcp(40000, 443, 0x10, b"v6 payload");
    t.truncate(t.len());
    let p = with_checksums(ipv6(6, &t), 16, 6);
    let p = write(
        r#"
        local ip = pkt.ip6
        ip.daddr = "2001:db8:ffff::42" ip.saddr = "fe80::1" ip.hoplimit = 1
        ip.dscp = 10 ip.ecn = 3 ip.flowlabel = 0xabcde
        eq(ip.daddr, "2001:db8:ffff::42", "daddr") eq(ip.hoplimit, 1, "hoplimit")
        eq(ip.dscp, 10, "dscp") eq(ip.ecn, 3, "ecn") eq(ip.flowlabel, 0xabcde, "flowlabel")
        eq(ip.version, 6, "version")
        pkt.tcp.dport = 8443
        "#,
        p,
    );
    assert_valid(&p, "tcp6");
    let p = with_checksums(ipv6(58, &icmp_echo(128)), 2, 58);
    let p = write(
        r#"pkt.ip6.daddr = "2001:db8::99" pkt.icmp6.type = 129 pkt.icmp6.sequence = 5"#,
        p,
    );
    assert_eq!(p[40], 129);
    assert_valid(&p, "icmp6");
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let p = ipv4(
        17,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        &udp(1000, 2000, b"no csum"),
    );
    let p = with_checksums(p, 0, 17); // IPv4 header checksum only; UDP checksum 0
    let out = write(r#"pkt.ip.daddr = "10.1.1.1" pkt.udp.dport = 2001"#, p);
    assert_eq!(&out[26..28], &[0, 0], "UDP checksum stays 0");
    assert_valid(&out, "udp zero");
    // a computed 0 is sent as 0xffff: find a payload whose checksum then comes out as 0
    let mut found = false;
    for b in 0..=u16::MAX {
        let p = udp4_full(&b.to_be_bytes());
        // the change 2000 -> 2001 of dport adds 1 to the sum; pick a packet where that lands on 0
        let mut q = p.clone();
        q[22..24].copy_from_slice(&54u16.to_be_bytes());
        q = with_checksums(q, 6, 17);
        if q[26..28] == [0xff, 0xff] || q[26..28] == [0, 0] {
            let out = write("pkt.udp.dport = 54", p);
            assert_eq!(&out[26..28], &[0xff, 0xff], "0 is sent as 0xffff");
            assert_valid(&out, "udp 0xffff");
            found = true;
            break;
        }
    }
    assert!(found);
}

#[test]
fn partial_checksums_change_only_with_addresses() {
    // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, uncomplemented
    let mut p = ipv4(
        6,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        &tcp(40000, 80, 0x18, b"abc"),
    );
    p = with_checksums(p, 0, 6);
    let ps = fold(pseudo(&p, 6));
    p[36..38].copy_from_slice(&ps.to_be_bytes());
    let meta = Meta {
        csum_partial: true,
        ..Meta::default()
    };
    let (out, _, _) = run_on("pkt.tcp.dport = 8080", p.clone(), meta);
    assert_eq!(out[36..38], p[36..38], "a port change leaves the field");
    let (out, _, _) = run_on(r#"pkt.ip.daddr = "10.7.7.7""#, p, meta);
    assert_eq!(
        u16::from_be_bytes([out[36], out[37]]),
        fold(pseudo(&out, 6)),
        "an address change updates the pseudo-header sum"
    );
    assert!(verifies(&out[..20], 0), "ip header");
}

/// TCP header with options MSS 1460, SACK-permitted, timestamps, NOP, window scale 7.
fn tcp_opts() -> Vec<u8> {
    let mut t = tcp(40000, 80, 0x02, b"");
    t[12] = 10 << 4;
    t.extend_from_slice(&[
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7,
    ]);
    t
}

#[test]
fn tcp_options_read_and_write() {
    let p = with_checksums(ipv4(6, [10, 0, 0, 1], [10, 0, 0, 2], &tcp_opts()), 16, 6);
    let out = write(
        r#"
        local t = pkt.tcp
        eq(t.mss, 1460, "mss") eq(t.wscale, 7, "wscale") eq(t.sack_perm, true, "sack_perm")
        eq(t.ts_val, 1, "ts_val") eq(t.ts_ecr, 2, "ts_ecr")
        t.mss = 1400 t.wscale = 2 t.ts_val = 0xdeadbeef t.ts_ecr = 5
        eq(t.mss, 1400, "mss") eq(t.wscale, 2, "wscale") eq(t.ts_val, 0xdeadbeef, "ts_val")
        fails(function() t.wscale = 15 end, "out of range")
        fails(function() t.sack_perm = false end, "tcp.sack_perm is read-only")
        "#,
        p,
    );
    assert_eq!(&out[42..44], &1400u16.to_be_bytes());
    assert_valid(&out, "options");
    // a segment without options: nil reads, writes are errors
    write(
        r#"
        local t = pkt.tcp
        eq(t.mss, nil, "mss") eq(t.sack_perm, false, "sack_perm") eq(t.ts_val, nil, "ts")
        fails(function() t.mss = 1000 end, "no such option")
        "#,
        tcp4_full(b""),
    );
}

#[test]
fn read_only_fields_and_bad_values_are_errors() {
    let p = write(
        r#"
        fails(function() pkt.ip.version = 6 end, "ip.version is read-only")
        fails(function() pkt.ip.length = 6 end, "ip.length is read-only")
        fails(function() pkt.ip.hdrlength = 6 end, "ip.hdrlength is read-only")
        fails(function() pkt.ip.protocol = 17 end, "ip.protocol is read-only")
        fails(function() pkt.tcp.doff = 6 end, "tcp.doff is read-only")
        fails(function() pkt.tcp.payload = "x" end, "tcp.payload is read-only")
        fails(function() pkt.meta.iifname = "x" end, "meta.iifname is read-only")
        fails(function() pkt.len = 1 end, "packet.len is read-only")
        fails(function() pkt.ip.bogus = 1 end, "ip has no field 'bogus'")
        fails(function() pkt.ip.ttl = 256 end, "ip.ttl: 256 out of range 0..255")
        fails(function() pkt.ip.ttl = -1 end, "out of range")
        fails(function() pkt.ip.ttl = "x" end, "ip.ttl: expected an integer, got string")
        fails(function() pkt.ip.ttl = 1.5 end, "expected an integer")
        fails(function() pkt.ip.daddr = "2001:db8::1" end, "is not an IPv4 address")
        fails(function() pkt.ip.daddr = "10.0.0.256" end, "is not an IPv4 address")
        fails(function() pkt.ip.daddr = 5 end, "expected an address string")
        fails(function() pkt.tcp.dport = 65536 end, "out of range")
        "#,
        tcp4_full(b"data"),
    );
    assert_eq!(p, tcp4_full(b"data"), "failed writes change nothing");
}

#[test]
fn raw_writers_and_fix_checksums() {
    let mut payload = vec![b'.'; 3000];
    payload[2990..].copy_from_slice(b"0123456789");
    let p = udp4_full(&payload);
    let out = write(
        r#"
        pkt:set_u8(28, 0x41) pkt:set_u16(30, 0x4243) pkt:set_u32(32, 0x44454647)
        pkt:set_bytes(2500, "beyond the window")
        pkt:set_bytes(2040, lp.bytes("straddles"))
        eq(pkt:bytes(2500, 17), "beyond the window", "read back beyond the window")
        eq(pkt:bytes(2040, 9), "straddles", "read back across the window's end")
        eq(pkt:u32(32), 0x44454647, "u32")
        fails(function() pkt:set_u8(pkt.len, 1) end, "outside the packet")
        fails(function() pkt:set_bytes(pkt.len - 2, "abc") end, "outside the packet")
        fails(function() pkt:set_u16(-1, 1) end, "outside the packet")
        fails(function() pkt:set_u8(0, 256) end, "out of range")
        pkt:fix_checksums()
        "#,
        p,
    );
    assert_eq!(&out[28..36], b"A.BCDEFG");
    assert_eq!(&out[2500..2517], b"beyond the window");
    assert_eq!(&out[2040..2049], b"straddles");
    assert_eq!(&out[3018..], b"0123456789");
    assert_valid(&out, "fix_checksums");
    // IPv6 + TCP
    let p = with_checksums(ipv6(6, &tcp(1, 2, 0x18, b"some bytes")), 16, 6);
    let out = write(r#"pkt:set_bytes(60, "SOME") pkt:fix_checksums()"#, p);
    assert_valid(&out, "fix_checksums v6");
}

#[test]
fn metadata_writes() {
    let meta = Meta {
        mark: 5,
        ct: Some(Conntrack {
            state: abi::guest::ctx::CT_ESTABLISHED,
            mark: 9,
            id: 77,
        }),
        eth: Some([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]),
        ..Meta::default()
    };
    let (_, pkt, _) = run_on(
        r#"
        eq(pkt.meta.mark, 5, "mark") pkt.meta.mark = 0x2a eq(pkt.meta.mark, 0x2a, "mark")
        eq(pkt.ct.state, "established", "state") eq(pkt.ct.mark, 9, "ct mark") eq(pkt.ct.id, 77, "id")
        pkt.ct.mark = 0xffffffff
        fails(function() pkt.ct.state = "new" end, "ct.state is read-only")
        fails(function() pkt.ct.id = 1 end, "ct.id is read-only")
        eq(pkt.eth.dst, "02:00:00:00:00:01", "dst") eq(pkt.eth.src, "02:00:00:00:00:02", "src")
        eq(pkt.eth.type, 0x0800, "type")
        pkt.eth.dst = "aa:bb:cc:dd:ee:ff" pkt.eth.src = "00-11-22-33-44-55"
        eq(pkt.eth.dst, "aa:bb:cc:dd:ee:ff", "dst written")
        fails(function() pkt.eth.dst = "aa:bb" end, "expected a MAC address")
        "#,
        tcp4_full(b""),
        meta,
    );
    let w = pkt.written.get();
    assert_eq!(w.mark, Some(0x2a));
    assert_eq!(w.ct_mark, Some(0xffff_ffff));
    assert_eq!(
        w.eth,
        Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 8, 0])
    );
    // untracked: a state, no entry to mark
    let untracked = Meta {
        ct: Some(Conntrack {
            state: abi::guest::ctx::CT_UNTRACKED,
            mark: 0,
            id: 0,
        }),
        ..Meta::default()
    };
    let (_, pkt, _) = run_on(
        r#"eq(pkt.ct.state, "untracked", "state")
           fails(function() pkt.ct.mark = 1 end, "ct.mark: the packet is untracked")"#,
        tcp4_full(b""),
        untracked,
    );
    assert!(pkt.written.get().is_empty());
    // without conntrack or a link layer there is no pkt.ct / pkt.eth
    let (_, pkt, _) = run_on(
        r#"eq(pkt.ct, nil, "ct") eq(pkt.eth, nil, "eth")"#,
        tcp4_full(b""),
        Meta::default(),
    );
    assert!(pkt.written.get().is_empty());
}

#[test]
fn writes_stand_when_the_script_fails_later() {
    let src = format!(
        "{PRELUDE}\nfunction process_packet(pkt) pkt.ip.ttl = 1 error('after the write') end"
    );
    let mut s = load(&src);
    let pkt = OwnedPacket::new(tcp4_full(b""), Meta::default());
    let o = s.run(0, 0, &pkt);
    assert!(o.error.is_some());
    let p = pkt.into_bytes();
    assert_eq!(p[8], 1);
    assert_valid(&p, "after an error");
}

#[test]
fn read_only_packets_refuse_writes_beyond_the_window() {
    // SlicePacket cannot be written: the window part is applied by the host and refused
    let src =
        format!("{PRELUDE}\nfunction process_packet(pkt) pkt.ip.ttl = 1 return lp.ACCEPT end");
    let mut s = load(&src);
    let data = tcp4_full(b"");
    let o = s.run(0, 0, &runtime::SlicePacket::new(&data));
    assert_eq!(
        o.error,
        Some(runtime::ErrorKind::Memory),
        "{}",
        s.message(0)
    );
}

#[test]
fn host_refuses_a_dirty_range_outside_the_window() {
    let pkt = OwnedPacket::new(vec![0x45; 100], Meta::default());
    let mut ctx = vec![0u8; abi::guest::ctx::SIZE];
    let put = |c: &mut [u8], off: usize, v: u32| c[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut ctx, abi::guest::ctx::WIN, 100);
    for (lo, hi) in [
        (0, 101),
        (50, 40),
        (u32::MAX, 5),
        (0, 3000),
        (2047, u32::MAX),
    ] {
        put(&mut ctx, abi::guest::ctx::DIRTY_LO, lo);
        put(&mut ctx, abi::guest::ctx::DIRTY_HI, hi);
        assert!(apply_context(&pkt, &ctx).is_err(), "[{lo}, {hi})");
    }
    put(&mut ctx, abi::guest::ctx::DIRTY_LO, 10);
    put(&mut ctx, abi::guest::ctx::DIRTY_HI, 12);
    ctx[abi::guest::ctx::WINDOW + 10] = 7;
    assert_eq!(apply_context(&pkt, &ctx), Ok(2));
    assert_eq!(pkt.data.borrow()[10], 7);
    // metadata bits for what the packet does not have are ignored
    ctx[abi::guest::ctx::OUT] = abi::guest::ctx::OUT_CT_MARK | abi::guest::ctx::OUT_ETH;
    apply_context(&pkt, &ctx).unwrap();
    assert!(pkt.written.get().is_empty());
}

#[test]
fn defined_protocol_setters_write_through() {
    let tftp = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/proto/tftp.lua"
    ))
    .unwrap();
    let body = r#"
        local v = pkt.udp.payload:as("tftp")
        eq(v.opcode, 3, "opcode") eq(v.block, 1, "block")
        v.block = 0x1234
        eq(v.block, 0x1234, "view")
        eq(pkt.udp.payload:as("tftp").block, 0x1234, "packet")
        fails(function() v.block = 0x10000 end, "does not fit in 16 bits")
        fails(function() v.block = "x" end, "expected an integer")
        fails(function() v.nosuch = 1 end, "no field 'nosuch'")
        fails(function() v.payload = 1 end, "no field 'payload'")
        kept = v
        -- a byte array is written in place
        local b = lp.bytes.hex("0003 0001 41")
        local bv = b:as("tftp") bv.block = 7
        eq(b:u16(3), 7, "bytes written through")
    "#;
    let src = format!(
        "{tftp}\n{PRELUDE}\nfunction process_packet(pkt)\n{body}\nreturn lp.ACCEPT\nend\n\
         function later(pkt) fails(function() kept.block = 1 end, \"packet is gone\") \
         eq(kept.block, 0x1234, \"kept reads\") return lp.ACCEPT end"
    );
    let mut s = load(&src);
    let e = s.bind("later", None).unwrap();
    let mut payload = vec![0, 3, 0, 1];
    payload.extend_from_slice(b"file data");
    let p = with_checksums(
        ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], &udp(40000, 69, &payload)),
        6,
        17,
    );
    let pkt = OwnedPacket::new(p, Meta::default());
    let o = s.run(0, 0, &pkt);
    assert_eq!(o.error, None, "{}", s.message(0));
    let o = s.run(0, e, &pkt);
    assert_eq!(o.error, None, "{}", s.message(0));
    let p = pkt.into_bytes();
    assert_eq!(&p[30..32], &[0x12, 0x34]);
    assert_valid(&p, "tftp block");
}

#[test]
fn field_access_and_setters_allocate_nothing() {
    write(
        r#"
        collectgarbage("stop")
        local ip, t = pkt.ip, pkt.tcp
        local warm = ip.daddr .. ip.saddr -- the address strings exist from here on
        local before = collectgarbage("count")
        for i = 1, 200 do
          local _ = pkt.ip.ttl + pkt.tcp.dport + pkt.ip.id
          local _ = pkt.ip.daddr, pkt.ip.saddr, pkt.tcp.syn, pkt.meta.mark
          pkt.ip.ttl = i % 200
          pkt.tcp.dport = i
          pkt.ip.daddr = "10.0.0.2"
        end
        eq(collectgarbage("count"), before, "Lua heap after 200 rounds of reads and writes")
        collectgarbage("restart")
        "#,
        tcp4_full(b"x"),
    );
}

#[test]
fn values_must_be_numbers_and_payloads_end_with_the_datagram() {
    // link-layer padding after the IP datagram (hooks before the IP stack) is not payload
    let mut p = udp4_full(b"abc");
    p.extend_from_slice(&[0xee; 6]);
    write(
        r#"
        eq(#pkt.udp.payload, 3, "padding is not payload")
        eq(tostring(pkt.udp.payload), "abc", "payload bytes")
        fails(function() pkt.ip.ttl = true end, "ip.ttl: expected an integer, got boolean")
        fails(function() pkt.udp.dport = "80" end, "expected an integer, got string")
        "#,
        p.clone(),
    );
    let mut t = tcp4_full(b"xy");
    t.extend_from_slice(&[0; 4]);
    write(
        r#"eq(#pkt.tcp.payload, 2, "tcp payload") pkt.tcp.syn = true pkt.tcp.fin = 0
           fails(function() pkt.tcp.dport = "80" end, "expected an integer, got string")"#,
        t,
    );
    // UDP over IPv6 with checksum 0 (zero-checksum tunnels): kept, as Linux's NAT does
    let u = ipv6(17, &udp(1000, 4789, b"vxlan"));
    let out = write(r#"pkt.udp.sport = 1001 pkt.ip6.saddr = "2001:db8::7""#, u);
    assert_eq!(&out[46..48], &[0, 0]);
}

#[test]
fn views_over_the_same_bytes_compose() {
    let def = r#"lp.proto.define{name = "nib", fields = {{name = "hi", offset = 0, bits = 4}, {name = "lo", offset = 4, bits = 4}}}"#;
    let body = r#"
        local b = lp.bytes("\0\0\0")
        local a, c = b:as("nib"), b:as("nib")
        a.hi = 0xf c.lo = 1
        eq(b:hex(), "f10000", "two views of one byte array")
        local pa, pc = pkt.udp.payload:as("nib"), pkt.udp.payload:as("nib")
        pa.hi = 0xf pc.lo = 1
        eq(pkt:u8(28), 0xf1, "two views of one payload")
        pkt:set_u8(28, 0x20) pa.lo = 3
        eq(pkt:u8(28), 0x23, "a view after a raw write")
        pkt:fix_checksums() -- the raw write fixed nothing
    "#;
    let src =
        format!("{def}\n{PRELUDE}\nfunction process_packet(pkt)\n{body}\nreturn lp.ACCEPT\nend");
    let mut s = load(&src);
    let pkt = OwnedPacket::new(udp4_full(b"\0\0"), Meta::default());
    let o = s.run(0, 0, &pkt);
    assert_eq!(o.error, None, "{}", s.message(0));
    let p = pkt.into_bytes();
    assert_eq!(p[28], 0x23);
    assert_valid(&p, "views compose");
}

#[test]
fn host_copies_beyond_the_window_cost_fuel_by_size() {
    // the same calls, copying 16 or 60,000 bytes beyond the window: the bytes are paid for
    let fuel = |n: usize| {
        let src = format!(
            "local s = string.rep('x', {n})\nfunction process_packet(pkt)\n\
             pkt:set_bytes(3000, s) local _ = pkt:bytes(3000, {n}) return lp.ACCEPT end"
        );
        let mut s = load(&src);
        let pkt = OwnedPacket::new(udp4_full(&vec![0; 63_500]), Meta::default());
        let o = s.run(0, 0, &pkt);
        assert_eq!(o.error, None, "{}", s.message(0));
        o.fuel
    };
    let (small, big) = (fuel(16), fuel(60_000));
    assert!(
        big >= small + 2 * 60_000 / 16 - 10,
        "60,000-byte copies cost {big} fuel, 16-byte ones {small}"
    );
}

#[test]
fn frames_the_hook_says_are_not_ip_have_no_ip_header() {
    // a netdev/bridge hook's frame with another protocol (say an MPLS label starting with 4):
    // no pkt.ip to read or write, whatever the first nibble
    let meta = Meta {
        nfproto: 5,
        ..Meta::default()
    };
    let (out, _, _) = run_on(
        r#"eq(pkt.ip, nil, "ip") eq(pkt.ip6, nil, "ip6") eq(pkt.meta.nfproto, 5, "nfproto")"#,
        tcp4_full(b"looks like IPv4"),
        meta,
    );
    assert_eq!(out, tcp4_full(b"looks like IPv4"));
}
