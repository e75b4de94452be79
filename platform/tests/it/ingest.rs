//! The appliances' protocol, on both stores: signed gzip batches, each event stored
//! once, the refusals with their status, and 2xx only for a committed batch.

use crate::common::*;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn cases_csv(p: &Platform) -> Vec<String> {
    let mut s = Session::login(p.addr, "amy");
    let r = s.get("/export/cases.csv");
    assert_eq!(r.status, 200);
    r.body
        .trim_start_matches('\u{feff}')
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn protocol(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Platform::start_with(
        dir.path(),
        database,
        &["a1", "a2"],
        "max_body_bytes = 200000\nmax_batch_bytes = 1000000",
    );
    p.user("amy", "district", "");
    let t = now_ms() - 60_000;
    let place = ("西兴街道", "缤纷社区");
    let batch = vec![
        hit("01E1", "a1", t, "10.1.2.3", place, "www.loan.top", "loan"),
        hit(
            "01E2",
            "a1",
            t + 1000,
            "10.1.2.3",
            place,
            "m.loan.top",
            "loan",
        ),
        hit(
            "01E3",
            "a1",
            t + 2000,
            "10.1.2.4",
            place,
            "www.shua.top",
            "brushing",
        ),
    ];
    let r = post_events(p.addr, "a1", "k1", &batch);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"stored\":3"), "{}", r.body);
    // The same batch again (a lost acknowledgement): taken, nothing doubled.
    let r = post_events(p.addr, "a1", "k1", &batch);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"replayed\":true"), "{}", r.body);
    // A new batch repeating one event: that event is stored once.
    let r = post_events(
        p.addr,
        "a1",
        "k2",
        &[
            batch[0].clone(),
            hit(
                "01E4",
                "a1",
                t + 3000,
                "10.1.2.3",
                place,
                "x.loan.top",
                "loan",
            ),
        ],
    );
    assert!(
        r.body.contains("\"stored\":1") && r.body.contains("\"duplicates\":1"),
        "{}",
        r.body
    );
    assert_eq!(
        p.metric("fanzha_platform_events_total", "result=\"stored\""),
        4.0
    );
    // Two devices: two cases; the first has three hits.
    let cases = cases_csv(&p);
    assert_eq!(cases.len(), 2, "{cases:?}");
    assert!(
        cases
            .iter()
            .any(|c| c.contains("10.1.2.3") && c.contains(",3,")),
        "{cases:?}"
    );

    // Refusals.
    let body = gzip(&serde_json::to_vec(&batch).unwrap());
    assert_eq!(
        post_raw(p.addr, "stranger", SECRET, "k3", &body).status,
        401
    );
    assert_eq!(
        post_raw(p.addr, "a1", "not-the-secret-at-all", "k3", &body).status,
        401
    );
    let mut tampered = body.clone();
    let signature_of_body = fanzha::outbox::signature(SECRET.as_bytes(), &body);
    *tampered.last_mut().unwrap() ^= 1;
    let r = ureq_post(p.addr, "a1", &signature_of_body, &tampered);
    assert_eq!(r, 401, "a body changed after signing");
    // a2's events under a1's name: the appliance field must match the header.
    let r = post_events(
        p.addr,
        "a1",
        "k4",
        &[hit(
            "01F1",
            "a2",
            t,
            "10.1.2.3",
            place,
            "a.loan.top",
            "loan",
        )],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("events[0].appliance"), "{}", r.body);
    let mut bad = hit("01F2", "a1", t, "10.1.2.3", place, "a.loan.top", "loan");
    bad.time = "yesterday".into();
    let r = post_events(p.addr, "a1", "k5", &[batch[1].clone(), bad]);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("events[1].time"), "{}", r.body);
    let r = post_raw(
        p.addr,
        "a1",
        SECRET,
        "k6",
        &gzip(b"{\"not\": \"an array\"}"),
    );
    assert_eq!(r.status, 400);
    // Over max_body_bytes as sent (noise does not compress), and over max_batch_bytes unpacked.
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    assert_eq!(post_raw(p.addr, "a1", SECRET, "k7", &noise).status, 413);
    let many: Vec<_> = (0..4000)
        .map(|i| {
            hit(
                &format!("01G{i:05}"),
                "a1",
                t,
                "10.9.9.9",
                place,
                "b.loan.top",
                "loan",
            )
        })
        .collect();
    assert_eq!(post_events(p.addr, "a1", "k8", &many).status, 413);
    // Nothing refused was stored.
    assert_eq!(cases_csv(&p).len(), 2);

    // Appeals arrive the same way and wait for the district.
    let r = post_events(
        p.addr,
        "a2",
        "k9",
        &[appeal("01H1", "a2", t, "shop.loan.top", "这是我家的网店")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut amy = Session::login(p.addr, "amy");
    let page = amy.get("/appeals");
    assert!(
        page.body.contains("shop.loan.top") && page.body.contains("这是我家的网店"),
        "{}",
        page.body
    );

    // Acknowledged means committed: killed at once and started again, it has it all.
    p.stop();
    p.restart();
    assert_eq!(cases_csv(&p).len(), 2);
    assert!(
        Session::login(p.addr, "amy")
            .get("/appeals")
            .body
            .contains("shop.loan.top")
    );
}

fn ureq_post(addr: std::net::SocketAddr, appliance: &str, signature: &str, body: &[u8]) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(&format!("http://{addr}/v1/events"))
        .header("Content-Encoding", "gzip")
        .header("X-Fanzha-Signature", signature)
        .header("X-Fanzha-Appliance", appliance)
        .send(body)
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn the_protocol_on_sqlite() {
    protocol("");
}

#[test]
fn the_protocol_on_postgresql() {
    let pg = Pg::start();
    protocol(&pg.url);
}
