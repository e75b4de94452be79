//! Each level's pages in a real browser (headless Chromium through ChromeDriver):
//! a person logs in through the form, and the figures the browser renders are
//! checked against the events sent; each role sees its own places and no other.

use crate::common::*;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Hits per community: (street, community, devices, hits per device).
const SENT: [(&str, &str, u64, u64); 3] = [
    ("西兴街道", "缤纷社区", 3, 4),
    ("西兴街道", "江边社区", 2, 1),
    ("长河街道", "长河社区", 1, 7),
];

#[test]
fn each_level_sees_its_figures_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), "", &["a1"]);
    let t = now_ms() - 3_600_000;
    let mut events = Vec::new();
    for (si, (street, community, devices, hits)) in SENT.iter().enumerate() {
        for d in 0..*devices {
            for h in 0..*hits {
                let id = format!("01W{si}{d}{h:02}");
                events.push(hit(
                    &id,
                    "a1",
                    t + h * 1000,
                    &format!("10.{si}.0.{d}"),
                    (street, community),
                    &format!("m{h}.loan.top"),
                    if si == 2 { "romance" } else { "loan" },
                ));
            }
        }
    }
    assert_eq!(post_events(p.addr, "a1", "k1", &events).status, 200);
    p.user("dora", "district", "");
    p.user("sam", "street", "西兴街道");
    p.user("cora", "community", "缤纷社区");
    let base = format!("http://{}", p.addr);
    let shots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/platform-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    for (who, sees) in [
        ("dora", vec!["缤纷社区", "江边社区", "长河社区"]),
        ("sam", vec!["缤纷社区", "江边社区"]),
        ("cora", vec!["缤纷社区"]),
    ] {
        let b = Browser::start();
        b.login(&base, who, PASSWORD);
        b.open(&format!("{base}/"));
        // The open cases per community, as rendered, equal the devices sent there.
        let open = b.eval(
            "const o = {}; document.querySelectorAll('#figures tr').forEach(r => {
               const c = r.querySelector('[data-community]'); const n = r.querySelector('[data-open]');
               if (c && n) o[c.dataset.community] = Number(n.dataset.open); }); return o;",
        );
        let mut want = serde_json::Map::new();
        for (_, c, devices, _) in SENT.iter().filter(|s| sees.contains(&s.1)) {
            want.insert(c.to_string(), (*devices).into());
        }
        assert_eq!(open, serde_json::Value::Object(want), "{who}'s figures");
        let text = b.text();
        for (_, c, _, _) in SENT {
            assert_eq!(
                text.contains(c),
                sees.contains(&c),
                "{who} and {c}:\n{text}"
            );
        }
        // The queue lists one case per device in scope.
        let queue = b
            .eval("return document.querySelectorAll('#queue tbody tr a').length")
            .as_u64()
            .unwrap();
        let devices: u64 = SENT
            .iter()
            .filter(|s| sees.contains(&s.1))
            .map(|s| s.2)
            .sum();
        assert_eq!(queue, devices, "{who}'s queue");
        // The trend chart's columns add up to the hits sent in scope.
        let charted = b.eval(
            "let n = 0; document.querySelectorAll('#trend rect title').forEach(t => n += Number(t.textContent.split(': ').pop())); return n;",
        );
        let hits: u64 = SENT
            .iter()
            .filter(|s| sees.contains(&s.1))
            .map(|s| s.2 * s.3)
            .sum();
        assert_eq!(charted.as_u64(), Some(hits), "{who}'s trend chart");
        // Laid out for a phone: nothing wider than the screen.
        let wide = b.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1");
        assert_eq!(
            wide,
            serde_json::Value::Bool(true),
            "{who}'s page scrolls sideways on a phone"
        );
        b.screenshot(&shots.join(format!("{who}.png")));
        if who == "cora" {
            // The worker opens a case from the queue and records a visit; the page says so.
            b.click("#queue tbody tr a");
            // The case page's form (found once the page is there).
            b.find("#outcome");
            b.eval("document.querySelector('#outcome').value = 'visited'; return 0");
            b.type_into("#note", "上门走访，已提醒");
            b.click("#record");
            let text = b.wait_text("上门走访，已提醒");
            assert!(text.contains("上门走访，已提醒"), "{text}");
            b.screenshot(&shots.join("cora-case.png"));
            // Another community's case, by id in the address bar: not found.
            b.open(&format!("{base}/cases/9999"));
            assert!(b.wait_text("Not found").contains("Not found"));
        }
    }
}
