//! Client address (PROXY protocol from trusted peers), X-Forwarded-For, Forwarded, request ids.

use crate::harness::*;
use switchyard_gateway::spec::Policy;

async fn world(trusted: bool) -> (Upstream, Gw) {
    world_with(trusted, &[]).await
}

async fn world_with(trusted: bool, forwarders: &[&str]) -> (Upstream, Gw) {
    let up = upstream("svc").await;
    let mut spec = base_spec();
    if trusted {
        spec.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    }
    spec.trusted_forwarders = forwarders.iter().map(|n| n.parse().unwrap()).collect();
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    (up, gateway(spec).await)
}

#[tokio::test]
async fn proxy_v1_from_trusted_peer_sets_client_address() {
    let (_u, gw) = world(true).await;
    let r = raw(
        gw.addr,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 8000\r\nGET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["xff"], "203.0.113.7");
    assert_eq!(v["forwarded"], "for=203.0.113.7;host=\"a\";proto=http");
}

/// PROXY trust and X-Forwarded-For trust are separate decisions: an L4 hop vouches for the
/// client's address, never for the client's own X-Forwarded-For.
#[tokio::test]
async fn proxy_v2_from_trusted_peer_sets_client_address() {
    for (forwarders, xff) in [
        (&[][..], "198.51.100.9"),
        (&["198.51.100.0/24"][..], "10.9.9.9, 198.51.100.9"),
    ] {
        let (_u, gw) = world_with(true, forwarders).await;
        assert_eq!(proxy_v2_request(gw.addr).await, xff, "{forwarders:?}");
    }
}

async fn proxy_v2_request(addr: std::net::SocketAddr) -> String {
    let mut b = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    b.extend_from_slice(&[
        0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80,
    ]);
    b.extend_from_slice(
        b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: close\r\n\r\n",
    );
    let r = raw(addr, &b).await;
    r.json()["xff"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn untrusted_peer_cannot_use_proxy_protocol_or_spoof_xff() {
    let (up, gw) = world(false).await;
    let r = raw(
        gw.addr,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 8000\r\nGET /api/x HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(up.hits(), 0);
    let r = get(gw.addr, "/api/x", &[("X-Forwarded-For", "1.2.3.4")]).await;
    assert_eq!(r.json()["xff"], "127.0.0.1");
}

#[tokio::test]
async fn request_id_kept_when_well_formed_else_made_and_traceparent_passes() {
    let (_u, gw) = world(false).await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = get(
        gw.addr,
        "/api/x",
        &[("X-Request-Id", "abc-123"), ("traceparent", tp)],
    )
    .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(r.json()["request_id"], "abc-123");
    assert_eq!(r.json()["traceparent"], tp);
    let r = get(gw.addr, "/api/x", &[("X-Request-Id", "bad id with spaces")]).await;
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(r.json()["request_id"], id.as_str());
    // errors carry one too
    assert_eq!(
        get(gw.addr, "/nope", &[])
            .await
            .header("x-request-id")
            .map(|s| s.len()),
        Some(32)
    );
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, gw) = world(false).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let req = b"GET /api/a HTTP/1.1\r\nHost: a\r\n\r\nGET /api/b HTTP/1.1\r\nHost: a\r\n\r\nGET /api/c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    s.write_all(req).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    use http_body_util::{BodyExt, Empty};
    let (up, gw) = world(false).await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for path in ["/api/one", "/api/two"] {
        let req = http::Request::get(format!("http://api.example.test{path}"))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["path"], path);
    }
    assert_eq!(up.hits(), 2);
}
