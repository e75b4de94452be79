//! The real `fanzha serve` against a local authoritative hierarchy, over real UDP and
//! TCP sockets on loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

fn ede(m: &Message) -> String {
    m.edns
        .as_ref()
        .map(|e| format!("{:?}", e.options()))
        .unwrap_or_default()
}

fn sinkhole() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 53, 53, 53))
}

fn start(h: &Hierarchy, extra: &str) -> (tempfile::TempDir, Fanzha) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}{}[sinkhole]\nipv4 = \"10.53.53.53\"\nipv6 = \"fd00::53\"\nttl = 60\n{extra}",
        lists_toml(dir.path()),
        h.resolver_toml()
    );
    let f = Fanzha::start(dir.path(), &toml);
    (dir, f)
}

#[test]
fn recursion_answers_over_udp_and_tcp() {
    let h = Hierarchy::start();
    let (_d, f) = start(&h, "");
    let m = udp(f.dns, "www.example.test.", RecordType::A);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{m:?}\n{}",
        f.log_text()
    );
    assert_eq!(ips(&m), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
    assert!(m.metadata.recursion_available && !m.metadata.authoritative);
    let m = udp(f.dns, "www.example.test.", RecordType::AAAA);
    assert_eq!(
        ips(&m),
        vec![IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap())]
    );
    // TCP gives the same answer
    let m = tcp(
        f.dns,
        &make_query("www.example.test.", RecordType::A, false),
    );
    assert_eq!(ips(&m), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
    // CNAME chains come with the chain
    let m = udp(f.dns, "chain1.example.test.", RecordType::A);
    assert_eq!(ips(&m), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
    assert_eq!(
        m.answers
            .iter()
            .filter(|r| r.record_type() == RecordType::CNAME)
            .count(),
        2,
        "{m:?}"
    );
    // 0x20: the question comes back as asked
    let m = udp(f.dns, "WwW.ExAmPlE.TeSt.", RecordType::A);
    assert_eq!(m.queries[0].name().to_ascii(), "WwW.ExAmPlE.TeSt.");
    assert_eq!(ips(&m).len(), 1);
    // NXDOMAIN and NODATA keep their SOA
    let m = udp(f.dns, "nope.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "{m:?}"
    );
    let m = udp(f.dns, "v4only.example.test.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "{m:?}"
    );
    // a large answer is truncated over UDP and complete over TCP
    let m = udp_from(
        "127.0.0.1".parse().unwrap(),
        f.dns,
        &make_query("big.example.test.", RecordType::TXT, false),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(m.metadata.truncation, "{m:?}");
    assert!(m.answers.is_empty());
    let m = tcp(
        f.dns,
        &make_query("big.example.test.", RecordType::TXT, false),
    );
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 40);
    let (code, body) = f.http_get("/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("fanzha_queries_total{result=\"allowed\"}"),
        "{body}"
    );
    assert_eq!(f.http_get("/readyz").0, 200);
    assert_eq!(f.http_get("/healthz").0, 200);
}

#[test]
fn blocking_rules_and_answers() {
    let h = Hierarchy::start();
    let (_d, f) = start(&h, "");
    // exact listed name and a subdomain: the sinkhole, authoritative, with EDE 15
    for n in [
        "blocked.example.test.",
        "deep.www.blocked.example.test.",
        "BLOCKED.Example.TEST.",
    ] {
        let m = udp(f.dns, n, RecordType::A);
        assert_eq!(ips(&m), vec![sinkhole()], "{n}");
        assert!(m.metadata.authoritative, "{n}");
        assert_eq!(
            m.queries[0].name().to_ascii(),
            n,
            "question echoed as asked"
        );
        let e = ede(&m);
        assert!(
            e.contains("Unknown(15") && e.contains("[0, 15, 98"),
            "{n}: {e}"
        );
        assert!(
            String::from_utf8_lossy(&m.to_vec().unwrap()).contains("loan"),
            "EDE names the category"
        );
    }
    // the parent is not blocked
    let m = udp(f.dns, "example.test.", RecordType::A);
    assert!(!ips(&m).contains(&sinkhole()));
    // allowlisted name under a blocked one
    let m = udp(f.dns, "ok.blocked.example.test.", RecordType::A);
    assert_eq!(ips(&m), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 98))]);
    // exact-only list: the name is blocked, its child is not
    let m = udp(f.dns, "parent.example.test.", RecordType::A);
    assert_eq!(ips(&m), vec![sinkhole()]);
    let m = udp(f.dns, "child.parent.example.test.", RecordType::A);
    assert_eq!(ips(&m), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 51))]);
    // every blocked qtype
    let m = udp(f.dns, "blocked.example.test.", RecordType::AAAA);
    assert_eq!(
        ips(&m),
        vec![IpAddr::V6("fd00::53".parse::<Ipv6Addr>().unwrap())]
    );
    for t in [
        RecordType::HTTPS,
        RecordType::SVCB,
        RecordType::MX,
        RecordType::TXT,
        RecordType::CNAME,
        RecordType::NS,
    ] {
        let m = udp(f.dns, "x.blocked.example.test.", t);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{t}");
        assert!(m.answers.is_empty(), "{t}");
        let soa = m
            .authorities
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
            .unwrap_or_else(|| panic!("{t}: no SOA"));
        assert_eq!(soa.name.to_ascii(), "blocked.example.test.");
        assert!(ede(&m).contains("Unknown(15"), "{t}");
    }
    // no EDNS in the query: no OPT in the answer
    let m = udp_from(
        "127.0.0.1".parse().unwrap(),
        f.dns,
        &make_query("blocked.example.test.", RecordType::A, false),
        Duration::from_secs(3),
    )
    .unwrap();
    assert!(m.edns.is_none());
    assert_eq!(ips(&m), vec![sinkhole()]);
    // blocked over TCP too
    let m = tcp(
        f.dns,
        &make_query("www.blocked.example.test.", RecordType::A, true),
    );
    assert_eq!(ips(&m), vec![sinkhole()]);
    // CNAME to a blocked target: blocked with the target's category
    let m = udp(f.dns, "promo.example.test.", RecordType::A);
    assert_eq!(ips(&m), vec![sinkhole()], "{m:?}");
    assert!(String::from_utf8_lossy(&m.to_vec().unwrap()).contains("loan"));
    // the DoH canary
    let m = udp(f.dns, "use-application-dns.net.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // blocked queries are counted by category and never reach the resolver
    let (_, body) = f.http_get("/metrics");
    assert!(
        body.contains("fanzha_blocked_total{category=\"loan\",community=\"\",street=\"\"}"),
        "{body}"
    );
    assert!(
        body.contains("fanzha_queries_total{result=\"blocked_cname\"} 1"),
        "{body}"
    );
}

#[test]
fn admission_acl_rate_limit_and_errors() {
    let h = Hierarchy::start();
    let (_d, f) = start(
        &h,
        "[server]\nacl = [\"127.0.0.1/32\"]\nrate_limit = 20\nrate_limit_burst = 20\n",
    );
    // outside the ACL: REFUSED, for allowed and blocked names alike
    for n in ["www.example.test.", "blocked.example.test."] {
        let m = udp_from(
            "127.0.0.77".parse().unwrap(),
            f.dns,
            &make_query(n, RecordType::A, true),
            Duration::from_secs(3),
        )
        .unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{n}");
        assert!(m.answers.is_empty());
    }
    // FORMERR: two questions
    let mut q = make_query("www.example.test.", RecordType::A, false);
    q.add_query(hickory_proto::op::Query::query(
        "x.test.".parse().unwrap(),
        RecordType::A,
    ));
    let m = udp_from(
        "127.0.0.1".parse().unwrap(),
        f.dns,
        &q,
        Duration::from_secs(3),
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // NOTIMP: opcode NOTIFY
    let mut raw = make_query("www.example.test.", RecordType::A, false)
        .to_vec()
        .unwrap();
    raw[2] = (raw[2] & 0x87) | (4 << 3);
    let r = udp_raw(f.dns, &raw, Duration::from_secs(3)).unwrap();
    assert_eq!(r[3] & 0x0f, 4, "NOTIMP");
    // ANY gets a minimal answer (RFC 8482)
    let m = udp(f.dns, "www.example.test.", RecordType::ANY);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::HINFO);
    // rate limit: a burst of 20 passes, the rest is refused
    let from: IpAddr = "127.0.0.1".parse().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let mut refused = 0;
    for _ in 0..60 {
        let m = udp_from(
            from,
            f.dns,
            &make_query("blocked.example.test.", RecordType::A, false),
            Duration::from_secs(3),
        )
        .unwrap();
        if m.metadata.response_code == ResponseCode::Refused {
            refused += 1;
        }
    }
    assert!(refused >= 30, "only {refused} of 60 refused");
    let (_, body) = f.http_get("/metrics");
    assert!(
        body.contains("fanzha_queries_total{result=\"ratelimited\"}"),
        "{body}"
    );
}

#[test]
fn dead_servers_fail_fast_or_fail_over() {
    let h = Hierarchy::start();
    let (_d, f) = start(&h, "");
    // warm the root and test. delegations
    udp(f.dns, "www.example.test.", RecordType::A);
    let t = Instant::now();
    let m = udp(f.dns, "www.dead.test.", RecordType::A);
    let took = t.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    assert!(took < Duration::from_millis(2500), "SERVFAIL took {took:?}");
    let t = Instant::now();
    let m = udp(f.dns, "www.half.test.", RecordType::A);
    let took = t.elapsed();
    assert_eq!(
        ips(&m),
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77))],
        "{m:?}"
    );
    assert!(took < Duration::from_millis(1000), "failover took {took:?}");
}

#[test]
fn forward_mode() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}[resolver]\nmode = \"forward\"\nupstreams = [\"udp://{ip}:{p}\", \"tcp://{ip}:{p}\"]\n[sinkhole]\nipv4 = \"10.53.53.53\"\n",
        lists_toml(dir.path()),
        ip = h.ip(12),
        p = h.port
    );
    let f = Fanzha::start(dir.path(), &toml);
    let m = udp(f.dns, "www.example.test.", RecordType::A);
    assert_eq!(
        ips(&m),
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
        "{m:?}\n{}",
        f.log_text()
    );
    let m = udp(f.dns, "nope.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "{m:?}"
    );
    let m = udp(f.dns, "blocked.example.test.", RecordType::A);
    assert_eq!(ips(&m), vec![sinkhole()]);
    let m = udp(f.dns, "promo.example.test.", RecordType::A);
    assert_eq!(
        ips(&m),
        vec![sinkhole()],
        "CNAME inspection in forward mode: {m:?}"
    );
}

#[test]
fn forward_mode_over_tls() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &h.tls_ca_pem).unwrap();
    let toml = format!(
        "{}[resolver]\nmode = \"forward\"\nupstreams = [\"tls://{ip}:{p}#ns2.nic\"]\ntls_ca = \"ca.pem\"\n",
        lists_toml(dir.path()),
        ip = h.ip(12),
        p = h.tls_port
    );
    let f = Fanzha::start(dir.path(), &toml);
    let m = udp(f.dns, "www.example.test.", RecordType::A);
    assert_eq!(
        ips(&m),
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
        "{m:?}\n{}",
        f.log_text()
    );
    // a certificate for another name is refused: SERVFAIL, not an answer
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(dir2.path().join("ca.pem"), &h.tls_ca_pem).unwrap();
    let toml = format!(
        "{}[resolver]\nmode = \"forward\"\nupstreams = [\"tls://{ip}:{p}#other.name\"]\ntls_ca = \"ca.pem\"\n",
        lists_toml(dir2.path()),
        ip = h.ip(12),
        p = h.tls_port
    );
    let f2 = Fanzha::start(dir2.path(), &toml);
    let m = udp(f2.dns, "www.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
}

#[test]
fn malformed_packets_never_stop_the_server() {
    let h = Hierarchy::start();
    let (_d, f) = start(&h, "");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let good = make_query("blocked.example.test.", RecordType::A, true)
        .to_vec()
        .unwrap();
    for i in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p: Vec<u8> = match i % 5 {
            0 => (0..(x % 600) as usize)
                .map(|j| (x >> (j % 60)) as u8)
                .collect(),
            1 => good[..(x as usize % good.len())].to_vec(),
            2 => {
                // a name that is a compression pointer to itself
                let mut p = good[..12].to_vec();
                p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
                p
            }
            3 => {
                let mut p = good.clone();
                let k = 12 + (x as usize % (p.len() - 12));
                p[k] = (x >> 8) as u8;
                p
            }
            _ => {
                let mut p = good.clone();
                p[11] = 200; // ARCOUNT lies
                p
            }
        };
        let _ = s.send_to(&p, f.dns);
    }
    // 64 KiB TCP frames and garbage over TCP
    for _ in 0..20 {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(f.dns).unwrap();
        let _ = c.write_all(&[0xff, 0xff]);
        let _ = c.write_all(&vec![0x41u8; 65535]);
        let _ = c.write_all(&[0x00, 0x05, 1, 2, 3, 4, 5]);
    }
    std::thread::sleep(Duration::from_millis(200));
    let m = udp(f.dns, "blocked.example.test.", RecordType::A);
    assert_eq!(ips(&m), vec![sinkhole()]);
    let m = tcp(
        f.dns,
        &make_query("www.example.test.", RecordType::A, false),
    );
    assert_eq!(ips(&m), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
}

fn query_loop(
    f: &Fanzha,
    name: &'static str,
    stop: Arc<AtomicBool>,
    blocked_seen: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let dns = f.dns;
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match udp_from(
                "127.0.0.1".parse().unwrap(),
                dns,
                &make_query(name, RecordType::A, true),
                Duration::from_secs(2),
            ) {
                Some(m) if m.metadata.response_code == ResponseCode::NoError => {
                    if ips(&m) == vec![sinkhole()] {
                        blocked_seen.store(true, Ordering::Relaxed);
                    }
                }
                _ => {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            total.fetch_add(1, Ordering::Relaxed);
        }
    })
}

#[test]
fn list_edit_and_sighup_take_effect_without_losing_a_query() {
    let h = Hierarchy::start();
    let (d, f) = start(&h, "");
    // 1. edit a list file while a client queries in a loop
    let r = change_under_load(&f, "www.example.test.", || {
        let mut text = std::fs::read_to_string(d.path().join("lists/loan.txt")).unwrap();
        text.push_str("www.example.test\n");
        std::fs::write(d.path().join("lists/loan.txt"), &text).unwrap();
    });
    r.assert_applied_cleanly("the list edit", &f);

    // 2. SIGHUP: a config change (a new list dir) while a client queries in a loop
    let extra = d.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(
        extra.join("x.txt"),
        "# category: phishing\nv4only.example.test\n",
    )
    .unwrap();
    let cfg_path = d.path().join("fanzha.toml");
    let cfg = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("dirs = [\"lists\"]", "dirs = [\"lists\", \"extra\"]");
    std::fs::write(&cfg_path, cfg).unwrap();
    let r = change_under_load(&f, "v4only.example.test.", || f.signal("HUP"));
    r.assert_applied_cleanly("SIGHUP", &f);
}

#[test]
fn a_restart_serves_the_last_compile_at_once_and_compiles_only_what_changed() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}{}[sinkhole]\nipv4 = \"10.53.53.53\"\n",
        lists_toml(dir.path()),
        h.resolver_toml()
    );
    let blocked = |f: &Fanzha, name: &str| ips(&udp(f.dns, name, RecordType::A)) == [sinkhole()];
    let snapshots = || {
        std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("last-good-") && n.ends_with(".fst"))
            .collect::<Vec<_>>()
    };

    // First start: nothing to reuse. The lists are read and an interim index serves
    // them (allowlist included) while the compile finishes in the background; then
    // the compiled file takes over, and it is kept.
    let f = Fanzha::start(dir.path(), &toml);
    assert!(
        f.log_text().contains("an interim index serves it"),
        "{}",
        f.log_text()
    );
    assert!(!f.log_text().contains("snapshot"), "{}", f.log_text());
    assert!(blocked(&f, "blocked.example.test."));
    assert!(!blocked(&f, "ok.blocked.example.test."), "allowlist lost");
    assert!(
        f.wait_log("the compiled file now serves", Duration::from_secs(10)),
        "{}",
        f.log_text()
    );
    assert!(blocked(&f, "blocked.example.test."));
    assert!(!blocked(&f, "ok.blocked.example.test."), "allowlist lost");
    assert_eq!(snapshots().len(), 1);
    drop(f);

    // Unchanged lists: the snapshot serves and nothing compiles. Temporaries of a
    // compile cut short by a stop are cleared.
    let leftover = dir.path().join("state/.active-1-0.fst.tmp-1-0");
    std::fs::write(&leftover, b"half a list").unwrap();
    let f = Fanzha::start(dir.path(), &toml);
    assert!(!leftover.exists(), "a compile's temporary file was left");
    assert!(
        f.log_text().contains("lists unchanged since"),
        "{}",
        f.log_text()
    );
    assert!(blocked(&f, "blocked.example.test."));
    assert!(!blocked(&f, "ok.blocked.example.test."), "allowlist lost");
    drop(f);

    // A list edited while fanzha was down: the snapshot serves at once, the edit is
    // compiled in the background and swapped in; one snapshot remains, the new one.
    let before = snapshots();
    let loan = dir.path().join("lists/loan.txt");
    let mut text = std::fs::read_to_string(&loan).unwrap();
    text.push_str("added-while-down.example.test\n");
    std::fs::write(&loan, text).unwrap();
    let f = Fanzha::start(dir.path(), &toml);
    assert!(f.log_text().contains("changed since"), "{}", f.log_text());
    assert!(blocked(&f, "blocked.example.test."));
    assert!(
        f.wait_log("blocklist reloaded", Duration::from_secs(10)),
        "{}",
        f.log_text()
    );
    assert!(blocked(&f, "added-while-down.example.test."));
    let after = snapshots();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    drop(f);

    // A damaged snapshot is dropped and the lists compile, as on a first start.
    let snap = dir.path().join("state").join(&after[0]);
    let mut bytes = std::fs::read(&snap).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0xff;
    std::fs::remove_file(&snap).unwrap();
    std::fs::write(&snap, bytes).unwrap();
    let f = Fanzha::start(dir.path(), &toml);
    assert!(f.log_text().contains("unusable"), "{}", f.log_text());
    assert!(blocked(&f, "added-while-down.example.test."));
    assert!(
        f.wait_log("the compiled file now serves", Duration::from_secs(10)),
        "{}",
        f.log_text()
    );
    assert_eq!(snapshots().len(), 1);
}

#[test]
fn a_query_sent_while_the_lists_load_is_answered_once_they_serve() {
    // A list big enough that reading it takes a while; the name asked is its last.
    let dir = tempfile::tempdir().unwrap();
    let lists = dir.path().join("lists");
    std::fs::create_dir_all(&lists).unwrap();
    let mut text = String::with_capacity(12 << 20);
    for i in 0..400_000 {
        text.push_str(&format!("filler-{i}.load.test\n"));
    }
    text.push_str("last-of-the-list.load.test\n");
    std::fs::write(lists.join("big.txt"), text).unwrap();
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let cfg = dir.path().join("fanzha.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 1\nstate_dir = \"state\"\n\
             [ops]\nlisten = \"127.0.0.1:0\"\n[warnpage]\nlisten = [\"127.0.0.1:0\"]\n\
             [resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n\
             [blocklist]\ndirs = [\"lists\"]\nallow_dirs = []\n\
             [sinkhole]\nipv4 = \"10.53.53.53\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // fanzha holds the port (without SO_REUSEPORT at one thread) once binding fails.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "fanzha never bound {port}");
        std::thread::sleep(Duration::from_millis(1));
    }
    let query = make_query("last-of-the-list.load.test.", RecordType::A, false);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    client
        .send_to(&query.to_vec().unwrap(), ("127.0.0.1", port))
        .unwrap();
    let before = std::fs::read_to_string(&log).unwrap();
    // One query, never repeated: it waited in the socket for the list to serve.
    let mut buf = [0u8; 4096];
    let got = client.recv(&mut buf);
    let after = std::fs::read_to_string(&log).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let n = got.unwrap_or_else(|e| panic!("no answer: {e}; log:\n{after}"));
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, query.metadata.id);
    assert_eq!(ips(&answer), [sinkhole()], "{answer:?}");
    assert!(
        !before.contains("blocklist read") && !before.contains("listening for DNS"),
        "the DNS port was bound only once the list served (sockets must be bound before \
         the lists load), or the list is too small to outlast the query:\n{before}"
    );
    assert!(after.contains("an interim index serves it"), "{after}");
}

/// What a client querying `name` in a loop saw while `change` was applied.
struct UnderLoad {
    seen: bool,
    took: Duration,
    failures: u64,
    total: u64,
}

impl UnderLoad {
    /// The change took effect within 2 s and no query failed across it.
    fn assert_applied_cleanly(&self, what: &str, f: &Fanzha) {
        assert!(
            self.seen,
            "{what} never took effect; log:\n{}",
            f.log_text()
        );
        assert!(
            self.took < Duration::from_secs(2),
            "{what} took effect after {:?}",
            self.took
        );
        assert_eq!(
            self.failures, 0,
            "queries failed across {what} (of {})",
            self.total
        );
    }
}

/// Query `name` in a loop, apply `change`, wait (at most 5 s) until the name is
/// answered with the sinkhole, then stop the client.
fn change_under_load(f: &Fanzha, name: &'static str, change: impl FnOnce()) -> UnderLoad {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let t = query_loop(
        f,
        name,
        stop.clone(),
        seen.clone(),
        failures.clone(),
        total.clone(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let changed = Instant::now();
    change();
    while !seen.load(Ordering::Relaxed) && changed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = changed.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    UnderLoad {
        seen: seen.load(Ordering::Relaxed),
        took,
        failures: failures.load(Ordering::Relaxed),
        total: total.load(Ordering::Relaxed),
    }
}

#[test]
fn bad_config_is_refused_and_sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nlisten = [\"localhost\"]\n",
    )
    .unwrap();
    let o = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("server.listen[0]")
            && err.contains("\"localhost\"")
            && err.contains("with a port"),
        "{err}"
    );
    let o = std::process::Command::new(bin())
        .args(["check-config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));

    let h = Hierarchy::start();
    let (_d, mut f) = start(&h, "");
    udp(f.dns, "www.example.test.", RecordType::A);
    f.signal("TERM");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = f.child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(f.wait_log("stopped", Duration::from_secs(1)));
}

#[test]
fn tells_systemd_when_ready_and_when_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let rx = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let toml = format!(
        "{}[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n[ops]\nlisten = \"127.0.0.1:0\"\n[warnpage]\nlisten = [\"127.0.0.1:0\"]\n[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n",
        lists_toml(dir.path())
    );
    std::fs::write(dir.path().join("f.toml"), toml).unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(dir.path().join("f.toml"))
        .env("NOTIFY_SOCKET", &sock_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 64];
    let n = rx.recv(&mut buf).expect("READY=1 within 20 s");
    assert_eq!(&buf[..n], b"READY=1");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let n = rx.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn readme_dig_example_shows_the_sinkhole_and_the_ede() {
    // The README's first command serves the shipped sample lists; dig must show what
    // the README shows.
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let toml = format!(
        "[blocklist]\ndirs = [\"{}\"]\nallow_dirs = [\"{}\"]\n[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n",
        root.join("blocklists").display(),
        root.join("allowlists").display()
    );
    let f = Fanzha::start(dir.path(), &toml);
    let dig = ["/usr/bin/dig", "/bin/dig"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "dig is needed for this test; run scripts/test.sh, which installs Debian's dnsutils",
        );
    let o = std::process::Command::new(dig)
        .args([
            "@127.0.0.1",
            "-p",
            &f.dns.port().to_string(),
            "www.ezloantw.com",
            "A",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa rd ra"), "{out}");
    assert!(
        out.contains("EDE: 15 (Blocked): (blocked by fanzha: loan)"),
        "{out}"
    );
    assert!(
        out.contains("www.ezloantw.com.\t60\tIN\tA\t127.0.0.1"),
        "{out}"
    );
}

#[test]
fn check_config_says_which_config_and_finds_what_serve_would_trip_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("lists")).unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin())
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    // A list directory that is missing, a warning page on an address this machine
    // does not have, and a sinkhole where the page does not listen.
    std::fs::write(
        d.join("bad.toml"),
        "[blocklist]\ndirs = [\"lists\", \"nothere\"]\nallow_dirs = []\n\
         [warnpage]\nlisten = [\"192.0.2.1:8080\", \"127.0.0.1:8080\"]\n\
         [sinkhole]\nipv4 = \"127.0.0.2\"\nipv6 = \"none\"\n",
    )
    .unwrap();
    let bad = d.join("bad.toml");
    let (code, out) = run(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains(&format!("config: {}", bad.display())), "{out}");
    assert!(
        out.contains("problem: blocklist.dirs:") && out.contains("nothere"),
        "{out}"
    );
    assert!(out.contains("problem: warnpage.listen: 192.0.2.1"), "{out}");
    assert!(
        out.contains("warning: sinkhole") && out.contains("127.0.0.2"),
        "{out}"
    );
    // The older positional form says the same.
    assert_eq!(run(&["check-config", bad.to_str().unwrap()]).0, Some(2));
    // Fixed: fine.
    std::fs::write(
        d.join("good.toml"),
        "[blocklist]\ndirs = [\"lists\"]\nallow_dirs = []\n\
         [warnpage]\nlisten = [\"127.0.0.1:8080\"]\n[sinkhole]\nipv4 = \"127.0.0.1\"\nipv6 = \"none\"\n",
    )
    .unwrap();
    let (code, out) = run(&[
        "check-config",
        "--config",
        d.join("good.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning") && out.contains("ok ("), "{out}");
    // A secret file that cannot be read is refused by name.
    std::fs::write(
        d.join("secret.toml"),
        "[blocklist]\ndirs = [\"lists\"]\nallow_dirs = []\n\
         [report]\nurl = \"https://p.example/hits\"\nsecret_file = \"no-such-secret\"\n",
    )
    .unwrap();
    let (code, out) = run(&[
        "check-config",
        "--config",
        d.join("secret.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("report.secret_file"), "{out}");

    // Without --config: /etc/fanzha/fanzha.toml when it exists. A throw-away mount
    // namespace puts a temporary directory over /etc; the host's /etc is untouched.
    let etc = d.join("etc");
    std::fs::create_dir_all(etc.join("fanzha/blocklists")).unwrap();
    std::fs::create_dir_all(etc.join("fanzha/allowlists")).unwrap();
    std::fs::write(
        etc.join("fanzha/fanzha.toml"),
        "[server]\nlisten = [\"127.0.0.1:5353\"]\n",
    )
    .unwrap();
    let o = std::process::Command::new("unshare")
        .args([
            "-Urm",
            "sh",
            "-c",
            "mount --bind \"$1\" /etc && exec \"$2\" check-config",
            "_",
        ])
        .arg(&etc)
        .arg(bin())
        .output()
        .expect("unshare (util-linux) runs; user namespaces are needed, or root");
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("config: /etc/fanzha/fanzha.toml"), "{out}");
    assert_eq!(o.status.code(), Some(0), "{out}");
    // And with no such file, the embedded defaults, said so.
    let (code, out) = run(&["check-config"]);
    if !std::path::Path::new("/etc/fanzha/fanzha.toml").exists() {
        assert!(out.contains("the embedded defaults"), "{out}");
        assert_eq!(code, Some(0), "{out}");
    }
}

#[test]
fn logs_can_be_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\nlog_format = \"json\"\n\
         [ops]\nlisten = \"127.0.0.1:0\"\n[warnpage]\nlisten = []\n\
         [resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n",
        lists_toml(dir.path())
    );
    std::fs::write(dir.path().join("f.toml"), toml).unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(dir.path().join("f.toml"))
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let ready = line.contains("\"ready\"");
        lines.push(line);
        if ready {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.iter().any(|l| l.contains("\"ready\"")), "{lines:#?}");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
        assert!(v["fields"]["message"].is_string(), "{l}");
    }
}

#[test]
fn check_config_names_every_bad_key_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = [\"nonsense\"]\nrate_limit_action = \"explode\"\n\
         [[sources]]\nurl = \"ftp://x\"\n\
         [[sources]]\nurl = \"https://ok.example/list.txt\"\nrefresh = \"1ms\"\n\
         [sinkhole]\nipv4 = \"banana\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for key in [
        "`server.listen[0]`",
        "`server.rate_limit_action`",
        "`sources[0].url`",
        // Numbered as in the file, though sources[0] was taken out to go on.
        "`sources[1].refresh`",
        "`sinkhole.ipv4`",
    ] {
        assert!(
            text.contains(&format!("problem: config key {key}")),
            "{key}: {text}"
        );
    }
}

#[test]
fn every_shipped_config_checks_clean_where_it_is_installed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    // The reference config, beside the list directories it names (relative).
    let example = tmp.path().join("example");
    for d in ["blocklists", "allowlists"] {
        std::fs::create_dir_all(example.join(d)).unwrap();
    }
    std::fs::copy(root.join("config/fanzha.toml"), example.join("fanzha.toml")).unwrap();
    // The packaged one, with /etc/fanzha and /var/lib/fanzha moved into a temporary
    // root (nothing is written to the host's /etc), as the package lays them out.
    let sysroot = tmp.path().join("root");
    let etc = sysroot.join("etc/fanzha");
    for d in ["blocklists", "allowlists"] {
        std::fs::create_dir_all(etc.join(d)).unwrap();
    }
    std::fs::copy(
        root.join("config/never-block.txt"),
        etc.join("never-block.txt"),
    )
    .unwrap();
    let production = std::fs::read_to_string(root.join("config/production.toml"))
        .unwrap()
        .replace("/etc/fanzha", &etc.display().to_string())
        .replace(
            "/var/lib/fanzha",
            &sysroot.join("var/lib/fanzha").display().to_string(),
        )
        .replace(
            "/run/fanzha",
            &sysroot.join("run/fanzha").display().to_string(),
        );
    std::fs::write(etc.join("fanzha.toml"), production).unwrap();
    for cfg in [example.join("fanzha.toml"), etc.join("fanzha.toml")] {
        let out = Command::new(bin())
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{}: {text}", cfg.display());
        assert!(!text.contains("problem:"), "{text}");
    }
}

/// The shipped configs pass their own check where they stand: the embedded defaults
/// from the source tree, and config/fanzha.toml as its header says to check it.
/// Neither warns (a loopback sinkhole is served by a page on either loopback).
#[test]
fn the_shipped_defaults_pass_check_config_without_a_warning() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut runs = vec![vec!["check-config", "--config", "config/fanzha.toml"]];
    if !std::path::Path::new("/etc/fanzha/fanzha.toml").exists() {
        runs.push(vec!["check-config"]);
    }
    for args in runs {
        let o = std::process::Command::new(bin())
            .args(&args)
            .current_dir(root)
            .output()
            .unwrap();
        let out =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {out}");
        assert!(!out.contains("warning"), "{args:?}: {out}");
    }
}
