//! Connections whose writes stall are closed.
//!
//! A client that stops reading (a stopped process, a `claudemesh stream
//! subscribe` whose terminal is suspended, a mesh log follower that never
//! reads) fills its socket's buffers; the server's write then waits for
//! ever, and the task, the socket and whatever the response holds wait with
//! it. Neither hyper nor axum bounds that wait, and a response body (the
//! log's Server-Sent Events) is not even polled while the write is blocked,
//! so it cannot notice. Each accepted connection is therefore wrapped in a
//! [`StallGuard`]: a write that makes no progress for the limit fails with
//! `TimedOut`, and hyper (or the WebSocket task, for the broker) drops the
//! connection. Memory stays bounded meanwhile: the kernel's buffers, hyper's
//! bounded write buffer, and the one event in hand.
//!
//! Only a write that is waiting counts: an idle connection (a WebSocket with
//! nothing to send, a keep-alive connection between requests) never stalls.

use axum::serve::Listener;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The default of `--write-stall-timeout`, in seconds: far beyond what a
/// working client on a slow link needs to take some bytes, short enough
/// that a stopped reader does not linger.
pub const WRITE_STALL_SECS: u64 = 60;

/// A listener whose connections are [`StallGuard`]ed.
pub struct StallGuardedListener<L> {
    inner: L,
    limit: Duration,
}

impl<L> StallGuardedListener<L> {
    pub fn new(inner: L, limit: Duration) -> Self {
        Self { inner, limit }
    }
}

impl<L: Listener> Listener for StallGuardedListener<L> {
    type Io = StallGuard<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (StallGuard::new(io, self.limit), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An I/O stream whose writes fail once one has waited `limit` without
/// progress.
pub struct StallGuard<T> {
    inner: T,
    limit: Duration,
    /// Armed while a write waits; cleared by any progress.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            deadline: None,
        }
    }

    /// What the inner write answered, unless it has waited too long.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        answer: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if answer.is_ready() {
            self.deadline = None;
            return answer;
        }
        let limit = self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                crate::metrics::METRICS.stalled_connections_closed.inc();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer has read nothing for the write stall timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let answer = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, answer)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let answer = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, answer)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let answer = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, answer)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_limit_and_progress_resets_it() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(near, Duration::from_millis(200));
        // Fills the pipe; the reader takes some, so the clock starts again.
        guarded.write_all(&[1; 64]).await.unwrap();
        let mut taken = [0; 32];
        far.read_exact(&mut taken).await.unwrap();
        guarded.write_all(&[2; 32]).await.unwrap();
        // Now nobody reads: the next write waits for the limit, then fails.
        let err = guarded.write_all(&[3; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
