//! Netlink framing: building requests and reading replies.
//!
//! Every byte a reply carries is untrusted: each length is checked before it is used, and a
//! reply that does not add up is a [`Malformed`] error, never a panic. Attribute and header
//! layout comes from `netlink-packet-core` (`NetlinkBuffer`, `NlaBuffer`, `NlasIterator`).

use netlink_packet_core::{
    NetlinkBuffer, NlaBuffer, NlasIterator, NLA_HEADER_SIZE, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_ACK_TLVS, NLM_F_CAPPED,
};

/// Size of `struct nlmsghdr`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `NLMSGERR_ATTR_MSG`: the extack message of an error or a warning.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLMSGERR_ATTR_OFFS`: offset, in the request, of the attribute the kernel objects to.
const NLMSGERR_ATTR_OFFS: u16 = 2;

/// Why a reply could not be decoded (becomes [`crate::Error::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

impl Malformed {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

pub(crate) type Decoded<T> = Result<T, Malformed>;

/// `NLMSG_ALIGN` / `NLA_ALIGN`.
pub(crate) const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Builds one netlink message: header, the family's fixed header, then attributes.
///
/// Callers check user-supplied lengths first (names, arguments, chunks are far below the 64 KiB
/// an attribute can hold); a longer attribute is a bug in this crate and panics.
#[derive(Debug, Clone)]
pub(crate) struct MessageBuilder {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl MessageBuilder {
    /// A message of `message_type` with `flags` and sequence number `seq` (port id 0: the kernel
    /// fills in the sender's).
    pub(crate) fn new(message_type: u16, flags: u16, seq: u32) -> Self {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        let mut header = NetlinkBuffer::new(&mut buf[..]);
        header.set_message_type(message_type);
        header.set_flags(flags);
        header.set_sequence_number(seq);
        Self {
            buf,
            nests: Vec::new(),
        }
    }

    /// Appends the family's fixed header (`nfgenmsg`, `genlmsghdr`), padded to 4 bytes.
    pub(crate) fn fixed_header(mut self, bytes: &[u8]) -> Self {
        self.push_padded(bytes);
        self
    }

    /// Offset of the next attribute from the start of the message (what extack's
    /// `NLMSGERR_ATTR_OFFS` counts in).
    pub(crate) fn offset(&self) -> usize {
        self.buf.len()
    }

    /// Appends an attribute with a raw value.
    pub(crate) fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let start = self.buf.len();
        self.buf.resize(start + NLA_HEADER_SIZE, 0);
        self.push_padded(value);
        let len = u16::try_from(NLA_HEADER_SIZE + value.len())
            .expect("netlink attribute over 64 KiB (lengths are checked before encoding)");
        let mut nla = NlaBuffer::new(&mut self.buf[start..]);
        nla.set_kind(kind);
        nla.set_length(len);
        self
    }

    /// A NUL-terminated string (`NLA_NUL_STRING`, `NLA_STRING` as nft sends them).
    pub(crate) fn attr_str(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.attr(kind, &bytes)
    }

    pub(crate) fn attr_u8(&mut self, kind: u16, value: u8) -> &mut Self {
        self.attr(kind, &[value])
    }

    #[cfg(test)]
    pub(crate) fn attr_u16(&mut self, kind: u16, value: u16) -> &mut Self {
        self.attr(kind, &value.to_ne_bytes())
    }

    /// Host byte order (`NLA_U32` of generic netlink).
    pub(crate) fn attr_u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.attr(kind, &value.to_ne_bytes())
    }

    /// Network byte order (nf_tables' integers).
    pub(crate) fn attr_u32_be(&mut self, kind: u16, value: u32) -> &mut Self {
        self.attr(kind, &value.to_be_bytes())
    }

    pub(crate) fn attr_u64(&mut self, kind: u16, value: u64) -> &mut Self {
        self.attr(kind, &value.to_ne_bytes())
    }

    pub(crate) fn attr_u64_be(&mut self, kind: u16, value: u64) -> &mut Self {
        self.attr(kind, &value.to_be_bytes())
    }

    /// Opens a nested attribute (with `NLA_F_NESTED`, as libmnl sets it); close it with
    /// [`Self::end_nest`].
    pub(crate) fn begin_nest(&mut self, kind: u16) -> &mut Self {
        let start = self.buf.len();
        self.nests.push(start);
        self.attr(kind, &[]);
        NlaBuffer::new(&mut self.buf[start..]).set_nested_flag();
        self
    }

    pub(crate) fn end_nest(&mut self) -> &mut Self {
        let start = self.nests.pop().expect("end_nest without begin_nest");
        let len = u16::try_from(self.buf.len() - start)
            .expect("nested netlink attribute over 64 KiB (lengths are checked before encoding)");
        NlaBuffer::new(&mut self.buf[start..]).set_length(len);
        self
    }

    /// The finished message, with its length filled in.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        assert!(self.nests.is_empty(), "unclosed nested attribute");
        let len = u32::try_from(self.buf.len()).expect("netlink message over 4 GiB");
        NetlinkBuffer::new(&mut self.buf[..]).set_length(len);
        self.buf
    }

    fn push_padded(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align(self.buf.len()), 0);
    }
}

/// One message of a reply datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    pub message_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub port: u32,
    /// Everything after the `nlmsghdr`.
    pub payload: &'a [u8],
}

/// The messages of one datagram, in order. After the first malformed header it yields that
/// error and stops.
pub(crate) fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { rest: datagram }
}

pub(crate) struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Decoded<Message<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let buf = match NetlinkBuffer::new_checked(rest) {
            Ok(buf) => buf,
            Err(e) => return Some(Err(Malformed::new(e.to_string()))),
        };
        let len = buf.length() as usize;
        let message = Message {
            message_type: buf.message_type(),
            flags: buf.flags(),
            seq: buf.sequence_number(),
            port: buf.port_number(),
            payload: &rest[NLMSG_HDRLEN..len],
        };
        // The last message of a datagram may lack its padding.
        self.rest = rest.get(align(len)..).unwrap_or_default();
        Some(Ok(message))
    }
}

/// One attribute: its type (flags masked off) and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attr<'a> {
    pub kind: u16,
    pub value: &'a [u8],
}

/// The attributes in `buf`; the first malformed one is an error and ends the iteration.
pub(crate) fn attrs(buf: &[u8]) -> impl Iterator<Item = Decoded<Attr<'_>>> {
    NlasIterator::new(buf).map(|nla| {
        let nla = nla.map_err(|e| Malformed::new(format!("bad attribute: {e}")))?;
        Ok(Attr {
            kind: nla.kind(),
            value: nla
                .into_inner()
                .get(NLA_HEADER_SIZE..usize::from(nla.length()))
                .unwrap_or_default(),
        })
    })
}

impl<'a> Attr<'a> {
    fn fixed<const N: usize>(&self, name: &str) -> Decoded<[u8; N]> {
        self.value.try_into().map_err(|_| {
            Malformed::new(format!(
                "{name}: {} bytes where {N} were expected",
                self.value.len()
            ))
        })
    }

    pub(crate) fn u8(&self, name: &str) -> Decoded<u8> {
        Ok(self.fixed::<1>(name)?[0])
    }

    pub(crate) fn u16(&self, name: &str) -> Decoded<u16> {
        Ok(u16::from_ne_bytes(self.fixed(name)?))
    }

    pub(crate) fn u32(&self, name: &str) -> Decoded<u32> {
        Ok(u32::from_ne_bytes(self.fixed(name)?))
    }

    pub(crate) fn u32_be(&self, name: &str) -> Decoded<u32> {
        Ok(u32::from_be_bytes(self.fixed(name)?))
    }

    pub(crate) fn u64(&self, name: &str) -> Decoded<u64> {
        Ok(u64::from_ne_bytes(self.fixed(name)?))
    }

    pub(crate) fn u64_be(&self, name: &str) -> Decoded<u64> {
        Ok(u64::from_be_bytes(self.fixed(name)?))
    }

    /// A string: the bytes before the first NUL (the kernel always terminates its strings),
    /// which must be UTF-8.
    pub(crate) fn str(&self, name: &str) -> Decoded<String> {
        let bytes = self.value.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8(bytes.to_vec()).map_err(|_| Malformed::new(format!("{name}: not UTF-8")))
    }
}

/// An attribute a reply must carry.
pub(crate) fn required<V>(value: Option<V>, name: &str) -> Decoded<V> {
    value.ok_or_else(|| Malformed::new(format!("{name} missing")))
}

/// What the kernel said about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NlError {
    /// Positive errno.
    pub errno: i32,
    /// `NLMSGERR_ATTR_MSG`.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: where in our request the offending attribute starts.
    pub offset: Option<u32>,
}

/// A control message: the end of a request's replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// `NLMSG_ERROR` with code 0.
    Ack,
    /// `NLMSG_ERROR` with a negative code.
    Error(NlError),
    /// `NLMSG_DONE`, with the dump's error if it failed midway.
    Done(Option<NlError>),
}

/// Decodes `NLMSG_ERROR` and `NLMSG_DONE`; `None` for any other message type.
pub(crate) fn control(message: &Message<'_>) -> Option<Decoded<Control>> {
    match message.message_type {
        NLMSG_ERROR => Some(decode_error(message)),
        NLMSG_DONE => Some(decode_done(message)),
        _ => None,
    }
}

fn errno(code: i32) -> Decoded<i32> {
    // Kernel error codes are -1..=-4095 (MAX_ERRNO).
    if (-4095..0).contains(&code) {
        Ok(-code)
    } else {
        Err(Malformed::new(format!("error code {code} out of range")))
    }
}

fn decode_error(message: &Message<'_>) -> Decoded<Control> {
    // struct nlmsgerr { int error; struct nlmsghdr msg; } [original payload] [TLVs]
    let p = message.payload;
    let code = i32::from_ne_bytes(
        p.get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Malformed::new("NLMSG_ERROR shorter than its error code"))?,
    );
    if code == 0 {
        return Ok(Control::Ack);
    }
    let errno = errno(code)?;
    let mut error = NlError {
        errno,
        message: None,
        offset: None,
    };
    if message.flags & NLM_F_ACK_TLVS != 0 {
        let original_len = p
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .ok_or_else(|| Malformed::new("NLMSG_ERROR without the request's header"))?;
        let echoed = if message.flags & NLM_F_CAPPED != 0 {
            0
        } else {
            align((original_len as usize).saturating_sub(NLMSG_HDRLEN))
        };
        let tlvs = (4 + NLMSG_HDRLEN)
            .checked_add(echoed)
            .and_then(|start| p.get(start..))
            .ok_or_else(|| Malformed::new("NLMSG_ERROR shorter than the request it echoes"))?;
        extack(tlvs, &mut error)?;
    }
    Ok(Control::Error(error))
}

fn decode_done(message: &Message<'_>) -> Decoded<Control> {
    let p = message.payload;
    let Some(code) = p.get(..4) else {
        // Some families end dumps with an empty NLMSG_DONE.
        return Ok(Control::Done(None));
    };
    let code = i32::from_ne_bytes(code.try_into().unwrap_or_default());
    if code == 0 {
        return Ok(Control::Done(None));
    }
    let mut error = NlError {
        errno: errno(code)?,
        message: None,
        offset: None,
    };
    if message.flags & NLM_F_ACK_TLVS != 0 {
        extack(&p[4..], &mut error)?;
    }
    Ok(Control::Done(Some(error)))
}

fn extack(tlvs: &[u8], error: &mut NlError) -> Decoded<()> {
    for attr in attrs(tlvs) {
        let attr = attr?;
        match attr.kind {
            NLMSGERR_ATTR_MSG => error.message = Some(attr.str("extack message")?),
            NLMSGERR_ATTR_OFFS => error.offset = Some(attr.u32("extack offset")?),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn builder_pads_and_nests() {
        let mut b = MessageBuilder::new(0x1234, 0x0005, 7).fixed_header(&[1, 2]);
        b.attr_str(1, "ab").begin_nest(2);
        b.attr_u32_be(3, 0x0102_0304).end_nest();
        let bytes = b.finish();
        assert_eq!(
            bytes,
            [
                40, 0, 0, 0, 0x34, 0x12, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr
                1, 2, 0, 0, // fixed header, padded
                7, 0, 1, 0, b'a', b'b', 0, 0, // "ab\0", padded
                12, 0, 2, 0x80, // nest with NLA_F_NESTED
                8, 0, 3, 0, 1, 2, 3, 4, // big-endian u32
            ]
        );
    }

    #[test]
    fn messages_split_a_datagram_and_reject_bad_lengths() {
        let a = MessageBuilder::new(16, 0, 1).fixed_header(&[9]).finish();
        let b = MessageBuilder::new(17, 2, 2).finish();
        let mut datagram = a.clone();
        datagram.extend_from_slice(&b);
        let parsed: Vec<_> = messages(&datagram).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].payload, [9, 0, 0, 0]);
        assert_eq!((parsed[1].message_type, parsed[1].seq), (17, 2));

        // Length field larger than the datagram, smaller than a header, truncated header.
        let mut long = a.clone();
        long[0] = 200;
        let mut short = a.clone();
        short[0] = 3;
        for bad in [&long[..], &short[..], &a[..10]] {
            let all: Vec<_> = messages(bad).collect();
            assert_eq!(all.len(), 1);
            assert!(all[0].is_err(), "{bad:?}");
        }
    }

    #[test]
    fn attributes_reject_overruns() {
        assert!(attrs(&[8, 0, 1, 0, 0, 0]).next().unwrap().is_err());
        assert!(attrs(&[2, 0, 1, 0]).next().unwrap().is_err());
        assert!(attrs(&[1]).next().unwrap().is_err());
        let ok: Vec<_> = attrs(&[5, 0, 1, 0x80, 42, 0, 0, 0])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            ok,
            [Attr {
                kind: 1,
                value: &[42]
            }]
        );
        assert!(ok[0].u32("x").is_err());
        assert_eq!(ok[0].u8("x").unwrap(), 42);
    }

    fn error_message(flags: u16, code: i32, echoed: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut payload = code.to_ne_bytes().to_vec();
        payload.extend_from_slice(echoed);
        payload.extend_from_slice(tlvs);
        let mut m = MessageBuilder::new(NLMSG_ERROR, flags, 5);
        m.buf.extend_from_slice(&payload);
        m.finish()
    }

    fn decode(bytes: &[u8]) -> Decoded<Control> {
        let message = messages(bytes).next().unwrap()?;
        control(&message).unwrap()
    }

    #[test]
    fn errors_with_and_without_extack() {
        let request = MessageBuilder::new(0x0a06, 5, 5)
            .fixed_header(&[1, 0, 0, 0])
            .finish();
        assert_eq!(
            decode(&error_message(0, 0, &request, &[])).unwrap(),
            Control::Ack
        );
        let mut tlvs = MessageBuilder::new(0, 0, 0);
        tlvs.attr_str(NLMSGERR_ATTR_MSG, "script is in use")
            .attr_u32(NLMSGERR_ATTR_OFFS, 24);
        let tlvs = &tlvs.finish()[NLMSG_HDRLEN..];
        let expected = Control::Error(NlError {
            errno: 16,
            message: Some("script is in use".into()),
            offset: Some(24),
        });
        // Capped: only the request's header is echoed.
        let capped = error_message(
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            -16,
            &request[..NLMSG_HDRLEN],
            tlvs,
        );
        assert_eq!(decode(&capped).unwrap(), expected);
        // Not capped: the whole request is echoed before the TLVs.
        let full = error_message(NLM_F_ACK_TLVS, -16, &request, tlvs);
        assert_eq!(decode(&full).unwrap(), expected);
        // TLVs promised but the echoed request is cut short.
        let cut = error_message(NLM_F_ACK_TLVS, -16, &request[..8], &[]);
        assert!(decode(&cut).is_err());
        // Error codes out of range.
        for code in [1, -4096, i32::MIN] {
            assert!(decode(&error_message(0, code, &request, &[])).is_err());
        }
        // Shorter than the code itself.
        let mut tiny = MessageBuilder::new(NLMSG_ERROR, 0, 5);
        tiny.buf.extend_from_slice(&[0, 0]);
        assert!(decode(&tiny.finish()).is_err());
    }

    #[test]
    fn done_carries_a_dump_error() {
        let mut ok = MessageBuilder::new(NLMSG_DONE, 2, 5);
        ok.buf.extend_from_slice(&0i32.to_ne_bytes());
        assert_eq!(decode(&ok.finish()).unwrap(), Control::Done(None));
        let mut failed = MessageBuilder::new(NLMSG_DONE, 2, 5);
        failed.buf.extend_from_slice(&(-5i32).to_ne_bytes());
        assert_eq!(
            decode(&failed.finish()).unwrap(),
            Control::Done(Some(NlError {
                errno: 5,
                message: None,
                offset: None
            }))
        );
        let empty = MessageBuilder::new(NLMSG_DONE, 2, 5).finish();
        assert_eq!(decode(&empty).unwrap(), Control::Done(None));
    }
}
