//! The shipped Grafana dashboard and alert rules against a real Prometheus server
//! (Debian's `prometheus`, installed by scripts/test.sh) scraping a running fanzha.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::rr::RecordType;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn need(bin: &str) -> String {
    for d in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = format!("{d}/{bin}");
        if Path::new(&p).exists() {
            return p;
        }
    }
    panic!(
        "{bin} is needed for this test and was not found; run scripts/test.sh, which installs Debian's prometheus"
    );
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn alert_rules_are_valid() {
    let o = Command::new(need("promtool"))
        .args(["check", "rules"])
        .arg(root().join("config/prometheus/fanzha-rules.yml"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn every_dashboard_query_returns_data() {
    let prometheus = need("prometheus");
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    // Counted by community: residents at 127.0.0.1 are in one.
    let toml = format!(
        "[server]\nacl = [\"127.0.0.1/32\"]\n[ops]\nplace_label = \"community\"\n{}{}\
         [[places]]\ncidr = \"127.0.0.1/32\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\n",
        lists_toml(dir.path()),
        h.resolver_toml()
    );
    let f = Fanzha::start(dir.path(), &toml);

    // Prometheus on a free loopback port, scraping fanzha every second.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: fanzha\n    static_configs:\n      - targets: ['{}']\n", f.ops),
    )
    .unwrap();
    let _p = Kill(
        Command::new(prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus"),
    );
    let prom: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Traffic of every kind: allowed, blocked, refused, a warning-page view, an appeal.
    for _ in 0..20 {
        udp(f.dns, "www.example.test.", RecordType::A);
        udp(f.dns, "www.blocked.example.test.", RecordType::A);
        let _ = udp_from(
            "127.0.0.77".parse().unwrap(),
            f.dns,
            &make_query("www.example.test.", RecordType::A, false),
            Duration::from_secs(2),
        );
    }
    let http = f.http.unwrap();
    let page = http_get_host(http, "www.blocked.example.test", "/").body;
    let i = page.find("name=\"token\" value=\"").unwrap() + 20;
    let token = &page[i..i + 32];
    let form = format!("host=www.blocked.example.test&token={token}&reason=test");
    let r = http_raw(
        http,
        format!("POST /.well-known/fanzha/appeal HTTP/1.1\r\nHost: www.blocked.example.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}", form.len()).as_bytes(),
    );
    assert_eq!(r.status, 200);

    // Wait until Prometheus has a few scrapes.
    let t = Instant::now();
    loop {
        if std::net::TcpStream::connect(prom).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "prometheus did not start"
            );
            std::thread::sleep(Duration::from_millis(250));
            continue;
        }
        let (code, body) = http_get(prom, "/api/v1/query?query=fanzha_build_info");
        if code == 200 && body.contains("\"result\":[{") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "prometheus never scraped fanzha: {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(4));
    // More traffic so that rates over the window are not empty.
    for _ in 0..10 {
        udp(f.dns, "www.example.test.", RecordType::A);
        udp(f.dns, "www.blocked.example.test.", RecordType::A);
    }
    http_get_host(http, "www.blocked.example.test", "/");
    std::thread::sleep(Duration::from_secs(3));

    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("config/grafana/fanzha-dashboard.json")).unwrap(),
    )
    .unwrap();
    // Importing asks for a Prometheus data source, and keeps one uid across imports.
    assert!(dash["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(dash["__inputs"][0]["pluginId"], "prometheus");
    // A freshness panel shows the stalest appliance, not the freshest.
    let text = dash.to_string();
    assert!(!text.contains("max(fanzha_blocklist_loaded_timestamp_seconds"));
    let mut checked = 0;
    // Every panel at the street level; the ones with the place variables at the
    // community level too, which must name the community.
    let panels = dash["panels"].as_array().unwrap();
    let levels = panels.iter().flat_map(|p| {
        let uses = p.to_string().contains("$level");
        ["street", "community"]
            .into_iter()
            .filter(move |l| *l == "street" || uses)
            .map(move |l| (p, l))
    });
    for (panel, level) in levels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "30s")
                .replace("$instance", ".*")
                .replace("$level", level)
                .replace("$place", ".*");
            let q: String =
                percent_encoding::utf8_percent_encode(&expr, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            let (code, body) = http_get(prom, &format!("/api/v1/query?query={q}"));
            assert_eq!(code, 200, "{expr}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let n = v["data"]["result"].as_array().map(|a| a.len()).unwrap_or(0);
            assert!(
                n > 0,
                "panel {:?}: no data for {expr}: {body}",
                panel["title"]
            );
            if level == "community" {
                assert!(body.contains("缤纷社区"), "{expr}: {body}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 15);
    // no hard-coded data-source UIDs: every panel uses the variable
    assert!(
        dash["panels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["datasource"]["uid"] == "${datasource}")
    );
}
