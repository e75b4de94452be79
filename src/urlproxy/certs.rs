//! Host certificates for the managed places' HTTPS, made when a host is first
//! asked for and kept for a day, signed by the district's CA (`[url] ca_cert`,
//! `ca_key`), which those devices trust. Made only for hosts with path rules (the
//! proxy refuses every other name before the handshake).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// Certificates kept at once; past it the oldest half is dropped.
const KEPT: usize = 10_000;
/// How long one certificate is used before a new one is made.
const REUSE: Duration = Duration::from_secs(86_400);
/// Validity of a certificate: from a day before it is made (clocks differ) to 30
/// days after.
const DAYS_BEFORE: i64 = 1;
const DAYS_AFTER: i64 = 30;

/// Makes and keeps the host certificates.
pub struct Minter {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_der: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    kept: Mutex<HashMap<String, (Instant, Arc<CertifiedKey>)>>,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter").finish_non_exhaustive()
    }
}

impl Minter {
    /// The CA of `cert` and `key` (PEM), checked by making one certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<Minter, String> {
        let read = |p: &Path, what: &str| {
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {} (url.{what}): {e}", p.display()))
        };
        let cert_pem = read(cert, "ca_cert")?;
        let key_pem = read(key, "ca_key")?;
        let ca_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("{} (url.ca_cert): no certificate ({e})", cert.display()))?;
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| {
            format!("{} (url.ca_key): not a private key fanzha can sign with ({e}); give a PKCS#8 PEM key (ECDSA P-256/P-384, Ed25519 or RSA)", key.display())
        })?;
        let issuer = rcgen::Issuer::from_ca_cert_der(&ca_der, key)
            .map_err(|e| format!("{} (url.ca_cert): {e}", cert.display()))?;
        let m = Minter {
            issuer,
            ca_der,
            provider: Arc::new(hickory_resolver::net::tls::default_provider()),
            kept: Mutex::new(HashMap::new()),
        };
        m.make("check.invalid")
            .map_err(|e| format!("url.ca_cert / url.ca_key do not sign: {e}"))?;
        Ok(m)
    }

    /// The certificate for `host` (made now, or kept from before).
    pub fn for_host(&self, host: &str) -> Result<Arc<CertifiedKey>, String> {
        let now = Instant::now();
        {
            let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, c)) = kept.get(host)
                && now.duration_since(*at) < REUSE
            {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(self.make(host)?);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= KEPT {
            let mut ages: Vec<Instant> = kept.values().map(|(t, _)| *t).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            kept.retain(|_, (t, _)| *t > cut);
        }
        kept.insert(host.to_string(), (now, c.clone()));
        Ok(c)
    }

    fn make(&self, host: &str) -> Result<CertifiedKey, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = rcgen::CertificateParams::new(vec![host.to_string()])
            .map_err(|e| format!("{host}: {e}"))?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, host);
        let today = crate::wallclock::unix_now() as i64 / 86_400;
        let day = |d: i64| {
            let (y, m, d) = crate::wallclock::civil_from_days(d);
            rcgen::date_time_ymd(y as i32, m as u8, d as u8)
        };
        p.not_before = day(today - DAYS_BEFORE);
        p.not_after = day(today + DAYS_AFTER);
        p.use_authority_key_identifier_extension = true;
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = p.signed_by(&key, &self.issuer).map_err(|e| e.to_string())?;
        let signing = self
            .provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .map_err(|e| e.to_string())?;
        Ok(CertifiedKey::new(
            vec![leaf.der().clone(), self.ca_der.clone()],
            signing,
        ))
    }
}

/// rustls asks this for the certificate of each managed handshake.
#[derive(Debug)]
pub struct ByName(pub Arc<Minter>);

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        match self.0.for_host(&name.to_ascii_lowercase()) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(host = %name, error = %e, "URL proxy: cannot make a certificate for this host");
                None
            }
        }
    }
}

/// The TLS setup of the managed places' connections: HTTP/1.1 only (the proxy
/// speaks HTTP/1.1 both ways), certificates by name.
pub fn server_config(m: Arc<Minter>) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(m.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ByName(m)));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

/// The TLS setup of the connections to the real hosts: the system's roots (with
/// `SSL_CERT_FILE`/`SSL_CERT_DIR` as OpenSSL reads them) and `extra` (PEM files).
pub fn client_config(extra: &[std::path::PathBuf]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    for p in extra {
        for c in CertificateDer::pem_file_iter(p)
            .map_err(|e| format!("cannot read {} (url.upstream_ca): {e}", p.display()))?
        {
            let c = c.map_err(|e| format!("{} (url.upstream_ca): {e}", p.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("{} (url.upstream_ca): {e}", p.display()))?;
        }
    }
    if roots.is_empty() {
        return Err("no trusted root certificates: install Debian's ca-certificates (or give url.upstream_ca), or the proxy cannot check any real host".into());
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        hickory_resolver::net::tls::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn a_host_certificate_chains_to_the_ca_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "滨江区 CA");
        let ca = p.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("ca.key"), ca_key.serialize_pem()).unwrap();
        let m = Minter::load(&dir.path().join("ca.pem"), &dir.path().join("ca.key")).unwrap();
        let c = m.for_host("sites.example").unwrap();
        assert!(Arc::ptr_eq(&c, &m.for_host("sites.example").unwrap()));
        // Verified as a browser would: against the CA, for the name, now.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            m.provider.clone(),
        )
        .build()
        .unwrap();
        let name = rustls_pki_types::ServerName::try_from("sites.example").unwrap();
        let now = rustls_pki_types::UnixTime::now();
        v.verify_server_cert(&c.cert[0], &c.cert[1..], &name, &[], now)
            .unwrap();
        let other = rustls_pki_types::ServerName::try_from("other.example").unwrap();
        assert!(
            v.verify_server_cert(&c.cert[0], &c.cert[1..], &other, &[], now)
                .is_err()
        );
        assert!(Minter::load(&dir.path().join("ca.key"), &dir.path().join("ca.key")).is_err());
    }
}
