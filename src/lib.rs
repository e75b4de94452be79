//! fanzha (反诈): a DNS resolver appliance that blocks fraud domains, shows residents a
//! warning page, and reports each hit to the district platform.
//!
//! # Layout
//! - [`config`]: the TOML schema and its validation.
//! - [`blocklist`]: list parsing, compile to fst, mmap load, suffix matching, reloads.
#![warn(
    missing_docs,
    unreachable_pub,
    clippy::dbg_macro,
    clippy::print_stdout,
    rust_2018_idioms
)]

pub mod app;
pub mod blocklist;
pub mod config;
pub mod dns;
pub mod metrics;
pub mod notify;
pub mod places;
pub mod policy;
pub mod report;
pub mod warnpage;
