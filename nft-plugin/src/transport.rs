//! The seam between the protocol code and the kernel: a [`Transport`] sends datagrams of
//! netlink messages and receives the kernel's. [`Socket`] is the real one; tests use
//! the fake kernel of `src/fake.rs`.

use std::{io, os::fd::AsRawFd, time::Duration};

use netlink_sys::{protocols, Socket as NlSocket, SocketAddr};

/// Sends requests to the kernel and receives its replies, one datagram at a time.
pub trait Transport {
    /// Sends one datagram (one or more netlink messages).
    fn send(&mut self, datagram: &[u8]) -> io::Result<()>;
    /// Receives the next datagram the kernel sent.
    fn recv(&mut self) -> io::Result<Vec<u8>>;

    /// Makes room for a request of `request` bytes whose replies take about `replies` bytes of
    /// socket buffer: the kernel refuses a datagram larger than the send buffer, and drops acks
    /// that overflow the receive buffer. Called before every send.
    fn reserve(&mut self, request: usize, replies: usize) -> io::Result<()> {
        let _ = (request, replies);
        Ok(())
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        (**self).send(datagram)
    }

    fn recv(&mut self) -> io::Result<Vec<u8>> {
        (**self).recv()
    }

    fn reserve(&mut self, request: usize, replies: usize) -> io::Result<()> {
        (**self).reserve(request, replies)
    }
}

/// Which netlink protocol a [`Socket`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `NETLINK_NETFILTER`: nf_tables.
    Netfilter,
    /// `NETLINK_GENERIC`: nlctrl and the `luapkt` family.
    Generic,
}

/// How long [`Socket::recv`] waits for the kernel before giving up: far longer than any request
/// takes (a commit compiles and instantiates a script), short enough that a lost reply does not
/// hang `lpctl` forever.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(60);

/// A netlink socket connected to the kernel, with extended acks (extack messages) on and acks
/// capped (the kernel does not echo a whole 32 KiB chunk back in every ack).
pub struct Socket {
    socket: NlSocket,
    /// Buffer sizes this crate asked for (the kernel's defaults until a large request).
    sndbuf: usize,
    rcvbuf: usize,
}

/// Socket buffer sizes below which nothing is changed: the kernel's usual defaults.
const DEFAULT_BUF: usize = 128 << 10;

impl Socket {
    pub fn open(protocol: Protocol) -> io::Result<Self> {
        let protocol = match protocol {
            Protocol::Netfilter => protocols::NETLINK_NETFILTER,
            Protocol::Generic => protocols::NETLINK_GENERIC,
        };
        let mut socket = NlSocket::new(protocol)?;
        socket.bind_auto()?;
        // Connected to the kernel (port 0): unicasts from other sockets are refused.
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_ext_ack(true)?;
        socket.set_cap_ack(true)?;
        set_recv_timeout(&socket, RECV_TIMEOUT)?;
        Ok(Self {
            socket,
            sndbuf: DEFAULT_BUF,
            rcvbuf: DEFAULT_BUF,
        })
    }

    /// The port id the kernel assigned to this socket.
    pub fn port_id(&self) -> io::Result<u32> {
        let mut addr = SocketAddr::new(0, 0);
        self.socket.get_address(&mut addr)?;
        Ok(addr.port_number())
    }
}

/// Sets a buffer size with the `*FORCE` option (CAP_NET_ADMIN, which nf_tables needs anyway),
/// falling back to the plain one, capped by `net.core.[rw]mem_max`.
fn set_buffer(
    socket: &NlSocket,
    force: libc::c_int,
    plain: libc::c_int,
    size: usize,
) -> io::Result<()> {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    let set = |option| {
        // SAFETY: `size` is a valid c_int that outlives the call, and its size is passed with it.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    set(force).or_else(|_| set(plain))
}

fn set_recv_timeout(socket: &NlSocket, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: `tv` is a valid timeval that outlives the call, and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Transport for Socket {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let sent = self.socket.send(datagram, 0)?;
        if sent != datagram.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", datagram.len()),
            ));
        }
        Ok(())
    }

    fn reserve(&mut self, request: usize, replies: usize) -> io::Result<()> {
        // Room for the datagram plus the kernel's per-skb overhead.
        let want = request + (16 << 10);
        if want > self.sndbuf {
            set_buffer(&self.socket, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, want)?;
            self.sndbuf = want;
        }
        if replies > self.rcvbuf {
            set_buffer(&self.socket, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, replies)?;
            self.rcvbuf = replies;
        }
        Ok(())
    }

    fn recv(&mut self) -> io::Result<Vec<u8>> {
        loop {
            // Peek at the datagram's size first (MSG_TRUNC reports it whole), then read it.
            let mut probe = Vec::new();
            let size = match self
                .socket
                .recv(&mut probe, libc::MSG_PEEK | libc::MSG_TRUNC)
            {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(size) => size,
            };
            let mut buf = Vec::with_capacity(size.max(1));
            let (len, from) = match self.socket.recv_from(&mut buf, 0) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(received) => received,
            };
            if from.port_number() != 0 {
                // Not from the kernel; a connected socket should never see one.
                continue;
            }
            if len > buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("datagram of {len} bytes truncated to {}", buf.len()),
                ));
            }
            return Ok(buf);
        }
    }
}
