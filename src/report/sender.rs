//! Delivery to the platform: a signed, gzipped POST of a JSON array, over HTTP or
//! HTTPS, with a small hand-written HTTP/1.1 client (one request per connection; the
//! status code is all fanzha needs back).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: acknowledged.
    Accepted,
    /// 413: split the batch.
    TooLarge,
    /// 401/403: the platform refuses this appliance's credentials. A configuration
    /// error to fix, not a reason to give up on the events: they stay in the spool.
    Unauthorized(u16),
    /// 4xx other than 401/403/408/413/429: will never succeed; dead-letter it.
    Rejected(u16),
    /// 5xx, 408, 429, timeout, connection error, garbage: retry later.
    Retry(String),
}

/// The platform endpoint.
#[derive(Clone)]
pub struct Platform {
    host: String,
    port: u16,
    path: String,
    tls: Option<tokio_rustls::TlsConnector>,
    secret: Vec<u8>,
    appliance: String,
    timeout: Duration,
}

/// A URL or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("report.url {url:?}: {why}")]
pub struct PlatformError {
    url: String,
    why: String,
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut m =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// gzip `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

impl Platform {
    /// An endpoint for `url` (`http://` or `https://`), trusting the built-in web roots
    /// and the PEM CAs in `ca`.
    pub fn new(
        url: &str,
        secret: &str,
        appliance: &str,
        ca: Option<&std::path::Path>,
    ) -> Result<Platform, PlatformError> {
        let err = |why: &str| PlatformError {
            url: url.to_string(),
            why: why.to_string(),
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(err("use an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            let (h, p) = h.split_once(']').ok_or_else(|| err("bad IPv6 address"))?;
            (
                h.to_string(),
                p.strip_prefix(':')
                    .map(|p| p.parse().map_err(|_| err("bad port")))
                    .transpose()?,
            )
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.parse().map_err(|_| err("bad port"))?)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = port.unwrap_or(if tls { 443 } else { 80 });
        let tls = if tls {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(ca) = ca {
                use rustls_pki_types::CertificateDer;
                use rustls_pki_types::pem::PemObject;
                for c in CertificateDer::pem_file_iter(ca)
                    .map_err(|e| err(&format!("report.tls_ca {}: {e}", ca.display())))?
                {
                    let c = c.map_err(|e| err(&format!("report.tls_ca {}: {e}", ca.display())))?;
                    roots
                        .add(c)
                        .map_err(|e| err(&format!("report.tls_ca {}: {e}", ca.display())))?;
                }
            }
            let provider = Arc::new(hickory_resolver::net::tls::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| err(&e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        } else {
            None
        };
        Ok(Platform {
            host,
            port,
            path: path.to_string(),
            tls,
            secret: secret.as_bytes().to_vec(),
            appliance: appliance.to_string(),
            timeout: Duration::from_secs(10),
        })
    }

    /// Set the per-request timeout.
    pub fn with_timeout(mut self, t: Duration) -> Platform {
        self.timeout = t;
        self
    }

    /// POST a JSON array (already serialised) of events.
    pub async fn post(&self, json_array: &[u8], idempotency_key: &str) -> Outcome {
        let body = gzip(json_array);
        match tokio::time::timeout(self.timeout, self.exchange(&body, idempotency_key)).await {
            Ok(Ok(status)) => match status {
                200..=299 => Outcome::Accepted,
                413 => Outcome::TooLarge,
                408 | 429 => Outcome::Retry(format!("HTTP {status}")),
                401 | 403 => Outcome::Unauthorized(status),
                400..=499 => Outcome::Rejected(status),
                _ => Outcome::Retry(format!("HTTP {status}")),
            },
            Ok(Err(e)) => Outcome::Retry(e),
            Err(_) => Outcome::Retry(format!("no answer within {} s", self.timeout.as_secs())),
        }
    }

    async fn exchange(&self, body: &[u8], key: &str) -> Result<u16, String> {
        let addr = format!("{}:{}", self.host, self.port);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&addr)
            .await
            .map_err(|e| format!("resolving {addr}: {e}"))?
            .collect();
        let first = addrs
            .first()
            .ok_or_else(|| format!("{addr} has no address"))?;
        let tcp = TcpStream::connect(first)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nX-Fanzha-Signature: {}\r\nX-Fanzha-Appliance: {}\r\nIdempotency-Key: {}\r\nUser-Agent: fanzha/{}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            body.len(),
            signature(&self.secret, body),
            self.appliance,
            key,
            env!("CARGO_PKG_VERSION")
        );
        match &self.tls {
            None => roundtrip(tcp, head.as_bytes(), body).await,
            Some(c) => {
                let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| e.to_string())?;
                let s = c
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {addr}: {e}"))?;
                roundtrip(s, head.as_bytes(), body).await
            }
        }
    }
}

async fn roundtrip<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &[u8],
    body: &[u8],
) -> Result<u16, String> {
    s.write_all(head).await.map_err(|e| e.to_string())?;
    s.write_all(body).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let r = s.read(&mut buf[n..]).await.map_err(|e| e.to_string())?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let line =
        std::str::from_utf8(&buf[..n]).map_err(|_| "the platform answered garbage".to_string())?;
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") && (100..600).contains(&code) => Ok(code),
        _ => Err("the platform answered garbage".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let p = Platform::new("https://platform.example:8443/api/hits", "k", "a", None).unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.path.as_str(), p.tls.is_some()),
            ("platform.example", 8443, "/api/hits", true)
        );
        let p = Platform::new("http://127.0.0.1", "k", "a", None).unwrap();
        assert_eq!((p.port, p.path.as_str()), (80, "/"));
        assert!(Platform::new("ftp://x", "k", "a", None).is_err());
        assert!(Platform::new("http://:80/", "k", "a", None).is_err());
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
