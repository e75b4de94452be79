//! The signed list feed end to end: `fanzha publish` writes it, a real nginx serves it
//! over HTTPS with a test CA, `fanzha serve` follows it. New names block within
//! seconds; a tampered file, an older serial and an expired manifest are refused
//! while the old list keeps serving; an offline restart still blocks.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::rr::RecordType;

fn blocked(f: &Fanzha, name: &str) -> bool {
    let m = udp(f.dns, &format!("{name}."), RecordType::A);
    ips(&m) == vec![IpAddr::V4(Ipv4Addr::new(10, 53, 53, 53))]
}

fn wait_blocked(f: &Fanzha, name: &str, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if blocked(f, name) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn polls(f: &Fanzha, outcome: &str) -> f64 {
    f.metric(&format!("fanzha_feed_polls_total{{outcome=\"{outcome}\"}}"))
}

/// Wait until the `outcome` count passes `above`.
fn wait_polls(f: &Fanzha, outcome: &str, above: f64) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if polls(f, outcome) > above {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn newest_list(www: &Path) -> std::path::PathBuf {
    let mut lists: Vec<_> = std::fs::read_dir(www)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "fst"))
        .collect();
    lists.sort();
    lists.pop().unwrap()
}

/// The appliance's config: the sample lists, the hierarchy, and the feed on `nginx`.
fn feed_toml(d: &Path, h: &Hierarchy, nginx: &Nginx) -> String {
    format!(
        "{}{}[sinkhole]\nipv4 = \"10.53.53.53\"\n[feed]\nurl = \"{}\"\npublic_key_file = \"k.pub\"\ntls_ca = \"{}\"\npoll = \"1s\"\n",
        lists_toml(d),
        h.resolver_toml(),
        nginx.url("manifest.json"),
        nginx.ca_pem.display()
    )
}

#[test]
fn appliances_follow_the_signed_feed_and_refuse_what_is_not_the_districts() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(&["keygen", "k"], d);
    publish_loan(d, &["first-scam.test"], "7d");
    // The minisign tool itself verifies what fanzha signed.
    let www = d.join("www");
    let first_manifest = std::fs::read(www.join("manifest.json")).unwrap();
    let first_sig = std::fs::read(www.join("manifest.json.minisig")).unwrap();
    let ok = Command::new("minisign")
        .args(["-Vm", "manifest.json", "-p", "../k.pub"])
        .current_dir(&www)
        .output()
        .expect("minisign (Debian package minisign; scripts/test.sh installs it)");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let nginx = Nginx::start(&www, &d.join("nginx"));
    let toml = feed_toml(d, &h, &nginx);
    let f = Fanzha::start(d, &toml);
    assert!(
        wait_blocked(&f, "www.first-scam.test", Duration::from_secs(10)).is_some(),
        "{}",
        f.log_text()
    );
    // The feed's list replaces the local directories.
    assert!(!blocked(&f, "blocked.example.test"));

    // A new publish reaches the appliance within 5 s, every time.
    let mut took = Vec::new();
    for i in 0..5 {
        let name = format!("new-{i}.scam.test");
        let names = ["first-scam.test", name.as_str()];
        publish_loan(d, &names, "7d");
        let t = wait_blocked(&f, &name, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{name} not blocked within 5 s\n{}", f.log_text()));
        took.push(t);
    }
    took.sort();
    eprintln!(
        "publish → blocked: p50 {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    let serving = f.metric("fanzha_feed_serial");
    assert!(serving > 0.0);
    // `fanzha ctl status` says which feed serial serves.
    let out = Command::new(bin())
        .args(["ctl", "--json", "--config"])
        .arg(d.join("fanzha.toml"))
        .arg("status")
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["feed"]["serial"].as_f64(), Some(serving), "{st}");
    assert_eq!(st["feed"]["expired"], false);

    // A tampered list file: refused, the old list serves on.
    publish_loan(d, &["first-scam.test", "tampered.scam.test"], "7d");
    let list = newest_list(&www);
    let mut bytes = std::fs::read(&list).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    std::fs::write(&list, bytes).unwrap();
    let before = polls(&f, "refused_signature") + polls(&f, "refused_checksum");
    let t0 = Instant::now();
    while polls(&f, "refused_signature") + polls(&f, "refused_checksum") <= before {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", f.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!blocked(&f, "tampered.scam.test"));
    assert!(
        blocked(&f, "new-4.scam.test"),
        "the old list must keep serving"
    );
    assert_eq!(f.metric("fanzha_feed_serial"), serving);

    // The first manifest again (validly signed, an older serial): a rollback, refused.
    let before = polls(&f, "refused_serial");
    std::fs::write(www.join("manifest.json.minisig"), &first_sig).unwrap();
    std::fs::write(www.join("manifest.json"), &first_manifest).unwrap();
    // As the first publish served it (its own mtime, so its own ETag).
    std::fs::File::options()
        .write(true)
        .open(www.join("manifest.json"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    assert!(wait_polls(&f, "refused_serial", before), "{}", f.log_text());
    assert!(blocked(&f, "new-4.scam.test"));
    assert!(!blocked(&f, "new-0.scam.test") || blocked(&f, "new-4.scam.test"));

    // An expired manifest: refused; the old list serves on.
    let before = polls(&f, "refused_expired");
    publish_loan(d, &["first-scam.test", "expired.scam.test"], "0s");
    assert!(
        wait_polls(&f, "refused_expired", before),
        "{}",
        f.log_text()
    );
    assert!(!blocked(&f, "expired.scam.test"));
    assert!(blocked(&f, "new-4.scam.test"));

    // Offline restart: nginx gone, the last verified list still blocks at once.
    drop(f);
    drop(nginx);
    let f = Fanzha::start(d, &toml);
    assert!(blocked(&f, "new-4.scam.test"), "{}", f.log_text());
    assert_eq!(f.metric("fanzha_feed_serial"), serving);

    // state.json lost (deleted, a disk fault), and the first manifest (validly
    // signed, an older serial) offered again: the signed manifest kept beside the
    // list still holds the floor.
    drop(f);
    let feed_dir = d.join("state").join("feed");
    std::fs::remove_file(feed_dir.join("state.json")).unwrap();
    assert!(feed_dir.join("accepted.json").is_file());
    std::fs::write(www.join("manifest.json.minisig"), &first_sig).unwrap();
    std::fs::write(www.join("manifest.json"), &first_manifest).unwrap();
    let nginx = Nginx::start(&www, &d.join("nginx"));
    let toml = feed_toml(d, &h, &nginx);
    let f = Fanzha::start(d, &toml);
    assert_eq!(f.metric("fanzha_feed_serial"), serving, "{}", f.log_text());
    assert!(wait_polls(&f, "refused_serial", 0.0), "{}", f.log_text());
    assert!(blocked(&f, "new-4.scam.test"));
    assert_eq!(f.metric("fanzha_feed_serial"), serving);
}

#[test]
fn a_feed_set_by_sighup_is_followed_without_a_restart() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(&["keygen", "k"], d);
    publish_loan(d, &["reloaded-feed.scam.test"], "7d");
    let www = d.join("www");
    let nginx = Nginx::start(&www, &d.join("nginx"));
    // First the local lists alone.
    let local = format!(
        "{}{}[sinkhole]\nipv4 = \"10.53.53.53\"\n",
        lists_toml(d),
        h.resolver_toml()
    );
    let f = Fanzha::start(d, &local);
    assert!(blocked(&f, "blocked.example.test"));
    assert!(!blocked(&f, "reloaded-feed.scam.test"));
    // The feed set in the file, then SIGHUP: followed, and its list replaces the
    // local ones, with no restart pending.
    let cfg = d.join("fanzha.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let with_feed = feed_toml(d, &h, &nginx);
    let feed_part = &with_feed[with_feed.find("[feed]").unwrap()..];
    std::fs::write(&cfg, format!("{text}\n{feed_part}")).unwrap();
    f.signal("HUP");
    assert!(
        wait_blocked(&f, "reloaded-feed.scam.test", Duration::from_secs(15)).is_some(),
        "{}",
        f.log_text()
    );
    assert!(!blocked(&f, "blocked.example.test"));
    assert_eq!(f.metric("fanzha_config_restart_pending"), 0.0);
    assert!(f.metric("fanzha_feed_serial") > 0.0);
}
