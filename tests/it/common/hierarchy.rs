//! A local authoritative DNS hierarchy on loopback: a fake root, `test.`, zones under
//! it, signed or not, served by hickory-server on unprivileged ports.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record};
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

/// The SOA of a test zone.
pub(super) fn soa(origin: &str) -> Record {
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

    /// Where a test's web site for `shared.example.test` listens.
    pub fn site_ip(&self) -> Ipv4Addr {
        self.ip(20)
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
                    // An alias (from another zone) to a name a wildcard covers.
                    ("to-wild.test.", Rd::Cname("any.wild.example.test.")),
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
                    // A shared host for the URL proxy's tests: its nginx runs on
                    // this hierarchy's own .20 (`Hierarchy::site_ip`).
                    (
                        "shared.example.test.",
                        Rd::A(Box::leak(ip(20).to_string().into_boxed_str())),
                    ),
                    ("private.example.test.", Rd::A("10.9.8.7")),
                    (
                        "silent.example.test.",
                        Rd::A(Box::leak(ip(21).to_string().into_boxed_str())),
                    ),
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
                    // `ent.example.test.` is an empty non-terminal.
                    ("host.ent.example.test.", Rd::A("192.0.2.52")),
                    // A wildcard.
                    ("*.wild.example.test.", Rd::A("192.0.2.42")),
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
