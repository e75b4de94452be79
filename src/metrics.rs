//! One struct holding every Prometheus metric (prefix `fanzha_`), and the ops HTTP
//! endpoint: `/metrics`, `/healthz`, `/readyz`.
//!
//! Labels come from the config or fixed sets (result, category, kind, outcome): never
//! a domain or a client address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::blocklist::Handle;

pub mod top;
pub mod week;

/// The outcome label of a query (the `result` label of `fanzha_queries_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered from the resolver.
    Allowed,
    /// Blocked by a list.
    Blocked,
    /// Blocked because a CNAME in the answer pointed at a blocked name.
    BlockedCname,
    /// Refused by the ACL.
    Refused,
    /// Over the rate limit.
    RateLimited,
    /// FORMERR, NOTIMP, BADVERS, class not IN.
    Malformed,
    /// The resolver failed.
    Servfail,
    /// Synthesised locally (DoH canary, ANY).
    Local,
    /// Dropped without an answer.
    Dropped,
    /// A host with path rules, answered with the URL proxy's address.
    UrlProxy,
}

impl Outcome {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Blocked => "blocked",
            Outcome::BlockedCname => "blocked_cname",
            Outcome::Refused => "refused",
            Outcome::RateLimited => "ratelimited",
            Outcome::Malformed => "malformed",
            Outcome::Servfail => "servfail",
            Outcome::Local => "local",
            Outcome::Dropped => "dropped",
            Outcome::UrlProxy => "url_proxy",
        }
    }
    /// Every label, for pre-registering metrics.
    pub const ALL: [Outcome; 10] = [
        Outcome::Allowed,
        Outcome::Blocked,
        Outcome::BlockedCname,
        Outcome::Refused,
        Outcome::RateLimited,
        Outcome::Malformed,
        Outcome::Servfail,
        Outcome::Local,
        Outcome::Dropped,
        Outcome::UrlProxy,
    ];
}

/// The reasons a resolution fails, as `fanzha_resolution_failures_total` labels
/// them (the resolver's `Failure::label`).
pub const FAILURE_REASONS: &[&str] = &[
    "no_root_answers",
    "no_usable_answer",
    "bogus",
    "timeout",
    "upstream",
];

/// The `transport` labels of `fanzha_transport_queries_total`, in the order of the
/// engine's `Transport`.
pub const TRANSPORTS: [&str; 4] = ["udp", "tcp", "dot", "doh"];

/// Every metric of the appliance.
pub struct Metrics {
    registry: Registry,
    /// What each registered metric is: its name, help and labels (the reference).
    descs: Vec<prometheus::core::Desc>,
    queries: Vec<IntCounter>,
    /// Queries by transport, in the order of [`TRANSPORTS`].
    transports: Vec<IntCounter>,
    /// Encrypted DNS from outside the ACL that named no known place: refused.
    pub unnamed_refused: IntCounterVec,
    /// The URL proxy's counters.
    url: UrlMetrics,
    /// Time from receiving a query to sending its answer.
    pub query_duration: Histogram,
    /// Blocked queries by category.
    pub blocked: IntCounterVec,
    /// Names a shadow list (or a place's shadow category) would have blocked, by
    /// category and list.
    pub shadow_hits: IntCounterVec,
    /// Answers served from the answer cache.
    pub cache_hits: IntCounter,
    /// Cached answers refreshed before they expired.
    pub prefetches: IntCounter,
    /// Expired answers served because the resolution failed (RFC 8767).
    pub stale_answers: IntCounter,
    /// The serving list and its reloads.
    lists: ListMetrics,
    /// 1 while keys changed in the config file wait for a restart.
    pub config_restart_pending: IntGauge,
    /// Warning pages shown, by category ("none": a host that is not blocked).
    pub warnpage_views: IntCounterVec,
    /// Appeals received.
    pub appeals: IntCounter,
    /// The report pipeline's metrics.
    pub report: ReportMetrics,
    /// The alerts to places' workers.
    pub alert: AlertMetrics,
    /// Exchanges with authoritative servers by result (recursive mode).
    pub upstream: IntCounterVec,
    /// Resolutions that gave no usable answer, by reason ([`FAILURE_REASONS`]).
    pub resolution_failures: IntCounterVec,
    /// Queries answered SERVFAIL at once: too many resolutions in flight.
    pub overload: IntCounter,
    /// Resolutions shed for another client's query at the cap (dropped unanswered).
    pub jostled: IntCounter,
    /// The rules that blocked most since start (`fanzha ctl top-blocked`).
    pub top_blocked: top::TopRules,
    /// The shadow rules that matched most since start (`fanzha ctl shadow-report`).
    pub top_shadow: top::TopRules,
    /// Snapshots of the block counters over the last week (the kiosk's figures).
    pub week: week::WeekCounts,
    /// dnstap frames by outcome: sent, dropped (queue full), lost (connection broke).
    pub dnstap_frames: IntCounterVec,
    /// The signed list feed.
    pub feed: FeedMetrics,
    /// `[[sources]]` fetches by source and outcome.
    pub source_fetches: IntCounterVec,
    /// Last fetch of each source that reached it.
    pub source_last_success: IntGaugeVec,
}

/// `fanzha_source_fetches_total{source,outcome}`.
fn source_fetches(r: &Reg<'_>) -> IntCounterVec {
    r.add(IntCounterVec::new(
                Opts::new(
                    "source_fetches_total",
                    "[[sources]] fetches by source and outcome: updated, unchanged, refused (too large, wrong sha256), error",
                ),
                &["source", "outcome"],
            ))
}

/// `fanzha_source_last_success_timestamp_seconds{source}`.
fn source_last_success(r: &Reg<'_>) -> IntGaugeVec {
    r.add(IntGaugeVec::new(
        Opts::new(
            "source_last_success_timestamp_seconds",
            "Last fetch of each [[sources]] list that reached it",
        ),
        &["source"],
    ))
}

impl FeedMetrics {
    fn new(r: &Reg<'_>) -> FeedMetrics {
        FeedMetrics {
            serial: r.gauge("feed_serial", "Serial of the signed feed list serving (0: none)"),
            expires: r.gauge(
                "feed_expires_timestamp_seconds",
                "When the serving feed list expires (0: no feed list)",
            ),
            expired: r.gauge(
                "feed_expired",
                "1 while the serving feed list is past its expiry; it keeps blocking",
            ),
            polls: r.counters(
                "feed_polls_total",
                "Feed polls by outcome: applied, unchanged, refused_signature, refused_serial, refused_expired, refused_checksum, refused_malformed, refused_load, error",
                "outcome",
                &[
                    "applied",
                    "unchanged",
                    "refused_signature",
                    "refused_serial",
                    "refused_expired",
                    "refused_checksum",
                    "refused_malformed",
                    "refused_load",
                    "error",
                ],
            ),
            last_success: r.gauge(
                "feed_last_success_timestamp_seconds",
                "Last poll that reached the feed (applied or unchanged)",
            ),
        }
    }
}

/// `fanzha_feed_*`: the signed list feed.
#[derive(Clone)]
pub struct FeedMetrics {
    /// Serial of the feed list serving (0: none yet).
    pub serial: IntGauge,
    /// When it expires (0: no feed list).
    pub expires: IntGauge,
    /// 1 while the serving feed list is past its expiry (it keeps blocking).
    pub expired: IntGauge,
    /// Polls by outcome: applied, unchanged, refused_<reason>, error.
    pub polls: IntCounterVec,
    /// Last poll that reached the feed (applied or unchanged).
    pub last_success: IntGauge,
}

/// The `result` labels of `fanzha_upstream_queries_total`: a usable answer, a lame
/// server, an error code, or no message (timeout, unreachable, truncated over UDP
/// and retried over TCP, truncated and not retried because the server hands the
/// zone's names back to itself, malformed).
pub const UPSTREAM_RESULTS: &[&str] = &[
    "answer",
    "lame",
    "refused",
    "servfail",
    "error",
    "timeout",
    "busy",
    "unreachable",
    "truncated",
    "truncated_not_followed",
    "malformed",
];

fn must<T>(r: prometheus::Result<T>) -> T {
    r.expect("metric definitions are static and valid")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Creates metrics and registers them in one step, so that no metric can be made
/// and then forgotten in the registry.
struct Reg<'a>(
    &'a Registry,
    std::cell::RefCell<Vec<prometheus::core::Desc>>,
);

impl Reg<'_> {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: prometheus::Result<C>) -> C {
        let c = must(c);
        self.1.borrow_mut().extend(c.desc().into_iter().cloned());
        must(self.0.register(Box::new(c.clone())));
        c
    }
    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help))
    }
    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help))
    }
    /// A counter vector with every value of its one label present from the start.
    fn counters(&self, name: &str, help: &str, label: &str, values: &[&str]) -> IntCounterVec {
        let v = self.add(IntCounterVec::new(Opts::new(name, help), &[label]));
        for x in values {
            v.with_label_values(&[x]);
        }
        v
    }
    fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        self.add(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        ))
    }
}

/// Reporting metrics (`fanzha_report_*`), updated by the report pipeline.
#[derive(Clone)]
pub struct ReportMetrics {
    pub(crate) events: IntCounterVec,
    pub(crate) spool_bytes: IntGauge,
    pub(crate) oldest_age: IntGauge,
    pub(crate) send_duration: Histogram,
    /// 1 while the spool can be written, 0 while events wait in memory.
    pub(crate) spool_writable: IntGauge,
    /// 1 while the platform refuses the appliance's credentials (401/403).
    pub(crate) auth_failing: IntGauge,
    /// Where the pipeline reports that it is degraded (for `/readyz`).
    pub(crate) degraded: Degraded,
}

/// What leaves fanzha answering but degraded (the spool cannot be written, the
/// platform refuses the credentials…), by part: `/readyz` lists it, without failing.
#[derive(Clone, Default)]
pub struct Degraded(Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, String>>>);

impl Degraded {
    /// `part` is degraded, for `why`.
    pub fn set(&self, part: &'static str, why: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(part, why);
    }

    /// `part` works again.
    pub fn clear(&self, part: &'static str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(part);
    }

    /// Whether `part` is degraded.
    pub fn is_set(&self, part: &'static str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(part)
    }

    /// `part: why` lines.
    pub fn lines(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, w)| format!("degraded: {p}: {w}\n"))
            .collect()
    }
}

/// `fanzha_alert_*`: the digests to places' workers.
#[derive(Clone)]
pub struct AlertMetrics {
    /// Digests by result: made, sent, retried, refused, given_up, dropped.
    pub digests: IntCounterVec,
    /// Hits dropped because the alert collector was behind.
    pub dropped_hits: IntCounter,
    /// Places whose last delivery failed.
    pub failing: IntGauge,
}

impl AlertMetrics {
    fn register(r: &Reg<'_>) -> AlertMetrics {
        AlertMetrics {
            digests: r.counters(
                "alert_digests_total",
                "Alert digests to places' workers, by result (made, sent, retried, refused, given_up, dropped)",
                "result",
                &["made", "sent", "retried", "refused", "given_up", "dropped"],
            ),
            dropped_hits: r.counter(
                "alert_hits_dropped_total",
                "Blocked queries not counted for alerts because the alert collector was behind",
            ),
            failing: r.gauge(
                "alert_places_failing",
                "Places whose last alert delivery failed (their digests are kept and tried again)",
            ),
        }
    }

    /// Count one digest with `result`.
    pub fn count(&self, result: &str) {
        self.digests.with_label_values(&[result]).inc();
    }
}

impl ReportMetrics {
    fn register(r: &Reg<'_>) -> ReportMetrics {
        ReportMetrics {
            events: r.counters(
                "report_events_total",
                "Hit events by outcome (queued, sent, dropped_full, dropped_cap, dropped_spool, dead_letter)",
                "outcome",
                &[
                    "queued",
                    "sent",
                    "dropped_full",
                    "dropped_cap",
                    "dropped_spool",
                    "dead_letter",
                ],
            ),
            spool_writable: r.gauge(
                "report_spool_writable",
                "1 while the report spool can be written; 0 while events wait in memory",
            ),
            auth_failing: r.gauge(
                "report_auth_failing",
                "1 while the platform refuses this appliance's credentials (HTTP 401/403)",
            ),
            degraded: Degraded::default(),
            spool_bytes: r.gauge("report_spool_bytes", "Bytes in the report spool"),
            oldest_age: r.gauge(
                "report_oldest_event_age_seconds",
                "Age of the oldest unsent spool segment",
            ),
            send_duration: r.histogram(
                "report_send_duration_seconds",
                "Time of one POST to the platform",
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
        }
    }

    /// Count `n` events with `outcome` (no sample for 0).
    pub(crate) fn count(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.events.with_label_values(&[outcome]).inc_by(n);
        }
    }
}

/// `fanzha_build_info{version}` and the process metrics (RSS, open files, CPU).
fn register_process(registry: &Registry, r: &Reg<'_>) {
    r.add(IntGaugeVec::new(
        Opts::new("build_info", "fanzha build information"),
        &["version"],
    ))
    .with_label_values(&[env!("CARGO_PKG_VERSION")])
    .set(1);
    #[cfg(target_os = "linux")]
    {
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
    }
}

/// The results of `fanzha_url_requests_total`.
const URL_RESULTS: [&str; 5] = [
    "blocked",
    "relayed",
    "passthrough",
    "refused",
    "upstream_error",
];

/// The URL proxy's counters.
struct UrlMetrics {
    /// Path rules that could not be checked, by why.
    unenforced: IntCounterVec,
    /// Requests and connections, by what came of them.
    requests: IntCounterVec,
    /// `requests` by result, in the order of [`URL_RESULTS`] (no lookup per request).
    by_result: Vec<IntCounter>,
}

impl UrlMetrics {
    fn register(r: &Reg<'_>) -> UrlMetrics {
        let unenforced = r.counters(
            "url_unenforced_total",
            "Where path rules (a page of a host) could not be checked: DNS queries for such a host resolved as usual because no URL proxy is configured (no_proxy) or the client's place is not managed and [url] unmanaged = \"resolve\" (unmanaged_place); HTTPS connections to such a host relayed unopened for a place without managed_tls, whose host has rules for HTTPS pages (tls_passthrough)",
            "reason",
            &["no_proxy", "unmanaged_place", "tls_passthrough"],
        );
        let requests = r.counters(
            "url_requests_total",
            "The URL proxy's work: requests answered with the warning page (blocked), requests relayed to the real host (relayed), HTTPS connections relayed unopened (passthrough), requests and connections refused because their host has no path rules or its address may not be relayed to (refused), relays that failed (upstream_error)",
            "result",
            &URL_RESULTS,
        );
        let by_result = URL_RESULTS
            .iter()
            .map(|l| requests.with_label_values(&[l]))
            .collect();
        UrlMetrics {
            unenforced,
            requests,
            by_result,
        }
    }
}

impl Metrics {
    /// Register every metric. (Long function: one registration per metric, each
    /// with its help text, read top to bottom as /metrics lists them.)
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("fanzha".into()), None).expect("valid prefix");
        let r = Reg(&registry, Default::default());
        let labels: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        let qv = r.counters(
            "queries_total",
            "DNS queries answered (or dropped), by result",
            "result",
            &labels,
        );
        let queries = labels.iter().map(|l| qv.with_label_values(&[l])).collect();
        let transports = TRANSPORTS;
        let tv = r.counters(
            "transport_queries_total",
            "DNS queries received, by transport: udp, tcp, dot (DNS over TLS), doh (DNS over HTTPS)",
            "transport",
            &transports,
        );
        let transports = transports
            .iter()
            .map(|l| tv.with_label_values(&[l]))
            .collect();
        register_process(&registry, &r);
        Metrics {
            queries,
            transports,
            unnamed_refused: r.counters(
                "encrypted_unnamed_refused_total",
                "DNS over TLS connections and DNS over HTTPS requests from outside [server] acl that named no known place: answered REFUSED and closed (by transport)",
                "transport",
                &["dot", "doh"],
            ),
            url: UrlMetrics::register(&r),
            query_duration: r.histogram(
                "query_duration_seconds",
                "Time from receiving a DNS query to sending its answer",
                &[
                    0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
            blocked: r.add(IntCounterVec::new(
                Opts::new(
                    "blocked_total",
                    "Blocked queries by fraud category and the client's street and community (from [[places]]; community only with [ops] place_label = \"community\")",
                ),
                &["category", "street", "community"],
            )),
            shadow_hits: r.add(IntCounterVec::new(
                Opts::new(
                    "shadow_hits_total",
                    "Queries a shadow list or a place's shadow category would have blocked (resolved as usual), by category and list",
                ),
                &["category", "list"],
            )),
            cache_hits: r.counter(
                "cache_hits_total",
                "Answers served from fanzha's answer cache",
            ),
            prefetches: r.counter(
                "cache_prefetches_total",
                "Cached answers refreshed in the background before they expired",
            ),
            stale_answers: r.counter(
                "cache_stale_answers_total",
                "Expired answers served (TTL 30) because the resolution failed",
            ),
            lists: ListMetrics::register(&r),
            config_restart_pending: r.gauge(
                "config_restart_pending",
                "1 while keys changed in the config file wait for a restart (fanzha ctl dump-config lists them)",
            ),
            warnpage_views: r.counters(
                "warnpage_views_total",
                "Warning pages shown, by category (none: host not blocked)",
                "category",
                &[],
            ),
            appeals: r.counter(
                "appeals_total",
                "Appeals (\"blocked by mistake\") received on the warning page",
            ),
            report: ReportMetrics::register(&r),
            alert: AlertMetrics::register(&r),
            upstream: r.counters(
                "upstream_queries_total",
                "Queries to authoritative servers in recursive mode, by result",
                "result",
                UPSTREAM_RESULTS,
            ),
            resolution_failures: r.counters(
                "resolution_failures_total",
                "Resolutions that gave no usable answer (SERVFAIL, or a stale answer), by reason: no_root_answers (EDE 22), no_usable_answer, bogus (EDE 6), timeout, upstream",
                "reason",
                FAILURE_REASONS,
            ),
            overload: r.counter(
                "overload_total",
                "Queries answered SERVFAIL at once: max_inflight resolutions were in flight and the client held the most",
            ),
            jostled: r.counter(
                "jostled_total",
                "Resolutions of the busiest client cut off at max_inflight to make room for another client's query (dropped unanswered, as Unbound's jostle)",
            ),
            top_blocked: top::TopRules::default(),
            top_shadow: top::TopRules::default(),
            week: week::WeekCounts::default(),
            feed: FeedMetrics::new(&r),
            source_fetches: source_fetches(&r),
            source_last_success: source_last_success(&r),
            dnstap_frames: r.counters(
                "dnstap_frames_total",
                "dnstap frames by outcome: sent to the collector, dropped because the queue was full, lost with a broken connection",
                "outcome",
                &["sent", "dropped", "lost"],
            ),
            descs: r.1.take(),
            registry,
        }
    }

    /// Count one query's outcome.
    /// `n` queries received over the transport at `index` of [`TRANSPORTS`].
    pub fn received_over(&self, index: usize, n: u64) {
        if let Some(c) = self.transports.get(index) {
            c.inc_by(n);
        }
    }

    /// Count a query by its result.
    pub fn query(&self, o: Outcome) {
        let i = Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0);
        self.queries[i].inc();
    }

    /// A path rule not checked, for `why` (see `url_unenforced_total`).
    pub fn url_unenforced(&self, why: &str) {
        self.url.unenforced.with_label_values(&[why]).inc();
    }

    /// What came of one request or connection of the URL proxy.
    pub fn url_request(&self, result: &str) {
        match URL_RESULTS.iter().position(|r| *r == result) {
            Some(i) => self.url.by_result[i].inc(),
            None => self.url.requests.with_label_values(&[result]).inc(),
        }
    }

    /// Prometheus text exposition, after refreshing the gauges that mirror state.
    pub fn render(&self, lists: &Handle) -> String {
        self.refresh(lists);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// `docs/metrics.md`: every metric fanzha registers, with its labels and help,
    /// as `/metrics` lists them (the process metrics of the Prometheus client
    /// aside). A test holds the committed file equal to it.
    pub fn reference() -> String {
        let m = Metrics::new();
        let mut out = String::from(
            "# Metrics\n\n<!-- Written by `fanzha reference --metrics` from src/metrics.rs; a test holds it equal. -->\n\n\
             The ops endpoint (`[ops] listen`, 127.0.0.1:9153 by default) serves them at `/metrics` in the Prometheus text format, with `/healthz` (alive) and `/readyz` (the list is loaded and every listener bound). The Grafana dashboard (`config/grafana/`) and the alert rules (`config/prometheus/fanzha-rules.yml`) use them; setting up Prometheus and Grafana: [operating.md](operating.md#read-the-dashboard). The Prometheus client's own `process_*` metrics (CPU, memory, open files) are there too.\n\n\
             | metric | labels | meaning |\n|---|---|---|\n",
        );
        let mut descs: Vec<_> = m.descs.iter().collect();
        descs.sort_by(|a, b| a.fq_name.cmp(&b.fq_name));
        for d in descs {
            let labels: Vec<String> = d.variable_labels.iter().map(|l| format!("`{l}`")).collect();
            out.push_str(&format!(
                "| `fanzha_{}` | {} | {} |\n",
                d.fq_name,
                labels.join(", "),
                d.help.replace('|', "\\|")
            ));
        }
        out
    }

    /// `fanzha_blocked_total` by (category, street), summed over communities.
    pub fn blocked_counts(&self) -> week::Counts {
        use prometheus::core::Collector;
        let mut out = week::Counts::new();
        for family in self.blocked.collect() {
            for m in family.get_metric() {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                let n = m.get_counter().value() as u64;
                *out.entry((label("category"), label("street"))).or_default() += n;
            }
        }
        out
    }

    /// Every counter and gauge with its labels, and each histogram's `_count` and
    /// `_sum`, after refreshing the gauges that mirror state (`fanzha ctl stats`).
    pub fn samples(&self, lists: &Handle) -> Vec<Sample> {
        use prometheus::proto::MetricType;
        self.refresh(lists);
        let mut out = Vec::new();
        for fam in self.registry.gather() {
            for m in fam.get_metric() {
                let labels: Vec<(String, String)> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                let mut push = |suffix: &str, value: f64| {
                    out.push(Sample {
                        name: format!("{}{suffix}", fam.name()),
                        labels: labels.clone(),
                        value,
                    })
                };
                match fam.get_field_type() {
                    MetricType::COUNTER => push("", m.get_counter().value()),
                    MetricType::GAUGE => push("", m.get_gauge().value()),
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        push("_count", h.get_sample_count() as f64);
                        push("_sum", h.get_sample_sum());
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Set the gauges that mirror the list and reload state.
    fn refresh(&self, lists: &Handle) {
        self.lists.refresh(lists);
    }
}

/// The serving list's gauges and its reload counters, mirrored from the list
/// handle at each scrape.
struct ListMetrics {
    entries: IntGaugeVec,
    reloads: IntCounterVec,
    loaded_at: IntGauge,
    skipped_lines: IntGauge,
    skipped_by_reason: IntCounterVec,
    refused_rules: IntGauge,
}

impl ListMetrics {
    fn register(r: &Reg<'_>) -> ListMetrics {
        ListMetrics {
            entries: r.add(IntGaugeVec::new(
                Opts::new(
                    "blocklist_entries",
                    "Names in the serving blocklist, by kind (total, block, allow)",
                ),
                &["kind"],
            )),
            reloads: r.counters(
                "blocklist_reloads_total",
                "Blocklist loads by outcome (ok, failed, refused)",
                "outcome",
                &["ok", "failed", "refused"],
            ),
            loaded_at: r.gauge(
                "blocklist_loaded_timestamp_seconds",
                "Unix time of the last successful blocklist load",
            ),
            skipped_lines: r.gauge(
                "blocklist_skipped_lines",
                "Lines skipped by the last successful compile",
            ),
            skipped_by_reason: r.counters(
                "blocklist_skipped_lines_total",
                "List lines skipped by the compiles since start, by reason (bad-expiry and bad-header: a rule or header that was meant to apply does not)",
                "reason",
                &["bad-expiry", "bad-header", "source-exception"],
            ),
            refused_rules: r.gauge(
                "blocklist_refused_rules",
                "Rules refused by guardrails in the last successful compile",
            ),
        }
    }

    fn refresh(&self, lists: &Handle) {
        let l = lists.load();
        let m = l.meta();
        self.entries
            .with_label_values(&["total"])
            .set(m.entries as i64);
        self.entries
            .with_label_values(&["block"])
            .set(m.block_entries as i64);
        self.entries
            .with_label_values(&["allow"])
            .set(m.allow_entries as i64);
        let st = &lists.stats;
        for (label, v) in [
            ("ok", &st.ok),
            ("failed", &st.failed),
            ("refused", &st.refused),
        ] {
            catch_up(
                &self.reloads.with_label_values(&[label]),
                v.load(Ordering::Relaxed),
            );
        }
        self.loaded_at
            .set(st.last_ok_unix.load(Ordering::Relaxed) as i64);
        self.skipped_lines
            .set(st.last_skipped_lines.load(Ordering::Relaxed) as i64);
        for (reason, now) in st.skipped().total {
            catch_up(
                &self.skipped_by_reason.with_label_values(&[reason.as_str()]),
                now,
            );
        }
        self.refused_rules
            .set(st.last_refused_rules.load(Ordering::Relaxed) as i64);
    }
}

/// Bring a counter mirrored from elsewhere up to `now` (it never goes down).
fn catch_up(c: &IntCounter, now: u64) {
    if now > c.get() {
        c.inc_by(now - c.get());
    }
}

/// One metric value (`fanzha ctl stats`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    /// Metric name, with `_count` or `_sum` for a histogram's parts.
    pub name: String,
    /// Label pairs.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// State behind the ops endpoint.
#[derive(Clone)]
pub struct OpsState {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Blocklist (for gauges and readiness).
    pub lists: Arc<Handle>,
    /// Set once the listeners are bound and the list loaded.
    pub ready: Arc<AtomicBool>,
}

/// Serve `/metrics`, `/healthz`, `/readyz` on `listener` until `shutdown` resolves.
pub async fn serve_ops(
    listener: tokio::net::TcpListener,
    state: OpsState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    use axum::{Router, extract::State, response::IntoResponse};

    async fn metrics(State(s): State<OpsState>) -> impl IntoResponse {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            s.metrics.render(&s.lists),
        )
    }
    async fn healthz() -> &'static str {
        "ok\n"
    }
    // Ready means answering DNS; a degraded part (reporting) is listed, not failed.
    async fn readyz(State(s): State<OpsState>) -> impl IntoResponse {
        let degraded = s.metrics.report.degraded.lines();
        if s.ready.load(Ordering::Acquire) && s.lists.is_loaded() {
            (StatusCode::OK, format!("ready\n{degraded}"))
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready\n{degraded}"),
            )
        }
    }
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Log line helper: the address a listener is bound to.
pub fn bound(l: &tokio::net::TcpListener) -> Option<SocketAddr> {
    l.local_addr().ok()
}

#[cfg(test)]
mod tests {
    /// docs/metrics.md is what the registry holds, so that it cannot drift.
    #[test]
    fn docs_metrics_md_lists_every_metric() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            doc == super::Metrics::reference(),
            "docs/metrics.md is not what src/metrics.rs registers: run \
             `cargo run -q -- reference --metrics > docs/metrics.md` and commit it"
        );
        assert!(doc.contains("| `fanzha_blocked_total` | `category`, `street`, `community` |"));
        assert!(doc.contains("`fanzha_resolution_failures_total` | `reason`"));
    }
}
