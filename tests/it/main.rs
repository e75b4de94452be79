//! The integration tests: one binary with a module per area, so that the shared
//! helpers (`common`: the offline DNS hierarchy, the real `fanzha` binary as a child,
//! small clients, nginx) are compiled and linked once rather than once per area.
//!
//! Two tests stay binaries of their own, because each installs a counting global
//! allocator and a binary has exactly one: `tests/alloc.rs` (the hot path allocates
//! nothing) and `tests/cache_memory.rs` (the caches' weights are true).
//!
//! Run one area with `cargo test --test it under_fire::`.

mod common;

mod alerts;
mod blocklist;
mod browser;
mod ctl;
mod district;
mod dns;
mod dnssec;
mod dnstap;
mod doh;
mod dot;
mod feed;
mod feed_delta;
mod flood;
mod pktinfo;
mod platform;
mod policy;
mod prometheus;
mod proxy;
mod recursion;
mod report;
mod sources;
mod tcp;
mod under_fire;
mod urlproxy;
mod warnpage;
