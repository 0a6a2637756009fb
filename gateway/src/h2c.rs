//! HTTP/2: a connection whose first bytes are the HTTP/2 preface (h2c with prior knowledge, or
//! TLS after ALPN `h2`) is served by hyper's HTTP/2 server with the same request handler;
//! everything else goes to the HTTP/1 gate.
//!
//! Abuse limits (hyper / h2): at most 256 concurrent streams; a header list above `max_head` is
//! refused (the h2 codec also bounds the CONTINUATION frames that make one up, so a flood of
//! them ends the connection instead of buffering); streams reset by the client before we
//! answered (CVE-2023-44487 "rapid reset") count against `max_pending_accept_reset_streams`
//! and streams we had to reset against `max_local_error_reset_streams`: past either, GOAWAY.
//!
//! Deadlines: hyper's HTTP/2 server has none for a connection that opens no stream (a client
//! that sends the preface and answers PINGs would hold a connection slot for ever), so
//! [`serve`] watches [`Activity`]: no request within `first_request_timeout` of the preface, or
//! no request in flight for `idle_timeout`, ends the connection gracefully (GOAWAY; streams in
//! progress finish). A stalled request body is bounded by the handler's body deadline.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// The HTTP/2 connection preface (cleartext, prior knowledge).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Read until the first bytes tell HTTP/2 (preface) from HTTP/1. False: closed or timed out
/// before a single byte arrived.
pub(crate) async fn sniff<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(buf) {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            // let the HTTP/1 gate answer a partial head (408) or close
            _ => return !buf.is_empty(),
        }
    }
    true
}

/// Whether the first bytes are the HTTP/2 preface.
pub(crate) fn is_preface(initial: &[u8]) -> bool {
    initial.starts_with(H2_PREFACE)
}

/// Concurrent streams per connection.
const MAX_STREAMS: u32 = 256;
/// Streams the client opened and reset before we accepted them (rapid reset), then GOAWAY.
const MAX_PENDING_RESETS: usize = 64;
/// Streams we reset because the client broke the protocol, then GOAWAY.
const MAX_LOCAL_RESETS: usize = 256;

/// Requests in flight on one HTTP/2 connection and when the last one ended.
pub(crate) struct Activity {
    start: tokio::time::Instant,
    in_flight: AtomicUsize,
    /// Requests ever started (0: still waiting for the first).
    started: AtomicUsize,
    /// Milliseconds after `start` when the connection last became idle.
    idle_since_ms: AtomicU64,
}

/// Held while a request is being handled.
pub(crate) struct Busy(Arc<Activity>);

impl Activity {
    /// A new connection's activity, starting now.
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: tokio::time::Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// Mark a request in flight until the returned guard drops.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// When the connection may be closed if nothing happens before (None: a request is in
    /// flight).
    fn deadline(&self, s: &Settings) -> Option<(tokio::time::Instant, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.started.load(Ordering::Relaxed) == 0 {
            return Some((self.start + s.first_request_timeout, "h2_first_request"));
        }
        let idle = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some((self.start + idle + s.idle_timeout, "h2_idle"))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = a.start.elapsed().as_millis() as u64;
        a.idle_since_ms.store(ms, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// Limits of one h2c connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Largest header list (431-equivalent: the stream is refused).
    pub(crate) max_head: usize,
    /// The first request must arrive within this after the preface.
    pub(crate) first_request_timeout: Duration,
    /// With no request in flight for this long, the connection ends (GOAWAY).
    pub(crate) idle_timeout: Duration,
    /// Time given to streams in progress once the connection ends.
    pub(crate) grace: Duration,
}

/// Serve one HTTP/2 connection with the same service as HTTP/1 (hyper's HTTP/2 framing and limits).
pub(crate) async fn serve<S, IO>(
    stream: IO,
    initial: Vec<u8>,
    svc: S,
    settings: Settings,
    activity: Arc<Activity>,
    shutdown: CancellationToken,
) where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::handler::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let io = Prefixed::new(initial, stream);
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(settings.max_head as u32)
        .max_concurrent_streams(MAX_STREAMS)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_RESETS)
        .keep_alive_interval(Duration::from_secs(30));
    let serving = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(serving);
    // re-checked at least this often while requests are in flight
    let poll = settings.idle_timeout.min(settings.first_request_timeout);
    loop {
        let (at, phase) = activity
            .deadline(&settings)
            .unwrap_or((tokio::time::Instant::now() + poll, ""));
        tokio::select! {
            _ = serving.as_mut() => return,
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(at) => {
                if phase.is_empty() || activity.deadline(&settings).is_none_or(|(now_at, _)| now_at > at) {
                    continue;
                }
                crate::metrics::timeout(phase);
                break;
            }
        }
    }
    serving.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(settings.grace, serving.as_mut()).await;
}

/// A stream with some bytes already read in front of it.
pub(crate) struct Prefixed<IO> {
    prefix: Vec<u8>,
    pos: usize,
    io: IO,
}

impl<IO> Prefixed<IO> {
    /// `io` with `prefix` read first.
    pub(crate) fn new(prefix: Vec<u8>, io: IO) -> Self {
        Prefixed { prefix, pos: 0, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let pos = self.pos;
            buf.put_slice(&self.prefix[pos..pos + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
