//! The blocklist engine: parse lists, compile them to a memory-mapped fst keyed by
//! reversed labels, match names by suffix, and swap snapshots on change.
//!
//! - [`parse`]: one line → rules (pure).
//! - [`paths`]: path rules (a page on a shared host) and their matching (pure).
//! - [`action`]: what a hit's answer is.
//! - [`compile`]: files → guardrails → one fst file (temp, fsync, rename).
//! - [`set`]: the file layout, mmap load with checks, the matcher.
//! - [`interim`]: a hash index that serves while a first compile finishes.
//! - [`delta`]: a feed's changes since a compiled base, laid over it.
//! - [`handle`]: the serving list, swapped whole.
//! - [`loader`]: the first load and reloads into the handle.
//! - [`snapshot`]: the last good compile kept in the state directory.
//! - [`watch`]: the file watcher that triggers reloads.

pub mod action;
pub mod compile;
pub mod delta;
pub mod handle;
pub mod interim;
pub mod loader;
pub mod name;
pub mod parse;
pub mod paths;
pub mod runs;
pub mod set;
pub mod snapshot;
pub mod value;
pub mod watch;

pub use compile::{CompileError, CompileReport, CompileSpec, MatchMode, compile};
pub use handle::Handle;
pub use loader::{
    Loader, ReloadError, ReloadSummary, reload_in_background, reload_in_background_then,
};
pub use set::{Action, Blocklist, Hit, ListInfo, LoadError, Meta, Verdict};
pub use watch::spawn_watcher;

#[cfg(test)]
mod tests;
