//! Blocks of the last seven days by category and street, for the public display
//! page (`/kiosk`), read off `fanzha_blocked_total` itself: snapshots of its counters
//! are kept every few minutes for a week, and a figure is the counter now minus the
//! snapshot of seven days ago (or, in a process younger than that, the whole count
//! since start). Nothing is added to the blocked-query path. Pure: counts and times
//! in, figures out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

/// Blocks by (category, street).
pub type Counts = HashMap<(String, String), u64>;

/// The window the figures cover, seconds.
pub const WEEK: u64 = 7 * 24 * 3600;

/// Snapshots of the counters over the last week.
#[derive(Debug, Default)]
pub struct WeekCounts {
    /// (unix time, counts), oldest first; one older than the window is kept as the
    /// week's baseline.
    snaps: Mutex<VecDeque<(u64, Counts)>>,
}

/// What the kiosk shows: blocks in the window, in the whole district and in one
/// street, by category.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Figures {
    /// Seconds covered (less than a week in a process younger than that).
    pub seconds: u64,
    /// All streets together.
    pub district: u64,
    /// … by category.
    pub district_by_category: BTreeMap<String, u64>,
    /// The street asked for (0 when none was asked for or it has none).
    pub street: u64,
    /// … by category.
    pub street_by_category: BTreeMap<String, u64>,
}

impl WeekCounts {
    /// Keep `counts` as read at `now` (the first call's time is taken as the start
    /// of the count when it is 0, that is, at process start).
    pub fn snapshot(&self, now: u64, counts: Counts) {
        let mut s = self.snaps.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back((now, counts));
        // Keep one snapshot at or before the window's start as its baseline.
        while s.len() > 1 && s[1].0 + WEEK <= now {
            s.pop_front();
        }
    }

    /// The figures at `now` from the counters `current`, for `street` (if any).
    /// Without a snapshot a week old, the process is younger than the window and the
    /// baseline is its start, when every counter was zero.
    pub fn figures(&self, now: u64, current: &Counts, street: Option<&str>) -> Figures {
        let s = self.snaps.lock().unwrap_or_else(|e| e.into_inner());
        let base = s.iter().rev().find(|(t, _)| t + WEEK <= now);
        let mut f = Figures {
            seconds: match base {
                Some(_) => WEEK,
                None => s.front().map_or(0, |(t, _)| now.saturating_sub(*t)),
            },
            ..Figures::default()
        };
        for ((category, st), &n) in current {
            let before = base
                .and_then(|(_, c)| c.get(&(category.clone(), st.clone())))
                .copied()
                .unwrap_or(0);
            // A counter below its snapshot was reset (a restart): count it whole.
            let d = if n >= before { n - before } else { n };
            if d == 0 {
                continue;
            }
            f.district += d;
            *f.district_by_category.entry(category.clone()).or_default() += d;
            if street == Some(st.as_str()) {
                f.street += d;
                *f.street_by_category.entry(category.clone()).or_default() += d;
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[(&str, &str, u64)]) -> Counts {
        v.iter()
            .map(|(c, s, n)| ((c.to_string(), s.to_string()), *n))
            .collect()
    }

    #[test]
    fn a_week_is_the_counter_now_minus_a_week_ago() {
        let w = WeekCounts::default();
        let t0 = 1_000_000;
        w.snapshot(t0, Counts::new());
        // Three days in: everything since start.
        let now = counts(&[
            ("loan", "西兴街道", 5),
            ("loan", "长河街道", 2),
            ("task", "西兴街道", 1),
        ]);
        w.snapshot(t0 + 3 * 86400, now.clone());
        let f = w.figures(t0 + 3 * 86400, &now, Some("西兴街道"));
        assert_eq!((f.district, f.street), (8, 6));
        assert_eq!(f.district_by_category["loan"], 7);
        assert_eq!(f.street_by_category["task"], 1);
        assert_eq!(f.seconds, 3 * 86400);
        // Ten days in: the snapshot of day 3, a week before, is the baseline.
        let later = counts(&[
            ("loan", "西兴街道", 9),
            ("loan", "长河街道", 2),
            ("task", "西兴街道", 1),
        ]);
        w.snapshot(t0 + 9 * 86400, later.clone());
        let f = w.figures(t0 + 10 * 86400, &later, Some("长河街道"));
        assert_eq!((f.district, f.street), (4, 0));
        assert_eq!(f.district_by_category["loan"], 4);
        assert!(f.street_by_category.is_empty());
        assert_eq!(f.seconds, WEEK);
        // An unknown street, or none: district figures only.
        assert_eq!(w.figures(t0 + 10 * 86400, &later, None).street, 0);
        // Snapshots before the baseline go (start's), the baseline (day 3) stays.
        w.snapshot(t0 + 11 * 86400, later.clone());
        let kept: Vec<u64> = w
            .snaps
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t - t0)
            .collect();
        assert_eq!(kept, vec![3 * 86400, 9 * 86400, 11 * 86400]);
        // A restart's counters (below their snapshot) count whole.
        let reset = counts(&[("loan", "西兴街道", 1)]);
        assert_eq!(w.figures(t0 + 11 * 86400, &reset, None).district, 1);
    }
}
