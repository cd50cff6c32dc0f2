//! examples/http-cache.lua offline: a capture of HTTP connections seen by a router, run
//! through `lpctl run --sent`. The first GET of a file passes and its response (one segment
//! with FIN, as GSO leaves it) is learnt; a second connection's GET is answered by the
//! script (in segments of 1448 bytes from the server's side, the last with FIN, and a reset
//! to the server), and that connection's later segments are the cache's. A `no-store`
//! answer, a POST's answer and an answer that is too large are not learnt: their second
//! requests pass.

mod common;

use common::{example, map_value, run_json, sent_packets, write_capture};
use etherparse::PacketBuilder;
use std::path::Path;

const CLIENT: [u8; 4] = [10, 0, 1, 2];
const SERVER: [u8; 4] = [10, 0, 2, 2];
/// the server's segments' largest payload
const MSS: usize = 1448;

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    PshAck,
    FinAck,
    FinPshAck,
}

fn tcp(from_client: bool, port: u16, seq: u32, ack: u32, flags: Flags, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sport, dport) = if from_client {
        (CLIENT, SERVER, port, 80)
    } else {
        (SERVER, CLIENT, 80, port)
    };
    let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, seq, 64240);
    b = match flags {
        Flags::Syn => b.syn(),
        Flags::SynAck => b.syn().ack(ack),
        Flags::Ack => b.ack(ack),
        Flags::PshAck => b.psh().ack(ack),
        Flags::FinAck => b.fin().ack(ack),
        Flags::FinPshAck => b.fin().psh().ack(ack),
    };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

fn response(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn request(method: &str, path: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: 10.0.2.2\r\nUser-Agent: Wget\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// A whole connection through the router: handshake, the request, the server's response in
/// segments of at most `mss` bytes (the last with FIN), the client's ACK and FIN, the server's
/// last ACK. Client sequence numbers start at `cs`, the server's at `ss`.
fn connection(port: u16, cs: u32, ss: u32, req: &[u8], resp: &[u8], mss: usize) -> Vec<Vec<u8>> {
    let (c1, s1) = (cs + 1, ss + 1);
    let c2 = c1 + req.len() as u32;
    let mut v = vec![
        tcp(true, port, cs, 0, Flags::Syn, b""),
        tcp(false, port, ss, c1, Flags::SynAck, b""),
        tcp(true, port, c1, s1, Flags::Ack, b""),
        tcp(true, port, c1, s1, Flags::PshAck, req),
    ];
    let segs: Vec<&[u8]> = resp.chunks(mss).collect();
    let mut off = 0u32;
    for (i, s) in segs.iter().enumerate() {
        let f = if i + 1 == segs.len() {
            Flags::FinPshAck
        } else {
            Flags::PshAck
        };
        v.push(tcp(false, port, s1 + off, c2, f, s));
        off += s.len() as u32;
    }
    let s_end = s1 + off + 1;
    v.push(tcp(true, port, c2, s_end, Flags::Ack, b""));
    v.push(tcp(true, port, c2, s_end, Flags::FinAck, b""));
    v.push(tcp(false, port, s_end, c2 + 1, Flags::Ack, b""));
    v
}

/// The body of the file the cache learns: four segments with the headers.
fn file() -> Vec<u8> {
    (0..5000u32).map(|i| (i * 13 + i / 255) as u8).collect()
}

struct Capture {
    packets: usize,
    /// the response the second GET must get: the first connection's, byte for byte
    response: Vec<u8>,
    /// client sequence number of the second GET, the server's next sequence number there
    hit_seq: (u32, u32),
}

fn capture(path: &Path) -> Capture {
    let resp = response("Content-Type: application/octet-stream\r\n", &file());
    let mut pkts = Vec::new();
    // 1. a miss: learnt; the response in one segment with FIN, as a router sees what a
    // server's stack leaves for its device to cut (GSO over veths): kept in MSS pieces
    pkts.extend(connection(
        40000,
        1000,
        5000,
        &request("GET", "/f.bin"),
        &resp,
        65_000,
    ));
    // 2. a hit: the handshake passes; the GET is answered by the cache
    let (cs, ss) = (2000u32, 9000u32);
    let req = request("GET", "/f.bin");
    pkts.push(tcp(true, 40001, cs, 0, Flags::Syn, b""));
    pkts.push(tcp(false, 40001, ss, cs + 1, Flags::SynAck, b""));
    pkts.push(tcp(true, 40001, cs + 1, ss + 1, Flags::Ack, b""));
    pkts.push(tcp(true, 40001, cs + 1, ss + 1, Flags::PshAck, &req));
    // ... what the client sends as the cache's answer comes: the ACK of each of its first
    // three segments (each clocks out the next), the ACK of all, then its FIN
    let c2 = cs + 1 + req.len() as u32;
    let s_end = ss + 1 + resp.len() as u32 + 1;
    for k in 1..=3 {
        let ack = ss + 1 + k * MSS as u32;
        pkts.push(tcp(true, 40001, c2, ack, Flags::Ack, b""));
    }
    pkts.push(tcp(true, 40001, c2, s_end, Flags::Ack, b""));
    pkts.push(tcp(true, 40001, c2, s_end, Flags::FinAck, b""));
    // 3. not cachable: no-store, twice; a POST's answer, twice; a response over 8 KiB, twice
    let ns = response("Cache-Control: no-store\r\n", b"fresh\n");
    let big = response("", &vec![b'x'; 9000]);
    for (i, (req, resp)) in [
        (request("GET", "/cgi-bin/ns"), &ns),
        (request("POST", "/f.bin"), &resp),
        (request("GET", "/big.bin"), &big),
    ]
    .iter()
    .enumerate()
    {
        for round in 0..2u16 {
            let port = 41000 + i as u16 * 10 + round;
            pkts.extend(connection(port, 3000, 7000, req, resp, MSS));
        }
    }
    write_capture(path, &pkts);
    Capture {
        packets: pkts.len(),
        response: resp,
        hit_seq: (cs + 1, ss + 1),
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

fn stat(v: &serde_json::Value, key: &str) -> serde_json::Value {
    map_value(v, "stats", key)
}

#[test]
fn the_second_get_is_answered_from_the_cache_and_uncachable_answers_pass() {
    let dir = std::env::temp_dir();
    let pcap = dir.join(format!("lpctl-http-{}.pcap", std::process::id()));
    let sent = dir.join(format!("lpctl-http-{}-sent.pcap", std::process::id()));
    let cap = capture(&pcap);
    // the most fuel a call may have, for the collector's steps on top of a heavy call
    let v = run_json(&example("http-cache.lua"), &pcap, &sent, &["--fuel", "max"]);
    let stats = &v["stats"];
    assert_eq!(stats["packets"], cap.packets);
    // dropped: the second GET, the client's ACKs and FIN after it; nothing else
    assert_eq!(stats["verdicts"]["drop"], 6, "{stats}");
    assert_eq!(stat(&v, "hits"), 1, "{}", v["maps"]);
    // the first GET, no-store twice, the large answer twice (the POSTs are no GETs)
    assert_eq!(stat(&v, "misses"), 5, "{}", v["maps"]);
    assert_eq!(stat(&v, "uncachable"), 4, "{}", v["maps"]);
    assert_eq!(stat(&v, "bytes"), cap.response.len(), "{}", v["maps"]);

    // what the script sent: the answer's segments, the reset, the ACK of the client's FIN
    let pkts = sent_packets(&sent);
    // in order: a segment (the GET's call); the next for each ACK; the ACK of the client's
    // FIN and the reset to the server (the FIN's call)
    let nseg = cap.response.len().div_ceil(MSS);
    assert_eq!(nseg, 4);
    assert_eq!(pkts.len(), nseg + 2, "{stats}");
    let (data, other): (Vec<_>, Vec<_>) = pkts
        .iter()
        .enumerate()
        .partition(|(i, _)| ![4, 5].contains(i));
    let (cseq, sseq) = cap.hit_seq;
    let req_len = request("GET", "/f.bin").len() as u32;
    let mut got = Vec::new();
    for (i, (_, p)) in data.iter().enumerate() {
        assert_eq!(
            &p[12..20],
            &[10, 0, 2, 2, 10, 0, 1, 2],
            "from the server's address"
        );
        assert_eq!(
            &p[20..24],
            &[0, 80, 0x9c, 0x41],
            "port 80 to the client's 40001"
        );
        assert_eq!(
            be32(&p[24..]),
            sseq + got.len() as u32,
            "segment {i}'s sequence number"
        );
        assert_eq!(be32(&p[28..]), cseq + req_len, "acknowledges the GET");
        let flags = p[33];
        let last = i + 1 == nseg;
        assert_eq!(
            flags,
            if last { 0x19 } else { 0x18 },
            "segment {i}: PA, the last FPA"
        );
        let doff = usize::from(p[32] >> 4) * 4;
        let data = &p[20 + doff..];
        assert_eq!(
            data.len(),
            if last {
                cap.response.len() - i * MSS
            } else {
                MSS
            }
        );
        got.extend_from_slice(data);
    }
    assert_eq!(
        got, cap.response,
        "the cache's answer is the server's, byte for byte"
    );
    let rst = other[1].1;
    assert_eq!(
        &rst[12..20],
        &[10, 0, 1, 2, 10, 0, 2, 2],
        "in the client's name"
    );
    assert_eq!(&rst[20..24], &[0x9c, 0x41, 0, 80]);
    assert_eq!(
        be32(&rst[24..]),
        cseq,
        "at the sequence number the server expects"
    );
    assert_eq!(rst[33] & 0x04, 0x04, "a reset");
    let fin_ack = other[0].1;
    assert_eq!(&fin_ack[12..20], &[10, 0, 2, 2, 10, 0, 1, 2]);
    assert_eq!(fin_ack[33], 0x10, "a bare ACK");
    assert_eq!(
        be32(&fin_ack[28..]),
        cseq + req_len + 1,
        "of the client's FIN"
    );
    assert_eq!(
        be32(&fin_ack[24..]),
        sseq + cap.response.len() as u32 + 1,
        "after our FIN"
    );

    let fuel_max = stats["fuel_max"].as_u64().unwrap();
    eprintln!(
        "http-cache: fuel per packet {}, max {fuel_max}",
        stats["fuel_per_packet"]
    );
    assert!(fuel_max < abi::limits::MAX_FUEL, "{stats}");
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&sent);
}
