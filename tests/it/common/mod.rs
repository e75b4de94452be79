//! Test helpers: a local authoritative DNS hierarchy on loopback ([`hierarchy`]),
//! the real `fanzha` binary as a child process ([`fanzha`]), and small DNS and HTTP
//! clients ([`client`]), nginx serving files over HTTPS ([`nginx`]), and the real district platform
//! ([`district_platform`]).
#![allow(dead_code)]

mod client;
mod district_platform;
mod fanzha;
mod hierarchy;
mod lab;
mod nginx;
mod platform;

// Each area (and tests/cache_memory.rs) uses some of these, none uses all.
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use district_platform::*;
#[allow(unused_imports)]
pub use fanzha::*;
#[allow(unused_imports)]
pub use hierarchy::*;
#[allow(unused_imports)]
pub use lab::*;
#[allow(unused_imports)]
pub use nginx::*;
#[allow(unused_imports)]
pub use platform::*;
