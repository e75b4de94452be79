//! Scopes, tried: every route, with every role and with none. A community worker
//! sees their community only, a street account its communities, the district
//! everything; a case of another place is 404 by id, for reading and for writing.

use std::collections::BTreeSet;

use crate::common::*;

const PLACES: [(&str, &str); 4] = [
    ("西兴街道", "缤纷社区"),
    ("西兴街道", "江边社区"),
    ("长河街道", "长河社区"),
    ("长河街道", "山一社区"),
];

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A platform with two cases in each community, and four accounts.
fn district() -> (tempfile::TempDir, Platform) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), "", &["a1"]);
    let t = now_ms() - 3_600_000;
    let mut events = Vec::new();
    for (i, place) in PLACES.iter().enumerate() {
        for d in 0..2 {
            events.push(hit(
                &format!("01S{i}{d}"),
                "a1",
                t,
                &format!("10.{i}.0.{d}"),
                *place,
                &format!("www.{i}.loan.top"),
                "loan",
            ));
        }
    }
    assert_eq!(post_events(p.addr, "a1", "k", &events).status, 200);
    assert_eq!(
        post_events(
            p.addr,
            "a1",
            "k2",
            &[appeal("01SA", "a1", t, "shop.loan.top", "mine")]
        )
        .status,
        200
    );
    p.user("dora", "district", "");
    p.user("sam", "street", "西兴街道");
    p.user("cora", "community", "缤纷社区");
    p.user("carl", "community", "长河社区");
    (dir, p)
}

/// Case id → community, from the district's export.
fn all_cases(p: &Platform) -> Vec<(String, String)> {
    let r = Session::login(p.addr, "dora").get("/export/cases.csv");
    r.body
        .trim_start_matches('\u{feff}')
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect()
}

fn communities_of(account: &str) -> BTreeSet<&'static str> {
    PLACES
        .iter()
        .filter(|(s, c)| match account {
            "dora" => true,
            "sam" => *s == "西兴街道",
            "cora" => *c == "缤纷社区",
            "carl" => *c == "长河社区",
            _ => false,
        })
        .map(|(_, c)| *c)
        .collect()
}

#[test]
fn every_route_with_every_role() {
    let (_dir, p) = district();
    let cases = all_cases(&p);
    assert_eq!(cases.len(), 8);
    for who in ["dora", "sam", "cora", "carl"] {
        let mine = communities_of(who);
        let mut s = Session::login(p.addr, who);
        // The overview and the queue name only their communities.
        for path in ["/", "/cases", "/cases?state=closed", "/?days=7"] {
            let r = s.get(path);
            assert_eq!(r.status, 200, "{who} {path}");
            for (_, c) in PLACES {
                if path.contains("closed") {
                    continue;
                }
                assert_eq!(r.body.contains(c), mine.contains(c), "{who} {path}: {c}");
            }
        }
        // Each case by id: its own 200, another's 404, for reading and for writing.
        for (id, community) in &cases {
            let visible = mine.contains(community.as_str());
            let r = s.get(&format!("/cases/{id}"));
            assert_eq!(
                r.status,
                if visible { 200 } else { 404 },
                "{who} GET case {id} of {community}"
            );
            if !visible {
                let csrf = s.csrf.clone();
                let r = s.post_form(
                    &format!("/cases/{id}/outcome"),
                    &[("csrf", &csrf), ("outcome", "dissuaded"), ("note", "x")],
                );
                assert_eq!(
                    r.status, 404,
                    "{who} POST outcome to case {id} of {community}"
                );
            }
        }
        // Exports: within scope; the district's own views are 404 below it.
        for view in ["figures", "places", "daily", "rules", "cases", "closed"] {
            let r = s.get(&format!("/export/{view}.csv"));
            assert_eq!(r.status, 200, "{who} {view}");
            for (_, c) in PLACES {
                if !mine.contains(c) {
                    assert!(!r.body.contains(c), "{who} {view}.csv shows {c}");
                }
            }
        }
        let district = who == "dora";
        for path in [
            "/appeals",
            "/audit",
            "/export/appliances.csv",
            "/export/appeals.csv",
            "/appeals?state=accepted",
        ] {
            assert_eq!(
                s.get(path).status,
                if district { 200 } else { 404 },
                "{who} {path}"
            );
        }
        if !district {
            let csrf = s.csrf.clone();
            let r = s.post_form(
                "/appeals/01SA",
                &[("csrf", &csrf), ("decision", "accept"), ("reason", "x")],
            );
            assert_eq!(r.status, 404, "{who} deciding an appeal");
        }
    }
    // Nothing written by the refused requests: every case still open, the appeal waiting.
    let mut dora = Session::login(p.addr, "dora");
    assert_eq!(
        dora.get("/export/closed.csv")
            .body
            .trim_start_matches('\u{feff}')
            .lines()
            .count(),
        1
    );
    assert!(dora.get("/appeals").body.contains("shop.loan.top"));
    // The views of cases are in the audit log, with who and which.
    let audit = dora.get("/audit").body;
    assert!(
        audit.contains("view case") && audit.contains("cora") && audit.contains("carl"),
        "{audit}"
    );
}

#[test]
fn without_a_session_nothing_is_shown() {
    let (_dir, p) = district();
    let cases = all_cases(&p);
    let mut anon = Session {
        addr: p.addr,
        cookies: Default::default(),
        csrf: String::new(),
    };
    for path in [
        "/",
        "/cases",
        "/appeals",
        "/audit",
        "/export/cases.csv",
        &format!("/cases/{}", cases[0].0),
    ] {
        let r = anon.get(path);
        assert_eq!(r.status, 303, "{path}");
        assert!(
            r.header("location").unwrap().starts_with("/login"),
            "{path}"
        );
        assert!(!r.body.contains("缤纷社区"));
    }
    let r = anon.post_form(
        &format!("/cases/{}/outcome", cases[0].0),
        &[("csrf", "x"), ("outcome", "dissuaded")],
    );
    assert_eq!(r.status, 401);
    // A forged session cookie is no session.
    anon.cookies
        .insert("fanzha_platform_session".into(), "0".repeat(64));
    assert_eq!(anon.get("/").status, 303);
}

#[test]
fn sessions_forms_and_logins_are_guarded() {
    let (_dir, p) = district();
    let (mut s, r) = Session::login_as(p.addr, "cora", PASSWORD);
    assert_eq!(r.status, 303);
    let cookie = r
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("fanzha_platform_session="))
        .expect("a session cookie")
        .1
        .clone();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert_eq!(s.get("/").header("cache-control"), Some("no-store"));
    // A form without the session's CSRF token is refused, and changes nothing.
    let id = all_cases(&p)
        .into_iter()
        .find(|(_, c)| c == "缤纷社区")
        .unwrap()
        .0;
    let r = s.post_form(
        &format!("/cases/{id}/outcome"),
        &[("csrf", "forged"), ("outcome", "dissuaded")],
    );
    assert_eq!(r.status, 403);
    let r = s.post_form(&format!("/cases/{id}/outcome"), &[("outcome", "dissuaded")]);
    assert!(
        r.status == 403 || r.status == 422 || r.status == 400,
        "{}",
        r.status
    );
    assert!(
        s.get(&format!("/cases/{id}"))
            .body
            .contains("id=\"state\" class=\"open\"")
    );
    // Logging out ends the session on the server, not only in the browser.
    let old = s.cookies.clone();
    let csrf = s.csrf.clone();
    assert_eq!(s.post_form("/logout", &[("csrf", &csrf)]).status, 303);
    s.cookies = old;
    assert_eq!(s.get("/").status, 303, "the old cookie after logout");
    // Wrong passwords: five, then the account is locked even for the right one.
    for _ in 0..5 {
        assert_eq!(
            Session::login_as(p.addr, "carl", "wrong password").1.status,
            401
        );
    }
    let (_, r) = Session::login_as(p.addr, "carl", PASSWORD);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("分钟"));
    // Another account from the same address still logs in.
    Session::login(p.addr, "sam");
    assert!(p.metric("fanzha_platform_logins_total", "outcome=\"locked\"") >= 1.0);
    // An unknown name answers as a wrong password does.
    assert_eq!(
        Session::login_as(p.addr, "nobody-here", PASSWORD).1.status,
        401
    );
}
