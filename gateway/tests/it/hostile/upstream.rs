//! What an instance answers is judged too: both framings at once, a 101 for a protocol the client
//! did not ask for.

use std::time::Duration;

use super::*;

/// Content-Length and Transfer-Encoding from the instance: Transfer-Encoding wins and the
/// Content-Length is not passed on (RFC 9112 §6.3); the client gets the decoded body once.
#[tokio::test]
async fn upstream_cl_and_te_drops_the_length() {
    let rec = Recorder::start(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let gw = gateway_to(&rec, Policy::Public, |_| {}).await;
    let r = get(gw.addr, "/api/x", &[]).await;
    if r.status == 200 {
        assert_eq!(r.header("content-length"), None, "{r:?}");
        assert_eq!(r.body, "hello");
    } else {
        // refusing the message is the other answer RFC 9112 allows
        assert_eq!(r.status, 502, "{r:?}");
    }
}

/// A 101 whose Upgrade is not the protocol the client asked for does not open a tunnel (RFC 9110
/// §7.8): 502, and nothing is relayed.
#[tokio::test]
async fn upgrade_to_another_protocol_is_refused() {
    let rec = Recorder::start(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    )
    .await;
    let gw = gateway_to(&rec, Policy::Public, |_| {}).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /api/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    // the refusal is a normal response on a connection that stays HTTP: it answers another
    // request after it
    s.write_all(b"GET /api/next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_until_close(&mut s, Duration::from_secs(5)).await;
    // the second request reaches the instance as plain HTTP; its (fixed) 101 answer to a
    // request that asked for no upgrade is refused as well
    assert_eq!(statuses(&text), vec![502, 502], "{text}");
    assert_eq!(rec.seen().len(), 2);
}
