//! What the iterator knows of each name server, in the spirit of Unbound's infra
//! cache: a smoothed round-trip time, a dead mark after repeated timeouts, lame
//! marks per zone, and whether it understands EDNS. Each mark expires, and both
//! tables are bounded (CLOCK, as the caches): a flood of new servers pushes out old
//! entries one at a time instead of growing the tables or scanning them.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::cache::NameKey;
use crate::clockmap::{ClockMap, Weigh};
use hickory_proto::rr::Name;

/// The RTT assumed for a server never heard from (Unbound's UNKNOWN_SERVER_NICENESS).
pub const UNKNOWN_RTT_MS: u32 = 376;
/// Servers whose RTT is within this of the best are chosen among at random, so that
/// a slower server is tried now and then and its RTT stays known.
pub const RTT_BAND_MS: u32 = 400;
/// A server that timed out this many times in a row is left alone for a while.
const DEAD_AFTER: u8 = 2;
const DEAD_FOR: Duration = Duration::from_secs(60);
/// While dead, a server is asked once per this period (a probe, as Unbound's
/// infra cache lets one query through to a server that stopped answering): a
/// reply brings it back; all other queries pass it over.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long a server stays lame for a zone (Unbound's infra-lame-ttl).
const LAME_FOR: Duration = Duration::from_secs(900);
/// How long what is known of a server lasts, the no-EDNS mark included (Unbound's
/// infra-host-ttl).
const HOST_TTL: Duration = Duration::from_secs(900);
/// Servers remembered (Unbound's infra-cache-numhosts), and lame marks.
const MAX_SERVERS: usize = 10_000;
const MAX_LAME: usize = 10_000;
/// Referrals back to itself that a server may give for names of one zone before
/// its truncated replies there are no longer followed over TCP (but for one probe
/// per [`PROBE_EVERY`]). A hostile zone delegates every random name to its own
/// server with a referral too large for UDP: following each one costs a TCP
/// connection and tens of kilobytes, to learn once more that the server is lame.
const HANDBACKS: u8 = 3;

#[derive(Debug, Clone)]
struct Server {
    srtt_ms: u32,
    timeouts: u8,
    dead_until: Option<Instant>,
    /// When a dead server may be asked again.
    probe_at: Instant,
    no_edns_until: Option<Instant>,
    last: Instant,
}

impl Server {
    fn new(now: Instant) -> Server {
        Server {
            srtt_ms: UNKNOWN_RTT_MS,
            timeouts: 0,
            dead_until: None,
            probe_at: now,
            no_edns_until: None,
            last: now,
        }
    }
}

impl Weigh for Server {
    fn weight(&self) -> usize {
        0
    }
}

/// A server's address as a table key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Host(IpAddr);

impl Weigh for Host {
    fn weight(&self) -> usize {
        0
    }
}

/// A server and a zone it is lame for.
#[derive(Clone, PartialEq, Eq, Hash)]
struct LameKey(IpAddr, NameKey);

impl Weigh for LameKey {
    fn weight(&self) -> usize {
        self.1.weight()
    }
}

/// Until when a lame mark holds.
struct Until(Instant);

impl Weigh for Until {
    fn weight(&self) -> usize {
        0
    }
}

/// A server's referrals back to itself under one zone.
struct Handbacks {
    count: u8,
    /// When the count is forgotten (LAME_FOR after the last one).
    until: Instant,
    /// When a truncated reply may be followed over TCP again, once the count is
    /// reached: the probe that shows the server has mended.
    probe_at: Instant,
}

impl Weigh for Handbacks {
    fn weight(&self) -> usize {
        0
    }
}

/// Per-server state, shared by every resolution.
pub struct Infra {
    servers: ClockMap<Host, Server>,
    lame: ClockMap<LameKey, Until>,
    handbacks: ClockMap<LameKey, Handbacks>,
}

impl Default for Infra {
    fn default() -> Self {
        Infra::with_capacity(MAX_SERVERS, MAX_LAME)
    }
}

impl Infra {
    /// Tables bounded at `servers` and `lame` entries.
    fn with_capacity(servers: usize, lame: usize) -> Infra {
        Infra {
            servers: ClockMap::new(servers, servers * 256),
            lame: ClockMap::new(lame, lame * 512),
            handbacks: ClockMap::new(lame, lame * 512),
        }
    }

    fn with<T>(&self, ip: IpAddr, now: Instant, f: impl Fn(&mut Server) -> T) -> T {
        let touch = |s: &mut Server| {
            // What is known of a server lasts HOST_TTL after it was last heard of.
            if now.duration_since(s.last) > HOST_TTL {
                *s = Server::new(now);
            }
            s.last = now;
            f(s)
        };
        if let Some(t) = self.servers.with(&Host(ip), touch) {
            return t;
        }
        let mut s = Server::new(now);
        let t = touch(&mut s);
        self.servers
            .insert(Host(ip), s, |s| now.duration_since(s.last) <= HOST_TTL);
        t
    }

    /// A reply came after `rtt`.
    pub fn answered(&self, ip: IpAddr, rtt: Duration, now: Instant) {
        let ms = rtt.as_millis().min(120_000) as u32;
        self.with(ip, now, |s| {
            s.srtt_ms = if s.timeouts == 0 && s.srtt_ms == UNKNOWN_RTT_MS {
                ms
            } else {
                (s.srtt_ms * 7 + ms * 3) / 10
            };
            s.timeouts = 0;
            s.dead_until = None;
        });
    }

    /// No reply within `timeout`.
    pub fn timed_out(&self, ip: IpAddr, timeout: Duration, now: Instant) {
        self.with(ip, now, |s| {
            s.srtt_ms = s
                .srtt_ms
                .max(timeout.as_millis() as u32)
                .saturating_mul(2)
                .min(120_000);
            s.timeouts = s.timeouts.saturating_add(1);
            if s.timeouts >= DEAD_AFTER {
                s.dead_until = Some(now + DEAD_FOR);
                s.probe_at = now + PROBE_EVERY;
            }
        });
    }

    /// The server answered with an error (SERVFAIL and the like): it goes behind
    /// the servers that answer, without a dead mark.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        self.with(ip, now, |s| {
            s.srtt_ms = s.srtt_ms.max(UNKNOWN_RTT_MS).saturating_mul(2).min(120_000);
        });
    }

    /// The server cannot be reached at all (no route): dead at once.
    pub fn unreachable(&self, ip: IpAddr, now: Instant) {
        self.with(ip, now, |s| {
            s.timeouts = DEAD_AFTER;
            s.dead_until = Some(now + DEAD_FOR);
            s.probe_at = now + PROBE_EVERY;
        });
    }

    /// The server answered FORMERR or NOTIMP to a query with EDNS: it is asked
    /// without EDNS until the mark expires, when EDNS is tried again (Unbound's
    /// infra-host-ttl), so one bad answer does not stop DO to a server for good.
    pub fn set_no_edns(&self, ip: IpAddr, now: Instant) {
        self.with(ip, now, |s| s.no_edns_until = Some(now + HOST_TTL));
    }

    /// Whether queries to the server go without EDNS.
    pub fn no_edns(&self, ip: IpAddr, now: Instant) -> bool {
        self.servers
            .with(&Host(ip), |s| s.no_edns_until.is_some_and(|t| t > now))
            .unwrap_or(false)
    }

    /// The server does not serve `zone` (REFUSED, a referral up, no AA).
    pub fn set_lame(&self, ip: IpAddr, zone: &Name, now: Instant) {
        self.lame.insert(
            LameKey(ip, NameKey::new(zone)),
            Until(now + LAME_FOR),
            |u| u.0 > now,
        );
    }

    /// Asked for a name in `zone`, the server referred it to a child zone that only
    /// it serves (see `scrub::refers_back`).
    pub fn handed_back(&self, ip: IpAddr, zone: &Name, now: Instant) {
        let key = LameKey(ip, NameKey::new(zone));
        let bump = |h: &mut Handbacks| {
            if h.until <= now {
                h.count = 0;
            }
            h.count = h.count.saturating_add(1);
            h.until = now + LAME_FOR;
            h.probe_at = now + PROBE_EVERY;
        };
        if self.handbacks.with(&key, bump).is_none() {
            let mut h = Handbacks {
                count: 0,
                until: now,
                probe_at: now,
            };
            bump(&mut h);
            self.handbacks.insert(key, h, |h| h.until > now);
        }
    }

    /// The server gave a usable answer for `zone`: its referrals back to itself
    /// there are forgotten.
    pub fn served(&self, ip: IpAddr, zone: &Name) {
        if self.handbacks.is_empty() {
            return;
        }
        self.handbacks
            .with(&LameKey(ip, NameKey::new(zone)), |h| h.count = 0);
    }

    /// Whether a truncated reply from the server, for a name in `zone`, is asked
    /// again over TCP: not after [`HANDBACKS`] referrals back to itself there, but
    /// for one probe every [`PROBE_EVERY`] (the first caller past it takes it).
    pub fn follow_truncated(&self, ip: IpAddr, zone: &Name, now: Instant) -> bool {
        if self.handbacks.is_empty() {
            return true;
        }
        self.handbacks
            .with(&LameKey(ip, NameKey::new(zone)), |h| {
                if h.count < HANDBACKS || h.until <= now {
                    return true;
                }
                let probe = h.probe_at <= now;
                if probe {
                    h.probe_at = now + PROBE_EVERY;
                }
                probe
            })
            .unwrap_or(true)
    }

    /// Order `candidates` for a query to `zone`: usable servers first (not dead, not
    /// lame for the zone), one chosen at random among those within [`RTT_BAND_MS`]
    /// of the fastest, then the rest by RTT; lame ones last, as a last resort. A dead
    /// server is left out, but for one probe every [`PROBE_EVERY`], which goes last:
    /// when every server of a zone is dead, a question to it fails at once instead
    /// of waiting out a timeout per server (a flood of names under a dead zone).
    pub fn order(&self, candidates: &[IpAddr], zone: &Name, now: Instant) -> Vec<IpAddr> {
        let zone_key = (!self.lame.is_empty()).then(|| NameKey::new(zone));
        let mut scored: Vec<(bool, u32, IpAddr)> = Vec::with_capacity(candidates.len());
        for ip in candidates {
            let state = self.servers.with(&Host(*ip), |s| {
                let dead = s.dead_until.is_some_and(|t| t > now);
                // A dead server's probe: the first caller past `probe_at` takes it.
                let probe = dead && s.probe_at <= now;
                if probe {
                    s.probe_at = now + PROBE_EVERY;
                }
                (dead && !probe, probe, s.srtt_ms)
            });
            let (skip, probe, rtt) = state.unwrap_or((false, false, UNKNOWN_RTT_MS));
            if skip {
                continue;
            }
            // Mostly no server is lame: no key to build then.
            let is_lame = zone_key.as_ref().is_some_and(|z| {
                self.lame
                    .with(&LameKey(*ip, z.clone()), |u| u.0 > now)
                    .unwrap_or(false)
            });
            scored.push((probe || is_lame, rtt, *ip));
        }
        scored.sort_by_key(|(bad, rtt, _)| (*bad, *rtt));
        scored.dedup_by_key(|(_, _, ip)| *ip);
        let good = scored.iter().filter(|(bad, _, _)| !bad).count();
        if good > 1 {
            let best = scored[0].1;
            let band = scored[..good]
                .iter()
                .take_while(|(_, rtt, _)| *rtt <= best.saturating_add(RTT_BAND_MS))
                .count();
            let pick = random_below(band);
            scored[..band].swap(0, pick);
        }
        scored.into_iter().map(|(_, _, ip)| ip).collect()
    }

    /// The server's smoothed RTT, for the exchange timeout.
    pub fn rtt(&self, ip: IpAddr) -> Option<Duration> {
        self.servers
            .with(&Host(ip), |s| {
                (s.timeouts == 0 && s.srtt_ms != UNKNOWN_RTT_MS)
                    .then(|| Duration::from_millis(s.srtt_ms as u64))
            })
            .flatten()
    }

    /// Servers and lame marks held (for tests).
    pub fn len(&self) -> (usize, usize) {
        (self.servers.len(), self.lame.len())
    }
}

/// A number below `n` (n ≥ 1), from the kernel's CSPRNG.
pub fn random_below(n: usize) -> usize {
    crate::random::below(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lame_servers_go_last_dead_ones_wait_for_a_probe_and_marks_expire() {
        let infra = Infra::default();
        let zone = Name::from_str("example.").unwrap();
        let other = Name::from_str("other.").unwrap();
        let now = Instant::now();
        let (a, b, c) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        infra.set_lame(a, &zone, now);
        infra.timed_out(b, Duration::from_millis(400), now);
        infra.timed_out(b, Duration::from_millis(400), now);
        let order = infra.order(&[a, b, c], &zone, now);
        assert_eq!(order, vec![c, a], "lame last, dead left out");
        // Lame for one zone only.
        assert_eq!(infra.order(&[a, b], &other, now), vec![a]);
        // A dead server gets one probe per period, behind the others.
        let probe = now + PROBE_EVERY;
        assert_eq!(infra.order(&[b, c], &zone, probe), vec![c, b]);
        assert_eq!(infra.order(&[b, c], &zone, probe), vec![c], "one probe");
        // Marks expire.
        let later = now + LAME_FOR + Duration::from_secs(1);
        let order = infra.order(&[a, c], &zone, later);
        assert!(order.contains(&a) && order.len() == 2);
        assert_eq!(infra.order(&[b], &zone, later), vec![b]);
    }

    #[test]
    fn a_zone_whose_servers_all_died_is_not_asked() {
        let infra = Infra::default();
        let now = Instant::now();
        let dead: Vec<IpAddr> = (1..=10).map(|i| ip(&format!("192.0.2.{i}"))).collect();
        for d in &dead {
            infra.timed_out(*d, Duration::from_millis(400), now);
            infra.timed_out(*d, Duration::from_millis(400), now);
        }
        for i in 0..1000 {
            let t = now + Duration::from_millis(i);
            assert!(infra.order(&dead, &Name::root(), t).is_empty());
        }
    }

    #[test]
    fn the_no_edns_mark_expires() {
        let infra = Infra::default();
        let now = Instant::now();
        let root = ip("192.0.2.53");
        infra.set_no_edns(root, now);
        assert!(infra.no_edns(root, now + Duration::from_secs(60)));
        assert!(!infra.no_edns(root, now + HOST_TTL + Duration::from_secs(1)));
    }

    #[test]
    fn the_tables_stay_bounded_under_a_flood_of_servers() {
        let infra = Infra::with_capacity(1024, 1024);
        let now = Instant::now();
        let zone = Name::from_str("flood.").unwrap();
        for i in 0..50_000u32 {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            infra.unreachable(a, now);
            infra.set_lame(a, &zone, now);
        }
        let (servers, lame) = infra.len();
        assert!(
            servers <= 1024 && lame <= 1024,
            "{servers} servers, {lame} lame marks"
        );
        // What was just learned is still there.
        let last = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 49_999));
        assert!(
            infra.order(&[last], &zone, now).is_empty(),
            "recent dead mark kept"
        );
    }

    #[test]
    fn query_ids_are_spread_over_the_whole_range() {
        let ids: std::collections::HashSet<usize> = (0..256).map(|_| random_below(65536)).collect();
        assert!(ids.len() > 250, "{} distinct IDs of 256", ids.len());
    }

    #[test]
    fn the_fastest_server_is_preferred_outside_the_band() {
        let infra = Infra::default();
        let zone = Name::root();
        let now = Instant::now();
        let (fast, slow) = (ip("192.0.2.1"), ip("192.0.2.2"));
        infra.answered(fast, Duration::from_millis(5), now);
        infra.answered(slow, Duration::from_millis(900), now);
        for _ in 0..20 {
            assert_eq!(infra.order(&[slow, fast], &zone, now)[0], fast);
        }
        // A reply resets the dead mark.
        infra.timed_out(fast, Duration::from_millis(400), now);
        infra.timed_out(fast, Duration::from_millis(400), now);
        assert_eq!(infra.order(&[fast, slow], &zone, now)[0], slow);
        infra.answered(fast, Duration::from_millis(5), now);
        assert!(infra.rtt(fast).is_some(), "a reply clears the timeouts");
    }

    #[test]
    fn truncated_replies_are_not_followed_after_repeated_hand_backs_but_for_a_probe() {
        let infra = Infra::default();
        let zone = Name::from_str("huge.").unwrap();
        let other = Name::from_str("other.").unwrap();
        let now = Instant::now();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 1..HANDBACKS {
            infra.handed_back(a, &zone, now);
        }
        assert!(infra.follow_truncated(a, &zone, now), "below the count");
        infra.handed_back(a, &zone, now);
        assert!(!infra.follow_truncated(a, &zone, now));
        // Per server and zone.
        assert!(infra.follow_truncated(b, &zone, now));
        assert!(infra.follow_truncated(a, &other, now));
        // One probe per period, taken by the first caller.
        let probe = now + PROBE_EVERY;
        assert!(infra.follow_truncated(a, &zone, probe));
        assert!(!infra.follow_truncated(a, &zone, probe));
        // A usable answer for the zone clears the count.
        infra.served(a, &zone);
        assert!(infra.follow_truncated(a, &zone, probe));
        // So does time: the count is forgotten LAME_FOR after the last one.
        for _ in 0..HANDBACKS {
            infra.handed_back(b, &zone, now);
        }
        assert!(!infra.follow_truncated(b, &zone, now + Duration::from_secs(1)));
        assert!(infra.follow_truncated(b, &zone, now + LAME_FOR + Duration::from_secs(1)));
        infra.handed_back(b, &zone, now + LAME_FOR + Duration::from_secs(2));
        assert!(infra.follow_truncated(b, &zone, now + LAME_FOR + Duration::from_secs(3)));
    }
}
