//! Raw sections → typed sections, one function per section (as ripgrep's LowArgs →
//! HiArgs): each refuses what it cannot use with the key, the value and the fix.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::{
    AlertConfig, BlocklistConfig, Config, ConfigError, Devices, DnstapConfig, DnstapTarget,
    FeedConfig, ListConfig, RawAlert, RawAlerts, RawBlocklist, RawCache, RawCategory, RawConfig,
    RawControl, RawDnstap, RawFeed, RawForwardZone, RawList, RawPlace, RawPolicy, RawReport,
    RawResolver, RawServer, RawSinkhole, RawSource, RawUrl, RawWarnpage, ReportConfig,
    ResolverConfig, ResolverMode, ServerConfig, SinkholeConfig, SourceConfig, Unmanaged, UrlConfig,
    WarnpageConfig, invalid,
};
use crate::blocklist::compile::Exceptions;
use crate::blocklist::{Action, MatchMode};
use crate::places::{AlertKind, AlertTarget, Place, PlacePolicy, Places};
use crate::privacy::ClientIp;

/// Where relative paths of the file are taken from.
struct Base<'a>(&'a Path);

impl Base<'_> {
    fn path(&self, p: &str) -> PathBuf {
        let pb = PathBuf::from(p);
        if pb.is_absolute() {
            pb
        } else {
            self.0.join(pb)
        }
    }
    /// `None` for the empty string (the key's "off").
    fn optional(&self, p: &str) -> Option<PathBuf> {
        (!p.is_empty()).then(|| self.path(p))
    }
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

fn parse_sockets(
    key: &str,
    vs: &[String],
    default_port: Option<u16>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    vs.iter()
        .enumerate()
        .map(|(i, v)| parse_socket(&format!("{key}[{i}]"), v, default_port))
        .collect()
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

fn parse_nets(key: &str, vs: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    vs.iter()
        .enumerate()
        .map(|(i, v)| parse_net(&format!("{key}[{i}]"), v))
        .collect()
}

fn parse_action(key: &str, v: &str) -> Result<Action, ConfigError> {
    Action::parse(v).ok_or_else(|| {
        invalid(
            key,
            v,
            "use \"sinkhole\" (or \"block\"), \"nxdomain\", \"refused\", \"shadow\" (resolve, count and report) or \"off\"",
        )
    })
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
        let effective = self.clone();
        let base = Base(base);
        let mut server = server(&self.server)?;
        dot(&mut server, &self.server, &base)?;
        let control = control(&self.control, &self.server.state_dir, &base)?;
        let report = report(&self.report, &self.server.state_dir, &base)?;
        let dnstap = dnstap(&self.dnstap, &report, &base)?;
        let feed = feed(&self.feed, &self.blocklist, &self.server.state_dir, &base)?;
        let resolver = resolver(&self.resolver, &self.forward_zones, &self.cache, &base)?;
        let mut blocklist = blocklist(&self.blocklist, &self.lists, &self.server.state_dir, &base)?;
        let sources = sources(&self.sources, &self.server.state_dir, &base)?;
        if feed.is_some() && !sources.is_empty() {
            return Err(invalid(
                "sources",
                format!("{} source(s)", sources.len()),
                "an appliance following [feed] serves the feed's list only: fetch public lists on the district's build box, or remove [feed]",
            ));
        }
        // Each source's copy is read like any list file, with its own settings.
        if let Some(s) = sources.first() {
            blocklist
                .dirs
                .push(s.file.parent().unwrap_or(Path::new(".")).to_path_buf());
        }
        for (s, raw) in sources.iter().zip(&self.sources) {
            blocklist.lists.push(source_list(s, raw, &base)?);
        }
        let sinkhole = sinkhole(&self.sinkhole, &self.categories)?;
        let warnpage = warnpage(&self.warnpage, &base)?;
        let ops_listen = parse_socket("ops.listen", &self.ops.listen, None)?;
        let community_label = match self.ops.place_label.as_str() {
            "street" => false,
            "community" => true,
            other => {
                return Err(invalid(
                    "ops.place_label",
                    other,
                    "use \"street\" or \"community\" (the values come from [[places]])",
                ));
            }
        };
        let places = places(&self.places, &self.policies, &self.report, &base)?;
        let alerts = alerts(&self.alerts, &report)?;
        let local_records =
            super::local::local_records(&self.local_records).map_err(|(i, e)| {
                invalid(
                    format!("local_records[{i}]"),
                    format!("{:?}", self.local_records[i].name),
                    e.to_string(),
                )
            })?;
        Ok(Config {
            source,
            effective,
            control,
            pending: Vec::new(),
            dnstap,
            feed,
            sources,
            server,
            resolver,
            blocklist,
            sinkhole,
            warnpage,
            url: url(&self.url, &self.places, &base)?,
            ops_listen,
            community_label,
            report,
            alerts,
            places,
            local_records,
            cache: super::CacheConfig {
                serve_stale: Duration::from_secs(self.cache.serve_stale.min(7 * 86_400)),
                prefetch: self.cache.prefetch,
            },
        })
    }
}

/// A `[[sources]]` file read like any list, with its own settings.
fn source_list(
    s: &SourceConfig,
    raw: &RawSource,
    base: &Base<'_>,
) -> Result<ListConfig, ConfigError> {
    let l = RawList {
        path: s.file.display().to_string(),
        category: raw.category.clone(),
        action: raw.action.clone(),
        match_mode: None,
        mode: raw.mode.clone(),
        rpz_actions: None,
        url_paths: raw.url_paths.clone(),
    };
    let mut l = list(0, &l, base).map_err(|e| match e {
        ConfigError::Invalid { value, fix, .. } => ConfigError::Invalid {
            key: format!("sources[{}]", s.name),
            value,
            fix,
        },
        other => other,
    })?;
    // A fetched list may not unblock what the district's lists block.
    l.exceptions = if raw.allow_exceptions {
        Exceptions::Own
    } else {
        Exceptions::Drop
    };
    Ok(l)
}

/// `key` = `v` must lie in `lo..=hi`; the error says so with `hint`.
fn in_range(key: &str, v: usize, lo: usize, hi: usize, hint: &str) -> Result<(), ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(invalid(
            key,
            v.to_string(),
            format!("use {lo} to {hi}; {hint}"),
        ))
    }
}

/// The numeric limits of `[server]`.
fn server_limits(s: &RawServer) -> Result<(), ConfigError> {
    let checks: [(&str, usize, usize, usize, &str); 8] = [
        (
            "server.threads",
            s.threads,
            0,
            256,
            "0 is one thread per core",
        ),
        (
            "server.rate_limit_prefix_v4",
            s.rate_limit_prefix_v4.into(),
            1,
            32,
            "32 (one address) is the default",
        ),
        (
            "server.rate_limit_prefix_v6",
            s.rate_limit_prefix_v6.into(),
            1,
            128,
            "56 (a home's delegated prefix) is the default",
        ),
        (
            "server.tcp_idle_timeout",
            s.tcp_idle_timeout as usize,
            1,
            600,
            "seconds; 10 is the default",
        ),
        (
            "server.tcp_max_connections",
            s.tcp_max_connections,
            1,
            65_536,
            "1024 is the default",
        ),
        (
            "server.tcp_per_client",
            s.tcp_per_client,
            1,
            s.tcp_max_connections,
            "up to server.tcp_max_connections; 16 is the default",
        ),
        (
            "server.max_inflight",
            s.max_inflight,
            1,
            1_000_000,
            "2048 is the default (about 25 KB each in forward mode)",
        ),
        (
            "server.max_inflight_per_client",
            s.max_inflight_per_client,
            1,
            s.max_inflight,
            "up to server.max_inflight; 100 is the default",
        ),
    ];
    for (key, v, lo, hi, hint) in checks {
        in_range(key, v, lo, hi, hint)?;
    }
    Ok(())
}

fn server(s: &RawServer) -> Result<ServerConfig, ConfigError> {
    if s.listen.is_empty() {
        return Err(invalid(
            "server.listen",
            "[]",
            "give at least one address, e.g. [\"127.0.0.1:5353\"]",
        ));
    }
    let listen = parse_sockets("server.listen", &s.listen, None)?;
    let acl = parse_nets("server.acl", &s.acl)?;
    let allow_snoop = parse_nets("server.allow_snoop", &s.allow_snoop)?;
    let rate_limit_exempt = parse_nets("server.rate_limit_exempt", &s.rate_limit_exempt)?;
    let proxy_from = parse_nets("server.proxy_from", &s.proxy_from)?;
    if s.state_dir.is_empty() {
        return Err(invalid(
            "server.state_dir",
            "",
            "give a writable directory, e.g. \"/var/lib/fanzha\"",
        ));
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
    server_limits(s)?;
    let log_json = match s.log_format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(invalid(
                "server.log_format",
                other,
                "use \"text\" or \"json\"",
            ));
        }
    };
    Ok(ServerConfig {
        listen,
        // Filled by `dot`, which resolves the certificate paths.
        listen_tls: Vec::new(),
        tls: None,
        tls_handshake_timeout: Duration::from_secs(s.tls_handshake_timeout.max(1)),
        listen_https: Vec::new(),
        dns_name: String::new(),
        https_max_streams: s.https_max_streams.clamp(1, 1000),
        place_rate_limit: s.place_rate_limit,
        acl,
        allow_snoop,
        rate_limit: s.rate_limit,
        rate_limit_burst: if s.rate_limit_burst == 0 {
            s.rate_limit.saturating_mul(2)
        } else {
            s.rate_limit_burst
        },
        rate_limit_drop,
        rate_limit_prefix_v4: s.rate_limit_prefix_v4,
        rate_limit_prefix_v6: s.rate_limit_prefix_v6,
        rate_limit_exempt,
        proxy_from,
        doh_canary: s.doh_canary,
        log_json,
        tcp_idle_timeout: Duration::from_secs(s.tcp_idle_timeout),
        tcp_max_age: (s.tcp_max_age > 0).then(|| Duration::from_secs(s.tcp_max_age)),
        tcp_max_connections: s.tcp_max_connections,
        max_inflight: s.max_inflight,
        max_inflight_per_client: s.max_inflight_per_client,
        tcp_per_client: s.tcp_per_client,
        threads: s.threads,
    })
}

/// `[resolver]`, with `[[forward_zones]]` and the byte budget of `[cache]`, which
/// the resolver's caches share with the answer cache.
fn resolver(
    r: &RawResolver,
    zones: &[RawForwardZone],
    cache: &RawCache,
    base: &Base<'_>,
) -> Result<ResolverConfig, ConfigError> {
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
    let root_hints = parse_sockets("resolver.root_hints", &r.root_hints, Some(53))?;
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
    let mut nodefault = Vec::new();
    for (i, z) in r.nodefault.iter().enumerate() {
        let zone = z.trim_end_matches('.').to_ascii_lowercase();
        if !super::DEFAULT_LOCAL_ZONES.contains(&zone.as_str()) {
            return Err(invalid(
                format!("resolver.nodefault[{i}]"),
                z,
                "name one of the locally served zones listed in config/fanzha.toml, e.g. \"10.in-addr.arpa\"",
            ));
        }
        nodefault.push(zone);
    }
    Ok(ResolverConfig {
        mode,
        root_hints,
        upstreams: r.upstreams.clone(),
        allow_nameservers: parse_nets("resolver.allow_nameservers", &r.allow_nameservers)?,
        dnssec: r.dnssec,
        qname_minimisation: r.qname_minimisation,
        timeout: Duration::from_millis(r.timeout_ms),
        trust_anchor: base.optional(&r.trust_anchor),
        tls_ca: base.optional(&r.tls_ca),
        cache_size: r.cache_size,
        cache_max_bytes: cache_bytes(cache)?,
        nameserver_ports,
        local_zones: r.local_zones,
        nodefault,
        forward_zones: forward_zones(zones)?,
    })
}

/// `[[forward_zones]]`: a DNS name each, and at least one valid upstream.
fn forward_zones(zones: &[RawForwardZone]) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let mut out = Vec::new();
    for (i, z) in zones.iter().enumerate() {
        let name = format!(
            "{}.",
            z.name.trim().trim_end_matches('.').to_ascii_lowercase()
        );
        if name == "." || hickory_proto::rr::Name::from_ascii(&name).is_err() {
            return Err(invalid(
                format!("forward_zones[{i}].name"),
                &z.name,
                "give the zone's name, e.g. \"corp.lan\"",
            ));
        }
        if z.upstreams.is_empty() {
            return Err(invalid(
                format!("forward_zones[{i}].upstreams"),
                "[]",
                "give at least one upstream, e.g. [\"udp://10.0.0.53:53\"]",
            ));
        }
        for (j, u) in z.upstreams.iter().enumerate() {
            validate_upstream(&format!("forward_zones[{i}].upstreams[{j}]"), u)?;
        }
        out.push((name, z.upstreams.clone()));
    }
    Ok(out)
}

fn cache_bytes(c: &RawCache) -> Result<u64, ConfigError> {
    if c.max_bytes < 1 << 20 {
        return Err(invalid(
            "cache.max_bytes",
            c.max_bytes.to_string(),
            "give at least 1048576 (1 MiB); 67108864 (64 MiB) is the default",
        ));
    }
    Ok(c.max_bytes)
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

fn blocklist(
    b: &RawBlocklist,
    lists: &[RawList],
    state_dir: &str,
    base: &Base<'_>,
) -> Result<BlocklistConfig, ConfigError> {
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
    Ok(BlocklistConfig {
        dirs: b.dirs.iter().map(|d| base.path(d)).collect(),
        allow_dirs: b.allow_dirs.iter().map(|d| base.path(d)).collect(),
        compiled: base.optional(&b.compiled),
        deltas: Vec::new(),
        never_block: base.optional(&b.never_block),
        max_drop: b.max_drop,
        debounce: Duration::from_millis(b.debounce_ms),
        default_category: b.default_category.to_ascii_lowercase(),
        lists: lists
            .iter()
            .enumerate()
            .map(|(i, l)| list(i, l, base))
            .collect::<Result<_, _>>()?,
        state_dir: base.path(state_dir),
    })
}

fn list(i: usize, l: &RawList, base: &Base<'_>) -> Result<ListConfig, ConfigError> {
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
    let action = match l.mode.as_deref() {
        None | Some("block") => action,
        Some("shadow") => Some(Action::Shadow),
        Some(other) => {
            return Err(invalid(
                format!("lists[{i}].mode"),
                other,
                "use \"shadow\" (resolve, count and report: a trial) or \"block\"",
            ));
        }
    };
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
    let url_paths_host = match l.url_paths.as_deref() {
        None | Some("page") => None,
        Some("host") => Some(true),
        Some(other) => {
            return Err(invalid(
                format!("lists[{i}].url_paths"),
                other,
                "use \"page\" (the URL's page, through the URL proxy) or \"host\" (its whole host)",
            ));
        }
    };
    Ok(ListConfig {
        path: base.path(&l.path),
        category: l.category.clone().map(|c| c.to_ascii_lowercase()),
        action,
        match_mode,
        exceptions: Exceptions::Keep,
        rpz_actions: l.rpz_actions,
        url_paths_host,
    })
}

fn sinkhole(
    sk: &RawSinkhole,
    categories: &BTreeMap<String, RawCategory>,
) -> Result<SinkholeConfig, ConfigError> {
    let mut category_actions = BTreeMap::new();
    for (name, c) in categories {
        if let Some(a) = &c.action {
            category_actions.insert(
                name.to_ascii_lowercase(),
                parse_action(&format!("categories.{name}.action"), a)?,
            );
        }
    }
    let v4 = sk.ipv4.parse::<Ipv4Addr>().map_err(|_| {
        invalid(
            "sinkhole.ipv4",
            &sk.ipv4,
            "give the IPv4 address of the warning page, e.g. \"127.0.0.1\"",
        )
    })?;
    let v6 = if sk.ipv6 == "none" {
        None
    } else if sk.ipv6.is_empty() {
        tracing::warn!(
            "sinkhole.ipv6 = \"\" is the old spelling of \"none\" (AAAA answered with no data); write \"none\""
        );
        None
    } else {
        Some(sk.ipv6.parse::<Ipv6Addr>().map_err(|_| {
            invalid(
                "sinkhole.ipv6",
                &sk.ipv6,
                "give an IPv6 address, e.g. \"::1\", or \"none\" to answer AAAA with no data",
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
    Ok(SinkholeConfig {
        v4,
        v6,
        ttl: sk.ttl,
        category_actions,
    })
}

/// DNS over TLS: its addresses, and the certificate and key it needs.
fn dot(c: &mut ServerConfig, s: &RawServer, base: &Base<'_>) -> Result<(), ConfigError> {
    c.listen_tls = parse_sockets("server.listen_tls", &s.listen_tls, Some(853))?;
    c.tls = match (s.tls_cert.is_empty(), s.tls_key.is_empty()) {
        (true, true) => None,
        (false, false) => Some((base.path(&s.tls_cert), base.path(&s.tls_key))),
        (false, true) => {
            return Err(invalid(
                "server.tls_key",
                "",
                "give the private key of server.tls_cert (PEM), or remove tls_cert",
            ));
        }
        (true, false) => {
            return Err(invalid(
                "server.tls_cert",
                "",
                "give the certificate chain (PEM) for server.tls_key, or remove tls_key",
            ));
        }
    };
    c.listen_https = parse_sockets("server.listen_https", &s.listen_https, Some(443))?;
    if !c.listen_https.is_empty() && c.tls.is_none() {
        return Err(invalid(
            "server.listen_https",
            format!("{:?}", s.listen_https),
            "DNS over HTTPS needs server.tls_cert and server.tls_key; without them leave listen_https empty",
        ));
    }
    let name = s.dns_name.trim_end_matches('.').to_ascii_lowercase();
    if !name.is_empty()
        && (hickory_proto::rr::Name::from_ascii(&name).is_err()
            || name.split('.').any(|l| !place_id_ok(l)))
    {
        return Err(invalid(
            "server.dns_name",
            &s.dns_name,
            "give a host name such as \"dns.district.example\", covered by the certificate with its wildcard (*.dns.district.example)",
        ));
    }
    c.dns_name = name;
    if !c.listen_tls.is_empty() && c.tls.is_none() {
        return Err(invalid(
            "server.listen_tls",
            format!("{:?}", s.listen_tls),
            "DNS over TLS needs server.tls_cert and server.tls_key; without them leave listen_tls empty",
        ));
    }
    Ok(())
}

/// A certificate and its key, both given or neither: `keys` are their names in the
/// file, `what` what the pair is for.
fn cert_pair(
    keys: (&str, &str),
    values: (&str, &str),
    what: &str,
    base: &Base<'_>,
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (values.0.is_empty(), values.1.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some((base.path(values.0), base.path(values.1)))),
        (false, true) => Err(invalid(
            keys.1,
            "",
            format!(
                "give the private key of {} (PEM), or remove {}",
                keys.0, keys.0
            ),
        )),
        (true, false) => Err(invalid(
            keys.0,
            "",
            format!(
                "give the certificate {what} (PEM) of {}, or remove {}",
                keys.1, keys.1
            ),
        )),
    }
}

/// The addresses DNS gives out for the proxy: as configured, else its listeners'.
fn url_answers(
    u: &RawUrl,
    listen: &[SocketAddr],
    listen_tls: &[SocketAddr],
) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), ConfigError> {
    let all = || listen.iter().chain(listen_tls).map(|a| a.ip());
    let v4 = match u.ipv4.as_str() {
        "" => all().find_map(|a| match a {
            IpAddr::V4(v) if !v.is_unspecified() => Some(v),
            _ => None,
        }),
        s => Some(s.parse::<Ipv4Addr>().map_err(|_| {
            invalid(
                "url.ipv4",
                s,
                "give the IPv4 address the proxy listens on, e.g. \"10.0.0.54\"",
            )
        })?),
    };
    let v6 = match u.ipv6.as_str() {
        "none" => None,
        "" => all().find_map(|a| match a {
            IpAddr::V6(v) if !v.is_unspecified() => Some(v),
            _ => None,
        }),
        s => Some(s.parse::<Ipv6Addr>().map_err(|_| {
            invalid(
                "url.ipv6",
                s,
                "give the proxy's IPv6 address, or \"none\" to answer AAAA with no data",
            )
        })?),
    };
    Ok((v4, v6))
}

/// The URL proxy's caps and timeouts.
fn url_limits(u: &RawUrl) -> Result<(), ConfigError> {
    let checks: [(&str, usize, usize, usize, &str); 5] = [
        (
            "url.max_connections",
            u.max_connections,
            1,
            1 << 20,
            "4096 is the default",
        ),
        (
            "url.per_client",
            u.per_client,
            1,
            1 << 16,
            "64 is the default",
        ),
        (
            "url.idle_timeout",
            u.idle_timeout as usize,
            1,
            3600,
            "seconds; 60 is the default",
        ),
        (
            "url.header_bytes",
            u.header_bytes,
            1024,
            1 << 20,
            "16384 is the default",
        ),
        (
            "url.connect_timeout",
            u.connect_timeout as usize,
            1,
            120,
            "seconds; 10 is the default",
        ),
    ];
    for (key, v, lo, hi, hint) in checks {
        in_range(key, v, lo, hi, hint)?;
    }
    Ok(())
}

/// The URL proxy: its addresses, the answer DNS gives for its hosts, its CA.
fn url(u: &RawUrl, places: &[RawPlace], base: &Base<'_>) -> Result<UrlConfig, ConfigError> {
    let listen = parse_sockets("url.listen", &u.listen, Some(80))?;
    let listen_tls = parse_sockets("url.listen_tls", &u.listen_tls, Some(443))?;
    let ca = cert_pair(
        ("url.ca_cert", "url.ca_key"),
        (&u.ca_cert, &u.ca_key),
        "of the district's CA",
        base,
    )?;
    let (v4, v6) = url_answers(u, &listen, &listen_tls)?;
    let enabled = !listen.is_empty() || !listen_tls.is_empty();
    if enabled && v4.is_none() && v6.is_none() {
        return Err(invalid(
            "url.ipv4",
            "",
            "the proxy listens on no specific address: give the address clients reach it at (url.ipv4 or url.ipv6)",
        ));
    }
    if let Some(i) = places.iter().position(|p| p.managed_tls)
        && (ca.is_none() || listen_tls.is_empty())
    {
        return Err(invalid(
            format!("places[{i}].managed_tls"),
            "true",
            "a managed place needs the proxy's HTTPS: set url.listen_tls, url.ca_cert and url.ca_key (the CA its devices trust), or remove managed_tls",
        ));
    }
    let unmanaged = match u.unmanaged.as_str() {
        "passthrough" => Unmanaged::Passthrough,
        "resolve" => Unmanaged::Resolve,
        other => {
            return Err(invalid(
                "url.unmanaged",
                other,
                "use \"passthrough\" (plain HTTP checked, HTTPS relayed unopened) or \"resolve\" (not sent to the proxy)",
            ));
        }
    };
    url_limits(u)?;
    Ok(UrlConfig {
        listen,
        listen_tls,
        v4,
        v6,
        ca,
        unmanaged,
        relay_private: parse_nets("url.relay_private", &u.relay_private)?,
        upstream_ca: u.upstream_ca.iter().map(|p| base.path(p)).collect(),
        max_connections: u.max_connections,
        per_client: u.per_client,
        idle_timeout: Duration::from_secs(u.idle_timeout),
        header_bytes: u.header_bytes,
        connect_timeout: Duration::from_secs(u.connect_timeout),
    })
}

fn warnpage(w: &RawWarnpage, base: &Base<'_>) -> Result<WarnpageConfig, ConfigError> {
    let listen = parse_sockets("warnpage.listen", &w.listen, None)?;
    let tls = cert_pair(
        ("warnpage.tls_cert", "warnpage.tls_key"),
        (&w.tls_cert, &w.tls_key),
        "chain",
        base,
    )?;
    let mut https = parse_sockets("warnpage.https_listen", &w.https_listen, Some(443))?;
    if tls.is_none() {
        if !https.is_empty() {
            return Err(invalid(
                "warnpage.https_listen",
                format!("{:?}", w.https_listen),
                "HTTPS needs warnpage.tls_cert and warnpage.tls_key; without them leave https_listen empty",
            ));
        }
    } else if https.is_empty() {
        https = listen
            .iter()
            .map(|a| SocketAddr::new(a.ip(), 443))
            .collect();
    }
    if w.per_client == 0 || w.per_client > 4096 {
        return Err(invalid(
            "warnpage.per_client",
            w.per_client.to_string(),
            "use 1 to 4096 connections per address; 32 is the default",
        ));
    }
    let profile_signer = cert_pair(
        ("warnpage.profile_cert", "warnpage.profile_key"),
        (&w.profile_cert, &w.profile_key),
        "chain",
        base,
    )?;
    Ok(WarnpageConfig {
        listen,
        templates: base.optional(&w.templates),
        https,
        tls,
        per_client: w.per_client,
        profile_signer,
    })
}

/// Longest path a Unix socket address holds (`sun_path`, with its final NUL).
const SUN_PATH_MAX: usize = 107;

fn control(
    c: &RawControl,
    state_dir: &str,
    base: &Base<'_>,
) -> Result<Option<PathBuf>, ConfigError> {
    if !c.enabled {
        return Ok(None);
    }
    let path = match &c.socket {
        Some(p) if p.trim().is_empty() => {
            return Err(invalid(
                "control.socket",
                p,
                "give a path such as \"/run/fanzha/control.sock\", or enabled = false to turn the control socket off",
            ));
        }
        Some(p) => base.path(p),
        None => base.path(state_dir).join("control.sock"),
    };
    if path.as_os_str().len() > SUN_PATH_MAX {
        return Err(invalid(
            "control.socket",
            path.display().to_string(),
            format!("a Unix socket path holds at most {SUN_PATH_MAX} bytes; give a shorter one"),
        ));
    }
    Ok(Some(path))
}

fn dnstap(
    d: &RawDnstap,
    report: &ReportConfig,
    base: &Base<'_>,
) -> Result<Option<DnstapConfig>, ConfigError> {
    let target = match (&d.socket, &d.tcp) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "dnstap.tcp",
                d.tcp.as_deref().unwrap_or(""),
                "give dnstap.socket or dnstap.tcp, not both",
            ));
        }
        (Some(p), None) => {
            let path = base.path(p);
            if p.trim().is_empty() || path.as_os_str().len() > SUN_PATH_MAX {
                return Err(invalid(
                    "dnstap.socket",
                    p,
                    format!(
                        "give the collector's Unix socket path (at most {SUN_PATH_MAX} bytes), e.g. \"/run/fanzha/dnstap.sock\""
                    ),
                ));
            }
            DnstapTarget::Unix(path)
        }
        (None, Some(t)) => {
            let port = t.rsplit_once(':').and_then(|(h, p)| {
                (!h.is_empty()).then_some(())?;
                p.parse::<u16>().ok().filter(|p| *p != 0)
            });
            if port.is_none() {
                return Err(invalid(
                    "dnstap.tcp",
                    t,
                    "give the collector as \"host:port\", e.g. \"10.0.0.9:6000\" or \"[fd00::9]:6000\"",
                ));
            }
            DnstapTarget::Tcp(t.clone())
        }
    };
    let mut client_query = false;
    let mut client_response = false;
    for (i, what) in d.log.iter().enumerate() {
        match what.as_str() {
            "client_query" => client_query = true,
            "client_response" => client_response = true,
            _ => {
                return Err(invalid(
                    format!("dnstap.log[{i}]"),
                    what,
                    "use \"client_query\" and/or \"client_response\"",
                ));
            }
        }
    }
    if !client_query && !client_response {
        return Err(invalid(
            "dnstap.log",
            "[]",
            "log \"client_query\", \"client_response\" or both; to turn dnstap off, remove socket and tcp",
        ));
    }
    let client_ip = ClientIp::parse(&d.client_ip).ok_or_else(|| {
        invalid(
            "dnstap.client_ip",
            &d.client_ip,
            "use \"full\", \"truncate\" (/24 and /56) or \"hash\" (keyed with the report's local key)",
        )
    })?;
    if !(0.0..=1.0).contains(&d.sample) {
        return Err(invalid(
            "dnstap.sample",
            d.sample.to_string(),
            "give the share of allowed queries to log, from 0.0 to 1.0 (blocked ones are always logged)",
        ));
    }
    if d.queue == 0 || d.queue > 1_000_000 {
        return Err(invalid(
            "dnstap.queue",
            d.queue.to_string(),
            "use 1 to 1000000 frames; 10000 is the default",
        ));
    }
    let identity = match &d.identity {
        Some(i) => i.clone(),
        None => hostname(),
    };
    Ok(Some(DnstapConfig {
        target,
        identity,
        client_query,
        client_response,
        client_ip,
        hash_key_file: report.hash_key_file.clone(),
        sample: d.sample,
        queue: d.queue,
    }))
}

fn sources(
    raw: &[RawSource],
    state_dir: &str,
    base: &Base<'_>,
) -> Result<Vec<SourceConfig>, ConfigError> {
    let dir = base.path(state_dir).join("sources");
    let mut out: Vec<SourceConfig> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let key = |k: &str| format!("sources[{i}].{k}");
        if !(s.url.starts_with("https://") || s.url.starts_with("http://")) {
            return Err(invalid(
                key("url"),
                &s.url,
                "give the list's http:// or https:// URL",
            ));
        }
        let name = match &s.name {
            Some(n) => n.clone(),
            None => source_name(&s.url),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || name.starts_with('.')
        {
            return Err(invalid(
                key("name"),
                &name,
                "use letters, digits, '-', '_' and '.' only",
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(invalid(
                key("name"),
                &name,
                "two sources have this name; give each its own name",
            ));
        }
        if s.refresh < 1000 {
            return Err(invalid(
                key("refresh"),
                format!("{}ms", s.refresh),
                "refresh at most once a second; \"6h\" is the default",
            ));
        }
        let sha256 = match &s.sha256 {
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(h.to_ascii_lowercase())
            }
            Some(h) => {
                return Err(invalid(
                    key("sha256"),
                    h,
                    "give the 64 hex digits of the file's sha256",
                ));
            }
            None => None,
        };
        out.push(SourceConfig {
            url: s.url.clone(),
            file: dir.join(format!("{name}.txt")),
            name,
            refresh: Duration::from_millis(s.refresh),
            sha256,
            max_bytes: s.max_bytes,
            tls_ca: s.tls_ca.as_deref().map(|p| base.path(p)),
        });
    }
    Ok(out)
}

/// A file name for a source from its URL: host and last path part ("example.org-hosts").
fn source_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("");
    let last = rest
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .filter(|l| !l.is_empty() && *l != host)
        .map(|l| l.rsplit_once('.').map_or(l, |(stem, _)| stem))
        .unwrap_or("");
    let raw = if last.is_empty() {
        host.to_string()
    } else {
        format!("{host}-{last}")
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn feed(
    f: &RawFeed,
    b: &RawBlocklist,
    state_dir: &str,
    base: &Base<'_>,
) -> Result<Option<FeedConfig>, ConfigError> {
    let Some(url) = &f.url else {
        return Ok(None);
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid(
            "feed.url",
            url,
            "give the manifest's URL, e.g. \"https://feed.district.example/fanzha/manifest.json\"",
        ));
    }
    if !b.compiled.is_empty() {
        return Err(invalid(
            "blocklist.compiled",
            &b.compiled,
            "a feed supplies the compiled list: remove blocklist.compiled, or remove [feed] url",
        ));
    }
    let public_key = match (&f.public_key, &f.public_key_file) {
        (Some(k), None) => k.trim().to_string(),
        (None, Some(p)) => {
            let path = base.path(p);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    "feed.public_key_file",
                    path.display().to_string(),
                    format!("cannot read it ({e}); give the .pub file of `fanzha keygen` or `minisign -G`"),
                )
            })?;
            // The key is the last non-empty line (after "untrusted comment: …").
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string()
        }
        _ => {
            return Err(invalid(
                "feed.public_key",
                "",
                "give the publisher's minisign public key in public_key (\"RW…\") or public_key_file, one of them",
            ));
        }
    };
    if let Err(e) = minisign_verify::PublicKey::from_base64(&public_key) {
        return Err(invalid(
            "feed.public_key",
            &public_key,
            format!("not a minisign public key ({e}); copy it from the publisher's .pub file"),
        ));
    }
    if f.poll < 1000 {
        return Err(invalid(
            "feed.poll",
            format!("{}ms", f.poll),
            "poll at most once a second (\"1s\"); \"30s\" is the default",
        ));
    }
    Ok(Some(FeedConfig {
        url: url.clone(),
        public_key,
        poll: Duration::from_millis(f.poll),
        tls_ca: f.tls_ca.as_deref().map(|p| base.path(p)),
        proxy: f.proxy.clone(),
        max_bytes: f.max_bytes,
        dir: base.path(state_dir).join("feed"),
    }))
}

/// This machine's host name ("fanzha" when it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "fanzha".into())
}

/// The report secret: `secret`, or the contents of `secret_file`.
fn report_secret(rp: &RawReport, base: &Base<'_>) -> Result<String, ConfigError> {
    if rp.secret_file.is_empty() {
        return Ok(rp.secret.clone());
    }
    if !rp.secret.is_empty() {
        return Err(invalid(
            "report.secret_file",
            &rp.secret_file,
            "give the secret in report.secret or in report.secret_file, not both",
        ));
    }
    secret_file("report.secret_file", &rp.secret_file, base)
}

/// The contents of a secret file (key `key`), trimmed: looked up in systemd's
/// `$CREDENTIALS_DIRECTORY` first when relative, so that `LoadCredential=` keeps it
/// out of the world-readable config.
fn secret_file(key: &str, file: &str, base: &Base<'_>) -> Result<String, ConfigError> {
    let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|d| std::path::Path::new(&d).join(file))
        .filter(|p| !std::path::Path::new(file).is_absolute() && p.exists());
    let path = credential.unwrap_or_else(|| base.path(file));
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) => Err(invalid(
            key,
            path.display().to_string(),
            format!(
                "cannot read it ({e}); give a readable file, or LoadCredential= it in the unit"
            ),
        )),
    }
}

/// `[alerts]`, with the report's spool directory, hashing key and appliance id.
fn alerts(ra: &RawAlerts, report: &ReportConfig) -> Result<AlertConfig, ConfigError> {
    if !(1..=86_400).contains(&ra.interval) {
        return Err(invalid(
            "alerts.interval",
            ra.interval.to_string(),
            "give 1s to 1d; \"10m\" is the default",
        ));
    }
    if !(1..=60).contains(&ra.max_per_hour) {
        return Err(invalid(
            "alerts.max_per_hour",
            ra.max_per_hour.to_string(),
            "give 1 to 60 digests per place per hour",
        ));
    }
    let devices = Devices::parse(&ra.devices).ok_or_else(|| {
        invalid(
            "alerts.devices",
            &ra.devices,
            "use \"hash\" (the reports' keyed hash, 8 digits), \"truncate\" (/24, /56), \"keep\" or \"none\"",
        )
    })?;
    let utc_offset = parse_utc_offset(&ra.utc_offset).ok_or_else(|| {
        invalid(
            "alerts.utc_offset",
            &ra.utc_offset,
            "write the zone as \"+08:00\" (China) or \"-05:00\"",
        )
    })?;
    Ok(AlertConfig {
        interval: Duration::from_secs(ra.interval),
        max_per_hour: ra.max_per_hour,
        devices,
        utc_offset,
        max_backoff: Duration::from_secs(ra.max_backoff.max(1)),
        give_up_after: Duration::from_secs(ra.give_up_after.max(60)),
        dir: report.spool_dir.join("alerts"),
        hash_key_file: report.hash_key_file.clone(),
        appliance: report.appliance.clone(),
        fsync: report.fsync,
    })
}

/// "+08:00" → 28800 seconds east of UTC.
fn parse_utc_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60 && rest.len() == 5).then_some(sign * (h * 3600 + m * 60))
}

/// `[[places]] alert`, checked: a known kind, a URL, and the secret each kind needs.
fn place_alert(i: usize, a: &RawAlert, base: &Base<'_>) -> Result<AlertTarget, ConfigError> {
    let key = |k: &str| format!("places[{i}].alert.{k}");
    let kind = match a.kind.as_str() {
        "dingtalk" => AlertKind::DingTalk,
        "wecom" => AlertKind::WeCom,
        "webhook" => AlertKind::Webhook,
        other => {
            return Err(invalid(
                key("kind"),
                other,
                "use \"dingtalk\", \"wecom\" or \"webhook\"",
            ));
        }
    };
    if !(a.url.starts_with("https://") || a.url.starts_with("http://")) || a.url.len() < 10 {
        return Err(invalid(
            key("url"),
            &a.url,
            "give the robot's webhook URL (https://oapi.dingtalk.com/robot/send?access_token=…, https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…)",
        ));
    }
    if kind == AlertKind::WeCom && !a.url.contains("key=") {
        return Err(invalid(
            key("url"),
            &a.url,
            "a WeCom robot's URL carries its key: …/cgi-bin/webhook/send?key=…",
        ));
    }
    let secret = match (kind, a.secret_file.is_empty()) {
        (AlertKind::WeCom, false) => {
            return Err(invalid(
                key("secret_file"),
                &a.secret_file,
                "a WeCom robot takes no secret (its key is in the URL); remove secret_file",
            ));
        }
        (AlertKind::Webhook, true) => {
            return Err(invalid(
                key("secret_file"),
                "",
                "a webhook is signed: give a file holding a secret of at least 16 characters",
            ));
        }
        (_, true) => String::new(),
        (_, false) => secret_file(&key("secret_file"), &a.secret_file, base)?,
    };
    if kind == AlertKind::Webhook && secret.len() < 16 {
        return Err(invalid(
            key("secret_file"),
            &a.secret_file,
            "give a secret of at least 16 characters",
        ));
    }
    Ok(AlertTarget {
        kind,
        url: a.url.clone(),
        secret,
    })
}

fn report(rp: &RawReport, state_dir: &str, base: &Base<'_>) -> Result<ReportConfig, ConfigError> {
    let secret = report_secret(rp, base)?;
    if !rp.url.is_empty() {
        if !(rp.url.starts_with("http://") || rp.url.starts_with("https://")) {
            return Err(invalid(
                "report.url",
                &rp.url,
                "use an http:// or https:// URL, or \"\" to turn reporting off",
            ));
        }
        if secret.len() < 16 {
            return Err(invalid(
                "report.secret",
                "<hidden>",
                "give a shared secret of at least 16 characters (in secret or secret_file)",
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
    let client_ip = ClientIp::parse(&rp.client_ip).ok_or_else(|| {
        invalid(
            "report.client_ip",
            &rp.client_ip,
            "use \"keep\", \"truncate\" (/24 and /56) or \"hash\" (keyed with a local key)",
        )
    })?;
    let encrypted_client_ip = ClientIp::parse(&rp.encrypted_client_ip).ok_or_else(|| {
        invalid(
            "report.encrypted_client_ip",
            &rp.encrypted_client_ip,
            "use \"truncate\" (the default), \"hash\" or \"keep\"",
        )
    })?;
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
    Ok(ReportConfig {
        url: (!rp.url.is_empty()).then(|| rp.url.clone()),
        ca: base.optional(&rp.tls_ca),
        spool_dir: base.path(&rp.spool_dir),
        spool_max_bytes: rp.spool_max_bytes,
        batch_events: rp.batch_events,
        batch_bytes: rp.batch_bytes,
        dedup_window: Duration::from_secs(rp.dedup_window),
        appliance: rp.appliance.clone(),
        client_ip,
        encrypted_client_ip,
        secret,
        hash_key_file: if rp.hash_key_file.is_empty() {
            base.path(state_dir).join("report-hash.key")
        } else {
            base.path(&rp.hash_key_file)
        },
        fsync: rp.fsync,
        max_backoff: Duration::from_secs(rp.max_backoff.max(1)),
    })
}

/// `[[policies]]`, checked: unique names, known actions.
fn policies(raw: &[RawPolicy]) -> Result<Vec<PlacePolicy>, ConfigError> {
    let mut out: Vec<PlacePolicy> = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        if p.name.is_empty() || out.iter().any(|o| o.name == p.name) {
            return Err(invalid(
                format!("policies[{i}].name"),
                &p.name,
                "give each [[policies]] entry a name of its own",
            ));
        }
        let mut categories = Vec::with_capacity(p.categories.len());
        for (c, a) in &p.categories {
            let key = format!("policies[{i}].categories.{c}");
            categories.push((c.to_ascii_lowercase(), parse_action(&key, a)?));
        }
        out.push(PlacePolicy {
            name: p.name.clone(),
            categories,
        });
    }
    if out.len() > usize::from(u16::MAX) {
        return Err(invalid(
            "policies",
            out.len().to_string(),
            "use fewer policies",
        ));
    }
    Ok(out)
}

/// `[[places]]`, with the `[report] default_*` place for clients in none of them.
fn places(
    places: &[RawPlace],
    raw_policies: &[RawPolicy],
    rp: &RawReport,
    base: &Base<'_>,
) -> Result<Places, ConfigError> {
    let policies = policies(raw_policies)?;
    let mut nets = Vec::with_capacity(places.len());
    let mut alerts = Vec::new();
    let mut named = Vec::new();
    for (i, p) in places.iter().enumerate() {
        let alert = match &p.alert {
            None => None,
            Some(a) => {
                alerts.push(place_alert(i, a, base)?);
                Some((alerts.len() - 1) as u16)
            }
        };
        let net = if p.cidr.is_empty() && p.id.is_some() {
            None
        } else {
            Some(parse_net(&format!("places[{i}].cidr"), &p.cidr)?)
        };
        let policy =
            match &p.policy {
                None => None,
                Some(name) => Some(policies.iter().position(|q| &q.name == name).ok_or_else(
                    || {
                        invalid(
                            format!("places[{i}].policy"),
                            name,
                            "name a [[policies]] entry (or remove the key for the global actions)",
                        )
                    },
                )? as u16),
            };
        if p.district.is_empty() {
            return Err(invalid(
                format!("places[{i}].district"),
                "",
                "name the district (区) of this subnet",
            ));
        }
        let place = Place {
            district: p.district.clone(),
            street: p.street.clone(),
            community: p.community.clone(),
            policy,
            alert,
            managed_tls: p.managed_tls,
        };
        if let Some(id) = &p.id {
            let key = format!("places[{i}].id");
            if !place_id_ok(id) {
                return Err(invalid(
                    key,
                    id,
                    "use 1 to 63 of a-z, 0-9 and '-', not at either end: it becomes a DNS label (<id>.<server.dns_name>) and a URL path (/dns-query/<id>)",
                ));
            }
            if named
                .iter()
                .any(|(n, _): &(String, Place)| n.eq_ignore_ascii_case(id))
            {
                return Err(invalid(key, id, "give each place its own id"));
            }
            named.push((id.to_ascii_lowercase(), place.clone()));
        }
        if let Some(net) = net {
            nets.push((net, place));
        }
    }
    let default = Place {
        district: rp.default_district.clone(),
        street: rp.default_street.clone(),
        community: rp.default_community.clone(),
        policy: None,
        alert: None,
        managed_tls: false,
    };
    Ok(Places::new(nets, default)
        .with_policies(policies)
        .with_alerts(alerts)
        .with_named(named))
}

/// Whether `id` can be a place's private DNS name: one DNS label of letters, digits
/// and hyphens (LDH), which is also safe in a URL path.
pub(crate) fn place_id_ok(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}
