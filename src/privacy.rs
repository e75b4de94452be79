//! What leaves the appliance of a client's address: kept, truncated to its network,
//! or a keyed hash under this appliance's own key. Shared by the reports to the
//! platform, the alerts to places' workers and the dnstap query log.

use std::net::IpAddr;

use hmac::{KeyInit, Mac};
use serde::Deserialize;

/// What the platform gets for a client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientIp {
    /// The address as is.
    #[default]
    Keep,
    /// IPv4 cut to /24, IPv6 to /56.
    Truncate,
    /// A keyed hash (HMAC-SHA256 with this appliance's own key, never the platform's
    /// secret): stable per client, not reversible by the platform.
    Hash,
}

impl ClientIp {
    /// Parse the config spelling.
    pub fn parse(s: &str) -> Option<ClientIp> {
        match s {
            "keep" | "full" => Some(ClientIp::Keep),
            "truncate" => Some(ClientIp::Truncate),
            "hash" => Some(ClientIp::Hash),
            _ => None,
        }
    }

    /// The client field for `ip`.
    pub fn apply(self, ip: IpAddr, secret: &[u8]) -> String {
        match self {
            ClientIp::Keep => ip.to_string(),
            ClientIp::Truncate => match ip {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    format!("{}.{}.{}.0/24", o[0], o[1], o[2])
                }
                IpAddr::V6(a) => {
                    let v = u128::from(a) & !((1u128 << 72) - 1);
                    format!("{}/56", std::net::Ipv6Addr::from(v))
                }
            },
            ClientIp::Hash => format!("hmac:{}", hex::encode(&keyed_hash(ip, secret)[..16])),
        }
    }
}

/// HMAC-SHA256 of the address's text under `key`: what `client_ip = "hash"` shows
/// of a client, in the reports and in dnstap.
pub fn keyed_hash(ip: IpAddr, key: &[u8]) -> [u8; 32] {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    m.update(ip.to_string().as_bytes());
    m.finalize().into_bytes().into()
}

/// The appliance's own key for hashing client addresses: read from `path` (hex), or
/// made there on first use (32 random bytes, mode 0600) when the file is missing.
pub fn hash_key(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .filter(|k| k.len() >= 16)
            .ok_or_else(|| std::io::Error::other("not a hex key of at least 16 bytes")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = crate::random::bytes(32)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(f) => f,
                // Made a moment ago by the other user of the key (reporter, dnstap).
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return hash_key(path),
                Err(e) => return Err(e),
            };
            f.write_all(format!("{}\n", hex::encode(&key)).as_bytes())?;
            f.sync_all()?;
            tracing::info!(file = %path.display(), "made this appliance's key for hashing client addresses");
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// [`hash_key`], or, when it cannot be read or made, a key for this run only (never
/// the platform's secret): hashes then change at the next start but stay
/// irreversible. The failure is logged.
pub fn hash_key_or_ephemeral(path: &std::path::Path) -> std::sync::Arc<[u8]> {
    match hash_key(path) {
        Ok(k) => k.into(),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot read or make the client-address hashing key (report.hash_key_file); using a key for this run only");
            crate::random::bytes(32)
                .unwrap_or_else(|_| ulid::Ulid::generate().to_bytes().to_vec())
                .into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn privacy_switches() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let v6: IpAddr = "fd00:1:2:3456:789a::1".parse().unwrap();
        assert_eq!(ClientIp::Keep.apply(v4, b"k"), "10.1.2.3");
        assert_eq!(ClientIp::Truncate.apply(v4, b"k"), "10.1.2.0/24");
        assert_eq!(ClientIp::Truncate.apply(v6, b"k"), "fd00:1:2:3400::/56");
        let h1 = ClientIp::Hash.apply(v4, b"secret-1");
        assert!(h1.starts_with("hmac:") && h1.len() == 5 + 32);
        assert_eq!(h1, ClientIp::Hash.apply(v4, b"secret-1"), "stable");
        assert_ne!(h1, ClientIp::Hash.apply(v4, b"secret-2"), "keyed");
        assert!(!h1.contains("10.1.2"));
    }

    #[test]
    fn the_hashing_key_is_made_once_private_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("state/report-hash.key");
        let k1 = hash_key(&path).unwrap();
        assert_eq!(k1.len(), 32);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(hash_key(&path).unwrap(), k1, "read back, not made again");
        let other = d.path().join("other.key");
        assert_ne!(hash_key(&other).unwrap(), k1, "random");
        std::fs::write(&path, "not hex").unwrap();
        assert!(hash_key(&path).is_err());
    }
}
