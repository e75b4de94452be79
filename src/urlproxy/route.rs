//! The proxy's pure decisions: which host a request is for, where it may be
//! relayed, and which headers belong to one hop only.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName};
use ipnet::IpNet;

/// `host[:port]` of a `Host` header or a request's authority: the name
/// (normalised) and the port if one is given. `None`: not a name (an address, junk).
pub fn host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let a = authority.trim();
    if a.starts_with('[') {
        return None;
    }
    let (h, port) = match a.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (a, None),
    };
    if h.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some((crate::blocklist::name::normalize(h).ok()?, port))
}

/// Whether the proxy may open a connection to `ip`: a public address, or one in
/// `allowed` (`[url] relay_private`). Never the unspecified or a multicast address.
pub fn may_relay(ip: IpAddr, allowed: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    if ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    if allowed.iter().any(|n| n.contains(&ip)) {
        return true;
    }
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_broadcast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10, carrier NAT
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15, benchmarks
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_loopback()
                || (s[0] & 0xfe00) == 0xfc00 // ULA
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
                || (s[0] == 0x64 && s[1] == 0xff9)) // NAT64 local use
        }
    }
}

/// Headers of one connection (RFC 9110 §7.6.1), never passed on by a proxy.
const HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Take out the hop-by-hop headers, and the ones `Connection` names.
pub fn strip_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in HOP.iter().chain(&named) {
        h.remove(n);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_of_a_host_header() {
        assert_eq!(
            host_port("Sites.Example:8080"),
            Some(("sites.example".into(), Some(8080)))
        );
        assert_eq!(
            host_port("sites.example."),
            Some(("sites.example".into(), None))
        );
        assert_eq!(host_port("127.0.0.1:80"), None);
        assert_eq!(host_port("[::1]:80"), None);
        assert_eq!(host_port("a.example:99999"), None);
        assert_eq!(host_port("bad host"), None);
    }

    #[test]
    fn only_public_addresses_are_relayed_unless_configured() {
        let none: &[IpNet] = &[];
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
        ] {
            assert!(!may_relay(a.parse().unwrap(), none), "{a}");
        }
        for a in ["8.8.8.8", "223.5.5.5", "2400:3200::1", "::ffff:1.2.3.4"] {
            assert!(may_relay(a.parse().unwrap(), none), "{a}");
        }
        let lab: Vec<IpNet> = vec!["127.0.0.5/32".parse().unwrap()];
        assert!(may_relay("127.0.0.5".parse().unwrap(), &lab));
        assert!(!may_relay("127.0.0.6".parse().unwrap(), &lab));
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, X-Secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "text/html".parse().unwrap());
        strip_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }
}
