//! The alert book: blocked hits gathered per place until the place's digest is due,
//! and the digests each place was sent in the last hour (the cap). Pure: the time is
//! passed in (Unix seconds), so that the rules are tested without waiting.
//!
//! A place's digest is due `interval` after the first hit it gathers, unless the
//! place already had `max_per_hour` digests in the last hour: then its hits keep
//! gathering, and the next digest, when the hour allows it, carries them all.
//! Nothing is dropped by the cap; it only spaces the messages out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::places::Place;

/// Devices named per digest at most; the others are counted, not named.
pub const MAX_DEVICES: usize = 1000;

/// One device's part of a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// How the message names it (per `[alerts] devices`; empty for "none").
    pub label: String,
    /// Its blocked queries.
    pub hits: u64,
}

/// What a place gathered since its last digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gathered {
    /// 区
    pub district: String,
    /// 街道
    pub street: String,
    /// 社区
    pub community: String,
    /// The first hit (Unix seconds).
    pub first: u64,
    /// The last hit.
    pub last: u64,
    /// Blocked queries.
    pub hits: u64,
    /// Blocked queries by category.
    pub categories: BTreeMap<String, u64>,
    /// Device id (a keyed hash, never the address) → its part.
    pub devices: BTreeMap<String, Device>,
    /// Blocked queries of devices past [`MAX_DEVICES`].
    pub unnamed_hits: u64,
}

/// A digest ready to go: what a place gathered, and which message it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// A unique id (the receiver can drop a repeat after a crash between send and
    /// acknowledgement).
    pub id: String,
    /// The place's key ([`Place::key`]): its alert target is looked up by it when
    /// sending, so a URL fixed by SIGHUP reaches the digests still waiting.
    pub place: String,
    /// When it was made (Unix seconds).
    pub made: u64,
    /// Its contents.
    pub gathered: Gathered,
}

/// Hits gathered and digests sent, per place; saved to disk as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    /// Place key → what it gathered.
    pub places: BTreeMap<String, Gathered>,
    /// Place key → when its digests of the last hour were made.
    pub sent: BTreeMap<String, Vec<u64>>,
}

impl Book {
    /// Count one blocked query of `device` (id, label) at `place`.
    pub fn add(&mut self, place: &Place, device: (&str, &str), category: &str, now: u64) {
        let g = self.places.entry(place.key()).or_insert_with(|| Gathered {
            district: place.district.clone(),
            street: place.street.clone(),
            community: place.community.clone(),
            first: now,
            last: now,
            ..Gathered::default()
        });
        // A clock set back: the wait starts again rather than last an hour.
        g.first = g.first.min(now);
        g.last = g.last.max(now);
        g.hits += 1;
        *g.categories.entry(category.to_string()).or_default() += 1;
        let (id, label) = device;
        let room = g.devices.len() < MAX_DEVICES;
        match g.devices.get_mut(id) {
            Some(d) => d.hits += 1,
            None if room => {
                g.devices.insert(
                    id.to_string(),
                    Device {
                        label: label.to_string(),
                        hits: 1,
                    },
                );
            }
            None => g.unnamed_hits += 1,
        }
    }

    /// Whether nothing is gathered.
    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// The places whose digest is due at `now`.
    pub fn due(&self, now: u64, interval: u64, max_per_hour: usize) -> Vec<String> {
        self.places
            .iter()
            .filter(|(key, g)| {
                now >= g.first.saturating_add(interval)
                    && self.sent_last_hour(key, now) < max_per_hour
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn sent_last_hour(&self, key: &str, now: u64) -> usize {
        self.sent.get(key).map_or(0, |v| {
            v.iter().filter(|&&t| t <= now && now - t < 3600).count()
        })
    }

    /// The digest of `key`'s hits (they leave the book), noted as sent at `now`.
    pub fn take(&mut self, key: &str, id: String, now: u64) -> Option<Digest> {
        let gathered = self.places.remove(key)?;
        let sent = self.sent.entry(key.to_string()).or_default();
        sent.retain(|&t| t <= now && now - t < 3600);
        sent.push(now);
        Some(Digest {
            id,
            place: key.to_string(),
            made: now,
            gathered,
        })
    }

    /// Forget the sending times of places with none in the last hour.
    pub fn prune(&mut self, now: u64) {
        self.sent.retain(|_, v| {
            v.retain(|&t| t <= now && now - t < 3600);
            !v.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(c: &str) -> Place {
        Place {
            district: "滨江区".into(),
            street: "西兴街道".into(),
            community: c.into(),
            ..Place::default()
        }
    }

    #[test]
    fn a_digest_is_due_an_interval_after_the_first_hit_and_carries_every_hit() {
        let mut b = Book::default();
        let (a, c) = (place("缤纷社区"), place("江二社区"));
        b.add(&a, ("d1", "d1"), "loan", 1000);
        b.add(&a, ("d1", "d1"), "loan", 1100);
        b.add(&a, ("d2", "d2"), "investment", 1200);
        b.add(&c, ("d3", "d3"), "loan", 1500);
        assert!(b.due(1599, 600, 4).is_empty());
        assert_eq!(b.due(1600, 600, 4), vec![a.key()]);
        let d = b.take(&a.key(), "x".into(), 1600).unwrap();
        let g = &d.gathered;
        assert_eq!(
            (g.hits, g.devices.len(), g.first, g.last),
            (3, 2, 1000, 1200)
        );
        assert_eq!(g.categories["loan"], 2);
        assert_eq!(g.devices["d1"].hits, 2);
        assert_eq!(b.due(2099, 600, 4), Vec::<String>::new());
        assert_eq!(b.due(2100, 600, 4), vec![c.key()]);
        // Taken: gone from the book, and a new hit starts a new wait.
        assert!(b.take(&a.key(), "y".into(), 1600).is_none());
        b.add(&a, ("d1", "d1"), "loan", 1700);
        assert_eq!(b.due(2100, 600, 4), vec![c.key()]);
        assert_eq!(b.due(2300, 600, 4), vec![c.key(), a.key()], "in key order");
    }

    #[test]
    fn the_hourly_cap_delays_a_digest_and_loses_no_hit() {
        let mut b = Book::default();
        let a = place("缤纷社区");
        let mut t = 0;
        let mut digests = Vec::new();
        let mut added = 0;
        // A hit every 10 s for two hours, a digest every 60 s at most, 3 an hour.
        while t < 7200 {
            b.add(&a, ("d", "d"), "loan", t);
            added += 1;
            t += 10;
            for key in b.due(t, 60, 3) {
                digests.push(b.take(&key, String::new(), t).unwrap());
            }
        }
        let hits: u64 = digests.iter().map(|d| d.gathered.hits).sum::<u64>()
            + b.places.values().map(|g| g.hits).sum::<u64>();
        assert_eq!(hits, added, "every hit is in a digest or still gathered");
        for w in 0..7200 / 60 {
            let from = w * 60;
            let in_hour = digests
                .iter()
                .filter(|d| d.made >= from && d.made < from + 3600)
                .count();
            assert!(in_hour <= 3, "{in_hour} digests in the hour from {from}");
        }
        assert!(digests.len() >= 5, "{}", digests.len());
    }

    #[test]
    fn devices_past_the_cap_are_counted_not_named() {
        let mut b = Book::default();
        let a = place("x");
        for i in 0..MAX_DEVICES + 5 {
            let id = format!("d{i}");
            b.add(&a, (&id, &id), "loan", 1);
        }
        let g = &b.places[&a.key()];
        assert_eq!(
            (g.devices.len(), g.unnamed_hits, g.hits),
            (MAX_DEVICES, 5, 1005)
        );
        b.prune(1);
        assert!(b.sent.is_empty());
    }

    #[test]
    fn the_book_round_trips_through_json() {
        let mut b = Book::default();
        b.add(&place("缤纷社区"), ("d", "10.1.2.0/24"), "loan", 5);
        b.take(&place("缤纷社区").key(), "id".into(), 700);
        b.add(&place("江二社区"), ("e", "e"), "fraud", 800);
        let back: Book = serde_json::from_slice(&serde_json::to_vec(&b).unwrap()).unwrap();
        assert_eq!(back, b);
    }
}
