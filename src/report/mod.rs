//! Reporting hits to the district platform: events, the on-disk spool, delivery.

pub mod backlog;
pub mod event;
pub mod pipeline;
pub mod sender;
pub mod spool;

use std::path::PathBuf;
use std::time::Duration;

use event::ClientIp;

/// `[report]`, validated: where hits go and how they wait on disk until they do.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Platform URL (http:// or https://); `None`: reporting is off.
    pub url: Option<String>,
    /// PEM CA file for an https:// platform with a private CA.
    pub ca: Option<PathBuf>,
    /// Spool directory.
    pub spool_dir: PathBuf,
    /// Spool cap.
    pub spool_max_bytes: u64,
    /// Events per POST.
    pub batch_events: usize,
    /// Uncompressed bytes per POST.
    pub batch_bytes: usize,
    /// Same client and rule within this window → one event with a count.
    pub dedup_window: Duration,
    /// Appliance id.
    pub appliance: String,
    /// Client address handling.
    pub client_ip: ClientIp,
    /// HMAC key for signing requests (shared with the platform).
    pub secret: String,
    /// This appliance's own key for `client_ip = "hash"`, never shared: keyed with
    /// the platform's secret, the platform could reverse the hashes by trying every
    /// address of the district's subnets.
    pub hash_key_file: PathBuf,
    /// fsync each spool batch.
    pub fsync: bool,
    /// Longest wait between retries.
    pub max_backoff: Duration,
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
                .unwrap_or_else(|_| event::new_id(std::time::SystemTime::now()).into_bytes())
                .into()
        }
    }
}

impl ReportConfig {
    /// Where events the platform refused for good are kept.
    pub fn dead_letter(&self) -> PathBuf {
        self.spool_dir.join("dead-letter.jsonl")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
