//! What a hostile name server's large answer costs: a referral to 1,500 name
//! servers with glue, and an RRset of 4,000 A records, each about 60 KiB over TCP,
//! decoded and scrubbed as the iterator does with every reply (and, for comparison,
//! decoded whole by hickory-proto). Target (issue 27): no reply up to 64 KiB costs
//! more than 1 ms of CPU to scrub. Run:
//! `cargo bench --bench scrub` (figures in docs/under-fire.md).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::str::FromStr;

use criterion::{Criterion, criterion_group, criterion_main};
use fanzha::dns::resolve::iterate::scrub::{Kind, classify};
use fanzha::dns::resolve::iterate::transport::decode;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, NS};
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn reply(qname: &str, aa: bool) -> Message {
    let mut m = Message::new(1, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(name(qname), RecordType::A));
    m.metadata.authoritative = aa;
    m.metadata.response_code = ResponseCode::NoError;
    m
}

/// A referral from `example.` to `big.example.` with `count` name servers and a
/// glue address each, in wire form.
fn huge_referral(count: u32) -> Vec<u8> {
    let mut m = reply("www.big.example.", false);
    for i in 0..count {
        let host = name(&format!("ns{i}.big.example."));
        m.add_authority(Record::from_rdata(
            name("big.example."),
            300,
            RData::NS(NS(host.clone())),
        ));
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        m.add_additional(Record::from_rdata(host, 300, RData::A(A(ip))));
    }
    m.to_vec().unwrap()
}

/// An answer of `count` A records for `www.example.`, in wire form.
fn huge_rrset(count: u32) -> Vec<u8> {
    let mut m = reply("www.example.", true);
    for i in 0..count {
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        m.add_answer(Record::from_rdata(
            name("www.example."),
            300,
            RData::A(A(ip)),
        ));
    }
    m.to_vec().unwrap()
}

fn scrub(c: &mut Criterion) {
    let zone = name("example.");
    let cases = [
        ("referral_1500_ns", huge_referral(1500), "www.big.example."),
        ("rrset_4000_a", huge_rrset(4000), "www.example."),
        ("referral_20_ns", huge_referral(20), "www.big.example."),
    ];
    for (what, wire, qname) in &cases {
        assert!(wire.len() <= 65_535, "{what}: {} bytes", wire.len());
        let qname = name(qname);
        // What the iterator does with a reply: its own decoder, then the scrubber.
        c.bench_function(&format!("decode_and_scrub/{what}"), |b| {
            b.iter(|| {
                let m = decode(black_box(wire)).unwrap();
                let k = classify(&m, &zone, &qname, RecordType::A);
                assert!(matches!(k, Kind::Referral { .. } | Kind::Answer { .. }));
                k
            })
        });
        // hickory-proto's decoder of every record, for comparison.
        c.bench_function(&format!("hickory_decode_and_scrub/{what}"), |b| {
            b.iter(|| {
                let m = Message::from_vec(black_box(wire)).unwrap();
                classify(&m, &zone, &qname, RecordType::A)
            })
        });
        let m = Message::from_vec(wire).unwrap();
        c.bench_function(&format!("scrub_only/{what}"), |b| {
            b.iter(|| classify(black_box(&m), &zone, &qname, RecordType::A))
        });
    }
}

criterion_group!(benches, scrub);
criterion_main!(benches);
