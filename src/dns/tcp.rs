//! DNS over TCP: one task per connection, frames answered in order, idle
//! connections closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::engine::Engine;

/// Serve DNS over TCP on `listener` until `shutdown`.
pub async fn run_tcp(
    engine: Arc<Engine>,
    listener: TcpListener,
    idle: Duration,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let conns = Arc::new(tokio::sync::Semaphore::new(1024));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many TCP connections; closing this one");
            continue;
        };
        let (engine, shutdown) = (engine.clone(), shutdown.clone());
        tasks.spawn(async move {
            let _permit = permit;
            tcp_conn(engine, stream, peer, idle, shutdown).await;
        });
    }
}

async fn tcp_conn(
    engine: Arc<Engine>,
    mut stream: TcpStream,
    peer: SocketAddr,
    idle: Duration,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut frame = Vec::new();
    loop {
        let mut len = [0u8; 2];
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_exact(&mut len)) => r,
            _ = shutdown.cancelled() => return,
        };
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let n = u16::from_be_bytes(len) as usize;
        frame.resize(n, 0);
        if !matches!(
            tokio::time::timeout(idle, stream.read_exact(&mut frame)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Some(resp) = engine.handle(&frame, peer.ip(), true).await else {
            continue;
        };
        let mut out = Vec::with_capacity(resp.len() + 2);
        out.extend_from_slice(&(resp.len().min(65535) as u16).to_be_bytes());
        out.extend_from_slice(&resp[..resp.len().min(65535)]);
        if tokio::time::timeout(idle, stream.write_all(&out))
            .await
            .is_err()
        {
            return;
        }
    }
}
