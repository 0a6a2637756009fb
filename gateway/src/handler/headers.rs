//! Header rules of the request path: hop-by-hop removal (RFC 9110 §7.6.1), the protected
//! identity/forwarding/override headers in every spelling, the Host rules of RFC 9112 §3.2,
//! `X-Forwarded-For` / `Forwarded`, and the request id.

use bytes::BytesMut;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use super::{error, Body, ConnInfo};
use crate::runtime::Runtime;

pub(super) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(super) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// A verified TLS client certificate's subject (never the client's copy).
pub(super) static X_CLIENT_CERT_SUBJECT: HeaderName =
    HeaderName::from_static("x-client-cert-subject");
pub(super) static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
pub(super) static DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
pub(super) static SUNSET: HeaderName = HeaderName::from_static("sunset");
pub(super) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub(super) static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The request id: the client's when well-formed, else a new random one.
pub(super) fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
        {
            return v.clone();
        }
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id: u128 = rand::random();
    let mut buf = [0u8; 32];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1), plus those named in `Connection`.
pub(super) fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names first: most messages carry at most `Connection`, and every
    // removal hashes its name, so only the names that are there are removed.
    let mut present = 0u8;
    for k in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == k) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // names listed in `Connection` (RFC 9110 §7.6.1); the usual `keep-alive` / `close` are
        // removed below or name nothing, so this allocates only for an unusual list
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|n| {
                !n.eq_ignore_ascii_case("close")
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| h.as_str().eq_ignore_ascii_case(n))
            })
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            h.remove(n);
        }
    }
}

/// The hop-by-hop headers of RFC 9110 §7.6.1 (and the legacy `Keep-Alive` /
/// `Proxy-Connection`), never forwarded; `Connection` first.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// The host a request is for, by RFC 9112 §3.2: exactly one valid `Host` (400 for none on
/// HTTP/1.1, several, or a malformed one); the request target's authority wins over it
/// (absolute-form, §3.2.2; h2 `:authority`, RFC 9113 §8.3.1).
pub(super) fn request_host(parts: &http::request::Parts) -> Result<Option<&str>, Response<Body>> {
    let bad = || error(StatusCode::BAD_REQUEST, "bad_host");
    let mut all = parts.headers.get_all(header::HOST).iter();
    let header = all.next();
    if all.next().is_some() {
        return Err(bad());
    }
    let header = match header {
        Some(v) => {
            let h = v.to_str().map_err(|_| bad())?;
            if !valid_host(h) {
                return Err(bad());
            }
            Some(h)
        }
        None if parts.version == http::Version::HTTP_11 => return Err(bad()),
        None => None,
    };
    match parts.uri.authority() {
        Some(a) if !valid_host(a.as_str()) || a.as_str().is_empty() => Err(bad()),
        Some(a) => Ok(Some(a.as_str())),
        None => Ok(header),
    }
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2) without userinfo; empty is allowed (RFC 9112
/// §3.2). Checked byte by byte: no allocation per request.
pub(super) fn valid_host(h: &str) -> bool {
    let b = h.as_bytes();
    if b.is_empty() {
        return true;
    }
    let (host, port) = if b[0] == b'[' {
        // IP-literal
        let Some(end) = b.iter().position(|c| *c == b']') else {
            return false;
        };
        let inner = &b[1..end];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|c| c.is_ascii_hexdigit() || b":.".contains(c))
        {
            return false;
        }
        match &b[end + 1..] {
            [] => (&b[..0], None),
            [b':', port @ ..] => (&b[..0], Some(port)),
            _ => return false,
        }
    } else {
        match b.iter().rposition(|c| *c == b':') {
            Some(i) => (&b[..i], Some(&b[i + 1..])),
            None => (b, None),
        }
    };
    let reg_name = host
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(c));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    reg_name && port_ok && (b[0] == b'[' || !host.is_empty())
}

/// Remove what a client must not set: the identity headers, the forwarding headers the
/// gateway writes, and the configured strip list, in every spelling that normalises to one of
/// them (`X_User_Id` becomes `HTTP_X_USER_ID` in CGI, WSGI, Rack and PHP, the same variable as
/// `X-User-Id`).
pub(super) fn strip_protected(h: &mut HeaderMap, rt: &Runtime) {
    let protected = [
        &rt.spec.identity.user_id,
        &rt.spec.identity.roles,
        &X_FORWARDED_FOR,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_HOST,
        &FORWARDED,
        &X_REAL_IP,
        &X_CLIENT_CERT_SUBJECT,
    ];
    // one pass over the names first: a client rarely sends any of these, and every removal
    // hashes its name
    let listed = |k: &HeaderName| {
        protected.contains(&k) || rt.spec.strip_request_headers.iter().any(|p| p == k)
    };
    if !h.keys().any(|k| listed(k) || k.as_str().contains('_')) {
        return;
    }
    // X-Forwarded-For itself stays for `forwarded_headers`, which extends (trusted forwarder)
    // or replaces it; the others the gateway writes or never forwards
    for n in protected[..2]
        .iter()
        .copied()
        .chain(protected[3..].iter().copied())
        .chain(&rt.spec.strip_request_headers)
    {
        h.remove(n);
    }
    if !h.keys().any(|k| k.as_str().contains('_')) {
        return;
    }
    let doomed: Vec<HeaderName> = h
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k.contains('_')
                && protected
                    .into_iter()
                    .chain(&rt.spec.strip_request_headers)
                    .any(|p| same_name(k, p.as_str()))
        })
        .cloned()
        .collect();
    for n in doomed {
        h.remove(n);
    }
}

/// Header names equal once `_` is read as `-` (both are lower case already).
pub(super) fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'_' && y == b'-'))
}

/// The forwarding headers an instance sees: `X-Forwarded-For` (a trusted forwarder's list
/// extended, else the client alone), `Forwarded` (RFC 7239), `X-Forwarded-Proto`/`-Host`, the
/// request id and a verified client certificate's subject.
pub(super) fn forwarded_headers(
    h: &mut HeaderMap,
    conn: &ConnInfo,
    host: Option<&str>,
    rid: &HeaderValue,
) {
    // no formatting per request: the client's address was rendered once for the connection
    let ip = conn.client_ip.as_bytes();
    let prev = conn
        .xff_trusted
        .then(|| h.get(&X_FORWARDED_FOR))
        .flatten()
        .filter(|v| v.to_str().is_ok())
        .map(|v| v.as_bytes());
    let xff = match prev {
        Some(prev) => {
            let mut b = BytesMut::with_capacity(prev.len() + 2 + ip.len());
            b.extend_from_slice(prev);
            b.extend_from_slice(b", ");
            b.extend_from_slice(ip);
            HeaderValue::from_maybe_shared(b.freeze()).ok()
        }
        None => Some(conn.client_ip.clone()),
    };
    if let Some(v) = xff {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    let quotable = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"'));
    let mut fwd = BytesMut::with_capacity(40 + ip.len() + quotable.map_or(0, str::len));
    if conn.client.ip().is_ipv6() {
        fwd.extend_from_slice(b"for=\"[");
        fwd.extend_from_slice(ip);
        fwd.extend_from_slice(b"]\"");
    } else {
        fwd.extend_from_slice(b"for=");
        fwd.extend_from_slice(ip);
    }
    if let Some(host) = quotable {
        fwd.extend_from_slice(b";host=\"");
        fwd.extend_from_slice(host.as_bytes());
        fwd.extend_from_slice(b"\"");
    }
    fwd.extend_from_slice(if conn.tls.is_some() {
        b";proto=https"
    } else {
        b";proto=http"
    });
    if let Ok(v) = HeaderValue::from_maybe_shared(fwd.freeze()) {
        h.insert(FORWARDED.clone(), v);
    }
    let proto = if conn.tls.is_some() { "https" } else { "http" };
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        h.insert(X_FORWARDED_HOST.clone(), v);
    }
    h.insert(X_REQUEST_ID.clone(), rid.clone());
    if let Some(s) = conn.tls.as_ref().and_then(|t| t.subject.as_ref()) {
        h.insert(X_CLIENT_CERT_SUBJECT.clone(), s.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::header_map as map;

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut h = map(&[
            ("host", "a.example"),
            ("connection", "close, X-Session-Hint , te"),
            ("connection", "x-other"),
            ("x-session-hint", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic eDp5"),
            ("x-kept", "3"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["host", "x-kept"]);
        assert_eq!(h["x-kept"], "3");
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_left_alone() {
        let mut h = map(&[("host", "a.example"), ("x-a", "1"), ("x-a", "2")]);
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
        let mut h = map(&[("connection", "keep-alive"), ("content-length", "5")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["content-length"]);
    }
}
