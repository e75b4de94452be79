//! A DNS delay relay for the recursive benchmark (`benches/server/recursive.sh`):
//! the machine has no netem, so latency between the resolvers and the authoritative
//! servers is added here. Each `LISTEN=TARGET` pair relays UDP datagrams and TCP
//! connections from LISTEN to TARGET, holding every packet `DELAY_MS` in each
//! direction (FIFO, so order is kept), and counts the queries it relayed.
//!
//! Usage: delay_relay DELAY_MS COUNT_FILE LISTEN=TARGET [LISTEN=TARGET ...]
//! The counts (`udp N` and `tcp N`: queries and connections toward the servers)
//! are written to COUNT_FILE every 200 ms. With RELAY_LOG=FILE set, every UDP query
//! is also logged there as `ms-since-start server name type` (to see, for one run,
//! which queries a resolver sends and when).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Relay ID → the client and its own query ID.
type Pending = std::sync::Mutex<Vec<Option<(SocketAddr, [u8; 2])>>>;

type Delayed = mpsc::UnboundedSender<(Instant, Vec<u8>, SocketAddr)>;

#[derive(Default)]
struct Counts {
    udp: AtomicU64,
    tcp: AtomicU64,
}

/// Sends each queued datagram once its time has come.
fn delayed_sender(sock: Arc<UdpSocket>) -> Delayed {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>, SocketAddr)>();
    tokio::spawn(async move {
        while let Some((at, pkt, to)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = sock.send_to(&pkt, to).await;
        }
    });
    tx
}

/// UDP: one socket toward the server; each query gets a relay ID, under which the
/// client's address and its own ID are kept until the reply comes back.
async fn relay_udp(
    listen: SocketAddr,
    target: SocketAddr,
    delay: Duration,
    counts: Arc<Counts>,
    log: Option<Arc<QueryLog>>,
) {
    let front = Arc::new(
        UdpSocket::bind(listen)
            .await
            .expect("bind the relay's UDP address"),
    );
    let back = Arc::new(
        UdpSocket::bind(SocketAddr::new(listen.ip(), 0))
            .await
            .expect("bind the relay's socket toward the server"),
    );
    let to_client = delayed_sender(front.clone());
    let to_server = delayed_sender(back.clone());
    let pending: Arc<Pending> = Arc::new(std::sync::Mutex::new(vec![None; 65_536]));
    {
        let pending = pending.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, _)) = back.recv_from(&mut buf).await {
                if n < 12 {
                    continue;
                }
                let id = u16::from_be_bytes([buf[0], buf[1]]) as usize;
                let Some((client, orig)) =
                    pending.lock().unwrap_or_else(|e| e.into_inner())[id].take()
                else {
                    continue;
                };
                let mut pkt = buf[..n].to_vec();
                pkt[..2].copy_from_slice(&orig);
                let _ = to_client.send((Instant::now() + delay, pkt, client));
            }
        });
    }
    let mut next: u16 = 0;
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        if n < 12 {
            continue;
        }
        counts.udp.fetch_add(1, Ordering::Relaxed);
        if let Some(log) = &log {
            log.send(&listen, &buf[..n]);
        }
        next = next.wrapping_add(1);
        let mut pkt = buf[..n].to_vec();
        pending.lock().unwrap_or_else(|e| e.into_inner())[next as usize] =
            Some((client, [pkt[0], pkt[1]]));
        pkt[..2].copy_from_slice(&next.to_be_bytes());
        let _ = to_server.send((Instant::now() + delay, pkt, target));
    }
}

/// The optional query log (RELAY_LOG).
struct QueryLog {
    start: Instant,
    out: std::sync::Mutex<std::io::BufWriter<std::fs::File>>,
}

impl QueryLog {
    fn send(&self, server: &SocketAddr, pkt: &[u8]) {
        use std::io::Write;
        // The question: labels from offset 12, then the type.
        let mut name = String::new();
        let mut i = 12;
        while let Some(&l) = pkt.get(i) {
            if l == 0 || l > 63 || i + 1 + l as usize > pkt.len() {
                break;
            }
            name.push_str(&String::from_utf8_lossy(&pkt[i + 1..i + 1 + l as usize]));
            name.push('.');
            i += 1 + l as usize;
        }
        let qtype = pkt
            .get(i + 1..i + 3)
            .map(|t| u16::from_be_bytes([t[0], t[1]]))
            .unwrap_or(0);
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "{ms:.1} {} {} {qtype}",
            server.ip(),
            if name.is_empty() { "." } else { &name }
        );
        let _ = out.flush();
    }
}

async fn copy_delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let mut buf = vec![0u8; 65_535];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tokio::time::sleep(delay).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

async fn relay_tcp(listen: SocketAddr, target: SocketAddr, delay: Duration, counts: Arc<Counts>) {
    let l = TcpListener::bind(listen)
        .await
        .expect("bind the relay's TCP address");
    loop {
        let Ok((client, _)) = l.accept().await else {
            continue;
        };
        counts.tcp.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(copy_delayed(cr, sw, delay), copy_delayed(sr, cw, delay));
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: delay_relay DELAY_MS COUNT_FILE LISTEN=TARGET [LISTEN=TARGET ...]");
        std::process::exit(2);
    }
    let delay = Duration::from_millis(args[0].parse().expect("DELAY_MS is a number"));
    let count_file = args[1].clone();
    let pairs: Vec<(SocketAddr, SocketAddr)> = args[2..]
        .iter()
        .map(|p| {
            let (l, t) = p.split_once('=').expect("LISTEN=TARGET");
            (
                l.parse().expect("LISTEN address"),
                t.parse().expect("TARGET address"),
            )
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let counts = Arc::new(Counts::default());
        let log = std::env::var_os("RELAY_LOG").map(|p| {
            Arc::new(QueryLog {
                start: Instant::now(),
                out: std::sync::Mutex::new(std::io::BufWriter::new(
                    std::fs::File::create(p).expect("create RELAY_LOG"),
                )),
            })
        });
        for (l, t) in pairs {
            tokio::spawn(relay_udp(l, t, delay, counts.clone(), log.clone()));
            tokio::spawn(relay_tcp(l, t, delay, counts.clone()));
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let text = format!(
                "udp {}\ntcp {}\n",
                counts.udp.load(Ordering::Relaxed),
                counts.tcp.load(Ordering::Relaxed)
            );
            let tmp = format!("{count_file}.tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &count_file);
            }
        }
    });
}
