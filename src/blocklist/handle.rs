//! The serving list: readers call [`Handle::load`] (lock-free, never waits); a
//! reload swaps the whole list at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::set::Blocklist;

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
    /// Skipped lines by reason: in the last successful compile, and summed over the
    /// compiles since start (`fanzha_blocklist_skipped_lines_total{reason}`).
    pub skipped: std::sync::Mutex<SkippedByReason>,
}

/// Skipped list lines by reason (`bad-expiry`, `bad-header`, `source-exception`, …).
#[derive(Debug, Default, Clone)]
pub struct SkippedByReason {
    /// The last successful compile's.
    pub last: std::collections::BTreeMap<String, u64>,
    /// Summed over every compile since start.
    pub total: std::collections::BTreeMap<String, u64>,
}

impl ReloadStats {
    /// Record a successful compile's skipped lines by reason.
    pub fn record_skipped<'a>(&self, by_reason: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut s = self.skipped.lock().unwrap_or_else(|e| e.into_inner());
        s.last.clear();
        let mut sum = 0;
        for (reason, n) in by_reason {
            s.last.insert(reason.to_string(), n);
            *s.total.entry(reason.to_string()).or_default() += n;
            sum += n;
        }
        drop(s);
        self.last_skipped_lines.store(sum, Ordering::Relaxed);
    }

    /// The skipped lines by reason, as recorded.
    pub fn skipped(&self) -> SkippedByReason {
        self.skipped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The serving list, shared by every reader and swapped whole by a reload.
pub struct Handle {
    current: ArcSwap<Blocklist>,
    /// Reload outcomes.
    pub stats: ReloadStats,
    loaded: AtomicBool,
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
    /// The serving list.
    pub fn load(&self) -> arc_swap::Guard<Arc<Blocklist>> {
        self.current.load()
    }
    /// The serving list as an owned `Arc`.
    pub fn load_full(&self) -> Arc<Blocklist> {
        self.current.load_full()
    }
    /// Whether a list has been loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
    /// Replace the serving list. The old one is freed here, on the reloading thread
    /// (see [`retire`]). Called from the loader's threads, never from a DNS thread.
    pub fn store(&self, list: Blocklist) {
        let old = self.current.swap(Arc::new(list));
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.loaded.store(true, Ordering::Release);
        retire(old, RETIRE_WAIT);
    }
    /// Changes with every swap: caches keyed by it forget answers made under an older list.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// How long a reload waits for the readers of the list it replaced.
const RETIRE_WAIT: Duration = Duration::from_secs(1);

/// Free a list that no longer serves on this thread, once the readers still holding
/// it (for one query each) are done. Otherwise the last of them, a DNS thread, would
/// free it: an interim index is millions of allocations and a compiled list an
/// unmap, a stall of milliseconds in which the socket's buffer overflows under load.
/// After `wait` it gives up and leaves the list to its last reader. True when the
/// list was freed here.
fn retire(mut old: Arc<Blocklist>, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        match Arc::try_unwrap(old) {
            Ok(list) => {
                drop(list);
                return true;
            }
            Err(held) if Instant::now() < deadline => {
                old = held;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_list_is_freed_by_the_reloader_once_its_readers_are_done() {
        let h = Arc::new(Handle::default());
        let reader = h.load_full();
        let held = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(reader);
        });
        let t = Instant::now();
        let old = h.current.swap(Arc::new(Blocklist::empty()));
        // The reader lets go after 30 ms: the reloading thread frees the list itself.
        assert!(retire(old, Duration::from_secs(1)));
        assert!(t.elapsed() >= Duration::from_millis(25));
        held.join().unwrap();
        // A reader that holds on past the wait: the reloader gives up, it does not hang.
        let stuck = h.load_full();
        let old = h.current.swap(Arc::new(Blocklist::empty()));
        assert!(!retire(old, Duration::from_millis(20)));
        drop(stuck);
        // And store() replaces the list.
        h.store(Blocklist::empty());
        assert!(h.is_loaded());
        assert_eq!(h.generation(), 1);
    }
}
