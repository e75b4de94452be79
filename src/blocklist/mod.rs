//! The blocklist engine: parse lists, compile them to a memory-mapped fst keyed by
//! reversed labels, match names by suffix, and swap snapshots on change.
//!
//! - [`parse`]: one line → rules (pure).
//! - [`compile`]: files → guardrails → one fst file (temp, fsync, rename).
//! - [`set`]: the file layout, mmap load with checks, the matcher.
//! - [`interim`]: a hash index that serves while a first compile finishes.
//! - [`watch`]: the serving snapshot, reloads, the file watcher.

pub mod compile;
pub mod interim;
pub mod name;
pub mod parse;
pub mod runs;
pub mod set;
pub mod value;
pub mod watch;

pub use compile::{CompileError, CompileReport, CompileSpec, MatchMode, compile};
pub use set::{Action, Blocklist, Hit, ListInfo, LoadError, Meta, Verdict};
pub use watch::{Handle, Loader, ReloadError, spawn_watcher};

#[cfg(test)]
mod tests;
