//! Capture files for offline runs.
//!
//! [`read_file`] / [`read_bytes`] load a whole capture (classic pcap in both
//! byte orders, micro- or nanosecond variant, or pcapng) and reduce every
//! frame to what the runtime needs: the IPv4/IPv6 packet starting at its
//! network header, or a short reason why the frame is skipped.
//! [`write_raw_ip`] writes packets back as a classic pcap with
//! `LINKTYPE_RAW`.
//!
//! The file formats are pcap-file's (its parsers, on the in-memory bytes), the link layers
//! etherparse's (Ethernet, VLAN tags, Linux cooked). What they lack is here, small and tested:
//! pcapng's `if_tsresol`/`if_tsoffset` (pcap-file hands over raw ticks), records longer than the
//! snaplen (kept as captured, where pcap-file's checked packets refuse them), Linux cooked v2,
//! and cutting link padding after the IP length as the kernel does. Corrupt input gives a
//! [`PcapError`], never a panic and never a partial result.
//!
//! Frame indices (in [`Frame::index`] and in error messages) are 0-based and
//! count packet records only (pcapng blocks that carry no packet are not
//! counted).

use std::path::Path;

/// `NFPROTO_IPV4`.
pub const NFPROTO_IPV4: u8 = 2;
/// `NFPROTO_IPV6`.
pub const NFPROTO_IPV6: u8 = 10;

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW_OLD_12: u32 = 12;
const LINKTYPE_RAW_OLD_14: u32 = 14;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_IPV4: u32 = 228;
const LINKTYPE_IPV6: u32 = 229;
const LINKTYPE_LINUX_SLL2: u32 = 276;

const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;
/// Microsecond magic, as read little-endian from a little-endian file.
const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
/// Nanosecond magic.
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;

const PCAPNG_SHB: u32 = 0x0a0d_0d0a;

const MAX_VLAN_TAGS: usize = 2;

const TRUNCATED_LINK_HEADER: &str = "truncated link header";

/// One frame of a capture, reduced to what the runtime needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 0-based position of the frame in the capture.
    pub index: usize,
    /// Capture timestamp, nanoseconds since the Unix epoch (0 for pcapng
    /// simple packet blocks, which carry none).
    pub ts_ns: u64,
    /// Length of the frame on the wire (including the link header).
    pub orig_len: u32,
    /// The decoded contents.
    pub kind: FrameKind,
    /// The Ethernet header of an IP frame of an Ethernet capture: destination, source and the
    /// IP ethertype (VLAN tags left out), as `pkt.eth` shows it.
    pub eth: Option<[u8; 14]>,
    /// The first comment of a pcapng enhanced packet block (`opt_comment`).
    pub comment: Option<String>,
}

/// What a frame holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// An IPv4/IPv6 packet: `data` starts at the network header. `nfproto` is
    /// 2 (IPv4) or 10 (IPv6).
    ///
    /// The header has been sanity-checked (version, minimum length) and link
    /// padding after the IP total length (e.g. Ethernet padding to 60 bytes,
    /// a trailing FCS) has been cut off, as the kernel does before netfilter
    /// sees the packet. A packet cut short by the capture snaplen is kept as
    /// captured.
    Ip { nfproto: u8, data: Vec<u8> },
    /// Not IP (ARP, LLDP, ...): reported as skipped with a short reason, e.g.
    /// "ethertype 0x0806".
    Skipped { reason: String },
}

/// Errors reading or writing a capture. Every message starts with the file
/// name.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be read (OS error).
    #[error("{path}: cannot read capture: {err}")]
    Read { path: String, err: std::io::Error },
    /// The file could not be written (OS error).
    #[error("{path}: cannot write capture: {err}")]
    Write { path: String, err: std::io::Error },
    /// The file as a whole is not a usable capture (bad magic, truncated
    /// file header, ...).
    #[error("{name}: {detail}")]
    BadFile { name: String, detail: String },
    /// The capture uses a link type this reader does not decode.
    #[error(
        "{name}: unsupported link type {linktype} (only Ethernet, raw IP and Linux cooked captures)"
    )]
    UnsupportedLinkType { name: String, linktype: u32 },
    /// A frame (record) is corrupt or truncated, or (when writing) cannot be
    /// represented in a pcap.
    #[error("{name}: frame {index}: {detail}")]
    BadFrame {
        name: String,
        index: usize,
        detail: String,
    },
}

/// Reads a whole capture file (classic pcap, both byte orders and the
/// nanosecond variant, or pcapng) into frames.
pub fn read_file(path: &Path) -> Result<Vec<Frame>, PcapError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|err| PcapError::Read {
        path: name.clone(),
        err,
    })?;
    read_bytes(&name, &bytes)
}

/// Same as [`read_file`], from bytes; `name` is used in error messages.
pub fn read_bytes(name: &str, bytes: &[u8]) -> Result<Vec<Frame>, PcapError> {
    let bad_file = |detail: String| PcapError::BadFile {
        name: name.to_string(),
        detail,
    };
    if bytes.is_empty() {
        return Err(bad_file("empty file (not a pcap or pcapng capture)".into()));
    }
    let Some(magic) = bytes
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
    else {
        return Err(bad_file(format!(
            "truncated file header ({} bytes)",
            bytes.len()
        )));
    };
    match magic {
        m if [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&m)
            || [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&m.swap_bytes()) =>
        {
            read_classic(name, bytes)
        }
        PCAPNG_SHB => read_pcapng(name, bytes),
        _ => Err(bad_file(format!(
            "not a pcap or pcapng capture (magic {:02x} {:02x} {:02x} {:02x})",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ))),
    }
}

/// Writes packets as a classic pcap (little-endian, nanosecond timestamps)
/// with `LINKTYPE_RAW` (101): each packet must start at its IPv4/IPv6 header.
///
/// Everything is validated before the file is created, so an unrepresentable
/// packet (larger than 4 GiB, timestamp after 2106) leaves no file behind.
pub fn write_raw_ip(path: &Path, packets: &[(u64, &[u8])]) -> Result<(), PcapError> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::{DataLink, Endianness, TsResolution};
    let name = path.display().to_string();
    let mut snaplen: u32 = 65535;
    for (index, &(ts_ns, data)) in packets.iter().enumerate() {
        let bad = |detail: String| PcapError::BadFrame {
            name: name.clone(),
            index,
            detail,
        };
        let len = u32::try_from(data.len()).map_err(|_| {
            bad(format!(
                "packet of {} bytes is too large for pcap",
                data.len()
            ))
        })?;
        u32::try_from(ts_ns / 1_000_000_000).map_err(|_| {
            bad(format!(
                "timestamp {ts_ns} ns is past what pcap can store (year 2106)"
            ))
        })?;
        snaplen = snaplen.max(len);
    }
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen,
        datalink: DataLink::RAW,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::Little,
    };
    let failed = |index: usize, e: pcap_file::PcapError| PcapError::BadFrame {
        name: name.clone(),
        index,
        detail: e.to_string(),
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).map_err(|e| failed(0, e))?;
    for (index, &(ts_ns, data)) in packets.iter().enumerate() {
        let p = PcapPacket::new(
            std::time::Duration::from_nanos(ts_ns),
            data.len() as u32,
            data,
        );
        w.write_packet(&p).map_err(|e| failed(index, e))?;
    }
    std::fs::write(path, w.into_writer()).map_err(|err| PcapError::Write { path: name, err })
}

/// A packet for [`write_pcapng_raw_ip`]: its timestamp, its length on the wire (`data` may be
/// its first bytes only), its bytes from the IP header on, and a comment.
pub struct NgPacket<'a> {
    pub ts_ns: u64,
    pub orig_len: u32,
    pub data: &'a [u8],
    pub comment: Option<String>,
}

/// Writes packets as pcapng (one `LINKTYPE_RAW` interface, nanosecond timestamps), each with
/// its comment: what `lpctl script errors -w` writes and `lpctl run` reads back.
pub fn write_pcapng_raw_ip(path: &Path, packets: &[NgPacket<'_>]) -> Result<(), PcapError> {
    use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;
    use std::borrow::Cow;
    let name = path.display().to_string();
    let failed = |index: usize, e: pcap_file::PcapError| PcapError::BadFrame {
        name: name.clone(),
        index,
        detail: e.to_string(),
    };
    let mut w = PcapNgWriter::new(Vec::new()).map_err(|e| failed(0, e))?;
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::RAW,
        snaplen: 0,
        options: vec![InterfaceDescriptionOption::IfTsResol(9)],
    })
    .map_err(|e| failed(0, e))?;
    for (index, p) in packets.iter().enumerate() {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: std::time::Duration::from_nanos(p.ts_ns),
            original_len: p.orig_len.max(p.data.len() as u32),
            data: Cow::Borrowed(p.data),
            options: p
                .comment
                .iter()
                .map(|c| EnhancedPacketOption::Comment(Cow::Borrowed(c.as_str())))
                .collect(),
        })
        .map_err(|e| failed(index, e))?;
    }
    std::fs::write(path, w.into_inner()).map_err(|err| PcapError::Write { path: name, err })
}

// ---------------------------------------------------------------------------
// Formats (pcap-file)

fn is_supported(linktype: u32) -> bool {
    matches!(
        linktype,
        LINKTYPE_ETHERNET
            | LINKTYPE_RAW
            | LINKTYPE_RAW_OLD_12
            | LINKTYPE_RAW_OLD_14
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_LINUX_SLL2
    )
}

fn read_classic(name: &str, bytes: &[u8]) -> Result<Vec<Frame>, PcapError> {
    use pcap_file::pcap::PcapParser;
    use pcap_file::TsResolution;
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|e| PcapError::BadFile {
        name: name.to_string(),
        detail: match e {
            pcap_file::PcapError::IncompleteBuffer => format!(
                "truncated pcap file header ({} of {PCAP_HEADER_LEN} bytes)",
                bytes.len()
            ),
            e => format!("bad pcap file header: {e}"),
        },
    })?;
    let header = parser.header();
    // The upper bits of the link type field may carry FCS information
    // (libpcap's LT_LINKTYPE mask).
    let linktype = u32::from(header.datalink) & 0xffff;
    if !is_supported(linktype) {
        return Err(PcapError::UnsupportedLinkType {
            name: name.to_string(),
            linktype,
        });
    }
    let nanos = header.ts_resolution == TsResolution::NanoSecond;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let index = frames.len();
        let off = bytes.len() - rest.len();
        // unchecked records: a snaplen smaller than the record (or than the packet on the wire)
        // is common in real captures, and the packet is kept as captured
        let (next, raw) = parser.next_raw_packet(rest).map_err(|e| PcapError::BadFrame {
            name: name.to_string(),
            index,
            detail: match e {
                pcap_file::PcapError::IncompleteBuffer => match rest
                    .get(8..12)
                    .filter(|_| rest.len() >= PCAP_RECORD_HEADER_LEN)
                {
                    Some(b) => {
                        let b = [b[0], b[1], b[2], b[3]];
                        let claims = match header.endianness {
                            pcap_file::Endianness::Big => u32::from_be_bytes(b),
                            pcap_file::Endianness::Little => u32::from_le_bytes(b),
                        };
                        format!(
                            "record at offset {off} claims {claims} bytes, runs past end of file ({} bytes left)",
                            rest.len() - PCAP_RECORD_HEADER_LEN
                        )
                    }
                    None => format!(
                        "truncated record header at offset {off} ({} of {PCAP_RECORD_HEADER_LEN} bytes)",
                        rest.len()
                    ),
                },
                e => format!("record at offset {off}: {e}"),
            },
        })?;
        let frac_ns = if nanos {
            u64::from(raw.ts_frac)
        } else {
            u64::from(raw.ts_frac) * 1000
        };
        frames.push(Frame::decode(
            index,
            u64::from(raw.ts_sec) * 1_000_000_000 + frac_ns,
            raw.orig_len,
            linktype,
            &raw.data,
        ));
        rest = next;
    }
    Ok(frames)
}

struct Interface {
    linktype: u32,
    snaplen: u32,
    tsresol: u8,
    tsoffset_s: i64,
}

fn read_pcapng(name: &str, bytes: &[u8]) -> Result<Vec<Frame>, PcapError> {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    use pcap_file::pcapng::{Block, PcapNgParser};
    let (mut rest, mut parser) = PcapNgParser::new(bytes).map_err(|e| PcapError::BadFile {
        name: name.to_string(),
        detail: format!("bad pcapng section header: {e}"),
    })?;
    if parser.section().major_version != 1 {
        return Err(PcapError::BadFile {
            name: name.to_string(),
            detail: format!(
                "unsupported pcapng version {}.{}",
                parser.section().major_version,
                parser.section().minor_version
            ),
        });
    }
    let mut frames = Vec::new();
    let mut interfaces: Vec<Interface> = Vec::new();
    while !rest.is_empty() {
        let index = frames.len();
        let off = bytes.len() - rest.len();
        let bad = |detail: String| PcapError::BadFrame {
            name: name.to_string(),
            index,
            detail,
        };
        let (next, block) = parser.next_block(rest).map_err(|e| {
            bad(match e {
                pcap_file::PcapError::IncompleteBuffer => {
                    format!(
                        "block at offset {off} runs past end of file ({} bytes left)",
                        rest.len()
                    )
                }
                e => format!("block at offset {off}: {e}"),
            })
        })?;
        rest = next;
        // (interface id, raw timestamp, length on the wire, data, comment)
        let (iface_id, ts, orig_len, data, comment) = match &block {
            Block::SectionHeader(_) => {
                interfaces.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                let mut iface = Interface {
                    linktype: u32::from(idb.linktype),
                    snaplen: idb.snaplen,
                    tsresol: 6,
                    tsoffset_s: 0,
                };
                for o in &idb.options {
                    match o {
                        InterfaceDescriptionOption::IfTsResol(r) => iface.tsresol = *r,
                        InterfaceDescriptionOption::IfTsOffset(o) => iface.tsoffset_s = *o as i64,
                        _ => {}
                    }
                }
                interfaces.push(iface);
                continue;
            }
            Block::EnhancedPacket(epb) => {
                let comment = epb.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                });
                // pcap-file reads the ticks as nanoseconds; they are in if_tsresol units
                let ticks = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                (
                    epb.interface_id,
                    Some(ticks),
                    epb.original_len,
                    &epb.data[..],
                    comment,
                )
            }
            Block::Packet(pb) => (
                u32::from(pb.interface_id),
                Some(pb.timestamp),
                pb.original_len,
                &pb.data[..],
                None,
            ),
            Block::SimplePacket(spb) => (0, None, spb.original_len, &spb.data[..], None),
            _ => continue, // statistics, name resolution, custom, ...: not needed
        };
        let Some(iface) = usize::try_from(iface_id)
            .ok()
            .and_then(|i| interfaces.get(i))
        else {
            return Err(bad(format!(
                "packet block at offset {off} refers to undeclared interface {iface_id}"
            )));
        };
        if !is_supported(iface.linktype) {
            return Err(PcapError::UnsupportedLinkType {
                name: name.to_string(),
                linktype: iface.linktype,
            });
        }
        let data = if ts.is_none() {
            // a simple packet block's captured length is implied (its data is padded)
            let mut n = data.len();
            for limit in [orig_len, iface.snaplen] {
                if limit != 0 {
                    n = n.min(usize::try_from(limit).unwrap_or(usize::MAX));
                }
            }
            &data[..n]
        } else {
            data
        };
        let ts_ns = ts.map_or(0, |ts| pcapng_ts_ns(ts, iface.tsresol, iface.tsoffset_s));
        let mut frame = Frame::decode(index, ts_ns, orig_len, iface.linktype, data);
        frame.comment = comment;
        frames.push(frame);
    }
    Ok(frames)
}

/// Converts a pcapng timestamp (in units of `if_tsresol`, plus
/// `if_tsoffset` seconds) to nanoseconds since the epoch, saturating.
fn pcapng_ts_ns(ts: u64, tsresol: u8, tsoffset_s: i64) -> u64 {
    let ts = u128::from(ts);
    let exp = u32::from(tsresol & 0x7f);
    let ns: u128 = if tsresol & 0x80 == 0 {
        // 10^-exp seconds per unit.
        if exp <= 9 {
            ts * 10u128.pow(9 - exp)
        } else {
            10u128.checked_pow(exp - 9).map_or(0, |d| ts / d)
        }
    } else {
        // 2^-exp seconds per unit; ts * 1e9 < 2^94, exp < 128.
        (ts * 1_000_000_000) >> exp
    };
    let ns = i128::try_from(ns).unwrap_or(i128::MAX);
    let ns = ns.saturating_add(i128::from(tsoffset_s) * 1_000_000_000);
    u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// Link layer (etherparse)

fn skipped(reason: impl Into<String>) -> FrameKind {
    FrameKind::Skipped {
        reason: reason.into(),
    }
}

impl Frame {
    /// A captured frame of the given (supported) link type, decoded once.
    fn decode(index: usize, ts_ns: u64, orig_len: u32, linktype: u32, data: &[u8]) -> Frame {
        let kind = decode(linktype, data);
        let eth = eth_header(linktype, data, &kind);
        Frame {
            index,
            ts_ns,
            orig_len,
            kind,
            eth,
            comment: None,
        }
    }
}

/// The Ethernet header of an Ethernet frame that decoded to IP (after any VLAN tags).
fn eth_header(linktype: u32, data: &[u8], kind: &FrameKind) -> Option<[u8; 14]> {
    let FrameKind::Ip { nfproto, .. } = kind else {
        return None;
    };
    if linktype != LINKTYPE_ETHERNET || data.len() < 14 {
        return None;
    }
    let mut h = [0u8; 14];
    h[..12].copy_from_slice(&data[..12]);
    let ethertype: u16 = if *nfproto == 2 { 0x0800 } else { 0x86dd };
    h[12..].copy_from_slice(&ethertype.to_be_bytes());
    Some(h)
}

/// Reduces one captured frame of the given (supported) link type.
fn decode(linktype: u32, data: &[u8]) -> FrameKind {
    use etherparse::{Ethernet2Slice, LinuxSllProtocolType, LinuxSllSlice};
    match linktype {
        LINKTYPE_ETHERNET => match Ethernet2Slice::from_slice_without_fcs(data) {
            Ok(e) => from_ethertype(e.ether_type().0, e.payload_slice()),
            Err(_) => skipped(TRUNCATED_LINK_HEADER),
        },
        LINKTYPE_LINUX_SLL => match LinuxSllSlice::from_slice(data) {
            Ok(s) => match s.protocol_type() {
                LinuxSllProtocolType::EtherType(t) => from_ethertype(t.0, s.payload_slice()),
                other => skipped(format!("Linux cooked frame of protocol {other:?}")),
            },
            Err(_) => skipped(TRUNCATED_LINK_HEADER),
        },
        // Linux cooked v2 (etherparse has v1 only): the protocol first, a 20-byte header
        LINKTYPE_LINUX_SLL2 => match (data.get(..2), data.get(20..)) {
            (Some(p), Some(payload)) => from_ethertype(u16::from_be_bytes([p[0], p[1]]), payload),
            _ => skipped(TRUNCATED_LINK_HEADER),
        },
        LINKTYPE_RAW | LINKTYPE_RAW_OLD_12 | LINKTYPE_RAW_OLD_14 => match data.first() {
            None => skipped("empty packet"),
            Some(b) => match b >> 4 {
                4 => ipv4(data),
                6 => ipv6(data),
                v => skipped(format!("raw frame with IP version {v}")),
            },
        },
        LINKTYPE_IPV4 => ipv4(data),
        LINKTYPE_IPV6 => ipv6(data),
        other => skipped(format!("unsupported link type {other}")),
    }
}

/// Follows an ethertype through up to [`MAX_VLAN_TAGS`] VLAN tags to the IP packet in
/// `payload`.
fn from_ethertype(mut ethertype: u16, mut payload: &[u8]) -> FrameKind {
    use etherparse::{EtherType, SingleVlanSlice};
    let mut tags = 0;
    while matches!(
        EtherType(ethertype),
        EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME
    ) {
        if tags == MAX_VLAN_TAGS {
            return skipped(format!("more than {MAX_VLAN_TAGS} VLAN tags"));
        }
        let Ok(tag) = SingleVlanSlice::from_slice(payload) else {
            return skipped(TRUNCATED_LINK_HEADER);
        };
        ethertype = tag.ether_type().0;
        payload = tag.payload_slice();
        tags += 1;
    }
    match EtherType(ethertype) {
        EtherType::IPV4 => ipv4(payload),
        EtherType::IPV6 => ipv6(payload),
        _ if ethertype < 0x0600 => {
            skipped(format!("802.3/LLC frame (length/type 0x{ethertype:04x})"))
        }
        _ => skipped(format!("ethertype 0x{ethertype:04x}")),
    }
}

/// Network byte order u16.
fn be16(s: &[u8], off: usize) -> Option<u16> {
    s.get(off..off.checked_add(2)?)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn ipv4(data: &[u8]) -> FrameKind {
    let Some(&first) = data.first() else {
        return skipped("truncated IPv4 header (0 bytes)");
    };
    let version = first >> 4;
    if version != 4 {
        return skipped(format!("bad IPv4 header (version {version})"));
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < 20 {
        return skipped(format!("bad IPv4 header (header length {header_len})"));
    }
    let Some(total_len) = be16(data, 2)
        .map(usize::from)
        .filter(|_| data.len() >= header_len)
    else {
        return skipped(format!("truncated IPv4 header ({} bytes)", data.len()));
    };
    // Cut link padding. A total length of 0 (TSO) or below the header length
    // is left alone, as is a packet cut short by the snaplen.
    let end = if total_len >= header_len && total_len < data.len() {
        total_len
    } else {
        data.len()
    };
    FrameKind::Ip {
        nfproto: NFPROTO_IPV4,
        data: data[..end].to_vec(),
    }
}

fn ipv6(data: &[u8]) -> FrameKind {
    let Some(&first) = data.first() else {
        return skipped("truncated IPv6 header (0 bytes)");
    };
    let version = first >> 4;
    if version != 6 {
        return skipped(format!("bad IPv6 header (version {version})"));
    }
    if data.len() < 40 {
        return skipped(format!("truncated IPv6 header ({} bytes)", data.len()));
    }
    let payload_len = be16(data, 4).map(usize::from).unwrap_or_default();
    // Payload length 0 means jumbogram (or TSO): keep everything.
    let end = if payload_len != 0 && 40 + payload_len < data.len() {
        40 + payload_len
    } else {
        data.len()
    };
    FrameKind::Ip {
        nfproto: NFPROTO_IPV6,
        data: data[..end].to_vec(),
    }
}

// The shared test packet builders (luapkt-tests' packets.rs), for the tests below.
#[cfg(test)]
#[path = "../../tests/src/packets.rs"]
#[allow(dead_code, unreachable_pub)]
mod test_packets;

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::{DataLink, Endianness, TsResolution};
    use std::borrow::Cow;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    // ----- packet builders -------------------------------------------------

    use super::test_packets::{udp, Ip4, Ip6};

    /// A valid-looking IPv4/UDP packet (DF, 10.0.0.1:12345 -> 10.0.0.2:53) with `payload` bytes
    /// of payload.
    fn ipv4_pkt(payload: usize) -> Vec<u8> {
        let ip = Ip4 {
            frag_off: 0x4000,
            ..Ip4::default()
        };
        ip.packet(
            17,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            &udp(12345, 53, &vec![0xab; payload]),
        )
    }

    /// A valid-looking IPv6/UDP packet (fe80::1:12345 -> fe80::2:53) with `payload` bytes of
    /// payload.
    fn ipv6_pkt(payload: usize) -> Vec<u8> {
        let addr = |last: u8| {
            let mut a = [0u8; 16];
            a[0] = 0xfe;
            a[1] = 0x80;
            a[15] = last;
            a
        };
        Ip6::default().packet(17, addr(1), addr(2), &udp(12345, 53, &vec![0xcd; payload]))
    }

    fn arp_body() -> Vec<u8> {
        vec![
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ]
    }

    fn eth(ethertype: u16, tags: &[u16], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        for &tpid in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&[0x00, 0x2a]); // TCI: VLAN 42
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Pads an Ethernet frame to the 60-byte minimum, like a NIC does.
    fn padded(mut f: Vec<u8>) -> Vec<u8> {
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    }

    fn sll(proto: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        f.extend_from_slice(&proto.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn sll2(proto: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = proto.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    // ----- capture builders ------------------------------------------------

    /// A classic pcap written by pcap_file (ts, data); orig_len = data.len().
    fn classic(
        linktype: u32,
        endianness: Endianness,
        ts_resolution: TsResolution,
        frames: &[(u64, Vec<u8>)],
    ) -> Vec<u8> {
        let header = PcapHeader {
            datalink: DataLink::from(linktype),
            endianness,
            ts_resolution,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
        for (ts, data) in frames {
            w.write_packet(&PcapPacket::new(
                Duration::from_nanos(*ts),
                data.len() as u32,
                data,
            ))
            .unwrap();
        }
        w.into_writer()
    }

    fn classic_le(linktype: u32, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
        classic(
            linktype,
            Endianness::Little,
            TsResolution::NanoSecond,
            frames,
        )
    }

    fn ip(frame: &Frame) -> (u8, &[u8]) {
        match &frame.kind {
            FrameKind::Ip { nfproto, data } => (*nfproto, data),
            other => panic!("frame {} not IP: {other:?}", frame.index),
        }
    }

    fn reason(frame: &Frame) -> &str {
        match &frame.kind {
            FrameKind::Skipped { reason } => reason,
            other => panic!("frame {} not skipped: {other:?}", frame.index),
        }
    }

    fn temp_path(tag: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        std::env::temp_dir().join(format!(
            "lpctl-pcap-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    const TS: u64 = 1_700_000_000_123_456_789;

    // ----- link types ------------------------------------------------------

    #[test]
    fn ethernet_all_byte_orders_and_resolutions() {
        let v4 = ipv4_pkt(4);
        let v6 = ipv6_pkt(10);
        let frames = vec![
            (TS, padded(eth(0x0800, &[], &v4))),
            (TS + 1_000, eth(0x86dd, &[], &v6)),
            (TS + 2_000, padded(eth(0x0806, &[], &arp_body()))),
            (TS + 3_000, eth(0x0026, &[], &[0x42, 0x42, 3])),
        ];
        for endianness in [Endianness::Big, Endianness::Little] {
            for res in [TsResolution::MicroSecond, TsResolution::NanoSecond] {
                let bytes = classic(1, endianness, res, &frames);
                let got = read_bytes("eth.pcap", &bytes).unwrap();
                assert_eq!(got.len(), 4);
                let ts0 = match res {
                    TsResolution::MicroSecond => TS / 1000 * 1000,
                    TsResolution::NanoSecond => TS,
                };
                for (i, f) in got.iter().enumerate() {
                    assert_eq!(f.index, i);
                    assert_eq!(f.ts_ns, ts0 + 1000 * i as u64, "{endianness:?} {res:?}");
                    assert_eq!(f.orig_len as usize, frames[i].1.len());
                }
                // Ethernet padding is cut at the IP total length.
                assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
                assert_eq!(ip(&got[1]), (NFPROTO_IPV6, &v6[..]));
                assert_eq!(reason(&got[2]), "ethertype 0x0806");
                assert_eq!(reason(&got[3]), "802.3/LLC frame (length/type 0x0026)");
            }
        }
    }

    #[test]
    fn ethernet_vlan_tags() {
        let v4 = ipv4_pkt(8);
        let v6 = ipv6_pkt(0);
        let frames = vec![
            (TS, eth(0x0800, &[0x8100], &v4)),
            (TS, eth(0x86dd, &[0x88a8, 0x8100], &v6)),
            (TS, eth(0x0800, &[0x88a8, 0x8100, 0x8100], &v4)),
            (TS, eth(0x0806, &[0x8100], &arp_body())),
            (TS, eth(0x8100, &[], &[0x00])), // tag cut short
            (TS, eth(0x0800, &[0x9100, 0x8100], &v4)),
        ];
        let got = read_bytes("vlan.pcap", &classic_le(1, &frames)).unwrap();
        assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
        assert_eq!(ip(&got[1]), (NFPROTO_IPV6, &v6[..]));
        assert_eq!(reason(&got[2]), "more than 2 VLAN tags");
        assert_eq!(reason(&got[3]), "ethertype 0x0806");
        assert_eq!(reason(&got[4]), "truncated link header");
        assert_eq!(ip(&got[5]), (NFPROTO_IPV4, &v4[..]));
    }

    #[test]
    fn short_frames_are_truncated_link_header() {
        for (linktype, frame) in [
            (1, vec![0u8; 13]),
            (113, sll(0x0800, &[])[..15].to_vec()),
            (276, sll2(0x0800, &[])[..19].to_vec()),
            (276, vec![]),
        ] {
            let got = read_bytes("short.pcap", &classic_le(linktype, &[(TS, frame)])).unwrap();
            assert_eq!(
                reason(&got[0]),
                "truncated link header",
                "link type {linktype}"
            );
        }
    }

    #[test]
    fn raw_ip_link_types() {
        let v4 = ipv4_pkt(3);
        let v6 = ipv6_pkt(5);
        for linktype in [101, 12, 14] {
            let frames = vec![
                (TS, v4.clone()),
                (TS, v6.clone()),
                (TS, vec![0x20, 1, 2, 3]),
                (TS, vec![]),
                (TS, vec![0x45, 0, 0]),
            ];
            let got = read_bytes("raw.pcap", &classic_le(linktype, &frames)).unwrap();
            assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
            assert_eq!(ip(&got[1]), (NFPROTO_IPV6, &v6[..]));
            assert_eq!(reason(&got[2]), "raw frame with IP version 2");
            assert_eq!(reason(&got[3]), "empty packet");
            assert_eq!(reason(&got[4]), "truncated IPv4 header (3 bytes)");
        }

        let got = read_bytes(
            "v4.pcap",
            &classic_le(228, &[(TS, v4.clone()), (TS, v6.clone())]),
        )
        .unwrap();
        assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
        assert_eq!(reason(&got[1]), "bad IPv4 header (version 6)");

        let got = read_bytes(
            "v6.pcap",
            &classic_le(229, &[(TS, v6.clone()), (TS, v4.clone())]),
        )
        .unwrap();
        assert_eq!(ip(&got[0]), (NFPROTO_IPV6, &v6[..]));
        assert_eq!(reason(&got[1]), "bad IPv6 header (version 4)");
    }

    #[test]
    fn linux_cooked_captures() {
        let v4 = ipv4_pkt(1);
        let v6 = ipv6_pkt(2);
        let got = read_bytes(
            "sll.pcap",
            &classic_le(
                113,
                &[
                    (TS, sll(0x0800, &v4)),
                    (TS, sll(0x86dd, &v6)),
                    (TS, sll(0x0806, &arp_body())),
                    (
                        TS,
                        sll(
                            0x8100,
                            &[0, 7, 0x08, 0x00]
                                .iter()
                                .copied()
                                .chain(v4.clone())
                                .collect::<Vec<_>>(),
                        ),
                    ),
                ],
            ),
        )
        .unwrap();
        assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
        assert_eq!(ip(&got[1]), (NFPROTO_IPV6, &v6[..]));
        assert_eq!(reason(&got[2]), "ethertype 0x0806");
        assert_eq!(ip(&got[3]), (NFPROTO_IPV4, &v4[..]));

        let got = read_bytes(
            "sll2.pcap",
            &classic_le(
                276,
                &[
                    (TS, sll2(0x0800, &v4)),
                    (TS, sll2(0x86dd, &v6)),
                    (TS, sll2(0x88cc, &[1, 2, 3])),
                ],
            ),
        )
        .unwrap();
        assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
        assert_eq!(ip(&got[1]), (NFPROTO_IPV6, &v6[..]));
        assert_eq!(reason(&got[2]), "ethertype 0x88cc");
    }

    #[test]
    fn ip_length_handling() {
        let v4 = ipv4_pkt(20);
        // Snaplen-truncated: kept as captured, orig_len tells the truth.
        let mut bytes = classic_le(101, &[(TS, v4[..30].to_vec())]);
        bytes[24 + 12..24 + 16].copy_from_slice(&(v4.len() as u32).to_le_bytes());
        let got = read_bytes("snap.pcap", &bytes).unwrap();
        assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..30]));
        assert_eq!(got[0].orig_len as usize, v4.len());

        // Total length 0 (TSO): not trimmed.
        let mut tso = v4.clone();
        tso[2] = 0;
        tso[3] = 0;
        let got = read_bytes("tso.pcap", &classic_le(228, &[(TS, tso.clone())])).unwrap();
        assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &tso[..]));

        // Trailing bytes after an IPv6 packet (e.g. FCS) are cut.
        let v6 = ipv6_pkt(4);
        let mut with_fcs = v6.clone();
        with_fcs.extend_from_slice(&[1, 2, 3, 4]);
        let got = read_bytes("fcs.pcap", &classic_le(229, &[(TS, with_fcs)])).unwrap();
        assert_eq!(ip(&got[0]), (NFPROTO_IPV6, &v6[..]));

        // IPv4 with a bogus header length.
        let mut bad = v4.clone();
        bad[0] = 0x43;
        let got = read_bytes("ihl.pcap", &classic_le(101, &[(TS, bad)])).unwrap();
        assert_eq!(reason(&got[0]), "bad IPv4 header (header length 12)");
    }

    #[test]
    fn link_type_upper_bits_are_ignored() {
        let v4 = ipv4_pkt(0);
        let mut bytes = classic_le(101, &[(TS, v4.clone())]);
        // FCS-length bits set above the 16-bit link type.
        bytes[20..24].copy_from_slice(&(101u32 | 0x1400_0000).to_le_bytes());
        let got = read_bytes("fcsbits.pcap", &bytes).unwrap();
        assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
    }

    // ----- pcapng ----------------------------------------------------------

    #[test]
    fn pcapng_written_by_pcap_file() {
        let v4 = ipv4_pkt(6);
        let v6 = ipv6_pkt(6);
        for endianness in [Endianness::Big, Endianness::Little] {
            let mut w = PcapNgWriter::with_endianness(Vec::new(), endianness).unwrap();
            for linktype in [DataLink::ETHERNET, DataLink::LINUX_SLL2] {
                w.write_pcapng_block(InterfaceDescriptionBlock {
                    linktype,
                    snaplen: 0,
                    options: vec![InterfaceDescriptionOption::IfTsResol(9)],
                })
                .unwrap();
            }
            let packets = [
                (0, padded(eth(0x0800, &[], &v4))),
                (1, sll2(0x86dd, &v6)),
                (0, eth(0x0806, &[], &arp_body())),
            ];
            for (i, (iface, data)) in packets.iter().enumerate() {
                w.write_pcapng_block(EnhancedPacketBlock {
                    interface_id: *iface,
                    timestamp: Duration::from_nanos(TS + i as u64),
                    original_len: data.len() as u32 + 4,
                    data: Cow::Borrowed(data),
                    options: vec![],
                })
                .unwrap();
            }
            let got = read_bytes("ng.pcapng", &w.into_inner()).unwrap();
            assert_eq!(got.len(), 3);
            for (i, f) in got.iter().enumerate() {
                assert_eq!(f.index, i);
                assert_eq!(f.ts_ns, TS + i as u64);
                assert_eq!(f.orig_len as usize, packets[i].1.len() + 4);
            }
            assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
            assert_eq!(ip(&got[1]), (NFPROTO_IPV6, &v6[..]));
            assert_eq!(reason(&got[2]), "ethertype 0x0806");
        }
    }

    /// Byte order of a hand-written pcapng section.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Endian {
        Little,
        Big,
    }

    const PCAPNG_IDB: u32 = 0x0000_0001;
    const PCAPNG_SPB: u32 = 0x0000_0003;
    const PCAPNG_EPB: u32 = 0x0000_0006;
    const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

    /// Hand-written pcapng block.
    fn ng_block(e: Endian, btype: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        body.resize(body.len().next_multiple_of(4), 0);
        let total = (body.len() + 12) as u32;
        let w = |v: u32| match e {
            Endian::Big => v.to_be_bytes(),
            Endian::Little => v.to_le_bytes(),
        };
        let mut b = w(btype).to_vec();
        b.extend_from_slice(&w(total));
        b.extend_from_slice(&body);
        b.extend_from_slice(&w(total));
        b
    }

    struct Ng(Endian, Vec<u8>);

    impl Ng {
        fn u16(&self, v: u16) -> [u8; 2] {
            match self.0 {
                Endian::Big => v.to_be_bytes(),
                Endian::Little => v.to_le_bytes(),
            }
        }
        fn u32(&self, v: u32) -> [u8; 4] {
            match self.0 {
                Endian::Big => v.to_be_bytes(),
                Endian::Little => v.to_le_bytes(),
            }
        }
        fn new(e: Endian) -> Ng {
            let mut ng = Ng(e, Vec::new());
            ng.shb();
            ng
        }
        fn shb(&mut self) {
            let mut body = self.u32(PCAPNG_BYTE_ORDER_MAGIC).to_vec();
            body.extend_from_slice(&self.u16(1));
            body.extend_from_slice(&self.u16(0));
            body.extend_from_slice(&[0xff; 8]);
            self.1.extend(ng_block(self.0, PCAPNG_SHB, &body));
        }
        fn idb(&mut self, linktype: u16, snaplen: u32, opts: &[(u16, &[u8])]) {
            let mut body = self.u16(linktype).to_vec();
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&self.u32(snaplen));
            for (code, value) in opts {
                body.extend_from_slice(&self.u16(*code));
                body.extend_from_slice(&self.u16(value.len() as u16));
                body.extend_from_slice(value);
                body.resize(body.len().next_multiple_of(4), 0);
            }
            body.extend_from_slice(&[0; 4]);
            self.1.extend(ng_block(self.0, PCAPNG_IDB, &body));
        }
        fn epb(&mut self, iface: u32, ts: u64, data: &[u8]) {
            let mut body = self.u32(iface).to_vec();
            body.extend_from_slice(&self.u32((ts >> 32) as u32));
            body.extend_from_slice(&self.u32(ts as u32));
            body.extend_from_slice(&self.u32(data.len() as u32));
            body.extend_from_slice(&self.u32(data.len() as u32));
            body.extend_from_slice(data);
            self.1.extend(ng_block(self.0, PCAPNG_EPB, &body));
        }
        fn spb(&mut self, orig_len: u32, data: &[u8]) {
            let mut body = self.u32(orig_len).to_vec();
            body.extend_from_slice(data);
            self.1.extend(ng_block(self.0, PCAPNG_SPB, &body));
        }
        fn other(&mut self, btype: u32, body: &[u8]) {
            self.1.extend(ng_block(self.0, btype, body));
        }
    }

    #[test]
    fn pcapng_hand_written() {
        let v4 = ipv4_pkt(2);
        let v6 = ipv6_pkt(2);
        for e in [Endian::Big, Endian::Little] {
            let mut ng = Ng::new(e);
            ng.idb(101, 0, &[]); // default resolution: microseconds
            ng.idb(105, 0, &[]); // unsupported but unused: fine
            let offset = 100i64.to_be_bytes();
            let offset = match e {
                Endian::Big => offset,
                Endian::Little => 100i64.to_le_bytes(),
            };
            ng.idb(228, 0, &[(9, &[0x80 | 10]), (14, &offset), (2, b"eth0")]); // 2^-10 s
            ng.epb(0, 1_700_000_000_123_456, &v4);
            ng.other(5, &[0; 12]); // interface statistics: ignored
            ng.epb(2, 1024 * 3 + 512, &v4);
            ng.spb(v6.len() as u32, &v6);
            ng.spb(9999, &[0x60, 0, 0]);
            // A new section resets the interfaces.
            ng.shb();
            ng.idb(229, 0, &[(9, &[9])]);
            ng.epb(0, TS, &v6);
            let got = read_bytes("hand.pcapng", &ng.1).unwrap();
            assert_eq!(got.len(), 5);
            assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_000);
            assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
            assert_eq!(got[1].ts_ns, 103_500_000_000);
            assert_eq!(ip(&got[1]), (NFPROTO_IPV4, &v4[..]));
            assert_eq!(got[2].ts_ns, 0);
            assert_eq!(ip(&got[2]), (NFPROTO_IPV6, &v6[..]));
            assert_eq!(got[3].orig_len, 9999);
            // Simple packet block: captured length includes the block padding.
            assert_eq!(reason(&got[3]), "truncated IPv6 header (4 bytes)");
            assert_eq!(got[4].ts_ns, TS);
            assert_eq!(ip(&got[4]), (NFPROTO_IPV6, &v6[..]));
        }
    }

    #[test]
    fn pcapng_errors() {
        // A packet on an unsupported interface.
        let mut ng = Ng::new(Endian::Little);
        ng.idb(101, 0, &[]);
        ng.idb(105, 0, &[]);
        ng.epb(0, 0, &ipv4_pkt(0));
        ng.epb(1, 0, &[0; 24]);
        let err = read_bytes("wifi.pcapng", &ng.1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "wifi.pcapng: unsupported link type 105 (only Ethernet, raw IP and Linux cooked captures)"
        );

        // A packet on an undeclared interface.
        let mut ng = Ng::new(Endian::Big);
        ng.idb(101, 0, &[]);
        ng.epb(0, 0, &ipv4_pkt(0));
        ng.epb(3, 0, &ipv4_pkt(0));
        let err = read_bytes("x.pcapng", &ng.1).unwrap_err().to_string();
        assert!(err.starts_with("x.pcapng: frame 1: "), "{err}");
        assert!(err.contains("undeclared interface 3"), "{err}");

        // Cut in the middle of the second packet block.
        let mut ng = Ng::new(Endian::Little);
        ng.idb(1, 0, &[]);
        ng.epb(0, 0, &eth(0x0800, &[], &ipv4_pkt(10)));
        let cut = ng.1.len() + 20;
        ng.epb(0, 0, &eth(0x0800, &[], &ipv4_pkt(10)));
        let err = read_bytes("cut.pcapng", &ng.1[..cut])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cut.pcapng: frame 1: "), "{err}");
        assert!(err.contains("runs past end of file"), "{err}");

        // Section header cut short.
        let ng = Ng::new(Endian::Little);
        let err = read_bytes("hdr.pcapng", &ng.1[..10]).unwrap_err();
        assert!(matches!(err, PcapError::BadFile { .. }), "{err:?}");
        assert!(err.to_string().starts_with("hdr.pcapng: "), "{err}");

        // Corrupt captured length inside an EPB.
        let mut ng = Ng::new(Endian::Little);
        ng.idb(101, 0, &[]);
        let at = ng.1.len() + 8 + 12;
        ng.epb(0, 0, &ipv4_pkt(0));
        ng.1[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
        let err = read_bytes("len.pcapng", &ng.1).unwrap_err().to_string();
        assert!(err.starts_with("len.pcapng: frame 0: "), "{err}");

        // Trailer length mismatch.
        let mut ng = Ng::new(Endian::Little);
        ng.idb(101, 0, &[]);
        let n = ng.1.len();
        ng.1[n - 1] = 0x7f;
        assert!(read_bytes("trailer.pcapng", &ng.1).is_err());
    }

    #[test]
    fn pcapng_timestamp_resolutions() {
        assert_eq!(pcapng_ts_ns(5, 6, 0), 5_000);
        assert_eq!(pcapng_ts_ns(5, 9, 0), 5);
        assert_eq!(pcapng_ts_ns(5, 0, 0), 5_000_000_000);
        assert_eq!(pcapng_ts_ns(5_000, 12, 0), 5);
        assert_eq!(pcapng_ts_ns(u64::MAX, 127, 0), 0);
        assert_eq!(pcapng_ts_ns(1024, 0x80 | 10, 0), 1_000_000_000);
        assert_eq!(pcapng_ts_ns(u64::MAX, 0x80 | 127, 0), 0);
        assert_eq!(pcapng_ts_ns(u64::MAX, 0, 0), u64::MAX);
        assert_eq!(pcapng_ts_ns(1, 0, -10), 0);
        assert_eq!(pcapng_ts_ns(1, 0, 2), 3_000_000_000);
    }

    // ----- file-level errors -----------------------------------------------

    #[test]
    fn unknown_link_type() {
        let bytes = classic_le(105, &[(TS, vec![0; 30])]);
        let err = read_bytes("capture.pcap", &bytes).unwrap_err();
        assert!(matches!(
            err,
            PcapError::UnsupportedLinkType { linktype: 105, .. }
        ));
        assert_eq!(
            err.to_string(),
            "capture.pcap: unsupported link type 105 (only Ethernet, raw IP and Linux cooked captures)"
        );
    }

    #[test]
    fn truncated_files() {
        let frames = vec![(TS, ipv4_pkt(10)), (TS, ipv4_pkt(20)), (TS, ipv6_pkt(30))];
        for endianness in [Endianness::Big, Endianness::Little] {
            let bytes = classic(101, endianness, TsResolution::MicroSecond, &frames);

            let err = read_bytes("cut.pcap", &bytes[..10]).unwrap_err();
            assert!(matches!(err, PcapError::BadFile { .. }), "{err:?}");
            assert_eq!(
                err.to_string(),
                "cut.pcap: truncated pcap file header (10 of 24 bytes)"
            );

            // Cut in the middle of the second record's data.
            let second = 24 + 16 + frames[0].1.len();
            let err = read_bytes("cut.pcap", &bytes[..second + 16 + 5]).unwrap_err();
            assert!(
                matches!(err, PcapError::BadFrame { index: 1, .. }),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "cut.pcap: frame 1: record at offset {second} claims 48 bytes, runs past end of file (5 bytes left)"
                )
            );

            // Cut in the middle of the third record header.
            let third = second + 16 + frames[1].1.len();
            let err = read_bytes("cut.pcap", &bytes[..third + 7]).unwrap_err();
            assert!(
                matches!(err, PcapError::BadFrame { index: 2, .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("truncated record header"), "{err}");

            // Cut exactly at a record boundary: fine.
            assert_eq!(read_bytes("cut.pcap", &bytes[..third]).unwrap().len(), 2);
            assert_eq!(read_bytes("cut.pcap", &bytes).unwrap().len(), 3);
        }
    }

    #[test]
    fn empty_and_garbage_files() {
        let err = read_bytes("empty.pcap", &[]).unwrap_err();
        assert!(matches!(err, PcapError::BadFile { .. }));
        assert!(
            err.to_string().starts_with("empty.pcap: empty file"),
            "{err}"
        );

        let err = read_bytes("tiny.pcap", &[0xd4, 0xc3]).unwrap_err();
        assert!(err.to_string().starts_with("tiny.pcap: truncated"), "{err}");

        let err = read_bytes("text.pcap", b"hello world, not a capture").unwrap_err();
        assert_eq!(
            err.to_string(),
            "text.pcap: not a pcap or pcapng capture (magic 68 65 6c 6c)"
        );

        // A header with no packets is a valid, empty capture.
        let bytes = classic_le(1, &[]);
        assert_eq!(bytes.len(), 24);
        assert_eq!(read_bytes("hdr.pcap", &bytes).unwrap(), vec![]);
        let ng = Ng::new(Endian::Big);
        assert_eq!(read_bytes("hdr.pcapng", &ng.1).unwrap(), vec![]);
    }

    // ----- files -----------------------------------------------------------

    #[test]
    fn write_then_read_file() {
        let v4 = ipv4_pkt(12);
        let v6 = ipv6_pkt(3);
        let path = temp_path("roundtrip.pcap");
        write_raw_ip(&path, &[(TS, &v4), (TS + 7, &v6), (0, &[])]).unwrap();

        let got = read_file(&path).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].ts_ns, got[1].ts_ns, got[2].ts_ns), (TS, TS + 7, 0));
        assert_eq!(got[0].orig_len as usize, v4.len());
        assert_eq!(ip(&got[0]), (NFPROTO_IPV4, &v4[..]));
        assert_eq!(ip(&got[1]), (NFPROTO_IPV6, &v6[..]));
        assert_eq!(reason(&got[2]), "empty packet");

        // Another reader agrees.
        let mut r = PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::RAW);
        assert_eq!(r.header().ts_resolution, TsResolution::NanoSecond);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.timestamp, Duration::from_nanos(TS));
        assert_eq!(&p.data[..], &v4[..]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn write_rejects_unrepresentable_timestamp() {
        let path = temp_path("late.pcap");
        let v4 = ipv4_pkt(0);
        let err = write_raw_ip(&path, &[(TS, &v4), (u64::MAX, &v4)]).unwrap_err();
        assert!(
            matches!(err, PcapError::BadFrame { index: 1, .. }),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("{}: frame 1: ", path.display())));
        assert!(!path.exists());
    }

    #[test]
    fn file_errors_name_the_path() {
        let path = temp_path("missing.pcap");
        let err = read_file(&path).unwrap_err();
        assert!(matches!(err, PcapError::Read { .. }));
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}: cannot read capture: ", path.display())),
            "{msg}"
        );
        assert!(msg.contains("os error"), "{msg}");

        let dir = temp_path("dir");
        std::fs::create_dir(&dir).unwrap();
        let err = write_raw_ip(&dir, &[]).unwrap_err();
        assert!(matches!(err, PcapError::Write { .. }), "{err:?}");
        assert!(err.to_string().contains(&dir.display().to_string()));
        std::fs::remove_dir(&dir).unwrap();

        let path = temp_path("bad.pcap");
        std::fs::write(&path, &classic_le(1, &[(TS, vec![0; 40])])[..50]).unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: frame 0: ", path.display())),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    // ----- robustness ------------------------------------------------------

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        let v4 = ipv4_pkt(10);
        let v6 = ipv6_pkt(10);
        let mut ng = Ng::new(Endian::Little);
        ng.idb(1, 0, &[(9, &[9])]);
        ng.idb(113, 64, &[]);
        ng.epb(0, TS, &eth(0x0800, &[0x8100], &v4));
        ng.epb(1, TS, &sll(0x86dd, &v6));
        ng.spb(80, &eth(0x86dd, &[], &v6));
        let seeds: Vec<Vec<u8>> = vec![
            classic(
                1,
                Endianness::Little,
                TsResolution::MicroSecond,
                &[
                    (TS, padded(eth(0x0800, &[], &v4))),
                    (TS, eth(0x86dd, &[0x88a8, 0x8100], &v6)),
                    (TS, eth(0x0806, &[], &arp_body())),
                ],
            ),
            classic(
                276,
                Endianness::Big,
                TsResolution::NanoSecond,
                &[(TS, sll2(0x0800, &v4)), (TS, sll2(0x86dd, &v6))],
            ),
            classic_le(101, &[(TS, v4.clone()), (TS, v6.clone())]),
            ng.1,
        ];
        let interesting: [u32; 6] = [0, 1, 0xffff_ffff, 0x7fff_ffff, 0x0a0d_0d0a, 0x1a2b_3c4d];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let (mut ok, mut err) = (0, 0);
        for iter in 0..20_000 {
            let mut b = seeds[iter % seeds.len()].clone();
            for _ in 0..=rng.below(4) {
                match rng.below(6) {
                    0 => {
                        let i = rng.below(b.len());
                        if let Some(x) = b.get_mut(i) {
                            *x = rng.next() as u8;
                        }
                    }
                    1 => {
                        let i = rng.below(b.len());
                        if let Some(x) = b.get_mut(i) {
                            *x ^= 1 << rng.below(8);
                        }
                    }
                    2 => b.truncate(rng.below(b.len() + 1)),
                    3 => {
                        let i = rng.below(b.len() + 1);
                        let n = rng.below(9);
                        let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                        b.splice(i..i, junk);
                    }
                    4 => {
                        let i = rng.below(b.len() / 4) * 4;
                        let v = interesting[rng.below(interesting.len())];
                        let v = if rng.below(2) == 0 {
                            v.to_le_bytes()
                        } else {
                            v.to_be_bytes()
                        };
                        if let Some(s) = b.get_mut(i..i + 4) {
                            s.copy_from_slice(&v);
                        }
                    }
                    _ => {
                        let i = rng.below(b.len());
                        b.drain(i..(i + rng.below(16)).min(b.len()));
                    }
                }
            }
            match read_bytes("fuzz.pcap", &b) {
                Ok(frames) => {
                    ok += 1;
                    for (i, f) in frames.iter().enumerate() {
                        assert_eq!(f.index, i);
                        if let FrameKind::Ip { nfproto, data } = &f.kind {
                            assert!(*nfproto == NFPROTO_IPV4 || *nfproto == NFPROTO_IPV6);
                            assert!(data.len() >= 20);
                        }
                    }
                }
                Err(e) => {
                    err += 1;
                    assert!(e.to_string().starts_with("fuzz.pcap: "), "{e}");
                }
            }
        }
        // Both outcomes must actually be exercised.
        eprintln!("fuzz: {ok} parsed, {err} rejected");
        assert!(ok > 1000 && err > 1000, "ok {ok} err {err}");
    }
}
