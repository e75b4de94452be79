//! The name a TLS client asks for (SNI), read from its first record without
//! answering it: the proxy decides from it whether to open the connection (a
//! managed place), relay it unopened (any other place), or refuse it (a host with
//! no path rules). Pure; fuzzed (`fuzz/fuzz_targets/sni.rs`).

/// What the bytes read so far come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// The ClientHello is not complete yet: read at least this many bytes in all.
    Need(usize),
    /// A ClientHello; the host name it asks for, lower-case, if it names one.
    Name(Option<String>),
    /// Not a TLS ClientHello (or one fanzha does not read: split over records).
    NotTls,
}

/// The largest first record read (a TLS record holds at most 16 KiB and its header).
pub const MAX_RECORD: usize = 5 + 16 * 1024;

/// Read the ClientHello at the start of `buf`.
pub fn client_hello(buf: &[u8]) -> Hello {
    if buf.len() < 5 {
        return Hello::Need(5);
    }
    if buf[0] != 0x16 || buf[1] != 3 {
        return Hello::NotTls;
    }
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if len > MAX_RECORD - 5 {
        return Hello::NotTls;
    }
    if buf.len() < 5 + len {
        return Hello::Need(5 + len);
    }
    match parse(&buf[5..5 + len]) {
        Some(name) => Hello::Name(name),
        None => Hello::NotTls,
    }
}

/// A cursor over a byte slice that stops (returns `None`) at the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    /// A vector with a length prefix of `width` bytes.
    fn vec(&mut self, width: usize) -> Option<Reader<'a>> {
        let n = match width {
            1 => self.u8()?,
            2 => self.u16()?,
            _ => self.u24()?,
        };
        self.take(n).map(Reader)
    }
}

/// The handshake message of one record: `Some(name)` for a whole ClientHello.
fn parse(record: &[u8]) -> Option<Option<String>> {
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None;
    }
    let mut hello = r.vec(3)?;
    hello.take(2 + 32)?; // version, random
    hello.vec(1)?; // session id
    hello.vec(2)?; // cipher suites
    hello.vec(1)?; // compression methods
    if hello.0.is_empty() {
        return Some(None);
    }
    let mut exts = hello.vec(2)?;
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut data = exts.vec(2)?;
        if kind != 0 {
            continue;
        }
        let mut names = data.vec(2)?;
        while !names.0.is_empty() {
            let t = names.u8()?;
            let name = names.vec(2)?.0;
            if t == 0 {
                let s = std::str::from_utf8(name).ok()?;
                let s = s.strip_suffix('.').unwrap_or(s);
                if s.is_empty() || s.len() > 253 {
                    return None;
                }
                return Some(Some(s.to_ascii_lowercase()));
            }
        }
        return Some(None);
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as rustls writes it, for `name`.
    fn hello(name: Option<&str>) -> Vec<u8> {
        use std::sync::Arc;
        let roots = rustls::RootCertStore::empty();
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server = match name {
            Some(n) => rustls_pki_types::ServerName::try_from(n.to_string()).unwrap(),
            None => rustls_pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        };
        let mut c = rustls::ClientConnection::new(Arc::new(cfg), server).unwrap();
        let mut out = Vec::new();
        c.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn the_name_of_a_real_client_hello_is_read_byte_by_byte() {
        let h = hello(Some("Sites.Example"));
        for cut in 0..h.len() {
            match client_hello(&h[..cut]) {
                Hello::Need(n) => assert!(n > cut, "{cut}"),
                other => panic!("{cut}: {other:?}"),
            }
        }
        assert_eq!(client_hello(&h), Hello::Name(Some("sites.example".into())));
        let mut more = h.clone();
        more.extend_from_slice(b"application data after it");
        assert_eq!(
            client_hello(&more),
            Hello::Name(Some("sites.example".into()))
        );
        assert_eq!(client_hello(&hello(None)), Hello::Name(None));
    }

    #[test]
    fn other_bytes_are_not_tls() {
        assert_eq!(client_hello(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(client_hello(&[0x16, 3, 1, 0xff, 0xff]), Hello::NotTls);
        let mut h = hello(Some("a.example"));
        h[5] = 2; // not a ClientHello
        assert_eq!(client_hello(&h), Hello::NotTls);
        let mut h = hello(Some("a.example"));
        let n = h.len();
        h[n - 1] ^= 0xff; // still parses or not, never panics
        let _ = client_hello(&h);
    }
}
