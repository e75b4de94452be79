//! The URL proxy (issue 32): one fraudulent page of a shared host blocked, the
//! host's other pages served, with a real nginx as the shared host on a loopback
//! address of its own, the offline hierarchy resolving it, and curl as the
//! resident's browser:
//! - plain HTTP for every place: the listed page is the warning page, the others
//!   nginx's bytes, over one kept-alive connection, a large file streamed;
//! - HTTPS for a managed place (its devices trust the district's CA): the same,
//!   through a certificate the proxy made for the host;
//! - HTTPS for any other place: relayed unopened, nginx's own certificate, counted
//!   as unenforced;
//! - not an open proxy: unknown Host, unknown SNI, a host at a private address,
//!   CONNECT.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::common::*;

const HOST: &str = "shared.example.test";

/// Two free ports on 127.0.0.1 (the proxy) that are free on `ip` too (nginx).
fn ports(ip: Ipv4Addr) -> (u16, u16) {
    let free = || loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if std::net::TcpListener::bind((ip, p)).is_ok() {
            return p;
        }
    };
    (free(), free())
}

/// The lab: the hierarchy, nginx as `shared.example.test` with its pages and a
/// 64 MiB file, the district's CA, and fanzha with the path rules, the proxy on
/// 127.0.0.1 at nginx's ports, the managed place 127.0.0.2 and the plain place
/// 127.0.0.3. `extra` is more TOML.
struct Lab {
    _h: Hierarchy,
    nginx: Nginx,
    f: Fanzha,
    http: u16,
    https: u16,
    dir: tempfile::TempDir,
}

fn lab(extra: &str) -> Lab {
    lab_with(extra, "127.0.0.2/32", "")
}

/// [`lab`] with the managed place at `managed` (a CIDR), and `plain` more keys of
/// the other place.
fn lab_with(extra: &str, managed: &str, plain: &str) -> Lab {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let www = d.join("www");
    for (p, body) in [
        ("shop-1/pay", "<h1>fraud form</h1>"),
        ("shop-2/index.html", "<h1>an honest shop</h1>\n"),
        ("shop-1/payment", "<h1>not the listed page</h1>"),
        ("shop-3/form", "<h1>https-listed form</h1>"),
    ] {
        let f = www.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, body).unwrap();
    }
    let big: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(www.join("big.bin"), &big).unwrap();
    let (http, https) = ports(h.site_ip());
    let nginx = Nginx::site(&www, &d.join("nginx"), h.site_ip(), (http, https), &[HOST]);
    // The district's CA, which the managed place's devices trust.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "滨江区 district CA");
    let district = p.self_signed(&ca_key).unwrap();
    std::fs::write(d.join("district-ca.pem"), district.pem()).unwrap();
    std::fs::write(d.join("district-ca.key"), ca_key.serialize_pem()).unwrap();
    std::fs::create_dir_all(d.join("lists")).unwrap();
    std::fs::write(d.join("hook.secret"), "hook-secret-0123456789\n").unwrap();
    std::fs::write(
        d.join("lists/urls.txt"),
        format!(
            "# category: phishing\nhttp://{HOST}/shop-1/pay  # case 32\n||{HOST}/shop-9^\n\
             https://{HOST}/shop-3/form\nhttp://private.example.test/x\nhttp://silent.example.test/x\n"
        ),
    )
    .unwrap();
    let toml = format!(
        "[blocklist]\ndirs = [\"lists\"]\nallow_dirs = []\n{}\
         [url]\nlisten = [\"127.0.0.1:{http}\"]\nlisten_tls = [\"127.0.0.1:{https}\"]\n\
         ca_cert = \"district-ca.pem\"\nca_key = \"district-ca.key\"\n\
         upstream_ca = [\"{}\"]\nrelay_private = [\"{}/31\"]\n{extra}\n\
         [[places]]\ncidr = \"{managed}\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\nmanaged_tls = true\n\
         [[places]]\ncidr = \"127.0.0.3/32\"\ndistrict = \"滨江区\"\nstreet = \"长河街道\"\ncommunity = \"江一社区\"\n{plain}\n",
        h.resolver_toml(),
        nginx.ca_pem.display(),
        h.site_ip(),
    );
    let f = Fanzha::start(d, &toml);
    Lab {
        _h: h,
        nginx,
        f,
        http,
        https,
        dir,
    }
}

/// curl from `from` to the host at the proxy (127.0.0.1), with `args`; body on
/// stdout, then "\n<status> <remote ip> <ssl verify result> <connections made>".
fn curl(from: &str, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20", "--interface", from])
        .args([
            "-w",
            "\n%{http_code} %{remote_ip} %{ssl_verify_result} %{num_connects}\n",
        ])
        .args(args)
        .output()
        .expect("curl (Debian's curl; scripts/test.sh installs it)")
}

/// The body and the `-w` line of a curl run.
fn parts(o: &Output) -> (String, Vec<String>) {
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    let s = s.strip_suffix('\n').unwrap_or(&s);
    let (body, tail) = s.rsplit_once('\n').unwrap_or(("", s));
    (
        body.to_string(),
        tail.split(' ').map(String::from).collect(),
    )
}

fn resolve_to(port: u16) -> String {
    format!("{HOST}:{port}:127.0.0.1")
}

/// curl from `from` for `url` on the host, at the proxy's `port`, trusting `ca`
/// (HTTPS): the body and the `-w` fields.
fn get(from: &str, port: u16, ca: Option<&str>, url: &str) -> (String, Vec<String>) {
    let resolve = resolve_to(port);
    let mut args = vec!["--resolve", resolve.as_str()];
    if let Some(ca) = ca {
        args.extend(["--cacert", ca]);
    }
    args.push(url);
    parts(&curl(from, &args))
}

/// DNS first: each place's answer for the host, as its devices get it.
fn answer(f: &Fanzha, from: &str, t: RecordType) -> hickory_proto::op::Message {
    let q = make_query(&format!("{HOST}."), t, true);
    udp_from(from.parse().unwrap(), f.dns, &q, Duration::from_secs(5)).expect("an answer")
}

#[test]
fn a_listed_page_of_a_shared_host_is_blocked_and_its_other_pages_load() {
    let platform = TestPlatform::start("127.0.0.1:0");
    let lab = lab(&format!(
        "[report]\nurl = \"http://{}/hits\"\nsecret = \"{SECRET}\"\nappliance = \"test-appliance\"\n\
         spool_dir = \"spool\"\ndedup_window = 0\nmax_backoff = 1\n",
        platform.addr
    ));
    let (f, d) = (&lab.f, lab.dir.path());
    // DNS: both places get the proxy for A (the plain place: `unmanaged =
    // "passthrough"`, the default); no HTTPS record that could lead around it.
    for from in ["127.0.0.2", "127.0.0.3"] {
        let a = answer(f, from, RecordType::A);
        assert_eq!(
            ips(&a),
            vec![std::net::IpAddr::from(Ipv4Addr::LOCALHOST)],
            "{from}"
        );
        let https = answer(f, from, RecordType::HTTPS);
        assert!(https.answers.is_empty(), "{from}: {https:?}");
    }
    assert!(f.metric("fanzha_queries_total{result=\"url_proxy\"}") >= 4.0);

    // Plain HTTP, one connection: the listed page, then a neighbour, then the
    // listed page spelt otherwise.
    let base = format!("http://{HOST}:{}", lab.http);
    let o = curl(
        "127.0.0.3",
        &[
            "--resolve",
            &resolve_to(lab.http),
            &format!("{base}/shop-1/pay?amount=900"),
            &format!("{base}/shop-2/index.html"),
            &format!("{base}/shop-1//./pay"),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let pieces: Vec<&str> = out.split('\n').collect();
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("钓鱼网站"),
        "the warning page for the listed page:\n{out}"
    );
    assert!(out.contains(HOST));
    assert!(
        out.contains("<h1>an honest shop</h1>\n\n200 127.0.0.1 0 0"),
        "nginx's bytes, on the kept connection:\n{out}"
    );
    assert_eq!(out.matches("403 127.0.0.1").count(), 2, "{out}");
    let tails: Vec<&str> = pieces
        .iter()
        .copied()
        .filter(|l| l.contains(" 127.0.0.1 "))
        .collect();
    let connects: Vec<&str> = tails.iter().filter_map(|l| l.rsplit(' ').next()).collect();
    assert_eq!(
        connects,
        ["1", "0", "0"],
        "one connection for three requests: {tails:?}"
    );
    assert!(
        !out.contains("fraud form"),
        "the fraud page never left nginx"
    );
    assert!(
        lab.nginx
            .served()
            .iter()
            .all(|(p, _, _)| !p.starts_with("/shop-1/pay")),
        "{:?}",
        lab.nginx.served()
    );
    // A page beside the listed one, and the adblock rule's separator.
    let (body, tail) = get(
        "127.0.0.3",
        lab.http,
        None,
        &format!("{base}/shop-1/payment"),
    );
    assert_eq!(
        (body.as_str(), tail[0].as_str()),
        ("<h1>not the listed page</h1>", "200")
    );
    let status = |path: &str| {
        let (_, tail) = get("127.0.0.3", lab.http, None, &format!("{base}{path}"));
        tail[0].clone()
    };
    // `||host/shop-9^`: the path and what follows a separator, not a longer name
    // (which nginx, relayed to, has no page for).
    assert_eq!(status("/shop-9"), "403");
    assert_eq!(status("/shop-9/anything"), "403");
    assert_eq!(status("/shop-9x"), "404");

    // A large download streams through, byte for byte.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "curl -sS --max-time 60 --interface 127.0.0.3 --resolve {} {base}/big.bin | sha256sum",
            resolve_to(lab.http)
        ))
        .output()
        .unwrap();
    let want = Command::new("sha256sum")
        .arg(d.join("www/big.bin"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).split(' ').next(),
        String::from_utf8_lossy(&want.stdout).split(' ').next()
    );

    // Counted as hits of the place, with the rule.
    assert_eq!(
        f.metric("fanzha_blocked_total{category=\"phishing\",community=\"\",street=\"长河街道\"}"),
        4.0,
        "/shop-1/pay twice, /shop-9 and /shop-9/anything"
    );
    assert!(f.metric("fanzha_url_requests_total{result=\"blocked\"}") >= 4.0);
    assert!(f.metric("fanzha_url_requests_total{result=\"relayed\"}") >= 4.0);
    // Reported to the platform like any hit: the host, the rule (not the page's
    // own address, whose query may hold what the resident typed), the place.
    assert!(
        platform.wait_names(1, Duration::from_secs(20)) >= 1,
        "{}",
        f.log_text()
    );
    let events = platform.events.lock().unwrap().clone();
    let e = &events[HOST];
    assert_eq!(e["query"]["type"], "URL", "{e}");
    assert_eq!(e["action"], "sinkhole", "{e}");
    assert_eq!(e["client"]["place"]["community"], "江一社区", "{e}");
    let rule = e["match"]["rule"].as_str().unwrap();
    assert!(
        rule.starts_with(&format!("http://{HOST}/shop-1/pay")) || rule.contains("/shop-9"),
        "{e}"
    );
    assert!(!e.to_string().contains("amount=900"), "{e}");
}

#[test]
fn https_is_checked_for_a_managed_place_and_relayed_unopened_for_others() {
    let lab = lab("");
    let (f, d) = (&lab.f, lab.dir.path());
    let base = format!("https://{HOST}:{}", lab.https);
    let district = d.join("district-ca.pem");
    let district = district.to_str().unwrap();
    // The managed place: the proxy's certificate, from the district's CA.
    let (body, tail) = get(
        "127.0.0.2",
        lab.https,
        Some(district),
        &format!("{base}/shop-3/form"),
    );
    assert_eq!(tail[0], "403", "{body}");
    assert!(body.contains("钓鱼网站"));
    let (body, tail) = get(
        "127.0.0.2",
        lab.https,
        Some(district),
        &format!("{base}/shop-2/index.html"),
    );
    assert_eq!(
        (body.as_str(), tail[0].as_str()),
        ("<h1>an honest shop</h1>\n", "200")
    );
    // An http:// rule is for plain HTTP only.
    let (body, _) = get(
        "127.0.0.2",
        lab.https,
        Some(district),
        &format!("{base}/shop-1/pay"),
    );
    assert_eq!(body, "<h1>fraud form</h1>");
    // The other place: nginx's own certificate (its CA, not the district's), the
    // HTTPS-listed page unchecked, and counted so.
    let nginx_ca = lab.nginx.ca_pem.to_str().unwrap().to_string();
    let (body, tail) = get(
        "127.0.0.3",
        lab.https,
        Some(&nginx_ca),
        &format!("{base}/shop-3/form"),
    );
    assert_eq!(
        (body.as_str(), tail[0].as_str()),
        ("<h1>https-listed form</h1>", "200")
    );
    let o = curl(
        "127.0.0.3",
        &[
            "--cacert",
            district,
            "--resolve",
            &resolve_to(lab.https),
            &format!("{base}/shop-2/index.html"),
        ],
    );
    assert!(
        !o.status.success(),
        "the district's CA did not sign what the plain place gets"
    );
    assert!(f.metric("fanzha_url_unenforced_total{reason=\"tls_passthrough\"}") >= 1.0);
    assert!(f.metric("fanzha_url_requests_total{result=\"passthrough\"}") >= 1.0);
    // The managed place's hit is its community's.
    assert_eq!(
        f.metric("fanzha_blocked_total{category=\"phishing\",community=\"\",street=\"西兴街道\"}"),
        1.0
    );
}

/// Raw bytes to the proxy, and what comes back until it closes (or 5 s).
fn exchange(to: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn the_proxy_relays_nothing_but_the_listed_hosts() {
    let lab = lab("idle_timeout = \"1s\"");
    let f = &lab.f;
    let http: SocketAddr = ([127, 0, 0, 1], lab.http).into();
    // A host without path rules, in the Host header or in absolute form: 403, closed.
    for req in [
        "GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n".to_string(),
        format!("GET http://www.example.test/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_string(),
        format!("CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n\r\n"),
    ] {
        let out = String::from_utf8_lossy(&exchange(http, req.as_bytes())).into_owned();
        let status = out.split(' ').nth(1).unwrap_or("");
        assert!(
            status == "403" || status == "405" || status == "400",
            "{req:?} → {out}"
        );
        assert!(out.contains("connection: close"), "{out}");
    }
    // A listed host whose address is private (10.9.8.7, not in relay_private): its
    // listed page is still the warning page; nothing else is relayed there.
    let get = |path: &str| {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: private.example.test\r\nConnection: close\r\n\r\n"
        );
        String::from_utf8_lossy(&exchange(http, req.as_bytes())).into_owned()
    };
    assert!(get("/x").starts_with("HTTP/1.1 403"), "{}", get("/x"));
    let other = get("/y");
    assert!(
        other.starts_with("HTTP/1.1 502") && other.contains("does not relay"),
        "{other}"
    );
    // TLS with an unknown name, or none: closed before any handshake.
    let tls: SocketAddr = ([127, 0, 0, 1], lab.https).into();
    for sni in [Some("www.example.test"), None] {
        let mut args = vec![
            "s_client".to_string(),
            "-connect".into(),
            tls.to_string(),
            "-brief".into(),
        ];
        match sni {
            Some(n) => args.extend(["-servername".into(), n.into()]),
            None => args.push("-noservername".into()),
        }
        let o = Command::new("openssl")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text =
            String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        assert!(!text.contains("CONNECTION ESTABLISHED"), "{sni:?}: {text}");
    }
    // A silent connection, plain or TLS, is closed after idle_timeout.
    for to in [http, tls] {
        let mut s = TcpStream::connect(to).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = std::time::Instant::now();
        let mut b = [0u8; 16];
        let n = s.read(&mut b).unwrap_or(usize::MAX);
        assert_eq!(n, 0, "{to}: closed, not timed out on our side");
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{to}: {:?}",
            t.elapsed()
        );
    }
    assert!(f.metric("fanzha_url_requests_total{result=\"refused\"}") >= 7.0);
    assert_eq!(
        f.metric("fanzha_url_requests_total{result=\"relayed\"}"),
        0.0
    );
}

#[test]
fn without_a_proxy_or_for_an_unmanaged_place_set_to_resolve_the_host_resolves_and_is_counted() {
    let lab = lab("unmanaged = \"resolve\"");
    let f = &lab.f;
    // The managed place still goes through the proxy; the other gets the host.
    assert_eq!(
        ips(&answer(f, "127.0.0.2", RecordType::A)),
        vec![std::net::IpAddr::from(Ipv4Addr::LOCALHOST)]
    );
    let plain = answer(f, "127.0.0.3", RecordType::A);
    assert_eq!(ips(&plain), vec![std::net::IpAddr::from(lab._h.site_ip())]);
    assert_eq!(
        f.metric("fanzha_url_unenforced_total{reason=\"unmanaged_place\"}"),
        1.0
    );
    // `fanzha lookup` tells a page's verdict.
    let cfg = lab.dir.path().join("fanzha.toml");
    let (code, out) = run_status(
        &[
            "lookup",
            "--config",
            cfg.to_str().unwrap(),
            &format!("http://{HOST}/shop-1/pay?x=1"),
            &format!("http://{HOST}/shop-2/"),
        ],
        lab.dir.path(),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("BLOCKED by path rule \"http://shared.example.test/shop-1/pay\""),
        "{out}"
    );
    assert!(out.contains("none covers this page"), "{out}");
    let _: &Path = lab.dir.path();
}

/// Headless Chromium on a managed device: the district's CA in its certificate
/// store (an NSS database in a throw-away HOME), the host mapped to the proxy. The
/// listed HTTPS page is the warning page, the shop beside it nginx's page.
#[test]
fn chromium_on_a_managed_device_sees_the_warning_page_for_the_listed_page_only() {
    // Chromium connects from 127.0.0.1: that is the managed place here.
    let lab = lab_with("", "127.0.0.1/32", "");
    let d = lab.dir.path();
    let home = d.join("home");
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let nssdb = format!("sql:{}", db.display());
    for args in [
        vec!["-N", "-d", &nssdb, "--empty-password"],
        vec![
            "-A",
            "-d",
            &nssdb,
            "-n",
            "district",
            "-t",
            "C,,",
            "-i",
            "district-ca.pem",
        ],
    ] {
        let o = Command::new("certutil")
            .args(&args)
            .current_dir(d)
            .output()
            .expect("certutil (Debian's libnss3-tools; scripts/test.sh installs it)");
        assert!(
            o.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let dom = |path: &str| {
        let o = Command::new(crate::browser::chromium())
            .env("HOME", &home)
            .args(crate::browser::HEADLESS)
            .arg(format!("--user-data-dir={}", d.join("profile").display()))
            .arg(format!("--host-resolver-rules=MAP {HOST} 127.0.0.1"))
            .arg("--dump-dom")
            .arg(format!("https://{HOST}:{}{path}", lab.https))
            .output()
            .expect("chromium");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let warned = dom("/shop-3/form");
    assert!(
        warned.contains("钓鱼网站") && warned.contains(HOST),
        "{warned}"
    );
    let shop = dom("/shop-2/index.html");
    assert!(shop.contains("an honest shop"), "{shop}");
    assert!(!shop.contains("钓鱼网站"));
}

/// A webhook that keeps the JSON bodies posted to it.
fn webhook() -> (
    SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let mut r = std::io::BufReader::new(s);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut r, &mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                keep.lock().unwrap().push(v);
            }
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (addr, got)
}

/// A listed page's hit reaches the place's own workers, in its digest, as a DNS
/// hit does.
#[test]
fn a_listed_page_is_in_the_places_alert_digest() {
    let (hook, got) = webhook();
    let lab = lab_with(
        "[alerts]\ninterval = \"2s\"\ndevices = \"keep\"\n",
        "127.0.0.2/32",
        &format!(
            "alert = {{ kind = \"webhook\", url = \"http://{hook}/hook\", secret_file = \"hook.secret\" }}"
        ),
    );
    let _ = &lab.f;
    let base = format!("http://{HOST}:{}", lab.http);
    let (_, tail) = get("127.0.0.3", lab.http, None, &format!("{base}/shop-1/pay"));
    assert_eq!(tail[0], "403");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let digest = loop {
        if let Some(d) = got.lock().unwrap().first().cloned() {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "no digest came");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(digest["place"]["community"], "江一社区", "{digest}");
    assert_eq!(digest["hits"].as_u64(), Some(1), "{digest}");
    assert!(digest.to_string().contains("phishing"), "{digest}");
}
