//! Alerts to the places' own workers, through the real server and a loopback
//! receiver that plays the three robots and checks each one's signature as the robot
//! would: DingTalk's timestamp signature, WeCom's key, the webhook's HMAC of the body.
//! A burst of blocked queries from five places, with a restart in the middle, makes
//! one digest per place with every hit in it; a robot that is down gets its digest
//! after it comes back, across a restart; a wrong DingTalk secret is refused by the
//! receiver and counted by fanzha as refused; and a place given a robot by a reload
//! alerts without a restart.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use base64::Engine as _;
use hickory_proto::rr::RecordType;
use hmac::{KeyInit, Mac};

const DING_SECRET: &str = "SEC-ding-0123456789abcdef";
const HOOK_SECRET: &str = "hook-secret-0123456789";

/// A request the receiver took (its signature checked).
#[derive(Debug, Clone)]
struct Got {
    path: String,
    body: serde_json::Value,
}

/// Three robots on one loopback port.
struct Robots {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    /// Requests whose signature or key was wrong.
    bad: Arc<AtomicU64>,
    /// Requests answered 503 (the path prefixes in `down`).
    refused_down: Arc<AtomicU64>,
    down: Arc<Mutex<HashSet<String>>>,
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn query_param<'a>(path: &'a str, key: &str) -> Option<&'a str> {
    let q = path.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

impl Robots {
    fn start() -> Robots {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Robots {
            addr: l.local_addr().unwrap(),
            got: Arc::default(),
            bad: Arc::default(),
            refused_down: Arc::default(),
            down: Arc::default(),
        };
        let (got, bad, refused, down) = (
            r.got.clone(),
            r.bad.clone(),
            r.refused_down.clone(),
            r.down.clone(),
        );
        std::thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                let (got, bad, refused, down) =
                    (got.clone(), bad.clone(), refused.clone(), down.clone());
                std::thread::spawn(move || serve(s, &got, &bad, &refused, &down));
            }
        });
        r
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn taken(&self, prefix: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn wait(&self, what: &str, timeout: Duration, ok: impl Fn(&Robots) -> bool) {
        let t = Instant::now();
        while !ok(self) {
            assert!(t.elapsed() < timeout, "{what}: not within {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One connection: read requests (Content-Length bodies), check, answer.
fn serve(
    s: TcpStream,
    got: &Mutex<Vec<Got>>,
    bad: &AtomicU64,
    refused: &AtomicU64,
    down: &Mutex<HashSet<String>>,
) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut len, mut signature) = (0usize, String::new());
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or(("", ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "x-fanzha-signature" => signature = v.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let (status, answer) = judge(&path, &signature, &body, got, bad, refused, down);
        let reply = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn judge(
    path: &str,
    signature: &str,
    body: &[u8],
    got: &Mutex<Vec<Got>>,
    bad: &AtomicU64,
    refused: &AtomicU64,
    down: &Mutex<HashSet<String>>,
) -> (u16, &'static str) {
    const OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;
    if down.lock().unwrap().iter().any(|p| path.starts_with(p)) {
        refused.fetch_add(1, Ordering::Relaxed);
        return (503, "{}");
    }
    let good = if path.starts_with("/ding/") {
        // DingTalk: a timestamp within the hour, and its signature under the secret.
        let ts = query_param(path, "timestamp").unwrap_or("0");
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let fresh = (now_ms - ts.parse::<i64>().unwrap_or(0)).abs() < 3_600_000;
        let want = base64::engine::general_purpose::STANDARD.encode(hmac256(
            DING_SECRET.as_bytes(),
            format!("{ts}\n{DING_SECRET}").as_bytes(),
        ));
        let sign = query_param(path, "sign")
            .and_then(|s| percent_encoding::percent_decode_str(s).decode_utf8().ok())
            .map(|s| s.to_string());
        fresh
            && sign.as_deref() == Some(want.as_str())
            && query_param(path, "access_token") == Some("DT")
    } else if path.starts_with("/wecom/") {
        query_param(path, "key") == Some("WK")
    } else if path.starts_with("/hook") {
        signature
            == format!(
                "sha256={}",
                hex::encode(hmac256(HOOK_SECRET.as_bytes(), body))
            )
    } else {
        false
    };
    if !good {
        bad.fetch_add(1, Ordering::Relaxed);
        return if path.starts_with("/hook") {
            (403, "{}")
        } else {
            (200, r#"{"errcode":310000,"errmsg":"sign not match"}"#)
        };
    }
    got.lock().unwrap().push(Got {
        path: path.to_string(),
        body: serde_json::from_slice(body).unwrap_or_default(),
    });
    (200, OK)
}

fn setup(dir: &std::path::Path, robots: &Robots) -> String {
    let lists = dir.join("alists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(
        lists.join("loan.txt"),
        "# category: loan\nl1.test\nl2.test\nl3.test\n",
    )
    .unwrap();
    std::fs::write(
        lists.join("investment.txt"),
        "# category: investment\ni1.test\ni2.test\n",
    )
    .unwrap();
    std::fs::write(dir.join("ding.secret"), format!("{DING_SECRET}\n")).unwrap();
    std::fs::write(dir.join("wrong.secret"), "SEC-not-the-robots-secret\n").unwrap();
    std::fs::write(dir.join("hook.secret"), format!("{HOOK_SECRET}\n")).unwrap();
    let place = |net: u8, community: &str, alert: String| {
        format!(
            "[[places]]\ncidr = \"127.0.{net}.0/24\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"{community}\"\n{alert}\n"
        )
    };
    let mut toml = String::from(
        "[blocklist]\ndirs = [\"alists\"]\nallow_dirs = []\n\
         [resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n\
         [alerts]\ninterval = \"8s\"\ndevices = \"keep\"\nmax_backoff = \"1s\"\n",
    );
    toml += &place(
        1,
        "缤纷社区",
        format!(
            "alert = {{ kind = \"dingtalk\", url = \"{}\", secret_file = \"ding.secret\" }}",
            robots.url("/ding/send?access_token=DT")
        ),
    );
    toml += &place(
        2,
        "江二社区",
        format!(
            "alert = {{ kind = \"webhook\", url = \"{}\", secret_file = \"hook.secret\" }}",
            robots.url("/hook")
        ),
    );
    toml += &place(
        3,
        "星民社区",
        format!(
            "alert = {{ kind = \"wecom\", url = \"{}\" }}",
            robots.url("/wecom/send?key=WK")
        ),
    );
    toml += &place(4, "无机器人社区", String::new());
    toml += &place(
        5,
        "错误密钥社区",
        format!(
            "alert = {{ kind = \"dingtalk\", url = \"{}\", secret_file = \"wrong.secret\" }}",
            robots.url("/ding/wrong?access_token=DT")
        ),
    );
    toml
}

fn block(f: &Fanzha, from: [u8; 4], name: &str, t: RecordType) {
    let m = udp_from(
        IpAddr::from(from),
        f.dns,
        &make_query(name, t, false),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no answer for {name} from {from:?}\n{}", f.log_text()));
    assert!(
        !m.answers.is_empty(),
        "{name} is blocked and sinkholed: {m:?}"
    );
}

fn restart(f: Fanzha, dir: &std::path::Path, toml: &str) -> Fanzha {
    let mut f = f;
    f.signal("TERM");
    let t = Instant::now();
    while f.child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "fanzha did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    Fanzha::start(dir, toml)
}

fn text(g: &Got) -> String {
    let m = &g.body["markdown"];
    m["text"]
        .as_str()
        .or(m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn each_place_gets_one_signed_digest_with_every_hit_across_restarts() {
    let robots = Robots::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &robots);
    let f = Fanzha::start(dir.path(), &toml);
    // Before the restart.
    for (from, name) in [
        ([127, 0, 1, 5], "l1.test"),
        ([127, 0, 1, 5], "www.l2.test"),
        ([127, 0, 1, 5], "i1.test"),
        ([127, 0, 1, 6], "l1.test"),
        ([127, 0, 2, 7], "l1.test"),
        ([127, 0, 2, 7], "l2.test"),
        ([127, 0, 3, 8], "i1.test"),
        ([127, 0, 4, 9], "l1.test"),
        ([127, 0, 5, 9], "l1.test"),
    ] {
        block(&f, from, name, RecordType::A);
    }
    // The same attempt again within a minute (a browser's AAAA, a retry): not
    // counted twice.
    block(&f, [127, 0, 1, 5], "l1.test", RecordType::AAAA);
    block(&f, [127, 0, 1, 5], "l1.test", RecordType::A);
    let f = restart(f, dir.path(), &toml);
    // After it.
    block(&f, [127, 0, 1, 5], "l3.test", RecordType::A);
    block(&f, [127, 0, 2, 8], "i2.test", RecordType::A);

    let wait = Duration::from_secs(20);
    robots.wait("a digest for each of three places", wait, |r| {
        !r.taken("/ding/send").is_empty()
            && !r.taken("/hook").is_empty()
            && !r.taken("/wecom/").is_empty()
    });
    robots.wait("the wrong secret tried and refused", wait, |r| {
        r.bad.load(Ordering::Relaxed) > 0
    });
    // One digest each, however long one waits.
    std::thread::sleep(Duration::from_secs(3));
    let (ding, hook, wecom) = (
        robots.taken("/ding/send"),
        robots.taken("/hook"),
        robots.taken("/wecom/"),
    );
    assert_eq!((ding.len(), hook.len(), wecom.len()), (1, 1, 1));

    let t = text(&ding[0]);
    for want in [
        "滨江区 西兴街道 缤纷社区",
        "拦截访问诈骗网站 5 次，涉及 2 台设备",
        "网络贷款：4 次",
        "杀猪盘：1 次",
        "127.0.1.5（4 次）",
        "127.0.1.6（1 次）",
        "96110",
    ] {
        assert!(
            t.contains(want),
            "{want:?} not in the DingTalk message:\n{t}"
        );
    }
    assert!(!t.contains(".test"), "a message never names a domain:\n{t}");
    let t = text(&wecom[0]);
    assert!(
        t.contains("星民社区")
            && t.contains("拦截访问诈骗网站 1 次，涉及 1 台设备")
            && t.contains("杀猪盘：1 次"),
        "{t}"
    );
    let h = &hook[0].body;
    assert_eq!(h["place"]["community"], "江二社区");
    assert_eq!(
        (h["hits"].as_u64(), h["devices"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        (
            h["categories"]["loan"].as_u64(),
            h["categories"]["investment"].as_u64()
        ),
        (Some(2), Some(1))
    );
    // Those three alone were taken: the place without a robot sent nothing, and
    // the wrong secret was refused by the robot, which fanzha counts.
    assert_eq!(robots.got.lock().unwrap().len(), 3);
    assert!(f.metric("fanzha_alert_digests_total{result=\"refused\"}") >= 1.0);
    let bad_before = robots.bad.load(Ordering::Relaxed);

    // The webhook goes down; a new hit's digest waits, survives a restart, and
    // arrives once the webhook is back.
    robots.down.lock().unwrap().insert("/hook".into());
    block(&f, [127, 0, 2, 7], "l3.test", RecordType::A);
    robots.wait("a try while the webhook is down", wait, |r| {
        r.refused_down.load(Ordering::Relaxed) > 0
    });
    assert!(f.metric("fanzha_alert_digests_total{result=\"retried\"}") >= 1.0);
    assert!(f.metric("fanzha_alert_places_failing") >= 1.0);
    let f = restart(f, dir.path(), &toml);
    robots.down.lock().unwrap().clear();
    robots.wait("the waiting digest after the restart", wait, |r| {
        r.taken("/hook").len() >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let hook = robots.taken("/hook");
    assert_eq!(hook.len(), 2, "delivered once: {hook:?}");
    assert_eq!(hook[1].body["hits"].as_u64(), Some(1));
    assert_ne!(hook[1].body["id"], hook[0].body["id"]);
    assert_eq!(
        f.metric("fanzha_alert_places_failing"),
        1.0,
        "the wrong secret still fails"
    );
    assert!(
        robots.bad.load(Ordering::Relaxed) > bad_before,
        "the refused digest is still tried, after the restart too"
    );
    assert!(
        !f.log_text().contains("DT&"),
        "robot URLs (their tokens) are not logged"
    );
    let cfg = dir.path().join("fanzha.toml");
    let status = run_ok(
        &["ctl", "--config", cfg.to_str().unwrap(), "status"],
        dir.path(),
    );
    assert!(
        status.contains("alerts:    4 place(s) with a robot")
            && status.contains("sent 1")
            && status.contains("1 place(s) FAILING"),
        "{status}"
    );

    // The community without a robot gets one by a config change and a reload, no
    // restart; its next hit reaches it.
    let text_now = std::fs::read_to_string(&cfg).unwrap();
    let with_robot = text_now.replace(
        "community = \"无机器人社区\"\n",
        &format!(
            "community = \"无机器人社区\"\nalert = {{ kind = \"webhook\", url = \"{}\", secret_file = \"hook.secret\" }}\n",
            robots.url("/hook")
        ),
    );
    assert_ne!(text_now, with_robot);
    std::fs::write(&cfg, with_robot).unwrap();
    run_ok(
        &["ctl", "--config", cfg.to_str().unwrap(), "reload"],
        dir.path(),
    );
    block(&f, [127, 0, 4, 9], "i1.test", RecordType::A);
    robots.wait("the new robot's first digest", wait, |r| {
        r.taken("/hook")
            .iter()
            .any(|g| g.body["place"]["community"] == "无机器人社区")
    });
}

#[test]
fn a_reload_changes_the_pacing_and_the_device_names_from_the_next_hit() {
    let robots = Robots::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &robots);
    let slow = toml.replace("interval = \"8s\"", "interval = \"1h\"");
    assert_ne!(slow, toml);
    let f = Fanzha::start(dir.path(), &slow);
    block(&f, [127, 0, 1, 5], "l1.test", RecordType::A);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        robots.taken("/ding/send").is_empty(),
        "an hour has not passed"
    );
    // A digest due a second after its first hit, devices named by their hash.
    let cfg = dir.path().join("fanzha.toml");
    let fast = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("interval = \"1h\"", "interval = \"1s\"")
        .replace("devices = \"keep\"", "devices = \"hash\"");
    assert!(
        fast.contains("interval = \"1s\"") && fast.contains("\"hash\""),
        "{fast}"
    );
    std::fs::write(&cfg, &fast).unwrap();
    f.signal("HUP");
    assert!(
        f.wait_log("[alerts] applied", Duration::from_secs(10)),
        "{}",
        f.log_text()
    );
    block(&f, [127, 0, 1, 6], "l2.test", RecordType::A);
    // The first hit may leave alone, as soon as the reload makes it due.
    let hits = |r: &Robots| -> u64 {
        r.taken("/ding/send")
            .iter()
            .filter_map(|g| {
                let t = text(g);
                let n = t.split("拦截访问诈骗网站 ").nth(1)?.split(' ').next()?;
                n.parse::<u64>().ok()
            })
            .sum()
    };
    robots.wait(
        "both hits, paced as now configured",
        Duration::from_secs(10),
        |r| hits(r) >= 2,
    );
    let t: String = robots.taken("/ding/send").iter().map(text).collect();
    assert!(
        t.contains("127.0.1.5（1 次）"),
        "named as it was when counted:\n{t}"
    );
    assert!(
        !t.contains("127.0.1.6"),
        "named by its hash since the reload:\n{t}"
    );
    assert!(
        !f.log_text().contains("only after a restart"),
        "{}",
        f.log_text()
    );
}
