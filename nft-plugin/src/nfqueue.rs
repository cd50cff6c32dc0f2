//! nfnetlink_queue: packets that nft queues (`queue num N`) received in userspace and given
//! back with a verdict, maybe rewritten (`lpctl serve`, for machines where nft_lua cannot load).
//! The numbers are those of `include/uapi/linux/netfilter/nfnetlink_queue.h`.

use crate::conn::{Conn, Expect, Pending};
use crate::error::{Error, Result};
use crate::transport::{Protocol, Socket, Transport};
use crate::wire::{self, MessageBuilder};
use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use std::io;

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;

const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_IFINDEX_INDEV: u16 = 5;
const NFQA_IFINDEX_OUTDEV: u16 = 6;
const NFQA_PAYLOAD: u16 = 10;

const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;

/// Verdicts (`NF_DROP`, `NF_ACCEPT`, `NF_QUEUE` with its number in the upper 16 bits).
pub const NF_DROP: u32 = 0;
pub const NF_ACCEPT: u32 = 1;
pub const NF_QUEUE: u32 = 3;

/// A packet the kernel queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPacket {
    /// What the verdict names.
    pub id: u32,
    /// The link layer's protocol (ETH_P_IP, ETH_P_IPV6), host order.
    pub hw_protocol: u16,
    pub hook: u8,
    pub mark: u32,
    pub indev: Option<u32>,
    pub outdev: Option<u32>,
    /// From the network header, as much as the copy range allowed.
    pub payload: Vec<u8>,
}

/// A bound queue.
pub struct Queue<T = Socket> {
    conn: Conn<T>,
    num: u16,
    /// Times the socket overflowed (ENOBUFS: the kernel dropped packets it could not deliver).
    pub overflows: u64,
}

fn message_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_QUEUE << 8) | msg
}

/// `nfgenmsg`: AF_UNSPEC, version 0, the queue number (big-endian).
fn nfgen(num: u16) -> [u8; 4] {
    let n = num.to_be_bytes();
    [0, 0, n[0], n[1]]
}

impl Queue<Socket> {
    /// Binds queue `num`, copying whole packets (up to `copy_range` bytes), at most `maxlen`
    /// waiting in the kernel (beyond that it drops them).
    pub fn bind(num: u16, copy_range: u32, maxlen: u32) -> Result<Self> {
        let socket = Socket::open(Protocol::Netfilter)
            .map_err(|e| Error::io("nfqueue: netlink socket", e))?;
        Self::bind_on(socket, num, copy_range, maxlen)
    }
}

impl<T: Transport> Queue<T> {
    pub fn bind_on(transport: T, num: u16, copy_range: u32, maxlen: u32) -> Result<Self> {
        let mut q = Queue {
            conn: Conn::new(transport),
            num,
            overflows: 0,
        };
        let what = format!("queue {num}");
        let seq = q.conn.next_seq();
        let mut m = MessageBuilder::new(
            message_type(NFQNL_MSG_CONFIG),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
        )
        .fixed_header(&nfgen(num));
        m.attr(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0]);
        let mut params = copy_range.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_PACKET);
        m.attr(NFQA_CFG_PARAMS, &params);
        m.attr(NFQA_CFG_QUEUE_MAXLEN, &maxlen.to_be_bytes());
        q.conn
            .exchange(&m.finish(), &[Pending::new(seq, &what)], None, Expect::Ack)?;
        Ok(q)
    }

    /// The next packets (one datagram's worth). Waits; an interrupted or timed-out wait gives
    /// none.
    pub fn recv(&mut self) -> Result<Vec<QueuedPacket>> {
        let what = format!("queue {}", self.num);
        let datagram = match self.conn.transport.recv() {
            Ok(d) => d,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(Vec::new())
            }
            // the kernel queued faster than we read: it dropped what overflowed the socket
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.overflows += 1;
                return Ok(Vec::new());
            }
            Err(e) => return Err(Error::io(format!("{what}: receive"), e)),
        };
        let mut out = Vec::new();
        for m in wire::messages(&datagram) {
            let m = m.map_err(|e| Error::malformed(&what, e.0))?;
            if m.message_type != message_type(NFQNL_MSG_PACKET) {
                // an error for a verdict (the packet went meanwhile): nothing to do
                continue;
            }
            out.push(decode_packet(m.payload).map_err(|e| Error::malformed(&what, e))?);
        }
        Ok(out)
    }

    /// The verdict on packet `id`; `payload` replaces the packet (same length or not), `mark`
    /// sets its mark. No ack is asked: a packet that is gone meanwhile is not an error.
    pub fn verdict(
        &mut self,
        id: u32,
        verdict: u32,
        mark: Option<u32>,
        payload: Option<&[u8]>,
    ) -> Result<()> {
        let seq = self.conn.next_seq();
        let mut m = MessageBuilder::new(message_type(NFQNL_MSG_VERDICT), NLM_F_REQUEST, seq)
            .fixed_header(&nfgen(self.num));
        let mut hdr = verdict.to_be_bytes().to_vec();
        hdr.extend_from_slice(&id.to_be_bytes());
        m.attr(NFQA_VERDICT_HDR, &hdr);
        if let Some(mark) = mark {
            m.attr(NFQA_MARK, &mark.to_be_bytes());
        }
        if let Some(p) = payload {
            m.attr(NFQA_PAYLOAD, p);
        }
        let datagram = m.finish();
        self.conn
            .transport
            .reserve(datagram.len(), 0)
            .and_then(|()| self.conn.transport.send(&datagram))
            .map_err(|e| Error::io(format!("queue {}: verdict", self.num), e))
    }
}

fn be32(v: &[u8], name: &str) -> std::result::Result<u32, String> {
    v.get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("{name}: {} bytes", v.len()))
}

fn decode_packet(payload: &[u8]) -> std::result::Result<QueuedPacket, String> {
    let attrs = payload.get(4..).ok_or("no nfgenmsg")?;
    let mut p = QueuedPacket {
        id: 0,
        hw_protocol: 0,
        hook: 0,
        mark: 0,
        indev: None,
        outdev: None,
        payload: Vec::new(),
    };
    let mut have_hdr = false;
    for a in wire::attrs(attrs) {
        let a = a.map_err(|e| e.0)?;
        match a.kind {
            NFQA_PACKET_HDR => {
                let v = a.value;
                if v.len() < 7 {
                    return Err(format!("NFQA_PACKET_HDR: {} bytes", v.len()));
                }
                p.id = be32(v, "packet id")?;
                p.hw_protocol = u16::from_be_bytes([v[4], v[5]]);
                p.hook = v[6];
                have_hdr = true;
            }
            NFQA_MARK => p.mark = be32(a.value, "NFQA_MARK")?,
            NFQA_IFINDEX_INDEV => p.indev = Some(be32(a.value, "NFQA_IFINDEX_INDEV")?),
            NFQA_IFINDEX_OUTDEV => p.outdev = Some(be32(a.value, "NFQA_IFINDEX_OUTDEV")?),
            NFQA_PAYLOAD => p.payload = a.value.to_vec(),
            _ => {}
        }
    }
    if !have_hdr {
        return Err("a packet without NFQA_PACKET_HDR".into());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut out = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(v);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    #[test]
    fn packets_decode_and_refuse_garbage() {
        let mut m = nfgen(3).to_vec();
        m.extend(attr(NFQA_PACKET_HDR, &[0, 0, 0, 42, 0x08, 0x00, 1]));
        m.extend(attr(NFQA_MARK, &7u32.to_be_bytes()));
        m.extend(attr(NFQA_IFINDEX_INDEV, &2u32.to_be_bytes()));
        m.extend(attr(NFQA_PAYLOAD, &[0x45, 0, 0, 20]));
        let p = decode_packet(&m).unwrap();
        assert_eq!((p.id, p.hw_protocol, p.hook, p.mark), (42, 0x0800, 1, 7));
        assert_eq!((p.indev, p.outdev), (Some(2), None));
        assert_eq!(p.payload, [0x45, 0, 0, 20]);
        let mut short = nfgen(3).to_vec();
        short.extend(attr(NFQA_PACKET_HDR, &[0, 0, 0, 42]));
        assert!(decode_packet(&short)
            .unwrap_err()
            .contains("NFQA_PACKET_HDR"));
        let mut bad_mark = nfgen(3).to_vec();
        bad_mark.extend(attr(NFQA_PACKET_HDR, &[0, 0, 0, 42, 0x08, 0x00, 1]));
        bad_mark.extend(attr(NFQA_MARK, &[1]));
        assert!(decode_packet(&bad_mark).is_err());
        assert!(decode_packet(&nfgen(3)).is_err());
        assert!(decode_packet(&[1]).is_err());
    }
}
