//! Configuration: `RawConfig` (serde, defaults, `deny_unknown_fields`) → `Config`
//! (validated, typed). Every refusal names the key, the value and the fix.
//!
//! Relative paths in a config file are taken relative to the directory of that file;
//! with the embedded defaults (no `--config`), relative to the working directory.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::blocklist::{Action, MatchMode};

#[cfg(test)]
mod tests;

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message (names the key and shows the line).
        message: String,
    },
    /// A value that parses but cannot be used.
    #[error("config key `{key}` = {value:?}: {fix}")]
    Invalid {
        /// Dotted key, with index for arrays (`server.listen[0]`).
        key: String,
        /// The offending value.
        value: String,
        /// What to write instead.
        fix: String,
    },
}

fn invalid(
    key: impl Into<String>,
    value: impl Into<String>,
    fix: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        fix: fix.into(),
    }
}

/// The file as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[server]`
    pub server: RawServer,
    /// `[resolver]`
    pub resolver: RawResolver,
    /// `[blocklist]`
    pub blocklist: RawBlocklist,
    /// `[[lists]]`
    pub lists: Vec<RawList>,
    /// `[categories.NAME]`
    pub categories: BTreeMap<String, RawCategory>,
    /// `[sinkhole]`
    pub sinkhole: RawSinkhole,
    /// `[warnpage]`
    pub warnpage: RawWarnpage,
    /// `[ops]`
    pub ops: RawOps,
    /// `[report]`
    pub report: RawReport,
    /// `[[places]]`
    pub places: Vec<RawPlace>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// DNS listen addresses (UDP and TCP on each).
    pub listen: Vec<String>,
    /// Client CIDRs admitted.
    pub acl: Vec<String>,
    /// Working files (the active compiled list).
    pub state_dir: String,
    /// Queries per second per client; 0 = no limit.
    pub rate_limit: u32,
    /// Burst size per client (default: twice the rate).
    pub rate_limit_burst: u32,
    /// `refused` or `drop` past the limit.
    pub rate_limit_action: String,
    /// Answer NXDOMAIN for `use-application-dns.net`.
    pub doh_canary: bool,
    /// Close idle TCP connections after this many seconds.
    pub tcp_idle_timeout: u64,
    /// DNS worker threads; 0 = one per CPU core.
    pub threads: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: vec!["127.0.0.1:5353".into()],
            acl: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ]
            .map(String::from)
            .to_vec(),
            state_dir: "state".into(),
            rate_limit: 0,
            rate_limit_burst: 0,
            rate_limit_action: "refused".into(),
            doh_canary: true,
            tcp_idle_timeout: 10,
            threads: 0,
        }
    }
}

/// `[resolver]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawResolver {
    /// `recursive` or `forward`.
    pub mode: String,
    /// Root server addresses (`IP` or `IP:PORT`); empty = built-in.
    pub root_hints: Vec<String>,
    /// Forward-mode upstreams.
    pub upstreams: Vec<String>,
    /// Name server CIDRs exempt from the private-address deny list.
    pub allow_nameservers: Vec<String>,
    /// DNSSEC validation.
    pub dnssec: bool,
    /// Per-exchange timeout in milliseconds (then the next server is tried).
    pub timeout_ms: u64,
    /// Answer cache entries.
    pub cache_size: u64,
    /// Name servers reached on another port than 53 (labs and tests).
    pub nameserver_ports: Vec<RawPortMap>,
    /// File of DNSKEY records to trust for the root; "" = the built-in IANA root keys.
    pub trust_anchor: String,
    /// PEM file of extra CA certificates for tls:// upstreams; "" = the built-in web roots.
    pub tls_ca: String,
}

/// `[[resolver.nameserver_ports]]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPortMap {
    /// Name server addresses.
    pub cidr: String,
    /// Port to use for them.
    pub port: u16,
}

impl Default for RawResolver {
    fn default() -> Self {
        RawResolver {
            mode: "recursive".into(),
            root_hints: vec![],
            upstreams: vec![],
            allow_nameservers: vec![],
            dnssec: false,
            timeout_ms: 400,
            cache_size: 100_000,
            nameserver_ports: vec![],
            trust_anchor: String::new(),
            tls_ca: String::new(),
        }
    }
}

/// `[blocklist]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBlocklist {
    /// Source list directories (watched).
    pub dirs: Vec<String>,
    /// Allowlist directories (watched).
    pub allow_dirs: Vec<String>,
    /// A precompiled list to load and watch instead of `dirs`.
    pub compiled: String,
    /// A file of names no list may block.
    pub never_block: String,
    /// Refuse a reload that drops more than this share of entries.
    pub max_drop: f64,
    /// Quiet time before a change is compiled, in milliseconds.
    pub debounce_ms: u64,
    /// Category of lists that name none.
    pub default_category: String,
}

impl Default for RawBlocklist {
    fn default() -> Self {
        RawBlocklist {
            dirs: vec!["blocklists".into()],
            allow_dirs: vec!["allowlists".into()],
            compiled: String::new(),
            never_block: String::new(),
            max_drop: 0.5,
            debounce_ms: 200,
            default_category: "fraud".into(),
        }
    }
}

/// `[[lists]]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawList {
    /// The list file.
    pub path: String,
    /// Its category.
    #[serde(default)]
    pub category: Option<String>,
    /// `sinkhole`, `nxdomain`, `refused`.
    #[serde(default)]
    pub action: Option<String>,
    /// `subtree` or `exact`.
    #[serde(default, rename = "match")]
    pub match_mode: Option<String>,
}

/// `[categories.NAME]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCategory {
    /// Overrides the action of every list of this category.
    #[serde(default)]
    pub action: Option<String>,
}

/// `[sinkhole]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSinkhole {
    /// A answer for blocked names.
    pub ipv4: String,
    /// AAAA answer; "" = NODATA.
    pub ipv6: String,
    /// TTL of blocked answers, seconds.
    pub ttl: u32,
}

impl Default for RawSinkhole {
    fn default() -> Self {
        RawSinkhole {
            ipv4: "127.0.0.1".into(),
            ipv6: "::1".into(),
            ttl: 60,
        }
    }
}

/// `[warnpage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWarnpage {
    /// HTTP listen addresses.
    pub listen: Vec<String>,
    /// Directory of replacement templates; "" = built-in.
    pub templates: String,
    /// HTTPS listen addresses (default with a certificate: port 443 on the HTTP addresses).
    pub https_listen: Vec<String>,
    /// PEM certificate chain for HTTPS.
    pub tls_cert: String,
    /// PEM private key for HTTPS.
    pub tls_key: String,
}

impl Default for RawWarnpage {
    fn default() -> Self {
        RawWarnpage {
            listen: vec!["127.0.0.1:8080".into()],
            templates: String::new(),
            https_listen: vec![],
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

/// `[ops]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOps {
    /// `/metrics /healthz /readyz` listen address.
    pub listen: String,
}

impl Default for RawOps {
    fn default() -> Self {
        RawOps {
            listen: "127.0.0.1:9153".into(),
        }
    }
}

/// `[report]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReport {
    /// Platform URL; empty = off.
    pub url: String,
    /// HMAC key.
    pub secret: String,
    /// Appliance id.
    pub appliance: String,
    /// Spool directory.
    pub spool_dir: String,
    /// "keep", "truncate" (/24, /56) or "hash" (keyed).
    pub client_ip: String,
    /// Same client and rule within this many seconds → one event with a count; 0 = off.
    pub dedup_window: u64,
    /// Events per POST.
    pub batch_events: usize,
    /// Uncompressed bytes per POST.
    pub batch_bytes: usize,
    /// Spool cap in bytes.
    pub spool_max_bytes: u64,
    /// fsync every spool batch.
    pub fsync: bool,
    /// Longest wait between retries, seconds.
    pub max_backoff: u64,
    /// PEM CA file for an https:// platform with a private CA.
    pub ca: String,
    /// Place of clients in no `[[places]]` subnet.
    pub default_district: String,
    /// Place of clients in no `[[places]]` subnet.
    pub default_street: String,
    /// Place of clients in no `[[places]]` subnet.
    pub default_community: String,
}

impl Default for RawReport {
    fn default() -> Self {
        RawReport {
            url: String::new(),
            secret: String::new(),
            appliance: "fanzha-dev".into(),
            spool_dir: "spool".into(),
            client_ip: "keep".into(),
            dedup_window: 60,
            batch_events: 500,
            batch_bytes: 1 << 20,
            spool_max_bytes: 256 << 20,
            fsync: true,
            max_backoff: 60,
            ca: String::new(),
            default_district: String::new(),
            default_street: String::new(),
            default_community: String::new(),
        }
    }
}

/// `[[places]]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPlace {
    /// Client subnet.
    pub cidr: String,
    /// 区
    pub district: String,
    /// 街道
    #[serde(default)]
    pub street: String,
    /// 社区
    #[serde(default)]
    pub community: String,
}

/// Resolver mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolverMode {
    /// Iterate from the roots.
    Recursive,
    /// Send to upstreams.
    Forward,
}

/// `[[lists]]`, validated.
#[derive(Debug, Clone)]
pub struct ListConfig {
    /// The file.
    pub path: PathBuf,
    /// Category.
    pub category: Option<String>,
    /// Action.
    pub action: Option<Action>,
    /// Match mode.
    pub match_mode: Option<MatchMode>,
}

/// `[blocklist]` and `[[lists]]`, validated.
#[derive(Debug, Clone)]
pub struct BlocklistConfig {
    /// Source dirs.
    pub dirs: Vec<PathBuf>,
    /// Allow dirs.
    pub allow_dirs: Vec<PathBuf>,
    /// Precompiled list.
    pub compiled: Option<PathBuf>,
    /// Never-block file.
    pub never_block: Option<PathBuf>,
    /// Drop guard share.
    pub max_drop: f64,
    /// Debounce.
    pub debounce: std::time::Duration,
    /// Default category.
    pub default_category: String,
    /// Per-file settings.
    pub lists: Vec<ListConfig>,
    /// Working directory for compiled snapshots.
    pub state_dir: PathBuf,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from (`None`: embedded defaults).
    pub source: Option<PathBuf>,
    /// DNS listeners.
    pub listen: Vec<SocketAddr>,
    /// Admitted clients.
    pub acl: Vec<IpNet>,
    /// Resolver mode.
    pub mode: ResolverMode,
    /// Root hints (port 53 unless given).
    pub root_hints: Vec<SocketAddr>,
    /// Forward upstreams as written (validated).
    pub upstreams: Vec<String>,
    /// Name servers allowed despite the private-address deny list.
    pub allow_nameservers: Vec<IpNet>,
    /// DNSSEC validation.
    pub dnssec: bool,
    /// Per-exchange timeout.
    pub resolver_timeout: std::time::Duration,
    /// DNSSEC trust anchor file (`None`: built-in root keys).
    pub trust_anchor: Option<PathBuf>,
    /// Extra CA certificates for DoT upstreams.
    pub tls_ca: Option<PathBuf>,
    /// Answer cache entries.
    pub cache_size: u64,
    /// Name server port overrides.
    pub nameserver_ports: Vec<(IpNet, u16)>,
    /// Per-client rate (0 = off).
    pub rate_limit: u32,
    /// Per-client burst.
    pub rate_limit_burst: u32,
    /// Drop (true) or refuse (false) past the limit.
    pub rate_limit_drop: bool,
    /// DoH canary.
    pub doh_canary: bool,
    /// TCP idle timeout.
    pub tcp_idle_timeout: std::time::Duration,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Blocklist settings.
    pub blocklist: BlocklistConfig,
    /// Per-category action overrides.
    pub category_actions: BTreeMap<String, Action>,
    /// Sinkhole v4.
    pub sinkhole_v4: Ipv4Addr,
    /// Sinkhole v6 (`None`: AAAA gets NODATA).
    pub sinkhole_v6: Option<Ipv6Addr>,
    /// TTL of blocked answers.
    pub block_ttl: u32,
    /// Warning page listeners.
    pub warnpage_listen: Vec<SocketAddr>,
    /// Replacement templates.
    pub warnpage_templates: Option<PathBuf>,
    /// HTTPS listeners (empty without a certificate).
    pub warnpage_https: Vec<SocketAddr>,
    /// Certificate and key for HTTPS.
    pub warnpage_tls: Option<(PathBuf, PathBuf)>,
    /// Ops endpoint.
    pub ops_listen: SocketAddr,
    /// The raw report section (validated).
    pub report: RawReport,
    /// Places.
    pub places: Vec<(IpNet, RawPlace)>,
}

fn parse_socket(key: &str, v: &str, default_port: Option<u16>) -> Result<SocketAddr, ConfigError> {
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let (Some(p), Ok(ip)) = (default_port, v.parse::<IpAddr>()) {
        return Ok(SocketAddr::new(ip, p));
    }
    Err(invalid(
        key,
        v,
        "write an address with a port, e.g. \"127.0.0.1:5353\" or \"[::1]:5353\"",
    ))
}

fn parse_net(key: &str, v: &str) -> Result<IpNet, ConfigError> {
    if let Ok(n) = v.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(invalid(
        key,
        v,
        "write a CIDR such as \"10.0.0.0/8\" or \"fd00::/8\", or a single address",
    ))
}

fn parse_action(key: &str, v: &str) -> Result<Action, ConfigError> {
    Action::parse(v).ok_or_else(|| invalid(key, v, "use \"sinkhole\", \"nxdomain\" or \"refused\""))
}

impl RawConfig {
    /// Parse TOML text (`origin` names it in messages).
    pub fn from_toml(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// Validate, resolving relative paths against `base`.
    pub fn validate(self, base: &Path, source: Option<PathBuf>) -> Result<Config, ConfigError> {
        let path = |p: &str| -> PathBuf {
            let pb = PathBuf::from(p);
            if pb.is_absolute() { pb } else { base.join(pb) }
        };
        let s = &self.server;
        if s.listen.is_empty() {
            return Err(invalid(
                "server.listen",
                "[]",
                "give at least one address, e.g. [\"127.0.0.1:5353\"]",
            ));
        }
        let listen = s
            .listen
            .iter()
            .enumerate()
            .map(|(i, v)| parse_socket(&format!("server.listen[{i}]"), v, None))
            .collect::<Result<Vec<_>, _>>()?;
        let acl = s
            .acl
            .iter()
            .enumerate()
            .map(|(i, v)| parse_net(&format!("server.acl[{i}]"), v))
            .collect::<Result<Vec<_>, _>>()?;
        if s.state_dir.is_empty() {
            return Err(invalid(
                "server.state_dir",
                "",
                "give a writable directory, e.g. \"/var/lib/fanzha\"",
            ));
        }
        let r = &self.resolver;
        let mode = match r.mode.as_str() {
            "recursive" => ResolverMode::Recursive,
            "forward" => ResolverMode::Forward,
            other => {
                return Err(invalid(
                    "resolver.mode",
                    other,
                    "use \"recursive\" or \"forward\"",
                ));
            }
        };
        let root_hints = r
            .root_hints
            .iter()
            .enumerate()
            .map(|(i, v)| parse_socket(&format!("resolver.root_hints[{i}]"), v, Some(53)))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, u) in r.upstreams.iter().enumerate() {
            validate_upstream(&format!("resolver.upstreams[{i}]"), u)?;
        }
        if mode == ResolverMode::Forward && r.upstreams.is_empty() {
            return Err(invalid(
                "resolver.upstreams",
                "[]",
                "forward mode needs at least one upstream, e.g. [\"udp://192.0.2.53:53\"], or set resolver.mode = \"recursive\"",
            ));
        }
        if !(50..=10_000).contains(&r.timeout_ms) {
            return Err(invalid(
                "resolver.timeout_ms",
                r.timeout_ms.to_string(),
                "use 50 to 10000 milliseconds; 400 is the default",
            ));
        }
        if r.dnssec && mode == ResolverMode::Forward {
            return Err(invalid(
                "resolver.dnssec",
                "true",
                "DNSSEC validation works in recursive mode only; set resolver.mode = \"recursive\" or dnssec = false",
            ));
        }
        let mut nameserver_ports = Vec::new();
        for (i, m) in r.nameserver_ports.iter().enumerate() {
            let net = parse_net(&format!("resolver.nameserver_ports[{i}].cidr"), &m.cidr)?;
            if m.port == 0 {
                return Err(invalid(
                    format!("resolver.nameserver_ports[{i}].port"),
                    "0",
                    "give the port those name servers listen on",
                ));
            }
            nameserver_ports.push((net, m.port));
        }
        let rate_limit_drop = match s.rate_limit_action.as_str() {
            "refused" => false,
            "drop" => true,
            other => {
                return Err(invalid(
                    "server.rate_limit_action",
                    other,
                    "use \"refused\" or \"drop\"",
                ));
            }
        };
        if s.threads > 256 {
            return Err(invalid(
                "server.threads",
                s.threads.to_string(),
                "use 0 (one per core) or a thread count up to 256",
            ));
        }
        if s.tcp_idle_timeout == 0 || s.tcp_idle_timeout > 600 {
            return Err(invalid(
                "server.tcp_idle_timeout",
                s.tcp_idle_timeout.to_string(),
                "use 1 to 600 seconds; 10 is the default",
            ));
        }
        let allow_nameservers = r
            .allow_nameservers
            .iter()
            .enumerate()
            .map(|(i, v)| parse_net(&format!("resolver.allow_nameservers[{i}]"), v))
            .collect::<Result<Vec<_>, _>>()?;

        let b = &self.blocklist;
        if !(0.0..=1.0).contains(&b.max_drop) {
            return Err(invalid(
                "blocklist.max_drop",
                b.max_drop.to_string(),
                "give a share between 0.0 and 1.0 (0.5 = refuse a reload that loses half the entries)",
            ));
        }
        if b.dirs.is_empty() && b.compiled.is_empty() {
            return Err(invalid(
                "blocklist.dirs",
                "[]",
                "give a list directory, or a precompiled list in blocklist.compiled",
            ));
        }
        if b.debounce_ms > 60_000 {
            return Err(invalid(
                "blocklist.debounce_ms",
                b.debounce_ms.to_string(),
                "use at most 60000 (one minute); 200 is the default",
            ));
        }
        let mut lists = Vec::new();
        for (i, l) in self.lists.iter().enumerate() {
            if l.path.is_empty() {
                return Err(invalid(
                    format!("lists[{i}].path"),
                    "",
                    "name the list file",
                ));
            }
            let action = l
                .action
                .as_deref()
                .map(|a| parse_action(&format!("lists[{i}].action"), a))
                .transpose()?;
            let match_mode = match l.match_mode.as_deref() {
                None => None,
                Some("exact") => Some(MatchMode::Exact),
                Some("subtree") => Some(MatchMode::Subtree),
                Some(other) => {
                    return Err(invalid(
                        format!("lists[{i}].match"),
                        other,
                        "use \"subtree\" or \"exact\"",
                    ));
                }
            };
            lists.push(ListConfig {
                path: path(&l.path),
                category: l.category.clone().map(|c| c.to_ascii_lowercase()),
                action,
                match_mode,
            });
        }
        let mut category_actions = BTreeMap::new();
        for (name, c) in &self.categories {
            if let Some(a) = &c.action {
                category_actions.insert(
                    name.to_ascii_lowercase(),
                    parse_action(&format!("categories.{name}.action"), a)?,
                );
            }
        }
        let blocklist = BlocklistConfig {
            dirs: b.dirs.iter().map(|d| path(d)).collect(),
            allow_dirs: b.allow_dirs.iter().map(|d| path(d)).collect(),
            compiled: (!b.compiled.is_empty()).then(|| path(&b.compiled)),
            never_block: (!b.never_block.is_empty()).then(|| path(&b.never_block)),
            max_drop: b.max_drop,
            debounce: std::time::Duration::from_millis(b.debounce_ms),
            default_category: b.default_category.to_ascii_lowercase(),
            lists,
            state_dir: path(&s.state_dir),
        };

        let sk = &self.sinkhole;
        let sinkhole_v4 = sk.ipv4.parse::<Ipv4Addr>().map_err(|_| {
            invalid(
                "sinkhole.ipv4",
                &sk.ipv4,
                "give the IPv4 address of the warning page, e.g. \"127.0.0.1\"",
            )
        })?;
        let sinkhole_v6 = if sk.ipv6.is_empty() {
            None
        } else {
            Some(sk.ipv6.parse::<Ipv6Addr>().map_err(|_| {
                invalid(
                    "sinkhole.ipv6",
                    &sk.ipv6,
                    "give an IPv6 address, e.g. \"::1\", or \"\" to answer AAAA with no data",
                )
            })?)
        };
        if sk.ttl > 86_400 {
            return Err(invalid(
                "sinkhole.ttl",
                sk.ttl.to_string(),
                "use at most 86400 seconds; 60 is the default",
            ));
        }
        let warnpage_listen = self
            .warnpage
            .listen
            .iter()
            .enumerate()
            .map(|(i, v)| parse_socket(&format!("warnpage.listen[{i}]"), v, None))
            .collect::<Result<Vec<_>, _>>()?;
        let w = &self.warnpage;
        let warnpage_tls = match (w.tls_cert.is_empty(), w.tls_key.is_empty()) {
            (true, true) => None,
            (false, false) => Some((path(&w.tls_cert), path(&w.tls_key))),
            (false, true) => {
                return Err(invalid(
                    "warnpage.tls_key",
                    "",
                    "give the private key of warnpage.tls_cert (PEM), or remove tls_cert",
                ));
            }
            (true, false) => {
                return Err(invalid(
                    "warnpage.tls_cert",
                    "",
                    "give the certificate chain (PEM) for warnpage.tls_key, or remove tls_key",
                ));
            }
        };
        let mut warnpage_https = w
            .https_listen
            .iter()
            .enumerate()
            .map(|(i, v)| parse_socket(&format!("warnpage.https_listen[{i}]"), v, Some(443)))
            .collect::<Result<Vec<_>, _>>()?;
        if warnpage_tls.is_none() {
            if !warnpage_https.is_empty() {
                return Err(invalid(
                    "warnpage.https_listen",
                    format!("{:?}", w.https_listen),
                    "HTTPS needs warnpage.tls_cert and warnpage.tls_key; without them leave https_listen empty",
                ));
            }
        } else if warnpage_https.is_empty() {
            warnpage_https = warnpage_listen
                .iter()
                .map(|a| SocketAddr::new(a.ip(), 443))
                .collect();
        }
        let warnpage_templates = (!w.templates.is_empty()).then(|| path(&w.templates));
        let ops_listen = parse_socket("ops.listen", &self.ops.listen, None)?;
        let rp = &self.report;
        if !rp.url.is_empty() {
            if !(rp.url.starts_with("http://") || rp.url.starts_with("https://")) {
                return Err(invalid(
                    "report.url",
                    &rp.url,
                    "use an http:// or https:// URL, or \"\" to turn reporting off",
                ));
            }
            if rp.secret.len() < 16 {
                return Err(invalid(
                    "report.secret",
                    "<hidden>",
                    "give a shared secret of at least 16 characters",
                ));
            }
        }
        if rp.appliance.is_empty() || rp.appliance.len() > 64 {
            return Err(invalid(
                "report.appliance",
                &rp.appliance,
                "give a short id for this appliance, e.g. \"binjiang-01\"",
            ));
        }
        if crate::report::event::ClientIp::parse(&rp.client_ip).is_none() {
            return Err(invalid(
                "report.client_ip",
                &rp.client_ip,
                "use \"keep\", \"truncate\" (/24 and /56) or \"hash\" (keyed with report.secret)",
            ));
        }
        if rp.client_ip == "hash" && rp.secret.len() < 16 {
            return Err(invalid(
                "report.secret",
                "<hidden>",
                "hashing client addresses needs a secret of at least 16 characters",
            ));
        }
        if rp.batch_events == 0 || rp.batch_events > 100_000 {
            return Err(invalid(
                "report.batch_events",
                rp.batch_events.to_string(),
                "use 1 to 100000; 500 is the default",
            ));
        }
        if rp.spool_max_bytes < 1 << 20 {
            return Err(invalid(
                "report.spool_max_bytes",
                rp.spool_max_bytes.to_string(),
                "give at least 1048576 (1 MiB)",
            ));
        }
        let mut report = rp.clone();
        report.spool_dir = path(&rp.spool_dir).to_string_lossy().to_string();
        if !rp.ca.is_empty() {
            report.ca = path(&rp.ca).to_string_lossy().to_string();
        }
        let mut places = Vec::new();
        for (i, p) in self.places.iter().enumerate() {
            let net = parse_net(&format!("places[{i}].cidr"), &p.cidr)?;
            if p.district.is_empty() {
                return Err(invalid(
                    format!("places[{i}].district"),
                    "",
                    "name the district (区) of this subnet",
                ));
            }
            places.push((net, p.clone()));
        }
        Ok(Config {
            source,
            listen,
            acl,
            mode,
            root_hints,
            upstreams: r.upstreams.clone(),
            allow_nameservers,
            dnssec: r.dnssec,
            resolver_timeout: std::time::Duration::from_millis(r.timeout_ms),
            trust_anchor: (!r.trust_anchor.is_empty()).then(|| path(&r.trust_anchor)),
            tls_ca: (!r.tls_ca.is_empty()).then(|| path(&r.tls_ca)),
            cache_size: r.cache_size,
            nameserver_ports,
            rate_limit: s.rate_limit,
            rate_limit_burst: if s.rate_limit_burst == 0 {
                s.rate_limit.saturating_mul(2)
            } else {
                s.rate_limit_burst
            },
            rate_limit_drop,
            doh_canary: s.doh_canary,
            tcp_idle_timeout: std::time::Duration::from_secs(s.tcp_idle_timeout),
            threads: s.threads,
            blocklist,
            category_actions,
            sinkhole_v4,
            sinkhole_v6,
            block_ttl: sk.ttl,
            warnpage_listen,
            warnpage_templates,
            warnpage_https,
            warnpage_tls,
            ops_listen,
            report,
            places,
        })
    }
}

fn validate_upstream(key: &str, u: &str) -> Result<(), ConfigError> {
    let fix = "write \"udp://IP:PORT\", \"tcp://IP:PORT\" or \"tls://IP:PORT#server.name\"";
    let (scheme, rest) = u.split_once("://").ok_or_else(|| invalid(key, u, fix))?;
    let addr = match scheme {
        "udp" | "tcp" => rest,
        "tls" => {
            let (a, name) = rest.split_once('#').ok_or_else(|| invalid(key, u, "a tls:// upstream needs the server's name after '#', e.g. \"tls://1.1.1.1:853#cloudflare-dns.com\""))?;
            if name.is_empty() {
                return Err(invalid(key, u, fix));
            }
            a
        }
        _ => return Err(invalid(key, u, fix)),
    };
    addr.parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|_| invalid(key, u, fix))
}

impl Config {
    /// Runtime worker threads (and UDP sockets per listen address): `threads`, or one
    /// per CPU core when it is 0.
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        }
    }

    /// The embedded defaults (paths relative to the working directory).
    pub fn embedded() -> Config {
        RawConfig::default()
            .validate(Path::new("."), None)
            .expect("embedded defaults are valid")
    }

    /// Load and validate a file, or the embedded defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::embedded());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = RawConfig::from_toml(&text, &path.display().to_string())?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        raw.validate(base, Some(path.to_path_buf()))
    }
}
