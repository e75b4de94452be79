//! One query to one name server, over UDP (a fresh socket and a random ID each time)
//! or TCP. A UDP reply larger than the buffer we advertised, or one that does not
//! decode, is treated as truncated: the caller asks again over TCP.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, Message, MessageType, Query};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::infra::random_below;

/// The EDNS buffer size fanzha advertises upstream (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;

/// Why an exchange gave no usable message.
#[derive(Debug)]
pub enum ExchangeError {
    /// No reply in time.
    Timeout,
    /// The reply is cut (TC), too large for the buffer, or does not decode over UDP.
    Truncated,
    /// The server cannot be reached (no route, refused connection).
    Unreachable(std::io::Error),
    /// A reply over TCP that does not decode.
    Malformed(String),
}

/// A non-blocking UDP socket connected to `server`, in two system calls: the socket
/// is made non-blocking (and close-on-exec) when it is created, and `connect` binds
/// it to a random ephemeral port itself. One socket per query is what keeps the
/// source port random (RFC 5452), so its cost is kept to the minimum.
fn connected_udp(server: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(
        Domain::for_address(server),
        Type::DGRAM.nonblocking(),
        Some(Protocol::UDP),
    )?;
    s.connect(&server.into())?;
    Ok(s.into())
}

/// `sock` in the runtime's reactor, for the readiness in `interest`.
fn register(
    sock: std::net::UdpSocket,
    interest: Interest,
) -> std::io::Result<AsyncFd<std::net::UdpSocket>> {
    // SAFETY: the AsyncFd owns the socket, so its descriptor stays open and the same
    // for the AsyncFd's whole life.
    unsafe { AsyncFd::register_with_interest(sock, interest) }.map_err(|e| e.into())
}

/// A query on its way to a name server: its wire form and what a reply must echo.
pub struct Outgoing<'a> {
    id: u16,
    packet: Vec<u8>,
    name: &'a Name,
    qtype: RecordType,
}

/// The query for `name`/`qtype` with a random ID, RD clear, and DO set when
/// `dnssec_ok` (with EDNS).
pub fn query(name: &Name, qtype: RecordType, edns: bool, dnssec_ok: bool) -> Outgoing<'_> {
    let id = random_below(65536) as u16;
    Outgoing {
        id,
        packet: query_wire(id, name, qtype, edns, dnssec_ok),
        name,
        qtype,
    }
}

/// The wire form of a query, written directly: one question and at most an OPT
/// record leave nothing to compress, and every cache miss sends one or more of
/// these, so the general message encoder (with its compression table) is not used.
/// The same bytes as hickory's encoder (a test holds them equal).
fn query_wire(id: u16, name: &Name, qtype: RecordType, edns: bool, dnssec_ok: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + name.len() + 2 + 4 + 11);
    p.extend_from_slice(&id.to_be_bytes());
    // QR, opcode, AA, TC, RD, RA, Z, AD, CD and RCODE all clear.
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    for label in name.iter() {
        p.push(label.len() as u8);
        p.extend_from_slice(label);
    }
    p.push(0);
    p.extend_from_slice(&u16::from(qtype).to_be_bytes());
    p.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
    if edns {
        // OPT: root owner, type 41, class = payload size, TTL = extended RCODE 0,
        // version 0, flags (DO is the top bit), no options.
        p.push(0);
        p.extend_from_slice(&u16::from(RecordType::OPT).to_be_bytes());
        p.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        p.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
        p.extend_from_slice(&[0, 0]);
    }
    p
}

impl Outgoing<'_> {
    /// Whether `reply` answers this query.
    fn answered_by(&self, reply: &Message) -> bool {
        reply.metadata.id == self.id
            && reply.metadata.message_type == MessageType::Response
            && reply
                .queries
                .first()
                .is_some_and(|q| q.name() == self.name && q.query_type() == self.qtype)
    }

    /// One UDP exchange with `server`; replies from elsewhere or for another query
    /// are ignored until `timeout`.
    pub async fn udp(
        &self,
        server: SocketAddr,
        timeout: Duration,
    ) -> Result<Message, ExchangeError> {
        let sock = connected_udp(server).map_err(ExchangeError::Unreachable)?;
        // The query goes out at once: a fresh socket's send buffer is empty, so the
        // send does not wait for a turn of the event loop (as tokio's UdpSocket would).
        // Only when the kernel says it would block does the send wait for readiness.
        let sock = match sock.send(&self.packet) {
            Ok(_) => register(sock, Interest::READABLE | Interest::ERROR),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let sock = register(
                    sock,
                    Interest::READABLE | Interest::WRITABLE | Interest::ERROR,
                )
                .map_err(ExchangeError::Unreachable)?;
                sock.async_io(Interest::WRITABLE, |s| s.send(&self.packet))
                    .await
                    .map_err(ExchangeError::Unreachable)?;
                Ok(sock)
            }
            Err(e) => Err(e),
        }
        .map_err(ExchangeError::Unreachable)?;
        // One byte more than advertised: a reply that fills it is larger than allowed
        // (the kernel cuts the rest) and is taken as truncated.
        let mut buf = [0u8; EDNS_PAYLOAD as usize + 1];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // An ICMP error (port or host unreachable) wakes the receive as well: recv
            // then returns it, and the next server is asked at once, not after the
            // timeout.
            let recv = sock.async_io(Interest::READABLE | Interest::ERROR, |s| s.recv(&mut buf));
            let n = match tokio::time::timeout_at(deadline, recv).await {
                Err(_) => return Err(ExchangeError::Timeout),
                // ICMP port unreachable and the like.
                Ok(Err(e)) => return Err(ExchangeError::Unreachable(e)),
                Ok(Ok(n)) => n,
            };
            let Ok(reply) = decode(&buf[..n]) else {
                // Only the header can tell whether it is ours.
                if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == self.id {
                    return Err(ExchangeError::Truncated);
                }
                continue;
            };
            if !self.answered_by(&reply) {
                continue;
            }
            if reply.metadata.truncation || n > EDNS_PAYLOAD as usize {
                return Err(ExchangeError::Truncated);
            }
            return Ok(reply);
        }
    }

    /// One TCP exchange with `server`.
    pub async fn tcp(
        &self,
        server: SocketAddr,
        timeout: Duration,
    ) -> Result<Message, ExchangeError> {
        let work = async {
            let mut s = TcpStream::connect(server)
                .await
                .map_err(ExchangeError::Unreachable)?;
            let _ = s.set_nodelay(true);
            let mut out = Vec::with_capacity(self.packet.len() + 2);
            out.extend_from_slice(&(self.packet.len() as u16).to_be_bytes());
            out.extend_from_slice(&self.packet);
            s.write_all(&out)
                .await
                .map_err(ExchangeError::Unreachable)?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len)
                .await
                .map_err(|e| ExchangeError::Malformed(e.to_string()))?;
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut buf)
                .await
                .map_err(|e| ExchangeError::Malformed(e.to_string()))?;
            let reply = decode(&buf).map_err(|e| ExchangeError::Malformed(e.to_string()))?;
            if !self.answered_by(&reply) {
                return Err(ExchangeError::Malformed("a reply to another query".into()));
            }
            Ok(reply)
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(ExchangeError::Timeout))
    }
}

/// Records decoded at most per section of a reply (answer, authority, additional):
/// more than the scrubber keeps (an RRset of `MAX_RRSET` with its chain and
/// signatures; `MAX_NS` name servers with their glue, a DS set and signatures).
const DECODED: [usize; 3] = [
    super::scrub::MAX_RRSET + 64,
    4 * super::scrub::MAX_NS,
    4 * super::scrub::MAX_NS * 2,
];

/// A reply from a name server, decoded. One that holds more records than the
/// scrubber could use (a hostile referral to 1,500 name servers, 4,000 records in a
/// 64 KiB TCP answer) has the rest of each section stepped over without decoding
/// (names, fixed fields and data skipped, no allocation), the OPT record excepted:
/// a few decoded records instead of thousands. Smaller replies are decoded whole.
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut d = BinDecoder::new(buf);
    let Header {
        mut metadata,
        counts,
    } = Header::read(&mut d)?;
    let sections = [counts.answers, counts.authorities, counts.additionals];
    if sections
        .iter()
        .zip(DECODED)
        .all(|(n, max)| *n as usize <= max)
    {
        return Message::from_vec(buf);
    }
    let mut m = Message::new(metadata.id, metadata.message_type, metadata.op_code);
    for _ in 0..counts.queries {
        m.queries.push(Query::read(&mut d)?);
    }
    let mut edns = None;
    for (section, (count, max)) in sections.into_iter().zip(DECODED).enumerate() {
        let mut kept = Vec::with_capacity(max.min(count as usize));
        for _ in 0..count {
            let start = d.index();
            skip_name(&mut d)?;
            let rtype = d.read_u16()?.unverified();
            let _class_ttl = d.read_slice(6)?;
            let len = d.read_u16()?.unverified();
            d.read_slice(usize::from(len))?;
            let is_opt = rtype == u16::from(RecordType::OPT);
            if kept.len() >= max && !(section == 2 && is_opt) {
                continue;
            }
            // Decode this one from its start.
            let mut at = BinDecoder::new(buf);
            at.read_slice(start)?;
            let r = Record::read(&mut at)?;
            if is_opt {
                if section != 2 || edns.is_some() {
                    return Err(DecodeError::DuplicateEdns);
                }
                edns = Some(Edns::from(&r));
            } else {
                kept.push(r);
            }
        }
        match section {
            0 => m.answers = kept,
            1 => m.authorities = kept,
            _ => m.additionals = kept,
        }
    }
    if let Some(e) = &edns {
        metadata.merge_response_code(e.rcode_high());
    }
    m.metadata = metadata;
    m.edns = edns;
    Ok(m)
}

/// Step over a (possibly compressed) name.
fn skip_name(d: &mut BinDecoder<'_>) -> Result<(), DecodeError> {
    for _ in 0..128 {
        let len = d.read_u8()?.unverified();
        match len {
            0 => return Ok(()),
            l if l & 0xC0 == 0xC0 => {
                d.read_u8()?;
                return Ok(());
            }
            l if l & 0xC0 != 0 => return Err(DecodeError::UnrecognizedLabelCode(l)),
            l => {
                d.read_slice(usize::from(l))?;
            }
        }
    }
    Err(DecodeError::DomainNameTooLong(256))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, OpCode, Query};

    /// The query as hickory's general encoder writes it.
    fn by_hickory(id: u16, name: &Name, qtype: RecordType, edns: bool, dnssec_ok: bool) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = false;
        m.add_query(Query::query(name.clone(), qtype));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(EDNS_PAYLOAD);
            e.set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn the_direct_encoding_is_the_general_one() {
        let names = [
            ".",
            "com.",
            "www.Example.COM.",
            "a.b.c.d.e.f.g.h.i.j.k.example.net.",
            "xn--fiqs8s.xn--fiqs8s.",
            "_dmarc.example.org.",
        ];
        for n in names {
            let name = Name::from_ascii(n).unwrap();
            for qtype in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::NS,
                RecordType::DS,
            ] {
                for (edns, dnssec_ok) in [(false, false), (true, false), (true, true)] {
                    let id = 0xBEEF;
                    assert_eq!(
                        query_wire(id, &name, qtype, edns, dnssec_ok),
                        by_hickory(id, &name, qtype, edns, dnssec_ok),
                        "{n} {qtype} edns={edns} do={dnssec_ok}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_at_once_not_after_the_timeout() {
        let addr = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let name = Name::from_ascii("example.com.").unwrap();
        let q = query(&name, RecordType::A, true, false);
        let t0 = std::time::Instant::now();
        let got = q.udp(addr, Duration::from_secs(10)).await;
        assert!(
            matches!(got, Err(ExchangeError::Unreachable(_))),
            "got {got:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn a_query_decodes_to_what_was_asked() {
        let name = Name::from_ascii("www.example.com.").unwrap();
        let q = query(&name, RecordType::AAAA, true, true);
        let m = Message::from_vec(&q.packet).unwrap();
        assert_eq!(m.metadata.id, q.id);
        assert!(!m.metadata.recursion_desired);
        assert_eq!(m.queries[0].name(), &name);
        assert_eq!(m.queries[0].query_type(), RecordType::AAAA);
        let e = m.edns.as_ref().expect("EDNS");
        assert_eq!(e.max_payload(), EDNS_PAYLOAD);
        assert!(e.flags().dnssec_ok);
    }

    /// A reply for `www.big.example.` with `ns` NS records (each with an A glue
    /// record), `answers` A records, and an OPT record last when `edns`.
    fn reply(ns: u32, answers: u32, edns: bool) -> Message {
        use hickory_proto::rr::RData;
        use hickory_proto::rr::rdata::{A, NS};
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        let q: Name = "www.big.example.".parse().unwrap();
        m.add_query(Query::query(q.clone(), RecordType::A));
        for i in 0..answers {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            m.add_answer(Record::from_rdata(q.clone(), 60, RData::A(A(ip))));
        }
        let zone: Name = "big.example.".parse().unwrap();
        for i in 0..ns {
            let host: Name = format!("ns{i}.big.example.").parse().unwrap();
            m.add_authority(Record::from_rdata(
                zone.clone(),
                60,
                RData::NS(NS(host.clone())),
            ));
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            m.add_additional(Record::from_rdata(host, 60, RData::A(A(ip))));
        }
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e.set_dnssec_ok(true);
            m.set_edns(e);
        }
        m
    }

    #[test]
    fn a_reply_within_the_bounds_decodes_as_hickory_decodes_it() {
        for (ns, answers, edns) in [(0, 1, true), (13, 0, true), (20, 3, false), (80, 576, true)] {
            let wire = reply(ns, answers, edns).to_vec().unwrap();
            assert_eq!(decode(&wire).unwrap(), Message::from_vec(&wire).unwrap());
        }
    }

    #[test]
    fn a_huge_reply_keeps_what_the_scrubber_can_use_and_its_opt() {
        let zone: Name = "example.".parse().unwrap();
        let qname: Name = "www.big.example.".parse().unwrap();
        let wire = reply(1000, 0, true).to_vec().unwrap();
        assert!(wire.len() > 30_000, "{} bytes", wire.len());
        let capped = decode(&wire).unwrap();
        let whole = Message::from_vec(&wire).unwrap();
        assert_eq!(capped.authorities.len(), DECODED[1]);
        // (hickory's encoder stops adding glue at 64 KiB.)
        assert_eq!(
            capped.additionals.len(),
            whole.additionals.len().min(DECODED[2])
        );
        assert_eq!(
            capped.edns, whole.edns,
            "the OPT record past the cap is read"
        );
        assert_eq!(capped.metadata, whole.metadata);
        assert_eq!(capped.queries, whole.queries);
        // The scrubber makes the same referral of either.
        let kind = |m: &Message| super::super::scrub::classify(m, &zone, &qname, RecordType::A);
        assert_eq!(kind(&capped), kind(&whole));
        // 4,000 answers: the RRset the scrubber keeps is the same.
        let wire = reply(0, 4000, true).to_vec().unwrap();
        let capped = decode(&wire).unwrap();
        assert_eq!(capped.answers.len(), DECODED[0]);
        let zone: Name = "big.example.".parse().unwrap();
        let kind = |m: &Message| super::super::scrub::classify(m, &zone, &qname, RecordType::A);
        assert_eq!(kind(&capped), kind(&Message::from_vec(&wire).unwrap()));
        // Cut anywhere, it is an error, never a panic.
        for cut in (0..wire.len()).step_by(997) {
            assert!(decode(&wire[..cut]).is_err() || cut == wire.len());
        }
    }
}
