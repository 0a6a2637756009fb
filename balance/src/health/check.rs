//! Active health check specifications and the probes themselves (tcp connect, HTTP status/body,
//! send/expect bytes). One probe = one fresh TCP connection, bounded in time and bytes.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connect succeeds.
    Tcp,
    /// An HTTP/1.1 request answers with a status in range (and the body contains a substring).
    Http {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// `Host` header (default: the backend's address).
        host: Option<String>,
        /// Statuses that count as healthy.
        expect_status: RangeInclusive<u16>,
        /// A substring the body must contain.
        body_contains: Option<String>,
    },
    /// `send` is written, and the reply contains `expect` (read up to 64 KiB).
    SendExpect {
        /// Bytes written after connecting.
        send: Vec<u8>,
        /// Bytes the reply must contain.
        expect: Vec<u8>,
    },
    /// The inner check over TLS (an `http` check of a service whose instances speak TLS: the
    /// handshake verifies the instance as the calls do, then the request goes over it).
    Tls {
        /// How to verify the instance.
        tls: CheckTls,
        /// The check made over the TLS connection (not itself `Tls`).
        inner: Box<CheckKind>,
    },
}

/// TLS settings of a check: the same client configuration as the calls to the instance.
#[derive(Debug, Clone)]
pub struct CheckTls {
    /// Verifies the instance's certificate.
    pub config: Arc<rustls::ClientConfig>,
    /// Sent as SNI and verified (`None`: the instance's IP address).
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
    /// The CA file the configuration came from (what makes two checks the same on reload).
    pub ca: PathBuf,
}

impl PartialEq for CheckTls {
    fn eq(&self, o: &Self) -> bool {
        self.ca == o.ca && self.server_name == o.server_name
    }
}
impl Eq for CheckTls {}

/// An active health check for one backend.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// What a probe does.
    pub kind: CheckKind,
    /// Time between probes.
    pub interval: Duration,
    /// Fraction of `interval` (0.0..=1.0) added at random to each wait so checks do not align.
    pub jitter: f64,
    /// Bound on one probe (connect + exchange).
    pub timeout: Duration,
    /// Consecutive successes that bring a down backend up.
    pub rise: u32,
    /// Consecutive failures that take an up backend down.
    pub fall: u32,
}

impl CheckSpec {
    /// A TCP connect check with the usual defaults (2 s interval, 1 s timeout, rise 2, fall 3).
    pub fn tcp() -> Self {
        CheckSpec {
            kind: CheckKind::Tcp,
            interval: Duration::from_secs(2),
            jitter: 0.1,
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }

    /// Same check with another interval/timeout (handy in tests).
    pub fn with_timing(mut self, interval: Duration, timeout: Duration) -> Self {
        self.interval = interval;
        self.timeout = timeout;
        self
    }

    /// Same check with other rise/fall thresholds.
    pub fn with_thresholds(mut self, rise: u32, fall: u32) -> Self {
        self.rise = rise;
        self.fall = fall;
        self
    }

    /// Short name of the check kind, for reasons and logs.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            CheckKind::Tcp => "tcp",
            CheckKind::Http { .. } => "http",
            CheckKind::SendExpect { .. } => "send_expect",
            CheckKind::Tls { ref inner, .. } => match inner.as_ref() {
                CheckKind::Http { .. } => "https",
                CheckKind::Tcp => "tls",
                _ => "tls_send_expect",
            },
        }
    }
}

const MAX_REPLY: usize = 64 * 1024;

/// Runs one probe (without the timeout: the caller bounds it). `Err` carries a short detail.
pub async fn probe(addr: SocketAddr, kind: &CheckKind) -> Result<(), String> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    match kind {
        CheckKind::Tls { tls, inner } => {
            let name = tls
                .server_name
                .clone()
                .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(addr.ip().into()));
            let s = tokio_rustls::TlsConnector::from(tls.config.clone())
                .connect(name, s)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            exchange(s, addr, inner).await
        }
        other => exchange(s, addr, other).await,
    }
}

/// The check's exchange on a connected stream.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    addr: SocketAddr,
    kind: &CheckKind,
) -> Result<(), String> {
    match kind {
        CheckKind::Tcp => Ok(()),
        CheckKind::Tls { .. } => Err("TLS inside TLS is not a check".into()),
        CheckKind::Http {
            method,
            path,
            host,
            expect_status,
            body_contains,
        } => {
            let host = host.clone().unwrap_or_else(|| addr.to_string());
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: switchyard-health\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let reply = read_bounded(&mut s, None).await?;
            check_http(&reply, expect_status, body_contains.as_deref())
        }
        CheckKind::SendExpect { send, expect } => {
            s.write_all(send).await.map_err(|e| format!("write: {e}"))?;
            let reply = read_bounded(&mut s, Some(expect)).await?;
            if contains(&reply, expect) {
                Ok(())
            } else {
                Err(format!(
                    "expected bytes not found in {} reply bytes",
                    reply.len()
                ))
            }
        }
    }
}

/// Reads until EOF, `MAX_REPLY` bytes, or (if given) `stop` appears.
async fn read_bounded<S: AsyncRead + Unpin>(
    s: &mut S,
    stop: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(n) => n,
            // a TLS peer that closes without close_notify after its answer
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => 0,
            Err(e) => return Err(format!("read: {e}")),
        };
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() >= MAX_REPLY || stop.is_some_and(|p| contains(&buf, p)) {
            return Ok(buf);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Checks an HTTP reply: status line in range, optional body substring.
pub fn check_http(
    reply: &[u8],
    expect: &RangeInclusive<u16>,
    body_contains: Option<&str>,
) -> Result<(), String> {
    let line_end = reply
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| "no status line".to_string())?;
    let line = String::from_utf8_lossy(&reply[..line_end]);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {:?}", line.trim_end()))?;
    if !expect.contains(&status) {
        return Err(format!("status {status}"));
    }
    if let Some(want) = body_contains {
        let body_at = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .unwrap_or(reply.len());
        if !contains(&reply[body_at..], want.as_bytes()) {
            return Err(format!("status {status} but body lacks {want:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_and_body() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(check_http(ok, &(200..=399), Some("ok")), Ok(()));
        assert!(check_http(ok, &(200..=399), Some("ready")).is_err());
        let bad = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
        assert_eq!(
            check_http(bad, &(200..=399), None),
            Err("status 503".into())
        );
        assert!(check_http(b"garbage", &(200..=399), None).is_err());
    }
}
