//! The warning page in a real browser: headless Chromium loads the page of every
//! category from the running server, the rendered DOM must show the category's
//! Chinese title and 96110, and a phone-sized screenshot of each is saved under
//! `target/warnpage-screenshots/` for people to look at.
//!
//! Needs Debian's `chromium` and `fonts-noto-cjk` (scripts/test.sh installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn chromium() -> PathBuf {
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

fn run_chromium(port: u16, profile: &Path, extra: &[String], url: &str) -> std::process::Output {
    Command::new(chromium())
        .args([
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
        ])
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
