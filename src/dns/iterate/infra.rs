//! What the iterator knows of each name server, in the spirit of Unbound's infra
//! cache: a smoothed round-trip time, a dead mark after repeated timeouts, lame
//! marks per zone, and whether it understands EDNS. Each mark expires.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cache::NameKey;
use hickory_proto::rr::Name;

/// The RTT assumed for a server never heard from (Unbound's UNKNOWN_SERVER_NICENESS).
pub const UNKNOWN_RTT_MS: u32 = 376;
/// Servers whose RTT is within this of the best are chosen among at random, so that
/// a slower server is tried now and then and its RTT stays known.
pub const RTT_BAND_MS: u32 = 400;
/// A server that timed out this many times in a row is left alone for a while.
const DEAD_AFTER: u8 = 2;
const DEAD_FOR: Duration = Duration::from_secs(60);
/// How long a server stays lame for a zone (Unbound's infra-lame-ttl).
const LAME_FOR: Duration = Duration::from_secs(900);
/// Most servers remembered; past it, entries not heard from in 15 minutes go.
const MAX_SERVERS: usize = 100_000;

#[derive(Debug, Clone)]
struct Server {
    srtt_ms: u32,
    timeouts: u8,
    dead_until: Option<Instant>,
    no_edns: bool,
    last: Instant,
}

/// Per-server state, shared by every resolution.
#[derive(Default)]
pub struct Infra {
    servers: Mutex<HashMap<IpAddr, Server, foldhash::fast::RandomState>>,
    lame: Mutex<HashMap<(IpAddr, NameKey), Instant, foldhash::fast::RandomState>>,
}

impl Infra {
    fn with<T>(&self, ip: IpAddr, now: Instant, f: impl FnOnce(&mut Server) -> T) -> T {
        let mut m = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_SERVERS && !m.contains_key(&ip) {
            m.retain(|_, s| now.duration_since(s.last) < Duration::from_secs(900));
        }
        let s = m.entry(ip).or_insert(Server {
            srtt_ms: UNKNOWN_RTT_MS,
            timeouts: 0,
            dead_until: None,
            no_edns: false,
            last: now,
        });
        s.last = now;
        f(s)
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
        });
    }

    /// The server answered FORMERR or NOTIMP to a query with EDNS.
    pub fn set_no_edns(&self, ip: IpAddr, now: Instant) {
        self.with(ip, now, |s| s.no_edns = true);
    }

    /// Whether queries to the server go without EDNS.
    pub fn no_edns(&self, ip: IpAddr) -> bool {
        let m = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&ip).is_some_and(|s| s.no_edns)
    }

    /// The server does not serve `zone` (REFUSED, a referral up, no AA).
    pub fn set_lame(&self, ip: IpAddr, zone: &Name, now: Instant) {
        let mut m = self.lame.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_SERVERS {
            m.retain(|_, until| *until > now);
        }
        m.insert((ip, NameKey::new(zone)), now + LAME_FOR);
    }

    /// Order `candidates` for a query to `zone`: usable servers first (not dead, not
    /// lame for the zone), one chosen at random among those within [`RTT_BAND_MS`]
    /// of the fastest, then the rest by RTT; dead and lame ones last, as a last resort.
    pub fn order(&self, candidates: &[IpAddr], zone: &Name, now: Instant) -> Vec<IpAddr> {
        let lame = self.lame.lock().unwrap_or_else(|e| e.into_inner());
        let servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let mut scored: Vec<(bool, u32, IpAddr)> = candidates
            .iter()
            .map(|ip| {
                let s = servers.get(ip);
                let dead = s.and_then(|s| s.dead_until).is_some_and(|t| t > now);
                // Mostly no server is lame: no key to build then.
                let is_lame = !lame.is_empty()
                    && lame
                        .get(&(*ip, NameKey::new(zone)))
                        .is_some_and(|t| *t > now);
                let rtt = s.map(|s| s.srtt_ms).unwrap_or(UNKNOWN_RTT_MS);
                (dead || is_lame, rtt, *ip)
            })
            .collect();
        drop((lame, servers));
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
        let m = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&ip)
            .filter(|s| s.timeouts == 0 && s.srtt_ms != UNKNOWN_RTT_MS)
            .map(|s| Duration::from_millis(s.srtt_ms as u64))
    }
}

/// A number below `n` (n ≥ 1), from the process's random hasher keys.
pub fn random_below(n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (h.finish() % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lame_and_dead_servers_go_last_and_come_back_when_their_mark_expires() {
        let infra = Infra::default();
        let zone = Name::from_str("example.").unwrap();
        let other = Name::from_str("other.").unwrap();
        let now = Instant::now();
        let (a, b, c) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        infra.set_lame(a, &zone, now);
        infra.timed_out(b, Duration::from_millis(400), now);
        infra.timed_out(b, Duration::from_millis(400), now);
        let order = infra.order(&[a, b, c], &zone, now);
        assert_eq!(order[0], c);
        assert_eq!(order.len(), 3, "bad servers stay as a last resort");
        // Lame for one zone only.
        assert_ne!(infra.order(&[a, b], &other, now)[0], b);
        // Marks expire.
        let later = now + LAME_FOR + Duration::from_secs(1);
        let order = infra.order(&[a, c], &zone, later);
        assert!(order.contains(&a) && order.len() == 2);
        assert!(!infra.order(&[b], &zone, later).is_empty());
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
}
