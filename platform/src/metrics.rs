//! The platform's Prometheus metrics: ingest rate, each appliance's delay and
//! backlog, open cases per community, logins.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// Every metric.
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Batches by HTTP status.
    pub batches: IntCounterVec,
    /// Events by appliance and result (stored, duplicate).
    pub events: IntCounterVec,
    /// Seconds from the newest event of the last batch to its arrival, per appliance.
    pub delay: IntGaugeVec,
    /// The newest event's time per appliance (Unix s).
    pub last_event: IntGaugeVec,
    /// The appliance's spool backlog as it last said, bytes.
    pub spool: IntGaugeVec,
    /// Open cases per street and community (read from the database at each scrape).
    pub open_cases: IntGaugeVec,
    /// Appeals waiting for review.
    pub appeals_waiting: IntGaugeVec,
    /// Logins by outcome (ok, bad, locked).
    pub logins: IntCounterVec,
}

impl Metrics {
    /// Make and register them.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let batches = counter(
            "fanzha_platform_batches_total",
            "Event batches received, by HTTP status answered.",
            &["status"],
        );
        let events = counter(
            "fanzha_platform_events_total",
            "Events received, by appliance and result (stored, duplicate).",
            &["appliance", "result"],
        );
        let logins = counter(
            "fanzha_platform_logins_total",
            "Logins, by outcome (ok, bad, locked).",
            &["outcome"],
        );
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let delay = gauge(
            "fanzha_platform_appliance_delay_seconds",
            "Seconds from the newest event of an appliance's last batch to its arrival.",
            &["appliance"],
        );
        let last_event = gauge(
            "fanzha_platform_appliance_last_event_timestamp_seconds",
            "Time of the newest event received from the appliance (Unix seconds).",
            &["appliance"],
        );
        let spool = gauge(
            "fanzha_platform_appliance_spool_bytes",
            "The appliance's report spool backlog as it last said, bytes.",
            &["appliance"],
        );
        let open_cases = gauge(
            "fanzha_platform_open_cases",
            "Open follow-up cases, per street and community.",
            &["street", "community"],
        );
        let appeals_waiting = gauge(
            "fanzha_platform_appeals_waiting",
            "Appeals waiting for review.",
            &[],
        );
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Metrics {
            registry,
            batches,
            events,
            delay,
            last_event,
            spool,
            open_cases,
            appeals_waiting,
            logins,
        }
    }

    /// The text format.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
