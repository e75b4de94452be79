//! Batched UDP I/O: `recvmmsg`/`sendmmsg` move up to [`BATCH`] datagrams per system
//! call. Under load this halves the syscalls a blocked or cached query costs (one
//! receive and one send per batch instead of per query); when idle a batch is one
//! datagram and nothing changes.
//!
//! The buffers live in [`RecvBatch`] and [`SendBatch`], allocated once per listener;
//! the `mmsghdr`/`iovec` arrays pointing into them are rebuilt on the stack for every
//! call, so no pointer outlives the borrow it was made from.
//!
//! On a wildcard listener (`0.0.0.0`, `::`) the kernel tells each datagram's
//! destination address (`IP_PKTINFO`, `IPV6_RECVPKTINFO`), and the answer leaves from
//! that same address (Unbound's `interface-automatic`): on a host with several
//! addresses, a reply from another one would be dropped by the client.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;

/// Largest query kept; a longer datagram is reported as truncated and dropped (a DNS
/// query with one question and an OPT record is far smaller).
pub const SLOT: usize = 4096;

/// Bytes of control messages kept per datagram (one `in6_pktinfo` fits many times).
const CTRL: usize = 128;

/// The address (and interface) a datagram was sent to, from its control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// IPv4: the destination address and interface.
    V4(Ipv4Addr, i32),
    /// IPv6: the destination address and interface.
    V6(Ipv6Addr, u32),
}

/// Ask the kernel for each datagram's destination address on `fd` (a wildcard
/// listener of family `v6`).
pub fn want_destination(fd: RawFd, v6: bool) -> io::Result<()> {
    let one: libc::c_int = 1;
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
    } else {
        (libc::IPPROTO_IP, libc::IP_PKTINFO)
    };
    // SAFETY: a valid fd and an int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The destination in the control messages of `h`.
///
/// # Safety
/// `h.msg_control` points to `h.msg_controllen` readable bytes filled by the kernel.
unsafe fn destination(h: &libc::msghdr) -> Option<Local> {
    // SAFETY: the CMSG_* macros walk the buffer the kernel filled, within its length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                    return Some(Local::V4(
                        Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr)),
                        p.ipi_ifindex,
                    ));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    return Some(Local::V6(
                        Ipv6Addr::from(p.ipi6_addr.s6_addr),
                        p.ipi6_ifindex,
                    ));
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
        None
    }
}

/// Write a control message that sends from `local` into `buf`; its length.
fn source_cmsg(buf: &mut [u8; CTRL], local: Local) -> usize {
    // SAFETY: a zeroed msghdr whose control buffer is `buf`, large enough for one
    // pktinfo message; the CMSG_* macros stay within it.
    unsafe {
        let mut h: libc::msghdr = MaybeUninit::zeroed().assume_init();
        h.msg_control = buf.as_mut_ptr().cast();
        let (level, kind, len) = match local {
            Local::V4(..) => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                size_of::<libc::in_pktinfo>(),
            ),
            Local::V6(..) => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                size_of::<libc::in6_pktinfo>(),
            ),
        };
        let space = libc::CMSG_SPACE(len as u32) as usize;
        h.msg_controllen = space as _;
        let c = libc::CMSG_FIRSTHDR(&h);
        (*c).cmsg_level = level;
        (*c).cmsg_type = kind;
        (*c).cmsg_len = libc::CMSG_LEN(len as u32) as _;
        let data = libc::CMSG_DATA(c);
        match local {
            Local::V4(addr, _) => {
                // The source address; the interface is left to the routing table.
                let mut p: libc::in_pktinfo = MaybeUninit::zeroed().assume_init();
                p.ipi_spec_dst.s_addr = u32::from(addr).to_be();
                std::ptr::write_unaligned(data.cast(), p);
            }
            Local::V6(addr, ifindex) => {
                let mut p: libc::in6_pktinfo = MaybeUninit::zeroed().assume_init();
                p.ipi6_addr.s6_addr = addr.octets();
                p.ipi6_ifindex = ifindex;
                std::ptr::write_unaligned(data.cast(), p);
            }
        }
        space
    }
}

/// Send one datagram to `to`, from `local` when given (non-blocking).
pub fn send_one(fd: RawFd, buf: &[u8], to: SocketAddr, local: Option<Local>) -> io::Result<usize> {
    let to = socket2::SockAddr::from(to);
    let mut ctrl = [0u8; CTRL];
    let ctrl_len = local.map(|l| source_cmsg(&mut ctrl, l)).unwrap_or(0);
    // SAFETY: every pointer targets a live local or `buf`; sendmsg only reads them.
    let n = unsafe {
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut h: libc::msghdr = MaybeUninit::zeroed().assume_init();
        h.msg_name = to.as_ptr() as *mut libc::c_void;
        h.msg_namelen = to.len();
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        if ctrl_len > 0 {
            h.msg_control = ctrl.as_mut_ptr().cast();
            h.msg_controllen = ctrl_len as _;
        }
        libc::sendmsg(fd, &h, libc::MSG_DONTWAIT)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Received datagrams: payloads, sender addresses, lengths.
pub struct RecvBatch {
    bufs: Vec<u8>,
    ctrl: Vec<[u8; CTRL]>,
    local: [Option<Local>; BATCH],
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: [libc::socklen_t; BATCH],
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    count: usize,
    /// Datagrams asked for next time: the whole batch under load, a few when the
    /// last receive found only one or two (setting up 32 headers for a lone query
    /// cost more than the query's parsing).
    want: usize,
}

/// The fewest datagrams asked for at once.
const MIN_WANT: usize = 4;

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![0; SLOT * BATCH],
            ctrl: vec![[0; CTRL]; BATCH],
            local: [None; BATCH],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            addrs: vec![unsafe { MaybeUninit::zeroed().assume_init() }; BATCH],
            addr_lens: [0; BATCH],
            lens: [0; BATCH],
            truncated: [false; BATCH],
            count: 0,
            want: BATCH,
        }
    }
}

/// How many datagrams to ask for after a receive that asked for `want` and got `got`:
/// twice as many when it was filled, else room for twice what came.
fn next_want(want: usize, got: usize) -> usize {
    if got >= want {
        (want * 2).min(BATCH)
    } else {
        (got * 2).clamp(MIN_WANT, BATCH)
    }
}

impl RecvBatch {
    /// Receive what is waiting on `fd` (non-blocking), up to [`BATCH`] datagrams.
    /// `WouldBlock` when nothing is.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.count = 0;
        // SAFETY (whole block): iovecs point into `self.bufs` at disjoint SLOT-sized
        // offsets and names into `self.addrs`, both alive and exclusively borrowed for
        // the call; the kernel writes at most iov_len / msg_namelen bytes into each.
        let n = unsafe {
            let mut iov: [libc::iovec; BATCH] = MaybeUninit::zeroed().assume_init();
            let mut hdrs: [libc::mmsghdr; BATCH] = MaybeUninit::zeroed().assume_init();
            let base = self.bufs.as_mut_ptr();
            let want = self.want;
            for i in 0..want {
                iov[i] = libc::iovec {
                    iov_base: base.add(i * SLOT).cast(),
                    iov_len: SLOT,
                };
                let h = &mut hdrs[i].msg_hdr;
                h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_iov = &mut iov[i];
                h.msg_iovlen = 1;
                h.msg_control = self.ctrl[i].as_mut_ptr().cast();
                h.msg_controllen = CTRL as _;
            }
            let n = libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            );
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            for (i, h) in hdrs.iter().enumerate().take(n) {
                self.lens[i] = (h.msg_len as usize).min(SLOT);
                self.addr_lens[i] = h.msg_hdr.msg_namelen;
                self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                self.local[i] = destination(&h.msg_hdr);
            }
            n
        };
        self.count = n;
        self.want = next_want(self.want, n);
        Ok(n)
    }

    /// Datagrams received by the last [`RecvBatch::recv`].
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Payload of datagram `i`.
    pub fn packet(&self, i: usize) -> &[u8] {
        &self.bufs[i * SLOT..i * SLOT + self.lens[i]]
    }

    /// Whether datagram `i` was longer than [`SLOT`] (its tail is lost).
    pub fn truncated(&self, i: usize) -> bool {
        self.truncated[i]
    }

    /// The address datagram `i` was sent to (wildcard listeners only).
    pub fn local(&self, i: usize) -> Option<Local> {
        self.local[i]
    }

    /// Sender of datagram `i` (`None` for an address family other than IP).
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        sockaddr_to_std(&self.addrs[i], self.addr_lens[i])
    }
}

/// Convert a kernel socket address to the std type.
fn sockaddr_to_std(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match s.ss_family as libc::c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is aligned for every address type.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Answers waiting to go out, each to the sender of one datagram of a [`RecvBatch`].
pub struct SendBatch {
    bufs: Vec<Vec<u8>>,
    dest: [usize; BATCH],
    count: usize,
    sent: usize,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            bufs: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            dest: [0; BATCH],
            count: 0,
            sent: 0,
        }
    }
}

impl SendBatch {
    /// Forget the previous batch.
    pub fn clear(&mut self) {
        self.count = 0;
        self.sent = 0;
    }

    /// The buffer for the next answer (cleared). Call [`SendBatch::push`] to queue it,
    /// or leave it to reuse it for the next one.
    pub fn next_buf(&mut self) -> &mut Vec<u8> {
        let b = &mut self.bufs[self.count];
        b.clear();
        b
    }

    /// Queue the buffer returned by the last [`SendBatch::next_buf`] for the sender
    /// of datagram `dest` of the receive batch.
    pub fn push(&mut self, dest: usize) {
        self.dest[self.count] = dest;
        self.count += 1;
    }

    /// Answers queued and not yet sent: (payload, index of the datagram answered).
    pub fn pending(&self) -> impl Iterator<Item = (&[u8], usize)> {
        (self.sent..self.count).map(|i| (self.bufs[i].as_slice(), self.dest[i]))
    }

    /// Mark `n` more queued answers as handled (sent, or given up on).
    pub fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.count);
    }

    /// Whether every queued answer is handled.
    pub fn done(&self) -> bool {
        self.sent >= self.count
    }

    /// Send the pending answers (non-blocking) to the senders recorded in `from`.
    /// Returns how many went out; `WouldBlock` when the socket buffer is full.
    pub fn send(&mut self, fd: RawFd, from: &RecvBatch) -> io::Result<usize> {
        let todo = self.count - self.sent;
        if todo == 0 {
            return Ok(0);
        }
        // SAFETY (whole block): every pointer targets a buffer of `self` or `from`,
        // both borrowed for the duration of the call; sendmmsg only reads the payloads
        // and names and writes msg_len into our own `hdrs`.
        let n = unsafe {
            let mut iov: [libc::iovec; BATCH] = MaybeUninit::zeroed().assume_init();
            let mut hdrs: [libc::mmsghdr; BATCH] = MaybeUninit::zeroed().assume_init();
            let mut ctrl = [[0u8; CTRL]; BATCH];
            for k in 0..todo {
                let i = self.sent + k;
                let b = &self.bufs[i];
                iov[k] = libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                };
                let d = self.dest[i];
                let h = &mut hdrs[k].msg_hdr;
                h.msg_name = (&from.addrs[d] as *const libc::sockaddr_storage)
                    .cast_mut()
                    .cast();
                h.msg_namelen = from.addr_lens[d];
                h.msg_iov = &mut iov[k];
                h.msg_iovlen = 1;
                if let Some(local) = from.local[d] {
                    let len = source_cmsg(&mut ctrl[k], local);
                    h.msg_control = ctrl[k].as_mut_ptr().cast();
                    h.msg_controllen = len as _;
                }
            }
            libc::sendmmsg(
                fd,
                hdrs.as_mut_ptr(),
                todo as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.sent += n as usize;
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_receives_several_datagrams_and_answers_each_sender() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<_> = (0..5)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, c) in clients.iter().enumerate() {
            c.send_to(format!("query {i}").as_bytes(), addr).unwrap();
        }
        // A datagram longer than a slot is flagged, not silently cut.
        clients[0].send_to(&vec![7u8; SLOT + 10], addr).unwrap();

        // Loopback delivers inside send_to, so all six wait in the queue now.
        let mut rx = RecvBatch::default();
        let n = rx.recv(server.as_raw_fd()).unwrap();
        assert_eq!(n, 6);
        let seen: Vec<_> = (0..n)
            .map(|i| (rx.peer(i).unwrap(), rx.packet(i).to_vec(), rx.truncated(i)))
            .collect();
        assert_eq!(seen.len(), 6);
        for (i, c) in clients.iter().enumerate() {
            let me = c.local_addr().unwrap();
            assert!(
                seen.iter()
                    .any(|(p, d, t)| *p == me && d == format!("query {i}").as_bytes() && !t)
            );
        }
        assert!(seen.iter().any(|(_, d, t)| *t && d.len() == SLOT));

        // A second burst, answered in one sendmmsg, each answer to its own sender.
        for c in &clients {
            c.send_to(b"again", addr).unwrap();
        }
        let n = rx.recv(server.as_raw_fd()).unwrap();
        assert_eq!(n, clients.len());
        let mut tx = SendBatch::default();
        tx.clear();
        for i in 0..n {
            let b = tx.next_buf();
            b.extend_from_slice(format!("answer to {}", rx.peer(i).unwrap()).as_bytes());
            tx.push(i);
        }
        assert_eq!(tx.send(server.as_raw_fd(), &rx).unwrap(), n);
        assert!(tx.done());
        for c in &clients {
            let mut buf = [0u8; 100];
            c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let (k, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            assert_eq!(
                &buf[..k],
                format!("answer to {}", c.local_addr().unwrap()).as_bytes()
            );
        }
    }

    #[test]
    fn a_quiet_socket_asks_for_few_and_a_burst_for_more_without_losing_any() {
        assert_eq!(next_want(BATCH, 1), MIN_WANT);
        assert_eq!(next_want(MIN_WANT, MIN_WANT), MIN_WANT * 2);
        assert_eq!(next_want(BATCH, BATCH), BATCH);
        assert_eq!(next_want(8, 5), 10);

        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rx = RecvBatch::default();
        client.send_to(b"alone", addr).unwrap();
        assert_eq!(rx.recv(server.as_raw_fd()).unwrap(), 1);
        // 40 queued now: taken 4, 8, 16, then the rest, in order.
        for i in 0..40 {
            client.send_to(format!("q{i}").as_bytes(), addr).unwrap();
        }
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while got.len() < 40 {
            let n = rx.recv(server.as_raw_fd()).unwrap();
            sizes.push(n);
            got.extend((0..n).map(|i| rx.packet(i).to_vec()));
        }
        assert_eq!(sizes, vec![4, 8, 16, 12]);
        let want: Vec<Vec<u8>> = (0..40).map(|i| format!("q{i}").into_bytes()).collect();
        assert_eq!(got, want);
        assert_eq!(
            rx.recv(server.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn ipv6_senders_keep_their_address() {
        let Ok(server) = std::net::UdpSocket::bind("[::1]:0") else {
            panic!("no IPv6 loopback on this machine; the test needs ::1");
        };
        let c = std::net::UdpSocket::bind("[::1]:0").unwrap();
        c.send_to(b"x", server.local_addr().unwrap()).unwrap();
        let mut rx = RecvBatch::default();
        assert_eq!(rx.recv(server.as_raw_fd()).unwrap(), 1);
        assert_eq!(rx.peer(0), Some(c.local_addr().unwrap()));
    }
}
