//! fanzha-platform's integration tests: the real binary on loopback, on SQLite and on
//! a real PostgreSQL server.

mod browser;
mod common;
mod followup;
mod ingest;
mod scopes;
mod storage;
