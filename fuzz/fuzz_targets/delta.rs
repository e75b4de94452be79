//! A feed delta (JSON, as an appliance reads it from disk or the network after its
//! signature checks) laid over a compiled base: never a panic, whatever the names,
//! values and tables it claims; a delta that applies answers lookups.
#![no_main]

use std::sync::OnceLock;

use fanzha::blocklist::{Blocklist, CompileSpec, compile, delta::Delta};
use libfuzzer_sys::fuzz_target;

/// A small compiled base: a block rule, an allow rule below it, a second category.
fn base() -> &'static Blocklist {
    static BASE: OnceLock<Blocklist> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (b, a) = (dir.path().join("b"), dir.path().join("a"));
        std::fs::create_dir_all(&b).unwrap();
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(b.join("loan.txt"), "# category: loan\nevil.top\n").unwrap();
        std::fs::write(
            b.join("bet.txt"),
            "# category: gambling\nbet.top # case 1\n",
        )
        .unwrap();
        std::fs::write(a.join("ok.txt"), "ok.evil.top\n").unwrap();
        let spec = CompileSpec {
            dirs: vec![b],
            allow_dirs: vec![a],
            ..Default::default()
        };
        let out = dir.path().join("l.fst");
        compile(&spec, &out).unwrap();
        Blocklist::from_bytes(std::fs::read(&out).unwrap(), true).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(d) = serde_json::from_slice::<Delta>(data) else {
        return;
    };
    let chain = [d.clone(), d];
    for n in 1..=2 {
        if let Ok(l) = base().with_deltas(&chain[..n]) {
            for name in ["evil.top", "a.ok.evil.top", "bet.top", "x.y.top", "", "top"] {
                let v = l.lookup(name);
                let _ = (l.list(&v), l.len(), l.meta().entries);
                if let fanzha::blocklist::Verdict::Block(h) = v {
                    let _ = (l.category(&h), l.note(&h), l.expires(h.value), l.action(&h));
                }
            }
            let _ = l.entries();
        }
    }
});
