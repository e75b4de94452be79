//! `[[sources]]`: public lists fetched by URL, as Pi-hole's gravity and AdGuard Home's
//! filters do. Each source is fetched every `refresh` (the first fetch staggered by
//! up to a tenth of it, so appliances do not all ask at once) with a conditional GET,
//! capped in bytes and time; a good body replaces `state_dir/sources/NAME.txt` by
//! rename, and the list watcher recompiles, through the same guardrails as any list
//! file. A failing source keeps its last good copy, which also serves after a
//! restart with no network.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use prometheus::{IntCounterVec, IntGaugeVec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::SourceConfig;
use crate::http::{self, Got};

/// Longest one fetch may take.
const FETCH_TIME: Duration = Duration::from_secs(120);

/// What is kept next to a source's copy: its validators for the next GET.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Validators {
    etag: Option<String>,
    modified: Option<String>,
}

/// How a fetch ended (the `outcome` label).
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// A new copy is in place.
    Updated,
    /// The server said 304, or sent the same bytes.
    Unchanged,
    /// Refused: over `max_bytes`, or not the pinned sha256.
    Refused(String),
    /// The server could not be reached or answered an error.
    Failed(String),
}

impl Fetched {
    fn label(&self) -> &'static str {
        match self {
            Fetched::Updated => "updated",
            Fetched::Unchanged => "unchanged",
            Fetched::Refused(_) => "refused",
            Fetched::Failed(_) => "error",
        }
    }
}

/// The metrics of the sources (labelled by source name, from the config).
#[derive(Clone)]
pub struct SourceMetrics {
    /// Fetches by source and outcome.
    pub fetches: IntCounterVec,
    /// Last fetch that reached the source, by source.
    pub last_success: IntGaugeVec,
}

/// One source and its client.
struct Source {
    cfg: SourceConfig,
    agent: ureq::Agent,
    next: Instant,
}

/// A dot file, which the list reader skips.
fn meta_path(cfg: &SourceConfig) -> PathBuf {
    cfg.file
        .with_file_name(format!(".{}.validators.json", cfg.name))
}

/// Fetch `cfg` once with `agent`, and put a good body in place.
fn fetch(cfg: &SourceConfig, agent: &ureq::Agent) -> Fetched {
    let v: Validators = std::fs::read(meta_path(cfg))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    // Without a copy on disk the validators are worthless.
    let have = cfg.file.is_file();
    let got = http::get(
        agent,
        &cfg.url,
        cfg.max_bytes,
        v.etag.as_deref().filter(|_| have),
        v.modified.as_deref().filter(|_| have),
    );
    let (body, etag, modified) = match got {
        Ok(Got::Unchanged) => return Fetched::Unchanged,
        Ok(Got::Body(b, e, m)) => (b, e, m),
        Err(e) if e.contains("longer than") => return Fetched::Refused(e),
        Err(e) => return Fetched::Failed(e),
    };
    if let Some(want) = &cfg.sha256 {
        let got = hex::encode(Sha256::digest(&body));
        if &got != want {
            return Fetched::Refused(format!("sha256 {got}, the config pins {want}"));
        }
    }
    if std::fs::read(&cfg.file).is_ok_and(|old| old == body) {
        return Fetched::Unchanged;
    }
    if let Err(e) = install(cfg, &body, &Validators { etag, modified }) {
        return Fetched::Failed(format!("{}: {e}", cfg.file.display()));
    }
    Fetched::Updated
}

/// Write the copy (temporary file, fsync, rename) and its validators.
fn install(cfg: &SourceConfig, body: &[u8], v: &Validators) -> std::io::Result<()> {
    use std::io::Write;
    let dir = cfg.file.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    // A dot file: the list reader skips it while it is being written.
    let tmp = dir.join(format!(".{}.tmp", cfg.name));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &cfg.file)?;
    std::fs::write(meta_path(cfg), serde_json::to_vec(v).unwrap_or_default())
}

/// Fetch every source on its schedule until `stop`, on the calling thread.
pub fn run(sources: Vec<SourceConfig>, metrics: SourceMetrics, stop: Arc<AtomicBool>) {
    let now = Instant::now();
    let mut all: Vec<Source> = Vec::new();
    for cfg in sources {
        match http::agent(cfg.tls_ca.as_deref(), None, FETCH_TIME) {
            Ok(agent) => all.push(Source {
                next: now
                    + cfg
                        .refresh
                        .mul_f64(0.1 * crate::random::unit())
                        .min(Duration::from_secs(60)),
                agent,
                cfg,
            }),
            Err(e) => tracing::error!(source = %cfg.name, error = %e, "source not fetched"),
        }
    }
    while !stop.load(Ordering::Acquire) && !all.is_empty() {
        let now = Instant::now();
        for s in all.iter_mut().filter(|s| s.next <= now) {
            let outcome = fetch(&s.cfg, &s.agent);
            match &outcome {
                Fetched::Updated => {
                    tracing::info!(source = %s.cfg.name, "source updated; the lists recompile")
                }
                Fetched::Unchanged => tracing::debug!(source = %s.cfg.name, "source unchanged"),
                Fetched::Refused(why) | Fetched::Failed(why) => {
                    tracing::warn!(source = %s.cfg.name, url = %s.cfg.url, error = %why, "source not updated; its last good copy keeps serving")
                }
            }
            metrics
                .fetches
                .with_label_values(&[s.cfg.name.as_str(), outcome.label()])
                .inc();
            if matches!(outcome, Fetched::Updated | Fetched::Unchanged) {
                let unix = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                metrics
                    .last_success
                    .with_label_values(&[s.cfg.name.as_str()])
                    .set(unix);
            }
            s.next = Instant::now() + s.cfg.refresh;
        }
        let wake = all.iter().map(|s| s.next).min().unwrap_or(now);
        let sleep = wake
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        std::thread::sleep(sleep.max(Duration::from_millis(10)));
    }
}
