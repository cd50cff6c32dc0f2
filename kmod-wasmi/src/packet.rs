//! How the runtime sees a packet: a small trait the kernel (skb) and userspace (a byte slice
//! from a pcap) both implement, and the packet context the guest reads.

use crate::headers;
use abi::guest::ctx;

/// Metadata a packet carries besides its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// NFPROTO_IPV4 or NFPROTO_IPV6; 0 to guess from the version nibble.
    pub nfproto: u8,
    pub hook: u8,
    pub mark: u32,
    pub iifname: [u8; 16],
    pub oifname: [u8; 16],
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

/// Fills `buf` (at least `ctx::SIZE` bytes) with the packet context the guest reads
/// (`abi::guest::ctx`): lengths, layout, metadata and the first bytes of the packet.
/// Returns how many bytes of `buf` are meaningful.
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
    let layout = match headers::parse(data, len) {
        Ok(l) => l,
        Err(_) => headers::Layout {
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
    ctx::WINDOW + win
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
