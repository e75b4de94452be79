//! fanzha-platform: the district platform (区/街/社三级平台). Appliances send their hits
//! and appeals here (`POST /v1/events`, docs/platform-api.md); district, street and
//! community accounts each see their own place; community workers keep the
//! follow-up queue (预警劝阻); accepted appeals become an allow list that
//! `fanzha publish` carries to every appliance.
//!
//! # Layout
//! Each module imports only modules listed below it: no import runs back up, and
//! there are no import circles (`scripts/check-layout.py platform/src` checks both).
//!
//! - [`web`]: the HTTP server: ingest, login and sessions, the pages of each level,
//!   CSV exports, the allow list file, metrics.
//! - [`metrics`]: the Prometheus metrics.
//! - [`config`]: `fanzha-platform.toml`, checked with the key and fix named.
//! - [`auth`]: argon2id passwords, session and CSRF tokens, the login limiter.
//! - [`store`]: SQLite or PostgreSQL, one schema, the queries of every part.
//! - [`ingest`]: the appliances' protocol checked: signature, gzip, each field.
//! - [`scope`]: roles, and the one filter that limits every query to a place.
//! - [`cases`]: what a case is, the outcomes, the follow-up figures.
#![warn(
    missing_docs,
    unreachable_pub,
    clippy::dbg_macro,
    clippy::print_stdout,
    rust_2018_idioms
)]

pub mod auth;
pub mod cases;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod scope;
pub mod store;
pub mod web;
