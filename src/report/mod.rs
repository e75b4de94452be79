//! Reporting hits to the district platform: events, the on-disk spool, delivery.

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
    /// HMAC key (also for hashing addresses).
    pub secret: String,
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
