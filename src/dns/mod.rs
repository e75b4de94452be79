//! The DNS side. A query's life, stage by stage, and where each stage lives:
//!
//! ```text
//!  receive        udp.rs (recvmmsg batches) / tcp.rs (one task per connection)
//!     │           sockets made by bind.rs before the lists load
//!     ▼
//!  admit          policy.rs   parse (wire.rs), ACL, rate limit, opcode, class  → REFUSED / FORMERR / drop
//!     ▼
//!  block verdict  policy.rs   the blocklist snapshot, by suffix               → sinkhole / NXDOMAIN answer
//!     ▼
//!  cache          cache.rs    encoded answers keyed by name, type and flags   → cached answer
//!     ▼
//!  resolve        resolve.rs  iterate/ from the roots, or forwarding          → SERVFAIL on failure
//!     ▼
//!  CNAME re-check engine.rs   a chain through a blocked name                  → block answer
//!     ▼
//!  answer         engine.rs   flags, EDNS, truncation to the UDP size; cached
//!     ▼
//!  on_block       engine.rs   for every block: the metric by category and street,
//!                             and the hit event for the reporter (never waits)
//! ```
//!
//! [`engine::Engine`] runs the stages; the listeners only move bytes. Everything up
//! to the cache is answered from the receive loop with no allocation and no task;
//! only a query that must be resolved leaves it.

pub mod engine;
pub mod listen;
pub mod resolve;
pub mod stages;
pub mod wire;
