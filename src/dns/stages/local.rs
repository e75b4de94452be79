//! Zones a resolver at a network's edge answers itself, as Unbound does by default:
//! the locally served zones of RFC 6303 (reverse zones of private, loopback, link-local
//! and documentation addresses), `localhost.` (RFC 6761 §6.3), `invalid.` (§6.4) and
//! `onion.` (RFC 7686). A PTR query for a resident's private address would otherwise
//! go out to the Internet's AS112 servers and tell them about the district's network.
//!
//! Pure logic: which zone a query falls in, and the answer, written from the packet's
//! own bytes like a blocked one. An operator turns a zone off with
//! `[resolver] nodefault` (Unbound's `local-zone: "…" nodefault`), for example when an
//! internal server answers the PTR records of 10.0.0.0/8.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::config::DEFAULT_LOCAL_ZONES;
use crate::dns::wire::{self, Query, ResponseWriter, rcode, rtype};

/// TTL of the local records and negative answers (RFC 6303 §3: the SOA's MINIMUM).
const TTL: u32 = 10_800;

/// The locally served zones in force: the defaults minus those turned off.
#[derive(Debug, Clone, Default)]
pub struct LocalZones {
    /// Each zone's labels from the top (`arpa`, `in-addr`, `10`).
    zones: Vec<Vec<&'static [u8]>>,
    /// Their distinct top labels (`arpa`, `localhost`, `invalid`, `onion`): a name
    /// under none of them, nearly every query, is passed over after these few.
    tops: Vec<&'static [u8]>,
}

/// Where a query falls: the zone's depth in labels, and whether it is `localhost.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    depth: usize,
    localhost: bool,
}

impl LocalZones {
    /// The default zones except those named in `off` (lowercase, no final dot).
    pub fn new(enabled: bool, off: &[String]) -> LocalZones {
        if !enabled {
            return LocalZones::default();
        }
        let zones: Vec<Vec<&'static [u8]>> = DEFAULT_LOCAL_ZONES
            .iter()
            .filter(|z| !off.iter().any(|o| o == *z))
            .map(|z| z.split('.').rev().map(str::as_bytes).collect())
            .collect();
        let mut tops: Vec<&'static [u8]> = zones.iter().map(|z| z[0]).collect();
        tops.sort_unstable();
        tops.dedup();
        LocalZones { zones, tops }
    }

    /// The deepest local zone at or above the query name. Nothing allocates, and most
    /// names fail on their top label.
    pub fn find(&self, q: &Query, packet: &[u8]) -> Option<Hit> {
        let top = q.labels_from_top(packet).next()?;
        if !self.tops.iter().any(|t| top.eq_ignore_ascii_case(t)) {
            return None;
        }
        let mut best: Option<Hit> = None;
        for z in &self.zones {
            if best.is_some_and(|b| b.depth >= z.len()) || !top.eq_ignore_ascii_case(z[0]) {
                continue;
            }
            let mut name = q.labels_from_top(packet);
            if z.iter()
                .all(|zl| name.next().is_some_and(|l| l.eq_ignore_ascii_case(zl)))
            {
                best = Some(Hit {
                    depth: z.len(),
                    localhost: z.len() == 1 && z[0] == b"localhost",
                });
            }
        }
        best
    }
}

/// Write the local answer for `q` in zone `hit` into `buf`: for the zone's own name,
/// its SOA and NS records (the zone is its own name server, RFC 6303 §3) and no data
/// for other types; below it, NXDOMAIN; for `localhost.` and the names below it, the
/// loopback addresses. Negative answers carry the zone's SOA for negative caching.
pub fn write_answer(buf: &mut Vec<u8>, packet: &[u8], q: &Query, hit: Hit) {
    let zone_ptr = q.suffix_offset(hit.depth);
    let apex = q.labels.len() == hit.depth;
    let address = hit.localhost && matches!(q.qtype, rtype::A | rtype::AAAA);
    let rc = if apex || hit.localhost {
        rcode::NOERROR
    } else {
        rcode::NXDOMAIN
    };
    let mut w = ResponseWriter::start(buf, packet, q.question_end, rc, true);
    if address && q.qtype == rtype::A {
        w.answer_a(wire::HEADER_LEN, TTL, Ipv4Addr::LOCALHOST);
    } else if address {
        w.answer_aaaa(wire::HEADER_LEN, TTL, Ipv6Addr::LOCALHOST);
    } else if apex && q.qtype == rtype::SOA {
        w.soa(zone_ptr, TTL, SOA_FIELDS, true);
    } else if apex && q.qtype == rtype::NS {
        w.answer_ns(zone_ptr, TTL, zone_ptr);
    } else {
        w.soa(zone_ptr, TTL, SOA_FIELDS, false);
    }
    if let Some(e) = q.edns {
        w.opt(e.dnssec_ok, None, 0);
    }
    w.finish();
}

/// SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM of the local zones' SOA (RFC 6303 §3).
const SOA_FIELDS: [u32; 5] = [1, 3600, 1200, 604_800, TTL];

mod records;
pub use records::LocalRecords;

#[cfg(test)]
mod tests;
