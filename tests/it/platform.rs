//! Appliances and the real district platform end to end: three appliances report
//! through an outage of the platform and every hit is stored exactly once; an appeal
//! made on a warning page travels to the district, is accepted, and `fanzha publish`
//! carries the unblock to the appliance through the signed feed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::rr::RecordType;

fn appliance_toml(dir: &Path, name: &str, street: &str, platform: SocketAddr) -> String {
    let lists = dir.join("lists");
    std::fs::create_dir_all(&lists).unwrap();
    let names: String = (0..1000).map(|i| format!("r{i}.scam.test\n")).collect();
    std::fs::write(lists.join("l.txt"), format!("# category: loan\n{names}")).unwrap();
    format!(
        "[blocklist]\ndirs = [\"lists\"]\nallow_dirs = []\n[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n\
         [report]\nurl = \"http://{platform}/v1/events\"\nsecret = \"{SECRET}\"\nappliance = \"{name}\"\nspool_dir = \"spool\"\n\
         dedup_window = 0\nmax_backoff = 1\n[[places]]\ncidr = \"127.0.0.0/8\"\ndistrict = \"滨江区\"\nstreet = \"{street}\"\ncommunity = \"{street}一社区\"\n"
    )
}

/// Hits per street as the district's export says.
fn hits_by_street(p: &DistrictPlatform, session: &str) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = p
        .csv(session, "places")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].parse().unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn three_appliances_report_through_an_outage_and_nothing_is_lost_or_doubled() {
    let pdir = tempfile::tempdir().unwrap();
    let names = ["bj-01", "bj-02", "bj-03"];
    let mut platform = DistrictPlatform::start(pdir.path(), &names);
    let streets = ["一街道", "二街道", "三街道"];
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let appliances: Vec<Fanzha> = (0..3)
        .map(|i| {
            Fanzha::start(
                dirs[i].path(),
                &appliance_toml(dirs[i].path(), names[i], streets[i], platform.addr),
            )
        })
        .collect();
    for f in &appliances {
        query_names(f, 0..300);
    }
    // The platform dies (SIGKILL: batches in flight may have been committed without
    // their answer), the appliances go on blocking and spooling, and it comes back.
    std::thread::sleep(Duration::from_millis(300));
    platform.kill();
    for f in &appliances {
        query_names(f, 300..600);
    }
    std::thread::sleep(Duration::from_secs(2));
    platform.restart();
    let (session, _) = platform.login();
    let want: Vec<(String, u64)> = {
        let mut w: Vec<_> = streets.iter().map(|s| (s.to_string(), 600)).collect();
        w.sort();
        w
    };
    let t = Instant::now();
    let mut got = hits_by_street(&platform, &session);
    while got != want && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(250));
        got = hits_by_street(&platform, &session);
    }
    assert_eq!(
        got, want,
        "hits per street after the outage (600 each sent)"
    );
    // Every appliance has sent everything: nothing waits to arrive late and double.
    for f in &appliances {
        assert_eq!(
            f.metric("fanzha_report_events_total{outcome=\"sent\"}"),
            600.0,
            "{}",
            f.log_text()
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(hits_by_street(&platform, &session), want);
    // Each appliance's health is on the district's page.
    let health = platform.csv(&session, "appliances");
    for n in names {
        assert!(
            health.iter().any(|l| l.starts_with(&format!("{n},"))),
            "{health:?}"
        );
    }
    // One case per community (one client, one day), each with its 600 hits.
    let cases = platform.csv(&session, "cases");
    assert_eq!(cases.len(), 3, "{cases:?}");
    assert!(cases.iter().all(|c| c.contains(",600,")), "{cases:?}");
}

fn sinkholed(f: &Fanzha, name: &str) -> bool {
    ips(&udp(f.dns, &format!("{name}."), RecordType::A))
        == vec![IpAddr::V4(Ipv4Addr::new(10, 53, 53, 53))]
}

#[test]
fn an_appeal_becomes_an_unblock_through_the_feed() {
    let h = Hierarchy::start();
    let pdir = tempfile::tempdir().unwrap();
    let platform = DistrictPlatform::start(pdir.path(), &["bj-01"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(&["keygen", "k"], d);
    // The district's feed blocks scam.example.test; the publish config also takes the
    // platform's allow list.
    let lists = d.join("pub-lists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(
        lists.join("loan.txt"),
        "# category: loan\nscam.example.test\n",
    )
    .unwrap();
    let allow_dir = pdir.path().join("state/allowlists");
    std::fs::write(
        d.join("pub.toml"),
        format!(
            "[blocklist]\ndirs = [\"pub-lists\"]\nallow_dirs = [\"{}\"]\n",
            allow_dir.display()
        ),
    )
    .unwrap();
    let publish = || {
        run_ok(
            &[
                "publish", "--config", "pub.toml", "--key", "k.key", "--out", "www", "--valid",
                "7d", "--force",
            ],
            d,
        )
    };
    publish();
    let nginx = Nginx::start(&d.join("www"), &d.join("nginx"));
    let toml = format!(
        "{}[sinkhole]\nipv4 = \"10.53.53.53\"\n[feed]\nurl = \"{}\"\npublic_key_file = \"k.pub\"\ntls_ca = \"{}\"\npoll = \"1s\"\n\
         [report]\nurl = \"http://{}/v1/events\"\nsecret = \"{SECRET}\"\nappliance = \"bj-01\"\nspool_dir = \"spool\"\nmax_backoff = 1\n\
         [[places]]\ncidr = \"127.0.0.0/8\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\n",
        h.resolver_toml(),
        nginx.url("manifest.json"),
        nginx.ca_pem.display(),
        platform.addr
    );
    std::fs::create_dir_all(d.join("lists")).unwrap();
    let f = Fanzha::start(
        d,
        &format!("[blocklist]\ndirs = [\"lists\"]\nallow_dirs = []\n{toml}"),
    );
    let host = "landing.scam.example.test";
    let t = Instant::now();
    while !sinkholed(&f, host) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sinkholed(&f, host), "the feed blocks it: {}", f.log_text());

    // A resident appeals from the warning page.
    let web = f.http.unwrap();
    let page = http_get_host(web, host, "/").body;
    let at = page
        .find("name=\"token\" value=\"")
        .expect("the appeal form")
        + 20;
    let token = &page[at..at + page[at..].find('"').unwrap()];
    let form =
        format!("host={host}&token={token}&reason=%E8%BF%99%E6%98%AF%E6%88%91%E7%9A%84%E5%BA%97");
    let req = format!(
        "POST /.well-known/fanzha/appeal HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    assert_eq!(http_raw(web, req.as_bytes()).status, 200);

    // It reaches the district's appeal queue.
    let (session, csrf) = platform.login();
    let t = Instant::now();
    let mut waiting = platform.csv(&session, "appeals");
    while waiting.is_empty() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
        waiting = platform.csv(&session, "appeals");
    }
    assert_eq!(
        waiting.len(),
        1,
        "the appeal did not arrive: {}\n{}",
        f.log_text(),
        std::fs::read_to_string(pdir.path().join("platform.log")).unwrap_or_default()
    );
    assert!(
        waiting[0].contains(host) && waiting[0].contains("这是我的店"),
        "{waiting:?}"
    );
    let id = waiting[0].split(',').next().unwrap().to_string();

    // Accepted with a reason; the allow list file has the name; publish; the appliance
    // resolves it within seconds.
    let accepted = Instant::now();
    let r = platform.request("POST", &format!("/appeals/{id}"), &session, Some(&format!("csrf={csrf}&decision=accept&reason=%E6%A0%B8%E5%AE%9E%E4%B8%BA%E6%AD%A3%E5%B8%B8%E5%BA%97%E9%93%BA")));
    assert_eq!(r.status, 303, "{}", r.body);
    let served = http_get(platform.addr, "/v1/allowlist.txt").1;
    assert!(
        served.contains(&format!("{host} # appeal {id}")),
        "{served}"
    );
    assert!(
        std::fs::read_to_string(allow_dir.join("appeals.txt"))
            .unwrap()
            .contains(host)
    );
    publish();
    let t = Instant::now();
    while sinkholed(&f, host) && t.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = udp(f.dns, &format!("{host}."), RecordType::A);
    assert_eq!(
        ips(&m),
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66))],
        "{}",
        f.log_text()
    );
    eprintln!(
        "appeal accepted → the appliance resolves the name: {:.1} s",
        accepted.elapsed().as_secs_f64()
    );
    // The rest of the blocked domain stays blocked.
    assert!(sinkholed(&f, "other.scam.example.test"));
    assert!(
        platform.csv(&session, "appeals").is_empty(),
        "no appeal left waiting"
    );
}
