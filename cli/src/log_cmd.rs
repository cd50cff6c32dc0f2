//! `lpctl script log NAME [-f]` and `lpctl script errors NAME [-w FILE]`: a loaded script's log lines
//! and the errors it kept with their packets, read from the kernel's rings
//! (`abi::records`). Errors written with `-w` are a pcapng capture that `lpctl script run` replays
//! with each packet's metadata (its `luapkt-meta` comment).

use crate::output::{self, hex, Mode};
use crate::pcap::{self, NgPacket};
use crate::run::{ct_state_name, hook_name, META_COMMENT};
use crate::script_cmd::envelope;
use abi::netlink::stat;
use abi::records::{records, ErrorRecord, LogRecord};
use anyhow::{bail, Context, Result};
use nft_plugin::luapkt::{Luapkt, RecordBatch, Ring};
use runtime::ErrorKind;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// How often `-f` asks the kernel for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Which lines `lpctl log` shows: those of this level and above.
pub use runtime::LogLevel as Level;

/// Kernel time (boot-relative nanoseconds) as dmesg shows it.
fn stamp(ns: u64) -> String {
    format!(
        "[{:5}.{:06}]",
        ns / 1_000_000_000,
        ns % 1_000_000_000 / 1000
    )
}

fn level_name(level: u8) -> &'static str {
    Level::from_code(level.into()).name()
}

/// Reads `ring` from `from` until a read comes back empty.
fn read_all(lp: &mut Luapkt, name: &str, ring: Ring, from: u64) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut next = from;
    // a ring holds a few reads' worth at most; bound the loop all the same
    for _ in 0..64 {
        let b = lp.read_ring(name, ring, next)?;
        let done = b.data.is_empty();
        next = b.next;
        out.push(b);
        if done {
            break;
        }
    }
    Ok(out)
}

/// A line as text, stamped as dmesg stamps.
fn log_text(r: &LogRecord<'_>) -> String {
    format!(
        "{} {}: {}",
        stamp(r.header.time_ns),
        level_name(r.header.level),
        String::from_utf8_lossy(r.text)
    )
}

fn log_json(r: &LogRecord<'_>) -> Value {
    json!({
        "seq": r.header.seq,
        "time_ns": r.header.time_ns,
        "level": level_name(r.header.level),
        "text": String::from_utf8_lossy(r.text),
    })
}

/// `lpctl log NAME`: the script's log lines still kept; with `follow`, then new ones as they
/// come, until interrupted or the script is unloaded.
pub fn log(name: &str, follow: bool, level: Level, mode: Mode) -> Result<()> {
    let mut lp = Luapkt::open()?;
    let shown = |r: &LogRecord<'_>| Level::from_code(r.header.level.into()) >= level;
    if !follow {
        let mut lines = Vec::new();
        let mut lost = 0;
        for b in read_all(&mut lp, name, Ring::Log, 0)? {
            lost += b.lost;
            for r in records::<LogRecord<'_>>(&b.data) {
                let r = r.map_err(|e| {
                    anyhow::anyhow!("log of {name}: malformed record at byte {}", e.at)
                })?;
                if shown(&r) {
                    lines.push(if mode.json {
                        log_json(&r)
                    } else {
                        Value::String(log_text(&r))
                    });
                }
            }
        }
        if mode.json {
            let mut v = envelope("line", lines);
            if let Some(list) = v["luapkt"].as_array_mut() {
                list.push(json!({ "lost": lost }));
            }
            output::json(mode, &v);
        } else {
            for l in lines {
                crate::outln!("{}", l.as_str().unwrap_or_default());
            }
        }
        return Ok(());
    }
    // following: one line (or JSON object) at a time, flushed; a closed stdout ends it
    let mut next = 0;
    let stdout = std::io::stdout();
    loop {
        let b = match lp.read_ring(name, Ring::Log, next) {
            Ok(b) => b,
            Err(e) if next > 0 => {
                // unloaded while followed: say so and stop
                return Err(anyhow::Error::new(e).context(format!("following the log of {name}")));
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = stdout.lock();
        let mut write =
            |s: String| -> bool { writeln!(out, "{s}").and_then(|_| out.flush()).is_ok() };
        if b.lost > 0 {
            let s = if mode.json {
                json!({ "lost": b.lost }).to_string()
            } else {
                format!(
                    "-- {} lines overwritten before they could be read --",
                    b.lost
                )
            };
            if !write(s) {
                return Ok(());
            }
        }
        for r in records::<LogRecord<'_>>(&b.data) {
            let r =
                r.map_err(|e| anyhow::anyhow!("log of {name}: malformed record at byte {}", e.at))?;
            if !shown(&r) {
                continue;
            }
            let s = if mode.json {
                log_json(&r).to_string()
            } else {
                log_text(&r)
            };
            if !write(s) {
                return Ok(());
            }
        }
        drop(out);
        let more = !b.data.is_empty();
        next = b.next;
        if !more {
            std::thread::sleep(FOLLOW_EVERY);
        }
    }
}

fn ifname(b: &[u8; 16]) -> String {
    let n = b.iter().position(|c| *c == 0).unwrap_or(16);
    String::from_utf8_lossy(&b[..n]).into_owned()
}

fn kind_name(kind: u8) -> &'static str {
    usize::from(kind)
        .checked_sub(usize::from(stat::ERR_LUA))
        .and_then(|i| ErrorKind::ALL.get(i))
        .map_or("unknown", |k| k.name())
}

/// The `luapkt-meta` comment that gives `lpctl script run` the packet's metadata back.
fn meta_comment(e: &ErrorRecord<'_>) -> String {
    let h = &e.header;
    let mut c = format!("{META_COMMENT} hook={}", hook_name(h.hook));
    for (key, v) in [
        ("iifname", ifname(&h.iifname)),
        ("oifname", ifname(&h.oifname)),
    ] {
        if !v.is_empty() && !v.contains(char::is_whitespace) {
            c.push_str(&format!(" {key}={v}"));
        }
    }
    c.push_str(&format!(" mark={:#x}", h.mark));
    if h.flags & abi::records::ERROR_F_CT != 0 {
        if let Some(s) = ct_state_name(h.ct_state) {
            c.push_str(&format!(" ct-state={s}"));
        }
        c.push_str(&format!(" ct-mark={:#x} ct-id={}", h.ct_mark, h.ct_id));
    }
    c.push_str(&format!(" function={}", String::from_utf8_lossy(e.func)));
    if !e.arg.is_empty() {
        c.push_str(&format!(" arg={}", hex(e.arg)));
    }
    c
}

fn error_json(e: &ErrorRecord<'_>) -> Value {
    let h = &e.header;
    json!({
        "seq": h.seq,
        "time_ns": h.time_ns,
        "kind": kind_name(h.kind),
        "message": String::from_utf8_lossy(e.message),
        "function": String::from_utf8_lossy(e.func),
        "arg": (!e.arg.is_empty()).then(|| String::from_utf8_lossy(e.arg)),
        "hook": hook_name(h.hook),
        "iifname": ifname(&h.iifname),
        "oifname": ifname(&h.oifname),
        "mark": h.mark,
        "ct": (h.flags & abi::records::ERROR_F_CT != 0).then(|| json!({
            "state": ct_state_name(h.ct_state),
            "mark": h.ct_mark,
            "id": h.ct_id,
        })),
        "len": h.pkt_len,
        "kept": e.packet.len(),
        "packet": hex(e.packet),
    })
}

/// `lpctl script errors NAME [-w FILE]`: the errors the script kept, newest last; with
/// `write`, their packets as a pcapng capture for `lpctl script run`.
pub fn errors(name: &str, write: Option<&Path>, mode: Mode) -> Result<()> {
    let mut lp = Luapkt::open()?;
    let batches = read_all(&mut lp, name, Ring::Errors, 0)?;
    let mut all = Vec::new();
    for b in &batches {
        for r in records::<ErrorRecord<'_>>(&b.data) {
            all.push(r.map_err(|e| {
                anyhow::anyhow!("errors of {name}: malformed record at byte {}", e.at)
            })?);
        }
    }
    if let Some(path) = write {
        if all.is_empty() {
            bail!(
                "script {name} has kept no errors: nothing to write to {}",
                path.display()
            );
        }
        let packets: Vec<NgPacket<'_>> = all
            .iter()
            .map(|e| NgPacket {
                ts_ns: e.header.time_ns,
                orig_len: e.header.pkt_len,
                data: e.packet,
                comment: Some(meta_comment(e)),
            })
            .collect();
        pcap::write_pcapng_raw_ip(path, &packets)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if mode.json {
        output::json(
            mode,
            &envelope("error", all.iter().map(error_json).collect()),
        );
        return Ok(());
    }
    for e in &all {
        let h = &e.header;
        crate::outln!(
            "#{} {} {}: {}",
            h.seq,
            stamp(h.time_ns),
            kind_name(h.kind),
            String::from_utf8_lossy(e.message)
        );
        let mut ct = String::new();
        if h.flags & abi::records::ERROR_F_CT != 0 {
            ct = format!(
                "  ct {} mark {:#x} id {}",
                ct_state_name(h.ct_state).unwrap_or("invalid"),
                h.ct_mark,
                h.ct_id
            );
        }
        crate::outln!(
            "\tfunction {}{}  hook {}  iif {}  oif {}  mark {:#x}{}  len {} ({} kept)",
            String::from_utf8_lossy(e.func),
            if e.arg.is_empty() {
                String::new()
            } else {
                format!("  arg {:?}", String::from_utf8_lossy(e.arg))
            },
            hook_name(h.hook),
            ifname(&h.iifname),
            ifname(&h.oifname),
            h.mark,
            ct,
            h.pkt_len,
            e.packet.len()
        );
        crate::outln!("\t{}", hex(&e.packet[..e.packet.len().min(48)]));
    }
    if let (Some(path), Some(first)) = (write, all.first()) {
        let mut replay = format!(
            "lpctl script run SCRIPT --pcap {} --function {}",
            path.display(),
            String::from_utf8_lossy(first.func)
        );
        if !first.arg.is_empty() {
            replay.push_str(&format!(" --arg {:?}", String::from_utf8_lossy(first.arg)));
        }
        eprintln!(
            "wrote {} packet(s) to {}; replay with: {replay}",
            all.len(),
            path.display()
        );
    }
    Ok(())
}
