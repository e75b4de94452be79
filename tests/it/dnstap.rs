//! The dnstap query log, received by a real collector (`fstrm_capture`, Debian's
//! fstrm-bin) and decoded by a real reader (`dnstap-ldns`); `scripts/test.sh`
//! installs both. Frames are also decoded here to check what dnstap-ldns does not
//! print (the policy of a blocked query).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prost::Message as _;

/// A running `fstrm_capture` writing to a file.
struct Collector {
    child: Child,
    out: PathBuf,
}

impl Collector {
    fn start(sock: &Path, out: &Path) -> Collector {
        let child = Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(sock)
            .arg("-w")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fstrm_capture (Debian package fstrm-bin; scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "fstrm_capture made no socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Collector {
            child,
            out: out.to_path_buf(),
        }
    }

    /// Stop it (it closes its file on SIGTERM) and return what it wrote, as
    /// dnstap-ldns prints it (YAML documents) and as decoded frames.
    fn finish(mut self) -> (Vec<String>, Vec<fanzha::dnstap::proto::Dnstap>) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let out = Command::new("dnstap-ldns")
            .arg("-y")
            .arg("-r")
            .arg(&self.out)
            .output()
            .expect("dnstap-ldns (Debian package dnstap-ldns; scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8_lossy(&out.stdout)
            .split("\n---")
            .map(str::to_string)
            .filter(|d| d.contains("type: MESSAGE"))
            .collect();
        (yaml, frames(&std::fs::read(&self.out).unwrap()))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The data frames of a Frame Streams file, decoded (control frames skipped).
fn frames(file: &[u8]) -> Vec<fanzha::dnstap::proto::Dnstap> {
    let mut out = Vec::new();
    let mut at = 0;
    let word = |at: usize| u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    while at + 4 <= file.len() {
        let len = word(at);
        if len == 0 {
            at += 8 + word(at + 4);
            continue;
        }
        out.push(fanzha::dnstap::proto::Dnstap::decode(&file[at + 4..at + 4 + len]).unwrap());
        at += 4 + len;
    }
    out
}

fn start(h: &Hierarchy, dir: &Path, dnstap: &str) -> Fanzha {
    let toml = format!(
        "{}{}[sinkhole]\nipv4 = \"10.53.53.53\"\n[dnstap]\n{dnstap}\n",
        lists_toml(dir),
        h.resolver_toml()
    );
    Fanzha::start(dir, &toml)
}

fn stop(mut f: Fanzha) -> String {
    f.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while f.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "fanzha did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    f.log_text()
}

fn field<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
    doc.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}: ")))
        .map(|v| v.trim_matches('"'))
}

/// A collector, and fanzha logging to it with `[dnstap]` lines `extra`.
fn with_collector(extra: &str) -> (Hierarchy, tempfile::TempDir, Collector, Fanzha) {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tap.sock");
    let cap = Collector::start(&sock, &dir.path().join("out.fstrm"));
    let f = start(
        &h,
        dir.path(),
        &format!("socket = \"{}\"\n{extra}", sock.display()),
    );
    (h, dir, cap, f)
}

#[test]
fn queries_answers_and_blocks_reach_a_real_collector() {
    let (_h, _dir, cap, f) = with_collector("identity = \"binjiang-01\"");
    assert!(
        f.wait_log("dnstap: connected", Duration::from_secs(10)),
        "{}",
        f.log_text()
    );
    let m = udp(f.dns, "www.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let m = tcp(
        f.dns,
        &make_query("www.example.test.", RecordType::A, false),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    udp(f.dns, "x.blocked.example.test.", RecordType::A);
    let log = stop(f);
    let (docs, frames) = cap.finish();
    assert_eq!(
        docs.len(),
        6,
        "three queries, three answers:\n{}\n{log}",
        docs.join("\n---")
    );

    let kinds: Vec<_> = docs
        .iter()
        .map(|d| field(d, "type").unwrap_or("?"))
        .collect();
    // Each document's first "type:" is the outer MESSAGE; the message's is next.
    let inner: Vec<&str> = docs
        .iter()
        .map(|d| {
            d.lines()
                .filter_map(|l| l.trim_start().strip_prefix("type: "))
                .nth(1)
                .unwrap_or("?")
        })
        .collect();
    assert!(kinds.iter().all(|k| *k == "MESSAGE"), "{kinds:?}");
    assert_eq!(
        inner.iter().filter(|t| **t == "CLIENT_QUERY").count(),
        3,
        "{inner:?}"
    );
    assert_eq!(inner.iter().filter(|t| **t == "CLIENT_RESPONSE").count(), 3);
    for d in &docs {
        assert_eq!(field(d, "identity"), Some("binjiang-01"), "{d}");
        assert_eq!(field(d, "socket_family"), Some("INET"));
        assert_eq!(field(d, "query_address"), Some("127.0.0.1"));
        assert_eq!(field(d, "response_address"), Some("127.0.0.1"));
        assert!(field(d, "query_port").is_some() && field(d, "response_port").is_some());
        assert!(field(d, "query_time").is_some(), "{d}");
    }
    let protocols: Vec<_> = docs
        .iter()
        .filter_map(|d| field(d, "socket_protocol"))
        .collect();
    assert_eq!(
        protocols.iter().filter(|p| **p == "TCP").count(),
        2,
        "{protocols:?}"
    );
    // The resolved answer, and the block's sinkhole answer, as sent.
    let answers: Vec<&String> = docs
        .iter()
        .filter(|d| d.contains("response_message:"))
        .collect();
    assert!(
        answers
            .iter()
            .any(|d| d.contains("www.example.test.") && d.contains("192.0.2.1"))
    );
    assert!(
        answers
            .iter()
            .any(|d| d.contains("x.blocked.example.test.") && d.contains("10.53.53.53"))
    );
    assert!(answers.iter().all(|d| field(d, "response_time").is_some()));

    // The blocked query's messages carry the rule (dnstap's Policy); no other does.
    let with_policy: Vec<_> = frames
        .iter()
        .filter_map(|f| f.message.as_ref()?.policy.as_ref())
        .collect();
    assert_eq!(with_policy.len(), 2, "{frames:?}");
    for p in with_policy {
        assert_eq!(p.rule.as_deref(), Some(&b"blocked.example.test"[..]));
        assert_eq!(p.r#type.as_deref(), Some("fanzha/loan"));
        assert_eq!(
            p.action,
            Some(fanzha::dnstap::proto::PolicyAction::LocalData as i32)
        );
    }
}

#[test]
fn sampling_leaves_out_allowed_queries_and_truncation_hides_the_client() {
    let (_h, _dir, cap, f) =
        with_collector("sample = 0.0\nclient_ip = \"truncate\"\nlog = [\"client_response\"]");
    assert!(f.wait_log("dnstap: connected", Duration::from_secs(10)));
    for _ in 0..5 {
        udp(f.dns, "www.example.test.", RecordType::A);
    }
    udp(f.dns, "scam.example.test.", RecordType::A);
    stop(f);
    let (docs, _) = cap.finish();
    assert_eq!(
        docs.len(),
        1,
        "only the blocked one, only its answer:\n{}",
        docs.join("\n---")
    );
    let d = &docs[0];
    assert!(
        d.contains("CLIENT_RESPONSE") && d.contains("scam.example.test."),
        "{d}"
    );
    assert_eq!(field(d, "query_address"), Some("127.0.0.0"));
    assert_eq!(
        field(d, "query_port"),
        None,
        "a port would tell clients apart"
    );
}

#[test]
fn a_missing_or_stuck_collector_never_stalls_dns() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tap.sock");
    // Nobody listens yet: frames wait in a queue of 20, the rest are dropped.
    let f = start(
        &h,
        dir.path(),
        &format!("socket = \"{}\"\nqueue = 20", sock.display()),
    );
    let t0 = Instant::now();
    for i in 0..300 {
        let m = udp(f.dns, &format!("n{i}.blocked.example.test."), RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let dropped = f.metric("fanzha_dnstap_frames_total{outcome=\"dropped\"}");
    assert!(dropped >= 600.0 - 20.0, "dropped {dropped}");

    // A collector that takes the hand-shake and then never reads: the writer blocks,
    // the queue fills, DNS goes on answering at once.
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let stuck = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = std::io::Read::read(&mut s, &mut buf); // READY
        let mut accept = vec![0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 22];
        accept.extend_from_slice(b"protobuf:dnstap.Dnstap");
        s.write_all(&accept).unwrap();
        std::thread::sleep(Duration::from_secs(8));
        drop(s);
    });
    assert!(
        f.wait_log("dnstap: connected", Duration::from_secs(10)),
        "{}",
        f.log_text()
    );
    let before = f.metric("fanzha_dnstap_frames_total{outcome=\"dropped\"}");
    let mut slowest = Duration::ZERO;
    for i in 0..3000 {
        let t = Instant::now();
        let m = udp(f.dns, &format!("s{i}.blocked.example.test."), RecordType::A);
        slowest = slowest.max(t.elapsed());
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a query waited {slowest:?}"
    );
    let dropped = f.metric("fanzha_dnstap_frames_total{outcome=\"dropped\"}") - before;
    assert!(
        dropped > 0.0,
        "the stuck collector should have filled the queue"
    );
    stuck.join().unwrap();
}

/// Wait until `needle` has been logged `n` times.
fn wait_logged(f: &Fanzha, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.log_text().matches(needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "{needle:?} not logged {n} times:\n{}",
            f.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The query names a collector received.
fn names(frames: &[fanzha::dnstap::proto::Dnstap]) -> Vec<String> {
    let mut v: Vec<String> = frames
        .iter()
        .filter_map(|f| f.message.as_ref()?.query_message.as_ref())
        .filter_map(|q| hickory_proto::op::Message::from_vec(q).ok())
        .filter_map(|m| Some(m.queries.first()?.name().to_ascii()))
        .collect();
    v.dedup();
    v
}

#[test]
fn a_reload_turns_the_query_log_on_moves_it_and_turns_it_off() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let f = start(&h, dir.path(), "");
    let cfg = dir.path().join("fanzha.toml");
    let base = std::fs::read_to_string(&cfg).unwrap();
    assert!(base.trim_end().ends_with("[dnstap]"), "{base}");
    let ask = |name: &str| {
        let m = udp(f.dns, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    };
    ask("before.blocked.example.test.");
    let (one, two) = (dir.path().join("one.sock"), dir.path().join("two.sock"));
    let cap1 = Collector::start(&one, &dir.path().join("one.fstrm"));
    let cap2 = Collector::start(&two, &dir.path().join("two.fstrm"));
    let reload = |sock: Option<&Path>| {
        let tap = sock.map_or(String::new(), |s| format!("socket = \"{}\"\n", s.display()));
        std::fs::write(&cfg, format!("{base}{tap}")).unwrap();
        f.signal("HUP");
    };
    // "query log on" comes once the engine logs to the new collector; "connected"
    // may come before it.
    reload(Some(&one));
    wait_logged(&f, "dnstap: connected", 1);
    wait_logged(&f, "dnstap query log on", 1);
    ask("first.blocked.example.test.");
    reload(Some(&two));
    wait_logged(&f, "dnstap: connected", 2);
    wait_logged(&f, "dnstap query log on", 2);
    ask("second.blocked.example.test.");
    reload(None);
    wait_logged(&f, "the dnstap query log is off", 1);
    ask("after.blocked.example.test.");
    let log = stop(f);
    assert!(!log.contains("only after a restart"), "{log}");
    let (_, one) = cap1.finish();
    let (_, two) = cap2.finish();
    assert_eq!(names(&one), vec!["first.blocked.example.test."], "{log}");
    assert_eq!(names(&two), vec!["second.blocked.example.test."], "{log}");
}
