//! The hot path allocates nothing: blocklist lookups, the block decision with its
//! answer bytes, and answers from the cache, counted with a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use fanzha::blocklist::{self, Blocklist, CompileSpec};
use fanzha::config::Config;
use fanzha::dns::stages::admit::RateLimiter;
use fanzha::dns::stages::policy::{Decision, Policy};

struct Counting;
// Per thread: the tests of this file run in parallel and count only their own.
thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn counting(on: bool) {
    ON.with(|c| c.set(on));
}

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.try_with(|c| c.get()).unwrap_or(false) {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn query(name: &str) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for l in name.split('.') {
        p.push(l.len() as u8);
        p.extend_from_slice(l.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    p.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]); // OPT
    p
}

#[test]
fn lookups_and_block_answers_do_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s");
    std::fs::create_dir_all(&src).unwrap();
    let names: String = (0..10_000).map(|i| format!("fraud{i}.top\n")).collect();
    std::fs::write(src.join("l.txt"), format!("# category: loan\n{names}")).unwrap();
    // Path rules on hosts under the same name: every query is checked against them
    // too (and passes on: a host rule decides first).
    let urls: String = (0..1000)
        .map(|i| format!("http://www.fraud{i}.top/x\nhttp://shop{i}.fraud.top/pay\n"))
        .collect();
    std::fs::write(src.join("urls.txt"), urls).unwrap();
    let out = dir.path().join("l.fst");
    blocklist::compile(
        &CompileSpec {
            dirs: vec![src],
            ..Default::default()
        },
        &out,
    )
    .unwrap();
    let list = Blocklist::open(&out, true).unwrap();
    let mut policy = Policy::from_config(&Config::embedded());
    policy.url = Some(fanzha::dns::stages::answer::UrlProxy {
        v4: Some("10.0.0.54".parse().unwrap()),
        v6: None,
        passthrough: true,
    });
    let limiter = RateLimiter::new(0, 0);
    let packets: Vec<Vec<u8>> = (0..1000)
        .map(|i| query(&format!("www.fraud{i}.top")))
        .collect();
    let hosts: Vec<Vec<u8>> = (0..1000)
        .map(|i| query(&format!("shop{i}.fraud.top")))
        .collect();
    let strings: Vec<String> = (0..1000).map(|i| format!("a.b.fraud{i}.top")).collect();
    let mut buf = Vec::with_capacity(512);
    let client = "127.0.0.1".parse().unwrap();
    let now = Instant::now();

    counting(true);
    let mut blocked = 0;
    let mut proxied = 0;
    for ((p, s), h) in packets.iter().zip(&strings).zip(&hosts) {
        if list.lookup(s).is_block() {
            blocked += 1;
        }
        if let Decision::Block(..) = policy.decide(p, client, &list, &limiter, now, &mut buf) {
            blocked += 1;
        }
        if let Decision::Answer(_) = policy.decide(h, client, &list, &limiter, now, &mut buf) {
            proxied += 1;
        }
    }
    counting(false);
    assert_eq!((blocked, proxied), (2000, 1000));
    assert_eq!(allocs(), 0, "allocations on the blocked-query path");
}

#[test]
fn cached_answers_do_not_allocate() {
    use hickory_proto::op::{Edns, Message, MessageType, OpCode};
    use hickory_proto::rr::{Name, RData, Record, rdata::A};
    let list = Blocklist::empty();
    let policy = Policy::from_config(&Config::embedded());
    let limiter = RateLimiter::new(0, 0);
    let cache = fanzha::dns::stages::cache::AnswerCache::new(10_000);
    let now = Instant::now();
    let client = "127.0.0.1".parse().unwrap();
    let mut buf = Vec::with_capacity(512);
    let packets: Vec<Vec<u8>> = (0..1000)
        .map(|i| query(&format!("www.allowed{i}.test")))
        .collect();
    // Fill the cache as the resolve path does: an encoded answer per question.
    for p in &packets {
        let Decision::Resolve(q) = policy.decide(p, client, &list, &limiter, now, &mut buf) else {
            panic!("an allowed name must go to the resolver");
        };
        let req = Message::from_vec(p).unwrap();
        let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
        resp.add_query(req.queries[0].clone());
        let name = Name::from_ascii(req.queries[0].name().to_ascii()).unwrap();
        resp.add_answer(Record::from_rdata(
            name,
            300,
            RData::A(A::new(192, 0, 2, 7)),
        ));
        resp.set_edns(Edns::new());
        cache.put(p, &q, 1, now, &resp.to_vec().unwrap());
    }

    counting(true);
    let mut hits = 0;
    for p in &packets {
        if let Decision::Resolve(q) = policy.decide(p, client, &list, &limiter, now, &mut buf)
            && cache.get(p, &q, 1, now, &mut buf).is_hit()
        {
            hits += 1;
        }
    }
    counting(false);
    assert_eq!(hits, 1000, "cached answers were not found");
    assert_eq!(allocs(), 0, "allocations on the cached-answer path");
}
