//! The iterator's caches: what a name and type resolved to (positive, alias or
//! negative, with RFC 2308 negative TTLs), and zone cuts with their name servers.
//! Bounded in entries; a full shard first drops what has expired, then a sixteenth
//! of its entries (never all of them).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::Step;

/// Longest any answer is kept (Unbound's cache-max-ttl).
const MAX_TTL: u32 = 86_400;
/// Longest a negative answer is kept (Unbound's cache-max-negative-ttl).
const MAX_NEGATIVE_TTL: u32 = 3_600;
/// Negative TTL when the server sent no SOA.
const NO_SOA_NEGATIVE_TTL: u32 = 60;
const SHARDS: usize = 16;

type Shard<K, V> = Mutex<HashMap<K, (Arc<V>, Instant)>>;

/// A sharded map of values that expire.
pub struct Expiring<K, V> {
    shards: Vec<Shard<K, V>>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq + Clone, V> Expiring<K, V> {
    /// Room for about `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Expiring {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (capacity / SHARDS).max(16),
            hasher: Default::default(),
        }
    }

    fn shard(&self, k: &K) -> &Shard<K, V> {
        &self.shards[self.hasher.hash_one(k) as usize % SHARDS]
    }

    /// The value and its remaining lifetime, unless expired.
    pub fn get(&self, k: &K, now: Instant) -> Option<(Arc<V>, Duration)> {
        let m = self.shard(k).lock().unwrap_or_else(|e| e.into_inner());
        let (v, until) = m.get(k)?;
        (*until > now).then(|| (v.clone(), *until - now))
    }

    /// Keep `v` for `ttl`.
    pub fn put(&self, k: K, v: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        let mut m = self.shard(&k).lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.per_shard && !m.contains_key(&k) {
            m.retain(|_, (_, until)| *until > now);
            if m.len() >= self.per_shard {
                let drop: Vec<K> = m.keys().take(self.per_shard / 16 + 1).cloned().collect();
                for d in drop {
                    m.remove(&d);
                }
            }
        }
        m.insert(k, (Arc::new(v), now + ttl));
    }

    /// Forget everything.
    pub fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// A zone cut: the zone's name servers and the addresses known for them.
#[derive(Debug, Clone)]
pub struct Delegation {
    /// The zone.
    pub zone: Name,
    /// Its name servers.
    pub ns: Vec<Name>,
    /// Addresses of those name servers (glue, or resolved).
    pub addrs: Vec<(Name, IpAddr)>,
}

/// How long a step may be cached: the least TTL of its records, or the negative TTL.
pub fn ttl_of(step: &Step) -> Duration {
    let least = |rs: &[Record]| rs.iter().map(|r| r.ttl).min();
    let secs = match step {
        Step::Answer(rs) => least(rs).unwrap_or(0).min(MAX_TTL),
        Step::Alias(chain, _) => least(chain).unwrap_or(0).min(MAX_TTL),
        Step::NxDomain(chain, auth) | Step::NoData(chain, auth) => {
            let neg = auth
                .iter()
                .find(|r| r.record_type() == RecordType::SOA)
                .map(negative_ttl)
                .unwrap_or(NO_SOA_NEGATIVE_TTL);
            least(chain).unwrap_or(u32::MAX).min(neg)
        }
        Step::Fail(_) => 0,
    };
    Duration::from_secs(secs as u64)
}

/// RFC 2308 §5: the lesser of the SOA's TTL and its MINIMUM field.
fn negative_ttl(soa: &Record) -> u32 {
    let min = match &soa.data {
        RData::SOA(s) => s.minimum,
        _ => soa.ttl,
    };
    soa.ttl.min(min).min(MAX_NEGATIVE_TTL)
}

/// `step` with every TTL lowered by the time it spent in the cache (`left` is what
/// remains of the entry's lifetime, `full` the lifetime it was stored with).
pub fn aged(step: &Step, left: Duration) -> Step {
    let cap = left.as_secs().max(1) as u32;
    let age = |rs: &[Record]| -> Vec<Record> {
        rs.iter()
            .map(|r| {
                let mut r = r.clone();
                r.ttl = r.ttl.min(cap);
                r
            })
            .collect()
    };
    match step {
        Step::Answer(rs) => Step::Answer(age(rs)),
        Step::Alias(rs, t) => Step::Alias(age(rs), t.clone()),
        Step::NxDomain(rs, auth) => Step::NxDomain(age(rs), age(auth)),
        Step::NoData(rs, auth) => Step::NoData(age(rs), age(auth)),
        Step::Fail(w) => Step::Fail(w.clone()),
    }
}

/// Key of the answer cache.
pub type Key = (Name, RecordType);
