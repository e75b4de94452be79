//! The answers fanzha writes: the block answer (the sinkhole, NXDOMAIN, REFUSED, an
//! RPZ rule's own data), each with its Extended DNS Error, and the answer to a
//! resolution ([`resolved`]): the one place a resolved answer is encoded and the
//! AD rule is applied.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Record, RecordType};

use crate::blocklist::parse::{RpzAction, rpz_action};
use crate::blocklist::{Action, Blocklist, Hit};
use crate::dns::resolve::Resolved;
use crate::dns::wire::{self, Ede, Query, ResponseWriter, rcode, rtype};
use crate::metrics::Outcome;

/// What a blocked name resolves to (`[sinkhole]`).
#[derive(Debug, Clone, Copy)]
pub struct Sinkhole {
    /// The A answer.
    pub v4: Ipv4Addr,
    /// The AAAA answer (`None`: NODATA).
    pub v6: Option<Ipv6Addr>,
    /// The TTL of synthesised answers.
    pub ttl: u32,
}

/// Where DNS sends a host with path rules: the URL proxy (`[url]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlProxy {
    /// The A answer (`None`: no data).
    pub v4: Option<Ipv4Addr>,
    /// The AAAA answer (`None`: no data).
    pub v6: Option<Ipv6Addr>,
    /// Places without `managed_tls` are sent to the proxy too (their HTTPS is
    /// relayed unopened).
    pub passthrough: bool,
}

impl UrlProxy {
    /// Write the proxy's answer for a host with path rules into `buf`: A and AAAA
    /// the proxy's addresses, HTTPS and SVCB no data (so that no hint leads a
    /// client to the host's own addresses or to ECH). `false`: another type, which
    /// is resolved as usual.
    pub fn answer(&self, buf: &mut Vec<u8>, packet: &[u8], q: &Query, ttl: u32) -> bool {
        let addr = match q.qtype {
            rtype::A => self.v4.map(IpAddr::V4),
            rtype::AAAA => self.v6.map(IpAddr::V6),
            rtype::HTTPS | rtype::SVCB => None,
            _ => return false,
        };
        let mut w = ResponseWriter::start(buf, packet, q.question_end, rcode::NOERROR, true);
        match addr {
            Some(IpAddr::V4(a)) => w.answer_a(wire::HEADER_LEN, ttl, a),
            Some(IpAddr::V6(a)) => w.answer_aaaa(wire::HEADER_LEN, ttl, a),
            None => w.authority_soa(wire::HEADER_LEN, ttl, 1),
        }
        if let Some(e) = q.edns {
            w.opt(e.dnssec_ok, None, 0);
        }
        w.finish();
        true
    }
}

impl Sinkhole {
    /// Write the answer for a blocked query into `buf` (DESIGN §3). `soa_owner` is the
    /// packet offset of the name the synthesised SOA is owned by.
    #[allow(clippy::too_many_arguments)]
    pub fn block(
        &self,
        buf: &mut Vec<u8>,
        packet: &[u8],
        q: &Query,
        list: &Blocklist,
        hit: &Hit,
        action: Action,
        soa_owner: usize,
    ) {
        let category = list.category(hit);
        let mut text_buf = [0u8; 96];
        let text = ede_text(&mut text_buf, category);
        let ede = Some(Ede { code: 15, text });
        let serial = list.meta().built_unix as u32;
        if let Some(rpz) = list.note(hit).and_then(rpz_action) {
            self.write_rpz(buf, packet, q, rpz, ede, soa_owner, serial);
            return;
        }
        let rc = match action {
            Action::Sinkhole => rcode::NOERROR,
            Action::Nxdomain => rcode::NXDOMAIN,
            Action::Refused | Action::Shadow | Action::Off => rcode::REFUSED,
        };
        let mut w =
            ResponseWriter::start(buf, packet, q.question_end, rc, action != Action::Refused);
        match (action, q.qtype) {
            (Action::Sinkhole, rtype::A) => w.answer_a(wire::HEADER_LEN, self.ttl, self.v4),
            (Action::Sinkhole, rtype::AAAA) if self.v6.is_some() => w.answer_aaaa(
                wire::HEADER_LEN,
                self.ttl,
                self.v6.unwrap_or(Ipv6Addr::LOCALHOST),
            ),
            (Action::Refused, _) => {}
            _ => w.authority_soa(soa_owner, self.ttl, serial),
        }
        if let Some(e) = q.edns {
            w.opt(e.dnssec_ok, ede, 0);
        }
        w.finish();
    }

    /// The answer an RPZ rule's own action gives (its list's `rpz_actions` on). The
    /// EDE still names the category. `rpz-drop.` and `rpz-tcp-only.` over TCP are
    /// the engine's (no answer; resolved as usual): here drop is NXDOMAIN (a CNAME
    /// target met while resolving) and tcp-only an empty TC answer.
    #[allow(clippy::too_many_arguments)]
    fn write_rpz(
        &self,
        buf: &mut Vec<u8>,
        packet: &[u8],
        q: &Query,
        rpz: RpzAction<'_>,
        ede: Option<Ede<'_>>,
        soa_owner: usize,
        serial: u32,
    ) {
        let rc = match rpz {
            RpzAction::Nxdomain | RpzAction::Drop => rcode::NXDOMAIN,
            _ => rcode::NOERROR,
        };
        let mut w = ResponseWriter::start(buf, packet, q.question_end, rc, true);
        let mut answered = false;
        match rpz {
            RpzAction::TcpOnly => w.truncated(),
            RpzAction::Data(records) => {
                for rec in records.split('|') {
                    let (t, rdata) = rec.split_once(' ').unwrap_or((rec, ""));
                    answered |= write_data(&mut w, q.qtype, t, rdata.trim(), self.ttl);
                }
            }
            _ => {}
        }
        if !answered && rpz != RpzAction::TcpOnly {
            w.authority_soa(soa_owner, self.ttl, serial);
        }
        if let Some(e) = q.edns {
            w.opt(e.dnssec_ok, ede, 0);
        }
        w.finish();
    }
}

/// One RPZ local-data record (`t` and its `rdata` as written) into the answer, when
/// it answers `qtype` (a CNAME answers any type). Whether it was written.
fn write_data(w: &mut ResponseWriter<'_>, qtype: u16, t: &str, rdata: &str, ttl: u32) -> bool {
    let owner = wire::HEADER_LEN;
    match t {
        "A" if qtype == rtype::A => match rdata.parse::<Ipv4Addr>() {
            Ok(ip) => w.answer_a(owner, ttl, ip),
            Err(_) => return false,
        },
        "AAAA" if qtype == rtype::AAAA => match rdata.parse::<Ipv6Addr>() {
            Ok(ip) => w.answer_aaaa(owner, ttl, ip),
            Err(_) => return false,
        },
        "TXT" if qtype == rtype::TXT => {
            // Quoted strings, each at most 255 bytes.
            let mut out = [0u8; 512];
            let mut n = 0;
            for s in rdata.split('"').skip(1).step_by(2) {
                let s = &s.as_bytes()[..s.len().min(255)];
                if n + 1 + s.len() > out.len() {
                    break;
                }
                out[n] = s.len() as u8;
                out[n + 1..n + 1 + s.len()].copy_from_slice(s);
                n += 1 + s.len();
            }
            if n == 0 {
                return false;
            }
            w.answer_raw(owner, rtype::TXT, ttl, &out[..n]);
        }
        "CNAME" => {
            let mut out = [0u8; 256];
            let mut n = 0;
            for label in rdata.trim_end_matches('.').split('.') {
                if label.is_empty() || label.len() > 63 || n + 2 + label.len() > out.len() {
                    return false;
                }
                out[n] = label.len() as u8;
                out[n + 1..n + 1 + label.len()].copy_from_slice(label.as_bytes());
                n += 1 + label.len();
            }
            out[n] = 0;
            w.answer_raw(owner, rtype::CNAME, ttl, &out[..n + 1]);
        }
        _ => return false,
    }
    true
}

/// "blocked by fanzha: <category>" into a stack buffer (no allocation).
fn ede_text<'a>(buf: &'a mut [u8; 96], category: &str) -> &'a str {
    const PREFIX: &[u8] = b"blocked by fanzha: ";
    let c = &category.as_bytes()[..category.len().min(96 - PREFIX.len())];
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    buf[PREFIX.len()..PREFIX.len() + c.len()].copy_from_slice(c);
    std::str::from_utf8(&buf[..PREFIX.len() + c.len()]).unwrap_or("blocked by fanzha")
}

/// The AD and CD bits of a header's flags.
pub const FLAG_AD: u16 = 0x0020;
/// See [`FLAG_AD`].
pub const FLAG_CD: u16 = 0x0010;

/// Drop the signatures and denial proofs a client without DO did not ask for
/// (RFC 4035 §3.2.1), in place; records of the type it asked for stay.
pub fn strip_dnssec(resolved: &mut Resolved, qtype: u16) {
    let keep = |r: &Record| {
        let t = r.record_type();
        u16::from(t) == qtype
            || !matches!(t, RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3)
    };
    match resolved {
        Resolved::Answer {
            answers,
            authorities,
            ..
        } => {
            answers.retain(keep);
            authorities.retain(keep);
        }
        Resolved::Negative {
            answers, proofs, ..
        } => {
            answers.retain(keep);
            proofs.clear();
        }
        Resolved::Failed(_) => {}
    }
}

/// What the answer to a resolution says, worked out once for both encoders.
struct Parts<'r> {
    rcode: u8,
    /// AD: it validated, and the client asked for DNSSEC records (DO) or for the
    /// AD bit itself (RFC 6840 §5.7).
    ad: bool,
    answers: &'r [Record],
    /// The authority section: the records as received, or a negative answer's SOA.
    authorities: &'r [Record],
    /// A negative answer's denial proofs, for a DO client.
    proofs: &'r [Record],
}

/// Write the answer to a resolution into `buf`: the one place a resolved answer is
/// encoded. The common record types are written straight to wire form; the rest,
/// and denial proofs, by hickory's encoder from the decoded request (`req`, decoded
/// here when `None`). A failure is SERVFAIL with the Extended DNS Error of its
/// cause.
pub fn resolved(
    buf: &mut Vec<u8>,
    packet: &[u8],
    q: &Query,
    req: Option<Message>,
    resolved: &Resolved,
    dnssec_ok: bool,
) -> Outcome {
    let ad = |authentic: bool| authentic && (dnssec_ok || q.flags & FLAG_AD != 0);
    let parts = match resolved {
        Resolved::Answer {
            answers,
            authorities,
            authentic,
        } => Parts {
            rcode: rcode::NOERROR,
            ad: ad(*authentic),
            answers,
            authorities,
            proofs: &[],
        },
        Resolved::Negative {
            nxdomain,
            soa,
            answers,
            proofs,
            authentic,
        } => Parts {
            rcode: if *nxdomain {
                rcode::NXDOMAIN
            } else {
                rcode::NOERROR
            },
            ad: ad(*authentic),
            answers,
            authorities: soa.as_deref().map(std::slice::from_ref).unwrap_or_default(),
            proofs: if dnssec_ok { proofs } else { &[] },
        },
        Resolved::Failed(why) => {
            tracing::debug!(%why, "resolution failed");
            let ede = why.ede().map(|(code, text)| Ede { code, text });
            let mut w = ResponseWriter::start(buf, packet, q.question_end, rcode::SERVFAIL, false);
            if let Some(e) = q.edns {
                w.opt(e.dnssec_ok, ede, 0);
            }
            w.finish();
            return Outcome::Servfail;
        }
    };
    let question = wire::records::Question {
        packet,
        question_end: q.question_end,
        labels: &q.labels,
    };
    if parts.proofs.is_empty()
        && wire::records::response(
            buf,
            &question,
            parts.rcode,
            parts.ad,
            parts.answers,
            parts.authorities,
            q.edns,
        )
    {
        return Outcome::Allowed;
    }
    general(buf, packet, q, req, &parts, dnssec_ok)
}

/// The answer by hickory's encoder: flags echoed from the request, records by
/// section, EDNS when the query had it, DNSSEC records only for DO.
fn general(
    buf: &mut Vec<u8>,
    packet: &[u8],
    q: &Query,
    req: Option<Message>,
    parts: &Parts<'_>,
    dnssec_ok: bool,
) -> Outcome {
    let Some(req) = req.or_else(|| request(packet)) else {
        wire::error_response(buf, packet, q.question_end, rcode::FORMERR, q.edns);
        return Outcome::Malformed;
    };
    let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.checking_disabled = req.metadata.checking_disabled;
    resp.metadata.authentic_data = parts.ad;
    resp.metadata.response_code = ResponseCode::from(0, parts.rcode);
    resp.add_query(req.queries[0].clone());
    resp.insert_answers(parts.answers.to_vec());
    resp.insert_authorities(
        parts
            .authorities
            .iter()
            .chain(parts.proofs)
            .cloned()
            .collect(),
    );
    if q.edns.is_some() {
        let mut ed = Edns::new();
        ed.set_max_payload(wire::EDNS_PAYLOAD);
        ed.set_dnssec_ok(dnssec_ok);
        resp.set_edns(ed);
    }
    match resp.maybe_strip_dnssec_records(dnssec_ok).to_vec() {
        Ok(v) => {
            *buf = v;
            Outcome::Allowed
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode an answer; SERVFAIL");
            wire::error_response(buf, packet, q.question_end, rcode::SERVFAIL, q.edns);
            Outcome::Servfail
        }
    }
}

/// `packet` decoded by hickory, when it holds one question.
pub fn request(packet: &[u8]) -> Option<Message> {
    Message::from_vec(packet)
        .ok()
        .filter(|m| m.queries.len() == 1)
}
