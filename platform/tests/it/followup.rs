//! The follow-up queue: a community worker records outcomes, the district's figures
//! move, and a device hit again after its case was closed reopens it.

use crate::common::*;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The figure `attr` of `community` in the district's figures table.
fn figure(html: &str, community: &str, attr: &str) -> String {
    let row = html
        .split("<tr>")
        .find(|r| r.contains(&format!("data-community=\"{community}\"")))
        .unwrap_or_else(|| panic!("no row for {community}"));
    let at = row.find(&format!("data-{attr}=\"")).unwrap() + attr.len() + 7;
    row[at..at + row[at..].find('"').unwrap()].to_string()
}

fn case_of(s: &mut Session, device: &str) -> String {
    let csv = s.get("/export/cases.csv").body;
    csv.lines()
        .find(|l| l.contains(device))
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches('\u{feff}')
        .to_string()
}

#[test]
fn a_worker_closes_a_case_and_the_district_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), "", &["a1"]);
    p.user("dora", "district", "");
    p.user("cora", "community", "缤纷社区");
    let place = ("西兴街道", "缤纷社区");
    let t = now_ms() - 2 * 3_600_000;
    let events = [
        hit("01C1", "a1", t, "10.1.2.3", place, "www.loan.top", "loan"),
        hit(
            "01C2",
            "a1",
            t + 60_000,
            "10.1.2.3",
            place,
            "pay.loan.top",
            "loan",
        ),
        hit(
            "01C3",
            "a1",
            t,
            "10.1.2.4",
            place,
            "www.romance.top",
            "romance",
        ),
    ];
    assert_eq!(post_events(p.addr, "a1", "k1", &events).status, 200);
    let mut dora = Session::login(p.addr, "dora");
    let home = dora.get("/").body;
    assert_eq!(figure(&home, "缤纷社区", "open"), "2");
    assert_eq!(figure(&home, "缤纷社区", "median"), "-1", "no contact yet");
    assert_eq!(
        p.metric("fanzha_platform_open_cases", "community=\"缤纷社区\""),
        2.0
    );

    // The worker's queue comes first on their page; they phone, then dissuade.
    let mut cora = Session::login(p.addr, "cora");
    let page = cora.get("/").body;
    assert!(page.find("id=\"queue\"").unwrap() < page.find("id=\"figures\"").unwrap());
    let id = case_of(&mut cora, "10.1.2.3");
    let case = cora.get(&format!("/cases/{id}")).body;
    assert!(
        case.contains("pay.loan.top") && case.contains("案件 loan-17"),
        "the hits and the rule's case number"
    );
    let csrf = cora.csrf.clone();
    let r = cora.post_form(
        &format!("/cases/{id}/outcome"),
        &[
            ("csrf", &csrf),
            ("outcome", "phone"),
            ("note", "电话已接通"),
        ],
    );
    assert_eq!(r.status, 303);
    let r = cora.post_form(
        &format!("/cases/{id}/outcome"),
        &[
            ("csrf", &csrf),
            ("outcome", "dissuaded"),
            ("note", "居民已知晓"),
        ],
    );
    assert_eq!(r.status, 303);
    let case = cora.get(&format!("/cases/{id}")).body;
    assert!(
        case.contains("id=\"state\" class=\"closed\""),
        "dissuaded closes the case"
    );
    assert!(case.contains("电话已接通") && case.contains("居民已知晓"));

    // The district's figures change: one open, contact within about two hours, and
    // the closed case was closed within 24 h.
    let home = dora.get("/").body;
    assert_eq!(figure(&home, "缤纷社区", "open"), "1");
    let median: i64 = figure(&home, "缤纷社区", "median").parse().unwrap();
    assert!(
        (2 * 3_600_000 - 60_000..3 * 3_600_000).contains(&median),
        "{median}"
    );
    assert_eq!(figure(&home, "缤纷社区", "closed24"), "1");
    assert_eq!(
        p.metric("fanzha_platform_open_cases", "community=\"缤纷社区\""),
        1.0
    );
    let csv = dora.get("/export/figures.csv").body;
    assert!(csv.contains("西兴街道,缤纷社区,1,2,"), "{csv}");

    // Already paid: the case shows the 110 / 96110 reminder.
    let other = case_of(&mut cora, "10.1.2.4");
    cora.post_form(
        &format!("/cases/{other}/outcome"),
        &[("csrf", &csrf), ("outcome", "paid"), ("note", "已转账")],
    );
    let page = cora.get(&format!("/cases/{other}")).body;
    assert!(page.contains("id=\"paid-reminder\"") && page.contains("96110"));

    // A visit written up later carries its own time: the first contact of that case
    // moves back to it, and the median with it. A time before the first hit, or in
    // the future, is refused.
    let local = |ms: u64| {
        let m = ((ms as i64 + 480 * 60_000) / 60_000).rem_euclid(1440);
        format!(
            "{}T{:02}:{:02}",
            fanzha_platform::cases::day_of(ms as i64, 480),
            m / 60,
            m % 60
        )
    };
    for (at, status) in [
        (t - 3_600_000, 400),
        (now_ms() + 7_200_000, 400),
        (t + 30 * 60_000, 303),
    ] {
        let r = cora.post_form(
            &format!("/cases/{other}/outcome"),
            &[
                ("csrf", &csrf),
                ("outcome", "visited"),
                ("note", "补记走访"),
                ("at", &local(at)),
            ],
        );
        assert_eq!(r.status, status, "at {}: {}", local(at), r.body);
    }
    assert!(
        cora.get(&format!("/cases/{other}"))
            .body
            .contains(&local(t + 30 * 60_000).replace('T', " "))
    );
    let median: i64 = figure(&dora.get("/").body, "缤纷社区", "median")
        .parse()
        .unwrap();
    assert!(
        (74 * 60_000..80 * 60_000).contains(&median),
        "median of about 2 h and 30 min: {median}"
    );

    // Hit again after the close: the same case opens again, when it is still the
    // case's day in the district (a case is a device's day: after the district's
    // midnight the hit opens the new day's case, and the closed one stays closed).
    let same_day = fanzha_platform::cases::day_of(t as i64, 480)
        == fanzha_platform::cases::day_of(now_ms() as i64, 480);
    assert_eq!(
        post_events(
            p.addr,
            "a1",
            "k2",
            &[hit(
                "01C4",
                "a1",
                now_ms(),
                "10.1.2.3",
                place,
                "www.loan.top",
                "loan"
            )]
        )
        .status,
        200
    );
    let case = cora.get(&format!("/cases/{id}")).body;
    if same_day {
        assert!(
            case.contains("id=\"state\" class=\"open\"") && case.contains("重新打开 reopened 1"),
            "{case}"
        );
    } else {
        assert!(case.contains("id=\"state\" class=\"closed\""), "{case}");
        let csv = cora.get("/export/cases.csv").body;
        let today = case_of(&mut cora, "10.1.2.3");
        assert_ne!(today, id, "{csv}");
        assert!(
            csv.lines()
                .any(|l| l.starts_with(&format!("{today},")) && l.ends_with(",open")),
            "{csv}"
        );
    }
    assert_eq!(figure(&dora.get("/").body, "缤纷社区", "open"), "1");
}
