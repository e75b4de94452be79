//! Deltas of the signed feed end to end: `fanzha publish --delta` writes the changes
//! since the previous publish, a real nginx serves them over HTTPS, and an appliance
//! that has the base fetches only the deltas, lays them over the mapped base, and
//! keeps them across a restart; a chain that grows past a fifth of the base becomes
//! a new full list. It also measures what an appliance downloads, next to fetching
//! the full list at every publish (nginx's own count of bytes sent).
//!
//! The bandwidth figure of docs/operating.md comes from a larger run of the same test:
//! `FEED_BASE_NAMES=1000000 FEED_DELTAS=100 FEED_CHANGES=1000 cargo test --release
//! --test it feed_delta:: -- --nocapture`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::rr::RecordType;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `i`th name of the synthetic list.
fn name(i: usize) -> String {
    format!("n{i}.fraud{}.test", i % 997)
}

/// Write the names `live` into the publishing lists, then publish into `www` (as a
/// delta when asked) and into `full` (always a full list: what re-downloading the
/// whole file would cost).
fn publish(dir: &Path, live: &[usize], delta: bool) -> String {
    let lists = dir.join("pub-lists");
    std::fs::create_dir_all(&lists).unwrap();
    let mut text = String::from("# category: loan\n");
    for &i in live {
        text.push_str(&name(i));
        text.push('\n');
    }
    std::fs::write(lists.join("loan.txt"), text).unwrap();
    std::fs::write(
        dir.join("pub.toml"),
        "[blocklist]\ndirs = [\"pub-lists\"]\nallow_dirs = []\n",
    )
    .unwrap();
    let args = |out: &'static str, delta: bool| {
        let mut a = vec![
            "publish", "--config", "pub.toml", "--key", "k.key", "--out", out, "--force",
        ];
        if delta {
            a.push("--delta");
        }
        a
    };
    run_ok(&args("full", false), dir);
    run_ok(&args("www", delta), dir)
}

fn blocked(f: &Fanzha, name: &str) -> bool {
    let m = udp(f.dns, &format!("{name}."), RecordType::A);
    ips(&m) == vec![IpAddr::V4(Ipv4Addr::new(10, 53, 53, 53))]
}

fn wait_serial(f: &Fanzha, serial: f64, within: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if f.metric("fanzha_feed_serial") >= serial {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn an_appliance_takes_small_changes_as_signed_deltas_over_its_mapped_list() {
    let (base_n, steps, changes) = (
        env("FEED_BASE_NAMES", 2000),
        env("FEED_DELTAS", 5),
        env("FEED_CHANGES", 20),
    );
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(&["keygen", "k"], d);
    let mut live: Vec<usize> = (0..base_n).collect();
    let mut next = base_n;
    publish(d, &live, false);
    let nginx = Nginx::start(&d.join("www"), &d.join("nginx"));
    let toml = |n: &Nginx| {
        format!(
            "{}{}[sinkhole]\nipv4 = \"10.53.53.53\"\n[feed]\nurl = \"{}\"\npublic_key_file = \"k.pub\"\ntls_ca = \"{}\"\npoll = \"1s\"\nmax_bytes = 1073741824\n",
            lists_toml(d),
            h.resolver_toml(),
            n.url("manifest.json"),
            n.ca_pem.display()
        )
    };
    let f = Fanzha::start(d, &toml(&nginx));
    let first = manifest(&d.join("www"))["serial"].as_f64().unwrap();
    assert!(
        wait_serial(&f, first, Duration::from_secs(120)),
        "{}",
        f.log_text()
    );
    assert!(blocked(&f, &name(0)));
    let base_fetches = nginx.served().len();

    // Each publish: half the changes remove old names, half add new ones.
    let mut full_bytes = 0u64;
    for step in 0..steps {
        let removed: Vec<usize> = live.drain(..changes / 2).collect();
        let added: Vec<usize> = (next..next + changes - changes / 2).collect();
        next += added.len();
        live.extend(&added);
        let out = publish(d, &live, true);
        assert!(out.contains("delta "), "step {step}: {out}");
        full_bytes += manifest(&d.join("full"))["bytes"].as_u64().unwrap();
        let m = manifest(&d.join("www"));
        let serial = m["serial"].as_f64().unwrap();
        assert_eq!(m["format"], 2);
        assert_eq!(m["deltas"].as_array().unwrap().len(), step + 1);
        assert!(
            wait_serial(&f, serial, Duration::from_secs(60)),
            "step {step}: serial {serial} not taken\n{}",
            f.log_text()
        );
        assert!(blocked(&f, &name(added[0])), "step {step}: added name");
        assert!(!blocked(&f, &name(removed[0])), "step {step}: removed name");
        assert!(blocked(&f, &name(live[0])), "step {step}: kept name");
    }
    // The appliance counts what it serves as the full compile does.
    let m = manifest(&d.join("www"));
    assert_eq!(
        f.metric("fanzha_blocklist_entries{kind=\"total\"}"),
        m["entries"].as_f64().unwrap(),
        "{}",
        f.http_get("/metrics").1
    );

    // What travelled: the list file once, then only manifests and deltas.
    let served = nginx.served();
    let lists: Vec<_> = served
        .iter()
        .filter(|(p, s, _)| p.ends_with(".fst") && *s == 200)
        .collect();
    assert_eq!(lists.len(), 1, "{served:?}");
    let deltas = served
        .iter()
        .filter(|(p, s, _)| p.contains("/delta-") && p.ends_with(".json") && *s == 200)
        .count();
    assert_eq!(deltas, steps, "{served:?}");
    let after_base: u64 = served[base_fetches..].iter().map(|(_, _, b)| b).sum();
    eprintln!(
        "feed bandwidth over {steps} publishes of {changes} changes on a base of {base_n} names: \
         {after_base} bytes downloaded with deltas (manifests and signatures included), \
         {full_bytes} bytes re-downloading the full list each time ({:.1}x)",
        full_bytes as f64 / after_base.max(1) as f64
    );
    assert!(after_base < full_bytes, "deltas cost more than full lists");

    // A restart without the feed server: the base and its deltas, from disk.
    let last_added = name(next - 1);
    let serving = f.metric("fanzha_feed_serial");
    let offline = toml(&nginx);
    drop(f);
    drop(nginx);
    let f = Fanzha::start(d, &offline);
    assert!(blocked(&f, &last_added), "{}", f.log_text());
    assert!(!blocked(&f, &name(0)));
    assert_eq!(f.metric("fanzha_feed_serial"), serving);
    drop(f);

    // A change past a fifth of the base: a full list again, which starts a new chain.
    let nginx = Nginx::start(&d.join("www"), &d.join("nginx2"));
    let f = Fanzha::start(d, &toml(&nginx));
    let big: Vec<usize> = (next..next + base_n / 4 + 1).collect();
    live.extend(&big);
    let out = publish(d, &live, true);
    assert!(out.contains("a full list, not a delta"), "{out}");
    let m = manifest(&d.join("www"));
    assert_eq!(m["format"], 1);
    assert!(m.get("deltas").is_none());
    assert!(
        wait_serial(&f, m["serial"].as_f64().unwrap(), Duration::from_secs(120)),
        "{}",
        f.log_text()
    );
    assert!(blocked(&f, &name(big[0])));
    assert!(blocked(&f, &last_added));
    // The old chain's files are gone from the appliance's state.
    let kept = std::fs::read_dir(d.join("state/feed/deltas"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(kept, 0);
}
