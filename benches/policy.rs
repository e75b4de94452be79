//! The blocked-query decision (`Policy::decide`: parse, admit, list verdict, action,
//! answer written) with and without per-place policies, side by side in one run:
//! the cost `[[policies]]` adds to the fast path. Run: `cargo bench --bench policy`
//! (figures in docs/benchmarks.md).

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use fanzha::blocklist::{Action, Blocklist, CompileSpec, compile};
use fanzha::config::Config;
use fanzha::dns::stages::admit::RateLimiter;
use fanzha::dns::stages::policy::{Decision, Policy};
use fanzha::places::{Place, PlacePolicy, Places};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

fn list(dir: &std::path::Path) -> Blocklist {
    let b = dir.join("b");
    std::fs::create_dir_all(&b).unwrap();
    let mut text = String::from("# category: investment\n");
    for i in 0..10_000 {
        text.push_str(&format!("scam{i}.example.top\n"));
    }
    std::fs::write(b.join("investment.txt"), text).unwrap();
    std::fs::write(b.join("loan.txt"), "# category: loan\nloan.top\n").unwrap();
    let out = dir.join("l.fst");
    compile(
        &CompileSpec {
            dirs: vec![b],
            ..Default::default()
        },
        &out,
    )
    .unwrap();
    Blocklist::open(&out, true).unwrap()
}

/// A district's places: 200 communities (a /24 each) under 20 streets, every
/// fourth with a policy of its own.
fn places() -> Places {
    let nets = (0..200u32)
        .map(|i| {
            let net = format!("10.{}.{}.0/24", i / 200, i % 200).parse().unwrap();
            let place = Place {
                district: "滨江区".into(),
                street: format!("街道{}", i % 20),
                community: format!("社区{i}"),
                policy: (i % 4 == 0).then_some((i % 3) as u16),
                ..Default::default()
            };
            (net, place)
        })
        .collect();
    let policy = |name: &str, a| PlacePolicy {
        name: name.into(),
        categories: vec![
            ("gambling".into(), Action::Sinkhole),
            ("loan".into(), Action::Nxdomain),
            ("investment".into(), a),
        ],
    };
    Places::new(nets, Place::default()).with_policies(vec![
        policy("school", Action::Sinkhole),
        policy("trial", Action::Nxdomain),
        policy("park", Action::Refused),
    ])
}

fn bench_blocked(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let l = list(tmp.path());
    let mut cfg = Config::embedded();
    cfg.server.acl = vec!["0.0.0.0/0".parse().unwrap()];
    let plain = Policy::from_config(&cfg);
    cfg.places = places();
    let placed = Policy::from_config(&cfg);
    let limiter = RateLimiter::new(0, 0);
    let packets: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            let mut m = Message::new(i, MessageType::Query, OpCode::Query);
            let name = format!("www.scam{}.example.top.", i * 37);
            m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
            m.to_vec().unwrap()
        })
        .collect();
    let in_policy: IpAddr = "10.0.196.9".parse().unwrap(); // community 196: a policy
    let no_policy: IpAddr = "10.0.197.9".parse().unwrap(); // community 197: none
    let mut g = c.benchmark_group("blocked_decision");
    let mut buf = Vec::with_capacity(512);
    for (label, p, client) in [
        ("no places", &plain, no_policy),
        ("policies, client without one", &placed, no_policy),
        ("policies, client with one", &placed, in_policy),
    ] {
        let mut i = 0;
        g.bench_function(label, |b| {
            b.iter(|| {
                i = (i + 1) & 255;
                buf.clear();
                let d = p.decide(&packets[i], client, &l, &limiter, Instant::now(), &mut buf);
                assert!(matches!(d, Decision::Block(..)));
                black_box(&buf);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_blocked);
criterion_main!(benches);
