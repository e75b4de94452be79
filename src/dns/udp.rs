//! DNS over UDP: one receive loop per socket, batched with recvmmsg/sendmmsg.
//!
//! Answers fanzha writes itself (blocked names, cached answers, refusals, errors) are
//! sent from the loop, so a blocked query costs no task, no allocation and no
//! resolver work; queries to resolve get a task each.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::engine::Engine;
use super::policy::Decision;
use super::udp_batch::{self, Local, RecvBatch, SendBatch};
use super::wire;
use crate::metrics::Outcome;

/// Serve DNS over UDP on `sock` until `shutdown`.
///
/// Datagrams are taken up to [`BATCH`](super::udp_batch::BATCH) per `recvmmsg`; the answers fanzha writes
/// itself (blocked, cached, refused) go back in one `sendmmsg` per batch, and
/// queries to resolve get a task each.
pub async fn run_udp(
    engine: Arc<Engine>,
    sock: Arc<UdpSocket>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let fd = sock.as_raw_fd();
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
        tx.clear();
        for i in 0..n {
            let Some(peer) = rx.peer(i) else { continue };
            if rx.truncated(i) {
                engine.metrics().query(Outcome::Malformed);
                continue;
            }
            let packet = rx.packet(i);
            match engine.decide(packet, peer.ip(), false, tx.next_buf()) {
                Decision::Answer(_) | Decision::Block(..) => tx.push(i),
                Decision::Drop(_) => {}
                Decision::Resolve(q) => {
                    let Some(slot) = engine.resolution_slot(peer.ip(), tasks.len()) else {
                        // A flood of uncached names (from this client, or in all) must
                        // not grow memory and sockets without bound.
                        wire::error_response(
                            tx.next_buf(),
                            packet,
                            q.question_end,
                            wire::rcode::SERVFAIL,
                            q.edns,
                        );
                        engine.metrics().query(Outcome::Servfail);
                        engine.metrics().overload.inc();
                        tx.push(i);
                        continue;
                    };
                    let (engine, sock, packet) = (engine.clone(), sock.clone(), packet.to_vec());
                    let local = rx.local(i);
                    tasks.spawn(async move {
                        let _slot = slot;
                        let resp = engine.answer(&packet, &q, peer.ip(), false).await;
                        let _ = send_from(&sock, &resp, peer, local).await;
                        engine
                            .metrics()
                            .query_duration
                            .observe(start.elapsed().as_secs_f64());
                    });
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

/// Send one answer to `peer`, from the address its query was sent to (`local`, on
/// a wildcard listener), waiting while the socket buffer is full.
async fn send_from(
    sock: &UdpSocket,
    buf: &[u8],
    peer: std::net::SocketAddr,
    local: Option<Local>,
) -> std::io::Result<usize> {
    let fd = sock.as_raw_fd();
    sock.async_io(Interest::WRITABLE, || {
        udp_batch::send_one(fd, buf, peer, local)
    })
    .await
}
