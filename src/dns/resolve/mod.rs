//! Resolver backends: fanzha's iterator from the root hints (with hickory's DNSSEC
//! validator on top when validating), or a forwarder to upstreams, behind one
//! `resolve` that never takes longer than a deadline.

pub mod anchor;
pub mod deny;
pub mod forward;
pub mod hints;
pub mod iterate;
pub mod outcome;
pub mod validate;

pub use outcome::{Failure, Resolved};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::TrustAnchors;
use hickory_proto::op::Query;
use hickory_proto::rr::{Name, RecordType};
use hickory_resolver::Resolver;

use self::anchor::Anchors;
use self::deny::default_deny;
use self::forward::{MappedPortProvider, forwarder};
use self::hints::roots_and_ports;
use self::iterate::handle::IterHandle;
use self::iterate::{Recursor, Settings};
use self::outcome::from_step;
use self::validate::{validated, validator_from_ds};
use crate::config::{Config, ResolverConfig, ResolverMode};
use crate::metrics::Metrics;
use futures_util::StreamExt;
use hickory_proto::dnssec::rdata::DS;
use hickory_proto::op::DnsRequestOptions;
use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::xfer::DnsHandle;

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

/// The iterator's share of `[cache] max_bytes`: three eighths (the answer cache has
/// the rest, see [`answer_cache_bytes`]).
pub fn iterator_bytes(max_bytes: u64) -> usize {
    usize::try_from(max_bytes / 8 * 3).unwrap_or(usize::MAX)
}

/// The answer cache's share of `[cache] max_bytes`: five eighths.
pub fn answer_cache_bytes(max_bytes: u64) -> usize {
    usize::try_from(max_bytes - max_bytes / 8 * 3).unwrap_or(usize::MAX)
}

/// Forwarding to the configured upstreams.
fn forwarding(c: &ResolverConfig) -> Result<Way, BackendError> {
    let r = forwarder(c).map_err(|why| BackendError {
        mode: "forward",
        why,
    })?;
    Ok(Way::Forward(Arc::new(r)))
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
