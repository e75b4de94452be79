//! Where recursion starts: the root servers (the IANA hints, or `[resolver]
//! root_hints`), and the port map for name servers on other ports than 53 (Unbound's
//! `iter_hints.c`).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::ResolverConfig;

/// The IANA root servers (a–m), IPv4 and IPv6.
pub const ROOT_HINTS: &[&str] = &[
    "198.41.0.4",
    "2001:503:ba3e::2:30",
    "170.247.170.2",
    "2801:1b8:10::b",
    "192.33.4.12",
    "2001:500:2::c",
    "199.7.91.13",
    "2001:500:2d::d",
    "192.203.230.10",
    "2001:500:a8::e",
    "192.5.5.241",
    "2001:500:2f::f",
    "192.112.36.4",
    "2001:500:12::d0d",
    "198.97.190.53",
    "2001:500:1::53",
    "192.36.148.17",
    "2001:7fe::53",
    "192.58.128.30",
    "2001:503:c27::2:30",
    "193.0.14.129",
    "2001:7fd::1",
    "199.7.83.42",
    "2001:500:9f::42",
    "202.12.27.33",
    "2001:dc3::35",
];

/// The root servers to start from, and the port map with any root hint's port.
pub(super) fn roots_and_ports(c: &ResolverConfig) -> (Vec<IpAddr>, Vec<(IpNet, u16)>) {
    let mut ports = c.nameserver_ports.clone();
    for h in &c.root_hints {
        if h.port() != 53 {
            ports.insert(0, (IpNet::from(h.ip()), h.port()));
        }
    }
    let roots = if c.root_hints.is_empty() {
        ROOT_HINTS.iter().filter_map(|s| s.parse().ok()).collect()
    } else {
        c.root_hints.iter().map(|h| h.ip()).collect()
    };
    (roots, ports)
}
