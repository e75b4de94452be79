//! The serving snapshot, reloads, and the file watcher.
//!
//! Readers call [`Handle::load`] (lock-free, never waits). A reload compiles the list
//! directories (or copies a precompiled file into the state directory) on the calling
//! thread — the watcher runs it on its own blocking thread — then swaps the snapshot
//! atomically. On any failure the old snapshot keeps serving and the failure is counted.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher as _};

use super::compile::{self, CompileError, CompileReport, CompileSpec, ListOverride, is_list_name};
use super::name;
use super::set::{Blocklist, LoadError};
use crate::config::BlocklistConfig;

/// Reload outcomes, read by the metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Successful loads (including the first).
    pub ok: AtomicU64,
    /// Failed loads (compile error, corrupt file).
    pub failed: AtomicU64,
    /// Loads refused by the entry-drop guard.
    pub refused: AtomicU64,
    /// Unix time of the last successful load.
    pub last_ok_unix: AtomicU64,
    /// Guardrail refusals in the last successful compile.
    pub last_refused_rules: AtomicU64,
    /// Skipped lines in the last successful compile.
    pub last_skipped_lines: AtomicU64,
}

/// The current snapshot, shared by every reader.
pub struct Handle {
    current: ArcSwap<Blocklist>,
    /// Reload outcomes.
    pub stats: ReloadStats,
    loaded: std::sync::atomic::AtomicBool,
    generation: AtomicU64,
}

impl Default for Handle {
    fn default() -> Self {
        Handle {
            current: ArcSwap::from_pointee(Blocklist::empty()),
            stats: ReloadStats::default(),
            loaded: false.into(),
            generation: AtomicU64::new(0),
        }
    }
}

impl Handle {
    /// The serving snapshot.
    pub fn load(&self) -> arc_swap::Guard<Arc<Blocklist>> {
        self.current.load()
    }
    /// The serving snapshot as an owned `Arc`.
    pub fn load_full(&self) -> Arc<Blocklist> {
        self.current.load_full()
    }
    /// Whether a list has been loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
    /// Replace the snapshot.
    pub fn store(&self, list: Blocklist) {
        self.current.store(Arc::new(list));
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.loaded.store(true, Ordering::Release);
    }
    /// Changes with every swap: caches keyed by it forget answers made under an older list.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Why a reload left the old list serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The sources do not compile.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The compiled file is unusable.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The state directory or the never-block file cannot be used.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A precompiled list is much smaller than the serving one.
    #[error("{path} has {new} entries against {old} serving, a drop of more than {pct:.0} %; keeping the old list (raise [blocklist] max_drop if this is intended)", pct = max_drop * 100.0)]
    DropTooLarge {
        /// The file.
        path: PathBuf,
        /// Serving entries.
        old: u64,
        /// New entries.
        new: u64,
        /// Configured share.
        max_drop: f64,
    },
}

/// What a successful reload did.
#[derive(Debug)]
pub struct ReloadSummary {
    /// Entries now serving.
    pub entries: u64,
    /// The compile report, when lists were compiled.
    pub report: Option<CompileReport>,
    /// Time taken.
    pub elapsed: Duration,
    /// The file now mapped.
    pub path: PathBuf,
}

impl ReloadSummary {
    /// Skipped lines and refused rules of the compile (0, 0 for a precompiled list).
    pub fn unused_lines(&self) -> (u64, usize) {
        self.report
            .as_ref()
            .map(|r| (r.skipped_total(), r.refused.len()))
            .unwrap_or((0, 0))
    }
}

/// What the first load at start did.
#[derive(Debug)]
pub struct StartSummary {
    /// Entries now serving.
    pub entries: u64,
    /// Time taken.
    pub elapsed: Duration,
    /// The compile report, when lists were compiled.
    pub report: Option<CompileReport>,
    /// Whether the snapshot of the last compile serves, and whether it is current.
    pub snapshot: Option<SnapshotUse>,
    /// The interim index of the parsed lists serves while the compile finishes on
    /// its own thread (a first start); `report` is then `None`.
    pub interim: bool,
}

impl StartSummary {
    fn compiled(r: ReloadSummary) -> StartSummary {
        StartSummary {
            entries: r.entries,
            elapsed: r.elapsed,
            report: r.report,
            snapshot: None,
            interim: false,
        }
    }
}

/// How a start used the snapshot of the last compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotUse {
    /// The lists are as they were at that compile: nothing to compile.
    Current,
    /// The lists (or settings, or fanzha) changed since: compile them now.
    Stale,
}

/// Sidecar of a snapshot: what the metrics showed after its compile.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SnapshotInfo {
    entries: u64,
    skipped_lines: u64,
    refused_rules: u64,
    compiled_unix: u64,
}

const SNAPSHOT_PREFIX: &str = "last-good-";

/// Keep `compiled` as the snapshot `last-good-<fingerprint>.fst` of the state
/// directory (a hard link: no copy), with its sidecar, replacing older snapshots.
fn save_snapshot(
    state: &Path,
    compiled: &Path,
    fp: u64,
    report: &CompileReport,
    entries: u64,
) -> std::io::Result<()> {
    let final_path = state.join(format!("{SNAPSHOT_PREFIX}{fp:016x}.fst"));
    let info = SnapshotInfo {
        entries,
        skipped_lines: report.skipped_total(),
        refused_rules: report.refused.len() as u64,
        compiled_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let tmp = state.join(format!(".{SNAPSHOT_PREFIX}{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    fs::write(&tmp, serde_json::to_vec(&info).unwrap_or_default())?;
    fs::rename(&tmp, final_path.with_extension("json"))?;
    let _ = fs::remove_file(&tmp);
    fs::hard_link(compiled, &tmp)?;
    fs::rename(&tmp, &final_path)?;
    for e in fs::read_dir(state)?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let p = e.path();
        if n.starts_with(SNAPSHOT_PREFIX)
            && p != final_path
            && p != final_path.with_extension("json")
        {
            let _ = fs::remove_file(p);
        }
    }
    Ok(())
}

/// The snapshot of the state directory and its fingerprint (the newest if several).
fn find_snapshot(state: &Path) -> Option<(PathBuf, u64)> {
    let mut best: Option<(SystemTime, PathBuf, u64)> = None;
    for e in fs::read_dir(state).ok()?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let Some(hex) = n
            .strip_prefix(SNAPSHOT_PREFIX)
            .and_then(|r| r.strip_suffix(".fst"))
        else {
            continue;
        };
        let Ok(fp) = u64::from_str_radix(hex, 16) else {
            continue;
        };
        let t = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(bt, _, _)| t > *bt) {
            best = Some((t, e.path(), fp));
        }
    }
    best.map(|(_, p, fp)| (p, fp))
}

/// Loads lists as configured and swaps them into a [`Handle`].
pub struct Loader {
    cfg: Mutex<BlocklistConfig>,
    handle: Arc<Handle>,
    lock: Mutex<()>,
    seq: AtomicU64,
    /// Wakes a first compile that waits, once its interim index is out, for the
    /// server to come up (see [`Loader::serving`]).
    up: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

/// Read a never-block file: one name per line, `#` comments. Bad lines are logged.
pub fn read_never_block(path: &Path) -> Result<Vec<String>, ReloadError> {
    let text = fs::read_to_string(path).map_err(|source| ReloadError::Io {
        what: "cannot read never-block file",
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        match name::normalize(l) {
            Ok(n) => out.push(n),
            Err(e) => {
                tracing::warn!(file = %path.display(), line = i + 1, reason = e.reason(), "never-block line skipped")
            }
        }
    }
    Ok(out)
}

impl Loader {
    /// A loader for `cfg` feeding `handle`.
    pub fn new(cfg: BlocklistConfig, handle: Arc<Handle>) -> Loader {
        Loader {
            cfg: Mutex::new(cfg),
            handle,
            lock: Mutex::new(()),
            seq: AtomicU64::new(0),
            up: Mutex::new(None),
        }
    }

    /// The handle this loader swaps into.
    pub fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    /// The current settings.
    pub fn config(&self) -> BlocklistConfig {
        self.cfg.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replace the settings (SIGHUP); takes effect on the next reload.
    pub fn set_config(&self, cfg: BlocklistConfig) {
        *self.cfg.lock().unwrap_or_else(|e| e.into_inner()) = cfg;
    }

    /// Build the compile spec for the current settings.
    pub fn spec(
        cfg: &BlocklistConfig,
        previous: Option<u64>,
        force: bool,
    ) -> Result<CompileSpec, ReloadError> {
        let never_block = match &cfg.never_block {
            Some(p) => read_never_block(p)?,
            None => vec![],
        };
        Ok(CompileSpec {
            dirs: cfg.dirs.clone(),
            allow_dirs: cfg.allow_dirs.clone(),
            overrides: cfg
                .lists
                .iter()
                .map(|l| ListOverride {
                    path: l.path.clone(),
                    category: l.category.clone(),
                    action: l.action,
                    match_mode: l.match_mode,
                })
                .collect(),
            never_block,
            max_drop: cfg.max_drop,
            previous_entries: previous,
            force,
            examples_per_file: 5,
            default_category: cfg.default_category.clone(),
            memory_budget: compile::DEFAULT_MEMORY_BUDGET,
        })
    }

    fn next_path(&self, state: &Path) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        state.join(format!("active-{}-{n}.fst", std::process::id()))
    }

    /// Compile (or copy and verify) the configured lists and swap them in. On error
    /// the serving snapshot is untouched and the failure is counted.
    pub fn reload(&self, force: bool) -> Result<ReloadSummary, ReloadError> {
        self.reload_with(force, None)
    }

    /// [`Loader::reload`], passing `early` to the compile (see
    /// [`compile::compile_with`]).
    fn reload_with(
        &self,
        force: bool,
        early: Option<&mut dyn FnMut(Blocklist)>,
    ) -> Result<ReloadSummary, ReloadError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let res = self.reload_locked(force, start, early);
        let st = &self.handle.stats;
        match &res {
            Ok(s) => {
                st.ok.fetch_add(1, Ordering::Relaxed);
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                st.last_ok_unix.store(now, Ordering::Relaxed);
                if let Some(r) = &s.report {
                    st.last_refused_rules
                        .store(r.refused.len() as u64, Ordering::Relaxed);
                    st.last_skipped_lines
                        .store(r.skipped_total(), Ordering::Relaxed);
                }
            }
            Err(ReloadError::Compile(CompileError::DropTooLarge { .. }))
            | Err(ReloadError::DropTooLarge { .. }) => {
                st.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                st.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        res
    }

    fn reload_locked(
        &self,
        force: bool,
        start: Instant,
        early: Option<&mut dyn FnMut(Blocklist)>,
    ) -> Result<ReloadSummary, ReloadError> {
        let cfg = self.config();
        fs::create_dir_all(&cfg.state_dir).map_err(|source| ReloadError::Io {
            what: "cannot create state directory",
            path: cfg.state_dir.clone(),
            source,
        })?;
        let previous = self
            .handle
            .is_loaded()
            .then(|| self.handle.load().len() as u64);
        let out = self.next_path(&cfg.state_dir);
        let (list, report) = if let Some(src) = &cfg.compiled {
            // Copy first: the operator may overwrite their file in place later, and a
            // mapped file must never change under us.
            fs::copy(src, &out).map_err(|source| ReloadError::Io {
                what: "cannot copy compiled list",
                path: src.clone(),
                source,
            })?;
            let list = match Blocklist::open(&out, true) {
                Ok(l) => l,
                Err(e) => {
                    let _ = fs::remove_file(&out);
                    return Err(match e {
                        LoadError::Io { source, .. } => ReloadError::Io {
                            what: "cannot read compiled list",
                            path: src.clone(),
                            source,
                        },
                        LoadError::NotAList { why, .. } => ReloadError::Load(LoadError::NotAList {
                            path: src.clone(),
                            why,
                        }),
                        LoadError::Truncated { expected, got, .. } => {
                            ReloadError::Load(LoadError::Truncated {
                                path: src.clone(),
                                expected,
                                got,
                            })
                        }
                        LoadError::Checksum { what, .. } => {
                            ReloadError::Load(LoadError::Checksum {
                                path: src.clone(),
                                what,
                            })
                        }
                        other => ReloadError::Load(other),
                    });
                }
            };
            if let Some(old) = previous {
                let new = list.len() as u64;
                if !force && old > 0 && (new as f64) < old as f64 * (1.0 - cfg.max_drop) {
                    let _ = fs::remove_file(&out);
                    return Err(ReloadError::DropTooLarge {
                        path: src.clone(),
                        old,
                        new,
                        max_drop: cfg.max_drop,
                    });
                }
            }
            (list, None)
        } else {
            let spec = Self::spec(&cfg, previous, force)?;
            // Taken before the compile: a file edited during it makes the fingerprint
            // stale, so the next start compiles again rather than trusting the snapshot.
            let fp = compile::fingerprint(&spec).ok();
            let report = compile::compile_with(&spec, &out, early)?;
            // Our own fresh, fsynced output: the header checksum is checked on open, the
            // full-body check would only re-read what we just wrote.
            let list = Blocklist::open(&out, false)?;
            if let Some(fp) = fp
                && let Err(e) = save_snapshot(&cfg.state_dir, &out, fp, &report, list.len() as u64)
            {
                tracing::warn!(error = %e, dir = %cfg.state_dir.display(), "cannot keep a snapshot of the compiled list; the next start compiles again");
            }
            (list, Some(report))
        };
        let old_path = self.handle.load().path().map(Path::to_path_buf);
        let entries = list.len() as u64;
        self.handle.store(list);
        if let Some(old) = old_path
            && old != out
            && old.starts_with(&cfg.state_dir)
        {
            // Unlinking a mapped file is safe: readers of the old snapshot keep the inode.
            let _ = fs::remove_file(old);
        }
        Ok(ReloadSummary {
            entries,
            report,
            elapsed: start.elapsed(),
            path: out,
        })
    }

    /// The first load, at start. With list directories, the snapshot of the last good
    /// compile (kept in the state directory) serves at once: when the lists have not
    /// changed since, nothing is compiled; when they have, the result says so and the
    /// caller compiles them in the background while the snapshot serves, as during a
    /// reload. With a precompiled list, this is a plain [`Loader::reload`].
    ///
    /// Without a usable snapshot (a first start, a damaged snapshot) the compile runs
    /// on its own thread, and this returns as soon as the lists are read: an interim
    /// index of their rules serves (matching exactly as the compiled file will) until
    /// the compile finishes and swaps the file in. Lists too big for the interim
    /// index compile before this returns.
    pub fn start(self: &Arc<Self>) -> Result<StartSummary, ReloadError> {
        let cfg = self.config();
        if cfg.compiled.is_some() {
            return self.reload(false).map(StartSummary::compiled);
        }
        if let Some(s) = self.open_snapshot(&cfg) {
            return Ok(s);
        }
        self.start_compile()
    }

    fn start_compile(self: &Arc<Self>) -> Result<StartSummary, ReloadError> {
        enum Msg {
            Interim(u64, Duration),
            Done(Result<ReloadSummary, ReloadError>),
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (up_tx, up_rx) = std::sync::mpsc::channel();
        *self.up.lock().unwrap_or_else(|e| e.into_inner()) = Some(up_tx);
        let me = self.clone();
        let start = Instant::now();
        let spawned = std::thread::Builder::new()
            .name("fanzha-compile".into())
            .spawn(move || {
                let mut served = false;
                let res = me.reload_with(
                    false,
                    Some(&mut |list: Blocklist| {
                        let entries = list.len() as u64;
                        me.handle.store(list);
                        served = true;
                        // From here on the DNS threads serve: the rest of the compile
                        // takes what they leave.
                        lower_priority();
                        let _ = tx.send(Msg::Interim(entries, start.elapsed()));
                        // Let the server finish coming up before taking the CPU again
                        // (on one core the compile would otherwise delay it by a
                        // scheduler slice or two).
                        let _ = up_rx.recv_timeout(Duration::from_secs(1));
                    }),
                );
                if served {
                    log_compiled_after_interim(&res);
                }
                let _ = tx.send(Msg::Done(res));
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a compile thread; compiling before serving");
            return self.reload(false).map(StartSummary::compiled);
        }
        match rx.recv() {
            Ok(Msg::Interim(entries, elapsed)) => Ok(StartSummary {
                entries,
                elapsed,
                report: None,
                snapshot: None,
                interim: true,
            }),
            Ok(Msg::Done(r)) => r.map(StartSummary::compiled),
            Err(_) => Err(ReloadError::Io {
                what: "the compile thread ended without a result while compiling",
                path: self.config().state_dir,
                source: std::io::Error::other("compile thread panicked"),
            }),
        }
    }

    fn open_snapshot(&self, cfg: &BlocklistConfig) -> Option<StartSummary> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let (path, fp) = find_snapshot(&cfg.state_dir)?;
        let now_fp = Self::spec(cfg, None, false)
            .ok()
            .and_then(|s| compile::fingerprint(&s).ok());
        let out = self.next_path(&cfg.state_dir);
        if let Err(e) = fs::hard_link(&path, &out) {
            tracing::warn!(error = %e, path = %path.display(), "cannot use the snapshot of the last compile; compiling");
            return None;
        }
        let list = match Blocklist::open(&out, true) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "the snapshot of the last compile is unusable; removing it and compiling");
                let _ = fs::remove_file(&out);
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(path.with_extension("json"));
                return None;
            }
        };
        let side: SnapshotInfo = fs::read(path.with_extension("json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let entries = list.len() as u64;
        self.handle.store(list);
        let st = &self.handle.stats;
        st.ok.fetch_add(1, Ordering::Relaxed);
        st.last_ok_unix.store(side.compiled_unix, Ordering::Relaxed);
        st.last_skipped_lines
            .store(side.skipped_lines, Ordering::Relaxed);
        st.last_refused_rules
            .store(side.refused_rules, Ordering::Relaxed);
        Some(StartSummary {
            entries,
            elapsed: start.elapsed(),
            report: None,
            interim: false,
            snapshot: Some(if now_fp == Some(fp) {
                SnapshotUse::Current
            } else {
                SnapshotUse::Stale
            }),
        })
    }

    /// The server is up: a first compile waiting behind its interim index goes on.
    pub fn serving(&self) {
        if let Some(up) = self.up.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = up.send(());
        }
    }

    /// Remove lists and temporary files left in the state directory by earlier runs
    /// (called at start, before anything is compiled).
    pub fn clean_state_dir(&self) {
        let cfg = self.config();
        let Ok(rd) = fs::read_dir(&cfg.state_dir) else {
            return;
        };
        let current = self.handle.load().path().map(Path::to_path_buf);
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            let stale_list = n.starts_with("active-") && n.ends_with(".fst");
            // Temporaries of a compile (or snapshot) cut short by a stop.
            let stale_tmp =
                n.starts_with(".active-") || n.starts_with(&format!(".{SNAPSHOT_PREFIX}"));
            if (stale_list || stale_tmp) && Some(e.path()) != current {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Reload and log the outcome in one line.
    pub fn reload_and_log(&self, why: &str) {
        match self.reload(false) {
            Ok(s) => {
                let (skipped, refused) = s.unused_lines();
                tracing::info!(
                    why,
                    entries = s.entries,
                    skipped_lines = skipped,
                    refused_rules = refused,
                    ms = s.elapsed.as_millis() as u64,
                    "blocklist reloaded"
                );
            }
            Err(e) => {
                tracing::error!(why, error = %e, "blocklist reload failed; the previous list keeps serving")
            }
        }
    }
}

/// Log how the compile behind an interim index ended.
fn log_compiled_after_interim(res: &Result<ReloadSummary, ReloadError>) {
    match res {
        Ok(s) => {
            let (skipped, refused) = s.unused_lines();
            tracing::info!(
                entries = s.entries,
                skipped_lines = skipped,
                refused_rules = refused,
                ms = s.elapsed.as_millis() as u64,
                "blocklist compiled; the compiled file now serves in place of the interim index"
            );
            if skipped > 0 || refused > 0 {
                tracing::warn!(
                    skipped_lines = skipped,
                    refused_rules = refused,
                    "some list lines were not used; `fanzha compile` shows which"
                );
            }
        }
        Err(e) => tracing::error!(
            error = %e,
            "the blocklist compile failed after its interim index began serving; the interim index keeps serving the same rules until a reload succeeds"
        ),
    }
}

/// Lower the calling thread's CPU priority (nice 10), so that a compile running
/// beside the DNS threads on the same core takes what they leave, not half of it.
pub fn lower_priority() {
    // SAFETY: setpriority on our own thread id has no memory-safety preconditions;
    // failure (e.g. a seccomp filter) only leaves the priority as it was.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// Reload on a new low-priority thread and log the outcome (SIGHUP).
pub fn reload_in_background(loader: Arc<Loader>, why: &'static str) {
    let r = std::thread::Builder::new()
        .name("fanzha-reload".into())
        .spawn(move || {
            lower_priority();
            loader.reload_and_log(why);
        });
    if let Err(e) = r {
        tracing::error!(error = %e, "cannot start a reload thread");
    }
}

/// Keeps the file watcher alive; dropping it stops watching.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
}

fn relevant(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Watch the configured list directories (or the precompiled file) and reload, on a
/// thread of its own, once changes have been quiet for the debounce time.
pub fn spawn_watcher(loader: Arc<Loader>) -> Result<Watcher, notify::Error> {
    let cfg = loader.config();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let compiled = cfg.compiled.clone();
    let state_dir = cfg.state_dir.clone();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if !relevant(&ev.kind) {
            return;
        }
        let hit = ev.paths.iter().any(|p| {
            // fanzha's own snapshots never trigger a reload (the operator's compiled
            // file may live in the state directory too: it is matched by name below).
            if compiled.is_none() && p.starts_with(&state_dir) {
                return false;
            }
            let fname = p
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            match &compiled {
                Some(c) => c
                    .file_name()
                    .map(|f| f.to_string_lossy() == fname)
                    .unwrap_or(false),
                None => is_list_name(&fname),
            }
        });
        if hit {
            let _ = tx.send(());
        }
    })?;
    if let Some(c) = &cfg.compiled {
        let dir = c
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        w.watch(dir, RecursiveMode::NonRecursive)?;
    } else {
        for d in cfg.dirs.iter().chain(cfg.allow_dirs.iter()) {
            if d.is_dir() {
                w.watch(d, RecursiveMode::Recursive)?;
            } else {
                tracing::warn!(dir = %d.display(), "list directory does not exist; not watched");
            }
        }
    }
    let debounce = cfg.debounce;
    std::thread::Builder::new()
        .name("fanzha-watch".into())
        .spawn(move || {
            lower_priority();
            while rx.recv().is_ok() {
                let first = Instant::now();
                // Wait until changes have been quiet for `debounce`, but at most 2 s
                // after the first, so a file rewritten in a loop still reloads.
                loop {
                    match rx.recv_timeout(debounce) {
                        Ok(()) if first.elapsed() < Duration::from_secs(2) => continue,
                        Ok(()) => break,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                loader.reload_and_log("file change");
            }
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(Watcher { _inner: w })
}
