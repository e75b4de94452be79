//! DNS over UDP: one receive loop per socket, batched with recvmmsg/sendmmsg.
//!
//! Answers fanzha writes itself (blocked names, cached answers, refusals, errors) are
//! sent from the loop, so a blocked query costs no task, no allocation and no
//! resolver work; queries to resolve get a task each.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::batch::{self, Local, RecvBatch, SendBatch};
use crate::dns::engine::Engine;
use crate::dns::stages::policy::Decision;
use crate::dns::wire;
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
            let server = server.or_else(|| server_addr(rx.local(i), bound));
            let buf = tx.next_buf();
            let d = engine.decide(packet, client.ip(), false, buf);
            if engine.tapping() && !matches!(d, Decision::Resolve(_)) {
                let answered = matches!(d, Decision::Answer(_) | Decision::Block(..));
                let blocked = matches!(d, Decision::Block(..));
                engine.tap(
                    client,
                    server,
                    false,
                    packet,
                    received,
                    answered.then_some(&buf[..]),
                    blocked,
                );
            }
            match d {
                Decision::Answer(_) | Decision::Block(..) => tx.push(i),
                Decision::Drop(_) => {}
                Decision::Resolve(q) => {
                    let Some(slot) = engine.resolution_slot(client.ip()) else {
                        // At the cap, and this client is the heaviest: memory and
                        // sockets must not grow without bound.
                        let buf = tx.next_buf();
                        overloaded(&engine, buf, packet, &q);
                        let answer = Some(&buf[..]);
                        engine.tap(client, server, false, packet, received, answer, false);
                        tx.push(i);
                        continue;
                    };
                    let from = Origin {
                        peer,
                        client,
                        local: rx.local(i),
                        server,
                        received,
                        start,
                    };
                    let (engine, sock) = (engine.clone(), sock.clone());
                    tasks.spawn(resolve(engine, sock, slot, packet.to_vec(), q, from));
                }
            }
        }
        let answered = tx.pending().count();
        send_all(&sock, fd, &mut tx, &rx).await;
        let took = start.elapsed().as_secs_f64();
        for _ in 0..answered {
            engine.metrics().query_duration.observe(took);
        }
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

/// SERVFAIL at once, counted: too many resolutions in flight (for this client, or
/// in all).
fn overloaded(engine: &Engine, buf: &mut Vec<u8>, packet: &[u8], q: &wire::Query) {
    wire::error_response(buf, packet, q.question_end, wire::rcode::SERVFAIL, q.edns);
    engine.metrics().query(Outcome::Servfail);
    engine.metrics().overload.inc();
}

/// Where a query came from and to, and when.
struct Origin {
    /// The datagram's sender: where the answer goes.
    peer: SocketAddr,
    /// The client: the sender, or the one its PROXY header names.
    client: SocketAddr,
    /// The datagram's destination (the answer's source address).
    local: Option<Local>,
    /// fanzha's address as the client sees it (for the query log).
    server: Option<SocketAddr>,
    received: SystemTime,
    start: Instant,
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

/// Resolve one query in its own task and send the answer (holding `slot` until done).
async fn resolve(
    engine: Arc<Engine>,
    sock: Arc<UdpSocket>,
    slot: crate::limits::ResolutionSlot,
    packet: Vec<u8>,
    q: wire::Query,
    from: Origin,
) {
    // Shed for another client's query at the cap: dropped unanswered, as Unbound
    // drops a jostled query (the client asks again).
    let answered = tokio::select! {
        a = engine.answer(&packet, &q, from.client.ip(), false) => Some(a),
        _ = slot.jostled() => None,
    };
    drop(slot);
    let Some((resp, outcome)) = answered else {
        engine.metrics().jostled.inc();
        return;
    };
    let _ = send_from(&sock, &resp, from.peer, from.local).await;
    let blocked = outcome == Outcome::BlockedCname;
    engine.tap(
        from.client,
        from.server,
        false,
        &packet,
        from.received,
        Some(&resp),
        blocked,
    );
    engine
        .metrics()
        .query_duration
        .observe(from.start.elapsed().as_secs_f64());
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
