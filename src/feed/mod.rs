//! The signed list feed: a district publishes its compiled list once, and every
//! appliance follows it within seconds, verifying each step.
//!
//! - [`manifest`]: the manifest and the checks before a list is served (pure).
//! - [`publish`]: `fanzha publish` and `fanzha keygen` on the build box.
//! - [`poll`]: the appliance's follower.
//! - [`sources`]: public lists fetched by URL (`[[sources]]`).
//! - [`http`]: the HTTP client both use.

pub mod manifest;
pub mod poll;
pub mod publish;
pub mod sources;
