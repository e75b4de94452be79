//! DNS over HTTPS (RFC 8484) and the places' private DNS names, with real clients:
//! curl (HTTP/2 and HTTP/1.1, GET and POST, `--doh-url`), `dig +https` (BIND 9.18),
//! `kdig +tls` with a place's SNI, and headless Chromium on DoH landing on the
//! warning page. A client outside `[server] acl` is answered only when it names a
//! known place, and its hits count, and are reported, for that place.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::browser::{HEADLESS, chromium};
use crate::common::*;

/// A CA in ca.pem, and cert.pem / key.pem for 127.0.0.1, dns.test and *.dns.test.
fn certificate(dir: &Path) -> String {
    let (ca, cert, key) = test_ca_for(&["127.0.0.1", "dns.test", "*.dns.test"]);
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    key
}

/// The appliance: DoT and DoH on loopback, `acl` as given, the place 缤纷社区 named
/// `binfen` (no subnet), blocked names sinkholed to 127.0.0.1 where the warning
/// page listens, and `extra` TOML.
fn config(dir: &Path, acl: &str, extra: &str) -> String {
    certificate(dir);
    let lists = lists_toml(dir);
    std::fs::write(dir.join("lists/doh.txt"), "# category: loan\nviadoh.test\n").unwrap();
    format!(
        "{}[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n\
         [sinkhole]\nipv4 = \"127.0.0.1\"\nipv6 = \"none\"\n[warnpage]\nlisten = [\"127.0.0.1:0\"]\n\
         [server]\nlisten_tls = [\"127.0.0.1:0\"]\nlisten_https = [\"127.0.0.1:0\"]\n\
         tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\ndns_name = \"dns.test\"\nacl = {acl}\n\
         {extra}\n\
         [[places]]\nid = \"binfen\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\n",
        lists
    )
}

fn b64(m: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m)
}

fn query_bytes(name: &str) -> Vec<u8> {
    let mut q = make_query(&format!("{name}."), RecordType::A, true);
    q.metadata.id = 0;
    q.to_vec().unwrap()
}

/// curl with the test CA, in `dir`: its output (body to stdout).
fn curl(dir: &Path, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", "ca.pem"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("curl (Debian's curl; scripts/test.sh installs it)")
}

/// `-w` output after the body: "<status> <http version> <content type>".
const WRITE_OUT: &str = "\n%{http_code} %{http_version} %{content_type}";

fn split_out(out: &Output) -> (Vec<u8>, String) {
    let all = &out.stdout;
    let nl = all.iter().rposition(|&b| b == b'\n').unwrap();
    (
        all[..nl].to_vec(),
        String::from_utf8_lossy(&all[nl + 1..]).into_owned(),
    )
}

fn dig(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["+tls-ca=ca.pem", "+time=5", "+tries=1"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("dig (Debian's bind9-dnsutils; scripts/test.sh installs it)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn dns_over_https_speaks_http2_and_http1_get_and_post_and_refuses_what_is_not_dns() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fanzha::start(dir.path(), &config(dir.path(), "[\"127.0.0.0/8\"]", ""));
    let doh = f.doh.expect("a DoH listener in the log");
    let url = format!("https://127.0.0.1:{}/dns-query", doh.port());
    let q = query_bytes("www.blocked.example.test");
    let get_url = format!("{url}?dns={}", b64(&q));
    let udp_answer = udp(f.dns, "www.blocked.example.test.", RecordType::A);

    // GET over HTTP/2 (ALPN h2) and over HTTP/1.1; POST over both.
    let bodyfile = dir.path().join("q.bin");
    std::fs::write(&bodyfile, &q).unwrap();
    let post = [
        "--data-binary",
        "@q.bin",
        "-H",
        "Content-Type: application/dns-message",
    ];
    for (how, args) in [
        ("GET h2", vec!["--http2", &get_url[..]]),
        ("GET http/1.1", vec!["--http1.1", &get_url[..]]),
        ("POST h2", [&["--http2", &url[..]][..], &post].concat()),
        (
            "POST http/1.1",
            [&["--http1.1", &url[..]][..], &post].concat(),
        ),
    ] {
        let out = curl(dir.path(), &[&args[..], &["-w", WRITE_OUT]].concat());
        let (body, meta) = split_out(&out);
        let version = if how.ends_with("h2") { "2" } else { "1.1" };
        assert_eq!(
            meta,
            format!("200 {version} application/dns-message"),
            "{how}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m = Message::from_vec(&body).unwrap();
        assert_eq!(
            m.answers, udp_answer.answers,
            "{how}: the same answer as UDP"
        );
        assert_eq!(m.metadata.id, 0, "{how}");
    }
    // An HTTP cache may keep it for its TTL (RFC 8484 §5.1): the sinkhole's 60 s.
    let out = curl(dir.path(), &["-D", "-", "-o", "/dev/null", &get_url]);
    let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(headers.contains("cache-control: max-age=60"), "{headers}");

    // What is not a DNS query gets the HTTP status that says why.
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![0u8; 70_000]).unwrap();
    let other = format!("https://127.0.0.1:{}/other", doh.port());
    for (want, args) in [
        ("404", vec![&other[..]]),
        ("405", vec!["-X", "PUT", &url[..]]),
        ("400", vec![&format!("{url}?dns=!!notbase64")[..]]),
        ("400", vec![&url[..]]),
        (
            "415",
            vec![
                "--data-binary",
                "@q.bin",
                "-H",
                "Content-Type: text/plain",
                &url[..],
            ],
        ),
        (
            "413",
            [&["--data-binary", "@big.bin"][..], &post[2..], &[&url[..]]].concat(),
        ),
    ] {
        let out = curl(
            dir.path(),
            &[&args[..], &["-o", "/dev/null", "-w", "%{http_code}"]].concat(),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // dig +https (BIND 9.18): POST by default, GET with +https-get.
    let port = doh.port().to_string();
    for mode in ["+https", "+https-get"] {
        let text = dig(
            dir.path(),
            &[
                "@127.0.0.1",
                "-p",
                &port,
                mode,
                "www.blocked.example.test",
                "A",
            ],
        );
        assert!(
            text.contains("status: NOERROR")
                && text.contains("127.0.0.1")
                && text.contains("(HTTPS"),
            "dig {mode}:\n{text}"
        );
    }
    // curl resolves over DoH and lands on the warning page.
    let page = f.http.unwrap();
    let out = curl(
        dir.path(),
        &[
            "--doh-url",
            &url,
            &format!("http://www.blocked.example.test:{}/account", page.port()),
        ],
    );
    let html = String::from_utf8_lossy(&out.stdout);
    assert!(
        html.contains("96110") && html.contains("www.blocked.example.test"),
        "curl --doh-url got:\n{html}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(f.metric("fanzha_transport_queries_total{transport=\"doh\"}") >= 9.0);
    assert_eq!(
        f.metric("fanzha_transport_queries_total{transport=\"dot\"}"),
        0.0
    );
}

/// A DoT client to 127.0.0.1 asking for `sni`, trusting the test CA.
fn dot_client(
    dir: &Path,
    f: &Fanzha,
    sni: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let cfg = crate::dot::client_of(dir, "ca.pem", rustls::DEFAULT_VERSIONS);
    let name = rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let tcp = TcpStream::connect(f.dot.unwrap()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// One framed query on a DoT stream: the answer, or `None` when the server closed.
fn dot_ask(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    name: &str,
) -> Option<Message> {
    let q = query_bytes(name);
    let mut frame = (q.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&q);
    tls.write_all(&frame).ok()?;
    let mut len = [0u8; 2];
    tls.read_exact(&mut len).ok()?;
    let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
    tls.read_exact(&mut resp).ok()?;
    Message::from_vec(&resp).ok()
}

#[test]
fn a_named_place_from_outside_the_acl_is_answered_blocked_reported_and_counted_for_it() {
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    // 127.0.0.1, where the test's clients are, is outside the ACL: a phone on 4G.
    let report = format!(
        "[ops]\nplace_label = \"community\"\n[report]\nurl = \"http://{}/hits\"\nsecret = \"{SECRET}\"\n\
         appliance = \"test-appliance\"\nspool_dir = \"spool\"\ndedup_window = 0\nmax_backoff = 1\n",
        platform.addr
    );
    let f = Fanzha::start(
        dir.path(),
        &config(dir.path(), "[\"127.0.0.2/32\"]", &report),
    );
    let community =
        "fanzha_blocked_total{category=\"loan\",community=\"缤纷社区\",street=\"西兴街道\"}";
    assert_eq!(f.metric(community), 0.0);

    // DoT with the place's name: answered, the blocked name sinkholed.
    let mut tls = dot_client(dir.path(), &f, "binfen.dns.test");
    let m = dot_ask(&mut tls, "www.blocked.example.test").expect("answered");
    assert_eq!(ips(&m), vec![std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    // kdig, with the same name as Android's Private DNS setting.
    let port = f.dot.unwrap().port().to_string();
    let out = Command::new("kdig")
        .args([
            "@127.0.0.1",
            "-p",
            &port,
            "+tls-ca=ca.pem",
            "+tls-hostname=binfen.dns.test",
        ])
        .args(["deep.scam.example.test", "A"])
        .current_dir(dir.path())
        .output()
        .expect("kdig (Debian's knot-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOERROR") && text.contains("127.0.0.1"),
        "kdig:\n{text}"
    );

    // DoH with the place's path: answered.
    let doh = f.doh.unwrap().port().to_string();
    let text = dig(
        dir.path(),
        &[
            "@127.0.0.1",
            "-p",
            &doh,
            "+https=/dns-query/binfen",
            "www.viadoh.test",
            "A",
        ],
    );
    assert!(
        text.contains("status: NOERROR") && text.contains("127.0.0.1"),
        "dig:\n{text}"
    );

    // Counted for the community, whatever the address.
    assert_eq!(f.metric(community), 3.0, "{}", f.http_get("/metrics").1);

    // Reported for it, marked with the transport, the address cut to its network.
    assert_eq!(platform.wait_names(3, Duration::from_secs(20)), 3);
    let events = platform.events.lock().unwrap().clone();
    for (name, via) in [
        ("www.blocked.example.test", "dot"),
        ("deep.scam.example.test", "dot"),
        ("www.viadoh.test", "doh"),
    ] {
        let e = &events[name];
        assert_eq!(e["via"], via, "{e}");
        assert_eq!(e["client"]["place"]["community"], "缤纷社区", "{e}");
        assert_eq!(e["client"]["ip"], "127.0.0.0/24", "{e}");
    }

    // Without a known name: REFUSED, and the connection is closed.
    for sni in ["dns.test", "nowhere.dns.test", "127.0.0.1"] {
        let mut tls = dot_client(dir.path(), &f, sni);
        let m = dot_ask(&mut tls, "www.blocked.example.test").expect("an answer first");
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{sni}");
        assert!(
            dot_ask(&mut tls, "www.blocked.example.test").is_none(),
            "{sni}: the connection stays open"
        );
    }
    for path in ["/dns-query", "/dns-query/nowhere"] {
        let text = dig(
            dir.path(),
            &[
                "@127.0.0.1",
                "-p",
                &doh,
                &format!("+https={path}"),
                "example.test",
                "A",
            ],
        );
        assert!(text.contains("status: REFUSED"), "{path}:\n{text}");
    }
    // Plain DNS from outside the ACL is refused as ever.
    let m = udp(f.dns, "www.blocked.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(
        f.metric("fanzha_encrypted_unnamed_refused_total{transport=\"dot\"}"),
        3.0
    );
    assert_eq!(
        f.metric("fanzha_encrypted_unnamed_refused_total{transport=\"doh\"}"),
        2.0
    );
    assert_eq!(f.metric(community), 3.0, "refused queries count for nobody");

    // The setup page of the place, with the name to type and the profile.
    let page = f.http.unwrap();
    let (status, html) = http_get(page, "/setup/binfen");
    assert_eq!(status, 200);
    assert!(
        html.contains("binfen.dns.test") && html.contains("<svg"),
        "{html}"
    );
    let (status, profile) = http_get(page, "/setup/binfen/profile.mobileconfig");
    assert_eq!(status, 200);
    // The configured port (0 here: the test's listener took a free one).
    assert!(
        profile.contains("<string>https://dns.test:0/dns-query/binfen</string>"),
        "{profile}"
    );
    let (status, kiosk) = http_get(page, "/kiosk?place=binfen");
    assert_eq!(status, 200);
    assert!(kiosk.contains("扫码，让手机在任何网络下都受保护") && kiosk.contains("<svg"));
    assert_eq!(http_get(page, "/setup/nowhere").0, 404);
}

/// The SHA-256 of the certificate's public key, base64: what Chromium's
/// `--ignore-certificate-errors-spki-list` pins (the test CA is not in its store).
fn spki_pin(key_pem: &str) -> String {
    use sha2::Digest;
    let key = rcgen::KeyPair::from_pem(key_pem).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(
        rcgen::PublicKeyData::subject_public_key_info(&key),
    ))
}

#[test]
fn chromium_on_dns_over_https_lands_on_the_warning_page() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path(), "[\"127.0.0.0/8\"]", "");
    // config() wrote the certificate; its key gives the pin.
    let key = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    let f = Fanzha::start(dir.path(), &toml);
    let doh = f.doh.unwrap();
    let page = f.http.unwrap();
    // Secure DNS set by policy, as a district sets it on managed browsers: only DoH to
    // the place's URL, no fallback to the system's resolver. Debian's Chromium reads
    // policies from /etc/chromium/policies/managed; the test mounts its own directory
    // there inside a throw-away user and mount namespace, so the host's /etc is
    // never touched.
    let etc = dir.path().join("etc-chromium");
    std::fs::create_dir_all(etc.join("policies/managed")).unwrap();
    let _ = std::fs::copy(
        "/etc/chromium/master_preferences",
        etc.join("master_preferences"),
    );
    let template = format!("https://127.0.0.1:{}/dns-query/binfen", doh.port());
    std::fs::write(
        etc.join("policies/managed/doh.json"),
        serde_json::json!({"DnsOverHttpsMode": "secure", "DnsOverHttpsTemplates": template})
            .to_string(),
    )
    .unwrap();
    let profile = dir.path().join("chromium");
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/chromium && exec \"$@\"")
        .arg(&etc)
        .arg(chromium())
        .args(HEADLESS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_pin(&key)
        ))
        .arg("--dump-dom")
        .arg(format!(
            "http://www.blocked.example.test:{}/login",
            page.port()
        ))
        .output()
        .expect("unshare (util-linux) and chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("96110") && dom.contains("www.blocked.example.test"),
        "Chromium did not get the warning page over DoH (unshare needs user namespaces):\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its lookups went over DoH to the place's URL, none over plain DNS.
    assert!(f.metric("fanzha_transport_queries_total{transport=\"doh\"}") >= 1.0);
    assert_eq!(
        f.metric("fanzha_transport_queries_total{transport=\"udp\"}"),
        0.0
    );
}

/// `openssl cms -verify` of a DER profile against `ca`: the content it signed.
fn cms_verify(dir: &Path, der: &[u8], ca: &str) -> Output {
    std::fs::write(dir.join("profile.der"), der).unwrap();
    Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "profile.der",
            "-purpose",
            "any",
        ])
        .args(["-CAfile", ca])
        .current_dir(dir)
        .output()
        .expect("openssl")
}

#[test]
fn setup_profiles_are_signed_when_a_certificate_is_given_and_openssl_verifies_them() {
    let dir = tempfile::tempdir().unwrap();
    // ECDSA P-256, signed by a CA (rcgen), and RSA 2048, self-signed (openssl).
    let (ca, cert, key) = test_ca_for(&["profiles.district.example"]);
    std::fs::write(dir.path().join("sign-ca.pem"), ca).unwrap();
    std::fs::write(dir.path().join("sign-ec.pem"), cert).unwrap();
    std::fs::write(dir.path().join("sign-ec.key"), key).unwrap();
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=profiles rsa",
            "-keyout",
            "sign-rsa.key",
            "-out",
            "sign-rsa.pem",
        ])
        .current_dir(dir.path())
        .output()
        .expect("openssl");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let base = config(dir.path(), "[\"127.0.0.0/8\"]", "");
    let unsigned = {
        let f = Fanzha::start(dir.path(), &base);
        let (status, body) = http_get(f.http.unwrap(), "/setup/binfen/profile.mobileconfig");
        assert_eq!(status, 200);
        assert!(body.starts_with("<?xml"), "unsigned: the plist itself");
        body
    };
    for (cert, key, ca) in [
        ("sign-ec.pem", "sign-ec.key", "sign-ca.pem"),
        ("sign-rsa.pem", "sign-rsa.key", "sign-rsa.pem"),
    ] {
        let toml = base.replace(
            "[warnpage]\n",
            &format!("[warnpage]\nprofile_cert = \"{cert}\"\nprofile_key = \"{key}\"\n"),
        );
        let f = Fanzha::start(dir.path(), &toml);
        let page = f.http.unwrap();
        let url = format!("http://{page}/setup/binfen/profile.mobileconfig");
        let out = curl(dir.path(), &["-w", WRITE_OUT, &url]);
        let (der, meta) = split_out(&out);
        assert_eq!(meta, "200 1.1 application/x-apple-aspen-config", "{cert}");
        let out = cms_verify(dir.path(), &der, ca);
        assert!(
            out.status.success(),
            "{cert}: openssl cms -verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            unsigned,
            "{cert}: the same profile inside"
        );
        // Another CA does not verify it.
        let other = cms_verify(dir.path(), &der, "ca.pem");
        assert!(
            !other.status.success(),
            "{cert}: verified by a CA that did not sign it"
        );
    }
    // A key that is not the certificate's, or a missing file, is refused at start,
    // naming the key.
    let toml = base.replace(
        "[warnpage]\n",
        "[warnpage]\nprofile_cert = \"nowhere.pem\"\nprofile_key = \"sign-ec.key\"\n",
    );
    std::fs::write(dir.path().join("bad.toml"), &toml).unwrap();
    let (code, text) = run_status(&["check-config", "--config", "bad.toml"], dir.path());
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("warnpage.profile_cert"), "{text}");
}
