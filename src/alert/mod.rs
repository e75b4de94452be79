//! Alerts to the place that can act (预警劝阻): a digest of a place's blocked queries
//! to its own workers' group chat (DingTalk, WeCom) or a signed webhook.
//!
//! ```text
//! DNS hot path ──try_send──▶ collector: device id, 60 s de-dup, the book (digest.rs)
//!                              │ every second: book.json saved; due digests appended
//!                              ▼ (fsynced) to the outbox spool
//!                            sender: outbox in order → message (robot.rs) → POST →
//!                              taken: gone; failed: back in the outbox, with a
//!                              per-place backoff
//! ```
//! Nothing here can touch DNS: the hot path only hands a hit over (a full channel
//! drops it and counts it), and every failure ends in a log line and a metric.
//! What is gathered and what waits to be sent are on disk (`<report.spool_dir>/alerts`),
//! so a restart loses neither.

pub mod digest;
pub mod robot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::blocklist::Blocklist;
use crate::categories::Names;
use crate::config::{AlertConfig, Devices};
use crate::metrics::AlertMetrics;
use crate::outbox::spool::{self, Spool};
use crate::outbox::{Handoff, new_id};
use crate::places::Places;
use crate::privacy::{ClientIp, keyed_hash};
use crate::wallclock::unix_now;
use digest::{Book, Digest};
use robot::Delivery;

/// A blocked query, as the DNS path hands it over (no allocation).
pub struct AlertHit {
    /// The client, and the place it named over encrypted DNS.
    pub client: crate::places::Asker,
    /// What decided (for the category).
    pub by: Decided,
    /// A hash of the rule's name: a device's repeats of one rule within a minute
    /// (A and AAAA, a browser's retries) are one attempt.
    pub rule: u64,
}

/// What decided an alerted hit.
pub enum Decided {
    /// An entry of the name index (a DNS hit): the snapshot and the entry.
    Listed(Arc<Blocklist>, crate::blocklist::Hit),
    /// A path rule of the URL proxy, by its category.
    Category(String),
}

impl AlertHit {
    /// The hit's fraud category.
    pub fn category(&self) -> &str {
        match &self.by {
            Decided::Listed(list, hit) => list.category(hit),
            Decided::Category(c) => c,
        }
    }
}

/// The handle the DNS path and the URL proxy use.
pub type Alerter = Handoff<AlertHit>;

/// A repeat of one device and rule within this long is one attempt.
const SAME_ATTEMPT: u64 = 60;
/// Outbox cap.
const OUTBOX_BYTES: u64 = 16 << 20;
/// First wait after a failed delivery.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Per-request time limit.
const POST_TIME: Duration = Duration::from_secs(10);

/// The collector and the sender.
pub type Tasks = (JoinHandle<()>, JoinHandle<()>);

/// Start the collector and the sender. `places` is the engine's (swapped on
/// SIGHUP); `names` gives the categories' Chinese names (swapped on SIGHUP too).
pub fn start(
    cfg: Arc<ArcSwap<AlertConfig>>,
    places: Arc<ArcSwap<Places>>,
    names: Arc<ArcSwap<Names>>,
    metrics: AlertMetrics,
    shutdown: CancellationToken,
) -> (Alerter, Tasks) {
    let (tx, rx) = mpsc::channel(16_384);
    let alerter = Alerter::new(tx, metrics.dropped_hits.clone());
    // Nothing on disk for an appliance without alerts (made at the first digest
    // should a SIGHUP give a place a robot); digests an earlier run left are sent.
    let now = cfg.load_full();
    let in_use = places.load().has_alerts() || now.dir.exists();
    let outbox = Arc::new(Mutex::new(if in_use { open_outbox(&now) } else { None }));
    let notify = Arc::new(Notify::new());
    let key = crate::privacy::hash_key_or_ephemeral(&now.hash_key_file);
    let collector = tokio::spawn(collect(Collector {
        rx,
        cfg: cfg.clone(),
        key,
        places: places.clone(),
        book: load_book(&now.dir),
        recent: HashMap::new(),
        outbox: outbox.clone(),
        notify: notify.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    }));
    let sender = tokio::spawn(send(Sender {
        cfg,
        places,
        names,
        outbox,
        notify,
        metrics,
        shutdown,
        backoff: HashMap::new(),
    }));
    (alerter, (collector, sender))
}

fn open_outbox(cfg: &AlertConfig) -> Option<Spool> {
    match Spool::open(&cfg.dir.join("outbox"), OUTBOX_BYTES, 256 << 10, cfg.fsync) {
        Ok((s, rec)) => {
            if rec.events > 0 {
                tracing::info!(
                    digests = rec.events,
                    "alerts: sending the digests that waited on disk"
                );
            }
            Some(s)
        }
        Err(e) => {
            tracing::error!(dir = %cfg.dir.display(), error = %e, "cannot open the alerts outbox; digests cannot be sent until it can (tried again at each digest)");
            None
        }
    }
}

fn book_path(dir: &Path) -> PathBuf {
    dir.join("book.json")
}

/// The book saved at the last stop, or an empty one (a bad file is set aside).
fn load_book(dir: &Path) -> Book {
    let path = book_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            let aside = path.with_extension("json.bad");
            tracing::error!(file = %path.display(), moved_to = %aside.display(), error = %e, "cannot read the alerts book; its hits are not alerted");
            let _ = std::fs::rename(&path, &aside);
            Book::default()
        }),
        Err(_) => Book::default(),
    }
}

/// Write the book in place of the old one (a temporary file renamed over it).
fn save_book(dir: &Path, book: &Book, fsync: bool) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = book_path(dir);
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(book).unwrap_or_default())?;
    if fsync {
        f.sync_data()?;
    }
    std::fs::rename(&tmp, &path)
}

struct Collector {
    rx: mpsc::Receiver<AlertHit>,
    /// Swapped by a reload (the pacing keys; the directory and key stay).
    cfg: Arc<ArcSwap<AlertConfig>>,
    key: Arc<[u8]>,
    places: Arc<ArcSwap<Places>>,
    book: Book,
    /// (device, rule) → when last counted.
    recent: HashMap<(u64, u64), u64>,
    outbox: Arc<Mutex<Option<Spool>>>,
    notify: Arc<Notify>,
    metrics: AlertMetrics,
    shutdown: CancellationToken,
}

impl Collector {
    /// Count a hit at its place, unless the device made the same attempt within
    /// a minute or its place has no alerts.
    fn add(&mut self, h: AlertHit, now: u64) {
        let places = self.places.load();
        let Some((place, _)) = places.alerting(h.client) else {
            return;
        };
        let hash = keyed_hash(h.client.ip, &self.key);
        let id = u64::from_be_bytes(hash[..8].try_into().unwrap_or_default());
        if let Some(&t) = self.recent.get(&(id, h.rule))
            && now.saturating_sub(t) < SAME_ATTEMPT
        {
            return;
        }
        if self.recent.len() >= 100_000 {
            self.recent
                .retain(|_, t| now.saturating_sub(*t) < SAME_ATTEMPT);
        }
        self.recent.insert((id, h.rule), now);
        let id_hex = hex::encode(&hash[..8]);
        let label = match self.cfg.load().devices {
            Devices::Keep => h.client.ip.to_canonical().to_string(),
            Devices::Truncate => ClientIp::Truncate.apply(h.client.ip.to_canonical(), &[]),
            Devices::Hash => id_hex[..8].to_string(),
            Devices::None => String::new(),
        };
        self.book.add(place, (&id_hex, &label), h.category(), now);
    }

    /// Append the due digests to the outbox; they leave the book only once there.
    async fn flush_due(&mut self, now: u64) -> bool {
        let cfg = self.cfg.load_full();
        let due = self
            .book
            .due(now, cfg.interval.as_secs().max(1), cfg.max_per_hour);
        if due.is_empty() {
            return false;
        }
        let mut taken = self.book.clone();
        let digests: Vec<Digest> = due
            .iter()
            .filter_map(|k| taken.take(k, new_id(SystemTime::now()), now))
            .collect();
        let records: Vec<Vec<u8>> = digests
            .iter()
            .map(|d| serde_json::to_vec(d).unwrap_or_default())
            .collect();
        let outbox = self.outbox.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut g = outbox.lock().unwrap_or_else(|e| e.into_inner());
            if g.is_none() {
                *g = open_outbox(&cfg);
            }
            match g.as_mut() {
                Some(s) => s.append(&records).map(|_| ()),
                None => Err(std::io::Error::other("no outbox")),
            }
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.book = taken;
                for d in &digests {
                    self.metrics.count("made");
                    tracing::debug!(place = %d.place, hits = d.gathered.hits, "alert digest made");
                }
                self.notify.notify_one();
                true
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, dir = %self.cfg.load().dir.display(), "cannot write alert digests to the outbox; the hits stay gathered and are tried again");
                false
            }
            Err(_) => false,
        }
    }

    fn save(&self) {
        let cfg = self.cfg.load();
        if let Err(e) = save_book(&cfg.dir, &self.book, cfg.fsync) {
            tracing::error!(dir = %cfg.dir.display(), error = %e, "cannot save the alerts book; hits gathered since the last save are lost at a restart");
        }
    }
}

/// Gather hits; every second save the book (when it changed) and hand the due
/// digests to the sender. On shutdown, save and end.
async fn collect(mut c: Collector) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut dirty = false;
    loop {
        tokio::select! {
            biased;
            _ = c.shutdown.cancelled() => {
                // What is already queued belongs in the book too.
                let now = unix_now();
                while let Ok(h) = c.rx.try_recv() {
                    c.add(h, now);
                    dirty = true;
                }
                if dirty {
                    c.save();
                }
                return;
            }
            _ = tick.tick() => {}
            h = c.rx.recv() => match h {
                Some(h) => {
                    c.add(h, unix_now());
                    dirty = true;
                    continue;
                }
                None => {
                    if dirty {
                        c.save();
                    }
                    return;
                }
            },
        }
        let now = unix_now();
        if c.flush_due(now).await {
            dirty = true;
        }
        c.book.prune(now);
        if dirty {
            c.save();
            dirty = false;
        }
    }
}

struct Sender {
    /// Swapped by a reload (the pacing keys; the directory and key stay).
    cfg: Arc<ArcSwap<AlertConfig>>,
    places: Arc<ArcSwap<Places>>,
    names: Arc<ArcSwap<Names>>,
    outbox: Arc<Mutex<Option<Spool>>>,
    notify: Arc<Notify>,
    metrics: AlertMetrics,
    shutdown: CancellationToken,
    /// Place → (next try, current wait).
    backoff: HashMap<String, (Instant, Duration)>,
}

impl Sender {
    /// Try to deliver `d` (unless its place is waiting); whether it must be kept.
    async fn deliver(&mut self, d: &Digest, agent: &ureq::Agent) -> bool {
        let now = unix_now();
        let cfg = self.cfg.load_full();
        if now.saturating_sub(d.made) > cfg.give_up_after.as_secs() {
            self.metrics.count("given_up");
            tracing::error!(place = %d.place, hits = d.gathered.hits, made = d.made, "an alert digest could not be delivered in [alerts] give_up_after; it is dropped");
            return false;
        }
        if self
            .backoff
            .get(&d.place)
            .is_some_and(|(next, _)| Instant::now() < *next)
        {
            return true;
        }
        let places = self.places.load();
        let Some((_, target)) = places.alert_of(&d.place) else {
            self.metrics.count("dropped");
            tracing::warn!(place = %d.place, "an alert digest waits for a place that no longer has an alert in [[places]]; it is dropped");
            return false;
        };
        let names = self.names.load();
        let name_zh = |c: &str| names.zh(c).to_string();
        let msg = robot::message(d, &name_zh, cfg.utc_offset);
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |t| t.as_millis() as u64);
        let req = robot::request(target, d, &msg, &cfg.appliance, now_ms);
        let kind = target.kind;
        let agent = agent.clone();
        let answer = tokio::task::spawn_blocking(move || {
            crate::http::post(&agent, &req.url, &req.headers, &req.body, 8192)
        })
        .await;
        let result = match answer {
            Ok(Ok((status, body))) => robot::judge(kind, status, &body),
            Ok(Err(e)) => Delivery::Retry(e),
            Err(e) => Delivery::Retry(e.to_string()),
        };
        let place = d.place.clone();
        match &result {
            Delivery::Sent => {
                self.metrics.count("sent");
                if self.backoff.remove(&place).is_some() {
                    tracing::info!(%place, kind = kind.as_str(), "alerts reach this place again");
                }
                tracing::info!(%place, kind = kind.as_str(), hits = d.gathered.hits, "alert digest delivered");
                self.metrics.failing.set(self.backoff.len() as i64);
                false
            }
            Delivery::Retry(why) | Delivery::Refused(why) => {
                let refused = matches!(result, Delivery::Refused(_));
                let wait = match self.backoff.get(&place) {
                    Some((_, w)) => (*w * 2).min(cfg.max_backoff),
                    None => FIRST_BACKOFF.min(cfg.max_backoff),
                };
                if refused {
                    self.metrics.count("refused");
                    tracing::error!(%place, kind = kind.as_str(), %why, retry_in_s = wait.as_secs(), "the robot refuses this place's alert: check [[places]] alert (url, secret_file, the robot's security settings)");
                } else {
                    self.metrics.count("retried");
                    tracing::warn!(%place, kind = kind.as_str(), %why, retry_in_s = wait.as_secs(), "alert not delivered; it is kept and tried again");
                }
                self.backoff.insert(place, (Instant::now() + wait, wait));
                self.metrics.failing.set(self.backoff.len() as i64);
                true
            }
        }
    }

    /// How long until the first place waiting may be tried again.
    fn next_wait(&self) -> Duration {
        let now = Instant::now();
        self.backoff
            .values()
            .map(|(next, _)| next.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(100))
    }
}

/// Deliver the outbox's closed segments in order; what must be kept goes back into
/// the outbox before the segment is deleted, so a restart finds it.
async fn send(mut s: Sender) {
    let agent = match crate::http::agent(None, None, POST_TIME) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the HTTP client of the alerts; no alert is sent");
            return;
        }
    };
    loop {
        let segs = {
            let mut g = s.outbox.lock().unwrap_or_else(|e| e.into_inner());
            g.as_mut().map(Spool::ready).unwrap_or_default()
        };
        let mut kept_any = false;
        for seg in &segs {
            let records = match spool::read_segment(seg) {
                Ok((r, _)) => r,
                Err(e) => {
                    tracing::error!(segment = %seg.display(), error = %e, "cannot read an alerts outbox segment; it is set aside");
                    let _ = std::fs::rename(seg, seg.with_extension("unreadable"));
                    continue;
                }
            };
            let mut keep = Vec::new();
            for r in records {
                let Ok(d) = serde_json::from_slice::<Digest>(&r) else {
                    continue;
                };
                if s.shutdown.is_cancelled() {
                    return; // the segment stays for the next start
                }
                if s.deliver(&d, &agent).await {
                    keep.push(r);
                }
            }
            kept_any |= !keep.is_empty();
            let outbox = s.outbox.clone();
            let seg = seg.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut g = outbox.lock().unwrap_or_else(|e| e.into_inner());
                let Some(sp) = g.as_mut() else { return };
                if !keep.is_empty()
                    && let Err(e) = sp.append(&keep)
                {
                    // Not deleted, then: sent again, rather than lost.
                    tracing::error!(error = %e, "cannot keep undelivered alert digests in the outbox; their segment stays");
                    return;
                }
                if let Err(e) = sp.ack(&seg) {
                    tracing::error!(segment = %seg.display(), error = %e, "cannot delete a delivered alerts segment; its digests may be sent again");
                }
            })
            .await;
        }
        if segs.is_empty() || kept_any {
            tokio::select! {
                _ = s.notify.notified() => {}
                _ = tokio::time::sleep(if kept_any { s.next_wait() } else { Duration::from_secs(1) }) => {}
                _ = s.shutdown.cancelled() => return,
            }
        }
    }
}
