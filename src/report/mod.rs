//! Reporting hits to the district platform: events, the on-disk spool, delivery.

pub mod event;
pub mod pipeline;
pub mod sender;
pub mod spool;
