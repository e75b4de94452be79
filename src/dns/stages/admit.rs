//! Admission, the first stage: the client ACL and the per-client rate limit. A
//! client outside the ACL gets REFUSED and nothing else; one over its rate is
//! refused or dropped (`[server] rate_limit_action`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::clockmap::{ClockMap, Weigh};
use crate::dns::wire::{self, ParseError, Query, rcode};
use crate::metrics::Outcome;
use crate::places::Asker;

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
    /// Each named place's bucket (`place_rate_limit`), keyed by its index.
    place_rate: f64,
    places: ClockMap<IpAddr, Bucket>,
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
            place_rate: 0.0,
            places: ClockMap::new(0, usize::MAX),
        }
    }

    /// With each named place limited to `rate` queries per second (bursts of twice
    /// that); 0: no limit.
    pub fn with_place_rate(mut self, rate: u32) -> RateLimiter {
        self.place_rate = f64::from(rate);
        self.places = ClockMap::new(if rate == 0 { 0 } else { 65_536 }, usize::MAX);
        self
    }

    /// Take one token of the named place `index` at `now`; false when the place is
    /// over its rate.
    pub fn admit_place(&self, index: u16, now: Instant) -> bool {
        if self.place_rate <= 0.0 {
            return true;
        }
        let key = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(index)));
        take(
            &self.places,
            key,
            self.place_rate,
            self.place_rate * 2.0,
            now,
        )
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
        .with_place_rate(s.place_rate_limit)
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
        take(&self.buckets, self.client(ip), self.rate, self.burst, now)
    }
}

/// Take one token from `key`'s bucket in `buckets` (rate per second, burst).
fn take(
    buckets: &ClockMap<IpAddr, Bucket>,
    key: IpAddr,
    rate: f64,
    burst: f64,
    now: Instant,
) -> bool {
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
    if let Some(ok) = buckets.with(&key, take) {
        return ok;
    }
    // A new client: a full bucket, less this query. Clients whose bucket has
    // refilled are the first to make room.
    let full = Duration::from_secs_f64(burst / rate);
    buckets.insert(
        key,
        Bucket {
            tokens: burst - 1.0,
            last: now,
        },
        |b| now.saturating_duration_since(b.last) < full,
    );
    true
}

/// What admission made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// On to the next stage.
    Admitted,
    /// Refused: the answer is written.
    Answered(Outcome),
    /// Send nothing.
    Dropped(Outcome),
}

/// Admit `packet` from `client`, for every packet that would get an answer, errors
/// included; a refusal is written into `buf`.
#[allow(clippy::too_many_arguments)]
pub fn admit(
    acl: &Acl,
    limit_action: LimitAction,
    parsed: &Result<Query, ParseError>,
    packet: &[u8],
    who: Asker,
    limiter: &RateLimiter,
    now: Instant,
    buf: &mut Vec<u8>,
) -> Admission {
    let client = who.ip;
    let question_end = match parsed {
        Ok(q) => q.question_end,
        Err(ParseError::Drop) => return Admission::Dropped(Outcome::Dropped),
        Err(ParseError::Reply { question_end, .. } | ParseError::BadVersion { question_end }) => {
            *question_end
        }
    };
    let edns = parsed.as_ref().ok().and_then(|q| q.edns);
    // A client that named a place by its private DNS name is that place's resident,
    // wherever it is (the listener checked the name).
    if who.named.is_none() && !acl.allows(client) {
        wire::error_response(buf, packet, question_end, rcode::REFUSED, edns);
        return Admission::Answered(Outcome::Refused);
    }
    if limiter.admit(client, now) && who.named.is_none_or(|p| limiter.admit_place(p, now)) {
        return Admission::Admitted;
    }
    match limit_action {
        LimitAction::Drop => Admission::Dropped(Outcome::RateLimited),
        LimitAction::Refuse => {
            wire::error_response(buf, packet, question_end, rcode::REFUSED, edns);
            Admission::Answered(Outcome::RateLimited)
        }
    }
}
