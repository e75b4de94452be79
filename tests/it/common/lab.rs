//! A programmable authoritative hierarchy on loopback for recursion tests: zones
//! written as text, served by small hand-written servers on 127.X.Y.n, each of which
//! can misbehave in one way (lame, silent, wrong types, duplicates, oversize UDP…),
//! and a log of every query each server received.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::fanzha::Fanzha;
use super::hierarchy::{fresh_net, soa};

/// How a server misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A correct authoritative server.
    Normal,
    /// REFUSED for everything (a lame server).
    Refused,
    /// SERVFAIL for everything.
    Servfail,
    /// Never answers.
    Silent,
    /// Answers NOERROR without AA, with an upward referral to the root (lame).
    UpwardReferral,
    /// Adds an A record to every AAAA answer (wrong type).
    WrongType,
    /// Sends every answer record twice.
    Duplicates,
    /// Over UDP, sends answers larger than the query's buffer without TC.
    OversizeUdp,
    /// Adds an out-of-bailiwick A record (for `poison.invalid.`) to answers, and
    /// glue for a name outside the zone to referrals.
    Poison,
    /// Answers every query with a referral to itself for the queried zone.
    SelfReferral,
    /// A correct server whose UDP answers leave 100 ms late (so that queries overlap).
    Slow,
    /// A correct server whose UDP answers leave 2 s late (longer than any timeout).
    VerySlow,
    /// Referrals carry this many extra NS records (`nsK.<child>`), each with glue
    /// pointing at the referral's first glue address: over UDP the answer is
    /// truncated, so it comes over TCP, up to 64 KiB.
    HugeReferral(u16),
    /// Answers to A queries carry this many distinct A records (over TCP).
    HugeRrset(u16),
    /// Every name in the zone exists, with an A record (a wildcard's effect): a
    /// random-subdomain flood's names all resolve, so none is cached negatively.
    AnswerAll,
}

/// A name server of the lab: its last address octet, the zones it serves, its mode.
pub struct Server {
    pub last: u8,
    pub zones: Vec<String>,
    pub mode: Mode,
}

impl Server {
    pub fn new(last: u8, zones: &[&str], mode: Mode) -> Server {
        Server {
            last,
            zones: zones.iter().map(|z| z.to_string()).collect(),
            mode,
        }
    }
}

/// One query a server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub server: u8,
    pub name: String,
    pub qtype: RecordType,
    pub tcp: bool,
}

/// The running lab.
pub struct Lab {
    pub net: [u8; 3],
    pub port: u16,
    log: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    modes: Arc<Mutex<HashMap<u8, Mode>>>,
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

/// Zone data: owner → records, from lines `owner TYPE data` (`@` is the origin,
/// relative owners get the origin appended). TTL 300, or N with `TYPE/N` (`A/2`); an
/// SOA is added.
struct Zone {
    origin: Name,
    records: Vec<Record>,
}

impl Zone {
    fn parse(origin: &str, text: &str, ip: &dyn Fn(u8) -> Ipv4Addr) -> Zone {
        let origin = name(origin);
        let abs = |s: &str| -> Name {
            if s == "@" {
                origin.clone()
            } else if s.ends_with('.') {
                name(s)
            } else {
                name(s).append_domain(&origin).unwrap()
            }
        };
        let mut records = vec![soa(&origin.to_ascii())];
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let mut it = line.splitn(3, ' ');
            let (owner, t, data) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            let (t, ttl) = match t.split_once('/') {
                Some((t, ttl)) => (t, ttl.parse().unwrap()),
                None => (t, 300),
            };
            let rd = match t {
                "A" => RData::A(A(data.parse().unwrap())),
                // `LAB n`: the lab's own address 127.X.Y.n.
                "LAB" => RData::A(A(ip(data.parse().unwrap()))),
                "AAAA" => RData::AAAA(AAAA(data.parse().unwrap())),
                "NS" => RData::NS(NS(abs(data))),
                "CNAME" => RData::CNAME(CNAME(abs(data))),
                "DNAME" => {
                    fanzha::dns::resolve::iterate::scrub::dname_record(abs(owner), 300, &abs(data))
                        .data
                }
                "TXT" => RData::TXT(TXT::new(vec![data.to_string()])),
                other => panic!("lab zone: unknown type {other}"),
            };
            records.push(Record::from_rdata(abs(owner), ttl, rd));
        }
        Zone { origin, records }
    }

    fn at(&self, n: &Name) -> impl Iterator<Item = &Record> {
        let n = n.clone();
        self.records.iter().filter(move |r| r.name == n)
    }

    fn soa(&self) -> Record {
        self.records[0].clone()
    }

    fn exists(&self, n: &Name) -> bool {
        self.records.iter().any(|r| n.zone_of(&r.name))
    }

    /// The answer of this zone for `q`, authoritative data only.
    fn answer(&self, qname: &Name, qtype: RecordType, resp: &mut Message) {
        // A delegation between the origin and the name: the highest cut wins.
        let extra = qname.num_labels() - self.origin.num_labels();
        for k in 1..=extra {
            let cut = qname.trim_to((self.origin.num_labels() + k) as usize);
            let ns: Vec<Record> = self
                .at(&cut)
                .filter(|r| r.record_type() == RecordType::NS)
                .cloned()
                .collect();
            if ns.is_empty() {
                continue;
            }
            if cut == *qname && qtype == RecordType::DS {
                break;
            }
            for r in &ns {
                if let RData::NS(t) = &r.data {
                    for g in self
                        .at(&t.0)
                        .filter(|g| matches!(g.record_type(), RecordType::A | RecordType::AAAA))
                    {
                        resp.add_additional(g.clone());
                    }
                }
            }
            resp.insert_authorities(ns);
            return;
        }
        resp.metadata.authoritative = true;
        // DNAME at an ancestor (below or at the origin).
        for k in 0..extra {
            let anc = qname.trim_to((self.origin.num_labels() + k) as usize);
            if let Some(d) = self.at(&anc).find(|r| r.record_type() == RecordType::DNAME) {
                let t = fanzha::dns::resolve::iterate::scrub::dname_target(d).unwrap();
                resp.add_answer(d.clone());
                let prefix = Name::from_labels(
                    qname
                        .iter()
                        .take((qname.num_labels() - anc.num_labels()) as usize),
                )
                .unwrap();
                let target = prefix.append_domain(&t).unwrap();
                resp.add_answer(Record::from_rdata(
                    qname.clone(),
                    300,
                    RData::CNAME(CNAME(target)),
                ));
                return;
            }
        }
        let mut cur = qname.clone();
        for _ in 0..8 {
            let here: Vec<&Record> = self.at(&cur).collect();
            let hits: Vec<Record> = here
                .iter()
                .filter(|r| r.record_type() == qtype)
                .map(|r| (*r).clone())
                .collect();
            if !hits.is_empty() {
                resp.insert_answers(hits);
                return;
            }
            if let Some(c) = here.iter().find(|r| r.record_type() == RecordType::CNAME) {
                resp.add_answer((*c).clone());
                let RData::CNAME(t) = &c.data else {
                    unreachable!()
                };
                if !self.origin.zone_of(&t.0) {
                    return;
                }
                cur = t.0.clone();
                continue;
            }
            if !self.exists(&cur) {
                resp.metadata.response_code = ResponseCode::NXDomain;
            }
            resp.add_authority(self.soa());
            return;
        }
    }
}

impl Lab {
    pub fn ip(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], last)
    }

    /// Start servers serving `zones` (origin, text) as `servers` say; server `10` is
    /// the root hint and must serve `.`.
    pub fn start(zones: &[(&str, &str)], servers: Vec<Server>) -> Lab {
        let net = fresh_net();
        let ip = move |l: u8| Ipv4Addr::new(net[0], net[1], net[2], l);
        let parsed: Arc<Vec<Zone>> =
            Arc::new(zones.iter().map(|(o, t)| Zone::parse(o, t, &ip)).collect());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let modes = Arc::new(Mutex::new(HashMap::new()));
        // One port on every server address, UDP and TCP.
        let (port, socks) = 'found: loop {
            let first = UdpSocket::bind((ip(servers[0].last), 0)).unwrap();
            let p = first.local_addr().unwrap().port();
            let mut socks = Vec::new();
            for (i, s) in servers.iter().enumerate() {
                let u = if i == 0 {
                    first.try_clone().unwrap()
                } else {
                    match UdpSocket::bind((ip(s.last), p)) {
                        Ok(u) => u,
                        Err(_) => continue 'found,
                    }
                };
                let Ok(t) = TcpListener::bind((ip(s.last), p)) else {
                    continue 'found;
                };
                socks.push((u, t));
            }
            break (p, socks);
        };
        for (s, (udp, tcp)) in servers.into_iter().zip(socks) {
            modes.lock().unwrap().insert(s.last, s.mode);
            let served: Vec<Name> = s.zones.iter().map(|z| name(z)).collect();
            let ctx = Arc::new(Ctx {
                last: s.last,
                served,
                zones: parsed.clone(),
                log: log.clone(),
                modes: modes.clone(),
            });
            udp.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            {
                let (ctx, stop) = (ctx.clone(), stop.clone());
                std::thread::spawn(move || serve_udp(udp, ctx, stop));
            }
            tcp.set_nonblocking(true).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || serve_tcp(tcp, ctx, stop));
        }
        Lab {
            net,
            port,
            log,
            stop,
            modes,
        }
    }

    /// The root (10) delegates `test.` to 11, whose zone is `test_zone`; `zones` are
    /// served as `servers` say.
    pub fn under_test(test_zone: &str, zones: &[(&str, &str)], servers: Vec<Server>) -> Lab {
        let root = "test. NS ns1.nic.\nns1.nic. LAB 11\n";
        let mut all: Vec<(&str, &str)> = vec![(".", root), ("test.", test_zone)];
        all.extend_from_slice(zones);
        let mut s = vec![
            Server::new(10, &["."], Mode::Normal),
            Server::new(11, &["test."], Mode::Normal),
        ];
        s.extend(servers);
        Lab::start(&all, s)
    }

    /// A fanzha on this lab (blocking `blocked.invalid`), with `resolver` lines added
    /// to its `[resolver]` section (a `timeout_ms` there replaces the lab's 200) and
    /// `more` (other sections) after it.
    pub fn fanzha(&self, resolver: &str, more: &str) -> (tempfile::TempDir, Fanzha) {
        let mut base = self.resolver_toml();
        if resolver.contains("timeout_ms") {
            base = base.replace("timeout_ms = 200\n", "");
        }
        let dir = tempfile::tempdir().unwrap();
        let lists = dir.path().join("lists");
        std::fs::create_dir_all(&lists).unwrap();
        std::fs::write(lists.join("l.txt"), "blocked.invalid\n").unwrap();
        let toml = format!(
            "[blocklist]\ndirs = [\"{}\"]\nallow_dirs = []\n{}{more}",
            lists.display(),
            base.replace("[resolver]\n", &format!("[resolver]\n{resolver}"))
        );
        let f = Fanzha::start(dir.path(), &toml);
        (dir, f)
    }

    /// Change how server `last` behaves from now on.
    pub fn set_mode(&self, last: u8, mode: Mode) {
        self.modes.lock().unwrap().insert(last, mode);
    }

    /// Config lines pointing a recursive fanzha at this lab.
    pub fn resolver_toml(&self) -> String {
        format!(
            "[resolver]\nmode = \"recursive\"\nroot_hints = [\"{}:{}\"]\nallow_nameservers = [\"127.0.0.0/8\"]\ntimeout_ms = 200\n\
             [[resolver.nameserver_ports]]\ncidr = \"{}.{}.{}.0/24\"\nport = {}\n",
            self.ip(10),
            self.port,
            self.net[0],
            self.net[1],
            self.net[2],
            self.port
        )
    }

    /// Every query received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Ctx {
    last: u8,
    served: Vec<Name>,
    zones: Arc<Vec<Zone>>,
    log: Arc<Mutex<Vec<Seen>>>,
    modes: Arc<Mutex<HashMap<u8, Mode>>>,
}

impl Ctx {
    fn mode(&self) -> Mode {
        self.modes.lock().unwrap()[&self.last]
    }
}

impl Ctx {
    /// The reply to `packet` (None: stay silent), and whether it may exceed the
    /// query's buffer over UDP.
    fn reply(&self, packet: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let q = Message::from_vec(packet).ok()?;
        let query = q.queries.first()?.clone();
        let qname = query.name().to_lowercase();
        let qtype = query.query_type();
        self.log.lock().unwrap().push(Seen {
            server: self.last,
            name: qname.to_ascii(),
            qtype,
            tcp,
        });
        let mode = self.mode();
        let mut resp = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        resp.add_query(query.clone());
        resp.metadata.recursion_desired = q.metadata.recursion_desired;
        let limit = q
            .edns
            .as_ref()
            .map(|e| e.max_payload().max(512) as usize)
            .unwrap_or(512);
        if let Some(e) = &q.edns {
            let mut ed = Edns::new();
            ed.set_max_payload(1232);
            ed.set_dnssec_ok(e.flags().dnssec_ok);
            resp.set_edns(ed);
        }
        match mode {
            Mode::Silent => return None,
            Mode::Refused => {
                resp.metadata.response_code = ResponseCode::Refused;
                return resp.to_vec().ok();
            }
            Mode::Servfail => {
                resp.metadata.response_code = ResponseCode::ServFail;
                return resp.to_vec().ok();
            }
            Mode::UpwardReferral => {
                resp.add_authority(Record::from_rdata(
                    Name::root(),
                    300,
                    RData::NS(NS(name("a.root.invalid."))),
                ));
                return resp.to_vec().ok();
            }
            _ => {}
        }
        let zone = self
            .served
            .iter()
            .filter(|z| z.zone_of(&qname))
            .max_by_key(|z| z.num_labels())
            .and_then(|z| self.zones.iter().find(|d| d.origin == *z));
        let Some(zone) = zone else {
            resp.metadata.response_code = ResponseCode::Refused;
            return resp.to_vec().ok();
        };
        if mode == Mode::SelfReferral {
            resp.add_authority(Record::from_rdata(
                zone.origin.clone(),
                300,
                RData::NS(NS(name(&format!("ns{}.self.invalid.", self.last)))),
            ));
            return resp.to_vec().ok();
        }
        zone.answer(&qname, qtype, &mut resp);
        match mode {
            Mode::HugeReferral(n) if !resp.metadata.authoritative => {
                let child = resp.authorities.first().map(|r| r.name.clone());
                let glue = resp.additionals.first().map(|r| r.data.clone());
                if let (Some(child), Some(glue)) = (child, glue) {
                    for k in 0..n {
                        let ns = name(&format!("ns{k}.{child}"));
                        resp.add_authority(Record::from_rdata(
                            child.clone(),
                            300,
                            RData::NS(NS(ns.clone())),
                        ));
                        resp.add_additional(Record::from_rdata(ns, 300, glue.clone()));
                    }
                }
            }
            Mode::HugeRrset(n) if qtype == RecordType::A && !resp.answers.is_empty() => {
                resp.answers.clear();
                for k in 0..u32::from(n) {
                    let ip = Ipv4Addr::from(0x0a00_0000 + k);
                    resp.add_answer(Record::from_rdata(qname.clone(), 300, RData::A(A(ip))));
                }
            }
            Mode::AnswerAll
                if qtype == RecordType::A
                    && resp.answers.is_empty()
                    && resp.metadata.authoritative =>
            {
                resp.metadata.response_code = ResponseCode::NoError;
                resp.authorities.clear();
                resp.add_answer(Record::from_rdata(
                    qname.clone(),
                    300,
                    RData::A(A("192.0.2.7".parse().unwrap())),
                ));
            }
            Mode::WrongType if qtype == RecordType::AAAA => {
                resp.add_answer(Record::from_rdata(
                    qname.clone(),
                    300,
                    RData::A(A("192.0.2.200".parse().unwrap())),
                ));
            }
            Mode::Duplicates => {
                let again = resp.answers.clone();
                resp.answers.extend(again);
            }
            Mode::Poison => {
                if resp.answers.is_empty() {
                    resp.add_additional(Record::from_rdata(
                        name("ns.poison.invalid."),
                        300,
                        RData::A(A("192.0.2.250".parse().unwrap())),
                    ));
                } else {
                    resp.add_answer(Record::from_rdata(
                        name("poison.invalid."),
                        300,
                        RData::A(A("192.0.2.250".parse().unwrap())),
                    ));
                }
            }
            _ => {}
        }
        let bytes = resp.to_vec().ok()?;
        if tcp || bytes.len() <= limit || mode == Mode::OversizeUdp {
            return Some(bytes);
        }
        // Truncated as a correct server does.
        let mut tc = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        tc.add_query(query);
        tc.metadata.truncation = true;
        tc.metadata.authoritative = resp.metadata.authoritative;
        tc.to_vec().ok()
    }
}

fn serve_udp(sock: UdpSocket, ctx: Arc<Ctx>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Some(r) = ctx.reply(&buf[..n], false) else {
            continue;
        };
        let delay = match ctx.mode() {
            Mode::Slow => Some(Duration::from_millis(100)),
            Mode::VerySlow => Some(Duration::from_secs(2)),
            _ => None,
        };
        if let Some(delay) = delay
            && let Ok(late) = sock.try_clone()
        {
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let _ = late.send_to(&r, peer);
            });
        } else {
            let _ = sock.send_to(&r, peer);
        }
    }
}

fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut s, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            loop {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    return;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut q).is_err() {
                    return;
                }
                let Some(r) = ctx.reply(&q, true) else {
                    return;
                };
                let mut out = (r.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&r);
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        });
    }
}
