//! A sharded map bounded in entries and in bytes, for the caches: past either bound,
//! entries go one at a time in CLOCK order. An entry read since the hand last passed
//! it gets a second chance, so a flood of keys used once cannot push out the keys
//! used again; an entry its cache no longer wants (expired, stale) goes at once.
//! No operation scans the shard.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

const SHARDS: usize = 16;

/// What a key or value holds on the heap, in bytes as the allocator spends them
/// (see [`chunk`]). The map adds what its own slots take.
pub trait Weigh {
    /// Bytes.
    fn weight(&self) -> usize;
}

impl Weigh for u64 {
    fn weight(&self) -> usize {
        0
    }
}

/// What an allocation of `size` bytes costs in glibc's malloc: the request and an
/// 8-byte header, rounded up to 16, at least 32 (nothing for an empty buffer).
pub const fn chunk(size: usize) -> usize {
    if size == 0 {
        return 0;
    }
    let c = (size + 8).div_ceil(16) * 16;
    if c < 32 { 32 } else { c }
}

struct Slot<V> {
    value: V,
    weight: usize,
    visited: bool,
}

/// foldhash, seeded per process: several times faster than SipHash on short keys,
/// and the seed keeps keys chosen by clients from piling into one bucket.
type Hasher = foldhash::fast::RandomState;

struct Shard<K, V> {
    map: HashMap<K, Slot<V>, Hasher>,
    /// Keys in insertion order; the front is the hand.
    clock: VecDeque<K>,
    bytes: usize,
}

impl<K, V> Default for Shard<K, V> {
    fn default() -> Self {
        Shard {
            map: HashMap::default(),
            clock: VecDeque::new(),
            bytes: 0,
        }
    }
}

/// The map.
pub struct ClockMap<K, V> {
    shards: Vec<Mutex<Shard<K, V>>>,
    entries_per_shard: usize,
    bytes_per_shard: usize,
    hasher: Hasher,
}

impl<K: Hash + Eq + Clone + Weigh, V: Weigh> ClockMap<K, V> {
    /// What an entry costs besides its key's and value's heap parts: its slot in the
    /// table (key, value and a control byte) and its key in the queue, each counted
    /// twice because tables and queues grow by doubling and run up to half empty.
    const SLOT: usize = 2 * (std::mem::size_of::<(K, Slot<V>)>() + 1 + std::mem::size_of::<K>());

    /// At most about `entries` entries and `bytes` bytes (0 entries: always empty).
    pub fn new(entries: usize, bytes: usize) -> Self {
        ClockMap {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            entries_per_shard: entries / SHARDS,
            bytes_per_shard: bytes / SHARDS,
            hasher: Default::default(),
        }
    }

    fn shard(&self, k: &K) -> std::sync::MutexGuard<'_, Shard<K, V>> {
        self.shards[self.hasher.hash_one(k) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the value of `k`, marking it used; `None` when absent.
    pub fn with<R>(&self, k: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut s = self.shard(k);
        let slot = s.map.get_mut(k)?;
        slot.visited = true;
        Some(f(&mut slot.value))
    }

    /// Store `v` under `k`, first making room: entries `wanted` says no to go as the
    /// hand reaches them, others after a second chance if they were used.
    pub fn insert(&self, k: K, v: V, wanted: impl Fn(&V) -> bool) {
        // The key is held twice: in the table and in the queue.
        let weight = v.weight() + 2 * k.weight() + Self::SLOT;
        if self.entries_per_shard == 0 || weight > self.bytes_per_shard {
            return;
        }
        let mut guard = self.shard(&k);
        let s = &mut *guard;
        if let Some(old) = s.map.remove(&k) {
            s.bytes -= old.weight;
        } else {
            let mut turns = 2 * s.clock.len() + 1;
            while (s.map.len() >= self.entries_per_shard || s.bytes + weight > self.bytes_per_shard)
                && turns > 0
            {
                turns -= 1;
                let Some(hand) = s.clock.pop_front() else {
                    break;
                };
                let Some(slot) = s.map.get_mut(&hand) else {
                    continue;
                };
                if slot.visited && wanted(&slot.value) {
                    slot.visited = false;
                    s.clock.push_back(hand);
                } else if let Some(gone) = s.map.remove(&hand) {
                    s.bytes -= gone.weight;
                }
            }
            s.clock.push_back(k.clone());
        }
        s.bytes += weight;
        s.map.insert(
            k,
            Slot {
                value: v,
                weight,
                visited: false,
            },
        );
    }

    /// Remove the entries `keep` says no to, and return how many went. Unlike every
    /// other operation this walks each shard (for `fanzha ctl flush-cache`, never for
    /// a query).
    pub fn retain(&self, keep: impl Fn(&K, &V) -> bool) -> usize {
        let mut gone = 0;
        for shard in &self.shards {
            let mut g = shard.lock().unwrap_or_else(|e| e.into_inner());
            let s = &mut *g;
            let before = s.map.len();
            let mut freed = 0;
            s.map.retain(|k, slot| {
                let kept = keep(k, &slot.value);
                if !kept {
                    freed += slot.weight;
                }
                kept
            });
            s.bytes -= freed;
            gone += before - s.map.len();
            if s.map.is_empty() {
                s.clock.clear();
            } else if before != s.map.len() {
                let map = &s.map;
                s.clock.retain(|k| map.contains_key(k));
            }
        }
        gone
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.map.len()).unwrap_or(0))
            .sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, as [`Weigh::weight`] counts them.
    pub fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.bytes).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Blob(usize);
    impl Weigh for Blob {
        fn weight(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn bounds_hold_and_used_entries_get_a_second_chance() {
        let m: ClockMap<u64, Blob> = ClockMap::new(1_000_000, 16 * 1000);
        m.insert(0, Blob(100), |_| true);
        for k in 1..10_000u64 {
            m.insert(k, Blob(100), |_| true);
            assert!(m.bytes() <= 16 * 1000);
            if k % 3 == 0 {
                assert!(m.with(&0, |_| ()).is_some(), "the used key went at {k}");
            }
        }
        // Entries that are not wanted go first, even when used.
        let m: ClockMap<u64, Blob> = ClockMap::new(16 * 4, usize::MAX);
        for k in 0..64u64 {
            m.insert(k, Blob(1), |_| true);
            m.with(&k, |_| ());
        }
        m.insert(1000, Blob(1), |b| b.0 != 1);
        assert!(m.len() <= 64);
        assert!(m.with(&1000, |_| ()).is_some());
    }

    #[test]
    fn retain_removes_what_it_is_told_and_gives_back_the_bytes() {
        let m: ClockMap<u64, Blob> = ClockMap::new(1000, usize::MAX);
        for k in 0..100u64 {
            m.insert(k, Blob(10), |_| true);
        }
        let full = m.bytes();
        assert_eq!(m.retain(|k, _| k % 2 == 0), 50);
        assert_eq!(m.len(), 50);
        assert_eq!(m.bytes(), full / 2);
        assert!(m.with(&3, |_| ()).is_none() && m.with(&4, |_| ()).is_some());
        // A key put back after a flush is held once, and counted once.
        m.insert(3, Blob(10), |_| true);
        assert_eq!(m.bytes(), full / 2 + full / 100);
        assert_eq!(m.retain(|_, _| false), 51);
        assert_eq!((m.len(), m.bytes()), (0, 0));
    }
}
