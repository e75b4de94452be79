//! DNS over UDP: one receive loop per socket, batched with recvmmsg/sendmmsg.
//!
//! Answers fanzha writes itself (blocked names, cached answers, refusals, errors) are
//! sent from the loop, so a blocked query costs no task, no allocation and no
//! resolver work; queries to resolve get a task each.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::batch::{self, Local, RecvBatch, SendBatch};
use crate::dns::engine::{Engine, Incoming, Pending, Reply, Transport};
use crate::metrics::Outcome;

/// Serve DNS over UDP on `sock` until `shutdown`.
///
/// Datagrams are taken up to [`BATCH`](super::batch::BATCH) per `recvmmsg`; the answers fanzha writes
/// itself (blocked, cached, refused) go back in one `sendmmsg` per batch, and
/// queries to resolve get a task each.
pub async fn run_udp(
    engine: Arc<Engine>,
    sock: Arc<UdpSocket>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let fd = sock.as_raw_fd();
    let bound = sock.local_addr().ok();
    let mut rx = RecvBatch::default();
    let mut tx = SendBatch::default();
    loop {
        tokio::select! {
            r = sock.readable() => if let Err(e) = r {
                tracing::warn!(error = %e, "udp socket not readable");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            },
            _ = shutdown.cancelled() => break,
        }
        let n = match sock.try_io(Interest::READABLE, || rx.recv(fd)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // ICMP errors from earlier sends surface here; never fatal.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let start = Instant::now();
        let received = engine.tap_clock();
        engine.received(Transport::Udp, n as u64);
        tx.clear();
        for i in 0..n {
            let Some(peer) = rx.peer(i) else { continue };
            if rx.truncated(i) {
                engine.metrics().query(Outcome::Malformed);
                continue;
            }
            let Some((client, server, packet)) = unwrap_proxy(&engine, peer, rx.packet(i)) else {
                engine.metrics().query(Outcome::Malformed);
                continue;
            };
            let at = Incoming {
                client,
                server: server.or_else(|| server_addr(rx.local(i), bound)),
                transport: Transport::Udp,
                named: None,
                received,
                start,
            };
            match engine.receive(packet, &at, tx.next_buf()) {
                Reply::Send => tx.push(i),
                Reply::Nothing => {}
                Reply::Resolve(pending) => {
                    let to = (peer, rx.local(i));
                    let (engine, sock) = (engine.clone(), sock.clone());
                    tasks.spawn(resolve(engine, sock, packet.to_vec(), at, pending, to));
                }
            }
        }
        let answered = tx.pending().count();
        send_all(&sock, fd, &mut tx, &rx).await;
        engine.answered(start, answered);
    }
}

/// Send every queued answer: one `sendmmsg` normally; when the socket buffer is full
/// the rest wait for the socket one by one (back-pressure, as a single send would).
async fn send_all(sock: &UdpSocket, fd: std::os::fd::RawFd, tx: &mut SendBatch, rx: &RecvBatch) {
    while !tx.done() {
        match sock.try_io(Interest::WRITABLE, || tx.send(fd, rx)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let Some((buf, i)) = tx.pending().next() else {
                    return;
                };
                if let Some(peer) = rx.peer(i) {
                    let _ = send_from(sock, buf, peer, rx.local(i)).await;
                }
                tx.advance(1);
            }
            Err(e) => {
                // This answer cannot go (e.g. the client's address is unreachable);
                // the others still do.
                tracing::debug!(error = %e, "udp send error");
                tx.advance(1);
            }
        }
    }
}

/// The client behind a datagram, the server address it asked, and its DNS message:
/// the sender itself, or, from a `[server] proxy_from` sender, what its PROXY v2
/// header names. `None`: a trusted sender's datagram without a usable header.
fn unwrap_proxy<'p>(
    engine: &Engine,
    peer: SocketAddr,
    packet: &'p [u8],
) -> Option<(SocketAddr, Option<SocketAddr>, &'p [u8])> {
    if !engine.proxied(peer.ip()) {
        return Some((peer, None, packet));
    }
    let h = super::proxy::parse(packet).ok()?;
    let (client, server) = match h.addresses {
        Some((c, s)) => (c, Some(s)),
        None => (peer, None),
    };
    Some((client, server, &packet[h.len..]))
}

/// Resolve one query in its own task and send the answer to `to` (the sender, from
/// the address it asked).
async fn resolve(
    engine: Arc<Engine>,
    sock: Arc<UdpSocket>,
    packet: Vec<u8>,
    at: Incoming,
    pending: Box<Pending>,
    to: (SocketAddr, Option<Local>),
) {
    if let Some(resp) = engine.resolve(&packet, &at, pending).await {
        let _ = send_from(&sock, &resp, to.0, to.1).await;
    }
}

/// The address a datagram came to: its destination from the control message (a
/// wildcard listener), else the socket's own, with the socket's port.
fn server_addr(local: Option<Local>, bound: Option<SocketAddr>) -> Option<SocketAddr> {
    let bound = bound?;
    Some(match local {
        Some(Local::V4(ip, _)) => SocketAddr::new(ip.into(), bound.port()),
        Some(Local::V6(ip, _)) => SocketAddr::new(ip.into(), bound.port()),
        None => bound,
    })
}

/// Send one answer to `peer`, from the address its query was sent to (`local`, on
/// a wildcard listener), waiting while the socket buffer is full.
async fn send_from(
    sock: &UdpSocket,
    buf: &[u8],
    peer: std::net::SocketAddr,
    local: Option<Local>,
) -> std::io::Result<usize> {
    let fd = sock.as_raw_fd();
    sock.async_io(Interest::WRITABLE, || batch::send_one(fd, buf, peer, local))
        .await
}
