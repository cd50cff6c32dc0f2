//! `lpctl serve --queue N SCRIPT...`: NFQUEUE mode, for machines where nft_lua cannot load. The
//! same scripts, library and limits as in the kernel, on the fastest userspace engine (the
//! compiled guest; wasmi for a package that carries another guest), run on the packets nft
//! queues with `queue num N`; each packet goes back with its verdict, rewritten when a script
//! changed it, with the mark a script set.
//!
//! The scripts run in the order given: the first verdict that is not `lp.CONTINUE` decides.
//! Verdicts map as the queue allows: accept and drop as they are, `lp.QUEUE(n)` to queue n; a
//! queued packet cannot continue in the rule that queued it, so continue and break (and a
//! script's error resolved so) accept it for this hook. What is not here: pkt.ct and pkt.eth
//! (nfnetlink_queue is asked for neither), lp.send and lp.reply (counted, not sent), timers.

use crate::engine::{self, Engine, Kind};
use crate::output::{self, Mode};
use crate::run::{self, Options};
use crate::script_cmd::{envelope, LimitArgs};
use abi::verdict::Verdict;
use anyhow::{Context, Result};
use nft_plugin::nfqueue::{Queue, QueuedPacket, NF_ACCEPT, NF_DROP, NF_QUEUE};
use runtime::packet::{Meta, OwnedPacket};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

pub struct ServeOptions {
    pub queue: u16,
    pub scripts: Vec<PathBuf>,
    pub function: String,
    pub arg: Option<String>,
    pub limits: LimitArgs,
    pub on_error: String,
    /// Stop after this many packets (and print the tally).
    pub count: Option<u64>,
    /// Print each packet's verdict and each error on stderr.
    pub verbose: bool,
}

/// Interface names by index, from /sys/class/net (read again on a miss, at most once a second:
/// an index it does not list stays nameless meanwhile).
#[derive(Default)]
struct Ifnames {
    names: HashMap<u32, [u8; 16]>,
    read: Option<Instant>,
}

impl Ifnames {
    fn get(&mut self, index: Option<u32>) -> [u8; 16] {
        let Some(index) = index else {
            return [0; 16];
        };
        let stale = self.read.is_none_or(|t| t.elapsed().as_secs() >= 1);
        if !self.names.contains_key(&index) && stale {
            self.reload();
        }
        self.names.get(&index).copied().unwrap_or([0; 16])
    }

    fn reload(&mut self) {
        self.read = Some(Instant::now());
        self.names.clear();
        let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
            return;
        };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let index = std::fs::read_to_string(e.path().join("ifindex"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            if let Some(i) = index {
                let mut n = [0u8; 16];
                let b = name.as_bytes();
                n[..b.len().min(15)].copy_from_slice(&b[..b.len().min(15)]);
                self.names.insert(i, n);
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    packets: u64,
    accept: u64,
    drop: u64,
    queue: u64,
    rewritten: u64,
    errors: u64,
    sends_dropped: u64,
    warned_own_queue: bool,
}

/// ETH_P_IP, ETH_P_IPV6 to the family the script sees (0: let the version nibble say).
fn nfproto(hw_protocol: u16) -> u8 {
    match hw_protocol {
        0x0800 => abi::guest::ctx::NFPROTO_IPV4,
        0x86dd => abi::guest::ctx::NFPROTO_IPV6,
        _ => 0,
    }
}

pub fn serve(opts: &ServeOptions, mode: Mode) -> Result<()> {
    let mut engines: Vec<(String, Box<dyn Engine>)> = Vec::new();
    for script in &opts.scripts {
        let o = Options {
            script: script.clone(),
            pcap: PathBuf::new(),
            function: opts.function.clone(),
            arg: opts.arg.clone(),
            limits: opts.limits.clone(),
            on_error: opts.on_error.clone(),
            meta: Default::default(),
        };
        let cfg = o.config()?;
        let kind: Kind = run::default_kind(&cfg);
        let host = engine::wasmi::CliHost::new(opts.verbose);
        let e = engine::load_with_host(kind, &cfg, host)?;
        engines.push((cfg.name.clone(), e));
    }
    let mut q = Queue::bind(opts.queue, 0xffff, 4096)
        .with_context(|| format!("queue {} (is another program bound to it?)", opts.queue))?;
    if opts.verbose {
        eprintln!(
            "lpctl serve: queue {}: {} script(s)",
            opts.queue,
            engines.len()
        );
    }
    let mut names = Ifnames::default();
    let mut t = Tally::default();
    let start = Instant::now();
    let mut busy = std::time::Duration::ZERO;
    while opts.count.is_none_or(|c| t.packets < c) {
        for p in q.recv()? {
            let began = Instant::now();
            let (verdict, mark, payload) = judge(
                &mut engines,
                opts.queue,
                &p,
                &mut names,
                &mut t,
                opts.verbose,
            );
            q.verdict(p.id, verdict, mark, payload.as_deref())?;
            busy += began.elapsed();
            t.packets += 1;
        }
    }
    let wall = start.elapsed();
    let per_packet_ns = if t.packets > 0 {
        busy.as_nanos() as f64 / t.packets as f64
    } else {
        0.0
    };
    if mode.json {
        output::json(
            mode,
            &envelope(
                "serve",
                vec![json!({
                    "queue": opts.queue, "packets": t.packets, "accept": t.accept, "drop": t.drop,
                    "queue_verdicts": t.queue, "rewritten": t.rewritten, "errors": t.errors,
                    "sends_dropped": t.sends_dropped, "overflows": q.overflows,
                    "ns_per_packet": per_packet_ns,
                    "seconds": wall.as_secs_f64(),
                })],
            ),
        );
    } else {
        crate::outln!(
            "queue {}: {} packets: accept {}  drop {}  queue {}  rewritten {}  errors {}  sends dropped {}  overflows {}  ({:.0} ns a packet in lpctl)",
            opts.queue, t.packets, t.accept, t.drop, t.queue, t.rewritten, t.errors, t.sends_dropped, q.overflows, per_packet_ns
        );
    }
    Ok(())
}

/// The scripts' verdict on one packet, the mark to set and the bytes to send back.
fn judge(
    engines: &mut [(String, Box<dyn Engine>)],
    own_queue: u16,
    p: &QueuedPacket,
    names: &mut Ifnames,
    t: &mut Tally,
    verbose: bool,
) -> (u32, Option<u32>, Option<Vec<u8>>) {
    let meta = Meta {
        nfproto: nfproto(p.hw_protocol),
        hook: p.hook,
        mark: p.mark,
        iifname: names.get(p.indev),
        oifname: names.get(p.outdev),
        csum_partial: false,
        ct: None,
        eth: None,
    };
    let pkt = OwnedPacket::new(p.payload.clone(), meta);
    let mut verdict = Verdict::Continue;
    for (name, e) in engines.iter_mut() {
        let r = e.run(&pkt);
        if let Some((_, msg)) = &r.error {
            t.errors += 1;
            if verbose {
                eprintln!("lpctl serve: {name}: packet {}: {msg}", p.id);
            }
        }
        verdict = r.verdict;
        if verdict != Verdict::Continue {
            break;
        }
    }
    t.sends_dropped += pkt.sent.borrow().len() as u64;
    let nf = match verdict {
        Verdict::Drop => {
            t.drop += 1;
            NF_DROP
        }
        // to the queue being served, the packet would come straight back: accepted instead
        Verdict::Queue(n) if n == own_queue => {
            t.accept += 1;
            t.errors += 1;
            if !t.warned_own_queue {
                t.warned_own_queue = true;
                eprintln!("lpctl serve: lp.QUEUE({n}) is the queue being served: accepted instead");
            }
            NF_ACCEPT
        }
        Verdict::Queue(n) => {
            t.queue += 1;
            NF_QUEUE | (u32::from(n) << 16)
        }
        Verdict::Accept | Verdict::Continue | Verdict::Break => {
            t.accept += 1;
            NF_ACCEPT
        }
    };
    let mark = pkt.written.get().mark;
    let bytes = pkt.into_bytes();
    let payload = (bytes != p.payload).then(|| {
        t.rewritten += 1;
        bytes
    });
    if verbose {
        eprintln!("lpctl serve: packet {}: {verdict:?}", p.id);
    }
    (nf, mark, payload)
}
