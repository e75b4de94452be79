//! What a resolution produced: an answer, a negative answer with its proofs, or a
//! typed failure that says its Extended DNS Error and its metric label.

use hickory_proto::rr::{Record, RecordType};

use super::iterate::{Step, soa_in};

/// What a resolution produced.
#[derive(Debug)]
pub enum Resolved {
    /// Records for the question (the CNAME chain included).
    Answer {
        /// Answer section.
        answers: Vec<Record>,
        /// Authority section as received.
        authorities: Vec<Record>,
        /// DNSSEC-validated.
        authentic: bool,
    },
    /// NXDOMAIN or NODATA, with the zone's SOA when known.
    Negative {
        /// NXDOMAIN (true) or NODATA.
        nxdomain: bool,
        /// SOA for negative caching.
        soa: Option<Box<Record>>,
        /// CNAMEs that led there.
        answers: Vec<Record>,
        /// The rest of the authority section the servers signed: the SOA's RRSIG
        /// and the NSEC/NSEC3 denial and their RRSIGs (for DO clients, who may
        /// validate themselves; empty when the servers sent none).
        proofs: Vec<Record>,
        /// DNSSEC-validated: the denial is proven.
        authentic: bool,
    },
    /// No usable answer: SERVFAIL, with the Extended DNS Error of its cause.
    Failed(Failure),
}

/// Why a resolution gave no usable answer. Each cause has its Extended DNS Error
/// (RFC 8914), when one fits, and its label in
/// `fanzha_resolution_failures_total{reason}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No root server has ever answered: the appliance cannot reach the Internet's
    /// name servers at all (a firewall, no route).
    #[error("no root server answers ({0})")]
    NoRootAnswers(String),
    /// The name's servers gave nothing usable: dead, lame, refusing, looping.
    #[error("{0}")]
    NoUsableAnswer(String),
    /// DNSSEC validation found the answer bogus.
    #[error("DNSSEC validation failed (bogus)")]
    Bogus,
    /// No answer within the query's deadline, in milliseconds.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// The upstream (forward mode) failed or answered an error.
    #[error("upstream: {0}")]
    Upstream(String),
}

impl Failure {
    /// Its Extended DNS Error: info code and text.
    pub fn ede(&self) -> Option<(u16, &'static str)> {
        match self {
            Failure::NoRootAnswers(_) => Some((22, "no root server answers")),
            Failure::Bogus => Some((6, "DNSSEC bogus")),
            Failure::NoUsableAnswer(_) | Failure::Timeout(_) | Failure::Upstream(_) => None,
        }
    }

    /// Its label in `fanzha_resolution_failures_total{reason}`.
    pub fn label(&self) -> &'static str {
        use crate::metrics::FAILURE_REASONS;
        match self {
            Failure::NoRootAnswers(_) => FAILURE_REASONS[0],
            Failure::NoUsableAnswer(_) => FAILURE_REASONS[1],
            Failure::Bogus => FAILURE_REASONS[2],
            Failure::Timeout(_) => FAILURE_REASONS[3],
            Failure::Upstream(_) => FAILURE_REASONS[4],
        }
    }
}

/// The SOA of an authority section, for the client's answer.
pub(super) fn first_soa(auth: &[Record]) -> Option<Box<Record>> {
    soa_in(auth).cloned().map(Box::new)
}

/// The DNSSEC records of a negative answer's authority section (RRSIG, NSEC,
/// NSEC3), as the servers sent them: what a DO client needs to check the denial.
pub(super) fn proofs_of(auth: &[Record]) -> Vec<Record> {
    auth.iter()
        .filter(|r| {
            matches!(
                r.record_type(),
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            )
        })
        .cloned()
        .collect()
}

/// What the client gets for an iterator's step.
pub(super) fn from_step(step: Step) -> Resolved {
    match step {
        Step::Answer(answers, proofs) => Resolved::Answer {
            answers,
            authorities: proofs,
            authentic: false,
        },
        Step::NxDomain(answers, auth) => Resolved::Negative {
            nxdomain: true,
            soa: first_soa(&auth),
            proofs: proofs_of(&auth),
            answers,
            authentic: false,
        },
        Step::NoData(answers, auth) => Resolved::Negative {
            nxdomain: false,
            soa: first_soa(&auth),
            proofs: proofs_of(&auth),
            answers,
            authentic: false,
        },
        Step::Alias(..) => {
            Resolved::Failed(Failure::NoUsableAnswer("an alias left unresolved".into()))
        }
        Step::Fail(why) => Resolved::Failed(Failure::NoUsableAnswer(why)),
    }
}
