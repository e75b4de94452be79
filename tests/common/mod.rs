//! Test helpers: a local authoritative DNS hierarchy on loopback, the real `fanzha`
//! binary as a child process, and small DNS clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// A fresh 127.X.Y.0/24 for one test (tests run in parallel, in several binaries).
pub fn fresh_net() -> [u8; 3] {
    let n = NEXT_NET.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    [127, 100 + (pid % 100) as u8, (n % 250) as u8 + 1]
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

/// Record data in a compact form.
pub enum Rd {
    A(&'static str),
    Aaaa(&'static str),
    Cname(&'static str),
    Ns(&'static str),
    Txt(String),
    ADyn(Ipv4Addr),
    Raw(RData),
}

fn soa(origin: &str) -> Record {
    Record::from_rdata(
        name(origin),
        300,
        RData::SOA(SOA::new(
            name("ns.invalid."),
            name("hostmaster.invalid."),
            1,
            3600,
            600,
            86400,
            300,
        )),
    )
}

fn zone(origin: &str, records: &[(&str, Rd)]) -> InMemoryZoneHandler<TokioRuntimeProvider> {
    let mut z = InMemoryZoneHandler::empty(
        name(origin),
        ZoneType::Primary,
        AxfrPolicy::Deny,
        Some(hickory_server::dnssec::NxProofKind::Nsec),
    );
    z.upsert_mut(soa(origin), 1);
    for (owner, rd) in records {
        let data = match rd {
            Rd::A(ip) => RData::A(A(ip.parse().unwrap())),
            Rd::ADyn(ip) => RData::A(A(*ip)),
            Rd::Aaaa(ip) => RData::AAAA(AAAA(ip.parse::<Ipv6Addr>().unwrap())),
            Rd::Cname(t) => RData::CNAME(CNAME(name(t))),
            Rd::Ns(t) => RData::NS(NS(name(t))),
            Rd::Txt(t) => RData::TXT(TXT::new(vec![t.clone()])),
            Rd::Raw(r) => r.clone(),
        };
        z.upsert_mut(Record::from_rdata(name(owner), 300, data), 1);
    }
    z
}

type Zone = Arc<InMemoryZoneHandler<TokioRuntimeProvider>>;

/// An Ed25519 zone key.
pub struct ZoneKey {
    pkcs8: Vec<u8>,
}

impl ZoneKey {
    pub fn new() -> ZoneKey {
        use hickory_proto::dnssec::crypto::Ed25519SigningKey;
        ZoneKey {
            pkcs8: Ed25519SigningKey::generate_pkcs8()
                .unwrap()
                .secret_pkcs8_der()
                .to_vec(),
        }
    }
    fn signing(&self) -> hickory_proto::dnssec::crypto::Ed25519SigningKey {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(self.pkcs8.clone());
        hickory_proto::dnssec::crypto::Ed25519SigningKey::from_pkcs8(&der).unwrap()
    }
    fn public(&self) -> hickory_proto::dnssec::PublicKeyBuf {
        use hickory_proto::dnssec::SigningKey;
        self.signing().to_public_key().unwrap()
    }
    pub fn dnskey(&self) -> hickory_proto::dnssec::rdata::DNSKEY {
        hickory_proto::dnssec::rdata::DNSKEY::from_key(&self.public())
    }
    /// The DS record data of this key for `owner`.
    pub fn ds(&self, owner: &str) -> RData {
        let ds = hickory_proto::dnssec::rdata::DS::from_key(
            &self.public(),
            &name(owner),
            hickory_proto::dnssec::DigestType::SHA256,
        )
        .unwrap();
        RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::DS(ds))
    }
    /// A trust-anchor line for the root.
    pub fn anchor_line(&self) -> String {
        let r = Record::from_rdata(
            Name::root(),
            3600,
            RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::DNSKEY(
                self.dnskey(),
            )),
        );
        r.to_string()
    }
    fn sign(&self, z: &mut InMemoryZoneHandler<TokioRuntimeProvider>, origin: &str) {
        let signer = hickory_proto::dnssec::DnssecSigner::new(
            self.dnskey(),
            Box::new(self.signing()),
            name(origin),
            Duration::from_secs(86400),
        );
        z.add_zone_signing_key_mut(signer).unwrap();
        z.secure_zone_mut().unwrap();
    }
}

/// Keys of a signed hierarchy: root, test., example.test., and bogus.test. (whose DS
/// in test. is made from another key, so validation of it must fail).
pub struct Keys {
    pub root: ZoneKey,
    pub test: ZoneKey,
    pub example: ZoneKey,
    pub bogus: ZoneKey,
    pub bogus_ds: ZoneKey,
}

/// A fake root, `test.`, `example.test.`, a dead delegation and a half-dead one, all on
/// 127.X.Y.{10,11,12} port `port` (13 is a name server nobody runs).
pub struct Hierarchy {
    pub net: [u8; 3],
    pub port: u16,
    /// DNS-over-TLS on 127.X.Y.12 (certificate for `ns2.nic`, CA in `tls_ca_pem`).
    pub tls_port: u16,
    pub tls_ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hierarchy {
    pub fn ip(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], last)
    }

    pub fn root_hint(&self) -> String {
        format!("{}:{}", self.ip(10), self.port)
    }

    /// Config lines pointing a recursive fanzha at this hierarchy.
    pub fn resolver_toml(&self) -> String {
        format!(
            "[resolver]\nmode = \"recursive\"\nroot_hints = [\"{}\"]\nallow_nameservers = [\"127.0.0.0/8\"]\ntimeout_ms = 300\n\
             [[resolver.nameserver_ports]]\ncidr = \"{}.{}.{}.0/24\"\nport = {}\n",
            self.root_hint(),
            self.net[0],
            self.net[1],
            self.net[2],
            self.port
        )
    }

    pub fn start() -> Hierarchy {
        Self::start_inner(None)
    }

    /// A DNSSEC-signed hierarchy; `keys.root.anchor_line()` is its trust anchor.
    pub fn start_signed(keys: Arc<Keys>) -> Hierarchy {
        Self::start_inner(Some(keys))
    }

    fn start_inner(keys: Option<Arc<Keys>>) -> Hierarchy {
        let net = fresh_net();
        let ip = move |l: u8| Ipv4Addr::new(net[0], net[1], net[2], l);
        // Bind one port on all three addresses, UDP and TCP, and keep the sockets for
        // the servers: probing, closing and binding again later would race with other
        // processes' ephemeral ports (a client socket on 0.0.0.0:P blocks 127.x.y.z:P).
        let bind_pair = |l: u8, p: u16| {
            Some((
                UdpSocket::bind((ip(l), p)).ok()?,
                std::net::TcpListener::bind((ip(l), p)).ok()?,
            ))
        };
        let (port, mut bound) = loop {
            let first = UdpSocket::bind((ip(10), 0)).unwrap();
            let p = first.local_addr().unwrap().port();
            let Ok(t10) = std::net::TcpListener::bind((ip(10), p)) else {
                continue;
            };
            let (Some(a), Some(b)) = (bind_pair(11, p), bind_pair(12, p)) else {
                continue;
            };
            break (
                p,
                std::collections::HashMap::from([(10u8, (first, t10)), (11, a), (12, b)]),
            );
        };
        let tls_listener = std::net::TcpListener::bind((ip(12), 0)).unwrap();
        let tls_port = tls_listener.local_addr().unwrap().port();
        // A test CA and a server certificate for ns2.nic signed by it.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let ee_key = rcgen::KeyPair::generate().unwrap();
        let ee = rcgen::CertificateParams::new(vec!["ns2.nic".to_string()])
            .unwrap()
            .signed_by(&ee_key, &issuer)
            .unwrap();
        let tls_ca_pem = ca_cert.pem();
        let cert_der = ee.der().clone();
        let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(ee_key.serialize_der().into());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let big: Vec<(String, Rd)> = (0..40)
                    .map(|i| {
                        (
                            "big.example.test.".to_string(),
                            Rd::Txt(format!("{i:02} {}", "x".repeat(60))),
                        )
                    })
                    .collect();
                let big_refs: Vec<(&str, Rd)> = big
                    .into_iter()
                    .map(|(n, r)| (&*Box::leak(n.into_boxed_str()), r))
                    .collect();
                let mut root_records = vec![
                    (".", Rd::Ns("a.root.invalid.")),
                    ("test.", Rd::Ns("ns1.nic.")),
                    ("example.test.", Rd::Ns("ns2.nic.")),
                    ("dead.test.", Rd::Ns("ns3.nic.")),
                    ("half.test.", Rd::Ns("ns3.nic.")),
                    ("half.test.", Rd::Ns("ns2.nic.")),
                    ("ns1.nic.", Rd::ADyn(ip(11))),
                    ("ns2.nic.", Rd::ADyn(ip(12))),
                    ("ns3.nic.", Rd::ADyn(ip(13))),
                    ("bogus.test.", Rd::Ns("ns2.nic.")),
                ];
                let mut test_records = vec![
                    ("test.", Rd::Ns("ns1.nic.")),
                    ("example.test.", Rd::Ns("ns2.nic.")),
                    ("dead.test.", Rd::Ns("ns3.nic.")),
                    ("half.test.", Rd::Ns("ns3.nic.")),
                    ("half.test.", Rd::Ns("ns2.nic.")),
                    ("plain.test.", Rd::A("192.0.2.10")),
                    ("bogus.test.", Rd::Ns("ns2.nic.")),
                ];
                if let Some(k) = &keys {
                    root_records.push(("test.", Rd::Raw(k.test.ds("test."))));
                    test_records.push(("example.test.", Rd::Raw(k.example.ds("example.test."))));
                    test_records.push(("bogus.test.", Rd::Raw(k.bogus_ds.ds("bogus.test."))));
                }
                let mut root = zone(".", &root_records);
                let mut test = zone("test.", &test_records);
                let mut ex_records = vec![
                    ("example.test.", Rd::Ns("ns2.nic.")),
                    ("www.example.test.", Rd::A("192.0.2.1")),
                    ("www.example.test.", Rd::Aaaa("2001:db8::1")),
                    ("alias.example.test.", Rd::Cname("www.example.test.")),
                    ("chain1.example.test.", Rd::Cname("chain2.example.test.")),
                    ("chain2.example.test.", Rd::Cname("www.example.test.")),
                    ("v4only.example.test.", Rd::A("192.0.2.4")),
                    (
                        "promo.example.test.",
                        Rd::Cname("landing.scam.example.test."),
                    ),
                    ("landing.scam.example.test.", Rd::A("192.0.2.66")),
                    ("blocked.example.test.", Rd::A("192.0.2.99")),
                    ("www.blocked.example.test.", Rd::A("192.0.2.99")),
                    ("ok.blocked.example.test.", Rd::A("192.0.2.98")),
                    ("parent.example.test.", Rd::A("192.0.2.50")),
                    ("child.parent.example.test.", Rd::A("192.0.2.51")),
                ];
                ex_records.extend(big_refs);
                let mut example = zone("example.test.", &ex_records);
                let mut bogus = zone(
                    "bogus.test.",
                    &[
                        ("bogus.test.", Rd::Ns("ns2.nic.")),
                        ("www.bogus.test.", Rd::A("192.0.2.13")),
                    ],
                );
                if let Some(k) = &keys {
                    k.root.sign(&mut root, ".");
                    k.test.sign(&mut test, "test.");
                    k.example.sign(&mut example, "example.test.");
                    k.bogus.sign(&mut bogus, "bogus.test.");
                }
                let half = zone(
                    "half.test.",
                    &[
                        ("half.test.", Rd::Ns("ns2.nic.")),
                        ("www.half.test.", Rd::A("192.0.2.77")),
                    ],
                );

                let mut servers = Vec::new();
                let plan: Vec<(u8, Vec<(&str, Zone)>)> = vec![
                    (10, vec![(".", Arc::new(root))]),
                    (11, vec![("test.", Arc::new(test))]),
                    (
                        12,
                        vec![
                            ("example.test.", Arc::new(example)),
                            ("half.test.", Arc::new(half)),
                            ("bogus.test.", Arc::new(bogus)),
                        ],
                    ),
                ];
                for (last, zones) in plan {
                    let mut catalog = Catalog::new();
                    for (origin, z) in zones {
                        catalog.upsert(LowerName::from(name(origin)), vec![z]);
                    }
                    let mut s = Server::new(catalog);
                    if last == 12 {
                        let provider = Arc::new(hickory_server::net::tls::default_provider());
                        let mut sc = rustls::ServerConfig::builder_with_provider(provider)
                            .with_safe_default_protocol_versions()
                            .unwrap()
                            .with_no_client_auth()
                            .with_single_cert(vec![cert_der.clone()], key_der.clone_key())
                            .unwrap();
                        sc.alpn_protocols = vec![b"dot".to_vec()];
                        tls_listener.set_nonblocking(true).unwrap();
                        let l =
                            tokio::net::TcpListener::from_std(tls_listener.try_clone().unwrap())
                                .unwrap();
                        s.register_tls_listener_with_tls_config(
                            l,
                            Duration::from_secs(5),
                            Arc::new(sc),
                        )
                        .unwrap();
                    }
                    let (udp, tcp) = bound.remove(&last).unwrap();
                    udp.set_nonblocking(true).unwrap();
                    tcp.set_nonblocking(true).unwrap();
                    s.register_socket(tokio::net::UdpSocket::from_std(udp).unwrap());
                    s.register_listener(
                        tokio::net::TcpListener::from_std(tcp).unwrap(),
                        Duration::from_secs(5),
                        65535,
                    );
                    servers.push(s);
                }
                ready_tx.send(()).unwrap();
                let _ = stop_rx.await;
                for mut s in servers {
                    let _ = s.shutdown_gracefully().await;
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("hierarchy started");
        Hierarchy {
            net,
            port,
            tls_port,
            tls_ca_pem,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Hierarchy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The real binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fanzha"))
}

/// A running `fanzha serve`.
pub struct Fanzha {
    pub child: Child,
    pub dns: SocketAddr,
    pub ops: SocketAddr,
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub dir: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

fn after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(key)? + key.len();
    line[i..].split_whitespace().next()
}

impl Fanzha {
    /// Write `toml` (which must not set server.listen / ops.listen / state_dir) into
    /// `dir/fanzha.toml` and start the server on ephemeral ports.
    pub fn start(dir: &Path, toml: &str) -> Fanzha {
        let text = format!("{toml}\n",);
        let mut full =
            String::from("[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n");
        full.push_str(&table_lines(&text, "server"));
        full.push_str("[ops]\nlisten = \"127.0.0.1:0\"\n");
        let wp = table_lines(&text, "warnpage");
        full.push_str("[warnpage]\n");
        if !wp.contains("listen =") {
            full.push_str("listen = [\"127.0.0.1:0\"]\n");
        }
        full.push_str(&wp);
        full.push_str(&without_tables(&text, &["server", "warnpage"]));
        let cfg = dir.join("fanzha.toml");
        std::fs::write(&cfg, &full).unwrap();
        let mut child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&cfg)
            .env(
                "RUST_LOG",
                std::env::var("FANZHA_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let (mut dns, mut ops, mut http, mut https) = (None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!(
                        "fanzha did not become ready; config:\n{full}\nlog:\n{}",
                        log.lock().unwrap().join("\n")
                    )
                });
            if line.contains("listening for DNS") {
                dns = after(&line, "udp=").map(|s| s.parse().unwrap());
            }
            if line.contains("warning page listening (http)") {
                http = after(&line, "addr=").map(|s| s.parse().unwrap());
            }
            if line.contains("warning page listening (https)") {
                https = after(&line, "addr=").map(|s| s.parse().unwrap());
            }
            if line.contains("ops endpoint") {
                ops = after(&line, "addr=").map(|s| s.parse().unwrap());
            }
            if line.contains(" ready") {
                break;
            }
        }
        Fanzha {
            child,
            dns: dns.unwrap(),
            ops: ops.unwrap(),
            http,
            https,
            dir: dir.to_path_buf(),
            log,
            lines: rx,
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Wait for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
            return true;
        }
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if l.contains(needle) {
                return true;
            }
        }
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// GET a path of the ops endpoint.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.ops, path)
    }
}

impl Drop for Fanzha {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of table `[name]` in the test's TOML.
fn table_lines(toml: &str, name: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in toml.lines() {
        if l.trim_start().starts_with('[') {
            inside = l.trim() == format!("[{name}]");
            continue;
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The test's TOML without tables `names`.
fn without_tables(toml: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in toml.lines() {
        if l.trim_start().starts_with('[') {
            inside = names.iter().any(|n| l.trim() == format!("[{n}]"));
        }
        if !inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

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

/// Write the test block lists into `dir/lists` and `dir/allow`; returns the TOML.
pub fn lists_toml(dir: &Path) -> String {
    let lists = dir.join("lists");
    let allow = dir.join("allow");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::create_dir_all(&allow).unwrap();
    std::fs::write(
        lists.join("loan.txt"),
        "# category: loan\nblocked.example.test\nscam.example.test\n",
    )
    .unwrap();
    std::fs::write(
        lists.join("phish.txt"),
        "# category: phishing\n# match: exact\nparent.example.test\n",
    )
    .unwrap();
    std::fs::write(allow.join("ok.txt"), "ok.blocked.example.test\n").unwrap();
    "[blocklist]\ndirs = [\"lists\"]\nallow_dirs = [\"allow\"]\n".to_string()
}

/// Categories and the Chinese title their warning page shows.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("loan", "虚假网络贷款"),
    ("task-scam", "网络刷单返利"),
    ("investment", "杀猪盘"),
    ("impersonation", "冒充公检法"),
    ("impersonation-boss", "冒充领导"),
    ("fake-service", "冒充电商、物流客服"),
    ("phishing", "钓鱼网站"),
];

/// One list per category, each blocking `<category>.scam.test`.
pub fn category_lists(dir: &std::path::Path) -> String {
    let lists = dir.join("wlists");
    std::fs::create_dir_all(&lists).unwrap();
    for (c, _) in CATEGORIES {
        std::fs::write(
            lists.join(format!("{c}.txt")),
            format!("# category: {c}\n{c}.scam.test\n"),
        )
        .unwrap();
    }
    "[blocklist]\ndirs = [\"wlists\"]\nallow_dirs = []\n[resolver]\nmode = \"forward\"\nupstreams = [\"udp://127.0.0.1:9\"]\n".into()
}
