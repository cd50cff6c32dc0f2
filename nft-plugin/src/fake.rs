//! A fake kernel for tests (the seam of aya's `sys/fake.rs`): it records every datagram a client
//! sends and answers each with replies queued beforehand, so a test checks the exact bytes of the
//! requests and how canned replies (errors with extack, multi-part dumps, garbage) decode.
//!
//! Sequence numbers are deterministic: a client's first message has seq 1, and each message
//! (a batch's begin and end included) takes the next.

use std::{collections::VecDeque, io};

use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_MULTIPART};

pub(crate) use crate::wire::MessageBuilder;
use crate::{genl, transport::Transport, wire::NLMSG_HDRLEN};

/// Records requests and plays back replies. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct FakeKernel {
    sent: Vec<Vec<u8>>,
    /// Replies to the next sends, one entry per send.
    queued: VecDeque<Vec<Vec<u8>>>,
    /// Datagrams ready to be received.
    readable: VecDeque<Vec<u8>>,
}

impl FakeKernel {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Queues the datagrams the kernel answers the next not-yet-answered send with.
    pub(crate) fn reply(&mut self, datagrams: Vec<Vec<u8>>) -> &mut Self {
        self.queued.push_back(datagrams);
        self
    }

    /// Every datagram sent so far.
    pub(crate) fn sent(&self) -> &[Vec<u8>] {
        &self.sent
    }

    /// Replies queued but never sent because the client stopped early.
    pub(crate) fn unused_replies(&self) -> usize {
        self.queued.len() + self.readable.len()
    }
}

impl Transport for FakeKernel {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.sent.push(datagram.to_vec());
        if let Some(replies) = self.queued.pop_front() {
            self.readable.extend(replies);
        }
        Ok(())
    }

    fn recv(&mut self) -> io::Result<Vec<u8>> {
        self.readable
            .pop_front()
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "fake kernel: no reply queued"))
    }
}

/// Several messages in one datagram.
pub(crate) fn datagram(messages: &[Vec<u8>]) -> Vec<u8> {
    messages.concat()
}

/// The ack of request `seq` (capped, as the client's socket asks for).
pub(crate) fn ack(seq: u32) -> Vec<u8> {
    error_reply(seq, 0, None, None)
}

/// The kernel refusing request `seq` with `errno`, and an extack message if given.
pub(crate) fn error(seq: u32, errno: i32, message: Option<&str>) -> Vec<u8> {
    error_reply(seq, -errno, message, None)
}

/// Like [`error`], with extack's offset of the attribute at fault.
pub(crate) fn error_at(seq: u32, errno: i32, message: Option<&str>, offset: u32) -> Vec<u8> {
    error_reply(seq, -errno, message, Some(offset))
}

fn error_reply(seq: u32, code: i32, message: Option<&str>, offset: Option<u32>) -> Vec<u8> {
    let extack = message.is_some() || offset.is_some();
    let flags = NLM_F_CAPPED | if extack { NLM_F_ACK_TLVS } else { 0 };
    // nlmsgerr: the code, then the request's header (length and seq are what the client reads).
    let mut fixed = code.to_ne_bytes().to_vec();
    let mut request_header = [0u8; NLMSG_HDRLEN];
    request_header[..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
    request_header[8..12].copy_from_slice(&seq.to_ne_bytes());
    fixed.extend_from_slice(&request_header);
    let mut m = MessageBuilder::new(NLMSG_ERROR, flags, seq).fixed_header(&fixed);
    if let Some(message) = message {
        m.attr_str(1, message);
    }
    if let Some(offset) = offset {
        m.attr_u32(2, offset);
    }
    m.finish()
}

/// The end of a dump for request `seq`.
pub(crate) fn done(seq: u32) -> Vec<u8> {
    MessageBuilder::new(NLMSG_DONE, NLM_F_MULTIPART, seq)
        .fixed_header(&0i32.to_ne_bytes())
        .finish()
}

/// nlctrl's answer to the client's family lookup (request `seq`): `name` has id `id`.
pub(crate) fn family(seq: u32, name: &str, id: u16) -> Vec<Vec<u8>> {
    let mut m = MessageBuilder::new(genl::GENL_ID_CTRL, 0, seq).fixed_header(&[
        genl::CTRL_CMD_NEWFAMILY,
        2,
        0,
        0,
    ]);
    m.attr_str(genl::CTRL_ATTR_FAMILY_NAME, name)
        .attr_u16(genl::CTRL_ATTR_FAMILY_ID, id)
        .attr_u32(
            genl::CTRL_ATTR_VERSION,
            u32::from(abi::netlink::GENL_VERSION),
        )
        .attr_u32(genl::CTRL_ATTR_HDRSIZE, 0)
        .attr_u32(genl::CTRL_ATTR_MAXATTR, u32::from(abi::netlink::attr::MAX));
    vec![datagram(&[m.finish(), ack(seq)])]
}
