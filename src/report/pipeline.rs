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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus::IntCounter;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ReportConfig;
use super::event::{
    AppealInfo, ClientInfo, Event, Input, MatchInfo, PlaceOut, QueryInfo, new_id, qtype_name,
    rfc3339_millis,
};
use super::sender::{Outcome, Platform};
use super::spool::{self, Spool};
use crate::metrics::ReportMetrics;
use crate::places::Places;

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
                    qtype: qtype_name(h.qtype),
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

/// The pipeline's join handles: the writer, then the sender.
pub type Tasks = (JoinHandle<()>, JoinHandle<()>);

/// Open the spool and start [`run_writer`] and [`run_sender`]; returns the handle
/// and their join handles. On `shutdown` the writer flushes every pending event to
/// the spool. `places` is read at each event, so a swapped value applies at once.
pub fn start(
    cfg: ReportConfig,
    places: Arc<ArcSwap<Places>>,
    platform: Platform,
    metrics: ReportMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<(Reporter, Tasks)> {
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
    let (tx, rx) = mpsc::channel::<Input>(65_536);
    let notify = Arc::new(Notify::new());
    let reporter = Reporter {
        tx,
        dropped_full: metrics.events.with_label_values(&["dropped_full"]),
    };
    let cfg = Arc::new(cfg);
    let writer = tokio::spawn(run_writer(Writer {
        rx,
        cfg: cfg.clone(),
        places,
        spool: spool.clone(),
        notify: notify.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    }));
    let sender = tokio::spawn(run_sender(Sender {
        cfg,
        platform,
        spool,
        notify,
        metrics,
        shutdown,
    }));
    Ok((reporter, (writer, sender)))
}

/// What the writer task owns.
struct Writer {
    rx: mpsc::Receiver<Input>,
    cfg: Arc<ReportConfig>,
    places: Arc<ArcSwap<Places>>,
    spool: Arc<Mutex<Spool>>,
    /// Wakes the sender when a batch is on disk.
    notify: Arc<Notify>,
    metrics: ReportMetrics,
    shutdown: CancellationToken,
}

/// Build events from inputs, fold repeats within the de-dup window, and append the
/// events whose window is over to the spool, one fsynced batch per 100 ms tick.
async fn run_writer(mut w: Writer) {
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            _ = w.shutdown.cancelled(), if !stopping => { stopping = true; }
            i = w.rx.recv(), if !stopping => match i {
                Some(input) => {
                    let (key, e) = build(input, &w.cfg, &w.places.load());
                    w.metrics.count("queued", 1);
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
                    || now.duration_since(p.first) >= w.cfg.dedup_window
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !due.is_empty() {
            let batch: Vec<Vec<u8>> = due
                .iter()
                .filter_map(|k| pending.remove(k))
                .map(|p| serde_json::to_vec(&p.event).unwrap_or_default())
                .collect();
            append(&w, batch).await;
        }
        if stopping && pending.is_empty() {
            return;
        }
    }
}

/// Append one batch to the spool on a blocking thread and wake the sender.
async fn append(w: &Writer, batch: Vec<Vec<u8>>) {
    let spool = w.spool.clone();
    let res = tokio::task::spawn_blocking(move || {
        let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
        let r = s.append(&batch);
        s.close_current();
        (r, s.bytes())
    })
    .await;
    match res {
        Ok((Ok(lost), bytes)) => {
            w.metrics.count("dropped_cap", lost);
            w.metrics.spool_bytes.set(bytes as i64);
            w.notify.notify_one();
        }
        Ok((Err(e), _)) => {
            tracing::error!(error = %e, "report spool write failed; these events are lost")
        }
        Err(e) => tracing::error!(error = %e, "report spool writer panicked"),
    }
}

/// What the sender task owns.
struct Sender {
    cfg: Arc<ReportConfig>,
    platform: Platform,
    spool: Arc<Mutex<Spool>>,
    notify: Arc<Notify>,
    metrics: ReportMetrics,
    shutdown: CancellationToken,
}

/// Send closed segments in order, oldest first, and delete each once the platform
/// took all of it; wait for the writer (or a second) when there are none.
async fn run_sender(s: Sender) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let (segs, bytes) = {
            let sp = s.spool.lock().unwrap_or_else(|e| e.into_inner());
            (sp.closed().unwrap_or_default(), sp.bytes())
        };
        s.metrics.spool_bytes.set(bytes as i64);
        let oldest = segs
            .first()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        s.metrics.oldest_age.set(
            oldest
                .and_then(|t| t.elapsed().ok())
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        );
        if segs.is_empty() {
            tokio::select! {
                _ = s.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = s.shutdown.cancelled() => return,
            }
            continue;
        }
        for seg in segs {
            let (events, _) = match spool::read_segment(&seg) {
                Ok(v) => v,
                Err(_) => continue, // deleted by the cap meanwhile
            };
            let sent = send_all(
                &s.platform,
                &s.cfg,
                &s.metrics,
                &events,
                &mut backoff,
                &s.shutdown,
            )
            .await;
            if !sent {
                return; // shutting down; the segment stays for the next start
            }
            let _ = spool::ack(&seg);
        }
    }
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
                    tracing::error!(status, events = batch.len(), file = %cfg.dead_letter().display(), "the platform refused a batch; it goes to the dead-letter file");
                    dead_letter(&cfg.dead_letter(), batch);
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
