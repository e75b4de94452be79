//! A small authoritative hierarchy with hostile zones, for the flood benchmark
//! (`benches/server/flood.sh`). One process answers on 127.3.0.N, all on PORT (UDP
//! and TCP), by the address asked:
//!
//! - `.1`  the root: delegates `ok.` to .2, `slow.` to .3, `huge.` to .4, and `dead.`
//!   to ten servers on .10 to .19 that never answer (nothing listens there);
//! - `.2`  `ok.`: every name exists (A 192.0.2.1), at once;
//! - `.3`  `slow.`: every name exists, answered after SLOW_MS;
//! - `.4`  `huge.`: every name below it is delegated to 1,500 name servers with
//!   glue (all pointing back at .4), about 55 KB: over UDP it says TC, so each one
//!   comes over TCP; asked at the delegated zone, it delegates the same again.
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
        1 if qname.is_root() => {
            resp.metadata.authoritative = true;
            resp.add_authority(soa(&Name::root()));
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
        4 if qname.num_labels() >= 2 => {
            let child = qname.trim_to(2);
            let hosts: Vec<(Name, u8)> = (0..HUGE_NS)
                .map(|i| (name(&format!("ns{i}.{child}")), 4))
                .collect();
            refer(&mut resp, &child, &hosts);
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
        let Some(resp) = answer(last, &q) else {
            continue;
        };
        let limit = q
            .edns
            .as_ref()
            .map_or(512, |e| usize::from(e.max_payload()).max(512));
        let mut bytes = resp.to_vec().unwrap_or_default();
        if bytes.len() > limit {
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
                let Some(resp) = Message::from_vec(&q).ok().and_then(|q| answer(last, &q)) else {
                    return;
                };
                let bytes = resp.to_vec().unwrap_or_default();
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
