//! Recursion against a programmable offline hierarchy (tests/it/common/lab.rs): servers
//! that are lame, silent, unreachable or misconfigured, chains in negative answers,
//! scrubbing, and how many queries reach each authoritative server. The behaviour
//! asked for is Unbound's.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

fn lab(test_zone: &str, zones: &[(&str, &str)], servers: Vec<Server>) -> Lab {
    Lab::under_test(test_zone, zones, servers)
}

fn start(l: &Lab) -> (tempfile::TempDir, Fanzha) {
    l.fanzha("", "")
}

fn start_with(l: &Lab, resolver: &str, more: &str) -> (tempfile::TempDir, Fanzha) {
    l.fanzha(resolver, more)
}

fn types(m: &Message) -> Vec<RecordType> {
    m.answers.iter().map(|r| r.record_type()).collect()
}

/// `example.test.` on servers 12 and 13 (as `modes` say), delegated with glue.
fn two_servers(m12: Mode, m13: Mode, extra: &str) -> Lab {
    let tld = "example NS ns1.example.test.\nexample NS ns2.example.test.\n\
               ns1.example LAB 12\nns2.example LAB 13\n";
    let zone = format!(
        "@ NS ns1.example.test.\n@ NS ns2.example.test.\nns1 LAB 12\nns2 LAB 13\n\
         www A 192.0.2.1\nwww AAAA 2001:db8::1\n{extra}"
    );
    let zone: &'static str = Box::leak(zone.into_boxed_str());
    lab(
        tld,
        &[("example.test.", zone)],
        vec![
            Server::new(12, &["example.test."], m12),
            Server::new(13, &["example.test."], m13),
        ],
    )
}

/// Ask `n` fresh names under example.test. (so that the cache does not hide a
/// failure) and require every one to be answered.
fn all_answered(f: &Fanzha, names: usize, what: &str) {
    for i in 0..names {
        let m = udp(f.dns, &format!("h{i}.example.test."), RecordType::A);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{what}: h{i}: {m:?}\n{}",
            f.log_text()
        );
        assert_eq!(
            ips(&m),
            vec!["192.0.2.1".parse::<IpAddr>().unwrap()],
            "{what}: h{i}"
        );
    }
}

fn hosts() -> String {
    (0..8).map(|i| format!("h{i} A 192.0.2.1\n")).collect()
}

#[test]
fn a_lame_refusing_failing_or_silent_first_server_costs_a_try_not_the_domain() {
    for bad in [
        Mode::Refused,
        Mode::Servfail,
        Mode::Silent,
        Mode::UpwardReferral,
        Mode::SelfReferral,
    ] {
        let l = two_servers(bad, Mode::Normal, &hosts());
        let (_d, f) = start(&l);
        all_answered(&f, 8, &format!("{bad:?}"));
        let bad_seen = l.seen().iter().filter(|s| s.server == 12).count();
        let good_seen = l.seen().iter().filter(|s| s.server == 13).count();
        assert!(good_seen >= 8, "{bad:?}: the healthy server answered");
        // Lame and dead servers are remembered, not asked for every name.
        assert!(
            bad_seen <= 3,
            "{bad:?}: the bad server was asked {bad_seen} times"
        );
    }
}

#[test]
fn bad_glue_and_unreachable_addresses_fall_through_to_the_next_server() {
    // The TLD's glue for ns1 points at an address where no server runs.
    let tld = "example NS ns1.example.test.\nexample NS ns2.example.test.\n\
               ns1.example LAB 99\nns2.example LAB 13\n";
    let zone = format!(
        "@ NS ns1.example.test.\n@ NS ns2.example.test.\nns1 LAB 99\nns2 LAB 13\n{}",
        hosts()
    );
    let zone: &'static str = Box::leak(zone.into_boxed_str());
    let l = lab(
        tld,
        &[("example.test.", zone)],
        vec![Server::new(13, &["example.test."], Mode::Normal)],
    );
    let (_d, f) = start(&l);
    all_answered(&f, 8, "bad glue");
}

#[test]
fn a_parent_child_ns_mismatch_and_a_sold_domain_still_resolve() {
    // The parent delegates to 12 (which kept the old zone and now refers upward:
    // the domain was sold) and 13; the child's own NS set names only 13.
    let tld = "example NS ns1.example.test.\nexample NS ns2.example.test.\n\
               ns1.example LAB 12\nns2.example LAB 13\n";
    let zone = format!("@ NS ns2.example.test.\nns2 LAB 13\n{}", hosts());
    let zone: &'static str = Box::leak(zone.into_boxed_str());
    let l = lab(
        tld,
        &[("example.test.", zone)],
        vec![
            Server::new(12, &["example.test."], Mode::UpwardReferral),
            Server::new(13, &["example.test."], Mode::Normal),
        ],
    );
    let (_d, f) = start(&l);
    all_answered(&f, 8, "mismatch");
}

#[test]
fn glueless_name_servers_are_resolved_and_their_failure_fails_only_them() {
    // example.test. is served by ns.other.test. (no glue: resolved through
    // other.test.) and by ns.dead.test., whose own zone is served by nobody.
    let tld = "example NS ns.other.test.\nexample NS ns.dead.test.\n\
               other NS ns.other.test.\nns.other LAB 14\n\
               dead NS ns.dead.test.\nns.dead LAB 98\n";
    let zone = format!("@ NS ns.other.test.\n{}", hosts());
    let zone: &'static str = Box::leak(zone.into_boxed_str());
    let l = lab(
        tld,
        &[
            ("example.test.", zone),
            ("other.test.", "@ NS ns.other.test.\nns LAB 14\n"),
        ],
        vec![Server::new(
            14,
            &["example.test.", "other.test."],
            Mode::Normal,
        )],
    );
    let (_d, f) = start(&l);
    all_answered(&f, 4, "glueless");
}

#[test]
fn chains_stay_in_negative_answers() {
    let extra = "alias CNAME host.example.test.\nhost A 192.0.2.5\n\
                 dangling CNAME gone.example.test.\n\
                 out CNAME missing.other.test.\n\
                 c1 CNAME c2.other.test.\n\
                 old DNAME new.other.test.\n\
                 v6 CNAME host.example.test.\n";
    let l = lab(
        "example NS ns1.example.test.\nns1.example LAB 12\n\
         other NS ns1.other.test.\nns1.other LAB 13\n",
        &[
            (
                "example.test.",
                Box::leak(
                    format!("@ NS ns1.example.test.\nns1 LAB 12\nwww A 192.0.2.1\n{extra}")
                        .into_boxed_str(),
                ),
            ),
            (
                "other.test.",
                "@ NS ns1.other.test.\nns1 LAB 13\nc2 CNAME c3.other.test.\nc3 CNAME www.example.test.\nnew A 192.0.2.9\n",
            ),
        ],
        vec![
            Server::new(12, &["example.test."], Mode::Normal),
            Server::new(13, &["other.test."], Mode::Normal),
        ],
    );
    let (_d, f) = start(&l);
    // CNAME then NODATA: NOERROR with the CNAME.
    let m = udp(f.dns, "alias.example.test.", RecordType::TXT);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(types(&m), vec![RecordType::CNAME], "{m:?}");
    // Dangling CNAME: NXDOMAIN with the CNAME.
    let m = udp(f.dns, "dangling.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    assert_eq!(types(&m), vec![RecordType::CNAME]);
    // Across zones, to a name that does not exist.
    let m = udp(f.dns, "out.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    assert_eq!(types(&m), vec![RecordType::CNAME]);
    // Three links across two zones, then the address.
    let m = udp(f.dns, "c1.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(
        types(&m),
        vec![
            RecordType::CNAME,
            RecordType::CNAME,
            RecordType::CNAME,
            RecordType::A
        ],
        "{m:?}"
    );
    // AAAA at the end of a chain: the chain, then NODATA (host has no AAAA).
    let m = udp(f.dns, "v6.example.test.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(types(&m), vec![RecordType::CNAME]);
    // DNAME, then a name that does not exist under its target.
    let m = udp(f.dns, "nothere.old.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    assert_eq!(
        types(&m),
        vec![RecordType::DNAME, RecordType::CNAME],
        "{m:?}"
    );
    // The negative answers carry the SOA of the zone that said so.
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA && r.name.to_ascii() == "other.test."),
        "{m:?}"
    );
}

#[test]
fn wrong_types_out_of_zone_records_and_duplicates_are_scrubbed() {
    for (mode, qtype) in [
        (Mode::WrongType, RecordType::AAAA),
        (Mode::Duplicates, RecordType::A),
        (Mode::Poison, RecordType::A),
    ] {
        let l = two_servers(mode, mode, "");
        let (_d, f) = start(&l);
        let m = udp(f.dns, "www.example.test.", qtype);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{mode:?}");
        assert_eq!(types(&m), vec![qtype], "{mode:?}: {m:?}");
        assert!(
            m.additionals
                .iter()
                .chain(&m.authorities)
                .all(|r| !r.name.to_ascii().contains("poison")),
            "{mode:?}: {m:?}"
        );
    }
}

#[test]
fn an_oversize_udp_answer_is_taken_as_truncated_and_asked_again_over_tcp() {
    let big: String = (0..40)
        .map(|i| format!("big TXT {i:02} {}\n", "x".repeat(60)))
        .collect();
    let l = two_servers(Mode::OversizeUdp, Mode::OversizeUdp, &big);
    let (_d, f) = start(&l);
    let m = tcp(
        f.dns,
        &make_query("big.example.test.", RecordType::TXT, true),
    );
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{m:?}\n{}",
        f.log_text()
    );
    assert_eq!(m.answers.len(), 40);
    assert!(
        l.seen()
            .iter()
            .any(|s| s.tcp && s.name == "big.example.test."),
        "asked again over TCP"
    );
}

#[test]
fn notimp_answers_set_no_ra_and_do_not_echo_cd() {
    let l = two_servers(Mode::Normal, Mode::Normal, "");
    let (_d, f) = start(&l);
    let mut q = make_query("www.example.test.", RecordType::AXFR, false);
    q.metadata.checking_disabled = true;
    let raw = udp_raw(
        f.dns,
        &q.to_vec().unwrap(),
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    assert!(!m.metadata.recursion_available, "{m:?}");
    assert!(!m.metadata.checking_disabled, "{m:?}");
}

#[test]
fn fresh_names_cost_one_query_each_and_parents_never_see_the_full_name() {
    let names: String = (0..30)
        .map(|i| format!("n{i}.deep A 192.0.2.1\n"))
        .collect();
    let l = two_servers(Mode::Normal, Mode::Normal, &names);
    let (_d, f) = start(&l);
    for i in 0..30 {
        let m = udp(f.dns, &format!("n{i}.deep.example.test."), RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "n{i}");
    }
    let seen = l.seen();
    for s in &seen {
        let labels = s
            .name
            .trim_end_matches('.')
            .split('.')
            .filter(|x| !x.is_empty())
            .count();
        match s.server {
            10 => assert!(labels <= 1, "the root saw {}", s.name),
            11 => assert!(labels <= 2, "the TLD saw {}", s.name),
            _ => {}
        }
    }
    // One query per fresh name at the zone, after a descent of root, TLD and the
    // zone's empty non-terminal `deep`; no (server, name, type) asked twice.
    assert!(
        seen.len() <= 30 + 4,
        "{} upstream queries for 30 names: {seen:?}",
        seen.len()
    );
    let mut count: HashMap<(u8, String, RecordType), usize> = HashMap::new();
    for s in &seen {
        *count
            .entry((s.server, s.name.clone(), s.qtype))
            .or_default() += 1;
    }
    assert!(count.values().all(|n| *n == 1), "{count:?}");
}

#[test]
fn identical_queries_in_flight_are_merged() {
    let l = two_servers(Mode::Normal, Mode::Normal, "same A 192.0.2.7\n");
    let (_d, f) = start(&l);
    let dns = f.dns;
    let threads: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || udp(dns, "same.example.test.", RecordType::A)))
        .collect();
    for t in threads {
        let m = t.join().unwrap();
        assert_eq!(ips(&m), vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
    }
    let asked = l
        .seen()
        .iter()
        .filter(|s| s.name == "same.example.test.")
        .count();
    assert_eq!(asked, 1, "{:?}", l.seen());
}

#[test]
fn fresh_names_of_one_cold_zone_share_one_descent() {
    // Slow root and TLD servers: the 16 names below arrive while the first descent
    // is still waiting, and each must wait for it rather than ask again.
    let names: String = (0..16).map(|i| format!("c{i} A 192.0.2.1\n")).collect();
    let l = two_servers(Mode::Normal, Mode::Normal, &names);
    l.set_mode(10, Mode::Slow);
    l.set_mode(11, Mode::Slow);
    let (_d, f) = start(&l);
    l.clear();
    let dns = f.dns;
    let threads: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || udp(dns, &format!("c{i}.example.test."), RecordType::A))
        })
        .collect();
    for t in threads {
        let m = t.join().unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    let seen = l.seen();
    for (server, what) in [(10, "the root"), (11, "the TLD")] {
        let asked: Vec<&Seen> = seen.iter().filter(|s| s.server == server).collect();
        assert!(
            asked.len() <= 1,
            "{what} was asked {} times: {asked:?}",
            asked.len()
        );
    }
}

#[test]
fn name_servers_that_depend_on_each_other_fail_fast() {
    // a.test. is served only by ns.b.test. and b.test. only by ns.a.test., both
    // without glue: neither can be found. c.test. is served by ns.x.a.test.,
    // under a.test.: finding it asks a.test. again from inside a lookup that is
    // already asking a.test. The answer is SERVFAIL, at once, not a hang.
    let tld = "a NS ns.b.test.\nb NS ns.a.test.\nc NS ns.x.a.test.\n";
    let l = lab(tld, &[], vec![]);
    let (_d, f) = start(&l);
    for name in ["www.a.test.", "www.c.test.", "x.a.test."] {
        let t = std::time::Instant::now();
        let m = udp(f.dns, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{name}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{name} took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn private_reverse_zones_and_special_names_are_answered_here_not_upstream() {
    let l = two_servers(Mode::Normal, Mode::Normal, "");
    let (_d, f) = start(&l);
    // Warm the delegation so that a stray query upstream would show.
    let m = udp(f.dns, "www.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    l.clear();
    for (name, t, rc) in [
        (
            "4.3.2.10.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NXDomain,
        ),
        (
            "1.1.168.192.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NXDomain,
        ),
        (
            "5.5.16.172.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NXDomain,
        ),
        (
            "1.0.0.127.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NXDomain,
        ),
        ("10.in-addr.arpa.", RecordType::SOA, ResponseCode::NoError),
        ("printer.home.arpa.", RecordType::A, ResponseCode::NXDomain),
        ("shop.onion.", RecordType::A, ResponseCode::NXDomain),
        ("app.localhost.", RecordType::A, ResponseCode::NoError),
    ] {
        let m = udp(f.dns, name, t);
        assert_eq!(m.metadata.response_code, rc, "{name}: {m:?}");
        assert!(m.metadata.authoritative, "{name}: {m:?}");
    }
    assert!(l.seen().is_empty(), "asked upstream: {:?}", l.seen());
    // A public reverse name still goes out.
    udp(f.dns, "8.8.8.8.in-addr.arpa.", RecordType::PTR);
    assert!(l.seen().iter().any(|s| s.server == 10), "{:?}", l.seen());
    drop(f);

    // An operator whose internal server answers 10/8's PTR records turns that zone off.
    let (_d2, g) = start_with(&l, "nodefault = [\"10.in-addr.arpa.\"]\n", "");
    l.clear();
    udp(g.dns, "4.3.2.10.in-addr.arpa.", RecordType::PTR);
    assert!(
        l.seen().iter().any(|s| s.server == 10),
        "not asked upstream: {:?}",
        l.seen()
    );
    let m = udp(g.dns, "1.1.168.192.in-addr.arpa.", RecordType::PTR);
    assert!(m.metadata.authoritative, "{m:?}");
}

#[test]
fn local_records_are_answered_here_before_the_local_zones() {
    let l = two_servers(Mode::Normal, Mode::Normal, "");
    let records = "[[local_records]]\nname = \"warn.fanzha.lan\"\ntype = \"A\"\ndata = \"192.0.2.53\"\nttl = 300\n\
         [[local_records]]\nname = \"warn.fanzha.lan\"\ntype = \"TXT\"\ndata = \"fanzha\"\n\
         [[local_records]]\nname = \"53.2.0.10.in-addr.arpa\"\ntype = \"PTR\"\ndata = \"warn.fanzha.lan\"\n\
         [[local_records]]\nname = \"intranet.example.test\"\ntype = \"CNAME\"\ndata = \"www.example.test\"\n";
    let (_d, f) = start_with(&l, "", records);
    l.clear();
    let m = udp(f.dns, "WARN.fanzha.lan.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(types(&m), vec![RecordType::A]);
    assert_eq!(m.answers[0].ttl, 300);
    assert_eq!(
        types(&udp(f.dns, "warn.fanzha.lan.", RecordType::TXT)),
        vec![RecordType::TXT]
    );
    // Another type of the same name: no data.
    let m = udp(f.dns, "warn.fanzha.lan.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // A PTR record inside a locally served zone wins over the zone's NXDOMAIN.
    let m = udp(f.dns, "53.2.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(types(&m), vec![RecordType::PTR], "{m:?}");
    let m = udp(f.dns, "54.2.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // A CNAME is answered as it is.
    let m = udp(f.dns, "intranet.example.test.", RecordType::A);
    assert_eq!(types(&m), vec![RecordType::CNAME], "{m:?}");
    assert!(l.seen().is_empty(), "asked upstream: {:?}", l.seen());
    // A name below a local record resolves as usual.
    udp(f.dns, "x.intranet.example.test.", RecordType::A);
    assert!(!l.seen().is_empty());
}

/// `example.test.` on server 12, delegated; `corp.lan.` only on server 14, which no
/// parent delegates to (a forward zone's).
fn corp_lab() -> Lab {
    lab(
        "example NS ns1.example.test.\nns1.example LAB 12\n",
        &[
            (
                "example.test.",
                "@ NS ns1.example.test.\nns1 LAB 12\nwww A 192.0.2.1\n",
            ),
            (
                "corp.lan.",
                "@ NS ns.corp.lan.\nns LAB 14\nwww A 192.0.2.8\n",
            ),
        ],
        vec![
            Server::new(12, &["example.test."], Mode::Normal),
            Server::new(14, &["corp.lan."], Mode::Normal),
        ],
    )
}

#[test]
fn forward_zones_send_their_names_to_their_own_upstreams() {
    let l = corp_lab();
    let zones = format!(
        "[[forward_zones]]\nname = \"Corp.LAN.\"\nupstreams = [\"udp://{}:{}\"]\n",
        l.ip(14),
        l.port
    );
    let (_d, f) = start_with(&l, "", &zones);
    let m = udp(f.dns, "www.corp.lan.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(types(&m), vec![RecordType::A]);
    let m = udp(f.dns, "nothere.corp.lan.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    // Only server 14 saw the zone's names; the root never did.
    let seen = l.seen();
    assert!(
        seen.iter()
            .filter(|s| s.name.contains("corp"))
            .all(|s| s.server == 14),
        "{seen:?}"
    );
    assert!(seen.iter().any(|s| s.server == 14));
    // Other names still iterate from the root.
    let m = udp(f.dns, "www.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(l.seen().iter().any(|s| s.server == 10));
}

#[test]
fn a_reload_moves_a_forward_zone_to_its_new_upstreams() {
    let l = corp_lab();
    let zones = |last: u8| {
        format!(
            "[[forward_zones]]\nname = \"corp.lan.\"\nupstreams = [\"udp://{}:{}\"]\n",
            l.ip(last),
            l.port
        )
    };
    let (d, f) = start_with(&l, "", &zones(14));
    let m = udp(f.dns, "www.corp.lan.", RecordType::A);
    assert_eq!(types(&m), vec![RecordType::A], "{m:?}");
    // The zone moves to server 12 (which does not serve it): after SIGHUP its names
    // go there, and the answer cached from server 14 is gone.
    let cfg = d.path().join("fanzha.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace(&zones(14), &zones(12))).unwrap();
    l.clear();
    f.signal("HUP");
    assert!(
        f.wait_log("forward zones changed", std::time::Duration::from_secs(5)),
        "{}",
        f.log_text()
    );
    let m = udp(f.dns, "www.corp.lan.", RecordType::A);
    assert!(
        types(&m).is_empty(),
        "still the old upstream's answer: {m:?}"
    );
    let seen = l.seen();
    assert!(
        seen.iter()
            .any(|s| s.server == 12 && s.name.contains("corp")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|s| s.server == 14), "{seen:?}");
}

#[test]
fn expired_answers_are_served_stale_when_the_servers_stop_answering() {
    let l = two_servers(Mode::Normal, Mode::Normal, "brief A/1 192.0.2.7\n");
    let (_d, f) = start(&l);
    let m = udp(f.dns, "brief.example.test.", RecordType::A);
    assert_eq!(types(&m), vec![RecordType::A]);
    // Both of the zone's servers go silent, and the answer expires.
    l.set_mode(12, Mode::Silent);
    l.set_mode(13, Mode::Silent);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    l.clear();
    let m = udp(f.dns, "brief.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(types(&m), vec![RecordType::A]);
    assert_eq!(m.answers[0].ttl, 30, "a stale answer has TTL 30: {m:?}");
    // It was asked upstream first (and nobody answered).
    assert!(l.seen().iter().any(|s| s.server == 12 || s.server == 13));
    assert!(f.metric("fanzha_cache_stale_answers_total") >= 1.0);
    // A name never cached still fails.
    let m = udp(f.dns, "www.example.test.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
}

#[test]
fn popular_answers_are_refreshed_before_they_expire() {
    let l = two_servers(Mode::Normal, Mode::Normal, "hot A/10 192.0.2.9\n");
    let (_d, f) = start(&l);
    udp(f.dns, "hot.example.test.", RecordType::A);
    // In the last tenth of its 10 s TTL, a hit is answered from the cache and
    // refreshed in the background.
    std::thread::sleep(std::time::Duration::from_millis(9200));
    l.clear();
    let m = udp(f.dns, "hot.example.test.", RecordType::A);
    assert!(m.answers[0].ttl <= 1, "{m:?}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        l.seen().iter().any(|s| s.name == "hot.example.test."),
        "not refreshed: {:?}",
        l.seen()
    );
    assert!(f.metric("fanzha_cache_prefetches_total") >= 1.0);
    // After the old answer's expiry the fresh one is served from the cache.
    std::thread::sleep(std::time::Duration::from_millis(800));
    l.clear();
    let m = udp(f.dns, "hot.example.test.", RecordType::A);
    assert!(m.answers[0].ttl >= 8, "{m:?}");
    assert!(l.seen().is_empty(), "{:?}", l.seen());
}
