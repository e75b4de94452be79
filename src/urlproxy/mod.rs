//! The URL proxy: the second stage of URL blocking. DNS sends a host with path
//! rules here (see `dns::stages::policy`); the proxy answers a listed page with the
//! warning page and relays every other page of the host to the real one, which it
//! resolves itself and connects to by the address it resolved.
//!
//! - plain HTTP: every place;
//! - HTTPS from a `managed_tls` place: opened with a certificate for the host made
//!   by the district's CA ([`certs`]), checked, relayed over a new TLS connection
//!   that verifies the real host;
//! - HTTPS from any other place: relayed unopened by the name it asks for
//!   ([`sni`]), so it works as before, unchecked (counted as unenforced).
//!
//! It is no open proxy: a name without path rules is refused before anything is
//! relayed, the real host's address must be public (or in `[url] relay_private`),
//! and connections are capped in all and per client prefix.

pub mod certs;
mod pipe;
pub mod route;
mod serve;
pub mod sni;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::blocklist::Handle;
use crate::config::UrlConfig;
use crate::dns::engine::Engine;
use crate::limits::{PerClient, Quiet};
use crate::metrics::Metrics;
use crate::places::Places;
use crate::report::pipeline::Reporter;
use crate::warnpage::server::WarnState;

/// What `serve` would trip over in `[url]`: a CA that does not load or sign, no
/// roots to check the real hosts with (`fanzha check-config`).
pub fn preflight(cfg: &UrlConfig) -> Vec<String> {
    if !cfg.enabled() {
        return Vec::new();
    }
    let ca = cfg
        .ca
        .as_ref()
        .and_then(|(cert, key)| certs::Minter::load(cert, key).err());
    let roots = certs::client_config(&cfg.upstream_ca).err();
    ca.into_iter().chain(roots).collect()
}

/// What the proxy shares between its connections.
pub struct Proxy {
    lists: Arc<Handle>,
    engine: Arc<Engine>,
    places: Arc<ArcSwap<Places>>,
    warn: Arc<WarnState>,
    metrics: Arc<Metrics>,
    reporter: Option<Reporter>,
    cfg: UrlConfig,
    /// Clients are counted by these prefixes (`[server] rate_limit_prefix_v4/_v6`).
    prefix: (u8, u8),
    /// TLS to the real hosts.
    upstream_tls: tokio_rustls::TlsConnector,
    /// TLS of the managed places (`None`: no CA configured).
    managed: Option<tokio_rustls::TlsAcceptor>,
    conns: Arc<Semaphore>,
    clients: Arc<PerClient>,
    full: Quiet,
    crowded: Quiet,
}

/// The parts a proxy is built from.
pub struct Parts {
    /// The serving lists.
    pub lists: Arc<Handle>,
    /// The resolver (for the real hosts' addresses) and the policy.
    pub engine: Arc<Engine>,
    /// The places (swapped on reload).
    pub places: Arc<ArcSwap<Places>>,
    /// The warning page.
    pub warn: Arc<WarnState>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The hit reports (`None`: off).
    pub reporter: Option<Reporter>,
    /// Client prefixes.
    pub prefix: (u8, u8),
}

impl Proxy {
    /// The proxy of `cfg`; fails when its CA or the roots cannot be read.
    pub fn new(cfg: &UrlConfig, p: Parts) -> Result<Proxy, String> {
        let managed = match &cfg.ca {
            None => None,
            Some((cert, key)) => {
                let m = Arc::new(certs::Minter::load(cert, key)?);
                Some(tokio_rustls::TlsAcceptor::from(certs::server_config(m)?))
            }
        };
        Ok(Proxy {
            lists: p.lists,
            engine: p.engine,
            places: p.places,
            warn: p.warn,
            metrics: p.metrics,
            reporter: p.reporter,
            upstream_tls: tokio_rustls::TlsConnector::from(certs::client_config(&cfg.upstream_ca)?),
            managed,
            conns: Arc::new(Semaphore::new(cfg.max_connections)),
            clients: Arc::default(),
            full: Quiet::new(),
            crowded: Quiet::new(),
            prefix: p.prefix,
            cfg: cfg.clone(),
        })
    }

    /// Serve `listener` (HTTPS when `tls`) until `shutdown`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: bool,
        shutdown: CancellationToken,
    ) {
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "URL proxy: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let Ok(permit) = self.conns.clone().try_acquire_owned() else {
                if let Some(held) = self.full.may_log() {
                    tracing::warn!(%peer, max = self.cfg.max_connections, similar_since_last_line = held, "URL proxy: too many connections (url.max_connections); closing new ones");
                }
                continue;
            };
            let key = crate::limits::prefix(peer.ip(), self.prefix.0, self.prefix.1);
            let Some(slot) = self.clients.take(key, self.cfg.per_client) else {
                if let Some(held) = self.crowded.may_log() {
                    tracing::warn!(%peer, per_client = self.cfg.per_client, similar_since_last_line = held, "URL proxy: too many connections from one client prefix (url.per_client); closing new ones");
                }
                continue;
            };
            let local = stream.local_addr().unwrap_or(peer);
            let this = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _held = (permit, slot);
                let _ = stream.set_nodelay(true);
                let work = async {
                    if tls {
                        this.tls_connection(stream, peer, local).await;
                    } else {
                        this.http_connection(stream, peer, local, None).await;
                    }
                };
                tokio::select! {
                    _ = work => {}
                    _ = shutdown.cancelled() => {}
                }
            });
        }
    }

    /// An HTTPS connection: read the name it asks for, refuse a name without path
    /// rules, open it for a managed place, relay it unopened for any other.
    async fn tls_connection(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
    ) {
        let mut buf = Vec::with_capacity(2048);
        let name = loop {
            match sni::client_hello(&buf) {
                sni::Hello::Need(n) => {
                    let start = buf.len();
                    buf.resize(n.max(start + 1).min(sni::MAX_RECORD), 0);
                    let read =
                        tokio::time::timeout(self.cfg.idle_timeout, stream.read(&mut buf[start..]));
                    match read.await {
                        Ok(Ok(k)) if k > 0 => buf.truncate(start + k),
                        _ => return,
                    }
                }
                sni::Hello::Name(Some(n)) => break n,
                sni::Hello::Name(None) | sni::Hello::NotTls => {
                    self.metrics.url_request("refused");
                    return;
                }
            }
        };
        let list = self.lists.load();
        let Some(rules) = list.paths().host(&name) else {
            self.metrics.url_request("refused");
            tracing::debug!(%peer, host = %name, "URL proxy: TLS for a host without path rules refused");
            return;
        };
        let https_rules = rules.rules.iter().any(|r| r.schemes.https());
        drop(list);
        let managed = self.places.load().lookup(peer.ip()).managed_tls;
        match (&self.managed, managed) {
            (Some(acc), true) => {
                let io = pipe::Rewind::new(buf, stream);
                let hs = tokio::time::timeout(self.cfg.idle_timeout, acc.accept(io));
                if let Ok(Ok(s)) = hs.await {
                    self.http_connection(s, peer, local, Some(name)).await;
                }
            }
            _ => {
                if https_rules {
                    self.metrics.url_unenforced("tls_passthrough");
                }
                self.passthrough(stream, &buf, &name, local.port()).await;
            }
        }
    }

    /// Relay an HTTPS connection unopened to the real host.
    async fn passthrough(&self, stream: TcpStream, hello: &[u8], host: &str, port: u16) {
        let mut up = match self.connect(host, port).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(host, error = %e, "URL proxy: passthrough failed");
                return;
            }
        };
        self.metrics.url_request("passthrough");
        if up.write_all(hello).await.is_err() {
            return;
        }
        pipe::splice(stream, up, self.cfg.idle_timeout).await;
    }

    /// A TCP connection to `host`:`port` at the first of its addresses that may
    /// be relayed to and answers. The error says why not (for the log and the 502).
    async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, String> {
        let addrs = self.engine.addresses(host).await.inspect_err(|_| {
            self.metrics.url_request("upstream_error");
        })?;
        let ok: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|a| route::may_relay(*a, &self.cfg.relay_private) && !self.is_own(*a, port))
            .collect();
        if ok.is_empty() {
            self.metrics.url_request("refused");
            return Err(format!(
                "{host} resolves to {addrs:?}, which the proxy does not relay to (private, loopback or this appliance; see url.relay_private)"
            ));
        }
        let mut last = String::new();
        for a in ok {
            let c = tokio::time::timeout(self.cfg.connect_timeout, TcpStream::connect((a, port)));
            match c.await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => last = format!("{a}:{port}: {e}"),
                Err(_) => last = format!("{a}:{port}: no answer in {:?}", self.cfg.connect_timeout),
            }
        }
        self.metrics.url_request("upstream_error");
        Err(last)
    }

    /// Whether `ip`:`port` is one of the proxy's own listeners (a loop).
    fn is_own(&self, ip: IpAddr, port: u16) -> bool {
        self.cfg
            .listen
            .iter()
            .chain(&self.cfg.listen_tls)
            .any(|l| l.port() == port && (l.ip() == ip || l.ip().is_unspecified()))
    }
}
