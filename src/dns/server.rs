//! The DNS listeners and the per-query engine that ties policy, blocklist, resolver
//! and metrics together.
//!
//! UDP: one receive loop per socket, batched with recvmmsg/sendmmsg; answers fanzha synthesises (blocked names,
//! refusals, errors) are sent from the loop itself, so a blocked query costs no task,
//! no allocation and no resolver work; queries to resolve get a task each.
//! TCP: one task per connection, frames answered in order, idle connections closed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use std::os::fd::AsRawFd;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cache::AnswerCache;
use super::resolve::{Backend, Resolved};
use super::udp_batch::{RecvBatch, SendBatch};
use super::wire::{self, Query, rcode};
use crate::blocklist::{Handle, Verdict};
use crate::metrics::Metrics;
use crate::policy::{BlockInfo, Decision, Outcome, Policy, RateLimiter};
use crate::report::pipeline::{Input, Reporter};

/// Everything a query needs; shared by every listener.
pub struct Engine {
    /// Current policy (swapped on SIGHUP).
    pub policy: ArcSwap<Policy>,
    /// Current rate limiter (swapped on SIGHUP).
    pub limiter: ArcSwap<RateLimiter>,
    /// Current blocklist.
    pub lists: Arc<Handle>,
    /// The resolver.
    pub backend: Backend,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Longest a resolution may take before SERVFAIL.
    pub deadline: Duration,
    /// Encoded answers of resolved names.
    pub cache: AnswerCache,
    /// Hit reporting (`None`: off).
    pub reporter: Option<Reporter>,
    /// Client subnets → places (the `street` label of blocked_total).
    pub places: ArcSwap<crate::places::Places>,
}

impl Engine {
    fn decide(&self, packet: &[u8], client: IpAddr, tcp: bool, buf: &mut Vec<u8>) -> Decision {
        let list = self.lists.load();
        let now = Instant::now();
        let mut d =
            self.policy
                .load()
                .decide(packet, client, &list, &self.limiter.load(), now, buf);
        // Cached answers are sent from the receive loop, like blocked ones. The list
        // was checked first: a cached name that is now blocked never gets here.
        if let Decision::Resolve(q) = &d
            && self.cache.get(packet, q, self.lists.generation(), now, buf)
        {
            self.metrics.cache_hits.inc();
            if !tcp && buf.len() > q.udp_limit() {
                wire::truncate(buf, q.question_end, q.edns);
            }
            d = Decision::Answer(Outcome::Allowed);
        }
        match &d {
            Decision::Answer(o) | Decision::Drop(o) => self.metrics.query(*o),
            Decision::Block(q, info) => {
                if let Some(r) = &self.reporter {
                    self.report(r, packet, q, client, &list, info);
                }
                self.metrics.query(Outcome::Blocked);
                let places = self.places.load();
                let street = places.lookup(client).street.as_str();
                self.metrics
                    .blocked
                    .with_label_values(&[list.category(&info.hit), street])
                    .inc();
            }
            Decision::Resolve(_) => {}
        }
        d
    }

    /// Hand a blocked query to the reporter (never waits).
    fn report(
        &self,
        r: &Reporter,
        packet: &[u8],
        q: &Query,
        client: IpAddr,
        list: &Arc<crate::blocklist::Blocklist>,
        info: &BlockInfo,
    ) {
        let name = q.name_lower(packet);
        let rule = info.hit.rule(&name).to_string();
        r.send(Input::Hit(Box::new(crate::report::pipeline::Hit {
            client,
            name,
            qtype: q.qtype,
            list: list.clone(),
            hit: info.hit,
            rule,
            action: info.action.as_str(),
            time: std::time::SystemTime::now(),
        })));
    }

    /// Resolve an admitted query and build its answer (CNAME inspection included).
    pub async fn answer(&self, packet: &[u8], q: &Query, client: IpAddr, tcp: bool) -> Vec<u8> {
        let mut buf = Vec::with_capacity(512);
        let generation = self.lists.generation();
        let (outcome, _info) = self.answer_into(packet, q, client, &mut buf).await;
        self.metrics.query(outcome);
        if outcome == Outcome::Allowed {
            self.cache.put(packet, q, generation, Instant::now(), &buf);
        }
        if !tcp && buf.len() > q.udp_limit() {
            wire::truncate(&mut buf, q.question_end, q.edns);
        }
        buf
    }

    async fn answer_into(
        &self,
        packet: &[u8],
        q: &Query,
        client: IpAddr,
        buf: &mut Vec<u8>,
    ) -> (Outcome, Option<BlockInfo>) {
        let req = match Message::from_vec(packet) {
            Ok(m) if m.queries.len() == 1 => m,
            _ => {
                wire::error_response(buf, packet, q.question_end, rcode::FORMERR, q.edns);
                return (Outcome::Malformed, None);
            }
        };
        let hq = req.queries[0].clone();
        let dnssec_ok = q.edns.map(|e| e.dnssec_ok).unwrap_or(false);
        let resolved = self
            .backend
            .resolve(
                hq.name().to_lowercase(),
                hq.query_type(),
                dnssec_ok,
                req.metadata.checking_disabled,
                self.deadline,
            )
            .await;
        // CNAME inspection: a chain through a blocked name is answered as blocked.
        let chain = match &resolved {
            Resolved::Answer { answers, .. } | Resolved::Negative { answers, .. } => {
                answers.as_slice()
            }
            Resolved::Failed(_) => &[],
        };
        if !chain.is_empty() {
            let list = self.lists.load();
            for r in chain {
                if let RData::CNAME(c) = &r.data {
                    let target = &c.0;
                    if let Verdict::Block(hit) =
                        list.lookup_labels(target.iter().rev(), target.num_labels() as usize)
                    {
                        let policy = self.policy.load();
                        let info = BlockInfo {
                            hit,
                            action: policy.action_for(&list, &hit),
                        };
                        policy.write_block(buf, packet, q, &list, &info, wire::HEADER_LEN);
                        let places = self.places.load();
                        let street = places.lookup(client).street.as_str();
                        self.metrics
                            .blocked
                            .with_label_values(&[list.category(&hit), street])
                            .inc();
                        if let Some(r) = &self.reporter {
                            // The rule is a suffix of the CNAME target, not of the query.
                            let t = target.to_ascii().to_ascii_lowercase();
                            let rule = info.hit.rule(&t).to_string();
                            r.send(Input::Hit(Box::new(crate::report::pipeline::Hit {
                                client,
                                name: q.name_lower(packet),
                                qtype: q.qtype,
                                list: arc_swap::Guard::into_inner(list),
                                hit,
                                rule,
                                action: info.action.as_str(),
                                time: std::time::SystemTime::now(),
                            })));
                        }
                        return (Outcome::BlockedCname, Some(info));
                    }
                }
            }
        }
        let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.metadata.checking_disabled = req.metadata.checking_disabled;
        resp.add_query(hq);
        let outcome = match resolved {
            Resolved::Answer {
                answers,
                authorities,
                authentic,
            } => {
                resp.metadata.authentic_data =
                    authentic && (dnssec_ok || req.metadata.authentic_data);
                resp.insert_answers(answers);
                resp.insert_authorities(authorities);
                Outcome::Allowed
            }
            Resolved::Negative {
                nxdomain,
                soa,
                answers,
            } => {
                resp.metadata.response_code = if nxdomain {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                resp.insert_answers(answers);
                if let Some(s) = soa {
                    resp.add_authority(*s);
                }
                Outcome::Allowed
            }
            Resolved::Failed(why) => {
                tracing::debug!(%why, "resolution failed");
                resp.metadata.response_code = ResponseCode::ServFail;
                Outcome::Servfail
            }
        };
        if let Some(e) = q.edns {
            let mut ed = Edns::new();
            ed.set_max_payload(wire::EDNS_PAYLOAD);
            ed.set_dnssec_ok(e.dnssec_ok);
            resp.set_edns(ed);
        }
        let resp = resp.maybe_strip_dnssec_records(dnssec_ok);
        match resp.to_vec() {
            Ok(v) => {
                *buf = v;
                (outcome, None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode an answer; SERVFAIL");
                wire::error_response(buf, packet, q.question_end, rcode::SERVFAIL, q.edns);
                (Outcome::Servfail, None)
            }
        }
    }

    /// Handle one packet from any transport; `None` means send nothing.
    pub async fn handle(&self, packet: &[u8], client: IpAddr, tcp: bool) -> Option<Vec<u8>> {
        let start = Instant::now();
        let mut buf = Vec::new();
        let out = match self.decide(packet, client, tcp, &mut buf) {
            Decision::Answer(_) | Decision::Block(..) => Some(buf),
            Decision::Drop(_) => None,
            Decision::Resolve(q) => Some(self.answer(packet, &q, client, tcp).await),
        };
        self.metrics
            .query_duration
            .observe(start.elapsed().as_secs_f64());
        out
    }
}

/// Most queries being resolved at once (per listener); past it new ones get SERVFAIL.
pub const MAX_IN_FLIGHT: usize = 20_000;

/// Serve DNS over UDP on `sock` until `shutdown`.
///
/// Datagrams are taken up to [`BATCH`](super::udp_batch::BATCH) per `recvmmsg`; the answers fanzha writes
/// itself (blocked, cached, refused) go back in one `sendmmsg` per batch, and
/// queries to resolve get a task each.
pub async fn run_udp(
    engine: Arc<Engine>,
    sock: Arc<UdpSocket>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let fd = sock.as_raw_fd();
    let mut rx = RecvBatch::default();
    let mut tx = SendBatch::default();
    loop {
        tokio::select! {
            r = sock.readable() => if let Err(e) = r {
                tracing::warn!(error = %e, "udp socket not readable");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            },
            _ = shutdown.cancelled() => break,
        }
        let n = match sock.try_io(Interest::READABLE, || rx.recv(fd)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // ICMP errors from earlier sends surface here; never fatal.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let start = Instant::now();
        tx.clear();
        for i in 0..n {
            let Some(peer) = rx.peer(i) else { continue };
            if rx.truncated(i) {
                engine.metrics.query(Outcome::Malformed);
                continue;
            }
            let packet = rx.packet(i);
            match engine.decide(packet, peer.ip(), false, tx.next_buf()) {
                Decision::Answer(_) | Decision::Block(..) => tx.push(i),
                Decision::Drop(_) => {}
                Decision::Resolve(q) if tasks.len() >= MAX_IN_FLIGHT => {
                    // A flood of uncached names must not grow memory without bound.
                    wire::error_response(
                        tx.next_buf(),
                        packet,
                        q.question_end,
                        wire::rcode::SERVFAIL,
                        q.edns,
                    );
                    engine.metrics.query(Outcome::Servfail);
                    tx.push(i);
                }
                Decision::Resolve(q) => {
                    let (engine, sock, packet) = (engine.clone(), sock.clone(), packet.to_vec());
                    tasks.spawn(async move {
                        let resp = engine.answer(&packet, &q, peer.ip(), false).await;
                        let _ = sock.send_to(&resp, peer).await;
                        engine
                            .metrics
                            .query_duration
                            .observe(start.elapsed().as_secs_f64());
                    });
                }
            }
        }
        let answered = tx.pending().count();
        send_all(&sock, fd, &mut tx, &rx).await;
        let took = start.elapsed().as_secs_f64();
        for _ in 0..answered {
            engine.metrics.query_duration.observe(took);
        }
    }
}

/// Send every queued answer: one `sendmmsg` normally; when the socket buffer is full
/// the rest wait for the socket one by one (back-pressure, as a single send would).
async fn send_all(sock: &UdpSocket, fd: std::os::fd::RawFd, tx: &mut SendBatch, rx: &RecvBatch) {
    while !tx.done() {
        match sock.try_io(Interest::WRITABLE, || tx.send(fd, rx)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let Some((buf, i)) = tx.pending().next() else {
                    return;
                };
                if let Some(peer) = rx.peer(i) {
                    let _ = sock.send_to(buf, peer).await;
                }
                tx.advance(1);
            }
            Err(e) => {
                // This answer cannot go (e.g. the client's address is unreachable);
                // the others still do.
                tracing::debug!(error = %e, "udp send error");
                tx.advance(1);
            }
        }
    }
}

/// Serve DNS over TCP on `listener` until `shutdown`.
pub async fn run_tcp(
    engine: Arc<Engine>,
    listener: TcpListener,
    idle: Duration,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let conns = Arc::new(tokio::sync::Semaphore::new(1024));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many TCP connections; closing this one");
            continue;
        };
        let (engine, shutdown) = (engine.clone(), shutdown.clone());
        tasks.spawn(async move {
            let _permit = permit;
            tcp_conn(engine, stream, peer, idle, shutdown).await;
        });
    }
}

async fn tcp_conn(
    engine: Arc<Engine>,
    mut stream: TcpStream,
    peer: SocketAddr,
    idle: Duration,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut frame = Vec::new();
    loop {
        let mut len = [0u8; 2];
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_exact(&mut len)) => r,
            _ = shutdown.cancelled() => return,
        };
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let n = u16::from_be_bytes(len) as usize;
        frame.resize(n, 0);
        if !matches!(
            tokio::time::timeout(idle, stream.read_exact(&mut frame)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Some(resp) = engine.handle(&frame, peer.ip(), true).await else {
            continue;
        };
        let mut out = Vec::with_capacity(resp.len() + 2);
        out.extend_from_slice(&(resp.len().min(65535) as u16).to_be_bytes());
        out.extend_from_slice(&resp[..resp.len().min(65535)]);
        if tokio::time::timeout(idle, stream.write_all(&out))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Qtypes worth naming in logs.
pub fn qtype_name(t: u16) -> String {
    RecordType::from(t).to_string()
}
