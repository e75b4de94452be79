//! The caches' byte bounds are only as good as the weights they add up: here a
//! counting allocator measures what typical entries really hold (the map and queue
//! slots, keys, values and their heap parts, with malloc's per-chunk overhead), and
//! the weights must not undercount it. A cache that thinks it holds 16 MiB while it
//! holds 40 is how RSS outgrows `[cache] max_bytes` under a unique-name flood.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use fanzha::dns::resolve::iterate::Step;
use fanzha::dns::resolve::iterate::cache::{
    Delegation, Expiring, Key, NameKey, delegation_weight, step_weight,
};
use fanzha::dns::stages::cache::AnswerCache;
use fanzha::dns::wire;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Live heap bytes as glibc's malloc spends them: a chunk is the request plus 8
/// bytes of header, rounded up to 16, at least 32.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

fn chunk(size: usize) -> isize {
    ((size + 8).div_ceil(16) * 16).max(32) as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(chunk(l.size()), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(chunk(l.size()), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(chunk(new) - chunk(l.size()), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const N: usize = 40_000;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Fill a cache with `N` entries through `put`; return (bytes it really holds per
/// entry, bytes it says it holds per entry).
fn measure(fill: impl FnOnce() -> Box<dyn FnOnce() -> usize>) -> (f64, f64) {
    let before = live();
    let said = fill();
    let held = (live() - before) as f64 / N as f64;
    (held, said() as f64 / N as f64)
}

fn name(i: usize) -> Name {
    Name::from_str(&format!("u{i}x{}.zone{}.example.com.", i * 7, i % 300)).unwrap()
}

fn soa() -> Record {
    Record::from_rdata(
        Name::from_str("example.com.").unwrap(),
        300,
        RData::SOA(SOA::new(
            Name::from_str("ns1.example.com.").unwrap(),
            Name::from_str("hostmaster.example.com.").unwrap(),
            1,
            3600,
            600,
            86400,
            300,
        )),
    )
}

fn check(what: &str, (held, said): (f64, f64)) {
    eprintln!("{what}: holds {held:.0} bytes per entry, counts {said:.0}");
    assert!(
        said >= held * 0.9,
        "{what}: the weights count {said:.0} bytes per entry, the heap holds {held:.0}"
    );
    assert!(
        said <= held * 1.6,
        "{what}: the weights count {said:.0} bytes per entry, far above the {held:.0} held"
    );
}

#[test]
fn cache_weights_count_what_the_heap_holds() {
    // The client answer cache: encoded answers.
    let r = measure(|| {
        let cache = Box::leak(Box::new(AnswerCache::with_limits(N * 2, usize::MAX)));
        let now = Instant::now();
        for i in 0..N {
            let mut q = Message::new(i as u16, MessageType::Query, OpCode::Query);
            q.add_query(Query::query(name(i), RecordType::A));
            let packet = q.to_vec().unwrap();
            let parsed = wire::parse_query(&packet).unwrap();
            let mut a = q.clone();
            a.metadata.message_type = MessageType::Response;
            a.add_answer(Record::from_rdata(
                name(i),
                300,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            ));
            cache.put(&packet, &parsed, 0, now, &a.to_vec().unwrap());
        }
        assert_eq!(cache.len(), N);
        Box::new(|| cache.bytes())
    });
    check("answer cache", r);

    // The iterator's answers: one A record each.
    let r = measure(|| {
        let cache: &'static Expiring<Key, Step> =
            Box::leak(Box::new(Expiring::new(N * 2, usize::MAX, step_weight)));
        let now = Instant::now();
        for i in 0..N {
            let rs = vec![Record::from_rdata(
                name(i),
                300,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            )];
            cache.put(
                (NameKey::new(&name(i)), RecordType::A),
                Step::Answer(rs, vec![]),
                Duration::from_secs(300),
                now,
            );
        }
        Box::new(|| cache.bytes())
    });
    check("iterator answers", r);

    // The iterator's negative answers: an SOA each.
    let r = measure(|| {
        let cache: &'static Expiring<Key, Step> =
            Box::leak(Box::new(Expiring::new(N * 2, usize::MAX, step_weight)));
        let now = Instant::now();
        for i in 0..N {
            let step = Step::NxDomain(vec![], vec![soa()]);
            cache.put(
                (NameKey::new(&name(i)), RecordType::A),
                step,
                Duration::from_secs(300),
                now,
            );
        }
        Box::new(|| cache.bytes())
    });
    check("iterator negative answers", r);

    // Zone cuts: two name servers with glue.
    let r = measure(|| {
        let cache: &'static Expiring<NameKey, Delegation> = Box::leak(Box::new(Expiring::new(
            N * 2,
            usize::MAX,
            delegation_weight,
        )));
        let now = Instant::now();
        for i in 0..N {
            let zone = Name::from_str(&format!("zone{i}.example.com.")).unwrap();
            let ns: Vec<Name> = (1..=2)
                .map(|k| Name::from_str(&format!("ns{k}.zone{i}.example.com.")).unwrap())
                .collect();
            let addrs = ns
                .iter()
                .map(|n| (n.clone(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53))))
                .collect();
            let d = Delegation {
                zone: zone.clone(),
                ns,
                addrs,
            };
            cache.put(NameKey::new(&zone), d, Duration::from_secs(300), now);
        }
        Box::new(|| cache.bytes())
    });
    check("zone cuts", r);
}

#[path = "it/common/mod.rs"]
mod common;

use common::*;

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Ask `count` names never asked before, from 16 threads.
fn flood(dns: std::net::SocketAddr, from: usize, count: usize) {
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                for i in (from + t..from + count).step_by(16) {
                    let m = udp(dns, &format!("flood{i}.example.test."), RecordType::A);
                    assert_eq!(
                        m.metadata.response_code,
                        hickory_proto::op::ResponseCode::NXDomain
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_unique_name_flood_leaves_rss_within_the_cache_budget() {
    // Every name is new and does not exist: each leaves a negative answer in both
    // caches. Unbounded, 24,000 of them hold about 40 MB; the budget is 4 MiB.
    const BUDGET: u64 = 4 << 20;
    let root = "test. NS ns1.nic.\nns1.nic. LAB 11\n";
    let tld = "example NS ns1.example.test.\nns1.example LAB 12\n";
    let lab = Lab::start(
        &[
            (".", root),
            ("test.", tld),
            ("example.test.", "@ NS ns1.example.test.\nns1 LAB 12\n"),
        ],
        vec![
            Server::new(10, &["."], Mode::Normal),
            Server::new(11, &["test."], Mode::Normal),
            Server::new(12, &["example.test."], Mode::Normal),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let lists = dir.path().join("lists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(lists.join("l.txt"), "blocked.invalid\n").unwrap();
    let toml = format!(
        "[blocklist]\ndirs = [\"{}\"]\nallow_dirs = []\n[cache]\nmax_bytes = {}\n{}",
        lists.display(),
        BUDGET,
        lab.resolver_toml()
            .replace("[resolver]\n", "[resolver]\ncache_size = 1000000\n")
    );
    let f = Fanzha::start(dir.path(), &toml);
    // Warm up: the code paths, the runtime and the allocator's arenas.
    flood(f.dns, 0, 2_000);
    let before = rss_kib(f.child.id()) * 1024;
    flood(f.dns, 2_000, 24_000);
    let after = rss_kib(f.child.id()) * 1024;
    let grew = after.saturating_sub(before);
    eprintln!(
        "RSS {} KiB before, {} KiB after 24,000 new names",
        before / 1024,
        after / 1024
    );
    assert!(
        grew <= 2 * BUDGET,
        "RSS grew by {} KiB under a flood of new names; the caches may hold {} KiB",
        grew / 1024,
        BUDGET / 1024
    );
}
