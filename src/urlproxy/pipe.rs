//! Byte streams of the proxy: a connection whose first bytes were read to find its
//! name ([`Rewind`]), two connections joined both ways until both end or fall
//! silent ([`splice`]), and a relayed body that ends with an error when the real
//! host falls silent in the middle of it ([`Idle`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Copy both ways between `a` and `b` until both have ended, or until no byte
/// has moved either way for `idle` (a connection held open and silent).
pub(super) async fn splice(a: TcpStream, b: TcpStream, idle: Duration) {
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::join!(
        pump(ar, bw, &last, start, idle),
        pump(br, aw, &last, start, idle)
    );
}

/// One direction of [`splice`]; `last` is when a byte last moved either way (ms
/// after `start`).
async fn pump(
    mut r: OwnedReadHalf,
    mut w: OwnedWriteHalf,
    last: &AtomicU64,
    start: Instant,
    idle: Duration,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(idle, r.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => {
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                last.store(start.elapsed().as_millis() as u64, Relaxed);
            }
            Err(_) => {
                let quiet = start.elapsed().as_millis() as u64 - last.load(Relaxed);
                if quiet >= idle.as_millis() as u64 {
                    break;
                }
            }
        }
    }
    let _ = w.shutdown().await;
}

/// A stream whose first bytes were already read: they are read again first.
pub(super) struct Rewind<S> {
    pre: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Rewind<S> {
    /// `inner`, whose bytes `pre` were read already.
    pub(super) fn new(pre: Vec<u8>, inner: S) -> Rewind<S> {
        Rewind { pre, at: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.pre.len() {
            let n = (self.pre.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.pre[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A body that fails when no frame comes for `idle`: a real host that stops
/// sending in the middle of an answer frees the client's connection.
pub(super) struct Idle<B> {
    inner: B,
    idle: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B> Idle<B> {
    /// `inner`, failed after `idle` without a frame.
    pub(super) fn new(inner: B, idle: Duration) -> Idle<B> {
        Idle {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<B> hyper::body::Body for Idle<B>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                let next = tokio::time::Instant::now() + self.idle;
                self.sleep.as_mut().reset(next);
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                    "the site sent nothing for {:?} in the middle of its answer",
                    self.idle
                )
                .into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
