//! What `fanzha check-config` (and `serve`, at start) finds in a valid config that
//! would trip `serve` up, or work but not as meant: list directories that are not
//! there, listeners on addresses this machine does not have, a sinkhole where no
//! warning page listens. The decisions are pure but for the file system and the
//! one question asked of the machine ([`is_local`]), which tests answer themselves.

use std::net::IpAddr;
use std::path::Path;

use super::Config;

/// The certificates and keys `serve` will load: DNS over TLS and HTTPS's (which must
/// cover the private DNS names), and the one signing the setup profiles.
fn certificates(c: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some((cert, key)) = &c.server.tls {
        if let Err(e) = crate::http::tls_acceptor(cert, key, "server", &[b"dot"]) {
            problems.push(format!("{e}; give a PEM certificate chain and its key"));
        }
        problems.extend(uncovered_names(c, cert));
    }
    if let Some((cert, key)) = &c.warnpage.profile_signer
        && let Err(e) = crate::cms::ProfileSigner::load(cert, key)
    {
        problems.push(format!(
            "{e}; give the PEM chain and key that sign the setup profiles, or leave both empty"
        ));
    }
    problems
}

/// The private DNS names (`server.dns_name` and `<id>.<dns_name>` of each place)
/// that the certificate in `cert` does not cover: a phone would refuse them.
pub fn uncovered_names(c: &Config, cert: &Path) -> Vec<String> {
    use rustls_pki_types::pem::PemObject;
    let d = &c.server.dns_name;
    if d.is_empty() {
        return Vec::new();
    }
    let Some(Ok(der)) = rustls_pki_types::CertificateDer::pem_file_iter(cert)
        .ok()
        .and_then(|mut i| i.next())
    else {
        // Not readable: the load above says so.
        return Vec::new();
    };
    let Ok(leaf) = webpki::EndEntityCert::try_from(&der) else {
        return vec![format!(
            "server.tls_cert: {} is not a certificate rustls can read; give the PEM chain, the server's certificate first",
            cert.display()
        )];
    };
    let names = std::iter::once(d.clone()).chain(c.places.ids().map(|(id, _)| format!("{id}.{d}")));
    names
        .filter(|n| {
            let Ok(name) = rustls_pki_types::ServerName::try_from(n.as_str()) else {
                return true;
            };
            leaf.verify_is_valid_for_subject_name(&name).is_err()
        })
        .map(|n| {
            format!(
                "server.tls_cert: {} does not cover {n} (server.dns_name, [[places]] id); get one for {d} and *.{d}",
                cert.display()
            )
        })
        .collect()
}

/// Whether `ip` is this machine's: a socket can be bound to it (any port).
pub fn is_local(ip: IpAddr) -> bool {
    ip.is_unspecified()
        || std::net::TcpListener::bind((ip, 0)).is_ok()
        || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// What `serve` would trip over in a valid config (problems), and what would work
/// but not as meant (warnings), each with its key and the fix. `local` says whether
/// an address is this machine's ([`is_local`]).
pub fn check(c: &Config, local: &dyn Fn(IpAddr) -> bool) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    problems.extend(missing_dirs(c));
    problems.extend(certificates(c));
    let https = c.server.listen_https.iter();
    let pages = c.warnpage.listen.iter().chain(&c.warnpage.https);
    for (key, a) in c
        .server
        .listen
        .iter()
        .map(|a| ("server.listen", a))
        .chain(c.server.listen_tls.iter().map(|a| ("server.listen_tls", a)))
        .chain(https.map(|a| ("server.listen_https", a)))
        .chain(pages.clone().map(|a| ("warnpage.listen", a)))
        .chain(c.url.listen.iter().map(|a| ("url.listen", a)))
        .chain(c.url.listen_tls.iter().map(|a| ("url.listen_tls", a)))
    {
        if !local(a.ip()) {
            problems.push(format!(
                "{key}: {} is not an address of this machine; use one it has (ip -brief addr)",
                a.ip()
            ));
        }
    }
    let sink_ips: Vec<IpAddr> = std::iter::once(IpAddr::V4(c.sinkhole.v4))
        .chain(c.sinkhole.v6.map(IpAddr::V6))
        .collect();
    let shown = |ip: IpAddr| {
        pages.clone().any(|a| {
            a.ip() == ip
                || (a.ip().is_unspecified() && a.is_ipv4() == ip.is_ipv4())
                // A loopback sinkhole is reached from this machine only, where a
                // refused connection fails at once and the browser tries the
                // blocked name's other address: a page on the other family's
                // loopback sinkhole serves both.
                || (ip.is_loopback() && a.is_ipv4() != ip.is_ipv4() && sink_ips.contains(&a.ip()))
        })
    };
    let sinks = std::iter::once(IpAddr::V4(c.sinkhole.v4))
        .chain(c.sinkhole.v6.map(IpAddr::V6))
        .filter(|ip| !ip.is_unspecified());
    for ip in sinks.clone().filter(|ip| !local(*ip)) {
        warnings.push(format!(
            "sinkhole: blocked names point to {ip}, which is not an address of this machine: \
             they are blocked, but residents see no warning page; set [sinkhole] to this \
             appliance's address (ip -brief addr)"
        ));
    }
    if !c.warnpage.listen.is_empty() || !c.warnpage.https.is_empty() {
        for ip in sinks.filter(|ip| local(*ip) && !shown(*ip)) {
            warnings.push(format!(
                "sinkhole: blocked names point to {ip}, where the warning page does not listen \
                 (warnpage.listen); residents would see no page: listen there, or change the sinkhole"
            ));
        }
    }
    (problems, warnings)
}

/// The list directories `serve` would not find (none with a precompiled list).
fn missing_dirs(c: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if c.blocklist.compiled.is_none() {
        for (key, dirs) in [
            ("blocklist.dirs", &c.blocklist.dirs),
            ("blocklist.allow_dirs", &c.blocklist.allow_dirs),
        ] {
            // The sources' directory is made by `serve` before the first compile.
            let made = |d: &Path| c.sources.iter().any(|s| s.file.parent() == Some(d));
            for d in dirs.iter().filter(|d| !d.is_dir() && !made(d)) {
                problems.push(format!(
                    "{key}: {} is not a directory; create it (it may be empty) or fix the path",
                    d.display()
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> (tempfile::TempDir, Config) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("l")).unwrap();
        let t = format!("[blocklist]\ndirs = [\"l\"]\nallow_dirs = []\n{text}");
        let c = super::super::RawConfig::from_toml(&t, "t.toml")
            .unwrap()
            .validate(d.path(), None)
            .unwrap();
        (d, c)
    }

    /// Every address is this machine's but 192.0.2.1.
    fn local(ip: IpAddr) -> bool {
        ip != "192.0.2.1".parse::<IpAddr>().unwrap()
    }

    #[test]
    fn a_loopback_sinkhole_is_served_by_a_page_on_the_other_familys_loopback() {
        // The defaults: ::1 and 127.0.0.1, the page on 127.0.0.1 only.
        let (p, w) = check(&cfg("").1, &local);
        assert!(p.is_empty() && w.is_empty(), "{p:?} {w:?}");
        // 127.0.0.2 is another address: a page on 127.0.0.1 does not serve it.
        let (_, w) = check(
            &cfg("[sinkhole]\nipv4 = \"127.0.0.2\"\nipv6 = \"none\"\n").1,
            &local,
        );
        assert!(w.iter().any(|w| w.contains("127.0.0.2")), "{w:?}");
        // ::1 with a page on 127.0.0.1, while A points elsewhere: no fallback there.
        let (_, w) = check(&cfg("[sinkhole]\nipv4 = \"10.0.0.53\"\n").1, &local);
        assert!(w.iter().any(|w| w.contains("::1")), "{w:?}");
    }

    #[test]
    fn addresses_the_machine_lacks_are_problems_for_listeners_and_warnings_for_the_sinkhole() {
        let (p, w) = check(
            &cfg(
                "[warnpage]\nlisten = [\"192.0.2.1:80\"]\n[sinkhole]\nipv4 = \"192.0.2.1\"\nipv6 = \"none\"\n",
            )
            .1,
            &local,
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("warnpage.listen: 192.0.2.1")),
            "{p:?}"
        );
        assert!(
            w.iter()
                .any(|w| w.contains("not an address of this machine")),
            "{w:?}"
        );
    }
}
