//! Semantics of the engine, pinned in tables, plus a model-based property test.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::*;

/// Write `files` (name, text) under `dir/block` and `allows` under `dir/allow`, compile;
/// the compiled list, the report, and the interim index the compile offered on the way
/// (checked to hold the same entries and tables).
fn build_both(
    dir: &Path,
    files: &[(&str, &str)],
    allows: &[(&str, &str)],
    never: &[&str],
) -> (Blocklist, CompileReport, Blocklist) {
    let b = dir.join("block");
    let a = dir.join("allow");
    fs::create_dir_all(&b).unwrap();
    fs::create_dir_all(&a).unwrap();
    for (n, t) in files {
        fs::write(b.join(n), t).unwrap();
    }
    for (n, t) in allows {
        fs::write(a.join(n), t).unwrap();
    }
    let spec = CompileSpec {
        dirs: vec![b],
        allow_dirs: vec![a],
        never_block: never.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let out = dir.join("out.fst");
    let mut interim = None;
    let report = compile::compile_with(&spec, &out, Some(&mut |l| interim = Some(l))).unwrap();
    let list = Blocklist::open(&out, true).unwrap();
    let interim = interim.expect("a first compile offers an interim index");
    assert!(interim.is_interim() && !list.is_interim());
    // The interim index holds exactly what the compiled file holds.
    assert_eq!(interim.entries(), list.entries());
    let (a, b) = (interim.meta(), list.meta());
    assert_eq!(
        (a.entries, a.block_entries, a.allow_entries),
        (b.entries, b.block_entries, b.allow_entries)
    );
    assert_eq!(
        (&a.categories, &a.lists, &a.notes),
        (&b.categories, &b.lists, &b.notes)
    );
    (list, report, interim)
}

/// [`build_both`] without the interim index.
fn build(
    dir: &Path,
    files: &[(&str, &str)],
    allows: &[(&str, &str)],
    never: &[&str],
) -> (Blocklist, CompileReport) {
    let (list, report, _) = build_both(dir, files, allows, never);
    (list, report)
}

#[derive(Debug, PartialEq)]
enum V {
    Pass,
    Allow(&'static str),
    Block(&'static str, &'static str),
}

fn verdict(list: &Blocklist, q: &'static str) -> (V, Option<String>) {
    let v = list.lookup(q);
    let rule = match v {
        Verdict::Pass => None,
        Verdict::Allow(h) | Verdict::Block(h) => Some(h.rule(q).to_ascii_lowercase()),
    };
    let got = match v {
        Verdict::Pass => V::Pass,
        Verdict::Allow(_) => V::Allow(""),
        Verdict::Block(h) => V::Block(leak(list.category(&h)), ""),
    };
    (got, rule)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

#[test]
fn matching_semantics_table() {
    let dir = tempfile::tempdir().unwrap();
    let (list, report, interim) = build_both(
        dir.path(),
        &[
            (
                "loan.txt",
                "# category: loan\nevil.top\n*.wild.top\n0.0.0.0 Host.TOP\ndeep.ok.evil.top\nsame.top\n安順極速貸.shop\nfqdn.top.\n\
                 bad..name\n1.2.3.4\n||ads*.x.top^\n/regex/\n",
            ),
            (
                "exact.txt",
                "# category: phishing\n# match: exact\nexact.top\n||sub.exact2.top^\n",
            ),
            (
                "rpz.zone",
                "$TTL 60\nrpzexact.top CNAME .\n*.rpzbelow.top CNAME .\npass.evil.top CNAME rpz-passthru.\n",
            ),
        ],
        &[("allow.txt", "ok.evil.top\nsame.top\n")],
        &[],
    );
    use V::*;
    let cases: &[(&'static str, V, Option<&str>)] = &[
        ("evil.top", Block("loan", ""), Some("evil.top")),
        ("a.b.evil.top", Block("loan", ""), Some("evil.top")),
        ("top", Pass, None),
        ("notevil.top", Pass, None),
        ("evil.top.cn", Pass, None),
        ("EVIL.Top.", Block("loan", ""), Some("evil.top")),
        ("fqdn.top", Block("loan", ""), Some("fqdn.top")),
        // allow beats block below it; a deeper block beats the allow again
        ("ok.evil.top", Allow(""), Some("ok.evil.top")),
        ("x.ok.evil.top", Allow(""), Some("ok.evil.top")),
        (
            "deep.ok.evil.top",
            Block("loan", ""),
            Some("deep.ok.evil.top"),
        ),
        (
            "a.deep.ok.evil.top",
            Block("loan", ""),
            Some("deep.ok.evil.top"),
        ),
        // allow beats block at equal depth
        ("same.top", Allow(""), Some("same.top")),
        // RPZ passthru is an exact allow
        ("pass.evil.top", Allow(""), Some("pass.evil.top")),
        ("x.pass.evil.top", Block("loan", ""), Some("evil.top")),
        // wildcard: below only
        ("wild.top", Pass, None),
        ("a.wild.top", Block("loan", ""), Some("wild.top")),
        // hosts line, case folded
        ("host.top", Block("loan", ""), Some("host.top")),
        ("www.host.top", Block("loan", ""), Some("host.top")),
        // exact-only list: the name, not its subdomains; explicit || keeps subtree
        ("exact.top", Block("phishing", ""), Some("exact.top")),
        ("a.exact.top", Pass, None),
        (
            "x.sub.exact2.top",
            Block("phishing", ""),
            Some("sub.exact2.top"),
        ),
        // RPZ owner names are exact; *.name is below only
        ("rpzexact.top", Block("fraud", ""), Some("rpzexact.top")),
        ("a.rpzexact.top", Pass, None),
        ("rpzbelow.top", Pass, None),
        ("a.rpzbelow.top", Block("fraud", ""), Some("rpzbelow.top")),
        // IDN: the list's Unicode name matches the query's A-label
        (
            "xn--49sw73a0r1as3c7ym.shop",
            Block("loan", ""),
            Some("xn--49sw73a0r1as3c7ym.shop"),
        ),
        (
            "WWW.XN--49SW73A0R1AS3C7YM.SHOP",
            Block("loan", ""),
            Some("xn--49sw73a0r1as3c7ym.shop"),
        ),
        ("", Pass, None),
        (".", Pass, None),
    ];
    for (q, want, rule) in cases {
        for l in [&list, &interim] {
            let (got, got_rule) = verdict(l, q);
            assert_eq!(&got, want, "query {q:?} (interim: {})", l.is_interim());
            assert_eq!(got_rule.as_deref(), *rule, "rule for {q:?}");
        }
        assert_eq!(list.lookup(q), interim.lookup(q), "{q:?}");
    }
    // bad lines are counted by reason, with file:line examples
    let loan = report.lists.iter().find(|l| l.name == "loan.txt").unwrap();
    assert_eq!(loan.skipped.get("empty-label"), Some(&1));
    assert_eq!(loan.skipped.get("ip-address"), Some(&1));
    assert_eq!(loan.skipped.get("adblock-pattern"), Some(&1));
    assert_eq!(loan.skipped.get("regex"), Some(&1));
    assert!(
        report
            .examples
            .iter()
            .any(|e| e.file == "loan.txt" && e.line == 9 && e.reason == "empty-label")
    );
    // list names and categories are recorded
    let v = list.lookup("evil.top");
    assert_eq!(list.list(&v).unwrap().name, "loan.txt");
    let v = list.lookup("ok.evil.top");
    assert_eq!(list.list(&v).unwrap().name, "allow.txt");
}

#[test]
fn notes_and_actions_travel_with_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (list, _) = build(
        dir.path(),
        &[(
            "police.txt",
            "# category: impersonation\n# action: nxdomain\nfake-police.top # case GA-2026-17\n",
        )],
        &[],
        &[],
    );
    let Verdict::Block(h) = list.lookup("www.fake-police.top") else {
        panic!("not blocked")
    };
    assert_eq!(list.note(&h), Some("case GA-2026-17"));
    assert_eq!(list.action(&h), Action::Nxdomain);
    assert_eq!(list.category(&h), "impersonation");
}

#[test]
fn expiries_are_read_in_any_rfc_3339_offset() {
    use super::parse::expiry_unix;
    // 2030-12-03 00:00 UTC, written as an operator in Hangzhou or anywhere would.
    let at = Some(1_922_486_400);
    for ts in [
        "2030-12-03T08:00:00+08:00",
        "2030-12-03T00:00:00Z",
        "2030-12-03t00:00:00z",
        "2030-12-02T19:00:00-05:00",
        "2030-12-03T08:00:00.000+08:00",
        "2030-12-03 08:00:00+08:00",
        // Without an offset: UTC, as before.
        "2030-12-03T00:00:00",
        "2030-12-03",
    ] {
        assert_eq!(expiry_unix(ts), at, "{ts}");
    }
    for ts in [
        "tomorrow",
        "2030-12-03T08:00:00+8",
        "2030-13-03T08:00:00Z",
        "1960-01-01T00:00:00Z",
        "",
    ] {
        assert_eq!(expiry_unix(ts), None, "{ts}");
    }
}

#[test]
fn an_emergency_rule_in_china_time_blocks_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let text = "# category: loan\n\
                evil.top # expires=2100-12-03T08:00:00+08:00\n\
                gone.top # expires=2000-12-03T08:00:00+08:00\n\
                # expires: 2100-01-01T08:00:00+08:00\n\
                header.top\n";
    let (list, report, interim) = build_both(dir.path(), &[("loan.txt", text)], &[], &[]);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    for l in [&list, &interim] {
        let Verdict::Block(h) = l.lookup("evil.top") else {
            panic!("evil.top must block until its expiry")
        };
        // 2100-12-03T00:00:00Z
        assert_eq!(l.expires(h.value), Some(4_131_475_200));
        assert_eq!(l.lookup("gone.top"), Verdict::Pass);
        assert!(l.lookup("header.top").is_block());
    }
}

#[test]
fn lines_meant_to_apply_are_each_reported_when_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("# category: loan\n# action: blockit\n# match: fuzzy\n");
    for i in 0..30 {
        text += &format!("e{i}.top # expires=2030-12-03T08:00:00+8\n");
    }
    for i in 0..30 {
        text += &format!("/regex{i}/\n");
    }
    let (list, report, _) = build_both(dir.path(), &[("loan.txt", &text)], &[], &[]);
    assert_eq!(
        report.skipped.get("bad-header"),
        Some(&2),
        "{:?}",
        report.skipped
    );
    assert_eq!(report.skipped.get("bad-expiry"), Some(&30));
    assert_eq!(report.skipped.get("regex"), Some(&30));
    // Every skipped expiry and header is named with its line, not only the first few
    // examples of the file.
    let named = |reason: &str| -> Vec<u64> {
        report
            .examples
            .iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.line)
            .collect()
    };
    assert_eq!(named("bad-header"), vec![2, 3]);
    assert_eq!(named("bad-expiry"), (4..34).collect::<Vec<u64>>());
    assert!(named("regex").len() <= 5);
    assert!(!list.lookup("e0.top").is_block());
}

#[test]
fn emergency_rules_lapse_at_their_expiry_and_broader_rules_still_decide() {
    let dir = tempfile::tempdir().unwrap();
    // Times in the past have lapsed, times far ahead have not: the same decision a
    // fake clock would make either side of the expiry.
    let text = "# category: loan\n\
                permanent.top\n\
                emergency.top # expires=2000-01-01T00:00:00Z case 17\n\
                live.top # case 18 expires=2100-01-01T00:00:00Z\n\
                sub.permanent.top # expires=2000-01-01T00:00:00Z\n\
                bad.top # expires=tomorrow\n\
                # expires: 2000-01-01T00:00:00Z\n\
                header-lapsed.top\n\
                own-expiry.top # expires=2100-01-01T00:00:00Z\n";
    let (list, report, interim) = build_both(dir.path(), &[("loan.txt", text)], &[], &[]);
    assert_eq!(
        report.skipped.get("bad-expiry"),
        Some(&1),
        "{:?}",
        report.skipped
    );
    for l in [&list, &interim] {
        assert!(l.lookup("a.permanent.top").is_block());
        assert_eq!(l.lookup("www.emergency.top"), Verdict::Pass);
        assert_eq!(l.lookup("header-lapsed.top"), Verdict::Pass);
        assert_eq!(l.lookup("bad.top"), Verdict::Pass);
        // A lapsed rule under a lasting one: the lasting one decides.
        let Verdict::Block(h) = l.lookup("x.sub.permanent.top") else {
            panic!("permanent.top must still block below it")
        };
        assert_eq!(h.rule("x.sub.permanent.top"), "permanent.top");
        assert_eq!(l.expires(h.value), None);
        // In force: blocked, with its expiry and the rest of its note.
        for (name, note) in [
            ("live.top", "expires=2100-01-01T00:00:00Z case 18"),
            ("own-expiry.top", "expires=2100-01-01T00:00:00Z"),
        ] {
            let Verdict::Block(h) = l.lookup(name) else {
                panic!("{name} must block until its expiry")
            };
            assert_eq!(l.note(&h), Some(note));
            assert_eq!(l.expires(h.value), Some(4_102_444_800));
        }
    }
}

#[test]
fn guardrails_refuse_public_suffixes_and_protected_names() {
    let dir = tempfile::tempdir().unwrap();
    let (list, report) = build(
        dir.path(),
        &[(
            "bad.txt",
            "com\ncom.cn\ngithub.io\nUS.COM\nmyshopify.com\nfake.gov.cn\nicbc.com.cn\n*.icbc.com.cn\nexample.top\nlocal\n",
        )],
        &[],
        &["gov.cn", "www.icbc.com.cn"],
    );
    let reasons: HashMap<&str, &str> = report
        .refused
        .iter()
        .map(|r| (r.name.as_str(), r.reason))
        .collect();
    assert_eq!(reasons.get("com"), Some(&"public-suffix"));
    assert_eq!(reasons.get("com.cn"), Some(&"public-suffix"));
    assert_eq!(reasons.get("github.io"), Some(&"public-suffix"));
    assert_eq!(reasons.get("us.com"), Some(&"public-suffix"));
    assert_eq!(reasons.get("myshopify.com"), Some(&"public-suffix"));
    assert_eq!(reasons.get("local"), Some(&"public-suffix"));
    assert_eq!(reasons.get("fake.gov.cn"), Some(&"never-block"));
    assert_eq!(reasons.get("icbc.com.cn"), Some(&"never-block"));
    assert!(
        report
            .refused
            .iter()
            .all(|r| r.file == "bad.txt" && r.line >= 1)
    );
    assert_eq!(report.refused.len(), 9, "{:?}", report.refused);
    assert!(list.lookup("example.top").is_block());
    assert!(!list.lookup("x.com").is_block());
    assert!(!list.lookup("www.icbc.com.cn").is_block());
    assert_eq!(list.len(), 1);
}

#[test]
fn drop_guard_refuses_a_much_smaller_list_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    fs::create_dir_all(&b).unwrap();
    fs::write(b.join("l.txt"), "a.top\nb.top\nc.top\n").unwrap();
    let mut spec = CompileSpec {
        dirs: vec![b],
        previous_entries: Some(10),
        ..Default::default()
    };
    let out = dir.path().join("o.fst");
    match compile(&spec, &out) {
        Err(CompileError::DropTooLarge {
            old: 10, new: 3, ..
        }) => {}
        other => panic!("expected DropTooLarge, got {other:?}"),
    }
    assert!(!out.exists(), "a refused compile writes nothing");
    spec.force = true;
    assert_eq!(compile(&spec, &out).unwrap().entries, 3);
    spec.force = false;
    spec.previous_entries = Some(5);
    assert_eq!(
        compile(&spec, &out).unwrap().entries,
        3,
        "a 40 % drop is within the default 50 %"
    );
}

#[test]
fn corrupt_files_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (list, _) = build(dir.path(), &[("l.txt", "evil.top\nbad.top\n")], &[], &[]);
    drop(list);
    let good = fs::read(dir.path().join("out.fst")).unwrap();
    assert!(Blocklist::from_bytes(good.clone(), true).is_ok());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        (
            "junk",
            b"this is not a list at all, just text padding to 48 bytes...".to_vec(),
        ),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("extended", [good.clone(), vec![0; 8]].concat()),
        ("flipped fst byte", {
            let mut g = good.clone();
            let n = g.len();
            g[n - 5] ^= 0x40;
            g
        }),
        ("flipped meta byte", {
            let mut g = good.clone();
            g[60] ^= 0x01;
            g
        }),
        ("version", {
            let mut g = good.clone();
            g[8] = 9;
            g
        }),
    ];
    for (what, bytes) in cases {
        let err = Blocklist::from_bytes(bytes, true).expect_err(what);
        let msg = err.to_string();
        assert!(
            msg.contains("fanzha compile") || msg.contains("copy it again"),
            "{what}: {msg}"
        );
    }
}

// ---- property test: fst matcher and interim index against a naive model --------------------------------

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    allow: bool,
    scope: u8, // 0 exact, 1 subtree, 2 below
}

fn label() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "ab", "x-y", "q_1"]).prop_map(String::from)
}

fn name(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 2..=max).prop_map(|l| l.join("."))
}

fn entry() -> impl Strategy<Value = Entry> {
    (name(4), any::<bool>(), 0u8..3).prop_map(|(name, allow, scope)| Entry { name, allow, scope })
}

fn line(e: &Entry) -> String {
    match (e.allow, e.scope) {
        (false, 0) => format!("{} CNAME .", e.name),
        (false, 1) => e.name.clone(),
        (false, _) => format!("*.{}", e.name),
        (true, 0) => format!("{} CNAME rpz-passthru.", e.name),
        (true, 1) => format!("@@||{}^", e.name),
        (true, _) => format!("*.{} CNAME rpz-passthru.", e.name),
    }
}

/// The model: walk from the name itself up to its top label; the first (deepest) name
/// with an applicable entry decides, allow winning at that depth.
fn model(entries: &[Entry], q: &str) -> (Option<bool>, usize) {
    let labels: Vec<&str> = q.split('.').collect();
    for start in 0..labels.len() {
        let anc = labels[start..].join(".");
        let is_self = start == 0;
        let applies =
            |e: &&Entry| e.name == anc && (if is_self { e.scope != 2 } else { e.scope != 0 });
        let here: Vec<&Entry> = entries.iter().filter(applies).collect();
        if here.iter().any(|e| e.allow) {
            return (Some(true), labels.len() - start);
        }
        if !here.is_empty() {
            return (Some(false), labels.len() - start);
        }
    }
    (None, 0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn fst_and_interim_match_model(entries in prop::collection::vec(entry(), 1..40), queries in prop::collection::vec(name(6), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let text: String = entries.iter().map(|e| line(e) + "\n").collect();
        let (list, _, interim) = build_both(dir.path(), &[("l.txt", &text)], &[], &[]);
        let mut all: Vec<String> = queries;
        all.extend(entries.iter().map(|e| e.name.clone()));
        all.extend(entries.iter().map(|e| format!("z.{}", e.name)));
        all.extend(entries.iter().map(|e| e.name.to_ascii_uppercase()));
        for q in &all {
            let want = model(&entries, &q.to_ascii_lowercase());
            for l in [&list, &interim] {
                let got = match l.lookup(q) {
                    Verdict::Pass => (None, 0),
                    Verdict::Allow(h) => (Some(true), h.depth as usize),
                    Verdict::Block(h) => (Some(false), h.depth as usize),
                };
                prop_assert_eq!(got, want, "query {} (interim: {})", q, l.is_interim());
            }
            prop_assert_eq!(list.lookup(q), interim.lookup(q), "query {}", q);
        }
    }
}

#[test]
fn optional_doh_list_blocks_public_doh_with_nxdomain() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/optional-lists/doh-endpoints.txt");
    let text = fs::read_to_string(src).unwrap();
    let (list, report) = build(dir.path(), &[("doh.txt", &text)], &[], &[]);
    assert!(report.refused.is_empty() && report.skipped.is_empty());
    let Verdict::Block(h) = list.lookup("dns.google") else {
        panic!("dns.google not blocked")
    };
    assert_eq!(list.category(&h), "doh");
    assert_eq!(list.action(&h), Action::Nxdomain);
    assert!(!list.lookup("google.com").is_block());
}

#[test]
fn a_crafted_file_with_valid_checksums_but_a_bad_node_is_refused_not_a_panic() {
    // Found by the compiled_file fuzz target; the checksums are made to match, as a
    // crafted file's would.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/compiled-bad-node.bin"
    );
    let mut b = std::fs::read(path).unwrap();
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let meta_len = u64_at(&b, 16);
    let fst_off = 48 + meta_len + (8 - meta_len % 8) % 8;
    let meta = xxhash_rust::xxh3::xxh3_64(&b[48..48 + meta_len]);
    let body = xxhash_rust::xxh3::xxh3_64(&b[fst_off..]);
    b[32..40].copy_from_slice(&meta.to_le_bytes());
    b[40..48].copy_from_slice(&body.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crafted.fst");
    std::fs::write(&file, &b).unwrap();
    let list = Blocklist::open(&file, true).expect("its checksums match");
    let err = list.check_automaton().unwrap_err().to_string();
    assert!(err.contains("points outside the file"), "{err}");
    // A list of our own passes.
    let (good, _) = build(
        dir.path(),
        &[("l.txt", "evil.top\nscam.example\n")],
        &[],
        &[],
    );
    good.check_automaton().unwrap();
}

/// What a verdict means, in names rather than ids: kind, depth, category, the list
/// that decided it, note. Two lists with different tables compare through this.
fn meaning(l: &Blocklist, q: &str) -> (u8, u8, String, String, Option<String>) {
    let v = l.lookup(q);
    let list = l.list(&v).map(|i| i.name.clone()).unwrap_or_default();
    match v {
        Verdict::Pass => (0, 0, String::new(), list, None),
        Verdict::Allow(h) => (1, h.depth, String::new(), list, None),
        Verdict::Block(h) => (
            2,
            h.depth,
            l.category(&h).to_string(),
            list,
            l.note(&h).map(str::to_string),
        ),
    }
}

/// A chain of deltas from `base` through `steps` (each the full compile of the next
/// lists), as `fanzha publish --delta` makes it, and the overlay after each.
fn chain(base: &Blocklist, steps: &[&Blocklist]) -> Vec<Blocklist> {
    let mut deltas = Vec::new();
    let mut at = base.with_deltas(&[]).unwrap();
    let mut out = Vec::new();
    for (i, new) in steps.iter().enumerate() {
        let mut d = delta::diff(&at, new).unwrap();
        d.base_serial = 100;
        d.from_serial = if i == 0 { 100 } else { 100 + i as u64 };
        d.serial = 101 + i as u64;
        deltas.push(d);
        at = base.with_deltas(&deltas).unwrap();
        out.push(base.with_deltas(&deltas).unwrap());
    }
    out
}

#[test]
fn deltas_over_a_base_answer_as_the_full_compile_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let allow = [("allow.txt", "ok.evil.top\n")];
    let (base, _) = build(
        &d.join("0"),
        &[(
            "loan.txt",
            "# category: loan\nevil.top\nold.top\nkept.top\n",
        )],
        &allow,
        &[],
    );
    // Step 1: an add; an add of a name the base allows; a remove of a base rule; a
    // new list with a new category; a rule with a note that expires.
    let (one, _) = build(
        &d.join("1"),
        &[
            (
                "loan.txt",
                "# category: loan\nevil.top\nnew.top\nok.evil.top\nkept.top\n",
            ),
            (
                "gambling.txt",
                "# category: gambling\nbet.top # case 7 expires=2100-01-01T00:00:00Z\n",
            ),
        ],
        &allow,
        &[],
    );
    // Step 2: a remove of the name step 1 added; the old rule back.
    let (two, _) = build(
        &d.join("2"),
        &[
            (
                "loan.txt",
                "# category: loan\nevil.top\nold.top\nok.evil.top\nkept.top\n",
            ),
            (
                "gambling.txt",
                "# category: gambling\nbet.top # case 7 expires=2100-01-01T00:00:00Z\n",
            ),
        ],
        &allow,
        &[],
    );
    let overlays = chain(&base, &[&one, &two]);
    let queries = [
        "evil.top",
        "x.evil.top",
        "new.top",
        "a.new.top",
        "ok.evil.top",
        "a.ok.evil.top",
        "old.top",
        "kept.top",
        "bet.top",
        "w.bet.top",
        "top",
        "other.top",
    ];
    for (overlay, full) in overlays.iter().zip([&one, &two]) {
        for q in queries {
            assert_eq!(meaning(overlay, q), meaning(full, q), "{q}");
        }
        // The same names, in the same order (values differ only in table ids).
        let names = |l: &Blocklist| l.entries().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(overlay), names(full));
        let (a, b) = (overlay.meta(), full.meta());
        assert_eq!(
            (a.entries, a.block_entries, a.allow_entries),
            (b.entries, b.block_entries, b.allow_entries)
        );
        assert!(overlay.fst_sum() == base.fst_sum() && overlay.fst_sum() != 0);
    }
    let one_o = &overlays[0];
    // The add blocks, in its new category, with its note and expiry.
    assert!(one_o.lookup("new.top").is_block());
    let Verdict::Block(h) = one_o.lookup("w.bet.top") else {
        panic!("bet.top blocks");
    };
    assert_eq!(one_o.category(&h), "gambling");
    assert_eq!(one_o.expires(h.value), Some(4_102_444_800));
    // A name the base allows stays allowed when a delta adds its block.
    assert!(matches!(one_o.lookup("ok.evil.top"), Verdict::Allow(_)));
    // The removed base rule no longer blocks; step 2 takes back step 1's add.
    assert_eq!(one_o.lookup("old.top"), Verdict::Pass);
    assert_eq!(overlays[1].lookup("new.top"), Verdict::Pass);
    assert!(overlays[1].lookup("old.top").is_block());
    assert_eq!(overlays[1].get("new.top"), None);
}

#[test]
fn a_broken_chain_or_a_delta_for_other_tables_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = build(&dir.path().join("0"), &[("l.txt", "a.top\n")], &[], &[]);
    let (new, _) = build(
        &dir.path().join("1"),
        &[
            ("l.txt", "a.top\nb.top\n"),
            ("m.txt", "# category: gambling\nc.top\n"),
        ],
        &[],
        &[],
    );
    let mut d = delta::diff(&base, &new).unwrap();
    d.base_serial = 5;
    d.from_serial = 5;
    d.serial = 6;
    assert!(base.with_deltas(std::slice::from_ref(&d)).is_ok());
    let mut gap = d.clone();
    gap.from_serial = 4;
    assert!(matches!(
        base.with_deltas(&[gap]),
        Err(delta::DeltaError::Chain { .. })
    ));
    let mut tables = d.clone();
    tables.tables_from.categories += 1;
    assert!(matches!(
        base.with_deltas(&[tables]),
        Err(delta::DeltaError::Tables { .. })
    ));
    let mut bad = d.clone();
    bad.set.push(("Not..A.Name".into(), 1));
    assert!(matches!(
        base.with_deltas(&[bad]),
        Err(delta::DeltaError::Bad { .. })
    ));
    let mut far = d;
    far.set.push((
        "far.top".into(),
        value::pack(value::BLOCK_SELF, 200, 0, 0, 0),
    ));
    assert!(matches!(
        base.with_deltas(&[far]),
        Err(delta::DeltaError::Bad { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn a_chain_of_deltas_matches_the_full_compile_of_each_step(
        steps in prop::collection::vec(prop::collection::vec(entry(), 1..25), 2..5),
        queries in prop::collection::vec(name(6), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let lists: Vec<Blocklist> = steps
            .iter()
            .enumerate()
            .map(|(i, es)| {
                let text: String = es.iter().map(|e| line(e) + "\n").collect();
                build(&dir.path().join(i.to_string()), &[("l.txt", &text)], &[], &[]).0
            })
            .collect();
        let rest: Vec<&Blocklist> = lists[1..].iter().collect();
        let overlays = chain(&lists[0], &rest);
        for (k, (overlay, full)) in overlays.iter().zip(&rest).enumerate() {
            let mut all = queries.clone();
            for es in &steps {
                all.extend(es.iter().map(|e| e.name.clone()));
                all.extend(es.iter().map(|e| format!("z.{}", e.name)));
            }
            for q in &all {
                prop_assert_eq!(meaning(overlay, q), meaning(full, q), "step {} query {}", k + 1, q);
            }
            prop_assert_eq!(overlay.meta().entries, full.meta().entries);
        }
    }
}

/// Compile `files` (name, text, what its exceptions may do) from one block directory.
fn build_with_exceptions(
    dir: &Path,
    files: &[(&str, &str, compile::Exceptions)],
) -> (Blocklist, CompileReport) {
    let b = dir.join("block");
    fs::create_dir_all(&b).unwrap();
    let mut overrides = Vec::new();
    for (n, t, e) in files {
        fs::write(b.join(n), t).unwrap();
        overrides.push(compile::ListOverride {
            path: b.join(n),
            exceptions: *e,
            ..Default::default()
        });
    }
    let spec = CompileSpec {
        dirs: vec![b],
        overrides,
        ..Default::default()
    };
    let out = dir.join("out.fst");
    let report = compile::compile(&spec, &out).unwrap();
    (Blocklist::open(&out, true).unwrap(), report)
}

#[test]
fn a_fetched_list_cannot_unblock_what_the_district_blocks() {
    use compile::Exceptions::{Drop, Keep, Own};
    let district = "# category: loan\nevil-loan.top\nlocal-ok.top\n@@||fine.evil-loan.top^\n";
    let public = "||evil-loan.top^\n@@||evil-loan.top^\n@@||local-ok.top^\n||ads.top^\n";
    for mode in [Drop, Own] {
        let dir = tempfile::tempdir().unwrap();
        let (l, report) = build_with_exceptions(
            dir.path(),
            &[("fraud.txt", district, Keep), ("public.txt", public, mode)],
        );
        // The district's names stay blocked, whatever the public list excepts.
        for name in ["evil-loan.top", "www.evil-loan.top", "local-ok.top"] {
            let v = l.lookup(name);
            assert!(v.is_block(), "{mode:?}: {name} must stay blocked");
            assert_eq!(
                l.list(&v).map(|i| i.name.as_str()),
                Some("fraud.txt"),
                "{mode:?}: {name}"
            );
        }
        // The district's own exception keeps its power.
        assert!(
            matches!(l.lookup("fine.evil-loan.top"), Verdict::Allow(_)),
            "{mode:?}"
        );
        assert!(l.lookup("ads.top").is_block());
        if mode == Drop {
            // Dropped exceptions are counted and named, file and line.
            assert_eq!(report.skipped.get("source-exception"), Some(&2));
            let lines: Vec<(String, u64)> = report
                .examples
                .iter()
                .filter(|e| e.reason == "source-exception")
                .map(|e| (e.file.clone(), e.line))
                .collect();
            assert_eq!(
                lines,
                vec![("public.txt".to_string(), 2), ("public.txt".to_string(), 3)]
            );
        } else {
            assert_eq!(report.skipped.get("source-exception"), None);
        }
    }
}

#[test]
fn a_fetched_lists_own_exceptions_cancel_only_its_own_rules() {
    use compile::Exceptions::Own;
    let dir = tempfile::tempdir().unwrap();
    let public = "||gone.top^\n@@||gone.top^\n\
                  ||sub.wide.top^\n@@||wide.top^\n\
                  ||carved.top^\n@@||safe.carved.top^\n";
    let (l, report) = build_with_exceptions(dir.path(), &[("public.txt", public, Own)]);
    assert_eq!(l.lookup("gone.top"), Verdict::Pass);
    assert_eq!(l.lookup("a.sub.wide.top"), Verdict::Pass);
    // A carve-out inside its own wider rule would need an allow that reaches other
    // lists: the wider rule keeps blocking, and the report says so.
    assert!(l.lookup("safe.carved.top").is_block());
    assert_eq!(
        report.lists[0].warnings.get("exception-inside-rule"),
        Some(&1)
    );
    // No exception of its own is left in the compiled list to reach anyone else's.
    assert_eq!(l.meta().allow_entries, 0);
}

#[test]
fn an_rpz_root_wildcard_blocks_every_name_no_deeper_rule_decides() {
    let zone = "$ORIGIN rpz.local.\n@ 60 SOA ns.rpz.local. admin.rpz.local. 1 3600 600 86400 60\n\
                *.rpz.local. CNAME .\nbank.example CNAME rpz-passthru.\n\
                *.bank.example CNAME rpz-passthru.\nevil.example CNAME rpz-drop.\n";
    let dir = tempfile::tempdir().unwrap();
    let (list, report, interim) = build_both(dir.path(), &[("garden.rpz", zone)], &[], &[]);
    for l in [&list, &interim] {
        for name in ["anything.example", "com", "a.b.c.d.example.org"] {
            let Verdict::Block(hit) = l.lookup(name) else {
                panic!("{name} must be blocked (interim: {})", l.is_interim());
            };
            assert_eq!(hit.rule(name), ".");
            assert_eq!(l.note(&hit), Some("rpz=nxdomain"));
        }
        assert!(matches!(l.lookup("bank.example"), Verdict::Allow(_)));
        assert!(matches!(l.lookup("www.bank.example"), Verdict::Allow(_)));
        let Verdict::Block(hit) = l.lookup("evil.example") else {
            panic!("evil.example");
        };
        assert_eq!(l.note(&hit), Some("rpz=drop"), "the deeper rule decides");
        assert_eq!(l.lookup(""), Verdict::Pass);
    }
    assert_eq!(report.lists[0].warnings.get("root-wildcard"), Some(&1));
    assert!(report.refused.is_empty(), "{:?}", report.refused);

    // A fetched source may not block every name.
    let dir = tempfile::tempdir().unwrap();
    let (l, report) =
        build_with_exceptions(dir.path(), &[("src.rpz", zone, compile::Exceptions::Drop)]);
    assert!(!l.lookup("anything.example").is_block());
    assert!(l.lookup("evil.example").is_block());
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert_eq!(report.refused[0].reason, "root-wildcard");
    assert_eq!(report.refused[0].line, 3);
}

/// A URL with a path is a rule for that page, not a block of its host: the host
/// stays unblocked (even when it is protected), the rule keeps its file's category,
/// action and line, the interim index and a delta carry it, and an allowlist cannot
/// hold one.
#[test]
fn a_url_with_a_path_is_a_path_rule_not_a_host_block() {
    use super::paths::{PathMatch, PathVerdict, Schemes};
    let d = tempfile::tempdir().unwrap();
    let lists = [(
        "urls.txt",
        "# category: phishing\n# action: shadow\nhttp://sites.example/shop-1/pay  # case 17\n\
         ||sites.example/shop-2/^\nhttps://docs.qq.com/form/*\nhttp://whole.example/\n",
    )];
    let (list, report, interim) = build_both(
        d.path(),
        &lists,
        &[("ok.txt", "http://sites.example/ok\n")],
        &["qq.com"],
    );
    assert!(
        report.refused.is_empty(),
        "a path rule is no guardrail matter"
    );
    assert_eq!(report.path_rules, 3);
    assert_eq!(report.path_hosts["sites.example"], 2);
    let ok = report.lists.iter().find(|l| l.name == "ok.txt").unwrap();
    assert_eq!(ok.skipped.get("path-in-allowlist"), Some(&1));
    assert_eq!(list.lookup("sites.example"), Verdict::Pass);
    assert_eq!(list.lookup("docs.qq.com"), Verdict::Pass);
    assert!(list.lookup("whole.example").is_block(), "no path: the host");
    assert_eq!(interim.meta().paths, list.meta().paths);
    let h = list.paths().host("sites.example").unwrap();
    assert_eq!(h.rules[0].path, "/shop-1/pay");
    assert_eq!(h.rules[0].how, PathMatch::Exact);
    assert_eq!(h.rules[0].schemes, Schemes::Http);
    assert_eq!((h.rules[0].line, h.rules[0].action), (3, Action::Shadow));
    assert_eq!(h.rules[0].category, "phishing");
    assert_eq!(h.rules[0].note.as_deref(), Some("case 17"));
    assert!(h.subtree && h.rules[1].subtree && !h.rules[0].subtree);
    assert!(matches!(
        list.paths().check("a.sites.example", "/shop-2/?x", true, 0),
        PathVerdict::Hit(..)
    ));
    assert_eq!(
        list.paths()
            .check("a.sites.example", "/shop-1/pay", false, 0),
        PathVerdict::Relay,
        "a URL's rule is for its own host"
    );

    // A publish that adds a path rule reaches the appliance as a delta.
    let d2 = tempfile::tempdir().unwrap();
    let mut more = lists[0].1.to_string();
    more.push_str("http://sites.example/shop-9/\n");
    let new = build(d2.path(), &[("urls.txt", &more)], &[], &["qq.com"]).0;
    let delta = delta::diff(&list, &new).unwrap();
    assert!(delta.set.is_empty() && delta.paths.is_some());
    let over = list.with_deltas(&[delta]).unwrap();
    assert!(matches!(
        over.paths().check("sites.example", "/shop-9/", false, 0),
        PathVerdict::Hit(..)
    ));
}

/// `url_paths = "host"`: a list whose URLs are on hosts that are all fraud keeps
/// blocking the hosts, as before path rules.
#[test]
fn a_list_set_to_url_paths_host_blocks_the_hosts_of_its_urls() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("block");
    fs::create_dir_all(&b).unwrap();
    let file = b.join("urls.txt");
    fs::write(
        &file,
        "app.scam.top/login?id=1  # case 5\n||kit.scam.top/x^\n",
    )
    .unwrap();
    let spec = CompileSpec {
        dirs: vec![b],
        overrides: vec![compile::ListOverride {
            path: file,
            url_paths_host: Some(true),
            ..Default::default()
        }],
        ..Default::default()
    };
    let out = d.path().join("out.fst");
    let report = compile::compile(&spec, &out).unwrap();
    let list = Blocklist::open(&out, true).unwrap();
    assert_eq!(report.path_rules, 0);
    assert_eq!(report.lists[0].warnings.get("url-path-as-host"), Some(&2));
    assert!(list.lookup("app.scam.top").is_block());
    assert!(list.lookup("a.kit.scam.top").is_block());
    let Verdict::Block(h) = list.lookup("app.scam.top") else {
        unreachable!()
    };
    assert_eq!(list.note(&h), Some("case 5"));
    assert!(list.paths().is_empty());
}
