//! Requests and their answers: sequence numbers, acks, dumps, errors with extack.

use crate::{
    error::{Error, KernelError, Result},
    transport::Transport,
    wire::{self, Control, NlError},
};
use netlink_packet_core::NLM_F_DUMP_INTR;
use std::io;

/// How many times a dump that the data changed under is tried again.
pub(crate) const DUMP_TRIES: usize = 3;

/// A transport and the sequence numbers of the requests sent over it.
pub(crate) struct Conn<T> {
    pub(crate) transport: T,
    seq: u32,
}

/// A request that waits for its answer.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub seq: u32,
    /// What the request is about, for errors: `chain inet filter lua-web`.
    pub what: String,
    /// Its attributes worth naming when extack points at one.
    pub marks: Vec<Mark>,
}

impl Pending {
    pub(crate) fn new(seq: u32, what: impl Into<String>) -> Self {
        Self {
            seq,
            what: what.into(),
            marks: Vec::new(),
        }
    }
}

/// Where an attribute sits in a request (offsets from the start of the message), and its name.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    pub start: usize,
    pub end: usize,
    pub label: String,
    /// Explains ENOENT pointed at this attribute better than strerror does.
    pub enoent_hint: Option<String>,
}

/// A data message answering one of the requests.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub seq: u32,
    pub message_type: u16,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Every request carries NLM_F_ACK: done at its ack or error.
    Ack,
    /// One NLM_F_DUMP request: done at NLMSG_DONE (or an error).
    Dump,
}

pub(crate) struct Answers {
    pub replies: Vec<Reply>,
    /// A dump saw NLM_F_DUMP_INTR: the data changed while it ran, ask again.
    pub interrupted: bool,
}

impl<T: Transport> Conn<T> {
    pub(crate) fn new(transport: T) -> Self {
        Self { transport, seq: 0 }
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends `datagram`, holding the requests `pending` (and a batch's begin message, whose
    /// error is the whole batch's), and collects the replies until each request is answered.
    /// The first refusal, in request order, is the error.
    pub(crate) fn exchange(
        &mut self,
        datagram: &[u8],
        pending: &[Pending],
        batch: Option<&Pending>,
        expect: Expect,
    ) -> Result<Answers> {
        let Some(first) = batch.or(pending.first()) else {
            return Ok(Answers {
                replies: Vec::new(),
                interrupted: false,
            });
        };
        // Each ack (or error with extack) takes up to ~2 KiB of receive buffer as an skb;
        // echoed rules come on top.
        self.transport
            .reserve(datagram.len(), pending.len() * 2048 + datagram.len())
            .map_err(|e| Error::io(format!("{}: netlink socket buffers", first.what), e))?;
        self.transport
            .send(datagram)
            .map_err(|e| Error::io(format!("{}: netlink send", first.what), e))?;

        let mut open: Vec<&Pending> = pending.iter().collect();
        let mut refusals: Vec<(usize, Error)> = Vec::new();
        let mut answers = Answers {
            replies: Vec::new(),
            interrupted: false,
        };
        while let Some(waiting) = open.first() {
            let what = waiting.what.clone();
            let bytes = self
                .transport
                .recv()
                .map_err(|e| Error::io(format!("{what}: netlink receive"), e))?;
            for message in wire::messages(&bytes) {
                let message = message.map_err(|e| Error::malformed(&what, e.0))?;
                if let Some(begin) = batch.filter(|b| b.seq == message.seq) {
                    match wire::control(&message) {
                        Some(Ok(Control::Error(e))) => return Err(kernel_error(begin, e)),
                        Some(Err(e)) => return Err(Error::malformed(&begin.what, e.0)),
                        _ => continue,
                    }
                }
                // Anything else is left over from an earlier request on this socket.
                let Some(index) = pending.iter().position(|p| p.seq == message.seq) else {
                    continue;
                };
                let request = &pending[index];
                let finished = match wire::control(&message) {
                    None => {
                        if message.flags & NLM_F_DUMP_INTR != 0 {
                            answers.interrupted = true;
                        }
                        answers.replies.push(Reply {
                            seq: message.seq,
                            message_type: message.message_type,
                            payload: message.payload.to_vec(),
                        });
                        false
                    }
                    Some(Err(e)) => return Err(Error::malformed(&request.what, e.0)),
                    Some(Ok(Control::Ack)) => expect == Expect::Ack,
                    Some(Ok(Control::Done(error))) => {
                        if expect != Expect::Dump {
                            return Err(Error::malformed(
                                &request.what,
                                "NLMSG_DONE answering a request that is not a dump",
                            ));
                        }
                        if let Some(e) = error {
                            refusals.push((index, kernel_error(request, e)));
                        }
                        true
                    }
                    Some(Ok(Control::Error(e))) => {
                        refusals.push((index, kernel_error(request, e)));
                        true
                    }
                };
                if finished {
                    open.retain(|p| p.seq != message.seq);
                }
            }
        }
        match refusals.into_iter().min_by_key(|(index, _)| *index) {
            Some((_, error)) => Err(error),
            None => Ok(answers),
        }
    }
}

impl<T: Transport> Conn<T> {
    /// Runs a dump, built by `request` for a sequence number, until one completes without the
    /// data changing under it (`NLM_F_DUMP_INTR`), at most [`DUMP_TRIES`] times.
    pub(crate) fn dump(
        &mut self,
        what: &str,
        request: impl Fn(u32) -> Vec<u8>,
    ) -> Result<Vec<Reply>> {
        for _ in 0..DUMP_TRIES {
            let seq = self.next_seq();
            let pending = [Pending::new(seq, what)];
            let answers = self.exchange(&request(seq), &pending, None, Expect::Dump)?;
            if !answers.interrupted {
                return Ok(answers.replies);
            }
        }
        Err(Error::io(
            what,
            io::Error::new(
                io::ErrorKind::Interrupted,
                format!("the data changed during each of {DUMP_TRIES} dumps"),
            ),
        ))
    }
}

/// Names the refused request and, through extack's offset, the attribute at fault.
pub(crate) fn kernel_error(request: &Pending, e: NlError) -> Error {
    let mark = e.offset.and_then(|offset| {
        let offset = offset as usize;
        request
            .marks
            .iter()
            .filter(|m| (m.start..m.end).contains(&offset))
            .min_by_key(|m| m.end - m.start)
    });
    KernelError {
        what: request.what.clone(),
        attribute: mark.map(|m| m.label.clone()),
        source: io::Error::from_raw_os_error(e.errno),
        message: e.message,
        hint: mark
            .filter(|_| e.errno == libc::ENOENT)
            .and_then(|m| m.enoent_hint.clone()),
    }
    .into()
}
