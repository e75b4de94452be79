//! An answer cache in front of the resolver, keyed by (name, type, EDNS flags) and
//! holding the encoded answer, so that a cached name is answered from the receive
//! loop like a blocked one: copy, patch id, question case and TTLs, send.
//!
//! The query name is checked against the serving list before the cache, so a name
//! that became blocked is never served from it. An answer that holds an alias chain
//! (CNAME, DNAME) also remembers the list generation it was made under: after a
//! reload it is a miss, so a chain whose target became blocked is never served past
//! the change. Every other answer stays valid across reloads (a reload used to make
//! every entry a miss at once: a storm of upstream queries that overflowed the
//! socket buffer under load).
//!
//! Bounded in entries and in bytes ([`ClockMap`]): past either bound, answers go one
//! at a time in CLOCK order, so a flood of names asked once cannot push out the names
//! that are asked again.

use hickory_proto::rr::Name;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use crate::clockmap::{ClockMap, Weigh, chunk};
use crate::dns::wire::{self, Query};

/// Longest time an answer is kept, whatever its TTL.
pub const MAX_TTL: u32 = 86_400;

/// The generation of an answer valid under every list (no alias in it).
const ANY_GENERATION: u64 = u64::MAX;

struct Entry {
    name: Box<[u8]>,
    qtype: u16,
    flags: u8,
    generation: u64,
    bytes: Box<[u8]>,
    ttl_offsets: Box<[u16]>,
    ttls: Box<[u32]>,
    stored: Instant,
    expires: Instant,
    /// A refresh (prefetch) of this answer has been started.
    refreshing: bool,
}

/// What the cache had for a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Nothing usable.
    Miss,
    /// An answer, written out.
    Hit,
    /// An answer, written out, with less than a tenth of its TTL left: the caller
    /// should refresh it in the background (prefetch, as Unbound's `prefetch: yes`).
    /// Said once per answer.
    HitRefresh,
}

impl Lookup {
    /// An answer was written.
    pub fn is_hit(self) -> bool {
        self != Lookup::Miss
    }
}

/// TTL of an answer served stale (RFC 8767 §4 recommends 30 s).
pub const STALE_TTL: u32 = 30;

impl Weigh for Entry {
    /// Its four buffers (the struct itself is in the map's slot).
    fn weight(&self) -> usize {
        chunk(self.name.len())
            + chunk(self.bytes.len())
            + chunk(self.ttl_offsets.len() * 2)
            + chunk(self.ttls.len() * 4)
    }
}

/// The cache.
pub struct AnswerCache {
    map: ClockMap<u64, Entry>,
    hasher: foldhash::fast::RandomState,
}

/// EDNS presence, DO, CD and AD: answers differ by each (CD=1 may carry data that
/// failed validation, which must never reach a CD=0 client; AD=1 asks for the AD bit
/// that a DO=0, AD=0 client must not get).
fn key_flags(q: &Query) -> u8 {
    let cd = if q.flags & 0x0010 != 0 { 4 } else { 0 };
    let ad = if q.flags & 0x0020 != 0 { 8 } else { 0 };
    ad | cd
        | match q.edns {
            None => 0,
            Some(e) => 1 | if e.dnssec_ok { 2 } else { 0 },
        }
}

impl AnswerCache {
    /// A cache of about `capacity` answers (0 = off), with no bound in bytes.
    pub fn new(capacity: usize) -> AnswerCache {
        Self::with_limits(capacity, usize::MAX)
    }

    /// A cache of at most about `capacity` answers and `max_bytes` bytes.
    pub fn with_limits(capacity: usize, max_bytes: usize) -> AnswerCache {
        AnswerCache {
            map: ClockMap::new(capacity, max_bytes),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn hash(&self, packet: &[u8], q: &Query) -> u64 {
        // The lower-case wire name in one buffer, hashed in one write.
        let mut name = [0u8; 256];
        let mut n = 0;
        for (o, l) in q.labels.iter() {
            if n + 1 + l > name.len() {
                break;
            }
            name[n] = l as u8;
            for (d, b) in name[n + 1..n + 1 + l].iter_mut().zip(&packet[o..o + l]) {
                *d = b.to_ascii_lowercase();
            }
            n += 1 + l;
        }
        let mut h = self.hasher.build_hasher();
        h.write(&name[..n]);
        h.write_u16(q.qtype);
        h.write_u8(key_flags(q));
        h.finish()
    }

    fn same_name(entry: &[u8], packet: &[u8], q: &Query) -> bool {
        // `entry` is the lower-case wire name (without the root label).
        let mut i = 0;
        for (o, l) in q.labels.iter() {
            if entry.get(i) != Some(&(l as u8)) || entry.len() < i + 1 + l {
                return false;
            }
            if !entry[i + 1..i + 1 + l]
                .iter()
                .zip(&packet[o..o + l])
                .all(|(a, b)| *a == b.to_ascii_lowercase())
            {
                return false;
            }
            i += 1 + l;
        }
        i == entry.len()
    }

    /// Write the cached answer for `q` into `out`.
    pub fn get(
        &self,
        packet: &[u8],
        q: &Query,
        generation: u64,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Lookup {
        let found = self.find(packet, q, generation, |e| {
            if now >= e.expires {
                return Lookup::Miss;
            }
            let age = now.duration_since(e.stored).as_secs() as u32;
            write_entry(e, out, |ttl| ttl.saturating_sub(age));
            // Prefetch in the last tenth of a lifetime of at least 10 s, once.
            let life = e.expires.duration_since(e.stored);
            if !e.refreshing && life >= PREFETCH_MIN_LIFE && (e.expires - now) * 10 < life {
                e.refreshing = true;
                return Lookup::HitRefresh;
            }
            Lookup::Hit
        });
        let found = found.unwrap_or(Lookup::Miss);
        if found != Lookup::Miss {
            Self::as_asked(packet, q, out);
        }
        found
    }

    /// Write an expired answer for `q` into `out`, when it expired less than `stale`
    /// ago, with every TTL [`STALE_TTL`] (RFC 8767): for when the upstreams fail.
    pub fn get_stale(
        &self,
        packet: &[u8],
        q: &Query,
        generation: u64,
        now: Instant,
        stale: Duration,
        out: &mut Vec<u8>,
    ) -> bool {
        let found = self.find(packet, q, generation, |e| {
            if now > e.expires + stale {
                return false;
            }
            write_entry(e, out, |_| STALE_TTL);
            true
        });
        if found != Some(true) {
            return false;
        }
        Self::as_asked(packet, q, out);
        true
    }

    /// `f` on the entry for `q`, if there is one for this name, type, flags and list
    /// generation.
    fn find<R>(
        &self,
        packet: &[u8],
        q: &Query,
        generation: u64,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        let h = self.hash(packet, q);
        self.map
            .with(&h, |e| {
                let ok = e.qtype == q.qtype
                    && e.flags == key_flags(q)
                    && (e.generation == generation || e.generation == ANY_GENERATION)
                    && Self::same_name(&e.name, packet, q);
                ok.then(|| f(e))
            })
            .flatten()
    }

    /// Make a cached answer in `out` the answer to this very query.
    fn as_asked(packet: &[u8], q: &Query, out: &mut [u8]) {
        // id, RD and CD as asked, the question as asked (0x20).
        out[0] = packet[0];
        out[1] = packet[1];
        out[2] = (out[2] & !0x01) | (packet[2] & 0x01);
        out[3] = (out[3] & !0x10) | (packet[3] & 0x10);
        out[wire::HEADER_LEN..q.question_end]
            .copy_from_slice(&packet[wire::HEADER_LEN..q.question_end]);
    }

    /// Store an encoded answer (as built for `q`, before any truncation).
    pub fn put(&self, packet: &[u8], q: &Query, generation: u64, now: Instant, answer: &[u8]) {
        if answer.len() < q.question_end {
            return;
        }
        let Some((ttl_offsets, ttls, aliases)) = record_ttls(answer, q.question_end) else {
            return;
        };
        let made_under = if aliases { generation } else { ANY_GENERATION };
        let min = ttls.iter().copied().min().unwrap_or(0).min(MAX_TTL);
        if min == 0 {
            return;
        }
        let mut name = Vec::with_capacity(q.qname_end - wire::HEADER_LEN);
        for (o, l) in q.labels.iter() {
            name.push(l as u8);
            name.extend(packet[o..o + l].iter().map(u8::to_ascii_lowercase));
        }
        let entry = Entry {
            name: name.into_boxed_slice(),
            qtype: q.qtype,
            flags: key_flags(q),
            generation: made_under,
            bytes: answer.into(),
            ttl_offsets: ttl_offsets.into_boxed_slice(),
            ttls: ttls.into_boxed_slice(),
            stored: now,
            expires: now + Duration::from_secs(min as u64),
            refreshing: false,
        };
        let h = self.hash(packet, q);
        self.map.insert(h, entry, |e| {
            e.expires > now && (e.generation == generation || e.generation == ANY_GENERATION)
        });
    }

    /// Drop every answer for `zone` and the names below it (every answer for
    /// `None`); how many went. `zone` is a lower-case wire name without the root
    /// label, as [`wire_lower`] makes it. Walks the whole cache: for `fanzha ctl`.
    pub fn flush(&self, zone: Option<&[u8]>) -> usize {
        self.map
            .retain(|_, e| zone.is_some_and(|z| !is_under(&e.name, z)))
    }

    /// Bytes held (as [`Weigh::weight`] counts them).
    pub fn bytes(&self) -> usize {
        self.map.bytes()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// `name` as the cache keys it: wire labels, lower-case, without the root label.
pub fn wire_lower(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for l in name.iter() {
        out.push(l.len() as u8);
        out.extend(l.iter().map(u8::to_ascii_lowercase));
    }
    out
}

/// Whether the wire name `name` is `zone` or below it (both as [`wire_lower`] makes
/// them; the empty `zone` is the root).
fn is_under(name: &[u8], zone: &[u8]) -> bool {
    let mut i = 0;
    loop {
        if name[i..] == *zone {
            return true;
        }
        match name.get(i) {
            Some(&l) => i += 1 + l as usize,
            None => return false,
        }
        if i > name.len() {
            return false;
        }
    }
}

/// Answers living less than this are not prefetched (Unbound's rule: within the last
/// tenth of the original TTL; below 10 s that is under a second).
const PREFETCH_MIN_LIFE: Duration = Duration::from_secs(10);

/// Copy `e`'s answer into `out` with each TTL as `ttl` makes it.
fn write_entry(e: &Entry, out: &mut Vec<u8>, ttl: impl Fn(u32) -> u32) {
    out.clear();
    out.extend_from_slice(&e.bytes);
    for (&off, &t) in e.ttl_offsets.iter().zip(e.ttls.iter()) {
        let off = off as usize;
        out[off..off + 4].copy_from_slice(&ttl(t).to_be_bytes());
    }
}

/// Offsets of the TTL fields of every record after the question (OPT excluded) and
/// their values; `None` for a malformed answer.
fn record_ttls(p: &[u8], question_end: usize) -> Option<(Vec<u16>, Vec<u32>, bool)> {
    let count = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]) as usize;
    let n = count(6) + count(8) + count(10);
    let mut offs = Vec::with_capacity(n);
    let mut ttls = Vec::with_capacity(n);
    let mut aliases = false;
    let mut i = question_end;
    for _ in 0..n {
        i = wire::skip_name(p, i)?;
        let t = u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]);
        let rdlen = u16::from_be_bytes([*p.get(i + 8)?, *p.get(i + 9)?]) as usize;
        // CNAME (5) or DNAME (39).
        aliases |= t == 5 || t == 39;
        if t != wire::rtype::OPT {
            offs.push(u16::try_from(i + 4).ok()?);
            ttls.push(u32::from_be_bytes(p.get(i + 4..i + 8)?.try_into().ok()?));
        }
        i += 10 + rdlen;
        if i > p.len() {
            return None;
        }
    }
    Some((offs, ttls, aliases))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record, RecordType};

    fn query(name: &str, id: u16, edns: bool) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(HQuery::query(
            Name::from_ascii(name).unwrap(),
            RecordType::A,
        ));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    fn answer(qp: &[u8], ttl: u32) -> Vec<u8> {
        let req = Message::from_vec(qp).unwrap();
        let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
        m.add_query(req.queries[0].clone());
        m.add_answer(Record::from_rdata(
            req.queries[0].name().clone(),
            ttl,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        if req.edns.is_some() {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn a_flush_by_name_takes_the_name_and_what_is_below_it_and_nothing_else() {
        let c = AnswerCache::new(1000);
        let t0 = Instant::now();
        let names = [
            "example.test.",
            "WWW.Example.test.",
            "a.b.example.test.",
            "notexample.test.",
            "example.test2.",
        ];
        let mut packets = Vec::new();
        for n in names {
            let p = query(n, 1, false);
            let q = wire::parse_query(&p).unwrap();
            c.put(&p, &q, 1, t0, &answer(&p, 100));
            packets.push((p, q));
        }
        let zone = wire_lower(&Name::from_ascii("Example.Test.").unwrap());
        assert_eq!(c.flush(Some(&zone)), 3);
        let mut out = Vec::new();
        let held: Vec<bool> = packets
            .iter()
            .map(|(p, q)| c.get(p, q, 1, t0, &mut out).is_hit())
            .collect();
        assert_eq!(held, [false, false, false, true, true]);
        assert_eq!(c.flush(None), 2);
        assert!(c.is_empty());
    }

    #[test]
    fn an_answer_near_expiry_asks_for_one_refresh_and_an_expired_one_serves_stale() {
        let c = AnswerCache::new(1000);
        let t0 = Instant::now();
        let p = query("www.example.test.", 1, false);
        let q = wire::parse_query(&p).unwrap();
        c.put(&p, &q, 7, t0, &answer(&p, 100));
        let mut out = Vec::new();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(c.get(&p, &q, 7, at(50), &mut out), Lookup::Hit);
        // In the last tenth of its TTL: one refresh, then plain hits.
        assert_eq!(c.get(&p, &q, 7, at(91), &mut out), Lookup::HitRefresh);
        assert_eq!(c.get(&p, &q, 7, at(92), &mut out), Lookup::Hit);
        // Expired: a miss, but served stale within the allowed time, TTL 30.
        let day = Duration::from_secs(86_400);
        assert_eq!(c.get(&p, &q, 7, at(101), &mut out), Lookup::Miss);
        assert!(c.get_stale(&p, &q, 7, at(101), day, &mut out));
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.answers[0].ttl, STALE_TTL);
        assert_eq!(m.metadata.id, 1);
        assert!(!c.get_stale(&p, &q, 7, at(100 + 86_401), day, &mut out));
        // A fresh answer replaces it, and may be refreshed again in its own last tenth.
        c.put(&p, &q, 7, at(200), &answer(&p, 100));
        assert_eq!(c.get(&p, &q, 7, at(295), &mut out), Lookup::HitRefresh);
        // Short-lived answers are not prefetched.
        let s = query("short.example.test.", 2, false);
        let qs = wire::parse_query(&s).unwrap();
        c.put(&s, &qs, 7, t0, &answer(&s, 5));
        assert_eq!(
            c.get(&s, &qs, 7, t0 + Duration::from_millis(4900), &mut out),
            Lookup::Hit
        );
    }

    #[test]
    fn hit_patches_id_case_and_ttl() {
        let c = AnswerCache::new(1000);
        let t0 = Instant::now();
        let p1 = query("www.Example.test.", 1, true);
        let q1 = wire::parse_query(&p1).unwrap();
        c.put(&p1, &q1, 7, t0, &answer(&p1, 300));
        let p2 = query("WWW.example.TEST.", 2, true);
        let q2 = wire::parse_query(&p2).unwrap();
        let mut out = Vec::new();
        assert!(
            c.get(&p2, &q2, 7, t0 + Duration::from_secs(100), &mut out)
                .is_hit()
        );
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 2);
        assert_eq!(m.queries[0].name().to_ascii(), "WWW.example.TEST.");
        assert_eq!(m.answers[0].ttl, 200);
        // misses: expired, no EDNS, other name
        assert!(
            !c.get(&p2, &q2, 7, t0 + Duration::from_secs(300), &mut out)
                .is_hit()
        );
        let p3 = query("www.example.test.", 3, false);
        assert!(
            !c.get(&p3, &wire::parse_query(&p3).unwrap(), 7, t0, &mut out)
                .is_hit()
        );
        let p4 = query("www.example.tesu.", 4, true);
        assert!(
            !c.get(&p4, &wire::parse_query(&p4).unwrap(), 7, t0, &mut out)
                .is_hit()
        );
    }

    #[test]
    fn a_reload_keeps_plain_answers_and_drops_alias_chains() {
        // The name itself is checked against the list before the cache; only a
        // chain's target could have become blocked.
        let c = AnswerCache::new(1000);
        let t0 = Instant::now();
        let plain = query("plain.example.", 1, false);
        let qp = wire::parse_query(&plain).unwrap();
        c.put(&plain, &qp, 7, t0, &answer(&plain, 300));
        let chain = query("alias.example.", 2, false);
        let qc = wire::parse_query(&chain).unwrap();
        let mut m = Message::from_vec(&answer(&chain, 300)).unwrap();
        m.answers.insert(
            0,
            Record::from_rdata(
                Name::from_ascii("alias.example.").unwrap(),
                300,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(
                    Name::from_ascii("target.example.").unwrap(),
                )),
            ),
        );
        c.put(&chain, &qc, 7, t0, &m.to_vec().unwrap());
        let mut out = Vec::new();
        assert!(c.get(&plain, &qp, 7, t0, &mut out).is_hit());
        assert!(c.get(&chain, &qc, 7, t0, &mut out).is_hit());
        // The list changed (generation 8).
        assert!(
            c.get(&plain, &qp, 8, t0, &mut out).is_hit(),
            "a plain answer survives a reload"
        );
        assert!(
            !c.get(&chain, &qc, 8, t0, &mut out).is_hit(),
            "a chain is checked again"
        );
    }

    #[test]
    fn zero_ttl_is_not_cached_and_capacity_holds() {
        let c = AnswerCache::new(32);
        let t0 = Instant::now();
        let p = query("a.test.", 1, false);
        let q = wire::parse_query(&p).unwrap();
        c.put(&p, &q, 1, t0, &answer(&p, 0));
        assert!(c.is_empty());
        for i in 0..1000 {
            let p = query(&format!("n{i}.test."), 1, false);
            c.put(&p, &wire::parse_query(&p).unwrap(), 1, t0, &answer(&p, 60));
        }
        assert!(c.len() <= 32 + 16, "{}", c.len());
    }

    #[test]
    fn a_hot_name_outlives_a_flood_and_the_bytes_stay_bounded() {
        // About 70 entries per shard: a name read every 50 inserts keeps its place
        // (with a handful per shard, chance alone could sweep it out between reads).
        let max_bytes = 512 * 1024;
        let c = AnswerCache::with_limits(1_000_000, max_bytes);
        let t0 = Instant::now();
        let hot = query("hot.test.", 1, false);
        let hq = wire::parse_query(&hot).unwrap();
        c.put(&hot, &hq, 1, t0, &answer(&hot, 3600));
        let mut out = Vec::new();
        for i in 0..40_000 {
            let p = query(&format!("flood{i}.test."), 1, false);
            c.put(
                &p,
                &wire::parse_query(&p).unwrap(),
                1,
                t0,
                &answer(&p, 3600),
            );
            if i % 50 == 0 {
                assert!(
                    c.get(&hot, &hq, 1, t0, &mut out).is_hit(),
                    "the hot name went at {i}"
                );
            }
            assert!(c.bytes() <= max_bytes, "{} bytes at {i}", c.bytes());
        }
        assert!(c.len() > 100, "the cache still holds some of the flood");
    }

    #[test]
    fn the_ad_bit_is_part_of_the_key() {
        let c = AnswerCache::new(1000);
        let t0 = Instant::now();
        let mut with_ad = query("www.test.", 1, false);
        with_ad[3] |= 0x20;
        let q = wire::parse_query(&with_ad).unwrap();
        c.put(&with_ad, &q, 1, t0, &answer(&with_ad, 300));
        let plain = query("www.test.", 2, false);
        let mut out = Vec::new();
        assert!(
            !c.get(&plain, &wire::parse_query(&plain).unwrap(), 1, t0, &mut out)
                .is_hit()
        );
        assert!(c.get(&with_ad, &q, 1, t0, &mut out).is_hit());
    }
}
