//! WebSocket upgrades through the gateway, with a real WebSocket client and server
//! (tokio-tungstenite): authenticated like any request, forwarded with the identity headers,
//! then relayed both ways until either side closes.

use crate::harness::*;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use switchyard_gateway::spec::Policy;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket echo service that remembers the identity header of each handshake; it closes
/// after answering `bye`.
// tungstenite's handshake callback returns its error response by value
#[allow(clippy::result_large_err)]
async fn ws_service() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let cb = |req: &Request, resp: Response| {
                    let user = req
                        .headers()
                        .get("x-user-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    seen.lock().unwrap().push(user.to_string());
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(s, cb).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    let sent = match m {
                        Message::Text(t) if t.as_str() == "bye" => {
                            let _ = ws.send(Message::Text("ciao".into())).await;
                            ws.close(None).await
                        }
                        Message::Text(_) | Message::Binary(_) => ws.send(m).await,
                        _ => Ok(()),
                    };
                    if sent.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn world() -> (Gw, Arc<Mutex<Vec<String>>>) {
    let (addr, seen) = ws_service().await;
    let mut spec = base_spec();
    spec.services.push(service("chat", &[(addr, "a")]));
    spec.routes
        .push(route("chat", "/chat", true, "chat", roles_any(&["user"])));
    (gateway(spec).await, seen)
}

fn ws_request(gw: SocketAddr, token: Option<&str>) -> http::Request<()> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{gw}/chat/room-1")
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

#[tokio::test]
async fn an_authenticated_websocket_is_relayed_both_ways() {
    let (gw, seen) = world().await;
    let s = TcpStream::connect(gw.addr).await.unwrap();
    let (mut ws, resp) =
        tokio_tungstenite::client_async(ws_request(gw.addr, Some(&token("ana", &["user"]))), s)
            .await
            .expect("handshake through the gateway");
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().contains_key("x-request-id"));
    // the instance saw who the gateway authenticated
    assert_eq!(*seen.lock().unwrap(), ["ana"]);
    for i in 0..50 {
        let text = format!("message {i}");
        ws.send(Message::Text(text.clone().into())).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text(text.into())
        );
    }
    let big = vec![7u8; 1 << 20];
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(big.into())
    );
    // the instance closes: the client sees its last message, then the close
    ws.send(Message::Text("bye".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("ciao".into())
    );
    assert!(matches!(ws.next().await, Some(Ok(Message::Close(_)))));
}

#[tokio::test]
async fn a_websocket_without_a_token_or_role_is_refused_before_the_instance() {
    let (gw, seen) = world().await;
    for (token, status) in [(None, 401), (Some(token("bob", &["guest"])), 403)] {
        let s = TcpStream::connect(gw.addr).await.unwrap();
        let err = tokio_tungstenite::client_async(ws_request(gw.addr, token.as_deref()), s)
            .await
            .expect_err("refused");
        match err {
            tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), status),
            e => panic!("expected HTTP {status}, got {e}"),
        }
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_instance_that_does_not_upgrade_is_answered_as_a_normal_request() {
    // the plain echo service answers 200 to the handshake: so does the gateway, and the
    // connection stays plain HTTP
    let (_up, gw) = simple(Policy::Public).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    s.write_all(
        b"GET /api/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let r = read_one_response(&mut s).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/api/ws");
    // and the same connection still serves the next request
    s.write_all(b"GET /api/next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s).await;
    assert_eq!(
        (r.status, r.json()["path"].as_str()),
        (200, Some("/api/next"))
    );
}

/// Reads one response of a kept-alive connection (its head, then `content-length` bytes).
async fn read_one_response(s: &mut TcpStream) -> Resp {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    return;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed mid-response");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .expect("a whole response");
    parse(&buf)
}

#[tokio::test]
async fn an_idle_websocket_is_closed_and_a_busy_one_is_not() {
    let (addr, _) = ws_service().await;
    let mut spec = base_spec();
    spec.limits.idle_timeout = std::time::Duration::from_millis(600);
    spec.services.push(service("chat", &[(addr, "a")]));
    spec.routes
        .push(route("chat", "/chat", true, "chat", roles_any(&["user"])));
    let gw = gateway(spec).await;
    let s = TcpStream::connect(gw.addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(ws_request(gw.addr, Some(&token("ana", &["user"]))), s)
            .await
            .unwrap();
    // busy for more than two idle periods: still open
    let t0 = std::time::Instant::now();
    let mut last = t0;
    while t0.elapsed() < std::time::Duration::from_millis(1500) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        ws.send(Message::Text("ping".into())).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text("ping".into())
        );
        last = std::time::Instant::now();
    }
    // then quiet: the gateway closes it (no close frame: the relay only moves bytes)
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .expect("closed by the idle timeout");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    let quiet = last.elapsed();
    assert!(quiet >= std::time::Duration::from_millis(550), "{quiet:?}");
}
