//! h2c with prior knowledge: a connection whose first bytes are the HTTP/2 preface is served by
//! hyper's HTTP/2 server with the same request handler; everything else goes to the HTTP/1 gate.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The HTTP/2 connection preface (cleartext, prior knowledge).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Read until the first bytes tell HTTP/2 (preface) from HTTP/1. False: closed or timed out
/// before a single byte arrived.
pub async fn sniff(stream: &mut TcpStream, buf: &mut Vec<u8>, timeout: Duration) -> bool {
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
pub fn is_preface(initial: &[u8]) -> bool {
    initial.starts_with(H2_PREFACE)
}

/// Serve one h2c connection with the same service as HTTP/1 (hyper's HTTP/2 framing and limits).
pub async fn serve<S>(
    mut stream: TcpStream,
    initial: Vec<u8>,
    svc: S,
    max_head: usize,
    shutdown: CancellationToken,
    grace: Duration,
) where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::handler::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let io = Prefixed {
        prefix: initial,
        pos: 0,
        io: &mut stream,
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(max_head as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30));
    let serving = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(serving);
    tokio::select! {
        _ = serving.as_mut() => {}
        _ = shutdown.cancelled() => {
            serving.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(grace, serving.as_mut()).await;
        }
    }
}

/// A stream with some bytes already read in front of it.
struct Prefixed<'a> {
    prefix: Vec<u8>,
    pos: usize,
    io: &'a mut TcpStream,
}

impl tokio::io::AsyncRead for Prefixed<'_> {
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
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut *self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut *self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut *self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}
