//! Stand-in for hickory's workspace-internal `test_support` crate, which the published
//! hickory-net does not ship: enough for the crate's own unit tests to build here.

/// Hickory's version installs a tracing subscriber for the test; logs are not needed.
pub fn subscribe() {}
