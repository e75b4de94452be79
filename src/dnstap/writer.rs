//! The connection to the collector: connect, hand-shake, write the queued frames,
//! and connect again after any failure. The DNS side never waits on it: it only
//! `try_send`s into the bounded queue this task empties.

use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::fstrm::{self, Control};
use crate::config::DnstapTarget;

/// Longest wait for the collector's part of the hand-shake, or for one write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait between connection attempts.
const RETRY: Duration = Duration::from_secs(2);
/// Bytes gathered into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// What the task counts.
pub struct Counters {
    /// Frames written to the collector.
    pub sent: IntCounter,
    /// Frames lost with a broken connection.
    pub lost: IntCounter,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connect(target: &DnstapTarget) -> std::io::Result<Box<dyn Stream>> {
    Ok(match target {
        DnstapTarget::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
        DnstapTarget::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a.as_str()).await?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        }
    })
}

fn other(why: String) -> std::io::Error {
    std::io::Error::other(why)
}

/// Read one control frame.
async fn read_control(s: &mut (impl AsyncRead + Unpin)) -> std::io::Result<fstrm::Parsed> {
    let mut head = [0u8; 8];
    s.read_exact(&mut head).await?;
    let (escape, len) = (
        u32::from_be_bytes(head[..4].try_into().unwrap_or_default()),
        u32::from_be_bytes(head[4..].try_into().unwrap_or_default()) as usize,
    );
    if escape != 0 || len > fstrm::MAX_CONTROL {
        return Err(other(format!(
            "not a control frame (escape {escape}, length {len})"
        )));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    fstrm::parse_control(&body).ok_or_else(|| other("a control frame that does not parse".into()))
}

/// READY → ACCEPT (with the dnstap content type) → START.
async fn handshake(s: &mut Box<dyn Stream>) -> std::io::Result<()> {
    s.write_all(&fstrm::control(Control::Ready)).await?;
    let accept = read_control(s).await?;
    if accept.kind != Control::Accept {
        return Err(other(format!(
            "the collector answered {:?}, not ACCEPT",
            accept.kind
        )));
    }
    if !accept
        .content_types
        .iter()
        .any(|t| t == fstrm::CONTENT_TYPE)
    {
        return Err(other(
            "the collector does not take protobuf:dnstap.Dnstap".into(),
        ));
    }
    s.write_all(&fstrm::control(Control::Start)).await?;
    s.flush().await
}

/// Write frames from `rx` to the collector at `target` until `stop`; then write what
/// is queued, STOP, and wait briefly for FINISH.
pub async fn run(
    target: DnstapTarget,
    mut rx: mpsc::Receiver<Vec<u8>>,
    counters: Counters,
    stop: CancellationToken,
) {
    let name = match &target {
        DnstapTarget::Unix(p) => p.display().to_string(),
        DnstapTarget::Tcp(a) => a.clone(),
    };
    let mut failing_since_logged = false;
    let mut buf = Vec::with_capacity(WRITE_BATCH + 1024);
    'connect: loop {
        if stop.is_cancelled() {
            return;
        }
        let attempt = async {
            let mut s = connect(&target).await?;
            handshake(&mut s).await?;
            Ok::<_, std::io::Error>(s)
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(IO_TIMEOUT, attempt) => r,
            _ = stop.cancelled() => return,
        };
        let mut s = match outcome {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                failed(&name, &e.to_string(), &mut failing_since_logged);
                wait_or_stop(&stop).await;
                continue 'connect;
            }
            Err(_) => {
                failed(&name, "no hand-shake within 5 s", &mut failing_since_logged);
                wait_or_stop(&stop).await;
                continue 'connect;
            }
        };
        tracing::info!(collector = %name, "dnstap: connected");
        failing_since_logged = false;
        loop {
            let first = tokio::select! {
                f = rx.recv() => f,
                _ = stop.cancelled() => None,
            };
            let Some(first) = first else {
                finish(&mut s, &mut rx, &counters, &mut buf).await;
                return;
            };
            buf.clear();
            fstrm::data(&mut buf, &first);
            let mut n = 1;
            while buf.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(f) => {
                        fstrm::data(&mut buf, &f);
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
            let wrote = tokio::time::timeout(IO_TIMEOUT, async {
                s.write_all(&buf).await?;
                s.flush().await
            })
            .await;
            match wrote {
                Ok(Ok(())) => counters.sent.inc_by(n),
                Ok(Err(e)) => {
                    counters.lost.inc_by(n);
                    failed(&name, &e.to_string(), &mut failing_since_logged);
                    continue 'connect;
                }
                Err(_) => {
                    counters.lost.inc_by(n);
                    failed(&name, "a write took over 5 s", &mut failing_since_logged);
                    continue 'connect;
                }
            }
        }
    }
}

/// Log a failure once until the next success (the queue and the metrics tell the rest).
fn failed(name: &str, why: &str, logged: &mut bool) {
    if !*logged {
        tracing::warn!(collector = %name, error = %why, "dnstap: collector unreachable; frames wait in the queue (dropped and counted when it is full) and fanzha retries every 2 s");
        *logged = true;
    } else {
        tracing::debug!(collector = %name, error = %why, "dnstap: still unreachable");
    }
}

async fn wait_or_stop(stop: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(RETRY) => {}
        _ = stop.cancelled() => {}
    }
}

/// At shutdown: what is queued, then STOP, then FINISH (1 s at most each).
async fn finish(
    s: &mut Box<dyn Stream>,
    rx: &mut mpsc::Receiver<Vec<u8>>,
    counters: &Counters,
    buf: &mut Vec<u8>,
) {
    buf.clear();
    let mut n = 0;
    while let Ok(f) = rx.try_recv() {
        fstrm::data(buf, &f);
        n += 1;
    }
    buf.extend_from_slice(&fstrm::control(Control::Stop));
    let t = Duration::from_secs(1);
    let wrote = tokio::time::timeout(t, async {
        s.write_all(buf).await?;
        s.flush().await
    })
    .await;
    if matches!(wrote, Ok(Ok(()))) {
        counters.sent.inc_by(n);
        let _ = tokio::time::timeout(t, read_control(s)).await;
    } else {
        counters.lost.inc_by(n);
    }
    let _ = s.shutdown().await;
}
