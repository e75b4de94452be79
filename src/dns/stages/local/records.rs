//! `[[local_records]]`: names the operator answers here (the warning page's own
//! name, a printer's PTR record, an intranet host), like Unbound's `local-data` in a
//! transparent zone: a name with local records is answered from them, with no data
//! for the other types; every other name, the names below included, resolves as usual.
//!
//! The records come encoded from the config; an answer copies them after the
//! question, owned by the question's name, without allocating.

use crate::config::LocalRecord;
use crate::dns::wire::{self, Query, ResponseWriter, rcode, rtype};

/// The local records of one name.
#[derive(Debug, Clone)]
struct Owner {
    /// Lowercase labels from the top (`lan`, `fanzha`, `warn`).
    labels: Vec<Vec<u8>>,
    records: Vec<LocalRecord>,
}

/// Every local record, by owner name.
#[derive(Debug, Clone, Default)]
pub struct LocalRecords {
    owners: Vec<Owner>,
}

impl LocalRecords {
    /// Group the configured records by owner.
    pub fn new(records: &[LocalRecord]) -> LocalRecords {
        let mut owners: Vec<Owner> = Vec::new();
        for r in records {
            let labels: Vec<Vec<u8>> = r
                .name
                .iter()
                .rev()
                .map(|l| l.to_ascii_lowercase())
                .collect();
            match owners.iter_mut().find(|o| o.labels == labels) {
                Some(o) => o.records.push(r.clone()),
                None => owners.push(Owner {
                    labels,
                    records: vec![r.clone()],
                }),
            }
        }
        LocalRecords { owners }
    }

    /// Whether there are none (the common case: one comparison per query).
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Answer `q` from the local records into `buf`, when its name has some: the
    /// records of its type (or its CNAME), or no data. False when the name has none.
    pub fn answer(&self, buf: &mut Vec<u8>, packet: &[u8], q: &Query) -> bool {
        let Some(o) = self.owners.iter().find(|o| {
            o.labels.len() == q.labels.len()
                && o.labels
                    .iter()
                    .zip(q.labels_from_top(packet))
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
        }) else {
            return false;
        };
        let mut w = ResponseWriter::start(buf, packet, q.question_end, rcode::NOERROR, true);
        for r in &o.records {
            if r.rtype == q.qtype || r.rtype == rtype::CNAME {
                w.answer_raw(wire::HEADER_LEN, r.rtype, r.ttl, &r.rdata);
            }
        }
        if let Some(e) = q.edns {
            w.opt(e.dnssec_ok, None, 0);
        }
        w.finish();
        true
    }
}
