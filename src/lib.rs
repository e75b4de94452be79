//! fanzha (反诈): a DNS resolver appliance that blocks fraud domains, shows residents a
//! warning page, and reports each hit to the district platform.
//!
//! # Layout
//! Each module imports only modules listed below it: no import runs back up, and
//! there are no import circles (`scripts/check-layout.py` checks both).
//!
//! - [`app`]: `fanzha serve`: build every part from the config, run, reload on SIGHUP, drain.
//! - [`ctl`]: `fanzha ctl`, the control socket of the running daemon, and its commands.
//! - [`urlproxy`]: the URL proxy: a listed page of a shared host gets the warning
//!   page, the host's other pages are relayed (the second stage of URL blocking).
//! - [`dns`]: a query's whole life, in four layers: `listen/` (sockets), the engine
//!   and its `stages/` (admission, block verdict, local data, cache, answers),
//!   `resolve/` (the iterator, forwarding, DNSSEC) and `wire/` (the DNS format); its
//!   module doc shows the stages in order.
//! - [`dnstap`]: the query log as dnstap frames to a collector (never waits).
//! - [`feed`]: the signed list feed: `fanzha publish`, and the appliance's follower.
//! - [`alert`]: digests of hits to each place's own workers, through the group-chat
//!   robots they use (DingTalk, WeCom) or a signed webhook.
//! - [`warnpage`]: the warning page residents see, and its HTTP server.
//! - [`report`]: hit and appeal events and their delivery to the platform.
//! - [`outbox`]: what waits to leave the appliance: the hand-over from the DNS path
//!   that never waits, the on-disk spool, the signature (reports and alerts alike).
//! - [`config`]: the TOML file (`raw`), its validation into the typed sections every
//!   part is built from, and its reference (docs/configuration.md, fanzha.toml(5)).
//! - [`privacy`]: what leaves of a client's address (kept, truncated, keyed hash).
//! - [`metrics`]: every Prometheus metric, and the ops endpoint.
//! - [`places`]: client subnet → district / street / community, each place's own
//!   actions per category (`[[policies]]`) and alert target.
//! - [`blocklist`]: list parsing, compile to fst, mmap load, matching, reloads.
//! - [`sd_notify`]: tell systemd when fanzha is ready and when it stops (not the
//!   `notify` crate, which watches the list directories).
//! - [`limits`]: per-address connection caps and quiet refusal logs, for the listeners.
//! - [`clockmap`]: a sharded map bounded in entries and bytes (CLOCK eviction), for
//!   the caches and the rate limiter.
//! - [`http`]: the HTTP client of the feed, the sources and the alerts (ureq).
//! - [`cms`]: CMS signatures (RFC 5652) of the phone setup profiles.
//! - [`categories`]: the fraud categories' names for people (from the warning page's
//!   texts), for the alerts.
//! - [`text`]: small text helpers shared by the list parser and the warning page.
//! - [`random`]: random bytes from the kernel, for jitter and nonces.
//! - [`wallclock`]: the wall clock as Unix seconds.
#![warn(
    missing_docs,
    unreachable_pub,
    clippy::dbg_macro,
    clippy::print_stdout,
    rust_2018_idioms
)]

pub mod alert;
pub mod app;
pub mod blocklist;
pub mod categories;
pub mod clockmap;
pub mod cms;
pub mod config;
pub mod ctl;
pub mod dns;
pub mod dnstap;
pub mod feed;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod places;
pub mod privacy;
pub mod random;
pub mod report;
pub mod sd_notify;
pub mod text;
pub mod urlproxy;
pub mod wallclock;
pub mod warnpage;
