//! `bench http` and `bench l4`: HTTP/1.1 requests (hyper's client connection, keep-alive or a
//! new connection per request) with a bearer token, over paths from a list; and raw L4
//! connections (connect, send a request, read until the server closes). Request parts (URIs,
//! header values) are built once; the request path only clones them.

use crate::load::{ErrorKind, Timing, Worker};
use crate::rawhttp::RawConn;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What the HTTP workers send.
#[derive(Debug)]
pub struct HttpSpec {
    /// `Host` header.
    pub host: HeaderValue,
    pub paths: Vec<Uri>,
    /// `Authorization` values, used in turn (several subjects spread rate limits).
    pub auth: Vec<HeaderValue>,
    /// Reuse connections (else `Connection: close` and a new connection per request).
    pub keepalive: bool,
    pub timeout: Duration,
    /// Requests rendered once, path-major then token: keep-alive ones go through [`RawConn`],
    /// `Connection: close` ones are written on a new connection and read until the server closes
    /// (no per-request client state either way).
    raw: Vec<Vec<u8>>,
}

impl HttpSpec {
    /// Builds the spec; `Err` names what is wrong.
    pub fn new(
        host: &str,
        paths: &[String],
        tokens: &[String],
        keepalive: bool,
        timeout: Duration,
    ) -> Result<HttpSpec, String> {
        let paths = paths
            .iter()
            .map(|p| p.parse::<Uri>().map_err(|e| format!("path {p:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if paths.is_empty() {
            return Err("give at least one path".into());
        }
        let auth = tokens
            .iter()
            .map(|t| {
                HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| "the token has characters a header cannot carry".to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let host = HeaderValue::from_str(host).map_err(|_| format!("bad host {host:?}"))?;
        let mut raw = Vec::new();
        {
            for p in &paths {
                for a in auth.iter().map(Some).chain(auth.is_empty().then_some(None)) {
                    let mut r = format!("GET {p} HTTP/1.1\r\nHost: ").into_bytes();
                    r.extend_from_slice(host.as_bytes());
                    if let Some(a) = a {
                        r.extend_from_slice(b"\r\nAuthorization: ");
                        r.extend_from_slice(a.as_bytes());
                    }
                    if keepalive {
                        r.extend_from_slice(b"\r\n\r\n");
                    } else {
                        r.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
                    }
                    raw.push(r);
                }
            }
        }
        Ok(HttpSpec {
            host,
            paths,
            auth,
            keepalive,
            timeout,
            raw,
        })
    }
}

/// hyper's connection state machine, driven by the worker's own task (no task per connection,
/// no cross-task wake-up per request).
type Driver = hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>;
/// The sending half and the driven connection.
type Live = (SendRequest<Empty<Bytes>>, Pin<Box<Driver>>);

/// One HTTP client connection (opened on demand, reopened after errors).
pub struct HttpConn {
    live: Option<Live>,
    addr: Option<SocketAddr>,
}

pub(crate) fn status_error(code: u16) -> ErrorKind {
    match code {
        300..=399 => "http 3xx",
        401 => "http 401",
        403 => "http 403",
        404 => "http 404",
        429 => "http 429",
        400..=499 => "http 4xx",
        502 => "http 502",
        503 => "http 503",
        504 => "http 504",
        _ => "http 5xx",
    }
}

impl Default for HttpConn {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpConn {
    pub fn new() -> Self {
        HttpConn {
            live: None,
            addr: None,
        }
    }

    /// Drops the connection (the next request connects again).
    pub fn reset(&mut self) {
        self.live = None;
    }

    /// Sends request number `i` of `spec` to `addr`; fills `connect` and `ttfb` of `t`.
    pub async fn request(
        &mut self,
        addr: SocketAddr,
        spec: &HttpSpec,
        i: usize,
        t: &mut Timing,
    ) -> Result<(), ErrorKind> {
        let reuse =
            self.addr == Some(addr) && self.live.as_ref().is_some_and(|(s, _)| !s.is_closed());
        if !reuse {
            let t0 = Instant::now();
            let stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect refused",
                _ => "connect error",
            })?;
            let _ = stream.set_nodelay(true);
            let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| "http handshake")?;
            t.connect = Some(t0.elapsed());
            self.live = Some((sender, Box::pin(driver)));
            self.addr = Some(addr);
        }
        let (sender, driver) = self.live.as_mut().expect("set above");
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.uri_mut() = spec.paths[i % spec.paths.len()].clone();
        let h = req.headers_mut();
        h.insert(HOST, spec.host.clone());
        if !spec.auth.is_empty() {
            h.insert(AUTHORIZATION, spec.auth[i % spec.auth.len()].clone());
        }
        if !spec.keepalive {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let r = {
            let exchange = async {
                sender.ready().await.map_err(|_| "http error")?;
                let t1 = Instant::now();
                let resp = sender.send_request(req).await.map_err(|_| "http error")?;
                let ttfb = t1.elapsed();
                let code = resp.status().as_u16();
                resp.into_body()
                    .collect()
                    .await
                    .map_err(|_| "http body error")?;
                Ok::<_, ErrorKind>((code, ttfb))
            };
            // the connection is driven here, alongside the exchange; a connection that ends cleanly
            // (`Connection: close`) may have delivered the whole answer already
            tokio::pin!(exchange);
            tokio::select! {
                biased;
                r = &mut exchange => r,
                done = driver.as_mut() => match done {
                    Ok(()) => exchange.await,
                    Err(_) => Err("connection closed"),
                },
            }
        };
        if r.is_err() || !spec.keepalive {
            self.live = None;
        }
        let (code, ttfb) = r?;
        t.ttfb = Some(ttfb);
        if (200..300).contains(&code) {
            Ok(())
        } else {
            Err(status_error(code))
        }
    }
}

/// `bench http`: requests to one address.
pub struct HttpWorker {
    addr: SocketAddr,
    spec: Arc<HttpSpec>,
    conn: RawConn,
    i: usize,
    buf: Vec<u8>,
}

impl HttpWorker {
    pub fn new(addr: SocketAddr, spec: Arc<HttpSpec>, offset: usize) -> Self {
        HttpWorker {
            addr,
            spec,
            conn: RawConn::default(),
            i: offset,
            buf: Vec::new(),
        }
    }
}

/// Connects, writes `req`, reads until the server closes; the status code of the answer.
async fn raw_exchange(
    addr: SocketAddr,
    req: &[u8],
    buf: &mut Vec<u8>,
    t: &mut Timing,
) -> Result<u16, ErrorKind> {
    if buf.is_empty() {
        buf.resize(16 * 1024, 0);
    }
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect refused",
        _ => "connect error",
    })?;
    t.connect = Some(t0.elapsed());
    let _ = s.set_nodelay(true);
    s.write_all(req).await.map_err(|_| "write error")?;
    let t1 = Instant::now();
    read_to_close(&mut s, buf, t, t1).await
}

/// Reads an answer until the server closes (a reset or a missing TLS close_notify after some
/// bytes counts as the end); sets `ttfb` from `since`; the status code of the answer.
pub(crate) async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut [u8],
    t: &mut Timing,
    since: Instant,
) -> Result<u16, ErrorKind> {
    let mut total = 0;
    let mut status = [0u8; 12];
    loop {
        match s.read(buf).await {
            Ok(0) => break,
            Ok(n) => {
                if total == 0 {
                    t.ttfb = Some(since.elapsed());
                }
                if total < status.len() {
                    let k = (status.len() - total).min(n);
                    status[total..total + k].copy_from_slice(&buf[..k]);
                }
                total += n;
            }
            Err(e)
                if total > 0
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                    ) =>
            {
                break
            }
            Err(_) => return Err("read error"),
        }
    }
    if total == 0 {
        return Err("closed without answer");
    }
    Ok(parse_status(&status))
}

/// The status code of `HTTP/1.x NNN`, or 0.
fn parse_status(head: &[u8; 12]) -> u16 {
    if !head.starts_with(b"HTTP/1.") || head[8] != b' ' {
        return 0;
    }
    head[9..12]
        .iter()
        .try_fold(0u16, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u16::from(d - b'0'))
        })
        .unwrap_or(0)
}

impl Worker for HttpWorker {
    async fn call(&mut self) -> Result<Timing, ErrorKind> {
        let mut t = Timing::default();
        self.i = self.i.wrapping_add(1);
        let timeout = self.spec.timeout;
        let spec = &self.spec;
        let per_path = spec.raw.len() / spec.paths.len();
        let req = &spec.raw[(self.i % spec.paths.len()) * per_path + self.i % per_path];
        let r = if spec.keepalive {
            let r = tokio::time::timeout(timeout, self.conn.exchange(self.addr, req, &mut t)).await;
            if r.is_err() {
                self.conn = RawConn::default();
            }
            r
        } else {
            tokio::time::timeout(timeout, raw_exchange(self.addr, req, &mut self.buf, &mut t)).await
        };
        match r {
            Ok(Ok(code)) if (200..300).contains(&code) => Ok(t),
            Ok(Ok(0)) => Err("http bad answer"),
            Ok(Ok(code)) => Err(status_error(code)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("timeout"),
        }
    }
}

/// `bench l4`: connect, send `payload`, read until the server closes (at least one byte).
pub struct L4Worker {
    addr: SocketAddr,
    payload: Arc<Vec<u8>>,
    timeout: Duration,
    buf: Vec<u8>,
}

impl L4Worker {
    pub fn new(addr: SocketAddr, payload: Arc<Vec<u8>>, timeout: Duration) -> Self {
        L4Worker {
            addr,
            payload,
            timeout,
            buf: vec![0; 16 * 1024],
        }
    }

    async fn once(&mut self, t: &mut Timing) -> Result<(), ErrorKind> {
        raw_exchange(self.addr, &self.payload, &mut self.buf, t)
            .await
            .map(|_| ())
    }
}

impl Worker for L4Worker {
    async fn call(&mut self) -> Result<Timing, ErrorKind> {
        let mut t = Timing::default();
        match tokio::time::timeout(self.timeout, self.once(&mut t)).await {
            Ok(r) => r.map(|_| t),
            Err(_) => Err("timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 200"), 200);
        assert_eq!(parse_status(b"HTTP/1.0 503"), 503);
        assert_eq!(parse_status(b"HTTP/1.1 2x0"), 0);
        assert_eq!(parse_status(b"SSH-2.0-Open"), 0);
    }
}
