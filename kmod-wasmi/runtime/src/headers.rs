//! Layer-3/4 layout of a packet, found the way nftables fills `nft_pktinfo`
//! (`thoff`, `l4proto`, `fragoff`).
//!
//! The input is untrusted: every read goes through `get`, the IPv6 extension
//! header walk is bounded, and nothing here can panic.
//!
//! On `Err` the caller should treat the packet like nftables treats an invalid
//! one (`nft_set_pktinfo_unspecified`): family from [`family`], no layer-4
//! information, no flags.

use abi::guest::ctx::{FLAG_FRAG, FLAG_L4, FLAG_NONFIRST, NFPROTO_IPV4, NFPROTO_IPV6};
use core::fmt;

/// Layer-3/4 layout of a packet, as nftables sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Layout {
    /// `abi::guest::ctx::NFPROTO_IPV4` or `NFPROTO_IPV6`.
    pub nfproto: u8,
    /// IPv4 protocol / IPv6 final next-header (after walking extension
    /// headers); for fragments the protocol of the fragmented payload.
    pub l4proto: u8,
    /// Offset of the transport header from the start of `data`
    /// (always `<= data.len()`).
    pub l4off: u32,
    /// `abi::guest::ctx::FLAG_*` bits.
    pub flags: u8,
}

/// Why a packet's headers could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// A network-layer header (IPv4 header, IPv6 fixed or extension header)
    /// does not fit in `data`.
    Truncated,
    /// The version nibble is neither 4 nor 6 (or does not match the family).
    BadVersion,
    /// IPv4 IHL below 5.
    BadHeaderLength,
    /// `total_len` is smaller than `data.len()`.
    BadTotalLength,
    /// More than [`MAX_EXT_HEADERS`] IPv6 extension headers.
    TooManyExtensions,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Truncated => "truncated network header",
            HeaderError::BadVersion => "bad ip version",
            HeaderError::BadHeaderLength => "bad ipv4 header length",
            HeaderError::BadTotalLength => "packet length smaller than captured data",
            HeaderError::TooManyExtensions => "too many ipv6 extension headers",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HeaderError {}

/// Most IPv6 extension headers walked before giving up.
pub const MAX_EXT_HEADERS: usize = 16;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_NONE: u8 = 59;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_UDPLITE: u8 = 136;

const IPV6_HDR_LEN: usize = 40;

/// Guess the family from the version nibble: `Some(NFPROTO_IPV4|NFPROTO_IPV6)` or `None`.
pub fn family(data: &[u8]) -> Option<u8> {
    match data.first().map(|b| b >> 4) {
        Some(4) => Some(NFPROTO_IPV4),
        Some(6) => Some(NFPROTO_IPV6),
        _ => None,
    }
}

/// `data` is the packet from its network header on (it may be only the first
/// part of a longer packet: `total_len` is the packet's real length).
pub fn parse(data: &[u8], total_len: usize) -> Result<Layout, HeaderError> {
    if total_len < data.len() {
        return Err(HeaderError::BadTotalLength);
    }
    match family(data) {
        Some(NFPROTO_IPV4) => parse_ipv4(data),
        Some(NFPROTO_IPV6) => parse_ipv6(data),
        _ if data.is_empty() => Err(HeaderError::Truncated),
        _ => Err(HeaderError::BadVersion),
    }
}

fn byte(data: &[u8], off: usize) -> Result<u8, HeaderError> {
    data.get(off).copied().ok_or(HeaderError::Truncated)
}

fn be16(data: &[u8], off: usize) -> Result<u16, HeaderError> {
    let end = off.checked_add(2).ok_or(HeaderError::Truncated)?;
    match data.get(off..end) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(HeaderError::Truncated),
    }
}

fn to_u32(off: usize) -> Result<u32, HeaderError> {
    u32::try_from(off).map_err(|_| HeaderError::Truncated)
}

fn parse_ipv4(data: &[u8]) -> Result<Layout, HeaderError> {
    let b0 = byte(data, 0)?;
    if b0 >> 4 != 4 {
        return Err(HeaderError::BadVersion);
    }
    let ihl = usize::from(b0 & 0x0f);
    if ihl < 5 {
        return Err(HeaderError::BadHeaderLength);
    }
    let hlen = ihl * 4;
    if hlen > data.len() {
        return Err(HeaderError::Truncated);
    }
    let frag = be16(data, 6)?;
    let proto = byte(data, 9)?;
    let more_fragments = frag & 0x2000 != 0;
    let offset = frag & 0x1fff;

    let mut flags = 0;
    if more_fragments || offset != 0 {
        flags |= FLAG_FRAG;
    }
    if offset != 0 {
        flags |= FLAG_NONFIRST;
    } else if l4_present(data, hlen, proto) {
        flags |= FLAG_L4;
    }
    Ok(Layout {
        nfproto: NFPROTO_IPV4,
        l4proto: proto,
        l4off: to_u32(hlen)?,
        flags,
    })
}

fn parse_ipv6(data: &[u8]) -> Result<Layout, HeaderError> {
    let b0 = byte(data, 0)?;
    if b0 >> 4 != 6 {
        return Err(HeaderError::BadVersion);
    }
    if data.len() < IPV6_HDR_LEN {
        return Err(HeaderError::Truncated);
    }
    let mut next = byte(data, 6)?;
    let mut off = IPV6_HDR_LEN;
    let mut flags = 0;
    let mut walked = 0usize;

    loop {
        let ext_len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                (usize::from(byte(data, off + 1)?) + 1) * 8
            }
            IPPROTO_AH => (usize::from(byte(data, off + 1)?) + 2) * 4,
            IPPROTO_FRAGMENT => 8,
            // ESP, no-next-header and every transport end the walk.
            _ => break,
        };
        walked += 1;
        if walked > MAX_EXT_HEADERS {
            return Err(HeaderError::TooManyExtensions);
        }
        let end = off.checked_add(ext_len).ok_or(HeaderError::Truncated)?;
        if end > data.len() {
            return Err(HeaderError::Truncated);
        }
        let hdr_next = byte(data, off)?;
        if next == IPPROTO_FRAGMENT {
            let frag = be16(data, off + 2)?;
            let offset = frag & 0xfff8;
            let more_fragments = frag & 0x0001 != 0;
            if offset != 0 {
                return Ok(Layout {
                    nfproto: NFPROTO_IPV6,
                    l4proto: hdr_next,
                    l4off: to_u32(end)?,
                    flags: flags | FLAG_FRAG | FLAG_NONFIRST,
                });
            }
            if more_fragments {
                flags |= FLAG_FRAG;
            }
        }
        next = hdr_next;
        off = end;
    }

    if next != IPPROTO_NONE && l4_present(data, off, next) {
        flags |= FLAG_L4;
    }
    Ok(Layout {
        nfproto: NFPROTO_IPV6,
        l4proto: next,
        l4off: to_u32(off)?,
        flags,
    })
}

/// Whether a complete transport header of `proto` starts at `off` in `data`.
fn l4_present(data: &[u8], off: usize, proto: u8) -> bool {
    let min = match proto {
        IPPROTO_TCP => 20,
        IPPROTO_UDP | IPPROTO_UDPLITE | IPPROTO_ICMP => 8,
        IPPROTO_ICMPV6 => 4,
        IPPROTO_SCTP => 12,
        // ESP (50) and everything else: the offset being inside `data` is enough.
        _ => 0,
    };
    let Some(hdr) = off.checked_add(min).and_then(|end| data.get(off..end)) else {
        return false;
    };
    if proto == IPPROTO_TCP {
        let doff = match hdr.get(12) {
            Some(b) => usize::from(b >> 4),
            None => return false,
        };
        if doff < 5 {
            return false;
        }
        return off
            .checked_add(doff * 4)
            .is_some_and(|end| end <= data.len());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn ipv4(ihl: u8, proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
        let hlen = usize::from(ihl) * 4;
        let mut p = vec![0u8; hlen.max(20)];
        p[0] = 0x40 | ihl;
        let tot = (p.len() + payload.len()) as u16;
        p[2..4].copy_from_slice(&tot.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    fn tcp(doff: u8) -> Vec<u8> {
        let mut t = vec![0u8; usize::from(doff.max(5)) * 4];
        t[0..2].copy_from_slice(&1234u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[12] = doff << 4;
        t[13] = 0x02;
        t
    }

    fn udp() -> Vec<u8> {
        let mut u = vec![0u8; 8];
        u[0..2].copy_from_slice(&5353u16.to_be_bytes());
        u[2..4].copy_from_slice(&53u16.to_be_bytes());
        u[4..6].copy_from_slice(&8u16.to_be_bytes());
        u
    }

    fn icmp() -> Vec<u8> {
        vec![8, 0, 0, 0, 0, 1, 0, 1]
    }

    fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(rest.len() as u16).to_be_bytes());
        p[6] = next;
        p[7] = 64;
        p[8] = 0x20;
        p[9] = 0x01;
        p[39] = 1;
        p.extend_from_slice(rest);
        p
    }

    /// An options-style extension header (hop-by-hop, routing, dst opts) of `len8` 8-byte units.
    fn ext(next: u8, len8: u8) -> Vec<u8> {
        let mut e = vec![0u8; (usize::from(len8) + 1) * 8];
        e[0] = next;
        e[1] = len8;
        e
    }

    fn frag6(next: u8, offset8: u16, more: bool) -> Vec<u8> {
        let mut f = vec![0u8; 8];
        f[0] = next;
        let v = (offset8 << 3) | u16::from(more);
        f[2..4].copy_from_slice(&v.to_be_bytes());
        f[4..8].copy_from_slice(&0xdeadbeefu32.to_be_bytes());
        f
    }

    fn full(p: &[u8]) -> Result<Layout, HeaderError> {
        parse(p, p.len())
    }

    #[test]
    fn headers_ipv4_tcp() {
        let p = ipv4(5, 6, 0x4000, &tcp(5));
        let l = full(&p).unwrap();
        assert_eq!(
            l,
            Layout {
                nfproto: NFPROTO_IPV4,
                l4proto: 6,
                l4off: 20,
                flags: FLAG_L4
            }
        );
        assert_eq!(family(&p), Some(NFPROTO_IPV4));
    }

    #[test]
    fn headers_ipv4_tcp_options() {
        let p = ipv4(5, 6, 0, &tcp(8));
        assert_eq!(full(&p).unwrap().flags, FLAG_L4);
        // doff says 32 bytes but only 20 are present in data.
        let l = parse(&p[..40], p.len()).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (6, 20, 0));
        // doff < 5 is not a valid TCP header.
        let mut bad = ipv4(5, 6, 0, &tcp(5));
        bad[20 + 12] = 4 << 4;
        assert_eq!(full(&bad).unwrap().flags, 0);
    }

    #[test]
    fn headers_ipv4_udp_icmp() {
        let l = full(&ipv4(5, 17, 0, &udp())).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (17, 20, FLAG_L4));
        let l = full(&ipv4(5, 1, 0, &icmp())).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (1, 20, FLAG_L4));
        // Unknown protocol with no payload still has its (empty) header.
        let l = full(&ipv4(5, 47, 0, &[])).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (47, 20, FLAG_L4));
    }

    #[test]
    fn headers_ipv4_options() {
        let p = ipv4(6, 17, 0, &udp());
        let l = full(&p).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (17, 24, FLAG_L4));
    }

    #[test]
    fn headers_ipv4_first_fragment() {
        let p = ipv4(5, 6, 0x2000, &tcp(5));
        let l = full(&p).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (6, 20, FLAG_FRAG | FLAG_L4));
    }

    #[test]
    fn headers_ipv4_nonfirst_fragment() {
        // Offset 185 (1480 bytes), MF clear: last fragment.
        let p = ipv4(5, 6, 185, &tcp(5));
        let l = full(&p).unwrap();
        assert_eq!(
            (l.l4proto, l.l4off, l.flags),
            (6, 20, FLAG_FRAG | FLAG_NONFIRST)
        );
        let p = ipv4(5, 17, 0x2000 | 1, &udp());
        assert_eq!(full(&p).unwrap().flags, FLAG_FRAG | FLAG_NONFIRST);
    }

    #[test]
    fn headers_ipv4_truncated_tcp() {
        let p = ipv4(5, 6, 0, &tcp(5));
        let l = parse(&p[..30], p.len()).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (6, 20, 0));
        let l = parse(&p[..20], p.len()).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (6, 20, 0));
        // UDP one byte short.
        let p = ipv4(5, 17, 0, &udp());
        assert_eq!(parse(&p[..27], p.len()).unwrap().flags, 0);
    }

    #[test]
    fn headers_errors() {
        let mut p = ipv4(5, 6, 0, &tcp(5));
        p[0] = 0x55;
        assert_eq!(full(&p), Err(HeaderError::BadVersion));
        assert_eq!(family(&p), None);
        p[0] = 0x44;
        assert_eq!(full(&p), Err(HeaderError::BadHeaderLength));
        p[0] = 0x40;
        assert_eq!(full(&p), Err(HeaderError::BadHeaderLength));
        // IHL 15 = 60 bytes, only 40 present.
        p[0] = 0x4f;
        assert_eq!(full(&p), Err(HeaderError::Truncated));
        let p = ipv4(5, 6, 0, &tcp(5));
        assert_eq!(parse(&p[..19], p.len()), Err(HeaderError::Truncated));
        assert_eq!(parse(&p, p.len() - 1), Err(HeaderError::BadTotalLength));
        assert_eq!(full(&[]), Err(HeaderError::Truncated));
        assert_eq!(family(&[]), None);
        let v6 = ipv6(6, &tcp(5));
        assert_eq!(parse(&v6[..39], 100), Err(HeaderError::Truncated));
        // Extension header running past the data.
        let mut rest = ext(17, 1);
        rest.truncate(10);
        assert_eq!(full(&ipv6(0, &rest)), Err(HeaderError::Truncated));
        assert_eq!(full(&ipv6(0, &[])), Err(HeaderError::Truncated));
        assert_eq!(
            std::format!("{}", HeaderError::BadVersion),
            "bad ip version"
        );
    }

    #[test]
    fn headers_ipv6_tcp() {
        let p = ipv6(6, &tcp(5));
        assert_eq!(family(&p), Some(NFPROTO_IPV6));
        let l = full(&p).unwrap();
        assert_eq!(
            l,
            Layout {
                nfproto: NFPROTO_IPV6,
                l4proto: 6,
                l4off: 40,
                flags: FLAG_L4
            }
        );
        let l = full(&ipv6(58, &[128, 0, 0, 0])).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (58, 40, FLAG_L4));
        let l = full(&ipv6(58, &[128, 0, 0])).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (58, 40, 0));
    }

    #[test]
    fn headers_ipv6_ext_chain() {
        let mut rest = ext(60, 0); // hop-by-hop, 8 bytes
        rest.extend(ext(43, 1)); // destination options, 16 bytes
        rest.extend(ext(17, 2)); // routing, 24 bytes
        rest.extend(udp());
        let p = ipv6(0, &rest);
        let l = full(&p).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (17, 40 + 48, FLAG_L4));
        // Same packet, UDP header cut short.
        let l = parse(&p[..p.len() - 1], p.len()).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (17, 88, 0));
    }

    #[test]
    fn headers_ipv6_ah_esp() {
        // AH with hdrlen 4: (4 + 2) * 4 = 24 bytes.
        let mut ah = vec![0u8; 24];
        ah[0] = 6;
        ah[1] = 4;
        ah.extend(tcp(5));
        let l = full(&ipv6(51, &ah)).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (6, 64, FLAG_L4));
        let l = full(&ipv6(50, &[0; 16])).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (50, 40, FLAG_L4));
    }

    #[test]
    fn headers_ipv6_fragments() {
        let mut rest = frag6(17, 0, true);
        rest.extend(udp());
        let l = full(&ipv6(44, &rest)).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (17, 48, FLAG_FRAG | FLAG_L4));

        // Atomic fragment (offset 0, M clear): not a fragment for nft.
        let mut rest = frag6(17, 0, false);
        rest.extend(udp());
        let l = full(&ipv6(44, &rest)).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (17, 48, FLAG_L4));

        // Non-first: stops at the fragment header, even if more headers follow.
        let mut rest = ext(44, 0);
        rest.extend(frag6(6, 185, true));
        rest.extend(tcp(5));
        let l = full(&ipv6(0, &rest)).unwrap();
        assert_eq!(
            (l.l4proto, l.l4off, l.flags),
            (6, 56, FLAG_FRAG | FLAG_NONFIRST)
        );
        let l = full(&ipv6(44, &frag6(17, 1, false))).unwrap();
        assert_eq!(
            (l.l4proto, l.l4off, l.flags),
            (17, 48, FLAG_FRAG | FLAG_NONFIRST)
        );
    }

    #[test]
    fn headers_ipv6_no_next_header() {
        let l = full(&ipv6(59, &[0; 8])).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (59, 40, 0));
        let l = full(&ipv6(60, &ext(59, 0))).unwrap();
        assert_eq!((l.l4proto, l.l4off, l.flags), (59, 48, 0));
    }

    #[test]
    fn headers_ipv6_long_chain() {
        let mut rest = Vec::new();
        for _ in 0..20 {
            rest.extend(ext(60, 0));
        }
        rest.extend(udp());
        assert_eq!(full(&ipv6(60, &rest)), Err(HeaderError::TooManyExtensions));

        // Exactly the limit is fine.
        let mut rest = Vec::new();
        for i in 0..MAX_EXT_HEADERS {
            rest.extend(ext(if i + 1 == MAX_EXT_HEADERS { 17 } else { 60 }, 0));
        }
        rest.extend(udp());
        let l = full(&ipv6(60, &rest)).unwrap();
        assert_eq!(l.l4proto, 17);
        assert_eq!(l.l4off as usize, 40 + 8 * MAX_EXT_HEADERS);
        assert_eq!(l.flags, FLAG_L4);
    }

    #[test]
    fn headers_fuzz() {
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut oks = 0;
        for i in 0..200_000u32 {
            let len = (next() % 160) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Bias towards plausible headers so the deep paths get exercised.
            if let Some(b) = p.first_mut() {
                match i % 4 {
                    0 => *b = 0x40 | (*b & 0x0f),
                    1 => *b = 0x60,
                    _ => {}
                }
            }
            if i % 4 == 1 && p.len() > 6 {
                const EXT: [u8; 8] = [0, 43, 44, 60, 51, 6, 17, 59];
                p[6] = EXT[(next() % 8) as usize];
                let mut off = 40;
                while off < p.len() {
                    p[off] = EXT[(next() % 8) as usize];
                    if off + 1 < p.len() {
                        p[off + 1] %= 3;
                    }
                    off += 8;
                }
            }
            let extra = (next() % 64) as usize;
            let total = if i % 17 == 0 { len / 2 } else { len + extra };
            match parse(&p, total) {
                Ok(l) => {
                    oks += 1;
                    assert!(l.l4off as usize <= p.len());
                    assert!(l.nfproto == NFPROTO_IPV4 || l.nfproto == NFPROTO_IPV6);
                    assert_eq!(Some(l.nfproto), family(&p));
                    if l.flags & FLAG_L4 != 0 {
                        assert_eq!(l.flags & FLAG_NONFIRST, 0);
                    }
                    if l.flags & FLAG_NONFIRST != 0 {
                        assert_ne!(l.flags & FLAG_FRAG, 0);
                    }
                }
                Err(e) => {
                    let _ = std::format!("{e}");
                }
            }
        }
        assert!(oks > 1000, "fuzz reached too few valid packets: {oks}");
    }
}
