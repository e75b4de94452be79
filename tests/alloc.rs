//! The hot path allocates nothing: blocklist lookups and the block decision with its
//! answer bytes, counted with a global counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use fanzha::blocklist::{self, Blocklist, CompileSpec};
use fanzha::config::Config;
use fanzha::policy::{Decision, Policy, RateLimiter};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ON: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
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
    let policy = Policy::from_config(&Config::embedded());
    let limiter = RateLimiter::new(0, 0);
    let packets: Vec<Vec<u8>> = (0..1000)
        .map(|i| query(&format!("www.fraud{i}.top")))
        .collect();
    let strings: Vec<String> = (0..1000).map(|i| format!("a.b.fraud{i}.top")).collect();
    let mut buf = Vec::with_capacity(512);
    let client = "127.0.0.1".parse().unwrap();
    let now = Instant::now();

    ON.store(true, Ordering::SeqCst);
    let mut blocked = 0;
    for (p, s) in packets.iter().zip(&strings) {
        if list.lookup(s).is_block() {
            blocked += 1;
        }
        if let Decision::Block(..) = policy.decide(p, client, &list, &limiter, now, &mut buf) {
            blocked += 1;
        }
    }
    ON.store(false, Ordering::SeqCst);
    assert_eq!(blocked, 2000);
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "allocations on the blocked-query path"
    );
}
