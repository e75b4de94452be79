//! `fanzha serve`: build every part from the config, bind, run until SIGTERM, reload
//! on SIGHUP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocklist::watch::SnapshotUse;
use crate::blocklist::{self, Handle, Loader};
use crate::config::Config;
use crate::dns::cache::AnswerCache;
use crate::dns::resolve::{self, Backend};
use crate::dns::server::{self, Engine};
use crate::metrics::{self, Metrics, OpsState};
use crate::places::{Place, Places};
use crate::policy::{Policy, RateLimiter};
use crate::report::event::ClientIp;
use crate::report::pipeline::{self, ReportConfig, ReportMetrics, Reporter};
use crate::report::sender::Platform;
use crate::warnpage::{self, Templates, server::WarnState};

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if reuse_port {
        // One socket per worker on the same address; the kernel spreads clients
        // over them, so the receive loops run on every core.
        s.set_reuse_port(true)?;
    }
    s.set_recv_buffer_size(4 << 20).ok();
    s.set_send_buffer_size(4 << 20).ok();
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// Bind `udp_count` UDP sockets (SO_REUSEPORT when more than one) and one TCP
/// listener on the same address; with port 0, find a port free for both.
fn bind_pair(addr: SocketAddr, udp_count: usize) -> Result<(Vec<UdpSocket>, TcpListener)> {
    let mut last = None;
    let reuse = udp_count > 1;
    let ctx =
        || format!("binding DNS UDP on {addr} (server.listen); is another resolver running there?");
    for _ in 0..20 {
        let udp = udp_socket(addr, reuse).with_context(ctx)?;
        let bound = udp.local_addr()?;
        match tcp_listener(bound) {
            Ok(tcp) => {
                let mut socks = vec![UdpSocket::from_std(udp)?];
                for _ in 1..udp_count {
                    socks.push(UdpSocket::from_std(
                        udp_socket(bound, true).with_context(ctx)?,
                    )?);
                }
                return Ok((socks, TcpListener::from_std(tcp)?));
            }
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("binding DNS TCP on {addr} (server.listen)"));
            }
        }
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no free port")))
    .with_context(|| format!("finding a port free for UDP and TCP on {addr}"))
}

/// Run the appliance until SIGTERM or SIGINT.
pub async fn serve(config_path: Option<PathBuf>, cfg: Config) -> Result<()> {
    tracing::info!(
        config = %config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "embedded defaults".into()),
        "fanzha {} starting", env!("CARGO_PKG_VERSION")
    );
    // DNS sockets first: a second instance fails here at once, and queries that
    // arrive while the lists load wait in the socket buffers, answered a moment
    // later rather than refused.
    let udp_sockets = cfg.worker_threads();
    let mut bound = Vec::with_capacity(cfg.listen.len());
    for addr in &cfg.listen {
        bound.push(bind_pair(*addr, udp_sockets)?);
    }
    let lists = Arc::new(Handle::default());
    let loader = Arc::new(Loader::new(cfg.blocklist.clone(), lists.clone()));
    loader.clean_state_dir();
    let l2 = loader.clone();
    let summary = tokio::task::spawn_blocking(move || l2.start())
        .await?
        .context("loading the blocklist at start")?;
    match summary.snapshot {
        None if summary.interim => tracing::info!(
            entries = summary.entries,
            ms = summary.elapsed.as_millis() as u64,
            "blocklist read; an interim index serves it while the compile finishes in the background"
        ),
        None => tracing::info!(
            entries = summary.entries,
            ms = summary.elapsed.as_millis() as u64,
            "blocklist loaded"
        ),
        Some(SnapshotUse::Current) => tracing::info!(
            entries = summary.entries,
            ms = summary.elapsed.as_millis() as u64,
            "blocklist loaded from the snapshot of the last compile (lists unchanged since)"
        ),
        Some(SnapshotUse::Stale) => tracing::info!(
            entries = summary.entries,
            ms = summary.elapsed.as_millis() as u64,
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
    let mut watcher =
        Some(blocklist::spawn_watcher(loader.clone()).context("watching the list directories")?);
    if summary.snapshot == Some(SnapshotUse::Stale) {
        blocklist::watch::reload_in_background(loader.clone(), "lists changed since the snapshot");
    }

    let backend = Backend::from_config(&cfg)?;
    tracing::info!("resolver: {}", resolve::describe(&cfg));
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let (reporter, report_tasks) = start_reporter(&cfg, &metrics, shutdown.clone())?;
    let engine = Arc::new(Engine {
        policy: ArcSwap::from_pointee(Policy::from_config(&cfg)),
        limiter: ArcSwap::from_pointee(RateLimiter::new(cfg.rate_limit, cfg.rate_limit_burst)),
        lists: lists.clone(),
        backend,
        metrics: metrics.clone(),
        deadline: (cfg.resolver_timeout * 8).clamp(Duration::from_secs(2), Duration::from_secs(10)),
        cache: AnswerCache::new(cfg.cache_size as usize),
        reporter: reporter.clone(),
        places: ArcSwap::from_pointee(places_of(&cfg)),
    });

    let tasks = TaskTracker::new();
    // One UDP receive loop per runtime worker (the runtime has `threads` of them).
    // The listeners: if one ends while fanzha is not stopping (a bug, a dead socket),
    // fanzha exits non-zero so that systemd restarts it, instead of serving half.
    let mut listeners = tokio::task::JoinSet::new();
    for (udps, tcp) in bound {
        let bound = udps[0].local_addr()?;
        tracing::info!(udp = %bound, tcp = %tcp.local_addr()?, udp_sockets = udps.len(), "listening for DNS");
        for udp in udps {
            listeners.spawn(server::run_udp(
                engine.clone(),
                Arc::new(udp),
                shutdown.clone(),
                tasks.clone(),
            ));
        }
        listeners.spawn(server::run_tcp(
            engine.clone(),
            tcp,
            cfg.tcp_idle_timeout,
            shutdown.clone(),
            tasks.clone(),
        ));
    }
    let templates = Templates::load(cfg.warnpage_templates.as_deref())
        .context("loading the warning-page templates (warnpage.templates)")?;
    let mut warn_state = WarnState::new(lists.clone(), templates, metrics.clone());
    warn_state.sink = reporter.clone();
    let warn_state = Arc::new(warn_state);
    for addr in &cfg.warnpage_listen {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the warning page on {addr} (warnpage.listen)"))?;
        tracing::info!(addr = %l.local_addr()?, "warning page listening (http)");
        tokio::spawn(warnpage::server::serve(
            l,
            warn_state.clone(),
            None,
            shutdown.clone(),
        ));
    }
    if let Some((cert, key)) = &cfg.warnpage_tls {
        let acceptor = warnpage::server::tls_acceptor(cert, key).map_err(anyhow::Error::msg)?;
        for addr in &cfg.warnpage_https {
            let l = TcpListener::bind(addr).await.with_context(|| {
                format!("binding the warning page on {addr} (warnpage.https_listen)")
            })?;
            tracing::info!(addr = %l.local_addr()?, "warning page listening (https)");
            tokio::spawn(warnpage::server::serve(
                l,
                warn_state.clone(),
                Some(acceptor.clone()),
                shutdown.clone(),
            ));
        }
    }
    let ready = Arc::new(AtomicBool::new(false));
    let ops = TcpListener::bind(cfg.ops_listen).await.with_context(|| {
        format!(
            "binding the ops endpoint on {} (ops.listen)",
            cfg.ops_listen
        )
    })?;
    tracing::info!(addr = %metrics::bound(&ops).unwrap_or(cfg.ops_listen), "ops endpoint: /metrics /healthz /readyz");
    let ops_state = OpsState {
        metrics: metrics.clone(),
        lists: lists.clone(),
        ready: ready.clone(),
    };
    let sd = shutdown.clone();
    let ops_task = tokio::spawn(async move {
        metrics::serve_ops(ops, ops_state, async move { sd.cancelled().await }).await
    });
    // Handlers first: a SIGTERM right after READY must drain, not kill.
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    ready.store(true, Ordering::Release);
    loader.serving();
    crate::notify::notify("READY=1");
    tracing::info!("ready");

    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: re-reading the config");
                match Config::load(config_path.as_deref()) {
                    Err(e) => tracing::error!(error = %e, "config not reloaded; the running config stays"),
                    Ok(new) => {
                        if new.listen != cfg.listen || new.ops_listen != cfg.ops_listen || new.mode != cfg.mode
                            || new.upstreams != cfg.upstreams || new.root_hints != cfg.root_hints {
                            tracing::warn!("listen addresses and resolver settings change only on restart");
                        }
                        engine.policy.store(Arc::new(Policy::from_config(&new)));
                        engine.places.store(Arc::new(places_of(&new)));
                        match Templates::load(new.warnpage_templates.as_deref()) {
                            Ok(t) => warn_state.templates.store(Arc::new(t)),
                            Err(e) => tracing::error!(error = %e, "warning-page templates not reloaded"),
                        }
                        engine.limiter.store(Arc::new(RateLimiter::new(new.rate_limit, new.rate_limit_burst)));
                        loader.set_config(new.blocklist.clone());
                        drop(watcher.take());
                        match blocklist::spawn_watcher(loader.clone()) {
                            Ok(w) => watcher = Some(w),
                            Err(e) => tracing::error!(error = %e, "cannot watch the list directories"),
                        }
                        let l = loader.clone();
                        blocklist::watch::reload_in_background(l, "SIGHUP");
                    }
                }
            }
            ended = listeners.join_next() => {
                let why = match ended {
                    Some(Err(e)) if e.is_panic() => "a DNS listener panicked".to_string(),
                    Some(_) => "a DNS listener stopped".to_string(),
                    None => "no DNS listener is left".to_string(),
                };
                tracing::error!("{why}; exiting so that the service manager restarts fanzha");
                shutdown.cancel();
                anyhow::bail!("{why}");
            }
            _ = term.recv() => { tracing::info!("SIGTERM: draining"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: draining"); break; }
        }
    }
    ready.store(false, Ordering::Release);
    crate::notify::notify("STOPPING=1");
    shutdown.cancel();
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some queries were still being resolved after 5 s; stopping anyway");
    }
    let _ = ops_task.await;
    if let Some((writer, sender)) = report_tasks {
        // The writer flushes every pending event to the spool before it ends.
        if tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .is_err()
        {
            tracing::warn!("report writer did not finish within 5 s");
        }
        sender.abort();
    }
    drop(watcher);
    tracing::info!("stopped");
    Ok(())
}

type ReportTasks = (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>);

/// Start reporting when `[report] url` is set.
fn start_reporter(
    cfg: &Config,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> Result<(Option<Reporter>, Option<ReportTasks>)> {
    let r = &cfg.report;
    let report_metrics = ReportMetrics::new(metrics.registry());
    if r.url.is_empty() {
        tracing::info!("reporting off ([report] url is empty)");
        return Ok((None, None));
    }
    let platform = Platform::new(
        &r.url,
        &r.secret,
        &r.appliance,
        (!r.ca.is_empty()).then(|| std::path::Path::new(&r.ca)),
    )?;
    let places = Places::new(
        cfg.places
            .iter()
            .map(|(n, p)| {
                (
                    *n,
                    Place {
                        district: p.district.clone(),
                        street: p.street.clone(),
                        community: p.community.clone(),
                    },
                )
            })
            .collect(),
        Place {
            district: r.default_district.clone(),
            street: r.default_street.clone(),
            community: r.default_community.clone(),
        },
    );
    let spool_dir = PathBuf::from(&r.spool_dir);
    let rc = ReportConfig {
        dead_letter: spool_dir.join("dead-letter.jsonl"),
        spool_dir,
        spool_max_bytes: r.spool_max_bytes,
        batch_events: r.batch_events,
        batch_bytes: r.batch_bytes,
        dedup_window: Duration::from_secs(r.dedup_window),
        appliance: r.appliance.clone(),
        client_ip: ClientIp::parse(&r.client_ip).unwrap_or_default(),
        secret: r.secret.clone(),
        fsync: r.fsync,
        max_backoff: Duration::from_secs(r.max_backoff.max(1)),
    };
    let (rep, w, s) = pipeline::start(rc, Arc::new(places), platform, report_metrics, shutdown)
        .with_context(|| {
            format!(
                "opening the report spool {} (report.spool_dir)",
                r.spool_dir
            )
        })?;
    tracing::info!(url = %r.url, "reporting hits to the platform");
    Ok((Some(rep), Some((w, s))))
}

/// The places of a config.
fn places_of(cfg: &Config) -> Places {
    let r = &cfg.report;
    Places::new(
        cfg.places
            .iter()
            .map(|(n, p)| {
                let place = Place {
                    district: p.district.clone(),
                    street: p.street.clone(),
                    community: p.community.clone(),
                };
                (*n, place)
            })
            .collect(),
        Place {
            district: r.default_district.clone(),
            street: r.default_street.clone(),
            community: r.default_community.clone(),
        },
    )
}
