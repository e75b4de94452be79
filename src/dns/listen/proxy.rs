//! The PROXY protocol, version 2 (the binary header HAProxy defined and dnsdist sends
//! with `useProxyProtocol=true`): a load balancer in front of fanzha tells it who the
//! client is, so that the ACL, the rate limit, `[[places]]`, the reports and the query
//! log see the resident and not the balancer. Taken only from `[server] proxy_from`:
//! from anyone else a header would be a spoofed address.
//!
//! Over UDP every datagram starts with a header; over TCP the connection does, once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Bytes before the address block: signature, version/command, family/protocol, length.
pub const FIXED: usize = 16;

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Its length: the DNS message starts here.
    pub len: usize,
    /// The client and the address it connected to, for a PROXY command over IP;
    /// `None` for LOCAL (the balancer's own health check) or another family.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Fewer bytes than the header says (TCP: read more).
    #[error("a PROXY header cut short")]
    Short,
    /// No v2 signature, another version, or an unknown command.
    #[error("not a PROXY protocol v2 header")]
    NotProxy,
    /// An address block too small for its family.
    #[error("a PROXY header with a broken address block")]
    Broken,
}

/// The header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Header, ProxyError> {
    if buf.len() < FIXED {
        return if SIGNATURE.starts_with(buf) || buf.starts_with(&SIGNATURE) {
            Err(ProxyError::Short)
        } else {
            Err(ProxyError::NotProxy)
        };
    }
    if buf[..12] != SIGNATURE || buf[12] >> 4 != 2 {
        return Err(ProxyError::NotProxy);
    }
    let command = buf[12] & 0x0f;
    let body = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let len = FIXED + body;
    if buf.len() < len {
        return Err(ProxyError::Short);
    }
    let block = &buf[FIXED..len];
    let addresses = match (command, buf[13] >> 4) {
        // LOCAL: the sender speaking for itself (health checks).
        (0, _) => None,
        (1, 1) => {
            let b = block.get(..12).ok_or(ProxyError::Broken)?;
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]));
            let port = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        (1, 2) => {
            let b = block.get(..36).ok_or(ProxyError::Broken)?;
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let port = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        // PROXY for a Unix socket or an unspecified family: no IP to take.
        (1, _) => None,
        _ => return Err(ProxyError::NotProxy),
    };
    Ok(Header { len, addresses })
}

/// A v2 PROXY header for `client` → `server` (tests, and a sender's view of it).
pub fn encode(client: SocketAddr, server: SocketAddr, datagram: bool) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    let proto = if datagram { 2 } else { 1 };
    match (client.ip().to_canonical(), server.ip().to_canonical()) {
        (IpAddr::V4(c), IpAddr::V4(s)) => {
            out.push(0x10 | proto);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&c.octets());
            out.extend_from_slice(&s.octets());
        }
        (c, s) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            out.push(0x20 | proto);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(c).octets());
            out.extend_from_slice(&v6(s).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&server.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_for_both_families() {
        for (c, s) in [
            ("10.1.2.3:5353", "127.0.0.1:53"),
            ("[fd00::7]:40000", "[::1]:53"),
        ] {
            let (c, s): (SocketAddr, SocketAddr) = (c.parse().unwrap(), s.parse().unwrap());
            let mut buf = encode(c, s, true);
            let n = buf.len();
            buf.extend_from_slice(b"dns message");
            let h = parse(&buf).unwrap();
            assert_eq!(h.len, n);
            assert_eq!(h.addresses, Some((c, s)));
            assert_eq!(&buf[h.len..], b"dns message");
        }
    }

    #[test]
    fn local_tlvs_and_broken_headers() {
        // LOCAL with a TLV after an empty address block: no addresses, whole length.
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x04, 0x04, 0x00, 0x01, 0xff]);
        assert_eq!(
            parse(&local).unwrap(),
            Header {
                len: 20,
                addresses: None
            }
        );
        // Addresses followed by a TLV: the TLV is skipped with the rest of the block.
        let c: SocketAddr = "192.0.2.9:1234".parse().unwrap();
        let mut h = encode(c, "127.0.0.1:53".parse().unwrap(), false);
        h[15] += 4;
        h.extend_from_slice(&[0x03, 0x00, 0x01, 0x00]);
        assert_eq!(parse(&h).unwrap().len, 32);
        // A plain DNS message, v1 text, a cut header, a short address block.
        assert_eq!(parse(&[0u8; 40]), Err(ProxyError::NotProxy));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::NotProxy)
        );
        assert_eq!(parse(&h[..10]), Err(ProxyError::Short));
        assert_eq!(parse(&h[..20]), Err(ProxyError::Short));
        let mut short = encode(c, "127.0.0.1:53".parse().unwrap(), true);
        short[15] = 4;
        short.truncate(20);
        assert_eq!(parse(&short), Err(ProxyError::Broken));
    }
}
