//! Reporting hits to the district platform: events, their pipeline through the
//! outbox ([`crate::outbox`]), delivery.

pub mod event;
pub mod pipeline;
pub mod sender;

pub use crate::config::ReportConfig;
