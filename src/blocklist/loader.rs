//! Loading lists into the [`Handle`]: the first load at start (a snapshot, an
//! interim index, or a compile), and reloads. A reload compiles the list directories
//! (or copies a precompiled file into the state directory) on the calling thread,
//! then swaps the list atomically. On any failure the old list keeps serving and the
//! failure is counted.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::compile::{self, CompileError, CompileReport, CompileSpec, ListOverride, MatchMode};
use super::handle::Handle;
use super::name;
use super::set::Action;
use super::set::{Blocklist, LoadError};
use super::snapshot::{self, SNAPSHOT_PREFIX, SnapshotInfo, SnapshotUse};

/// `[[lists]]`, validated.
#[derive(Debug, Clone)]
pub struct ListConfig {
    /// The file.
    pub path: PathBuf,
    /// Category.
    pub category: Option<String>,
    /// Action.
    pub action: Option<Action>,
    /// Match mode.
    pub match_mode: Option<MatchMode>,
    /// What its exceptions may do (a `[[sources]]` file's are dropped by default).
    pub exceptions: super::compile::Exceptions,
    /// Whether an RPZ file's own actions answer (default: yes).
    pub rpz_actions: Option<bool>,
    /// A URL with a path blocks its whole host (`url_paths = "host"`).
    pub url_paths_host: Option<bool>,
}

/// `[blocklist]` and `[[lists]]`, validated.
#[derive(Debug, Clone)]
pub struct BlocklistConfig {
    /// Source dirs.
    pub dirs: Vec<PathBuf>,
    /// Allow dirs.
    pub allow_dirs: Vec<PathBuf>,
    /// Precompiled list.
    pub compiled: Option<PathBuf>,
    /// Delta files laid over the precompiled list, in chain order (a feed's; see
    /// [`super::delta`]). Empty without one.
    pub deltas: Vec<PathBuf>,
    /// Never-block file.
    pub never_block: Option<PathBuf>,
    /// Drop guard share.
    pub max_drop: f64,
    /// Debounce.
    pub debounce: Duration,
    /// Default category.
    pub default_category: String,
    /// Per-file settings.
    pub lists: Vec<ListConfig>,
    /// Working directory for compiled snapshots.
    pub state_dir: PathBuf,
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
    /// A delta does not apply to the list it was given.
    #[error("{path}: {source}")]
    Delta {
        /// The delta file, or the list it was meant for.
        path: PathBuf,
        /// Why.
        source: super::delta::DeltaError,
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
                    exceptions: l.exceptions,
                    rpz_actions: l.rpz_actions,
                    url_paths_host: l.url_paths_host,
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

    /// Lay `deltas` (a whole chain, in order) over the compiled base that serves,
    /// whose header checksum must be `base_sum`, and swap the result in: the base
    /// stays mapped, nothing is compiled or copied. On error the serving list is
    /// untouched.
    pub fn apply_deltas(
        &self,
        deltas: &[super::delta::Delta],
        base_sum: u64,
    ) -> Result<ReloadSummary, ReloadError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let serving = self.handle.load_full();
        let path = serving.path().map(Path::to_path_buf).unwrap_or_default();
        if serving.fst_sum() != base_sum || base_sum == 0 {
            return Err(ReloadError::Delta {
                path,
                source: super::delta::DeltaError::NoBase,
            });
        }
        let list = serving
            .with_deltas(deltas)
            .map_err(|source| ReloadError::Delta {
                path: path.clone(),
                source,
            })?;
        drop(serving);
        let entries = list.len() as u64;
        self.handle.store(list);
        let st = &self.handle.stats;
        st.ok.fetch_add(1, Ordering::Relaxed);
        st.last_ok_unix.store(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            Ordering::Relaxed,
        );
        Ok(ReloadSummary {
            entries,
            report: None,
            elapsed: start.elapsed(),
            path,
        })
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
                    st.record_skipped(r.skipped.iter().map(|(k, v)| (*k, *v)));
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
        let (list, report) = match &cfg.compiled {
            Some(src) => (load_precompiled(&cfg, src, &out, previous, force)?, None),
            None => {
                let (list, report) = compile_lists(&cfg, &out, previous, force, early)?;
                (list, Some(report))
            }
        };
        let old_path = self.handle.load().path().map(Path::to_path_buf);
        let entries = list.len() as u64;
        self.handle.store(list);
        if let Some(old) = old_path
            && old != out
            && old.starts_with(&cfg.state_dir)
        {
            // Unlinking a mapped file is safe: readers of the old list keep the inode.
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
            Done(Box<Result<ReloadSummary, ReloadError>>),
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
                let _ = tx.send(Msg::Done(Box::new(res)));
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
        let (path, fp) = snapshot::find(&cfg.state_dir)?;
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
        if side.skipped.is_empty() {
            // A sidecar from before reasons were kept: the sum only.
            st.last_skipped_lines
                .store(side.skipped_lines, Ordering::Relaxed);
        } else {
            st.record_skipped(side.skipped.iter().map(|(k, v)| (k.as_str(), *v)));
        }
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
        let _ = self.reload_logged(why);
    }

    /// [`Loader::reload`], with its outcome logged in one line.
    pub fn reload_logged(&self, why: &str) -> Result<ReloadSummary, ReloadError> {
        let res = self.reload(false);
        match &res {
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
        res
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
    reload_in_background_then(loader, why, |_| ());
}

/// [`reload_in_background`], handing the outcome to `done` on that thread.
pub fn reload_in_background_then(
    loader: Arc<Loader>,
    why: &'static str,
    done: impl FnOnce(Result<ReloadSummary, ReloadError>) + Send + 'static,
) {
    let r = std::thread::Builder::new()
        .name("fanzha-reload".into())
        .spawn(move || {
            lower_priority();
            done(loader.reload_logged(why));
        });
    if let Err(e) = r {
        tracing::error!(error = %e, "cannot start a reload thread");
    }
}

/// Copy the operator's precompiled list `src` to `out` and open it, fully checked;
/// refused when it drops more than `max_drop` of the `previous` entries.
fn load_precompiled(
    cfg: &BlocklistConfig,
    src: &Path,
    out: &Path,
    previous: Option<u64>,
    force: bool,
) -> Result<Blocklist, ReloadError> {
    // Copy first: the operator may overwrite their file in place later, and a
    // mapped file must never change under us.
    fs::copy(src, out).map_err(|source| ReloadError::Io {
        what: "cannot copy compiled list",
        path: src.to_path_buf(),
        source,
    })?;
    let list = Blocklist::open(out, true)
        .and_then(|l| l.check_automaton().map(|()| l))
        .map_err(|e| {
            let _ = fs::remove_file(out);
            naming(e, src)
        })?;
    let list = if cfg.deltas.is_empty() {
        list
    } else {
        let deltas = read_deltas(&cfg.deltas).inspect_err(|_| {
            let _ = fs::remove_file(out);
        })?;
        list.with_deltas(&deltas).map_err(|source| {
            let _ = fs::remove_file(out);
            ReloadError::Delta {
                path: src.to_path_buf(),
                source,
            }
        })?
    };
    if let Some(old) = previous {
        let new = list.len() as u64;
        if !force && old > 0 && (new as f64) < old as f64 * (1.0 - cfg.max_drop) {
            let _ = fs::remove_file(out);
            return Err(ReloadError::DropTooLarge {
                path: src.to_path_buf(),
                old,
                new,
                max_drop: cfg.max_drop,
            });
        }
    }
    Ok(list)
}

/// Read and parse delta files (JSON, as `fanzha publish --delta` writes them).
pub fn read_deltas(paths: &[PathBuf]) -> Result<Vec<super::delta::Delta>, ReloadError> {
    paths
        .iter()
        .map(|p| {
            let bytes = fs::read(p).map_err(|source| ReloadError::Io {
                what: "cannot read delta",
                path: p.clone(),
                source,
            })?;
            serde_json::from_slice(&bytes).map_err(|e| ReloadError::Delta {
                path: p.clone(),
                source: super::delta::DeltaError::Bad {
                    serial: 0,
                    what: format!("not a delta file: {e}"),
                },
            })
        })
        .collect()
}

/// A load error of the copy, told of the operator's file `src` it came from.
fn naming(e: LoadError, src: &Path) -> ReloadError {
    let path = src.to_path_buf();
    match e {
        LoadError::Io { source, .. } => ReloadError::Io {
            what: "cannot read compiled list",
            path,
            source,
        },
        LoadError::NotAList { why, .. } => ReloadError::Load(LoadError::NotAList { path, why }),
        LoadError::Truncated { expected, got, .. } => ReloadError::Load(LoadError::Truncated {
            path,
            expected,
            got,
        }),
        LoadError::Checksum { what, .. } => ReloadError::Load(LoadError::Checksum { path, what }),
        other => ReloadError::Load(other),
    }
}

/// Compile the list directories into `out`, open the result, and keep it as the
/// snapshot for the next start.
fn compile_lists(
    cfg: &BlocklistConfig,
    out: &Path,
    previous: Option<u64>,
    force: bool,
    early: Option<&mut dyn FnMut(Blocklist)>,
) -> Result<(Blocklist, CompileReport), ReloadError> {
    let spec = Loader::spec(cfg, previous, force)?;
    // Taken before the compile: a file edited during it makes the fingerprint
    // stale, so the next start compiles again rather than trusting the snapshot.
    let fp = compile::fingerprint(&spec).ok();
    let report = compile::compile_with(&spec, out, early)?;
    // Our own fresh, fsynced output: the header checksum is checked on open, the
    // full-body check would only re-read what we just wrote.
    let list = Blocklist::open(out, false)?;
    if let Some(fp) = fp
        && let Err(e) = snapshot::save(&cfg.state_dir, out, fp, &report, list.len() as u64)
    {
        tracing::warn!(error = %e, dir = %cfg.state_dir.display(), "cannot keep a snapshot of the compiled list; the next start compiles again");
    }
    Ok((list, report))
}
