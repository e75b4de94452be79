//! The config file as written: serde structs with the defaults of every key and
//! `deny_unknown_fields`, so a misspelt key is refused with its name and line.
//! [`super::validate`] turns them into the typed [`super::Config`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The file as written.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[server]`
    pub server: RawServer,
    /// `[resolver]`
    pub resolver: RawResolver,
    /// `[cache]`
    pub cache: RawCache,
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
    /// `[url]`
    pub url: RawUrl,
    /// `[ops]`
    pub ops: RawOps,
    /// `[control]`
    pub control: RawControl,
    /// `[dnstap]`
    pub dnstap: RawDnstap,
    /// `[feed]`
    pub feed: RawFeed,
    /// `[[sources]]`
    pub sources: Vec<RawSource>,
    /// `[report]`
    pub report: RawReport,
    /// `[[places]]`
    pub places: Vec<RawPlace>,
    /// `[[policies]]`
    pub policies: Vec<RawPolicy>,
    /// `[alerts]`
    pub alerts: RawAlerts,
    /// `[[local_records]]`
    pub local_records: Vec<super::RawRecordSpec>,
    /// `[[forward_zones]]`
    pub forward_zones: Vec<RawForwardZone>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// DNS listen addresses (UDP and TCP on each).
    pub listen: Vec<String>,
    /// DNS over TLS listen addresses (RFC 7858, ALPN `dot`; the port defaults to 853).
    /// Needs `tls_cert` and `tls_key`; the same clients, limits and answers as TCP.
    pub listen_tls: Vec<String>,
    /// The certificate chain (PEM) of DNS over TLS. The file is read again on SIGHUP (a
    /// renewal by certbot or acme.sh): new handshakes get it, open connections stay.
    pub tls_cert: String,
    /// The private key (PEM) of `tls_cert`, read again with it on SIGHUP.
    pub tls_key: String,
    /// DNS over HTTPS listen addresses (RFC 8484: `/dns-query`, GET and POST, HTTP/2
    /// and HTTP/1.1; the port defaults to 443). The same certificate as DNS over TLS.
    pub listen_https: Vec<String>,
    /// This resolver's name for encrypted DNS, e.g. "dns.district.example": a place
    /// with `id = "binfen"` is `binfen.<dns_name>` over DNS over TLS (a wildcard
    /// certificate covers them all). check-config refuses a certificate that does not
    /// cover the name and every place's.
    pub dns_name: String,
    /// Requests at once on one HTTP/2 connection of DNS over HTTPS.
    pub https_max_streams: u32,
    /// Queries per second of each place named by its private DNS name (over DNS over
    /// TLS or HTTPS), all its residents together, with bursts twice as big; past it,
    /// as `rate_limit_action`. 0 = no limit. The per-client `rate_limit` applies too.
    pub place_rate_limit: u32,
    /// Close a DNS over TLS connection whose handshake takes longer than this: a slow
    /// handshake holds a connection slot.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub tls_handshake_timeout: u64,
    /// Client CIDRs admitted.
    pub acl: Vec<String>,
    /// Client CIDRs whose queries without recursion desired (RD=0) may be answered
    /// from the cache (Unbound's allow_snoop); others get REFUSED for them.
    pub allow_snoop: Vec<String>,
    /// Working files (the active compiled list).
    pub state_dir: String,
    /// Queries per second per client; 0 = no limit.
    pub rate_limit: u32,
    /// Burst size per client (default: twice the rate).
    pub rate_limit_burst: u32,
    /// `refused` or `drop` past the limit.
    pub rate_limit_action: String,
    /// IPv4 clients are counted by this prefix (32: each address).
    pub rate_limit_prefix_v4: u8,
    /// IPv6 clients are counted by this prefix (56: a home's delegated prefix).
    pub rate_limit_prefix_v6: u8,
    /// Clients never rate-limited (CIDRs: a NAT of a whole community, monitoring).
    pub rate_limit_exempt: Vec<String>,
    /// Senders whose DNS carries a PROXY protocol v2 header naming the client
    /// (a dnsdist in front); empty: none.
    pub proxy_from: Vec<String>,
    /// Answer NXDOMAIN for `use-application-dns.net`.
    pub doh_canary: bool,
    /// `text` (for people) or `json` (one object per line, for journald or Loki).
    pub log_format: String,
    /// Close a TCP connection that got no answer for this many seconds.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub tcp_idle_timeout: u64,
    /// Close a TCP, DNS over TLS or DNS over HTTPS connection this many seconds
    /// after it opened, between two queries (the client opens another), so that no
    /// client keeps a slot for ever; 0 = never.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub tcp_max_age: u64,
    /// TCP connections open at once, all clients together.
    pub tcp_max_connections: usize,
    /// Resolutions in flight at once, all clients together.
    pub max_inflight: usize,
    /// Resolutions in flight a client (prefix, as for the rate limit) may hold that
    /// are never shed for another client's at the cap.
    pub max_inflight_per_client: usize,
    /// TCP connections open at once from one client address.
    pub tcp_per_client: usize,
    /// DNS worker threads; 0 = one per CPU core.
    pub threads: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: vec!["127.0.0.1:5353".into()],
            listen_tls: Vec::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_handshake_timeout: 5,
            listen_https: Vec::new(),
            dns_name: String::new(),
            https_max_streams: 100,
            place_rate_limit: 1000,
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
            allow_snoop: vec![],
            state_dir: "state".into(),
            rate_limit: 0,
            rate_limit_burst: 0,
            rate_limit_action: "refused".into(),
            rate_limit_prefix_v4: 32,
            rate_limit_prefix_v6: 56,
            rate_limit_exempt: Vec::new(),
            proxy_from: Vec::new(),
            doh_canary: true,
            log_format: "text".into(),
            tcp_idle_timeout: 10,
            tcp_max_age: 3600,
            tcp_max_connections: 1024,
            max_inflight: 2048,
            max_inflight_per_client: 100,
            tcp_per_client: 16,
            threads: 0,
        }
    }
}

/// `[resolver]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawResolver {
    /// `recursive` or `forward`.
    pub mode: String,
    /// Root server addresses (`IP` or `IP:PORT`); empty = built-in.
    pub root_hints: Vec<String>,
    /// Forward-mode upstreams: `IP`, `IP:PORT`, `udp://IP:PORT`, `tcp://IP:PORT` or
    /// `tls://IP:853#server.name` (DNS over TLS).
    pub upstreams: Vec<String>,
    /// Name server CIDRs exempt from the private-address deny list.
    pub allow_nameservers: Vec<String>,
    /// DNSSEC validation in recursive mode: bogus answers become SERVFAIL (unless
    /// the client sets CD), secure ones carry AD.
    pub dnssec: bool,
    /// Query-name minimisation (RFC 9156, relaxed) in recursive mode.
    pub qname_minimisation: bool,
    /// Per-exchange timeout in milliseconds (then the next server is tried).
    #[serde(deserialize_with = "dur::millis", serialize_with = "dur::millis_out")]
    pub timeout_ms: u64,
    /// Most entries of the answer cache, and of the recursor's own caches (zone
    /// cuts, name server addresses); `[cache] max_bytes` bounds their bytes.
    pub cache_size: u64,
    /// Name servers reached on another port than 53 (labs and tests).
    pub nameserver_ports: Vec<RawPortMap>,
    /// A file of DNSKEY or DS records to trust for the root; "" = the built-in IANA
    /// root key.
    pub trust_anchor: String,
    /// PEM file of extra CA certificates for tls:// upstreams; "" = the built-in web roots.
    pub tls_ca: String,
    /// Answer the locally served zones (RFC 6303 and special-use names) here.
    pub local_zones: bool,
    /// Locally served zones to resolve as usual instead (Unbound's `nodefault`).
    pub nodefault: Vec<String>,
}

/// `[[forward_zones]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardZone {
    /// The zone, e.g. `corp.lan`.
    pub name: String,
    /// Its upstreams, as in `[resolver] upstreams`.
    pub upstreams: Vec<String>,
}

/// `[cache]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    /// Most bytes the answer cache holds.
    pub max_bytes: u64,
    /// Seconds after expiry an answer may still be served when resolving fails; 0 = off.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub serve_stale: u64,
    /// Refresh popular answers in the background before they expire.
    pub prefetch: bool,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            max_bytes: 64 << 20,
            serve_stale: 86_400,
            prefetch: true,
        }
    }
}

/// `[[resolver.nameserver_ports]]`
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
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
            qname_minimisation: true,
            timeout_ms: 400,
            cache_size: 100_000,
            nameserver_ports: vec![],
            trust_anchor: String::new(),
            tls_ca: String::new(),
            local_zones: true,
            nodefault: vec![],
        }
    }
}

/// `[blocklist]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    #[serde(deserialize_with = "dur::millis", serialize_with = "dur::millis_out")]
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
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
    /// `shadow`: resolve its names as usual, count and report the matches (the
    /// same as `action = "shadow"`); `block` (default): its action applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// An RPZ file's own actions answer for its rules (default true); false: the
    /// category's action, as for any list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpz_actions: Option<bool>,
    /// What a URL with a path in it blocks: "page" (default: that page, through
    /// the URL proxy) or "host" (the whole host, for a list whose URLs are on
    /// hosts that are all fraud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_paths: Option<String>,
}

/// `[[sources]]`: a public list fetched by URL.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// The list's URL (http:// or https://).
    pub url: String,
    /// A short name for its file, reports and metrics (default: from the URL).
    #[serde(default)]
    pub name: Option<String>,
    /// Its category.
    #[serde(default)]
    pub category: Option<String>,
    /// `sinkhole`, `nxdomain`, `refused`, `shadow`, `off`.
    #[serde(default)]
    pub action: Option<String>,
    /// `shadow` or `block`, as for `[[lists]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `page` or `host`, as for `[[lists]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_paths: Option<String>,
    /// Time between fetches (default 6 h).
    #[serde(
        default = "six_hours",
        deserialize_with = "dur::millis",
        serialize_with = "dur::millis_out"
    )]
    pub refresh: u64,
    /// The list's sha256 (hex), for a pinned file that must not change.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Largest download taken, bytes (default 64 MiB).
    #[serde(default = "sixty_four_mib")]
    pub max_bytes: u64,
    /// PEM CA file for an https:// URL with a private CA.
    #[serde(default)]
    pub tls_ca: Option<String>,
    /// Let the list's exceptions (`@@` rules) cancel its own rules; without it they
    /// are dropped. Never do they reach another list's rules.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_exceptions: bool,
}

fn six_hours() -> u64 {
    6 * 3600 * 1000
}

fn sixty_four_mib() -> u64 {
    64 << 20
}

/// `[categories.NAME]`
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCategory {
    /// Overrides the action of every list of this category.
    #[serde(default)]
    pub action: Option<String>,
}

/// `[sinkhole]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSinkhole {
    /// The A answer for blocked names: an address of this appliance where the
    /// warning page listens (`[warnpage] listen`, port 80 in production).
    pub ipv4: String,
    /// The AAAA answer for blocked names; "none": NOERROR with no data (for a
    /// warning page without IPv6).
    pub ipv6: String,
    /// TTL of blocked answers, in seconds.
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

/// `[url]`: the URL proxy, which blocks listed pages of a shared host and relays
/// the host's other pages (see docs/url-blocking.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUrl {
    /// Plain-HTTP addresses of the URL proxy (port 80 in production, on an address
    /// of its own: the warning page has port 80 of the sinkhole address). Empty: no
    /// proxy, and path rules are counted as unenforced.
    pub listen: Vec<String>,
    /// HTTPS addresses (port 443 on the same address). Managed places' connections
    /// are opened with a certificate made from `ca_cert`; other places' are relayed
    /// unopened, by the name they ask for (SNI).
    pub listen_tls: Vec<String>,
    /// The A answer for a host with path rules; "" = the IPv4 address of `listen`.
    pub ipv4: String,
    /// The AAAA answer; "" = the IPv6 address of `listen`, "none": no data (clients
    /// then use IPv4, through the proxy).
    pub ipv6: String,
    /// The district's CA certificate (PEM), which the devices of `managed_tls`
    /// places trust; the proxy signs each host's certificate with it.
    pub ca_cert: String,
    /// The CA's private key (PEM, PKCS#8), readable by fanzha only.
    pub ca_key: String,
    /// What a place without `managed_tls` gets for a host with path rules:
    /// "passthrough" (the proxy's address: plain HTTP is checked, HTTPS relayed
    /// unopened) or "resolve" (the host's own addresses: nothing is checked, and its
    /// queries are counted as unenforced).
    pub unmanaged: String,
    /// Networks the proxy may relay to although they are private, loopback or
    /// link-local (by default it relays only to public addresses).
    pub relay_private: Vec<String>,
    /// More CA certificates (PEM files) to trust for the real hosts' HTTPS, beside
    /// the system's (`/etc/ssl/certs`).
    pub upstream_ca: Vec<String>,
    /// Connections open at once, all clients together.
    pub max_connections: usize,
    /// Connections open at once from one client prefix (`server.rate_limit_prefix_v4`/`_v6`).
    pub per_client: usize,
    /// How long a connection may wait for its next request head (and for the TLS
    /// name it asks for) before it is closed, and how long the real host may be
    /// silent, before its answer (502) or in the middle of it (cut), or either way
    /// on an HTTPS connection relayed unopened.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub idle_timeout: u64,
    /// Largest request head (request line and headers), in bytes.
    pub header_bytes: usize,
    /// How long connecting to the real host (and its TLS handshake) may take.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub connect_timeout: u64,
}

impl Default for RawUrl {
    fn default() -> Self {
        RawUrl {
            listen: vec![],
            listen_tls: vec![],
            ipv4: String::new(),
            ipv6: String::new(),
            ca_cert: String::new(),
            ca_key: String::new(),
            unmanaged: "passthrough".into(),
            relay_private: vec![],
            upstream_ca: vec![],
            max_connections: 4096,
            per_client: 64,
            idle_timeout: 60,
            header_bytes: 16 * 1024,
            connect_timeout: 10,
        }
    }
}

/// `[warnpage]`
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Connections open at once from one client address.
    pub per_client: usize,
    /// A certificate chain (PEM) that signs the phone setup profiles
    /// (`/setup/<id>/profile.mobileconfig`): iOS shows a profile signed by a
    /// certificate it trusts as verified. "" = unsigned.
    pub profile_cert: String,
    /// The private key (PEM: PKCS#8 RSA or ECDSA P-256, or PKCS#1 RSA) of
    /// `profile_cert`.
    pub profile_key: String,
}

impl Default for RawWarnpage {
    fn default() -> Self {
        RawWarnpage {
            listen: vec!["127.0.0.1:8080".into()],
            templates: String::new(),
            https_listen: vec![],
            tls_cert: String::new(),
            tls_key: String::new(),
            per_client: 32,
            profile_cert: String::new(),
            profile_key: String::new(),
        }
    }
}

/// `[ops]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOps {
    /// `/metrics /healthz /readyz` listen address.
    pub listen: String,
    /// The place level in `fanzha_blocked_total`: `street`, or `community` too.
    pub place_label: String,
}

impl Default for RawOps {
    fn default() -> Self {
        RawOps {
            listen: "127.0.0.1:9153".into(),
            place_label: "street".into(),
        }
    }
}

/// `[control]`: the Unix socket of `fanzha ctl`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawControl {
    /// Listen on the control socket.
    pub enabled: bool,
    /// Its path (absent: `control.sock` in `server.state_dir`; with no config file at
    /// all, `$XDG_RUNTIME_DIR/fanzha/control.sock`, else `/tmp/fanzha-UID/control.sock`,
    /// which `fanzha ctl` finds from any directory).
    pub socket: Option<String>,
}

impl Default for RawControl {
    fn default() -> Self {
        RawControl {
            enabled: true,
            socket: None,
        }
    }
}

/// `[dnstap]`: the query log, as dnstap frames to a collector.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDnstap {
    /// A Frame Streams Unix socket to write to (absent with `tcp`: off).
    pub socket: Option<String>,
    /// A Frame Streams TCP collector, "host:port" (instead of `socket`).
    pub tcp: Option<String>,
    /// The `identity` field (absent: the host name).
    pub identity: Option<String>,
    /// What to log: "client_query", "client_response".
    pub log: Vec<String>,
    /// The client address: "full", "truncate" (/24, /56) or "hash" (keyed with the
    /// report's local key).
    pub client_ip: String,
    /// Share of allowed queries logged, 0.0 to 1.0; blocked ones always are.
    pub sample: f64,
    /// Frames waiting for the collector at most; past it they are dropped and counted.
    pub queue: usize,
}

impl Default for RawDnstap {
    fn default() -> Self {
        RawDnstap {
            socket: None,
            tcp: None,
            identity: None,
            log: vec!["client_query".into(), "client_response".into()],
            client_ip: "full".into(),
            sample: 1.0,
            queue: 10_000,
        }
    }
}

/// `[feed]`: follow a signed list feed published by `fanzha publish`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFeed {
    /// The manifest's URL (absent: no feed; the lists come from `[blocklist]`).
    pub url: Option<String>,
    /// The publisher's minisign public key (base64, "RW…").
    pub public_key: Option<String>,
    /// … or a file holding it (`minisign -G`'s .pub file).
    pub public_key_file: Option<String>,
    /// Time between polls (a conditional GET of the manifest).
    #[serde(deserialize_with = "dur::millis", serialize_with = "dur::millis_out")]
    pub poll: u64,
    /// PEM CA file for an https:// feed with a private CA.
    pub tls_ca: Option<String>,
    /// HTTP(S) proxy URL (absent: HTTPS_PROXY / HTTP_PROXY from the environment).
    pub proxy: Option<String>,
    /// Largest list file taken, bytes.
    pub max_bytes: u64,
}

impl Default for RawFeed {
    fn default() -> Self {
        RawFeed {
            url: None,
            public_key: None,
            public_key_file: None,
            poll: 30_000,
            tls_ca: None,
            proxy: None,
            max_bytes: 2 << 30,
        }
    }
}

/// `[report]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReport {
    /// The district platform's events endpoint (`https://…/v1/events`, see
    /// docs/platform-api.md); "" = reporting off.
    pub url: String,
    /// The key signing each batch (HMAC-SHA256, `X-Fanzha-Signature`); prefer
    /// `secret_file`, which keeps it out of the config.
    pub secret: String,
    /// A file holding the HMAC key instead (under `$CREDENTIALS_DIRECTORY` first).
    pub secret_file: String,
    /// The local key for `client_ip = "hash"`; "" = `report-hash.key` in state_dir.
    pub hash_key_file: String,
    /// This appliance's id, sent as `X-Fanzha-Appliance` and in each event.
    pub appliance: String,
    /// Where events wait until the platform has them (relative: to the config
    /// file's directory); alerts wait in its `alerts/`.
    pub spool_dir: String,
    /// What the platform learns of a client's address: "keep", "truncate" (/24,
    /// /56) or "hash" (keyed with a local key the platform does not have).
    pub client_ip: String,
    /// As `client_ip`, for queries over DNS over TLS and HTTPS: those residents may
    /// be anywhere (a phone on 4G), so their full address stays here by default.
    pub encrypted_client_ip: String,
    /// Same client and rule within this many seconds → one event with a count; 0 = off.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub dedup_window: u64,
    /// Events per POST.
    pub batch_events: usize,
    /// Uncompressed bytes per POST.
    pub batch_bytes: usize,
    /// Spool cap in bytes.
    pub spool_max_bytes: u64,
    /// fsync every spool batch (off: a power cut may lose the last second of hits).
    pub fsync: bool,
    /// Longest wait between retries to a failing platform.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub max_backoff: u64,
    /// PEM CA file for an https:// platform with a private CA, which is then the
    /// only one trusted for it, as for the feed and the sources (`ca` before: the
    /// same name as `[resolver] tls_ca` now).
    #[serde(alias = "ca")]
    pub tls_ca: String,
    /// The district (区) of clients in no `[[places]]` subnet.
    pub default_district: String,
    /// The street (街道) of clients in no `[[places]]` subnet.
    pub default_street: String,
    /// The community (社区) of clients in no `[[places]]` subnet.
    pub default_community: String,
}

impl Default for RawReport {
    fn default() -> Self {
        RawReport {
            url: String::new(),
            secret: String::new(),
            secret_file: String::new(),
            hash_key_file: String::new(),
            appliance: "fanzha-dev".into(),
            spool_dir: "spool".into(),
            client_ip: "keep".into(),
            encrypted_client_ip: "truncate".into(),
            dedup_window: 60,
            batch_events: 500,
            batch_bytes: 1 << 20,
            spool_max_bytes: 256 << 20,
            fsync: true,
            max_backoff: 60,
            tls_ca: String::new(),
            default_district: String::new(),
            default_street: String::new(),
            default_community: String::new(),
        }
    }
}

/// `[[places]]`
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPlace {
    /// The clients' subnet; the most specific place holding an address is its place.
    /// May be left out when the place has an `id`: its residents then reach it only
    /// by its private DNS name.
    #[serde(default)]
    pub cidr: String,
    /// The place's name for encrypted DNS: DNS over TLS to `<id>.<server.dns_name>`
    /// and DNS over HTTPS to `/dns-query/<id>` are this place's queries, from any
    /// address. Letters, digits and '-'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its district (区).
    pub district: String,
    /// Its street (街道).
    #[serde(default)]
    pub street: String,
    /// Its community (社区).
    #[serde(default)]
    pub community: String,
    /// The `[[policies]]` entry whose actions apply here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Where this place's own workers are alerted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<RawAlert>,
    /// Its devices trust the district's CA (`[url] ca_cert`), installed by the
    /// district: the URL proxy checks their HTTPS pages too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub managed_tls: bool,
}

/// `[[places]] alert = { kind, url, secret_file }`
#[derive(Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    /// "dingtalk", "wecom" or "webhook".
    pub kind: String,
    /// The robot's webhook URL.
    pub url: String,
    /// A file holding the signing secret (under `$CREDENTIALS_DIRECTORY` first).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_file: String,
}

impl std::fmt::Debug for RawAlert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAlert")
            .field("kind", &self.kind)
            .field("url", &crate::text::redact_url(&self.url))
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

/// `[alerts]`: how the places' alerts are paced and worded.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    /// A place's digest goes this long after its first hit (seconds, or "10m").
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub interval: u64,
    /// Digests per place per hour at most; more hits wait for the next one.
    pub max_per_hour: usize,
    /// How the message names devices: "hash", "truncate", "keep" or "none".
    pub devices: String,
    /// The messages' time zone, e.g. "+08:00".
    pub utc_offset: String,
    /// Longest wait between tries of a failing place.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub max_backoff: u64,
    /// A digest not delivered within this long is dropped.
    #[serde(deserialize_with = "dur::secs", serialize_with = "dur::secs_out")]
    pub give_up_after: u64,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            interval: 600,
            max_per_hour: 4,
            devices: "hash".into(),
            utc_offset: "+08:00".into(),
            max_backoff: 600,
            give_up_after: 86_400,
        }
    }
}

/// `[[policies]]`: actions by category for the places that name the policy.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Its name, for `[[places]] policy`.
    pub name: String,
    /// Category → `block`, `nxdomain`, `shadow`, `off` (or `sinkhole`, `refused`).
    #[serde(default)]
    pub categories: std::collections::BTreeMap<String, String>,
}

/// Durations: a number in the key's own unit (the older form), or a text with its
/// unit, as humantime reads it: "300ms", "10s", "5m", "1d".
mod dur {
    use serde::de::{Deserialize, Deserializer, Error};

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(u64),
        Text(String),
    }

    /// A key counted in seconds.
    pub(super) fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        in_unit(d, 1000, "seconds")
    }

    /// A key counted in milliseconds.
    pub(super) fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        in_unit(d, 1, "milliseconds")
    }

    /// A key counted in seconds, written with its unit ("90s", "1day").
    pub(super) fn secs_out<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(std::time::Duration::from_secs(*v)).to_string())
    }

    /// A key counted in milliseconds, written with its unit ("300ms", "2s").
    pub(super) fn millis_out<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(
            &humantime::format_duration(std::time::Duration::from_millis(*v)).to_string(),
        )
    }

    fn in_unit<'de, D: Deserializer<'de>>(
        d: D,
        unit_ms: u128,
        unit: &str,
    ) -> Result<u64, D::Error> {
        let text = match Written::deserialize(d)? {
            Written::Number(n) => return Ok(n),
            Written::Text(t) => t,
        };
        let ms = humantime::parse_duration(text.trim())
            .map_err(|e| {
                D::Error::custom(format!(
                    "{text:?} is not a duration ({e}); write e.g. \"300ms\", \"10s\", \"5m\" or a number of {unit}"
                ))
            })?
            .as_millis();
        if ms % unit_ms != 0 {
            return Err(D::Error::custom(format!("{text:?}: give whole {unit}")));
        }
        u64::try_from(ms / unit_ms).map_err(|_| D::Error::custom(format!("{text:?} is too long")))
    }
}
