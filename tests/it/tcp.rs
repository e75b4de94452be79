//! DNS over TCP on a hostile network: connections from outside the ACL, clients that
//! hold connections open with frames that get no answer, and one address opening
//! many. An allowed client must still get its answer.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::*;
use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::RecordType;
use socket2::{Domain, Socket, Type};

/// A TCP connection to `server` from `from`.
fn connect_from(from: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect_timeout(&server.into(), Duration::from_secs(3))?;
    Ok(s.into())
}

/// True when the server closed `s` (EOF or reset) within `wait`.
fn closed_within(mut s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 512];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// A frame that gets no answer: a DNS *response* (QR=1).
fn drip_frame() -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    let b = m.to_vec().unwrap();
    let mut f = (b.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(&b);
    f
}

fn ip(a: u8, b: u8) -> IpAddr {
    IpAddr::from([127, 0, a, b])
}

#[test]
fn tcp_slots_cannot_be_held_by_drippers_or_clients_outside_the_acl() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nacl = [\"127.0.0.1/32\", \"127.0.1.0/24\"]\ntcp_idle_timeout = 2\n{}[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n",
        lists_toml(dir.path())
    );
    let f = Fanzha::start(dir.path(), &toml);

    // Outside the ACL: closed at once.
    let outside: Vec<TcpStream> = (1..=100)
        .flat_map(|b| (0..3).map(move |_| ip(2, b)))
        .map(|from| connect_from(from, f.dns).unwrap())
        .collect();
    for s in &outside {
        assert!(
            closed_within(s, Duration::from_secs(1)),
            "a connection from outside the ACL stayed open"
        );
    }

    // 1,100 allowed connections that drip responses (no answer) every 300 ms: more
    // than the 1,024 slots, fewer than 16 per address.
    let mut drippers: Vec<TcpStream> = (1..=100)
        .flat_map(|b| (0..11).map(move |_| ip(1, b)))
        .filter_map(|from| connect_from(from, f.dns).ok())
        .collect();
    assert!(drippers.len() >= 1_024, "only {} connected", drippers.len());
    let frame = drip_frame();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        for s in &mut drippers {
            let _ = s.write_all(&frame);
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    // Past the idle limit, an allowed client gets its answer within a second.
    let t = Instant::now();
    let m = tcp(
        f.dns,
        &make_query("blocked.example.test.", RecordType::A, false),
    );
    assert_eq!(m.answers.len(), 1);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "answered after {:?}",
        t.elapsed()
    );
    // …because the drippers were closed, frames or not.
    let open = drippers
        .iter()
        .filter(|s| !closed_within(s, Duration::from_millis(10)))
        .count();
    assert_eq!(open, 0, "{open} dripping connections still open");

    // One address gets 16 connections; the 17th and later are closed at once.
    let many: Vec<TcpStream> = (0..20)
        .map(|_| connect_from(ip(1, 200), f.dns).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let closed = many
        .iter()
        .filter(|s| closed_within(s, Duration::from_millis(20)))
        .count();
    assert_eq!(
        closed,
        4,
        "of 20 connections from one address, {closed} were closed\n{}",
        f.log_text()
    );

    // The refusals are in the log, but not one line each.
    let lines = f
        .log_text()
        .lines()
        .filter(|l| l.contains("TCP connection"))
        .count();
    assert!(lines <= 6, "{lines} log lines about refused connections");
}

#[test]
fn a_busy_connection_is_closed_between_queries_once_it_reaches_tcp_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fanzha::start(
        dir.path(),
        &format!(
            "[server]\ntcp_idle_timeout = 30\ntcp_max_age = 2\n{}[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n",
            lists_toml(dir.path())
        ),
    );
    let q = make_query("www.blocked.example.test.", RecordType::A, false)
        .to_vec()
        .unwrap();
    let mut frame = (q.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&q);
    let mut s = TcpStream::connect(f.dns).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let mut answered = 0;
    // A query every 200 ms keeps it from ever being idle; its age still ends it.
    while t.elapsed() < Duration::from_secs(6) {
        if s.write_all(&frame).is_err() {
            break;
        }
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            break;
        }
        let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut resp).unwrap();
        answered += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let age = t.elapsed();
    assert!(
        age >= Duration::from_secs(2) && age < Duration::from_secs(4),
        "closed after {age:?}"
    );
    assert!(
        answered >= 8,
        "every query before that was answered: {answered}"
    );
}
