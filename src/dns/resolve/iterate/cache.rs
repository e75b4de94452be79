//! The iterator's caches: what a name and type resolved to (positive, alias or
//! negative, with RFC 2308 negative TTLs), and zone cuts with their name servers.
//! Bounded in entries and bytes; past either, entries go one at a time (CLOCK),
//! expired ones first.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use smallvec::SmallVec;

use super::Step;
use crate::clockmap::{ClockMap, Weigh, chunk};

/// Longest any answer is kept (Unbound's cache-max-ttl).
const MAX_TTL: u32 = 86_400;
/// Longest a negative answer is kept (Unbound's cache-max-negative-ttl).
const MAX_NEGATIVE_TTL: u32 = 3_600;
/// Negative TTL when the server sent no SOA.
const NO_SOA_NEGATIVE_TTL: u32 = 60;

struct Held<V> {
    value: Arc<V>,
    until: Instant,
    weight: usize,
}

impl<V> Weigh for Held<V> {
    fn weight(&self) -> usize {
        self.weight
    }
}

/// A map of values that expire, bounded in entries and bytes ([`ClockMap`]).
pub struct Expiring<K, V> {
    map: ClockMap<K, Held<V>>,
    weigh: fn(&V) -> usize,
}

impl<K: Hash + Eq + Clone + Weigh, V> Expiring<K, V> {
    /// Room for about `entries` values and `bytes` bytes, values weighed by `weigh`.
    pub fn new(entries: usize, bytes: usize, weigh: fn(&V) -> usize) -> Self {
        Expiring {
            map: ClockMap::new(entries, bytes),
            weigh,
        }
    }

    /// The value and its remaining lifetime, unless expired.
    pub fn get(&self, k: &K, now: Instant) -> Option<(Arc<V>, Duration)> {
        self.map
            .with(k, |h| {
                (h.until > now).then(|| (h.value.clone(), h.until - now))
            })
            .flatten()
    }

    /// Let the value of `k` expire now (it stays until evicted, like any expired one).
    pub fn expire(&self, k: &K, now: Instant) {
        self.map.with(k, |h| h.until = h.until.min(now));
    }

    /// Keep `v` for `ttl`.
    pub fn put(&self, k: K, v: V, ttl: Duration, now: Instant) {
        self.put_shared(k, Arc::new(v), ttl, now);
    }

    /// Keep `v`, shared with its other holders, for `ttl`.
    pub fn put_shared(&self, k: K, v: Arc<V>, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        // The value lives in an `Arc` allocation (two counters and the value).
        let weight = chunk(16 + std::mem::size_of::<V>()) + (self.weigh)(&v);
        let held = Held {
            value: v,
            until: now + ttl,
            weight,
        };
        self.map.insert(k, held, |h| h.until > now);
    }

    /// Bytes held, as the weights count them.
    pub fn bytes(&self) -> usize {
        self.map.bytes()
    }

    /// Forget the values whose key `gone` picks; how many went (walks the map).
    pub fn forget(&self, gone: impl Fn(&K) -> bool) -> usize {
        self.map.retain(|k, _| !gone(k))
    }
}

/// The heap part of a name: hickory keeps up to 32 bytes of labels and 24 label
/// ends inline, and moves them to the heap (with room to grow) past that.
pub fn name_heap(n: &Name) -> usize {
    let labels = n.num_labels() as usize;
    let data = n.len().saturating_sub(labels);
    let mut h = 0;
    if data > 32 {
        h += chunk(data * 2);
    }
    if labels > 24 {
        h += chunk(labels * 2);
    }
    h
}

impl Weigh for NameKey {
    fn weight(&self) -> usize {
        self.heap()
    }
}

impl Weigh for Key {
    fn weight(&self) -> usize {
        self.0.heap()
    }
}

/// The heap parts of a record: its owner, and the names or bytes of its data.
fn record_heap(r: &Record) -> usize {
    name_heap(&r.name)
        + match &r.data {
            RData::A(_) | RData::AAAA(_) => 0,
            RData::NS(n) => name_heap(&n.0),
            RData::CNAME(n) => name_heap(&n.0),
            RData::PTR(n) => name_heap(&n.0),
            RData::SOA(s) => name_heap(&s.mname) + name_heap(&s.rname),
            // Signatures, keys, text, proofs: a buffer or two.
            _ => 160,
        }
}

fn records_heap(rs: &[Record]) -> usize {
    chunk(std::mem::size_of_val(rs)) + rs.iter().map(record_heap).sum::<usize>()
}

/// The heap parts of a step: its records (for the cache's byte bound).
pub fn step_weight(step: &Step) -> usize {
    match step {
        Step::Answer(a, p) => records_heap(a) + records_heap(p),
        Step::Alias(a, t, p) => records_heap(a) + name_heap(t) + records_heap(p),
        Step::NxDomain(a, b) | Step::NoData(a, b) => records_heap(a) + records_heap(b),
        Step::Fail(w) => chunk(w.len()),
    }
}

/// The heap parts of a zone cut: its name-server names and addresses.
pub fn delegation_weight(d: &Delegation) -> usize {
    name_heap(&d.zone)
        + chunk(d.ns.len() * std::mem::size_of::<Name>())
        + d.ns.iter().map(name_heap).sum::<usize>()
        + chunk(d.addrs.len() * std::mem::size_of::<(Name, IpAddr)>())
        + d.addrs.iter().map(|(n, _)| name_heap(n)).sum::<usize>()
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
        // A wildcard answer lives no longer than its proof.
        Step::Answer(rs, ps) | Step::Alias(rs, _, ps) => least(rs)
            .unwrap_or(0)
            .min(least(ps).unwrap_or(u32::MAX))
            .min(MAX_TTL),
        Step::NxDomain(chain, auth) | Step::NoData(chain, auth) => {
            let neg = super::soa_in(auth)
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
        Step::Answer(rs, ps) => Step::Answer(age(rs), age(ps)),
        Step::Alias(rs, t, ps) => Step::Alias(age(rs), t.clone(), age(ps)),
        Step::NxDomain(rs, auth) => Step::NxDomain(age(rs), age(auth)),
        Step::NoData(rs, auth) => Step::NoData(age(rs), age(auth)),
        Step::Fail(w) => Step::Fail(w.clone()),
    }
}

/// Key of the answer cache.
pub type Key = (NameKey, RecordType);

/// A name as a map key: equal without regard to case, like [`Name`], but cheap to
/// hash and compare. A cache miss looks a score of names up in the iterator's maps
/// (answers, zone cuts, work in flight, lame servers); `Name`'s own `Hash` walks every
/// byte each time and its `Eq` every label through an iterator. The key holds the
/// name's lowercased wire form (inline up to 32 bytes) and a 64-bit digest of it,
/// taken once with a seed drawn at start; the maps hash the digest (with their own
/// seeds) and equality compares the digests, then the bytes.
#[derive(Debug, Clone)]
pub struct NameKey {
    /// Length-prefixed lowercased labels and the root's zero byte; a name that is
    /// not fully qualified ends in 0xFF instead (never a label length).
    wire: SmallVec<[u8; 32]>,
    digest: u64,
}

impl NameKey {
    /// The key of `name`.
    pub fn new(name: &Name) -> NameKey {
        let end = if name.is_fqdn() { 0 } else { 0xff };
        Self::of_wire(wire_of(name.iter(), true, end))
    }

    /// The key of the last `k` labels of `name` (all of them when it has fewer),
    /// without building that name.
    pub fn suffix(name: &Name, k: usize) -> NameKey {
        let total = name.iter().len();
        if k >= total {
            return Self::new(name);
        }
        // A suffix is a name of its own, fully qualified (as `Name::trim_to` makes it).
        Self::of_wire(wire_of(name.iter().skip(total - k), true, 0))
    }

    fn of_wire(wire: SmallVec<[u8; 32]>) -> NameKey {
        static SEED: std::sync::OnceLock<foldhash::quality::RandomState> =
            std::sync::OnceLock::new();
        let digest = SEED.get_or_init(Default::default).hash_one(&wire[..]);
        NameKey { wire, digest }
    }

    /// The name (lowercased).
    pub fn name(&self) -> Name {
        let (wire, fqdn) = match self.wire.split_last() {
            Some((0xff, labels)) => (labels, false),
            _ => (&self.wire[..self.wire.len().saturating_sub(1)], true),
        };
        let mut bytes: SmallVec<[u8; 64]> = SmallVec::from_slice(wire);
        bytes.push(0);
        let mut n = Name::read(&mut BinDecoder::new(&bytes)).unwrap_or_else(|_| Name::root());
        n.set_fqdn(fqdn);
        n
    }

    /// Bytes on the heap (a name longer than the inline room).
    fn heap(&self) -> usize {
        if self.wire.spilled() {
            chunk(self.wire.capacity())
        } else {
            0
        }
    }
}

impl Hash for NameKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.wire == other.wire
    }
}

impl Eq for NameKey {}

/// `labels` in wire form (each after its length), lowercased when `lower`, then
/// the byte `end`.
fn wire_of<'a>(labels: impl Iterator<Item = &'a [u8]>, lower: bool, end: u8) -> SmallVec<[u8; 32]> {
    let mut wire = SmallVec::new();
    for label in labels {
        wire.push(label.len() as u8);
        let at = wire.len();
        wire.extend_from_slice(label);
        if lower {
            wire[at..].make_ascii_lowercase();
        }
    }
    wire.push(end);
    wire
}

/// The last `k` labels of `name`, as [`Name::trim_to`] gives them. That one builds
/// a label object and two vectors on the way (thousands of instructions, several
/// allocations); a descent asks for a few suffixes per cache miss, so this one
/// writes the labels' wire form and reads it back as a name.
pub fn suffix(name: &Name, k: usize) -> Name {
    let total = name.iter().len();
    if k >= total {
        return name.clone();
    }
    let wire = wire_of(name.iter().skip(total - k), false, 0);
    Name::read(&mut BinDecoder::new(&wire)).unwrap_or_else(|_| name.trim_to(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(k: &NameKey) -> u64 {
        // A fixed seed: both sides of each comparison use the same one.
        foldhash::fast::FixedState::with_seed(7).hash_one(k)
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn a_suffix_key_is_the_key_of_the_suffix() {
        for s in ["www.Example.COM.", "a.b.c.d.example.net.", "com.", "."] {
            let name = n(s);
            for k in 0..=name.iter().len() + 1 {
                assert_eq!(
                    NameKey::suffix(&name, k),
                    NameKey::new(&name.trim_to(k)),
                    "{s} {k}"
                );
            }
        }
    }

    fn key(s: &str) -> NameKey {
        NameKey::new(&Name::from_ascii(s).unwrap())
    }

    #[test]
    fn name_keys_agree_with_names_on_equality_and_hash_alike_when_equal() {
        let names = [
            ".",
            "com.",
            "COM.",
            "example.com.",
            "Example.Com.",
            "examplecom.",
            "exa.mplecom.",
            "www.example.com.",
            "www.example.com",
            "*.example.com.",
            "x.example.com.",
            "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.example.org.",
            "A.B.C.D.E.F.G.H.I.J.K.L.M.N.O.P.Q.R.S.T.U.V.W.X.Y.Z.EXAMPLE.ORG.",
        ];
        for a in names {
            for b in names {
                let (ka, kb) = (key(a), key(b));
                assert_eq!(ka == kb, n(a) == n(b), "{a} vs {b}");
                assert_eq!(ka.name(), n(a), "{a}");
                assert_eq!(ka.name().is_fqdn(), n(a).is_fqdn(), "{a}");
                if ka == kb {
                    assert_eq!(hash(&ka), hash(&kb), "{a} vs {b}");
                }
            }
        }
        assert_ne!(hash(&key("examplecom.")), hash(&key("exa.mplecom.")));
    }

    #[test]
    fn suffixes_are_what_trim_to_gives() {
        for n in [
            ".",
            "com.",
            "www.Example.COM.",
            "*.example.com.",
            "a.b.c.d.e.f.g.h.i.j.k.example.net.",
            "xn--fiqs8s.xn--fiqs8s.",
        ] {
            let name = Name::from_ascii(n).unwrap();
            for k in 0..=name.iter().len() + 1 {
                let (got, want) = (suffix(&name, k), name.trim_to(k));
                assert!(got.eq_case(&want), "{n} to {k}: {got} vs {want}");
                assert_eq!(got.is_fqdn(), want.is_fqdn(), "{n} to {k}");
            }
        }
        let long = Name::from_ascii(format!("{}x.", "a.".repeat(126))).unwrap();
        assert_eq!(suffix(&long, 127), long);
        assert!(suffix(&long, 3).eq_case(&long.trim_to(3)));
    }

    #[test]
    fn the_longest_names_hash_by_their_every_byte() {
        // 127 one-letter labels: 255 bytes in wire form, the most a name holds.
        let long = |last: &str| {
            let mut s = "a.".repeat(126);
            s.push_str(last);
            s.push('.');
            key(&s)
        };
        let (x, y) = (long("x"), long("y"));
        assert_ne!(x, y);
        assert_ne!(hash(&x), hash(&y));
        assert_eq!(hash(&x), hash(&long("X")));
    }
}
