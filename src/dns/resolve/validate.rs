//! DNSSEC validation: hickory's validator over fanzha's iterator, its trust anchors
//! (keys, or DS records matched to the keys they name, [`super::anchor`]), and what
//! a client gets for a validated answer.

use std::sync::Arc;

use hickory_proto::dnssec::rdata::DS;
use hickory_proto::dnssec::{Proof, TrustAnchors};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use hickory_resolver::net::dnssec::DnssecDnsHandle;

use super::anchor;
use super::iterate::handle::IterHandle;
use super::iterate::{Recursor, Step};
use super::outcome::{Failure, Resolved, first_soa, proofs_of};

/// The validator for DS trust anchors: fetch each anchored zone's DNSKEY set and trust
/// the keys a DS matches. An error (no key matched, the servers did not answer)
/// leaves it to be tried again at the next query.
pub(super) async fn validator_from_ds(
    iter: &Arc<Recursor>,
    ds: &[(Name, DS)],
) -> Result<DnssecDnsHandle<IterHandle>, String> {
    let mut keys = TrustAnchors::empty();
    let mut zones: Vec<&Name> = ds.iter().map(|(z, _)| z).collect();
    zones.dedup();
    for zone in zones {
        let dnskeys = match iter.resolve(zone.clone(), RecordType::DNSKEY).await {
            Step::Answer(rs, _) => rs,
            _ => return Err(format!("no DNSKEY set for the trust anchor of {zone}")),
        };
        if anchor::add_matching(&mut keys, ds, zone, &dnskeys) == 0 {
            return Err(format!("no DNSKEY of {zone} matches its trust-anchor DS"));
        }
    }
    tracing::info!(
        keys = keys.len(),
        "trust anchors: DS records matched to keys"
    );
    Ok(DnssecDnsHandle::with_trust_anchor(
        IterHandle(iter.clone()),
        Arc::new(keys),
    ))
}

/// What the client gets for a validated answer: SERVFAIL when anything is bogus,
/// AD when every answer record is secure (for a denial: every record of the
/// answer and authority sections, its proofs included).
pub(super) fn validated(m: hickory_proto::op::Message) -> Resolved {
    if m.all_sections().any(|r| r.proof == Proof::Bogus) {
        return Resolved::Failed(Failure::Bogus);
    }
    let denial_secure = !m.authorities.is_empty()
        && m.answers
            .iter()
            .chain(&m.authorities)
            .all(|r| r.proof == Proof::Secure);
    match m.metadata.response_code {
        ResponseCode::NoError
            if m.answers.iter().all(|r| {
                r.record_type() == RecordType::CNAME || r.record_type() == RecordType::RRSIG
            }) =>
        {
            Resolved::Negative {
                nxdomain: false,
                soa: first_soa(&m.authorities),
                proofs: proofs_of(&m.authorities),
                answers: m.answers,
                authentic: denial_secure,
            }
        }
        // The authority section holds only the proofs of wildcard answers.
        ResponseCode::NoError => Resolved::Answer {
            authentic: m.answers.iter().all(|r| r.proof == Proof::Secure),
            answers: m.answers,
            authorities: m.authorities,
        },
        ResponseCode::NXDomain => Resolved::Negative {
            nxdomain: true,
            soa: first_soa(&m.authorities),
            proofs: proofs_of(&m.authorities),
            answers: m.answers,
            authentic: denial_secure,
        },
        other => Resolved::Failed(Failure::Upstream(format!("answered {other}"))),
    }
}
