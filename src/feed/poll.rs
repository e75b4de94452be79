//! The appliance side of the feed: poll the manifest with a conditional GET, and when
//! it changed, check it ([`super::manifest`]), fetch and check the list it names, put
//! it at `feed/current.fst` in the state directory, and reload through the loader's
//! precompiled-list path (copy, verify, rename, swap). Anything refused is logged
//! with its reason and counted; the serving list stays. The serial and ETag of what
//! serves are kept in `feed/state.json`, so a restart neither refetches nor accepts
//! an older serial.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::manifest::{self, Manifest, Refusal};
use crate::blocklist::Loader;
use crate::blocklist::loader::BlocklistConfig;
use crate::config::FeedConfig;
use crate::metrics::FeedMetrics;

/// What the appliance keeps between polls and restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Serial of the list serving (0: none).
    pub serial: u64,
    /// The manifest's ETag when it was taken.
    pub etag: Option<String>,
    /// When that list expires.
    pub expires_unix: u64,
}

/// The verified list serving, in `dir`.
pub fn current(dir: &Path) -> PathBuf {
    dir.join("current.fst")
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// The state in `dir` (default when there is none or it does not parse).
pub fn load_state(dir: &Path) -> State {
    std::fs::read(state_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The list settings with the feed: its verified list, once there is one, instead
/// of the configured directories.
pub fn blocklist_config(
    feed: Option<&FeedConfig>,
    configured: &BlocklistConfig,
) -> BlocklistConfig {
    let mut b = configured.clone();
    if let Some(f) = feed {
        let cur = current(&f.dir);
        if cur.is_file() {
            b.compiled = Some(cur);
        }
    }
    b
}

/// A body and its ETag.
type Fetched = (Vec<u8>, Option<String>);

/// One poll's outcome, as counted.
#[derive(Debug)]
enum Polled {
    Unchanged,
    Applied(Manifest),
    Refused(Refusal),
}

/// A poll that did not reach a verdict (network, HTTP status, disk).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PollError(String);

/// A number in [0, 1) from the kernel's random bytes (0.5 if they cannot be read).
fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    // SAFETY: the pointer and length describe `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 8 {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The feed follower.
pub struct Follower {
    cfg: FeedConfig,
    key: minisign_verify::PublicKey,
    agent: ureq::Agent,
    loader: Arc<Loader>,
    configured: BlocklistConfig,
    metrics: FeedMetrics,
    state: State,
    /// The ETag of the last manifest judged (taken or refused): asked with
    /// If-None-Match, so a refused manifest is not fetched and refused again.
    judged: Option<String>,
}

impl Follower {
    /// A follower of `cfg`'s feed that reloads through `loader`; `configured` is the
    /// `[blocklist]` the feed's list replaces.
    pub fn new(
        cfg: FeedConfig,
        loader: Arc<Loader>,
        configured: BlocklistConfig,
        metrics: FeedMetrics,
    ) -> Result<Follower, String> {
        let key = minisign_verify::PublicKey::from_base64(&cfg.public_key)
            .map_err(|e| format!("feed.public_key: {e}"))?;
        let agent = super::http::agent(
            cfg.tls_ca.as_deref(),
            cfg.proxy.as_deref(),
            Duration::from_secs(600),
        )
        .map_err(|e| format!("[feed]: {e}"))?;
        let state = load_state(&cfg.dir);
        metrics.serial.set(state.serial as i64);
        metrics.expires.set(state.expires_unix as i64);
        Ok(Follower {
            cfg,
            key,
            agent,
            loader,
            configured,
            metrics,
            judged: state.etag.clone(),
            state,
        })
    }

    /// Take a reloaded `[blocklist]` (what the feed's list replaces).
    pub fn set_configured(&mut self, b: BlocklistConfig) {
        self.configured = b;
    }

    /// Poll until `stop`, every `poll` with ±10 % jitter (appliances spread out).
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Acquire) {
            self.poll_once();
            let jitter = 0.9 + 0.2 * random_unit();
            let mut left = self.cfg.poll.mul_f64(jitter);
            while !left.is_zero() && !stop.load(Ordering::Acquire) {
                let step = left.min(Duration::from_millis(100));
                std::thread::sleep(step);
                left -= step;
            }
        }
    }

    /// One poll: fetch, check, apply; logged and counted.
    pub fn poll_once(&mut self) {
        let now = unix_now();
        self.metrics.expired.set(i64::from(
            self.state.serial > 0 && self.state.expires_unix <= now,
        ));
        let label = match self.poll() {
            Ok(Polled::Unchanged) => "unchanged",
            Ok(Polled::Applied(m)) => {
                tracing::info!(serial = m.serial, entries = m.entries, expires_at = %m.expires_at, "feed: new list serving");
                "applied"
            }
            Ok(Polled::Refused(r)) => {
                tracing::error!(reason = r.label(), error = %r, "feed: update refused; the serving list stays");
                match r.label() {
                    "signature" => "refused_signature",
                    "serial" => "refused_serial",
                    "expired" => "refused_expired",
                    "checksum" => "refused_checksum",
                    "malformed" => "refused_malformed",
                    _ => "refused_load",
                }
            }
            Err(e) => {
                tracing::warn!(url = %self.cfg.url, error = %e, "feed: poll failed; the serving list stays");
                "error"
            }
        };
        self.metrics.polls.with_label_values(&[label]).inc();
        if matches!(label, "applied" | "unchanged") {
            self.metrics.last_success.set(now as i64);
        }
    }

    fn get(&self, url: &str, limit: u64, etag: Option<&str>) -> Result<Option<Fetched>, PollError> {
        match super::http::get(&self.agent, url, limit, etag, None).map_err(PollError)? {
            super::http::Got::Unchanged => Ok(None),
            super::http::Got::Body(b, etag, _) => Ok(Some((b, etag))),
        }
    }

    fn text(&self, url: &str) -> Result<String, PollError> {
        let (b, _) = self
            .get(url, 4096, None)?
            .ok_or_else(|| PollError(format!("GET {url}: 304 without a condition")))?;
        String::from_utf8(b).map_err(|_| PollError(format!("GET {url}: not text")))
    }

    /// A URL next to the manifest's.
    fn beside(&self, name: &str) -> String {
        match self.cfg.url.rfind('/') {
            Some(i) => format!("{}/{name}", &self.cfg.url[..i]),
            None => name.to_string(),
        }
    }

    fn poll(&mut self) -> Result<Polled, PollError> {
        let Some((body, etag)) = self.get(&self.cfg.url, 64 * 1024, self.judged.as_deref())? else {
            return Ok(Polled::Unchanged);
        };
        let verdict = self.judge(&body, etag.clone());
        if verdict.is_ok() {
            self.judged = etag;
        }
        verdict
    }

    /// Check the manifest `body` and, when it is good, fetch, check and serve its list.
    fn judge(&mut self, body: &[u8], etag: Option<String>) -> Result<Polled, PollError> {
        let sig = self.text(&format!("{}.minisig", self.cfg.url))?;
        let checked = manifest::check(&self.key, body, &sig, self.state.serial, unix_now());
        let m = match checked {
            Ok(m) => m,
            // The same manifest again (an ETag the server changed): nothing to do.
            Err(Refusal::Serial { got, serving }) if got == serving => {
                self.state.etag = etag;
                return Ok(Polled::Unchanged);
            }
            Err(r) => return Ok(Polled::Refused(r)),
        };
        if m.bytes > self.cfg.max_bytes {
            return Ok(Polled::Refused(Refusal::Checksum(format!(
                "{} bytes, over feed.max_bytes ({})",
                m.bytes, self.cfg.max_bytes
            ))));
        }
        let file_url = self.beside(&m.file);
        let (file, _) = self
            .get(&file_url, m.bytes, None)?
            .ok_or_else(|| PollError(format!("GET {file_url}: 304 without a condition")))?;
        let file_sig = self.text(&format!("{file_url}.minisig"))?;
        if let Err(r) = manifest::check_file(&self.key, &m, &file, &file_sig) {
            return Ok(Polled::Refused(r));
        }
        self.install(&file)?;
        // Through the loader's precompiled path: copied, fully checked, swapped.
        let mut b = self.configured.clone();
        b.compiled = Some(current(&self.cfg.dir));
        self.loader.set_config(b);
        // The first feed list replaces the local lists: the drop guard compares feed
        // lists with each other, not with the sample lists it replaces.
        if let Err(e) = self.loader.reload(self.state.serial == 0) {
            return Ok(Polled::Refused(Refusal::Load(e.to_string())));
        }
        self.state = State {
            serial: m.serial,
            etag,
            expires_unix: m.expires_unix,
        };
        self.save()?;
        self.metrics.serial.set(m.serial as i64);
        self.metrics.expires.set(m.expires_unix as i64);
        self.metrics.expired.set(0);
        Ok(Polled::Applied(m))
    }

    /// Put a verified list at `current.fst` (temporary file, fsync, rename).
    fn install(&self, file: &[u8]) -> Result<(), PollError> {
        let err = |e: std::io::Error| PollError(format!("{}: {e}", self.cfg.dir.display()));
        std::fs::create_dir_all(&self.cfg.dir).map_err(err)?;
        let tmp = self.cfg.dir.join(".incoming.fst");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            f.write_all(file).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, current(&self.cfg.dir)).map_err(err)
    }

    fn save(&self) -> Result<(), PollError> {
        let err = |e: std::io::Error| PollError(format!("{}: {e}", self.cfg.dir.display()));
        let tmp = self.cfg.dir.join(".state.json");
        std::fs::write(&tmp, serde_json::to_vec(&self.state).unwrap_or_default()).map_err(err)?;
        std::fs::rename(&tmp, state_path(&self.cfg.dir)).map_err(err)
    }
}
