//! The stages of a query that need no I/O: admission, the block verdict and its
//! answer, local data, the answer cache. Pure decisions over a packet's bytes,
//! tested without sockets; [`crate::dns::engine`] runs them in order.

pub mod admit;
pub mod answer;
pub mod cache;
pub mod local;
pub mod policy;
