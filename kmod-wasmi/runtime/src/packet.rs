//! How the runtime sees a packet: a small trait the kernel (skb) and userspace (a byte slice
//! from a pcap) both implement, the packet context the guest reads, and how what the guest
//! changed in that context goes back to the packet.

use crate::headers;
use crate::sends::{SendError, SendKind};
use abi::guest::ctx;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

/// Conntrack information of a packet (nft's `ct state`, `ct mark`, `ct id`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conntrack {
    /// `abi::guest::ctx::CT_*` bits.
    pub state: u8,
    pub mark: u32,
    pub id: u32,
}

/// Metadata a packet carries besides its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// NFPROTO_IPV4 or NFPROTO_IPV6; 0 to guess from the version nibble; any other value (the
    /// hook's family, netdev 5 or bridge 7) says the packet is not IP.
    pub nfproto: u8,
    pub hook: u8,
    pub mark: u32,
    pub iifname: [u8; 16],
    pub oifname: [u8; 16],
    /// The transport checksum will be finished later (Linux CHECKSUM_PARTIAL).
    pub csum_partial: bool,
    pub ct: Option<Conntrack>,
    /// The Ethernet header, where the hook has a link layer.
    pub eth: Option<[u8; ctx::ETH_LEN]>,
}

/// What a call changed besides packet bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaWrite {
    pub mark: Option<u32>,
    pub ct_mark: Option<u32>,
    pub eth: Option<[u8; ctx::ETH_LEN]>,
}

impl MetaWrite {
    pub fn is_empty(&self) -> bool {
        *self == MetaWrite::default()
    }
}

/// A packet, from its network header on. Views are valid for one call only.
pub trait Packet {
    /// Length in bytes from the network header.
    fn len(&self) -> usize;
    /// Copies `[off, off + dst.len())` into `dst`; false when that range is not in the packet.
    fn read(&self, off: usize, dst: &mut [u8]) -> bool;
    fn meta(&self) -> Meta;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes `src` at `off` (from the network header); false when the range is not in the
    /// packet or the packet cannot be written. The packet's length never changes.
    fn write(&self, _off: usize, _src: &[u8]) -> bool {
        false
    }
    /// Applies metadata the call changed (mark, conntrack mark, Ethernet header); false when
    /// the packet cannot take it (kernel: the Ethernet header could not be made writable).
    fn write_meta(&self, _w: &MetaWrite) -> bool {
        false
    }
    /// Takes a packet the script built (checked by `sends::check_packet`; `nfproto` its
    /// family), to leave after the call returns. An error is the script's error value.
    fn send(&self, _kind: SendKind, _nfproto: u8, _bytes: &[u8]) -> Result<(), SendError> {
        Err(SendError::Unavailable)
    }
}

/// A packet held in memory (userspace: pcaps, tests, benchmarks).
#[derive(Clone, Copy, Debug)]
pub struct SlicePacket<'a> {
    pub data: &'a [u8],
    pub meta: Meta,
}

impl<'a> SlicePacket<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        SlicePacket {
            data,
            meta: Meta::default(),
        }
    }
}

impl Packet for SlicePacket<'_> {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        match off
            .checked_add(dst.len())
            .and_then(|end| self.data.get(off..end))
        {
            Some(src) => {
                dst.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
    fn meta(&self) -> Meta {
        self.meta
    }
}

/// A writable packet held in memory (userspace: `lpctl run --out`, tests). Writes go to its
/// bytes; metadata writes are recorded in [`OwnedPacket::meta`] and [`OwnedPacket::written`].
#[derive(Debug, Default)]
pub struct OwnedPacket {
    pub data: RefCell<Vec<u8>>,
    pub meta: Cell<Meta>,
    /// Every metadata write of the calls so far, merged.
    pub written: Cell<MetaWrite>,
    /// The packets its calls sent, in order.
    pub sent: RefCell<Vec<(SendKind, Vec<u8>)>>,
}

impl OwnedPacket {
    pub fn new(data: Vec<u8>, meta: Meta) -> Self {
        OwnedPacket {
            data: RefCell::new(data),
            meta: Cell::new(meta),
            written: Cell::new(MetaWrite::default()),
            sent: RefCell::new(Vec::new()),
        }
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.data.into_inner()
    }
}

impl Packet for OwnedPacket {
    fn len(&self) -> usize {
        self.data.borrow().len()
    }
    fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        SlicePacket::new(&self.data.borrow()).read(off, dst)
    }
    fn meta(&self) -> Meta {
        self.meta.get()
    }
    fn write(&self, off: usize, src: &[u8]) -> bool {
        let mut d = self.data.borrow_mut();
        match off
            .checked_add(src.len())
            .and_then(|end| d.get_mut(off..end))
        {
            Some(dst) => {
                dst.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
    fn write_meta(&self, w: &MetaWrite) -> bool {
        let mut m = self.meta.get();
        let mut all = self.written.get();
        if let Some(v) = w.mark {
            m.mark = v;
            all.mark = Some(v);
        }
        if let Some(v) = w.ct_mark {
            if let Some(ct) = m.ct.as_mut() {
                ct.mark = v;
            }
            all.ct_mark = Some(v);
        }
        if let Some(e) = w.eth {
            m.eth = Some(e);
            all.eth = Some(e);
        }
        self.meta.set(m);
        self.written.set(all);
        true
    }
    fn send(&self, kind: SendKind, _nfproto: u8, bytes: &[u8]) -> Result<(), SendError> {
        let mut copy = Vec::new();
        copy.try_reserve_exact(bytes.len())
            .map_err(|_| SendError::Memory)?;
        copy.extend_from_slice(bytes);
        self.sent.borrow_mut().push((kind, copy));
        Ok(())
    }
}

/// A device name as scripts get it: the bytes before the first NUL, zeros after. The kernel
/// glue copies `dev->name` whole, and its bytes after the NUL are whatever an earlier name
/// left there. Branch-free: the lowest byte the "has a zero byte" bit trick flags is the
/// first NUL (borrows only run upward, so false flags lie above it).
pub fn device_name(raw: [u8; 16]) -> [u8; 16] {
    const ONES: u128 = u128::from_le_bytes([0x01; 16]);
    const HIGHS: u128 = u128::from_le_bytes([0x80; 16]);
    let v = u128::from_le_bytes(raw);
    let zeros = v.wrapping_sub(ONES) & !v & HIGHS;
    // byte i's flag is bit 8i+7: keep the 8i bits below it
    let keep = match zeros.trailing_zeros() {
        128 => u128::MAX,
        t => (1u128 << (t - 7)) - 1,
    };
    (v & keep).to_le_bytes()
}

/// Fills `buf` (at least `ctx::SIZE` bytes) with the packet context the guest reads
/// (`abi::guest::ctx`): lengths, layout, metadata and the first bytes of the packet.
/// Returns how many bytes of `buf` are meaningful.
#[inline]
pub fn fill_context(pkt: &dyn Packet, buf: &mut [u8]) -> usize {
    let len = pkt.len();
    let win = len.min(ctx::WINDOW_CAP);
    let Some(buf) = buf.get_mut(..ctx::WINDOW + win) else {
        return 0;
    };
    buf[..ctx::WINDOW].fill(0);
    let window_ok = pkt.read(0, &mut buf[ctx::WINDOW..ctx::WINDOW + win]);
    let win = if window_ok { win } else { 0 };
    let meta = pkt.meta();
    let data = &buf[ctx::WINDOW..ctx::WINDOW + win];
    // 0, IPv4, IPv6: an IP packet (its own version nibble decides). Any other family is the
    // hook's (netdev, bridge) for a frame that is not IP: no IP header, whatever its first
    // nibble looks like (VLAN tags, MPLS labels).
    let ip = matches!(meta.nfproto, 0 | ctx::NFPROTO_IPV4 | ctx::NFPROTO_IPV6);
    let layout = match headers::parse(data, len) {
        Ok(l) if ip => l,
        _ if !ip => headers::Layout {
            nfproto: meta.nfproto,
            ..Default::default()
        },
        _ => headers::Layout {
            nfproto: headers::family(data).unwrap_or(meta.nfproto),
            ..Default::default()
        },
    };
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    put32(buf, ctx::LEN, len32);
    put32(buf, ctx::WIN, win as u32);
    put32(buf, ctx::L4OFF, layout.l4off);
    put32(buf, ctx::MARK, meta.mark);
    buf[ctx::NFPROTO] = layout.nfproto;
    buf[ctx::L4PROTO] = layout.l4proto;
    buf[ctx::FLAGS] = layout.flags;
    buf[ctx::HOOK] = meta.hook;
    buf[ctx::IIFNAME..ctx::IIFNAME + 16].copy_from_slice(&meta.iifname);
    buf[ctx::OIFNAME..ctx::OIFNAME + 16].copy_from_slice(&meta.oifname);
    if meta.csum_partial {
        buf[ctx::CSUM] = ctx::CSUM_PARTIAL;
    }
    if let Some(ct) = meta.ct {
        buf[ctx::FLAGS] |= ctx::FLAG_CT;
        buf[ctx::CT_STATE] = ct.state;
        put32(buf, ctx::CT_MARK, ct.mark);
        put32(buf, ctx::CT_ID, ct.id);
    }
    if let Some(eth) = meta.eth {
        buf[ctx::FLAGS] |= ctx::FLAG_ETH;
        buf[ctx::ETH..ctx::ETH + ctx::ETH_LEN].copy_from_slice(&eth);
    }
    ctx::WINDOW + win
}

/// What went wrong applying a call's changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// The dirty range the guest reported is not inside the window it was given.
    BadRange,
    /// The packet refused the write (kernel: the skb could not be made writable).
    Refused,
}

/// After a call: copies the window bytes the guest marked dirty to the packet and applies its
/// metadata writes. `buf` is the context as the guest left it (untrusted: a range outside the
/// window is refused, not clamped). Returns the number of packet bytes written.
#[inline]
pub fn apply_context(pkt: &dyn Packet, buf: &[u8]) -> Result<usize, ApplyError> {
    let Some(head) = buf.get(..ctx::WINDOW) else {
        return Err(ApplyError::BadRange);
    };
    let lo = get32(head, ctx::DIRTY_LO) as usize;
    let hi = get32(head, ctx::DIRTY_HI) as usize;
    let win = (get32(head, ctx::WIN) as usize).min(ctx::WINDOW_CAP);
    let out = head[ctx::OUT];
    let mut w = MetaWrite::default();
    let meta = pkt.meta();
    if out & ctx::OUT_MARK != 0 {
        w.mark = Some(get32(head, ctx::MARK));
    }
    if out & ctx::OUT_CT_MARK != 0 && meta.ct.is_some() {
        w.ct_mark = Some(get32(head, ctx::CT_MARK));
    }
    if out & ctx::OUT_ETH != 0 && meta.eth.is_some() {
        let mut e = [0u8; ctx::ETH_LEN];
        e.copy_from_slice(&head[ctx::ETH..ctx::ETH + ctx::ETH_LEN]);
        w.eth = Some(e);
    }
    if !w.is_empty() && !pkt.write_meta(&w) {
        return Err(ApplyError::Refused);
    }
    if hi == 0 {
        return Ok(0);
    }
    if lo >= hi || hi > win || hi > pkt.len() {
        return Err(ApplyError::BadRange);
    }
    let Some(src) = buf.get(ctx::WINDOW + lo..ctx::WINDOW + hi) else {
        return Err(ApplyError::BadRange);
    };
    if pkt.write(lo, src) {
        Ok(hi - lo)
    } else {
        Err(ApplyError::Refused)
    }
}

fn get32(buf: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[off..off + 4]);
    u32::from_le_bytes(b)
}

fn put32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Interface name as the fixed, NUL-padded array the context carries (truncated to 15 bytes).
pub fn ifname(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = name.len().min(15);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::device_name;

    fn raw(s: &[u8]) -> [u8; 16] {
        let mut r = [0xa5u8; 16];
        r[..s.len()].copy_from_slice(s);
        r
    }

    #[test]
    fn device_names_end_at_their_first_nul_and_are_zero_after() {
        for name in [
            &b"\0"[..],
            b"v\0",
            b"eth0\0",
            b"veth-peer\0x",
            b"ab\0\x01\x01",
            b"abcdefghijklmno\0",
        ] {
            let n = name.iter().position(|&b| b == 0).unwrap();
            let mut want = [0u8; 16];
            want[..n].copy_from_slice(&name[..n]);
            assert_eq!(device_name(raw(name)), want, "{name:?}");
        }
        // bytes like 0x01 or 0x80 before the NUL do not fool the bit trick
        assert_eq!(
            device_name(raw(b"\x01\x80\x81\0")),
            *b"\x01\x80\x81\0\0\0\0\0\0\0\0\0\0\0\0\0"
        );
        // no NUL at all (the kernel never gives one): kept whole
        assert_eq!(device_name([b'x'; 16]), [b'x'; 16]);
    }
}
