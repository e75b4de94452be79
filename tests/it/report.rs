//! Hit reporting end to end: the real binary, a test platform on loopback that checks
//! the signature, and the on-disk spool across platform outages and a SIGKILL.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::rr::RecordType;

fn setup(dir: &std::path::Path, n: usize, platform: SocketAddr, extra: &str) -> String {
    let lists = dir.join("lists");
    std::fs::create_dir_all(&lists).unwrap();
    let names: String = (0..n).map(|i| format!("r{i}.scam.test\n")).collect();
    std::fs::write(lists.join("l.txt"), format!("# category: loan\n{names}")).unwrap();
    format!(
        "[blocklist]\ndirs = [\"lists\"]\nallow_dirs = []\n[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n\
         [report]\nurl = \"http://{platform}/hits\"\nsecret = \"{SECRET}\"\nappliance = \"test-appliance\"\nspool_dir = \"spool\"\n\
         dedup_window = 0\nmax_backoff = 1\n{extra}\n[[places]]\ncidr = \"127.0.0.0/8\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\n"
    )
}

#[test]
fn every_hit_arrives_across_a_platform_outage() {
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let f = Fanzha::start(dir.path(), &setup(dir.path(), 40_000, platform.addr, ""));
    query_names(&f, 0..20_000);
    let got = platform.wait_names(20_000, Duration::from_secs(60));
    assert_eq!(
        got,
        20_000,
        "first run: {got} of 20000 names arrived\n{}",
        f.log_text()
    );
    assert_eq!(platform.bad_signatures.load(Ordering::Relaxed), 0);
    let ids_first = platform.ids.lock().unwrap().len();
    assert!(ids_first >= 20_000);

    // the platform goes away during the second run, and comes back on the same port
    let addr = platform.stop();
    query_names(&f, 20_000..40_000);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, m) = f.http_get("/metrics");
    assert!(m.contains("fanzha_report_spool_bytes"), "{m}");
    let platform = TestPlatform::start(&addr.to_string());
    let got = platform.wait_names(20_000, Duration::from_secs(60));
    assert_eq!(
        got,
        20_000,
        "second run: {got} of 20000 names arrived after the outage\n{}",
        f.log_text()
    );
    let (_, m) = f.http_get("/metrics");
    assert!(
        m.contains("fanzha_report_events_total{outcome=\"sent\"}"),
        "{m}"
    );
}

#[test]
fn sigkill_loses_nothing_that_was_spooled_and_a_torn_tail_is_skipped() {
    let platform = TestPlatform::start("127.0.0.1:0");
    platform.status.store(503, Ordering::Relaxed); // down: everything stays spooled
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), 5_000, platform.addr, "");
    let mut f = Fanzha::start(dir.path(), &toml);
    query_names(&f, 0..5_000);
    // wait until the spool holds every event (each batch is fsynced before it counts)
    let spool = dir.path().join("spool");
    let t = Instant::now();
    let spooled = || -> usize {
        std::fs::read_dir(&spool)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
                    .map(|e| {
                        std::fs::read_to_string(e.path())
                            .unwrap_or_default()
                            .lines()
                            .count()
                    })
                    .sum()
            })
            .unwrap_or(0)
    };
    while spooled() < 5_000 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(spooled(), 5_000);
    f.child.kill().unwrap(); // SIGKILL
    f.child.wait().unwrap();
    // a crash in the middle of a write leaves half a record at the end of a segment
    let mut segs: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("seg-"))
        .collect();
    segs.sort();
    let mut last = std::fs::OpenOptions::new()
        .append(true)
        .open(segs.last().unwrap())
        .unwrap();
    last.write_all(b"0badc0de {\"id\":\"torn").unwrap();
    drop(last);
    platform.status.store(200, Ordering::Relaxed);
    drop(f);
    let f = Fanzha::start(dir.path(), &toml);
    let got = platform.wait_names(5_000, Duration::from_secs(60));
    assert_eq!(
        got,
        5_000,
        "{got} of 5000 spooled events arrived after the restart\n{}",
        f.log_text()
    );
    assert!(f.log_text().contains("torn_records=1"), "{}", f.log_text());
}

#[test]
fn a_bad_platform_never_slows_blocked_answers_and_the_cap_holds() {
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(
        dir.path(),
        30_000,
        platform.addr,
        "spool_max_bytes = 1048576\n",
    );
    let f = Fanzha::start(dir.path(), &toml);
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1500];
    let mut time_one = |i: usize| -> Duration {
        let q = make_query(&format!("r{i}.scam.test."), RecordType::A, false)
            .to_vec()
            .unwrap();
        let t = Instant::now();
        s.send_to(&q, f.dns).unwrap();
        s.recv_from(&mut buf).expect("answered");
        t.elapsed()
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let base = median((0..2_000).map(&mut time_one).collect());
    // Each way of failing is held until fanzha has posted to the platform in it at
    // least once (bounded), with blocked queries timed all the while.
    let mut next = 2_000;
    for mode in [400u16, 500, 1, 0] {
        let before = platform.posts.load(Ordering::Relaxed);
        platform.status.store(mode, Ordering::Relaxed);
        let start = Instant::now();
        let mut times = Vec::new();
        while times.len() < 2_000
            || (platform.posts.load(Ordering::Relaxed) == before
                && start.elapsed() < Duration::from_secs(15))
        {
            times.push(time_one(2_000 + next % 8_000));
            next += 1;
        }
        assert!(
            platform.posts.load(Ordering::Relaxed) > before,
            "fanzha stopped trying the platform (mode {mode})\n{}",
            f.log_text()
        );
        let m = median(times);
        assert!(
            m < base * 3 + Duration::from_micros(300),
            "mode {mode}: median {m:?} against {base:?} with a good platform"
        );
    }
    // the cap: a platform that hangs, 22k more hits, the spool stays under 1 MiB
    query_names(&f, 10_000..30_000);
    std::thread::sleep(Duration::from_millis(1000));
    let bytes: u64 = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(bytes <= 1_048_576, "spool at {bytes} bytes");
    let (_, m) = f.http_get("/metrics");
    let dropped = m
        .lines()
        .find(|l| l.starts_with("fanzha_report_events_total{outcome=\"dropped_cap\"}"))
        .unwrap_or("");
    assert!(!dropped.ends_with(" 0") && !dropped.is_empty(), "{m}");
    let dead = m
        .lines()
        .find(|l| l.starts_with("fanzha_report_events_total{outcome=\"dead_letter\"}"))
        .unwrap_or("");
    assert!(
        !dead.ends_with(" 0"),
        "a 400 sends the batch to the dead-letter file: {dead}"
    );
    let _ = platform.stop();
}

#[test]
fn after_sighup_hit_events_carry_the_new_place() {
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let f = Fanzha::start(dir.path(), &setup(dir.path(), 10, platform.addr, ""));
    let street = |n: &str| {
        let m = platform.streets.lock().unwrap();
        m.get(n).or_else(|| m.get(n.trim_end_matches('.'))).cloned()
    };
    query_names(&f, 0..1);
    assert_eq!(
        platform.wait_names(1, Duration::from_secs(20)),
        1,
        "{}",
        f.log_text()
    );
    assert_eq!(street("r0.scam.test.").as_deref(), Some("西兴街道"));
    // The community moves to another street: the config changes, SIGHUP.
    let cfg = dir.path().join("fanzha.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("西兴街道", "长河街道")).unwrap();
    f.signal("HUP");
    assert!(
        f.wait_log("blocklist reloaded", Duration::from_secs(20)),
        "{}",
        f.log_text()
    );
    query_names(&f, 1..2);
    assert_eq!(
        platform.wait_names(2, Duration::from_secs(20)),
        2,
        "{}",
        f.log_text()
    );
    assert_eq!(
        street("r1.scam.test.").as_deref(),
        Some("长河街道"),
        "the event after SIGHUP carries the new place"
    );
}

#[test]
fn a_reload_moves_the_reports_to_a_new_platform_url_and_secret() {
    let (old, new) = (
        TestPlatform::start("127.0.0.1:0"),
        TestPlatform::start("127.0.0.1:0"),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = Fanzha::start(dir.path(), &setup(dir.path(), 10, old.addr, ""));
    query_names(&f, 0..1);
    assert_eq!(old.wait_names(1, Duration::from_secs(20)), 1);
    let cfg = dir.path().join("fanzha.toml");
    let first = std::fs::read_to_string(&cfg).unwrap();
    // Another URL and another secret: the new platform sees the new signature (and
    // refuses it: it knows the test secret only), nothing goes to the old one.
    let moved = first.replace(&old.addr.to_string(), &new.addr.to_string());
    std::fs::write(&cfg, moved.replace(SECRET, "another-secret-0123456789")).unwrap();
    f.signal("HUP");
    assert!(
        f.wait_log("reports now go here", Duration::from_secs(10)),
        "{}",
        f.log_text()
    );
    query_names(&f, 1..2);
    let t = Instant::now();
    while new.bad_signatures.load(Ordering::Relaxed) == 0 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        new.bad_signatures.load(Ordering::Relaxed) > 0,
        "{}",
        f.log_text()
    );
    // The secret put right: the event kept in the spool arrives, signed.
    std::fs::write(&cfg, &moved).unwrap();
    f.signal("HUP");
    assert_eq!(
        new.wait_names(1, Duration::from_secs(30)),
        1,
        "{}",
        f.log_text()
    );
    assert_eq!(
        old.names.lock().unwrap().len(),
        1,
        "nothing more to the old URL"
    );
    // No restart was needed for any of it.
    let (_, m) = f.http_get("/metrics");
    assert!(m.contains("fanzha_config_restart_pending 0"), "{m}");
}

/// Wait until the ops endpoint's `path` contains `needle`.
fn wait_ops(f: &Fanzha, path: &str, needle: &str, timeout: Duration) -> String {
    let t = Instant::now();
    loop {
        let (_, body) = f.http_get(path);
        if body.contains(needle) || t.elapsed() > timeout {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// fanzha in a private mount namespace (a user namespace too, so that this works
/// without root) where `mount` (a shell command, `$SPOOL` the spool directory) has
/// been run first. Nothing outside the namespace sees the mount.
fn start_with_mount(dir: &std::path::Path, toml: &str, mount: &str) -> Fanzha {
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let script = format!(
        "SPOOL='{}'; {mount} || {{ echo 'fanzha test: mount failed' >&2; exit 97; }}; exec \"$0\" \"$@\"",
        spool.display()
    );
    Fanzha::start_under(dir, toml, &["unshare", "-Urm", "sh", "-c", &script])
}

#[test]
fn a_full_disk_degrades_reporting_not_dns_and_nothing_is_lost() {
    // The spool is a 1 MiB tmpfs, filled up before fanzha starts.
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), 300, platform.addr, "");
    let f = start_with_mount(
        dir.path(),
        &toml,
        "mount -t tmpfs -o size=1m tmpfs \"$SPOOL\" && \
         (dd if=/dev/zero of=\"$SPOOL/filler\" bs=4k 2>/dev/null; true)",
    );
    query_names(&f, 0..300);
    // DNS answered every query (query_names waits for each); reporting is degraded
    // and says so, without failing the health check.
    let ready = wait_ops(
        &f,
        "/readyz",
        "degraded: reporting",
        Duration::from_secs(10),
    );
    assert!(ready.starts_with("ready\n"), "{ready}");
    assert!(ready.contains("degraded: reporting"), "{ready}");
    let (code, _) = f.http_get("/readyz");
    assert_eq!(code, 200);
    let m = wait_ops(
        &f,
        "/metrics",
        "fanzha_report_spool_writable 0",
        Duration::from_secs(5),
    );
    assert!(m.contains("fanzha_report_spool_writable 0"), "{m}");
    assert!(
        f.log_text().contains("REPORTING DEGRADED"),
        "{}",
        f.log_text()
    );
    // Space comes back (seen through the process's own root): the events kept in
    // memory reach the spool and the platform, and the mark goes away.
    let filler = format!(
        "/proc/{}/root{}/spool/filler",
        f.child.id(),
        dir.path().display()
    );
    std::fs::remove_file(&filler).unwrap();
    let got = platform.wait_names(300, Duration::from_secs(30));
    assert_eq!(got, 300, "{got} of 300 events arrived\n{}", f.log_text());
    let ready = wait_ops(&f, "/readyz", "", Duration::from_secs(1));
    let ready = if ready.contains("degraded") {
        std::thread::sleep(Duration::from_secs(1));
        f.http_get("/readyz").1
    } else {
        ready
    };
    assert_eq!(ready, "ready\n");
    let (_, m) = f.http_get("/metrics");
    assert!(m.contains("fanzha_report_spool_writable 1"), "{m}");
}

#[test]
fn a_read_only_spool_or_an_unreadable_segment_never_stops_dns() {
    // A read-only file system under the spool.
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), 50, platform.addr, "");
    let f = start_with_mount(
        dir.path(),
        &toml,
        "mount -t tmpfs -o ro,size=64k tmpfs \"$SPOOL\"",
    );
    query_names(&f, 0..50);
    let ready = wait_ops(
        &f,
        "/readyz",
        "degraded: reporting",
        Duration::from_secs(10),
    );
    assert!(
        ready.starts_with("ready\n") && ready.contains("Read-only"),
        "{ready}"
    );
    drop(f);

    // A directory named like a segment, and a segment without read permission (for
    // root, whom permissions do not stop, a directory stands in for both).
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(spool.join("seg-0000000000000003.log")).unwrap();
    let toml = setup(dir.path(), 50, platform.addr, "");
    let f = Fanzha::start(dir.path(), &toml);
    query_names(&f, 0..50);
    assert_eq!(platform.wait_names(50, Duration::from_secs(20)), 50);
    assert!(
        f.log_text().contains("seg-0000000000000003.log"),
        "the unreadable entry is named: {}",
        f.log_text()
    );
}

#[test]
fn refused_credentials_keep_events_in_the_spool_and_raise_the_alarm() {
    // A wrong secret: the test platform answers 401. Nothing may be dead-lettered.
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), 100, platform.addr, "").replace(SECRET, "a-rotated-secret");
    let f = Fanzha::start(dir.path(), &toml);
    query_names(&f, 0..100);
    let m = wait_ops(
        &f,
        "/metrics",
        "fanzha_report_auth_failing 1",
        Duration::from_secs(10),
    );
    assert!(m.contains("fanzha_report_auth_failing 1"), "{m}");
    std::thread::sleep(Duration::from_secs(2));
    let (_, m) = f.http_get("/metrics");
    assert!(
        !m.contains("fanzha_report_events_total{outcome=\"dead_letter\"} 1")
            && !dir.path().join("spool/dead-letter.jsonl").exists(),
        "events were dead-lettered: {m}"
    );
    assert!(
        f.log_text().contains("check [report] secret"),
        "{}",
        f.log_text()
    );
    // The secret is fixed (SIGHUP does not reload [report]: a restart), and every
    // event arrives.
    drop(f);
    let f = Fanzha::start(dir.path(), &setup(dir.path(), 100, platform.addr, ""));
    let got = platform.wait_names(100, Duration::from_secs(30));
    assert_eq!(
        got,
        100,
        "{got} of 100 events arrived after the fix\n{}",
        f.log_text()
    );
}

#[test]
fn hashed_client_addresses_use_a_local_key_the_platform_does_not_have() {
    use std::os::unix::fs::PermissionsExt;
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), 10, platform.addr, "client_ip = \"hash\"\n");
    let f = Fanzha::start(dir.path(), &toml);
    query_names(&f, 0..5);
    assert_eq!(platform.wait_names(5, Duration::from_secs(20)), 5);
    let seen: Vec<String> = platform.clients.lock().unwrap().iter().cloned().collect();
    assert_eq!(seen.len(), 1, "one client, one stable hash: {seen:?}");
    // What the platform could compute with the secret it shares: not this.
    let with_secret = {
        use hmac::{KeyInit, Mac};
        let mut m =
            <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
        m.update(b"127.0.0.1");
        format!("hmac:{}", hex::encode(&m.finalize().into_bytes()[..16]))
    };
    assert!(seen[0].starts_with("hmac:"), "{seen:?}");
    assert_ne!(
        seen[0], with_secret,
        "hashed with the platform's own secret"
    );
    let key = dir.path().join("state/report-hash.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The same client hashes the same after a restart.
    drop(f);
    let f = Fanzha::start(dir.path(), &toml);
    query_names(&f, 5..10);
    assert_eq!(platform.wait_names(10, Duration::from_secs(20)), 10);
    assert_eq!(platform.clients.lock().unwrap().len(), 1);
}

#[test]
fn more_events_than_the_disk_holds_still_reach_the_platform() {
    // A 256 KiB spool and a platform that is down: most events wait in memory. When
    // the platform comes back, what the sender frees is filled again, a chunk at a
    // time, until every event is through.
    let platform = TestPlatform::start("127.0.0.1:0");
    platform.status.store(503, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), 2_000, platform.addr, "");
    let f = start_with_mount(
        dir.path(),
        &toml,
        "mount -t tmpfs -o size=256k tmpfs \"$SPOOL\"",
    );
    query_names(&f, 0..2_000);
    let m = wait_ops(
        &f,
        "/metrics",
        "fanzha_report_spool_writable 0",
        Duration::from_secs(15),
    );
    assert!(
        m.contains("fanzha_report_spool_writable 0"),
        "the disk never filled: {m}"
    );
    platform.status.store(200, Ordering::Relaxed);
    let got = platform.wait_names(2_000, Duration::from_secs(90));
    assert_eq!(got, 2_000, "{got} of 2000 events arrived\n{}", f.log_text());
}

/// Hits reach a platform behind the proxy the environment names (HTTP_PROXY), as
/// the feed and the sources do: the platform's own name does not even resolve here,
/// and only the proxy (played by the test platform) is reachable.
#[test]
fn hits_go_through_the_proxy_of_the_environment() {
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 20, platform.addr, "").replace(
        &format!("http://{}/hits", platform.addr),
        "http://platform.invalid/hits",
    );
    let proxy = format!("HTTP_PROXY=http://{}", platform.addr);
    let f = Fanzha::start_under(dir.path(), &cfg, &["env", &proxy]);
    query_names(&f, 0..20);
    let got = platform.wait_names(20, Duration::from_secs(30));
    assert_eq!(got, 20, "{} of 20 names arrived\n{}", got, f.log_text());
    assert_eq!(platform.bad_signatures.load(Ordering::Relaxed), 0);
}
