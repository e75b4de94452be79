//! The reporting pipeline:
//!
//! ```text
//! DNS hot path ──try_send──▶ bounded channel ──▶ writer: de-dup window, spool append + fsync
//!                                                   │ (closes a segment per batch)
//!                                                   ▼
//!                                          sender: closed segments in order → batches →
//!                                          signed gzip POST → 2xx: delete segment
//! ```
//! The hot path never waits: a full channel drops the hit and counts it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::event::{
    AppealInfo, ClientInfo, ClientIp, Event, MatchInfo, PlaceOut, QueryInfo, new_id, rfc3339_millis,
};
use super::sender::{Outcome, Platform};
use super::spool::{self, Spool};
use crate::blocklist::Blocklist;
use crate::places::Places;

/// A hit as handed over by the DNS path: cheap to build (the snapshot is shared).
pub struct Hit {
    /// Client address.
    pub client: IpAddr,
    /// Query name, lower-case.
    pub name: String,
    /// Query type.
    pub qtype: u16,
    /// The snapshot that decided.
    pub list: Arc<Blocklist>,
    /// The deciding entry.
    pub hit: crate::blocklist::Hit,
    /// The rule's name.
    pub rule: String,
    /// The answer given.
    pub action: &'static str,
    /// When.
    pub time: SystemTime,
}

/// What the pipeline takes.
pub enum Input {
    /// A blocked query.
    Hit(Box<Hit>),
    /// An appeal from the warning page.
    Appeal(crate::warnpage::server::Appeal, SystemTime),
}

/// Settings.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Spool directory.
    pub spool_dir: PathBuf,
    /// Spool cap.
    pub spool_max_bytes: u64,
    /// Events per POST.
    pub batch_events: usize,
    /// Uncompressed bytes per POST.
    pub batch_bytes: usize,
    /// Same client and rule within this window → one event with a count.
    pub dedup_window: Duration,
    /// Appliance id.
    pub appliance: String,
    /// Client address handling.
    pub client_ip: ClientIp,
    /// HMAC key (also for hashing addresses).
    pub secret: String,
    /// fsync each spool batch.
    pub fsync: bool,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Dead-letter file.
    pub dead_letter: PathBuf,
}

/// Reporting metrics.
#[derive(Clone)]
pub struct ReportMetrics {
    events: IntCounterVec,
    spool_bytes: IntGauge,
    oldest_age: IntGauge,
    send_duration: Histogram,
}

impl ReportMetrics {
    /// Register with `registry`.
    pub fn new(registry: &prometheus::Registry) -> ReportMetrics {
        let events = IntCounterVec::new(
            Opts::new(
                "report_events_total",
                "Hit events by outcome (queued, sent, dropped_full, dropped_cap, dead_letter)",
            ),
            &["outcome"],
        )
        .expect("valid");
        for o in [
            "queued",
            "sent",
            "dropped_full",
            "dropped_cap",
            "dead_letter",
        ] {
            events.with_label_values(&[o]);
        }
        let spool_bytes =
            IntGauge::new("report_spool_bytes", "Bytes in the report spool").expect("valid");
        let oldest_age = IntGauge::new(
            "report_oldest_event_age_seconds",
            "Age of the oldest unsent spool segment",
        )
        .expect("valid");
        let send_duration = Histogram::with_opts(
            HistogramOpts::new(
                "report_send_duration_seconds",
                "Time of one POST to the platform",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid");
        for c in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(spool_bytes.clone()),
            Box::new(oldest_age.clone()),
            Box::new(send_duration.clone()),
        ] {
            let _ = registry.register(c);
        }
        ReportMetrics {
            events,
            spool_bytes,
            oldest_age,
            send_duration,
        }
    }
    fn count(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.events.with_label_values(&[outcome]).inc_by(n);
        }
    }
}

/// The handle the DNS path and the warning page use.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Input>,
    dropped_full: IntCounter,
}

impl Reporter {
    /// Hand over without waiting; a full channel drops the input and counts it.
    pub fn send(&self, input: Input) {
        if self.tx.try_send(input).is_err() {
            self.dropped_full.inc();
        }
    }
}

struct Pending {
    event: Event,
    first: Instant,
}

fn build(input: Input, cfg: &ReportConfig, places: &Places) -> (String, Event) {
    match input {
        Input::Hit(h) => {
            let place = places.lookup(h.client);
            let list = h
                .list
                .list(&crate::blocklist::Verdict::Block(h.hit))
                .map(|l| l.name.clone())
                .unwrap_or_default();
            let key = format!("{}|{}|{}", h.client, h.rule, h.list.category(&h.hit));
            let e = Event {
                id: new_id(h.time),
                kind: "hit".into(),
                time: rfc3339_millis(h.time),
                appliance: cfg.appliance.clone(),
                client: ClientInfo {
                    ip: cfg.client_ip.apply(h.client, cfg.secret.as_bytes()),
                    place: PlaceOut::from(place),
                },
                query: Some(QueryInfo {
                    name: h.name,
                    qtype: crate::dns::server::qtype_name(h.qtype),
                }),
                matched: Some(MatchInfo {
                    rule: h.rule,
                    list,
                    category: h.list.category(&h.hit).to_string(),
                    note: h.list.note(&h.hit).map(String::from),
                }),
                action: h.action.into(),
                count: 1,
                appeal: None,
            };
            (key, e)
        }
        Input::Appeal(a, t) => {
            let place = places.lookup(a.client);
            let e = Event {
                id: new_id(t),
                kind: "appeal".into(),
                time: rfc3339_millis(t),
                appliance: cfg.appliance.clone(),
                client: ClientInfo {
                    ip: cfg.client_ip.apply(a.client, cfg.secret.as_bytes()),
                    place: PlaceOut::from(place),
                },
                query: None,
                matched: (a.category != "none").then(|| MatchInfo {
                    rule: a.host.clone(),
                    list: String::new(),
                    category: a.category.clone(),
                    note: None,
                }),
                action: "appeal".into(),
                count: 1,
                appeal: Some(AppealInfo {
                    host: a.host,
                    reason: a.reason,
                }),
            };
            // Appeals are never folded together.
            (e.id.clone(), e)
        }
    }
}

/// Start the writer and the sender; returns the handle and the writer's and sender's
/// join handles. On `shutdown` the writer flushes every pending event to the spool.
pub fn start(
    cfg: ReportConfig,
    places: Arc<Places>,
    platform: Platform,
    metrics: ReportMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<(
    Reporter,
    tokio::task::JoinHandle<()>,
    tokio::task::JoinHandle<()>,
)> {
    let (spool, rec) = Spool::open(&cfg.spool_dir, cfg.spool_max_bytes, 4 << 20, cfg.fsync)?;
    if rec.segments > 0 || rec.torn > 0 {
        tracing::info!(
            segments = rec.segments,
            events = rec.events,
            torn_records = rec.torn,
            "report spool: resending what is on disk"
        );
    }
    let spool = Arc::new(Mutex::new(spool));
    let (tx, mut rx) = mpsc::channel::<Input>(65_536);
    let notify = Arc::new(Notify::new());
    let reporter = Reporter {
        tx,
        dropped_full: metrics.events.with_label_values(&["dropped_full"]),
    };

    // Writer.
    let w = {
        let (spool, notify, metrics, cfg, shutdown) = (
            spool.clone(),
            notify.clone(),
            metrics.clone(),
            cfg.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let mut pending: HashMap<String, Pending> = HashMap::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut stopping = false;
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled(), if !stopping => { stopping = true; }
                    i = rx.recv(), if !stopping => match i {
                        Some(input) => {
                            let (key, e) = build(input, &cfg, &places);
                            metrics.count("queued", 1);
                            match pending.get_mut(&key) {
                                Some(p) => p.event.count += 1,
                                None => { pending.insert(key, Pending { event: e, first: Instant::now() }); }
                            }
                            if pending.len() < 100_000 { continue; }
                        }
                        None => { stopping = true; }
                    },
                    _ = tick.tick() => {}
                }
                // Flush events whose window is over (all of them when stopping or when
                // the window is zero), as one fsynced spool batch.
                let now = Instant::now();
                let due: Vec<String> = pending
                    .iter()
                    .filter(|(_, p)| {
                        stopping
                            || pending_len_over(&pending)
                            || now.duration_since(p.first) >= cfg.dedup_window
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                if !due.is_empty() {
                    let batch: Vec<Vec<u8>> = due
                        .iter()
                        .filter_map(|k| pending.remove(k))
                        .map(|p| serde_json::to_vec(&p.event).unwrap_or_default())
                        .collect();
                    let spool = spool.clone();
                    let res = tokio::task::spawn_blocking(move || {
                        let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
                        let r = s.append(&batch);
                        s.close_current();
                        (r, s.bytes())
                    })
                    .await;
                    match res {
                        Ok((Ok(lost), bytes)) => {
                            metrics.count("dropped_cap", lost);
                            metrics.spool_bytes.set(bytes as i64);
                            notify.notify_one();
                        }
                        Ok((Err(e), _)) => {
                            tracing::error!(error = %e, "report spool write failed; these events are lost")
                        }
                        Err(e) => tracing::error!(error = %e, "report spool writer panicked"),
                    }
                }
                if stopping && pending.is_empty() {
                    return;
                }
            }
        })
    };

    // Sender.
    let s = {
        let (spool, metrics, cfg) = (spool.clone(), metrics.clone(), cfg.clone());
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                let (segs, bytes) = {
                    let s = spool.lock().unwrap_or_else(|e| e.into_inner());
                    (s.closed().unwrap_or_default(), s.bytes())
                };
                metrics.spool_bytes.set(bytes as i64);
                let oldest = segs
                    .first()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .and_then(|m| m.modified().ok());
                metrics.oldest_age.set(
                    oldest
                        .and_then(|t| t.elapsed().ok())
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0),
                );
                if segs.is_empty() {
                    tokio::select! {
                        _ = notify.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    continue;
                }
                for seg in segs {
                    let (events, _) = match spool::read_segment(&seg) {
                        Ok(v) => v,
                        Err(_) => continue, // deleted by the cap meanwhile
                    };
                    if send_all(&platform, &cfg, &metrics, &events, &mut backoff, &shutdown).await {
                        let _ = spool::ack(&seg);
                    } else {
                        return; // shutting down; the segment stays for the next start
                    }
                }
            }
        })
    };
    Ok((reporter, w, s))
}

fn pending_len_over(p: &HashMap<String, Pending>) -> bool {
    p.len() >= 100_000
}

/// Send every event of a segment in batches; true when all were accepted or dead-lettered,
/// false when shutting down.
async fn send_all(
    platform: &Platform,
    cfg: &ReportConfig,
    metrics: &ReportMetrics,
    events: &[Vec<u8>],
    backoff: &mut Duration,
    shutdown: &CancellationToken,
) -> bool {
    let mut queue: Vec<&[Vec<u8>]> = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < events.len()
            && end - start < cfg.batch_events
            && (bytes == 0 || bytes + events[end].len() <= cfg.batch_bytes)
        {
            bytes += events[end].len() + 1;
            end += 1;
        }
        queue.push(&events[start..end]);
        start = end;
    }
    queue.reverse();
    while let Some(batch) = queue.pop() {
        let mut body = Vec::with_capacity(batch.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
        body.push(b'[');
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(e);
        }
        body.push(b']');
        let key = idempotency_key(batch);
        loop {
            let t = Instant::now();
            let out = platform.post(&body, &key).await;
            metrics.send_duration.observe(t.elapsed().as_secs_f64());
            match out {
                Outcome::Accepted => {
                    metrics.count("sent", batch.len() as u64);
                    *backoff = Duration::from_millis(250);
                    break;
                }
                Outcome::TooLarge if batch.len() > 1 => {
                    let (a, b) = batch.split_at(batch.len() / 2);
                    queue.push(b);
                    queue.push(a);
                    break;
                }
                Outcome::TooLarge | Outcome::Rejected(_) => {
                    let status = if let Outcome::Rejected(s) = out {
                        s
                    } else {
                        413
                    };
                    tracing::error!(status, events = batch.len(), file = %cfg.dead_letter.display(), "the platform refused a batch; it goes to the dead-letter file");
                    dead_letter(&cfg.dead_letter, batch);
                    metrics.count("dead_letter", batch.len() as u64);
                    break;
                }
                Outcome::Retry(why) => {
                    let jitter = Duration::from_millis(rand_ms(backoff.as_millis() as u64 / 2 + 1));
                    tracing::warn!(%why, retry_in_ms = (*backoff + jitter).as_millis() as u64, "platform not reachable; events stay in the spool");
                    tokio::select! {
                        _ = tokio::time::sleep(*backoff + jitter) => {}
                        _ = shutdown.cancelled() => return false,
                    }
                    *backoff = (*backoff * 2).min(cfg.max_backoff);
                }
            }
        }
    }
    true
}

fn idempotency_key(batch: &[Vec<u8>]) -> String {
    let id = |e: &Vec<u8>| -> String {
        serde_json::from_slice::<serde_json::Value>(e)
            .ok()
            .and_then(|v| v["id"].as_str().map(String::from))
            .unwrap_or_default()
    };
    format!(
        "{}-{}-{}",
        batch.first().map(id).unwrap_or_default(),
        batch.last().map(id).unwrap_or_default(),
        batch.len()
    )
}

fn rand_ms(max: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(max);
    h.finish() % max.max(1)
}

fn dead_letter(path: &std::path::Path, batch: &[Vec<u8>]) {
    use std::io::Write;
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| {
            for e in batch {
                f.write_all(e)?;
                f.write_all(b"\n")?;
            }
            f.sync_data()
        });
    if let Err(e) = r {
        tracing::error!(error = %e, file = %path.display(), "cannot write the dead-letter file; the refused events are lost");
    }
}
