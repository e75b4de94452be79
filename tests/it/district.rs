//! The whole district in a box, on loopback: `fanzha publish` writes a signed feed,
//! nginx serves it over HTTPS with a test CA, three `fanzha serve` follow it, dnsdist
//! balances queries over them with the PROXY protocol, and a platform receives hits;
//! all in a private network namespace, on its loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

const SINK: Ipv4Addr = Ipv4Addr::new(10, 53, 53, 53);
/// Where the residents ask from (the places map it to a street).
const RESIDENT: &str = "127.0.0.5";
/// Where the test asks the appliances directly from (not a proxy_from sender).
const DIRECT: &str = "127.0.0.2";

fn publish(dir: &Path, names: &[String], valid: &str) {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    publish_loan(dir, &names, valid);
}

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// Ask `to` from `from`; the A records of the answer (None: no answer in 1 s).
fn ask(from: &str, to: SocketAddr, name: &str) -> Option<Vec<IpAddr>> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.send_to(&query(name, 7), to).unwrap();
    let mut buf = [0u8; 1500];
    let n = s.recv(&mut buf).ok()?;
    Some(ips(&Message::from_vec(&buf[..n]).unwrap()))
}

fn blocks(f: &Fanzha, name: &str) -> bool {
    ask(DIRECT, f.dns, name) == Some(vec![IpAddr::V4(SINK)])
}

struct Dnsdist {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Dnsdist {
    fn start(dir: &Path, backends: &[SocketAddr]) -> Dnsdist {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut conf = format!(
            "setLocal(\"{addr}\")\nsetACL({{\"127.0.0.0/8\"}})\nsetSecurityPollSuffix(\"\")\n"
        );
        for (i, b) in backends.iter().enumerate() {
            conf.push_str(&format!(
                "newServer({{address=\"{b}\", name=\"a{i}\", useProxyProtocol=true, checkName=\"localhost.\", \
                 checkType=\"A\", mustResolve=true, checkInterval=1, maxCheckFailures=1, rise=1}})\n"
            ));
        }
        conf.push_str("setServerPolicy(leastOutstanding)\n");
        let path = dir.join("dnsdist.conf");
        std::fs::write(&path, conf).unwrap();
        let log = dir.join("dnsdist.log");
        let child = Command::new("dnsdist")
            .args(["--supervised", "--disable-syslog", "-C"])
            .arg(&path)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsdist (Debian package dnsdist; scripts/test.sh installs it)");
        let d = Dnsdist { child, addr, log };
        assert!(
            d.wait_log(
                |l| l.matches("as 'up'").count() >= backends.len(),
                Duration::from_secs(15)
            ),
            "dnsdist did not see every appliance up:\n{}",
            d.log_text()
        );
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, ok: impl Fn(&str) -> bool, within: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < within {
            if ok(&self.log_text()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Dnsdist {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn appliance(root: &Path, i: usize, feed: &str, ca: &Path, platform: SocketAddr) -> Fanzha {
    let dir = root.join(format!("appliance-{i}"));
    std::fs::create_dir_all(dir.join("lists")).unwrap();
    std::fs::copy(root.join("k.pub"), dir.join("k.pub")).unwrap();
    let toml = format!(
        "[server]\nproxy_from = [\"127.0.0.1/32\"]\nacl = [\"127.0.0.0/8\"]\n\
         [blocklist]\ndirs = [\"lists\"]\nallow_dirs = []\n\
         [resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n\
         [sinkhole]\nipv4 = \"{SINK}\"\n\
         [feed]\nurl = \"{feed}\"\npublic_key_file = \"k.pub\"\ntls_ca = \"{}\"\npoll = \"1s\"\n\
         [report]\nurl = \"http://{platform}/hits\"\nsecret = \"{SECRET}\"\nappliance = \"test-appliance\"\n\
         dedup_window = 0\nmax_backoff = 1\n\
         [[places]]\ncidr = \"{RESIDENT}/32\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\n",
        ca.display()
    );
    Fanzha::start(&dir, &toml)
}

fn refusals(f: &Fanzha, outcome: &str) -> f64 {
    f.metric(&format!("fanzha_feed_polls_total{{outcome=\"{outcome}\"}}"))
}

fn wait_all_refuse(apps: &[Fanzha], outcome: &str, before: &[f64]) {
    let t0 = Instant::now();
    while apps
        .iter()
        .zip(before)
        .any(|(f, b)| refusals(f, outcome) <= *b)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not every appliance refused ({outcome})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run in a throw-away network namespace (only its loopback): the test re-runs
/// itself under `unshare -Urn` and reports what that run printed.
#[test]
fn the_district_in_a_box() {
    if std::env::var_os("FANZHA_DISTRICT_NETNS").is_some() {
        return district_in_a_box();
    }
    let out = Command::new("unshare")
        .args([
            "-Urn",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "district::the_district_in_a_box",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FANZHA_DISTRICT_NETNS", "1")
        .output()
        .expect("unshare (util-linux) runs the test in a throw-away network namespace");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("{e}");
    assert!(
        out.status.success() && o.contains("1 passed"),
        "the district test failed in its network namespace:\n{o}\n{e}"
    );
}

fn district_in_a_box() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    run_ok(&["keygen", "k"], d);
    let mut names = vec!["base.scam.test".to_string()];
    publish(d, &names, "7d");
    let www = d.join("www");
    let first_manifest = std::fs::read(www.join("manifest.json")).unwrap();
    let first_sig = std::fs::read(www.join("manifest.json.minisig")).unwrap();
    let nginx = Nginx::start(&www, &d.join("nginx"));
    let platform = TestPlatform::start("127.0.0.1:0");
    let apps: Vec<Fanzha> = (0..3)
        .map(|i| {
            appliance(
                d,
                i,
                &nginx.url("manifest.json"),
                &nginx.ca_pem,
                platform.addr,
            )
        })
        .collect();
    for f in &apps {
        let t0 = Instant::now();
        while !blocks(f, "www.base.scam.test.") {
            assert!(t0.elapsed() < Duration::from_secs(10), "{}", f.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let dnsdist = Dnsdist::start(d, &apps.iter().map(|f| f.dns).collect::<Vec<_>>());

    // 1. A publish of one new name: every appliance blocks it within 5 s.
    let mut took = Vec::new();
    for i in 0..20 {
        let name = format!("n{i}.scam.test");
        names.push(name.clone());
        publish(d, &names, "7d");
        let t0 = Instant::now();
        let mut pending: Vec<&Fanzha> = apps.iter().collect();
        while !pending.is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{name} not blocked everywhere within 5 s"
            );
            pending.retain(|f| !blocks(f, &format!("{name}.")));
            std::thread::sleep(Duration::from_millis(20));
        }
        took.push(t0.elapsed());
    }
    took.sort();
    eprintln!(
        "publish → blocked on all three: p50 {:?}, max {:?} over {} publishes",
        took[took.len() / 2],
        took[took.len() - 1],
        took.len()
    );

    // 2. A tampered list, an older serial, an expired manifest: refused by all three.
    let before: Vec<f64> = apps
        .iter()
        .map(|f| refusals(f, "refused_checksum") + refusals(f, "refused_signature"))
        .collect();
    let mut tampered = names.clone();
    tampered.push("tampered.scam.test".into());
    publish(d, &tampered, "7d");
    let mut lists: Vec<PathBuf> = std::fs::read_dir(&www)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "fst"))
        .collect();
    lists.sort();
    let newest = lists.pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&newest, bytes).unwrap();
    let t0 = Instant::now();
    while apps
        .iter()
        .zip(&before)
        .any(|(f, b)| refusals(f, "refused_checksum") + refusals(f, "refused_signature") <= *b)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "a tampered list was not refused everywhere"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The first publish again, validly signed: an older serial, a rollback.
    let before: Vec<f64> = apps.iter().map(|f| refusals(f, "refused_serial")).collect();
    std::fs::write(www.join("manifest.json.minisig"), &first_sig).unwrap();
    std::fs::write(www.join("manifest.json"), &first_manifest).unwrap();
    // As the first publish served it (its own mtime, so its own ETag).
    std::fs::File::options()
        .write(true)
        .open(www.join("manifest.json"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    wait_all_refuse(&apps, "refused_serial", &before);
    let before: Vec<f64> = apps
        .iter()
        .map(|f| refusals(f, "refused_expired"))
        .collect();
    publish(d, &names, "0s");
    wait_all_refuse(&apps, "refused_expired", &before);
    for f in &apps {
        assert!(
            blocks(f, "n19.scam.test."),
            "the old list must keep serving"
        );
        assert!(!blocks(f, "tampered.scam.test."));
    }

    // 3. Residents through dnsdist: each hit reaches the platform with the resident's
    //    address and place.
    for i in 0..6 {
        // One rule each: hits of one client and rule within a flush are one event.
        let got = ask(RESIDENT, dnsdist.addr, &format!("r{i}.n{i}.scam.test."));
        assert_eq!(got, Some(vec![IpAddr::V4(SINK)]), "{}", dnsdist.log_text());
    }
    let t0 = Instant::now();
    let arrived = |i: usize| {
        platform
            .streets
            .lock()
            .unwrap()
            .get(&format!("r{i}.n{i}.scam.test"))
            .cloned()
    };
    while (0..6).any(|i| arrived(i).is_none()) {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the hits did not reach the platform: {:?}",
            platform.streets.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..6 {
        assert_eq!(arrived(i).as_deref(), Some("西兴街道"));
    }
    let clients = platform.clients.lock().unwrap().clone();
    assert!(clients.contains(RESIDENT), "{clients:?}");
    assert!(
        !clients.contains("127.0.0.1"),
        "dnsdist's own address reached the platform: {clients:?}"
    );

    // 4. One appliance killed under 2k qps: only its in-flight queries go unanswered,
    //    and the health check takes it out within a few seconds.
    let (sent, answered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (sent, answered, stop, to) =
            (sent.clone(), answered.clone(), stop.clone(), dnsdist.addr);
        std::thread::spawn(move || {
            let s = UdpSocket::bind((RESIDENT, 0)).unwrap();
            s.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 1500];
            let t0 = Instant::now();
            let mut id: u16 = 0;
            while !stop.load(Ordering::Relaxed) {
                // 2,000 queries a second, 2 every millisecond.
                let due = (t0.elapsed().as_millis() as u64) * 2;
                while sent.load(Ordering::Relaxed) < due {
                    id = id.wrapping_add(1);
                    let _ = s.send_to(&query(&format!("q{id}.n1.scam.test."), id), to);
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                while s.recv(&mut buf).is_ok() {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let end = Instant::now() + Duration::from_secs(3);
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            while Instant::now() < end {
                if s.recv(&mut buf).is_ok() {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let mut apps = apps;
    let mut victim = apps.remove(1);
    let killed = Instant::now();
    victim.child.kill().unwrap();
    let _ = victim.child.wait();
    let out = dnsdist.wait_log(
        |l| l.contains("a1 (") && l.contains("as 'down'"),
        Duration::from_secs(5),
    );
    let out_after = killed.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let (s, a) = (
        sent.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed),
    );
    eprintln!(
        "killed one of three under 2k qps: {s} sent, {} unanswered; out of rotation after {out_after:?}",
        s - a
    );
    assert!(
        out,
        "dnsdist did not take the dead appliance out:\n{}",
        dnsdist.log_text()
    );
    assert!(s >= 10_000, "the load did not run: {s}");
    // What was in flight to the dead appliance when it died (dnsdist's outstanding
    // queries to it); leastOutstanding sends it nothing more once they pile up.
    assert!(s - a <= 50, "{} of {s} unanswered", s - a);
    drop(nginx);
}

#[test]
fn the_shipped_dnsdist_config_is_valid() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dnsdist/dnsdist.conf");
    let out = Command::new("dnsdist")
        .arg("--check-config")
        .arg("-C")
        .arg(&conf)
        .output()
        .expect("dnsdist (Debian package dnsdist; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
