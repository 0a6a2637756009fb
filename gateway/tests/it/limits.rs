//! Limits: 431, 413, 408 (slow headers), 429 with Retry-After, 504, 503, smuggling shapes → 400.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::*;
use switchyard_gateway::spec::{GatewaySpec, Policy, RateSpec};
use tokio::io::AsyncWriteExt;

async fn world(tune: impl FnOnce(&mut GatewaySpec)) -> (Upstream, Gw) {
    let up = upstream("svc").await;
    let mut spec = base_spec();
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    tune(&mut spec);
    (up, gateway(spec).await)
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (up, gw) = world(|s| s.limits.max_header_bytes = 4096).await;
    let big = "x".repeat(5000);
    let r = get(gw.addr, "/api/x", &[("X-Big", &big)]).await;
    assert_eq!(r.status, 431);
    let ok = "x".repeat(3000);
    assert_eq!(get(gw.addr, "/api/x", &[("X-Big", &ok)]).await.status, 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let (up, gw) = world(|s| s.limits.max_body_bytes = 1000).await;
    let r = request(gw.addr, "POST", "/api/x", &[], &"a".repeat(1001)).await;
    assert_eq!(r.status, 413);
    let chunked = format!(
        "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        1500,
        "b".repeat(1500)
    );
    assert_eq!(raw(gw.addr, chunked.as_bytes()).await.status, 413);
    assert_eq!(up.hits(), 0);
    let r = request(gw.addr, "POST", "/api/x", &[], &"a".repeat(1000)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn slow_headers_get_408() {
    let (up, gw) = world(|s| s.limits.header_timeout = Duration::from_millis(300)).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let start = Instant::now();
    s.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // on a loaded machine the 408 may already be out (and the socket closed) by now
    let _ = s.write_all(b"X-Slow: 1\r\n").await;
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 408);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn slow_headers_on_a_kept_alive_connection_get_408() {
    let (up, gw) = world(|s| s.limits.header_timeout = Duration::from_millis(300)).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\nGET /api/y HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("HTTP/1.1 408 Request Timeout"), "{text}");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn rate_limit_gives_429_with_retry_after() {
    let (up, gw) = world(|s| {
        s.limits.rate = Some(RateSpec {
            per_second: 0.5,
            burst: 3,
        })
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(gw.addr, "/api/x", &[]).await.status, 200);
    }
    let r = get(gw.addr, "/api/x", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn rate_limit_is_per_subject_when_authenticated() {
    let up = upstream("svc").await;
    let mut spec = base_spec();
    spec.limits.rate = Some(RateSpec {
        per_second: 0.1,
        burst: 1,
    });
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Authenticated));
    let gw = gateway(spec).await;
    let (a, b) = (token("alice", &[]), token("bob", &[]));
    assert_eq!(get_auth(gw.addr, "/api/x", &a).await.status, 200);
    assert_eq!(get_auth(gw.addr, "/api/x", &a).await.status, 429);
    assert_eq!(get_auth(gw.addr, "/api/x", &b).await.status, 200);
}

#[tokio::test]
async fn content_length_plus_transfer_encoding_is_400() {
    let (up, gw) = world(|_| {}).await;
    let r = raw(
        gw.addr,
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn several_content_lengths_are_400() {
    let (up, gw) = world(|_| {}).await;
    let r = raw(
        gw.addr,
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = raw(
        gw.addr,
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn smuggling_after_a_good_request_is_400_and_never_forwarded() {
    let (up, gw) = world(|_| {}).await;
    let r = raw(
        gw.addr,
        b"GET /api/ok HTTP/1.1\r\nHost: a\r\n\r\nPOST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "the first request is answered");
    assert_eq!(up.hits(), 1);
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /api/ok HTTP/1.1\r\nHost: a\r\n\r\nGET /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("HTTP/1.1 400 Bad Request"), "{text}");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn chunked_body_is_proxied() {
    let (up, gw) = world(|_| {}).await;
    let r = raw(
        gw.addr,
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn upstream_deadline_gives_504() {
    let slow = upstream_with(
        Arc::new(|_req| Reply {
            status: 200,
            body: serde_json::json!({}),
            delay: Duration::from_secs(3),
        }),
        "127.0.0.1:0".parse().unwrap(),
        "slow",
    )
    .await;
    let mut spec = base_spec();
    spec.upstream.timeout = Duration::from_millis(300);
    spec.services.push(service("svc", &[(slow.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    let gw = gateway(spec).await;
    let start = Instant::now();
    let r = get(gw.addr, "/api/x", &[]).await;
    assert_eq!(r.status, 504);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn concurrency_cap_gives_503() {
    let slow = upstream_with(
        Arc::new(|_req| Reply {
            status: 200,
            body: serde_json::json!({}),
            delay: Duration::from_millis(500),
        }),
        "127.0.0.1:0".parse().unwrap(),
        "slow",
    )
    .await;
    let mut spec = base_spec();
    spec.limits.max_concurrent_requests = 1;
    spec.services.push(service("svc", &[(slow.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    let gw = gateway(spec).await;
    let addr = gw.addr;
    let first = tokio::spawn(async move { get(addr, "/api/x", &[]).await.status });
    // the first request holds the only slot once the upstream has it (it answers 500 ms later)
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.hits() == 0 {
        assert!(
            Instant::now() < deadline,
            "the first request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(get(gw.addr, "/api/x", &[]).await.status, 503);
    assert_eq!(first.await.unwrap(), 200);
}
