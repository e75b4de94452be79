//! The DNS side: wire-level parsing and synthesis, the per-query decision, resolver
//! backends and the UDP/TCP listeners.

pub mod cache;
pub mod resolve;
pub mod server;
pub mod udp_batch;
pub mod wire;
