//! Property tests of packet writes (docs/packet-writes.md): for random packets and random field
//! writes, the checksums verify with an independent implementation (etherparse), every written
//! field reads back as written, nothing else changes, and wasmi, wasmtime and native Lua produce
//! byte-identical packets.
//!
//! Deterministic: every case is generated from the seed and its index. On a failure the seed,
//! the case, its packet and its script are printed; rerun a single case with
//! `LUAPKT_PROP_SEED=<seed> LUAPKT_PROP_CASE=<index> cargo test -p lpctl --test
//! checksum_properties`. `LUAPKT_PROP_CASES` changes the number of cases per property.

use etherparse::{
    Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type, IpDscp, IpEcn, IpNumber, Ipv4Header,
    Ipv6FlowLabel, Ipv6Header, TcpHeader, TcpOptionElement, UdpHeader,
};
use lpctl::engine::{self, Config, Engine, Kind};
use runtime::{Limits, Meta, OnError, OwnedPacket, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const DEFAULT_SEED: u64 = 0x1ca9_5eed_2024_0001;
const DEFAULT_CASES: usize = 240;
/// The guest's window (abi::guest::ctx::WINDOW_CAP): writes beyond it go to the packet at once.
const WINDOW: usize = 2048;
const ENGINES: [Kind; 3] = [Kind::Wasmi, Kind::Wasmtime, Kind::Native];
/// Cases per script (one script holds a batch of case functions, within the memory limit).
const BATCH: usize = 250;

// ---- randomness ---------------------------------------------------------------------------

/// xorshift64*, seeded through splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64, case: u64) -> Rng {
        let mut z = seed
            ^ stream.wrapping_mul(0xa076_1d64_78bd_642f)
            ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability num/den.
    fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }
    fn u8(&mut self) -> u8 {
        self.next() as u8
    }
    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
    fn u32(&mut self) -> u32 {
        self.next() as u32
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

fn env_num(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

fn seed() -> u64 {
    env_num("LUAPKT_PROP_SEED").unwrap_or(DEFAULT_SEED)
}

/// The case indices to run.
fn case_indices() -> Vec<usize> {
    if let Some(c) = env_num("LUAPKT_PROP_CASE") {
        return vec![c as usize];
    }
    let n = env_num("LUAPKT_PROP_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    (0..n).collect()
}

// ---- one's-complement arithmetic (only to build inputs: aiming values, CHECKSUM_PARTIAL seeds,
// a NIC's completion; verification is etherparse's) ------------------------------------------

fn sum16(mut acc: u64, data: &[u8]) -> u64 {
    let mut it = data.chunks_exact(2);
    for w in &mut it {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = it.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

// ---- packets ------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
    /// ICMP echo (IPv4) or ICMPv6 echo (IPv6).
    Icmp,
}

/// A generated packet and where its parts are.
#[derive(Clone, Debug)]
struct Gen {
    data: Vec<u8>,
    v6: bool,
    l4: L4,
    /// Offset of the transport header.
    l4off: usize,
    /// Length of the transport header (TCP with options; 8 for UDP and ICMP).
    l4hdr: usize,
    /// Bytes of IPv6 extension headers between the IPv6 and the transport header.
    ext: usize,
    /// UDP over IPv4 without a checksum (0).
    udp_zero: bool,
    /// The transport checksum holds the pseudo-header sum (CHECKSUM_PARTIAL).
    partial: bool,
    /// Offsets of the TCP options' values: MSS (2 bytes), window scale (1), timestamps (4 + 4).
    mss: Option<usize>,
    wscale: Option<usize>,
    ts: Option<usize>,
}

impl Gen {
    fn csum_off(&self) -> usize {
        self.l4off
            + match self.l4 {
                L4::Tcp => 16,
                L4::Udp => 6,
                L4::Icmp => 2,
            }
    }
    fn proto(&self) -> u8 {
        match (self.l4, self.v6) {
            (L4::Tcp, _) => 6,
            (L4::Udp, _) => 17,
            (L4::Icmp, false) => 1,
            (L4::Icmp, true) => 58,
        }
    }
    /// The one's-complement sum of the pseudo-header of `data` (0 for ICMPv4, which has none).
    fn pseudo_sum(&self, data: &[u8]) -> u64 {
        let seg = (data.len() - self.l4off) as u64;
        let proto = u64::from(self.proto());
        match (self.v6, self.l4) {
            (false, L4::Icmp) => 0,
            (false, _) => sum16(0, &data[12..20]) + proto + seg,
            (true, _) => sum16(0, &data[8..40]) + proto + (seg >> 16) + (seg & 0xffff),
        }
    }
    /// What a NIC does with a CHECKSUM_PARTIAL packet: sums the transport segment with the
    /// checksum field as it is (the pseudo-header sum) and stores the complement.
    fn nic_finish(&self, data: &mut [u8]) {
        let c = self.csum_off();
        let mut v = !fold(sum16(0, &data[self.l4off..]));
        if self.l4 == L4::Udp && v == 0 {
            v = 0xffff;
        }
        data[c..c + 2].copy_from_slice(&v.to_be_bytes());
    }
    fn name(&self) -> String {
        let l4 = match (self.l4, self.v6) {
            (L4::Tcp, _) => "tcp",
            (L4::Udp, _) => "udp",
            (L4::Icmp, false) => "icmp",
            (L4::Icmp, true) => "icmp6",
        };
        let mut s = format!(
            "{}/{l4}, {} bytes, l4 at {}, payload {}",
            if self.v6 { "ipv6" } else { "ipv4" },
            self.data.len(),
            self.l4off,
            self.data.len() - self.l4off - self.l4hdr
        );
        if self.udp_zero {
            s.push_str(", udp checksum 0");
        }
        if self.partial {
            s.push_str(", CHECKSUM_PARTIAL");
        }
        if self.ext > 0 {
            s.push_str(", ipv6 dstopts");
        }
        s
    }
}

/// Raw TCP options: each of MSS, window scale, SACK-permitted and timestamps at most once, in
/// random order, with NOPs at random places (so values sit at odd offsets too), padded with
/// EOL. Returns the options and the offsets of the values within them.
#[allow(clippy::type_complexity)]
fn tcp_options(rng: &mut Rng) -> (Vec<u8>, Option<usize>, Option<usize>, Option<usize>) {
    let mut kinds = vec![];
    for k in [2u8, 3, 4, 8] {
        if rng.chance(1, 2) {
            kinds.push(k);
        }
    }
    for i in (1..kinds.len()).rev() {
        let j = rng.below(i + 1);
        kinds.swap(i, j);
    }
    let (mut o, mut mss, mut ws, mut ts) = (vec![], None, None, None);
    for k in kinds {
        while rng.chance(1, 3) && o.len() < 8 {
            o.push(1);
        }
        match k {
            2 => {
                mss = Some(o.len() + 2);
                o.extend_from_slice(&[2, 4]);
                o.extend_from_slice(&rng.u16().to_be_bytes());
            }
            3 => {
                ws = Some(o.len() + 2);
                o.extend_from_slice(&[3, 3, rng.range(0, 14) as u8]);
            }
            4 => o.extend_from_slice(&[4, 2]),
            _ => {
                ts = Some(o.len() + 2);
                o.extend_from_slice(&[8, 10]);
                o.extend_from_slice(&rng.bytes(8));
            }
        }
    }
    while rng.chance(1, 4) && o.len() < 36 {
        o.push(1);
    }
    while o.len() % 4 != 0 {
        o.push(if rng.chance(1, 2) { 1 } else { 0 });
    }
    assert!(o.len() <= 40);
    (o, mss, ws, ts)
}

fn payload_len(rng: &mut Rng) -> usize {
    match rng.below(4) {
        0 if rng.chance(1, 4) => 0,
        0 => rng.range(0, 64),
        1 => rng.range(1900, 3000),
        _ => rng.range(0, 3000),
    }
}

fn rand_v6(rng: &mut Rng) -> [u8; 16] {
    let mut a = [0u8; 16];
    for w in 0..8 {
        // zero runs, so the text form uses "::"
        if !rng.chance(1, 3) {
            a[2 * w..2 * w + 2].copy_from_slice(&rng.u16().to_be_bytes());
        }
    }
    a
}

/// A random valid packet (checksums computed by etherparse). `partial`: the transport checksum
/// is replaced by the folded pseudo-header sum (what Linux leaves for CHECKSUM_PARTIAL).
fn gen_packet(rng: &mut Rng, partial: bool, min_payload: usize) -> Gen {
    let v6 = rng.chance(1, 2);
    let l4 = match rng.below(5) {
        0 | 1 => L4::Tcp,
        2 | 3 => L4::Udp,
        _ => L4::Icmp,
    };
    let plen = payload_len(rng).max(min_payload);
    let payload = rng.bytes(plen);
    let udp_zero = !v6 && l4 == L4::Udp && !partial && rng.chance(1, 3);
    let (src4, dst4) = (rng.u32().to_be_bytes(), rng.u32().to_be_bytes());
    let (src6, dst6) = (rand_v6(rng), rand_v6(rng));
    let (mut mss, mut ws, mut ts) = (None, None, None);
    // transport header with its checksum, and its length
    let l4bytes: Vec<u8> = match l4 {
        L4::Tcp => {
            let mut t = TcpHeader::new(rng.u16(), rng.u16(), rng.u32(), rng.u16());
            t.acknowledgment_number = rng.u32();
            let f = rng.u8();
            (t.fin, t.syn, t.rst, t.psh) = (f & 1 != 0, f & 2 != 0, f & 4 != 0, f & 8 != 0);
            (t.ack, t.urg, t.ece, t.cwr) = (f & 16 != 0, f & 32 != 0, f & 64 != 0, f & 128 != 0);
            t.urgent_pointer = rng.u16();
            let (o, m, w, s) = tcp_options(rng);
            t.set_options_raw(&o).unwrap();
            (mss, ws, ts) = (m, w, s);
            t.checksum = if v6 {
                t.calc_checksum_ipv6_raw(src6, dst6, &payload).unwrap()
            } else {
                t.calc_checksum_ipv4_raw(src4, dst4, &payload).unwrap()
            };
            let mut b = t.to_bytes().to_vec();
            b.extend_from_slice(&payload);
            b
        }
        L4::Udp => {
            let mut u = UdpHeader {
                source_port: rng.u16(),
                destination_port: rng.u16(),
                length: (8 + payload.len()) as u16,
                checksum: 0,
            };
            if !udp_zero {
                u.checksum = if v6 {
                    u.calc_checksum_ipv6_raw(src6, dst6, &payload).unwrap()
                } else {
                    u.calc_checksum_ipv4_raw(src4, dst4, &payload).unwrap()
                };
            }
            let mut b = u.to_bytes().to_vec();
            b.extend_from_slice(&payload);
            b
        }
        L4::Icmp => {
            let echo = etherparse::IcmpEchoHeader {
                id: rng.u16(),
                seq: rng.u16(),
            };
            let reply = rng.chance(1, 2);
            let mut b = if v6 {
                let t = if reply {
                    Icmpv6Type::EchoReply(echo)
                } else {
                    Icmpv6Type::EchoRequest(echo)
                };
                etherparse::Icmpv6Header::with_checksum(t, src6, dst6, &payload)
                    .unwrap()
                    .to_bytes()
                    .to_vec()
            } else {
                let t = if reply {
                    Icmpv4Type::EchoReply(echo)
                } else {
                    Icmpv4Type::EchoRequest(echo)
                };
                etherparse::Icmpv4Header::with_checksum(t, &payload)
                    .to_bytes()
                    .to_vec()
            };
            b.extend_from_slice(&payload);
            b
        }
    };
    let l4hdr = l4bytes.len() - payload.len();
    let proto = match (l4, v6) {
        (L4::Tcp, _) => IpNumber::TCP,
        (L4::Udp, _) => IpNumber::UDP,
        (L4::Icmp, false) => IpNumber::ICMP,
        (L4::Icmp, true) => IpNumber::IPV6_ICMP,
    };
    let mut ext = vec![];
    let mut data = if v6 {
        let mut next = proto;
        if rng.chance(1, 5) {
            // destination options: one PadN
            ext = vec![proto.0, 0, 1, 4, 0, 0, 0, 0];
            next = IpNumber::IPV6_DESTINATION_OPTIONS;
        }
        let ip = Ipv6Header {
            traffic_class: rng.u8(),
            flow_label: Ipv6FlowLabel::try_new(rng.u32() & 0xfffff).unwrap(),
            payload_length: (ext.len() + l4bytes.len()) as u16,
            next_header: next,
            hop_limit: rng.u8(),
            source: src6,
            destination: dst6,
        };
        let mut d = ip.to_bytes().to_vec();
        d.extend_from_slice(&ext);
        d
    } else {
        let mut ip = Ipv4Header::new(l4bytes.len() as u16, rng.u8(), proto, src4, dst4).unwrap();
        ip.identification = rng.u16();
        ip.dont_fragment = rng.chance(1, 2);
        ip.dscp = IpDscp::try_new(rng.u8() & 63).unwrap();
        ip.ecn = IpEcn::try_new(rng.u8() & 3).unwrap();
        if rng.chance(1, 5) {
            let n = rng.pick(&[4usize, 8]);
            let mut o = vec![1u8; n];
            o[n - 1] = 0;
            ip.options = o.as_slice().try_into().unwrap();
            ip.set_payload_len(l4bytes.len()).unwrap();
        }
        ip.header_checksum = ip.calc_header_checksum();
        ip.to_bytes().to_vec()
    };
    let l4off = data.len();
    data.extend_from_slice(&l4bytes);
    let mut g = Gen {
        data,
        v6,
        l4,
        l4off,
        l4hdr,
        ext: ext.len(),
        udp_zero,
        partial,
        mss: mss.map(|o| l4off + 20 + o),
        wscale: ws.map(|o| l4off + 20 + o),
        ts: ts.map(|o| l4off + 20 + o),
    };
    if partial {
        let seed = fold(g.pseudo_sum(&g.data));
        let c = g.csum_off();
        g.data[c..c + 2].copy_from_slice(&seed.to_be_bytes());
    }
    g
}

// ---- field writes -------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Num(u64),
    Bool(bool),
    Addr(IpAddr),
}

impl Val {
    fn lua(&self) -> String {
        match self {
            Val::Num(n) => n.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Addr(a) => format!("\"{a}\""),
        }
    }
    fn num(&self) -> u64 {
        match self {
            Val::Num(n) => *n,
            Val::Bool(b) => u64::from(*b),
            Val::Addr(_) => panic!("not a number"),
        }
    }
}

/// Readable values: numbers (booleans as 0/1) and addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    Num(u64),
    Addr(IpAddr),
}

impl From<Val> for Got {
    fn from(v: Val) -> Got {
        match v {
            Val::Addr(a) => Got::Addr(a),
            v => Got::Num(v.num()),
        }
    }
}

/// The fields a script may write in this packet (`class.name`).
fn writable(g: &Gen) -> Vec<&'static str> {
    let mut f = if g.v6 {
        vec![
            "ip6.saddr",
            "ip6.daddr",
            "ip6.hoplimit",
            "ip6.dscp",
            "ip6.ecn",
            "ip6.flowlabel",
        ]
    } else {
        vec![
            "ip.saddr", "ip.daddr", "ip.ttl", "ip.id", "ip.dscp", "ip.ecn",
        ]
    };
    match g.l4 {
        L4::Tcp => {
            f.extend([
                "tcp.sport",
                "tcp.dport",
                "tcp.seq",
                "tcp.ack_seq",
                "tcp.window",
                "tcp.urgptr",
                "tcp.flags",
                "tcp.syn",
                "tcp.ack",
                "tcp.fin",
            ]);
            if g.mss.is_some() {
                f.push("tcp.mss");
            }
            if g.wscale.is_some() {
                f.push("tcp.wscale");
            }
            if g.ts.is_some() {
                f.extend(["tcp.ts_val", "tcp.ts_ecr"]);
            }
        }
        L4::Udp => f.extend(["udp.sport", "udp.dport"]),
        L4::Icmp if g.v6 => f.extend(["icmp6.type", "icmp6.code", "icmp6.id", "icmp6.sequence"]),
        L4::Icmp => f.extend(["icmp.type", "icmp.code", "icmp.id", "icmp.sequence"]),
    }
    f
}

/// Where a 16-bit field covered by the transport checksum lies (for aiming), if it is one.
fn l4_u16_field(g: &Gen, field: &str) -> Option<usize> {
    let l4 = g.l4off;
    Some(match field {
        "tcp.sport" | "udp.sport" => l4,
        "tcp.dport" | "udp.dport" => l4 + 2,
        "tcp.window" => l4 + 14,
        "tcp.urgptr" => l4 + 18,
        "icmp.id" | "icmp6.id" => l4 + 4,
        "icmp.sequence" | "icmp6.sequence" => l4 + 6,
        "tcp.mss" => g.mss?,
        _ => return None,
    })
}

/// A random value for `field`. Sometimes a 16-bit transport field is "aimed": given the value
/// that makes the new transport checksum exactly 0 (the edge of one's-complement arithmetic).
fn gen_value(
    rng: &mut Rng,
    g: &Gen,
    model: &[u8],
    field: &str,
    notes: &mut BTreeSet<&'static str>,
) -> Val {
    if let Some(off) = l4_u16_field(g, field) {
        if !g.partial && rng.chance(1, 4) {
            notes.insert("aimed at a transport checksum of 0");
            let mut m = model.to_vec();
            let c = g.csum_off();
            m[c..c + 2].fill(0);
            m[off..off + 2].fill(0);
            let rest = fold(g.pseudo_sum(&m) + sum16(0, &m[g.l4off..]));
            // fold(rest + x) == 0xffff: the checksum becomes !0xffff == 0
            let x = 0xffff - rest;
            // a field at an odd offset from the segment's start is summed byte-swapped
            let x = if (off - g.l4off) % 2 == 1 {
                x.swap_bytes()
            } else {
                x
            };
            return Val::Num(u64::from(x));
        }
    }
    let suffix = field.split_once('.').unwrap().1;
    match suffix {
        "saddr" | "daddr" if g.v6 => Val::Addr(IpAddr::V6(Ipv6Addr::from(rand_v6(rng)))),
        "saddr" | "daddr" => Val::Addr(IpAddr::V4(Ipv4Addr::from(rng.u32()))),
        "ttl" | "hoplimit" | "type" | "code" | "flags" => {
            if suffix == "type" && rng.chance(1, 2) {
                Val::Num(rng.pick(if g.v6 { &[128u64, 129] } else { &[0u64, 8] }))
            } else {
                Val::Num(u64::from(rng.u8()))
            }
        }
        "dscp" => Val::Num(rng.below(64) as u64),
        "ecn" => Val::Num(rng.below(4) as u64),
        "flowlabel" => Val::Num(u64::from(rng.u32() & 0xfffff)),
        "wscale" => Val::Num(rng.range(0, 14) as u64),
        "seq" | "ack_seq" | "ts_val" | "ts_ecr" => Val::Num(u64::from(rng.u32())),
        "syn" | "ack" | "fin" => {
            let b = rng.chance(1, 2);
            if rng.chance(1, 2) {
                Val::Bool(b)
            } else {
                Val::Num(u64::from(b))
            }
        }
        _ => Val::Num(u64::from(rng.u16())),
    }
}

fn put(model: &mut [u8], off: usize, v: u64, n: usize) {
    for i in 0..n {
        model[off + i] = (v >> (8 * (n - 1 - i))) as u8;
    }
}

/// Applies a field write to the byte model (checksums aside).
fn apply(g: &Gen, model: &mut [u8], field: &str, v: Val) {
    let l4 = g.l4off;
    let w0 = u64::from(u32::from_be_bytes(model[0..4].try_into().unwrap()));
    let flag = |m: &mut [u8], bit: u8| {
        if v.num() != 0 {
            m[l4 + 13] |= bit;
        } else {
            m[l4 + 13] &= !bit;
        }
    };
    match field {
        "ip.saddr" | "ip.daddr" | "ip6.saddr" | "ip6.daddr" => {
            let (off, b) = match v {
                Val::Addr(IpAddr::V4(a)) => (
                    if field == "ip.saddr" { 12 } else { 16 },
                    a.octets().to_vec(),
                ),
                Val::Addr(IpAddr::V6(a)) => (
                    if field == "ip6.saddr" { 8 } else { 24 },
                    a.octets().to_vec(),
                ),
                _ => unreachable!(),
            };
            model[off..off + b.len()].copy_from_slice(&b);
        }
        "ip.ttl" => put(model, 8, v.num(), 1),
        "ip.id" => put(model, 4, v.num(), 2),
        "ip.dscp" => model[1] = (v.num() as u8) << 2 | (model[1] & 3),
        "ip.ecn" => model[1] = (model[1] & 0xfc) | v.num() as u8,
        "ip6.hoplimit" => put(model, 7, v.num(), 1),
        "ip6.dscp" => put(model, 0, (w0 & !(0x3f << 22)) | v.num() << 22, 4),
        "ip6.ecn" => put(model, 0, (w0 & !(3 << 20)) | v.num() << 20, 4),
        "ip6.flowlabel" => put(model, 0, (w0 & !0xfffff) | v.num(), 4),
        "tcp.sport" | "udp.sport" => put(model, l4, v.num(), 2),
        "tcp.dport" | "udp.dport" => put(model, l4 + 2, v.num(), 2),
        "tcp.seq" => put(model, l4 + 4, v.num(), 4),
        "tcp.ack_seq" => put(model, l4 + 8, v.num(), 4),
        "tcp.flags" => put(model, l4 + 13, v.num(), 1),
        "tcp.fin" => flag(model, 0x01),
        "tcp.syn" => flag(model, 0x02),
        "tcp.ack" => flag(model, 0x10),
        "tcp.window" => put(model, l4 + 14, v.num(), 2),
        "tcp.urgptr" => put(model, l4 + 18, v.num(), 2),
        "tcp.mss" => put(model, g.mss.unwrap(), v.num(), 2),
        "tcp.wscale" => put(model, g.wscale.unwrap(), v.num(), 1),
        "tcp.ts_val" => put(model, g.ts.unwrap(), v.num(), 4),
        "tcp.ts_ecr" => put(model, g.ts.unwrap() + 4, v.num(), 4),
        "icmp.type" | "icmp6.type" => put(model, l4, v.num(), 1),
        "icmp.code" | "icmp6.code" => put(model, l4 + 1, v.num(), 1),
        "icmp.id" | "icmp6.id" => put(model, l4 + 4, v.num(), 2),
        "icmp.sequence" | "icmp6.sequence" => put(model, l4 + 6, v.num(), 2),
        _ => panic!("no field {field}"),
    }
}

/// What each written field must read back as: the last value written, with TCP flag bits and
/// the flags byte kept consistent.
fn expect_write(exp: &mut BTreeMap<&'static str, Got>, field: &'static str, v: Val) {
    let bit = match field {
        "tcp.fin" => 0x01,
        "tcp.syn" => 0x02,
        "tcp.ack" => 0x10,
        _ => 0,
    };
    if field == "tcp.flags" {
        for b in ["tcp.fin", "tcp.syn", "tcp.ack"] {
            exp.remove(b);
        }
    }
    if bit != 0 {
        if let Some(Got::Num(f)) = exp.get_mut("tcp.flags") {
            *f = if v.num() != 0 { *f | bit } else { *f & !bit };
        }
    }
    exp.insert(field, v.into());
}

// ---- reading packets back with etherparse ---------------------------------------------------

/// The packet's headers as etherparse parses them.
struct Parsed<'a> {
    ip4: Option<Ipv4Header>,
    ip6: Option<Ipv6Header>,
    /// The transport segment (header and payload, as long as the IP header says).
    seg: &'a [u8],
}

fn parse<'a>(g: &Gen, data: &'a [u8]) -> Result<Parsed<'a>, String> {
    if g.v6 {
        let (ip, rest) = Ipv6Header::from_slice(data).map_err(|e| format!("ipv6: {e}"))?;
        let n = usize::from(ip.payload_length);
        let seg = rest.get(g.ext..n).ok_or("ipv6 payload length")?;
        Ok(Parsed {
            ip4: None,
            ip6: Some(ip),
            seg,
        })
    } else {
        let (ip, _) = Ipv4Header::from_slice(data).map_err(|e| format!("ipv4: {e}"))?;
        let seg = data
            .get(ip.header_len()..usize::from(ip.total_len))
            .ok_or("ipv4 total length")?;
        Ok(Parsed {
            ip4: Some(ip),
            ip6: None,
            seg,
        })
    }
}

fn addrs(p: &Parsed) -> ([u8; 16], [u8; 16]) {
    match (&p.ip4, &p.ip6) {
        (_, Some(ip)) => (ip.source, ip.destination),
        (Some(ip), _) => {
            let (mut s, mut d) = ([0; 16], [0; 16]);
            s[..4].copy_from_slice(&ip.source);
            d[..4].copy_from_slice(&ip.destination);
            (s, d)
        }
        _ => unreachable!(),
    }
}

/// Checks the IPv4 header checksum and the transport checksum with etherparse.
fn verify_checksums(g: &Gen, data: &[u8]) -> Result<(), String> {
    let p = parse(g, data)?;
    if let Some(ip) = &p.ip4 {
        let want = ip.calc_header_checksum();
        if ip.header_checksum != want {
            return Err(format!(
                "IPv4 header checksum {:#06x}, etherparse computes {want:#06x}",
                ip.header_checksum
            ));
        }
    }
    let (src, dst) = addrs(&p);
    let s4 = |a: [u8; 16]| -> [u8; 4] { a[..4].try_into().unwrap() };
    let (got, want) = match g.l4 {
        L4::Tcp => {
            let (t, payload) = TcpHeader::from_slice(p.seg).map_err(|e| format!("tcp: {e}"))?;
            let want = if g.v6 {
                t.calc_checksum_ipv6_raw(src, dst, payload)
            } else {
                t.calc_checksum_ipv4_raw(s4(src), s4(dst), payload)
            };
            (t.checksum, want.map_err(|e| e.to_string())?)
        }
        L4::Udp => {
            let (u, payload) = UdpHeader::from_slice(p.seg).map_err(|e| format!("udp: {e}"))?;
            if g.udp_zero {
                if u.checksum != 0 {
                    return Err(format!(
                        "UDP over IPv4 without a checksum (0) got one: {:#06x}",
                        u.checksum
                    ));
                }
                return Ok(());
            }
            let want = if g.v6 {
                u.calc_checksum_ipv6_raw(src, dst, payload)
            } else {
                u.calc_checksum_ipv4_raw(s4(src), s4(dst), payload)
            };
            (u.checksum, want.map_err(|e| e.to_string())?)
        }
        L4::Icmp if g.v6 => {
            let s = Icmpv6Slice::from_slice(p.seg).map_err(|e| format!("icmp6: {e}"))?;
            // generic: type, code and bytes 5..8 as they are (any type the script wrote)
            let t = Icmpv6Type::Unknown {
                type_u8: s.type_u8(),
                code_u8: s.code_u8(),
                bytes5to8: s.bytes5to8(),
            };
            let want = t
                .calc_checksum(src, dst, &p.seg[8..])
                .map_err(|e| e.to_string())?;
            (s.checksum(), want)
        }
        L4::Icmp => {
            let (ty, code, csum, b58) = icmp4(p.seg)?;
            let t = Icmpv4Type::Unknown {
                type_u8: ty,
                code_u8: code,
                bytes5to8: b58,
            };
            (csum, t.calc_checksum(&p.seg[8..]))
        }
    };
    if got != want {
        return Err(format!(
            "transport checksum {got:#06x}, etherparse computes {want:#06x}"
        ));
    }
    Ok(())
}

/// An ICMP header's type, code, checksum and bytes 5..8. etherparse refuses a timestamp
/// message (a type a script may write) shorter than one: those are read as they are.
fn icmp4(seg: &[u8]) -> Result<(u8, u8, u16, [u8; 4]), String> {
    match Icmpv4Slice::from_slice(seg) {
        Ok(s) => Ok((s.type_u8(), s.code_u8(), s.checksum(), s.bytes5to8())),
        Err(_) if seg.len() >= 8 && matches!(seg[0], 13 | 14) => Ok((
            seg[0],
            seg[1],
            u16::from_be_bytes([seg[2], seg[3]]),
            [seg[4], seg[5], seg[6], seg[7]],
        )),
        Err(e) => Err(format!("icmp: {e}")),
    }
}

/// Reads a field back with etherparse.
fn read_field(g: &Gen, data: &[u8], field: &str) -> Result<Got, String> {
    let p = parse(g, data)?;
    let n = |v: u64| Ok(Got::Num(v));
    if let Some(ip) = &p.ip4 {
        match field {
            "ip.saddr" => return Ok(Got::Addr(Ipv4Addr::from(ip.source).into())),
            "ip.daddr" => return Ok(Got::Addr(Ipv4Addr::from(ip.destination).into())),
            "ip.ttl" => return n(ip.time_to_live.into()),
            "ip.id" => return n(ip.identification.into()),
            "ip.dscp" => return n(ip.dscp.value().into()),
            "ip.ecn" => return n(ip.ecn.value().into()),
            _ => {}
        }
    }
    if let Some(ip) = &p.ip6 {
        match field {
            "ip6.saddr" => return Ok(Got::Addr(Ipv6Addr::from(ip.source).into())),
            "ip6.daddr" => return Ok(Got::Addr(Ipv6Addr::from(ip.destination).into())),
            "ip6.hoplimit" => return n(ip.hop_limit.into()),
            "ip6.dscp" => return n((ip.traffic_class >> 2).into()),
            "ip6.ecn" => return n((ip.traffic_class & 3).into()),
            "ip6.flowlabel" => return n(ip.flow_label.value().into()),
            _ => {}
        }
    }
    match g.l4 {
        L4::Tcp => {
            let (t, _) = TcpHeader::from_slice(p.seg).map_err(|e| format!("tcp: {e}"))?;
            let opt = |want: fn(&TcpOptionElement) -> Option<u64>| -> Result<Got, String> {
                t.options_iterator()
                    .filter_map(|o| o.ok())
                    .find_map(|o| want(&o))
                    .map(Got::Num)
                    .ok_or_else(|| format!("{field}: option missing"))
            };
            let flags = [t.fin, t.syn, t.rst, t.psh, t.ack, t.urg, t.ece, t.cwr]
                .iter()
                .enumerate()
                .map(|(i, &b)| u64::from(b) << i)
                .sum::<u64>();
            match field {
                "tcp.sport" => n(t.source_port.into()),
                "tcp.dport" => n(t.destination_port.into()),
                "tcp.seq" => n(t.sequence_number.into()),
                "tcp.ack_seq" => n(t.acknowledgment_number.into()),
                "tcp.window" => n(t.window_size.into()),
                "tcp.urgptr" => n(t.urgent_pointer.into()),
                "tcp.flags" => n(flags),
                "tcp.fin" => n(t.fin.into()),
                "tcp.syn" => n(t.syn.into()),
                "tcp.ack" => n(t.ack.into()),
                "tcp.mss" => opt(|o| match o {
                    TcpOptionElement::MaximumSegmentSize(v) => Some((*v).into()),
                    _ => None,
                }),
                "tcp.wscale" => opt(|o| match o {
                    TcpOptionElement::WindowScale(v) => Some((*v).into()),
                    _ => None,
                }),
                "tcp.ts_val" => opt(|o| match o {
                    TcpOptionElement::Timestamp(v, _) => Some((*v).into()),
                    _ => None,
                }),
                "tcp.ts_ecr" => opt(|o| match o {
                    TcpOptionElement::Timestamp(_, v) => Some((*v).into()),
                    _ => None,
                }),
                _ => Err(format!("no field {field}")),
            }
        }
        L4::Udp => {
            let (u, _) = UdpHeader::from_slice(p.seg).map_err(|e| format!("udp: {e}"))?;
            match field {
                "udp.sport" => n(u.source_port.into()),
                "udp.dport" => n(u.destination_port.into()),
                _ => Err(format!("no field {field}")),
            }
        }
        L4::Icmp => {
            let (ty, code, b58) = if g.v6 {
                let s = Icmpv6Slice::from_slice(p.seg).map_err(|e| format!("icmp6: {e}"))?;
                (s.type_u8(), s.code_u8(), s.bytes5to8())
            } else {
                let (ty, code, _, b58) = icmp4(p.seg)?;
                (ty, code, b58)
            };
            match field.split_once('.').unwrap().1 {
                "type" => n(ty.into()),
                "code" => n(code.into()),
                "id" => n(u16::from_be_bytes([b58[0], b58[1]]).into()),
                "sequence" => n(u16::from_be_bytes([b58[2], b58[3]]).into()),
                _ => Err(format!("no field {field}")),
            }
        }
    }
}

// ---- running the cases --------------------------------------------------------------------

/// One generated case: a packet, the Lua body of its function, and what must come out.
struct Case {
    g: Gen,
    body: String,
    /// The packet as it must be after the call, checksum fields aside.
    model: Vec<u8>,
    /// Fields written and what they must read back as.
    expect: BTreeMap<&'static str, Got>,
    /// fix_checksums ran: a UDP-over-IPv4 checksum of 0 may have been computed.
    fixed: bool,
    /// Edges the case exercises (for the coverage check).
    notes: BTreeSet<&'static str>,
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 * b.len());
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn describe(prop: &str, seed: u64, idx: usize, c: &Case) -> String {
    let mut h = hex(&c.g.data);
    if h.len() > 200 && std::env::var_os("LUAPKT_PROP_HEX").is_none() {
        h.truncate(200);
        let _ = write!(h, "... (LUAPKT_PROP_HEX=1 prints it whole)");
    }
    format!(
        "{prop} case {idx} (LUAPKT_PROP_SEED={seed:#x} LUAPKT_PROP_CASE={idx}): {}\n  packet: {h}\n  script:\n{}",
        c.g.name(),
        c.body
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// The checksum fields' offsets (masked when comparing with the model).
fn csum_bytes(g: &Gen) -> Vec<usize> {
    let c = g.csum_off();
    let mut v = vec![c, c + 1];
    if !g.v6 {
        v.extend([10, 11]);
    }
    v
}

/// Runs every case in every engine and checks the results; panics listing the failures.
fn run_property(prop: &str, cases: &[(usize, Case)]) {
    let seed = seed();
    println!("{prop}: seed {seed:#x}, {} cases", cases.len());
    let mut failures = vec![];
    // a script per engine and batch of cases: case functions indexed by the packet's mark
    for batch in cases.chunks(BATCH) {
        run_batch(prop, seed, batch, &mut failures);
    }
    if !failures.is_empty() {
        let n = failures.len();
        failures.truncate(8);
        panic!(
            "{prop}: {n} of {} cases failed (seed {seed:#x}); the first {}:\n\n{}",
            cases.len(),
            failures.len(),
            failures.join("\n\n")
        );
    }
}

fn run_batch(prop: &str, seed: u64, cases: &[(usize, Case)], failures: &mut Vec<String>) {
    let mut src = String::from("local C = {}\n");
    for (i, c) in cases {
        let _ = writeln!(src, "C[{i}] = function(pkt)\n{}\nend", c.body);
    }
    src.push_str(
        "function process_packet(pkt)\n  C[pkt.meta.mark](pkt)\n  return lp.ACCEPT\nend\n",
    );
    let cfg = Config {
        name: format!("{prop}.lua"),
        source: src.into_bytes(),
        function: "process_packet".into(),
        arg: None,
        limits: Limits::default(),
        on_error: OnError::Drop,
        guest: None,
    };
    let mut engines: Vec<Box<dyn Engine>> = ENGINES
        .iter()
        .map(|&k| engine::load(k, &cfg).unwrap_or_else(|e| panic!("{k}: {e}")))
        .collect();
    for (idx, c) in cases {
        let mut outs: Vec<Vec<u8>> = vec![];
        let mut errs = vec![];
        for e in engines.iter_mut() {
            let meta = Meta {
                mark: *idx as u32,
                csum_partial: c.g.partial,
                ..Meta::default()
            };
            let pkt = OwnedPacket::new(c.g.data.clone(), meta);
            let r = e.run(&pkt);
            if r.verdict != Verdict::Accept || r.error.is_some() {
                errs.push(format!("{}: {:?} {:?}", e.kind(), r.verdict, r.error));
            }
            outs.push(pkt.into_bytes());
        }
        let mut why = errs;
        for (k, o) in ENGINES.iter().zip(&outs).skip(1) {
            if *o != outs[0] {
                let at = o.iter().zip(&outs[0]).position(|(a, b)| a != b);
                why.push(format!("{k} differs from wasmi (first at byte {at:?})"));
            }
        }
        let mut out = outs.swap_remove(0);
        if c.g.partial {
            c.g.nic_finish(&mut out);
        }
        // nothing but the written bytes and the checksums changed
        let mask = csum_bytes(&c.g);
        if let Some(i) = (0..out.len()).find(|i| !mask.contains(i) && out[*i] != c.model[*i]) {
            why.push(format!(
                "byte {i} is {:#04x}, expected {:#04x}",
                out[i], c.model[i]
            ));
        }
        if let Err(e) = verify_checksums(&c.g, &out) {
            if c.fixed && c.g.udp_zero {
                // fix_checksums may compute a checksum where there was none: it must verify
                let mut g = c.g.clone();
                g.udp_zero = false;
                if let Err(e) = verify_checksums(&g, &out) {
                    why.push(e);
                }
            } else {
                why.push(e);
            }
        }
        for (field, want) in &c.expect {
            match read_field(&c.g, &out, field) {
                Ok(got) if got == *want => {}
                Ok(got) => why.push(format!("{field} reads back {got:?}, wrote {want:?}")),
                Err(e) => why.push(format!("{field}: {e}")),
            }
        }
        if !why.is_empty() {
            let c_off = c.g.csum_off();
            why.push(format!(
                "transport checksum field before {:#06x}, after {:#06x}{}",
                u16::from_be_bytes([c.g.data[c_off], c.g.data[c_off + 1]]),
                u16::from_be_bytes([out[c_off], out[c_off + 1]]),
                if c.g.partial {
                    " (as the NIC completed it)"
                } else {
                    ""
                }
            ));
            failures.push(format!(
                "{}\n  -> {}",
                describe(prop, seed, *idx, c),
                why.join("\n  -> ")
            ));
        }
    }
}

/// 1..=n random field writes on `g` (n >= 1), as Lua lines, applied to `model`.
fn gen_field_writes(
    rng: &mut Rng,
    g: &Gen,
    model: &mut [u8],
    expect: &mut BTreeMap<&'static str, Got>,
    n: usize,
    body: &mut String,
    notes: &mut BTreeSet<&'static str>,
) {
    let fields = writable(g);
    for _ in 0..n {
        let f = rng.pick(&fields);
        let v = gen_value(rng, g, model, f, notes);
        apply(g, model, f, v);
        expect_write(expect, f, v);
        let _ = writeln!(body, "  pkt.{f} = {}", v.lua());
    }
}

fn field_case(stream: u64, idx: usize, partial: bool) -> Case {
    let mut rng = Rng::new(seed(), stream, idx as u64);
    let g = gen_packet(&mut rng, partial, 0);
    let mut model = g.data.clone();
    let (mut expect, mut body, mut notes) = (BTreeMap::new(), String::new(), BTreeSet::new());
    let n = rng.range(1, 6);
    gen_field_writes(
        &mut rng,
        &g,
        &mut model,
        &mut expect,
        n,
        &mut body,
        &mut notes,
    );
    Case {
        g,
        body: body.trim_end().to_string(),
        model,
        expect,
        fixed: false,
        notes,
    }
}

fn lua_bytes(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for x in b {
        let _ = write!(s, "\\x{x:02x}");
    }
    s.push('"');
    s
}

fn raw_case(idx: usize) -> Case {
    let mut rng = Rng::new(seed(), 3, idx as u64);
    let partial = rng.chance(1, 4);
    let g = gen_packet(&mut rng, partial, 1);
    let mut model = g.data.clone();
    let (mut expect, mut body, mut notes) = (BTreeMap::new(), String::new(), BTreeSet::new());
    // a few field writes first, sometimes (fix_checksums recomputes over them too)
    let n = rng.below(3);
    gen_field_writes(
        &mut rng,
        &g,
        &mut model,
        &mut expect,
        n,
        &mut body,
        &mut notes,
    );
    let (lo, len) = (g.l4off + g.l4hdr, g.data.len());
    for _ in 0..rng.range(1, 5) {
        let (what, n) = match rng.below(4) {
            0 => ("set_u8", 1),
            1 => ("set_u16", 2),
            2 => ("set_u32", 4),
            _ => ("set_bytes", rng.range(1, 40)),
        };
        let n = n.min(len - lo);
        let what = if n < 4 && what == "set_u32" || n < 2 && what == "set_u16" {
            "set_bytes"
        } else {
            what
        };
        // near the end of the window (writes across it, and checksum reads across it), or anywhere
        let off = if len > WINDOW && rng.chance(1, 2) {
            rng.range(WINDOW.saturating_sub(48).max(lo), (WINDOW + 8).min(len - n))
        } else {
            rng.range(lo, len - n)
        };
        if off < WINDOW && off + n > WINDOW {
            notes.insert("a raw write across the window's end");
        }
        if (WINDOW - 64..WINDOW).contains(&off) && len > WINDOW + 64 {
            notes.insert("a raw write in the window's last 64 bytes");
        }
        let b = rng.bytes(n);
        model[off..off + n].copy_from_slice(&b);
        let v = b.iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
        let _ = match what {
            "set_bytes" => writeln!(body, "  pkt:set_bytes({off}, {})", lua_bytes(&b)),
            _ => writeln!(body, "  pkt:{what}({off}, {v})"),
        };
    }
    body.push_str("  pkt:fix_checksums()");
    Case {
        g,
        body,
        model,
        expect,
        fixed: true,
        notes,
    }
}

fn cases(make: impl Fn(usize) -> Case) -> Vec<(usize, Case)> {
    case_indices().into_iter().map(|i| (i, make(i))).collect()
}

#[test]
fn field_writes_keep_checksums_valid() {
    run_property("field_writes", &cases(|i| field_case(1, i, false)));
}

#[test]
fn field_writes_keep_checksum_partial_valid() {
    run_property("checksum_partial", &cases(|i| field_case(2, i, true)));
}

#[test]
fn raw_writes_then_fix_checksums() {
    run_property("raw_writes", &cases(raw_case));
}

/// The generators themselves: the packets they build verify, and parse as built.
#[test]
fn generated_packets_are_valid() {
    for i in 0..200 {
        let mut rng = Rng::new(seed(), 9, i);
        let g = gen_packet(&mut rng, false, 0);
        verify_checksums(&g, &g.data).unwrap_or_else(|e| panic!("case {i}: {}: {e}", g.name()));
        let mut p = gen_packet(&mut rng, true, 0);
        let mut d = p.data.clone();
        p.nic_finish(&mut d);
        p.data = d;
        verify_checksums(&p, &p.data).unwrap_or_else(|e| panic!("case {i}: {}: {e}", p.name()));
    }
}

/// The generators reach the edges the properties are about (so that a change to them cannot
/// quietly make the properties weaker).
#[test]
fn generators_cover_the_edges() {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut note = |s: String| *seen.entry(s).or_default() += 1;
    let all = case_indices()
        .into_iter()
        .flat_map(|i| [field_case(1, i, false), field_case(2, i, true), raw_case(i)]);
    for c in all {
        let g = &c.g;
        let l4 = g.name();
        note(l4.split(',').next().unwrap().to_string());
        for n in &c.notes {
            note(n.to_string());
        }
        if g.udp_zero {
            note("udp over ipv4 with checksum 0".into());
        }
        if g.ext > 0 {
            note("ipv6 extension header".into());
        }
        if !g.v6 && g.l4off > 20 {
            note("ipv4 options".into());
        }
        if g.data.len() > WINDOW + 64 {
            note("packet beyond the window".into());
        }
        if g.data.len() - g.l4off == g.l4hdr {
            note("empty payload".into());
        }
        if g.mss.is_some_and(|o| o % 2 == 1) {
            note("mss at an odd offset".into());
        }
        if g.ts.is_some_and(|o| o % 2 == 1) {
            note("timestamps at an odd offset".into());
        }
        if g.partial {
            note("checksum partial".into());
        }
    }
    println!("{seen:#?}");
    if case_indices().len() < DEFAULT_CASES {
        return;
    }
    for want in [
        "ipv4/tcp",
        "ipv4/udp",
        "ipv4/icmp",
        "ipv6/tcp",
        "ipv6/udp",
        "ipv6/icmp6",
        "aimed at a transport checksum of 0",
        "a raw write across the window's end",
        "a raw write in the window's last 64 bytes",
        "udp over ipv4 with checksum 0",
        "ipv6 extension header",
        "ipv4 options",
        "packet beyond the window",
        "empty payload",
        "mss at an odd offset",
        "timestamps at an odd offset",
        "checksum partial",
    ] {
        assert!(
            seen.get(want).copied().unwrap_or(0) >= 3,
            "too few cases: {want}: {seen:?}"
        );
    }
}
