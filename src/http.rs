//! The HTTP client of the feed, the sources and the alerts: ureq (blocking; each
//! user runs on a thread of its own), rustls with the web PKI roots or a private CA, a proxy from
//! the config or from HTTPS_PROXY / HTTP_PROXY, gzip, and bounded times.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// An agent trusting `tls_ca` (PEM) when given, else the web PKI roots.
pub fn agent(
    tls_ca: Option<&Path>,
    proxy: Option<&str>,
    total: Duration,
) -> Result<ureq::Agent, String> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca) = tls_ca {
        let certs = ca_certs(ca)?
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
    }
    let mut b = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(total))
        .http_status_as_error(false);
    if let Some(p) = proxy {
        let proxy = ureq::Proxy::new(p).map_err(|e| format!("proxy {p}: {e}"))?;
        b = b.proxy(Some(proxy));
    }
    Ok(ureq::Agent::new_with_config(b.build()))
}

/// The certificates of a PEM file (a private CA): the one reader of trust files
/// for every TLS client of the appliance, those through ureq here and the DNS over
/// TLS upstreams.
pub fn ca_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// What a conditional GET gave.
pub enum Got {
    /// 304: unchanged since the validator.
    Unchanged,
    /// 200: the body and its validators (ETag, Last-Modified).
    Body(Vec<u8>, Option<String>, Option<String>),
}

/// GET `url` with If-None-Match / If-Modified-Since, taking at most `limit` bytes.
pub fn get(
    agent: &ureq::Agent,
    url: &str,
    limit: u64,
    etag: Option<&str>,
    modified: Option<&str>,
) -> Result<Got, String> {
    let mut req = agent.get(url);
    if let Some(t) = etag {
        req = req.header("If-None-Match", t);
    }
    if let Some(m) = modified {
        req = req.header("If-Modified-Since", m);
    }
    let mut resp = req.call().map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    if status == 304 {
        return Ok(Got::Unchanged);
    }
    if status != 200 {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    let header = |k: &str| {
        resp.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, modified) = (header("etag"), header("last-modified"));
    let mut body = Vec::new();
    resp.body_mut()
        .with_config()
        .limit(u64::MAX)
        .reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("GET {url}: {e}"))?;
    if body.len() as u64 > limit {
        return Err(format!("GET {url}: longer than {limit} bytes"));
    }
    Ok(Got::Body(body, etag, modified))
}

/// POST `body` to `url` with `headers`; the status and at most `limit` bytes of the
/// answer's body (a robot says what went wrong in it).
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
    limit: u64,
) -> Result<(u16, Vec<u8>), String> {
    let mut req = agent.post(url);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let mut resp = req.send(body).map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let mut answer = Vec::new();
    // A body that cannot be read still leaves the status, which is what counts.
    let _ = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .reader()
        .take(limit)
        .read_to_end(&mut answer);
    Ok((status, answer))
}

/// TLS 1.2 sessions remembered for resumption.
const SESSIONS: usize = 8192;

/// A TLS server (1.2 and 1.3) from PEM certificate chain and key files, offering
/// `alpn`; errors name `section`'s `tls_cert` / `tls_key`.
pub fn tls_acceptor(
    cert: &Path,
    key: &Path,
    section: &str,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read {} ({section}.tls_cert): {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} ({section}.tls_cert): {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} ({section}.tls_cert) holds no certificate",
            cert.display()
        ));
    }
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read {} ({section}.tls_key): {e}", key.display()))?;
    let provider = Arc::new(hickory_resolver::net::tls::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{section}.tls_cert / tls_key: {e}"))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Resumption, so a phone coming back skips the certificate and key exchange:
    // TLS 1.3 tickets (a key made here, rotated every 6 h, gone on restart or on a
    // certificate re-read) and TLS 1.2 session ids remembered for a while.
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSIONS);
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}
