//! What an authoritative server's response means, after scrubbing (pure; no I/O).
//!
//! The scrubber keeps only what the server may speak for (RFC 5452 §6, Unbound's
//! scrubber): the chain of CNAMEs and DNAMEs from the query name, inside the
//! server's zone, ending in records of the asked type; an SOA or NS set above the
//! name and inside the zone; addresses of those name servers inside the zone. Every
//! record appears once. What remains is classified as an answer, an alias to follow,
//! a negative answer, a referral, or a lame or failed server.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, NULL};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};

/// Longest CNAME/DNAME chain followed inside one response.
const MAX_CHAIN_IN_RESPONSE: usize = 12;
/// Most name servers taken from one referral (Unbound's iter-scrub-ns): a hostile
/// zone listing thousands would otherwise cost a lookup, or a try, each.
pub const MAX_NS: usize = 20;
/// Most glue addresses taken for one name server.
pub const MAX_GLUE_PER_NS: usize = 8;
/// Most records kept of one RRset: a 64 KiB TCP answer holds about 4,000 A records,
/// none of which a client needs past the first few hundred.
pub const MAX_RRSET: usize = 512;
/// Up to this many records, duplicates are found by comparing (no allocation).
const SMALL_RRSET: usize = 16;

/// What a response says about the question it was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Records of the asked type (after `chain`, the aliases that led there).
    Answer {
        /// The CNAME/DNAME chain from the query name, in order.
        chain: Vec<Record>,
        /// The records of the asked type at the chain's end.
        records: Vec<Record>,
    },
    /// A chain whose end this server cannot answer: resolve `target` next.
    Alias {
        /// The chain from the query name.
        chain: Vec<Record>,
        /// Where it leads.
        target: Name,
    },
    /// The name (or the chain's end) does not exist.
    NxDomain {
        /// The chain that led there.
        chain: Vec<Record>,
        /// The zone's SOA, for the negative TTL (RFC 2308).
        soa: Option<Record>,
    },
    /// The name exists without records of the asked type.
    NoData {
        /// The chain that led there.
        chain: Vec<Record>,
        /// The zone's SOA.
        soa: Option<Record>,
    },
    /// The server delegates a zone below its own, on the way to the name.
    Referral {
        /// The delegated zone.
        zone: Name,
        /// Its name servers.
        ns: Vec<Name>,
        /// Their addresses given as glue, inside the referring server's zone.
        glue: Vec<(Name, IpAddr)>,
        /// TTL of the NS set.
        ttl: u32,
    },
    /// The server does not serve the zone (no AA, no referral down, a referral up or
    /// sideways, or to the same zone): ask another.
    Lame,
    /// An error code: ask another server.
    Error(ResponseCode),
}

/// Scrub `resp` (the answer of a server for `zone` to `qname`/`qtype`) and say what it
/// means.
pub fn classify(resp: &Message, zone: &Name, qname: &Name, qtype: RecordType) -> Kind {
    let rcode = resp.metadata.response_code;
    if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        return Kind::Error(rcode);
    }
    let (chain, end, records) = follow_chain(&resp.answers, zone, qname, qtype);
    if !records.is_empty() {
        return Kind::Answer { chain, records };
    }
    let soa = soa_for(&resp.authorities, zone, &end);
    if let Some(referral) = referral(resp, zone, &end) {
        return if chain.is_empty() {
            referral
        } else {
            // A chain into a zone this server delegates: its end is asked anew.
            Kind::Alias { chain, target: end }
        };
    }
    if !chain.is_empty() && !zone.zone_of(&end) {
        return Kind::Alias { chain, target: end };
    }
    // A chain inside the zone, or an SOA, shows the server answers for it.
    if !(resp.metadata.authoritative || soa.is_some() || !chain.is_empty()) {
        return Kind::Lame;
    }
    match (rcode, chain.is_empty(), &soa) {
        (ResponseCode::NXDomain, ..) => Kind::NxDomain { chain, soa },
        (_, true, _) | (_, false, Some(_)) => Kind::NoData { chain, soa },
        // NOERROR, a chain, nothing at its end and no SOA: ask for the end itself.
        (_, false, None) => Kind::Alias { chain, target: end },
    }
}

/// Walk the answer section from `qname`: the chain of CNAMEs (and DNAMEs, with the
/// CNAME they imply) inside `zone`, then the records of `qtype` at its end. Records
/// of other names or types, and duplicates, are dropped.
fn follow_chain(
    answers: &[Record],
    zone: &Name,
    qname: &Name,
    qtype: RecordType,
) -> (Vec<Record>, Name, Vec<Record>) {
    let mut chain: Vec<Record> = Vec::new();
    let mut cur = qname.clone();
    for _ in 0..MAX_CHAIN_IN_RESPONSE {
        if !zone.zone_of(&cur) {
            break;
        }
        let mut records: Vec<Record> = Vec::new();
        // Duplicates: compared directly in a small set (most answers: no allocation),
        // by hashing past SMALL_RRSET, so a huge one costs no quadratic time.
        let mut few: smallvec::SmallVec<[&RData; SMALL_RRSET]> = smallvec::SmallVec::new();
        let mut seen: HashSet<&RData, foldhash::fast::RandomState> = HashSet::default();
        for r in answers.iter().filter(|r| r.name == cur) {
            let t = r.record_type();
            if !(t == qtype || qtype == RecordType::ANY && t != RecordType::CNAME)
                || records.len() >= MAX_RRSET
            {
                continue;
            }
            let new = if few.len() < SMALL_RRSET {
                let new = !few.contains(&&r.data);
                if new {
                    few.push(&r.data);
                }
                new
            } else {
                if seen.is_empty() {
                    seen.extend(few.iter().copied());
                }
                seen.insert(&r.data)
            };
            if new {
                records.push(r.clone());
            }
        }
        if !records.is_empty() {
            return (chain, cur, records);
        }
        // A DNAME above the name comes first: the CNAME a server synthesised from
        // it is replaced by ours (RFC 6672 §3.4).
        if qtype != RecordType::DNAME
            && let Some((d, target)) = dname_for(answers, zone, &cur)
        {
            if chain_has(&chain, &target) || target == *qname {
                break;
            }
            let ttl = d.ttl;
            chain.push(d);
            chain.push(Record::from_rdata(
                cur.clone(),
                ttl,
                RData::CNAME(CNAME(target.clone())),
            ));
            cur = target;
            continue;
        }
        if qtype != RecordType::CNAME
            && let Some(c) = answers
                .iter()
                .find(|r| r.name == cur && r.record_type() == RecordType::CNAME)
            && let RData::CNAME(t) = &c.data
        {
            let next = t.0.to_lowercase();
            if chain_has(&chain, &next) || next == *qname {
                break; // a loop
            }
            chain.push(c.clone());
            cur = next;
            continue;
        }
        break;
    }
    (chain, cur, Vec::new())
}

fn chain_has(chain: &[Record], name: &Name) -> bool {
    chain.iter().any(|r| r.name == *name)
}

/// A DNAME inside `zone` at a proper ancestor of `name`, and what it maps `name` to.
fn dname_for(answers: &[Record], zone: &Name, name: &Name) -> Option<(Record, Name)> {
    for r in answers {
        let Some(t) = dname_target(r) else { continue };
        if r.name == *name || !r.name.zone_of(name) || !zone.zone_of(&r.name) {
            continue;
        }
        let keep = (name.num_labels() - r.name.num_labels()) as usize;
        let prefix = Name::from_labels(name.iter().take(keep)).ok()?;
        let target = prefix.append_domain(&t.to_lowercase()).ok()?;
        return Some((r.clone(), target));
    }
    None
}

/// The type an RRSIG record covers.
fn covered(r: &Record) -> Option<RecordType> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig.input().type_covered),
        _ => None,
    }
}

/// Add to `step` what a validator needs from `resp` (the server of `zone`): the
/// signatures of the records kept in the answer; for a negative answer the
/// NSEC/NSEC3 records inside the zone and the signatures of those and of the SOA;
/// and for an answer made from a wildcard (a signature with fewer labels than its
/// owner) the same NSEC/NSEC3 records, which prove that no closer name exists.
pub fn add_proofs(step: &mut super::Step, resp: &Message, zone: &Name) {
    use super::Step;
    // An unsigned reply (most of them) has nothing to add: no sets to build.
    let dnssec = |r: &Record| {
        matches!(
            r.record_type(),
            RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
        )
    };
    if !resp.answers.iter().chain(&resp.authorities).any(dnssec) {
        return;
    }
    let signed = |kept: &[Record]| -> Vec<Record> {
        let sets: HashSet<(&Name, RecordType), foldhash::fast::RandomState> =
            kept.iter().map(|r| (&r.name, r.record_type())).collect();
        resp.answers
            .iter()
            .filter(|sig| {
                covered(sig).is_some_and(|t| sets.contains(&(&sig.name, t)))
                    && zone.zone_of(&sig.name)
            })
            // A few signatures per set (one per key and algorithm), not thousands.
            .take(4 * sets.len())
            .cloned()
            .collect()
    };
    let denial = || -> Vec<Record> {
        resp.authorities
            .iter()
            .filter(|r| zone.zone_of(&r.name))
            .filter(|r| match r.record_type() {
                RecordType::NSEC | RecordType::NSEC3 => true,
                RecordType::RRSIG => matches!(
                    covered(r),
                    Some(RecordType::SOA | RecordType::NSEC | RecordType::NSEC3)
                ),
                _ => false,
            })
            .cloned()
            .collect()
    };
    match step {
        Step::Answer(rs, proofs) | Step::Alias(rs, _, proofs) => {
            let sigs = signed(rs);
            let wildcard = sigs.iter().any(|sig| match &sig.data {
                RData::DNSSEC(DNSSECRData::RRSIG(s)) => {
                    s.input().num_labels < sig.name.num_labels()
                }
                _ => false,
            });
            rs.extend(sigs);
            if wildcard {
                proofs.extend(denial());
            }
        }
        Step::NxDomain(chain, auth) | Step::NoData(chain, auth) => {
            let sigs = signed(chain);
            chain.extend(sigs);
            auth.extend(denial());
        }
        Step::Fail(_) => {}
    }
}

/// The target of a DNAME record (hickory-proto keeps DNAME data as unknown bytes:
/// an uncompressed name, RFC 6672 §2.5).
pub fn dname_target(r: &Record) -> Option<Name> {
    match &r.data {
        RData::Unknown { code, rdata } if *code == RecordType::DNAME => {
            Name::read(&mut BinDecoder::new(&rdata.anything)).ok()
        }
        _ => None,
    }
}

/// A DNAME record from `owner` to `target`.
pub fn dname_record(owner: Name, ttl: u32, target: &Name) -> Record {
    let data = RData::Unknown {
        code: RecordType::DNAME,
        rdata: NULL::with(target.to_bytes().unwrap_or_default()),
    };
    Record::from_rdata(owner, ttl, data)
}

/// The SOA of the zone that answered for `name`: inside `zone`, at or above `name`.
fn soa_for(authorities: &[Record], zone: &Name, name: &Name) -> Option<Record> {
    authorities
        .iter()
        .find(|r| {
            r.record_type() == RecordType::SOA && zone.zone_of(&r.name) && r.name.zone_of(name)
        })
        .cloned()
}

/// Whether a referral from `server` hands the child zone back to `server` alone:
/// every name server has glue, and all of it is `server`'s address. A server that
/// serves both zones answers from the child (the closest zone it holds), so one that
/// refers instead does not serve the child: asking it there only brings the same
/// referral again. The child is lame at `server` without asking (a hostile zone
/// that delegates each random name to itself, 55 KB at a time, costs one such
/// reply per name instead of two).
pub fn refers_back(kind: &Kind, server: IpAddr) -> bool {
    let Kind::Referral { ns, glue, .. } = kind else {
        return false;
    };
    !glue.is_empty()
        && glue.iter().all(|(_, ip)| *ip == server)
        && ns.iter().all(|n| glue.iter().any(|(g, _)| g == n))
}

/// A referral toward `name`: an NS set in the authority section for a zone strictly
/// below `zone` and at or above `name`, with glue inside `zone`. A referral up or
/// sideways, or to `zone` itself, is lame.
fn referral(resp: &Message, zone: &Name, name: &Name) -> Option<Kind> {
    if resp.metadata.response_code != ResponseCode::NoError {
        return None;
    }
    let ns: Vec<&Record> = resp
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .collect();
    let first = ns.first()?;
    let child = first.name.to_lowercase();
    if child.num_labels() <= zone.num_labels() || !zone.zone_of(&child) || !child.zone_of(name) {
        return (!resp.metadata.authoritative).then_some(Kind::Lame);
    }
    // At most MAX_NS names, each once (by hashing), and glue only for those.
    let mut names: Vec<Name> = Vec::new();
    let mut ttl = u32::MAX;
    for r in ns.iter().filter(|r| r.name.to_lowercase() == child) {
        if let RData::NS(n) = &r.data {
            ttl = ttl.min(r.ttl);
            if names.len() < MAX_NS {
                let n = n.0.to_lowercase();
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }
    let kept: HashSet<&Name, foldhash::fast::RandomState> = names.iter().collect();
    let mut per_ns: std::collections::HashMap<&Name, usize, foldhash::fast::RandomState> =
        Default::default();
    let mut seen: HashSet<(Name, IpAddr), foldhash::fast::RandomState> = HashSet::default();
    let mut glue: Vec<(Name, IpAddr)> = Vec::new();
    for r in &resp.additionals {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        let Some(owner) = kept.get(&r.name).copied() else {
            continue;
        };
        if !zone.zone_of(owner) {
            continue;
        }
        let n = per_ns.entry(owner).or_default();
        if *n < MAX_GLUE_PER_NS && seen.insert((owner.clone(), ip)) {
            *n += 1;
            glue.push((owner.clone(), ip));
        }
    }
    Some(Kind::Referral {
        zone: child,
        ns: names,
        glue,
        ttl,
    })
}

#[cfg(test)]
mod tests;
