//! `fanzha ctl` against a running `fanzha serve`: every command over the real Unix
//! socket, with the real binary on both ends.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// `fanzha ctl --config CFG ARGS…`: exit status, stdout, stderr.
fn ctl(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("ctl")
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(cfg: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = ctl(cfg, &a);
    assert!(
        code == 0 || code == 1,
        "{args:?}: exit {code}\n{out}\n{err}"
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

fn upstream_queries(f: &Fanzha) -> f64 {
    let (_, body) = f.http_get("/metrics");
    body.lines()
        .filter(|l| l.starts_with("fanzha_upstream_queries_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start() -> (tempfile::TempDir, Hierarchy, Fanzha, PathBuf) {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("{}{}", lists_toml(dir.path()), h.resolver_toml());
    let f = Fanzha::start(dir.path(), &toml);
    let cfg = dir.path().join("fanzha.toml");
    (dir, h, f, cfg)
}

#[test]
fn status_lookup_and_reload_speak_for_the_list_that_serves() {
    let (dir, _h, f, cfg) = start();
    let sock = dir.path().join("state/control.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "socket mode {mode:o}");

    let (code, out, err) = ctl(&cfg, &["status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&cfg.display().to_string()), "{out}");
    assert!(
        out.contains("list:      serial ") && out.contains("3 blocked, 1 allowed"),
        "{out}"
    );
    let st = json(&cfg, &["status"]);
    assert_eq!(st["list"]["entries"], 4);
    let serial = st["list"]["serial"].as_u64().unwrap();
    assert!(serial >= 1, "{st}");
    assert_eq!(st["report"]["enabled"], false);

    let (code, out, _) = ctl(&cfg, &["lookup", "www.blocked.example.test"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BLOCKED by rule \"blocked.example.test\" in list loan.txt, category loan"),
        "{out}"
    );
    let (code, out, _) = ctl(
        &cfg,
        &["lookup", "ok.blocked.example.test", "www.example.test"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("allowed by rule \"ok.blocked.example.test\""),
        "{out}"
    );

    // A name added on disk serves once `ctl reload` answers (the file watcher may
    // get there first; either way the reload waits for the lists).
    std::fs::write(
        dir.path().join("lists/loan.txt"),
        "# category: loan\nblocked.example.test\nscam.example.test\nnew-scam.test\n",
    )
    .unwrap();
    let (code, out, err) = ctl(&cfg, &["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("lists reloaded: 5 names"), "{out}");
    let (code, out, _) = ctl(&cfg, &["lookup", "a.new-scam.test"]);
    assert_eq!(code, 1, "{out}");
    let st = json(&cfg, &["status"]);
    assert_eq!(st["list"]["entries"], 5);
    assert!(st["list"]["serial"].as_u64().unwrap() > serial, "{st}");

    // A config that does not load: refused with the key, the old config stays.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{good}\n[cache]\nprefetch = \"maybe\"\n")).unwrap();
    let out = Command::new(bin())
        .args(["ctl", "--socket"])
        .arg(&sock)
        .arg("reload")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("config not reloaded") && err.contains("prefetch"),
        "{err}"
    );
    std::fs::write(&cfg, good).unwrap();
    let m = udp(f.dns, "www.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);

    // The daemon removes its socket when it stops; then ctl cannot reach it.
    f.signal("TERM");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!sock.exists());
    let (code, _, err) = ctl(&cfg, &["status"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is fanzha running"), "{err}");
}

#[test]
fn flush_cache_forgets_a_zone_and_nothing_else() {
    let (_dir, _h, f, cfg) = start();
    for name in ["www.example.test.", "plain.test."] {
        let m = udp(f.dns, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
    }
    // Both are cached: asking again costs no upstream query.
    let before = upstream_queries(&f);
    udp(f.dns, "www.example.test.", RecordType::A);
    udp(f.dns, "plain.test.", RecordType::A);
    assert_eq!(upstream_queries(&f), before);

    let (code, out, err) = ctl(&cfg, &["flush-cache", "Example.TEST"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("for example.test. and the names below it"),
        "{out}"
    );
    let flushed = json(&cfg, &["flush-cache", "example.test"]);
    // The first flush took them; the second finds nothing left.
    assert_eq!(flushed["answers"], 0, "{flushed}");

    // The flushed name goes upstream again; the other is still a cache hit.
    let before = upstream_queries(&f);
    udp(f.dns, "plain.test.", RecordType::A);
    assert_eq!(upstream_queries(&f), before, "plain.test was flushed too");
    let m = udp(f.dns, "www.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        upstream_queries(&f) > before,
        "www.example.test came from a cache"
    );

    let all = json(&cfg, &["flush-cache"]);
    assert!(all["answers"].as_u64().unwrap() >= 2, "{all}");
    let st = json(&cfg, &["status"]);
    assert_eq!(st["cache"]["entries"], 0, "{st}");

    let (code, _, err) = ctl(&cfg, &["flush-cache", "not a name"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a domain name"), "{err}");
}

#[test]
fn stats_top_blocked_and_dump_config() {
    let (dir, _h, f, cfg) = start();
    for _ in 0..3 {
        udp(f.dns, "x.blocked.example.test.", RecordType::A);
    }
    udp(f.dns, "scam.example.test.", RecordType::AAAA);

    let (code, out, _) = ctl(&cfg, &["top-blocked", "5"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("4 blocks since start"), "{out}");
    let first = out.lines().nth(1).unwrap();
    assert!(
        first.contains(" 3  blocked.example.test  (loan, loan.txt)"),
        "{out}"
    );
    let top = json(&cfg, &["top-blocked", "1"]);
    assert_eq!(top["total"], 4);
    assert_eq!(top["rules"].as_array().unwrap().len(), 1);
    assert_eq!(top["rules"][0]["rule"], "blocked.example.test");
    assert_eq!(top["rules"][0]["count"], 3);

    let (code, out, _) = ctl(&cfg, &["stats"]);
    assert_eq!(code, 0);
    let blocked_line = out
        .lines()
        .find(|l| l.starts_with("fanzha_queries_total{result=\"blocked\"}"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(blocked_line.trim_end().ends_with(" 4"), "{blocked_line}");
    let stats = json(&cfg, &["stats"]);
    assert!(
        stats
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "fanzha_cache_hits_total")
    );

    // The effective config is TOML that loads back, with the values in force.
    let (code, out, _) = ctl(&cfg, &["dump-config"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("[resolver]") && out.contains("mode = \"recursive\""),
        "{out}"
    );
    assert!(out.contains("timeout_ms = \"300ms\""), "{out}");
    let dumped = dir.path().join("dumped.toml");
    std::fs::write(&dumped, &out).unwrap();
    let check = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&dumped)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn the_report_secret_never_leaves_in_dump_config() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-long-shared-secret-0123456789";
    let toml = format!(
        "{}{}[report]\nurl = \"http://127.0.0.1:9/hits\"\nsecret = \"{secret}\"\n",
        lists_toml(dir.path()),
        h.resolver_toml()
    );
    let _f = Fanzha::start(dir.path(), &toml);
    let cfg = dir.path().join("fanzha.toml");
    let (code, out, _) = ctl(&cfg, &["dump-config"]);
    assert_eq!(code, 0);
    assert!(
        !out.contains(secret) && out.contains("secret = \"(hidden)\""),
        "{out}"
    );
    let data = json(&cfg, &["dump-config"]);
    assert_eq!(data["report"]["secret"], "(hidden)");
    assert!(!data.to_string().contains(secret));
    let st = json(&cfg, &["status"]);
    assert_eq!(st["report"]["enabled"], true);
}

#[test]
fn bad_requests_get_a_reason_and_exit_2() {
    let (dir, _h, _f, cfg) = start();
    let sock = dir.path().join("state/control.sock");
    // What the server says to requests the command line would not send.
    let ask = |line: &str| -> serde_json::Value {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    };
    let r = ask("{\"cmd\":\"frobnicate\"}\n");
    assert_eq!(r["exit"], 2);
    assert!(
        r["text"]
            .as_str()
            .unwrap()
            .contains("the commands are: status, lookup, reload"),
        "{r}"
    );
    let r = ask("{\"cmd\":\"lookup\"}\n");
    let usage = r["text"].as_str().unwrap();
    assert!(usage.contains("Usage: fanzha ctl lookup <NAMES>..."), "{r}");
    let r = ask("{\"cmd\":\"top-blocked\",\"args\":[\"many\"]}\n");
    assert_eq!(r["exit"], 2);
    let r = ask("not json\n");
    assert!(
        r["text"]
            .as_str()
            .unwrap()
            .starts_with("not a control request"),
        "{r}"
    );
    // The daemon is still there.
    let (code, _, _) = ctl(&cfg, &["status"]);
    assert_eq!(code, 0);
    let (code, _, err) = ctl(&cfg, &["lookup", "a..b"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_reload_says_which_changes_wait_for_a_restart() {
    let (_d, _h, f, cfg) = start();
    let good = std::fs::read_to_string(&cfg).unwrap();
    // One change a reload applies (the sinkhole), two it does not (the appliance's
    // name in reports, the cache's serve_stale).
    let sinkhole = "\n[sinkhole]\nipv4 = \"10.53.53.99\"\n";
    let later = "\n[cache]\nserve_stale = 0\n\n[report]\nappliance = \"renamed-01\"\n";
    std::fs::write(&cfg, format!("{good}{sinkhole}{later}")).unwrap();
    let (code, out, err) = ctl(&cfg, &["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("NOT applied"), "{out}");
    assert!(out.contains("report.appliance = \"renamed-01\""), "{out}");
    assert!(
        out.contains("cache.serve_stale = \"0s\" (serving: \"1day\")"),
        "{out}"
    );
    assert!(!out.contains("sinkhole"), "{out}");
    // The applied change serves.
    let m = udp(f.dns, "blocked.example.test.", RecordType::A);
    assert_eq!(
        ips(&m),
        vec!["10.53.53.99".parse::<std::net::IpAddr>().unwrap()]
    );
    let (_, metrics) = f.http_get("/metrics");
    assert!(
        metrics.contains("fanzha_config_restart_pending 1"),
        "{metrics}"
    );
    // dump-config shows what serves, and marks what waits.
    let (_, dump, _) = ctl(&cfg, &["dump-config"]);
    assert!(dump.contains("# PENDING"), "{dump}");
    assert!(dump.contains("serve_stale = \"1day\""), "{dump}");
    assert!(dump.contains("ipv4 = \"10.53.53.99\""), "{dump}");
    assert!(f.log_text().contains("takes effect only after a restart"));
    // Changed back, nothing waits.
    std::fs::write(&cfg, format!("{good}{sinkhole}")).unwrap();
    let (code, out, _) = ctl(&cfg, &["reload"]);
    assert_eq!(code, 0);
    assert!(!out.contains("NOT applied"), "{out}");
    let (_, metrics) = f.http_get("/metrics");
    assert!(
        metrics.contains("fanzha_config_restart_pending 0"),
        "{metrics}"
    );
    let (_, dump, _) = ctl(&cfg, &["dump-config"]);
    assert!(!dump.contains("# PENDING"), "{dump}");
}

/// `name` from `from`, with or without recursion desired.
fn ask_from(f: &Fanzha, from: [u8; 4], name: &str, rd: bool) -> hickory_proto::op::Message {
    let mut q = make_query(name, RecordType::A, true);
    q.metadata.recursion_desired = rd;
    let from = std::net::IpAddr::from(from);
    udp_from(from, f.dns, &q, std::time::Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no answer for {name} from {from}"))
}

#[test]
fn one_sighup_applies_every_reloadable_key_it_changes() {
    use std::time::{Duration, Instant};
    let (dir, _h, f, cfg) = start();
    let good = std::fs::read_to_string(&cfg).unwrap();
    let ip = |m: &hickory_proto::op::Message| ips(m).first().map(|a| a.to_string());
    // Before: resolved and cached, not refused, no snooping.
    assert_eq!(
        ip(&udp(f.dns, "www.example.test.", RecordType::A)).as_deref(),
        Some("192.0.2.1")
    );
    let code = |m: &hickory_proto::op::Message| m.metadata.response_code;
    assert_eq!(
        ip(&udp(f.dns, "plain.test.", RecordType::A)).as_deref(),
        Some("192.0.2.10")
    );
    assert_eq!(
        code(&ask_from(&f, [127, 0, 0, 1], "plain.test.", false)),
        ResponseCode::Refused
    );
    assert_eq!(
        code(&ask_from(&f, [127, 0, 0, 9], "www.example.test.", true)),
        ResponseCode::NoError
    );
    assert_eq!(
        ip(&udp(f.dns, "fresh.wild.example.test.", RecordType::A)).as_deref(),
        Some("192.0.2.42")
    );

    // One file, many sections changed, one SIGHUP.
    let lists2 = dir.path().join("lists2");
    std::fs::create_dir_all(&lists2).unwrap();
    std::fs::write(
        lists2.join("task.txt"),
        "# category: task-scam\nfresh.wild.example.test\n",
    )
    .unwrap();
    let tap = dir.path().join("tap.sock");
    let collector = std::os::unix::net::UnixListener::bind(&tap).unwrap();
    collector.set_nonblocking(true).unwrap();
    let changed = good
        .replace("dirs = [\"lists\"]", "dirs = [\"lists\", \"lists2\"]")
        .replace("[server]\n", "[server]\nacl = [\"127.0.0.0/29\"]\nallow_snoop = [\"127.0.0.1/32\"]\nrate_limit = 2\nrate_limit_burst = 2\nrate_limit_exempt = [\"127.0.0.1/32\"]\n")
        .replace("[ops]\n", "[ops]\nplace_label = \"community\"\n");
    assert_eq!(changed.matches("lists2").count(), 1, "{good}");
    assert!(
        changed.contains("acl =") && changed.contains("place_label"),
        "{good}"
    );
    let added = format!(
        "\n[sinkhole]\nipv4 = \"10.53.53.77\"\n\
         [categories.phishing]\naction = \"nxdomain\"\n\
         [[policies]]\nname = \"strict\"\ncategories = {{ loan = \"nxdomain\" }}\n\
         [[places]]\ncidr = \"127.0.0.0/8\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\n\
         [[places]]\ncidr = \"127.0.0.4/32\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"江二社区\"\npolicy = \"strict\"\n\
         [[local_records]]\nname = \"printer.lan\"\ntype = \"A\"\ndata = \"192.0.2.80\"\n\
         [[forward_zones]]\nname = \"example.test\"\nupstreams = [\"udp://127.0.0.1:9\"]\n\
         [alerts]\ninterval = \"2m\"\n\
         [dnstap]\nsocket = \"{}\"\n",
        tap.display()
    );
    std::fs::write(&cfg, format!("{changed}{added}")).unwrap();
    let (status, out, err) = ctl(&cfg, &["reload"]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(!out.contains("NOT applied"), "{out}");

    // [sinkhole], [blocklist] dirs, [categories], [[policies]] with [[places]].
    let blocked = udp(f.dns, "blocked.example.test.", RecordType::A);
    assert_eq!(ip(&blocked).as_deref(), Some("10.53.53.77"));
    assert_eq!(
        ip(&udp(f.dns, "fresh.wild.example.test.", RecordType::A)).as_deref(),
        Some("10.53.53.77")
    );
    assert_eq!(
        code(&udp(f.dns, "parent.example.test.", RecordType::A)),
        ResponseCode::NXDomain
    );
    assert_eq!(
        code(&ask_from(&f, [127, 0, 0, 4], "blocked.example.test.", true)),
        ResponseCode::NXDomain
    );
    // ops.place_label: the blocked queries are counted by community.
    let (_, metrics) = f.http_get("/metrics");
    assert!(metrics.contains("community=\"缤纷社区\""), "{metrics}");
    // [[local_records]].
    assert_eq!(
        ip(&udp(f.dns, "printer.lan.", RecordType::A)).as_deref(),
        Some("192.0.2.80")
    );
    // [[forward_zones]]: the zone goes to its (silent) upstream; its cached answer is gone.
    assert_eq!(
        code(&udp(f.dns, "www.example.test.", RecordType::A)),
        ResponseCode::ServFail
    );
    // server.acl, allow_snoop, rate_limit and its exemption.
    assert_eq!(
        code(&ask_from(&f, [127, 0, 0, 9], "x.test.", true)),
        ResponseCode::Refused
    );
    let snooped = ask_from(&f, [127, 0, 0, 1], "plain.test.", false);
    assert_eq!(ip(&snooped).as_deref(), Some("192.0.2.10"), "{snooped:?}");
    let limited = (0..10)
        .filter(|_| {
            code(&ask_from(&f, [127, 0, 0, 2], "scam.example.test.", true)) == ResponseCode::Refused
        })
        .count();
    assert!(limited >= 5, "{limited} of 10 refused past the limit");
    for _ in 0..10 {
        assert_eq!(
            code(&ask_from(&f, [127, 0, 0, 1], "scam.example.test.", true)),
            ResponseCode::NoError
        );
    }
    // [dnstap]: the writer connects to the new collector.
    let deadline = Instant::now() + Duration::from_secs(10);
    while collector.accept().is_err() {
        assert!(
            Instant::now() < deadline,
            "no dnstap connection\n{}",
            f.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // [alerts], and nothing waits for a restart.
    assert!(
        f.log_text().contains("[alerts] applied"),
        "{}",
        f.log_text()
    );
    let (_, metrics) = f.http_get("/metrics");
    assert!(
        metrics.contains("fanzha_config_restart_pending 0"),
        "{metrics}"
    );
    let (_, dump, _) = ctl(&cfg, &["dump-config"]);
    assert!(
        !dump.contains("# PENDING") && dump.contains("10.53.53.77"),
        "{dump}"
    );
}

/// On the embedded defaults (no config file), `fanzha ctl` finds the daemon's
/// socket from any working directory: it lives under the runtime directory, not
/// in `./state`. A stand-in daemon answers on it here.
#[test]
fn on_the_embedded_defaults_ctl_finds_the_socket_from_any_directory() {
    if Path::new("/etc/fanzha/fanzha.toml").exists() {
        // On an appliance the default config is the installed one, not the embedded
        // defaults; the socket's path is covered by the config unit tests.
        eprintln!(
            "/etc/fanzha/fanzha.toml exists: the embedded-defaults socket is not what ctl uses here"
        );
        return;
    }
    let runtime = tempfile::tempdir().unwrap();
    let sock = runtime.path().join("fanzha/control.sock");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let daemon = std::thread::spawn(move || {
        for _ in 0..2 {
            let (s, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            assert!(line.contains("\"status\""), "{line}");
            (&s).write_all(b"{\"exit\":0,\"text\":\"stand-in daemon\",\"data\":{}}\n")
                .unwrap();
        }
    });
    for cwd in [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()] {
        let out = Command::new(bin())
            .args(["ctl", "status"])
            .current_dir(cwd.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("stand-in daemon"), "{text}");
    }
    daemon.join().unwrap();
}
