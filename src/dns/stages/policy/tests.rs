use super::super::admit::RateLimiter;
use super::*;
use crate::blocklist::{CompileSpec, compile};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{Ipv4Addr, Ipv6Addr};

fn list() -> (tempfile::TempDir, Blocklist) {
    compiled(&[
        ("loan.txt", "# category: loan\nevil.top\n"),
        (
            "police.txt",
            "# category: impersonation\n# action: nxdomain\npolice-fake.top\n",
        ),
    ])
}

/// The list compiled from `files` (name, text).
fn compiled(files: &[(&str, &str)]) -> (tempfile::TempDir, Blocklist) {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    for (name, text) in files {
        std::fs::write(b.join(name), text).unwrap();
    }
    let out = dir.path().join("l.fst");
    compile(
        &CompileSpec {
            dirs: vec![b],
            ..Default::default()
        },
        &out,
    )
    .unwrap();
    let l = Blocklist::open(&out, true).unwrap();
    (dir, l)
}

fn policy() -> Policy {
    let mut c = Config::embedded();
    c.sinkhole.v4 = "10.0.0.53".parse().unwrap();
    Policy::from_config(&c)
}

fn q(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(HQuery::query(Name::from_ascii(name).unwrap(), t));
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().unwrap()
}

fn run(p: &Policy, l: &Blocklist, packet: &[u8], client: &str) -> (Decision, Option<Message>) {
    let mut buf = Vec::new();
    let limiter = RateLimiter::new(0, 0);
    let d = p.decide(
        packet,
        client.parse().unwrap(),
        l,
        &limiter,
        Instant::now(),
        &mut buf,
    );
    let m = (!buf.is_empty()).then(|| Message::from_vec(&buf).unwrap());
    (d, m)
}

#[test]
fn blocked_answers_per_type() {
    let (_d, l) = list();
    let p = policy();
    let (d, m) = run(
        &p,
        &l,
        &q("www.Evil.top.", RecordType::A, true),
        "127.0.0.1",
    );
    assert!(matches!(d, Decision::Block(..)));
    let m = m.unwrap();
    assert!(m.metadata.authoritative);
    assert!(
        matches!(m.answers[0].data, RData::A(a) if a.0 == "10.0.0.53".parse::<Ipv4Addr>().unwrap())
    );
    assert_eq!(m.answers[0].name.to_ascii(), "www.Evil.top.");
    let ede = format!("{:?}", m.edns.unwrap().options());
    assert!(ede.contains("Unknown(15"), "{ede}");

    let (_, m) = run(
        &p,
        &l,
        &q("evil.top.", RecordType::AAAA, false),
        "127.0.0.1",
    );
    let m = m.unwrap();
    assert!(matches!(m.answers[0].data, RData::AAAA(a) if a.0 == Ipv6Addr::LOCALHOST));
    assert!(m.edns.is_none(), "no EDNS asked, none given");

    let mut p6 = p.clone();
    p6.sinkhole.v6 = None;
    for t in [
        RecordType::AAAA,
        RecordType::HTTPS,
        RecordType::SVCB,
        RecordType::MX,
        RecordType::TXT,
    ] {
        let (_, m) = run(&p6, &l, &q("a.evil.top.", t, true), "127.0.0.1");
        let m = m.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{t}");
        assert!(m.answers.is_empty(), "{t}");
        assert_eq!(m.authorities.len(), 1, "{t}");
        assert_eq!(
            m.authorities[0].name.to_ascii(),
            "evil.top.",
            "{t}: SOA owned by the rule"
        );
        assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    }
}

#[test]
fn actions_from_list_and_category_override() {
    let (_d, l) = list();
    let mut p = policy();
    let (_, m) = run(
        &p,
        &l,
        &q("x.police-fake.top.", RecordType::A, false),
        "127.0.0.1",
    );
    let m = m.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities.len(), 1);
    p.category_actions.insert("loan".into(), Action::Refused);
    let (_, m) = run(&p, &l, &q("evil.top.", RecordType::A, true), "127.0.0.1");
    let m = m.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.edns.is_some());
}

#[test]
fn admission() {
    let (_d, l) = list();
    let p = policy();
    let (d, m) = run(&p, &l, &q("evil.top.", RecordType::A, false), "203.0.113.9");
    assert!(matches!(d, Decision::Answer(Outcome::Refused)));
    assert_eq!(m.unwrap().metadata.response_code, ResponseCode::Refused);
    let (d, _) = run(
        &p,
        &l,
        &q("ok.top.", RecordType::A, false),
        "::ffff:10.1.2.3",
    );
    assert!(matches!(d, Decision::Resolve(_)));
    let (d, m) = run(&p, &l, &q("ok.top.", RecordType::ANY, false), "127.0.0.1");
    assert!(matches!(d, Decision::Answer(Outcome::Local)));
    assert!(matches!(m.unwrap().answers[0].data, RData::HINFO(_)));
    let (d, m) = run(
        &p,
        &l,
        &q("use-application-dns.NET.", RecordType::A, false),
        "127.0.0.1",
    );
    assert!(matches!(d, Decision::Answer(Outcome::Local)));
    assert_eq!(m.unwrap().metadata.response_code, ResponseCode::NXDomain);
    let mut pkt = q("ok.top.", RecordType::A, false);
    pkt[5] = 2;
    let (d, m) = run(&p, &l, &pkt, "127.0.0.1");
    assert!(matches!(d, Decision::Answer(Outcome::Malformed)));
    assert_eq!(
        &m.map(|m| m.metadata.response_code),
        &Some(ResponseCode::FormErr)
    );
    let mut pkt = q("ok.top.", RecordType::A, false);
    pkt[2] |= 4 << 3; // NOTIFY
    let (_, m) = run(&p, &l, &pkt, "127.0.0.1");
    assert_eq!(m.unwrap().metadata.response_code, ResponseCode::NotImp);
}

#[test]
fn token_bucket() {
    let rl = RateLimiter::new(10, 20);
    let t0 = Instant::now();
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let admitted = (0..100).filter(|_| rl.admit(ip, t0)).count();
    assert_eq!(admitted, 20, "the burst");
    assert!(
        rl.admit("10.0.0.2".parse().unwrap(), t0),
        "another client has its own bucket"
    );
    let t1 = t0 + std::time::Duration::from_millis(500);
    let admitted = (0..100).filter(|_| rl.admit(ip, t1)).count();
    assert_eq!(admitted, 5, "10/s refills 5 in half a second");
    assert!(RateLimiter::new(0, 0).admit(ip, t0));
}

#[test]
fn a_named_place_has_one_bucket_for_all_its_residents() {
    // No per-client limit; 10/s for each place named over encrypted DNS.
    let rl = RateLimiter::new(0, 0).with_place_rate(10);
    let t0 = Instant::now();
    let admitted = (0..100).filter(|_| rl.admit_place(3, t0)).count();
    assert_eq!(admitted, 20, "bursts of twice the rate, whoever asks");
    assert!(rl.admit_place(4, t0), "another place has its own bucket");
    let t1 = t0 + std::time::Duration::from_millis(500);
    assert_eq!((0..100).filter(|_| rl.admit_place(3, t1)).count(), 5);
    assert!(RateLimiter::new(0, 0).admit_place(3, t0), "0: no limit");
}

#[test]
fn a_named_place_is_admitted_from_outside_the_acl_and_limited_by_its_bucket() {
    let (_d, l) = list();
    let p = policy();
    let packet = q("ok.top.", RecordType::A, true);
    let outside: IpAddr = "192.0.2.9".parse().unwrap();
    let rl = RateLimiter::new(0, 0).with_place_rate(1);
    let mut buf = Vec::new();
    let mut decide = |who| {
        let n = &mut Noted::default();
        p.decide_noting(&packet, who, &l, &rl, Instant::now(), &mut buf, n)
    };
    let d = decide(crate::places::Asker::at(outside));
    assert!(matches!(d, Decision::Answer(Outcome::Refused)), "{d:?}");
    let named = crate::places::Asker {
        ip: outside,
        named: Some(0),
    };
    assert!(matches!(decide(named), Decision::Resolve(_)));
    assert!(
        matches!(decide(named), Decision::Resolve(_)),
        "the burst is 2"
    );
    let d = decide(named);
    assert!(
        matches!(d, Decision::Answer(Outcome::RateLimited)),
        "over the place's rate: {d:?}"
    );
}

#[test]
fn error_answers_are_admitted_like_any_other() {
    let (_d, l) = list();
    let p = policy();
    // BADVERS (EDNS version 1) and FORMERR from outside the ACL: REFUSED, nothing else.
    let mut badvers = q("ok.top.", RecordType::A, true);
    let opt_version = badvers.len() - 5; // OPT ends: ext-rcode, version, flags(2), rdlen(2)
    badvers[opt_version] = 1;
    let (d, _) = run(&p, &l, &badvers, "127.0.0.1");
    assert!(matches!(d, Decision::Answer(Outcome::Malformed)), "{d:?}");
    let mut formerr = q("ok.top.", RecordType::A, false);
    formerr[5] = 2;
    for pkt in [&badvers, &formerr] {
        let (d, m) = run(&p, &l, pkt, "203.0.113.9");
        assert!(matches!(d, Decision::Answer(Outcome::Refused)), "{d:?}");
        assert_eq!(m.unwrap().metadata.response_code, ResponseCode::Refused);
    }
    // Error answers take tokens: a client past its rate gets no FORMERR either.
    let limiter = RateLimiter::new(1, 2);
    let now = Instant::now();
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let mut buf = Vec::new();
        let d = p.decide(
            &formerr,
            "10.9.9.9".parse().unwrap(),
            &l,
            &limiter,
            now,
            &mut buf,
        );
        outcomes.push(match d {
            Decision::Answer(o) | Decision::Drop(o) => o,
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(
        outcomes,
        [
            Outcome::Malformed,
            Outcome::Malformed,
            Outcome::RateLimited,
            Outcome::RateLimited
        ]
    );
}

#[test]
fn rate_limits_count_prefixes_exempt_networks_and_stay_bounded() {
    let t0 = Instant::now();
    let burst = |rl: &RateLimiter, ip: &str| {
        (0..50)
            .filter(|_| rl.admit(ip.parse().unwrap(), t0))
            .count()
    };
    // An IPv6 client rotating addresses in its /56 is one client.
    let rl = RateLimiter::new(5, 10);
    assert_eq!(burst(&rl, "2001:db8:1:100::1"), 10);
    assert_eq!(
        burst(&rl, "2001:db8:1:1ff:abcd::9"),
        0,
        "same /56, same bucket"
    );
    assert_eq!(burst(&rl, "2001:db8:1:200::1"), 10, "another /56");
    // IPv4 by address by default; by /24 when asked.
    assert_eq!(burst(&rl, "198.51.100.1"), 10);
    assert_eq!(burst(&rl, "198.51.100.2"), 10);
    let rl24 = RateLimiter::keyed(5, 10, 24, 56, vec![]);
    assert_eq!(burst(&rl24, "198.51.100.1"), 10);
    assert_eq!(burst(&rl24, "198.51.100.2"), 0);
    // A NAT serving a whole community can be exempt.
    let rl = RateLimiter::keyed(5, 10, 32, 56, vec!["100.64.0.0/10".parse().unwrap()]);
    assert_eq!(burst(&rl, "100.64.3.4"), 50);
    assert_eq!(
        burst(&rl, "::ffff:100.64.3.4"),
        50,
        "IPv4-mapped counts as IPv4"
    );
    // A flood of spoofed sources: memory stays bounded (entries go one at a time,
    // CLOCK, never by a scan of the table).
    let rl = RateLimiter::new(5, 10);
    let hot: IpAddr = "203.0.113.7".parse().unwrap();
    for _ in 0..10 {
        rl.admit(hot, t0);
    }
    for i in 0..1_000_000u32 {
        rl.admit(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)), t0);
        if i % 1000 == 0 {
            rl.admit(hot, t0);
        }
    }
    assert!(
        rl.tracked() <= fanzha_limit(),
        "{} clients tracked",
        rl.tracked()
    );
    assert!(
        !rl.admit(hot, t0),
        "the client that keeps asking keeps its empty bucket"
    );
}

fn fanzha_limit() -> usize {
    super::super::admit::RATE_LIMIT_CLIENTS
}

#[test]
fn each_place_applies_its_own_actions_and_shadow_resolves_but_is_noted() {
    let (_d, l) = list();
    let mut c = Config::embedded();
    c.sinkhole.v4 = "10.0.0.53".parse().unwrap();
    let place = |policy| crate::places::Place {
        district: "滨江区".into(),
        street: "西兴街道".into(),
        community: String::new(),
        policy,
        alert: None,
        managed_tls: false,
    };
    c.places = crate::places::Places::new(
        vec![
            ("127.0.0.2/32".parse().unwrap(), place(Some(0))),
            ("127.0.0.3/32".parse().unwrap(), place(Some(1))),
        ],
        place(None),
    )
    .with_policies(vec![
        crate::places::PlacePolicy {
            name: "trial".into(),
            categories: vec![
                ("loan".into(), Action::Shadow),
                ("impersonation".into(), Action::Off),
            ],
        },
        crate::places::PlacePolicy {
            name: "school".into(),
            categories: vec![("loan".into(), Action::Nxdomain)],
        },
    ]);
    let p = Policy::from_config(&c);
    let decide = |name: &str, client: &str| {
        let mut buf = Vec::new();
        let mut noted = Noted::default();
        let d = p.decide_noting(
            &q(name, RecordType::A, false),
            crate::places::Asker::at(client.parse().unwrap()),
            &l,
            &RateLimiter::new(0, 0),
            Instant::now(),
            &mut buf,
            &mut noted,
        );
        let rcode =
            (!buf.is_empty()).then(|| Message::from_vec(&buf).unwrap().metadata.response_code);
        (d, rcode, noted.shadow.map(|s| s.action))
    };
    // A client in no place with a policy: the lists' own actions.
    let (d, rc, s) = decide("a.evil.top.", "127.0.0.1");
    assert!(matches!(d, Decision::Block(..)) && rc == Some(ResponseCode::NoError) && s.is_none());
    let (_, rc, _) = decide("police-fake.top.", "127.0.0.1");
    assert_eq!(rc, Some(ResponseCode::NXDomain));
    // The trial place: loan is shadow (resolved, noted), impersonation off
    // (resolved, not noted).
    let (d, rc, s) = decide("a.evil.top.", "127.0.0.2");
    assert!(matches!(d, Decision::Resolve(_)) && rc.is_none());
    assert_eq!(s, Some(Action::Shadow));
    let (d, _, s) = decide("police-fake.top.", "127.0.0.2");
    assert!(matches!(d, Decision::Resolve(_)) && s.is_none());
    // The school: loan answers NXDOMAIN; impersonation keeps its list's action.
    let (d, rc, _) = decide("evil.top.", "127.0.0.3");
    assert!(matches!(d, Decision::Block(_, i) if i.action == Action::Nxdomain));
    assert_eq!(rc, Some(ResponseCode::NXDomain));
    let (_, rc, _) = decide("police-fake.top.", "127.0.0.3");
    assert_eq!(rc, Some(ResponseCode::NXDomain));
    // A name on no list: resolved everywhere, nothing noted.
    let (d, _, s) = decide("fine.example.", "127.0.0.2");
    assert!(matches!(d, Decision::Resolve(_)) && s.is_none());
}

/// A host with path rules (and no host rule) goes to the URL proxy for the places
/// that can enforce them: A and AAAA are the proxy's, HTTPS and SVCB have no data,
/// other types resolve; elsewhere it resolves, noted as unenforced. An allowed or
/// blocked host is decided by its host rule.
#[test]
fn a_host_with_path_rules_goes_to_the_url_proxy_where_it_can_be_enforced() {
    let (_dir, l) = compiled(&[(
        "urls.txt",
        "http://sites.example/shop-1/pay\nhttp://evil.top/x\nevil.top\n",
    )]);
    let place = |managed_tls| crate::places::Place {
        district: "滨江区".into(),
        managed_tls,
        ..Default::default()
    };
    let mut c = Config::embedded();
    c.places = crate::places::Places::new(
        vec![("127.0.0.2/32".parse().unwrap(), place(true))],
        place(false),
    );
    let with = |passthrough: Option<bool>| {
        let mut p = Policy::from_config(&c);
        p.url = passthrough.map(|passthrough| UrlProxy {
            v4: Some("10.0.0.54".parse().unwrap()),
            v6: None,
            passthrough,
        });
        p
    };
    let decide = |p: &Policy, name: &str, t: RecordType, client: &str| {
        let mut buf = Vec::new();
        let mut noted = Noted::default();
        let d = p.decide_noting(
            &q(name, t, true),
            crate::places::Asker::at(client.parse().unwrap()),
            &l,
            &RateLimiter::new(0, 0),
            Instant::now(),
            &mut buf,
            &mut noted,
        );
        let m = (!buf.is_empty()).then(|| Message::from_vec(&buf).unwrap());
        (d, m, noted.unenforced)
    };
    let proxy: Ipv4Addr = "10.0.0.54".parse().unwrap();
    for (p, client) in [
        (with(Some(false)), "127.0.0.2"),
        (with(Some(true)), "127.0.0.2"),
        (with(Some(true)), "127.0.0.9"),
    ] {
        let (d, m, u) = decide(&p, "Sites.Example.", RecordType::A, client);
        assert!(matches!(d, Decision::Answer(Outcome::UrlProxy)), "{client}");
        let m = m.unwrap();
        assert!(matches!(m.answers[0].data, RData::A(a) if a.0 == proxy));
        assert!(u.is_none());
        for t in [RecordType::AAAA, RecordType::HTTPS, RecordType::SVCB] {
            let (d, m, _) = decide(&p, "sites.example.", t, client);
            assert!(matches!(d, Decision::Answer(Outcome::UrlProxy)), "{t}");
            let m = m.unwrap();
            assert!(m.answers.is_empty() && m.metadata.response_code == ResponseCode::NoError);
        }
        let (d, _, _) = decide(&p, "sites.example.", RecordType::MX, client);
        assert!(matches!(d, Decision::Resolve(_)), "MX is not the web");
        let (d, _, _) = decide(&p, "www.sites.example.", RecordType::A, client);
        assert!(
            matches!(d, Decision::Resolve(_)),
            "a URL's rules are its host's only"
        );
    }
    // A place that cannot enforce it: resolved, noted.
    let (d, _, u) = decide(
        &with(Some(false)),
        "sites.example.",
        RecordType::A,
        "127.0.0.9",
    );
    assert!(matches!(d, Decision::Resolve(_)));
    assert_eq!(u, Some(Unenforced::Unmanaged));
    let (d, _, u) = decide(&with(None), "sites.example.", RecordType::A, "127.0.0.2");
    assert!(matches!(d, Decision::Resolve(_)));
    assert_eq!(u, Some(Unenforced::NoProxy));
    // A host rule decides before path rules.
    let (d, _, u) = decide(&with(Some(true)), "evil.top.", RecordType::A, "127.0.0.2");
    assert!(matches!(d, Decision::Block(..)) && u.is_none());
}
