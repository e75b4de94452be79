//! Reporting hits to the district platform: events, their pipeline through the
//! outbox ([`crate::outbox`]), delivery.

pub mod event;
pub mod pipeline;
pub mod sender;

use std::path::PathBuf;
use std::time::Duration;

use crate::privacy::ClientIp;

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

impl ReportConfig {
    /// Where events the platform refused for good are kept.
    pub fn dead_letter(&self) -> PathBuf {
        self.spool_dir.join("dead-letter.jsonl")
    }
}
