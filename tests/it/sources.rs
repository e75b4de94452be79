//! `[[sources]]`: public lists fetched by URL from a real nginx over HTTPS. A new
//! version blocks after the next fetch; a failing or oversized source keeps its last
//! good copy; an offline restart still blocks with it; guardrails still apply.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::rr::RecordType;

fn blocked(f: &Fanzha, name: &str) -> bool {
    let m = udp(f.dns, name, RecordType::A);
    ips(&m) == vec![IpAddr::V4(Ipv4Addr::new(10, 53, 53, 53))]
}

fn wait(what: &str, f: &Fanzha, ok: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{what}\n{}",
            f.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fetches(f: &Fanzha, outcome: &str) -> f64 {
    f.metric(&format!(
        "fanzha_source_fetches_total{{outcome=\"{outcome}\",source=\"phish\"}}"
    ))
}

#[test]
fn a_public_list_by_url_blocks_and_its_last_good_copy_outlives_failures() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let www = d.join("www");
    std::fs::create_dir_all(&www).unwrap();
    // A hosts-format public list, with a public suffix the guardrails must refuse,
    // and an exception for a name the district's own list blocks.
    std::fs::write(
        www.join("phish.txt"),
        "0.0.0.0 first-phish.test\n0.0.0.0 com\n@@||scam.example.test^\n",
    )
    .unwrap();
    let nginx = Nginx::start(&www, &d.join("nginx"));
    let toml = format!(
        "{}{}[sinkhole]\nipv4 = \"10.53.53.53\"\n\
         [[sources]]\nurl = \"{}\"\nname = \"phish\"\ncategory = \"phishing\"\nrefresh = \"1s\"\n\
         max_bytes = 4096\ntls_ca = \"{}\"\n",
        lists_toml(d),
        h.resolver_toml(),
        nginx.url("phish.txt"),
        nginx.ca_pem.display()
    );
    let f = Fanzha::start(d, &toml);
    wait("the source's name is blocked", &f, || {
        blocked(&f, "www.first-phish.test.")
    });
    // The local lists still block; the guardrails refused `com`.
    assert!(blocked(&f, "blocked.example.test."));
    assert!(!blocked(&f, "www.example.com."));
    // Its category is the source's.
    let (code, out, _) = {
        let o = std::process::Command::new(bin())
            .args(["ctl", "--config"])
            .arg(d.join("fanzha.toml"))
            .args(["lookup", "first-phish.test"])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            (),
        )
    };
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("list phish.txt, category phishing"), "{out}");

    // The public list's exception does not unblock the district's name: dropped,
    // counted, and said by `ctl status`.
    assert!(blocked(&f, "scam.example.test."));
    assert_eq!(
        f.metric("fanzha_blocklist_skipped_lines_total{reason=\"source-exception\"}"),
        1.0
    );
    let status = std::process::Command::new(bin())
        .args(["ctl", "--config"])
        .arg(d.join("fanzha.toml"))
        .arg("status")
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("1 line(s) skipped as source-exception"),
        "{status}"
    );
    assert!(
        f.log_text().contains("exception of a fetched list dropped"),
        "{}",
        f.log_text()
    );

    // A new version of the list: blocked after the next fetch.
    std::fs::write(
        www.join("phish.txt"),
        "0.0.0.0 first-phish.test\n0.0.0.0 second-phish.test\n",
    )
    .unwrap();
    wait("the new version is fetched", &f, || {
        blocked(&f, "second-phish.test.")
    });

    // The source fails (gone), then grows past max_bytes: the last copy keeps blocking.
    std::fs::remove_file(www.join("phish.txt")).unwrap();
    let errors = fetches(&f, "error");
    wait("a failed fetch is counted", &f, || {
        fetches(&f, "error") > errors
    });
    assert!(blocked(&f, "second-phish.test."));
    let big: String = (0..400)
        .map(|i| format!("0.0.0.0 big-{i}.phish.test\n"))
        .collect();
    std::fs::write(www.join("phish.txt"), big).unwrap();
    let refused = fetches(&f, "refused");
    wait("an oversized fetch is refused", &f, || {
        fetches(&f, "refused") > refused
    });
    assert!(blocked(&f, "second-phish.test."));
    assert!(!blocked(&f, "big-1.phish.test."));
    assert!(f.metric("fanzha_source_last_success_timestamp_seconds{source=\"phish\"}") > 0.0);

    // Another source, added by SIGHUP alone: fetched and blocking, no restart.
    std::fs::write(www.join("second.txt"), "0.0.0.0 reload-added.test\n").unwrap();
    let cfg = d.join("fanzha.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{text}\n[[sources]]\nurl = \"{}\"\nname = \"second\"\nrefresh = \"1s\"\ntls_ca = \"{}\"\n",
            nginx.url("second.txt"),
            nginx.ca_pem.display()
        ),
    )
    .unwrap();
    f.signal("HUP");
    wait("the source added by SIGHUP blocks", &f, || {
        blocked(&f, "reload-added.test.")
    });
    assert_eq!(f.metric("fanzha_config_restart_pending"), 0.0);

    // Offline restart: the cached copy blocks at once.
    drop(f);
    drop(nginx);
    let f = Fanzha::start(d, &toml);
    assert!(blocked(&f, "second-phish.test."), "{}", f.log_text());
}
