//! Per-place policy and shadow lists, through the real server: clients of three
//! places (three loopback addresses) get their own place's action for a category;
//! a shadow list's names resolve as usual while each match is counted, reported as
//! "shadow" and listed by `fanzha ctl shadow-report`, which flags the rules that
//! cover a name of the CrUX top list; and one place switches a category from shadow
//! to block by config and SIGHUP alone.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const SINK: Ipv4Addr = Ipv4Addr::new(10, 53, 53, 53);

fn ask(f: &Fanzha, from: [u8; 4], name: &str) -> Message {
    udp_from(
        IpAddr::from(from),
        f.dns,
        &make_query(name, RecordType::A, false),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no answer for {name} from {from:?}\n{}", f.log_text()))
}

fn sunk(m: &Message) -> bool {
    ips(m) == vec![IpAddr::V4(SINK)]
}

fn popular_fixture() -> String {
    format!(
        "{}/tests/fixtures/popular/crux-202607-top10k-hostnames.csv",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn each_place_gets_its_own_action_and_shadow_lists_resolve_but_count() {
    let h = Hierarchy::start();
    let platform = TestPlatform::start("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lists = lists_toml(d);
    // A list on trial: a real name of the hierarchy and a popular name (CrUX).
    std::fs::write(d.join("lists/trial.txt"), "www.example.test\n18comic.vip\n").unwrap();
    let toml = format!(
        "{lists}[[lists]]\npath = \"lists/trial.txt\"\ncategory = \"investment\"\nmode = \"shadow\"\n\
         {}[sinkhole]\nipv4 = \"{SINK}\"\n\
         [report]\nurl = \"http://{}/hits\"\nsecret = \"{SECRET}\"\nappliance = \"test-appliance\"\n\
         dedup_window = 0\nmax_backoff = 1\n\
         [[policies]]\nname = \"watch\"\ncategories = {{ loan = \"shadow\" }}\n\
         [[policies]]\nname = \"strict\"\ncategories = {{ loan = \"nxdomain\" }}\n\
         [[places]]\ncidr = \"127.0.0.2/32\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\npolicy = \"watch\"\n\
         [[places]]\ncidr = \"127.0.0.3/32\"\ndistrict = \"滨江区\"\nstreet = \"长河街道\"\ncommunity = \"江一社区\"\npolicy = \"strict\"\n",
        h.resolver_toml(),
        platform.addr,
    );
    let f = Fanzha::start(d, &toml);
    let (plain, watch, strict) = ([127, 0, 0, 1], [127, 0, 0, 2], [127, 0, 0, 3]);

    // No policy of its own: the list's action (the warning page).
    assert!(sunk(&ask(&f, plain, "blocked.example.test.")));
    // The watching community: resolved as usual, counted as a shadow hit.
    let m = ask(&f, watch, "blocked.example.test.");
    assert!(!sunk(&m), "{m:?}");
    assert_ne!(m.metadata.response_code, ResponseCode::Refused);
    // ... also through a CNAME to a listed name, and that answer is not cached
    // for the others: the next resident of a blocking place is still warned.
    let m = ask(&f, watch, "promo.example.test.");
    assert_eq!(
        ips(&m),
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66))],
        "{m:?}"
    );
    assert!(sunk(&ask(&f, plain, "promo.example.test.")));
    // The strict community: NXDOMAIN.
    let m = ask(&f, strict, "blocked.example.test.");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(ips(&m).is_empty());

    // The shadow list: everyone resolves its names; each match counts.
    let m = ask(&f, plain, "www.example.test.");
    assert_eq!(ips(&m), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
    let _ = ask(&f, strict, "18comic.vip.");
    assert_eq!(
        f.metric("fanzha_shadow_hits_total{category=\"investment\",list=\"trial.txt\"}"),
        2.0
    );
    assert_eq!(
        f.metric("fanzha_shadow_hits_total{category=\"loan\",list=\"loan.txt\"}"),
        2.0
    );
    // Shadow hits are not blocks.
    assert_eq!(
        f.metric("fanzha_blocked_total{category=\"investment\",community=\"\",street=\"\"}"),
        0.0
    );

    // Reported to the platform as shadow events; blocks as blocks.
    let t0 = Instant::now();
    while platform.actions.lock().unwrap().len() < 4 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let actions = platform.actions.lock().unwrap().clone();
    assert_eq!(
        actions.get("www.example.test").map(String::as_str),
        Some("shadow"),
        "{actions:?}"
    );
    assert_eq!(
        actions.get("18comic.vip").map(String::as_str),
        Some("shadow")
    );
    assert!(actions.contains_key("promo.example.test"), "{actions:?}");

    // The shadow report: the rules by hits, the popular one flagged.
    let out = Command::new(bin())
        .args(["ctl", "--json", "--config"])
        .arg(d.join("fanzha.toml"))
        .args(["shadow-report", "--popular", &popular_fixture()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = report["rules"].as_array().unwrap();
    let rule = |r: &str| {
        rules
            .iter()
            .find(|x| x["rule"] == r)
            .unwrap_or_else(|| panic!("{r} not in {report}"))
    };
    assert_eq!(rule("18comic.vip")["popular"], true);
    assert_eq!(rule("18comic.vip")["list"], "trial.txt");
    assert_eq!(rule("www.example.test")["popular"], false);
    assert_eq!(rule("blocked.example.test")["count"], 1);
    assert_eq!(rule("scam.example.test")["category"], "loan");
    let text = Command::new(bin())
        .args(["ctl", "--config"])
        .arg(d.join("fanzha.toml"))
        .args(["shadow-report", "--popular", &popular_fixture()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("18comic.vip") && text.contains("POPULAR"),
        "{text}"
    );

    // The watching community switches loan from shadow to block: config and
    // SIGHUP, no restart. The strict one keeps NXDOMAIN.
    let path = d.join("fanzha.toml");
    let cfg = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, cfg.replace("loan = \"shadow\"", "loan = \"block\"")).unwrap();
    f.signal("HUP");
    let t0 = Instant::now();
    while !sunk(&ask(&f, watch, "blocked.example.test.")) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the switch to block did not apply\n{}",
            f.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = ask(&f, strict, "blocked.example.test.");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(sunk(&ask(&f, watch, "promo.example.test.")));
}

#[test]
fn an_rpz_zone_answers_with_its_own_actions() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lists = lists_toml(d);
    std::fs::write(
        d.join("lists/district.rpz"),
        "$TTL 300\n@ SOA localhost. hostmaster.localhost. 1 300 300 300 300\n@ NS localhost.\n\
         nx.rpz.test CNAME .\n\
         *.wild.rpz.test CNAME .\n\
         nodata.rpz.test CNAME *.\n\
         drop.rpz.test CNAME rpz-drop.\n\
         tcp.rpz.test CNAME rpz-tcp-only.\n\
         data.rpz.test A 192.0.2.77\n\
         data.rpz.test AAAA 2001:db8::77\n\
         data.rpz.test TXT \"fraud warning\" \"call 96110\"\n\
         walled.rpz.test CNAME www.example.test.\n\
         blocked.example.test CNAME rpz-passthru.\n\
         chain2.example.test CNAME .\n",
    )
    .unwrap();
    // The same kind of zone with the category's action instead.
    std::fs::write(d.join("lists/plain.rpz"), "plain.rpz.test CNAME .\n").unwrap();
    let toml = format!(
        "{lists}[[lists]]\npath = \"lists/plain.rpz\"\nrpz_actions = false\n\
         {}[sinkhole]\nipv4 = \"{SINK}\"\n",
        h.resolver_toml(),
    );
    let f = Fanzha::start(d, &toml);
    let q = |name: &str, t: RecordType| udp(f.dns, name, t);

    assert_eq!(
        q("nx.rpz.test.", RecordType::A).metadata.response_code,
        ResponseCode::NXDomain
    );
    // The wildcard covers the names below, not the name itself.
    assert_eq!(
        q("a.b.wild.rpz.test.", RecordType::A)
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    assert!(!sunk(&q("wild.rpz.test.", RecordType::A)));
    let m = q("nodata.rpz.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty(), "{m:?}");
    // Dropped: no answer at all.
    let dropped = udp_from(
        IpAddr::from([127, 0, 0, 1]),
        f.dns,
        &make_query("drop.rpz.test.", RecordType::A, false),
        Duration::from_millis(700),
    );
    assert!(dropped.is_none(), "{dropped:?}");
    // TCP only: TC over UDP; over TCP resolved as usual (NXDOMAIN from the hierarchy,
    // which has no such name), not blocked.
    let m = q("tcp.rpz.test.", RecordType::A);
    assert!(m.metadata.truncation && m.answers.is_empty(), "{m:?}");
    let m = tcp(f.dns, &make_query("tcp.rpz.test.", RecordType::A, false));
    assert!(!m.metadata.truncation, "{m:?}");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Local data, by type; a type it has no data for is NODATA.
    assert_eq!(
        ips(&q("data.rpz.test.", RecordType::A)),
        vec![IpAddr::from([192, 0, 2, 77])]
    );
    assert_eq!(
        ips(&q("data.rpz.test.", RecordType::AAAA)),
        vec!["2001:db8::77".parse::<IpAddr>().unwrap()]
    );
    let txt = q("data.rpz.test.", RecordType::TXT);
    let text: String = txt.answers.iter().map(|r| r.data.to_string()).collect();
    assert!(
        text.contains("fraud warning") && text.contains("call 96110"),
        "{text}"
    );
    let mx = q("data.rpz.test.", RecordType::MX);
    assert_eq!(mx.metadata.response_code, ResponseCode::NoError);
    assert!(mx.answers.is_empty());
    let walled = q("walled.rpz.test.", RecordType::A);
    let cname: String = walled.answers.iter().map(|r| r.data.to_string()).collect();
    assert!(cname.contains("www.example.test"), "{walled:?}");
    // rpz-passthru. allows a name another (local) list blocks.
    assert!(!sunk(&q("blocked.example.test.", RecordType::A)));
    // A CNAME chain that leads to a listed name (chain1 → chain2 → www) gets the
    // listed name's RPZ action, resolved and then from the cache.
    for _ in 0..2 {
        let m = q("chain1.example.test.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    }
    // rpz_actions = false: the category's action (the sinkhole).
    assert!(sunk(&q("plain.rpz.test.", RecordType::A)));
    // Counted as blocked, in the category.
    let (_, m) = f.http_get("/metrics");
    assert!(m.contains("fanzha_blocked_total{category=\"fraud\""), "{m}");
}

#[test]
fn an_rpz_root_wildcard_walls_the_garden_but_for_its_passthru_names() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lists = lists_toml(d);
    std::fs::write(
        d.join("lists/garden.rpz"),
        "$ORIGIN rpz.local.\n*.rpz.local. CNAME .\n\
         www.example.test CNAME rpz-passthru.\nplain.test CNAME rpz-passthru.\n",
    )
    .unwrap();
    let toml = format!(
        "{lists}{}[sinkhole]\nipv4 = \"{SINK}\"\n",
        h.resolver_toml()
    );
    let f = Fanzha::start(d, &toml);
    let q = |name: &str| udp(f.dns, name, RecordType::A);
    assert_eq!(ips(&q("plain.test.")), vec![IpAddr::from([192, 0, 2, 10])]);
    assert_eq!(
        ips(&q("www.example.test.")),
        vec![IpAddr::from([192, 0, 2, 1])]
    );
    for name in [
        "v4only.example.test.",
        "alias.example.test.",
        "anything.invalid.",
    ] {
        let m = q(name);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}: {m:?}"
        );
    }
    assert!(
        f.log_text().contains("RPZ root wildcard"),
        "{}",
        f.log_text()
    );
}
