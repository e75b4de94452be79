//! The serving list: readers call [`Handle::load`] (lock-free, never waits); a
//! reload swaps the whole list at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// Replace the serving list.
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
