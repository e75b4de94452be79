//! The URL proxy's reading of what clients send: the first TLS record (the name a
//! ClientHello asks for), a request's path and query against path rules, and a
//! Host header. No panic; a name read is lower-case and at most 253 bytes; "read
//! more" always asks for more than it has, within one record; normalising a path
//! twice changes nothing, and the result starts at `/`.
#![no_main]

use std::sync::OnceLock;

use fanzha::blocklist::Action;
use fanzha::blocklist::paths::{self, PathHost, PathIndex, PathMatch, PathRule, Schemes};
use fanzha::urlproxy::{route, sni};
use libfuzzer_sys::fuzz_target;

fn index() -> &'static PathIndex {
    static IX: OnceLock<PathIndex> = OnceLock::new();
    IX.get_or_init(|| {
        let rule = |path: &str, how, schemes, subtree| PathRule {
            path: paths::normalize(path),
            how,
            schemes,
            category: "phishing".into(),
            list: "fuzz.txt".into(),
            line: 1,
            action: Action::Sinkhole,
            note: Some("expires=2030-01-01T00:00:00+08:00".into()),
            subtree,
        };
        PathIndex::new(&[PathHost {
            host: "sites.example".into(),
            subtree: true,
            rules: vec![
                rule("/shop-1/pay", PathMatch::Exact, Schemes::Http, false),
                rule("/shop-2/", PathMatch::Prefix, Schemes::Both, true),
                rule("/form?id=7", PathMatch::Exact, Schemes::Https, false),
                rule("/kit", PathMatch::Separator, Schemes::Both, true),
            ],
        }])
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    match how % 3 {
        0 => match sni::client_hello(rest) {
            sni::Hello::Need(n) => assert!(n > rest.len() && n <= sni::MAX_RECORD),
            sni::Hello::Name(Some(n)) => {
                assert!(!n.is_empty() && n.len() <= 253);
                assert!(!n.bytes().any(|b| b.is_ascii_uppercase()));
            }
            sni::Hello::Name(None) | sni::Hello::NotTls => {}
        },
        1 => {
            let text = String::from_utf8_lossy(rest);
            let once = paths::normalize(&text);
            assert!(once.starts_with('/'), "{once:?}");
            assert_eq!(paths::normalize(&once), once, "from {text:?}");
            for host in ["sites.example", "a.sites.example", "other.example"] {
                let _ = index().check(host, &text, how & 4 != 0, 1_800_000_000);
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            if let Some((h, _)) = route::host_port(&text) {
                assert!(!h.is_empty() && h.len() <= 253, "{h:?}");
                let _ = index().host(&h);
            }
        }
    }
});
