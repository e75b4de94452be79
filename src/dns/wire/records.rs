//! Resolved records written straight to wire form. Nearly every answer a resident
//! gets from the resolver is addresses, aliases and, when negative, an SOA; the
//! general message encoder spends thousands of instructions on it (a message built
//! and dropped, a compression table searched label by label). This writer handles
//! those types, compressing names against the question and the names it has
//! written; anything else is left to the general encoder.

use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::{Edns, LabelOffsets, ResponseWriter};

/// Names written so far that later ones may point to: each at most once.
const MAX_KNOWN: usize = 16;
/// A compression pointer holds a 14-bit offset.
const MAX_POINTER: usize = 0x3fff;

/// The question of a query: where its name's labels are in the packet.
pub struct Question<'a> {
    /// The query as received.
    pub packet: &'a [u8],
    /// End of its question section.
    pub question_end: usize,
    /// Its name's labels (offset of each label's first byte, and length).
    pub labels: &'a LabelOffsets,
}

/// The question's name, read from a query whose question [`super::parse_query`]
/// accepted (labels only, no compression), ending at `qname_end`.
pub fn question_name(packet: &[u8], qname_end: usize) -> Option<Name> {
    let wire = packet.get(super::HEADER_LEN..qname_end)?;
    Name::read(&mut BinDecoder::new(wire)).ok()
}

/// Whether [`response`] can write every one of `records`.
fn plain(records: &[Record]) -> bool {
    records.iter().all(|r| {
        r.dns_class == DNSClass::IN
            && matches!(
                r.data,
                RData::A(_)
                    | RData::AAAA(_)
                    | RData::CNAME(_)
                    | RData::NS(_)
                    | RData::PTR(_)
                    | RData::SOA(_)
            )
    })
}

/// Write the response to `q` into `buf`: `rcode`, AD when `ad`, the `answers`, the
/// `authorities`, and an OPT record when the query had EDNS. False, with `buf`
/// untouched, when a record is of a type or class this writer leaves to the general
/// encoder.
pub fn response(
    buf: &mut Vec<u8>,
    q: &Question<'_>,
    rcode: u8,
    ad: bool,
    answers: &[Record],
    authorities: &[Record],
    edns: Option<Edns>,
) -> bool {
    if !plain(answers) || !plain(authorities) {
        return false;
    }
    let mut w = ResponseWriter::start(buf, q.packet, q.question_end, rcode, false);
    if ad {
        w.buf[3] |= 0x20;
    }
    let mut known: Vec<(&Name, usize)> = Vec::with_capacity(4);
    for (section, records) in [(0, answers), (1, authorities)] {
        for r in records {
            write_record(&mut w, q, &mut known, r);
            w.counts[section] += 1;
        }
    }
    if let Some(e) = edns {
        w.opt(e.dnssec_ok, None, 0);
    }
    w.finish();
    true
}

fn write_record<'r>(
    w: &mut ResponseWriter<'_>,
    q: &Question<'_>,
    known: &mut Vec<(&'r Name, usize)>,
    r: &'r Record,
) {
    write_name(w.buf, q, known, &r.name);
    w.buf
        .extend_from_slice(&u16::from(r.record_type()).to_be_bytes());
    w.buf
        .extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
    w.buf.extend_from_slice(&r.ttl.to_be_bytes());
    let len_at = w.buf.len();
    w.buf.extend_from_slice(&[0, 0]);
    match &r.data {
        RData::A(a) => w.buf.extend_from_slice(&a.0.octets()),
        RData::AAAA(a) => w.buf.extend_from_slice(&a.0.octets()),
        RData::CNAME(n) => write_name(w.buf, q, known, &n.0),
        RData::NS(n) => write_name(w.buf, q, known, &n.0),
        RData::PTR(n) => write_name(w.buf, q, known, &n.0),
        RData::SOA(s) => {
            write_name(w.buf, q, known, &s.mname);
            write_name(w.buf, q, known, &s.rname);
            for v in [
                s.serial,
                s.refresh as u32,
                s.retry as u32,
                s.expire as u32,
                s.minimum,
            ] {
                w.buf.extend_from_slice(&v.to_be_bytes());
            }
        }
        // `plain` let nothing else through.
        _ => unreachable!("records are checked by plain() first"),
    }
    let rdlen = (w.buf.len() - len_at - 2) as u16;
    w.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
}

/// `name`, as a pointer to the same name earlier in the message (the question's
/// name or one of its suffixes, or a name written before) or in full.
fn write_name<'r>(
    buf: &mut Vec<u8>,
    q: &Question<'_>,
    known: &mut Vec<(&'r Name, usize)>,
    name: &'r Name,
) {
    let at = known
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, at)| at)
        .or_else(|| in_question(q, name));
    if let Some(at) = at {
        buf.extend_from_slice(&(0xc000 | at as u16).to_be_bytes());
        return;
    }
    let start = buf.len();
    for label in name.iter() {
        buf.push(label.len() as u8);
        buf.extend_from_slice(label);
    }
    buf.push(0);
    if start <= MAX_POINTER && known.len() < MAX_KNOWN && !name.is_root() {
        known.push((name, start));
    }
}

/// Where the question holds `name` (the whole name or one of its suffixes): the
/// offset of that label's length byte. The question is copied to the same offsets.
fn in_question(q: &Question<'_>, name: &Name) -> Option<usize> {
    let (n, m) = (q.labels.len(), name.iter().len());
    if m == 0 || m > n {
        return None;
    }
    let tail = q.labels.iter().skip(n - m);
    let mut first = None;
    for ((at, len), label) in tail.zip(name.iter()) {
        let there = q.packet.get(at..at + len)?;
        if !there.eq_ignore_ascii_case(label) {
            return None;
        }
        first.get_or_insert(at - 1);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::parse_query;
    use hickory_proto::op::{Edns as HEdns, Message, MessageType, OpCode, Query as HQuery};
    use hickory_proto::rr::RecordType;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, TXT};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn query(name: &str, t: RecordType, edns: Option<bool>, cd: bool) -> Vec<u8> {
        let mut m = Message::new(0x4321, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.metadata.checking_disabled = cd;
        m.add_query(HQuery::query(n(name), t));
        if let Some(dnssec_ok) = edns {
            let mut e = HEdns::new();
            e.set_max_payload(4096);
            e.set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    /// The response as the engine's general path builds it (hickory's encoder).
    fn general(packet: &[u8], rcode: u8, ad: bool, an: &[Record], ns: &[Record]) -> Message {
        let req = Message::from_vec(packet).unwrap();
        let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
        m.metadata.recursion_desired = req.metadata.recursion_desired;
        m.metadata.recursion_available = true;
        m.metadata.checking_disabled = req.metadata.checking_disabled;
        m.metadata.authentic_data = ad;
        m.metadata.response_code = u16::from(rcode).into();
        m.add_query(req.queries[0].clone());
        m.insert_answers(an.to_vec());
        m.insert_authorities(ns.to_vec());
        if let Some(e) = &req.edns {
            let mut ed = HEdns::new();
            ed.set_max_payload(crate::dns::wire::EDNS_PAYLOAD);
            ed.set_dnssec_ok(e.flags().dnssec_ok);
            m.set_edns(ed);
        }
        Message::from_vec(&m.to_vec().unwrap()).unwrap()
    }

    fn plain_of(
        packet: &[u8],
        rcode: u8,
        ad: bool,
        an: &[Record],
        ns: &[Record],
    ) -> Option<Vec<u8>> {
        let q = parse_query(packet).unwrap();
        let question = Question {
            packet,
            question_end: q.question_end,
            labels: &q.labels,
        };
        let mut buf = Vec::new();
        response(&mut buf, &question, rcode, ad, an, ns, q.edns).then_some(buf)
    }

    fn rec(name: &str, ttl: u32, data: RData) -> Record {
        Record::from_rdata(n(name), ttl, data)
    }

    fn soa(zone: &str) -> Record {
        rec(
            zone,
            300,
            RData::SOA(SOA::new(
                n(&format!("ns1.{zone}")),
                n(&format!("hostmaster.{zone}")),
                2026120201,
                3600,
                600,
                -1,
                300,
            )),
        )
    }

    /// Question, type, rcode, AD, answers, authorities.
    type Case = (&'static str, RecordType, u8, bool, Vec<Record>, Vec<Record>);

    // Long function: one table of cases, each a few lines once formatted.
    fn cases() -> Vec<Case> {
        let a = |s: &str, ip| rec(s, 60, RData::A(A(ip)));
        vec![
            (
                "www.Example.com.",
                RecordType::A,
                0,
                false,
                vec![
                    a("www.example.com.", Ipv4Addr::new(192, 0, 2, 1)),
                    a("www.example.com.", Ipv4Addr::new(192, 0, 2, 2)),
                ],
                vec![],
            ),
            (
                "v6.example.org.",
                RecordType::AAAA,
                0,
                true,
                vec![rec(
                    "v6.example.org.",
                    30,
                    RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
                )],
                vec![],
            ),
            // A chain across zones, then the address at its end.
            (
                "www.shop.cn.",
                RecordType::A,
                0,
                false,
                vec![
                    rec(
                        "www.shop.cn.",
                        300,
                        RData::CNAME(CNAME(n("edge.cdn.example.net."))),
                    ),
                    rec(
                        "edge.cdn.example.net.",
                        20,
                        RData::CNAME(CNAME(n("e1.cdn.example.net."))),
                    ),
                    a("e1.cdn.example.net.", Ipv4Addr::new(198, 51, 100, 7)),
                ],
                vec![],
            ),
            // NXDOMAIN at the end of a chain, with the SOA of the target's zone.
            (
                "old.example.com.",
                RecordType::A,
                3,
                false,
                vec![rec(
                    "old.example.com.",
                    300,
                    RData::CNAME(CNAME(n("gone.example.net."))),
                )],
                vec![soa("example.net.")],
            ),
            // NODATA with the SOA of the question's own zone (a suffix of it).
            (
                "mail.example.com.",
                RecordType::AAAA,
                0,
                false,
                vec![],
                vec![soa("example.com.")],
            ),
            (
                "example.com.",
                RecordType::NS,
                0,
                false,
                vec![
                    rec("example.com.", 3600, RData::NS(NS(n("ns1.example.com.")))),
                    rec("example.com.", 3600, RData::NS(NS(n("ns.other.org.")))),
                ],
                vec![],
            ),
            (
                "1.2.0.192.in-addr.arpa.",
                RecordType::PTR,
                0,
                false,
                vec![rec(
                    "1.2.0.192.in-addr.arpa.",
                    3600,
                    RData::PTR(PTR(n("host.example.com."))),
                )],
                vec![],
            ),
            (
                ".",
                RecordType::NS,
                0,
                false,
                vec![rec(".", 518400, RData::NS(NS(n("a.root-servers.net."))))],
                vec![],
            ),
        ]
    }

    #[test]
    fn plain_answers_decode_to_what_the_general_encoder_writes() {
        for (name, t, rcode, ad, an, ns) in cases() {
            for (edns, cd) in [(None, false), (Some(false), true), (Some(true), false)] {
                let packet = query(name, t, edns, cd);
                let got = plain_of(&packet, rcode, ad, &an, &ns).expect("plain types");
                let got = Message::from_vec(&got).unwrap();
                let want = general(&packet, rcode, ad, &an, &ns);
                assert_eq!(got.metadata, want.metadata, "{name} {t}");
                assert_eq!(got.queries, want.queries, "{name} {t}");
                for (g, w) in [
                    (&got.answers, &want.answers),
                    (&got.authorities, &want.authorities),
                ] {
                    assert_eq!(g.len(), w.len(), "{name} {t}");
                    for (x, y) in g.iter().zip(w) {
                        // Equal ignoring case: a pointer to the question gives an
                        // owner the question's case (as Unbound's answers do).
                        assert_eq!(x.name, y.name, "{name} {t}");
                        assert_eq!((x.ttl, x.dns_class, &x.data), (y.ttl, y.dns_class, &y.data));
                    }
                }
                assert_eq!(
                    got.edns
                        .as_ref()
                        .map(|e| (e.max_payload(), e.flags().dnssec_ok)),
                    want.edns
                        .as_ref()
                        .map(|e| (e.max_payload(), e.flags().dnssec_ok)),
                    "{name} {t}"
                );
            }
        }
    }

    #[test]
    fn names_are_compressed_against_the_question_and_earlier_names() {
        let packet = query("www.example.com.", RecordType::A, None, false);
        let an = [
            rec(
                "WWW.example.com.",
                60,
                RData::CNAME(CNAME(n("web.example.com."))),
            ),
            rec(
                "web.example.com.",
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 9))),
            ),
        ];
        let buf = plain_of(&packet, 0, false, &an, &[soa("example.com.")]).unwrap();
        let q_end = packet.len();
        let rest = &buf[q_end..];
        // The first owner is the question's name: a pointer to offset 12.
        assert_eq!(&rest[..2], &[0xc0, 12]);
        // The CNAME target is written once; the next owner points to it.
        let target_at = q_end + 2 + 10;
        assert_eq!(&buf[target_at..target_at + 4], b"\x03web");
        let second = target_at + b"\x03web\x07example\x03com\x00".len();
        assert_eq!(&buf[second..second + 2], &[0xc0, target_at as u8]);
        // The SOA's owner is a suffix of the question: a pointer to "example".
        let soa_at = second + 2 + 10 + 4;
        assert_eq!(&buf[soa_at..soa_at + 2], &[0xc0, 12 + 4]);
    }

    #[test]
    fn the_question_name_is_read_as_hickory_reads_it() {
        for name in [".", "com.", "WwW.Example.COM.", "a-b.c_d.xn--fiqs8s."] {
            let packet = query(name, RecordType::A, Some(true), false);
            let q = parse_query(&packet).unwrap();
            let got = question_name(&packet, q.qname_end).unwrap();
            let want = Message::from_vec(&packet).unwrap().queries[0]
                .name()
                .clone();
            assert!(got.eq_case(&want), "{got} vs {want}");
        }
    }

    #[test]
    fn other_types_and_classes_are_left_to_the_general_encoder() {
        let packet = query("example.com.", RecordType::TXT, Some(true), false);
        let txt = [rec(
            "example.com.",
            60,
            RData::TXT(TXT::new(vec!["v=spf1 -all".into()])),
        )];
        assert!(plain_of(&packet, 0, false, &txt, &[]).is_none());
        let mut chaos = rec("example.com.", 60, RData::A(A(Ipv4Addr::LOCALHOST)));
        chaos.dns_class = DNSClass::CH;
        assert!(plain_of(&packet, 0, false, &[chaos], &[]).is_none());
    }
}
