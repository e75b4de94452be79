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
