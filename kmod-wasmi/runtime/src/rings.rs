//! A script's log and the errors it keeps with their packets: two rings shared by all of its
//! instances, sized in full when the script loads (writing to them never allocates), written
//! from any CPU (softirq) under a spin lock and read from process context
//! (`lpctl log`, `lpctl script errors`). Their records are `abi::records`'.
//!
//! The log is rate-limited per script (`records::LOG_BURST` lines, then
//! `records::LOG_PER_SEC`): a line over the rate is neither kept nor printed, only counted.

use crate::host::{Host, LogLevel};
use crate::packet::Packet;
use crate::ErrorKind;
use abi::netlink::stat;
use abi::records::{self as r, ErrorHeader, LogHeader};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// What a read returned: bytes of records written, the sequence number to read from next,
/// and how many records were overwritten before the read reached them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    pub len: usize,
    pub next: u64,
    pub lost: u64,
}

/// A script's rings and their counters.
pub struct Rings {
    log: spin::Mutex<LogRing>,
    errors: spin::Mutex<ErrorRing>,
    lines: AtomicU64,
    dropped: AtomicU64,
}

struct LogRing {
    /// Whole records, oldest first; never grows past its reserved capacity.
    bytes: VecDeque<u8>,
    /// Sequence number of the oldest record kept, and of the next one.
    first: u64,
    next: u64,
    /// The token bucket: lines it may still take, and when it was last filled.
    tokens: u32,
    filled_ns: u64,
}

struct ErrorRing {
    /// `ERRORS_KEPT` records, each reserved for the largest; `next - 1` is the newest, in
    /// slot `(next - 1) % ERRORS_KEPT`.
    slots: Vec<Vec<u8>>,
    next: u64,
}

/// Where a kept error happened: what the runtime knows besides the packet.
pub struct ErrorContext<'a> {
    pub kind: ErrorKind,
    pub func: &'a [u8],
    pub arg: &'a [u8],
    pub message: &'a [u8],
}

impl Rings {
    /// Rings sized in full; `None` when the memory is not there.
    pub fn new() -> Option<Rings> {
        let mut bytes = VecDeque::new();
        bytes.try_reserve_exact(r::LOG_RING_BYTES).ok()?;
        let mut slots = Vec::new();
        slots.try_reserve_exact(r::ERRORS_KEPT).ok()?;
        let largest = ErrorHeader::SIZE
            + usize::from(u8::MAX)
            + abi::netlink::ARG_MAX
            + r::ERROR_BYTES_MAX
            + r::ERROR_MESSAGE_MAX
            + r::ALIGN;
        for _ in 0..r::ERRORS_KEPT {
            let mut s = Vec::new();
            s.try_reserve_exact(largest).ok()?;
            slots.push(s);
        }
        Some(Rings {
            log: spin::Mutex::new(LogRing {
                bytes,
                first: 1,
                next: 1,
                tokens: r::LOG_BURST,
                filled_ns: 0,
            }),
            errors: spin::Mutex::new(ErrorRing { slots, next: 1 }),
            lines: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Lines logged and lines dropped by the rate limit.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.lines.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }

    /// Keeps a log line (cut to `LOG_TEXT_MAX` bytes) unless the script is over its rate;
    /// false when it is (the line must not be printed either).
    pub fn log(&self, now_ns: u64, level: LogLevel, line: &[u8]) -> bool {
        let text = &line[..line.len().min(r::LOG_TEXT_MAX)];
        let mut ring = self.log.lock();
        if !ring.take_token(now_ns) {
            drop(ring);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let size = LogHeader::record_size(text.len());
        while ring.bytes.len() + size > r::LOG_RING_BYTES {
            ring.drop_oldest();
        }
        let mut h = [0u8; LogHeader::SIZE];
        LogHeader {
            seq: ring.next,
            time_ns: now_ns,
            len: text.len() as u16,
            level: level.code(),
        }
        .write(&mut h);
        ring.bytes.extend(h);
        ring.bytes.extend(text.iter().copied());
        let pad = size - LogHeader::SIZE - text.len();
        ring.bytes.extend(core::iter::repeat_n(0u8, pad));
        ring.next += 1;
        drop(ring);
        self.lines.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Copies the log lines from sequence number `from` (0: the oldest kept) that fit in `out`.
    pub fn read_log(&self, from: u64, out: &mut [u8]) -> ReadOutcome {
        let ring = self.log.lock();
        // a number never handed out: the reader's is from rings no longer there
        let from = if from > ring.next { 0 } else { from };
        let lost = if from == 0 {
            0
        } else {
            ring.first.saturating_sub(from)
        };
        let from = from.max(ring.first);
        let mut o = ReadOutcome {
            len: 0,
            next: from,
            lost,
        };
        let mut at = 0;
        let mut seq = ring.first;
        while at < ring.bytes.len() {
            let size = ring.record_size_at(at);
            if seq >= from {
                let Some(dst) = out.get_mut(o.len..o.len + size) else {
                    break;
                };
                for (d, s) in dst.iter_mut().zip(ring.bytes.range(at..at + size)) {
                    *d = *s;
                }
                o.len += size;
                o.next = seq + 1;
            }
            at += size;
            seq += 1;
        }
        o
    }

    /// Sequence numbers `read_log` would give: the oldest kept and the next to come.
    pub fn log_span(&self) -> (u64, u64) {
        let ring = self.log.lock();
        (ring.first, ring.next)
    }

    /// Keeps an error with the packet's first bytes and metadata, replacing the oldest kept.
    pub fn error(&self, now_ns: u64, pkt: &dyn Packet, cx: &ErrorContext<'_>) {
        let meta = pkt.meta();
        let func = &cx.func[..cx.func.len().min(usize::from(u8::MAX))];
        let arg = &cx.arg[..cx.arg.len().min(abi::netlink::ARG_MAX)];
        let caplen = pkt.len().min(r::ERROR_BYTES_MAX);
        let message = &cx.message[..cx.message.len().min(r::ERROR_MESSAGE_MAX)];
        let mut flags = 0;
        if meta.ct.is_some() {
            flags |= r::ERROR_F_CT;
        }
        if meta.eth.is_some() {
            flags |= r::ERROR_F_ETH;
        }
        let ct = meta.ct.unwrap_or_default();
        let mut ring = self.errors.lock();
        let header = ErrorHeader {
            seq: ring.next,
            time_ns: now_ns,
            pkt_len: u32::try_from(pkt.len()).unwrap_or(u32::MAX),
            caplen: caplen as u16,
            msg_len: message.len() as u16,
            kind: (usize::from(stat::ERR_LUA) + cx.kind.index()) as u8,
            nfproto: meta.nfproto,
            hook: meta.hook,
            flags,
            mark: meta.mark,
            iifname: meta.iifname,
            oifname: meta.oifname,
            ct_mark: ct.mark,
            ct_id: ct.id,
            ct_state: ct.state,
            func_len: func.len() as u8,
            arg_len: arg.len() as u16,
            eth: meta.eth.unwrap_or_default(),
        };
        let n = ring.slots.len();
        let i = (ring.next % n as u64) as usize;
        ring.next += 1;
        let Some(slot) = ring.slots.get_mut(i) else {
            return;
        };
        // within the capacity reserved at load: no reallocation
        slot.clear();
        let mut h = [0u8; ErrorHeader::SIZE];
        header.write(&mut h);
        slot.extend_from_slice(&h);
        slot.extend_from_slice(func);
        slot.extend_from_slice(arg);
        let at = slot.len();
        slot.resize(at + caplen, 0);
        if !pkt.read(0, &mut slot[at..at + caplen]) {
            // unreadable now (it was readable for the call): say so with no bytes
            slot.truncate(at);
            let mut h = [0u8; ErrorHeader::SIZE];
            ErrorHeader {
                caplen: 0,
                ..header
            }
            .write(&mut h);
            slot[..ErrorHeader::SIZE].copy_from_slice(&h);
        }
        slot.extend_from_slice(message);
        let padded = (slot.len() + r::ALIGN - 1) & !(r::ALIGN - 1);
        slot.resize(padded, 0);
    }

    /// Copies the kept errors from sequence number `from` (0: the oldest kept) that fit in
    /// `out`.
    pub fn read_errors(&self, from: u64, out: &mut [u8]) -> ReadOutcome {
        let ring = self.errors.lock();
        let from = if from > ring.next { 0 } else { from };
        let n = ring.slots.len() as u64;
        let first = ring.next.saturating_sub(n).max(1);
        let lost = if from == 0 {
            0
        } else {
            first.saturating_sub(from)
        };
        let mut o = ReadOutcome {
            len: 0,
            next: from.max(first),
            lost,
        };
        for seq in from.max(first)..ring.next {
            let Some(rec) = ring.slots.get((seq % n) as usize) else {
                break;
            };
            let Some(dst) = out.get_mut(o.len..o.len + rec.len()) else {
                break;
            };
            dst.copy_from_slice(rec);
            o.len += rec.len();
            o.next = seq + 1;
        }
        o
    }
}

impl LogRing {
    fn record_size_at(&self, at: usize) -> usize {
        let mut h = [0u8; LogHeader::SIZE];
        for (d, s) in h.iter_mut().zip(self.bytes.range(at..)) {
            *d = *s;
        }
        LogHeader::record_size(usize::from(LogHeader::read(&h).len))
    }

    fn drop_oldest(&mut self) {
        let size = self.record_size_at(0).min(self.bytes.len());
        self.bytes.drain(..size);
        self.first += 1;
    }

    fn take_token(&mut self, now_ns: u64) -> bool {
        let per = 1_000_000_000 / u64::from(r::LOG_PER_SEC);
        let earned = now_ns.saturating_sub(self.filled_ns) / per;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(r::LOG_BURST)) as u32;
            self.filled_ns = self.filled_ns.saturating_add(earned * per);
            if self.tokens == r::LOG_BURST {
                self.filled_ns = now_ns;
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// The script's host: keeps its log lines in its ring (and does not print the ones over its
/// rate) on their way to the embedder's log, and holds its maps and send rates.
pub struct RingHost {
    pub inner: Arc<dyn Host>,
    pub rings: Arc<Rings>,
    pub maps: Arc<crate::maps::ScriptMaps>,
    pub sends: Arc<crate::sends::SendState>,
    pub timers: Arc<crate::timers::Timers>,
}

impl Host for RingHost {
    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }
    fn clock_ns(&self) -> u64 {
        self.inner.clock_ns()
    }
    fn time_every(&self) -> u32 {
        self.inner.time_every()
    }
    fn log(&self, script: &str, level: LogLevel, line: &[u8]) {
        if self.rings.log(self.inner.now_ns(), level, line) {
            self.inner.log(script, level, line);
        }
    }
    fn seed(&self) -> u32 {
        self.inner.seed()
    }
    fn pause(&self) -> bool {
        self.inner.pause()
    }
    fn linear_memory(&self, bytes: usize) {
        self.inner.linear_memory(bytes)
    }
    fn map_room(&self) -> usize {
        self.inner.map_room()
    }
    fn maps(&self) -> Option<&crate::maps::ScriptMaps> {
        Some(&self.maps)
    }
    fn sends(&self) -> Option<&crate::sends::SendState> {
        Some(&self.sends)
    }
    fn timers(&self) -> Option<&crate::timers::Timers> {
        Some(&self.timers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::records::{records, ErrorRecord, LogRecord};

    fn lines(r: &Rings, from: u64) -> (Vec<(u64, Vec<u8>)>, ReadOutcome) {
        let mut buf = alloc::vec![0u8; r::READ_MAX];
        let o = r.read_log(from, &mut buf);
        let v = records::<LogRecord<'_>>(&buf[..o.len])
            .map(|x| {
                let x = x.unwrap();
                (x.header.seq, x.text.to_vec())
            })
            .collect();
        (v, o)
    }

    #[test]
    fn log_keeps_the_newest_lines_in_its_bytes() {
        let rings = Rings::new().unwrap();
        let line = [b'x'; 1000];
        // one second apart: never over the rate
        for i in 0..100u64 {
            assert!(rings.log(i * 1_000_000_000, LogLevel::Info, &line));
        }
        let (first, next) = rings.log_span();
        assert_eq!(next, 101);
        let kept = (next - first) as usize;
        assert!(kept * LogHeader::record_size(1000) <= r::LOG_RING_BYTES);
        assert_eq!(kept, r::LOG_RING_BYTES / LogHeader::record_size(1000));
        // from an overwritten line: the oldest kept, the loss counted by the caller
        let (v, o) = lines(&rings, 1);
        assert_eq!(v.first().unwrap().0, first);
        assert_eq!(o.lost, first - 1);
        assert!(o.len <= r::READ_MAX);
        assert_eq!(o.next, first + v.len() as u64);
        // and from there on
        let (v2, _) = lines(&rings, o.next);
        assert_eq!(v2.first().unwrap().0, o.next);
    }

    #[test]
    fn long_lines_are_cut() {
        let rings = Rings::new().unwrap();
        rings.log(0, LogLevel::Warn, &[b'y'; 5000]);
        let (v, _) = lines(&rings, 0);
        assert_eq!(v[0].1.len(), r::LOG_TEXT_MAX);
    }

    #[test]
    fn the_rate_limit_drops_and_counts() {
        let rings = Rings::new().unwrap();
        let t = 5_000_000_000;
        let kept = (0..1000)
            .filter(|_| rings.log(t, LogLevel::Info, b"a"))
            .count();
        assert_eq!(kept as u32, r::LOG_BURST);
        assert_eq!(
            rings.counters(),
            (u64::from(r::LOG_BURST), 1000 - u64::from(r::LOG_BURST))
        );
        // half a second later: half a second's worth
        let kept = (0..1000)
            .filter(|_| rings.log(t + 500_000_000, LogLevel::Info, b"a"))
            .count();
        assert_eq!(kept as u32, r::LOG_PER_SEC / 2);
    }

    struct Pkt(Vec<u8>);
    impl Packet for Pkt {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn read(&self, off: usize, dst: &mut [u8]) -> bool {
            match self.0.get(off..off + dst.len()) {
                Some(s) => {
                    dst.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
        fn meta(&self) -> crate::Meta {
            crate::Meta {
                mark: 7,
                ..Default::default()
            }
        }
        fn write(&self, _: usize, _: &[u8]) -> bool {
            false
        }
        fn write_meta(&self, _: &crate::MetaWrite) -> bool {
            false
        }
    }

    #[test]
    fn errors_keep_the_newest_with_their_packets() {
        let rings = Rings::new().unwrap();
        for i in 0..20u8 {
            let pkt = Pkt(alloc::vec![i; 3000]);
            rings.error(
                u64::from(i),
                &pkt,
                &ErrorContext {
                    kind: ErrorKind::Fuel,
                    func: b"process_packet",
                    arg: &[b'a'; 400],
                    message: &[b'm'; 600],
                },
            );
        }
        let mut buf = alloc::vec![0u8; r::READ_MAX];
        let o = rings.read_errors(3, &mut buf);
        assert_eq!(o.lost, 21 - r::ERRORS_KEPT as u64 - 3);
        let v: Vec<_> = records::<ErrorRecord<'_>>(&buf[..o.len])
            .map(|x| x.unwrap())
            .collect();
        assert_eq!(v.first().unwrap().header.seq, 21 - r::ERRORS_KEPT as u64);
        let last = v.last().unwrap();
        assert_eq!(o.next, last.header.seq + 1);
        assert_eq!(last.header.pkt_len, 3000);
        assert_eq!(last.packet.len(), r::ERROR_BYTES_MAX);
        assert!(last
            .packet
            .iter()
            .all(|b| u64::from(*b) == last.header.seq - 1));
        // the rest from where the read stopped (READ_MAX holds a few records this large)
        let o2 = rings.read_errors(o.next, &mut alloc::vec![0u8; r::READ_MAX]);
        assert_eq!((o2.lost, o2.next), (0, 21));
        assert_eq!(last.arg.len(), abi::netlink::ARG_MAX);
        assert_eq!(last.message.len(), r::ERROR_MESSAGE_MAX);
        assert_eq!(last.func, b"process_packet");
        assert_eq!(last.header.mark, 7);
        assert_eq!(
            usize::from(last.header.kind),
            usize::from(stat::ERR_LUA) + ErrorKind::Fuel.index()
        );
        // a small buffer takes whole records only
        let mut small = [0u8; 100];
        assert_eq!(rings.read_errors(0, &mut small).len, 0);
    }
}
