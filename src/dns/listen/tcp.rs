//! DNS over TCP, and over TLS (RFC 7858: the same frames inside TLS, ALPN `dot`):
//! one task per connection, frames answered in order.
//!
//! Connections are a scarce resource anyone can try to hold, so (as Unbound's
//! `incoming-num-tcp` and per-address limits do):
//! - a client outside `[server] acl` is closed right after `accept`, before it takes
//!   a slot;
//! - at most `tcp_max_connections` connections are open, and `tcp_per_client` from
//!   one address;
//! - a connection is closed when it got no answer for `tcp_idle_timeout`, whatever it
//!   sends: frames that get none (responses, garbage) do not keep it open;
//! - a TLS handshake that takes longer than `tls_handshake_timeout` is closed;
//! - the log says at most once every 10 s that connections were refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dns::engine::{Engine, Incoming};
use crate::dns::wire;
use crate::dns::wire::padding;
use crate::limits::{PerClient, Quiet};

/// The limits of DNS over TCP (`[server] tcp_*`).
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// A connection that got no answer for this long is closed.
    pub idle: Duration,
    /// Connections open at once.
    pub max: usize,
    /// Connections open at once from one address.
    pub per_client: usize,
    /// A TLS handshake longer than this is closed.
    pub handshake: Duration,
}

/// Serve DNS over TCP on `listener` until `shutdown`; over TLS with `tls`.
pub async fn run_tcp(
    engine: Arc<Engine>,
    listener: TcpListener,
    (limits, tls): (
        TcpLimits,
        Option<Arc<arc_swap::ArcSwap<tokio_rustls::TlsAcceptor>>>,
    ),
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max));
    let per_client = Arc::new(PerClient::default());
    let (refused, full, crowded) = (Quiet::new(), Quiet::new(), Quiet::new());
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors, mostly: wait rather than spin.
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // A load balancer in `proxy_from` speaks for its clients: the ACL and the
        // per-address cap apply to the clients its PROXY headers name, not to it.
        let proxied = engine.proxied(peer.ip());
        // Dropping the stream closes it.
        if !proxied && !engine.client_allowed(peer.ip()) {
            if let Some(held) = refused.may_log() {
                tracing::info!(%peer, similar_since_last_line = held, "TCP connection from outside [server] acl closed");
            }
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if let Some(held) = full.may_log() {
                tracing::warn!(%peer, max = limits.max, similar_since_last_line = held, "too many TCP connections (server.tcp_max_connections); closing new ones");
            }
            continue;
        };
        let cap = if proxied {
            usize::MAX
        } else {
            limits.per_client
        };
        let Some(client) = per_client.take(peer.ip(), cap) else {
            if let Some(held) = crowded.may_log() {
                tracing::warn!(%peer, per_client = limits.per_client, similar_since_last_line = held, "too many TCP connections from one address (server.tcp_per_client); closing new ones");
            }
            continue;
        };
        // The certificate in force now (SIGHUP may bring a renewed one).
        let tls = tls.as_ref().map(|t| t.load_full());
        let (engine, shutdown) = (engine.clone(), shutdown.clone());
        tasks.spawn(async move {
            let _held = (permit, client);
            let mut stream = stream;
            let Some((peer, server)) = open(&engine, &mut stream, peer, proxied, limits.idle).await
            else {
                return;
            };
            match tls {
                None => frames(engine, stream, (peer, server, false), limits.idle, shutdown).await,
                Some(acceptor) => {
                    // The handshake holds a slot: it gets its own, short, deadline.
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(limits.handshake, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    frames(engine, stream, (peer, server, true), limits.idle, shutdown).await;
                }
            }
        });
    }
}

/// Ready a connection: no Nagle, the address it came to, and a `proxy_from` sender's
/// PROXY header (then the ACL applies to the client it names); None closes it.
async fn open(
    engine: &Engine,
    stream: &mut TcpStream,
    peer: SocketAddr,
    proxied: bool,
    idle: Duration,
) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let _ = stream.set_nodelay(true);
    let mut server = stream.local_addr().ok();
    let mut peer = peer;
    if proxied {
        match tokio::time::timeout(idle, read_proxy_header(stream)).await {
            Ok(Some(Some((client, to)))) => (peer, server) = (client, Some(to)),
            // LOCAL: the balancer's own query (a health check).
            Ok(Some(None)) => {}
            _ => return None,
        }
        if !engine.client_allowed(peer.ip()) {
            return None;
        }
    }
    Some((peer, server))
}

/// Answer length-prefixed frames in order until the client goes quiet or leaves;
/// `encrypted` (TLS): a query that carries the Padding option gets a padded answer
/// (RFC 8467's 468-octet blocks), so that sizes say little about names.
async fn frames<S: AsyncRead + AsyncWrite + Unpin>(
    engine: Arc<Engine>,
    mut stream: S,
    (peer, server, encrypted): (SocketAddr, Option<SocketAddr>, bool),
    idle: Duration,
    shutdown: CancellationToken,
) {
    let mut frame = Vec::new();
    // Moved on only by an answer.
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        let mut len = [0u8; 2];
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read_exact(&mut len)) => r,
            _ = shutdown.cancelled() => return,
        };
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let n = u16::from_be_bytes(len) as usize;
        frame.resize(n, 0);
        if !matches!(
            tokio::time::timeout_at(deadline, stream.read_exact(&mut frame)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let at = Incoming {
            client: peer,
            server,
            tcp: true,
            received: engine.tap_clock(),
            start: Instant::now(),
        };
        let Some(mut resp) = engine.handle(&frame, &at).await else {
            continue;
        };
        if encrypted && padding::asks_padding(&frame) {
            padding::pad(&mut resp, padding::RESPONSE_BLOCK);
        }
        let Some(out) = framed(&frame, &resp) else {
            return;
        };
        if tokio::time::timeout(idle, stream.write_all(&out))
            .await
            .is_err()
        {
            return;
        }
        deadline = tokio::time::Instant::now() + idle;
    }
}

/// Read the PROXY v2 header a `proxy_from` sender starts its connection with: the
/// client and the address it connected to (`Some(None)` for LOCAL); `None` when
/// there is no usable header.
async fn read_proxy_header(stream: &mut TcpStream) -> Option<Option<(SocketAddr, SocketAddr)>> {
    let mut head = [0u8; super::proxy::FIXED];
    stream.read_exact(&mut head).await.ok()?;
    let rest = u16::from_be_bytes([head[14], head[15]]) as usize;
    let mut buf = head.to_vec();
    buf.resize(super::proxy::FIXED + rest, 0);
    stream
        .read_exact(&mut buf[super::proxy::FIXED..])
        .await
        .ok()?;
    super::proxy::parse(&buf).ok().map(|h| h.addresses)
}

/// The answer to `query` as a TCP frame (length first). An answer longer than a
/// frame can say (65,535 bytes) becomes SERVFAIL, never a cut, malformed message;
/// `None` when not even that can be made.
fn framed(query: &[u8], resp: &[u8]) -> Option<Vec<u8>> {
    let servfail;
    let resp = if resp.len() > usize::from(u16::MAX) {
        let q = wire::parse_query(query).ok()?;
        let mut buf = Vec::new();
        wire::error_response(
            &mut buf,
            query,
            q.question_end,
            wire::rcode::SERVFAIL,
            q.edns,
        );
        servfail = buf;
        &servfail[..]
    } else {
        resp
    };
    let mut out = Vec::with_capacity(resp.len() + 2);
    out.extend_from_slice(&(resp.len() as u16).to_be_bytes());
    out.extend_from_slice(resp);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_too_long_for_a_frame_is_servfail_not_cut() {
        use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
        use hickory_proto::rr::{Name, RecordType};
        let mut q = Message::new(9, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(
            Name::from_ascii("big.example.").unwrap(),
            RecordType::TXT,
        ));
        let query = q.to_vec().unwrap();
        let small = framed(&query, &[1, 2, 3]).unwrap();
        assert_eq!(small, vec![0, 3, 1, 2, 3]);
        let out = framed(&query, &vec![0u8; 70_000]).unwrap();
        let len = u16::from_be_bytes([out[0], out[1]]) as usize;
        assert_eq!(len, out.len() - 2);
        let m = Message::from_vec(&out[2..]).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(m.metadata.id, 9);
        assert_eq!(m.queries, q.queries);
    }
}
