//! What each `fanzha ctl` command does to the live daemon, and how its answer reads.
//! No socket here: [`run`] takes a [`Command`] and the daemon's parts.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::{Command, EXIT_BLOCKED, EXIT_OK, Reply};
use crate::blocklist::{self, Blocklist, Handle, Verdict};
use crate::config::Config;
use crate::dns::engine::Engine;
use crate::dns::stages::policy::Policy;
use crate::metrics::Metrics;
use crate::wallclock::unix_now;

/// A reload asked for by `fanzha ctl reload`: the daemon re-reads its config and
/// lists, as on SIGHUP, and answers on the sender when the lists are in.
pub type ReloadAsk = oneshot::Sender<Reply>;

/// The parts of the running daemon the commands read and act on.
pub struct Live {
    /// The per-query engine (cache, policy).
    pub engine: Arc<Engine>,
    /// The serving list.
    pub lists: Arc<Handle>,
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// The config in force, swapped on reload.
    pub config: Arc<ArcSwap<Config>>,
    /// When the daemon started.
    pub started: Instant,
    /// Where reloads are asked for (the daemon's main loop).
    pub reload: mpsc::Sender<ReloadAsk>,
}

/// Do `cmd` and say how it went.
pub async fn run(live: &Live, cmd: &Command) -> Reply {
    match cmd {
        Command::Status => status(live),
        Command::Lookup { names } => lookup(live, names),
        Command::Reload => reload(live).await,
        Command::FlushCache { name } => flush(live, name.as_deref()),
        Command::Stats => stats(live),
        Command::TopBlocked { n: 0 } | Command::ShadowReport { n: 0, .. } => {
            Reply::failed(format!("{}: give a count from 1 up", cmd.name()))
        }
        Command::TopBlocked { n } => top_blocked(live, *n),
        Command::ShadowReport { n, popular } => shadow_report(live, *n, popular.as_deref()),
        Command::DumpConfig => dump_config(live),
    }
}

/// "3h 2m 1s" (whole seconds).
fn ago(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// "1.5 MiB".
fn bytes(n: f64) -> String {
    let mut v = n;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "B" {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    unreachable!()
}

fn status(live: &Live) -> Reply {
    let cfg = live.config.load();
    let now = unix_now();
    let (list_text, list_json) = list_status(live, now);
    let uptime = live.started.elapsed().as_secs();
    let (cache_entries, cache_bytes) = live.engine.cache_size();
    let samples = live.metrics.samples(&live.lists);
    let metric = |name: &str| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    };
    let reporting = cfg.report.url.is_some();
    let spool = metric("fanzha_report_spool_bytes");
    let oldest = metric("fanzha_report_oldest_event_age_seconds");
    let degraded = live.metrics.report.degraded.lines();
    let config = cfg
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(embedded defaults)".into());
    let (feed_line, feed_json) = feed_status(live, &cfg, now);
    let (alert_line, alert_json) = alert_status(live, &cfg);
    let data = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": uptime,
        "config": config,
        "list": list_json,
        "cache": { "entries": cache_entries, "bytes": cache_bytes },
        "report": {
            "enabled": reporting,
            "spool_bytes": spool,
            "oldest_event_age_seconds": oldest,
            "degraded": degraded.lines().collect::<Vec<_>>(),
        },
        "queries": metric("fanzha_queries_total"),
        "feed": feed_json,
        "alerts": alert_json,
    });
    let mut t = String::new();
    let _ = writeln!(
        t,
        "fanzha {}, up {}",
        env!("CARGO_PKG_VERSION"),
        ago(uptime)
    );
    let _ = writeln!(t, "config:    {config}");
    t.push_str(&list_text);
    let _ = writeln!(
        t,
        "cache:     {cache_entries} answers, {}",
        bytes(cache_bytes as f64)
    );
    if reporting {
        let _ = writeln!(
            t,
            "reporting: spool {}, oldest waiting event {}",
            bytes(spool),
            ago(oldest as u64)
        );
        for d in degraded.lines() {
            let _ = writeln!(t, "           degraded: {d}");
        }
    } else {
        let _ = writeln!(t, "reporting: off (no report.url)");
    }
    if let Some(l) = feed_line {
        let _ = writeln!(t, "{l}");
    }
    let _ = writeln!(t, "{alert_line}");
    let _ = write!(t, "queries:   {}", metric("fanzha_queries_total"));
    Reply::ok(t, data)
}

/// The alerts' line of `status` and its JSON.
fn alert_status(live: &Live, cfg: &crate::config::Config) -> (String, Value) {
    let places = cfg.places.alert_count();
    let m = &live.metrics.alert;
    let n = |r: &str| m.digests.with_label_values(&[r]).get();
    let failing = m.failing.get();
    let json = json!({
        "places": places,
        "made": n("made"),
        "sent": n("sent"),
        "failing_places": failing,
    });
    let line = if places == 0 {
        "alerts:    off (no [[places]] alert)".to_string()
    } else {
        let mut l = format!(
            "alerts:    {places} place(s) with a robot; digests made {}, sent {}",
            n("made"),
            n("sent")
        );
        if failing > 0 {
            let _ = write!(
                l,
                "; {failing} place(s) FAILING (the log names them and the robot's answer)"
            );
        }
        l
    };
    (line, json)
}

/// The serving list's lines of `status` and its JSON.
/// Skip reasons that mean a rule meant to apply does not: said loudly.
const LOUD_SKIPS: [&str; 3] = ["bad-expiry", "bad-header", "source-exception"];

fn list_status(live: &Live, now: u64) -> (String, Value) {
    let list = live.lists.load();
    let meta = list.meta();
    let loaded = live.lists.stats.last_ok_unix.load(Ordering::Relaxed);
    let skipped = live.lists.stats.skipped().last;
    let json = json!({
        "serial": live.lists.generation(),
        "built_at": meta.built_at,
        "age_seconds": now.saturating_sub(meta.built_unix),
        "loaded_unix": loaded,
        "entries": meta.entries,
        "block_entries": meta.block_entries,
        "allow_entries": meta.allow_entries,
        "interim": list.is_interim(),
        "path": list.path().map(|p| p.display().to_string()),
        "reloads_failed": live.lists.stats.failed.load(Ordering::Relaxed),
        "skipped_lines": skipped,
    });
    let mut t = String::new();
    let _ = writeln!(
        t,
        "list:      serial {}, built {} ({} ago), loaded {} ago{}",
        live.lists.generation(),
        meta.built_at,
        ago(now.saturating_sub(meta.built_unix)),
        ago(now.saturating_sub(loaded)),
        if list.is_interim() {
            " (interim index while the first compile runs)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        t,
        "           {} names: {} blocked, {} allowed",
        meta.entries, meta.block_entries, meta.allow_entries
    );
    if !skipped.is_empty() {
        let by: Vec<String> = skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(t, "           skipped lines: {}", by.join(", "));
        // Rules that were meant to block (an expiry, a header) and do not.
        for r in LOUD_SKIPS.iter().filter(|r| skipped.contains_key(**r)) {
            let _ = writeln!(
                t,
                "           WARNING: {} line(s) skipped as {r}: rules meant to apply do not; see the compile report (journalctl -u fanzha)",
                skipped[*r]
            );
        }
    }
    (t, json)
}

/// The feed's line of `status` and its JSON (`None` / null without a feed).
fn feed_status(live: &Live, cfg: &Config, now: u64) -> (Option<String>, Value) {
    let Some(f) = &cfg.feed else {
        return (None, Value::Null);
    };
    let m = &live.metrics.feed;
    let (serial, expires, expired) = (m.serial.get(), m.expires.get(), m.expired.get() == 1);
    let when = if expired {
        " (EXPIRED: still blocking with it)".to_string()
    } else if expires > 0 {
        format!(", expires in {}", ago((expires as u64).saturating_sub(now)))
    } else {
        " (no feed list yet)".to_string()
    };
    (
        Some(format!("feed:      {}, serial {serial}{when}", f.url)),
        json!({ "url": f.url, "serial": serial, "expires_unix": expires, "expired": expired }),
    )
}

/// The verdict of `list` for `raw`, as `fanzha lookup` prints it, whether it is a
/// block, and the same as JSON.
pub fn explain(
    list: &Blocklist,
    policy: &Policy,
    raw: &str,
) -> Result<(String, bool, Value), String> {
    if let Some(url) = blocklist::paths::Url::parse(raw) {
        let (line, blocked, v) = explain(list, policy, &url.host)?;
        if blocked || v["verdict"] == "allow" {
            return Ok((format!("{raw}: {line}"), blocked, v));
        }
        return Ok(explain_url(list, raw, &url));
    }
    let name = blocklist::name::normalize(raw)
        .map_err(|e| format!("{raw:?} is not a domain name ({e})"))?;
    let shown = if raw == name {
        name.clone()
    } else {
        format!("{raw} ({name})")
    };
    let v = list.lookup(&name);
    let list_name = list.list(&v).map(|l| l.name.clone());
    Ok(match v {
        Verdict::Pass => match list.paths().host(&name) {
            None => (
                format!("{shown}: allowed (no list entry covers it)"),
                false,
                json!({ "name": name, "verdict": "pass" }),
            ),
            Some(h) => (
                format!(
                    "{shown}: no host rule; {} path rule(s) for pages of it: DNS sends it to the URL proxy, which checks them (`lookup http://{name}/PATH` tells one page)",
                    h.rules.len()
                ),
                false,
                json!({ "name": name, "verdict": "path-host", "path_rules": h.rules.len() }),
            ),
        },
        Verdict::Allow(h) => (
            format!(
                "{shown}: allowed by rule \"{}\" in allowlist {}",
                h.rule(&name),
                list_name.as_deref().unwrap_or("?")
            ),
            false,
            json!({ "name": name, "verdict": "allow", "rule": h.rule(&name), "list": list_name }),
        ),
        Verdict::Block(h) => {
            let note = list.note(&h);
            let action = policy.action_for(list, &h, None).as_str();
            let expires = list.expires(h.value).map(|e| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(e),
                )
                .to_string()
            });
            (
                format!(
                    "{shown}: BLOCKED by rule \"{}\" in list {}, category {}, action {action}{}{}",
                    h.rule(&name),
                    list_name.as_deref().unwrap_or("?"),
                    list.category(&h),
                    expires
                        .as_deref()
                        .map(|e| format!(", until {e}"))
                        .unwrap_or_default(),
                    note.map(|n| format!(", note \"{n}\"")).unwrap_or_default()
                ),
                true,
                json!({
                    "name": name, "verdict": "block", "rule": h.rule(&name),
                    "list": list_name, "category": list.category(&h), "action": action,
                    "note": note, "expires": expires,
                }),
            )
        }
    })
}

/// [`explain`] for a URL whose host no host rule decides: its path rules.
fn explain_url(list: &Blocklist, raw: &str, url: &blocklist::paths::Url) -> (String, bool, Value) {
    use blocklist::paths::PathVerdict;
    let now = crate::wallclock::unix_now();
    match list.paths().check(&url.host, &url.target, url.tls, now) {
        PathVerdict::NotAPathHost => (
            format!("{raw}: allowed (no list entry covers its host or its path)"),
            false,
            json!({ "name": url.host, "url": raw, "verdict": "pass" }),
        ),
        PathVerdict::Relay => {
            let n = list.paths().host(&url.host).map_or(0, |h| h.rules.len());
            (
                format!(
                    "{raw}: allowed; its host has {n} path rule(s), none covers this page: the URL proxy relays it"
                ),
                false,
                json!({ "name": url.host, "url": raw, "verdict": "relay", "path_rules": n }),
            )
        }
        PathVerdict::Hit(r, h) => (
            format!(
                "{raw}: BLOCKED by path rule \"{}\" in list {} line {}, category {}, action {}{} (its host is not blocked: the URL proxy serves the warning page for this page only)",
                r.pattern(&h.host),
                r.list,
                r.line,
                r.category,
                r.action.as_str(),
                r.note
                    .as_deref()
                    .map(|n| format!(", note \"{n}\""))
                    .unwrap_or_default()
            ),
            r.action.blocks(),
            json!({
                "name": url.host, "url": raw, "verdict": "block-path",
                "rule": r.pattern(&h.host), "list": r.list, "line": r.line,
                "category": r.category, "action": r.action.as_str(), "note": r.note,
            }),
        ),
    }
}

fn lookup(live: &Live, names: &[String]) -> Reply {
    let list = live.lists.load();
    let policy = live.engine.policy();
    let mut lines = Vec::new();
    let mut all = Vec::new();
    let mut blocked = false;
    for raw in names {
        match explain(&list, &policy, raw) {
            Ok((line, b, v)) => {
                blocked |= b;
                lines.push(line);
                all.push(v);
            }
            Err(e) => return Reply::failed(e),
        }
    }
    Reply {
        exit: if blocked { EXIT_BLOCKED } else { EXIT_OK },
        text: lines.join("\n"),
        data: json!({ "serial": live.lists.generation(), "names": all }),
    }
}

async fn reload(live: &Live) -> Reply {
    let (tx, rx) = oneshot::channel();
    if live.reload.send(tx).await.is_err() {
        return Reply::failed("the daemon is stopping; nothing was reloaded");
    }
    rx.await
        .unwrap_or_else(|_| Reply::failed("the reload ended without an answer; see the log"))
}

fn flush(live: &Live, name: Option<&str>) -> Reply {
    let zone = match name {
        None => None,
        Some(raw) => {
            let ascii = match blocklist::name::normalize(raw) {
                Ok(n) => n,
                Err(e) => return Reply::failed(format!("{raw:?} is not a domain name ({e})")),
            };
            match hickory_proto::rr::Name::from_ascii(format!("{ascii}.")) {
                Ok(n) => Some(n),
                Err(e) => return Reply::failed(format!("{raw:?} is not a domain name ({e})")),
            }
        }
    };
    let (answers, records) = live.engine.flush_cache(zone.as_ref());
    let what = match &zone {
        None => "every name".to_string(),
        Some(z) => format!("{z} and the names below it"),
    };
    Reply::ok(
        format!(
            "flushed {answers} answers and {records} resolver records and zone cuts for {what}"
        ),
        json!({ "zone": zone.map(|z| z.to_string()), "answers": answers, "records": records }),
    )
}

fn stats(live: &Live) -> Reply {
    let samples = live.metrics.samples(&live.lists);
    let rows: Vec<(String, f64)> = samples
        .iter()
        .map(|s| {
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect::<Vec<_>>()
                .join(",");
            let key = if labels.is_empty() {
                s.name.clone()
            } else {
                format!("{}{{{labels}}}", s.name)
            };
            (key, s.value)
        })
        .collect();
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut t = String::new();
    for (k, v) in &rows {
        let pad = width - k.chars().count();
        let v = if v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        };
        let _ = writeln!(t, "{k}{}  {v:>12}", " ".repeat(pad));
    }
    t.pop();
    Reply::ok(t, json!(samples))
}

fn top_blocked(live: &Live, n: usize) -> Reply {
    let (top, total) = live.metrics.top_blocked.top(n);
    let list = live.lists.load();
    let mut rows = Vec::new();
    let mut t = format!("{total} blocks since start; the rules that blocked most:\n");
    if top.is_empty() {
        t.push_str("  (none yet)");
    }
    for (i, r) in top.iter().enumerate() {
        // What the rule is now (the list may have changed since it blocked).
        let (category, list_name) = match list.lookup(&r.rule) {
            v @ Verdict::Block(h) => (
                Some(list.category(&h).to_string()),
                list.list(&v).map(|l| l.name.clone()),
            ),
            _ => (None, None),
        };
        let count = if r.overcount > 0 {
            format!("≤{}", r.count)
        } else {
            r.count.to_string()
        };
        let _ = writeln!(
            t,
            "{:>4}. {count:>10}  {}  ({})",
            i + 1,
            r.rule,
            match (&category, &list_name) {
                (Some(c), Some(l)) => format!("{c}, {l}"),
                (Some(c), None) => c.clone(),
                _ => "no longer blocked".into(),
            }
        );
        rows.push(json!({
            "rule": r.rule, "count": r.count, "overcount": r.overcount,
            "category": category, "list": list_name,
        }));
    }
    if top.iter().any(|r| r.overcount > 0) {
        let _ = writeln!(
            t,
            "(≤: counted in bounded memory; up to {} of it may belong to rules it replaced)",
            top.iter().map(|r| r.overcount).max().unwrap_or(0)
        );
    }
    while t.ends_with('\n') {
        t.pop();
    }
    Reply::ok(t, json!({ "total": total, "rules": rows }))
}

/// Names of a popularity list: one per line, or the first field of a CSV (a
/// header line such as `hostname,rank` is skipped as it is not a name).
fn popular_names(text: &str) -> std::collections::HashSet<String> {
    text.lines()
        .filter_map(|l| l.split([',', ' ', '\t']).next())
        .filter_map(|n| crate::blocklist::name::normalize(n.trim()).ok())
        .filter(|n| n.contains('.'))
        .collect()
}

/// For each rule, the popular names it covers (itself or below it), a few at most.
fn covered<'a>(
    rules: &[String],
    popular: &'a std::collections::HashSet<String>,
) -> std::collections::HashMap<String, Vec<&'a str>> {
    let wanted: std::collections::HashSet<&str> = rules.iter().map(String::as_str).collect();
    let mut out: std::collections::HashMap<String, Vec<&str>> = Default::default();
    for p in popular {
        let mut suffix = p.as_str();
        loop {
            if wanted.contains(suffix) {
                let v = out.entry(suffix.to_string()).or_default();
                if v.len() < 3 {
                    v.push(p);
                }
            }
            match suffix.split_once('.') {
                Some((_, rest)) => suffix = rest,
                None => break,
            }
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

/// The shadow rules by hits since start, each flagged when it covers a name of the
/// popularity list at `popular` (read by the daemon).
fn shadow_report(live: &Live, n: usize, popular: Option<&Path>) -> Reply {
    let popular = match popular.map(|p| (p, std::fs::read_to_string(p))) {
        None => None,
        Some((_, Ok(text))) => Some(popular_names(&text)),
        Some((p, Err(e))) => {
            return Reply::failed(format!(
                "shadow-report: the daemon cannot read {} ({e}); it runs as its own user: put the list where it can read it, such as /etc/fanzha",
                p.display()
            ));
        }
    };
    let (top, total) = live.metrics.top_shadow.top(n);
    let rules: Vec<String> = top.iter().map(|r| r.rule.clone()).collect();
    let flags = popular
        .as_ref()
        .map(|p| covered(&rules, p))
        .unwrap_or_default();
    let list = live.lists.load();
    let mut t = format!(
        "{total} shadow matches since start (resolved as usual); the rules that matched most:\n"
    );
    if top.is_empty() {
        t.push_str("  (none yet)");
    }
    let mut rows = Vec::new();
    for (i, r) in top.iter().enumerate() {
        let v = list.lookup(&r.rule);
        let (category, list_name) = match v {
            Verdict::Block(h) => (
                Some(list.category(&h).to_string()),
                list.list(&v).map(|l| l.name.clone()),
            ),
            _ => (None, None),
        };
        let hits = flags.get(&r.rule).cloned().unwrap_or_default();
        let _ = writeln!(
            t,
            "{:>4}. {:>10}  {}  ({}){}",
            i + 1,
            r.count,
            r.rule,
            [category.clone(), list_name.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            if hits.is_empty() {
                String::new()
            } else {
                format!("  POPULAR: {}", hits.join(", "))
            }
        );
        rows.push(json!({
            "rule": r.rule, "count": r.count, "overcount": r.overcount,
            "category": category, "list": list_name,
            "popular": !hits.is_empty(), "popular_names": hits,
        }));
    }
    if popular.is_none() && !top.is_empty() {
        let _ = writeln!(
            t,
            "(give a popularity list, such as the CrUX top sites, to flag the rules that would block popular names)"
        );
    }
    while t.ends_with('\n') {
        t.pop();
    }
    Reply::ok(t, json!({ "total": total, "rules": rows }))
}

fn dump_config(live: &Live) -> Reply {
    let cfg = live.config.load();
    let raw = cfg.effective();
    let head = match &cfg.source {
        Some(p) => format!(
            "# fanzha's config in force, read from {}, every default filled in.\n\
             # Relative paths are relative to that file's directory.\n",
            p.display()
        ),
        None => "# fanzha's config in force: the embedded defaults.\n\
                 # Relative paths are relative to the daemon's working directory.\n"
            .to_string(),
    };
    // What serves: keys waiting for a restart at their serving values, and listed.
    let view = crate::config::diff::serving_view(&raw, &cfg.pending);
    let mut tail = String::new();
    if !cfg.pending.is_empty() {
        tail.push_str(
            "\n\n# PENDING: changed in the file, applied only after a restart (the values\n# above are the ones serving):\n",
        );
        for c in &cfg.pending {
            tail.push_str(&format!("#   {}\n", c.describe()));
        }
    }
    match (toml::to_string_pretty(&view), serde_json::to_value(&view)) {
        (Ok(text), Ok(data)) => Reply::ok(
            format!("{head}\n{}{}", text.trim_end(), tail.trim_end_matches('\n')),
            data,
        ),
        (Err(e), _) => Reply::failed(format!("cannot write the config as TOML: {e}")),
        (_, Err(e)) => Reply::failed(format!("cannot write the config as JSON: {e}")),
    }
}
