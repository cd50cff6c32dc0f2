//! The `luapkt` family against the fake kernel.

use super::*;
use crate::fake::{self, FakeKernel};
use netlink_packet_core::NLM_F_MULTIPART;

/// The family id the fake nlctrl hands out.
const FAMILY: u16 = 0x1d;

fn client(kernel: &mut FakeKernel) -> Luapkt<&mut FakeKernel> {
    kernel.reply(fake::family(1, "luapkt", FAMILY));
    Luapkt::with_transport(kernel).unwrap()
}

fn reply(seq: u32, flags: u16, command: u8) -> MessageBuilder {
    MessageBuilder::new(FAMILY, flags, seq).fixed_header(&[command, nl::GENL_VERSION, 0, 0])
}

fn script_msg(seq: u32, flags: u16, name: &str) -> Vec<u8> {
    let mut m = reply(seq, flags, cmd::GET);
    m.attr_str(attr::NAME, name)
        .attr(attr::TAG, &[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3])
        .attr_u32(attr::REFS, 2)
        .attr_u64(attr::MEM_BYTES, 2 << 20)
        .attr_u64(attr::MAP_BYTES, 123_456)
        .attr_u32(attr::INSTANCES, 2)
        .attr_u64(attr::FUEL, 1_000_000)
        .attr_u32(attr::INSTRUCTIONS, 50_000)
        .attr_u64(attr::MEMORY, 1 << 20)
        .attr_u32(attr::RECURSION, 1024)
        .attr_u32(attr::PCALL_DEPTH, 8)
        .attr_u8(attr::ON_ERROR, nl::ON_ERROR_DROP)
        .attr_u8(attr::ENGINE, nl::ENGINE_COMPILED)
        .attr_u32(attr::SEND_PACKETS, 4)
        .attr_u32(attr::SEND_RATE, 100)
        .attr(attr::PAD, &[])
        .begin_nest(attr::STATS)
        .attr_u64(stat::RUN_CNT, 10)
        .attr_u64(stat::ACCEPT, 7)
        .attr_u64(stat::DROP, 3)
        .attr_u64(stat::FUEL_MAX, 4242)
        .attr_u64(stat::SENT_PACKETS, 12)
        .attr_u64(stat::MAX + 5, 1) // a counter from a newer kernel: skipped
        .end_nest()
        .attr_u32(attr::MAX + 3, 9); // an attribute from a newer kernel: skipped
    m.finish()
}

fn expected_script(name: &str) -> ScriptInfo {
    ScriptInfo {
        name: name.into(),
        tag: Tag([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]),
        refs: 2,
        mem_bytes: 2 << 20,
        map_bytes: 123_456,
        instances: 2,
        limits: ScriptLimits {
            fuel: 1_000_000,
            instructions: 50_000,
            memory: 1 << 20,
            recursion: 1024,
            pcall_depth: 8,
            load_fuel: 0,
            send: SendLimits {
                send_packets: 4,
                send_rate: 100,
                ..SendLimits::default()
            },
        },
        on_error: OnError::Drop,
        engine: Some(Engine::Compiled),
        stats: Stats {
            run_cnt: 10,
            accept: 7,
            drop: 3,
            fuel_max: 4242,
            sent_packets: 12,
            ..Stats::default()
        },
    }
}

fn upload_id(seq: u32, id: u32) -> Vec<u8> {
    let mut m = reply(seq, 0, cmd::LOAD_BEGIN);
    m.attr_u32(attr::UPLOAD_ID, id);
    fake::datagram(&[m.finish(), fake::ack(seq)])
}

fn package(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn load_request(package: &[u8]) -> LoadRequest<'_> {
    LoadRequest {
        limits: Limits {
            fuel: Some(100_000),
            ..Limits::default()
        },
        on_error: Some(OnError::Drop),
        engine: Some(Engine::Compiled),
        replace: true,
        ..LoadRequest::new("web", package)
    }
}

#[test]
fn family_missing() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::error(1, libc::ENOENT, None)]);
    let err = Luapkt::with_transport(&mut kernel).err().unwrap();
    assert_eq!(
        err.to_string(),
        "luapkt: generic netlink family not found (is nft_lua loaded?)"
    );
    assert!(matches!(err, Error::FamilyNotFound { .. }));
}

#[test]
fn load_in_chunks() {
    let package = package(70_000);
    let mut kernel = FakeKernel::new();
    let mut luapkt = client(&mut kernel);
    assert_eq!(luapkt.family().id, FAMILY);
    luapkt
        .conn
        .transport
        .reply(vec![upload_id(2, 42)])
        .reply(vec![fake::ack(3)])
        .reply(vec![fake::ack(4)])
        .reply(vec![fake::ack(5)])
        .reply(vec![fake::datagram(&[
            script_msg(6, 0, "web"),
            fake::ack(6),
        ])]);
    let info = luapkt.load(&load_request(&package)).unwrap();
    assert_eq!(info, expected_script("web"));

    let sent = luapkt.transport().sent();
    assert_eq!(sent.len(), 6);
    #[rustfmt::skip]
    let begin: &[u8] = &[
        72, 0, 0, 0, 0x1d, 0, 0x05, 0, 2, 0, 0, 0, 0, 0, 0, 0, // REQUEST|ACK, seq 2
        cmd::LOAD_BEGIN, 1, 0, 0,
        8, 0, 1, 0, b'w', b'e', b'b', 0, // NAME
        8, 0, 3, 0, 0x70, 0x11, 0x01, 0x00, // SIZE 70000
        12, 0, 6, 0, 0xa0, 0x86, 0x01, 0, 0, 0, 0, 0, // FUEL 100000
        5, 0, 11, 0, 2, 0, 0, 0, // ON_ERROR drop
        5, 0, 20, 0, 2, 0, 0, 0, // ENGINE compiled
        8, 0, 12, 0, 1, 0, 0, 0, // FLAGS: FLAG_REPLACE
    ];
    assert_eq!(sent[1], begin);
    let mut offset = 0usize;
    for (i, len) in [32768usize, 32768, 4464].into_iter().enumerate() {
        let chunk = &sent[2 + i];
        let seq = 3 + i as u8;
        let total = 16 + 4 + 8 + 8 + 4 + len;
        #[rustfmt::skip]
        let head: Vec<u8> = [
            &(total as u32).to_ne_bytes()[..], &[0x1d, 0, 0x05, 0, seq, 0, 0, 0, 0, 0, 0, 0],
            &[cmd::LOAD_CHUNK, 1, 0, 0],
            &[8, 0, 2, 0, 42, 0, 0, 0], // UPLOAD_ID
            &[8, 0, 4, 0], &(offset as u32).to_ne_bytes(), // OFFSET
            &((4 + len) as u16).to_ne_bytes(), &[5, 0], // DATA
        ]
        .concat();
        assert_eq!(chunk[..head.len()], head[..], "chunk {i}");
        assert_eq!(
            chunk[head.len()..],
            package[offset..offset + len],
            "chunk {i}"
        );
        offset += len;
    }
    #[rustfmt::skip]
    let commit: &[u8] = &[
        28, 0, 0, 0, 0x1d, 0, 0x05, 0, 6, 0, 0, 0, 0, 0, 0, 0,
        cmd::LOAD_COMMIT, 1, 0, 0,
        8, 0, 2, 0, 42, 0, 0, 0, // UPLOAD_ID
    ];
    assert_eq!(sent[5], commit);
}

#[test]
fn failed_chunk_aborts_the_upload() {
    let package = package(40_000);
    let mut kernel = FakeKernel::new();
    let mut luapkt = client(&mut kernel);
    luapkt
        .conn
        .transport
        .reply(vec![upload_id(2, 7)])
        .reply(vec![fake::ack(3)])
        .reply(vec![fake::error(
            4,
            libc::EINVAL,
            Some("offset 32768, expected 0"),
        )])
        .reply(vec![fake::ack(5)]);
    let err = luapkt.load(&LoadRequest::new("web", &package)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "script web: chunk at offset 32768: Invalid argument (os error 22): \
         offset 32768, expected 0"
    );
    let sent = luapkt.transport().sent();
    #[rustfmt::skip]
    let abort: &[u8] = &[
        28, 0, 0, 0, 0x1d, 0, 0x05, 0, 5, 0, 0, 0, 0, 0, 0, 0,
        cmd::LOAD_ABORT, 1, 0, 0,
        8, 0, 2, 0, 7, 0, 0, 0,
    ];
    assert_eq!(sent.last().unwrap(), abort);
    // No limits, no on-error, no replace: NAME, SIZE and FLAGS 0 only.
    assert_eq!(sent[1].len(), 16 + 4 + 8 + 8 + 8);
    assert_eq!(sent[1][36..], [8, 0, 12, 0, 0, 0, 0, 0]);
}

#[test]
fn failed_commit_is_reported_even_if_abort_fails() {
    let package = package(10);
    let mut kernel = FakeKernel::new();
    let mut luapkt = client(&mut kernel);
    luapkt
        .conn
        .transport
        .reply(vec![upload_id(2, 7)])
        .reply(vec![fake::ack(3)])
        .reply(vec![fake::error(
            4,
            libc::EINVAL,
            Some("lua: [string \"web\"]:3: '=' expected"),
        )])
        .reply(vec![fake::error(5, libc::ENOENT, None)]);
    let err = luapkt.load(&LoadRequest::new("web", &package)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "script web: Invalid argument (os error 22): lua: [string \"web\"]:3: '=' expected"
    );
}

#[test]
fn unload_busy_with_extack() {
    let mut kernel = FakeKernel::new();
    let mut luapkt = client(&mut kernel);
    luapkt.conn.transport.reply(vec![fake::error(
        2,
        libc::EBUSY,
        Some("used by rule inet filter lua-web handle 4"),
    )]);
    let err = luapkt.unload("web").unwrap_err();
    assert_eq!(
        err.to_string(),
        "script web: Device or resource busy (os error 16): \
         used by rule inet filter lua-web handle 4"
    );
    assert_eq!(err.errno(), Some(libc::EBUSY));
    #[rustfmt::skip]
    let unload: &[u8] = &[
        28, 0, 0, 0, 0x1d, 0, 0x05, 0, 2, 0, 0, 0, 0, 0, 0, 0,
        cmd::UNLOAD, 1, 0, 0,
        8, 0, 1, 0, b'w', b'e', b'b', 0,
    ];
    assert_eq!(luapkt.transport().sent()[1], unload);
}

#[test]
fn get_one_and_dump_all() {
    let mut kernel = FakeKernel::new();
    let mut luapkt = client(&mut kernel);
    luapkt
        .conn
        .transport
        .reply(vec![fake::datagram(&[
            script_msg(2, 0, "web"),
            fake::ack(2),
        ])])
        .reply(vec![
            fake::datagram(&[
                script_msg(3, NLM_F_MULTIPART, "web"),
                script_msg(3, NLM_F_MULTIPART, "dns"),
            ]),
            fake::datagram(&[script_msg(3, NLM_F_MULTIPART, "ssh"), fake::done(3)]),
        ]);
    assert_eq!(luapkt.get("web").unwrap(), expected_script("web"));
    let all = luapkt.list().unwrap();
    assert_eq!(
        all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["web", "dns", "ssh"]
    );
    #[rustfmt::skip]
    let dump: &[u8] = &[
        20, 0, 0, 0, 0x1d, 0, 0x01, 0x03, 3, 0, 0, 0, 0, 0, 0, 0, // REQUEST|DUMP
        cmd::GET, 1, 0, 0,
    ];
    assert_eq!(luapkt.transport().sent()[2], dump);
}

#[test]
fn script_info_as_json() {
    let json = serde_json::to_value(expected_script("web")).unwrap();
    assert_eq!(json["tag"], "deadbeef00010203");
    assert_eq!(json["on_error"], "drop");
    assert_eq!(json["limits"]["pcall_depth"], 8);
    assert_eq!(json["stats"]["run_cnt"], 10);
    assert_eq!(json["stats"]["continue"], 0);
    assert_eq!(json["stats"]["break"], 0);
    assert_eq!(json["stats"].as_object().unwrap().len(), 29);
    assert_eq!(json["stats"]["timers_pending"], 0);
    assert_eq!(json["stats"]["sent_packets"], 12);
    // the send limits sit with the others
    assert_eq!(json["limits"]["send_packets"], 4);
    assert_eq!(json["limits"]["send_byte_rate"], 0);
}

#[test]
fn set_limits_bytes() {
    let mut kernel = FakeKernel::new();
    let mut luapkt = client(&mut kernel);
    luapkt.conn.transport.reply(vec![fake::ack(2)]);
    let limits = Limits {
        instructions: Some(0),
        memory: Some(1 << 20),
        recursion: Some(100),
        pcall_depth: Some(4),
        ..Limits::default()
    };
    luapkt
        .set_limits("web", &limits, Some(OnError::Accept))
        .unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        72, 0, 0, 0, 0x1d, 0, 0x05, 0, 2, 0, 0, 0, 0, 0, 0, 0,
        cmd::SET_LIMITS, 1, 0, 0,
        8, 0, 1, 0, b'w', b'e', b'b', 0, // NAME
        8, 0, 7, 0, 0, 0, 0, 0, // INSTRUCTIONS 0
        12, 0, 8, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, // MEMORY 1 MiB
        8, 0, 9, 0, 100, 0, 0, 0, // RECURSION
        8, 0, 10, 0, 4, 0, 0, 0, // PCALL_DEPTH
        5, 0, 11, 0, 1, 0, 0, 0, // ON_ERROR accept
    ];
    assert_eq!(luapkt.transport().sent()[1], expected);
}

#[test]
fn invalid_requests_are_refused_before_sending() {
    let mut kernel = FakeKernel::new();
    let mut luapkt = client(&mut kernel);
    let big = vec![0u8; nl::PACKAGE_MAX as usize + 1];
    let long_name = "a".repeat(64);
    let cases: Vec<(Result<()>, &str)> = vec![
        (
            luapkt.load(&LoadRequest::new("web", &[])).map(drop),
            "script web: package of 0 bytes: must be 1 to 4194304 bytes",
        ),
        (
            luapkt.load(&LoadRequest::new("web", &big)).map(drop),
            "script web: package of 4194305 bytes",
        ),
        (
            luapkt.load(&LoadRequest::new("we b", b"x")).map(drop),
            "script we b: a script name is 1 to 63 characters of A-Z a-z 0-9 _ . -",
        ),
        (luapkt.unload(&long_name), "a script name is 1 to 63"),
        (luapkt.get("").map(drop), "script : a script name"),
        (
            luapkt.set_limits(
                "web",
                &Limits {
                    memory: Some(1024),
                    ..Limits::default()
                },
                None,
            ),
            "script web: memory 1024 is outside 65536..=268435456",
        ),
        (
            luapkt.set_limits(
                "web",
                &Limits {
                    pcall_depth: Some(33),
                    ..Limits::default()
                },
                None,
            ),
            "pcall depth 33 is outside 0..=32",
        ),
    ];
    for (result, expected) in cases {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{err} lacks {expected}");
    }
    assert_eq!(luapkt.transport().sent().len(), 1, "only the family lookup");
    assert_eq!("drop".parse::<OnError>().unwrap(), OnError::Drop);
    assert!("reject".parse::<OnError>().is_err());
}

#[test]
fn malformed_script_replies() {
    let mut no_tag = reply(2, 0, cmd::GET);
    no_tag.attr_str(attr::NAME, "web");
    let mut short_refs = reply(2, 0, cmd::GET);
    short_refs
        .attr_str(attr::NAME, "web")
        .attr_u8(attr::REFS, 1);
    let mut bad_on_error = reply(2, 0, cmd::GET);
    bad_on_error.attr_u8(attr::ON_ERROR, 9);
    let mut bad_engine = reply(2, 0, cmd::GET);
    bad_engine.attr_u8(attr::ENGINE, 7);
    let mut bad_tag = reply(2, 0, cmd::GET);
    bad_tag.attr(attr::TAG, &[1, 2, 3]);
    let mut bad_stats = reply(2, 0, cmd::GET);
    bad_stats
        .begin_nest(attr::STATS)
        .attr_u32(stat::RUN_CNT, 1)
        .end_nest();
    let wrong_family = MessageBuilder::new(FAMILY + 1, 0, 2)
        .fixed_header(&[cmd::GET, 1, 0, 0])
        .finish();
    let no_genl_header = MessageBuilder::new(FAMILY, 0, 2).finish();
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (vec![no_tag.finish()], "LUAPKT_ATTR_TAG missing"),
        (
            vec![short_refs.finish()],
            "LUAPKT_ATTR_REFS: 1 bytes where 4 were expected",
        ),
        (vec![bad_on_error.finish()], "LUAPKT_ATTR_ON_ERROR 9"),
        (vec![bad_engine.finish()], "LUAPKT_ATTR_ENGINE 7"),
        (vec![bad_tag.finish()], "LUAPKT_ATTR_TAG: 3 bytes, not 8"),
        (
            vec![bad_stats.finish()],
            "LUAPKT_ATTR_STATS counter: 4 bytes",
        ),
        (
            vec![wrong_family],
            "message type 30 is not the luapkt family",
        ),
        (vec![no_genl_header], "shorter than genlmsghdr"),
        (vec![], "0 messages where one was expected"),
        (
            vec![script_msg(2, 0, "web"), script_msg(2, 0, "web")],
            "2 messages where one was expected",
        ),
    ];
    for (messages, reason) in cases {
        let mut kernel = FakeKernel::new();
        let mut luapkt = client(&mut kernel);
        let mut datagram = messages.concat();
        datagram.extend_from_slice(&fake::ack(2));
        luapkt.conn.transport.reply(vec![datagram]);
        let err = luapkt.get("web").unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("script web: malformed reply from the kernel: "),
            "{err}"
        );
        assert!(err.to_string().contains(reason), "{err} lacks {reason}");
    }
}

#[test]
fn truncated_replies_are_errors() {
    let whole = fake::datagram(&[script_msg(2, 0, "web"), fake::ack(2)]);
    for cut in (0..whole.len()).step_by(3) {
        let mut kernel = FakeKernel::new();
        let mut luapkt = client(&mut kernel);
        luapkt.conn.transport.reply(vec![whole[..cut].to_vec()]);
        // Either the cut leaves garbage (malformed) or the ack never comes (receive error).
        let err = luapkt.get("web").unwrap_err();
        assert!(
            matches!(err, Error::Malformed { .. } | Error::Io { .. }),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn raw_requests_go_out_as_given() {
    let mut kernel = FakeKernel::new();
    let mut luapkt = client(&mut kernel);
    luapkt
        .conn
        .transport
        .reply(vec![upload_id(2, 9)])
        .reply(vec![fake::error(3, libc::ERANGE, Some("bad"))]);
    // SIZE with 2 bytes of value: padded, its length left as given
    let replies = luapkt
        .request_raw(cmd::LOAD_BEGIN, &[6, 0, 3, 0, 1, 2])
        .unwrap();
    assert_eq!(replies, [vec![8, 0, 2, 0, 9, 0, 0, 0]]);
    let err = luapkt.request_raw(cmd::LOAD_CHUNK, &[]).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ERANGE));
    let sent = luapkt.transport().sent();
    #[rustfmt::skip]
    let begin: &[u8] = &[
        28, 0, 0, 0, 0x1d, 0, 0x05, 0, 2, 0, 0, 0, 0, 0, 0, 0,
        cmd::LOAD_BEGIN, 1, 0, 0,
        6, 0, 3, 0, 1, 2, 0, 0,
    ];
    assert_eq!(sent[1], begin);
    assert_eq!(sent[2].len(), 20);
}

#[test]
fn read_ring_bytes_and_replies() {
    let mut kernel = FakeKernel::new();
    let mut luapkt = client(&mut kernel);
    let records = [7u8; 48];
    let mut m = reply(2, 0, cmd::LOG_READ);
    m.attr_str(attr::NAME, "web")
        .attr(attr::LOG_DATA, &records)
        .attr_u64(attr::LOG_SEQ, 12)
        .attr_u64(attr::LOG_LOST, 3);
    let mut short = reply(3, 0, cmd::ERRORS_READ);
    short.attr_str(attr::NAME, "web").attr_u64(attr::LOG_SEQ, 1); // no LOG_DATA
    let mut big = reply(4, 0, cmd::ERRORS_READ);
    big.attr(attr::LOG_DATA, &vec![0; abi::records::READ_MAX + 8])
        .attr_u64(attr::LOG_SEQ, 1);
    luapkt
        .conn
        .transport
        .reply(vec![fake::datagram(&[m.finish(), fake::ack(2)])])
        .reply(vec![fake::datagram(&[short.finish(), fake::ack(3)])])
        .reply(vec![fake::datagram(&[big.finish(), fake::ack(4)])]);
    let b = luapkt.read_ring("web", Ring::Log, 9).unwrap();
    assert_eq!(
        b,
        RecordBatch {
            data: records.to_vec(),
            next: 12,
            lost: 3
        }
    );
    #[rustfmt::skip]
    let request: &[u8] = &[
        40, 0, 0, 0, 0x1d, 0, 0x05, 0, 2, 0, 0, 0, 0, 0, 0, 0,
        cmd::LOG_READ, 1, 0, 0,
        8, 0, 1, 0, b'w', b'e', b'b', 0,
        12, 0, 21, 0, 9, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(luapkt.transport().sent()[1], request);
    let e = luapkt.read_ring("web", Ring::Errors, 0).unwrap_err();
    assert!(
        e.to_string().contains("LUAPKT_ATTR_LOG_DATA missing"),
        "{e}"
    );
    let e = luapkt.read_ring("web", Ring::Errors, 0).unwrap_err();
    assert!(e.to_string().contains("more than 16384"), "{e}");
    assert!(luapkt.read_ring("bad name!", Ring::Log, 0).is_err());
}
