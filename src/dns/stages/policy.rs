//! Pure per-query decisions: admission (ACL, rate limit, opcode, class), the blocklist
//! verdict, and the synthesis of every answer fanzha gives without resolving.
//!
//! Nothing here does I/O; the listener hands in the packet, the client address, the
//! current blocklist snapshot and the clock, and gets back bytes to send or "resolve".

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::clock::{ClockMap, Weigh};
use super::local::{self, LocalRecords, LocalZones};
use crate::dns::wire::{self, Ede, ParseError, Query, ResponseWriter, rcode, rtype};
use crate::blocklist::parse::{RpzAction, rpz_action};
use crate::blocklist::{Action, Blocklist, Hit, Verdict};
use crate::config::Config;
use crate::metrics::Outcome;

/// Client ACL: a client is admitted when its address is in one of the networks.
#[derive(Debug, Clone)]
pub struct Acl {
    nets: Vec<IpNet>,
}

impl Acl {
    /// An ACL admitting `nets`.
    pub fn new(nets: Vec<IpNet>) -> Acl {
        Acl { nets }
    }
    /// Whether `ip` is admitted (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }
    /// True when it admits no one.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// What past the rate limit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAction {
    /// Answer REFUSED.
    Refuse,
    /// Send nothing.
    Drop,
}

/// A client's token bucket.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Weigh for Bucket {
    fn weight(&self) -> usize {
        0
    }
}

impl Weigh for IpAddr {
    fn weight(&self) -> usize {
        0
    }
}

/// Most clients (prefixes) the limiter tracks; past it the one least recently
/// limited goes (CLOCK), one at a time: memory stays bounded under a flood of
/// spoofed sources, and no operation scans the table.
pub const RATE_LIMIT_CLIENTS: usize = 262_144;

/// Per-client token buckets, keyed by the client's prefix (AdGuard Home's way: a
/// client rotating addresses in its IPv6 /56 is one client), with exempt networks.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    prefix_v4: u8,
    prefix_v6: u8,
    exempt: Vec<IpNet>,
    buckets: ClockMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `rate` queries per second per client with bursts of `burst`; `rate` 0 = no
    /// limit. Clients are single IPv4 addresses and IPv6 /56s; none is exempt.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        Self::keyed(rate, burst, 32, 56, Vec::new())
    }

    /// As [`RateLimiter::new`], a client being an IPv4 `/prefix_v4` or an IPv6
    /// `/prefix_v6`, and clients in `exempt` never limited.
    pub fn keyed(rate: u32, burst: u32, prefix_v4: u8, prefix_v6: u8, exempt: Vec<IpNet>) -> Self {
        RateLimiter {
            rate: rate as f64,
            burst: burst.max(rate).max(1) as f64,
            prefix_v4: prefix_v4.min(32),
            prefix_v6: prefix_v6.min(128),
            exempt,
            buckets: ClockMap::new(if rate == 0 { 0 } else { RATE_LIMIT_CLIENTS }, usize::MAX),
        }
    }

    /// The limiter `[server]` asks for.
    pub fn from_config(s: &crate::config::ServerConfig) -> RateLimiter {
        Self::keyed(
            s.rate_limit,
            s.rate_limit_burst,
            s.rate_limit_prefix_v4,
            s.rate_limit_prefix_v6,
            s.rate_limit_exempt.clone(),
        )
    }

    /// Whether the limiter is on.
    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// The client `ip` is counted as: its network at the configured prefix.
    fn client(&self, ip: IpAddr) -> IpAddr {
        crate::limits::prefix(ip, self.prefix_v4, self.prefix_v6)
    }

    /// Clients tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Take one token for `ip` at `now`; false when the client is over its rate.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 || self.exempt.iter().any(|n| n.contains(&ip.to_canonical())) {
            return true;
        }
        let key = self.client(ip);
        let (rate, burst) = (self.rate, self.burst);
        let take = |b: &mut Bucket| {
            let refill = now.saturating_duration_since(b.last).as_secs_f64() * rate;
            b.tokens = (b.tokens + refill).min(burst);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                true
            } else {
                false
            }
        };
        if let Some(ok) = self.buckets.with(&key, take) {
            return ok;
        }
        // A new client: a full bucket, less this query. Clients whose bucket has
        // refilled are the first to make room.
        let full = Duration::from_secs_f64(burst / rate);
        self.buckets.insert(
            key,
            Bucket {
                tokens: burst - 1.0,
                last: now,
            },
            |b| now.saturating_duration_since(b.last) < full,
        );
        true
    }
}

/// Everything the decisions depend on that comes from the config (swapped on SIGHUP).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Client ACL.
    pub acl: Acl,
    /// Clients whose RD=0 queries may be answered from the cache (`allow_snoop`).
    pub snoop: Acl,
    /// Senders whose queries start with a PROXY v2 header (`[server] proxy_from`).
    pub proxy_from: Acl,
    /// A answer for blocked names.
    pub sinkhole_v4: Ipv4Addr,
    /// AAAA answer for blocked names (`None`: NODATA).
    pub sinkhole_v6: Option<Ipv6Addr>,
    /// TTL of synthesised answers.
    pub ttl: u32,
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
}

impl Policy {
    /// The policy of a config.
    pub fn from_config(c: &Config) -> Policy {
        Policy {
            acl: Acl::new(c.server.acl.clone()),
            snoop: Acl::new(c.server.allow_snoop.clone()),
            proxy_from: Acl::new(c.server.proxy_from.clone()),
            sinkhole_v4: c.sinkhole.v4,
            sinkhole_v6: c.sinkhole.v6,
            ttl: c.sinkhole.ttl,
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
        }
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
        self.decide_noting(packet, client, list, limiter, now, buf, &mut None)
    }

    /// [`Policy::decide`], and a listed name whose action is `shadow` (for its list
    /// or the client's place) noted in `shadow`: it is resolved as if not listed.
    #[allow(clippy::too_many_arguments)]
    pub fn decide_noting(
        &self,
        packet: &[u8],
        client: IpAddr,
        list: &Blocklist,
        limiter: &RateLimiter,
        now: Instant,
        buf: &mut Vec<u8>,
        shadow: &mut Option<BlockInfo>,
    ) -> Decision {
        let parsed = wire::parse_query(packet);
        if let Some(d) = self.admit(&parsed, packet, client, limiter, now, buf) {
            return d;
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
        if q.qclass != 1 {
            wire::error_response(buf, packet, q.question_end, rcode::REFUSED, q.edns);
            return Decision::Answer(Outcome::Malformed);
        }
        if matches!(q.qtype, rtype::AXFR | rtype::IXFR)
            || q.labels.is_empty() && q.qtype == rtype::ANY
        {
            wire::error_response(buf, packet, q.question_end, rcode::NOTIMP, q.edns);
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
                    *shadow = Some(info);
                }
                return Decision::Resolve(q);
            }
            self.write_block(
                buf,
                packet,
                &q,
                list,
                &info,
                q.suffix_offset(hit.depth as usize),
            );
            return Decision::Block(q, info);
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
            w.authority_soa(wire::HEADER_LEN, self.ttl, 1);
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

    /// Admission, for every packet that would get an answer, errors included: a
    /// client outside the ACL gets REFUSED and nothing else, and a client over its
    /// rate is refused or dropped. `None`: admitted.
    fn admit(
        &self,
        parsed: &Result<Query, ParseError>,
        packet: &[u8],
        client: IpAddr,
        limiter: &RateLimiter,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<Decision> {
        let question_end = match parsed {
            Ok(q) => q.question_end,
            Err(ParseError::Drop) => return Some(Decision::Drop(Outcome::Dropped)),
            Err(
                ParseError::Reply { question_end, .. } | ParseError::BadVersion { question_end },
            ) => *question_end,
        };
        let edns = parsed.as_ref().ok().and_then(|q| q.edns);
        if !self.acl.allows(client) {
            wire::error_response(buf, packet, question_end, rcode::REFUSED, edns);
            return Some(Decision::Answer(Outcome::Refused));
        }
        if limiter.admit(client, now) {
            return None;
        }
        Some(match self.limit_action {
            LimitAction::Drop => Decision::Drop(Outcome::RateLimited),
            LimitAction::Refuse => {
                wire::error_response(buf, packet, question_end, rcode::REFUSED, edns);
                Decision::Answer(Outcome::RateLimited)
            }
        })
    }

    /// The action for a hit: the client's place's for the category (`[[policies]]`),
    /// else the category's override, else the list's.
    pub fn action_for(&self, list: &Blocklist, hit: &Hit, client: Option<IpAddr>) -> Action {
        let category = list.category(hit);
        if let Some(ip) = client
            && self.places.has_policies()
            && let Some(a) = self.places.action(ip, category)
        {
            return a;
        }
        self.category_actions
            .get(category)
            .copied()
            .unwrap_or_else(|| list.action(hit))
    }

    /// Write the answer for a blocked query into `buf` (DESIGN §3). `soa_owner` is the
    /// packet offset of the name the synthesised SOA is owned by.
    pub fn write_block(
        &self,
        buf: &mut Vec<u8>,
        packet: &[u8],
        q: &Query,
        list: &Blocklist,
        info: &BlockInfo,
        soa_owner: usize,
    ) {
        let category = list.category(&info.hit);
        let mut text_buf = [0u8; 96];
        let text = ede_text(&mut text_buf, category);
        let ede = Some(Ede { code: 15, text });
        let serial = list.meta().built_unix as u32;
        if let Some(rpz) = list.note(&info.hit).and_then(rpz_action) {
            self.write_rpz(buf, packet, q, rpz, ede, soa_owner, serial);
            return;
        }
        let rc = match info.action {
            Action::Sinkhole => rcode::NOERROR,
            Action::Nxdomain => rcode::NXDOMAIN,
            Action::Refused | Action::Shadow | Action::Off => rcode::REFUSED,
        };
        let mut w = ResponseWriter::start(
            buf,
            packet,
            q.question_end,
            rc,
            info.action != Action::Refused,
        );
        match (info.action, q.qtype) {
            (Action::Sinkhole, rtype::A) => {
                w.answer_a(wire::HEADER_LEN, self.ttl, self.sinkhole_v4)
            }
            (Action::Sinkhole, rtype::AAAA) if self.sinkhole_v6.is_some() => w.answer_aaaa(
                wire::HEADER_LEN,
                self.ttl,
                self.sinkhole_v6.unwrap_or(Ipv6Addr::LOCALHOST),
            ),
            (Action::Refused, _) => {}
            _ => w.authority_soa(soa_owner, self.ttl, serial),
        }
        if let Some(e) = q.edns {
            w.opt(e.dnssec_ok, ede, 0);
        }
        w.finish();
    }
}

impl Policy {
    /// The answer an RPZ rule's own action gives (its list's `rpz_actions` on). The
    /// EDE still names the category. `rpz-drop.` and `rpz-tcp-only.` over TCP are
    /// the engine's (no answer; resolved as usual): here drop is NXDOMAIN (a CNAME
    /// target met while resolving) and tcp-only an empty TC answer.
    #[allow(clippy::too_many_arguments)]
    fn write_rpz(
        &self,
        buf: &mut Vec<u8>,
        packet: &[u8],
        q: &Query,
        rpz: RpzAction<'_>,
        ede: Option<Ede<'_>>,
        soa_owner: usize,
        serial: u32,
    ) {
        let rc = match rpz {
            RpzAction::Nxdomain | RpzAction::Drop => rcode::NXDOMAIN,
            _ => rcode::NOERROR,
        };
        let mut w = ResponseWriter::start(buf, packet, q.question_end, rc, true);
        let mut answered = false;
        match rpz {
            RpzAction::TcpOnly => w.truncated(),
            RpzAction::Data(records) => {
                for rec in records.split('|') {
                    let (t, rdata) = rec.split_once(' ').unwrap_or((rec, ""));
                    answered |= write_data(&mut w, q.qtype, t, rdata.trim(), self.ttl);
                }
            }
            _ => {}
        }
        if !answered && rpz != RpzAction::TcpOnly {
            w.authority_soa(soa_owner, self.ttl, serial);
        }
        if let Some(e) = q.edns {
            w.opt(e.dnssec_ok, ede, 0);
        }
        w.finish();
    }
}

/// One RPZ local-data record (`t` and its `rdata` as written) into the answer, when
/// it answers `qtype` (a CNAME answers any type). Whether it was written.
fn write_data(w: &mut ResponseWriter<'_>, qtype: u16, t: &str, rdata: &str, ttl: u32) -> bool {
    let owner = wire::HEADER_LEN;
    match t {
        "A" if qtype == rtype::A => match rdata.parse::<Ipv4Addr>() {
            Ok(ip) => w.answer_a(owner, ttl, ip),
            Err(_) => return false,
        },
        "AAAA" if qtype == rtype::AAAA => match rdata.parse::<Ipv6Addr>() {
            Ok(ip) => w.answer_aaaa(owner, ttl, ip),
            Err(_) => return false,
        },
        "TXT" if qtype == rtype::TXT => {
            // Quoted strings, each at most 255 bytes.
            let mut out = [0u8; 512];
            let mut n = 0;
            for s in rdata.split('"').skip(1).step_by(2) {
                let s = &s.as_bytes()[..s.len().min(255)];
                if n + 1 + s.len() > out.len() {
                    break;
                }
                out[n] = s.len() as u8;
                out[n + 1..n + 1 + s.len()].copy_from_slice(s);
                n += 1 + s.len();
            }
            if n == 0 {
                return false;
            }
            w.answer_raw(owner, rtype::TXT, ttl, &out[..n]);
        }
        "CNAME" => {
            let mut out = [0u8; 256];
            let mut n = 0;
            for label in rdata.trim_end_matches('.').split('.') {
                if label.is_empty() || label.len() > 63 || n + 2 + label.len() > out.len() {
                    return false;
                }
                out[n] = label.len() as u8;
                out[n + 1..n + 1 + label.len()].copy_from_slice(label.as_bytes());
                n += 1 + label.len();
            }
            out[n] = 0;
            w.answer_raw(owner, rtype::CNAME, ttl, &out[..n + 1]);
        }
        _ => return false,
    }
    true
}

/// "blocked by fanzha: <category>" into a stack buffer (no allocation).
fn ede_text<'a>(buf: &'a mut [u8; 96], category: &str) -> &'a str {
    const PREFIX: &[u8] = b"blocked by fanzha: ";
    let c = &category.as_bytes()[..category.len().min(96 - PREFIX.len())];
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    buf[PREFIX.len()..PREFIX.len() + c.len()].copy_from_slice(c);
    std::str::from_utf8(&buf[..PREFIX.len() + c.len()]).unwrap_or("blocked by fanzha")
}

#[cfg(test)]
mod tests;
