//! Limits shared by the listeners that anyone on the network can reach (DNS over
//! TCP, the warning page): connections per client address, and log lines that say
//! "refused" at most once per period instead of once per refusal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Open connections by client address.
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
    fn quiet_logs_once_per_period_and_counts_the_rest() {
        let q = Quiet::new();
        assert_eq!(q.may_log(), Some(0));
        for _ in 0..5 {
            assert_eq!(q.may_log(), None);
        }
        *q.last.lock().unwrap() = Some(Instant::now() - Quiet::EVERY);
        assert_eq!(q.may_log(), Some(5));
    }
}
