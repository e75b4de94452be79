//! Resolver backends: fanzha's iterator from the root hints (with hickory's DNSSEC
//! validator on top when validating), or a forwarder to upstreams, behind one
//! `resolve` that never takes longer than a deadline.

pub mod anchor;
pub mod iterate;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::{Proof, TrustAnchors};
use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig as HickoryResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{ConnectionProvider, PoolContext, Resolver, TlsConfig};
use ipnet::IpNet;

use self::anchor::Anchors;
use self::iterate::handle::IterHandle;
use self::iterate::{Recursor, Settings, Step, default_deny, soa_in};
use crate::config::{Config, ResolverConfig, ResolverMode};
use crate::metrics::Metrics;
use futures_util::StreamExt;
use hickory_proto::dnssec::rdata::DS;
use hickory_proto::op::DnsRequestOptions;
use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::xfer::DnsHandle;

/// The IANA root servers (a–m), IPv4 and IPv6.
pub const ROOT_HINTS: &[&str] = &[
    "198.41.0.4",
    "2001:503:ba3e::2:30",
    "170.247.170.2",
    "2801:1b8:10::b",
    "192.33.4.12",
    "2001:500:2::c",
    "199.7.91.13",
    "2001:500:2d::d",
    "192.203.230.10",
    "2001:500:a8::e",
    "192.5.5.241",
    "2001:500:2f::f",
    "192.112.36.4",
    "2001:500:12::d0d",
    "198.97.190.53",
    "2001:500:1::53",
    "192.36.148.17",
    "2001:7fe::53",
    "192.58.128.30",
    "2001:503:c27::2:30",
    "193.0.14.129",
    "2001:7fd::1",
    "199.7.83.42",
    "2001:500:9f::42",
    "202.12.27.33",
    "2001:dc3::35",
];

/// What a resolution produced.
#[derive(Debug)]
pub enum Resolved {
    /// Records for the question (the CNAME chain included).
    Answer {
        /// Answer section.
        answers: Vec<Record>,
        /// Authority section as received.
        authorities: Vec<Record>,
        /// DNSSEC-validated.
        authentic: bool,
    },
    /// NXDOMAIN or NODATA, with the zone's SOA when known.
    Negative {
        /// NXDOMAIN (true) or NODATA.
        nxdomain: bool,
        /// SOA for negative caching.
        soa: Option<Box<Record>>,
        /// CNAMEs that led there.
        answers: Vec<Record>,
        /// The rest of the authority section the servers signed: the SOA's RRSIG
        /// and the NSEC/NSEC3 denial and their RRSIGs (for DO clients, who may
        /// validate themselves; empty when the servers sent none).
        proofs: Vec<Record>,
        /// DNSSEC-validated: the denial is proven.
        authentic: bool,
    },
    /// No usable answer: SERVFAIL, with the Extended DNS Error of its cause.
    Failed(Failure),
}

/// Why a resolution gave no usable answer. Each cause has its Extended DNS Error
/// (RFC 8914), when one fits, and its label in
/// `fanzha_resolution_failures_total{reason}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No root server has ever answered: the appliance cannot reach the Internet's
    /// name servers at all (a firewall, no route).
    #[error("no root server answers ({0})")]
    NoRootAnswers(String),
    /// The name's servers gave nothing usable: dead, lame, refusing, looping.
    #[error("{0}")]
    NoUsableAnswer(String),
    /// DNSSEC validation found the answer bogus.
    #[error("DNSSEC validation failed (bogus)")]
    Bogus,
    /// No answer within the query's deadline, in milliseconds.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// The upstream (forward mode) failed or answered an error.
    #[error("upstream: {0}")]
    Upstream(String),
}

impl Failure {
    /// Its Extended DNS Error: info code and text.
    pub fn ede(&self) -> Option<(u16, &'static str)> {
        match self {
            Failure::NoRootAnswers(_) => Some((22, "no root server answers")),
            Failure::Bogus => Some((6, "DNSSEC bogus")),
            Failure::NoUsableAnswer(_) | Failure::Timeout(_) | Failure::Upstream(_) => None,
        }
    }

    /// Its label in `fanzha_resolution_failures_total{reason}`.
    pub fn label(&self) -> &'static str {
        use crate::metrics::FAILURE_REASONS;
        match self {
            Failure::NoRootAnswers(_) => FAILURE_REASONS[0],
            Failure::NoUsableAnswer(_) => FAILURE_REASONS[1],
            Failure::Bogus => FAILURE_REASONS[2],
            Failure::Timeout(_) => FAILURE_REASONS[3],
            Failure::Upstream(_) => FAILURE_REASONS[4],
        }
    }
}

/// A connection provider that sends queries for some name server addresses to
/// another port (test hierarchies on unprivileged ports) and gives every exchange a
/// short timeout, so that a dead server costs one timeout, not the query.
#[derive(Clone)]
pub struct MappedPortProvider {
    inner: TokioRuntimeProvider,
    ports: Arc<Vec<(IpNet, u16)>>,
    cx: Arc<PoolContext>,
}

impl MappedPortProvider {
    fn new(
        ports: Vec<(IpNet, u16)>,
        timeout: Duration,
        tls_config: Option<rustls::ClientConfig>,
    ) -> Result<MappedPortProvider, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.edns0 = true;
        opts.recursion_desired = false;
        let mut tls = TlsConfig::new().map_err(|e| e.to_string())?;
        if let Some(c) = tls_config {
            tls.config = c;
        }
        Ok(MappedPortProvider {
            inner: TokioRuntimeProvider::default(),
            ports: Arc::new(ports),
            cx: Arc::new(PoolContext::new(opts, tls)),
        })
    }
}

impl ConnectionProvider for MappedPortProvider {
    type Conn = <TokioRuntimeProvider as ConnectionProvider>::Conn;
    type FutureConn = <TokioRuntimeProvider as ConnectionProvider>::FutureConn;
    type RuntimeProvider = TokioRuntimeProvider;

    fn new_connection(
        &self,
        ip: IpAddr,
        config: &ConnectionConfig,
        _cx: &PoolContext,
    ) -> Result<Self::FutureConn, hickory_resolver::net::NetError> {
        let mut c = config.clone();
        if let Some((_, p)) = self.ports.iter().find(|(n, _)| n.contains(&ip)) {
            c.port = *p;
        }
        self.inner.new_connection(ip, &c, &self.cx)
    }

    fn runtime_provider(&self) -> &Self::RuntimeProvider {
        &self.inner
    }
}

/// One way of resolving: the configured mode, or a forward zone's forwarder.
enum Way {
    /// Iterate from the roots with fanzha's own iterator.
    Iterative(Arc<Recursor>),
    /// Iterate from the roots with fanzha's own iterator, asking for signatures, and
    /// validate with hickory's DNSSEC validator on top of it (`dnssec = true`).
    Validating {
        /// The iterator, for queries with CD (checking disabled).
        iter: Arc<Recursor>,
        /// Trust anchors given as DS records, still to be matched to keys.
        ds: Vec<(Name, DS)>,
        /// The validator over the iterator (made at the first query when the
        /// anchors are DS records).
        handle: tokio::sync::OnceCell<DnssecDnsHandle<IterHandle>>,
    },
    /// Forward to upstreams.
    Forward(Arc<Resolver<MappedPortProvider>>),
}

/// Cannot set up the resolver.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the {mode} resolver: {why}")]
pub struct BackendError {
    mode: &'static str,
    why: String,
}

fn upstream(u: &str) -> Option<(IpAddr, ConnectionConfig)> {
    let (scheme, rest) = u.split_once("://")?;
    let (addr, name) = match rest.split_once('#') {
        Some((a, n)) => (a, Some(n)),
        None => (rest, None),
    };
    let sa: SocketAddr = addr.parse().ok()?;
    let mut c = match scheme {
        "udp" => ConnectionConfig::udp(),
        "tcp" => ConnectionConfig::tcp(),
        "tls" => ConnectionConfig::new(ProtocolConfig::Tls {
            server_name: Arc::from(name?),
        }),
        _ => return None,
    };
    c.port = sa.port();
    Some((sa.ip(), c))
}

/// How names are resolved: the configured mode, and `[[forward_zones]]`, whose names
/// go to their own upstreams (conditional forwarding, like Unbound's `forward-zone`).
pub struct Backend {
    main: Arc<Way>,
    /// The resolver settings at start: a reload's forward zones get them too (the
    /// rest of `[resolver]` takes a restart).
    base: ResolverConfig,
    /// Forward zones, deepest first, each with its forwarder; swapped whole by a
    /// reload (queries under way keep the forwarder they took).
    zones: arc_swap::ArcSwap<Vec<(Name, Arc<Way>)>>,
    /// The `[[forward_zones]]` they were built from.
    zone_specs: std::sync::Mutex<Vec<(String, Vec<String>)>>,
}

/// The forwarders of `specs`, deepest zone first.
fn forward_zones(
    base: &ResolverConfig,
    specs: &[(String, Vec<String>)],
) -> Result<Vec<(Name, Arc<Way>)>, BackendError> {
    let mut zones = Vec::new();
    for (zone, upstreams) in specs {
        let zc = ResolverConfig {
            upstreams: upstreams.clone(),
            ..base.clone()
        };
        let name = Name::from_ascii(zone).map_err(|e| BackendError {
            mode: "forward",
            why: format!("forward zone {zone}: {e}"),
        })?;
        zones.push((name, Arc::new(forwarding(&zc)?)));
    }
    zones.sort_by_key(|(n, _)| std::cmp::Reverse(n.num_labels()));
    Ok(zones)
}

impl Backend {
    /// Build the backend of a config; its upstream exchanges are counted in `metrics`.
    pub fn from_config(cfg: &Config, metrics: &Metrics) -> Result<Backend, BackendError> {
        let c = &cfg.resolver;
        let main = match c.mode {
            ResolverMode::Recursive if !c.dnssec => iterative(c, metrics),
            ResolverMode::Recursive => validating(c, metrics)?,
            ResolverMode::Forward => forwarding(c)?,
        };
        let zones = forward_zones(c, &c.forward_zones)?;
        Ok(Backend {
            main: Arc::new(main),
            base: c.clone(),
            zones: arc_swap::ArcSwap::from_pointee(zones),
            zone_specs: std::sync::Mutex::new(c.forward_zones.clone()),
        })
    }

    /// Take a reloaded `[[forward_zones]]`: new forwarders swap in at once, for the
    /// next queries. Returns the zones whose upstreams changed (added, removed or
    /// moved), so that their cached answers can go; unchanged: none. On an error the
    /// zones in force stay.
    pub fn set_forward_zones(
        &self,
        specs: &[(String, Vec<String>)],
    ) -> Result<Vec<Name>, BackendError> {
        let mut held = self.zone_specs.lock().unwrap_or_else(|e| e.into_inner());
        if *held == specs {
            return Ok(Vec::new());
        }
        let zones = forward_zones(&self.base, specs)?;
        let changed: Vec<Name> = held
            .iter()
            .filter(|z| !specs.contains(z))
            .chain(specs.iter().filter(|z| !held.contains(z)))
            .filter_map(|(zone, _)| Name::from_ascii(zone).ok())
            .collect();
        self.zones.store(Arc::new(zones));
        *held = specs.to_vec();
        Ok(changed)
    }

    /// Drop the iterators' cached answers and zone cuts at or below `zone` (all for
    /// `None`); how many went. Forwarders keep no cache of their own.
    pub fn flush(&self, zone: Option<&Name>) -> usize {
        let zones = self.zones.load();
        std::iter::once(&self.main)
            .chain(zones.iter().map(|(_, w)| w))
            .map(|w| match &**w {
                Way::Iterative(iter) | Way::Validating { iter, .. } => iter.flush(zone),
                Way::Forward(_) => 0,
            })
            .sum()
    }

    /// The deepest forward zone holding `name`, or the configured mode.
    fn way(&self, name: &Name) -> Arc<Way> {
        self.zones
            .load()
            .iter()
            .find(|(z, _)| z.zone_of(name))
            .map_or_else(|| self.main.clone(), |(_, w)| w.clone())
    }

    /// Resolve `name` (fully qualified) / `qtype` within `deadline`: through the
    /// deepest forward zone holding the name, or the configured mode. `fresh` (a
    /// prefetch) passes over the iterator's cached answer and asks the authoritative
    /// servers (forward mode keeps no cache behind fanzha's answer cache).
    pub async fn resolve(
        &self,
        name: Name,
        qtype: RecordType,
        checking_disabled: bool,
        fresh: bool,
        deadline: Duration,
    ) -> Resolved {
        let way = self.way(&name);
        if fresh && let Way::Iterative(it) | Way::Validating { iter: it, .. } = &*way {
            it.forget(&name, qtype);
        }
        // One budget (queries and time) for the whole client query, the
        // validator's own questions included: the iterator stops asking before the
        // deadline, so the timeout below is only a backstop.
        let budget = iterate::Budget::until(std::time::Instant::now() + deadline);
        let inner = budget.scope(way.resolve_inner(name, qtype, checking_disabled));
        let r = match tokio::time::timeout(deadline + Duration::from_millis(50), inner).await {
            Ok(r) => r,
            Err(_) => Resolved::Failed(Failure::Timeout(deadline.as_millis())),
        };
        match (r, &*way) {
            (Resolved::Failed(why), Way::Iterative(it) | Way::Validating { iter: it, .. })
                if it.roots_silent() =>
            {
                it.warn_roots_silent();
                Resolved::Failed(Failure::NoRootAnswers(why.to_string()))
            }
            (r, _) => r,
        }
    }
}

impl Way {
    async fn resolve_inner(
        &self,
        name: Name,
        qtype: RecordType,
        checking_disabled: bool,
    ) -> Resolved {
        match self {
            Way::Iterative(it) => from_step(it.resolve(name, qtype).await),
            // CD: the data as it is, not validated (RFC 4035 §3.2.2).
            Way::Validating { iter, .. } if checking_disabled => {
                from_step(iter.resolve(name, qtype).await)
            }
            Way::Validating { iter, ds, handle } => {
                let handle = match handle.get_or_try_init(|| validator_from_ds(iter, ds)).await {
                    Ok(h) => h,
                    Err(why) => return Resolved::Failed(Failure::NoUsableAnswer(why)),
                };
                let mut answers =
                    handle.lookup(Query::query(name, qtype), DnsRequestOptions::default());
                match answers.next().await {
                    Some(Ok(resp)) => validated(resp.into_message()),
                    Some(Err(e)) => Resolved::Failed(Failure::NoUsableAnswer(e.to_string())),
                    None => Resolved::Failed(Failure::NoUsableAnswer(
                        "no answer from the validator".into(),
                    )),
                }
            }
            Way::Forward(r) => match r.lookup(name, qtype).await {
                Ok(l) => Resolved::Answer {
                    answers: l.answers().to_vec(),
                    authorities: vec![],
                    authentic: false,
                },
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                    let nx = e.is_nx_domain();
                    Resolved::Negative {
                        nxdomain: nx,
                        soa: e.into_soa().map(|s| Box::new(s.into_record_of_rdata())),
                        answers: vec![],
                        proofs: vec![],
                        authentic: false,
                    }
                }
                Err(e) => Resolved::Failed(Failure::Upstream(e.to_string())),
            },
        }
    }
}

/// The root servers to start from, and the port map with any root hint's port.
fn roots_and_ports(c: &ResolverConfig) -> (Vec<IpAddr>, Vec<(IpNet, u16)>) {
    let mut ports = c.nameserver_ports.clone();
    for h in &c.root_hints {
        if h.port() != 53 {
            ports.insert(0, (IpNet::from(h.ip()), h.port()));
        }
    }
    let roots = if c.root_hints.is_empty() {
        ROOT_HINTS.iter().filter_map(|s| s.parse().ok()).collect()
    } else {
        c.root_hints.iter().map(|h| h.ip()).collect()
    };
    (roots, ports)
}

/// The iterator's share of `[cache] max_bytes`: three eighths (the answer cache has
/// the rest, see [`answer_cache_bytes`]).
pub fn iterator_bytes(max_bytes: u64) -> usize {
    usize::try_from(max_bytes / 8 * 3).unwrap_or(usize::MAX)
}

/// The answer cache's share of `[cache] max_bytes`: five eighths.
pub fn answer_cache_bytes(max_bytes: u64) -> usize {
    usize::try_from(max_bytes - max_bytes / 8 * 3).unwrap_or(usize::MAX)
}

/// Recursion with fanzha's own iterator (which always asks for signatures and
/// proofs, and keeps them, as Unbound does: a DO client gets what the servers signed).
fn iterative(c: &ResolverConfig, metrics: &Metrics) -> Way {
    let (roots, ports) = roots_and_ports(c);
    let settings = Settings {
        roots,
        ports,
        deny: default_deny(),
        allow: c.allow_nameservers.clone(),
        timeout: c.timeout,
        cache_entries: c.cache_size as usize,
        cache_bytes: iterator_bytes(c.cache_max_bytes),
        minimise: c.qname_minimisation,
    };
    Way::Iterative(Arc::new(Recursor::new(settings, metrics.upstream.clone())))
}

/// Recursion with DNSSEC validation: fanzha's iterator (asking with DO set and keeping
/// signatures and denial proofs) under hickory's validator.
fn validating(c: &ResolverConfig, metrics: &Metrics) -> Result<Way, BackendError> {
    let Way::Iterative(iter) = iterative(c, metrics) else {
        unreachable!("iterative() builds an iterator")
    };
    let err = |p: &std::path::Path, why: String| BackendError {
        mode: "recursive",
        why: format!(
            "trust anchor {} (resolver.trust_anchor): {why}",
            p.display()
        ),
    };
    let (ds, handle) = match &c.trust_anchor {
        None => (vec![], Some(TrustAnchors::default())),
        Some(p) => match anchor::read(p).map_err(|why| err(p, why))? {
            Anchors::Keys(keys) => (vec![], Some(keys)),
            Anchors::Ds(ds) => (ds, None),
        },
    };
    let handle = match handle {
        Some(keys) => tokio::sync::OnceCell::new_with(Some(DnssecDnsHandle::with_trust_anchor(
            IterHandle(iter.clone()),
            Arc::new(keys),
        ))),
        None => tokio::sync::OnceCell::new(),
    };
    Ok(Way::Validating { iter, ds, handle })
}

/// The validator for DS trust anchors: fetch each anchored zone's DNSKEY set and trust
/// the keys a DS matches. An error (no key matched, the servers did not answer)
/// leaves it to be tried again at the next query.
async fn validator_from_ds(
    iter: &Arc<Recursor>,
    ds: &[(Name, DS)],
) -> Result<DnssecDnsHandle<IterHandle>, String> {
    let mut keys = TrustAnchors::empty();
    let mut zones: Vec<&Name> = ds.iter().map(|(z, _)| z).collect();
    zones.dedup();
    for zone in zones {
        let dnskeys = match iter.resolve(zone.clone(), RecordType::DNSKEY).await {
            Step::Answer(rs, _) => rs,
            _ => return Err(format!("no DNSKEY set for the trust anchor of {zone}")),
        };
        if anchor::add_matching(&mut keys, ds, zone, &dnskeys) == 0 {
            return Err(format!("no DNSKEY of {zone} matches its trust-anchor DS"));
        }
    }
    tracing::info!(
        keys = keys.len(),
        "trust anchors: DS records matched to keys"
    );
    Ok(DnssecDnsHandle::with_trust_anchor(
        IterHandle(iter.clone()),
        Arc::new(keys),
    ))
}

/// What the client gets for an iterator's step.
fn from_step(step: Step) -> Resolved {
    match step {
        Step::Answer(answers, proofs) => Resolved::Answer {
            answers,
            authorities: proofs,
            authentic: false,
        },
        Step::NxDomain(answers, auth) => Resolved::Negative {
            nxdomain: true,
            soa: first_soa(&auth),
            proofs: proofs_of(&auth),
            answers,
            authentic: false,
        },
        Step::NoData(answers, auth) => Resolved::Negative {
            nxdomain: false,
            soa: first_soa(&auth),
            proofs: proofs_of(&auth),
            answers,
            authentic: false,
        },
        Step::Alias(..) => {
            Resolved::Failed(Failure::NoUsableAnswer("an alias left unresolved".into()))
        }
        Step::Fail(why) => Resolved::Failed(Failure::NoUsableAnswer(why)),
    }
}

/// What the client gets for a validated answer: SERVFAIL when anything is bogus,
/// AD when every answer record is secure (for a denial: every record of the
/// answer and authority sections, its proofs included).
fn validated(m: hickory_proto::op::Message) -> Resolved {
    if m.all_sections().any(|r| r.proof == Proof::Bogus) {
        return Resolved::Failed(Failure::Bogus);
    }
    let denial_secure = !m.authorities.is_empty()
        && m.answers
            .iter()
            .chain(&m.authorities)
            .all(|r| r.proof == Proof::Secure);
    match m.metadata.response_code {
        ResponseCode::NoError
            if m.answers.iter().all(|r| {
                r.record_type() == RecordType::CNAME || r.record_type() == RecordType::RRSIG
            }) =>
        {
            Resolved::Negative {
                nxdomain: false,
                soa: first_soa(&m.authorities),
                proofs: proofs_of(&m.authorities),
                answers: m.answers,
                authentic: denial_secure,
            }
        }
        // The authority section holds only the proofs of wildcard answers.
        ResponseCode::NoError => Resolved::Answer {
            authentic: m.answers.iter().all(|r| r.proof == Proof::Secure),
            answers: m.answers,
            authorities: m.authorities,
        },
        ResponseCode::NXDomain => Resolved::Negative {
            nxdomain: true,
            soa: first_soa(&m.authorities),
            proofs: proofs_of(&m.authorities),
            answers: m.answers,
            authentic: denial_secure,
        },
        other => Resolved::Failed(Failure::Upstream(format!("answered {other}"))),
    }
}

/// Forwarding to the configured upstreams.
fn forwarding(c: &ResolverConfig) -> Result<Way, BackendError> {
    let err = |why| BackendError {
        mode: "forward",
        why,
    };
    let mut servers = Vec::new();
    for u in &c.upstreams {
        let (ip, conn) = upstream(u).ok_or_else(|| err(format!("bad upstream {u}")))?;
        let mut ns = NameServerConfig::udp(ip);
        ns.connections = vec![conn];
        servers.push(ns);
    }
    let tls = match &c.tls_ca {
        Some(ca) => Some(tls_client_config(ca).map_err(err)?),
        None => None,
    };
    let provider =
        MappedPortProvider::new(c.nameserver_ports.clone(), c.timeout, tls).map_err(err)?;
    let mut b = Resolver::builder_with_config(
        HickoryResolverConfig::from_parts(None, vec![], servers),
        provider,
    );
    let o = b.options_mut();
    o.timeout = c.timeout;
    o.attempts = 2;
    // fanzha's answer cache, in front, holds every answer within [cache] max_bytes.
    // hickory's own cache (counted in entries, not bytes) would hold them again, and
    // a prefetch would get its aging copy back instead of asking the upstream: off.
    o.cache_size = 0;
    o.preserve_intermediates = true;
    o.ndots = 0;
    o.edns0 = true;
    let r = b.build().map_err(|e| err(e.to_string()))?;
    Ok(Way::Forward(Arc::new(r)))
}

/// The SOA of an authority section, for the client's answer.
fn first_soa(auth: &[Record]) -> Option<Box<Record>> {
    soa_in(auth).cloned().map(Box::new)
}

/// The DNSSEC records of a negative answer's authority section (RRSIG, NSEC,
/// NSEC3), as the servers sent them: what a DO client needs to check the denial.
fn proofs_of(auth: &[Record]) -> Vec<Record> {
    auth.iter()
        .filter(|r| {
            matches!(
                r.record_type(),
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            )
        })
        .cloned()
        .collect()
}

/// A TLS client config trusting the built-in web roots and the CAs in `ca` (PEM).
fn tls_client_config(ca: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("cannot read {} (resolver.tls_ca): {e}", ca.display()))?;
    let mut n = 0;
    for c in certs {
        let c = c.map_err(|e| format!("{} (resolver.tls_ca): {e}", ca.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("{} (resolver.tls_ca): {e}", ca.display()))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!(
            "{} (resolver.tls_ca) holds no PEM certificate",
            ca.display()
        ));
    }
    let provider = Arc::new(hickory_resolver::net::tls::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// What the resolver does, in words, for the start-up log: the mode, and the root
/// hints or upstreams counted by transport.
pub fn describe(cfg: &Config) -> String {
    let c = &cfg.resolver;
    match c.mode {
        ResolverMode::Recursive => format!(
            "recursive from {} ({})",
            if c.root_hints.is_empty() {
                "the IANA root servers".to_string()
            } else {
                format!("{} root hint(s)", c.root_hints.len())
            },
            if c.dnssec {
                "fanzha's iterator under hickory's DNSSEC validator"
            } else {
                "fanzha's iterator"
            }
        ),
        ResolverMode::Forward => {
            let m: HashMap<&str, usize> = c.upstreams.iter().fold(HashMap::new(), |mut m, u| {
                *m.entry(u.split("://").next().unwrap_or("?")).or_default() += 1;
                m
            });
            format!("forwarding to {} upstream(s) {:?}", c.upstreams.len(), m)
        }
    }
}
