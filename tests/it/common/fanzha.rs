//! The real `fanzha` binary as a child process: start it on a test config, read
//! its bound ports from its log, stop it; and the test lists it serves.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::client::*;

/// The real binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fanzha"))
}

/// Run `fanzha ARGS` in `dir`: its exit code and output (stdout then stderr).
pub fn run_status(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Run `fanzha ARGS` in `dir`; its output (stdout then stderr). Panics, with the
/// output, when it fails.
pub fn run_ok(args: &[&str], dir: &Path) -> String {
    let (code, text) = run_status(args, dir);
    assert_eq!(code, Some(0), "fanzha {args:?}: {text}");
    text
}

/// `fanzha publish` of the names in `names` (category loan, from `dir/pub-lists`)
/// into `dir/www`, valid for `valid`, signed with `dir/k.key`; its output.
pub fn publish_loan(dir: &Path, names: &[&str], valid: &str) -> String {
    let lists = dir.join("pub-lists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(
        lists.join("loan.txt"),
        format!("# category: loan\n{}\n", names.join("\n")),
    )
    .unwrap();
    std::fs::write(
        dir.join("pub.toml"),
        "[blocklist]\ndirs = [\"pub-lists\"]\nallow_dirs = []\n",
    )
    .unwrap();
    run_ok(
        &[
            "publish", "--config", "pub.toml", "--key", "k.key", "--out", "www", "--valid", valid,
            "--force",
        ],
        dir,
    )
}

/// A running `fanzha serve`.
pub struct Fanzha {
    pub child: Child,
    pub dns: SocketAddr,
    pub ops: SocketAddr,
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    /// The first DNS over TLS listener, when `[server] listen_tls` is set.
    pub dot: Option<SocketAddr>,
    /// The first DNS over HTTPS listener, when `[server] listen_https` is set.
    pub doh: Option<SocketAddr>,
    pub dir: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

fn after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(key)? + key.len();
    line[i..].split_whitespace().next()
}

impl Fanzha {
    /// Write `toml` (which must not set server.listen / ops.listen / state_dir; its
    /// `[server]`, `[ops]` and `[warnpage]` keys are merged with those) into
    /// `dir/fanzha.toml` and start the server on ephemeral ports.
    pub fn start(dir: &Path, toml: &str) -> Fanzha {
        Self::start_under(dir, toml, &[])
    }

    /// As [`Fanzha::start`], with the command run by `prefix` (e.g. `unshare … sh -c
    /// '… exec "$0" "$@"'`): fanzha's own arguments follow the prefix.
    pub fn start_under(dir: &Path, toml: &str, prefix: &[&str]) -> Fanzha {
        let text = format!("{toml}\n",);
        let mut full =
            String::from("[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n");
        full.push_str(&table_lines(&text, "server"));
        full.push_str("[ops]\nlisten = \"127.0.0.1:0\"\n");
        full.push_str(&table_lines(&text, "ops"));
        let wp = table_lines(&text, "warnpage");
        full.push_str("[warnpage]\n");
        if !wp.contains("listen =") {
            full.push_str("listen = [\"127.0.0.1:0\"]\n");
        }
        full.push_str(&wp);
        full.push_str(&without_tables(&text, &["server", "warnpage", "ops"]));
        let cfg = dir.join("fanzha.toml");
        std::fs::write(&cfg, &full).unwrap();
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = cmd
            .args(["serve", "--config"])
            .arg(&cfg)
            .env(
                "RUST_LOG",
                std::env::var("FANZHA_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let (mut dns, mut ops, mut http, mut https) = (None, None, None, None);
        let (mut dot, mut doh) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!(
                        "fanzha did not become ready; config:\n{full}\nlog:\n{}",
                        log.lock().unwrap().join("\n")
                    )
                });
            if line.contains("listening for DNS over TLS") {
                dot = dot.or(after(&line, "tls=").map(|s| s.parse().unwrap()));
            } else if line.contains("listening for DNS over HTTPS") {
                doh = doh.or(after(&line, "https=").map(|s| s.parse().unwrap()));
            } else if line.contains("listening for DNS") {
                dns = after(&line, "udp=").map(|s| s.parse().unwrap());
            }
            if line.contains("warning page listening (http)") {
                http = after(&line, "addr=").map(|s| s.parse().unwrap());
            }
            if line.contains("warning page listening (https)") {
                https = after(&line, "addr=").map(|s| s.parse().unwrap());
            }
            if line.contains("ops endpoint") {
                ops = after(&line, "addr=").map(|s| s.parse().unwrap());
            }
            if line.contains(" ready") {
                break;
            }
        }
        Fanzha {
            child,
            dns: dns.unwrap(),
            ops: ops.unwrap(),
            http,
            https,
            dot,
            doh,
            dir: dir.to_path_buf(),
            log,
            lines: rx,
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Wait for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
            return true;
        }
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if l.contains(needle) {
                return true;
            }
        }
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// GET a path of the ops endpoint.
    /// The value of one metric (`name` with its labels, as exposed), 0 when absent.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.http_get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.ops, path)
    }
}

impl Drop for Fanzha {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of table `[name]` in the test's TOML.
fn table_lines(toml: &str, name: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in toml.lines() {
        if l.trim_start().starts_with('[') {
            inside = l.trim() == format!("[{name}]");
            continue;
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The test's TOML without tables `names`.
fn without_tables(toml: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in toml.lines() {
        if l.trim_start().starts_with('[') {
            inside = names.iter().any(|n| l.trim() == format!("[{n}]"));
        }
        if !inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// Write the test block lists into `dir/lists` and `dir/allow`; returns the TOML.
pub fn lists_toml(dir: &Path) -> String {
    let lists = dir.join("lists");
    let allow = dir.join("allow");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::create_dir_all(&allow).unwrap();
    std::fs::write(
        lists.join("loan.txt"),
        "# category: loan\nblocked.example.test\nscam.example.test\n",
    )
    .unwrap();
    std::fs::write(
        lists.join("phish.txt"),
        "# category: phishing\n# match: exact\nparent.example.test\n",
    )
    .unwrap();
    std::fs::write(allow.join("ok.txt"), "ok.blocked.example.test\n").unwrap();
    "[blocklist]\ndirs = [\"lists\"]\nallow_dirs = [\"allow\"]\n".to_string()
}

/// Categories and the Chinese title their warning page shows.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("loan", "虚假网络贷款"),
    ("task-scam", "网络刷单返利"),
    ("investment", "杀猪盘"),
    ("impersonation", "冒充公检法"),
    ("impersonation-boss", "冒充领导"),
    ("fake-service", "冒充电商、物流客服"),
    ("phishing", "钓鱼网站"),
];

/// One list per category, each blocking `<category>.scam.test`.
pub fn category_lists(dir: &std::path::Path) -> String {
    let lists = dir.join("wlists");
    std::fs::create_dir_all(&lists).unwrap();
    for (c, _) in CATEGORIES {
        std::fs::write(
            lists.join(format!("{c}.txt")),
            format!("# category: {c}\n{c}.scam.test\n"),
        )
        .unwrap();
    }
    "[blocklist]\ndirs = [\"wlists\"]\nallow_dirs = []\n[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n".into()
}

/// Send one query for each of `r{i}.scam.test` (`i` in `range`), waiting for each
/// answer (the report tests' lists block them).
pub fn query_names(f: &Fanzha, range: std::ops::Range<usize>) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1500];
    for i in range {
        let q = make_query(
            &format!("r{i}.scam.test."),
            hickory_proto::rr::RecordType::A,
            false,
        )
        .to_vec()
        .unwrap();
        s.send_to(&q, f.dns).unwrap();
        s.recv_from(&mut buf)
            .expect("every blocked query is answered");
    }
}
