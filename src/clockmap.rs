//! A sharded map bounded in entries and in bytes, for the caches: past either bound,
//! entries go one at a time in CLOCK order. An entry read since the hand last passed
//! it gets a second chance, so a flood of keys used once cannot push out the keys
//! used again; an entry its cache no longer wants (expired, stale) goes at once.
//! No operation scans the shard.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// One shard. The table maps a key to its entry's place in `slots`, so that the
/// table's own slots stay a few bytes wide: a hash table under churn (one entry in,
/// one out) fills with tombstones and doubles while half full, and a table of whole
/// entries paid the entry's size for each of those empty slots (a 64 MiB cache's
/// table was 36 MB, mostly empty, and its doubling showed in RSS).
struct Shard<K, V> {
    index: HashMap<K, u32, Hasher>,
    /// The entries; `None` where one went, its place in `free` until reused. No
    /// longer than the most entries held at once.
    slots: Vec<Option<Slot<V>>>,
    free: Vec<u32>,
    /// Keys in insertion order; the front is the hand.
    clock: VecDeque<K>,
    bytes: usize,
}

impl<K, V> Default for Shard<K, V> {
    fn default() -> Self {
        Shard {
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            clock: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<K: Hash + Eq, V> Shard<K, V> {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn get_mut(&mut self, k: &K) -> Option<&mut Slot<V>> {
        let i = *self.index.get(k)?;
        self.slots[i as usize].as_mut()
    }

    fn remove(&mut self, k: &K) -> Option<Slot<V>> {
        let i = self.index.remove(k)?;
        self.free.push(i);
        self.slots[i as usize].take()
    }

    /// Add `slot` under `k`, which is not held.
    fn add(&mut self, k: K, slot: Slot<V>) {
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(k, i);
    }
}

/// The map.
pub struct ClockMap<K, V> {
    shards: Vec<Mutex<Shard<K, V>>>,
    /// Entries held in all shards, kept beside them so that `len` and `is_empty`
    /// (asked on the miss path: any lame mark? any hand-back?) lock nothing.
    held: AtomicUsize,
    entries_per_shard: usize,
    bytes_per_shard: usize,
    hasher: Hasher,
}

impl<K: Hash + Eq + Clone + Weigh, V: Weigh> ClockMap<K, V> {
    /// What an entry costs besides its key's and value's heap parts: its slot in the
    /// table (key, index and a control byte), counted four times (a table under churn
    /// runs down to a quarter full before it is rebuilt); its place among the entries
    /// and in the free list, and its key in the queue, each counted twice (they grow
    /// by doubling, so up to half is room not yet used).
    const SLOT: usize = 4 * (std::mem::size_of::<(K, u32)>() + 1)
        + 2 * (std::mem::size_of::<Option<Slot<V>>>() + 4)
        + 2 * std::mem::size_of::<K>();

    /// At most about `entries` entries and `bytes` bytes (0 entries: always empty).
    pub fn new(entries: usize, bytes: usize) -> Self {
        ClockMap {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            held: AtomicUsize::new(0),
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
        let slot = s.get_mut(k)?;
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
        let before = s.len();
        if let Some(old) = s.remove(&k) {
            s.bytes -= old.weight;
        } else {
            let mut turns = 2 * s.clock.len() + 1;
            while (s.len() >= self.entries_per_shard || s.bytes + weight > self.bytes_per_shard)
                && turns > 0
            {
                turns -= 1;
                let Some(hand) = s.clock.pop_front() else {
                    break;
                };
                let Some(slot) = s.get_mut(&hand) else {
                    continue;
                };
                if slot.visited && wanted(&slot.value) {
                    slot.visited = false;
                    s.clock.push_back(hand);
                } else if let Some(gone) = s.remove(&hand) {
                    s.bytes -= gone.weight;
                }
            }
            s.clock.push_back(k.clone());
        }
        s.bytes += weight;
        s.add(
            k,
            Slot {
                value: v,
                weight,
                visited: false,
            },
        );
        let after = s.len();
        if after > before {
            self.held.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// Remove the entries `keep` says no to, and return how many went. Unlike every
    /// other operation this walks each shard (for `fanzha ctl flush-cache`, never for
    /// a query).
    pub fn retain(&self, keep: impl Fn(&K, &V) -> bool) -> usize {
        let mut gone = 0;
        for shard in &self.shards {
            let mut g = shard.lock().unwrap_or_else(|e| e.into_inner());
            let s = &mut *g;
            let before = s.len();
            let mut freed = 0;
            let Shard {
                index, slots, free, ..
            } = s;
            index.retain(|k, i| {
                let Some(slot) = &slots[*i as usize] else {
                    return false;
                };
                let kept = keep(k, &slot.value);
                if !kept {
                    freed += slot.weight;
                    slots[*i as usize] = None;
                    free.push(*i);
                }
                kept
            });
            s.bytes -= freed;
            self.held.fetch_sub(before - s.len(), Ordering::Relaxed);
            gone += before - s.len();
            if s.index.is_empty() {
                // All gone: give the memory back too.
                *s = Shard::default();
            } else if before != s.len() {
                let index = &s.index;
                s.clock.retain(|k| index.contains_key(k));
            }
        }
        gone
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
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
    fn churn_reuses_the_places_of_entries_that_went() {
        // A flood of keys used once through a full map: one in, one out, 100 times
        // over. The entries' storage stays at the most held at once.
        let m: ClockMap<u64, Blob> = ClockMap::new(16 * 64, usize::MAX);
        for k in 0..100_000u64 {
            m.insert(k, Blob(1), |_| true);
        }
        assert!(m.len() <= 16 * 64);
        for shard in &m.shards {
            let s = shard.lock().unwrap();
            assert!(
                s.slots.len() <= 64,
                "{} places for {}",
                s.slots.len(),
                s.len()
            );
            assert_eq!(s.slots.iter().filter(|x| x.is_some()).count(), s.len());
            assert_eq!(s.free.len(), s.slots.len() - s.len());
        }
        // The newest are held, and their values are theirs.
        assert!(m.with(&99_999, |b| b.0).is_some());
        assert!(m.with(&0, |_| ()).is_none());
        // Emptied, a shard gives its memory back.
        m.retain(|_, _| false);
        assert!(
            m.shards
                .iter()
                .all(|s| s.lock().unwrap().slots.capacity() == 0)
        );
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
