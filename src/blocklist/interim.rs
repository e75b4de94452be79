//! A hash index of the parsed rules that serves while the first compile finishes.
//!
//! A first start (no snapshot of an earlier compile) must parse, sort and build the
//! fst before the compiled file exists; at 1M names the sort and the fst take about
//! four fifths of that. The parse alone already knows every rule, so the compiler
//! can hand over this index as soon as the lists are read: the same names and the
//! same merged values (see [`super::runs::combine`]), looked up by hashing each
//! suffix of the query (the names are still as written: the compile turns them into
//! the fst's reversed keys only when it sorts). It lives for the seconds until the compiled file is swapped
//! in, then goes with its memory (its table is 16 to 32 bytes per name; the keys and
//! records are the compile's, shared).

use std::collections::HashMap;
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

use super::runs::{Rec, combine};
use super::value;

/// The rules (names as written, lower-case, and values) in an open-addressing table.
/// The names and records are the compile's own, shared: nothing is copied.
pub struct Interim {
    keys: Arc<Vec<u8>>,
    recs: Arc<Vec<Rec>>,
    /// Upper half: the lower 32 bits of the key's hash, so that a probe compares keys
    /// only when these agree; lower half: index + 1 of the key's first rule, with
    /// [`MERGED`] set when later rules repeat the key. 0 is an empty slot. A power of
    /// two long, at most half full; a key's first slot is its hash's top bits.
    slots: Vec<u64>,
    shift: u32,
    /// Merged values of repeated keys, by the index of their first rule.
    merged: HashMap<u32, u64>,
    len: usize,
    block_entries: u64,
    allow_entries: u64,
}

/// The bits of a slot that hold the tag.
const TAG: u64 = !(u32::MAX as u64);
/// Set in a slot whose key has several rules: its value is in `merged`.
const MERGED: u64 = 1 << 31;
const INDEX: u64 = MERGED - 1;

const BLOCK: u64 = value::BLOCK_SELF | value::BLOCK_BELOW;
const ALLOW: u64 = value::ALLOW_SELF | value::ALLOW_BELOW;

impl Interim {
    /// Index `recs` (in file order; keys in `keys`): rules of one key are merged as
    /// the compile merges them. `None` past 2^31 rules.
    pub fn build(keys: Arc<Vec<u8>>, recs: Arc<Vec<Rec>>) -> Option<Interim> {
        let n = recs.len();
        if n as u64 >= INDEX {
            return None;
        }
        let cap = (n * 2).next_power_of_two().max(16);
        let mut ix = Interim {
            keys,
            recs,
            slots: vec![0; cap],
            shift: 64 - cap.trailing_zeros(),
            merged: HashMap::new(),
            len: 0,
            block_entries: 0,
            allow_entries: 0,
        };
        // In file order every insert is a cache miss on its slot: the slots of a small
        // batch are fetched ahead so that the misses overlap.
        const BATCH: usize = 16;
        let mut batch = [0u64; BATCH];
        let recs = ix.recs.clone();
        for (c, chunk) in recs.chunks(BATCH).enumerate() {
            for (k, r) in chunk.iter().enumerate() {
                let h = xxh3_64(ix.key(r));
                prefetch(&ix.slots[(h >> ix.shift) as usize]);
                batch[k] = h;
            }
            for (k, &h) in batch[..chunk.len()].iter().enumerate() {
                ix.insert(h, (c * BATCH + k) as u32);
            }
        }
        Some(ix)
    }

    /// Add rule `i` (its key's hash `h`): a new key, or a repeat merged into the
    /// value of the key's first rule.
    fn insert(&mut self, h: u64, i: u32) {
        let mask = self.slots.len() - 1;
        let tag = h << 32;
        let rec = self.recs[i as usize];
        let mut s = (h >> self.shift) as usize;
        loop {
            let slot = self.slots[s];
            if slot == 0 {
                self.slots[s] = tag | (u64::from(i) + 1);
                self.len += 1;
                self.count(rec.value, 1);
                return;
            }
            if slot & TAG == tag {
                let first = ((slot & INDEX) - 1) as u32;
                if self.key(&self.recs[first as usize]) == self.key(&rec) {
                    let old = self.value_of(slot);
                    let new = combine(old, rec.value);
                    self.merged.insert(first, new);
                    self.slots[s] |= MERGED;
                    self.count(old, -1);
                    self.count(new, 1);
                    return;
                }
            }
            s = (s + 1) & mask;
        }
    }

    fn count(&mut self, v: u64, by: i64) {
        let f = value::flags(v);
        if f & BLOCK != 0 {
            self.block_entries = self.block_entries.wrapping_add_signed(by);
        }
        if f & ALLOW != 0 {
            self.allow_entries = self.allow_entries.wrapping_add_signed(by);
        }
    }

    fn key(&self, r: &Rec) -> &[u8] {
        &self.keys[r.off as usize..r.off as usize + r.len as usize]
    }

    fn value_of(&self, slot: u64) -> u64 {
        let first = ((slot & INDEX) - 1) as u32;
        if slot & MERGED != 0 {
            self.merged[&first]
        } else {
            self.recs[first as usize].value
        }
    }

    /// Distinct keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys carrying a block rule, and keys carrying an allow rule.
    pub fn counts(&self) -> (u64, u64) {
        (self.block_entries, self.allow_entries)
    }

    /// The merged value of the rules for `name` (lower-case, no trailing dot).
    pub fn get(&self, name: &[u8]) -> Option<u64> {
        let mask = self.slots.len() - 1;
        let h = xxh3_64(name);
        let tag = h << 32;
        let mut s = (h >> self.shift) as usize;
        loop {
            let slot = self.slots[s];
            if slot == 0 {
                return None;
            }
            if slot & TAG == tag && self.key(&self.recs[((slot & INDEX) - 1) as usize]) == name {
                return Some(self.value_of(slot));
            }
            s = (s + 1) & mask;
        }
    }

    /// Every name and value, in the order of their keys (as the compiled file lists
    /// them).
    pub fn entries(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(Vec<u8>, u64)> = self
            .slots
            .iter()
            .filter(|&&s| s != 0)
            .map(|&s| {
                let mut key = self.key(&self.recs[((s & INDEX) - 1) as usize]).to_vec();
                super::name::reverse_labels(&mut key);
                (key, self.value_of(s))
            })
            .collect();
        v.sort_unstable();
        v.into_iter()
            .map(|(k, val)| (super::name::name_from_key(&k), val))
            .collect()
    }
}

/// Ask the CPU to fetch `p`'s cache line; a hint only.
#[inline(always)]
fn prefetch<T>(p: &T) {
    // SAFETY: SSE is in the x86_64 baseline, and a prefetch never faults nor reads
    // into the program: the pointer comes from a live reference anyway.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (p as *const T).cast::<i8>(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(rules: &[(&str, u64)]) -> Interim {
        let mut keys = Vec::new();
        let mut recs = Vec::new();
        for (k, v) in rules {
            recs.push(Rec {
                off: keys.len() as u32,
                len: k.len() as u8,
                value: *v,
            });
            keys.extend_from_slice(k.as_bytes());
        }
        Interim::build(Arc::new(keys), Arc::new(recs)).unwrap()
    }

    #[test]
    fn finds_every_key_and_merges_repeats_in_file_order() {
        let block_a = value::pack(value::BLOCK_SELF | value::BLOCK_BELOW, 1, 0, 0, 0);
        let block_b = value::pack(value::BLOCK_SELF, 2, 1, 0, 3);
        let allow = value::pack(value::ALLOW_SELF, 0, 0, 2, 0);
        let ix = index(&[
            ("evil.top", block_a),
            ("ok.top", allow),
            ("evil.top", block_b),
            ("evil.top", allow),
        ]);
        assert_eq!(ix.len(), 2);
        assert_eq!(
            ix.get(b"evil.top"),
            Some(combine(combine(block_a, block_b), allow))
        );
        assert_eq!(ix.get(b"ok.top"), Some(allow));
        assert_eq!(ix.get(b"top"), None);
        assert_eq!(ix.get(b"a.evil.top"), None);
        assert_eq!(ix.counts(), (1, 2));
        let names: Vec<String> = ix.entries().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["evil.top", "ok.top"]);
    }

    #[test]
    fn a_full_table_region_still_answers() {
        // Many keys: every probe sequence is exercised, misses end at an empty slot.
        let names: Vec<String> = (0..5000).map(|i| format!("n{i}.top")).collect();
        let rules: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let ix = index(&rules);
        assert_eq!(ix.len(), 5000);
        for n in &names {
            assert_eq!(ix.get(n.as_bytes()), Some(1), "{n}");
        }
        for i in 5000..10000 {
            assert_eq!(ix.get(format!("n{i}.top").as_bytes()), None);
        }
    }
}
