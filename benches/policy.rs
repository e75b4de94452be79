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
    list_with(dir, "")
}

/// The benchmark's list, with `more` (a file's text) beside it.
fn list_with(dir: &std::path::Path, more: &str) -> Blocklist {
    let b = dir.join("b");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("more.txt"), more).unwrap();
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

fn bench_path_hosts(c: &mut Criterion) {
    let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let without = list(t1.path());
    let urls: String = (0..1000)
        .map(|i| format!("http://shop{i}.sites.example/form-{i}/pay\n"))
        .collect();
    let with = list_with(t2.path(), &urls);
    assert_eq!(with.paths().rules(), 1000);
    let mut cfg = Config::embedded();
    cfg.server.acl = vec!["0.0.0.0/0".parse().unwrap()];
    let mut p = Policy::from_config(&cfg);
    p.url = Some(fanzha::dns::stages::answer::UrlProxy {
        v4: Some("10.0.0.54".parse().unwrap()),
        v6: None,
        passthrough: true,
    });
    let limiter = RateLimiter::new(0, 0);
    let packet = |name: String| {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    };
    let others: Vec<Vec<u8>> = (0..256)
        .map(|i| packet(format!("www.site{i}.news.example.")))
        .collect();
    let hosts: Vec<Vec<u8>> = (0..256)
        .map(|i| packet(format!("shop{}.sites.example.", i * 3)))
        .collect();
    let client: IpAddr = "10.0.0.9".parse().unwrap();
    let mut g = c.benchmark_group("unlisted_decision");
    let mut buf = Vec::with_capacity(512);
    for (label, l, packets, proxied) in [
        ("no path rules", &without, &others, false),
        ("1,000 path hosts, another name", &with, &others, false),
        ("1,000 path hosts, one of them", &with, &hosts, true),
    ] {
        let mut i = 0;
        g.bench_function(label, |b| {
            b.iter(|| {
                i = (i + 1) & 255;
                buf.clear();
                let d = p.decide(&packets[i], client, l, &limiter, Instant::now(), &mut buf);
                assert_eq!(matches!(d, Decision::Answer(_)), proxied, "{d:?}");
                black_box(&buf);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_blocked, bench_path_hosts);
criterion_main!(benches);
