//! Small clients: DNS over UDP and TCP, raw packets, and plain HTTP/1.1.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

/// An HTTP response as read off the socket.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send raw request bytes, read the response until the server closes.
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A GET with a given Host header.
pub fn http_get_host(addr: SocketAddr, host: &str, path: &str) -> HttpResponse {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Minimal HTTP/1.1 GET.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Build a query.
pub fn make_query(qname: &str, t: RecordType, edns: bool) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    // from_ascii keeps the case as written (from_str would lower-case via IDNA).
    m.add_query(Query::query(Name::from_ascii(qname).unwrap(), t));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m
}

fn rand_id() -> u16 {
    static N: AtomicU32 = AtomicU32::new(1);
    (N.fetch_add(7919, Ordering::Relaxed) ^ std::process::id()) as u16
}

/// Send a query over UDP from `from` (an address on loopback) and wait for the answer.
pub fn udp_from(
    from: IpAddr,
    server: SocketAddr,
    msg: &Message,
    timeout: Duration,
) -> Option<Message> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.send_to(&msg.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 65535];
    loop {
        let (n, _) = s.recv_from(&mut buf).ok()?;
        let m = Message::from_vec(&buf[..n]).ok()?;
        if m.metadata.id == msg.metadata.id {
            return Some(m);
        }
    }
}

/// `msg` over UDP from 127.0.0.1, its answer within 5 s (panics without one).
pub fn ask(server: SocketAddr, msg: &Message) -> Message {
    udp_from(
        "127.0.0.1".parse().unwrap(),
        server,
        msg,
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no UDP answer for {:?}", msg.queries))
}

/// UDP query from 127.0.0.1.
pub fn udp(server: SocketAddr, qname: &str, t: RecordType) -> Message {
    udp_from(
        "127.0.0.1".parse().unwrap(),
        server,
        &make_query(qname, t, true),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no UDP answer for {qname} {t}"))
}

/// A raw UDP exchange.
pub fn udp_raw(server: SocketAddr, packet: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.send_to(packet, server).unwrap();
    let mut buf = [0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// TCP query.
pub fn tcp(server: SocketAddr, msg: &Message) -> Message {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let b = msg.to_vec().unwrap();
    s.write_all(&(b.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&b).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    Message::from_vec(&resp).unwrap()
}

/// The addresses in the answer section, in order.
pub fn ips(m: &Message) -> Vec<std::net::IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
            hickory_proto::rr::RData::AAAA(a) => Some(std::net::IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}
