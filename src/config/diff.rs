//! What a reload changes: the keys whose value differs between the config serving
//! and the one just read, and which of them SIGHUP applies. The rest wait for a
//! restart, and fanzha says so (the ctl reply, the log,
//! `fanzha_config_restart_pending`, `dump-config`), so that an operator who changed
//! one line at 2 a.m. knows from fanzha's own answer whether it took effect.

use std::collections::BTreeMap;

use super::RawConfig;

/// Keys (and sections) applied by a reload; any key under them too. The rest need a
/// restart: listen addresses, threads, the resolver and its caches, the control
/// socket, the warning page's sockets, and whether reporting is on (with the
/// appliance's name and its spool); see [`APPLIED_WHILE_REPORTING`] for the report
/// keys a reload does apply.
pub const APPLIED_ON_RELOAD: &[&str] = &[
    "server.acl",
    "server.allow_snoop",
    "server.doh_canary",
    "server.max_inflight",
    "server.max_inflight_per_client",
    "server.proxy_from",
    "server.rate_limit",
    "server.rate_limit_burst",
    "server.rate_limit_action",
    "server.rate_limit_exempt",
    "server.rate_limit_prefix_v4",
    "server.rate_limit_prefix_v6",
    "server.dns_name",
    "server.place_rate_limit",
    "resolver.local_zones",
    "resolver.nodefault",
    "forward_zones",
    "sources",
    "feed",
    "sinkhole",
    "categories",
    "places",
    "policies",
    "ops.place_label",
    "local_records",
    "warnpage.templates",
    "warnpage.profile_cert",
    "warnpage.profile_key",
    "url.ipv4",
    "url.ipv6",
    "url.unmanaged",
    "blocklist",
    "lists",
    "dnstap",
    "alerts",
];

/// The `[report]` keys a reload applies while reporting runs: where and how the
/// batches are sent. Turning reporting on or off, or the appliance's name (carried
/// in every event), takes a restart.
pub const APPLIED_WHILE_REPORTING: [&str; 4] = [
    "report.url",
    "report.secret",
    "report.secret_file",
    "report.tls_ca",
];

/// Whether a reload applies `key`.
pub fn applies_on_reload(key: &str) -> bool {
    APPLIED_ON_RELOAD
        .iter()
        .any(|p| key == *p || (key.starts_with(p) && key.as_bytes().get(p.len()) == Some(&b'.')))
}

/// One key whose value differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Dotted key (`server.listen`, `forward_zones`, `categories.loan.action`).
    pub key: String,
    /// The value serving (`None`: not set).
    pub serving: Option<toml::Value>,
    /// The value in the file (`None`: not set).
    pub configured: Option<toml::Value>,
}

impl Change {
    /// `key = configured (serving: …)`, values as TOML.
    pub fn describe(&self) -> String {
        format!(
            "{} = {} (serving: {})",
            self.key,
            inline(&self.configured),
            inline(&self.serving)
        )
    }
}

fn inline(v: &Option<toml::Value>) -> String {
    match v {
        Some(v) => crate::text::clip(&v.to_string(), 200).to_string(),
        None => "(not set)".into(),
    }
}

/// Leaf values by dotted key: tables are walked, anything else (arrays of tables
/// too: `[[forward_zones]]`) is one value.
fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn leaves(c: &RawConfig) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    if let Ok(v) = toml::Value::try_from(c) {
        flatten("", &v, &mut out);
    }
    out
}

/// The keys whose value differs from `serving` to `configured`.
pub fn changes(serving: &RawConfig, configured: &RawConfig) -> Vec<Change> {
    let (a, b) = (leaves(serving), leaves(configured));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Change {
            key: k.clone(),
            serving: a.get(k).cloned(),
            configured: b.get(k).cloned(),
        })
        .collect()
}

/// `c` with secrets hidden, for the log, the ctl reply and `dump-config`.
pub fn redacted(mut c: Change) -> Change {
    fn hide(key: &str, v: &mut Option<toml::Value>) {
        match v {
            Some(toml::Value::String(s)) if key.ends_with("secret") && !s.is_empty() => {
                *s = "(hidden)".into();
            }
            Some(toml::Value::String(s)) if s.contains("://") => *s = crate::text::redact_url(s),
            _ => {}
        }
    }
    hide(&c.key, &mut c.serving);
    hide(&c.key, &mut c.configured);
    c
}

/// `configured` as it serves: each pending key at its serving value.
pub fn serving_view(configured: &RawConfig, pending: &[Change]) -> toml::Value {
    let mut v = toml::Value::try_from(configured).unwrap_or(toml::Value::Table(Default::default()));
    for c in pending {
        let mut at = &mut v;
        let parts: Vec<&str> = c.key.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            let toml::Value::Table(t) = at else { break };
            if i + 1 == parts.len() {
                match &c.serving {
                    Some(v) => t.insert(p.to_string(), v.clone()),
                    None => t.remove(*p),
                };
                break;
            }
            at = t
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawConfig {
        RawConfig::from_toml(text, "t.toml").unwrap()
    }

    #[test]
    fn changed_keys_are_found_and_sorted_into_reload_and_restart() {
        let old = raw("[server]\nlisten = [\"127.0.0.1:5353\"]\n[sinkhole]\nipv4 = \"10.0.0.1\"\n");
        let new = raw(
            "[server]\nlisten = [\"127.0.0.1:5354\"]\nrate_limit = 50\n[sinkhole]\nipv4 = \"10.0.0.2\"\n\
             [[forward_zones]]\nname = \"corp.example\"\nupstreams = [\"10.1.1.1\"]\n",
        );
        let c = changes(&old, &new);
        let keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "forward_zones",
                "server.listen",
                "server.rate_limit",
                "sinkhole.ipv4"
            ]
        );
        let restart: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !applies_on_reload(k))
            .collect();
        assert_eq!(restart, vec!["server.listen"]);
        assert!(
            c[1].describe().contains("serving: [\"127.0.0.1:5353\"]"),
            "{}",
            c[1].describe()
        );
        // The view of what serves keeps the pending keys' serving values.
        let pending: Vec<Change> = c
            .into_iter()
            .filter(|c| !applies_on_reload(&c.key))
            .collect();
        let v = serving_view(&new, &pending);
        assert_eq!(v["server"]["listen"][0].as_str(), Some("127.0.0.1:5353"));
        assert_eq!(v["sinkhole"]["ipv4"].as_str(), Some("10.0.0.2"));
        assert_eq!(v["forward_zones"].as_array().map(Vec::len), Some(1), "{v}");
        // A prefix is a whole key: server.rate_limitx is not server.rate_limit.
        assert!(applies_on_reload("categories.loan.action"));
        assert!(!applies_on_reload("server.listen"));
        assert!(!applies_on_reload("sinkholes"));
    }
}
