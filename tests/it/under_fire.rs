//! The resolver under fire, against the programmable lab (tests/it/common/lab.rs): dead
//! and very slow zones, referrals and RRsets that fill a 64 KiB TCP answer, a busy
//! client behind a NAT next to a random-subdomain flood, and queries that do not
//! ask for recursion. Unbound's behaviour is the reference.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// `zone.test.` delegated by `test.` to the servers `lasts` (with glue), each in
/// `mode`; the zone holds `www A 192.0.2.1` and `extra`.
fn zone_on(zone: &str, lasts: &[u8], mode: Mode, extra: &str) -> Lab {
    let mut tld = String::new();
    let mut apex = String::new();
    for l in lasts {
        tld += &format!("{zone} NS ns{l}.{zone}.test.\nns{l}.{zone} LAB {l}\n");
        apex += &format!("@ NS ns{l}.{zone}.test.\nns{l} LAB {l}\n");
    }
    apex += &format!("www A 192.0.2.1\n{extra}");
    let origin = format!("{zone}.test.");
    let servers = lasts
        .iter()
        .map(|l| Server::new(*l, &[origin.as_str()], mode))
        .collect();
    Lab::under_test(&tld, &[(origin.as_str(), apex.as_str())], servers)
}

/// Send `names` as fast as `per_ms` queries a millisecond allow, from one socket
/// bound to `from`, then collect the answers for `wait`: rcode by query ID (an
/// unanswered query is absent).
fn burst(
    dns: SocketAddr,
    from: IpAddr,
    names: &[String],
    per_ms: usize,
    wait: Duration,
) -> HashMap<u16, ResponseCode> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(8 << 20)
        .unwrap();
    let reader = {
        let s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut got = HashMap::new();
            let mut buf = [0u8; 4096];
            let until = Instant::now() + wait;
            while Instant::now() < until {
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                if let Ok((n, _)) = s.recv_from(&mut buf)
                    && let Ok(m) = Message::from_vec(&buf[..n])
                {
                    got.insert(m.metadata.id, m.metadata.response_code);
                }
            }
            got
        })
    };
    let t0 = Instant::now();
    for (i, n) in names.iter().enumerate() {
        let mut q = make_query(n, RecordType::A, true);
        q.metadata.id = i as u16;
        s.send_to(&q.to_vec().unwrap(), dns).unwrap();
        if (i + 1) % per_ms == 0 {
            let due = t0 + Duration::from_millis(((i + 1) / per_ms) as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }
    reader.join().unwrap()
}

#[test]
fn a_busy_client_behind_a_nat_is_answered_while_the_server_has_room() {
    // Each name is new and each answer takes 100 ms: at 10,000 qps from one
    // address about a thousand resolutions are in flight for that one client.
    let l = zone_on("nat", &[12, 13], Mode::Slow, "");
    // Room enough for all 3,000 at once, and time enough for each answer, however
    // slow this machine is today: the point is that one client may use the room,
    // not how much room is the default or how fast the lab answers.
    let (_d, f) = l.fanzha("timeout_ms = 2000\n", "[server]\nmax_inflight = 5000\n");
    let names: Vec<String> = (0..3000).map(|i| format!("u{i}.nat.test.")).collect();
    let got = burst(
        f.dns,
        "127.0.0.1".parse().unwrap(),
        &names,
        10,
        Duration::from_secs(6),
    );
    let servfail = got
        .values()
        .filter(|r| **r == ResponseCode::ServFail)
        .count();
    assert_eq!(
        servfail,
        0,
        "{servfail} SERVFAIL of {} answers; overload {}\n{}",
        got.len(),
        f.metric("fanzha_overload_total"),
        f.http_get("/metrics").1
    );
    assert!(
        got.len() >= names.len() * 99 / 100,
        "only {} of {} answered",
        got.len(),
        names.len()
    );
}

#[test]
fn a_flood_from_one_client_at_the_cap_never_keeps_the_others_out() {
    // The flood's names sit in a zone whose server answers after 100 ms, so at
    // 4,000 qps its resolutions pile up to the cap of 200; the other client's
    // names resolve at once.
    let l = Lab::under_test(
        "slow NS ns12.slow.test.\nns12.slow LAB 12\nfast NS ns13.fast.test.\nns13.fast LAB 13\n",
        &[
            ("slow.test.", "@ NS ns12.slow.test.\nns12 LAB 12\n"),
            ("fast.test.", "@ NS ns13.fast.test.\nns13 LAB 13\n"),
        ],
        vec![
            Server::new(12, &["slow.test."], Mode::Slow),
            Server::new(13, &["fast.test."], Mode::AnswerAll),
        ],
    );
    let (_d, f) = l.fanzha(
        "timeout_ms = 1000\n",
        "[server]\nmax_inflight = 200\nmax_inflight_per_client = 10\n",
    );
    let dns = f.dns;
    let flood = std::thread::spawn(move || {
        let names: Vec<String> = (0..4000).map(|i| format!("r{i}.slow.test.")).collect();
        burst(
            dns,
            "127.0.0.3".parse().unwrap(),
            &names,
            4,
            Duration::from_secs(3),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut missed = Vec::new();
    for i in 0..100 {
        let n = format!("b{i}.fast.test.");
        let q = make_query(&n, RecordType::A, true);
        let m = udp_from(
            "127.0.0.4".parse().unwrap(),
            dns,
            &q,
            Duration::from_secs(2),
        );
        if m.is_none_or(|m| m.metadata.response_code != ResponseCode::NoError) {
            missed.push(n);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let flooded = flood.join().unwrap();
    assert!(
        missed.is_empty(),
        "the other client missed {missed:?}\nflood answers: {}; jostled {}; overload {}",
        flooded.len(),
        f.metric("fanzha_jostled_total"),
        f.metric("fanzha_overload_total")
    );
    // The flood was held at the cap: shed or refused, not all in flight.
    assert!(
        f.metric("fanzha_jostled_total") + f.metric("fanzha_overload_total") > 0.0,
        "the flood never reached the cap"
    );
}

#[test]
fn a_zone_whose_servers_are_all_dead_fails_fast_and_is_not_hammered() {
    // Ten silent servers: after they have timed out, names under the zone fail at
    // once (a probe now and then) instead of each waiting out ten timeouts.
    let lasts: Vec<u8> = (12..22).collect();
    let l = zone_on("dead", &lasts, Mode::Silent, "");
    let (_d, f) = l.fanzha("", "");
    for i in 0..3 {
        let m = udp(f.dns, &format!("w{i}.dead.test."), RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
    l.clear();
    let t0 = Instant::now();
    for i in 0..30 {
        let m = udp(f.dns, &format!("x{i}.dead.test."), RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
    let took = t0.elapsed();
    let asked = l.seen().iter().filter(|s| s.server >= 12).count();
    assert!(
        asked <= 10,
        "the dead servers were asked {asked} times for 30 names"
    );
    // Each of the 30 would wait out 200 ms timeouts before.
    assert!(took < Duration::from_secs(3), "30 names took {took:?}");
}

#[test]
fn a_referral_to_fifteen_hundred_name_servers_is_cut_to_a_few() {
    // The `test.` server pads every referral with 1,500 more NS records and their
    // glue (all pointing at the real server), so the answer comes over TCP.
    let l = zone_on("big", &[12], Mode::Normal, "");
    l.set_mode(11, Mode::HugeReferral(1500));
    let (_d, f) = l.fanzha("", "");
    let m = udp(f.dns, "www.big.test.", RecordType::A);
    assert_eq!(ips(&m), vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    let seen = l.seen();
    assert!(
        seen.iter().any(|s| s.server == 11 && s.tcp),
        "the referral came over TCP"
    );
    // Name servers beyond the cap are neither resolved nor asked.
    assert!(seen.len() < 20, "{} queries: {seen:?}", seen.len());
    for i in 0..5 {
        let m = udp(f.dns, &format!("h{i}.big.test."), RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }
}

#[test]
fn a_zone_handed_back_to_the_server_that_delegates_it_is_lame_without_asking_again() {
    // `back.test.` delegates ten zones to its own server, which does not serve them:
    // asked there, it would only give the same referral again (a hostile zone does
    // this for every random name, with 55 KB referrals).
    let extra: String = (0..10)
        .map(|k| format!("sub{k} NS ns.sub{k}.back.test.\nns.sub{k} LAB 12\n"))
        .collect();
    let l = zone_on("back", &[12], Mode::Normal, &extra);
    let (_d, f) = l.fanzha("", "");
    assert_eq!(ips(&udp(f.dns, "www.back.test.", RecordType::A)).len(), 1);
    l.clear();
    for k in 0..10 {
        let m = udp(f.dns, &format!("sub{k}.back.test."), RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
    let asked = l.seen().iter().filter(|s| s.server == 12).count();
    assert_eq!(asked, 10, "{:?}", l.seen());
}

#[test]
fn a_server_that_keeps_handing_back_oversize_referrals_is_not_followed_over_tcp() {
    // As above, but each referral back is too large for UDP (a hostile zone's
    // 55 KB referrals): after three, its truncated replies are not followed.
    let extra: String = (0..10)
        .map(|k| format!("sub{k} NS ns.sub{k}.back.test.\nns.sub{k} LAB 12\n"))
        .collect::<String>()
        + "other A 192.0.2.44\n";
    let l = zone_on("back", &[12], Mode::Normal, &extra);
    let (_d, f) = l.fanzha("", "");
    assert_eq!(ips(&udp(f.dns, "www.back.test.", RecordType::A)).len(), 1);
    l.set_mode(12, Mode::HugeReferral(300));
    l.clear();
    for k in 0..10 {
        let m = udp(f.dns, &format!("sub{k}.back.test."), RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
    let asked: Vec<_> = l.seen().into_iter().filter(|s| s.server == 12).collect();
    let over_tcp = asked.iter().filter(|s| s.tcp).count();
    assert_eq!(over_tcp, 3, "{asked:?}");
    assert_eq!(
        asked.len() - over_tcp,
        10,
        "one UDP query per name: {asked:?}"
    );
    // The zone's own answers, which fit UDP, still resolve.
    let m = udp(f.dns, "other.back.test.", RecordType::A);
    assert_eq!(
        ips(&m),
        vec!["192.0.2.44".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn an_rrset_of_four_thousand_records_is_kept_to_the_cap() {
    let l = zone_on("wide", &[12], Mode::HugeRrset(4000), "");
    let (_d, f) = l.fanzha("", "");
    let over_udp = udp(f.dns, "www.wide.test.", RecordType::A);
    assert!(over_udp.metadata.truncation, "{over_udp:?}");
    let m = tcp(f.dns, &make_query("www.wide.test.", RecordType::A, true));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let n = ips(&m).len();
    assert!((1..=512).contains(&n), "{n} records");
    assert!(l.seen().iter().any(|s| s.server == 12 && s.tcp));
}

/// `name` asked without recursion desired.
fn norec(f: &Fanzha, name: &str) -> Message {
    let mut q = make_query(name, RecordType::A, true);
    q.metadata.recursion_desired = false;
    ask(f.dns, &q)
}

#[test]
fn queries_without_recursion_get_local_data_only_unless_snooping_is_allowed() {
    let l = zone_on("rd", &[12], Mode::Normal, "");
    let (_d, f) = l.fanzha("", "");
    // Not resolved, and nothing sent upstream.
    let m = norec(&f, "www.rd.test.");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(l.seen().is_empty(), "{:?}", l.seen());
    // Cached by a recursive query, and still not shown (no cache snooping).
    assert_eq!(ips(&udp(f.dns, "www.rd.test.", RecordType::A)).len(), 1);
    let m = norec(&f, "www.rd.test.");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
    // fanzha's own data answers: a blocked name gets its sinkhole.
    let m = norec(&f, "blocked.invalid.");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ips(&m).len(), 1);
    drop(f);

    // allow_snoop: the cache answers, a miss is still refused.
    let (_d, f) = l.fanzha("", "[server]\nallow_snoop = [\"127.0.0.0/8\"]\n");
    udp(f.dns, "www.rd.test.", RecordType::A);
    let m = norec(&f, "www.rd.test.");
    assert_eq!(ips(&m), vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    let m = norec(&f, "h1.rd.test.");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn qname_minimisation_can_be_turned_off() {
    let l = zone_on("min", &[12], Mode::Normal, "a.b.c A 192.0.2.9\n");
    let (_d, f) = l.fanzha("qname_minimisation = false\n", "");
    let m = udp(f.dns, "a.b.c.min.test.", RecordType::A);
    assert_eq!(ips(&m), vec!["192.0.2.9".parse::<IpAddr>().unwrap()]);
    // Every server, the root's too, saw the full name.
    let seen = l.seen();
    assert!(seen.iter().all(|s| s.name == "a.b.c.min.test."), "{seen:?}");
    drop(f);
    l.clear();
    let (_d, f) = l.fanzha("", "");
    udp(f.dns, "a.b.c.min.test.", RecordType::A);
    assert!(
        l.seen().iter().any(|s| s.server == 10 && s.name == "test."),
        "minimised by default: {:?}",
        l.seen()
    );
}

#[test]
fn allow_snoop_is_applied_by_sighup() {
    let l = zone_on("hup", &[12], Mode::Normal, "");
    let (d, f) = l.fanzha("", "");
    udp(f.dns, "www.hup.test.", RecordType::A);
    assert_eq!(
        norec(&f, "www.hup.test.").metadata.response_code,
        ResponseCode::Refused
    );
    let cfg = d.path().join("fanzha.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replacen(
        "[server]\n",
        "[server]\nallow_snoop = [\"127.0.0.0/8\"]\n",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    f.signal("HUP");
    let t0 = Instant::now();
    while norec(&f, "www.hup.test.").answers.is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "SIGHUP did not apply allow_snoop\n{}",
            f.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn with_no_root_server_answering_names_fail_with_ede_22_and_one_loud_log() {
    let l = zone_on("quiet", &[12], Mode::Normal, "");
    l.set_mode(10, Mode::Silent);
    let (_d, f) = l.fanzha("", "");
    for name in ["www.quiet.test.", "other.quiet.test.", "www.quiet.test."] {
        let m = udp(f.dns, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{name}");
        let ede = m
            .edns
            .as_ref()
            .map(|e| format!("{:?}", e.options()))
            .unwrap_or_default();
        assert!(ede.contains("Unknown(15, [0, 22"), "{name}: {ede}");
    }
    let log = f.log_text();
    assert_eq!(
        log.matches("no root server has answered").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("mode = \"forward\""),
        "it says what to do: {log}"
    );
    // Counted by reason (the third name came from the failure cache: not resolved).
    let failed = f.metric("fanzha_resolution_failures_total{reason=\"no_root_answers\"}");
    assert!(failed >= 2.0, "{failed}");
    // fanzha's own data still answers.
    assert_eq!(ips(&udp(f.dns, "blocked.invalid.", RecordType::A)).len(), 1);
    // The root comes back: once its probe goes through, names resolve again.
    l.set_mode(10, Mode::Normal);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let m = udp(f.dns, "www.quiet.test.", RecordType::A);
        if m.metadata.response_code == ResponseCode::NoError {
            assert_eq!(ips(&m).len(), 1);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", f.log_text());
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(f.wait_log("a root server answers", std::time::Duration::from_secs(1)));
}
