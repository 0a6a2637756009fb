//! WebSocket upgrades (RFC 6455) through the gateway.
//!
//! An HTTP/1.1 `GET` with `Connection: upgrade` and `Upgrade: websocket` goes through the whole
//! pipeline like any request (route, JWT, roles, rate limit) and is forwarded to a service
//! instance with its upgrade headers. When the instance answers `101 Switching Protocols`, the
//! handler answers `101` itself, carrying the instance's upgraded connection along as
//! [`Pending`]; the server keeps it in the connection's [`UpgradeSlot`], and once hyper has
//! written the `101` it takes the client's socket back and [`relay`]s bytes both ways until both sides close, the idle timeout passes or the
//! gateway shuts down. Any other answer from the instance is passed on as a normal response.
//!
//! The client socket is taken back from under the framing gate, not through hyper's upgrade
//! machinery, because the gate borrows the socket (hyper wants to own it for an upgrade). A
//! client may not send before it has the `101` (RFC 6455 §4.1); whatever it sent anyway is
//! still in the gate's buffer and goes to the instance first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Bytes moved per read, each way.
const BUF: usize = 16 * 1024;
/// How long the instance's side of an accepted upgrade may take to be handed over.
const HANDOVER: Duration = Duration::from_secs(5);

/// Is this a WebSocket opening handshake (RFC 6455 §4.1: HTTP/1.1 `GET`, `Upgrade: websocket`,
/// `Connection` naming `upgrade`)?
pub fn is_upgrade(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    method == Method::GET
        && version == Version::HTTP_11
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

/// Puts the upgrade headers back on a request or response whose hop-by-hop headers were
/// stripped.
pub fn restore_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// An accepted upgrade, carried from the handler to the server in the `101` response's
/// extensions.
#[derive(Clone)]
pub struct Pending(pub OnUpgrade);

/// Where the server keeps an accepted upgrade until hyper has written the `101`.
#[derive(Default)]
pub struct UpgradeSlot(Mutex<Option<OnUpgrade>>);

impl UpgradeSlot {
    /// Keep the instance side of an accepted upgrade.
    pub fn put(&self, upstream: OnUpgrade) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(upstream);
    }

    /// Take the stored upgrade (once).
    pub fn take(&self) -> Option<OnUpgrade> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Relays an upgraded connection: `early` (bytes the client sent after its handshake) goes to
/// the instance first. Ends when both directions have closed, nothing moved for `idle`, or
/// `stop` fires.
pub async fn relay<C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    client: C,
    early: bytes::BytesMut,
    upstream: OnUpgrade,
    idle: Duration,
    stop: CancellationToken,
) {
    let upstream = match tokio::time::timeout(HANDOVER, upstream).await {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "websocket: the instance's side was not handed over");
            return;
        }
        Err(_) => return,
    };
    let mut upstream = TokioIo::new(upstream);
    if !early.is_empty() && upstream.write_all(&early).await.is_err() {
        return;
    }
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    // the last time a byte moved either way, in ms since `start`
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let both = async {
        tokio::join!(
            pump(&mut cr, &mut uw, start, &last),
            pump(&mut ur, &mut cw, start, &last)
        )
    };
    let idle_out = async {
        loop {
            let due = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= due {
                break;
            }
            tokio::time::sleep_until(due).await;
        }
    };
    tokio::select! {
        _ = both => {}
        _ = idle_out => tracing::debug!("websocket: idle timeout"),
        _ = stop.cancelled() => {}
    }
}

/// Copies one direction until end of stream or an error, then half-closes the writer.
async fn pump<R, W>(r: &mut R, w: &mut W, start: Instant, last: &AtomicU64)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::header_map as headers;

    #[test]
    fn only_a_websocket_get_over_http_1_1_is_an_upgrade() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert!(is_upgrade(&Method::GET, Version::HTTP_11, &ws));
        assert!(!is_upgrade(&Method::POST, Version::HTTP_11, &ws));
        assert!(!is_upgrade(&Method::GET, Version::HTTP_10, &ws));
        assert!(!is_upgrade(&Method::GET, Version::HTTP_2, &ws));
        let h2c = headers(&[("connection", "upgrade"), ("upgrade", "h2c")]);
        assert!(!is_upgrade(&Method::GET, Version::HTTP_11, &h2c));
        let no_conn = headers(&[("upgrade", "websocket")]);
        assert!(!is_upgrade(&Method::GET, Version::HTTP_11, &no_conn));
    }
}
