//! What lpctl's offline tests share: lpctl run as a user runs it, the repository's files, a
//! temporary file; for the cache examples, a capture written, an example run over it with
//! `lpctl -j run --sent`, and what it sent read back.
#![allow(dead_code)] // each test uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// lpctl with `args`, run to its end.
pub(crate) fn lpctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lpctl"))
        .args(args)
        .output()
        .expect("run lpctl")
}

/// The repository's root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A file in the temporary directory holding `contents`, named for this test process.
pub(crate) fn tmp(name: &str, contents: &[u8]) -> String {
    let p = std::env::temp_dir().join(format!("lpctl-test-{}-{name}", std::process::id()));
    std::fs::write(&p, contents).unwrap();
    p.display().to_string()
}

/// `examples/NAME`.
pub(crate) fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Writes `pkts` (raw IP) as a capture, a packet a second.
pub(crate) fn write_capture(path: &Path, pkts: &[Vec<u8>]) {
    let recs: Vec<(u64, &[u8])> = pkts
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u64 * 1_000_000_000, p.as_slice()))
        .collect();
    lpctl::pcap::write_raw_ip(path, &recs).unwrap();
}

/// `lpctl -j run SCRIPT --pcap PCAP --sent SENT EXTRA...`: its JSON, once it succeeded with no
/// call failing.
pub(crate) fn run_json(
    script: &Path,
    pcap: &Path,
    sent: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_lpctl"))
        .args(["-j", "run"])
        .arg(script)
        .arg("--pcap")
        .arg(pcap)
        .arg("--sent")
        .arg(sent)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stats = &v["stats"];
    let errors: u64 = stats["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e.as_u64().unwrap())
        .sum();
    assert_eq!(errors, 0, "{stats}");
    v
}

/// The value of `key` in the map `map` of `lpctl -j run`'s output (null when absent).
pub(crate) fn map_value(v: &serde_json::Value, map: &str, key: &str) -> serde_json::Value {
    v["maps"][map]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .map(|e| e["value"].clone())
        .unwrap_or(serde_json::Value::Null)
}

/// The IP packets of a capture `lpctl run --sent` wrote.
pub(crate) fn sent_packets(path: &Path) -> Vec<Vec<u8>> {
    lpctl::pcap::read_file(path)
        .unwrap()
        .into_iter()
        .map(|f| match f.kind {
            lpctl::pcap::FrameKind::Ip { data, .. } => data,
            other => panic!("not an IP packet: {other:?}"),
        })
        .collect()
}
