//! DNS over HTTPS (RFC 8484): HTTP/2 or HTTP/1.1 (hyper, over the TLS stream of
//! [`super::tls`]) on one path; `GET ?dns=<base64url>` and `POST` with an
//! `application/dns-message` body go through the same answering core as UDP and TCP (client
//! address for ECS-less geo, ECS honoured, TCP's RRL exemption and size rules: an HTTP answer is
//! never truncated), fresh for the answer's smallest TTL (`Cache-Control: max-age`, §5.1). What
//! is not a DNS query gets the HTTP status RFC 8484 and RFC 9110 call for, never a panic: 404 for another path, 405 for another method (with `Allow`), 415 for a
//! POST of another type, 413 for a body over 16 KiB, 400 for bad base64url, a message the core
//! cannot answer, or AXFR (which has no DoH form). Bounded per connection: 100 concurrent
//! streams, 16 KiB of headers, hyper's rapid-reset guard, and an idle timeout (no request in
//! flight for `idle_timeout` closes the connection gracefully).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use switchyard_config::dns::DnsTls;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::tcp::MAX_TCP_QUERY;
use super::Shared;
use crate::answer::{handle, Ctx, Handled};

/// The media type of a DNS message in HTTP (RFC 8484 §6).
pub const DNS_MESSAGE: &str = "application/dns-message";

/// Requests in flight and the time of the last one's end, to close idle connections.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection is idle long enough to close, as of now (`None`: a request is in
    /// flight).
    fn deadline(&self, idle: Duration) -> Option<Instant> {
        (self.in_flight.load(Ordering::Acquire) == 0).then(|| {
            self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
        })
    }
}

/// Serves one DoH connection until the client closes, it idles, or `shutdown`.
pub(crate) async fn serve<S>(
    io: S,
    peer: SocketAddr,
    spec: &DnsTls,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        start: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_ms: AtomicU64::new(0),
    });
    let path: Arc<str> = spec.path.as_str().into();
    let svc = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (shared, path, activity) = (shared.clone(), path.clone(), activity.clone());
            activity.in_flight.fetch_add(1, Ordering::AcqRel);
            async move {
                let resp = answer(&shared, peer, &path, req).await;
                activity.touch();
                activity.in_flight.fetch_sub(1, Ordering::AcqRel);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(spec.idle_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(16 * 1024)
        .max_pending_accept_reset_streams(Some(20));
    let serving = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(serving);
    let idle = spec.idle_timeout;
    loop {
        let at = activity
            .deadline(idle)
            .unwrap_or_else(|| Instant::now() + idle);
        tokio::select! {
            _ = serving.as_mut() => return,
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(at) => {
                // idle only if nothing happened meanwhile
                if activity.deadline(idle).is_some_and(|d| d <= Instant::now()) {
                    break;
                }
            }
        }
    }
    serving.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(2), serving.as_mut()).await;
}

/// A response with `status` and a short text body (what is wrong, never internals).
fn refuse(shared: &Shared, status: StatusCode, why: &'static str) -> Response<Full<Bytes>> {
    if let Some(i) = crate::metrics::DOH_STATUSES
        .iter()
        .position(|s| *s == status.as_u16())
    {
        shared.metrics.doh_refused[i].increment(1);
    }
    let mut r = Response::new(Full::new(Bytes::from_static(why.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, POST"));
    }
    r
}

/// The DNS message of a DoH request, or the refusal.
async fn query_of(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<Vec<u8>, Response<Full<Bytes>>> {
    match *req.method() {
        Method::GET => {
            shared.metrics.doh_queries[0].increment(1);
            let q = req.uri().query().unwrap_or("");
            let Some(b64) = q.split('&').find_map(|kv| kv.strip_prefix("dns=")) else {
                return Err(refuse(
                    shared,
                    StatusCode::BAD_REQUEST,
                    "no dns= parameter\n",
                ));
            };
            // RFC 8484 §4.1: base64url without padding; padding is tolerated
            let b64 = b64.trim_end_matches('=');
            if b64.len() > MAX_TCP_QUERY * 4 / 3 + 4 {
                return Err(refuse(shared, StatusCode::BAD_REQUEST, "dns= too long\n"));
            }
            data_encoding::BASE64URL_NOPAD
                .decode(b64.as_bytes())
                .map_err(|_| refuse(shared, StatusCode::BAD_REQUEST, "dns= is not base64url\n"))
        }
        Method::POST => {
            shared.metrics.doh_queries[1].increment(1);
            let ct = req.headers().get(CONTENT_TYPE).map(HeaderValue::as_bytes);
            // parameters (e.g. `; charset`) are not part of the type
            let is_dns = ct.is_some_and(|c| {
                c.split(|&b| b == b';')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(DNS_MESSAGE.as_bytes()))
            });
            if !is_dns {
                // read what was sent (bounded) so HTTP/2 ends the stream cleanly, not by reset
                let _ = Limited::new(req.into_body(), MAX_TCP_QUERY).collect().await;
                return Err(refuse(
                    shared,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "POST needs Content-Type: application/dns-message\n",
                ));
            }
            match Limited::new(req.into_body(), MAX_TCP_QUERY).collect().await {
                Ok(b) => Ok(b.to_bytes().to_vec()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(refuse(
                    shared,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "a DNS query is at most 16 KiB\n",
                )),
                Err(_) => Err(refuse(shared, StatusCode::BAD_REQUEST, "body not read\n")),
            }
        }
        _ => Err(refuse(
            shared,
            StatusCode::METHOD_NOT_ALLOWED,
            "GET or POST\n",
        )),
    }
}

async fn answer(
    shared: &Shared,
    peer: SocketAddr,
    path: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != path {
        return refuse(shared, StatusCode::NOT_FOUND, "not found\n");
    }
    let msg = match query_of(shared, req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if msg.len() < 12 {
        shared.metrics.malformed.increment(1);
        return refuse(shared, StatusCode::BAD_REQUEST, "not a DNS message\n");
    }
    let mut out = Vec::with_capacity(512);
    let handled = {
        let state = shared.state.load();
        let ctx = Ctx {
            snap: &state.snapshot,
            health: &*state.health,
            metrics: &shared.metrics,
            client: peer.ip(),
            tcp: true,
            sigs: &shared.tcp_sigs,
        };
        handle(&ctx, &msg, &mut out)
    };
    match handled {
        Handled::Reply { .. } => {
            // RFC 8484 §5.1: fresh no longer than the smallest TTL of the answer
            let max_age = min_ttl(&out).unwrap_or(0);
            let mut r = Response::new(Full::new(Bytes::from(out)));
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
            h.insert(CACHE_CONTROL, max_age_header(max_age));
            r
        }
        Handled::Drop => refuse(shared, StatusCode::BAD_REQUEST, "not a DNS query\n"),
        Handled::Axfr => refuse(
            shared,
            StatusCode::BAD_REQUEST,
            "zone transfers are served over TCP and DoT, not DoH\n",
        ),
    }
}

/// `max-age=<secs>` without formatting machinery.
fn max_age_header(secs: u32) -> HeaderValue {
    let mut buf = [0u8; 18]; // "max-age=" + up to 10 digits
    buf[..8].copy_from_slice(b"max-age=");
    let mut digits = [0u8; 10];
    let (mut n, mut k) = (secs, 0);
    loop {
        digits[k] = b'0' + (n % 10) as u8;
        k += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..k {
        buf[8 + i] = digits[k - 1 - i];
    }
    HeaderValue::from_bytes(&buf[..8 + k]).unwrap_or(HeaderValue::from_static("max-age=0"))
}

/// The smallest TTL of the answer and authority records of a response we wrote (`None`: no
/// records, or bytes that do not parse; never panics).
fn min_ttl(msg: &[u8]) -> Option<u32> {
    let count = |i: usize| {
        msg.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    };
    let (qd, an, ns) = (count(4)?, count(6)?, count(8)?);
    let mut at = 12;
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *msg.get(at)?;
            match len {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => return Some(at + 2),
                l => at += 1 + l as usize,
            }
        }
    };
    for _ in 0..qd {
        at = skip_name(at)? + 4;
    }
    let mut min: Option<u32> = None;
    for _ in 0..an + ns {
        at = skip_name(at)?;
        let f = msg.get(at..at + 10)?;
        let ttl = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
        let rdlen = u16::from_be_bytes([f[8], f[9]]) as usize;
        at += 10 + rdlen;
        min = Some(min.map_or(ttl, |m| m.min(ttl)));
    }
    min
}

#[cfg(test)]
mod tests {
    use super::{max_age_header, min_ttl};

    #[test]
    fn max_age_is_written_exactly() {
        for (n, want) in [
            (0, "max-age=0"),
            (10, "max-age=10"),
            (u32::MAX, "max-age=4294967295"),
        ] {
            assert_eq!(max_age_header(n), want);
        }
    }

    #[test]
    fn min_ttl_walks_answer_and_authority_and_never_panics() {
        // header: 1 question, 2 answers, 1 authority
        let mut m = vec![0, 1, 0x84, 0, 0, 1, 0, 2, 0, 1, 0, 0];
        m.extend(b"\x01a\x07example\x00\x00\x01\x00\x01");
        for ttl in [300u32, 60] {
            m.extend([0xc0, 12, 0, 1, 0, 1]);
            m.extend(ttl.to_be_bytes());
            m.extend([0, 4, 127, 0, 0, 1]);
        }
        m.extend([0xc0, 12, 0, 2, 0, 1]);
        m.extend(3600u32.to_be_bytes());
        m.extend([0, 2, 0xc0, 12]);
        assert_eq!(min_ttl(&m), Some(60));
        for n in 0..m.len() {
            let _ = min_ttl(&m[..n]); // truncated: no panic
        }
        assert_eq!(min_ttl(&m[..m.len() - 1]), Some(60)); // the last rdata is not read
        let mut none = m[..12].to_vec();
        none[5] = 0;
        none[7] = 0;
        none[9] = 0;
        assert_eq!(min_ttl(&none), None);
    }
}
