//! Blocklist engine against real lists, real files and the real `fanzha` binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fanzha::blocklist::{self, Blocklist, CompileSpec, Handle, Loader, Verdict};
use fanzha::config::{BlocklistConfig, Config};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fanzha() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fanzha"))
}

#[test]
fn every_public_list_compiles_with_skips_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all.fst");
    let r = compile_dir(fixtures().join("blocklists"), &out);
    let by_name = |n: &str| {
        r.lists
            .iter()
            .find(|l| l.name == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    // Every file was read and yielded rules.
    let files = fs::read_dir(fixtures().join("blocklists")).unwrap().count();
    assert_eq!(r.lists.len(), files);
    for l in &r.lists {
        if l.name != "gaso-scam.ips.txt" {
            assert!(l.rules > 0, "{} gave no rule", l.name);
        }
    }
    // Plain domain list: every line is a rule (8,527 in SOURCES.md).
    let plain = by_name("blocklistproject-scam.domains.txt");
    assert_eq!(plain.rules + plain.refused, 8527);
    assert!(plain.skipped.is_empty(), "{:?}", plain.skipped);
    // IP list: all skipped as addresses.
    assert_eq!(
        by_name("gaso-scam.ips.txt").skipped.get("ip-address"),
        Some(&7)
    );
    // Tencent mixes IPs with names.
    assert!(
        by_name("tencent-qq-urlsec.txt")
            .skipped
            .get("ip-address")
            .copied()
            .unwrap_or(0)
            > 0
    );
    // RPZ: SOA and NS are zone structure; each domain gives two records.
    let rpz = by_name("blocklistproject-scam.rpz.zone");
    assert_eq!(rpz.skipped.get("zone-record"), Some(&2));
    assert_eq!(rpz.rules + rpz.refused, 17054);
    // adblock regex rules and label wildcards are skipped and counted.
    let anti = by_name("anti-ad-easylist.head.txt");
    assert!(
        anti.skipped.get("adblock-modifier").copied().unwrap_or(0)
            + anti.skipped.get("regex").copied().unwrap_or(0)
            > 0
    );
    assert!(
        by_name("durablenapkin-scam.adguard.txt")
            .skipped
            .get("adblock-pattern")
            .copied()
            .unwrap_or(0)
            >= 5
    );
    // uBO $all is kept with a warning.
    assert!(
        by_name("gaso-scam.ubo.txt")
            .warnings
            .get("modifier-ignored")
            .copied()
            .unwrap_or(0)
            > 10_000
    );
    // Guardrails fired on the platform hosts GASO lists (US.COM, myshopify.com).
    assert!(
        r.refused
            .iter()
            .any(|f| f.name == "us.com" && f.reason == "public-suffix"),
        "{:?}",
        &r.refused[..r.refused.len().min(5)]
    );
    // Examples carry file:line.
    assert!(r.examples.iter().all(|e| e.line > 0 && !e.file.is_empty()));
    let list = Blocklist::open(&out, true).unwrap();
    assert_eq!(list.len() as u64, r.entries);
    assert!(list.lookup("www.004l.com").is_block());
}

#[test]
fn a_small_memory_budget_sorts_on_disk_and_writes_the_same_list() {
    // The fixtures hold ~210k rules (~8 MB as keys and records): a 1 MiB budget makes
    // the compile spill about eight sorted runs and merge them.
    let dir = tempfile::tempdir().unwrap();
    let mem = dir.path().join("mem.fst");
    let a = compile_dir(fixtures().join("blocklists"), &mem);
    let disk_dir = dir.path().join("small");
    fs::create_dir_all(&disk_dir).unwrap();
    let disk = disk_dir.join("disk.fst");
    let b = compile_dir_within(fixtures().join("blocklists"), &disk, 1 << 20);
    assert_eq!(
        (a.entries, a.block_entries, a.allow_entries),
        (b.entries, b.block_entries, b.allow_entries)
    );
    assert_eq!(a.per_category, b.per_category);
    assert_eq!(a.spilled_runs, 0);
    assert!(b.spilled_runs >= 4, "{} runs", b.spilled_runs);
    // Same fst length and checksum in the headers: the same map, byte for byte.
    let (ha, hb) = (fs::read(&mem).unwrap(), fs::read(&disk).unwrap());
    assert_eq!(ha[24..32], hb[24..32]);
    assert_eq!(ha[40..48], hb[40..48]);
    // The temporary runs are gone.
    let left: Vec<_> = fs::read_dir(&disk_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("disk.fst")]);
}

/// Compile one directory with the default settings into `out`.
fn compile_dir(src: PathBuf, out: &Path) -> blocklist::CompileReport {
    compile_dir_within(src, out, CompileSpec::default().memory_budget)
}

/// [`compile_dir`] with a memory budget for the sort.
fn compile_dir_within(src: PathBuf, out: &Path, memory_budget: usize) -> blocklist::CompileReport {
    blocklist::compile(
        &CompileSpec {
            dirs: vec![src],
            memory_budget,
            ..Default::default()
        },
        out,
    )
    .unwrap()
}

/// Poll `done` every 20 ms for at most 5 s.
fn wait_until(done: impl Fn() -> bool) {
    let t = Instant::now();
    while !done() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn popular_hosts() -> Vec<String> {
    let text =
        fs::read_to_string(fixtures().join("popular/crux-202607-top10k-hostnames.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(String::from)
        .collect()
}

#[test]
fn sample_lists_block_no_popular_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = CompileSpec {
        dirs: vec![root.join("blocklists")],
        ..Default::default()
    };
    let out = dir.path().join("s.fst");
    let r = blocklist::compile(&spec, &out).unwrap();
    assert!(r.refused.is_empty(), "{:?}", r.refused);
    assert!(r.skipped.is_empty(), "{:?}", r.examples);
    for cat in [
        "loan",
        "task-scam",
        "investment",
        "impersonation",
        "impersonation-boss",
        "fake-service",
        "phishing",
    ] {
        assert!(
            r.per_category.get(cat).copied().unwrap_or(0) >= 20,
            "category {cat}: {:?}",
            r.per_category
        );
    }
    let list = Blocklist::open(&out, true).unwrap();
    let hosts = popular_hosts();
    assert_eq!(hosts.len(), 10_000);
    let blocked: Vec<&String> = hosts.iter().filter(|h| list.lookup(h).is_block()).collect();
    assert!(blocked.is_empty(), "popular names blocked: {blocked:?}");
}

fn loader_for(dir: &Path, dirs: Vec<PathBuf>, compiled: Option<PathBuf>) -> Arc<Loader> {
    let mut cfg: BlocklistConfig = Config::embedded().blocklist;
    cfg.dirs = dirs;
    cfg.allow_dirs = vec![];
    cfg.compiled = compiled;
    cfg.state_dir = dir.join("state");
    cfg.debounce = Duration::from_millis(200);
    Arc::new(Loader::new(cfg, Arc::new(Handle::default())))
}

#[test]
fn an_edit_is_seen_while_lookups_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let lists = dir.path().join("lists");
    fs::create_dir_all(&lists).unwrap();
    let base: String = (0..20_000).map(|i| format!("scam{i}.top\n")).collect();
    fs::write(lists.join("a.txt"), &base).unwrap();
    let loader = loader_for(dir.path(), vec![lists.clone()], None);
    loader.reload(false).unwrap();
    let _w = blocklist::spawn_watcher(loader.clone()).unwrap();
    let handle = loader.handle().clone();

    let stop = Arc::new(AtomicBool::new(false));
    let seen_new = Arc::new(AtomicU64::new(0));
    let lookups = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, seen_new, lookups, failures, handle) = (
            stop.clone(),
            seen_new.clone(),
            lookups.clone(),
            failures.clone(),
            handle.clone(),
        );
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let list = handle.load();
                // An old entry must be blocked in every snapshot, before and after.
                if !list
                    .lookup(&format!("www.scam{}.top", i % 20_000))
                    .is_block()
                {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                if list.lookup("new-entry.top").is_block() && seen_new.load(Ordering::Relaxed) == 0
                {
                    seen_new.store(1, Ordering::Relaxed);
                }
                lookups.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let before = lookups.load(Ordering::Relaxed);
    assert!(before > 0);
    // How fast is measured by the reload benchmark (benches/server/reload.sh); here
    // only that it happens, with a deadline no loaded machine comes near.
    let edited = Instant::now();
    fs::write(lists.join("a.txt"), format!("{base}new-entry.top\n")).unwrap();
    while seen_new.load(Ordering::Relaxed) == 0 && edited.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(seen_new.load(Ordering::Relaxed), 1, "new entry never seen");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "a lookup missed an old entry during the swap"
    );
    assert!(
        lookups.load(Ordering::Relaxed) > before,
        "lookups stalled during the reload"
    );
    assert!(handle.stats.ok.load(Ordering::Relaxed) >= 2);
}

#[test]
fn corrupt_compiled_file_keeps_the_old_list() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("l.txt"), "evil.top\nbad.top\n").unwrap();
    let drop_dir = dir.path().join("push");
    fs::create_dir_all(&drop_dir).unwrap();
    let compiled = drop_dir.join("fraud.fst");
    compile_dir(src.clone(), &compiled);

    let loader = loader_for(dir.path(), vec![], Some(compiled.clone()));
    loader.reload(false).unwrap();
    let handle = loader.handle().clone();
    let _w = blocklist::spawn_watcher(loader.clone()).unwrap();
    assert!(handle.load().lookup("evil.top").is_block());

    // Drop a corrupt file in place of the list (as a botched copy would).
    let good = fs::read(&compiled).unwrap();
    let tmp = drop_dir.join(".incoming");
    fs::write(&tmp, &good[..good.len() / 2]).unwrap();
    fs::rename(&tmp, &compiled).unwrap();
    wait_until(|| handle.stats.failed.load(Ordering::Relaxed) != 0);
    assert_eq!(
        handle.stats.failed.load(Ordering::Relaxed),
        1,
        "the corrupt file was not noticed"
    );
    assert!(
        handle.load().lookup("evil.top").is_block(),
        "old list must keep serving"
    );

    // Overwriting in place with junk must not disturb the mapped snapshot either:
    // fanzha maps its own copy, never the operator's file.
    fs::write(&compiled, b"garbage").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(handle.load().lookup("evil.top").is_block());

    // A good file is picked up again.
    fs::write(src.join("l.txt"), "evil.top\nbad.top\nworse.top\n").unwrap();
    let staged = drop_dir.join(".staged.fst");
    compile_dir(src, &staged);
    fs::rename(&staged, &compiled).unwrap();
    wait_until(|| handle.load().lookup("worse.top").is_block());
    assert!(handle.load().lookup("worse.top").is_block());
}

#[test]
fn cli_compile_and_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.fst");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = fanzha()
        .arg("compile")
        .arg(root.join("blocklists"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("blocked names by category"), "{stdout}");
    assert!(stdout.contains("loan.txt"), "{stdout}");
    let first_loan = fs::read_to_string(root.join("blocklists/loan.txt"))
        .unwrap()
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .to_string();
    let o = fanzha()
        .args(["lookup", "--compiled"])
        .arg(&out)
        .arg(format!("www.{first_loan}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("BLOCKED")
            && stdout.contains("category loan")
            && stdout.contains("loan.txt"),
        "{stdout}"
    );
    let o = fanzha()
        .args(["lookup", "--compiled"])
        .arg(&out)
        .arg("www.bilibili.com")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let o = fanzha()
        .args(["lookup", "--compiled"])
        .arg(&out)
        .arg("bad..name")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // lookup on the config's lists (compiled on the fly) gives the same verdict
    let o = fanzha()
        .current_dir(root)
        .args(["lookup", &format!("a.{first_loan}")])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for sub in ["compile", "lookup", "check-config"] {
        let o = fanzha().args([sub, "--help"]).output().unwrap();
        assert!(o.status.success());
    }
}

#[test]
fn cli_compile_survives_malformed_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&Path]| {
        let o = fanzha().arg("compile").args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let out = d.join("o.fst");

    // binary junk: skipped lines, not a failure
    let junk = d.join("junk");
    fs::create_dir_all(&junk).unwrap();
    let bytes: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(junk.join("blob.bin"), &bytes).unwrap();
    let (code, text) = run(&[&junk, Path::new("-o"), &out]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("skipped lines by reason"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    // a 100 MB single line
    let long = d.join("long");
    fs::create_dir_all(&long).unwrap();
    let mut big = vec![b'a'; 100 * 1024 * 1024];
    big.extend_from_slice(b"\nok-after-long-line.top\n");
    fs::write(long.join("one-line.txt"), &big).unwrap();
    drop(big);
    let (code, text) = run(&[&long, Path::new("-o"), &out]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("line-too-long"), "{text}");
    assert!(
        Blocklist::open(&out, true)
            .unwrap()
            .lookup("ok-after-long-line.top")
            .is_block()
    );

    // an empty directory: an empty list and a warning
    let empty = d.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let (code, text) = run(&[&empty, Path::new("-o"), &d.join("empty.fst")]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("no list files"), "{text}");
    // ... and compiling it over a bigger list is refused by the drop guard, unless forced
    let (code, text) = run(&[&empty, Path::new("-o"), &out]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("keeping the old list"), "{text}");
    let (code, text) = run(&[&empty, Path::new("-o"), &out, Path::new("--force")]);
    assert_eq!(code, Some(0), "{text}");

    // a missing directory: a clear error
    let (code, text) = run(&[&d.join("nope"), Path::new("-o"), &out]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("does not exist"), "{text}");

    // an unreadable file: a symlink loop (unreadable even for root), then mode 000
    let unread = d.join("unreadable");
    fs::create_dir_all(&unread).unwrap();
    std::os::unix::fs::symlink(unread.join("loop.txt"), unread.join("loop.txt")).unwrap();
    let (code, text) = run(&[&unread, Path::new("-o"), &out]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("loop.txt"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    // output into a directory that does not exist: a clear error
    let (code, text) = run(&[&empty, Path::new("-o"), &d.join("no/such/dir/o.fst")]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("cannot write compiled list"), "{text}");
}

#[test]
fn lookup_does_not_allocate_per_call_shape() {
    // Pin the zero-copy API: a verdict borrows nothing and the rule is a slice of the query.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("l.txt"), "evil.top\n").unwrap();
    let out = dir.path().join("o.fst");
    compile_dir(src, &out);
    let list = Blocklist::open(&out, true).unwrap();
    let q = "A.B.Evil.Top.";
    let Verdict::Block(h) = list.lookup(q) else {
        panic!()
    };
    let rule = h.rule(q);
    assert_eq!(rule, "Evil.Top");
    assert!(std::ptr::eq(rule.as_ptr(), q[4..].as_ptr()));
}

#[test]
fn a_compiled_list_in_the_state_directory_is_watched_too() {
    // docs/operating.md's deployment: the pushed file lives in /var/lib/fanzha beside
    // fanzha's own snapshots.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("l.txt"), "evil.top\n").unwrap();
    let state = dir.path().join("state");
    fs::create_dir_all(&state).unwrap();
    let compiled = state.join("fraud.fst");
    compile_dir(src.clone(), &compiled);
    let loader = loader_for(dir.path(), vec![], Some(compiled.clone()));
    loader.reload(false).unwrap();
    let handle = loader.handle().clone();
    let _w = blocklist::spawn_watcher(loader.clone()).unwrap();
    fs::write(src.join("l.txt"), "evil.top\nworse.top\n").unwrap();
    let incoming = state.join("incoming.fst");
    compile_dir(src, &incoming);
    fs::rename(&incoming, &compiled).unwrap();
    wait_until(|| handle.load().lookup("worse.top").is_block());
    assert!(
        handle.load().lookup("worse.top").is_block(),
        "the renamed file was not picked up"
    );
    // fanzha's own snapshot writes did not cause reload loops
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        handle.stats.ok.load(Ordering::Relaxed) <= 3,
        "{}",
        handle.stats.ok.load(Ordering::Relaxed)
    );
}
