//! The warning page in a real browser: headless Chromium loads the page of every
//! category from the running server, the rendered DOM must show the category's
//! Chinese title and 96110, and a phone-sized screenshot of each is saved under
//! `target/warnpage-screenshots/` for people to look at.
//!
//! Needs Debian's `chromium` and `fonts-noto-cjk` (scripts/test.sh installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

pub fn chromium() -> PathBuf {
    for c in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!(
        "headless Chromium is needed for this test and was not found; run scripts/test.sh, which installs Debian's chromium and fonts-noto-cjk"
    );
}

/// Headless Chromium as the tests run it: no sandbox (it may run as root), no GPU,
/// no QUIC, nothing fetched in the background.
pub const HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--lang=zh-CN",
];

fn run_chromium(port: u16, profile: &Path, extra: &[String], url: &str) -> std::process::Output {
    Command::new(chromium())
        .args(HEADLESS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--host-resolver-rules=MAP * 127.0.0.1:{port}"))
        .args(extra)
        .arg(url)
        .output()
        .expect("running chromium")
}

#[test]
fn every_category_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let toml = category_lists(dir.path());
    let f = Fanzha::start(dir.path(), &toml);
    let port = f.http.unwrap().port();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/warnpage-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (c, title) in CATEGORIES {
        let url = format!("http://www.{c}.scam.test/account/verify");
        let profile = dir.path().join(format!("profile-{c}"));
        let out = run_chromium(port, &profile, &["--dump-dom".into()], &url);
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(
            dom.contains(title),
            "{c}: title missing from the rendered DOM:\n{dom}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(dom.contains("96110"), "{c}");
        assert!(
            dom.contains(&format!("www.{c}.scam.test/account/verify")),
            "{c}"
        );
        let png = shots.join(format!("{c}.png"));
        let _ = std::fs::remove_file(&png);
        let out = run_chromium(
            port,
            &profile,
            &[
                format!("--screenshot={}", png.display()),
                "--window-size=412,1600".into(),
            ],
            &url,
        );
        let meta = std::fs::metadata(&png).unwrap_or_else(|_| {
            panic!(
                "{c}: no screenshot: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(
            meta.len() > 10_000,
            "{c}: screenshot of {} bytes looks empty",
            meta.len()
        );
    }
}

/// Width and height of a PNG file (its IHDR).
fn png_size(png: &Path) -> (u32, u32) {
    let b = std::fs::read(png).unwrap();
    let be = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_kiosk_rotates_the_categories_and_shows_the_weeks_blocks_in_both_orientations() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}[[places]]\ncidr = \"127.0.0.1/32\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\n\
         [[places]]\ncidr = \"127.0.0.2/32\"\ndistrict = \"滨江区\"\nstreet = \"长河街道\"\n",
        category_lists(dir.path())
    );
    let f = Fanzha::start(dir.path(), &toml);
    let port = f.http.unwrap().port();
    // Blocks: three loan names from 西兴街道, two phishing ones from 长河街道.
    for _ in 0..3 {
        udp(
            f.dns,
            "www.loan.scam.test.",
            hickory_proto::rr::RecordType::A,
        );
    }
    for _ in 0..2 {
        let _ = udp_from(
            "127.0.0.2".parse().unwrap(),
            f.dns,
            &make_query(
                "www.phishing.scam.test.",
                hickory_proto::rr::RecordType::A,
                false,
            ),
            std::time::Duration::from_secs(2),
        );
    }
    let blocked = |street: &str| -> f64 {
        let (_, body) = f.http_get("/metrics");
        body.lines()
            .filter(|l| {
                l.starts_with("fanzha_blocked_total{")
                    && l.contains(&format!("street=\"{street}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let (west, river) = (blocked("西兴街道"), blocked("长河街道"));
    assert_eq!((west, river), (3.0, 2.0));

    // The JSON the page refreshes from agrees with the metrics.
    let (code, body) = http_get(
        f.http.unwrap(),
        "/kiosk/figures.json?street=%E8%A5%BF%E5%85%B4%E8%A1%97%E9%81%93",
    );
    assert_eq!(code, 200, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["district"].as_f64(), Some(west + river));
    assert_eq!(j["street"].as_f64(), Some(west));
    assert_eq!(j["street_by_category"]["loan"], 3);
    assert_eq!(j["district_by_category"]["phishing"], 2);

    // Self-contained: nothing fetched from elsewhere; no domain, no resident.
    let (_, html) = http_get(
        f.http.unwrap(),
        "/kiosk?street=%E8%A5%BF%E5%85%B4%E8%A1%97%E9%81%93",
    );
    for bad in [
        "http://",
        "https://",
        "src=",
        "@import",
        "url(",
        "scam.test",
        "127.0.0.",
    ] {
        assert!(!html.contains(bad), "the kiosk page holds {bad:?}");
    }

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/warnpage-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let url = "http://kiosk.local/kiosk?street=%E8%A5%BF%E5%85%B4%E8%A1%97%E9%81%93";
    // Slides of 3 s (the shortest a screen may set), read after 7.5 s: the first
    // refresh is done, and the slides have turned twice.
    let dom = run_chromium(
        port,
        &dir.path().join("profile-kiosk"),
        &["--dump-dom".into(), "--virtual-time-budget=7500".into()],
        &format!("{url}&turn=3"),
    );
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(
        dom.contains("data-index=\"2\""),
        "the slides did not turn:\n{dom}"
    );
    assert!(dom.contains("<span id=\"district\">5</span>"), "{dom}");
    assert!(dom.contains("<span id=\"street\">3</span>"), "{dom}");
    assert!(dom.contains("网络贷款") && dom.contains("96110"), "{dom}");
    assert!(
        !dom.contains("class=\"stale\""),
        "the refresh failed:\n{dom}"
    );
    for (name, w, h) in [
        ("kiosk-landscape", 1920, 1080),
        ("kiosk-portrait", 1080, 1920),
    ] {
        let png = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        let out = run_chromium(
            port,
            &dir.path().join(format!("profile-{name}")),
            &[
                format!("--screenshot={}", png.display()),
                format!("--window-size={w},{h}"),
                "--virtual-time-budget=1500".into(),
            ],
            url,
        );
        assert!(
            png.exists(),
            "{name}: no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(png_size(&png), (w, h), "{name}");
        assert!(
            std::fs::metadata(&png).unwrap().len() > 30_000,
            "{name} looks empty"
        );
    }

    // The figures endpoint unreachable (the page opened from a file): the page
    // keeps the figures it was served with, and says they are not fresh.
    let saved = dir.path().join("kiosk.html");
    std::fs::write(&saved, &html).unwrap();
    let out = run_chromium(
        port,
        &dir.path().join("profile-offline"),
        &["--dump-dom".into(), "--virtual-time-budget=1500".into()],
        &format!("file://{}", saved.display()),
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("<span id=\"district\">5</span>"), "{dom}");
    assert!(dom.contains("class=\"stale\""), "{dom}");
}
