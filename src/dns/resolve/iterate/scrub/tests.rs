use std::str::FromStr;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA};

use super::*;

fn n(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn a(owner: &str, ip: &str) -> Record {
    Record::from_rdata(n(owner), 300, RData::A(A(ip.parse().unwrap())))
}

fn cname(owner: &str, target: &str) -> Record {
    Record::from_rdata(n(owner), 300, RData::CNAME(CNAME(n(target))))
}

fn ns(owner: &str, target: &str) -> Record {
    Record::from_rdata(n(owner), 300, RData::NS(NS(n(target))))
}

fn soa(owner: &str) -> Record {
    Record::from_rdata(
        n(owner),
        300,
        RData::SOA(SOA::new(n("ns.invalid."), n("h.invalid."), 1, 1, 1, 1, 60)),
    )
}

fn resp(qname: &str, qtype: RecordType, aa: bool, rcode: ResponseCode) -> Message {
    let mut m = Message::new(1, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(n(qname), qtype));
    m.metadata.authoritative = aa;
    m.metadata.response_code = rcode;
    m
}

fn classify_at(m: &Message, zone: &str) -> Kind {
    let q = &m.queries[0];
    classify(m, &n(zone), q.name(), q.query_type())
}

#[test]
fn records_of_another_type_or_name_and_duplicates_are_dropped() {
    let mut m = resp(
        "www.example.",
        RecordType::AAAA,
        true,
        ResponseCode::NoError,
    );
    let v6 = Record::from_rdata(
        n("www.example."),
        300,
        RData::AAAA(AAAA("2001:db8::1".parse().unwrap())),
    );
    m.add_answer(v6.clone());
    m.add_answer(v6.clone());
    m.add_answer(a("www.example.", "192.0.2.1"));
    m.add_answer(a("other.example.", "192.0.2.2"));
    assert_eq!(
        classify_at(&m, "example."),
        Kind::Answer {
            chain: vec![],
            records: vec![v6]
        }
    );
}

#[test]
fn an_answer_only_holds_a_wrong_type_it_is_nodata() {
    let mut m = resp(
        "www.example.",
        RecordType::AAAA,
        true,
        ResponseCode::NoError,
    );
    m.add_answer(a("www.example.", "192.0.2.1"));
    assert!(matches!(classify_at(&m, "example."), Kind::NoData { .. }));
}

#[test]
fn records_outside_the_servers_zone_are_dropped() {
    // The server for example. cannot speak for evil.: the chain stops at its edge.
    let mut m = resp("www.example.", RecordType::A, true, ResponseCode::NoError);
    m.add_answer(cname("www.example.", "cdn.evil."));
    m.add_answer(a("cdn.evil.", "192.0.2.66"));
    assert_eq!(
        classify_at(&m, "example."),
        Kind::Alias {
            chain: vec![cname("www.example.", "cdn.evil.")],
            target: n("cdn.evil."),
        }
    );
}

#[test]
fn a_chain_ending_in_nodata_or_nxdomain_inside_the_zone_keeps_the_chain() {
    let mut m = resp("www.example.", RecordType::TXT, true, ResponseCode::NoError);
    m.add_answer(cname("www.example.", "host.example."));
    m.add_authority(soa("example."));
    assert_eq!(
        classify_at(&m, "example."),
        Kind::NoData {
            chain: vec![cname("www.example.", "host.example.")],
            soa: Some(soa("example.")),
        }
    );
    let mut m = resp("www.example.", RecordType::A, true, ResponseCode::NXDomain);
    m.add_answer(cname("www.example.", "gone.example."));
    m.add_authority(soa("example."));
    assert!(matches!(
        classify_at(&m, "example."),
        Kind::NxDomain { chain, .. } if chain.len() == 1
    ));
}

#[test]
fn a_dname_implies_the_cname_it_synthesises() {
    let mut m = resp(
        "www.old.example.",
        RecordType::A,
        true,
        ResponseCode::NoError,
    );
    m.add_answer(dname_record(n("old.example."), 300, &n("new.other.")));
    match classify_at(&m, "example.") {
        Kind::Alias { chain, target } => {
            assert_eq!(target, n("www.new.other."));
            assert_eq!(chain.len(), 2);
            assert_eq!(chain[1], cname("www.old.example.", "www.new.other."));
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn a_referral_goes_down_toward_the_name_with_glue_inside_the_zone() {
    let mut m = resp(
        "www.example.test.",
        RecordType::A,
        false,
        ResponseCode::NoError,
    );
    m.add_authority(ns("example.test.", "ns1.example.test."));
    m.add_authority(ns("example.test.", "ns.elsewhere."));
    m.add_additional(a("ns1.example.test.", "192.0.2.1"));
    m.add_additional(a("ns.elsewhere.", "192.0.2.2"));
    m.add_additional(a("unrelated.test.", "192.0.2.3"));
    match classify_at(&m, "test.") {
        Kind::Referral { zone, ns, glue, .. } => {
            assert_eq!(zone, n("example.test."));
            assert_eq!(ns, vec![n("ns1.example.test."), n("ns.elsewhere.")]);
            assert_eq!(
                glue,
                vec![(n("ns1.example.test."), "192.0.2.1".parse().unwrap())]
            );
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn upward_sideways_and_self_referrals_and_empty_non_authoritative_answers_are_lame() {
    for owner in [".", "test.", "other.test."] {
        let mut m = resp(
            "www.example.test.",
            RecordType::A,
            false,
            ResponseCode::NoError,
        );
        m.add_authority(ns(owner, "ns.invalid."));
        assert_eq!(classify_at(&m, "test."), Kind::Lame, "referral to {owner}");
    }
    let m = resp(
        "www.example.test.",
        RecordType::A,
        false,
        ResponseCode::NoError,
    );
    assert_eq!(classify_at(&m, "test."), Kind::Lame);
    let m = resp(
        "www.example.test.",
        RecordType::A,
        false,
        ResponseCode::Refused,
    );
    assert_eq!(classify_at(&m, "test."), Kind::Error(ResponseCode::Refused));
}

#[test]
fn a_negative_answer_takes_only_an_soa_of_its_zone() {
    let mut m = resp("nx.example.", RecordType::A, true, ResponseCode::NXDomain);
    m.add_authority(soa("evil."));
    assert_eq!(
        classify_at(&m, "example."),
        Kind::NxDomain {
            chain: vec![],
            soa: None
        }
    );
}

/// A referral for `big.example.` with `count` name servers, each with two glue
/// addresses (and each listed twice), as a hostile zone sends over TCP.
pub(crate) fn huge_referral(count: u32) -> Message {
    let mut m = resp(
        "www.big.example.",
        RecordType::A,
        false,
        ResponseCode::NoError,
    );
    for round in 0..2 {
        for i in 0..count {
            let host = format!("ns{i}.big.example.");
            m.add_authority(ns("big.example.", &host));
            if round == 0 {
                m.add_additional(a(
                    &host,
                    &std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string(),
                ));
                m.add_additional(a(
                    &host,
                    &std::net::Ipv4Addr::from(0x0b00_0000 + i).to_string(),
                ));
            }
        }
    }
    m
}

#[test]
fn a_huge_referral_keeps_a_few_name_servers_and_their_glue() {
    let m = huge_referral(1500);
    let Kind::Referral { zone, ns, glue, .. } = classify_at(&m, "example.") else {
        panic!("not a referral")
    };
    assert_eq!(zone, n("big.example."));
    assert_eq!(ns.len(), MAX_NS);
    assert_eq!(ns[0], n("ns0.big.example."), "the first ones, in order");
    assert_eq!(glue.len(), 2 * MAX_NS, "both addresses of each kept server");
    assert!(glue.iter().all(|(g, _)| ns.contains(g)));
}

#[test]
fn a_huge_rrset_is_cut_to_the_cap_and_duplicates_go() {
    let mut m = resp("www.example.", RecordType::A, true, ResponseCode::NoError);
    for i in 0..4000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i % 3000).to_string();
        m.add_answer(a("www.example.", &ip));
    }
    let Kind::Answer { records, .. } = classify_at(&m, "example.") else {
        panic!("not an answer")
    };
    assert_eq!(records.len(), MAX_RRSET);
    let distinct: std::collections::HashSet<_> = records.iter().map(|r| &r.data).collect();
    assert_eq!(distinct.len(), records.len());
}

#[test]
fn a_referral_back_to_the_same_server_alone_is_told_apart() {
    let server: IpAddr = "192.0.2.53".parse().unwrap();
    let other: IpAddr = "192.0.2.54".parse().unwrap();
    let referral = |glue: Vec<(&str, IpAddr)>, ns: &[&str]| Kind::Referral {
        zone: n("child.example."),
        ns: ns.iter().map(|s| n(s)).collect(),
        glue: glue.into_iter().map(|(h, ip)| (n(h), ip)).collect(),
        ttl: 300,
    };
    let two = ["a.child.example.", "b.child.example."];
    // Every name server is the server that referred: the child is lame there.
    let back = referral(
        vec![("a.child.example.", server), ("b.child.example.", server)],
        &two,
    );
    assert!(refers_back(&back, server));
    // Another address among the glue: that one may serve the child.
    let mixed = referral(
        vec![("a.child.example.", server), ("b.child.example.", other)],
        &two,
    );
    assert!(!refers_back(&mixed, server));
    // A name server without glue may live anywhere.
    let glueless = referral(vec![("a.child.example.", server)], &two);
    assert!(!refers_back(&glueless, server));
    // To another server altogether, or not a referral at all.
    assert!(!refers_back(&back, other));
    assert!(!refers_back(&Kind::Lame, server));
}
