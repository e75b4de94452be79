//! The name-server addresses recursion never asks (Unbound's `iter_donotq.c`), so
//! that a name cannot point the appliance at the district's own network.

use ipnet::IpNet;

/// Name-server addresses never asked unless allowed (loopback, private, reserved):
/// the same list as hickory's recursor, so that a name cannot point fanzha at the
/// district's own network.
pub fn default_deny() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "0.0.0.0/8",
        "255.255.255.255/32",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "::1/128",
        "::/128",
        "100::/64",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/64",
        "ff00::/8",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}
