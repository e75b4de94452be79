//! Configuration: [`RawConfig`] (serde, defaults, `deny_unknown_fields`, in `raw.rs`)
//! → [`Config`] (validated and typed, one struct per section, built section by section
//! in `validate.rs`). Every refusal names the key, the value and the fix.
//!
//! Relative paths in a config file are taken relative to the directory of that file;
//! with the embedded defaults (no `--config`), relative to the working directory.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::blocklist::Action;
use crate::places::Places;
use crate::privacy::ClientIp;

pub mod diff;
mod local;
pub mod preflight;
mod raw;
pub mod reference;
mod validate;

// `[blocklist]` and `[[lists]]`, validated, stay with the loader that reads them:
// they are written in the blocklist's own vocabulary (actions, match modes,
// exceptions), and the blocklist, below config, must not import it.
pub use crate::blocklist::loader::{BlocklistConfig, ListConfig};
pub use local::{DEFAULT_LOCAL_ZONES, LocalRecord, RawRecordSpec, RecordError};
pub use raw::*;

/// `[report]`, validated: where hits go and how they wait on disk until they do.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Platform URL (http:// or https://); `None`: reporting is off.
    pub url: Option<String>,
    /// PEM CA file for an https:// platform with a private CA.
    pub ca: Option<PathBuf>,
    /// Spool directory.
    pub spool_dir: PathBuf,
    /// Spool cap.
    pub spool_max_bytes: u64,
    /// Events per POST.
    pub batch_events: usize,
    /// Uncompressed bytes per POST.
    pub batch_bytes: usize,
    /// Same client and rule within this window → one event with a count.
    pub dedup_window: Duration,
    /// Appliance id.
    pub appliance: String,
    /// Client address handling.
    pub client_ip: ClientIp,
    /// What reports of queries over DNS over TLS or HTTPS carry of the address.
    pub encrypted_client_ip: ClientIp,
    /// HMAC key for signing requests (shared with the platform).
    pub secret: String,
    /// This appliance's own key for `client_ip = "hash"`, never shared: keyed with
    /// the platform's secret, the platform could reverse the hashes by trying every
    /// address of the district's subnets.
    pub hash_key_file: PathBuf,
    /// fsync each spool batch.
    pub fsync: bool,
    /// Longest wait between retries.
    pub max_backoff: Duration,
}

impl ReportConfig {
    /// Where events the platform refused for good are kept.
    pub fn dead_letter(&self) -> PathBuf {
        self.spool_dir.join("dead-letter.jsonl")
    }
}

/// `[alerts]`, validated (the targets are in `[[places]]`).
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// A place's digest goes this long after its first hit.
    pub interval: Duration,
    /// Digests per place per hour at most.
    pub max_per_hour: usize,
    /// How devices are named.
    pub devices: Devices,
    /// The local time zone of the messages, seconds east of UTC.
    pub utc_offset: i32,
    /// Longest wait between tries of a failing place.
    pub max_backoff: Duration,
    /// A digest not delivered within this long is dropped (counted, logged).
    pub give_up_after: Duration,
    /// `<report.spool_dir>/alerts`.
    pub dir: PathBuf,
    /// The key of the device hashes (`report.hash_key_file`).
    pub hash_key_file: PathBuf,
    /// Appliance id (webhook).
    pub appliance: String,
    /// fsync the book and the outbox.
    pub fsync: bool,
}

/// How devices are named in an alert (`[alerts] devices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devices {
    /// The address as is.
    Keep,
    /// IPv4 /24, IPv6 /56.
    Truncate,
    /// The first 8 hex digits of the keyed hash the reports carry (`hmac:…`).
    Hash,
    /// Counted only.
    None,
}

impl Devices {
    /// Parse the config spelling.
    pub fn parse(s: &str) -> Option<Devices> {
        match s {
            "keep" | "full" => Some(Devices::Keep),
            "truncate" => Some(Devices::Truncate),
            "hash" => Some(Devices::Hash),
            "none" => Some(Devices::None),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause, said in the message (not a `source`, which `{:#}` would
        /// print a second time).
        cause: std::io::Error,
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

pub(crate) fn invalid(
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

/// Resolver mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolverMode {
    /// Iterate from the roots.
    Recursive,
    /// Send to upstreams.
    Forward,
}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// DNS listeners.
    pub listen: Vec<SocketAddr>,
    /// DNS over TLS listeners.
    pub listen_tls: Vec<SocketAddr>,
    /// The certificate chain and key of DNS over TLS (given with `listen_tls`).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A TLS handshake longer than this is closed.
    pub tls_handshake_timeout: Duration,
    /// DNS over HTTPS listeners.
    pub listen_https: Vec<SocketAddr>,
    /// This resolver's name for encrypted DNS, lower-case without the final dot
    /// ("": none; places are then named by DoH path only).
    pub dns_name: String,
    /// Requests at once on one HTTP/2 connection.
    pub https_max_streams: u32,
    /// Queries per second of each named place (0: no limit).
    pub place_rate_limit: u32,
    /// Admitted clients.
    pub acl: Vec<IpNet>,
    /// Clients whose RD=0 queries may be answered from the cache.
    pub allow_snoop: Vec<IpNet>,
    /// Per-client rate (0 = off).
    pub rate_limit: u32,
    /// Per-client burst.
    pub rate_limit_burst: u32,
    /// Drop (true) or refuse (false) past the limit.
    pub rate_limit_drop: bool,
    /// IPv4 prefix a client is counted by.
    pub rate_limit_prefix_v4: u8,
    /// IPv6 prefix a client is counted by.
    pub rate_limit_prefix_v6: u8,
    /// Never limited.
    pub rate_limit_exempt: Vec<IpNet>,
    /// Senders whose queries carry a PROXY v2 header (dnsdist in front).
    pub proxy_from: Vec<IpNet>,
    /// DoH canary.
    pub doh_canary: bool,
    /// Logs as one JSON object per line (`log_format = "json"`).
    pub log_json: bool,
    /// TCP idle timeout: a connection that got no answer for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// A stream connection is closed this long after it opened, between queries
    /// (`None`: never).
    pub tcp_max_age: Option<Duration>,
    /// TCP connections open at once.
    pub tcp_max_connections: usize,
    /// Resolutions in flight at once.
    pub max_inflight: usize,
    /// Resolutions in flight a client prefix holds that are never shed at the cap.
    pub max_inflight_per_client: usize,
    /// TCP connections open at once from one address.
    pub tcp_per_client: usize,
    /// Worker threads (0 = one per core).
    pub threads: usize,
}

/// `[resolver]`, validated.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
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
    /// Query-name minimisation.
    pub qname_minimisation: bool,
    /// Per-exchange timeout.
    pub timeout: Duration,
    /// DNSSEC trust anchor file (`None`: built-in root keys).
    pub trust_anchor: Option<PathBuf>,
    /// Extra CA certificates for DoT upstreams.
    pub tls_ca: Option<PathBuf>,
    /// Answer cache entries.
    pub cache_size: u64,
    /// Answer cache bytes (`[cache] max_bytes`).
    pub cache_max_bytes: u64,
    /// Name server port overrides.
    pub nameserver_ports: Vec<(IpNet, u16)>,
    /// Answer the locally served zones here.
    pub local_zones: bool,
    /// Locally served zones turned off (lowercase, no final dot).
    pub nodefault: Vec<String>,
    /// `[[forward_zones]]`: zone (lowercase, fully qualified) and its upstreams.
    pub forward_zones: Vec<(String, Vec<String>)>,
}

/// `[cache]`, validated (its byte bound is in [`ResolverConfig::cache_max_bytes`]).
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// How long after expiry an answer may be served when resolving fails.
    pub serve_stale: Duration,
    /// Refresh answers asked in the last tenth of their TTL.
    pub prefetch: bool,
}

/// `[sinkhole]` and `[categories]`, validated: what a blocked name gets.
#[derive(Debug, Clone)]
pub struct SinkholeConfig {
    /// A answer for blocked names.
    pub v4: Ipv4Addr,
    /// AAAA answer (`None`: AAAA gets NODATA).
    pub v6: Option<Ipv6Addr>,
    /// TTL of blocked answers.
    pub ttl: u32,
    /// Per-category action overrides.
    pub category_actions: BTreeMap<String, Action>,
}

/// `[warnpage]`, validated.
#[derive(Debug, Clone)]
pub struct WarnpageConfig {
    /// HTTP listeners.
    pub listen: Vec<SocketAddr>,
    /// Replacement templates.
    pub templates: Option<PathBuf>,
    /// HTTPS listeners (empty without a certificate).
    pub https: Vec<SocketAddr>,
    /// Certificate and key for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Connections open at once from one address.
    pub per_client: usize,
    /// Certificate chain and key that sign the phone setup profiles.
    pub profile_signer: Option<(PathBuf, PathBuf)>,
}

/// What a place without `managed_tls` gets for a host with path rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmanaged {
    /// The proxy's address: plain HTTP checked, HTTPS relayed unopened by its SNI.
    Passthrough,
    /// The host's own addresses: nothing checked, counted as unenforced.
    Resolve,
}

/// `[url]`, validated: the URL proxy.
#[derive(Debug, Clone)]
pub struct UrlConfig {
    /// Plain-HTTP listeners.
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners.
    pub listen_tls: Vec<SocketAddr>,
    /// The A answer for a host with path rules.
    pub v4: Option<std::net::Ipv4Addr>,
    /// The AAAA answer (`None`: no data).
    pub v6: Option<std::net::Ipv6Addr>,
    /// The CA that signs the managed places' host certificates.
    pub ca: Option<(PathBuf, PathBuf)>,
    /// Places without `managed_tls`.
    pub unmanaged: Unmanaged,
    /// Private networks the proxy may relay to.
    pub relay_private: Vec<ipnet::IpNet>,
    /// More roots for the real hosts' certificates.
    pub upstream_ca: Vec<PathBuf>,
    /// Connections at once, all clients.
    pub max_connections: usize,
    /// Connections at once per client prefix.
    pub per_client: usize,
    /// Idle time before a connection is closed.
    pub idle_timeout: Duration,
    /// Largest request head.
    pub header_bytes: usize,
    /// Time to connect to the real host.
    pub connect_timeout: Duration,
}

impl UrlConfig {
    /// Whether the proxy runs (it has a listener and an address to give out).
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty() || !self.listen_tls.is_empty()
    }
}

/// Where dnstap frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnstapTarget {
    /// A Frame Streams Unix socket.
    Unix(PathBuf),
    /// A Frame Streams TCP collector, "host:port".
    Tcp(String),
}

/// `[dnstap]`, validated.
#[derive(Debug, Clone)]
pub struct DnstapConfig {
    /// The collector.
    pub target: DnstapTarget,
    /// The `identity` field.
    pub identity: String,
    /// Log CLIENT_QUERY messages.
    pub client_query: bool,
    /// Log CLIENT_RESPONSE messages.
    pub client_response: bool,
    /// The client address as logged.
    pub client_ip: crate::privacy::ClientIp,
    /// The local key for `client_ip = "hash"` (the report's).
    pub hash_key_file: PathBuf,
    /// Share of allowed queries logged.
    pub sample: f64,
    /// Frames waiting at most.
    pub queue: usize,
}

/// `[[sources]]`, validated: a public list fetched by URL into `file`, which the
/// compile reads like any list file.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The URL.
    pub url: String,
    /// Its name (file stem, metric label).
    pub name: String,
    /// Where its last good copy is kept (`state_dir/sources/NAME.txt`).
    pub file: PathBuf,
    /// Time between fetches.
    pub refresh: Duration,
    /// Required sha256 of the body (hex, lower case).
    pub sha256: Option<String>,
    /// Largest download.
    pub max_bytes: u64,
    /// Extra CA for https.
    pub tls_ca: Option<PathBuf>,
}

/// `[feed]`, validated.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// The manifest's URL.
    pub url: String,
    /// The publisher's key, base64.
    pub public_key: String,
    /// Time between polls.
    pub poll: Duration,
    /// Extra CA for https.
    pub tls_ca: Option<PathBuf>,
    /// Proxy URL (`None`: from the environment).
    pub proxy: Option<String>,
    /// Largest list file taken.
    pub max_bytes: u64,
    /// Where the verified feed files and the feed state are kept.
    pub dir: PathBuf,
}

/// A validated configuration, one typed struct per section of the file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from (`None`: embedded defaults).
    pub source: Option<PathBuf>,
    /// The file as read, with every default filled in (see [`Config::effective`]).
    effective: RawConfig,
    /// The control socket of `fanzha ctl` (`None`: off).
    pub control: Option<PathBuf>,
    /// Keys changed in the file since start that only a restart applies (set by a
    /// reload; values shown with secrets hidden).
    pub pending: Vec<diff::Change>,
    /// `[dnstap]` (`None`: off).
    pub dnstap: Option<DnstapConfig>,
    /// `[feed]` (`None`: the lists come from `[blocklist]` only).
    pub feed: Option<FeedConfig>,
    /// `[[sources]]`.
    pub sources: Vec<SourceConfig>,
    /// `[server]`
    pub server: ServerConfig,
    /// `[resolver]`
    pub resolver: ResolverConfig,
    /// `[blocklist]` and `[[lists]]` (with `server.state_dir`).
    pub blocklist: BlocklistConfig,
    /// `[sinkhole]` and `[categories]`
    pub sinkhole: SinkholeConfig,
    /// `[warnpage]`
    pub warnpage: WarnpageConfig,
    /// `[url]`
    pub url: UrlConfig,
    /// `[ops] listen`
    pub ops_listen: SocketAddr,
    /// `[ops] place_label = "community"`: blocks are counted by community as well
    /// as by street.
    pub community_label: bool,
    /// `[report]`
    pub report: ReportConfig,
    /// `[alerts]` (the targets are in `places`).
    pub alerts: AlertConfig,
    /// `[[places]]` with the `[report] default_*` place for clients in none.
    pub places: Places,
    /// `[[local_records]]`, checked and encoded.
    pub local_records: Vec<LocalRecord>,
    /// `[cache]`
    pub cache: CacheConfig,
}

impl Config {
    /// Runtime worker threads (and UDP sockets per listen address): `threads`, or one
    /// per CPU core when it is 0.
    pub fn worker_threads(&self) -> usize {
        match self.server.threads {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        }
    }

    /// Every key with the value in force, defaults filled in, as TOML that loads
    /// back; the report secret and the robots' tokens are hidden (`fanzha ctl
    /// dump-config`).
    pub fn effective(&self) -> RawConfig {
        let mut raw = self.effective.clone();
        if !raw.report.secret.is_empty() {
            raw.report.secret = "(hidden)".into();
        }
        for p in &mut raw.places {
            if let Some(a) = &mut p.alert {
                a.url = crate::text::redact_url(&a.url);
            }
        }
        raw
    }

    /// The file as read, defaults filled in, secrets included (for comparing).
    pub(crate) fn raw(&self) -> &RawConfig {
        &self.effective
    }

    /// The embedded defaults (paths relative to the working directory).
    pub fn embedded() -> Config {
        let mut raw = RawConfig::default();
        raw.control.socket = Some(embedded_socket().display().to_string());
        raw.validate(Path::new("."), None)
            .expect("embedded defaults are valid")
    }

    /// The defaults as written (`config/fanzha.toml`): as [`Config::embedded`], but
    /// with the control socket in the state directory.
    pub fn defaults() -> Config {
        RawConfig::default()
            .validate(Path::new("."), None)
            .expect("the defaults are valid")
    }

    /// Every problem of the file at `path`, not only the first (`fanzha
    /// check-config`): each bad key found is taken out (an array's element whole:
    /// `sources[1]`) and the rest checked again, so that one run names them all. A
    /// syntax error or an unknown key ends the search: what follows it cannot be
    /// read. The config, when there is no problem at all.
    pub fn check_all(path: &Path) -> (Option<Config>, Vec<ConfigError>) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(cause) => {
                let e = ConfigError::Read {
                    path: path.to_path_buf(),
                    cause,
                };
                return (None, vec![e]);
            }
        };
        let origin = path.display().to_string();
        let mut doc: toml::Table = match toml::from_str(&text) {
            Ok(t) => t,
            Err(e) => {
                let e = ConfigError::Parse {
                    path: origin,
                    message: e.to_string(),
                };
                return (None, vec![e]);
            }
        };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut errors = Vec::new();
        // Array elements taken out so far, by array, as indexes in the file.
        let mut gone: Vec<(String, usize)> = Vec::new();
        for _ in 0..50 {
            let raw: RawConfig = match toml::Value::Table(doc.clone()).try_into() {
                Ok(r) => r,
                Err(e) => {
                    errors.push(ConfigError::Parse {
                        path: origin,
                        message: e.to_string(),
                    });
                    break;
                }
            };
            match raw.validate(base, Some(path.to_path_buf())) {
                Ok(c) if errors.is_empty() => return (Some(c), errors),
                Ok(_) => break,
                Err(ConfigError::Invalid { key, value, fix }) => {
                    let (shown, removed) = take_out(&mut doc, &key, &mut gone);
                    errors.push(ConfigError::Invalid {
                        key: shown,
                        value,
                        fix,
                    });
                    if !removed {
                        break;
                    }
                }
                Err(e) => {
                    errors.push(e);
                    break;
                }
            }
        }
        (None, errors)
    }

    /// Load and validate a file, or the embedded defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::embedded());
        };
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let raw = RawConfig::from_toml(&text, &path.display().to_string())?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        raw.validate(base, Some(path.to_path_buf()))
    }
}

/// The control socket of the embedded defaults: the same path from any working
/// directory, so that `fanzha ctl` finds a daemon started elsewhere on them:
/// `$XDG_RUNTIME_DIR/fanzha/control.sock`, else `/tmp/fanzha-UID/control.sock`.
pub fn embedded_socket() -> PathBuf {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d.join("fanzha"),
        // SAFETY: getuid has no preconditions and cannot fail.
        _ => std::env::temp_dir().join(format!("fanzha-{}", unsafe { libc::getuid() })),
    };
    dir.join("control.sock")
}

/// Take the bad `key` out of `doc` for [`Config::check_all`]: the array element it
/// lies in (`places[2].alert.kind` → `places[2]`), else the key itself. Returns the
/// key as the file numbers it (elements taken out earlier shift the indexes), and
/// whether anything was taken out.
fn take_out(doc: &mut toml::Table, key: &str, gone: &mut Vec<(String, usize)>) -> (String, bool) {
    let first = key.split('.').next().unwrap_or(key);
    if let Some((array, rest)) = first.split_once('[')
        && let Some(Ok(i)) = rest.strip_suffix(']').map(str::parse::<usize>)
        && let Some(toml::Value::Array(a)) = doc.get_mut(array)
        && i < a.len()
    {
        a.remove(i);
        // The index in the file: count the elements still there.
        let mut left = i;
        let mut file_i = 0;
        loop {
            if !gone.contains(&(array.to_string(), file_i)) {
                if left == 0 {
                    break;
                }
                left -= 1;
            }
            file_i += 1;
        }
        gone.push((array.to_string(), file_i));
        let shown = format!("{array}[{file_i}]{}", &key[first.len()..]);
        return (shown, true);
    }
    // `sources[name]` and the like: the whole array.
    if let Some((array, _)) = first.split_once('[') {
        return (key.to_string(), doc.remove(array).is_some());
    }
    let parts: Vec<&str> = key.split('.').collect();
    let mut t = doc;
    for p in &parts[..parts.len() - 1] {
        match t.get_mut(*p) {
            Some(toml::Value::Table(next)) => t = next,
            _ => return (key.to_string(), false),
        }
    }
    let last = parts[parts.len() - 1];
    let last = last.split('[').next().unwrap_or(last);
    (key.to_string(), t.remove(last).is_some())
}
