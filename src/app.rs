//! `fanzha serve`: build every part from the config ([`App::build`]), run until
//! SIGTERM ([`App::run`], reloading on SIGHUP), then drain ([`App::drain`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocklist::loader::StartSummary;
use crate::blocklist::snapshot::SnapshotUse;
use crate::blocklist::watch::Watcher;
use crate::blocklist::{self, Handle, Loader};
use crate::config::Config;
use crate::ctl::{self, Reply, commands::ReloadAsk};
use crate::dns::engine::Engine;
use crate::dns::listen::{bind, tcp, udp};
use crate::dns::resolve;
use crate::feed;
use crate::metrics::{self, Metrics, OpsState};
use crate::places::Places;
use crate::report::pipeline::{self, Reporter};
use crate::report::sender::Platform;
use crate::urlproxy;
use crate::warnpage::{self, Templates, server::WarnState};

/// Run the appliance until SIGTERM or SIGINT.
pub async fn serve(config_path: Option<PathBuf>, cfg: Config) -> Result<()> {
    tracing::info!(
        config = %config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "embedded defaults".into()),
        "fanzha {} starting", env!("CARGO_PKG_VERSION")
    );
    let mut app = App::build(config_path, cfg).await?;
    let res = app.run().await;
    app.drain().await;
    res
}

/// The running appliance: every part `serve` starts, and what it needs to reload
/// and to stop them.
struct App {
    config_path: Option<PathBuf>,
    cfg: Config,
    /// The config as it was at start: what the parts a reload does not touch serve.
    boot: crate::config::RawConfig,
    loader: Arc<Loader>,
    watcher: Option<Watcher>,
    engine: Arc<Engine>,
    warn_state: Arc<WarnState>,
    /// The categories' names for the alerts, from the warning page's texts.
    category_names: Arc<ArcSwap<crate::categories::Names>>,
    /// DNS over TLS's certificate, read again on SIGHUP (`None`: no DoT listener).
    dot_tls: DotTls,
    /// The DNS listeners; one ending while fanzha is not stopping is fatal.
    listeners: JoinSet<()>,
    /// Queries being resolved.
    tasks: TaskTracker,
    shutdown: CancellationToken,
    ready: Arc<AtomicBool>,
    ops_task: JoinHandle<std::io::Result<()>>,
    report_tasks: Option<ReportTasks>,
    /// The platform the reports go to (`None`: reporting off at start), swapped by a
    /// reload that changes its URL, secret or CA.
    report_platform: Option<Arc<ArcSwap<crate::report::sender::Platform>>>,
    /// The alerts' collector (saves what it gathered at the end) and sender.
    alert_tasks: crate::alert::Tasks,
    /// The alerts' pacing, swapped by a reload.
    alert_cfg: Arc<ArcSwap<crate::config::AlertConfig>>,
    /// Tells the feed follower to stop (`None`: no feed).
    feed_stop: Option<Arc<AtomicBool>>,
    /// The feed follower's thread: a reload's new follower waits for it to end, so
    /// that two never write the feed's directory at once.
    feed_thread: Option<std::thread::JoinHandle<()>>,
    /// Tells the sources fetcher to stop (`None`: no sources).
    sources_stop: Option<Arc<AtomicBool>>,
    /// The dnstap writer, and what tells it to write the rest and stop.
    tap_task: Option<(JoinHandle<()>, CancellationToken)>,
    signals: Signals,
    /// The config in force, shared with the control socket.
    live_config: Arc<ArcSwap<Config>>,
    /// Reloads asked for on the control socket.
    reload_asks: tokio::sync::mpsc::Receiver<ReloadAsk>,
}

struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

use crate::report::pipeline::Tasks as ReportTasks;

impl Signals {
    fn install() -> Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }
}

impl App {
    /// Bind, load the lists, and start every part; ready when it returns.
    async fn build(config_path: Option<PathBuf>, cfg: Config) -> Result<App> {
        // DNS sockets first: a second instance fails here at once, and queries that
        // arrive while the lists load wait in the socket buffers, answered a moment
        // later rather than refused.
        let bound = bind_dns(&cfg)?;
        let lists = Arc::new(Handle::default());
        // With a feed, its last verified list serves from the start (offline too).
        let bcfg = feed::poll::blocklist_config(cfg.feed.as_ref(), &cfg.blocklist);
        make_sources_dir(&cfg)?;
        let loader = Arc::new(Loader::new(bcfg, lists.clone()));
        loader.clean_state_dir();
        let l2 = loader.clone();
        let summary = tokio::task::spawn_blocking(move || l2.start())
            .await?
            .context("loading the blocklist at start")?;
        log_start(&summary);
        let watcher = Some(
            blocklist::spawn_watcher(loader.clone()).context("watching the list directories")?,
        );
        if summary.snapshot == Some(SnapshotUse::Stale) {
            blocklist::reload_in_background(loader.clone(), "lists changed since the snapshot");
        }

        let metrics = Arc::new(Metrics::new());
        let (feed_stop, feed_thread) = start_feed(&cfg, &loader, &metrics)?;
        let sources_stop = start_sources(&cfg, &metrics)?;
        let shutdown = CancellationToken::new();
        let places = Arc::new(ArcSwap::from_pointee(cfg.places.clone()));
        let (reporter, report_tasks, report_platform) =
            start_reporter(&cfg, &metrics, places.clone(), shutdown.clone())?;
        let alert_cfg = Arc::new(ArcSwap::from_pointee(cfg.alerts.clone()));
        let (templates, category_names, alerter, alert_tasks) =
            start_alerts(&cfg, &alert_cfg, &metrics, &places, &shutdown)?;
        let tap_stop = CancellationToken::new();
        let (tap, tap_task) = start_dnstap(&cfg, &metrics, &tap_stop);
        log_dnstap_on(&cfg);
        let engine = Arc::new(Engine::new(
            &cfg,
            lists.clone(),
            places.clone(),
            metrics.clone(),
            reporter.clone(),
            alerter,
            tap,
        )?);
        tracing::info!("resolver: {}", resolve::describe(&cfg));

        let tasks = TaskTracker::new();
        let (listeners, dot_tls) = spawn_listeners(&cfg, bound, &engine, &shutdown, &tasks)?;
        // Not a listener (it ends at once when prefetch is off): a tracked task.
        tasks.spawn(engine.clone().run_prefetch(shutdown.clone()));
        let rep = reporter.clone();
        let warn_state =
            start_warnpage(&cfg, &lists, &metrics, reporter, templates, &shutdown).await?;
        let up = url_parts(&cfg, &lists, &engine, places, &warn_state, &metrics, rep);
        start_urlproxy(&cfg, up, &shutdown, &tasks)?;
        let ready = Arc::new(AtomicBool::new(false));
        let ops_task = start_ops(&cfg, &metrics, &lists, &ready, &shutdown).await?;
        let (live_config, reload_asks) = start_control(&cfg, &engine, &lists, &metrics, &shutdown);
        // Handlers first: a SIGTERM right after READY must drain, not kill.
        let signals = Signals::install()?;
        spawn_trimmer(shutdown.clone());
        spawn_week_snapshots(metrics.clone(), shutdown.clone());
        ready.store(true, Ordering::Release);
        loader.serving();
        crate::sd_notify::notify("READY=1");
        tracing::info!("ready");
        let boot = cfg.raw().clone();
        Ok(App {
            config_path,
            cfg,
            loader,
            watcher,
            engine,
            warn_state,
            category_names,
            dot_tls,
            listeners,
            tasks,
            shutdown,
            ready,
            ops_task,
            report_tasks,
            report_platform,
            alert_tasks,
            alert_cfg,
            tap_task: tap_task.map(|t| (t, tap_stop)),
            feed_stop,
            feed_thread,
            sources_stop,
            signals,
            live_config,
            reload_asks,
            boot,
        })
    }

    /// Serve until SIGTERM or SIGINT (Ok) or until a DNS listener ends (Err).
    async fn run(&mut self) -> Result<()> {
        loop {
            tokio::select! {
                _ = self.signals.hup.recv() => {
                    tracing::info!("SIGHUP: re-reading the config");
                    match Config::load(self.config_path.as_deref()) {
                        Err(e) => tracing::error!(error = %e, "config not reloaded; the running config stays"),
                        Ok(new) => {
                            self.apply(new);
                            blocklist::reload_in_background(self.loader.clone(), "SIGHUP");
                        }
                    }
                }
                Some(ask) = self.reload_asks.recv() => self.reload_asked(ask),
                ended = self.listeners.join_next() => {
                    let why = match ended {
                        Some(Err(e)) if e.is_panic() => "a DNS listener panicked",
                        Some(_) => "a DNS listener stopped",
                        None => "no DNS listener is left",
                    };
                    tracing::error!("{why}; exiting so that the service manager restarts fanzha");
                    anyhow::bail!("{why}");
                }
                _ = self.signals.term.recv() => { tracing::info!("SIGTERM: draining"); return Ok(()); }
                _ = self.signals.int.recv() => { tracing::info!("SIGINT: draining"); return Ok(()); }
            }
        }
    }

    /// `fanzha ctl reload`: as SIGHUP, answering once the lists are in (or not).
    fn reload_asked(&mut self, ask: ReloadAsk) {
        tracing::info!("control: re-reading the config");
        let new = match Config::load(self.config_path.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "config not reloaded; the running config stays");
                let _ = ask.send(Reply::failed(format!(
                    "config not reloaded, the running config and lists stay: {e}"
                )));
                return;
            }
        };
        self.apply(new);
        let pending: Vec<String> = self.cfg.pending.iter().map(|c| c.describe()).collect();
        let pending_keys: Vec<String> = self.cfg.pending.iter().map(|c| c.key.clone()).collect();
        blocklist::reload_in_background_then(self.loader.clone(), "control", move |res| {
            let reply = match res {
                Ok(s) => {
                    let (skipped, refused) = s.unused_lines();
                    let mut text = format!(
                        "config re-read; lists reloaded: {} names in {} ms ({skipped} lines skipped, {refused} rules refused)",
                        s.entries,
                        s.elapsed.as_millis()
                    );
                    if !pending.is_empty() {
                        text.push_str(
                            "\nNOT applied, these take effect after a restart (systemctl restart fanzha):",
                        );
                        for p in &pending {
                            text.push_str(&format!("\n  {p}"));
                        }
                    }
                    Reply::ok(
                        text,
                        serde_json::json!({
                            "entries": s.entries,
                            "ms": s.elapsed.as_millis() as u64,
                            "skipped_lines": skipped,
                            "refused_rules": refused,
                            "restart_pending": pending_keys,
                        }),
                    )
                }
                Err(e) => Reply::failed(format!(
                    "config re-read, but the lists were not reloaded; the previous list keeps serving: {e}"
                )),
            };
            let _ = ask.send(reply);
        });
    }

    /// Take a new config: policy, rate limit and places at once, templates, and the
    /// list settings (the caller reloads the lists). Listeners, the resolver and
    /// the control socket change only on restart.
    fn apply(&mut self, mut new: Config) {
        use crate::config::diff;
        let applied: Vec<String> = diff::changes(self.cfg.raw(), new.raw())
            .into_iter()
            .filter(|c| diff::applies_on_reload(&c.key))
            .map(|c| c.key)
            .collect();
        if !applied.is_empty() {
            tracing::info!(keys = %applied.join(", "), "config reload: applied");
        }
        // Against what serves since start: a key changed back needs nothing.
        new.pending = diff::changes(&self.boot, new.raw())
            .into_iter()
            .filter(|c| !diff::applies_on_reload(&c.key))
            .map(diff::redacted)
            .collect();
        // The platform's URL, secret and CA, while reporting runs and stays on.
        if let (Some(platform), Some(url)) = (&self.report_platform, &new.report.url)
            && new
                .pending
                .iter()
                .any(|c| crate::config::diff::APPLIED_WHILE_REPORTING.contains(&c.key.as_str()))
        {
            let r = &new.report;
            match Platform::new(url, &r.secret, &self.boot.report.appliance, r.ca.as_deref()) {
                Ok(p) => {
                    platform.store(Arc::new(p));
                    new.pending.retain(|c| {
                        !crate::config::diff::APPLIED_WHILE_REPORTING.contains(&c.key.as_str())
                    });
                    tracing::info!(url = %crate::text::redact_url(url), "config reload: reports now go here");
                }
                Err(e) => {
                    tracing::error!(error = %e, "config reload: [report] not applied; the platform in force stays")
                }
            }
        }
        for c in &new.pending {
            tracing::warn!(change = %c.describe(), "config reload: this key takes effect only after a restart (systemctl restart fanzha)");
        }
        self.engine
            .metrics()
            .config_restart_pending
            .set(i64::from(!new.pending.is_empty()));
        if self.cfg.raw().sources != new.raw().sources {
            self.restart_sources(&new);
        }
        // Without a feed before or after, there is no follower to touch.
        let (old, now) = (self.cfg.raw(), new.raw());
        let feed_on = self.cfg.feed.is_some() || new.feed.is_some();
        if feed_on
            && (old.feed != now.feed || old.blocklist != now.blocklist || old.lists != now.lists)
        {
            self.restart_feed(&new);
        }
        let touched = |section: &str| {
            applied.iter().any(|k| {
                k.strip_prefix(section)
                    .is_some_and(|r| r.is_empty() || r.starts_with('.'))
            })
        };
        if touched("dnstap") {
            self.restart_dnstap(&new);
        }
        if touched("alerts") {
            self.pace_alerts(&new);
        }
        self.engine.reload(&new);
        match Templates::load(new.warnpage.templates.as_deref()) {
            Ok(t) => {
                self.category_names.store(Arc::new(t.names()));
                self.warn_state.templates.store(Arc::new(t));
            }
            Err(e) => tracing::error!(error = %e, "warning-page templates not reloaded"),
        }
        // A signing certificate that does not load leaves the one in force.
        let signer = match profile_signer(&new) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "setup profiles: the signing certificate did not load; the one in force stays");
                self.warn_state.setup.load().signer.clone()
            }
        };
        let setup = warnpage::setup::Setup::from_config(&new).with_signer(signer);
        self.warn_state.setup.store(Arc::new(setup));
        self.reload_dot_certificate();
        self.loader.set_config(feed::poll::blocklist_config(
            new.feed.as_ref(),
            &new.blocklist,
        ));
        drop(self.watcher.take());
        match blocklist::spawn_watcher(self.loader.clone()) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::error!(error = %e, "cannot watch the list directories"),
        }
        self.live_config.store(Arc::new(new.clone()));
        self.cfg = new;
    }

    /// Read DNS over TLS's certificate and key again (a renewal by certbot or acme.sh
    /// writes them in place): new handshakes get the new one, open connections keep
    /// theirs. One that does not load leaves the one in force.
    fn reload_dot_certificate(&self) {
        let Some((cert, key)) = &self.cfg.server.tls else {
            return;
        };
        for (swap, alpn) in &self.dot_tls {
            match crate::http::tls_acceptor(cert, key, "server", alpn) {
                Ok(a) => {
                    swap.store(Arc::new(a));
                    tracing::info!(cert = %cert.display(), alpn = ?alpn_names(alpn), "DNS over TLS: certificate re-read");
                }
                Err(e) => {
                    tracing::error!(error = %e, "DNS over TLS: the certificate did not load; the one in force stays");
                    return;
                }
            }
        }
    }

    /// `[feed]` (or the lists it replaces) changed: the old follower stops after
    /// its poll, and the new one starts once it has (reading what is installed
    /// afresh), on a thread of its own, so that the reload does not wait.
    fn restart_feed(&mut self, new: &Config) {
        if let Some(stop) = self.feed_stop.take() {
            stop.store(true, Ordering::Release);
        }
        let old = self.feed_thread.take();
        let Some(f) = new.feed.clone() else {
            tracing::info!("config reload: the feed is off; the configured lists serve");
            return;
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (s, loader, lists, metrics) = (
            stop.clone(),
            self.loader.clone(),
            new.blocklist.clone(),
            self.engine.metrics().feed.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("fanzha-feed".into())
            .spawn(move || {
                if let Some(t) = old {
                    let _ = t.join();
                }
                match feed::poll::Follower::new(f, loader, lists, metrics) {
                    Ok(follower) => {
                        tracing::info!("config reload: following the feed as now configured");
                        follower.run(s);
                    }
                    Err(e) => tracing::error!(error = %e, "config reload: the feed follower did not start"),
                }
            });
        match spawned {
            Ok(t) => {
                self.feed_stop = Some(stop);
                self.feed_thread = Some(t);
            }
            Err(e) => tracing::error!(error = %e, "config reload: the feed follower did not start"),
        }
    }

    /// `[dnstap]` changed: the old writer sends what is queued and stops, and the
    /// queries from now on go to a new one (or to none when it is gone).
    fn restart_dnstap(&mut self, new: &Config) {
        let stop = CancellationToken::new();
        let (tap, task) = start_dnstap(new, self.engine.metrics(), &stop);
        let on = tap.is_some();
        self.engine.set_tap(tap);
        // After the swap: a query asked after the line goes where it says.
        if on {
            log_dnstap_on(new);
        } else {
            tracing::info!("config reload: the dnstap query log is off");
        }
        if let Some((_, old)) = self.tap_task.take() {
            old.cancel();
        }
        self.tap_task = task.map(|t| (t, stop));
    }

    /// `[alerts]` changed: the digests' pacing, device names, time zone and
    /// retries follow the new values from the next hit; their directory and key
    /// (from `[report]`) stay.
    fn pace_alerts(&self, new: &Config) {
        let now = self.alert_cfg.load();
        let mut a = new.alerts.clone();
        a.dir = now.dir.clone();
        a.hash_key_file = now.hash_key_file.clone();
        a.appliance = now.appliance.clone();
        a.fsync = now.fsync;
        self.alert_cfg.store(Arc::new(a));
        tracing::info!(
            interval_s = new.alerts.interval.as_secs(),
            max_per_hour = new.alerts.max_per_hour,
            "config reload: [alerts] applied"
        );
    }

    /// `[[sources]]` changed: the old fetcher stops (between two fetches) and one
    /// for the new list starts; their files compile with the lists as usual.
    fn restart_sources(&mut self, new: &Config) {
        if let Some(stop) = self.sources_stop.take() {
            stop.store(true, Ordering::Release);
        }
        if let Err(e) = make_sources_dir(new) {
            tracing::error!(error = %e, "config reload: cannot make the sources' directory");
        }
        match start_sources(new, self.engine.metrics()) {
            Ok(stop) => self.sources_stop = stop,
            Err(e) => tracing::error!(error = %e, "config reload: [[sources]] not started"),
        }
    }

    /// Stop taking queries, let those being resolved finish (5 s at most), and
    /// flush pending hit events to the spool.
    async fn drain(self) {
        self.ready.store(false, Ordering::Release);
        crate::sd_notify::notify("STOPPING=1");
        self.shutdown.cancel();
        for stop in [&self.feed_stop, &self.sources_stop].into_iter().flatten() {
            stop.store(true, Ordering::Release);
        }
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some queries were still being resolved after 5 s; stopping anyway");
        }
        let _ = self.ops_task.await;
        if let Some((writer, stop)) = self.tap_task {
            // Every query is answered: the log gets what is queued, then STOP.
            stop.cancel();
            if tokio::time::timeout(Duration::from_secs(3), writer)
                .await
                .is_err()
            {
                tracing::warn!("dnstap writer did not finish within 3 s");
            }
        }
        if let Some((writer, sender)) = self.report_tasks {
            // The writer flushes every pending event to the spool before it ends.
            if tokio::time::timeout(Duration::from_secs(5), writer)
                .await
                .is_err()
            {
                tracing::warn!("report writer did not finish within 5 s");
            }
            sender.abort();
        }
        let (collector, sender) = self.alert_tasks;
        // The collector saves what it gathered; the sender's unsent digests are on disk.
        sender.abort();
        if tokio::time::timeout(Duration::from_secs(5), collector)
            .await
            .is_err()
        {
            tracing::warn!("alert collector did not finish within 5 s");
        }
        drop(self.watcher);
        tracing::info!("stopped");
    }
}

/// The DNS sockets bound at start: UDP sockets and a TCP listener per address, and the
/// DNS over TLS and DNS over HTTPS listeners.
type Bound = (
    Vec<(Vec<tokio::net::UdpSocket>, TcpListener)>,
    Vec<TcpListener>,
    Vec<TcpListener>,
);

/// Bind every DNS socket: UDP (one per worker) and TCP on each `listen` address, TLS
/// on each `listen_tls` address.
fn bind_dns(cfg: &Config) -> Result<Bound> {
    let udp_sockets = cfg.worker_threads();
    let mut bound = Vec::with_capacity(cfg.server.listen.len());
    for addr in &cfg.server.listen {
        bound.push(bind::bind_pair(*addr, udp_sockets)?);
    }
    let mut dot = Vec::with_capacity(cfg.server.listen_tls.len());
    for addr in &cfg.server.listen_tls {
        dot.push(bind::bind_tls(*addr)?);
    }
    let mut doh = Vec::with_capacity(cfg.server.listen_https.len());
    for addr in &cfg.server.listen_https {
        doh.push(bind::bind_tls(*addr)?);
    }
    Ok((bound, dot, doh))
}

/// The TLS acceptors of DNS over TLS and HTTPS with the ALPN each offers, swapped when
/// the certificate is read again.
type DotTls = Vec<(tcp::Acceptor, &'static [&'static [u8]])>;

/// ALPN of DNS over TLS (RFC 7858) and of DNS over HTTPS (RFC 8484: HTTP/2 first).
const DOT_ALPN: &[&[u8]] = &[b"dot"];
const DOH_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

fn alpn_names(alpn: &[&[u8]]) -> Vec<String> {
    alpn.iter()
        .map(|p| String::from_utf8_lossy(p).into())
        .collect()
}

/// One UDP receive loop per socket and one TCP (or TLS) accept loop per address, on
/// the sockets bound at start; and DNS over TLS's acceptor.
fn spawn_listeners(
    cfg: &Config,
    (bound, dot, doh): Bound,
    engine: &Arc<Engine>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<(JoinSet<()>, DotTls)> {
    let mut listeners = JoinSet::new();
    let limits = tcp::TcpLimits {
        idle: cfg.server.tcp_idle_timeout,
        max_age: cfg.server.tcp_max_age,
        max: cfg.server.tcp_max_connections,
        per_client: cfg.server.tcp_per_client,
        handshake: cfg.server.tls_handshake_timeout,
    };
    let mut dot_tls = Vec::new();
    if let Some((cert, key)) = &cfg.server.tls {
        let acceptor = |alpn| -> Result<tcp::Acceptor> {
            Ok(Arc::new(ArcSwap::from_pointee(
                crate::http::tls_acceptor(cert, key, "server", alpn).map_err(anyhow::Error::msg)?,
            )))
        };
        if !dot.is_empty() {
            let a = acceptor(DOT_ALPN)?;
            dot_tls.push((a.clone(), DOT_ALPN));
            for l in dot {
                tracing::info!(tls = %l.local_addr()?, "listening for DNS over TLS");
                listeners.spawn(tcp::run_tcp(
                    engine.clone(),
                    l,
                    (limits, tcp::Over::Tls(a.clone())),
                    shutdown.clone(),
                    tasks.clone(),
                ));
            }
        }
        if !doh.is_empty() {
            let a = acceptor(DOH_ALPN)?;
            dot_tls.push((a.clone(), DOH_ALPN));
            let streams = cfg.server.https_max_streams;
            for l in doh {
                tracing::info!(https = %l.local_addr()?, "listening for DNS over HTTPS");
                listeners.spawn(tcp::run_tcp(
                    engine.clone(),
                    l,
                    (limits, tcp::Over::Https(a.clone(), streams)),
                    shutdown.clone(),
                    tasks.clone(),
                ));
            }
        }
    }
    for (udps, tcp) in bound {
        tracing::info!(udp = %udps[0].local_addr()?, tcp = %tcp.local_addr()?, udp_sockets = udps.len(), "listening for DNS");
        // One UDP receive loop per runtime worker (the runtime has `threads` of them).
        for sock in udps {
            listeners.spawn(udp::run_udp(
                engine.clone(),
                Arc::new(sock),
                shutdown.clone(),
                tasks.clone(),
            ));
        }
        listeners.spawn(tcp::run_tcp(
            engine.clone(),
            tcp,
            (limits, tcp::Over::Tcp),
            shutdown.clone(),
            tasks.clone(),
        ));
    }
    Ok((listeners, dot_tls))
}

/// Follow the signed feed when `[feed]` is set, on a thread of its own (its HTTP
/// client blocks); returns what stops it.
type FeedTask = (Option<Arc<AtomicBool>>, Option<std::thread::JoinHandle<()>>);

fn start_feed(cfg: &Config, loader: &Arc<Loader>, metrics: &Metrics) -> Result<FeedTask> {
    let Some(f) = &cfg.feed else {
        return Ok((None, None));
    };
    let follower = feed::poll::Follower::new(
        f.clone(),
        loader.clone(),
        cfg.blocklist.clone(),
        metrics.feed.clone(),
    )
    .map_err(anyhow::Error::msg)
    .context("starting the feed follower")?;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name("fanzha-feed".into())
        .spawn(move || follower.run(s))
        .context("starting the feed follower")?;
    tracing::info!(url = %f.url, poll = ?f.poll, "following the signed list feed");
    Ok((Some(stop), Some(thread)))
}

/// The sources' copies live in a list directory of their own: it must exist before
/// the first compile (empty until the first fetch).
fn make_sources_dir(cfg: &Config) -> Result<()> {
    if let Some(dir) = cfg.sources.first().and_then(|s| s.file.parent()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Fetch `[[sources]]` on a thread of its own; returns what stops it.
fn start_sources(cfg: &Config, metrics: &Metrics) -> Result<Option<Arc<AtomicBool>>> {
    if cfg.sources.is_empty() {
        return Ok(None);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (s, sources) = (stop.clone(), cfg.sources.clone());
    let m = feed::sources::SourceMetrics {
        fetches: metrics.source_fetches.clone(),
        last_success: metrics.source_last_success.clone(),
    };
    std::thread::Builder::new()
        .name("fanzha-sources".into())
        .spawn(move || feed::sources::run(sources, m, s))
        .context("starting the list sources fetcher")?;
    tracing::info!(sources = cfg.sources.len(), "fetching [[sources]]");
    Ok(Some(stop))
}

/// Start the dnstap writer when `[dnstap]` is set; the tap goes to the engine.
fn start_dnstap(
    cfg: &Config,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> (Option<crate::dnstap::Tap>, Option<JoinHandle<()>>) {
    let Some(d) = &cfg.dnstap else {
        return (None, None);
    };
    let key = match d.client_ip {
        crate::privacy::ClientIp::Hash => crate::privacy::hash_key_or_ephemeral(&d.hash_key_file),
        _ => Arc::from(&[][..]),
    };
    let c = &metrics.dnstap_frames;
    let counters = crate::dnstap::TapCounters {
        sent: c.with_label_values(&["sent"]),
        dropped: c.with_label_values(&["dropped"]),
        lost: c.with_label_values(&["lost"]),
    };
    let (tap, task) = crate::dnstap::Tap::start(d, key, counters, stop.clone());
    (Some(tap), Some(task))
}

/// Say that the query log of `cfg` is on: once the engine logs to it, so that what
/// is asked after this line is in it.
fn log_dnstap_on(cfg: &Config) {
    if let Some(d) = &cfg.dnstap {
        tracing::info!(collector = ?d.target, client_query = d.client_query, client_response = d.client_response, sample = d.sample, "dnstap query log on");
    }
}

/// Open the control socket of `fanzha ctl` and serve it until shutdown. A socket
/// that cannot be opened is logged and left out: DNS never waits on it. Returns the
/// config in force as the commands see it, and the reloads they ask for.
fn start_control(
    cfg: &Config,
    engine: &Arc<Engine>,
    lists: &Arc<Handle>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> (Arc<ArcSwap<Config>>, tokio::sync::mpsc::Receiver<ReloadAsk>) {
    let config = Arc::new(ArcSwap::from_pointee(cfg.clone()));
    let (reload, asks) = tokio::sync::mpsc::channel(4);
    let live = ctl::commands::Live {
        engine: engine.clone(),
        lists: lists.clone(),
        metrics: metrics.clone(),
        config: config.clone(),
        started: std::time::Instant::now(),
        reload,
    };
    let Some(path) = cfg.control.clone() else {
        return (config, asks);
    };
    match ctl::server::bind(&path) {
        Ok(l) => {
            tracing::info!(socket = %path.display(), "control socket listening (fanzha ctl)");
            tokio::spawn(ctl::server::serve(
                l,
                path,
                Arc::new(live),
                shutdown.clone(),
            ));
        }
        Err(e) => tracing::error!(error = %e, "fanzha ctl will not work"),
    }
    (config, asks)
}

/// Free heap glibc keeps, past which it is given back. Low enough that RSS follows
/// what is in use: at 16 MiB the soak's RSS swung 10.8 % with freed send buffers
/// kept between trims, at 4 MiB 11.6 % (single samples; the thirds' means 0.5 % apart).
const TRIM_ABOVE: usize = 2 << 20;

/// Every 5 s, hand glibc's free heap back to the system when there is much of it.
/// glibc keeps what a flood of resolutions freed (measured: RSS stayed at its peak a
/// minute after a random-subdomain flood); `malloc_trim` returns it. It runs on a
/// blocking thread, and only when there is more than [`TRIM_ABOVE`] to gain.
fn spawn_trimmer(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let _ = tokio::task::spawn_blocking(|| {
                // SAFETY: glibc's allocator statistics and trim; no pointers involved.
                unsafe {
                    if libc::mallinfo2().fordblks > TRIM_ABOVE {
                        libc::malloc_trim(0);
                    }
                }
            })
            .await;
        }
    });
}

/// Every 10 minutes, keep a snapshot of the block counters for the kiosk's weekly
/// figures (the first at start, when they are all zero).
fn spawn_week_snapshots(metrics: Arc<Metrics>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            metrics.week.snapshot(now, metrics.blocked_counts());
        }
    });
}

/// Say how the lists came to serve at start.
fn log_start(summary: &StartSummary) {
    let (entries, ms) = (summary.entries, summary.elapsed.as_millis() as u64);
    match summary.snapshot {
        None if summary.interim => tracing::info!(
            entries,
            ms,
            "blocklist read; an interim index serves it while the compile finishes in the background"
        ),
        None => tracing::info!(entries, ms, "blocklist loaded"),
        Some(SnapshotUse::Current) => tracing::info!(
            entries,
            ms,
            "blocklist loaded from the snapshot of the last compile (lists unchanged since)"
        ),
        Some(SnapshotUse::Stale) => tracing::info!(
            entries,
            ms,
            "blocklist loaded from the snapshot of the last compile; the lists changed since and compile in the background"
        ),
    }
    if let Some(r) = &summary.report
        && (r.skipped_total() > 0 || !r.refused.is_empty())
    {
        tracing::warn!(
            skipped_lines = r.skipped_total(),
            refused_rules = r.refused.len(),
            "some list lines were not used; `fanzha compile` shows which"
        );
    }
}

/// Start reporting when `[report] url` is set. `places` is the engine's, so that a
/// reload reaches both at once.
fn start_reporter(
    cfg: &Config,
    metrics: &Metrics,
    places: Arc<ArcSwap<Places>>,
    shutdown: CancellationToken,
) -> Result<Reporting> {
    let r = &cfg.report;
    let Some(url) = &r.url else {
        tracing::info!("reporting off ([report] url is empty)");
        return Ok((None, None, None));
    };
    let platform = Arc::new(ArcSwap::from_pointee(Platform::new(
        url,
        &r.secret,
        &r.appliance,
        r.ca.as_deref(),
    )?));
    // Never fails: a spool that cannot be written degrades reporting, not DNS.
    let (rep, tasks) = pipeline::start(
        r.clone(),
        places,
        platform.clone(),
        metrics.report.clone(),
        shutdown,
    );
    tracing::info!(url = %crate::text::redact_url(url), "reporting hits to the platform");
    Ok((Some(rep), Some(tasks), Some(platform)))
}

/// The warning page's texts, the categories' names from them, the alerts' hand-over
/// and their tasks.
type Alerting = (
    Arc<ArcSwap<Templates>>,
    Arc<ArcSwap<crate::categories::Names>>,
    crate::alert::Alerter,
    crate::alert::Tasks,
);

/// The reporter, its tasks and its platform (all `None` with reporting off).
type Reporting = (
    Option<Reporter>,
    Option<ReportTasks>,
    Option<Arc<ArcSwap<Platform>>>,
);

/// Load the warning page's texts (the alerts name categories with them too) and
/// start the alerts to places' workers. Always running (cheap when idle), so that a
/// SIGHUP that gives a place a robot needs no restart, and digests left on disk by
/// an earlier run are delivered.
fn start_alerts(
    cfg: &Config,
    alert_cfg: &Arc<ArcSwap<crate::config::AlertConfig>>,
    metrics: &Metrics,
    places: &Arc<ArcSwap<Places>>,
    shutdown: &CancellationToken,
) -> Result<Alerting> {
    let templates = Arc::new(ArcSwap::from_pointee(
        Templates::load(cfg.warnpage.templates.as_deref())
            .context("loading the warning-page templates (warnpage.templates)")?,
    ));
    if cfg.places.has_alerts() {
        tracing::info!(
            interval_s = cfg.alerts.interval.as_secs(),
            "alerting places' workers ([[places]] alert)"
        );
    }
    let names = Arc::new(ArcSwap::from_pointee(templates.load().names()));
    let (alerter, tasks) = crate::alert::start(
        alert_cfg.clone(),
        places.clone(),
        names.clone(),
        metrics.alert.clone(),
        shutdown.clone(),
    );
    Ok((templates, names, alerter, tasks))
}

/// What signs the phone setup profiles (`[warnpage] profile_cert`), if set.
fn profile_signer(cfg: &Config) -> Result<Option<Arc<crate::cms::ProfileSigner>>, String> {
    match &cfg.warnpage.profile_signer {
        None => Ok(None),
        Some((cert, key)) => crate::cms::ProfileSigner::load(cert, key).map(|s| Some(Arc::new(s))),
    }
}

/// Bind and start the warning page on its HTTP and HTTPS addresses.
/// What the URL proxy is built from.
fn url_parts(
    cfg: &Config,
    lists: &Arc<Handle>,
    engine: &Arc<Engine>,
    places: Arc<ArcSwap<crate::places::Places>>,
    warn: &Arc<WarnState>,
    metrics: &Arc<Metrics>,
    reporter: Option<Reporter>,
) -> urlproxy::Parts {
    urlproxy::Parts {
        lists: lists.clone(),
        engine: engine.clone(),
        places,
        warn: warn.clone(),
        metrics: metrics.clone(),
        reporter,
        prefix: (
            cfg.server.rate_limit_prefix_v4,
            cfg.server.rate_limit_prefix_v6,
        ),
    }
}

/// The URL proxy's listeners (`[url]`), when it has any.
fn start_urlproxy(
    cfg: &Config,
    parts: urlproxy::Parts,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<()> {
    let u = &cfg.url;
    if !u.enabled() {
        return Ok(());
    }
    let proxy = Arc::new(
        urlproxy::Proxy::new(u, parts)
            .map_err(anyhow::Error::msg)
            .context("starting the URL proxy ([url])")?,
    );
    let plain = u.listen.iter().map(|a| (a, "url.listen", false));
    let tls = u.listen_tls.iter().map(|a| (a, "url.listen_tls", true));
    for (addr, key, tls) in plain.chain(tls) {
        let l = crate::dns::listen::bind::bind_tls(*addr)
            .with_context(|| format!("binding the URL proxy on {addr} ({key})"))?;
        let scheme = if tls { "https" } else { "http" };
        tracing::info!(addr = %l.local_addr()?, "URL proxy listening ({scheme})");
        tasks.spawn(proxy.clone().serve(l, tls, shutdown.clone()));
    }
    Ok(())
}

async fn start_warnpage(
    cfg: &Config,
    lists: &Arc<Handle>,
    metrics: &Arc<Metrics>,
    reporter: Option<Reporter>,
    templates: Arc<ArcSwap<Templates>>,
    shutdown: &CancellationToken,
) -> Result<Arc<WarnState>> {
    let w = &cfg.warnpage;
    let mut state = WarnState::sharing(lists.clone(), templates, metrics.clone());
    state.sink = reporter;
    let signer = profile_signer(cfg).map_err(anyhow::Error::msg)?;
    let setup = warnpage::setup::Setup::from_config(cfg).with_signer(signer);
    state.setup.store(Arc::new(setup));
    let state = Arc::new(state);
    let tls = match &w.tls {
        Some((cert, key)) => {
            Some(warnpage::server::tls_acceptor(cert, key).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let plain = w.listen.iter().map(|a| (a, "warnpage.listen", None));
    let https = w
        .https
        .iter()
        .map(|a| (a, "warnpage.https_listen", tls.clone()));
    for (addr, key, tls) in plain.chain(https) {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the warning page on {addr} ({key})"))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(addr = %l.local_addr()?, "warning page listening ({scheme})");
        tokio::spawn(warnpage::server::serve(
            l,
            state.clone(),
            tls,
            cfg.warnpage.per_client,
            shutdown.clone(),
        ));
    }
    Ok(state)
}

/// Bind and start the ops endpoint (`/metrics`, `/healthz`, `/readyz`).
async fn start_ops(
    cfg: &Config,
    metrics: &Arc<Metrics>,
    lists: &Arc<Handle>,
    ready: &Arc<AtomicBool>,
    shutdown: &CancellationToken,
) -> Result<JoinHandle<std::io::Result<()>>> {
    let ops = TcpListener::bind(cfg.ops_listen).await.with_context(|| {
        format!(
            "binding the ops endpoint on {} (ops.listen)",
            cfg.ops_listen
        )
    })?;
    tracing::info!(addr = %metrics::bound(&ops).unwrap_or(cfg.ops_listen), "ops endpoint: /metrics /healthz /readyz");
    let state = OpsState {
        metrics: metrics.clone(),
        lists: lists.clone(),
        ready: ready.clone(),
    };
    let sd = shutdown.clone();
    Ok(tokio::spawn(async move {
        metrics::serve_ops(ops, state, async move { sd.cancelled().await }).await
    }))
}
