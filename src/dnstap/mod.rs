//! The query log, as dnstap (what Unbound, Knot, BIND, PowerDNS and CoreDNS write,
//! and what collectors such as Vector, dnstap-ldns or fstrm_capture read).
//!
//! [`Tap::log`] is called by the listeners for each query they answer (or drop): it
//! decides whether the query is logged (blocked ones always; allowed ones at the
//! `sample` rate), builds the CLIENT_QUERY and CLIENT_RESPONSE messages with the
//! client address as `client_ip` says, and `try_send`s them to a bounded queue. A
//! full queue drops the frame and counts it: DNS never waits on the log.
//! [`writer`] empties the queue into the collector's socket.
//!
//! - [`proto`]: the dnstap protobuf messages.
//! - [`fstrm`]: Frame Streams control and data frames.
//! - [`writer`]: the connection to the collector.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use prometheus::IntCounter;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::blocklist::Action;
use crate::config::DnstapConfig;
use crate::privacy::ClientIp;

pub mod fstrm;
pub mod proto;
pub mod writer;

/// A query as a listener saw it, for [`Tap::log`].
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The client.
    pub client: SocketAddr,
    /// fanzha's address it was sent to, when known.
    pub server: Option<SocketAddr>,
    /// What it came over.
    pub protocol: proto::SocketProtocol,
    /// The query as received.
    pub query: &'a [u8],
    /// When it came.
    pub received: SystemTime,
    /// The answer sent (`None`: none was, e.g. a dropped query).
    pub response: Option<&'a [u8]>,
    /// When the answer went.
    pub answered: SystemTime,
    /// Set when fanzha blocked it.
    pub block: Option<Block<'a>>,
}

/// Why a query was blocked, for the dnstap `Policy`.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// The rule's name ("" when it was a CNAME target's).
    pub rule: &'a str,
    /// Its category.
    pub category: &'a str,
    /// The answer it got (`None`: not known here, as for a CNAME target's block).
    pub action: Option<Action>,
}

/// What [`Tap`] counts (`fanzha_dnstap_frames_total{outcome}`).
#[derive(Clone)]
pub struct TapCounters {
    /// Written to the collector.
    pub sent: IntCounter,
    /// Dropped because the queue was full (the collector slow or away).
    pub dropped: IntCounter,
    /// Lost with a broken connection.
    pub lost: IntCounter,
}

/// The DNS side of the log: shared by every listener, never waits.
pub struct Tap {
    tx: mpsc::Sender<Vec<u8>>,
    identity: Vec<u8>,
    version: Vec<u8>,
    client_query: bool,
    client_response: bool,
    client_ip: ClientIp,
    hash_key: Arc<[u8]>,
    sampler: Sampler,
    dropped: IntCounter,
}

impl Tap {
    /// Start the writer for `cfg` (on the current runtime) and return the tap and
    /// the writer's task, which ends after `stop` once it has written what is queued.
    pub fn start(
        cfg: &DnstapConfig,
        hash_key: Arc<[u8]>,
        counters: TapCounters,
        stop: CancellationToken,
    ) -> (Tap, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(cfg.queue);
        let task = tokio::spawn(writer::run(
            cfg.target.clone(),
            rx,
            writer::Counters {
                sent: counters.sent,
                lost: counters.lost,
            },
            stop,
        ));
        let tap = Tap {
            tx,
            identity: cfg.identity.clone().into_bytes(),
            version: concat!("fanzha ", env!("CARGO_PKG_VERSION"))
                .as_bytes()
                .to_vec(),
            client_query: cfg.client_query,
            client_response: cfg.client_response,
            client_ip: cfg.client_ip,
            hash_key,
            sampler: Sampler::new(cfg.sample),
            dropped: counters.dropped,
        };
        (tap, task)
    }

    /// Log one query (and its answer), as the config says.
    pub fn log(&self, seen: &Seen<'_>) {
        if seen.block.is_none() && !self.sampler.take() {
            return;
        }
        if self.client_query {
            self.send(self.message(seen, proto::MessageType::ClientQuery));
        }
        if self.client_response && seen.response.is_some() {
            self.send(self.message(seen, proto::MessageType::ClientResponse));
        }
    }

    fn send(&self, m: proto::Message) {
        let frame = proto::Dnstap {
            identity: Some(self.identity.clone()),
            version: Some(self.version.clone()),
            r#type: proto::DnstapType::Message as i32,
            message: Some(m),
        }
        .encode_to_vec();
        if self.tx.try_send(frame).is_err() {
            self.dropped.inc();
        }
    }

    /// The message of `kind` for `seen` (pure: no I/O).
    pub fn message(&self, seen: &Seen<'_>, kind: proto::MessageType) -> proto::Message {
        let (family, address) = client_address(self.client_ip, seen.client.ip(), &self.hash_key);
        let response = kind == proto::MessageType::ClientResponse;
        let (qs, qn) = split(seen.received);
        let (rs, rn) = split(seen.answered);
        proto::Message {
            r#type: kind as i32,
            socket_family: Some(family as i32),
            socket_protocol: Some(seen.protocol as i32),
            query_address: Some(address),
            // A port with a cut or hashed address would still tell clients apart.
            query_port: (self.client_ip == ClientIp::Keep).then_some(u32::from(seen.client.port())),
            response_address: seen.server.map(|s| ip_bytes(s.ip())),
            response_port: seen.server.map(|s| u32::from(s.port())),
            query_time_sec: Some(qs),
            query_time_nsec: Some(qn),
            query_message: (!response).then(|| seen.query.to_vec()),
            response_time_sec: response.then_some(rs),
            response_time_nsec: response.then_some(rn),
            response_message: if response {
                seen.response.map(<[u8]>::to_vec)
            } else {
                None
            },
            policy: seen.block.map(|b| proto::Policy {
                r#type: Some(format!("fanzha/{}", b.category)),
                rule: (!b.rule.is_empty()).then(|| b.rule.as_bytes().to_vec()),
                // dnstap has no action for REFUSED.
                action: match b.action {
                    Some(Action::Sinkhole) => Some(proto::PolicyAction::LocalData as i32),
                    Some(Action::Nxdomain) => Some(proto::PolicyAction::Nxdomain as i32),
                    Some(Action::Refused | Action::Shadow | Action::Off) | None => None,
                },
                r#match: Some(proto::PolicyMatch::Qname as i32),
                value: None,
            }),
        }
    }
}

fn split(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The client's address as logged: whole, cut to /24 or /56, or replaced by the
/// first 4 or 16 bytes of the same keyed hash the reporter uses (so that a client
/// can be followed across both logs, never recovered from them).
pub fn client_address(mode: ClientIp, ip: IpAddr, key: &[u8]) -> (proto::SocketFamily, Vec<u8>) {
    let family = if ip.is_ipv4() {
        proto::SocketFamily::Inet
    } else {
        proto::SocketFamily::Inet6
    };
    let mut bytes = ip_bytes(ip);
    match mode {
        ClientIp::Keep => {}
        ClientIp::Truncate => {
            let keep = if ip.is_ipv4() { 3 } else { 7 };
            bytes[keep..].fill(0);
        }
        ClientIp::Hash => {
            let h = crate::privacy::keyed_hash(ip, key);
            let n = bytes.len();
            bytes.copy_from_slice(&h[..n]);
        }
    }
    (family, bytes)
}

/// Takes an evenly spread `rate` share of calls (1.0: all, 0.0: none).
struct Sampler {
    rate: f64,
    n: AtomicU64,
}

impl Sampler {
    fn new(rate: f64) -> Sampler {
        Sampler {
            rate: rate.clamp(0.0, 1.0),
            n: AtomicU64::new(0),
        }
    }

    fn take(&self) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        if self.rate <= 0.0 {
            return false;
        }
        let n = self.n.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.rate).floor() > (n * self.rate).floor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampler_takes_its_share_evenly() {
        for (rate, of, want) in [
            (1.0, 100, 100),
            (0.0, 100, 0),
            (0.1, 1000, 100),
            (0.25, 8, 2),
        ] {
            let s = Sampler::new(rate);
            assert_eq!((0..of).filter(|_| s.take()).count(), want, "rate {rate}");
        }
    }

    #[test]
    fn client_addresses_are_kept_cut_or_hashed() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let v6: IpAddr = "fd00:1:2:3456::9".parse().unwrap();
        let key = b"local-key";
        assert_eq!(client_address(ClientIp::Keep, v4, key).1, vec![10, 1, 2, 3]);
        assert_eq!(
            client_address(ClientIp::Truncate, v4, key).1,
            vec![10, 1, 2, 0]
        );
        let cut: std::net::Ipv6Addr =
            <[u8; 16]>::try_from(client_address(ClientIp::Truncate, v6, key).1)
                .unwrap()
                .into();
        assert_eq!(cut.to_string(), "fd00:1:2:3400::");
        let (f, h) = client_address(ClientIp::Hash, v4, key);
        assert_eq!(f, proto::SocketFamily::Inet);
        assert_eq!(h.len(), 4);
        assert_ne!(h, vec![10, 1, 2, 3]);
        assert_eq!(h, client_address(ClientIp::Hash, v4, key).1, "stable");
        assert_ne!(h, client_address(ClientIp::Hash, v4, b"other").1, "keyed");
        // The reporter's hash of the same client starts with the same bytes.
        let reported = ClientIp::Hash.apply(v6, key);
        let tapped = client_address(ClientIp::Hash, v6, key).1;
        assert_eq!(reported, format!("hmac:{}", hex::encode(tapped)));
    }
}
