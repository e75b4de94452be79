//! The rules that blocked most since start, in bounded memory (`fanzha ctl
//! top-blocked`).
//!
//! Counting every rule exactly would grow with the list (millions of rules) under a
//! flood that touches many of them. This keeps [`TopRules::CAPACITY`] counters with
//! the Space-Saving algorithm (Metwally, Agrawal, El Abbadi 2005): a rule not held
//! takes the place of the smallest counter and starts from its count, remembering
//! that much as its possible overcount. Every rule that blocked more than
//! 1/CAPACITY of all blocks is held, and each count is exact to within its
//! `overcount`.

use std::collections::HashMap;
use std::sync::Mutex;

/// One held rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCount {
    /// The rule (a suffix of the names it blocked).
    pub rule: String,
    /// Blocks counted for it (possibly over by `overcount`).
    pub count: u64,
    /// How much of `count` may belong to the rules it replaced (0: exact).
    pub overcount: u64,
}

struct Slot {
    rule: Box<str>,
    count: u64,
    overcount: u64,
}

#[derive(Default)]
struct Inner {
    slots: Vec<Slot>,
    index: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// Where the search for the smallest counter goes on from.
    hand: usize,
    /// No counter is below this (counts only grow, so neither does it).
    floor: u64,
    total: u64,
}

/// The top-rules counter; shared by every DNS thread.
#[derive(Default)]
pub struct TopRules {
    inner: Mutex<Inner>,
}

impl TopRules {
    /// Counters held at most.
    pub const CAPACITY: usize = 1024;

    /// Count one block by `rule` (no allocation when the rule is already held).
    pub fn count(&self, rule: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *g;
        s.total += 1;
        if let Some(&i) = s.index.get(rule) {
            s.slots[i].count += 1;
            return;
        }
        if s.slots.len() < Self::CAPACITY {
            s.index.insert(rule.into(), s.slots.len());
            s.slots.push(Slot {
                rule: rule.into(),
                count: 1,
                overcount: 0,
            });
            return;
        }
        let i = s.smallest();
        let old = std::mem::replace(&mut s.slots[i].rule, rule.into());
        s.index.remove(&old);
        s.index.insert(rule.into(), i);
        let slot = &mut s.slots[i];
        slot.overcount = slot.count;
        slot.count += 1;
    }

    /// The `n` rules with the most blocks, most first, and the blocks counted in all.
    pub fn top(&self, n: usize) -> (Vec<RuleCount>, u64) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<RuleCount> = g
            .slots
            .iter()
            .map(|s| RuleCount {
                rule: s.rule.to_string(),
                count: s.count,
                overcount: s.overcount,
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule.cmp(&b.rule)));
        all.truncate(n);
        (all, g.total)
    }
}

impl Inner {
    /// The index of a smallest counter. Counters only grow, so the smallest count
    /// never falls: the search starts at the hand and stops at the first counter at
    /// the floor; a full turn without one raises the floor to the least it saw.
    fn smallest(&mut self) -> usize {
        let n = self.slots.len();
        let mut least = (u64::MAX, 0);
        for step in 0..n {
            let i = (self.hand + step) % n;
            let c = self.slots[i].count;
            if c <= self.floor {
                self.hand = (i + 1) % n;
                return i;
            }
            if c < least.0 {
                least = (c, i);
            }
        }
        self.floor = least.0;
        self.hand = (least.1 + 1) % n;
        least.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_while_every_rule_fits() {
        let t = TopRules::default();
        for (rule, n) in [("a.top", 5), ("b.top", 3), ("c.top", 7)] {
            for _ in 0..n {
                t.count(rule);
            }
        }
        let (top, total) = t.top(2);
        assert_eq!(total, 15);
        assert_eq!(
            top,
            vec![
                RuleCount {
                    rule: "c.top".into(),
                    count: 7,
                    overcount: 0
                },
                RuleCount {
                    rule: "a.top".into(),
                    count: 5,
                    overcount: 0
                },
            ]
        );
    }

    #[test]
    fn a_flood_of_one_off_rules_neither_grows_it_nor_hides_the_heavy_ones() {
        let t = TopRules::default();
        for i in 0..200_000u64 {
            t.count(&format!("once-{i}.top"));
            if i % 10 == 0 {
                t.count("heavy.top");
            }
            if i % 25 == 0 {
                t.count("second.top");
            }
        }
        let g = t.inner.lock().unwrap();
        assert_eq!(g.slots.len(), TopRules::CAPACITY);
        assert_eq!(g.index.len(), TopRules::CAPACITY);
        drop(g);
        let (top, total) = t.top(2);
        assert_eq!(total, 200_000 + 20_000 + 8_000);
        assert_eq!(top[0].rule, "heavy.top");
        assert_eq!(top[1].rule, "second.top");
        // Space-Saving's bound: never under the truth, over by at most total/CAPACITY.
        let bound = total / TopRules::CAPACITY as u64;
        assert!(top[0].count >= 20_000 && top[0].count - 20_000 <= bound);
        assert!(top[0].count - top[0].overcount <= 20_000);
    }

    #[test]
    fn the_smallest_counter_is_the_one_replaced() {
        let t = TopRules::default();
        for i in 0..TopRules::CAPACITY {
            for _ in 0..(2 + i % 3) {
                t.count(&format!("r{i}.top"));
            }
        }
        // One rule at 1 would be the smallest; there is none, so a count-2 one goes.
        t.count("new.top");
        let (top, _) = t.top(TopRules::CAPACITY);
        let new = top.iter().find(|r| r.rule == "new.top").unwrap();
        assert_eq!((new.count, new.overcount), (3, 2));
        assert!(!top.iter().any(|r| r.rule == "r0.top"));
    }
}
