//! A TCP listener with a bound on open connections (and `TCP_NODELAY` on every accepted socket), and a
//! lingering close for connections the server ends while the client may still be sending.
//!
//! When `max` connections are open, `accept` waits for one to close: excess clients queue in the kernel's
//! backlog instead of consuming memory here.
//!
//! # Lingering close
//!
//! The ingress answers some requests before it has read their body: a `Content-Length` above the limit
//! gets 413 at once, a chunked body is read only up to the limit, and hyper answers unparsable requests
//! itself. hyper then closes the connection. Closing a socket whose receive buffer still holds unread data,
//! or that receives data after the close, makes the kernel send a TCP RST, and the RST destroys the
//! exchange: a client that writes its whole request before reading (Python's `http.client`, many SDKs)
//! sees "connection reset" or "broken pipe" (typically on its write) instead of the 413.
//!
//! So a connection is not closed outright: when a [`LimitedStream`] is dropped before the peer finished
//! sending (no read returned end-of-file and no I/O error was seen), the socket is handed to a small task
//! that shuts down the write side (the client sees the response and then end-of-file), reads and discards
//! what the client still sends with a fixed-size buffer, and closes once the client closes its side or a
//! [`Linger`] bound is reached, like nginx's `lingering_close`. Connections the client closed first (the
//! normal case for keep-alive clients) are closed at once.
//!
//! This is done here, at the socket, rather than by draining the body in the handler, because it covers
//! every path with one mechanism and no coupling to the handler: the `Content-Length` pre-check, chunked
//! bodies cut off by the limit, errors returned before the body is read (404, 405, 503) and responses
//! hyper writes itself (400 for a malformed request). Draining in the handler would in addition keep the
//! connection reusable, but only for bodies small enough to be worth reading, which hyper already discards
//! when they are buffered. The lingering task keeps the connection's permit, so a lingering socket still
//! counts against `max` until it is closed; the [`Linger`] bounds cap how long (10 s by default). Other
//! connections the server ends first (idle keep-alive connections at shutdown) linger too, until their
//! client closes: one round trip for a client that watches its connections, at most the bounds otherwise.

use axum::serve::Listener;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Size of the buffer a lingering connection reads into and discards (one per lingering connection).
const DISCARD_BUFFER_BYTES: usize = 8 * 1024;

/// Bounds of a lingering close (see the module docs): whichever is reached first ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    /// Most bytes read and discarded; a client that sends more is cut off (and may see a reset).
    pub max_bytes: u64,
    /// Longest wait for the client's next bytes (nginx's `lingering_timeout`).
    pub idle_timeout: Duration,
    /// Longest time a connection lingers in total (nginx's `lingering_time`); it holds its connection
    /// permit meanwhile.
    pub max_time: Duration,
}

impl Linger {
    /// Bounds for an ingress whose largest accepted request body is `max_request_bytes`: up to twice that
    /// is drained (at least 1 MiB), for at most 10 s in total and 5 s between reads.
    pub fn for_max_request(max_request_bytes: usize) -> Linger {
        Linger {
            max_bytes: (max_request_bytes as u64)
                .saturating_mul(2)
                .max(1024 * 1024),
            idle_timeout: Duration::from_secs(5),
            max_time: Duration::from_secs(10),
        }
    }
}

impl Default for Linger {
    /// The bounds for the default 8 MiB batch limit: 16 MiB, 5 s idle, 10 s total.
    fn default() -> Self {
        Linger::for_max_request(8 * 1024 * 1024)
    }
}

/// A `TcpListener` that holds at most `max` connections open.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    /// Bounds of the lingering close of connections the server ends first.
    linger: Linger,
}

impl LimitedListener {
    /// Wraps a bound listener; connections linger with [`Linger::default`] bounds.
    pub fn new(inner: TcpListener, max: usize) -> LimitedListener {
        LimitedListener {
            inner,
            permits: Arc::new(Semaphore::new(max.max(1))),
            linger: Linger::default(),
        }
    }

    /// Sets the bounds of the lingering close.
    pub fn with_linger(mut self, linger: Linger) -> LimitedListener {
        self.linger = linger;
        self
    }
}

/// An accepted connection; closing it frees its slot (after a lingering close, see the module docs).
#[derive(Debug)]
pub struct LimitedStream {
    /// The socket; `None` only once `drop` has handed it to the lingering task.
    stream: Option<TcpStream>,
    /// The connection's slot; it moves to the lingering task together with the socket.
    permit: Option<OwnedSemaphorePermit>,
    /// Bounds of the lingering close.
    linger: Linger,
    /// The peer finished sending (a read returned end-of-file) or the connection failed: closing cannot
    /// cause a reset, so `drop` closes at once.
    peer_done: bool,
}

impl LimitedStream {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, linger: Linger) -> LimitedStream {
        LimitedStream {
            stream: Some(stream),
            permit: Some(permit),
            linger,
            peer_done: false,
        }
    }

    /// The socket, pinned (a `TcpStream` is `Unpin`).
    fn io(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Records an I/O failure: the connection is gone, there is nothing to linger for.
    fn note<T>(&mut self, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(_)) = &r {
            self.peer_done = true;
        }
        r
    }
}

impl Drop for LimitedStream {
    fn drop(&mut self) {
        if self.peer_done {
            return;
        }
        let (Some(stream), Some(permit)) = (self.stream.take(), self.permit.take()) else {
            return;
        };
        // Outside a runtime (only while it shuts down) the socket is simply closed.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let bounds = self.linger;
        runtime.spawn(async move {
            let end = linger(stream, bounds).await;
            tracing::debug!(?end, "Lingering close ended.");
            drop(permit);
        });
    }
}

/// How a lingering close ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LingerEnd {
    /// The client closed its side: the connection closes cleanly.
    Eof,
    /// [`Linger::max_bytes`] were discarded.
    ByteLimit,
    /// Nothing arrived for [`Linger::idle_timeout`].
    Idle,
    /// [`Linger::max_time`] elapsed.
    TimeLimit,
    /// The connection failed (e.g. reset by the client).
    Error,
}

/// Shuts down the write side of `stream`, then reads and discards what the client still sends until it
/// closes or a bound is reached; dropping the returned-from stream then closes the socket.
pub(crate) async fn linger(mut stream: TcpStream, bounds: Linger) -> LingerEnd {
    // FIN after the response already in the send buffer. An error (already shut down, or reset) is
    // harmless: the reads below then end at once.
    let _ = stream.shutdown().await;
    let deadline = Instant::now() + bounds.max_time;
    let mut buf = [0u8; DISCARD_BUFFER_BYTES];
    let mut left = bounds.max_bytes;
    while left > 0 {
        let now = Instant::now();
        if now >= deadline {
            return LingerEnd::TimeLimit;
        }
        let wait_until = deadline.min(now + bounds.idle_timeout);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match tokio::time::timeout_at(wait_until, stream.read(&mut buf[..want])).await {
            Ok(Ok(0)) => return LingerEnd::Eof,
            Ok(Ok(n)) => left = left.saturating_sub(n as u64),
            Ok(Err(_)) => return LingerEnd::Error,
            Err(_) if wait_until == deadline => return LingerEnd::TimeLimit,
            Err(_) => return LingerEnd::Idle,
        }
    }
    LingerEnd::ByteLimit
}

impl Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (LimitedStream, SocketAddr) {
        let permit = match self.permits.clone().acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (LimitedStream::new(stream, permit, self.linger), addr);
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let r = match this.io() {
            Ok(io) => io.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        };
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            // End of file: the client sends nothing more.
            this.peer_done = true;
        }
        this.note(r)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = match self.io() {
            Ok(io) => io.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        };
        self.note(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = match self.io() {
            Ok(io) => io.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        };
        self.note(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = match self.io() {
            Ok(io) => io.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        };
        self.note(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = match self.io() {
            Ok(io) => io.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        };
        self.note(r)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Generous deadline for things that must happen (they take milliseconds).
    const PATIENCE: Duration = Duration::from_secs(20);

    /// A connected (client, server) pair.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    /// Writes until the connection fails; returns the bytes written.
    fn send_forever(mut client: TcpStream) -> tokio::task::JoinHandle<u64> {
        tokio::spawn(async move {
            let chunk = [b'x'; 8192];
            let mut sent = 0u64;
            while client.write_all(&chunk).await.is_ok() {
                sent += chunk.len() as u64;
            }
            sent
        })
    }

    #[tokio::test]
    async fn accept_waits_while_the_limit_is_reached() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut l = LimitedListener::new(inner, 1);
        let mut c1 = TcpStream::connect(addr).await.unwrap();
        let (first, _) = l.accept().await;
        let _c2 = TcpStream::connect(addr).await.unwrap();
        // The second connection is not accepted while the first is open...
        let pending = tokio::time::timeout(Duration::from_millis(100), l.accept()).await;
        assert!(pending.is_err());
        // ...nor while the first lingers (the server closed first, the client has not)...
        drop(first);
        let pending = tokio::time::timeout(Duration::from_millis(100), l.accept()).await;
        assert!(pending.is_err());
        // ...and is once the client sees the end of the connection and closes its side.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(PATIENCE, c1.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
        drop(c1);
        let second = tokio::time::timeout(PATIENCE, l.accept()).await;
        assert!(second.is_ok());
    }

    #[tokio::test]
    async fn a_connection_the_client_closed_first_frees_its_slot_at_once() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut l = LimitedListener::new(inner, 1).with_linger(Linger {
            max_bytes: u64::MAX,
            idle_timeout: Duration::from_secs(3600),
            max_time: Duration::from_secs(3600),
        });
        let c1 = TcpStream::connect(addr).await.unwrap();
        let (mut first, _) = l.accept().await;
        drop(c1);
        let mut buf = [0u8; 16];
        assert_eq!(first.read(&mut buf).await.unwrap(), 0);
        drop(first);
        let _c2 = TcpStream::connect(addr).await.unwrap();
        let second = tokio::time::timeout(PATIENCE, l.accept()).await;
        assert!(second.is_ok());
    }

    /// The scenario of the module docs: the server answers and closes while the client is still
    /// sending a large body; the client, which reads only after writing everything, gets the answer.
    #[tokio::test]
    async fn a_client_still_sending_gets_the_response_and_a_clean_close() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut l = LimitedListener::new(inner, 1);
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&vec![b'x'; 4 * 1024 * 1024]).await?;
            let mut got = Vec::new();
            c.read_to_end(&mut got).await?;
            io::Result::Ok(got)
        });
        let (mut s, _) = l.accept().await;
        let mut head = [0u8; 1024];
        s.read_exact(&mut head).await.unwrap();
        s.write_all(b"answer").await.unwrap();
        s.flush().await.unwrap();
        drop(s);
        let got = tokio::time::timeout(PATIENCE, client)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.unwrap(), b"answer");
    }

    #[tokio::test]
    async fn a_client_sending_forever_is_closed_after_the_time_bound() {
        let (client, server) = pair().await;
        let sender = send_forever(client);
        let bounds = Linger {
            max_bytes: u64::MAX,
            idle_timeout: Duration::from_secs(3600),
            max_time: Duration::from_millis(300),
        };
        let started = Instant::now();
        let end = tokio::time::timeout(PATIENCE, linger(server, bounds)).await;
        assert_eq!(end, Ok(LingerEnd::TimeLimit));
        assert!(started.elapsed() >= bounds.max_time);
        // The socket is closed: the client's writes fail.
        let sent = tokio::time::timeout(PATIENCE, sender).await;
        assert!(
            sent.is_ok(),
            "the client kept writing to a closed connection"
        );
    }

    #[tokio::test]
    async fn a_client_sending_more_than_the_byte_bound_is_cut_off() {
        let (client, server) = pair().await;
        let sender = send_forever(client);
        let bounds = Linger {
            max_bytes: 256 * 1024,
            idle_timeout: Duration::from_secs(3600),
            max_time: Duration::from_secs(3600),
        };
        let end = tokio::time::timeout(PATIENCE, linger(server, bounds)).await;
        assert_eq!(end, Ok(LingerEnd::ByteLimit));
        let sent = tokio::time::timeout(PATIENCE, sender)
            .await
            .unwrap()
            .unwrap();
        assert!(sent >= bounds.max_bytes, "{sent}");
    }

    #[tokio::test]
    async fn a_silent_client_is_closed_after_the_idle_timeout() {
        let (_client, server) = pair().await;
        let bounds = Linger {
            max_bytes: u64::MAX,
            idle_timeout: Duration::from_millis(200),
            max_time: Duration::from_secs(3600),
        };
        let started = Instant::now();
        let end = tokio::time::timeout(PATIENCE, linger(server, bounds)).await;
        assert_eq!(end, Ok(LingerEnd::Idle));
        assert!(started.elapsed() >= bounds.idle_timeout);
    }

    #[tokio::test]
    async fn lingering_ends_when_the_client_closes() {
        let (mut client, server) = pair().await;
        let bounds = Linger {
            max_bytes: u64::MAX,
            idle_timeout: Duration::from_secs(3600),
            max_time: Duration::from_secs(3600),
        };
        let lingering = tokio::spawn(linger(server, bounds));
        client.write_all(b"rest of a body").await.unwrap();
        // The server's side is shut down for writing: the client sees end-of-file...
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        // ...and its close ends the lingering.
        drop(client);
        let end = tokio::time::timeout(PATIENCE, lingering)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(end, LingerEnd::Eof);
    }

    #[test]
    fn bounds_scale_with_the_request_limit() {
        assert_eq!(Linger::default().max_bytes, 16 * 1024 * 1024);
        assert_eq!(Linger::for_max_request(100).max_bytes, 1024 * 1024);
        assert_eq!(
            Linger::for_max_request(usize::MAX).max_bytes,
            (usize::MAX as u64).saturating_mul(2)
        );
    }
}
