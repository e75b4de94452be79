//! The file watcher: reloads, on a thread of its own, once changes to the list
//! directories (or the precompiled file) have been quiet for the debounce time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher as _};

use super::compile::is_list_name;
use super::loader::{Loader, lower_priority};

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
    // List directories inside the state directory (fetched `[[sources]]`) count.
    let list_dirs: Vec<_> = cfg.dirs.iter().chain(&cfg.allow_dirs).cloned().collect();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if !relevant(&ev.kind) {
            return;
        }
        let hit = ev.paths.iter().any(|p| {
            // fanzha's own snapshots never trigger a reload (the operator's compiled
            // file may live in the state directory too: it is matched by name below).
            if compiled.is_none()
                && p.starts_with(&state_dir)
                && !list_dirs.iter().any(|d| p.starts_with(d))
            {
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
