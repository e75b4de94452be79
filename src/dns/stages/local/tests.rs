use super::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

fn packet(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::new(9, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(HQuery::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

/// The local answer for `name`/`t`, decoded; `None` when the name is not local.
fn ask(zones: &LocalZones, name: &str, t: RecordType) -> Option<Message> {
    let p = packet(name, t);
    let q = wire::parse_query(&p).unwrap();
    let hit = zones.find(&q, &p)?;
    let mut buf = Vec::new();
    write_answer(&mut buf, &p, &q, hit);
    Some(Message::from_vec(&buf).unwrap())
}

fn soa_of(m: &Message, section: &[hickory_proto::rr::Record]) -> (Name, u32) {
    let r = section
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .unwrap_or_else(|| panic!("no SOA: {m:?}"));
    let RData::SOA(s) = &r.data else {
        unreachable!()
    };
    (r.name.clone(), s.minimum)
}

#[test]
fn private_reverse_names_are_nxdomain_with_the_zones_soa() {
    let z = LocalZones::new(true, &[]);
    for (name, zone) in [
        ("4.3.2.10.in-addr.arpa.", "10.in-addr.arpa."),
        ("1.1.168.192.IN-ADDR.ARPA.", "168.192.in-addr.arpa."),
        ("9.9.31.172.in-addr.arpa.", "31.172.in-addr.arpa."),
        ("1.0.64.100.in-addr.arpa.", "64.100.in-addr.arpa."),
        (
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.d.f.ip6.arpa.",
            "d.f.ip6.arpa.",
        ),
        ("nothing.invalid.", "invalid."),
        ("x.onion.", "onion."),
    ] {
        let m = ask(&z, name, RecordType::PTR).unwrap_or_else(|| panic!("{name} not local"));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(m.metadata.authoritative && m.metadata.recursion_available);
        assert!(m.answers.is_empty());
        let (owner, minimum) = soa_of(&m, &m.authorities);
        assert_eq!(owner, Name::from_ascii(zone).unwrap(), "{name}");
        assert_eq!(minimum, 10_800);
        // The question is echoed as asked (case included).
        assert_eq!(m.queries[0].name().to_ascii(), name);
    }
}

#[test]
fn a_zones_own_name_has_its_soa_and_ns_and_nothing_else() {
    let z = LocalZones::new(true, &[]);
    let m = ask(&z, "10.in-addr.arpa.", RecordType::SOA).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        soa_of(&m, &m.answers).0,
        Name::from_ascii("10.in-addr.arpa.").unwrap()
    );
    let m = ask(&z, "10.in-addr.arpa.", RecordType::NS).unwrap();
    assert!(
        matches!(&m.answers[0].data, RData::NS(ns) if ns.0 == Name::from_ascii("10.in-addr.arpa.").unwrap())
    );
    let m = ask(&z, "10.in-addr.arpa.", RecordType::PTR).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    soa_of(&m, &m.authorities);
}

#[test]
fn localhost_names_are_the_loopback_addresses() {
    let z = LocalZones::new(true, &[]);
    let m = ask(&z, "localhost.", RecordType::A).unwrap();
    assert!(matches!(m.answers[0].data, RData::A(a) if a.0 == Ipv4Addr::LOCALHOST));
    let m = ask(&z, "app.LocalHost.", RecordType::AAAA).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(matches!(m.answers[0].data, RData::AAAA(a) if a.0 == Ipv6Addr::LOCALHOST));
    let m = ask(&z, "localhost.", RecordType::MX).unwrap();
    assert!(m.answers.is_empty() && m.metadata.response_code == ResponseCode::NoError);
}

#[test]
fn public_names_and_turned_off_zones_are_resolved() {
    let z = LocalZones::new(true, &["10.in-addr.arpa".to_string()]);
    for name in [
        "4.3.2.10.in-addr.arpa.",
        "8.8.8.8.in-addr.arpa.",
        "1.0.32.172.in-addr.arpa.",
        "1.0.128.100.in-addr.arpa.",
        "in-addr.arpa.",
        "arpa.",
        "www.example.com.",
        "localhost.example.com.",
        "onion.example.",
        ".",
    ] {
        assert!(
            ask(&z, name, RecordType::PTR).is_none(),
            "{name} answered locally"
        );
    }
    assert!(ask(&z, "1.1.168.192.in-addr.arpa.", RecordType::PTR).is_some());
    // local_zones = false: nothing is local.
    let off = LocalZones::new(false, &[]);
    assert!(ask(&off, "1.1.168.192.in-addr.arpa.", RecordType::PTR).is_none());
    assert!(ask(&off, "localhost.", RecordType::A).is_none());
}
