//! DNS over TCP, and over TLS (RFC 7858: the same frames inside TLS, ALPN `dot`):
//! one task per connection, frames answered in order.
//!
//! Connections are a scarce resource anyone can try to hold, so (as Unbound's
//! `incoming-num-tcp` and per-address limits do):
//! - a client outside `[server] acl` is closed right after `accept`, before it takes
//!   a slot; over TLS, after the handshake unless it named a known place by its
//!   private DNS name (SNI `<id>.<dns_name>`): then its first query gets REFUSED
//!   and the connection is closed, so a scanner learns nothing but that;
//! - at most `tcp_max_connections` connections are open, and `tcp_per_client` from
//!   one address;
//! - a connection is closed when it got no answer for `tcp_idle_timeout`, whatever it
//!   sends: frames that get none (responses, garbage) do not keep it open;
//! - a TLS handshake that takes longer than `tls_handshake_timeout` is closed;
//! - a connection older than `tcp_max_age` is closed between two queries;
//! - the log says at most once every 10 s that connections were refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dns::engine::{Engine, Incoming, Transport};
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
    /// A connection is closed this long after it opened, between two queries.
    pub max_age: Option<Duration>,
}

/// A TLS acceptor, swapped when its certificate is read again.
pub type Acceptor = Arc<arc_swap::ArcSwap<tokio_rustls::TlsAcceptor>>;

/// What a stream listener serves.
#[derive(Clone)]
pub enum Over {
    /// DNS over TCP.
    Tcp,
    /// DNS over TLS.
    Tls(Acceptor),
    /// DNS over HTTPS, at most this many requests at once per HTTP/2 connection.
    Https(Acceptor, u32),
}

/// Serve DNS over TCP, TLS or HTTPS on `listener` until `shutdown`.
pub async fn run_tcp(
    engine: Arc<Engine>,
    listener: TcpListener,
    (limits, over): (TcpLimits, Over),
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let tls = match &over {
        Over::Tcp => None,
        Over::Tls(a) | Over::Https(a, _) => Some(a.clone()),
    };
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
        // Dropping the stream closes it. Over TLS the name it asks for may admit it.
        if tls.is_none() && !proxied && !engine.client_allowed(peer.ip()) {
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
        let (engine, shutdown, over) = (engine.clone(), shutdown.clone(), over.clone());
        tasks.spawn(async move {
            let _held = (permit, client);
            let mut stream = stream;
            let acl = tls.is_none();
            let Some((peer, server)) =
                open(&engine, &mut stream, (peer, proxied, acl), limits.idle).await
            else {
                return;
            };
            match tls {
                None => {
                    let from = (peer, server, Transport::Tcp, None);
                    frames(engine, stream, from, limits, shutdown).await
                }
                Some(acceptor) => {
                    let at = (peer, server);
                    secure(engine, stream, acceptor, at, (limits, over), shutdown).await
                }
            }
        });
    }
}

/// A TLS connection, after its handshake: DNS over HTTPS, or DNS over TLS frames
/// (refused once and closed when it is from outside the ACL and names no known
/// place).
async fn secure(
    engine: Arc<Engine>,
    stream: TcpStream,
    acceptor: Arc<tokio_rustls::TlsAcceptor>,
    (peer, server): (SocketAddr, Option<SocketAddr>),
    (limits, over): (TcpLimits, Over),
    shutdown: CancellationToken,
) {
    // The handshake holds a slot: it gets its own, short, deadline.
    let Ok(Ok(stream)) = tokio::time::timeout(limits.handshake, acceptor.accept(stream)).await
    else {
        return;
    };
    if let Over::Https(_, max_streams) = over {
        let limits = super::https::HttpsLimits {
            max_streams,
            idle: limits.idle,
            max_age: limits.max_age,
        };
        super::https::serve(engine, stream, (peer, server), limits, shutdown).await;
        return;
    }
    let sni = stream.get_ref().1.server_name();
    let named = sni.and_then(|h| engine.named(Ok(h)));
    if named.is_none() && !engine.client_allowed(peer.ip()) {
        engine.refused_unnamed(Transport::Tls);
        refuse_once(stream, limits.idle).await;
        return;
    }
    let from = (peer, server, Transport::Tls, named);
    frames(engine, stream, from, limits, shutdown).await;
}

/// Ready a connection: no Nagle, the address it came to, and a `proxy_from` sender's
/// PROXY header (then the ACL, when `acl`, applies to the client it names); None
/// closes it.
async fn open(
    engine: &Engine,
    stream: &mut TcpStream,
    (peer, proxied, acl): (SocketAddr, bool, bool),
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
        if acl && !engine.client_allowed(peer.ip()) {
            return None;
        }
    }
    Some((peer, server))
}

/// Read one length-prefixed frame (RFC 1035 §4.2.2) into `frame`.
async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    frame: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    frame.resize(usize::from(u16::from_be_bytes(len)), 0);
    stream.read_exact(frame).await?;
    Ok(())
}

/// Answer the first query of a connection REFUSED and close it: a client outside
/// the ACL that named no known place.
async fn refuse_once<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, idle: Duration) {
    let mut frame = Vec::new();
    let Ok(Ok(())) = tokio::time::timeout(idle, read_frame(&mut stream, &mut frame)).await else {
        return;
    };
    if let Some(resp) = wire::refused(&frame)
        && let Some(out) = framed(&frame, &resp)
    {
        let _ = tokio::time::timeout(idle, stream.write_all(&out)).await;
    }
    let _ = tokio::time::timeout(idle, stream.shutdown()).await;
}

/// Answer length-prefixed frames in order until the client goes quiet or leaves;
/// `encrypted` (TLS): a query that carries the Padding option gets a padded answer
/// (RFC 8467's 468-octet blocks), so that sizes say little about names.
async fn frames<S: AsyncRead + AsyncWrite + Unpin>(
    engine: Arc<Engine>,
    mut stream: S,
    (peer, server, transport, named): (SocketAddr, Option<SocketAddr>, Transport, Option<u16>),
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    let idle = limits.idle;
    let born = Instant::now();
    let mut frame = Vec::new();
    // Moved on only by an answer.
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        if limits.max_age.is_some_and(|age| born.elapsed() >= age) {
            return;
        }
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, read_frame(&mut stream, &mut frame)) => r,
            _ = shutdown.cancelled() => return,
        };
        if !matches!(read, Ok(Ok(()))) {
            return;
        }
        let at = Incoming {
            client: peer,
            server,
            transport,
            named,
            received: engine.tap_clock(),
            start: Instant::now(),
        };
        let Some(mut resp) = engine.handle(&frame, &at).await else {
            continue;
        };
        if transport != Transport::Tcp && padding::asks_padding(&frame) {
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
