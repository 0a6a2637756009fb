//! Reading a request body within its limits: size (413) and deadline with a minimum rate (408).

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

use super::{error, Body};

/// Read a request body within the limits: at most `max_body_bytes` (413), started and never
/// paused beyond `body_timeout`, and complete within `body_timeout + len / min_body_rate`
/// (408). Either refusal closes the connection (the rest of the body is never read).
pub(super) async fn read_body(
    limits: &crate::spec::Limits,
    headers: &HeaderMap,
    mut body: Incoming,
) -> Result<Bytes, Response<Body>> {
    let max = limits.max_body_bytes;
    let closing = |mut r: Response<Body>| {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let too_large = || closing(error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let timed_out = || {
        crate::metrics::timeout("body");
        closing(error(StatusCode::REQUEST_TIMEOUT, "request_timeout"))
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(too_large());
        }
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let start = tokio::time::Instant::now();
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut received = 0usize;
    loop {
        let by_rate = match limits.min_body_rate {
            0 => std::time::Duration::MAX / 4,
            r => std::time::Duration::from_secs_f64(received as f64 / r as f64),
        };
        let pause = tokio::time::Instant::now() + limits.body_timeout;
        let deadline = pause.min(start + limits.body_timeout + by_rate);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => break,
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(e))) if is_timeout(&e) => return Err(timed_out()),
            Ok(Some(Err(_))) => return Err(closing(error(StatusCode::BAD_REQUEST, "bad_body"))),
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received += data.len();
        if received > max {
            return Err(too_large());
        }
        match &first {
            None if rest.is_empty() => first = Some(data),
            _ => {
                if let Some(f) = first.take() {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| rest.freeze()))
}

/// The body read failed because the framing gate's body deadline passed.
pub(super) fn is_timeout(e: &hyper::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        src = s.source();
    }
    false
}
