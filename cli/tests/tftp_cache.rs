//! examples/tftp-cache.lua offline: a capture of a TFTP transfer seen by a router (the
//! client's read request, the server's DATA blocks and the client's ACKs), then the client's
//! second request and its ACKs, run through `lpctl run --sent`: the first transfer passes and
//! is learnt, the second is answered by the script block by block with the file's bytes.

mod common;

use common::{example, map_value, run_json, sent_packets, write_capture};
use etherparse::PacketBuilder;
use std::path::Path;

const CLIENT: [u8; 4] = [10, 0, 1, 2];
const SERVER: [u8; 4] = [10, 0, 2, 2];

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

fn msg(op: u16, n: u16, data: &[u8]) -> Vec<u8> {
    let mut m = op.to_be_bytes().to_vec();
    m.extend_from_slice(&n.to_be_bytes());
    m.extend_from_slice(data);
    m
}

fn rrq(file: &str) -> Vec<u8> {
    let mut m = vec![0, 1];
    m.extend_from_slice(file.as_bytes());
    m.extend_from_slice(b"\0octet\0tsize\0");
    m.extend_from_slice(b"0\0");
    m
}

/// The file's bytes: not a multiple of 512, several blocks.
fn file() -> Vec<u8> {
    (0..70_000u32).map(|i| (i * 7 + i / 511) as u8).collect()
}

fn capture(path: &Path) -> usize {
    let f = file();
    let blocks: Vec<&[u8]> = f.chunks(512).collect();
    let mut pkts = Vec::new();
    // the first transfer, through the router: the server answers from port 3000
    pkts.push(udp(CLIENT, SERVER, 40000, 69, &rrq("boot.img")));
    for (i, b) in blocks.iter().enumerate() {
        let n = i as u16 + 1;
        pkts.push(udp(SERVER, CLIENT, 3000, 40000, &msg(3, n, b)));
        pkts.push(udp(CLIENT, SERVER, 40000, 3000, &msg(4, n, b"")));
    }
    // the second: a request and the ACKs of what the cache will send
    pkts.push(udp(CLIENT, SERVER, 40001, 69, &rrq("boot.img")));
    for n in 1..=blocks.len() as u16 {
        pkts.push(udp(CLIENT, SERVER, 40001, 69, &msg(4, n, b"")));
    }
    write_capture(path, &pkts);
    pkts.len()
}

#[test]
fn the_second_transfer_is_answered_from_the_cache() {
    let dir = std::env::temp_dir();
    let pcap = dir.join(format!("lpctl-tftp-{}.pcap", std::process::id()));
    let sent = dir.join(format!("lpctl-tftp-{}-sent.pcap", std::process::id()));
    let n = capture(&pcap);
    let v = run_json(&example("tftp-cache.lua"), &pcap, &sent, &[]);
    let stats = &v["stats"];
    assert_eq!(stats["packets"], n);
    let f = file();
    let nblocks = f.len().div_ceil(512);
    // the second request and its ACKs but the last are answered, and dropped
    assert_eq!(stats["sent"]["packets"], nblocks, "{stats}");
    assert_eq!(stats["verdicts"]["drop"], nblocks + 1, "{stats}");
    assert_eq!(map_value(&v, "stats", "hits"), 1);
    // the cache's blocks, in order, are the file
    let mut got = Vec::new();
    for (i, p) in sent_packets(&sent).iter().enumerate() {
        let expect_n = i as u16 + 1;
        assert_eq!(
            &p[12..20],
            &[10, 0, 2, 2, 10, 0, 1, 2],
            "from the server's address"
        );
        assert_eq!(
            &p[20..24],
            &[0, 69, 0x9c, 0x41],
            "port 69 to the client's 40001"
        );
        assert_eq!(&p[28..32], &[0, 3, (expect_n >> 8) as u8, expect_n as u8]);
        got.extend_from_slice(&p[32..]);
    }
    assert_eq!(got, f);
    let fuel_max = stats["fuel_max"].as_u64().unwrap();
    eprintln!(
        "tftp-cache: fuel per packet {}, max {fuel_max}",
        stats["fuel_per_packet"]
    );
    // within the default fuel, a garbage-collection cycle included (docs/library.md)
    assert!(fuel_max < abi::limits::DEFAULT_FUEL, "{stats}");
}
