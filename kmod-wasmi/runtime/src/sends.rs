//! Packets a script sends (`lp.send`, `lp.reply`): the checks every engine makes before the
//! embedder takes one ([`crate::packet::Packet::send`]), the call's caps, the script's rates
//! and its counters.
//!
//! A send is queued by the embedder and leaves after the call returns, never re-entering the
//! instance: the kernel routes it during the call (so that "no route" is the script's error
//! value) and transmits it once the instance is released; `lpctl run` writes it to a capture.
//! Like a packet write, a send takes effect when it is made: a call that fails afterwards
//! still sends what it queued.

use abi::guest::send as s;
use core::sync::atomic::{AtomicU64, Ordering};

const NS_PER_SEC: u64 = 1_000_000_000;

/// What the running call may still send, and the script's rates (armed per call from the
/// limits: `Limits::arm_call`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendBudget {
    pub packets: u32,
    pub bytes: u32,
    /// Packets and bytes per second, all of the script's instances together.
    pub rate: u32,
    pub byte_rate: u32,
}

/// How a packet is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendKind {
    /// Routed to its destination as a locally generated packet.
    Send,
    /// As `Send`, related to the packet in hand (its conntrack entry).
    Reply,
}

/// Why a send did not happen; each is a negative `abi::guest::send::E_*` for the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    Malformed,
    Packets,
    Bytes,
    Rate,
    Route,
    Memory,
    Unavailable,
}

impl SendError {
    pub fn code(self) -> i32 {
        match self {
            SendError::Malformed => s::E_MALFORMED,
            SendError::Packets => s::E_PACKETS,
            SendError::Bytes => s::E_BYTES,
            SendError::Rate => s::E_RATE,
            SendError::Route => s::E_ROUTE,
            SendError::Memory => s::E_MEMORY,
            SendError::Unavailable => s::E_UNAVAILABLE,
        }
    }

    /// Refused by a cap or a rate (the script asked for too much), rather than failed.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            SendError::Packets | SendError::Bytes | SendError::Rate
        )
    }
}

/// The address family (NFPROTO_IPV4 or NFPROTO_IPV6) of a packet a script built, when its
/// network header and its length agree: IPv4 with a header of 20..=60 bytes inside the packet
/// and a total length equal to the packet's; IPv6 whose payload length plus its 40-byte header
/// is the packet's length. Transport headers and checksums are the script's (the kernel fills
/// the IPv4 header checksum).
pub fn check_packet(b: &[u8]) -> Result<u8, SendError> {
    use abi::guest::ctx::{NFPROTO_IPV4, NFPROTO_IPV6};
    if b.len() > abi::limits::SEND_PACKET_MAX {
        return Err(SendError::Malformed);
    }
    let be16 = |i: usize| usize::from(u16::from_be_bytes([b[i], b[i + 1]]));
    match b.first().map(|v| v >> 4) {
        Some(4) if b.len() >= 20 => {
            let ihl = usize::from(b[0] & 15) * 4;
            if ihl < 20 || ihl > b.len() || be16(2) != b.len() {
                return Err(SendError::Malformed);
            }
            Ok(NFPROTO_IPV4)
        }
        Some(6) if b.len() >= 40 && be16(4) + 40 == b.len() => Ok(NFPROTO_IPV6),
        _ => Err(SendError::Malformed),
    }
}

/// A token bucket holding at most one second of its rate.
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    pub(crate) tokens: u64,
    filled_ns: u64,
    primed: bool,
}

impl Bucket {
    pub(crate) fn fill(&mut self, now_ns: u64, rate: u32) {
        let rate = u64::from(rate);
        if !self.primed {
            (self.tokens, self.filled_ns, self.primed) = (rate, now_ns, true);
            return;
        }
        if rate == 0 {
            (self.tokens, self.filled_ns) = (0, now_ns);
            return;
        }
        let elapsed = now_ns.saturating_sub(self.filled_ns);
        if elapsed >= NS_PER_SEC {
            (self.tokens, self.filled_ns) = (rate, now_ns);
            return;
        }
        // at most 1e9 × 2^30: no overflow
        let earned = elapsed * rate / NS_PER_SEC;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(rate);
            // the time those tokens stand for, so that fractions keep accruing
            self.filled_ns += earned * NS_PER_SEC / rate;
        }
    }
}

/// A script's send rates and counters, shared by its instances (any CPU, softirq).
#[derive(Debug, Default)]
pub struct SendState {
    buckets: spin::Mutex<[Bucket; 2]>,
    sent_packets: AtomicU64,
    sent_bytes: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// [`SendState`]'s counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendCounters {
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub refused: u64,
    pub failed: u64,
}

impl SendState {
    /// Takes a packet of `len` bytes from the call's budget and the script's rates; nothing is
    /// taken when any of them cannot cover it.
    pub fn admit(&self, now_ns: u64, budget: &mut SendBudget, len: usize) -> Result<(), SendError> {
        if budget.packets == 0 {
            return Err(SendError::Packets);
        }
        let len32 = u32::try_from(len).map_err(|_| SendError::Bytes)?;
        if len32 > budget.bytes {
            return Err(SendError::Bytes);
        }
        {
            let mut b = self.buckets.lock();
            let [packets, bytes] = &mut *b;
            packets.fill(now_ns, budget.rate);
            bytes.fill(now_ns, budget.byte_rate);
            if packets.tokens < 1 || bytes.tokens < u64::from(len32) {
                return Err(SendError::Rate);
            }
            packets.tokens -= 1;
            bytes.tokens -= u64::from(len32);
        }
        budget.packets -= 1;
        budget.bytes -= len32;
        Ok(())
    }

    /// Counts a send's result.
    pub fn count(&self, r: Result<usize, SendError>) {
        match r {
            Ok(len) => {
                self.sent_packets.fetch_add(1, Ordering::Relaxed);
                self.sent_bytes.fetch_add(len as u64, Ordering::Relaxed);
            }
            Err(e) if e.is_refusal() => {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn counters(&self) -> SendCounters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SendCounters {
            sent_packets: r(&self.sent_packets),
            sent_bytes: r(&self.sent_bytes),
            refused: r(&self.refused),
            failed: r(&self.failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(len: usize) -> alloc::vec::Vec<u8> {
        let mut p = alloc::vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p
    }

    #[test]
    fn packets_are_checked_by_their_headers() {
        assert_eq!(check_packet(&ipv4(28)), Ok(2));
        let mut bad = ipv4(28);
        bad[3] = 29;
        assert_eq!(check_packet(&bad), Err(SendError::Malformed), "length");
        let mut ihl = ipv4(28);
        ihl[0] = 0x4f;
        assert_eq!(
            check_packet(&ihl),
            Err(SendError::Malformed),
            "IHL past the end"
        );
        ihl[0] = 0x44;
        assert_eq!(check_packet(&ihl), Err(SendError::Malformed), "IHL < 5");
        let mut v6 = alloc::vec![0u8; 48];
        v6[0] = 0x60;
        v6[5] = 8;
        assert_eq!(check_packet(&v6), Ok(10));
        v6[5] = 9;
        assert_eq!(check_packet(&v6), Err(SendError::Malformed));
        for b in [&b""[..], &[0x45; 19], &[0x20; 40]] {
            assert_eq!(check_packet(b), Err(SendError::Malformed));
        }
        assert_eq!(check_packet(&[0x45; 70_000]), Err(SendError::Malformed));
    }

    #[test]
    fn caps_and_rates_bound_what_is_sent() {
        let st = SendState::default();
        let mut b = SendBudget {
            packets: 2,
            bytes: 100,
            rate: 3,
            byte_rate: 1_000,
        };
        assert_eq!(st.admit(0, &mut b, 60), Ok(()));
        assert_eq!(st.admit(0, &mut b, 60), Err(SendError::Bytes));
        assert_eq!(st.admit(0, &mut b, 40), Ok(()));
        assert_eq!(st.admit(0, &mut b, 1), Err(SendError::Packets));
        // the next call: a fresh budget, the same buckets (3 a second: one left)
        let fresh = SendBudget {
            packets: 8,
            bytes: 1_000,
            ..b
        };
        let mut c = fresh;
        assert_eq!(st.admit(1, &mut c, 10), Ok(()));
        assert_eq!(st.admit(2, &mut c, 10), Err(SendError::Rate));
        // a third of a second earns one packet
        let mut c = fresh;
        assert_eq!(st.admit(NS_PER_SEC / 3 + 10, &mut c, 10), Ok(()));
        assert_eq!(
            st.admit(NS_PER_SEC / 3 + 20, &mut c, 10),
            Err(SendError::Rate)
        );
        // bytes: 1,000 a second
        let mut c = fresh;
        assert_eq!(
            st.admit(5 * NS_PER_SEC, &mut c, 1_001),
            Err(SendError::Bytes),
            "over the call's bytes"
        );
        let mut c = SendBudget {
            bytes: 10_000,
            ..fresh
        };
        assert_eq!(
            st.admit(5 * NS_PER_SEC, &mut c, 1_001),
            Err(SendError::Rate)
        );
        assert_eq!(st.admit(5 * NS_PER_SEC, &mut c, 1_000), Ok(()));
        let zero = SendBudget { rate: 0, ..fresh };
        assert_eq!(
            st.admit(9 * NS_PER_SEC, &mut { zero }, 1),
            Err(SendError::Rate)
        );
    }

    #[test]
    fn a_steady_rate_is_kept_over_time() {
        let st = SendState::default();
        let budget = SendBudget {
            packets: 1,
            bytes: 100,
            rate: 1_000,
            byte_rate: 1 << 30,
        };
        let mut sent = 0;
        // a call every 0.7 ms (1,429 a second) for 11 s: the first second's 1,000 tokens,
        // then 1,000 a second
        let mut t = 0;
        while t < 11 * NS_PER_SEC {
            if st.admit(t, &mut { budget }, 10).is_ok() {
                sent += 1;
            }
            t += 700_000;
        }
        assert!((11_990..=12_000).contains(&sent), "{sent}");
    }
}
