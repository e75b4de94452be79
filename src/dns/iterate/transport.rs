//! One query to one name server, over UDP (a fresh socket and a random ID each time)
//! or TCP. A UDP reply larger than the buffer we advertised, or one that does not
//! decode, is treated as truncated: the caller asks again over TCP.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

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
fn connected_udp(server: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(
        Domain::for_address(server),
        Type::DGRAM.nonblocking(),
        Some(Protocol::UDP),
    )?;
    s.connect(&server.into())?;
    UdpSocket::from_std(s.into())
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
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(name.clone(), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    Outgoing {
        id,
        packet: m.to_vec().unwrap_or_default(),
        name,
        qtype,
    }
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
        sock.send(&self.packet)
            .await
            .map_err(ExchangeError::Unreachable)?;
        // One byte more than advertised: a reply that fills it is larger than allowed
        // (the kernel cuts the rest) and is taken as truncated.
        let mut buf = [0u8; EDNS_PAYLOAD as usize + 1];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => return Err(ExchangeError::Timeout),
                // ICMP port unreachable and the like.
                Ok(Err(e)) => return Err(ExchangeError::Unreachable(e)),
                Ok(Ok(n)) => n,
            };
            let Ok(reply) = Message::from_vec(&buf[..n]) else {
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
            let reply =
                Message::from_vec(&buf).map_err(|e| ExchangeError::Malformed(e.to_string()))?;
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
