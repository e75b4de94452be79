//! Pure per-query decisions: admission ([`super::admit`]), opcode and class, the
//! blocklist verdict, local data, and which answer fanzha gives without resolving
//! (written by [`super::answer`] and [`super::local`]).
//!
//! Nothing here does I/O; the listener hands in the packet, the client address, the
//! current blocklist snapshot and the clock, and gets back bytes to send or "resolve".

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use super::admit::{self, Acl, Admission, LimitAction, RateLimiter};
use super::answer::{Sinkhole, UrlProxy};
use super::local::{self, LocalRecords, LocalZones};
use crate::blocklist::{Action, Blocklist, Hit, Verdict};
use crate::config::Config;
use crate::dns::wire::{self, ParseError, Query, ResponseWriter, rcode, rtype};
use crate::metrics::Outcome;
use crate::places::Asker;

/// Everything the decisions depend on that comes from the config (swapped on SIGHUP).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Client ACL.
    pub acl: Acl,
    /// Clients whose RD=0 queries may be answered from the cache (`allow_snoop`).
    pub snoop: Acl,
    /// Senders whose queries start with a PROXY v2 header (`[server] proxy_from`).
    pub proxy_from: Acl,
    /// What blocked names resolve to, and the TTL of synthesised answers.
    pub sinkhole: Sinkhole,
    /// Per-category action overrides.
    pub category_actions: HashMap<String, Action>,
    /// The places, for their own actions per category (`[[policies]]`).
    pub places: crate::places::Places,
    /// Count blocks by community too (`[ops] place_label`).
    pub community_label: bool,
    /// Answer NXDOMAIN for `use-application-dns.net` (Firefox DoH canary).
    pub doh_canary: bool,
    /// What clients over the rate limit get.
    pub limit_action: LimitAction,
    /// Resolutions in flight at once, all clients together.
    pub max_inflight: usize,
    /// Resolutions in flight a client prefix holds that are never shed at the cap.
    pub max_inflight_per_client: usize,
    /// The prefixes clients are counted by (IPv4, IPv6).
    pub client_prefix: (u8, u8),
    /// The zones answered here (RFC 6303 and special-use names).
    pub local: LocalZones,
    /// `[[local_records]]`.
    pub records: LocalRecords,
    /// This resolver's name for encrypted DNS (`[server] dns_name`; "" for none).
    pub dns_name: String,
    /// Where hosts with path rules go (`None`: no URL proxy).
    pub url: Option<UrlProxy>,
}

impl Policy {
    /// The policy of a config.
    pub fn from_config(c: &Config) -> Policy {
        Policy {
            acl: Acl::new(c.server.acl.clone()),
            snoop: Acl::new(c.server.allow_snoop.clone()),
            proxy_from: Acl::new(c.server.proxy_from.clone()),
            sinkhole: Sinkhole {
                v4: c.sinkhole.v4,
                v6: c.sinkhole.v6,
                ttl: c.sinkhole.ttl,
            },
            category_actions: c
                .sinkhole
                .category_actions
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            places: c.places.clone(),
            community_label: c.community_label,
            doh_canary: c.server.doh_canary,
            limit_action: if c.server.rate_limit_drop {
                LimitAction::Drop
            } else {
                LimitAction::Refuse
            },
            max_inflight: c.server.max_inflight,
            max_inflight_per_client: c.server.max_inflight_per_client,
            client_prefix: (c.server.rate_limit_prefix_v4, c.server.rate_limit_prefix_v6),
            local: LocalZones::new(c.resolver.local_zones, &c.resolver.nodefault),
            records: LocalRecords::new(&c.local_records),
            dns_name: c.server.dns_name.clone(),
            url: c.url.enabled().then_some(UrlProxy {
                v4: c.url.v4,
                v6: c.url.v6,
                passthrough: c.url.unmanaged == crate::config::Unmanaged::Passthrough,
            }),
        }
    }

    /// The place a DNS over TLS client named by the host name it asked for (SNI):
    /// `<id>.<dns_name>`, any case, with or without the final dot.
    pub fn named_by_host(&self, host: &str) -> Option<u16> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let d = self.dns_name.as_str();
        if d.is_empty() || host.len() <= d.len() + 1 {
            return None;
        }
        let (id, rest) = host.split_at(host.len() - d.len() - 1);
        if !rest.starts_with('.') || !rest[1..].eq_ignore_ascii_case(d) || id.contains('.') {
            return None;
        }
        self.places.named(id)
    }
}

/// A block decision, for the response, the metrics and the hit report.
#[derive(Debug, Clone, Copy)]
pub struct BlockInfo {
    /// The deciding entry.
    pub hit: Hit,
    /// The answer kind.
    pub action: Action,
}

/// Why a host with path rules was resolved instead of sent to the URL proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unenforced {
    /// No proxy is configured.
    NoProxy,
    /// The client's place has no `managed_tls`, and `[url] unmanaged = "resolve"`.
    Unmanaged,
}

impl Unenforced {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Unenforced::NoProxy => "no_proxy",
            Unenforced::Unmanaged => "unmanaged_place",
        }
    }
}

/// What a decision noted besides its answer.
#[derive(Debug, Default)]
pub struct Noted {
    /// A listed name whose action is `shadow` (for its list or the client's place):
    /// resolved as if not listed, counted and reported.
    pub shadow: Option<BlockInfo>,
    /// A host with path rules resolved as usual: its pages are not checked.
    pub unenforced: Option<Unenforced>,
}

/// What to do with a packet.
#[derive(Debug)]
pub enum Decision {
    /// `buf` holds the complete answer.
    Answer(Outcome),
    /// `buf` holds the block answer.
    Block(Query, BlockInfo),
    /// Send nothing.
    Drop(Outcome),
    /// Resolve the parsed query.
    Resolve(Query),
}

const DOH_CANARY: &[&[u8]] = &[b"net", b"use-application-dns"];

/// The error a query of a class or type fanzha never serves gets: REFUSED for a
/// class other than IN, NOTIMP for zone transfers and ANY for the root.
fn not_served(q: &Query) -> Option<u8> {
    if q.qclass != 1 {
        Some(rcode::REFUSED)
    } else if matches!(q.qtype, rtype::AXFR | rtype::IXFR)
        || q.labels.is_empty() && q.qtype == rtype::ANY
    {
        Some(rcode::NOTIMP)
    } else {
        None
    }
}

impl Policy {
    /// Decide what to do with `packet` from `client`; writes any local answer into `buf`.
    pub fn decide(
        &self,
        packet: &[u8],
        client: IpAddr,
        list: &Blocklist,
        limiter: &RateLimiter,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Decision {
        let who = Asker::at(client);
        self.decide_noting(packet, who, list, limiter, now, buf, &mut Noted::default())
    }

    /// [`Policy::decide`], with what it noted besides the answer in `noted`.
    #[allow(clippy::too_many_arguments)]
    pub fn decide_noting(
        &self,
        packet: &[u8],
        client: Asker,
        list: &Blocklist,
        limiter: &RateLimiter,
        now: Instant,
        buf: &mut Vec<u8>,
        noted: &mut Noted,
    ) -> Decision {
        let parsed = wire::parse_query(packet);
        let (acl, action) = (&self.acl, self.limit_action);
        match admit::admit(acl, action, &parsed, packet, client, limiter, now, buf) {
            Admission::Admitted => {}
            Admission::Answered(o) => return Decision::Answer(o),
            Admission::Dropped(o) => return Decision::Drop(o),
        }
        let q = match parsed {
            Ok(q) => q,
            Err(ParseError::BadVersion { question_end }) => {
                // BADVERS = 16: high bits 1 in the OPT, low bits 0 in the header.
                let mut w = ResponseWriter::start(buf, packet, question_end, 0, false);
                w.opt(false, None, 1);
                w.finish();
                return Decision::Answer(Outcome::Malformed);
            }
            Err(ParseError::Reply {
                rcode: rc,
                question_end,
            }) => {
                wire::error_response(buf, packet, question_end, rc, None);
                return Decision::Answer(Outcome::Malformed);
            }
            Err(ParseError::Drop) => return Decision::Drop(Outcome::Dropped),
        };
        if let Some(rc) = not_served(&q) {
            wire::error_response(buf, packet, q.question_end, rc, q.edns);
            return Decision::Answer(Outcome::Malformed);
        }
        let verdict = list.lookup_labels(q.labels_from_top(packet), q.labels.len());
        if let Verdict::Block(hit) = verdict {
            let action = self.action_for(list, &hit, Some(client));
            let info = BlockInfo { hit, action };
            if !action.blocks() {
                // Shadow or off (for this list, or this client's place): resolved as
                // if not listed; a shadow hit is noted for the counters and report.
                if action == Action::Shadow {
                    noted.shadow = Some(info);
                }
                return Decision::Resolve(q);
            }
            let soa_owner = q.suffix_offset(hit.depth as usize);
            self.sinkhole
                .block(buf, packet, &q, list, &hit, action, soa_owner);
            return Decision::Block(q, info);
        }
        if verdict == Verdict::Pass
            && list.paths().covers_labels(q.labels_from_top(packet))
            && self.to_url_proxy(buf, packet, &q, client, noted)
        {
            return Decision::Answer(Outcome::UrlProxy);
        }
        // The operator's records first (a PTR record may sit in a local zone), then
        // the locally served zones.
        if !self.records.is_empty() && self.records.answer(buf, packet, &q) {
            return Decision::Answer(Outcome::Local);
        }
        if let Some(hit) = self.local.find(&q, packet) {
            local::write_answer(buf, packet, &q, hit);
            return Decision::Answer(Outcome::Local);
        }
        if self.doh_canary
            && q.labels.len() == 2
            && q.labels_from_top(packet)
                .zip(DOH_CANARY)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
        {
            let mut w = ResponseWriter::start(buf, packet, q.question_end, rcode::NXDOMAIN, true);
            w.authority_soa(wire::HEADER_LEN, self.sinkhole.ttl, 1);
            if let Some(e) = q.edns {
                w.opt(e.dnssec_ok, None, 0);
            }
            w.finish();
            return Decision::Answer(Outcome::Local);
        }
        if q.qtype == rtype::ANY {
            // RFC 8482: a minimal answer instead of everything.
            let mut w = ResponseWriter::start(buf, packet, q.question_end, rcode::NOERROR, false);
            w.answer_hinfo(wire::HEADER_LEN, 3600, "RFC8482", "");
            if let Some(e) = q.edns {
                w.opt(e.dnssec_ok, None, 0);
            }
            w.finish();
            return Decision::Answer(Outcome::Local);
        }
        Decision::Resolve(q)
    }

    /// A host with path rules: the proxy's answer written into `buf` (true) where
    /// the client's place can enforce them; else resolved, noted as unenforced.
    fn to_url_proxy(
        &self,
        buf: &mut Vec<u8>,
        packet: &[u8],
        q: &Query,
        client: Asker,
        noted: &mut Noted,
    ) -> bool {
        match &self.url {
            Some(u) if u.passthrough || self.places.of(client).managed_tls => {
                u.answer(buf, packet, q, self.sinkhole.ttl)
            }
            Some(_) => {
                noted.unenforced = Some(Unenforced::Unmanaged);
                false
            }
            None => {
                noted.unenforced = Some(Unenforced::NoProxy);
                false
            }
        }
    }

    /// The action for a hit: the client's place's for the category (`[[policies]]`),
    /// else the category's override, else the list's.
    pub fn action_for(&self, list: &Blocklist, hit: &Hit, client: Option<Asker>) -> Action {
        let category = list.category(hit);
        if let Some(who) = client
            && self.places.has_policies()
            && let Some(a) = self.places.action(who, category)
        {
            return a;
        }
        self.category_actions
            .get(category)
            .copied()
            .unwrap_or_else(|| list.action(hit))
    }
}

#[cfg(test)]
mod tests;
