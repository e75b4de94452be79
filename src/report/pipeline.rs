//! The reporting pipeline:
//!
//! ```text
//! DNS hot path ──try_send──▶ bounded channel ──▶ writer: de-dup window, spool append + fsync
//!                                                   │
//!                                                   ▼
//!                                          sender: closed segments in order → batches →
//!                                          signed gzip POST → 2xx: delete segment
//! ```
//! The hot path never waits: a full channel drops the hit and counts it. Reporting
//! never takes DNS down: when the spool cannot be opened or written (no permission,
//! a full or read-only disk), events wait in memory (up to [`MAX_UNWRITTEN`]), the
//! part is marked degraded (`/readyz`, `fanzha_report_spool_writable`), and the
//! writer tries again every [`RETRY_SPOOL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ReportConfig;
use super::event::{
    AppealInfo, ClientInfo, Event, Input, MatchInfo, PathHit, PlaceOut, QueryInfo, qtype_name,
    rfc3339_millis,
};
use super::sender::{Outcome, Platform};
use crate::metrics::ReportMetrics;
use crate::outbox::backlog::Backlog;
use crate::outbox::spool::{self, Spool};
use crate::outbox::{Handoff, new_id};
use crate::places::Places;

/// Events kept in memory while the spool cannot be written; past it the oldest go,
/// counted as `dropped_spool`.
pub const MAX_UNWRITTEN: usize = 100_000;
/// Events written to the spool per append (and per fsync) when catching up.
const APPEND_CHUNK: usize = 1000;
/// How often an unusable spool is tried again.
pub const RETRY_SPOOL: Duration = Duration::from_secs(5);
/// The degraded part's name in `/readyz`.
const PART: &str = "reporting";

/// The spool, or why there is none (shared by the writer and the sender).
type SharedSpool = Arc<Mutex<Option<Spool>>>;

/// The handle the DNS path and the warning page use.
pub type Reporter = Handoff<Input>;

struct Pending {
    event: Event,
    first: Instant,
}

fn build(input: Input, cfg: &ReportConfig, hash_key: &[u8], places: &Places) -> (String, Event) {
    match input {
        Input::Hit(h) => {
            let place = places.of(h.client);
            let list = h
                .list
                .list(&crate::blocklist::Verdict::Block(h.hit))
                .map(|l| l.name.clone())
                .unwrap_or_default();
            let key = format!("{}|{}|{}", h.client.ip, h.rule, h.list.category(&h.hit));
            let client = ClientInfo {
                ip: match h.via {
                    None => cfg.client_ip.apply(h.client.ip, hash_key),
                    Some(_) => cfg.encrypted_client_ip.apply(h.client.ip, hash_key),
                },
                place: PlaceOut::from(place),
            };
            let query = QueryInfo {
                name: h.name,
                qtype: qtype_name(h.qtype),
            };
            let matched = MatchInfo {
                rule: h.rule,
                list,
                category: h.list.category(&h.hit).to_string(),
                note: h.list.note(&h.hit).map(String::from),
            };
            let e = Event {
                action: h.action.into(),
                via: h.via.map(String::from),
                ..hit_event(h.time, cfg, client, query, matched)
            };
            (key, e)
        }
        Input::PathHit(h) => path_event(*h, cfg, hash_key, places),
        Input::Appeal(a, t) => {
            let place = places.lookup(a.client);
            let e = Event {
                id: new_id(t),
                kind: "appeal".into(),
                time: rfc3339_millis(t),
                appliance: cfg.appliance.clone(),
                client: ClientInfo {
                    ip: cfg.client_ip.apply(a.client, hash_key),
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
                via: None,
            };
            // Appeals are never folded together.
            (e.id.clone(), e)
        }
    }
}

/// A hit's event, once of its client, query and rule (action sinkhole, no `via`:
/// the caller sets its own).
fn hit_event(
    time: SystemTime,
    cfg: &ReportConfig,
    client: ClientInfo,
    query: QueryInfo,
    matched: MatchInfo,
) -> Event {
    Event {
        id: new_id(time),
        kind: "hit".into(),
        time: rfc3339_millis(time),
        appliance: cfg.appliance.clone(),
        client,
        query: Some(query),
        matched: Some(matched),
        action: "sinkhole".into(),
        count: 1,
        appeal: None,
        via: None,
    }
}

/// The event of a page blocked by a path rule (the URL proxy's).
fn path_event(h: PathHit, cfg: &ReportConfig, hash_key: &[u8], places: &Places) -> (String, Event) {
    let place = places.lookup(h.client);
    let key = format!("{}|{}|{}", h.client, h.rule, h.category);
    let client = ClientInfo {
        ip: cfg.client_ip.apply(h.client, hash_key),
        place: PlaceOut::from(place),
    };
    // The page's address stays here: its path and query may carry what the
    // resident typed. The rule says which page it was; the type is URL (the query
    // was a web request, not DNS).
    let query = QueryInfo {
        name: h.host,
        qtype: "URL".into(),
    };
    let matched = MatchInfo {
        rule: h.rule,
        list: h.list,
        category: h.category,
        note: h.note,
    };
    let e = Event {
        action: h.action.into(),
        ..hit_event(h.time, cfg, client, query, matched)
    };
    (key, e)
}

/// Whether an event's address may be hashed: then the appliance's own key is needed.
fn hashes(cfg: &ReportConfig) -> bool {
    use crate::privacy::ClientIp::Hash;
    cfg.client_ip == Hash || cfg.encrypted_client_ip == Hash
}

/// The pipeline's join handles: the writer, then the sender.
pub type Tasks = (JoinHandle<()>, JoinHandle<()>);

/// Segments close at this size (or when the sender has caught up).
const SEGMENT_BYTES: u64 = 4 << 20;

/// Open the spool in `cfg.spool_dir`, saying what was found; an error is logged and
/// marked degraded, and the caller tries again later.
fn open_spool(cfg: &ReportConfig, metrics: &ReportMetrics) -> Option<Spool> {
    match Spool::open(
        &cfg.spool_dir,
        cfg.spool_max_bytes,
        SEGMENT_BYTES,
        cfg.fsync,
    ) {
        Ok((spool, rec)) => {
            if rec.segments > 0 || rec.torn > 0 {
                tracing::info!(
                    segments = rec.segments,
                    events = rec.events,
                    torn_records = rec.torn,
                    "report spool: resending what is on disk"
                );
            }
            for u in &rec.unreadable {
                tracing::error!(entry = %u, "report spool: cannot read this entry; it is left alone, and its events are not sent");
            }
            metrics.spool_bytes.set(spool.bytes() as i64);
            Some(spool)
        }
        Err(e) => {
            spool_failed(cfg, metrics, &format!("cannot open: {e}"));
            None
        }
    }
}

/// Log (once per problem) and mark the spool as not writable.
fn spool_failed(cfg: &ReportConfig, metrics: &ReportMetrics, why: &str) {
    let why = format!("spool {}: {why}", cfg.spool_dir.display());
    if !metrics.degraded.is_set(PART) {
        tracing::error!(problem = %why, retry_every_s = RETRY_SPOOL.as_secs(), "REPORTING DEGRADED: hit events wait in memory until the spool can be written (DNS is not affected); fix the directory's permissions or free space");
    }
    metrics.spool_writable.set(0);
    metrics.degraded.set(PART, why);
}

/// Start [`run_writer`] and [`run_sender`]; returns the handle and their join
/// handles. On `shutdown` the writer flushes every pending event to the spool.
/// `places` is read at each event, so a swapped value applies at once. A spool that
/// cannot be opened does not stop anything: see the module's documentation.
pub fn start(
    cfg: ReportConfig,
    places: Arc<ArcSwap<Places>>,
    platform: Arc<ArcSwap<Platform>>,
    metrics: ReportMetrics,
    shutdown: CancellationToken,
) -> (Reporter, Tasks) {
    let hash_key: Arc<[u8]> = if hashes(&cfg) {
        crate::privacy::hash_key_or_ephemeral(&cfg.hash_key_file)
    } else {
        Arc::from(&[][..])
    };
    let spool = open_spool(&cfg, &metrics);
    metrics.spool_writable.set(i64::from(spool.is_some()));
    let spool: SharedSpool = Arc::new(Mutex::new(spool));
    let (tx, rx) = mpsc::channel::<Input>(65_536);
    let notify = Arc::new(Notify::new());
    let reporter = Reporter::new(tx, metrics.events.with_label_values(&["dropped_full"]));
    let cfg = Arc::new(cfg);
    let writer = tokio::spawn(run_writer(Writer {
        rx,
        cfg: cfg.clone(),
        hash_key,
        places,
        spool: spool.clone(),
        unwritten: Backlog::default(),
        last_open: Instant::now(),
        bytes_at_failure: 0,
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
    (reporter, (writer, sender))
}

/// What the writer task owns.
struct Writer {
    rx: mpsc::Receiver<Input>,
    cfg: Arc<ReportConfig>,
    /// The key for `client_ip = "hash"`.
    hash_key: Arc<[u8]>,
    places: Arc<ArcSwap<Places>>,
    spool: SharedSpool,
    /// Events not yet on disk (the spool could not be written), oldest first.
    unwritten: Backlog,
    /// When the spool was last opened or tried.
    last_open: Instant,
    /// The spool's bytes when an append last failed: once the sender has freed room
    /// below it, the writer tries again at once instead of after RETRY_SPOOL, so a
    /// backlog kept in memory drains as fast as the platform takes it.
    bytes_at_failure: u64,
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
                    let (key, e) = build(input, &w.cfg, &w.hash_key, &w.places.load());
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
                // An appeal folds with nothing: it leaves at the next tick, so that
                // the district sees it within seconds, not a window later.
                stopping
                    || p.event.kind == "appeal"
                    || pending_len_over(&pending)
                    || now.duration_since(p.first) >= w.cfg.dedup_window
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !due.is_empty() {
            let batch = due
                .iter()
                .filter_map(|k| pending.remove(k))
                .map(|p| serde_json::to_vec(&p.event).unwrap_or_default());
            for e in batch {
                w.unwritten.push(e);
            }
            let over = w.unwritten.len().saturating_sub(MAX_UNWRITTEN);
            if over > 0 {
                let dropped = w.unwritten.drop_oldest(over);
                w.metrics.count("dropped_spool", dropped as u64);
            }
        }
        if !w.unwritten.is_empty() {
            append(&mut w).await;
        }
        if stopping && pending.is_empty() {
            if !w.unwritten.is_empty() {
                tracing::error!(
                    events = w.unwritten.len(),
                    "stopping with hit events that could not be written to the spool; they are lost"
                );
            }
            return;
        }
    }
}

/// Append the unwritten events to the spool on a blocking thread and wake the
/// sender; an unusable spool is reopened at most every [`RETRY_SPOOL`], and the
/// events stay in memory until one takes them.
async fn append(w: &mut Writer) {
    let reopen = w.last_open.elapsed() >= RETRY_SPOOL;
    if !reopen && w.metrics.degraded.is_set(PART) && !room_freed(w) {
        // Failing: try again every RETRY_SPOOL, not every flush, unless the sender
        // has freed room on the disk since.
        return;
    }
    let (spool, cfg, metrics) = (w.spool.clone(), w.cfg.clone(), w.metrics.clone());
    let mut backlog = std::mem::take(&mut w.unwritten);
    let res = tokio::task::spawn_blocking(move || {
        let mut guard = spool.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            if !reopen {
                return (backlog, None);
            }
            *guard = open_spool(&cfg, &metrics);
        }
        let Some(s) = guard.as_mut() else {
            return (backlog, Some(Err(("cannot open".to_string(), 0, 0))));
        };
        // Block by block, in chunks: after a full disk, the events kept in memory
        // may be more than the space freed; what fits goes now (halving the chunk
        // down to one event when the disk refuses it), the rest at the next try.
        let mut lost = 0;
        while let Some(batch) = backlog.pop_front() {
            let mut done = 0;
            let mut chunk = APPEND_CHUNK;
            while done < batch.len() {
                let end = (done + chunk).min(batch.len());
                match s.append(&batch[done..end]) {
                    Ok(l) => {
                        lost += l;
                        done = end;
                    }
                    Err(_) if chunk > 1 => chunk /= 2,
                    Err(e) => {
                        let bytes = s.bytes();
                        // A full or read-only disk: the segments on it stay valid and
                        // the sender keeps sending them, which frees room. A directory
                        // that is gone is opened afresh at the next try.
                        if e.kind() == std::io::ErrorKind::NotFound {
                            *guard = None;
                        }
                        let mut left = batch;
                        left.drain(..done);
                        backlog.push_front(left);
                        let why = format!("cannot write: {e}");
                        return (backlog, Some(Err((why, lost, bytes))));
                    }
                }
            }
        }
        (backlog, Some(Ok((lost, s.bytes()))))
    })
    .await;
    let Ok((mut left, outcome)) = res else {
        tracing::error!("report spool writer panicked");
        return;
    };
    // What waits for a later try is kept packed.
    left.pack();
    w.unwritten = left;
    match outcome {
        None => {}
        Some(Ok((lost, bytes))) => {
            if w.metrics.degraded.is_set(PART) {
                tracing::info!("report spool writable again; events kept in memory are on disk");
                w.metrics.degraded.clear(PART);
            }
            w.metrics.spool_writable.set(1);
            w.metrics.count("dropped_cap", lost);
            w.metrics.spool_bytes.set(bytes as i64);
            w.notify.notify_one();
        }
        Some(Err((why, lost, bytes))) => {
            w.metrics.count("dropped_cap", lost);
            if bytes > 0 {
                w.metrics.spool_bytes.set(bytes as i64);
                w.notify.notify_one();
            }
            w.last_open = Instant::now();
            w.bytes_at_failure = bytes;
            spool_failed(&w.cfg, &w.metrics, &why);
        }
    }
}

/// Whether the sender has deleted segments since the last failed append. Never
/// waits: while the spool is busy (an append or a delete in progress) it says no,
/// and the next tick asks again.
fn room_freed(w: &Writer) -> bool {
    w.bytes_at_failure > 0
        && w.spool
            .try_lock()
            .is_ok_and(|g| g.as_ref().is_some_and(|s| s.bytes() < w.bytes_at_failure))
}

/// What the sender task owns.
struct Sender {
    cfg: Arc<ReportConfig>,
    /// Where and how to send: swapped by a reload (a new URL, secret or CA), taken
    /// afresh for each segment.
    platform: Arc<ArcSwap<Platform>>,
    spool: SharedSpool,
    notify: Arc<Notify>,
    metrics: ReportMetrics,
    shutdown: CancellationToken,
}

/// Send closed segments in order, oldest first, and delete each once the platform
/// took all of it; wait for the writer (or a second) when there are none.
async fn run_sender(s: Sender) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let segs = {
            let mut guard = s.spool.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                Some(sp) => {
                    let ready = sp.ready();
                    s.metrics.spool_bytes.set(sp.bytes() as i64);
                    ready
                }
                None => Vec::new(),
            }
        };
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
            if !send_segment(&s, &seg, &mut backoff).await {
                return; // shutting down; the segment stays for the next start
            }
            let mut guard = s.spool.lock().unwrap_or_else(|e| e.into_inner());
            let acked = match guard.as_mut() {
                Some(sp) => sp.ack(&seg),
                None => std::fs::remove_file(&seg).or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }),
            };
            if let Err(e) = acked {
                tracing::error!(segment = %seg.display(), error = %e, "cannot delete a sent report segment; its events may be sent again");
            }
        }
    }
}

/// Send one segment, a batch at a time as it is read; false when shutting down. A
/// segment that cannot be read (or stops being readable) is set aside.
async fn send_segment(s: &Sender, seg: &std::path::Path, backoff: &mut Duration) -> bool {
    let mut reader = match spool::SegmentReader::open(seg) {
        Ok(r) => r,
        // Deleted by the cap meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(e) => {
            set_aside(seg, &e);
            return true;
        }
    };
    loop {
        let batch = match reader.next_batch(s.cfg.batch_events, s.cfg.batch_bytes) {
            Ok(b) if b.is_empty() => return true,
            Ok(b) => b,
            Err(e) => {
                set_aside(seg, &e);
                return true;
            }
        };
        if !send_all(
            &s.platform,
            &s.cfg,
            &s.metrics,
            &batch,
            backoff,
            &s.shutdown,
        )
        .await
        {
            return false;
        }
    }
}

fn set_aside(seg: &std::path::Path, e: &std::io::Error) {
    let aside = seg.with_extension("unreadable");
    tracing::error!(segment = %seg.display(), moved_to = %aside.display(), error = %e, "cannot read a report spool segment; it is set aside, and its events not yet sent are not sent");
    let _ = std::fs::rename(seg, &aside);
}

fn pending_len_over(p: &HashMap<String, Pending>) -> bool {
    p.len() >= 100_000
}

/// Send every event of a segment in batches; true when all were accepted or dead-lettered,
/// false when shutting down.
async fn send_all(
    platform: &ArcSwap<Platform>,
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
            // Taken afresh for each attempt: a reload that fixes the URL or the
            // secret reaches the batch being retried.
            let spool = u64::try_from(metrics.spool_bytes.get()).unwrap_or(0);
            let out = platform.load_full().post(&body, &key, spool).await;
            metrics.send_duration.observe(t.elapsed().as_secs_f64());
            match out {
                Outcome::Accepted => {
                    metrics.count("sent", batch.len() as u64);
                    if metrics.auth_failing.get() != 0 {
                        tracing::info!("the platform accepts this appliance's credentials again");
                        metrics.auth_failing.set(0);
                    }
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
                    dead_letter(&cfg.dead_letter(), dead_letter_cap(cfg), batch);
                    metrics.count("dead_letter", batch.len() as u64);
                    break;
                }
                Outcome::Unauthorized(status) => {
                    // A configuration error: the events wait in the spool (under its
                    // cap) until the secret is fixed; never dead-lettered.
                    metrics.auth_failing.set(1);
                    tracing::error!(
                        status,
                        retry_in_ms = backoff.as_millis() as u64,
                        "the platform refuses this appliance's credentials: check [report] secret and appliance; events stay in the spool"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(*backoff) => {}
                        _ = shutdown.cancelled() => return false,
                    }
                    *backoff = (*backoff * 2).min(cfg.max_backoff);
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

/// The dead-letter file's cap: a sixteenth of the spool's, at least 1 MiB. Past it
/// the file is renamed to `.1` (replacing the one before), so the two stay under
/// twice the cap.
fn dead_letter_cap(cfg: &ReportConfig) -> u64 {
    (cfg.spool_max_bytes / 16).max(1 << 20)
}

fn dead_letter(path: &std::path::Path, cap: u64, batch: &[Vec<u8>]) {
    use std::io::Write;
    let incoming: u64 = batch.iter().map(|e| e.len() as u64 + 1).sum();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > 0 && size + incoming > cap {
        let old = path.with_extension("jsonl.1");
        if let Err(e) = std::fs::rename(path, &old) {
            tracing::error!(error = %e, file = %path.display(), "cannot rotate the dead-letter file");
        } else {
            tracing::warn!(file = %old.display(), "dead-letter file rotated; the one before it is gone");
        }
    }
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

#[cfg(test)]
mod tests {

    #[test]
    fn the_hash_key_is_made_when_either_address_setting_hashes() {
        let cfg = |toml: &str| {
            let raw = format!("[report]\n{toml}");
            crate::config::RawConfig::from_toml(&raw, "test.toml")
                .unwrap()
                .validate(std::path::Path::new("/etc/fanzha"), None)
                .unwrap()
                .report
        };
        assert!(!hashes(&cfg("")));
        assert!(hashes(&cfg("client_ip = \"hash\"")));
        assert!(hashes(&cfg("encrypted_client_ip = \"hash\"")));
        assert!(!hashes(&cfg(
            "client_ip = \"truncate\"\nencrypted_client_ip = \"keep\""
        )));
    }
    use super::*;

    #[test]
    fn the_dead_letter_file_rotates_at_its_cap() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("dead-letter.jsonl");
        let batch: Vec<Vec<u8>> = (0..10)
            .map(|i| format!("{{\"id\":{i}}}").into_bytes())
            .collect();
        for _ in 0..1000 {
            dead_letter(&path, 4096, &batch);
        }
        let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
        assert!(size(&path) <= 4096, "{}", size(&path));
        assert!(size(&path.with_extension("jsonl.1")) <= 4096);
        let files = std::fs::read_dir(d.path()).unwrap().count();
        assert_eq!(files, 2, "one file and one rotated copy");
    }
}
