use super::*;
use hickory_proto::op::{
    Edns as HEdns, Message, MessageType, OpCode, Query as HQuery, ResponseCode,
};
use hickory_proto::rr::{Name, RData, RecordType};

fn query(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(HQuery::query(Name::from_ascii(name).unwrap(), t));
    if edns {
        let mut e = HEdns::new();
        e.set_max_payload(4096);
        e.set_dnssec_ok(true);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

#[test]
fn parses_a_query() {
    let p = query("WwW.Evil.Top.", RecordType::AAAA, true);
    let q = parse_query(&p).unwrap();
    assert_eq!(q.id, 0x1234);
    assert_eq!(q.qtype, rtype::AAAA);
    assert_eq!(q.qclass, 1);
    assert_eq!(q.labels.len(), 3);
    assert_eq!(q.name_lower(&p), "www.evil.top");
    let top: Vec<&[u8]> = q.labels_from_top(&p).collect();
    assert_eq!(top, vec![&b"Top"[..], b"Evil", b"WwW"]);
    assert_eq!(
        q.edns,
        Some(Edns {
            udp_size: 4096,
            dnssec_ok: true,
            version: 0
        })
    );
    assert_eq!(q.udp_limit(), EDNS_PAYLOAD as usize);
    assert_eq!(&p[q.suffix_offset(2)..q.suffix_offset(2) + 5], b"\x04Evil");
    let q = parse_query(&query("a.b.", RecordType::A, false)).unwrap();
    assert_eq!(q.edns, None);
    assert_eq!(q.udp_limit(), 512);
}

#[test]
fn malformed_packets() {
    assert_eq!(parse_query(&[0; 5]), Err(ParseError::Drop));
    let mut p = query("a.top.", RecordType::A, false);
    p[2] |= 0x80; // a response
    assert_eq!(parse_query(&p), Err(ParseError::Drop));
    let mut p = query("a.top.", RecordType::A, false);
    p[5] = 2; // QDCOUNT 2
    assert!(matches!(
        parse_query(&p),
        Err(ParseError::Reply {
            rcode: rcode::FORMERR,
            ..
        })
    ));
    let mut p = query("a.top.", RecordType::A, false);
    p[5] = 0;
    assert!(matches!(
        parse_query(&p),
        Err(ParseError::Reply {
            rcode: rcode::FORMERR,
            ..
        })
    ));
    let mut p = query("a.top.", RecordType::A, false);
    p[2] = (p[2] & 0x87) | (2 << 3); // opcode STATUS
    assert!(
        matches!(parse_query(&p), Err(ParseError::Reply { rcode: rcode::NOTIMP, question_end }) if question_end > 12)
    );
    // a compression pointer to itself in the question
    let mut p = query("a.top.", RecordType::A, false);
    p[12] = 0xc0;
    p[13] = 12;
    assert!(matches!(
        parse_query(&p),
        Err(ParseError::Reply {
            rcode: rcode::FORMERR,
            ..
        })
    ));
    // truncated question
    let p = query("a.top.", RecordType::A, false);
    assert!(matches!(
        parse_query(&p[..p.len() - 2]),
        Err(ParseError::Reply {
            rcode: rcode::FORMERR,
            ..
        })
    ));
    // EDNS version 1
    let mut p = query("a.top.", RecordType::A, true);
    let n = p.len();
    p[n - 5] = 1; // version byte of the OPT TTL
    assert!(matches!(
        parse_query(&p),
        Err(ParseError::BadVersion { .. })
    ));
    // ARCOUNT claims a record that is not there
    let mut p = query("a.top.", RecordType::A, false);
    p[11] = 1;
    assert!(matches!(
        parse_query(&p),
        Err(ParseError::Reply {
            rcode: rcode::FORMERR,
            ..
        })
    ));
}

#[test]
fn random_bytes_never_panic() {
    let mut x: u64 = 0x243f6a8885a308d3;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let mut p: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
        if p.len() > 2 {
            p[2] &= 0x7f;
        }
        if p.len() > 5 {
            p[4] = 0;
            p[5] = 1;
        }
        let _ = parse_query(&p);
    }
}

#[test]
fn blocked_answer_decodes_with_hickory() {
    let p = query("WWW.evil.top.", RecordType::A, true);
    let q = parse_query(&p).unwrap();
    let mut buf = Vec::new();
    let mut w = ResponseWriter::start(&mut buf, &p, q.question_end, rcode::NOERROR, true);
    w.answer_a(HEADER_LEN, 60, "10.9.9.9".parse().unwrap());
    w.opt(
        true,
        Some(Ede {
            code: 15,
            text: "blocked: loan",
        }),
        0,
    );
    w.finish();
    let m = Message::from_vec(&buf).unwrap();
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(
        m.metadata.authoritative && m.metadata.recursion_available && m.metadata.recursion_desired
    );
    assert_eq!(m.queries[0].name().to_ascii(), "WWW.evil.top.");
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].ttl, 60);
    assert_eq!(m.answers[0].name.to_ascii(), "WWW.evil.top.");
    assert!(matches!(&m.answers[0].data, RData::A(a) if a.0 == Ipv4Addr::new(10, 9, 9, 9)));
    let edns = m.edns.as_ref().unwrap();
    assert!(edns.flags().dnssec_ok);
    // OPTION-CODE 15, OPTION-LENGTH, INFO-CODE 15, EXTRA-TEXT
    let mut ede = vec![0, 15, 0, 15, 0, 15];
    ede[3] = 2 + 13;
    ede.extend_from_slice(b"blocked: loan");
    assert!(buf.ends_with(&ede), "{:?}", &buf[buf.len() - 20..]);
}

#[test]
fn nodata_with_soa_decodes_with_hickory() {
    let p = query("x.evil.top.", RecordType::HTTPS, false);
    let q = parse_query(&p).unwrap();
    let mut buf = Vec::new();
    let mut w = ResponseWriter::start(&mut buf, &p, q.question_end, rcode::NXDOMAIN, true);
    w.authority_soa(q.suffix_offset(2), 60, 7);
    w.finish();
    let m = Message::from_vec(&buf).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.answers.len(), 0);
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].name.to_ascii(), "evil.top.");
    let RData::SOA(soa) = &m.authorities[0].data else {
        panic!()
    };
    assert_eq!(soa.serial, 7);
    assert_eq!(soa.minimum, 60);
    assert!(m.edns.is_none());
}

#[test]
fn errors_and_truncation() {
    let p = query("a.top.", RecordType::A, true);
    let q = parse_query(&p).unwrap();
    let mut buf = Vec::new();
    error_response(&mut buf, &p, q.question_end, rcode::REFUSED, q.edns);
    let m = Message::from_vec(&buf).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(m.queries.len(), 1);
    assert!(m.edns.is_some());
    let mut w = ResponseWriter::start(&mut buf, &p, q.question_end, rcode::NOERROR, false);
    for i in 0..100 {
        w.answer_a(HEADER_LEN, 60, Ipv4Addr::new(10, 0, 0, i));
    }
    w.finish();
    truncate(&mut buf, q.question_end, q.edns);
    let m = Message::from_vec(&buf).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    assert!(m.edns.is_some());
}

/// A query whose name takes exactly `octets` on the wire (labels of up to 63).
fn query_of_length(octets: usize) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let mut left = octets - 1; // the root label's zero byte
    while left > 0 {
        let len = (left - 1).min(63);
        p.push(len as u8);
        p.extend(std::iter::repeat_n(b'a', len));
        left -= len + 1;
    }
    p.push(0);
    p.extend_from_slice(&[0, 1, 0, 1]);
    p
}

#[test]
fn names_are_at_most_255_octets_on_the_wire() {
    for octets in [250, 254, 255] {
        assert!(parse_query(&query_of_length(octets)).is_ok(), "{octets}");
    }
    for octets in [256, 257, 300] {
        assert!(
            matches!(
                parse_query(&query_of_length(octets)),
                Err(ParseError::Reply {
                    rcode: rcode::FORMERR,
                    ..
                })
            ),
            "{octets}"
        );
    }
}
