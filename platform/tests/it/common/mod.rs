//! Helpers: the real `fanzha-platform` binary on loopback, a cookie-keeping HTTP
//! client that logs in through the form, signed event batches as an appliance sends
//! them, and a throw-away PostgreSQL server.
#![allow(dead_code)]

pub mod client;
pub mod pg;
pub mod server;
pub mod webdriver;

pub use client::*;
pub use pg::*;
pub use server::*;
pub use webdriver::*;
