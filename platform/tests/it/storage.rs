//! Storage: one schema on both stores, migrations applied once, retention, the
//! online SQLite backup, and accounts from the command line.

use crate::common::*;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn retention(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_with(dir.path(), database, &["a1"], "retention = \"30d\"");
    p.user("dora", "district", "");
    let place = ("西兴街道", "缤纷社区");
    let old = now_ms() - 31 * 86_400_000;
    let events = [
        hit("01R1", "a1", old, "10.1.2.3", place, "www.loan.top", "loan"),
        hit(
            "01R2",
            "a1",
            now_ms() - 1000,
            "10.1.2.4",
            place,
            "www.loan.top",
            "loan",
        ),
    ];
    assert_eq!(post_events(p.addr, "a1", "k1", &events).status, 200);
    let (ok, out) = p.cli(&["retain"], "");
    assert!(ok && out.contains("deleted 1 event"), "{out}");
    let csv = Session::login(p.addr, "dora").get("/export/cases.csv").body;
    assert!(
        !csv.contains("10.1.2.3") && csv.contains("10.1.2.4"),
        "{csv}"
    );
    // Starting again runs no migration twice.
    let (ok, out) = p.cli(&["check-config"], "");
    assert!(ok, "{out}");
}

#[test]
fn retention_on_sqlite() {
    retention("");
}

#[test]
fn retention_on_postgresql() {
    let pg = Pg::start();
    retention(&pg.url);
}

#[test]
fn an_online_backup_is_a_working_database() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), "", &["a1"]);
    p.user("dora", "district", "");
    let e = hit(
        "01B1",
        "a1",
        now_ms(),
        "10.1.2.3",
        ("西兴街道", "缤纷社区"),
        "www.loan.top",
        "loan",
    );
    assert_eq!(post_events(p.addr, "a1", "k1", &[e]).status, 200);
    let copy = dir.path().join("backup.db");
    let (ok, out) = p.cli(&["backup", copy.to_str().unwrap()], "");
    assert!(ok, "{out}");
    // A second platform on the copy has the case and the account.
    let dir2 = tempfile::tempdir().unwrap();
    let p2 = Platform::start(dir2.path(), &format!("sqlite:{}", copy.display()), &["a1"]);
    let csv = Session::login(p2.addr, "dora")
        .get("/export/cases.csv")
        .body;
    assert!(csv.contains("10.1.2.3"), "{csv}");
}

#[test]
fn accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), "", &[]);
    let (ok, out) = p.cli(
        &["user", "add", "x", "--role", "mayor"],
        "long enough password\n",
    );
    assert!(!ok && out.contains("--role"), "{out}");
    let (ok, out) = p.cli(
        &["user", "add", "x", "--role", "community"],
        "long enough password\n",
    );
    assert!(!ok && out.contains("--scope"), "{out}");
    let (ok, out) = p.cli(
        &[
            "user",
            "add",
            "x",
            "--role",
            "community",
            "--scope",
            "缤纷社区",
        ],
        "short\n",
    );
    assert!(!ok && out.contains("shorter"), "{out}");
    p.user("cora", "community", "缤纷社区");
    let (_, list) = p.cli(&["user", "list"], "");
    assert!(list.contains("cora\tcommunity\t缤纷社区"), "{list}");
    let s = Session::login(p.addr, "cora");
    let (ok, _) = p.cli(&["user", "disable", "cora"], "");
    assert!(ok);
    let mut s = s;
    assert_eq!(s.get("/").status, 303, "a disabled account's session ends");
    assert_eq!(Session::login_as(p.addr, "cora", PASSWORD).1.status, 401);
}

#[test]
fn a_bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    for (text, key) in [
        ("utc_offset = \"8\"", "utc_offset"),
        ("retention = \"forever\"", "retention"),
        ("listen = \"nowhere\"", "listen"),
        ("lisen = \"127.0.0.1:1\"", "lisen"),
        (
            "[[appliances]]\nname = \"a\"\nsecret_file = \"/nonexistent\"",
            "appliances[0].secret_file",
        ),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = std::process::Command::new(bin())
            .args(["--config", cfg.to_str().unwrap(), "check-config"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(key), "{key}: {text}");
    }
}

/// The Grafana dashboard's SQL with its macros as Grafana expands them, over all time.
fn expand(sql: &str) -> String {
    let mut s = sql.to_string();
    while let Some(at) = s.find("$__unixEpochGroupAlias(") {
        let end = at + s[at..].find(", '1d')").unwrap();
        let expr = s[at + 23..end].to_string();
        s.replace_range(
            at..end + 7,
            &format!("floor(({expr}) / 86400) * 86400 AS \"time\""),
        );
    }
    while let Some(at) = s.find("$__unixEpochFilter(") {
        let mut depth = 1;
        let mut end = at + 19;
        for (i, c) in s[at + 19..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = at + 19 + i;
                break;
            }
        }
        let expr = s[at + 19..end].to_string();
        s.replace_range(at..=end, &format!("({expr}) BETWEEN 0 AND 4102444800"));
    }
    s
}

#[test]
fn grafana_reads_the_postgresql_store() {
    let pg = Pg::start();
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), &pg.url, &["a1"]);
    let place = ("西兴街道", "缤纷社区");
    let t = now_ms() - 1000;
    let events = [
        hit("01P1", "a1", t, "10.1.2.3", place, "www.loan.top", "loan"),
        hit("01P2", "a1", t, "10.1.2.4", place, "www.loan.top", "loan"),
        appeal("01P3", "a1", t, "shop.loan.top", "mine"),
    ];
    assert_eq!(post_events(p.addr, "a1", "k1", &events).status, 200);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/grafana/fanzha-platform-postgres.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 5);
    for panel in panels {
        let sql = expand(panel["targets"][0]["rawSql"].as_str().unwrap());
        let rows = client
            .query(sql.as_str(), &[])
            .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", panel["title"]));
        assert!(!rows.is_empty(), "{}: no rows\n{sql}", panel["title"]);
    }
    // The open cases panel counts what the platform's page shows.
    let open = client
        .query_one(
            expand(panels[1]["targets"][0]["rawSql"].as_str().unwrap()).as_str(),
            &[],
        )
        .unwrap();
    assert_eq!(open.get::<_, i64>(1), 2);
}
