//! Delivery to the platform: a signed, gzipped POST of a JSON array, over HTTP or
//! HTTPS, through the HTTP client every other part uses ([`crate::http`]: every
//! address of the host tried in turn, a proxy from HTTPS_PROXY / HTTP_PROXY, a
//! private CA). The status code is all fanzha needs back.

use std::io::Write;
use std::time::Duration;

use crate::outbox::signature;

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
    url: String,
    agent: ureq::Agent,
    ca: Option<std::path::PathBuf>,
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

/// gzip `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// The longest a POST may take, by default.
const TIMEOUT: Duration = Duration::from_secs(10);

impl Platform {
    /// An endpoint for `url` (`http://` or `https://`), trusting the web PKI roots, or
    /// only the PEM CAs in `ca` when given (a platform with a private CA).
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
        let uri: ureq::http::Uri = url.parse().map_err(|_| err("not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(err("use an http:// or https:// URL"));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(err("no host"));
        }
        let agent = crate::http::agent(ca, None, TIMEOUT)
            .map_err(|e| err(&format!("report.tls_ca {e}")))?;
        Ok(Platform {
            url: url.to_string(),
            agent,
            ca: ca.map(Into::into),
            secret: secret.as_bytes().to_vec(),
            appliance: appliance.to_string(),
            timeout: TIMEOUT,
        })
    }

    /// Set the per-request timeout.
    pub fn with_timeout(mut self, t: Duration) -> Platform {
        if let Ok(agent) = crate::http::agent(self.ca.as_deref(), None, t) {
            self.agent = agent;
        }
        self.timeout = t;
        self
    }

    /// POST a JSON array (already serialised) of events, saying how large the spool
    /// still is (`X-Fanzha-Spool-Bytes`, the platform's view of this appliance's
    /// backlog). The blocking client runs on the runtime's blocking pool: a slow
    /// platform holds a thread, never a worker.
    pub async fn post(
        &self,
        json_array: &[u8],
        idempotency_key: &str,
        spool_bytes: u64,
    ) -> Outcome {
        let body = gzip(json_array);
        let headers = [
            ("Content-Type", "application/json".to_string()),
            ("Content-Encoding", "gzip".to_string()),
            ("X-Fanzha-Signature", signature(&self.secret, &body)),
            ("X-Fanzha-Appliance", self.appliance.clone()),
            ("Idempotency-Key", idempotency_key.to_string()),
            ("X-Fanzha-Spool-Bytes", spool_bytes.to_string()),
            (
                "User-Agent",
                format!("fanzha/{}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        let (agent, url) = (self.agent.clone(), self.url.clone());
        let sent = tokio::task::spawn_blocking(move || {
            crate::http::post(&agent, &url, &headers, &body, 0)
        });
        let status = match tokio::time::timeout(self.timeout + Duration::from_secs(1), sent).await {
            Ok(Ok(Ok((status, _)))) => status,
            Ok(Ok(Err(e))) => return Outcome::Retry(e),
            Ok(Err(e)) => return Outcome::Retry(e.to_string()),
            Err(_) => {
                return Outcome::Retry(format!("no answer within {} s", self.timeout.as_secs()));
            }
        };
        match status {
            200..=299 => Outcome::Accepted,
            413 => Outcome::TooLarge,
            408 | 429 => Outcome::Retry(format!("HTTP {status}")),
            401 | 403 => Outcome::Unauthorized(status),
            400..=499 => Outcome::Rejected(status),
            _ => Outcome::Retry(format!("HTTP {status}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(Platform::new("https://platform.example:8443/api/hits", "k", "a", None).is_ok());
        assert!(Platform::new("http://127.0.0.1", "k", "a", None).is_ok());
        assert!(Platform::new("http://[::1]:8080/v1/events", "k", "a", None).is_ok());
        assert!(Platform::new("ftp://x", "k", "a", None).is_err());
        assert!(Platform::new("http://:80/", "k", "a", None).is_err());
        assert!(Platform::new("platform.example", "k", "a", None).is_err());
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
