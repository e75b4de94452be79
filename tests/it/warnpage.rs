//! The warning page over real HTTP, served by the real binary.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;

/// `GET /` for `host` from 127.0.0.2 (another household than the tests' 127.0.0.1):
/// the whole response.
fn get_from_another_address(http: std::net::SocketAddr, host: &str) -> String {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .unwrap();
    s.connect(&http.into()).unwrap();
    let mut s: TcpStream = s.into();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    std::io::Read::read_to_string(&mut s, &mut page).unwrap();
    page
}

fn start() -> (tempfile::TempDir, Fanzha) {
    let dir = tempfile::tempdir().unwrap();
    let toml = category_lists(dir.path());
    let f = Fanzha::start(dir.path(), &toml);
    (dir, f)
}

#[test]
fn every_category_gets_its_page_with_safe_headers() {
    let (_d, f) = start();
    let http = f.http.expect("warning page address in the log");
    for (c, title) in CATEGORIES {
        let r = http_get_host(http, &format!("www.{c}.scam.test"), "/login?x=1");
        assert_eq!(r.status, 200, "{c}");
        assert!(
            r.body.contains(title),
            "{c}: {}",
            &r.body[..200.min(r.body.len())]
        );
        assert!(r.body.contains("96110"), "{c}");
        assert!(r.body.contains("国家反诈中心"), "{c}");
        assert!(
            r.body.contains(&format!("www.{c}.scam.test/login?x=1")),
            "{c}: the blocked address is shown"
        );
        // docs/warning-page.md says "under 6 KB".
        assert!(r.body.len() < 6 * 1024, "{c}: {} bytes", r.body.len());
        assert!(
            !r.body.contains("http://")
                && !r.body.contains("https://")
                && !r.body.contains("<script"),
            "{c}: self-contained"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("same-origin"));
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
            "{csp}"
        );
    }
    // the pages differ per category
    let a = http_get_host(http, "loan.scam.test", "/").body;
    let b = http_get_host(http, "phishing.scam.test", "/").body;
    assert_ne!(a, b);
    // a host that is not blocked: the neutral page, never a proxy
    let r = http_get_host(http, "www.bilibili.com", "/");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("不在拦截名单中"), "{}", r.body);
    assert!(!r.body.contains("虚假网络贷款"));
    let (_, metrics) = f.http_get("/metrics");
    assert!(
        metrics.contains("fanzha_warnpage_views_total{category=\"loan\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fanzha_warnpage_views_total{category=\"none\"} 1"),
        "{metrics}"
    );
}

#[test]
fn attacker_controlled_host_and_path_are_escaped() {
    let (_d, f) = start();
    let http = f.http.unwrap();
    let r = http_get_host(http, "<script>alert(1)</script>.evil.top", "/");
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("<script>alert(1)"), "{}", r.body);
    assert!(
        r.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;.evil.top")
    );
    // a path with "><img onerror=…> as a browser sends it (percent-encoded) is shown
    // decoded and escaped, on the neutral and on the blocked page
    for host in ["www.bilibili.com", "loan.scam.test"] {
        let r = http_get_host(http, host, "/%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E");
        assert_eq!(r.status, 200);
        assert!(!r.body.contains("<img src=x"), "{}", r.body);
        assert!(
            r.body
                .contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
            "{}",
            r.body
        );
    }
    // sent raw, the request line is invalid and hyper refuses it before any page
    let r = http_raw(http, b"GET /\"><img src=x onerror=alert(1)> HTTP/1.1\r\nHost: loan.scam.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(!r.body.contains("<img"));
}

#[test]
fn methods_oversize_headers_and_slow_clients() {
    let (_d, f) = start();
    let http = f.http.unwrap();
    let r = http_raw(
        http,
        b"HEAD / HTTP/1.1\r\nHost: loan.scam.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "HEAD has no body");
    for m in ["PUT", "DELETE", "POST"] {
        let r = http_raw(http, format!("{m} / HTTP/1.1\r\nHost: loan.scam.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
        assert_eq!(r.status, 405, "{m}");
    }
    let big = "a".repeat(64 * 1024);
    let r = http_raw(
        http,
        format!("GET / HTTP/1.1\r\nHost: loan.scam.test\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 431);

    // 500 clients that send half a request and stall (from one address: 32 of
    // them are kept, the rest closed), and a resident on another address.
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(http).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: loan.scam.te");
        slow.push(s);
    }
    let t = Instant::now();
    let page = get_from_another_address(http, "loan.scam.test");
    let took = t.elapsed();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        took < Duration::from_secs(1),
        "served in {took:?} with 500 slow clients"
    );
    drop(slow);
}

fn token_of(body: &str) -> String {
    let i = body.find("name=\"token\" value=\"").expect("token field")
        + "name=\"token\" value=\"".len();
    body[i..].split('"').next().unwrap().to_string()
}

fn post_appeal(f: &Fanzha, host_header: &str, form: &str, origin: Option<&str>) -> HttpResponse {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /.well-known/fanzha/appeal HTTP/1.1\r\nHost: {host_header}\r\n{origin}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    http_raw(f.http.unwrap(), req.as_bytes())
}

#[test]
fn appeal_round_trip() {
    let (_d, f) = start();
    let page = http_get_host(f.http.unwrap(), "loan.scam.test", "/").body;
    let token = token_of(&page);
    let form = format!("host=loan.scam.test&token={token}&reason=%E6%88%91%E7%9A%84%E5%BA%97");
    let r = post_appeal(&f, "loan.scam.test", &form, Some("http://loan.scam.test"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("申诉已收到") || r.body.contains("您的申诉已收到"),
        "{}",
        r.body
    );
    assert!(f.wait_log("appeal received", Duration::from_secs(2)));
    let (_, m) = f.http_get("/metrics");
    assert!(m.contains("fanzha_appeals_total 1"), "{m}");
    // a post from another site is refused
    let r = post_appeal(&f, "loan.scam.test", &form, Some("http://attacker.example"));
    assert_eq!(r.status, 403);
    // An opaque origin (a sandboxed frame, a data: page) is not this page's.
    let r = post_appeal(&f, "loan.scam.test", &form, Some("null"));
    assert_eq!(r.status, 403);
    // a forged token is refused
    let r = post_appeal(
        &f,
        "loan.scam.test",
        "host=loan.scam.test&token=00&reason=x",
        None,
    );
    assert_eq!(r.status, 403);
    // a token for another host is refused
    let r = post_appeal(
        &f,
        "phishing.scam.test",
        &format!("host=phishing.scam.test&token={token}"),
        None,
    );
    assert_eq!(r.status, 403);
    // at most 5 appeals per device per 10 minutes
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(post_appeal(&f, "loan.scam.test", &form, None).status);
    }
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 2, "{codes:?}");
}

#[test]
fn https_only_with_a_certificate() {
    // without a certificate no HTTPS listener is opened
    let (_d, f) = start();
    assert!(f.https.is_none());
    assert!(!f.log_text().contains("(https)"));

    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["loan.scam.test".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let toml = format!(
        "{}[warnpage]\nlisten = [\"127.0.0.1:0\"]\nhttps_listen = [\"127.0.0.1:0\"]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
        category_lists(dir.path())
    );
    let f = Fanzha::start(dir.path(), &toml);
    let addr = f.https.expect("https listener");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("loan.scam.test").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: loan.scam.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut tls, &mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("虚假网络贷款"));
}

/// True when the server has closed `s` (EOF or reset), after a short wait.
fn closed_by_server(mut s: &TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut b = [0u8; 64];
    match std::io::Read::read(&mut s, &mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn one_address_cannot_hold_every_connection() {
    let (_d, f) = start();
    let http = f.http.unwrap();
    // 40 idle connections from one address: 32 are kept, the rest closed at once.
    let conns: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(http).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let closed = conns.iter().filter(|s| closed_by_server(s)).count();
    assert_eq!(
        closed, 8,
        "of 40 connections from one address, {closed} were closed"
    );
    // Another address still gets the page.
    let page = get_from_another_address(http, "blocked.example.test");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    drop(conns);
}
