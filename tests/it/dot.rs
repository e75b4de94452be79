//! DNS over TLS (RFC 7858): the same answers as over UDP, inside TLS 1.2 or 1.3 with
//! ALPN `dot`, sessions resumed; a real client (`kdig +tls`, Debian's knot-dnsutils) gets them too; a
//! client that never finishes its handshake is closed; a config without the
//! certificate is refused naming the key.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// A new CA in `ca_file`, and a certificate for 127.0.0.1 it signed in cert.pem and
/// key.pem (where the appliance reads them).
fn new_certificate(dir: &Path, ca_file: &str) {
    let (ca, cert, key) = test_ca();
    std::fs::write(dir.join(ca_file), ca).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

/// A CA, a certificate for 127.0.0.1 signed by it, and the appliance's config.
fn setup(dir: &Path) -> String {
    new_certificate(dir, "ca.pem");
    format!(
        "{}[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n[sinkhole]\nipv4 = \"10.53.53.53\"\n\
         [server]\nlisten_tls = [\"127.0.0.1:0\"]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\ntls_handshake_timeout = 1\n",
        lists_toml(dir)
    )
}

fn client(
    dir: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    client_of(dir, "ca.pem", versions)
}

/// A client trusting the CA in `ca_file` only.
pub fn client_of(
    dir: &Path,
    ca_file: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join(ca_file)).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"dot".to_vec()];
    cfg
}

type Dot = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A DoT connection to `f` (the handshake done, or its error).
fn connect(f: &Fanzha, cfg: rustls::ClientConfig) -> std::io::Result<Dot> {
    let server = rustls_pki_types::ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let conn = rustls::ClientConnection::new(Arc::new(cfg), server).unwrap();
    let tcp = TcpStream::connect(f.dot.unwrap())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Send one query's bytes as a frame on an open connection; the answer's bytes.
fn exchange(tls: &mut Dot, q: &[u8]) -> Vec<u8> {
    let mut frame = (q.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(q);
    tls.write_all(&frame).unwrap();
    let mut len = [0u8; 2];
    tls.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
    tls.read_exact(&mut resp).unwrap();
    resp
}

/// One query on an open connection.
fn query(tls: &mut Dot, name: &str) -> Message {
    let q = make_query(&format!("{name}."), RecordType::A, true)
        .to_vec()
        .unwrap();
    Message::from_vec(&exchange(tls, &q)).unwrap()
}

/// One query with the EDNS Padding option (RFC 7830), on an open connection: the
/// answer's bytes.
fn padded_query(tls: &mut Dot, name: &str) -> Vec<u8> {
    let mut q = make_query(&format!("{name}."), RecordType::A, true)
        .to_vec()
        .unwrap();
    let n = q.len();
    assert_eq!(&q[n - 2..], &[0, 0], "the query ends with an empty OPT");
    q[n - 2..].copy_from_slice(&4u16.to_be_bytes());
    q.extend_from_slice(&[0, 12, 0, 0]);
    exchange(tls, &q)
}

/// Ask `name` over a new DoT connection: the answer, and the ALPN protocol agreed.
fn ask_dot(f: &Fanzha, cfg: rustls::ClientConfig, name: &str) -> (Message, Option<Vec<u8>>) {
    let mut tls = connect(f, cfg).unwrap();
    let m = query(&mut tls, name);
    (m, tls.conn.alpn_protocol().map(<[u8]>::to_vec))
}

#[test]
fn dns_over_tls_answers_as_udp_does() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fanzha::start(dir.path(), &setup(dir.path()));
    assert!(
        f.dot.is_some(),
        "no DoT listener in the log:\n{}",
        f.log_text()
    );
    let sinkhole = vec![IpAddr::V4(Ipv4Addr::new(10, 53, 53, 53))];
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let (m, alpn) = ask_dot(&f, client(dir.path(), versions), "www.blocked.example.test");
        assert_eq!(ips(&m), sinkhole, "{versions:?}");
        assert_eq!(alpn.as_deref(), Some(&b"dot"[..]), "{versions:?}");
    }
    // The same answer as over UDP, the EDE naming the category included.
    let udp_answer = udp(f.dns, "www.blocked.example.test.", RecordType::A);
    let (dot_answer, _) = ask_dot(
        &f,
        client(dir.path(), &[&rustls::version::TLS13]),
        "www.blocked.example.test",
    );
    assert_eq!(dot_answer.answers, udp_answer.answers);
    assert_eq!(
        dot_answer.metadata.response_code,
        udp_answer.metadata.response_code
    );

    // Padding: asked for, the answers come in 468-octet blocks, whatever the name;
    // not asked for, they do not.
    let mut tls = connect(&f, client(dir.path(), &[&rustls::version::TLS13])).unwrap();
    for name in [
        "www.blocked.example.test",
        "a.much.longer.name.under.scam.example.test",
    ] {
        let resp = padded_query(&mut tls, name);
        assert_eq!(resp.len(), 468, "{name}");
        assert_eq!(ips(&Message::from_vec(&resp).unwrap()), sinkhole, "{name}");
    }
    assert_ne!(
        query(&mut tls, "www.blocked.example.test")
            .to_vec()
            .unwrap()
            .len()
            % 468,
        0
    );

    // A phone coming back resumes its session, TLS 1.3 (ticket) and 1.2 (session
    // id) alike: no certificate or key exchange the second time.
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let cfg = client(dir.path(), versions);
        let mut first = connect(&f, cfg.clone()).unwrap();
        assert_eq!(
            first.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
        // The answer comes after the TLS 1.3 tickets, so they are read by then.
        assert_eq!(
            ips(&query(&mut first, "www.blocked.example.test")),
            sinkhole
        );
        let mut again = connect(&f, cfg).unwrap();
        assert_eq!(
            again.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "{versions:?}"
        );
        assert_eq!(
            ips(&query(&mut again, "www.blocked.example.test")),
            sinkhole
        );
    }

    // A real client: kdig, verifying the certificate against the test CA.
    let port = f.dot.unwrap().port().to_string();
    let out = Command::new("kdig")
        .args([
            "@127.0.0.1",
            "-p",
            &port,
            "+tls",
            "+tls-ca=ca.pem",
            "+tls-hostname=127.0.0.1",
            "www.blocked.example.test",
            "A",
        ])
        .current_dir(dir.path())
        .output()
        .expect("kdig (Debian's knot-dnsutils; scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("10.53.53.53") && text.contains("TLS"),
        "kdig:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A client that opens a connection and never says hello holds no slot for long.
    let mut idle = TcpStream::connect(f.dot.unwrap()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let mut b = [0u8; 16];
    let n = idle.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "the server closes a silent handshake");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "closed after {:?}",
        t.elapsed()
    );
}

#[test]
fn a_renewed_certificate_is_taken_on_sighup_and_open_connections_stay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = Fanzha::start(d, &setup(d));
    let tls13 = [&rustls::version::TLS13];
    let mut open = connect(&f, client(d, &tls13)).unwrap();
    assert_eq!(
        query(&mut open, "www.blocked.example.test").answers.len(),
        1
    );
    // certbot renews: a new certificate, from another CA here, in the same files.
    new_certificate(d, "ca2.pem");
    f.signal("HUP");
    assert!(
        f.wait_log("DNS over TLS: certificate re-read", Duration::from_secs(10)),
        "{}",
        f.log_text()
    );
    // New handshakes get the new certificate; the old CA no longer verifies it.
    let (m, _) = ask_dot(
        &f,
        client_of(d, "ca2.pem", &tls13),
        "www.blocked.example.test",
    );
    assert_eq!(m.answers.len(), 1);
    assert!(
        connect(&f, client(d, &tls13)).is_err(),
        "the old certificate is still served"
    );
    // The connection opened before the renewal is still served.
    assert_eq!(query(&mut open, "scam.example.test").answers.len(), 1);
    // A broken file at the next SIGHUP leaves the renewed certificate in force.
    std::fs::write(d.join("cert.pem"), "half written\n").unwrap();
    f.signal("HUP");
    assert!(
        f.wait_log("the certificate did not load", Duration::from_secs(10)),
        "{}",
        f.log_text()
    );
    assert_eq!(
        ask_dot(
            &f,
            client_of(d, "ca2.pem", &tls13),
            "www.blocked.example.test"
        )
        .0
        .answers
        .len(),
        1
    );
}

#[test]
fn dns_over_tls_without_a_certificate_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.toml"),
        "[server]\nlisten_tls = [\"127.0.0.1:8853\"]\n",
    )
    .unwrap();
    let (code, text) = run_status(&["check-config", "--config", "f.toml"], dir.path());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("server.listen_tls") && text.contains("tls_cert"),
        "{text}"
    );
}
