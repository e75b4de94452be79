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
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::manifest::{self, Manifest, Refusal};
use crate::blocklist::Loader;
use crate::blocklist::loader::BlocklistConfig;
use crate::config::FeedConfig;
use crate::metrics::FeedMetrics;
use crate::wallclock::unix_now;

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

/// The signed manifest of the list installed (or being installed), kept beside
/// `current.fst` with its signature: the serial floor at start rests on what the
/// district signed, not on `state.json` alone (deleting that file once let an older
/// signed manifest in).
fn accepted_path(dir: &Path) -> PathBuf {
    dir.join("accepted.json")
}

/// [`accepted_path`]'s content: the manifest as signed, and its signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Accepted {
    manifest: String,
    sig: String,
}

/// The kept manifest, when its signature verifies with `key`.
fn load_accepted(dir: &Path, key: &minisign_verify::PublicKey) -> Option<Manifest> {
    let a: Accepted = serde_json::from_slice(&std::fs::read(accepted_path(dir)).ok()?).ok()?;
    manifest::verify(key, a.manifest.as_bytes(), &a.sig, "the kept manifest").ok()?;
    serde_json::from_str(&a.manifest).ok()
}

/// The state in `dir` (default when there is none or it does not parse).
pub fn load_state(dir: &Path) -> State {
    std::fs::read(state_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// What the feed directory holds, checked at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// What serves: the base, by its sha256, and the deltas over it (serials).
    pub state: State,
    /// No manifest below this serial is taken: the highest of `state.json`'s and
    /// the kept signed manifest's.
    pub floor: u64,
}

/// The sha256 of a file, read in pieces (a list of millions of names is not read
/// into memory whole).
fn file_sha256(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(hex::encode(h.finalize())),
            n => h.update(&buf[..n]),
        }
    }
}

/// What serves from `dir`, checked against the files themselves: `current.fst` is
/// the base whose sha256 the kept manifest (or else `state.json`) names, and each
/// delta counts only while it stands on that very base and continues the chain. A
/// file gone or changed leaves the serial lower (so the feed is taken again), never
/// the floor.
pub fn installed(dir: &Path, key: Option<&minisign_verify::PublicKey>) -> Installed {
    let state = load_state(dir);
    let accepted = key.and_then(|k| load_accepted(dir, k));
    let floor = state.serial.max(accepted.as_ref().map_or(0, |m| m.serial));
    let base_sha = file_sha256(&current(dir)).ok();
    let (base_serial, chain, expires) = match (&base_sha, &accepted) {
        (Some(sha), Some(m)) if *sha == m.sha256 => (
            m.base(),
            m.deltas.iter().map(|d| d.serial).collect(),
            m.expires_unix,
        ),
        (Some(sha), _) if *sha == state.base_sha256 => {
            (state.base_serial, state.deltas.clone(), state.expires_unix)
        }
        // No base, or one nobody names: nothing known serves.
        _ => {
            return Installed {
                state: State::default(),
                floor,
            };
        }
    };
    let base_sha = base_sha.unwrap_or_default();
    let mut at = base_serial;
    let mut deltas = Vec::new();
    for serial in chain {
        let bound = std::fs::read(delta_path(dir, serial))
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::blocklist::delta::Delta>(&b).ok())
            .is_some_and(|d| {
                d.serial == serial
                    && d.from_serial == at
                    && d.base_serial == base_serial
                    && d.base_sha256 == base_sha
            });
        if !bound {
            tracing::warn!(dir = %dir.display(), delta = serial, "feed: a delta file is missing or does not stand on the base; serving without it and fetching the chain again");
            break;
        }
        deltas.push(serial);
        at = serial;
    }
    let whole = at == state.serial && state.base_sha256 == base_sha;
    Installed {
        state: State {
            serial: at,
            etag: if whole { state.etag } else { None },
            expires_unix: expires,
            base_serial,
            base_sha256: base_sha,
            deltas,
        },
        floor,
    }
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
            let key = minisign_verify::PublicKey::from_base64(&f.public_key).ok();
            let inst = installed(&f.dir, key.as_ref());
            b.compiled = Some(cur);
            b.deltas = inst
                .state
                .deltas
                .iter()
                .map(|&s| delta_path(&f.dir, s))
                .collect();
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

/// The feed follower.
pub struct Follower {
    cfg: FeedConfig,
    key: minisign_verify::PublicKey,
    agent: ureq::Agent,
    loader: Arc<Loader>,
    configured: BlocklistConfig,
    metrics: FeedMetrics,
    state: State,
    /// No manifest below this serial is taken (see [`Installed::floor`]).
    floor: u64,
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
        let Installed { state, floor } = installed(&cfg.dir, Some(&key));
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
            floor,
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
            // Below what was once taken: a rollback, whatever serves now.
            Ok(m) if m.serial < self.floor => {
                return Ok(Polled::Refused(Refusal::Serial {
                    got: m.serial,
                    serving: self.floor,
                }));
            }
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
        // The signed manifest first: from here on, nothing older is taken, even if
        // the process dies before the list is in place or `state.json` is lost.
        let accepted = Accepted {
            manifest: String::from_utf8_lossy(body).into_owned(),
            sig,
        };
        write_accepted(&self.cfg.dir, &accepted)
            .map_err(|e| PollError(format!("{}: {e}", self.cfg.dir.display())))?;
        self.floor = self.floor.max(m.serial);
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
        replace_synced(&path, &file).map_err(err)?;
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

    /// Put a verified list at `current.fst` (temporary file, fsync, rename, fsync of
    /// the directory).
    fn install(&self, file: &[u8]) -> Result<(), PollError> {
        install_base(&self.cfg.dir, file)
            .map_err(|e| PollError(format!("{}: {e}", self.cfg.dir.display())))
    }

    fn save(&self) -> Result<(), PollError> {
        save_state(&self.cfg.dir, &self.state)
            .map_err(|e| PollError(format!("{}: {e}", self.cfg.dir.display())))
    }
}

// The steps of an install, in order, each durable before the next: the deltas, the
// signed manifest (the floor), the base, the state. A crash between any two leaves
// the old list or the new one serving, and the floor never below the old serial
// (`installed` reads it back; see the tests).

fn write_accepted(dir: &Path, a: &Accepted) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    replace_synced(
        &accepted_path(dir),
        &serde_json::to_vec(a).unwrap_or_default(),
    )
}

fn install_base(dir: &Path, file: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    replace_synced(&current(dir), file)
}

fn save_state(dir: &Path, state: &State) -> std::io::Result<()> {
    replace_synced(
        &state_path(dir),
        &serde_json::to_vec(state).unwrap_or_default(),
    )
}

/// Replace `path` with `data` durably: a temporary file beside it, fsynced, renamed
/// over it, and the directory fsynced so that the rename itself survives a crash.
fn replace_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::delta::{Delta, Tables};
    use crate::feed::manifest::test_keys::{Keys, keys, sign};

    fn sha(b: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(b))
    }

    /// A signed manifest of `base` at `serial` (with `deltas` over it, if any).
    fn accepted(k: &Keys, base: &[u8], base_serial: u64, deltas: &[u64]) -> Accepted {
        let mut from = base_serial;
        let refs: Vec<manifest::DeltaRef> = deltas
            .iter()
            .map(|&s| {
                let r = manifest::DeltaRef {
                    serial: s,
                    from_serial: from,
                    file: format!("{s}.json"),
                    bytes: 0,
                    sha256: String::new(),
                    changes: 0,
                };
                from = s;
                r
            })
            .collect();
        let m = Manifest {
            format: manifest::FORMAT,
            serial: from,
            built_at: "2026-12-06T00:00:00Z".into(),
            expires_unix: 4_000_000_000,
            expires_at: "later".into(),
            file: "list.fst".into(),
            bytes: base.len() as u64,
            sha256: sha(base),
            base_serial: (!deltas.is_empty()).then_some(base_serial),
            deltas: refs,
            entries: 1,
            block_entries: 1,
            allow_entries: 0,
        };
        let text = serde_json::to_string(&m).unwrap();
        let sig = sign(k, text.as_bytes());
        Accepted {
            manifest: text,
            sig,
        }
    }

    fn state_of(base: &[u8], serial: u64) -> State {
        State {
            serial,
            etag: None,
            expires_unix: 4_000_000_000,
            base_serial: serial,
            base_sha256: sha(base),
            deltas: vec![],
        }
    }

    /// A full install of `base` at `serial`, or its first `steps` steps.
    fn install(k: &Keys, dir: &Path, base: &[u8], serial: u64, steps: usize) {
        let all: [&dyn Fn(); 3] = [
            &|| write_accepted(dir, &accepted(k, base, serial, &[])).unwrap(),
            &|| install_base(dir, base).unwrap(),
            &|| save_state(dir, &state_of(base, serial)).unwrap(),
        ];
        for step in all.iter().take(steps) {
            step();
        }
    }

    #[test]
    fn an_install_cut_short_at_any_step_leaves_the_old_list_or_the_new_one() {
        let k = keys();
        let (old, new) = (
            b"list at serial 7".as_slice(),
            b"list at serial 9".as_slice(),
        );
        for steps in 0..=3 {
            let dir = tempfile::tempdir().unwrap();
            install(&k, dir.path(), old, 7, 3);
            install(&k, dir.path(), new, 9, steps);
            let inst = installed(dir.path(), Some(&k.pk));
            let serving = (inst.state.serial, inst.state.base_sha256.clone());
            assert!(
                serving == (7, sha(old)) || serving == (9, sha(new)),
                "after {steps} steps: {serving:?}"
            );
            // Once the signed manifest is down, nothing older than it is taken.
            assert_eq!(inst.floor, if steps == 0 { 7 } else { 9 }, "{steps}");
            // Losing state.json lowers neither the floor nor what serves.
            std::fs::remove_file(state_path(dir.path())).ok();
            let again = installed(dir.path(), Some(&k.pk));
            assert!(again.floor >= inst.floor, "{steps}: {again:?}");
            assert!(again.floor >= 7);
            // What serves is known as before, or (the kept manifest being newer than
            // the base in place) unknown, so that the feed is taken again.
            assert!(
                again.state.serial == inst.state.serial || again.state.serial == 0,
                "{steps}: {again:?}"
            );
        }
    }

    #[test]
    fn a_kept_manifest_that_does_not_verify_gives_no_floor() {
        let (k, other) = (keys(), keys());
        let dir = tempfile::tempdir().unwrap();
        write_accepted(dir.path(), &accepted(&other, b"x", 50, &[])).unwrap();
        install_base(dir.path(), b"x").unwrap();
        let inst = installed(dir.path(), Some(&k.pk));
        assert_eq!(inst.floor, 0);
        assert_eq!(inst.state, State::default());
    }

    fn delta(base: &[u8], base_serial: u64, from: u64, serial: u64) -> Vec<u8> {
        serde_json::to_vec(&Delta {
            format: crate::blocklist::delta::FORMAT,
            base_serial,
            base_sha256: sha(base),
            from_serial: from,
            serial,
            built_at: String::new(),
            built_unix: 0,
            tables_from: Tables {
                categories: 0,
                lists: 0,
                notes: 0,
            },
            categories: vec![],
            lists: vec![],
            notes: vec![],
            set: vec![],
            paths: None,
        })
        .unwrap()
    }

    #[test]
    fn deltas_count_only_over_the_base_they_were_made_for() {
        let k = keys();
        let (base, other) = (b"base 10".as_slice(), b"another base".as_slice());
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("deltas")).unwrap();
        write_accepted(d, &accepted(&k, base, 10, &[11, 12, 13])).unwrap();
        install_base(d, base).unwrap();
        std::fs::write(delta_path(d, 11), delta(base, 10, 10, 11)).unwrap();
        // 12 was made for another base: it and what follows do not count.
        std::fs::write(delta_path(d, 12), delta(other, 10, 11, 12)).unwrap();
        std::fs::write(delta_path(d, 13), delta(base, 10, 12, 13)).unwrap();
        let inst = installed(d, Some(&k.pk));
        assert_eq!(
            (inst.state.serial, inst.state.deltas.clone()),
            (11, vec![11])
        );
        assert_eq!(inst.floor, 13);
        // Put right, the whole chain serves.
        std::fs::write(delta_path(d, 12), delta(base, 10, 11, 12)).unwrap();
        let inst = installed(d, Some(&k.pk));
        assert_eq!(
            (inst.state.serial, inst.state.deltas),
            (13, vec![11, 12, 13])
        );
    }
}
