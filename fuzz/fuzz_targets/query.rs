//! The query parser, EDNS padding, and every answer fanzha writes without resolving
//! (blocked, refused, errors): whatever the packet, no panic; every answer echoes the id and
//! the question as asked, has QR set, fits a TCP message, and decodes with
//! hickory-proto whenever the question did.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use fanzha::blocklist::{Blocklist, CompileSpec, compile};
use fanzha::config::Config;
use fanzha::dns::stages::admit::RateLimiter;
use fanzha::dns::stages::policy::{Decision, Policy};
use fanzha::dns::wire;
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

struct World {
    policy: Policy,
    list: Blocklist,
    limiter: RateLimiter,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("b");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(
            b.join("loan.txt"),
            "# category: loan\nevil.top\nexample.com\n",
        )
        .unwrap();
        std::fs::write(
            b.join("nx.txt"),
            "# category: impersonation\n# action: nxdomain\nfake.top\n",
        )
        .unwrap();
        std::fs::write(
            b.join("rf.txt"),
            "# category: phishing\n# action: refused\nphish.top\n",
        )
        .unwrap();
        let out = dir.path().join("l.fst");
        compile(
            &CompileSpec {
                dirs: vec![b],
                ..Default::default()
            },
            &out,
        )
        .unwrap();
        let list = Blocklist::open(&out, true).unwrap();
        let mut c = Config::embedded();
        c.server.acl = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
        World {
            policy: Policy::from_config(&c),
            list,
            limiter: RateLimiter::new(0, 0),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // EDNS padding (DNS over TLS) reads the client's packet and rewrites answers:
    // no panic, and a padded packet is a whole number of blocks.
    let _ = wire::padding::asks_padding(data);
    let mut copy = data.to_vec();
    if wire::padding::pad(&mut copy, wire::padding::RESPONSE_BLOCK) {
        assert_eq!(copy.len() % wire::padding::RESPONSE_BLOCK, 0);
    }
    let w = world();
    let mut buf = Vec::new();
    let client = "192.0.2.1".parse().unwrap();
    let d = w
        .policy
        .decide(data, client, &w.list, &w.limiter, Instant::now(), &mut buf);
    if !matches!(d, Decision::Answer(_) | Decision::Block(..)) {
        return;
    }
    assert!(
        buf.len() <= usize::from(u16::MAX),
        "an answer longer than a TCP frame"
    );
    assert!(buf.len() >= 12, "an answer shorter than a header");
    assert_eq!(buf[..2], data[..2], "the id is echoed");
    assert_ne!(buf[2] & 0x80, 0, "QR is set");
    if let Ok(q) = wire::parse_query(data) {
        assert_eq!(
            buf[12..q.question_end],
            data[12..q.question_end],
            "the question is echoed as asked"
        );
        let m = Message::from_vec(&buf).unwrap_or_else(|e| panic!("undecodable answer: {e}"));
        assert_eq!(m.queries.len(), 1);
    }
});
