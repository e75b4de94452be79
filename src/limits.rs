//! Limits shared by the listeners that anyone on the network can reach (DNS over
//! TCP, the warning page): connections per client address, resolutions in flight
//! shared fairly under pressure ([`Admission`]), and log lines that say "refused" at
//! most once per period instead of once per refusal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A log line at most every [`Quiet::EVERY`], with the number of the ones held back.
#[derive(Default)]
pub struct Quiet {
    last: Mutex<Option<Instant>>,
    held: AtomicU64,
}

impl Quiet {
    /// The period.
    pub const EVERY: Duration = Duration::from_secs(10);

    /// A new one.
    pub fn new() -> Quiet {
        Quiet::default()
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    pub fn may_log(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Self::EVERY) {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.held.swap(0, Ordering::Relaxed))
    }
}

/// The network `ip` belongs to at `prefix_v4` / `prefix_v6` bits: how clients are
/// counted by the rate limit and the cap on resolutions in flight (an IPv6 client
/// rotating addresses in its /56 is one client).
pub fn prefix(ip: IpAddr, prefix_v4: u8, prefix_v6: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_v4.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_v6.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// The client an address counts as for the per-client caps (TCP connections, the
/// warning page's connections, appeals): the address itself for IPv4, its /56 for
/// IPv6 (the rate limiter's default), so that a device rotating through its IPv6
/// addresses is one client.
pub fn client_of(ip: IpAddr) -> IpAddr {
    prefix(ip, 32, 56)
}

/// Open connections by client (see [`client_of`]).
#[derive(Default)]
pub struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// A connection's place in [`PerClient`], given back when it ends.
pub struct ClientSlot {
    table: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// A slot for `ip`, unless it holds `cap` already.
    pub fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<ClientSlot> {
        let ip = client_of(ip);
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Resolutions in flight, by client prefix: while the server has room, nobody is
/// refused, however busy (one address is often a NAT in front of a school or an
/// office). At `max` in all, room is made by shedding from the heaviest client, as
/// Unbound's jostle does: its oldest resolution is cancelled for a client that
/// holds less than its guaranteed `share`, unless the heaviest holds no more than
/// that share itself. So a flood of unique names from one client fills the free
/// room but never keeps the others out; a client past its share is refused at the
/// cap.
#[derive(Default)]
pub struct Admission(Mutex<Table>);

#[derive(Default)]
struct Table {
    total: usize,
    next: u64,
    /// Each client's slots, oldest first.
    clients: HashMap<IpAddr, BTreeMap<u64, CancellationToken>, foldhash::fast::RandomState>,
    /// (slots held, client), to find the heaviest without a scan.
    load: BTreeSet<(usize, IpAddr)>,
}

impl Table {
    fn set_load(&mut self, ip: IpAddr, before: usize, after: usize) {
        if before > 0 {
            self.load.remove(&(before, ip));
        }
        if after > 0 {
            self.load.insert((after, ip));
        }
    }

    /// Remove slot `id` of `ip`; its token, if it was there.
    fn remove(&mut self, ip: IpAddr, id: u64) -> Option<CancellationToken> {
        let slots = self.clients.get_mut(&ip)?;
        let token = slots.remove(&id)?;
        let after = slots.len();
        if after == 0 {
            self.clients.remove(&ip);
        }
        self.set_load(ip, after + 1, after);
        self.total -= 1;
        Some(token)
    }
}

/// A resolution's place in [`Admission`], given back when it ends.
pub struct ResolutionSlot {
    table: Arc<Admission>,
    ip: IpAddr,
    id: u64,
    jostled: CancellationToken,
}

impl ResolutionSlot {
    /// Resolves when the slot was taken away for another client's query (the
    /// resolution should stop: nobody will send its answer).
    pub fn jostled(&self) -> WaitForCancellationFutureOwned {
        self.jostled.clone().cancelled_owned()
    }
}

impl Admission {
    /// A slot for `ip`, within `max` in all; a client holding no more than `share`
    /// is never shed for another.
    pub fn take(self: &Arc<Self>, ip: IpAddr, max: usize, share: usize) -> Option<ResolutionSlot> {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let t = &mut *guard;
        if t.total >= max {
            let held = t.clients.get(&ip).map_or(0, BTreeMap::len);
            let &(heaviest, victim) = t.load.last()?;
            // Only a client within its share sheds another, so heavy clients never
            // shed each other back and forth (each shed resolution is work thrown
            // away); they are refused until room comes back.
            if victim == ip || held >= share || heaviest <= share {
                return None;
            }
            let oldest = *t.clients.get(&victim)?.keys().next()?;
            if let Some(token) = t.remove(victim, oldest) {
                token.cancel();
            }
        }
        let id = t.next;
        t.next += 1;
        let jostled = CancellationToken::new();
        let slots = t.clients.entry(ip).or_default();
        slots.insert(id, jostled.clone());
        let after = slots.len();
        t.set_load(ip, after - 1, after);
        t.total += 1;
        Some(ResolutionSlot {
            table: self.clone(),
            ip,
            id,
            jostled,
        })
    }

    /// Resolutions in flight (all clients).
    pub fn in_flight(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for ResolutionSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        t.remove(self.ip, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_slots_are_given_back() {
        let t = Arc::new(PerClient::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| t.take(ip, 3).unwrap()).collect();
        assert!(t.take(ip, 3).is_none());
        assert!(t.take("192.0.2.2".parse().unwrap(), 3).is_some());
        drop(held);
        assert!(
            t.0.lock().unwrap().is_empty(),
            "no entry left for a gone client"
        );
        assert!(t.take(ip, 3).is_some());
    }

    #[test]
    fn an_ipv6_client_rotating_addresses_is_one_client() {
        let t = Arc::new(PerClient::default());
        let held: Vec<_> = (1..=3)
            .map(|i| {
                t.take(format!("2001:db8:1:2{i}::{i}").parse().unwrap(), 3)
                    .unwrap()
            })
            .collect();
        // Another address of the same /56: the cap holds.
        assert!(t.take("2001:db8:1:ff::9".parse().unwrap(), 3).is_none());
        // Another /56, and IPv4 addresses side by side, are other clients.
        assert!(t.take("2001:db8:1:100::1".parse().unwrap(), 3).is_some());
        assert!(t.take("192.0.2.2".parse().unwrap(), 1).is_some());
        assert!(t.take("192.0.2.3".parse().unwrap(), 1).is_some());
        drop(held);
    }

    #[test]
    fn quiet_logs_once_per_period_and_counts_the_rest() {
        let q = Quiet::new();
        assert_eq!(q.may_log(), Some(0));
        for _ in 0..5 {
            assert_eq!(q.may_log(), None);
        }
        *q.last.lock().unwrap() = Some(Instant::now() - Quiet::EVERY);
        assert_eq!(q.may_log(), Some(5));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_busy_client_is_not_refused_while_there_is_room() {
        let t = Arc::new(Admission::default());
        let nat = ip("192.0.2.1");
        let held: Vec<_> = (0..5000).map(|_| t.take(nat, 10_000, 100)).collect();
        assert!(held.iter().all(Option::is_some), "refused below max");
        assert_eq!(t.in_flight(), 5000);
        drop(held);
        assert_eq!(t.in_flight(), 0);
        let g = t.0.lock().unwrap();
        assert!(
            g.clients.is_empty() && g.load.is_empty(),
            "nothing left behind"
        );
    }

    #[test]
    fn at_the_cap_the_heaviest_client_is_shed_oldest_first() {
        let t = Arc::new(Admission::default());
        let (flood, quiet) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let mut flooder: Vec<_> = (0..1000)
            .map(|_| t.take(flood, 1000, 10).unwrap())
            .collect();
        // Full: the flooder itself is refused…
        assert!(t.take(flood, 1000, 10).is_none());
        // …and a quiet client's queries get in up to its share, each at the cost of
        // the flooder's oldest.
        let quiet_slots: Vec<_> = (0..10).map(|_| t.take(quiet, 1000, 10)).collect();
        assert!(quiet_slots.iter().all(Option::is_some));
        assert!(t.take(quiet, 1000, 10).is_none(), "past its share");
        assert_eq!(t.in_flight(), 1000);
        for (i, s) in flooder.iter().enumerate() {
            assert_eq!(s.jostled.is_cancelled(), i < 10, "slot {i}");
        }
        // Dropping a shed slot gives nothing back twice.
        flooder.drain(..10);
        assert_eq!(t.in_flight(), 1000);
        // Two clients at the cap, both past their share: nobody is shed, however
        // uneven (heavy clients do not shed each other back and forth).
        let t = Arc::new(Admission::default());
        let a: Vec<_> = (0..7).map(|_| t.take(flood, 10, 2).unwrap()).collect();
        let b: Vec<_> = (0..3).map(|_| t.take(quiet, 10, 2).unwrap()).collect();
        assert!(t.take(quiet, 10, 2).is_none());
        assert!(a.iter().chain(&b).all(|s| !s.jostled.is_cancelled()));
    }

    #[test]
    fn a_client_within_its_share_is_never_shed() {
        let t = Arc::new(Admission::default());
        let held: Vec<_> = (0..10)
            .map(|i| t.take(ip(&format!("192.0.2.{i}")), 10, 1).unwrap())
            .collect();
        assert!(t.take(ip("192.0.2.99"), 10, 1).is_none());
        assert!(held.iter().all(|s| !s.jostled.is_cancelled()));
    }

    #[tokio::test]
    async fn a_shed_slot_wakes_its_resolution() {
        let t = Arc::new(Admission::default());
        let old = t.take(ip("192.0.2.1"), 3, 1).unwrap();
        let _more = (t.take(ip("192.0.2.1"), 3, 1), t.take(ip("192.0.2.1"), 3, 1));
        let _new = t.take(ip("192.0.2.2"), 3, 1).unwrap();
        tokio::time::timeout(Duration::from_secs(1), old.jostled())
            .await
            .expect("the shed resolution is told");
    }
}
