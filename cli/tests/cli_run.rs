//! `lpctl run` and `lpctl bench` as a user runs them: output formats, and one clear error line
//! with a non-zero exit for every kind of bad input.

mod common;

use common::{lpctl, root, tmp};
use std::path::Path;
use std::process::Output;

fn path(rel: &str) -> String {
    root().join(rel).display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `lpctl -j run SCRIPT --pcap PCAP --engine ENGINE EXTRA...`, which must succeed: its JSON.
fn run_json(script: &str, engine: &str, extra: &[&str]) -> serde_json::Value {
    let pcap = path(PCAP);
    let mut args = vec!["-j", "run", script, "--pcap", &pcap, "--engine", engine];
    args.extend_from_slice(extra);
    let o = lpctl(&args);
    assert!(o.status.success(), "{engine}: {}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

const PCAP: &str = "tests/data/mixed.pcap";

#[test]
fn run_prints_a_line_per_packet_and_a_summary() {
    let o = lpctl(&["run", &path("examples/drop-ssh.lua"), "--pcap", &path(PCAP)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    // 64 IP packets, 1 ARP frame reported as skipped, 1 summary line
    assert_eq!(lines.len(), 66, "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("skipped") && l.contains("ethertype 0x0806")),
        "{out}"
    );
    let summary = lines.last().unwrap();
    assert!(
        summary.starts_with("64 packets: accept 48, drop 16, errors 0, skipped 1"),
        "{summary}"
    );
}

#[test]
fn run_json_is_one_object_with_packets_and_stats() {
    let o = lpctl(&[
        "-j",
        "run",
        &path("examples/drop-ssh.lua"),
        "--pcap",
        &path(PCAP),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    let packets = v["packets"].as_array().unwrap();
    assert_eq!(packets.len(), 64);
    assert_eq!(packets[0]["index"], 0);
    assert_eq!(packets[0]["verdict"], "drop");
    assert!(packets[0]["error"].is_null());
    assert_eq!(v["stats"]["verdicts"]["drop"], 16);
    assert_eq!(v["stats"]["verdicts"]["accept"], 48);
    assert_eq!(v["stats"]["errors"]["lua"], 0);
    assert_eq!(v["skipped"][0]["index"], 9);
}

#[test]
fn errors_show_the_applied_verdict_and_the_kind() {
    let script = tmp(
        "boom.lua",
        b"function process_packet(pkt)\n  if pkt.udp then\n    local x = 1\n    error('boom')\n  end\n  return lp.ACCEPT\nend\n",
    );
    let o = lpctl(&[
        "-j",
        "run",
        &script,
        "--pcap",
        &path(PCAP),
        "--on-error",
        "drop",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let udp = &v["packets"][4];
    assert_eq!(udp["verdict"], "drop");
    let name = Path::new(&script)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(udp["error"], format!("lua: {name}:4: boom"));
    assert_eq!(v["stats"]["errors"]["lua"], 16);

    let looping = tmp(
        "loop.lua",
        b"function process_packet() while true do end end",
    );
    let o = lpctl(&[
        "-j",
        "run",
        &looping,
        "--pcap",
        &path(PCAP),
        "--instructions",
        "0",
        "--fuel",
        "50000",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["packets"][0]["error"], "out of fuel");
    assert_eq!(v["packets"][0]["verdict"], "break");
    assert_eq!(v["stats"]["errors"]["fuel"], 64);
}

fn expect_error(args: &[&str], needle: &str) {
    let o = lpctl(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one error line, got {err:?}");
    assert!(lines[0].starts_with("Error: "), "{err}");
    assert!(
        lines[0].contains(needle),
        "{args:?}: {err:?} lacks {needle:?}"
    );
    assert!(stdout(&o).is_empty(), "partial output: {}", stdout(&o));
    // the same error as JSON on stdout
    let mut j = vec!["-j"];
    j.extend_from_slice(args);
    let o = lpctl(&j);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON error");
    assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
}

#[test]
fn bad_input_gets_one_clear_error_line() {
    let pcap = path(PCAP);
    let ok = path("examples/drop-ssh.lua");
    let syntax = tmp(
        "syntax.lua",
        b"function process_packet(pkt)\n  return lp.ACCEPT\n",
    );
    expect_error(
        &["run", &syntax, "--pcap", &pcap],
        "syntax.lua:3: 'end' expected",
    );
    let nofn = tmp("nofn.lua", b"x = 1\n");
    expect_error(
        &["run", &nofn, "--pcap", &pcap],
        "entry function 'process_packet' is not defined",
    );
    expect_error(
        &["run", &ok, "--pcap", &pcap, "--function", "nope"],
        "'nope'",
    );
    expect_error(
        &["run", "/nonexistent/x.lua", "--pcap", &pcap],
        "cannot read script /nonexistent/x.lua",
    );
    expect_error(
        &["run", &ok, "--pcap", "/nonexistent/x.pcap"],
        "/nonexistent/x.pcap",
    );
    let bytes = std::fs::read(root().join(PCAP)).unwrap();
    let truncated = tmp("truncated.pcap", &bytes[..bytes.len() - 10]);
    expect_error(&["run", &ok, "--pcap", &truncated], "truncated.pcap");
    let mut linktype = bytes.clone();
    linktype[20..24].copy_from_slice(&105u32.to_le_bytes());
    let wifi = tmp("wifi.pcap", &linktype);
    expect_error(&["run", &ok, "--pcap", &wifi], "unsupported link type 105");
    let garbage = tmp("garbage.pcap", b"this is not a capture file at all");
    expect_error(&["run", &ok, "--pcap", &garbage], "garbage.pcap");
    expect_error(
        &["run", &ok, "--pcap", &pcap, "--fuel", "0"],
        "fuel 0 is out of range",
    );
    expect_error(
        &["run", &ok, "--pcap", &pcap, "--memory", "0"],
        "memory 0 is out of range",
    );
    expect_error(
        &["run", &ok, "--pcap", &pcap, "--memory", "64G"],
        "--memory",
    );
    expect_error(
        &["run", &ok, "--pcap", &pcap, "--memory", "lots"],
        "--memory lots: not a whole number",
    );
    expect_error(
        &[
            "run",
            &ok,
            "--pcap",
            &pcap,
            "--fuel",
            "99999999999999999999",
        ],
        "--fuel",
    );
    expect_error(
        &["run", &ok, "--pcap", &pcap, "--pcall-depth", "1000"],
        "pcall-depth 1000 is out of range",
    );
    let toplevel = tmp(
        "toplevel.lua",
        b"error('no config')\nfunction process_packet() end",
    );
    expect_error(
        &["run", &toplevel, "--pcap", &pcap],
        "toplevel.lua:1: no config",
    );
}

#[test]
fn bench_reports_every_engine() {
    let o = lpctl(&[
        "-j",
        "bench",
        &path("examples/bench/accept.lua"),
        "--pcap",
        &path(PCAP),
        "--millis",
        "20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let engines: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["engine"].as_str().unwrap())
        .collect();
    assert_eq!(engines, ["wasmi", "wasmtime", "compiled", "native"]);
    for r in v["results"].as_array().unwrap() {
        assert!(r["ns_per_packet"].as_f64().unwrap() > 0.0, "{r}");
    }
    let fuel = v["results"][0]["fuel_per_packet"].as_f64().unwrap();
    assert!(fuel > 100.0);
    // the guest counts its fuel: the same under every engine that runs it
    for e in 1..3 {
        assert_eq!(
            v["results"][e]["fuel_per_packet"].as_f64(),
            Some(fuel),
            "{v}"
        );
    }
    assert!(v["wasmi_instance"]["memory_bytes"].as_u64().unwrap() >= 65536);
}

#[test]
fn a_packed_script_runs_like_its_source() {
    let out = tmp("ssh.lpk", b"");
    let o = lpctl(&[
        "-j",
        "pack",
        &path("examples/drop-ssh.lua"),
        "--name",
        "ssh",
        "-o",
        &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["name"], "ssh");
    assert_eq!(v["tag"].as_str().unwrap().len(), 16);
    let packed = lpctl(&["-j", "run", &out, "--pcap", &path(PCAP)]);
    let plain = lpctl(&[
        "-j",
        "run",
        &path("examples/drop-ssh.lua"),
        "--pcap",
        &path(PCAP),
    ]);
    let a: serde_json::Value = serde_json::from_str(stdout(&packed).trim()).unwrap();
    let b: serde_json::Value = serde_json::from_str(stdout(&plain).trim()).unwrap();
    assert_eq!(a["stats"]["verdicts"], b["stats"]["verdicts"]);
    // a damaged package is refused, naming the file
    let mut bytes = std::fs::read(&out).unwrap();
    bytes.truncate(bytes.len() - 3);
    let bad = tmp("bad.lpk", &bytes);
    expect_error(
        &["run", &bad, "--pcap", &path(PCAP)],
        "invalid package: truncated",
    );
    expect_error(
        &[
            "pack",
            &path("examples/drop-ssh.lua"),
            "--name",
            "no spaces",
        ],
        "script name 'no spaces'",
    );
}

#[test]
fn out_writes_the_packets_the_script_let_through() {
    let out = tmp("out.pcap", b"");
    let o = lpctl(&[
        "run",
        &path("examples/drop-ssh.lua"),
        "--pcap",
        &path(PCAP),
        "--out",
        &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = lpctl(&[
        "-j",
        "run",
        &path("examples/bench/accept.lua"),
        "--pcap",
        &out,
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout(&again).trim()).unwrap();
    assert_eq!(
        v["stats"]["packets"], 48,
        "the 16 dropped packets are omitted"
    );
    let keep = tmp("keep.pcap", b"");
    let o = lpctl(&[
        "run",
        &path("examples/drop-ssh.lua"),
        "--pcap",
        &path(PCAP),
        "--out",
        &keep,
        "--keep-dropped",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let frames = lpctl::pcap::read_file(Path::new(&keep)).unwrap();
    assert_eq!(frames.len(), 64);
    let original = lpctl::pcap::read_file(&root().join(PCAP)).unwrap();
    let ip_only: Vec<_> = original
        .iter()
        .filter_map(|f| match &f.kind {
            lpctl::pcap::FrameKind::Ip { data, .. } => Some((f.ts_ns, data.clone())),
            _ => None,
        })
        .collect();
    for (f, (ts, data)) in frames.iter().zip(&ip_only) {
        assert_eq!(f.ts_ns, *ts);
        match &f.kind {
            lpctl::pcap::FrameKind::Ip { data: d, .. } => assert_eq!(d, data),
            other => panic!("{other:?}"),
        }
    }
    expect_error(
        &[
            "run",
            &path("examples/drop-ssh.lua"),
            "--pcap",
            &path(PCAP),
            "--out",
            "/nonexistent/dir/x.pcap",
        ],
        "/nonexistent/dir/x.pcap",
    );
}

#[test]
fn out_has_the_packets_as_the_script_wrote_them() {
    // every engine: TTL down by one, the mark from --mark echoed into the IPv4 id, pkt.ct from
    // the --ct-* options, the hook from --hook
    let script = tmp(
        "ttl.lua",
        br#"
function process_packet(pkt)
  assert(pkt.meta.mark == 0x2a and pkt.meta.hook == 2 and pkt.meta.iifname == "eth1")
  assert(pkt.ct.state == "established" and pkt.ct.mark == 7 and pkt.ct.id == 99)
  local ip = pkt.ip
  if ip then ip.ttl = ip.ttl - 1 ip.id = pkt.meta.mark end
  return lp.ACCEPT
end
"#,
    );
    let original = lpctl::pcap::read_file(&root().join(PCAP)).unwrap();
    for engine in ["wasmi", "wasmtime", "native"] {
        let out = tmp(&format!("ttl-{engine}.pcap"), b"");
        let o = lpctl(&[
            "run",
            &script,
            "--pcap",
            &path(PCAP),
            "--engine",
            engine,
            "--out",
            &out,
            "--mark",
            "0x2a",
            "--hook",
            "forward",
            "--iifname",
            "eth1",
            "--ct-state",
            "established",
            "--ct-mark",
            "7",
            "--ct-id",
            "99",
            "-j",
        ]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["stats"]["verdicts"]["accept"], 64, "{engine}: {v}");
        let frames = lpctl::pcap::read_file(Path::new(&out)).unwrap();
        let before: Vec<_> = original
            .iter()
            .filter_map(|f| match &f.kind {
                lpctl::pcap::FrameKind::Ip { data, .. } => Some(data.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), before.len());
        let mut v4 = 0;
        for (f, b) in frames.iter().zip(&before) {
            let lpctl::pcap::FrameKind::Ip { data: d, .. } = &f.kind else {
                panic!("{engine}: not IP")
            };
            if b[0] >> 4 != 4 {
                assert_eq!(d, b, "{engine}: IPv6 untouched");
                continue;
            }
            v4 += 1;
            assert_eq!(d[8], b[8] - 1, "{engine}: ttl");
            assert_eq!(&d[4..6], &[0, 0x2a], "{engine}: id");
            // the header checksum still verifies
            let ihl = usize::from(d[0] & 0xf) * 4;
            let mut sum: u32 = d[..ihl]
                .chunks(2)
                .map(|c| u32::from(c[0]) << 8 | u32::from(c[1]))
                .sum();
            while sum >> 16 != 0 {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            assert_eq!(sum, 0xffff, "{engine}: IPv4 header checksum");
        }
        assert!(v4 > 0);
    }
    expect_error(
        &["run", &script, "--pcap", &path(PCAP), "--ct-state", "bogus"],
        "--ct-state bogus",
    );
    expect_error(
        &[
            "run",
            &script,
            "--pcap",
            &path(PCAP),
            "--mark",
            "4294967296",
        ],
        "--mark 4294967296",
    );
    expect_error(
        &["run", &script, "--pcap", &path(PCAP), "--hook", "sideways"],
        "--hook sideways",
    );
    expect_error(
        &[
            "run",
            &script,
            "--pcap",
            &path(PCAP),
            "--iifname",
            "a-name-longer-than-15",
        ],
        "--iifname",
    );
}

/// RFC 1071: the one's-complement sum of `b` (with its checksum field) folds to 0xffff.
fn csum_ok(b: &[u8], mut acc: u32) -> bool {
    for c in b.chunks(2) {
        acc += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc == 0xffff
}

#[test]
fn nat_example_rewrites_addresses_and_keeps_checksums() {
    let mut outputs = Vec::new();
    for engine in ["wasmi", "wasmtime", "native"] {
        let out = tmp(&format!("nat-{engine}.pcap"), b"");
        let o = lpctl(&[
            "run",
            &path("examples/nat.lua"),
            "--function",
            "nat",
            "--pcap",
            &path("tests/data/nat.pcap"),
            "--engine",
            engine,
            "--out",
            &out,
        ]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        let frames = lpctl::pcap::read_file(Path::new(&out)).unwrap();
        let pkts: Vec<Vec<u8>> = frames
            .into_iter()
            .map(|f| match f.kind {
                lpctl::pcap::FrameKind::Ip { data, .. } => data,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(pkts.len(), 48);
        let (mut to_server, mut from_public) = (0, 0);
        for p in &pkts {
            assert!(
                p[12..16] != [10, 0, 2, 2],
                "{engine}: no private source left"
            );
            assert!(
                p[16..20] != [10, 0, 3, 2],
                "{engine}: no public destination left"
            );
            to_server += usize::from(p[16..20] == [10, 0, 2, 2]);
            from_public += usize::from(p[12..16] == [10, 0, 3, 2]);
            assert!(csum_ok(&p[..20], 0), "{engine}: IPv4 header checksum");
            let pseudo = if p[9] == 1 {
                0
            } else {
                let s: u32 = p[12..20]
                    .chunks(2)
                    .map(|c| u32::from(c[0]) << 8 | u32::from(c[1]))
                    .sum();
                s + u32::from(p[9]) + (p.len() as u32 - 20)
            };
            assert!(csum_ok(&p[20..], pseudo), "{engine}: transport checksum");
        }
        assert_eq!((to_server, from_public), (24, 12), "{engine}");
        outputs.push(pkts);
    }
    assert_eq!(outputs[0], outputs[1], "wasmi and wasmtime agree");
    assert_eq!(outputs[0], outputs[2], "wasmi and native agree");
}

#[test]
fn packets_bring_their_metadata_in_luapkt_meta_comments() {
    // what `lpctl script errors -w` writes: each packet with its own hook, names, mark and ct,
    // which `lpctl run` applies where no option is given
    let original = lpctl::pcap::read_file(&root().join(PCAP)).unwrap();
    let v4: Vec<u8> = original
        .iter()
        .find_map(|f| match &f.kind {
            lpctl::pcap::FrameKind::Ip { data, .. } if data[0] >> 4 == 4 => Some(data.clone()),
            _ => None,
        })
        .unwrap();
    let comments = [
        "luapkt-meta hook=input iifname=v0 mark=0x10 ct-state=established ct-mark=0x5 ct-id=9 function=f arg=6162",
        "luapkt-meta hook=forward oifname=v1 mark=0x11",
        "not ours",
    ];
    let packets: Vec<lpctl::pcap::NgPacket<'_>> = comments
        .iter()
        .enumerate()
        .map(|(i, c)| lpctl::pcap::NgPacket {
            ts_ns: 1_000 + i as u64,
            orig_len: v4.len() as u32,
            data: &v4,
            comment: Some(c.to_string()),
        })
        .collect();
    let cap = std::env::temp_dir().join(format!("lpctl-cli-{}-meta.pcapng", std::process::id()));
    lpctl::pcap::write_pcapng_raw_ip(&cap, &packets).unwrap();
    let frames = lpctl::pcap::read_file(&cap).unwrap();
    assert_eq!(frames[1].comment.as_deref(), Some(comments[1]));
    let script = tmp(
        "meta.lua",
        br#"
function process_packet(pkt)
  local m = pkt.meta
  local ct = pkt.ct and (pkt.ct.state .. "/" .. pkt.ct.mark .. "/" .. pkt.ct.id) or "-"
  lp.log(m.hook .. " " .. m.iifname .. " " .. m.oifname .. " " .. m.mark .. " " .. ct)
  return lp.ACCEPT
end
"#,
    );
    let cap = cap.display().to_string();
    let o = lpctl(&["run", &script, "--pcap", &cap, "-v"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(log.contains("1 v0  16 established/5/9"), "{log}");
    assert!(log.contains("2  v1 17 -"), "{log}");
    assert!(log.contains("0   0 -"), "{log}");
    // an option wins over the packet's own
    let o = lpctl(&["run", &script, "--pcap", &cap, "-v", "--mark", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 v0  3 established/5/9"),
        "{}",
        stderr(&o)
    );
    // a comment that does not parse names the packet
    let bad = [lpctl::pcap::NgPacket {
        ts_ns: 0,
        orig_len: v4.len() as u32,
        data: &v4,
        comment: Some("luapkt-meta hook=sideways".into()),
    }];
    let badcap = std::env::temp_dir().join(format!("lpctl-cli-{}-bad.pcapng", std::process::id()));
    lpctl::pcap::write_pcapng_raw_ip(&badcap, &bad).unwrap();
    expect_error(
        &["run", &script, "--pcap", &badcap.display().to_string()],
        "packet 0: its luapkt-meta comment",
    );
}

#[test]
fn maps_behave_the_same_on_every_engine() {
    let script = tmp(
        "maps.lua",
        br#"
local hits = lp.map{name = "hits", type = "lru", key_size = 40, max_entries = 8}
local last = lp.map{name = "last", value = "bytes", value_size = 40, max_entries = 4}
local small = lp.map{name = "small", max_entries = 2}
local pay = lp.map{name = "pay", value = "bytes", value_size = 2048, max_entries = 2}
function process_packet(pkt)
  local ip = pkt.ip or pkt.ip6
  if not ip then return lp.CONTINUE end
  local l4 = pkt.tcp or pkt.udp
  if l4 and #l4.payload > 0 then
    -- a payload view is stored as its bytes (read in place), as a string would be
    pay:set("last", l4.payload)
    assert(pay:get("last") == tostring(l4.payload))
  end
  local n = hits:add(ip.saddr, 1)
  last:set(pkt.ip and "v4" or "v6", ip.saddr)
  assert(hits:get(ip.saddr) == n and #hits <= 8)
  hits:add("half", 0.5)
  if n == 2 then assert(hits:delete(ip.saddr) and not hits:delete(ip.saddr)) end
  small:set(ip.saddr, n) -- full past two keys: a Lua error
  return lp.ACCEPT
end
"#,
    );
    let mut seen: Option<serde_json::Value> = None;
    for engine in ["compiled", "wasmi", "wasmtime", "native"] {
        let v = run_json(&script, engine, &[]);
        let maps = v["maps"].clone();
        assert_eq!(
            maps["hits"]["entries"].as_array().unwrap().len(),
            8,
            "{engine}: {maps}"
        );
        assert!(maps["hits"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "half" && e["value"].is_f64()));
        assert_eq!(maps["last"]["entries"].as_array().unwrap().len(), 2);
        assert_eq!(maps["small"]["entries"].as_array().unwrap().len(), 2);
        assert_eq!(maps["pay"]["entries"].as_array().unwrap().len(), 1);
        let errs = v["stats"]["errors"]["lua"].as_u64().unwrap();
        assert!(errs > 0, "{engine}: the small map fills");
        assert!(
            v["packets"].as_array().unwrap().iter().any(|p| p["error"]
                .as_str()
                .unwrap_or("")
                .contains("lp.map small: map full")),
            "{engine}"
        );
        match &seen {
            None => seen = Some(maps),
            Some(first) => assert_eq!(&maps, first, "{engine}: the maps differ"),
        }
    }
    // text output: a line per map after the summary
    let o = lpctl(&["run", &script, "--pcap", &path(PCAP)]);
    let out = stdout(&o);
    assert!(
        out.contains("map hits: 8 entries of 8 (lru, number)"),
        "{out}"
    );
}

#[test]
fn map_declarations_are_checked() {
    let cases: [(&str, &str); 5] = [
        (
            "function process_packet(pkt) lp.map{name = 'x', max_entries = 1} end",
            "maps are declared at the top level",
        ),
        (
            "local a = lp.map{name = 'x', max_entries = 1}\nlocal b = lp.map{name = 'x', max_entries = 2}\nfunction process_packet(pkt) end",
            "exists with another declaration",
        ),
        (
            "local a = lp.map{name = 'x', value = 'text', max_entries = 1}\nfunction process_packet(pkt) end",
            "value must be",
        ),
        (
            "local a = lp.map{name = 'x/y', max_entries = 1}\nfunction process_packet(pkt) end",
            "invalid declaration",
        ),
        (
            "local a = lp.map{name = 'x', max_entries = 1}\nfunction process_packet(pkt) a:set({}, 1) end",
            "map key must be",
        ),
    ];
    for (i, (src, want)) in cases.iter().enumerate() {
        let script = tmp(&format!("mapbad{i}.lua"), src.as_bytes());
        let o = lpctl(&["run", &script, "--pcap", &path("tests/data/udp8.pcap")]);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains(want), "case {i}: {all}");
    }
}

#[test]
fn sent_packets_go_to_their_own_capture_the_same_on_every_engine() {
    let script = tmp(
        "reply.lua",
        br#"
function process_packet(pkt)
  if pkt.udp then assert(lp.reply("pong"))
  elseif pkt.tcp then assert(lp.reply(nil, {flags = "RA"}))
  elseif pkt.icmp or pkt.icmp6 then pcall(lp.reply) end
  return lp.ACCEPT
end
"#,
    );
    let mut first: Option<Vec<u8>> = None;
    for engine in ["compiled", "wasmi", "wasmtime", "native"] {
        let sent = std::env::temp_dir().join(format!(
            "lpctl-cli-{}-sent-{engine}.pcap",
            std::process::id()
        ));
        let v = run_json(&script, engine, &["--sent", &sent.display().to_string()]);
        let n = v["stats"]["sent"]["packets"].as_u64().unwrap();
        assert!(n > 10, "{engine}: {v}");
        assert_eq!(v["stats"]["sent"]["failed"], 0);
        let per_packet: u64 = v["packets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["sent"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(per_packet, n, "{engine}: each packet says what it sent");
        let bytes = std::fs::read(&sent).unwrap();
        // a pcap header and n records, each at least a 20-byte IPv4 header
        assert!(bytes.len() >= 24 + n as usize * (16 + 20), "{engine}");
        match &first {
            None => first = Some(bytes),
            Some(f) => assert_eq!(&bytes, f, "{engine}: the sent packets differ"),
        }
    }
    // the text summary counts them; --send-packets 0 refuses every one
    let o = lpctl(&["run", &script, "--pcap", &path(PCAP)]);
    assert!(stdout(&o).contains(", sent "), "{}", stdout(&o));
    let v = run_json(&script, "compiled", &["--send-packets", "0"]);
    assert_eq!(v["stats"]["sent"]["packets"], 0);
    assert!(v["stats"]["errors"]["lua"].as_u64().unwrap() > 0, "{v}");
    expect_error(
        &[
            "run",
            &script,
            "--pcap",
            &path(PCAP),
            "--send-rate",
            "2000000",
        ],
        "--send-rate: send-rate 2000000 is out of range (0..=1000000)",
    );
}

#[test]
fn timers_run_between_packets_on_the_capture_clock_the_same_on_every_engine() {
    let script = tmp(
        "timer.lua",
        br#"
local armed = false
function process_packet(pkt)
  if not armed then
    armed = true
    local t0 = lp.now()
    -- the packets are a second apart: this runs before the third one
    assert(lp.timer(1500, function()
      assert(lp.now() - t0 == 1500000000, "the timer's clock is its due time")
      assert(lp.send(lp.packet.udp{src = "10.9.9.9", dst = "10.0.0.1", sport = 1, dport = 2,
                                   payload = "tick"}))
    end))
    local id = assert(lp.timer(500, function() error("cancelled: never runs") end))
    assert(lp.cancel(id))
    -- due after the capture's last packet: still pending at the end
    assert(lp.timer(3600000, function() end))
  end
  return lp.ACCEPT
end
"#,
    );
    let mut first: Option<Vec<u8>> = None;
    for engine in ["compiled", "wasmi", "wasmtime"] {
        let sent = std::env::temp_dir().join(format!(
            "lpctl-cli-{}-timer-sent-{engine}.pcap",
            std::process::id()
        ));
        let v = run_json(&script, engine, &["--sent", &sent.display().to_string()]);
        assert_eq!(v["stats"]["errors"]["lua"], 0, "{engine}: {v}");
        let t = &v["timers"];
        assert_eq!(t.as_array().map(Vec::len), Some(1), "{engine}: {v}");
        assert_eq!(t[0]["before"], v["packets"][2]["index"], "{engine}");
        assert_eq!(t[0]["sent"], 1);
        assert_eq!(t[0]["error"], serde_json::Value::Null);
        assert_eq!(t[0]["at_ns"], 1_700_000_001_500_000_000u64);
        let st = &v["stats"]["timers"];
        assert_eq!(
            (&st["runs"], &st["errors"], &st["pending"], &st["dropped"]),
            (&1.into(), &0.into(), &1.into(), &0.into()),
            "{engine}: {v}"
        );
        assert_eq!(v["stats"]["sent"]["packets"], 1);
        let bytes = std::fs::read(&sent).unwrap();
        // one record, stamped 1.5 s after the first packet, ending in the payload
        assert_eq!(bytes.len(), 24 + 16 + 20 + 8 + 4, "{engine}");
        assert_eq!(&bytes[24..28], &1_700_000_001u32.to_le_bytes());
        assert!(bytes.ends_with(b"tick"));
        match &first {
            None => first = Some(bytes),
            Some(f) => assert_eq!(&bytes, f, "{engine}: the sent packets differ"),
        }
    }
    // the text shows the run before the packet it ran before, and counts it
    let o = lpctl(&["run", &script, "--pcap", &path(PCAP)]);
    let out = stdout(&o);
    assert!(
        out.contains("timer     at 1700000001.500 s ran, sent 1"),
        "{out}"
    );
    assert!(
        out.contains("timers ran 1 (errors 0; pending 1, dropped 0)"),
        "{out}"
    );
    // the native baseline keeps no timers: lp.timer says so
    let o = lpctl(&["run", &script, "--pcap", &path(PCAP), "--engine", "native"]);
    assert!(
        stdout(&o).contains("timers are not available"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn log_levels_reach_the_host_on_every_engine() {
    let script = tmp(
        "levels.lua",
        br#"
local n = 0
function process_packet(pkt)
  n = n + 1
  if n == 1 then
    lp.debug("d", n)
    lp.log("i", n)
    lp.warn("w", n)
  end
  return lp.ACCEPT
end
"#,
    );
    let pcap = path(PCAP);
    for engine in ["compiled", "wasmi", "wasmtime", "native"] {
        let o = lpctl(&["run", &script, "--pcap", &pcap, "--engine", engine, "-v"]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        let log = stderr(&o);
        let name = std::path::Path::new(&script)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for want in [
            format!("debug: {name}: d\t1"),
            format!("log: {name}: i\t1"),
            format!("warn: {name}: w\t1"),
        ] {
            assert!(log.contains(&want), "{engine}: no {want:?} in {log}");
        }
    }
}

#[test]
fn inspect_shows_what_a_package_carries() {
    let lpk = std::env::temp_dir().join(format!("lpctl-cli-{}-inspect.lpk", std::process::id()));
    let lpk = lpk.display().to_string();
    let o = lpctl(&[
        "pack",
        &path("examples/drop-ssh.lua"),
        "--name",
        "ssh",
        "-o",
        &lpk,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let source = std::fs::read_to_string(path("examples/drop-ssh.lua")).unwrap();
    let bytes = std::fs::read(&lpk).unwrap();
    let tag = lpctl::output::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes)[..8]);
    let o = lpctl(&["script", "inspect", &lpk]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("ssh: tag {tag}  {} bytes\n", bytes.len())),
        "{out}"
    );
    assert!(out.contains("the built-in Lua guest"), "{out}");
    assert!(out.ends_with(&source), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&lpctl(&["-j", "script", "inspect", &lpk]))).unwrap();
    assert_eq!(v["name"], "ssh");
    assert_eq!(v["tag"], tag.as_str());
    assert_eq!(v["builtin_guest"], true);
    assert_eq!(v["script"], source.as_str());
    // another guest is named as such
    let foreign = tmp(
        "foreign.lpk",
        &runtime::package::build(b"\0asm\x01\0\0\0", "other", b"return 1").unwrap(),
    );
    let o = lpctl(&["script", "inspect", &foreign]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("another guest (wasmi only"),
        "{}",
        stdout(&o)
    );
    // not a package: the file is named
    let text = path("examples/drop-ssh.lua");
    expect_error(
        &["script", "inspect", &text],
        "drop-ssh.lua: not a luapkt package",
    );
}

/// The grammar is OBJECT COMMAND (`lpctl script run|bench|pack|log`); the older top-level
/// spellings stay, hidden, and do the same.
#[test]
fn script_run_bench_pack_are_the_same_commands() {
    let script = path("examples/drop-ssh.lua");
    let cap = path("tests/data/mixed.pcap");
    let new = lpctl(&["-j", "script", "run", &script, "--pcap", &cap]);
    let old = lpctl(&["-j", "run", &script, "--pcap", &cap]);
    assert!(new.status.success(), "{}", stderr(&new));
    assert_eq!(stdout(&new), stdout(&old));
    let o = lpctl(&[
        "-j",
        "script",
        "bench",
        &script,
        "--pcap",
        &cap,
        "--millis",
        "5",
        "--engines",
        "native",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = tmp("grammar.lpk", b"");
    let o = lpctl(&["script", "pack", &script, "-o", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&out).unwrap().starts_with(b"\0asm"));
    let help = stdout(&lpctl(&["--help"]));
    assert!(
        !help.contains("\n  run ") && help.contains("\n  script "),
        "{help}"
    );
}

/// What the Debian package carries besides lpctl: a man page per command, completions.
#[test]
fn man_pages_and_completions_are_generated() {
    let dir = std::env::temp_dir().join(format!("lpctl-man-{}", std::process::id()));
    let o = lpctl(&["generate", "man", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for page in [
        "lpctl.8",
        "lpctl-nft.8",
        "lpctl-script-check.8",
        "lpctl-save.8",
        "lpctl-restore.8",
    ] {
        let t = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(t.contains(".TH"), "{page}");
    }
    let t = std::fs::read_to_string(dir.join("lpctl-script-load.8")).unwrap();
    assert!(
        t.contains("lpctl script load"),
        "the synopsis names the whole command"
    );
    for shell in ["bash", "zsh", "fish"] {
        let o = lpctl(&["generate", "completion", shell]);
        assert!(
            o.status.success() && stdout(&o).contains("restore"),
            "{shell}"
        );
    }
}

/// A package of another format version (its luapkt.meta version byte) is refused, naming it.
#[test]
fn a_package_of_another_version_is_refused() {
    let ok = tmp("v1.lpk", b"");
    let o = lpctl(&["script", "pack", &path("examples/drop-ssh.lua"), "-o", &ok]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut bytes = std::fs::read(&ok).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"luapkt.meta")
        .expect("the meta section");
    assert_eq!(bytes[at + 11], 1, "meta version 1");
    bytes[at + 11] = 2;
    let v2 = tmp("v2.lpk", &bytes);
    for args in [
        vec!["script", "inspect", v2.as_str()],
        vec![
            "script",
            "run",
            v2.as_str(),
            "--pcap",
            "tests/data/udp8.pcap",
        ],
    ] {
        let o = lpctl(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains(&v2) && err.contains("malformed luapkt.meta"),
            "{args:?}: {err}"
        );
    }
}
