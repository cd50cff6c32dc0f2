//! `lpctl run`: a script over every packet of a capture, in order, through one instance.

use crate::engine::{self, Config, Kind, RunResult};
use crate::output::{self, Mode};
use crate::pcap::{self, FrameKind};
use anyhow::{bail, Context, Result};
use runtime::{ErrorKind, Limits, Meta, OnError, OwnedPacket, Verdict};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What `run` and `bench` take from the command line, unparsed.
#[derive(Clone, Debug)]
pub struct Options {
    pub script: PathBuf,
    pub pcap: PathBuf,
    pub function: String,
    pub arg: Option<String>,
    /// The sandbox's limits (their `on_error` unused: a run's is `on_error` below).
    pub limits: crate::script_cmd::LimitArgs,
    pub on_error: String,
    pub meta: MetaOptions,
}

/// Packet metadata from the command line, unparsed (`--mark`, `--ct-state`, ...).
#[derive(Clone, Debug, Default)]
pub struct MetaOptions {
    pub mark: Option<String>,
    pub iifname: Option<String>,
    pub oifname: Option<String>,
    pub hook: Option<String>,
    pub ct_state: Option<String>,
    pub ct_mark: Option<String>,
    pub ct_id: Option<String>,
}

/// How a capture's packet carries its metadata: a pcapng comment `luapkt-meta KEY=VALUE...`
/// whose keys are `lpctl run`'s options (`hook`, `iifname`, `oifname`, `mark`, `ct-state`,
/// `ct-mark`, `ct-id`; `function` and `arg`, hex, are for people: a run has one entry).
/// `lpctl script errors -w` writes it; `lpctl run` applies it where no option is given.
pub const META_COMMENT: &str = "luapkt-meta";

/// `--hook`'s names, by hook number (NF_INET_*).
const HOOKS: [&str; 5] = ["prerouting", "input", "forward", "output", "postrouting"];
/// `--ct-state`'s names and their bits (nft's `ct state`).
const CT_STATES: [(&str, u8); 4] = [
    ("new", abi::guest::ctx::CT_NEW),
    ("established", abi::guest::ctx::CT_ESTABLISHED),
    ("related", abi::guest::ctx::CT_RELATED),
    ("untracked", abi::guest::ctx::CT_UNTRACKED),
];

/// A hook as `--hook` takes it: its name, or its number past the inet hooks.
pub fn hook_name(hook: u8) -> String {
    HOOKS
        .get(usize::from(hook))
        .map_or_else(|| hook.to_string(), |n| n.to_string())
}

/// A conntrack state as `--ct-state` takes it (None for bits it has no name for).
pub fn ct_state_name(bits: u8) -> Option<&'static str> {
    CT_STATES.iter().find(|(_, b)| *b == bits).map(|(n, _)| *n)
}

impl MetaOptions {
    /// The metadata a `luapkt-meta` comment gives (None for any other comment; unknown keys
    /// are left out).
    pub fn from_comment(comment: &str) -> Option<MetaOptions> {
        let rest = comment.strip_prefix(META_COMMENT)?;
        if !rest.is_empty() && !rest.starts_with(' ') {
            return None;
        }
        let mut m = MetaOptions::default();
        for word in rest.split_whitespace() {
            let Some((k, v)) = word.split_once('=') else {
                continue;
            };
            let v = Some(v.to_string());
            match k {
                "hook" => m.hook = v,
                "iifname" => m.iifname = v,
                "oifname" => m.oifname = v,
                "mark" => m.mark = v,
                "ct-state" => m.ct_state = v,
                "ct-mark" => m.ct_mark = v,
                "ct-id" => m.ct_id = v,
                _ => {}
            }
        }
        Some(m)
    }

    /// These options, each unset one taken from `other`.
    pub fn or(&self, other: &MetaOptions) -> MetaOptions {
        MetaOptions {
            mark: self.mark.clone().or_else(|| other.mark.clone()),
            iifname: self.iifname.clone().or_else(|| other.iifname.clone()),
            oifname: self.oifname.clone().or_else(|| other.oifname.clone()),
            hook: self.hook.clone().or_else(|| other.hook.clone()),
            ct_state: self.ct_state.clone().or_else(|| other.ct_state.clone()),
            ct_mark: self.ct_mark.clone().or_else(|| other.ct_mark.clone()),
            ct_id: self.ct_id.clone().or_else(|| other.ct_id.clone()),
        }
    }

    /// The metadata every packet gets (its family is set per packet); errors name the option.
    pub fn meta(&self) -> Result<Meta> {
        use abi::guest::ctx;
        let u32_opt = |flag: &str, v: &Option<String>| -> Result<Option<u32>> {
            v.as_ref()
                .map(|s| {
                    let t = s.trim();
                    let n = match t.strip_prefix("0x") {
                        Some(h) => u64::from_str_radix(h, 16).ok(),
                        None => t.parse::<u64>().ok(),
                    };
                    n.and_then(|n| u32::try_from(n).ok())
                        .with_context(|| format!("--{flag} {s}: expected 0..4294967295 (or 0x...)"))
                })
                .transpose()
        };
        let name = |flag: &str, v: &Option<String>| -> Result<[u8; 16]> {
            match v {
                None => Ok([0; 16]),
                Some(n) if n.is_empty() || n.len() > 15 || n.contains('/') => {
                    bail!("--{flag} {n}: an interface name is 1..15 bytes without '/'")
                }
                Some(n) => Ok(runtime::packet::ifname(n)),
            }
        };
        let hook = match self.hook.as_deref() {
            None => 0,
            // a name, or its number written plainly ("0".."4")
            Some(h) => match (0..HOOKS.len()).find(|&i| HOOKS[i] == h || i.to_string() == h) {
                Some(i) => i as u8,
                None => {
                    bail!("--hook {h}: expected prerouting, input, forward, output or postrouting")
                }
            },
        };
        let ct_mark = u32_opt("ct-mark", &self.ct_mark)?;
        let ct_id = u32_opt("ct-id", &self.ct_id)?;
        let state = match self.ct_state.as_deref() {
            None => None,
            Some(s) => match CT_STATES.iter().find(|(n, _)| *n == s) {
                Some((_, bits)) => Some(*bits),
                None => bail!("--ct-state {s}: expected new, established, related or untracked"),
            },
        };
        let ct =
            (state.is_some() || ct_mark.is_some() || ct_id.is_some()).then(|| runtime::Conntrack {
                state: state.unwrap_or(ctx::CT_NEW),
                mark: ct_mark.unwrap_or(0),
                id: ct_id.unwrap_or(0),
            });
        Ok(Meta {
            hook,
            mark: u32_opt("mark", &self.mark)?.unwrap_or(0),
            iifname: name("iifname", &self.iifname)?,
            oifname: name("oifname", &self.oifname)?,
            ct,
            ..Meta::default()
        })
    }
}

/// A whole number from an option; `scaled` accepts K, M, G suffixes (powers of 1024).
pub fn parse_number(flag: &str, s: &str, scaled: bool) -> Result<u64> {
    let t = s.trim().replace('_', "");
    // `max`: the largest value the limit accepts
    if t == "max" {
        if let Some(m) = limit_max(flag) {
            return Ok(m);
        }
    }
    let (digits, mult) = match t.chars().last() {
        Some(c) if scaled && "kKmMgG".contains(c) => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                _ => 1 << 30,
            };
            (&t[..t.len() - 1], m)
        }
        _ => (t.as_str(), 1),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("--{flag} {s}: not a whole number"))?;
    n.checked_mul(mult)
        .with_context(|| format!("--{flag} {s}: too large"))
}

/// The send limits as the command line gives them (`--send-packets`, `--send-bytes`,
/// `--send-rate`, `--send-byte-rate`), unparsed.
#[derive(Clone, Debug, Default)]
pub struct SendArgs {
    pub packets: Option<String>,
    pub bytes: Option<String>,
    pub rate: Option<String>,
    pub byte_rate: Option<String>,
}

impl SendArgs {
    /// Each given limit as a number (byte counts take K, M, G suffixes); ranges are checked
    /// with the other limits.
    pub fn parse(&self) -> Result<nft_plugin::luapkt::SendLimits<Option<u32>>> {
        let one = |flag: &str, s: &Option<String>, scaled: bool| -> Result<Option<u32>> {
            s.as_deref()
                .map(|s| {
                    u32::try_from(parse_number(flag, s, scaled)?)
                        .with_context(|| format!("--{flag} {s}: too large"))
                })
                .transpose()
        };
        Ok(nft_plugin::luapkt::SendLimits {
            send_packets: one("send-packets", &self.packets, false)?,
            send_bytes: one("send-bytes", &self.bytes, true)?,
            send_rate: one("send-rate", &self.rate, false)?,
            send_byte_rate: one("send-byte-rate", &self.byte_rate, true)?,
        })
    }
}

/// The largest accepted value of a limit given as `--FLAG max`.
fn limit_max(flag: &str) -> Option<u64> {
    use abi::limits::*;
    Some(match flag {
        "fuel" => MAX_FUEL,
        "instructions" => MAX_INSTRUCTIONS.into(),
        "memory" => MAX_MEMORY,
        "recursion" => MAX_RECURSION.into(),
        "pcall-depth" => MAX_PCALL_DEPTH.into(),
        "load-fuel" => MAX_LOAD_FUEL,
        "send-packets" => MAX_SEND_PACKETS.into(),
        "send-bytes" => MAX_SEND_BYTES.into(),
        "send-rate" => MAX_SEND_RATE.into(),
        "send-byte-rate" => MAX_SEND_BYTE_RATE.into(),
        _ => return None,
    })
}

impl Options {
    /// The sandbox limits, each checked against its range; errors name the option.
    pub fn limits(&self) -> Result<Limits> {
        self.limits.runtime_limits()
    }

    /// Reads the script and builds the engine configuration.
    pub fn config(&self) -> Result<Config> {
        let limits = self.limits()?;
        let bytes = std::fs::read(&self.script)
            .with_context(|| format!("cannot read script {}", self.script.display()))?;
        // a package (.lpk) brings its own name and guest; a .lua file runs in the built-in guest
        let (name, source, guest) = if bytes.starts_with(b"\0asm") {
            let p = runtime::package::parse(&bytes)
                .with_context(|| format!("{}: invalid package", self.script.display()))?;
            (
                p.name.to_string(),
                p.script.to_vec(),
                Some(p.module.to_vec()),
            )
        } else {
            let name = self
                .script
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "script".into());
            (name, bytes, None)
        };
        let on_error = OnError::from_name(&self.on_error).with_context(|| {
            format!(
                "--on-error {}: expected break, accept or drop",
                self.on_error
            )
        })?;
        Ok(Config {
            name,
            source,
            function: self.function.clone(),
            arg: self.arg.as_ref().map(|a| a.clone().into_bytes()),
            limits,
            on_error,
            guest,
        })
    }
}

/// The IP packets of a capture (skipped frames reported separately).
pub struct Capture {
    /// (frame index, NFPROTO, bytes from the network header)
    pub packets: Vec<(usize, u8, Vec<u8>)>,
    /// Ethernet headers of `packets` (Ethernet captures).
    pub eths: Vec<Option<[u8; 14]>>,
    /// Timestamps of `packets`, nanoseconds.
    pub times: Vec<u64>,
    /// Metadata `packets` carry in their pcapng comments (`luapkt-meta`).
    pub metas: Vec<Option<MetaOptions>>,
    pub skipped: Vec<(usize, String)>,
}

pub fn read_capture(path: &Path) -> Result<Capture> {
    let frames = pcap::read_file(path)?;
    let mut packets = Vec::new();
    let mut times = Vec::new();
    let mut eths = Vec::new();
    let mut metas = Vec::new();
    let mut skipped = Vec::new();
    for f in frames {
        match f.kind {
            FrameKind::Ip { nfproto, data } => {
                packets.push((f.index, nfproto, data));
                times.push(f.ts_ns);
                eths.push(f.eth);
                metas.push(f.comment.as_deref().and_then(MetaOptions::from_comment));
            }
            FrameKind::Skipped { reason } => skipped.push((f.index, reason)),
        }
    }
    Ok(Capture {
        packets,
        eths,
        times,
        metas,
        skipped,
    })
}

/// A script's maps as `lpctl run -j` shows them: by name, each with its declaration and its
/// entries (keys and byte values as text when they are UTF-8, else in hex as `key_hex`,
/// `value_hex`).
pub fn maps_json(maps: &runtime::maps::ScriptMaps) -> Value {
    use runtime::maps::{MapKind, Value as V, ValueKind};
    let mut out = serde_json::Map::new();
    for m in maps.iter() {
        let s = m.map.spec();
        let mut entries = Vec::new();
        m.map.for_each(|k, v| {
            let mut e = serde_json::Map::new();
            match std::str::from_utf8(k) {
                Ok(t) => e.insert("key".into(), json!(t)),
                Err(_) => e.insert("key_hex".into(), json!(output::hex(k))),
            };
            match v {
                V::Int(n) => e.insert("value".into(), json!(n)),
                V::Float(f) => e.insert("value".into(), json!(f)),
                V::Bytes(b) => match std::str::from_utf8(b) {
                    Ok(t) => e.insert("value".into(), json!(t)),
                    Err(_) => e.insert("value_hex".into(), json!(output::hex(b))),
                },
            };
            entries.push(Value::Object(e));
        });
        out.insert(
            m.name.clone(),
            json!({
                "type": if s.kind == MapKind::Lru { "lru" } else { "hash" },
                "value": if s.value == ValueKind::Bytes { "bytes" } else { "number" },
                "key_size": s.key_max,
                "value_size": s.value_max,
                "max_entries": s.max_entries,
                "entries": entries,
            }),
        );
    }
    Value::Object(out)
}

/// The capture's packets as writable packets with the command line's metadata, and where an
/// option is not given, the packet's own (`luapkt-meta` comments).
pub fn packets(capture: &Capture, options: &MetaOptions) -> Result<Vec<OwnedPacket>> {
    let common = options.meta()?;
    capture
        .packets
        .iter()
        .zip(&capture.eths)
        .zip(&capture.metas)
        .map(|(((index, nfproto, data), eth), own)| {
            let meta = match own {
                None => common,
                Some(own) => options
                    .or(own)
                    .meta()
                    .with_context(|| format!("packet {index}: its luapkt-meta comment"))?,
            };
            Ok(OwnedPacket::new(
                data.clone(),
                Meta {
                    nfproto: *nfproto,
                    eth: *eth,
                    ..meta
                },
            ))
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    verdicts: [u64; 5],
    errors: [u64; 7],
    fuel_total: u64,
    fuel_max: u64,
    metered: bool,
}

fn verdict_slot(v: Verdict) -> usize {
    match v {
        Verdict::Accept => 0,
        Verdict::Drop => 1,
        Verdict::Continue => 2,
        Verdict::Break => 3,
        Verdict::Queue(_) => 4,
    }
}

const VERDICTS: [&str; 5] = ["accept", "drop", "continue", "break", "queue"];

impl Tally {
    fn add(&mut self, r: &RunResult) {
        self.verdicts[verdict_slot(r.verdict)] += 1;
        if let Some((k, _)) = &r.error {
            let i = ErrorKind::ALL.iter().position(|x| x == k).unwrap_or(0);
            self.errors[i] += 1;
        }
        if let Some(f) = r.fuel {
            self.metered = true;
            self.fuel_total += f;
            self.fuel_max = self.fuel_max.max(f);
        }
    }
}

/// Where `run` writes the packets as the script left them (`--out`).
#[derive(Clone, Debug, Default)]
pub struct Output {
    pub path: Option<PathBuf>,
    /// Keep the packets the verdict dropped.
    pub keep_dropped: bool,
    /// Where the packets the script sent go (`--sent`).
    pub sent: Option<PathBuf>,
}

/// `kind`: `None` picks as the kernel does for a script that names no engine: compiled for
/// the built-in guest, wasmi for another.
/// The engine a script runs on unless told: the compiled guest, as the kernel's default; wasmi
/// for a package that carries another guest.
pub fn default_kind(cfg: &Config) -> Kind {
    if cfg.guest_wasm() == guest_lua::LUA_WASM {
        Kind::Compiled
    } else {
        Kind::Wasmi
    }
}

pub fn run(
    opts: &Options,
    kind: Option<Kind>,
    verbose: bool,
    out: &Output,
    mode: Mode,
) -> Result<()> {
    let cfg = opts.config()?;
    opts.meta.meta()?;
    let capture = read_capture(&opts.pcap)?;
    let kind = kind.unwrap_or_else(|| default_kind(&cfg));
    let host = engine::wasmi::CliHost::new(verbose);
    let mut eng = engine::load_with_host(kind, &cfg, host.clone())?;
    let mut tally = Tally::default();
    let mut rows = Vec::with_capacity(capture.packets.len());
    let pkts = packets(&capture, &opts.meta)?;
    // timers that ran, with the index of the packet they ran before
    let mut timers: Vec<(usize, engine::TimerRun)> = Vec::new();
    let set_clock = |ns: u64| host.set_clock(ns);
    for (((index, _, _), p), ts) in capture.packets.iter().zip(&pkts).zip(&capture.times) {
        // the script's clock (lp.now, its send rates, its timers) is the capture's: the
        // timers due by this packet run first
        timers.extend(
            eng.run_timers(*ts, &set_clock)
                .into_iter()
                .map(|t| (*index, t)),
        );
        host.set_clock(*ts);
        let r = eng.run(p);
        tally.add(&r);
        rows.push((*index, r));
    }
    // what the packets' calls and the timers sent, in time order (a timer before the packet
    // it ran before)
    let mut sent: Vec<(usize, u64, Vec<u8>)> = timers
        .iter()
        .flat_map(|(_, t)| t.sent.iter().map(|b| (usize::MAX, t.at_ns, b.clone())))
        .collect();
    sent.extend(
        capture
            .packets
            .iter()
            .zip(&pkts)
            .zip(&capture.times)
            .flat_map(|(((index, _, _), p), ts)| {
                std::mem::take(&mut *p.sent.borrow_mut())
                    .into_iter()
                    .map(move |(_, bytes)| (*index, *ts, bytes))
            }),
    );
    sent.sort_by_key(|(_, ts, _)| *ts);
    let timer_stats = host.timers.counters();
    if let Some(path) = &out.sent {
        let records: Vec<(u64, &[u8])> =
            sent.iter().map(|(_, ts, b)| (*ts, b.as_slice())).collect();
        pcap::write_raw_ip(path, &records)?;
    }
    let sends = host.sends.counters();
    if let Some(path) = &out.path {
        let data: Vec<Vec<u8>> = pkts.into_iter().map(OwnedPacket::into_bytes).collect();
        let kept: Vec<(u64, &[u8])> = rows
            .iter()
            .zip(&data)
            .zip(&capture.times)
            .filter(|((r, _), _)| out.keep_dropped || r.1.verdict != Verdict::Drop)
            .map(|((_, data), ts)| (*ts, data.as_slice()))
            .collect();
        pcap::write_raw_ip(path, &kept)?;
    }
    let n = rows.len() as u64;
    if mode.json {
        let packets: Vec<Value> = rows
            .iter()
            .map(|(i, r)| {
                let mut o = json!({
                    "index": i,
                    "verdict": r.verdict.name(),
                    "error": r.error.as_ref().map(|(_, m)| m.clone()),
                });
                if let Verdict::Queue(q) = r.verdict {
                    o["queue"] = json!(q);
                }
                if let Some(f) = r.fuel {
                    o["fuel"] = json!(f);
                }
                let n = sent.iter().filter(|(at, _, _)| at == i).count();
                if n > 0 {
                    o["sent"] = json!(n);
                }
                o
            })
            .collect();
        let skipped: Vec<Value> = capture
            .skipped
            .iter()
            .map(|(i, why)| json!({"index": i, "reason": why}))
            .collect();
        let verdicts: serde_json::Map<String, Value> = VERDICTS
            .iter()
            .zip(tally.verdicts)
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let errors: serde_json::Map<String, Value> = ErrorKind::ALL
            .iter()
            .zip(tally.errors)
            .map(|(k, v)| (k.name().to_string(), json!(v)))
            .collect();
        let mut stats = json!({
            "engine": kind.to_string(),
            "packets": n,
            "skipped": capture.skipped.len(),
            "verdicts": verdicts,
            "errors": errors,
        });
        stats["sent"] = json!({
            "packets": sends.sent_packets,
            "bytes": sends.sent_bytes,
            "refused": sends.refused,
            "failed": sends.failed,
        });
        if tally.metered {
            stats["fuel_total"] = json!(tally.fuel_total);
            stats["fuel_max"] = json!(tally.fuel_max);
            stats["fuel_per_packet"] = json!(tally.fuel_total.checked_div(n).unwrap_or(0));
        }
        if !timers.is_empty() || timer_stats != runtime::TimerCounters::default() {
            stats["timers"] = json!({
                "runs": timer_stats.runs,
                "errors": timer_stats.errors,
                "pending": timer_stats.pending,
                "dropped": timer_stats.dropped,
            });
        }
        let mut doc = json!({"packets": packets, "skipped": skipped, "stats": stats});
        if !timers.is_empty() {
            doc["timers"] = timers
                .iter()
                .map(|(before, t)| {
                    json!({
                        "at_ns": t.at_ns,
                        "before": before,
                        "error": t.error.as_ref().map(|(_, m)| m.clone()),
                        "sent": t.sent.len(),
                    })
                })
                .collect();
        }
        if host.maps.iter().next().is_some() {
            doc["maps"] = maps_json(&host.maps);
        }
        output::json(mode, &doc);
        return Ok(());
    }
    // timers first: the stable sort below keeps each before the packet it ran before
    let mut lines: Vec<(usize, String)> = timers
        .iter()
        .map(|(before, t)| {
            let what = match &t.error {
                Some((_, m)) => format!("error: {m}"),
                None if t.sent.is_empty() => "ran".to_string(),
                None => format!("ran, sent {}", t.sent.len()),
            };
            let at = t.at_ns as f64 / 1e9;
            (*before, format!("{:>6}  timer     at {at:.3} s {what}", ""))
        })
        .collect();
    lines.extend(rows.iter().map(|(i, r)| {
        let v = match r.verdict {
            Verdict::Queue(q) => format!("queue {q}"),
            v => v.name().to_string(),
        };
        match &r.error {
            Some((_, m)) => (*i, format!("{i:>6}  {v:<9} error: {m}")),
            None => (*i, format!("{i:>6}  {v}")),
        }
    }));
    lines.extend(
        capture
            .skipped
            .iter()
            .map(|(i, why)| (*i, format!("{i:>6}  skipped   ({why})"))),
    );
    lines.sort_by_key(|(i, _)| *i);
    for (_, l) in &lines {
        crate::outln!("{l}");
    }
    let mut summary = format!("{n} packets:");
    for (name, c) in VERDICTS.iter().zip(tally.verdicts) {
        if c > 0 {
            summary.push_str(&format!(" {name} {c},"));
        }
    }
    let errs: u64 = tally.errors.iter().sum();
    summary.push_str(&format!(" errors {errs}"));
    if errs > 0 {
        let parts: Vec<String> = ErrorKind::ALL
            .iter()
            .zip(tally.errors)
            .filter(|(_, c)| *c > 0)
            .map(|(k, c)| format!("{} {c}", k.name()))
            .collect();
        summary.push_str(&format!(" ({})", parts.join(", ")));
    }
    if !capture.skipped.is_empty() {
        summary.push_str(&format!(", skipped {}", capture.skipped.len()));
    }
    if sends != runtime::SendCounters::default() {
        summary.push_str(&format!(
            ", sent {} ({} bytes; refused {}, failed {})",
            sends.sent_packets, sends.sent_bytes, sends.refused, sends.failed
        ));
    }
    if timer_stats != runtime::TimerCounters::default() {
        summary.push_str(&format!(
            ", timers ran {} (errors {}; pending {}, dropped {})",
            timer_stats.runs, timer_stats.errors, timer_stats.pending, timer_stats.dropped
        ));
    }
    if tally.metered && n > 0 {
        summary.push_str(&format!(
            "; fuel {} per packet, max {}",
            tally.fuel_total / n,
            tally.fuel_max
        ));
    }
    crate::outln!("{summary}");
    for m in host.maps.iter() {
        let s = m.map.spec();
        crate::outln!(
            "map {}: {} entries of {} ({}, {})",
            m.name,
            m.map.len(),
            s.max_entries,
            if s.kind == runtime::maps::MapKind::Lru {
                "lru"
            } else {
                "hash"
            },
            if s.value == runtime::maps::ValueKind::Bytes {
                "bytes"
            } else {
                "number"
            },
        );
    }
    Ok(())
}
