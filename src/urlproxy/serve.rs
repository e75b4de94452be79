//! One HTTP connection of the proxy (plain, or a managed place's opened HTTPS):
//! each request checked against its host's path rules, then answered with the
//! warning page or relayed, streaming, over a kept-alive connection to the real
//! host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;
use tower::ServiceExt;

use super::{Proxy, route};
use crate::blocklist::Action;
use crate::blocklist::paths::{PathRule, PathVerdict};
use crate::report::event::{Input, PathHit};

type Error = Box<dyn std::error::Error + Send + Sync>;
/// A response body: a page of the proxy's own, or the real host's, streamed.
type Body = UnsyncBoxBody<Bytes, Error>;

/// The connection to the real host that one client connection keeps.
struct Upstream {
    host: String,
    port: u16,
    send: SendRequest<Incoming>,
}

/// One client connection.
struct Conn {
    peer: SocketAddr,
    local: SocketAddr,
    /// The name the client asked for in TLS (`None`: plain HTTP).
    sni: Option<String>,
    upstream: Mutex<Option<Upstream>>,
}

fn page(status: StatusCode, text: &str, close: bool) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{text}\n")))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

impl Proxy {
    /// Serve HTTP/1.1 on `io` until the client is done or idle.
    pub(super) async fn http_connection<IO>(
        self: Arc<Self>,
        io: IO,
        peer: SocketAddr,
        local: SocketAddr,
        sni: Option<String>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(Conn {
            peer,
            local,
            sni,
            upstream: Mutex::new(None),
        });
        let this = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let (this, conn) = (this.clone(), conn.clone());
            async move { Ok::<_, std::convert::Infallible>(this.request(&conn, req).await) }
        });
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(self.cfg.idle_timeout)
            .max_buf_size(self.cfg.header_bytes.max(8192))
            .keep_alive(true);
        let _ = b.serve_connection(TokioIo::new(io), svc).await;
    }

    /// One request: the warning page, the proxy's refusal, or the real host's answer.
    async fn request(&self, c: &Conn, req: Request<Incoming>) -> Response<Body> {
        if req.method() == Method::CONNECT {
            self.metrics.url_request("refused");
            return page(
                StatusCode::METHOD_NOT_ALLOWED,
                "this is not a forward proxy",
                true,
            );
        }
        let tls = c.sni.is_some();
        // The request's authority (absolute form) or its Host header.
        let authority = req.uri().authority().map(|a| a.as_str()).or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        });
        let Some((host, port)) = authority.and_then(route::host_port) else {
            self.metrics.url_request("refused");
            return page(
                StatusCode::BAD_REQUEST,
                "which host? (no usable Host header)",
                true,
            );
        };
        if c.sni.as_deref().is_some_and(|s| s != host) {
            self.metrics.url_request("refused");
            return page(
                StatusCode::MISDIRECTED_REQUEST,
                "the Host is not the name this connection was opened for",
                true,
            );
        }
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let list = self.lists.load();
        let verdict = list
            .paths()
            .check(&host, target, tls, crate::wallclock::unix_now());
        match verdict {
            PathVerdict::NotAPathHost => {
                self.metrics.url_request("refused");
                tracing::debug!(peer = %c.peer, %host, "URL proxy: a host without path rules refused");
                return page(
                    StatusCode::FORBIDDEN,
                    "this proxy serves only the hosts the district's lists name",
                    true,
                );
            }
            PathVerdict::Hit(rule, h) => {
                let action = rule.action;
                self.hit(c, &host, rule, &h.host);
                if action.blocks() {
                    self.metrics.url_request("blocked");
                    let path = target.split('?').next().unwrap_or("/");
                    return crate::warnpage::server::path_page(
                        &self.warn,
                        &rule.category,
                        &host,
                        path,
                    )
                    .map(|b| b.map_err(|e| Box::new(e) as Error).boxed_unsync());
                }
            }
            PathVerdict::Relay => {}
        }
        drop(list);
        if req.method() == Method::POST && req.uri().path() == crate::warnpage::server::APPEAL_PATH
        {
            return self.appeal(c, req).await;
        }
        let port = port.unwrap_or(c.local.port());
        match self.relay(c, req, &host, port, tls).await {
            Ok(r) => {
                self.metrics.url_request("relayed");
                r
            }
            Err(e) => {
                tracing::info!(peer = %c.peer, %host, error = %e, "URL proxy: relay failed");
                page(
                    StatusCode::BAD_GATEWAY,
                    &format!("the site did not answer through the proxy: {e}"),
                    false,
                )
            }
        }
    }

    /// Count and report a path rule's hit (a shadow one too).
    fn hit(&self, c: &Conn, host: &str, rule: &PathRule, rule_host: &str) {
        let ip = c.peer.ip();
        let policy = self.engine.policy();
        if rule.action == Action::Shadow {
            self.metrics
                .shadow_hits
                .with_label_values(&[rule.category.as_str(), rule.list.as_str()])
                .inc();
        } else if rule.action.blocks() {
            let places = self.places.load();
            let place = places.lookup(ip);
            let community = if policy.community_label {
                place.community.as_str()
            } else {
                ""
            };
            self.metrics
                .blocked
                .with_label_values(&[rule.category.as_str(), &place.street, community])
                .inc();
        } else {
            return;
        }
        let pattern = rule.pattern(rule_host);
        if rule.action.blocks() {
            self.metrics.top_blocked.count(&pattern);
            self.engine.alert_path_hit(ip, &rule.category, &pattern);
        } else {
            self.metrics.top_shadow.count(&pattern);
        }
        tracing::debug!(peer = %c.peer, %host, rule = %pattern, category = %rule.category, "URL proxy: a listed page");
        if let Some(r) = &self.reporter {
            r.send(Input::PathHit(Box::new(PathHit {
                client: ip,
                host: host.to_string(),
                rule: pattern,
                list: rule.list.clone(),
                category: rule.category.clone(),
                note: rule.note.clone(),
                action: rule.action.as_str(),
                time: SystemTime::now(),
            })));
        }
    }

    /// The warning page's appeal form, posted on the host it was shown for.
    async fn appeal(&self, c: &Conn, mut req: Request<Incoming>) -> Response<Body> {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(c.peer));
        let app = crate::warnpage::server::router(self.warn.clone());
        match app.oneshot(req.map(axum::body::Body::new)).await {
            Ok(r) => r.map(|b| b.map_err(|e| Box::new(e) as Error).boxed_unsync()),
            Err(e) => match e {},
        }
    }

    /// Relay `req` to the real host, over the connection kept for it (a new one
    /// when there is none, it is for another host, or it closed).
    async fn relay(
        &self,
        c: &Conn,
        req: Request<Incoming>,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<Response<Body>, String> {
        let (mut parts, body) = req.into_parts();
        route::strip_hop(&mut parts.headers);
        let mut uri = hyper::http::uri::Parts::default();
        uri.path_and_query = parts.uri.path_and_query().cloned();
        parts.uri = hyper::Uri::from_parts(uri).map_err(|e| format!("bad target: {e}"))?;
        parts.version = Version::HTTP_11;
        if !parts.headers.contains_key(header::HOST) {
            let h = HeaderValue::from_str(host).map_err(|e| e.to_string())?;
            parts.headers.insert(header::HOST, h);
        }
        let req = Request::from_parts(parts, body);
        let mut kept = c.upstream.lock().await;
        let reuse = match kept.as_mut() {
            Some(u) if u.host == host && u.port == port => u.send.ready().await.is_ok(),
            _ => false,
        };
        if !reuse {
            *kept = Some(Upstream {
                host: host.to_string(),
                port,
                send: self.open(host, port, tls).await?,
            });
        }
        let send = &mut kept.as_mut().expect("set above").send;
        let idle = self.cfg.idle_timeout;
        let resp = match tokio::time::timeout(idle, send.send_request(req)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer from the site in {idle:?}")),
        }
        .inspect_err(|_| {
            self.metrics.url_request("upstream_error");
            *kept = None;
        })?;
        let (mut parts, body) = resp.into_parts();
        route::strip_hop(&mut parts.headers);
        Ok(Response::from_parts(
            parts,
            super::pipe::Idle::new(body, idle).boxed_unsync(),
        ))
    }

    /// A new HTTP/1.1 connection to the real host (TLS verified against the roots
    /// when `tls`).
    async fn open(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<SendRequest<Incoming>, String> {
        let tcp = self.connect(host, port).await?;
        if !tls {
            return handshake(tcp).await;
        }
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host}: {e}"))?;
        let s = tokio::time::timeout(
            self.cfg.connect_timeout,
            self.upstream_tls.connect(name, tcp),
        )
        .await
        .map_err(|_| format!("{host}: no TLS handshake in {:?}", self.cfg.connect_timeout))?
        .map_err(|e| {
            self.metrics.url_request("upstream_error");
            format!("{host}: TLS: {e}")
        })?;
        handshake(s).await
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<Incoming>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}
