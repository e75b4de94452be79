//! The appliance side of the feed: poll the manifest with a conditional GET, and when
//! it changed, check it ([`super::manifest`]), fetch and check the list it names, put
//! it at `feed/current.fst` in the state directory, and reload through the loader's
//! precompiled-list path (copy, verify, rename, swap). When the manifest names a
//! chain of deltas over a base the appliance already serves, only the deltas it
//! lacks are fetched (each signed and checked), kept in `feed/deltas/`, and laid
//! over the mapped base without copying or compiling it. Anything refused is logged
//! with its reason and counted; the serving list stays. The serial, base and ETag
//! of what serves are kept in `feed/state.json`, so a restart neither refetches nor
//! accepts an older serial.

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
    /// The serial of the base list file (`current.fst`).
    #[serde(default)]
    pub base_serial: u64,
    /// Its sha256.
    #[serde(default)]
    pub base_sha256: String,
    /// The serials of the deltas laid over it, in order (files in `deltas/`).
    #[serde(default)]
    pub deltas: Vec<u64>,
}

/// The verified list serving, in `dir`.
pub fn current(dir: &Path) -> PathBuf {
    dir.join("current.fst")
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Where the delta of `serial` is kept.
fn delta_path(dir: &Path, serial: u64) -> PathBuf {
    dir.join("deltas").join(format!("{serial}.json"))
}

/// The delta files of `state`, when every one of them is there.
fn delta_paths(dir: &Path, state: &State) -> Option<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = state.deltas.iter().map(|&s| delta_path(dir, s)).collect();
    paths.iter().all(|p| p.is_file()).then_some(paths)
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
            b.deltas = delta_paths(&f.dir, &load_state(&f.dir)).unwrap_or_default();
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
        let agent = crate::http::agent(
            cfg.tls_ca.as_deref(),
            cfg.proxy.as_deref(),
            Duration::from_secs(600),
        )
        .map_err(|e| format!("[feed]: {e}"))?;
        let mut state = load_state(&cfg.dir);
        if delta_paths(&cfg.dir, &state).is_none() {
            // A delta file is gone: what serves is the base alone (see
            // `blocklist_config`), so take the chain again.
            tracing::warn!(dir = %cfg.dir.display(), "feed: a delta file is missing; serving the base list and fetching the deltas again");
            state.deltas.clear();
            state.serial = state.base_serial;
            state.etag = None;
        }
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
            let jitter = 0.9 + 0.2 * crate::random::unit();
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
        match crate::http::get(&self.agent, url, limit, etag, None).map_err(PollError)? {
            crate::http::Got::Unchanged => Ok(None),
            crate::http::Got::Body(b, etag, _) => Ok(Some((b, etag))),
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
        let total = m.bytes + m.deltas.iter().map(|d| d.bytes).sum::<u64>();
        if total > self.cfg.max_bytes {
            return Ok(Polled::Refused(Refusal::Checksum(format!(
                "{total} bytes, over feed.max_bytes ({})",
                self.cfg.max_bytes
            ))));
        }
        // The base this appliance serves, and the deltas of the chain it has.
        let have_base = self.state.serial > 0
            && self.state.base_sha256 == m.sha256
            && current(&self.cfg.dir).is_file();
        let kept = if have_base {
            self.state
                .deltas
                .iter()
                .zip(&m.deltas)
                .take_while(|(a, b)| **a == b.serial)
                .count()
        } else {
            0
        };
        let base = if have_base {
            None
        } else {
            match self.fetch_base(&m)? {
                Ok(file) => Some(file),
                Err(r) => return Ok(Polled::Refused(r)),
            }
        };
        for d in &m.deltas[kept..] {
            if let Err(r) = self.fetch_delta(&m, d)? {
                return Ok(Polled::Refused(r));
            }
        }
        let deltas: Vec<PathBuf> = m
            .deltas
            .iter()
            .map(|d| delta_path(&self.cfg.dir, d.serial))
            .collect();
        if let Err(r) = self.serve(base.as_deref(), deltas) {
            return Ok(Polled::Refused(r));
        }
        self.state = State {
            serial: m.serial,
            etag,
            expires_unix: m.expires_unix,
            base_serial: m.base(),
            base_sha256: m.sha256.clone(),
            deltas: m.deltas.iter().map(|d| d.serial).collect(),
        };
        self.save()?;
        self.prune_deltas();
        self.metrics.serial.set(m.serial as i64);
        self.metrics.expires.set(m.expires_unix as i64);
        self.metrics.expired.set(0);
        Ok(Polled::Applied(m))
    }

    /// Fetch and check the base list file `m` names.
    fn fetch_base(&self, m: &Manifest) -> Result<Result<Vec<u8>, Refusal>, PollError> {
        let file_url = self.beside(&m.file);
        let (file, _) = self
            .get(&file_url, m.bytes, None)?
            .ok_or_else(|| PollError(format!("GET {file_url}: 304 without a condition")))?;
        let file_sig = self.text(&format!("{file_url}.minisig"))?;
        Ok(manifest::check_file(&self.key, m, &file, &file_sig).map(|()| file))
    }

    /// Fetch and check the delta `d` of `m`'s chain, and keep it in `deltas/`.
    fn fetch_delta(
        &self,
        m: &Manifest,
        d: &manifest::DeltaRef,
    ) -> Result<Result<(), Refusal>, PollError> {
        let url = self.beside(&d.file);
        let (file, _) = self
            .get(&url, d.bytes, None)?
            .ok_or_else(|| PollError(format!("GET {url}: 304 without a condition")))?;
        let sig = self.text(&format!("{url}.minisig"))?;
        if let Err(r) = manifest::check_delta(&self.key, m, d, &file, &sig) {
            return Ok(Err(r));
        }
        let path = delta_path(&self.cfg.dir, d.serial);
        let err = |e: std::io::Error| PollError(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(path.parent().unwrap_or(&self.cfg.dir)).map_err(err)?;
        write_synced(&path.with_extension("tmp"), &file).map_err(err)?;
        std::fs::rename(path.with_extension("tmp"), &path).map_err(err)?;
        Ok(Ok(()))
    }

    /// Serve the verified `base` (when new) with `deltas` over it. A new base goes
    /// through the loader's precompiled path (copied, fully checked, swapped); new
    /// deltas over the base already serving are laid over its mapping.
    fn serve(&self, base: Option<&[u8]>, deltas: Vec<PathBuf>) -> Result<(), Refusal> {
        let load = |e: String| Refusal::Load(e);
        if let Some(file) = base {
            self.install(file).map_err(|e| load(e.0))?;
        }
        let mut b = self.configured.clone();
        b.compiled = Some(current(&self.cfg.dir));
        b.deltas = deltas.clone();
        self.loader.set_config(b);
        if base.is_none() {
            let parsed =
                crate::blocklist::loader::read_deltas(&deltas).map_err(|e| load(e.to_string()))?;
            let sum = crate::blocklist::set::header_fst_sum(&current(&self.cfg.dir))
                .map_err(|e| load(e.to_string()))?;
            match self.loader.apply_deltas(&parsed, sum) {
                Ok(_) => return Ok(()),
                // Not serving that base (a restart without it, say): load it whole.
                Err(e) => tracing::info!(error = %e, "feed: loading the base with its deltas"),
            }
        }
        // The first feed list replaces the local lists: the drop guard compares feed
        // lists with each other, not with the sample lists it replaces.
        self.loader
            .reload(self.state.serial == 0)
            .map(|_| ())
            .map_err(|e| load(e.to_string()))
    }

    /// Remove the delta files the state no longer names.
    fn prune_deltas(&self) {
        let Ok(entries) = std::fs::read_dir(self.cfg.dir.join("deltas")) else {
            return;
        };
        let keep: Vec<PathBuf> = self
            .state
            .deltas
            .iter()
            .map(|&s| delta_path(&self.cfg.dir, s))
            .collect();
        for e in entries.flatten() {
            if !keep.contains(&e.path()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Put a verified list at `current.fst` (temporary file, fsync, rename).
    fn install(&self, file: &[u8]) -> Result<(), PollError> {
        let err = |e: std::io::Error| PollError(format!("{}: {e}", self.cfg.dir.display()));
        std::fs::create_dir_all(&self.cfg.dir).map_err(err)?;
        let tmp = self.cfg.dir.join(".incoming.fst");
        write_synced(&tmp, file).map_err(err)?;
        std::fs::rename(&tmp, current(&self.cfg.dir)).map_err(err)
    }

    fn save(&self) -> Result<(), PollError> {
        let err = |e: std::io::Error| PollError(format!("{}: {e}", self.cfg.dir.display()));
        let tmp = self.cfg.dir.join(".state.json");
        std::fs::write(&tmp, serde_json::to_vec(&self.state).unwrap_or_default()).map_err(err)?;
        std::fs::rename(&tmp, state_path(&self.cfg.dir)).map_err(err)
    }
}

/// Write `data` to `path` and fsync it.
fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}
