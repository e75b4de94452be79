//! Names, lists and queries shared by the blocklist benchmarks.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use fanzha::blocklist::{self, Blocklist, CompileSpec};

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: &[&str] = &[
    "loan", "credit", "okex", "task", "kefu", "police", "bank", "secure", "login", "invest",
    "coin", "trade", "refund", "support", "verify", "wallet", "taobao", "alipay", "jd", "icbc",
    "gov", "tax", "post", "ems", "vip", "app",
];
const TLDS: &[&str] = &[
    "top", "xyz", "shop", "cc", "vip", "club", "online", "site", "icu", "cfd", "buzz", "com",
    "net", "cn", "info", "pro", "live", "work", "fun", "asia", "life", "link", "store", "tech",
    "ltd",
];

pub fn real_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blocklists");
    let mut v = Vec::new();
    for f in [
        "blocklistproject-phishing.domains.txt",
        "blocklistproject-scam.domains.txt",
        "gaso-scam.domains.txt",
    ] {
        let text = fs::read_to_string(dir.join(f)).unwrap_or_default();
        v.extend(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| l.trim().to_ascii_lowercase()),
        );
    }
    v
}

pub fn names(n: usize) -> Vec<String> {
    let mut v = real_names();
    v.truncate(n);
    let mut r = Rng(0x9e3779b97f4a7c15);
    let mut i = 0;
    while v.len() < n {
        let w1 = WORDS[(r.next() % WORDS.len() as u64) as usize];
        let w2 = WORDS[(r.next() % WORDS.len() as u64) as usize];
        let tld = TLDS[(r.next() % TLDS.len() as u64) as usize];
        // A random token keeps the names about as incompressible as real ones.
        let tok: String = (0..7)
            .map(|_| (b'a' + (r.next() % 26) as u8) as char)
            .collect();
        v.push(format!("{w1}-{tok}{w2}{}.{tld}", i % 97));
        i += 1;
    }
    v
}

pub fn write_list(dir: &Path, names: &[String]) {
    fs::create_dir_all(dir).unwrap();
    let mut f = std::io::BufWriter::new(fs::File::create(dir.join("list.txt")).unwrap());
    for n in names {
        writeln!(f, "{n}").unwrap();
    }
}

pub fn compiled(tmp: &Path, n: usize) -> (Blocklist, Vec<String>) {
    let names = names(n);
    let src = tmp.join(format!("src{n}"));
    write_list(&src, &names);
    let out = tmp.join(format!("l{n}.fst"));
    let t = Instant::now();
    let r = blocklist::compile(
        &CompileSpec {
            dirs: vec![src],
            ..Default::default()
        },
        &out,
    )
    .unwrap();
    eprintln!(
        "[{n} names] compiled {} entries in {:.2} s, file {} bytes = {:.1} bytes/name",
        r.entries,
        t.elapsed().as_secs_f64(),
        r.file_bytes,
        r.file_bytes as f64 / r.entries as f64
    );
    (Blocklist::open(&out, true).unwrap(), names)
}

pub fn queries(names: &[String]) -> Vec<String> {
    // Half blocked (a subdomain of a listed name), half not listed anywhere.
    let mut r = Rng(42);
    (0..4096)
        .map(|i| {
            let n = &names[(r.next() % names.len() as u64) as usize];
            if i % 2 == 0 {
                format!("www.{n}")
            } else {
                format!("www.not-{}-{n}", r.next() % 1000)
            }
        })
        .collect()
}
