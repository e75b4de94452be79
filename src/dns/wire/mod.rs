//! DNS wire format, the little fanzha needs on its hot path: parse a query's header,
//! question and OPT record straight from the packet, and write the answers fanzha
//! synthesises itself (blocked names, refusals, errors) straight into bytes.
//!
//! Pure code, no I/O. Allowed queries are decoded fully with hickory-proto elsewhere.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Header length.
pub const HEADER_LEN: usize = 12;
/// EDNS payload size fanzha advertises and honours at most (DNS flag day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Record types used here.
pub mod rtype {
    /// A
    pub const A: u16 = 1;
    /// NS
    pub const NS: u16 = 2;
    /// CNAME
    pub const CNAME: u16 = 5;
    /// SOA
    pub const SOA: u16 = 6;
    /// HINFO
    pub const HINFO: u16 = 13;
    /// PTR
    pub const PTR: u16 = 12;
    /// TXT
    pub const TXT: u16 = 16;
    /// AAAA
    pub const AAAA: u16 = 28;
    /// SVCB (RFC 9460).
    pub const SVCB: u16 = 64;
    /// HTTPS (RFC 9460).
    pub const HTTPS: u16 = 65;
    /// OPT
    pub const OPT: u16 = 41;
    /// IXFR
    pub const IXFR: u16 = 251;
    /// AXFR
    pub const AXFR: u16 = 252;
    /// ANY
    pub const ANY: u16 = 255;
}

/// Header flag bits of [`Query::flags`].
pub mod flag {
    /// Recursion desired.
    pub const RD: u16 = 0x0100;
}

/// Response codes used here.
pub mod rcode {
    /// NOERROR
    pub const NOERROR: u8 = 0;
    /// FORMERR
    pub const FORMERR: u8 = 1;
    /// SERVFAIL
    pub const SERVFAIL: u8 = 2;
    /// NXDOMAIN
    pub const NXDOMAIN: u8 = 3;
    /// NOTIMP
    pub const NOTIMP: u8 = 4;
    /// REFUSED
    pub const REFUSED: u8 = 5;
}

/// EDNS of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size.
    pub udp_size: u16,
    /// DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// EDNS version.
    pub version: u8,
}

/// A parsed query. Offsets point into the packet it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Message id.
    pub id: u16,
    /// Second and third header bytes (flags) as received.
    pub flags: u16,
    /// Opcode.
    pub opcode: u8,
    /// End of the question name (offset of QTYPE).
    pub qname_end: usize,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// End of the question section.
    pub question_end: usize,
    /// The OPT record, if any.
    pub edns: Option<Edns>,
    /// Labels as (offset, length), top-level label last.
    pub labels: LabelOffsets,
}

/// Up to 127 label positions without allocating.
#[derive(Clone, PartialEq, Eq)]
pub struct LabelOffsets {
    n: u8,
    at: [(u16, u8); 128],
}

impl std::fmt::Debug for LabelOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl LabelOffsets {
    fn new() -> Self {
        LabelOffsets {
            n: 0,
            at: [(0, 0); 128],
        }
    }
    /// Number of labels.
    pub fn len(&self) -> usize {
        self.n as usize
    }
    /// True for the root name.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// (offset, length) pairs, first label first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (usize, usize)> + '_ {
        self.at[..self.n as usize]
            .iter()
            .map(|&(o, l)| (o as usize, l as usize))
    }
}

/// Why a packet gets no answer or an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not worth an answer (shorter than a header, or a response).
    Drop,
    /// Answer with this rcode (header echoed, question echoed when `question_end` > 0).
    Reply {
        /// FORMERR or NOTIMP.
        rcode: u8,
        /// End of a well-formed question, or 0.
        question_end: usize,
    },
    /// EDNS version we do not speak: BADVERS.
    BadVersion {
        /// End of the question.
        question_end: usize,
    },
}

fn u16_at(p: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]))
}

/// Skip a (possibly compressed) name in a record; returns the offset after it.
pub(crate) fn skip_name(p: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *p.get(i)? as usize;
        match len & 0xc0 {
            0x00 => {
                i += 1 + len;
                if len == 0 {
                    return Some(i);
                }
                if i > p.len() {
                    return None;
                }
            }
            0xc0 => {
                p.get(i + 1)?;
                return Some(i + 2);
            }
            _ => return None,
        }
    }
}

/// Parse a query packet. (Long function: one pass over the packet; the header,
/// question and OPT checks share offsets, and splitting them would pass half a dozen
/// of them around on the hottest path.) Compression in the question is refused (no client sends it,
/// and a pointer there could only point into the header or forward).
pub fn parse_query(p: &[u8]) -> Result<Query, ParseError> {
    if p.len() < HEADER_LEN {
        return Err(ParseError::Drop);
    }
    let id = u16::from_be_bytes([p[0], p[1]]);
    let flags = u16::from_be_bytes([p[2], p[3]]);
    if flags & 0x8000 != 0 {
        return Err(ParseError::Drop);
    }
    let opcode = ((flags >> 11) & 0xf) as u8;
    let qd = u16_at(p, 4).unwrap_or(0);
    let an = u16_at(p, 6).unwrap_or(0);
    let ns = u16_at(p, 8).unwrap_or(0);
    let ar = u16_at(p, 10).unwrap_or(0);
    let formerr = ParseError::Reply {
        rcode: rcode::FORMERR,
        question_end: 0,
    };
    if qd != 1 {
        if opcode != 0 {
            return Err(ParseError::Reply {
                rcode: rcode::NOTIMP,
                question_end: 0,
            });
        }
        return Err(formerr);
    }
    let mut labels = LabelOffsets::new();
    let mut i = HEADER_LEN;
    loop {
        let len = *p.get(i).ok_or(formerr)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len > 63 || labels.n as usize >= 127 {
            return Err(formerr);
        }
        // 255 octets at most on the wire, the root label's zero byte included.
        if i + 1 + len > p.len() || i + 1 + len + 1 - HEADER_LEN > 255 {
            return Err(formerr);
        }
        labels.at[labels.n as usize] = ((i + 1) as u16, len as u8);
        labels.n += 1;
        i += 1 + len;
    }
    let qname_end = i;
    let qtype = u16_at(p, i).ok_or(formerr)?;
    let qclass = u16_at(p, i + 2).ok_or(formerr)?;
    let question_end = i + 4;
    if opcode != 0 {
        return Err(ParseError::Reply {
            rcode: rcode::NOTIMP,
            question_end,
        });
    }
    let formerr_q = ParseError::Reply {
        rcode: rcode::FORMERR,
        question_end,
    };
    // Skip answer and authority records; find the OPT among the additionals.
    let mut j = question_end;
    for _ in 0..(an as usize + ns as usize) {
        j = skip_name(p, j).ok_or(formerr_q)?;
        let rdlen = u16_at(p, j + 8).ok_or(formerr_q)? as usize;
        j += 10 + rdlen;
        if j > p.len() {
            return Err(formerr_q);
        }
    }
    let mut edns = None;
    for _ in 0..ar {
        let start = j;
        j = skip_name(p, j).ok_or(formerr_q)?;
        let t = u16_at(p, j).ok_or(formerr_q)?;
        let class = u16_at(p, j + 2).ok_or(formerr_q)?;
        let ttl_hi = u16_at(p, j + 4).ok_or(formerr_q)?;
        let ttl_lo = u16_at(p, j + 6).ok_or(formerr_q)?;
        let rdlen = u16_at(p, j + 8).ok_or(formerr_q)? as usize;
        j += 10 + rdlen;
        if j > p.len() {
            return Err(formerr_q);
        }
        if t == rtype::OPT {
            if edns.is_some() || p[start] != 0 {
                return Err(formerr_q);
            }
            let version = (ttl_hi & 0xff) as u8;
            edns = Some(Edns {
                udp_size: class.max(512),
                dnssec_ok: ttl_lo & 0x8000 != 0,
                version,
            });
        }
    }
    if let Some(e) = edns
        && e.version != 0
    {
        return Err(ParseError::BadVersion { question_end });
    }
    Ok(Query {
        id,
        flags,
        opcode,
        qname_end,
        qtype,
        qclass,
        question_end,
        edns,
        labels,
    })
}

impl Query {
    /// The question name's labels, top-level first, as byte slices of `packet`.
    pub fn labels_from_top<'s, 'p: 's>(
        &'s self,
        packet: &'p [u8],
    ) -> impl Iterator<Item = &'p [u8]> + 's {
        self.labels
            .iter()
            .rev()
            .map(move |(o, l)| &packet[o..o + l])
    }

    /// Offset in the packet of the name made of the last `depth` labels (for
    /// compression pointers to a rule's name inside the question).
    pub fn suffix_offset(&self, depth: usize) -> usize {
        let n = self.labels.len();
        if depth == 0 || depth > n {
            return self.qname_end - 1;
        }
        self.labels
            .iter()
            .nth(n - depth)
            .map(|(o, _)| o - 1)
            .unwrap_or(HEADER_LEN)
    }

    /// The last `depth` labels of the question name, lower-case, dotted, written into
    /// `buf` without allocating (a block rule's name); `None` when they are not plain
    /// ASCII (a rule never is) or do not fit.
    pub fn suffix_lower<'b>(
        &self,
        packet: &[u8],
        depth: usize,
        buf: &'b mut [u8; 256],
    ) -> Option<&'b str> {
        let n = self.labels.len();
        let mut w = 0;
        for (i, (o, l)) in self.labels.iter().skip(n.saturating_sub(depth)).enumerate() {
            if i > 0 {
                *buf.get_mut(w)? = b'.';
                w += 1;
            }
            for &b in &packet[o..o + l] {
                let c = b.to_ascii_lowercase();
                if !c.is_ascii_graphic() || c == b'.' || c == b'\\' {
                    return None;
                }
                *buf.get_mut(w)? = c;
                w += 1;
            }
        }
        std::str::from_utf8(&buf[..w]).ok()
    }

    /// The question name in presentation form, lower-case, without trailing dot.
    pub fn name_lower(&self, packet: &[u8]) -> String {
        let mut s = String::with_capacity(self.qname_end - HEADER_LEN);
        for (i, (o, l)) in self.labels.iter().enumerate() {
            if i > 0 {
                s.push('.');
            }
            for &b in &packet[o..o + l] {
                let c = b.to_ascii_lowercase();
                if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                    s.push(c as char);
                } else {
                    s.push_str(&format!("\\{:03}", c));
                }
            }
        }
        s
    }

    /// Largest UDP response the client accepts.
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => e.udp_size.clamp(512, EDNS_PAYLOAD) as usize,
            None => 512,
        }
    }
}

/// Writes a response into a reusable buffer.
pub struct ResponseWriter<'b> {
    buf: &'b mut Vec<u8>,
    counts: [u16; 3],
}

/// Extended DNS Error (RFC 8914) to attach.
#[derive(Debug, Clone, Copy)]
pub struct Ede<'a> {
    /// Info code (15 Blocked, 17 Filtered …).
    pub code: u16,
    /// Extra text.
    pub text: &'a str,
}

impl<'b> ResponseWriter<'b> {
    /// Start a response to `q` (header, question echoed exactly as asked).
    pub fn start(buf: &'b mut Vec<u8>, packet: &[u8], q_end: usize, rcode_v: u8, aa: bool) -> Self {
        buf.clear();
        let id = [packet[0], packet[1]];
        let qflags = u16::from_be_bytes([packet[2], packet[3]]);
        // QR, opcode copied, AA, RD copied, RA, CD copied, rcode. For NOTIMP nothing
        // was recursed on or checked: the answer claims neither RA nor CD.
        let mut flags: u16 = 0x8000 | (qflags & 0x7800) | (qflags & 0x0100);
        if rcode_v != rcode::NOTIMP {
            flags |= 0x0080 | (qflags & 0x0010);
        }
        if aa {
            flags |= 0x0400;
        }
        flags |= (rcode_v & 0x0f) as u16;
        buf.extend_from_slice(&id);
        buf.extend_from_slice(&flags.to_be_bytes());
        let qd: u16 = if q_end > HEADER_LEN { 1 } else { 0 };
        buf.extend_from_slice(&qd.to_be_bytes());
        buf.extend_from_slice(&[0; 6]);
        if q_end > HEADER_LEN {
            buf.extend_from_slice(&packet[HEADER_LEN..q_end]);
        }
        ResponseWriter {
            buf,
            counts: [0; 3],
        }
    }

    fn rr_head(&mut self, name_ptr: usize, t: u16, ttl: u32) {
        self.buf
            .extend_from_slice(&(0xc000u16 | name_ptr as u16).to_be_bytes());
        self.buf.extend_from_slice(&t.to_be_bytes());
        self.buf.extend_from_slice(&1u16.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
    }

    /// An A record for the name at `name_ptr`.
    pub fn answer_a(&mut self, name_ptr: usize, ttl: u32, ip: Ipv4Addr) {
        self.rr_head(name_ptr, rtype::A, ttl);
        self.buf.extend_from_slice(&4u16.to_be_bytes());
        self.buf.extend_from_slice(&ip.octets());
        self.counts[0] += 1;
    }

    /// An AAAA record.
    pub fn answer_aaaa(&mut self, name_ptr: usize, ttl: u32, ip: Ipv6Addr) {
        self.rr_head(name_ptr, rtype::AAAA, ttl);
        self.buf.extend_from_slice(&16u16.to_be_bytes());
        self.buf.extend_from_slice(&ip.octets());
        self.counts[0] += 1;
    }

    /// A HINFO record (RFC 8482 answer to ANY).
    pub fn answer_hinfo(&mut self, name_ptr: usize, ttl: u32, cpu: &str, os: &str) {
        self.rr_head(name_ptr, rtype::HINFO, ttl);
        self.buf
            .extend_from_slice(&((2 + cpu.len() + os.len()) as u16).to_be_bytes());
        self.buf.push(cpu.len() as u8);
        self.buf.extend_from_slice(cpu.as_bytes());
        self.buf.push(os.len() as u8);
        self.buf.extend_from_slice(os.as_bytes());
        self.counts[0] += 1;
    }

    /// A synthesised SOA in the authority section, owned by the name at `name_ptr`
    /// (the blocked rule's name), for negative caching of `ttl` seconds.
    pub fn authority_soa(&mut self, name_ptr: usize, ttl: u32, serial: u32) {
        self.soa(name_ptr, ttl, [serial, 3600, 600, 86400, ttl], false);
    }

    /// An SOA record owned by the name at `name_ptr`, in the answer section or the
    /// authority section; MNAME is that name, RNAME `nobody.invalid.`, then `fields`
    /// (SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM).
    pub fn soa(&mut self, name_ptr: usize, ttl: u32, fields: [u32; 5], answer: bool) {
        self.rr_head(name_ptr, rtype::SOA, ttl);
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(0xc000u16 | name_ptr as u16).to_be_bytes());
        self.buf.extend_from_slice(b"\x06nobody\x07invalid\x00");
        for v in fields {
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
        let rdlen = (self.buf.len() - len_at - 2) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        self.counts[usize::from(!answer)] += 1;
    }

    /// A record of type `t` in the answer section, owned by the name at `name_ptr`,
    /// with RDATA already encoded (names in it uncompressed).
    pub fn answer_raw(&mut self, name_ptr: usize, t: u16, ttl: u32, rdata: &[u8]) {
        self.rr_head(name_ptr, t, ttl);
        self.buf
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(rdata);
        self.counts[0] += 1;
    }

    /// An NS record in the answer section: the name at `name_ptr`, served by the
    /// name at `target_ptr`.
    pub fn answer_ns(&mut self, name_ptr: usize, ttl: u32, target_ptr: usize) {
        self.rr_head(name_ptr, rtype::NS, ttl);
        self.buf.extend_from_slice(&2u16.to_be_bytes());
        self.buf
            .extend_from_slice(&(0xc000u16 | target_ptr as u16).to_be_bytes());
        self.counts[0] += 1;
    }

    /// The OPT record answering a query that had EDNS, with an optional EDE option
    /// and the high bits of an extended rcode.
    pub fn opt(&mut self, dnssec_ok: bool, ede: Option<Ede<'_>>, ext_rcode: u8) {
        self.buf.push(0);
        self.buf.extend_from_slice(&rtype::OPT.to_be_bytes());
        self.buf.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        self.buf.push(ext_rcode);
        self.buf.push(0);
        self.buf
            .extend_from_slice(&(if dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
        match ede {
            Some(e) => {
                let text = &e.text.as_bytes()[..e.text.len().min(200)];
                self.buf
                    .extend_from_slice(&((4 + 2 + text.len()) as u16).to_be_bytes());
                self.buf.extend_from_slice(&15u16.to_be_bytes());
                self.buf
                    .extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
                self.buf.extend_from_slice(&e.code.to_be_bytes());
                self.buf.extend_from_slice(text);
            }
            None => self.buf.extend_from_slice(&0u16.to_be_bytes()),
        }
        self.counts[2] += 1;
    }

    /// Set TC: the client is to ask again over TCP.
    pub fn truncated(&mut self) {
        self.buf[2] |= 0x02;
    }

    /// Write the section counts; the response is complete.
    pub fn finish(self) {
        self.buf[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        self.buf[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        self.buf[10..12].copy_from_slice(&self.counts[2].to_be_bytes());
    }
}

/// REFUSED for `packet`, or `None` when it is no query one can answer (too
/// short, a response, or malformed past its header).
pub fn refused(packet: &[u8]) -> Option<Vec<u8>> {
    let q = parse_query(packet).ok()?;
    let mut buf = Vec::with_capacity(q.question_end + 11);
    error_response(&mut buf, packet, q.question_end, rcode::REFUSED, q.edns);
    Some(buf)
}

/// A bare error response (header and, when well-formed, the question; OPT when the
/// query had EDNS).
pub fn error_response(
    buf: &mut Vec<u8>,
    packet: &[u8],
    question_end: usize,
    rcode_v: u8,
    edns: Option<Edns>,
) {
    let mut w = ResponseWriter::start(buf, packet, question_end, rcode_v, false);
    if let Some(e) = edns {
        w.opt(e.dnssec_ok, None, 0);
    }
    w.finish();
}

/// Cut a UDP response that exceeds `limit`: keep the header and question, set TC=1
/// and, when the query had EDNS, keep an OPT record. `question_end` is the query's.
pub fn truncate(buf: &mut Vec<u8>, question_end: usize, edns: Option<Edns>) {
    buf.truncate(question_end);
    buf[2] |= 0x02;
    buf[6..12].copy_from_slice(&[0; 6]);
    if let Some(e) = edns {
        buf.push(0);
        buf.extend_from_slice(&rtype::OPT.to_be_bytes());
        buf.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&(if e.dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        buf[10..12].copy_from_slice(&1u16.to_be_bytes());
    }
}

pub mod padding;
pub mod records;

#[cfg(test)]
mod tests;
