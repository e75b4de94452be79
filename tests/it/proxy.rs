//! The PROXY protocol v2 from a `[server] proxy_from` sender, over real UDP and TCP
//! sockets: the client it names is the one the ACL, the places and the metrics see;
//! from anyone else a header is not trusted.

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::common::*;
use fanzha::dns::listen::proxy;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

fn start(h: &Hierarchy, dir: &std::path::Path) -> Fanzha {
    let toml = format!(
        "{}{}[server]\nproxy_from = [\"127.0.0.1/32\"]\nacl = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n\
         [[places]]\ncidr = \"10.9.0.0/16\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\n",
        lists_toml(dir),
        h.resolver_toml()
    );
    Fanzha::start(dir, &toml)
}

fn blocked_in(f: &Fanzha, street: &str) -> f64 {
    let (_, body) = f.http_get("/metrics");
    body.lines()
        .filter(|l| {
            l.starts_with("fanzha_blocked_total{") && l.contains(&format!("street=\"{street}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Send `packet` over UDP from `from` (a loopback address) and wait for an answer.
fn send_udp(from: &str, to: SocketAddr, packet: &[u8]) -> Option<Message> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s.send_to(packet, to).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).ok()?;
    Some(Message::from_vec(&buf[..n]).unwrap())
}

#[test]
fn the_client_a_trusted_balancer_names_is_the_one_fanzha_sees() {
    let h = Hierarchy::start();
    let dir = tempfile::tempdir().unwrap();
    let f = start(&h, dir.path());
    let q = make_query("x.blocked.example.test.", RecordType::A, false)
        .to_vec()
        .unwrap();
    let resident: SocketAddr = "10.9.1.2:40000".parse().unwrap();

    // UDP: a header naming a resident in 西兴街道.
    let mut p = proxy::encode(resident, f.dns, true);
    p.extend_from_slice(&q);
    let m = send_udp("127.0.0.1", f.dns, &p).expect("an answer to the balancer");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(blocked_in(&f, "西兴街道"), 1.0);

    // TCP: one header, then any number of queries, all for that resident.
    let mut t = std::net::TcpStream::connect(f.dns).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    t.write_all(&proxy::encode(resident, f.dns, false)).unwrap();
    for _ in 0..2 {
        t.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
        t.write_all(&q).unwrap();
        let mut len = [0u8; 2];
        t.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        t.read_exact(&mut buf).unwrap();
        assert_eq!(
            Message::from_vec(&buf).unwrap().metadata.response_code,
            ResponseCode::NoError
        );
    }
    assert_eq!(blocked_in(&f, "西兴街道"), 3.0);

    // A resident outside the ACL, named by the balancer: refused, as if it asked itself.
    let mut p = proxy::encode("203.0.113.5:1000".parse().unwrap(), f.dns, true);
    p.extend_from_slice(&q);
    let m = send_udp("127.0.0.1", f.dns, &p).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    // The balancer without a header: not answered (it always sends one).
    assert!(send_udp("127.0.0.1", f.dns, &q).is_none());

    // Anyone else cannot claim an address: from 127.0.0.2 a header is not DNS.
    let mut p = proxy::encode(resident, f.dns, true);
    p.extend_from_slice(&q);
    let m = send_udp("127.0.0.2", f.dns, &p);
    assert!(m.is_none_or(|m| m.metadata.response_code != ResponseCode::NoError));
    let m = send_udp("127.0.0.2", f.dns, &q).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(blocked_in(&f, "西兴街道"), 3.0, "127.0.0.2 is in no place");
}
