//! Ingest throughput: signed gzip batches of 1,000 events through the real HTTP
//! server into the store, on SQLite (always) and on PostgreSQL (when
//! PLATFORM_BENCH_PG names a database; benches/platform-ingest.sh starts one).
//! Each batch is new events (fresh ids), as a busy district sends them.
//! Run: cargo bench -p fanzha-platform --bench ingest

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fanzha::report::event::{ClientInfo, Event, MatchInfo, PlaceOut, QueryInfo};
use fanzha_platform::config::{Config, RawConfig};
use fanzha_platform::store::Store;
use fanzha_platform::web;

const SECRET: &str = "bench-secret-0123456789abcdef";
const BATCH: u64 = 1000;
const STREETS: [&str; 4] = ["西兴街道", "长河街道", "浦沿街道", "长河街道"];

fn batch(next: &AtomicU64) -> Vec<u8> {
    let t = std::time::SystemTime::now();
    let events: Vec<Event> = (0..BATCH)
        .map(|_| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            Event {
                id: format!("B{n:025}"),
                kind: "hit".into(),
                time: fanzha::report::event::rfc3339_millis(t),
                appliance: "bench".into(),
                client: ClientInfo {
                    ip: format!("10.{}.{}.{}", n % 7, (n / 7) % 250, n % 250),
                    place: PlaceOut {
                        district: "滨江区".into(),
                        street: STREETS[(n % 4) as usize].into(),
                        community: format!("社区{}", n % 40),
                    },
                },
                query: Some(QueryInfo {
                    name: format!("m{}.loan{}.top", n % 13, n % 97),
                    qtype: "A".into(),
                }),
                matched: Some(MatchInfo {
                    rule: format!("loan{}.top", n % 97),
                    list: "loan.txt".into(),
                    category: "loan".into(),
                    note: Some("案件 2026-117".into()),
                }),
                action: "sinkhole".into(),
                count: 1,
                appeal: None,
                via: None,
            }
        })
        .collect();
    let json = serde_json::to_vec(&events).unwrap();
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &json).unwrap();
    z.finish().unwrap()
}

/// A platform on `database`, serving on a loopback port in a thread of its own.
fn serve(database: &str, dir: &std::path::Path) -> std::net::SocketAddr {
    let secret = dir.join("bench.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let raw: RawConfig = toml::from_str(&format!(
        "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\ndatabase = \"{database}\"\n[[appliances]]\nname = \"bench\"\nsecret_file = \"{}\"\n",
        dir.display(),
        secret.display()
    ))
    .unwrap();
    let config = Config::check(raw).unwrap();
    let store = Store::open(&config.database).unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let app = web::App::new(config, store);
            web::serve(app, l, std::future::pending()).await.unwrap();
        });
    });
    addr
}

fn post(agent: &ureq::Agent, addr: std::net::SocketAddr, body: &[u8], key: u64) {
    let r = agent
        .post(&format!("http://{addr}/v1/events"))
        .header("Content-Encoding", "gzip")
        .header(
            "X-Fanzha-Signature",
            fanzha::outbox::signature(SECRET.as_bytes(), body),
        )
        .header("X-Fanzha-Appliance", "bench")
        .header("Idempotency-Key", &key.to_string())
        .send(body)
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![(
        "sqlite".to_string(),
        format!("sqlite:{}", dir.path().join("bench.db").display()),
    )];
    match std::env::var("PLATFORM_BENCH_PG") {
        Ok(url) if !url.is_empty() => stores.push(("postgresql".into(), url)),
        _ => eprintln!(
            "PLATFORM_BENCH_PG is not set: SQLite only (benches/platform-ingest.sh runs both)"
        ),
    }
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(BATCH));
    g.measurement_time(Duration::from_secs(10));
    g.sample_size(20);
    for (name, url) in stores {
        let sub = dir.path().join(&name);
        std::fs::create_dir_all(&sub).unwrap();
        let addr = serve(&url, &sub);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let next = Arc::new(AtomicU64::new(0));
        let keys = AtomicU64::new(0);
        g.bench_function(format!("{name}/batch-of-1000"), |b| {
            b.iter_custom(|iters| {
                // The batches are made before the clock starts: only ingest is timed.
                let bodies: Vec<Vec<u8>> = (0..iters).map(|_| batch(&next)).collect();
                let t = Instant::now();
                for body in &bodies {
                    post(&agent, addr, body, keys.fetch_add(1, Ordering::Relaxed));
                }
                t.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
