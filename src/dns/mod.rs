//! The DNS side, in four layers: `listen/` moves bytes, the [`engine`] runs a
//! query's stages, `stages/` decide and write answers without I/O, `resolve/` asks
//! the name servers, and `wire/` is the DNS format under them all. A query's life:
//!
//! ```text
//!  receive        listen/udp.rs (recvmmsg batches, listen/batch.rs) / listen/tcp.rs,
//!     │           sockets made by listen/bind.rs before the lists load; a balancer's
//!     │           PROXY v2 header read by listen/proxy.rs
//!     ▼           ── Engine::receive: the one call every listener makes ──
//!  admit          stages/admit.rs   parse (wire/), ACL, rate limit               → REFUSED / FORMERR / drop
//!     ▼
//!  block verdict  stages/policy.rs  the blocklist snapshot, by suffix           → block answer (stages/answer.rs)
//!     ▼
//!  local data     stages/local.rs   [[local_records]], locally served zones     → local answer
//!     ▼
//!  cache          stages/cache.rs   encoded answers keyed by name, type, flags  → cached answer
//!     ▼           ── Engine::resolve: in a task of its own ──
//!  resolve        resolve/          iterate/ from the roots, or forwarding      → SERVFAIL + EDE on failure
//!     ▼
//!  CNAME re-check engine.rs         a chain through a blocked name              → block answer
//!     ▼
//!  answer         stages/answer.rs  the one encoder of resolved answers, the AD rule; cached
//!     ▼
//!  on_block       engine.rs         for every block: the metric by category and street,
//!                                   the hit event for the reporter, the alert (never waits)
//! ```
//!
//! Everything up to the cache is answered from the receive loop with no allocation
//! and no task; only a query that must be resolved leaves it. Counting, latency
//! and the dnstap log are the engine's, the same for every transport.

pub mod engine;
pub mod listen;
pub mod resolve;
pub mod stages;
pub mod wire;
