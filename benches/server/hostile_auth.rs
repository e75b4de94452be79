//! A small authoritative hierarchy with hostile zones, for the flood benchmark
//! (`benches/server/flood.sh`). One process answers on 127.3.0.N, all on PORT (UDP
//! and TCP), by the address asked:
//!
//! - `.1`  the root (`ns.root.`): delegates `ok.` to .2, `slow.` to .3, `huge.` to .4, and `dead.`
//!   to ten servers on .10 to .19 that never answer (nothing listens there);
//! - `.2`  `ok.`: every name exists (A 192.0.2.1), at once;
//! - `.3`  `slow.`: every name exists, answered after SLOW_MS;
//! - `.4`  `huge.`: every name below it is delegated to 1,500 name servers with
//!   glue (all pointing back at .4), about 55 KB: over UDP it says TC, so each one
//!   comes over TCP; asked at the delegated zone, it delegates the same again. The
//!   reply is written straight to the wire (`huge_referral`), so that this server can
//!   answer every one of 2,000 such names a second and the flood measures fanzha,
//!   not this server.
//!
//! Usage: hostile_auth PORT SLOW_MS

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

const HUGE_NS: u32 = 1500;

/// `ns0` .. `ns1499`, the name servers' first labels.
static LABELS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (0..HUGE_NS).map(|i| format!("ns{i}")).collect());

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 3, 0, last)
}

fn a(owner: Name, last: u8) -> Record {
    Record::from_rdata(owner, 3600, RData::A(A(ip(last))))
}

fn ns(zone: &Name, host: Name) -> Record {
    Record::from_rdata(zone.clone(), 3600, RData::NS(NS(host)))
}

fn soa(zone: &Name) -> Record {
    let rd = SOA::new(
        name("ns.invalid."),
        name("h.invalid."),
        1,
        3600,
        600,
        86400,
        60,
    );
    Record::from_rdata(zone.clone(), 3600, RData::SOA(rd))
}

/// A delegation of `zone` to `hosts` (name, address) in `resp`.
fn refer(resp: &mut Message, zone: &Name, hosts: &[(Name, u8)]) {
    for (h, last) in hosts {
        resp.add_authority(ns(zone, h.clone()));
        resp.add_additional(a(h.clone(), *last));
    }
}

/// The answer of the server at 127.3.0.`last` to `q`.
fn answer(last: u8, q: &Message) -> Option<Message> {
    let query = q.queries.first()?.clone();
    let qname = query.name().to_lowercase();
    let mut resp = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    resp.add_query(query.clone());
    let tld = qname.trim_to(1);
    match last {
        // The apex: an NS set for priming (Unbound will not start without one).
        1 if qname.is_root() => {
            resp.metadata.authoritative = true;
            if query.query_type() == RecordType::NS {
                resp.add_answer(ns(&Name::root(), name("ns.root.")));
                resp.add_additional(a(name("ns.root."), 1));
            } else {
                resp.add_authority(soa(&Name::root()));
            }
        }
        1 => {
            let hosts: Vec<(Name, u8)> = match tld.to_ascii().as_str() {
                "ok." => vec![(name("ns.ok."), 2)],
                "slow." => vec![(name("ns.slow."), 3)],
                "huge." => vec![(name("ns.huge."), 4)],
                "dead." => (10..20)
                    .map(|i| (name(&format!("ns{i}.dead.")), i))
                    .collect(),
                _ => {
                    resp.metadata.authoritative = true;
                    resp.metadata.response_code = ResponseCode::NXDomain;
                    resp.add_authority(soa(&Name::root()));
                    return Some(resp);
                }
            };
            refer(&mut resp, &tld, &hosts);
        }
        2 | 3 => {
            resp.metadata.authoritative = true;
            if query.query_type() == RecordType::A {
                resp.add_answer(Record::from_rdata(
                    qname.clone(),
                    300,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
                ));
            } else {
                resp.add_authority(soa(&tld));
            }
        }
        _ => {
            resp.metadata.authoritative = true;
            resp.add_authority(soa(&tld));
        }
    }
    Some(resp)
}

fn serve_udp(last: u8, sock: UdpSocket, slow: Duration) {
    let mut buf = [0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(q) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let limit = q
            .edns
            .as_ref()
            .map_or(512, |e| usize::from(e.max_payload()).max(512));
        // `huge.`'s referral never fits: TC at once, without building it.
        let huge = last == 4 && child_of(&buf[..n]).is_some();
        let mut bytes = Vec::new();
        if !huge {
            let Some(resp) = answer(last, &q) else {
                continue;
            };
            bytes = resp.to_vec().unwrap_or_default();
        }
        if huge || bytes.len() > limit {
            let mut tc = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            tc.add_query(q.queries[0].clone());
            tc.metadata.truncation = true;
            bytes = tc.to_vec().unwrap_or_default();
        }
        if last == 3 {
            let late = sock.try_clone().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(slow);
                let _ = late.send_to(&bytes, peer);
            });
        } else {
            let _ = sock.send_to(&bytes, peer);
        }
    }
}

/// The offset of the question name's last two labels (the delegated child) in
/// `query`, and the end of its question section; None unless the name has at least
/// two labels and no compression.
fn child_of(query: &[u8]) -> Option<(usize, usize)> {
    let mut starts = Vec::new();
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        starts.push(at);
        at += 1 + len;
    }
    let end = at + 1 + 4;
    (starts.len() >= 2 && query.len() >= end).then(|| (starts[starts.len() - 2], end))
}

/// `huge.`'s reply to `query`, written to the wire: the question's last two labels
/// delegated to `ns0` .. `ns1499` below them, each with glue 127.3.0.4, the names
/// compressed against the question (about 55 KB, as a compressing encoder makes it).
/// None for a query it does not apply to.
fn huge_referral(query: &[u8]) -> Option<Vec<u8>> {
    let (child, qend) = child_of(query)?;
    let ptr = |off: usize| (0xC000 | off as u16).to_be_bytes();
    let mut out = Vec::with_capacity(65535);
    out.extend_from_slice(&query[..2]); // ID
    out.push(0x80 | (query[2] & 0x01)); // QR, opcode 0, RD as asked
    out.push(0);
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // counts, filled in below
    out.extend_from_slice(&query[12..qend]);
    let mut hosts = Vec::with_capacity(HUGE_NS as usize);
    for label in LABELS.iter() {
        out.extend_from_slice(&ptr(child));
        out.extend_from_slice(&[0, 2, 0, 1, 0, 0, 0x0e, 0x10]); // NS IN 3600
        out.extend_from_slice(&((label.len() + 3) as u16).to_be_bytes());
        hosts.push(out.len());
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(&ptr(child));
    }
    let mut glue = 0u16;
    for (i, host) in hosts.iter().enumerate() {
        // A pointer reaches only the first 16 KiB; past that, the label again.
        let owner = if *host < 0x4000 {
            ptr(*host).to_vec()
        } else {
            let label = &LABELS[i];
            let mut o = vec![label.len() as u8];
            o.extend_from_slice(label.as_bytes());
            o.extend_from_slice(&ptr(child));
            o
        };
        if out.len() + owner.len() + 14 > usize::from(u16::MAX) {
            break;
        }
        out.extend_from_slice(&owner);
        out.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 127, 3, 0, 4]);
        glue += 1;
    }
    out[8..10].copy_from_slice(&(HUGE_NS as u16).to_be_bytes());
    out[10..12].copy_from_slice(&glue.to_be_bytes());
    Some(out)
}

fn serve_tcp(last: u8, listener: TcpListener) {
    for s in listener.incoming() {
        let Ok(mut s) = s else { continue };
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            loop {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    return;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut q).is_err() {
                    return;
                }
                let huge = if last == 4 { huge_referral(&q) } else { None };
                let Some(bytes) = huge.or_else(|| {
                    let resp = Message::from_vec(&q).ok().and_then(|q| answer(last, &q))?;
                    resp.to_vec().ok()
                }) else {
                    return;
                };
                let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&bytes);
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        });
    }
}

/// A TCP listener with room for a burst of connections (std's backlog of 128 drops
/// SYNs under 2,000 referrals a second, and the resolver then sees timeouts, not
/// the huge referral this server is for).
fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(8192)?;
    Ok(s.into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).expect("PORT");
    let slow = Duration::from_millis(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(300));
    let mut threads = Vec::new();
    for last in 1..=4u8 {
        let addr = SocketAddr::new(IpAddr::V4(ip(last)), port);
        let udp = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let tcp = listener(addr).unwrap_or_else(|e| panic!("bind {addr}/tcp: {e}"));
        threads.push(std::thread::spawn(move || serve_udp(last, udp, slow)));
        threads.push(std::thread::spawn(move || serve_tcp(last, tcp)));
    }
    eprintln!("hostile_auth: serving on 127.3.0.1-4 port {port}");
    for t in threads {
        let _ = t.join();
    }
}
