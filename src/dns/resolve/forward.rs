//! Forwarding (Unbound's `iter_fwd.c`): `[resolver] mode = "forward"` and each
//! `[[forward_zones]]` send their names to upstreams over UDP, TCP or DNS over TLS,
//! through hickory's resolver with a connection provider that knows the test
//! hierarchy's ports and a short per-exchange timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig as HickoryResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{ConnectionProvider, PoolContext, Resolver, TlsConfig};
use ipnet::IpNet;

use crate::config::ResolverConfig;

/// A connection provider that sends queries for some name server addresses to
/// another port (test hierarchies on unprivileged ports) and gives every exchange a
/// short timeout, so that a dead server costs one timeout, not the query.
#[derive(Clone)]
pub struct MappedPortProvider {
    inner: TokioRuntimeProvider,
    ports: Arc<Vec<(IpNet, u16)>>,
    cx: Arc<PoolContext>,
}

impl MappedPortProvider {
    fn new(
        ports: Vec<(IpNet, u16)>,
        timeout: Duration,
        tls_config: Option<rustls::ClientConfig>,
    ) -> Result<MappedPortProvider, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.edns0 = true;
        opts.recursion_desired = false;
        let mut tls = TlsConfig::new().map_err(|e| e.to_string())?;
        if let Some(c) = tls_config {
            tls.config = c;
        }
        Ok(MappedPortProvider {
            inner: TokioRuntimeProvider::default(),
            ports: Arc::new(ports),
            cx: Arc::new(PoolContext::new(opts, tls)),
        })
    }
}

impl ConnectionProvider for MappedPortProvider {
    type Conn = <TokioRuntimeProvider as ConnectionProvider>::Conn;
    type FutureConn = <TokioRuntimeProvider as ConnectionProvider>::FutureConn;
    type RuntimeProvider = TokioRuntimeProvider;

    fn new_connection(
        &self,
        ip: IpAddr,
        config: &ConnectionConfig,
        _cx: &PoolContext,
    ) -> Result<Self::FutureConn, hickory_resolver::net::NetError> {
        let mut c = config.clone();
        if let Some((_, p)) = self.ports.iter().find(|(n, _)| n.contains(&ip)) {
            c.port = *p;
        }
        self.inner.new_connection(ip, &c, &self.cx)
    }

    fn runtime_provider(&self) -> &Self::RuntimeProvider {
        &self.inner
    }
}

fn upstream(u: &str) -> Option<(IpAddr, ConnectionConfig)> {
    let (scheme, rest) = u.split_once("://")?;
    let (addr, name) = match rest.split_once('#') {
        Some((a, n)) => (a, Some(n)),
        None => (rest, None),
    };
    let sa: SocketAddr = addr.parse().ok()?;
    let mut c = match scheme {
        "udp" => ConnectionConfig::udp(),
        "tcp" => ConnectionConfig::tcp(),
        "tls" => ConnectionConfig::new(ProtocolConfig::Tls {
            server_name: Arc::from(name?),
        }),
        _ => return None,
    };
    c.port = sa.port();
    Some((sa.ip(), c))
}

/// Forwarding to the configured upstreams.
pub fn forwarder(c: &ResolverConfig) -> Result<Resolver<MappedPortProvider>, String> {
    let err = |why| why;
    let mut servers = Vec::new();
    for u in &c.upstreams {
        let (ip, conn) = upstream(u).ok_or_else(|| err(format!("bad upstream {u}")))?;
        let mut ns = NameServerConfig::udp(ip);
        ns.connections = vec![conn];
        servers.push(ns);
    }
    let tls = match &c.tls_ca {
        Some(ca) => Some(tls_client_config(ca).map_err(err)?),
        None => None,
    };
    let provider =
        MappedPortProvider::new(c.nameserver_ports.clone(), c.timeout, tls).map_err(err)?;
    let mut b = Resolver::builder_with_config(
        HickoryResolverConfig::from_parts(None, vec![], servers),
        provider,
    );
    let o = b.options_mut();
    o.timeout = c.timeout;
    o.attempts = 2;
    // fanzha's answer cache, in front, holds every answer within [cache] max_bytes.
    // hickory's own cache (counted in entries, not bytes) would hold them again, and
    // a prefetch would get its aging copy back instead of asking the upstream: off.
    o.cache_size = 0;
    o.preserve_intermediates = true;
    o.ndots = 0;
    o.edns0 = true;
    b.build().map_err(|e| err(e.to_string()))
}

/// A TLS client config trusting the built-in web roots and the CAs in `ca` (PEM).
fn tls_client_config(ca: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let certs = crate::http::ca_certs(ca).map_err(|e| format!("resolver.tls_ca: {e}"))?;
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("resolver.tls_ca {}: {e}", ca.display()))?;
    }
    let provider = Arc::new(hickory_resolver::net::tls::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}
