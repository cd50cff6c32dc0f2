//! Packet builders for tests: etherparse's headers with every field settable and checksums left
//! as given (tests read fields back, so they want known values, not valid sums; those that need
//! valid sums compute them). IP packets start at the network header, as scripts see them.
//!
//! Shared by lpctl's tests and the runtime's, which include this file by path (the runtime
//! cannot depend on this crate: it depends on the runtime).

use etherparse::{
    IpDscp, IpEcn, IpFragOffset, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, TcpHeader,
    UdpHeader,
};

/// IPv4 header fields; the default is a plain unfragmented header: id 1, TTL 64, checksum 0.
#[derive(Clone, Copy, Debug)]
pub struct Ip4 {
    /// DSCP and ECN, as the header's second byte.
    pub tos: u8,
    pub id: u16,
    /// Flags and fragment offset, as on the wire (0x4000: don't fragment).
    pub frag_off: u16,
    pub ttl: u8,
    pub check: u16,
}

impl Default for Ip4 {
    fn default() -> Self {
        Ip4 {
            tos: 0,
            id: 1,
            frag_off: 0,
            ttl: 64,
            check: 0,
        }
    }
}

impl Ip4 {
    /// The header (no options) followed by `l4`.
    pub fn packet(&self, proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let mut h = Ipv4Header::new(l4.len() as u16, self.ttl, IpNumber(proto), src, dst)
            .expect("IPv4 payload length");
        h.dscp = IpDscp::try_new(self.tos >> 2).expect("dscp");
        h.ecn = IpEcn::try_new(self.tos & 3).expect("ecn");
        h.identification = self.id;
        h.dont_fragment = self.frag_off & 0x4000 != 0;
        h.more_fragments = self.frag_off & 0x2000 != 0;
        h.fragment_offset = IpFragOffset::try_new(self.frag_off & 0x1fff).expect("offset");
        h.header_checksum = self.check;
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(l4);
        p
    }
}

/// IPv6 header fields; the default: traffic class and flow label 0, hop limit 64.
#[derive(Clone, Copy, Debug)]
pub struct Ip6 {
    pub traffic_class: u8,
    pub flow_label: u32,
    pub hop_limit: u8,
}

impl Default for Ip6 {
    fn default() -> Self {
        Ip6 {
            traffic_class: 0,
            flow_label: 0,
            hop_limit: 64,
        }
    }
}

impl Ip6 {
    /// The fixed header followed by `l4` (which may start with extension headers).
    pub fn packet(&self, next: u8, src: [u8; 16], dst: [u8; 16], l4: &[u8]) -> Vec<u8> {
        let h = Ipv6Header {
            traffic_class: self.traffic_class,
            flow_label: Ipv6FlowLabel::try_new(self.flow_label).expect("flow label"),
            payload_length: l4.len() as u16,
            next_header: IpNumber(next),
            hop_limit: self.hop_limit,
            source: src,
            destination: dst,
        };
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(l4);
        p
    }
}

/// TCP header fields besides ports and flags; the default: seq 1000, ack 2000, window 65535,
/// checksum and urgent pointer 0, no options.
#[derive(Clone, Copy, Debug)]
pub struct Tcp {
    pub seq: u32,
    pub ack_seq: u32,
    pub window: u16,
    pub check: u16,
    pub urg_ptr: u16,
}

impl Default for Tcp {
    fn default() -> Self {
        Tcp {
            seq: 1000,
            ack_seq: 2000,
            window: 65535,
            check: 0,
            urg_ptr: 0,
        }
    }
}

impl Tcp {
    /// The header with `flags` (the header's flag byte: 0x02 SYN, 0x10 ACK, ...) and `payload`.
    pub fn segment(&self, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = TcpHeader::new(sport, dport, self.seq, self.window);
        h.acknowledgment_number = self.ack_seq;
        h.fin = flags & 0x01 != 0;
        h.syn = flags & 0x02 != 0;
        h.rst = flags & 0x04 != 0;
        h.psh = flags & 0x08 != 0;
        h.ack = flags & 0x10 != 0;
        h.urg = flags & 0x20 != 0;
        h.ece = flags & 0x40 != 0;
        h.cwr = flags & 0x80 != 0;
        h.checksum = self.check;
        h.urgent_pointer = self.urg_ptr;
        let mut t = h.to_bytes().to_vec();
        t.extend_from_slice(payload);
        t
    }
}

/// A UDP header with checksum `check` (0: none) and `payload`.
pub fn udp_with(check: u16, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let h = UdpHeader {
        source_port: sport,
        destination_port: dport,
        length: (UdpHeader::LEN + payload.len()) as u16,
        checksum: check,
    };
    let mut u = h.to_bytes().to_vec();
    u.extend_from_slice(payload);
    u
}

/// An IPv4 packet with the default header fields ([`Ip4`]).
pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    Ip4::default().packet(proto, src, dst, l4)
}

/// A TCP segment with the default fields ([`Tcp`]).
pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    Tcp::default().segment(sport, dport, flags, payload)
}

/// A UDP datagram without checksum.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    udp_with(0, sport, dport, payload)
}

/// A TCP SYN from 10.0.0.1:40000 to 10.0.0.2:`dport`.
pub fn tcp4(dport: u16) -> Vec<u8> {
    ipv4(
        6,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        &tcp(40000, dport, 0x02, b""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_the_bytes_the_fields_say() {
        let p = Ip4 {
            tos: 0x2e,
            id: 0x1234,
            frag_off: 0x4000,
            ttl: 61,
            check: 0xbeef,
        }
        .packet(
            17,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            &udp_with(0x2222, 1, 2, b"x"),
        );
        assert_eq!(
            p,
            [
                0x45, 0x2e, 0, 29, 0x12, 0x34, 0x40, 0, 61, 17, 0xbe, 0xef, 10, 0, 0, 1, 10, 0, 0,
                2, 0, 1, 0, 2, 0, 9, 0x22, 0x22, b'x'
            ]
        );
        let t = tcp(1, 2, 0x12, b"");
        assert_eq!(t[12..14], [0x50, 0x12], "data offset 5, SYN+ACK");
        assert_eq!(t[4..12], [0, 0, 0x03, 0xe8, 0, 0, 0x07, 0xd0]);
        let v6 = Ip6 {
            traffic_class: 0xb8,
            flow_label: 0x12345,
            hop_limit: 33,
        }
        .packet(6, [1; 16], [2; 16], b"");
        assert_eq!(v6[..8], [0x6b, 0x81, 0x23, 0x45, 0, 0, 6, 33]);
    }
}
