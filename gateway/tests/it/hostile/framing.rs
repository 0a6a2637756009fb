//! Message framing: one rule for every message on a connection, exactly one response per
//! request, the Host rules of RFC 9112 §3.2, and request targets.

use super::*;
use crate::recorder::OK;

/// A head ended by a bare LF (`\n\n`, `\r\n\n`) is refused, so a second head behind it (here
/// with duplicate Content-Length or CL+TE) is never judged by anyone else: nothing reaches the
/// instance. The rule holds for the second message of a connection too.
#[tokio::test]
async fn bare_lf_heads_are_refused_on_every_message() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |_| {}).await;
    let smuggled = [
        &b"GET /api/a HTTP/1.1\r\nHost: a\n\nPOST /api/b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"[..],
        b"GET /api/a HTTP/1.1\r\nHost: a\r\n\nPOST /api/b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /api/a HTTP/1.1\nHost: a\r\n\r\n",
    ];
    each_answered(gw.addr, &smuggled, 400).await;
    assert!(rec.seen().is_empty(), "{:?}", rec.seen());
    // a clean first request, then a bare-LF one on the same connection
    let text = exchange(
        gw.addr,
        b"GET /api/one HTTP/1.1\r\nHost: a\r\n\r\nGET /api/two HTTP/1.1\r\nHost: a\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), vec![200, 400], "{text}");
    let seen = rec.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/api/one");
}

/// Smuggling shapes that already held stay refused: CL+TE, duplicate CL, TE other than chunked,
/// obs-fold, a NUL in a header.
#[tokio::test]
async fn smuggling_shapes_are_refused() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |_| {}).await;
    let shapes = [
        &b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Nul: a\0b\r\n\r\n",
    ];
    each_answered(gw.addr, &shapes, 400).await;
    assert!(rec.seen().is_empty(), "{:?}", rec.seen());
}

/// A malformed chunked body gets one response (the handler's 400, closing), never a second one
/// from the framing gate; the same when the handler answered 401 before reading the body.
#[tokio::test]
async fn one_response_per_request() {
    let rec = Recorder::start(OK).await;
    for policy in [Policy::Public, Policy::Authenticated] {
        let gw = gateway_to(&rec, policy.clone(), |_| {}).await;
        let text = exchange(
            gw.addr,
            b"POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n\r\n",
        )
        .await;
        let want = if policy == Policy::Public { 400 } else { 401 };
        assert_eq!(statuses(&text), vec![want], "{policy:?}: {text}");
    }
    assert!(rec.seen().is_empty());
}

/// Host (RFC 9112 §3.2): two Host fields, none on HTTP/1.1, or a malformed one get 400; HTTP/1.0
/// may omit it; in absolute-form the target's authority wins and is what the instance sees.
#[tokio::test]
async fn host_rules() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |s| {
        let mut r = route("other", "/api", true, "svc", Policy::Public);
        r.host = Some("other.test".into());
        r.name = "other".into();
        s.routes.insert(0, r);
        s.routes[1].host = Some("a".into());
    })
    .await;
    each_answered(
        gw.addr,
        &[
            &b"GET /api/x HTTP/1.1\r\nHost: a\r\nHost: other.test\r\nConnection: close\r\n\r\n"[..],
            b"GET /api/x HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /api/x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
            b"GET /api/x HTTP/1.1\r\nHost: user@a\r\nConnection: close\r\n\r\n",
        ],
        400,
    )
    .await;
    assert!(rec.seen().is_empty(), "{:?}", rec.seen());
    let text = exchange(gw.addr, b"GET /api/old HTTP/1.0\r\n\r\n").await;
    assert!(
        text.starts_with("HTTP/1.0 404") || text.starts_with("HTTP/1.1 404"),
        "{text}"
    );
    let text = exchange(
        gw.addr,
        b"GET http://other.test/api/abs HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), vec![200], "{text}");
    let seen = rec.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].all("host"), vec!["other.test"]);
}

/// Raw bytes outside ASCII in a target are refused (U+2025 folds into ".." in some upstreams),
/// and so is a path that climbs out; percent-encoded ones pass encoded.
#[tokio::test]
async fn raw_non_ascii_and_climbing_targets_are_refused() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |_| {}).await;
    each_answered(
        gw.addr,
        &[
            &b"GET /api/\xe2\x80\xa5/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..],
            b"GET /api/x?q=\xe2\x80\xa5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            b"GET /api/../../etc/passwd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            b"GET /api/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ],
        400,
    )
    .await;
    assert!(rec.seen().is_empty(), "{:?}", rec.seen());
    let text = exchange(
        gw.addr,
        b"GET /api/%E2%80%A5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), vec![200], "{text}");
    assert_eq!(rec.seen()[0].target, "/api/%E2%80%A5");
}

/// TRACE (cross-site tracing: it reflects Authorization and Cookie) is refused on a route
/// without a method list, and forwarded only where a route names it.
#[tokio::test]
async fn trace_only_where_a_route_names_it() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |s| {
        let mut r = route("traced", "/traced", true, "svc", Policy::Public);
        r.methods = vec![http::Method::TRACE];
        s.routes.push(r);
    })
    .await;
    let text = exchange(
        gw.addr,
        b"TRACE /api/x HTTP/1.1\r\nHost: a\r\nCookie: s=1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), vec![405], "{text}");
    assert!(rec.seen().is_empty());
    let text = exchange(
        gw.addr,
        b"TRACE /traced HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), vec![200], "{text}");
    assert_eq!(rec.seen()[0].method, "TRACE");
}

/// Slow heads (slowloris) still get 408 within the header timeout.
#[tokio::test]
async fn slow_head_gets_408() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |s| {
        s.limits.header_timeout = Duration::from_millis(300);
    })
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-A: ")
        .await
        .unwrap();
    let (text, closed) = read_until_close(&mut s, Duration::from_secs(3)).await;
    assert!(closed);
    assert_eq!(statuses(&text), vec![408], "{text}");
}
