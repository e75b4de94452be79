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
use crate::policy::Outcome;

/// Every metric of the appliance.
pub struct Metrics {
    registry: Registry,
    queries: Vec<IntCounter>,
    /// Time from receiving a query to sending its answer.
    pub query_duration: Histogram,
    /// Blocked queries by category.
    pub blocked: IntCounterVec,
    /// Answers served from the answer cache.
    pub cache_hits: IntCounter,
    blocklist_entries: IntGaugeVec,
    reloads: IntCounterVec,
    loaded_at: IntGauge,
    skipped_lines: IntGauge,
    refused_rules: IntGauge,
    /// Warning pages shown, by category ("none": a host that is not blocked).
    pub warnpage_views: IntCounterVec,
    /// Appeals received.
    pub appeals: IntCounter,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    r.expect("metric definitions are static and valid")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("fanzha".into()), None).expect("valid prefix");
        let qv = must(IntCounterVec::new(
            Opts::new(
                "queries_total",
                "DNS queries answered (or dropped), by result",
            ),
            &["result"],
        ));
        let queries = Outcome::ALL
            .iter()
            .map(|o| qv.with_label_values(&[o.as_str()]))
            .collect();
        let query_duration = must(Histogram::with_opts(
            HistogramOpts::new(
                "query_duration_seconds",
                "Time from receiving a DNS query to sending its answer",
            )
            .buckets(vec![
                0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        ));
        let blocked = must(IntCounterVec::new(
            Opts::new(
                "blocked_total",
                "Blocked queries by fraud category and the client's street (from [[places]])",
            ),
            &["category", "street"],
        ));
        let cache_hits = must(IntCounter::new(
            "cache_hits_total",
            "Answers served from fanzha's answer cache",
        ));
        let blocklist_entries = must(IntGaugeVec::new(
            Opts::new(
                "blocklist_entries",
                "Names in the serving blocklist, by kind (total, block, allow)",
            ),
            &["kind"],
        ));
        let reloads = must(IntCounterVec::new(
            Opts::new(
                "blocklist_reloads_total",
                "Blocklist loads by outcome (ok, failed, refused)",
            ),
            &["outcome"],
        ));
        let loaded_at = must(IntGauge::new(
            "blocklist_loaded_timestamp_seconds",
            "Unix time of the last successful blocklist load",
        ));
        let skipped_lines = must(IntGauge::new(
            "blocklist_skipped_lines",
            "Lines skipped by the last successful compile",
        ));
        let refused_rules = must(IntGauge::new(
            "blocklist_refused_rules",
            "Rules refused by guardrails in the last successful compile",
        ));
        let warnpage_views = must(IntCounterVec::new(
            Opts::new(
                "warnpage_views_total",
                "Warning pages shown, by category (none: host not blocked)",
            ),
            &["category"],
        ));
        let appeals = must(IntCounter::new(
            "appeals_total",
            "Appeals (\"blocked by mistake\") received on the warning page",
        ));
        let build = must(IntGaugeVec::new(
            Opts::new("build_info", "fanzha build information"),
            &["version"],
        ));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(qv) as Box<dyn prometheus::core::Collector>,
            Box::new(query_duration.clone()),
            Box::new(blocked.clone()),
            Box::new(cache_hits.clone()),
            Box::new(blocklist_entries.clone()),
            Box::new(reloads.clone()),
            Box::new(loaded_at.clone()),
            Box::new(skipped_lines.clone()),
            Box::new(refused_rules.clone()),
            Box::new(build),
            Box::new(warnpage_views.clone()),
            Box::new(appeals.clone()),
        ] {
            must(registry.register(c));
        }
        #[cfg(target_os = "linux")]
        {
            let _ = registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        for o in ["ok", "failed", "refused"] {
            reloads.with_label_values(&[o]);
        }
        Metrics {
            registry,
            queries,
            query_duration,
            blocked,
            cache_hits,
            blocklist_entries,
            reloads,
            loaded_at,
            skipped_lines,
            refused_rules,
            warnpage_views,
            appeals,
        }
    }

    /// Count one query's outcome.
    pub fn query(&self, o: Outcome) {
        let i = Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0);
        self.queries[i].inc();
    }

    /// The registry, for other modules' metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus text exposition, after refreshing the gauges that mirror state.
    pub fn render(&self, lists: &Handle) -> String {
        let l = lists.load();
        let m = l.meta();
        self.blocklist_entries
            .with_label_values(&["total"])
            .set(m.entries as i64);
        self.blocklist_entries
            .with_label_values(&["block"])
            .set(m.block_entries as i64);
        self.blocklist_entries
            .with_label_values(&["allow"])
            .set(m.allow_entries as i64);
        let st = &lists.stats;
        for (label, v) in [
            ("ok", &st.ok),
            ("failed", &st.failed),
            ("refused", &st.refused),
        ] {
            let c = self.reloads.with_label_values(&[label]);
            let now = v.load(Ordering::Relaxed);
            if now > c.get() {
                c.inc_by(now - c.get());
            }
        }
        self.loaded_at
            .set(st.last_ok_unix.load(Ordering::Relaxed) as i64);
        self.skipped_lines
            .set(st.last_skipped_lines.load(Ordering::Relaxed) as i64);
        self.refused_rules
            .set(st.last_refused_rules.load(Ordering::Relaxed) as i64);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
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
    async fn readyz(State(s): State<OpsState>) -> impl IntoResponse {
        if s.ready.load(Ordering::Acquire) && s.lists.is_loaded() {
            (StatusCode::OK, "ready\n")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
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
