//! A script's log and its kept errors as the runtime stores them and the kernel sends them
//! (`LUAPKT_ATTR_LOG_DATA` of `LUAPKT_CMD_LOG_READ` and `LUAPKT_CMD_ERRORS_READ`): records
//! in host byte order, each starting on 8 bytes, laid out back to back. The runtime writes
//! them ([`LogHeader::write`], [`ErrorHeader::write`]) and lpctl reads them ([`records`]);
//! nothing else parses them, and a reader checks every length it is given.

/// Bytes of a script's log ring: the lines still there when `lpctl log` reads.
pub const LOG_RING_BYTES: usize = 32 << 10;
/// Longest line kept (the guest's messages are at most 1024 bytes): longer ones are cut.
pub const LOG_TEXT_MAX: usize = 1024;
/// Lines a script may log in a burst, and per second after it (a token bucket per script):
/// lines over it are counted (`stat::LOG_DROPPED`), neither kept nor printed.
pub const LOG_BURST: u32 = 200;
pub const LOG_PER_SEC: u32 = 100;
/// Errors a script keeps (the newest replace the oldest).
pub const ERRORS_KEPT: usize = 8;
/// Packet bytes kept with an error, from the network header on.
pub const ERROR_BYTES_MAX: usize = 2048;
/// Longest error message kept.
pub const ERROR_MESSAGE_MAX: usize = 512;
/// Most record bytes in one reply: a reader asks again from the sequence number it was given.
pub const READ_MAX: usize = 16 << 10;

/// Longest key and value of a map (`runtime::maps`' limits, which check them).
pub const MAP_KEY_MAX: usize = 256;
pub const MAP_VALUE_MAX: usize = 4096;

/// Every record starts on this alignment.
pub const ALIGN: usize = 8;

const fn padded(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// A log line: this header, then `len` bytes of text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogHeader {
    /// Numbers the script's lines from 1, without gaps (a gap is a line overwritten).
    pub seq: u64,
    /// When (`ktime_get_ns()` in the kernel: monotonic, boot-relative).
    pub time_ns: u64,
    /// Bytes of text.
    pub len: u16,
    /// `guest::LOG_INFO` or `guest::LOG_WARN`.
    pub level: u8,
}

impl LogHeader {
    pub const SIZE: usize = 24;

    /// Bytes the record takes with `len` bytes of text, padding included.
    pub const fn record_size(len: usize) -> usize {
        padded(Self::SIZE + len)
    }

    pub fn write(&self, out: &mut [u8; Self::SIZE]) {
        out.fill(0);
        out[0..8].copy_from_slice(&self.seq.to_ne_bytes());
        out[8..16].copy_from_slice(&self.time_ns.to_ne_bytes());
        out[16..18].copy_from_slice(&self.len.to_ne_bytes());
        out[18] = self.level;
    }

    pub fn read(b: &[u8; Self::SIZE]) -> Self {
        LogHeader {
            seq: u64_at(b, 0),
            time_ns: u64_at(b, 8),
            len: u16::from_ne_bytes([b[16], b[17]]),
            level: b[18],
        }
    }
}

/// Where and how a kept error happened; after the header come the entry function's name
/// (`func_len`), its argument (`arg_len`), the packet's first bytes (`caplen`) and the error
/// message (`msg_len`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorHeader {
    /// Numbers the script's errors from 1.
    pub seq: u64,
    pub time_ns: u64,
    /// The packet's length from its network header on (`caplen` of it are kept).
    pub pkt_len: u32,
    pub caplen: u16,
    pub msg_len: u16,
    /// The error kind, as the stats count them: `netlink::stat::ERR_LUA` + its index (lua,
    /// memory, fuel, instructions, stack, return, trap).
    pub kind: u8,
    pub nfproto: u8,
    pub hook: u8,
    /// [`ERROR_F_CT`], [`ERROR_F_ETH`].
    pub flags: u8,
    pub mark: u32,
    pub iifname: [u8; 16],
    pub oifname: [u8; 16],
    pub ct_mark: u32,
    pub ct_id: u32,
    pub ct_state: u8,
    pub func_len: u8,
    pub arg_len: u16,
    pub eth: [u8; 14],
}

/// The packet had conntrack (`ct_*` are valid).
pub const ERROR_F_CT: u8 = 1;
/// The packet had an Ethernet header (`eth` is valid).
pub const ERROR_F_ETH: u8 = 2;

impl ErrorHeader {
    pub const SIZE: usize = 96;

    /// Bytes of the variable part.
    pub const fn body_len(&self) -> usize {
        self.func_len as usize
            + self.arg_len as usize
            + self.caplen as usize
            + self.msg_len as usize
    }

    /// Bytes the record takes, padding included.
    pub const fn record_size(&self) -> usize {
        padded(Self::SIZE + self.body_len())
    }

    pub fn write(&self, out: &mut [u8; Self::SIZE]) {
        out.fill(0);
        out[0..8].copy_from_slice(&self.seq.to_ne_bytes());
        out[8..16].copy_from_slice(&self.time_ns.to_ne_bytes());
        out[16..20].copy_from_slice(&self.pkt_len.to_ne_bytes());
        out[20..22].copy_from_slice(&self.caplen.to_ne_bytes());
        out[22..24].copy_from_slice(&self.msg_len.to_ne_bytes());
        out[24] = self.kind;
        out[25] = self.nfproto;
        out[26] = self.hook;
        out[27] = self.flags;
        out[28..32].copy_from_slice(&self.mark.to_ne_bytes());
        out[32..48].copy_from_slice(&self.iifname);
        out[48..64].copy_from_slice(&self.oifname);
        out[64..68].copy_from_slice(&self.ct_mark.to_ne_bytes());
        out[68..72].copy_from_slice(&self.ct_id.to_ne_bytes());
        out[72] = self.ct_state;
        out[73] = self.func_len;
        out[74..76].copy_from_slice(&self.arg_len.to_ne_bytes());
        out[80..94].copy_from_slice(&self.eth);
    }

    pub fn read(b: &[u8; Self::SIZE]) -> Self {
        let arr16 = |at: usize| -> [u8; 16] {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[at..at + 16]);
            a
        };
        let mut eth = [0u8; 14];
        eth.copy_from_slice(&b[80..94]);
        ErrorHeader {
            seq: u64_at(b, 0),
            time_ns: u64_at(b, 8),
            pkt_len: u32_at(b, 16),
            caplen: u16::from_ne_bytes([b[20], b[21]]),
            msg_len: u16::from_ne_bytes([b[22], b[23]]),
            kind: b[24],
            nfproto: b[25],
            hook: b[26],
            flags: b[27],
            mark: u32_at(b, 28),
            iifname: arr16(32),
            oifname: arr16(48),
            ct_mark: u32_at(b, 64),
            ct_id: u32_at(b, 68),
            ct_state: b[72],
            func_len: b[73],
            arg_len: u16::from_ne_bytes([b[74], b[75]]),
            eth,
        }
    }
}

/// One of a script's maps (`LUAPKT_CMD_MAP_LIST`): this header, then `name_len` bytes of name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapInfo {
    /// `guest::map::KIND_*`, `guest::map::VALUE_*`.
    pub kind: u8,
    pub value: u8,
    pub name_len: u8,
    pub key_size: u16,
    pub value_size: u16,
    pub max_entries: u32,
    pub len: u32,
}

impl MapInfo {
    pub const SIZE: usize = 16;

    pub const fn record_size(&self) -> usize {
        padded(Self::SIZE + self.name_len as usize)
    }

    pub fn write(&self, out: &mut [u8; Self::SIZE]) {
        out.fill(0);
        out[0] = self.kind;
        out[1] = self.value;
        out[2] = self.name_len;
        out[4..6].copy_from_slice(&self.key_size.to_ne_bytes());
        out[6..8].copy_from_slice(&self.value_size.to_ne_bytes());
        out[8..12].copy_from_slice(&self.max_entries.to_ne_bytes());
        out[12..16].copy_from_slice(&self.len.to_ne_bytes());
    }

    pub fn read(b: &[u8; Self::SIZE]) -> Self {
        MapInfo {
            kind: b[0],
            value: b[1],
            name_len: b[2],
            key_size: u16::from_ne_bytes([b[4], b[5]]),
            value_size: u16::from_ne_bytes([b[6], b[7]]),
            max_entries: u32_at(b, 8),
            len: u32_at(b, 12),
        }
    }
}

/// One entry of a map (`LUAPKT_CMD_MAP_DUMP`): key length (u16), value length (u16), 4 bytes
/// of padding, the key, the value (a number as `guest::map::NUMBER` bytes).
pub const MAP_ENTRY_HEADER: usize = 8;

/// The bytes an entry record takes.
pub const fn map_entry_size(klen: usize, vlen: usize) -> usize {
    padded(MAP_ENTRY_HEADER + klen + vlen)
}

/// A map's declaration as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapInfoRecord<'a> {
    pub info: MapInfo,
    pub name: &'a [u8],
}

/// A map entry as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// A kept error as read back: the header and its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorRecord<'a> {
    pub header: ErrorHeader,
    pub func: &'a [u8],
    pub arg: &'a [u8],
    pub packet: &'a [u8],
    pub message: &'a [u8],
}

/// A log line as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord<'a> {
    pub header: LogHeader,
    pub text: &'a [u8],
}

/// What is wrong with a record buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// Byte offset of the record that does not fit.
    pub at: usize,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(a)
}

/// Records of one kind in `data`, in order; an error (and nothing after it) where a record
/// does not fit in what is left.
pub fn records<'a, R: Record<'a>>(data: &'a [u8]) -> Records<'a, R> {
    Records {
        data,
        at: 0,
        _kind: core::marker::PhantomData,
    }
}

/// A record kind [`records`] can read.
pub trait Record<'a>: Sized {
    /// The record at the start of `b` and the bytes it takes; `None` if it does not fit.
    fn parse(b: &'a [u8]) -> Option<(Self, usize)>;
}

impl<'a> Record<'a> for LogRecord<'a> {
    fn parse(b: &'a [u8]) -> Option<(Self, usize)> {
        let header = LogHeader::read(b.get(..LogHeader::SIZE)?.try_into().ok()?);
        let len = usize::from(header.len);
        let text = b.get(LogHeader::SIZE..LogHeader::SIZE + len)?;
        Some((LogRecord { header, text }, LogHeader::record_size(len)))
    }
}

impl<'a> Record<'a> for ErrorRecord<'a> {
    fn parse(b: &'a [u8]) -> Option<(Self, usize)> {
        let header = ErrorHeader::read(b.get(..ErrorHeader::SIZE)?.try_into().ok()?);
        let body = b.get(ErrorHeader::SIZE..ErrorHeader::SIZE + header.body_len())?;
        let (func, rest) = body.split_at(usize::from(header.func_len));
        let (arg, rest) = rest.split_at(usize::from(header.arg_len));
        let (packet, message) = rest.split_at(usize::from(header.caplen));
        Some((
            ErrorRecord {
                header,
                func,
                arg,
                packet,
                message,
            },
            header.record_size(),
        ))
    }
}

impl<'a> Record<'a> for MapInfoRecord<'a> {
    fn parse(b: &'a [u8]) -> Option<(Self, usize)> {
        let info = MapInfo::read(b.get(..MapInfo::SIZE)?.try_into().ok()?);
        let name = b.get(MapInfo::SIZE..MapInfo::SIZE + usize::from(info.name_len))?;
        Some((MapInfoRecord { info, name }, info.record_size()))
    }
}

impl<'a> Record<'a> for MapEntry<'a> {
    fn parse(b: &'a [u8]) -> Option<(Self, usize)> {
        let klen = usize::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
        let vlen = usize::from(u16::from_ne_bytes([*b.get(2)?, *b.get(3)?]));
        let key = b.get(MAP_ENTRY_HEADER..MAP_ENTRY_HEADER + klen)?;
        let value = b.get(MAP_ENTRY_HEADER + klen..MAP_ENTRY_HEADER + klen + vlen)?;
        Some((MapEntry { key, value }, map_entry_size(klen, vlen)))
    }
}

pub struct Records<'a, R> {
    data: &'a [u8],
    at: usize,
    _kind: core::marker::PhantomData<R>,
}

impl<'a, R: Record<'a>> Iterator for Records<'a, R> {
    type Item = Result<R, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.at..).filter(|r| !r.is_empty())?;
        match R::parse(rest) {
            // the padding after the last record may be cut
            Some((r, size)) => {
                self.at = self.at.saturating_add(size).min(self.data.len());
                Some(Ok(r))
            }
            None => {
                let at = self.at;
                self.at = self.data.len();
                Some(Err(Malformed { at }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let l = LogHeader {
            seq: 7,
            time_ns: 1 << 40,
            len: 1000,
            level: 1,
        };
        let mut b = [0u8; LogHeader::SIZE];
        l.write(&mut b);
        assert_eq!(LogHeader::read(&b), l);
        let e = ErrorHeader {
            seq: 3,
            time_ns: 99,
            pkt_len: 1500,
            caplen: 1400,
            msg_len: 20,
            kind: 8,
            nfproto: 2,
            hook: 1,
            flags: ERROR_F_CT | ERROR_F_ETH,
            mark: 0xdead,
            iifname: *b"veth0\0\0\0\0\0\0\0\0\0\0\0",
            oifname: [b'x'; 16],
            ct_mark: 5,
            ct_id: 6,
            ct_state: 2,
            func_len: 14,
            arg_len: 300,
            eth: [9; 14],
        };
        let mut b = [0u8; ErrorHeader::SIZE];
        e.write(&mut b);
        assert_eq!(ErrorHeader::read(&b), e);
    }

    #[test]
    fn a_record_that_does_not_fit_ends_the_walk() {
        let mut buf = [0u8; 64];
        let h = LogHeader {
            seq: 1,
            time_ns: 2,
            len: 3,
            level: 0,
        };
        let mut hb = [0u8; LogHeader::SIZE];
        h.write(&mut hb);
        buf[..24].copy_from_slice(&hb);
        buf[24..27].copy_from_slice(b"abc");
        let mut h2 = h;
        h2.len = 100; // longer than what is left
        h2.write(&mut hb);
        buf[32..56].copy_from_slice(&hb);
        let mut it = records::<LogRecord<'_>>(&buf);
        assert_eq!(it.next().unwrap().unwrap().text, b"abc");
        assert_eq!(it.next(), Some(Err(Malformed { at: 32 })));
        assert_eq!(it.next(), None);
        // a buffer cut inside a header
        let mut it = records::<LogRecord<'_>>(&buf[..10]);
        assert_eq!(it.next(), Some(Err(Malformed { at: 0 })));
    }
}
