//! DNS over HTTPS (RFC 8484) on a TLS connection that [`super::tcp`] accepted
//! (its caps, per-address limit and handshake deadline): HTTP/2 or HTTP/1.1 as ALPN
//! chose, `/dns-query` (GET `?dns=`, POST `application/dns-message`), and
//! `/dns-query/<id>` for a place's private DNS name. Requests are read by
//! [`super::doh`]; the engine answers them as any other query.
//!
//! Limits: `https_max_streams` requests at once per HTTP/2 connection, 16 KiB of
//! headers, a message of at most 65,535 bytes, and the connection closed after
//! `tcp_idle_timeout` without a request. A client outside `[server] acl` that names
//! no known place (by path or SNI) gets REFUSED and its connection is closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming as Body};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::doh::{self, Refusal};
use crate::dns::engine::{Engine, Incoming, Transport};
use crate::dns::wire::{self, padding};

/// Header bytes a request may carry.
const MAX_HEADERS: usize = 16 << 10;

/// One HTTP connection's settings.
#[derive(Debug, Clone, Copy)]
pub struct HttpsLimits {
    /// Requests at once on an HTTP/2 connection.
    pub max_streams: u32,
    /// Closed after this long without a request.
    pub idle: Duration,
    /// Closed (gracefully: answers in flight are sent) this long after it opened.
    pub max_age: Option<Duration>,
}

/// What a connection's requests share.
struct Conn {
    engine: Arc<Engine>,
    peer: SocketAddr,
    server: Option<SocketAddr>,
    /// The place the SNI named.
    sni_named: Option<u16>,
    /// Cancelled to close the connection (a refused client).
    close: CancellationToken,
    /// Milliseconds since `born` of the last request, and requests in flight.
    last: AtomicU64,
    busy: AtomicUsize,
    born: Instant,
}

/// Serve DNS over HTTPS on one TLS stream until the client leaves, goes idle, is
/// refused, or `shutdown`.
pub async fn serve<S>(
    engine: Arc<Engine>,
    stream: tokio_rustls::server::TlsStream<S>,
    (peer, server): (SocketAddr, Option<SocketAddr>),
    limits: HttpsLimits,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let sni_named = stream
        .get_ref()
        .1
        .server_name()
        .and_then(|h| engine.named(Ok(h)));
    let conn = Arc::new(Conn {
        engine,
        peer,
        server,
        sni_named,
        close: CancellationToken::new(),
        last: AtomicU64::new(0),
        busy: AtomicUsize::new(0),
        born: Instant::now(),
    });
    let svc = {
        let conn = conn.clone();
        hyper::service::service_fn(move |req| {
            let conn = conn.clone();
            // Boxed: HTTP/2 moves each request's future into a task of its own.
            Box::pin(async move { Ok::<_, Infallible>(conn.request(req).await) })
        })
    };
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle)
        .max_buf_size(MAX_HEADERS.max(8192) * 2);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(MAX_HEADERS as u32)
        .max_send_buf_size(1 << 20);
    let served = b.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(served);
    let mut tick = tokio::time::interval(limits.idle.min(Duration::from_secs(1)));
    let idle_ms = limits.idle.as_millis() as u64;
    loop {
        tokio::select! {
            _ = &mut served => return,
            _ = conn.close.cancelled() => break,
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let now = conn.born.elapsed().as_millis() as u64;
                let quiet = now.saturating_sub(conn.last.load(Ordering::Relaxed));
                if conn.busy.load(Ordering::Relaxed) == 0 && quiet >= idle_ms {
                    break;
                }
                if limits.max_age.is_some_and(|age| conn.born.elapsed() >= age) {
                    break;
                }
            }
        }
    }
    // Answers in flight are sent; then the connection closes (GOAWAY in HTTP/2).
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.idle, served).await;
}

impl Conn {
    async fn request(&self, req: Request<Body>) -> Response<Full<Bytes>> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        let resp = self.answer(req).await;
        self.busy.fetch_sub(1, Ordering::Relaxed);
        let now = self.born.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
        resp
    }

    async fn answer(&self, req: Request<Body>) -> Response<Full<Bytes>> {
        let path_id = match doh::route(req.uri().path()) {
            Ok(id) => id.map(str::to_ascii_lowercase),
            Err(r) => return refusal(r),
        };
        let packet = match *req.method() {
            Method::GET => doh::get_message(req.uri().query()),
            Method::POST => {
                let ct = req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .map(HeaderValue::as_bytes);
                let typed = doh::post_type_ok(ct);
                let body = Limited::new(req.into_body(), doh::MAX_MESSAGE)
                    .collect()
                    .await;
                // Read first, so that the client gets the answer, not a reset stream.
                if !typed {
                    return refusal(Refusal::MediaType);
                }
                match body {
                    Ok(b) => doh::post_message(b.to_bytes().to_vec()),
                    Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::TooLarge),
                    // The client went away mid-body.
                    Err(_) => Err(Refusal::BadRequest),
                }
            }
            _ => Err(Refusal::Method),
        };
        let packet = match packet {
            Ok(p) => p,
            Err(r) => return refusal(r),
        };
        let engine = &self.engine;
        let named = match &path_id {
            Some(id) => engine.named(Err(id)),
            None => self.sni_named,
        };
        let allowed = engine.client_allowed(self.peer.ip());
        if named.is_none() && !allowed {
            // Outside the ACL and no known place: REFUSED, and the connection goes.
            engine.refused_unnamed(Transport::Https);
            self.close.cancel();
            return match wire::refused(&packet) {
                Some(r) => dns_message(r, None),
                None => refusal(Refusal::BadRequest),
            };
        }
        if path_id.is_some() && named.is_none() {
            return refusal(Refusal::NotFound);
        }
        let at = Incoming {
            client: self.peer,
            server: self.server,
            transport: Transport::Https,
            named,
            received: engine.tap_clock(),
            start: Instant::now(),
        };
        match engine.handle(&packet, &at).await {
            Some(mut resp) => {
                if padding::asks_padding(&packet) {
                    padding::pad(&mut resp, padding::RESPONSE_BLOCK);
                }
                let ttl = doh::min_ttl(&resp);
                dns_message(resp, ttl)
            }
            // Dropped (over the rate limit with rate_limit_action = "drop", or an
            // RPZ drop rule): HTTP has to say something.
            None => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"too many queries\n")));
                *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
        }
    }
}

/// 200 with a DNS message, cacheable for `ttl` seconds.
fn dns_message(msg: Vec<u8>, ttl: Option<u32>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(msg)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(doh::MEDIA_TYPE),
    );
    if let Some(ttl) = ttl
        && let Ok(v) = HeaderValue::from_str(&format!("max-age={ttl}"))
    {
        h.insert(header::CACHE_CONTROL, v);
    }
    r
}

fn refusal(r: Refusal) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(r.text().as_bytes())));
    *resp.status_mut() = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if r == Refusal::Method {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    resp
}
