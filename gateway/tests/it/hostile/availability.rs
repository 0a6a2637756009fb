//! One client must not hold an instance: every phase of every request has a deadline, and one
//! address cannot take more than its share of connections or request slots.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::*;
use crate::recorder::OK;

fn tight(spec: &mut GatewaySpec) {
    spec.limits.body_timeout = Duration::from_millis(300);
    spec.limits.min_body_rate = 100;
    spec.limits.header_timeout = Duration::from_millis(400);
    spec.limits.idle_timeout = Duration::from_millis(500);
}

/// `Content-Length: 10` and one byte: 408 once the body deadline passes, the connection closes,
/// nothing reaches the instance, and the request slot is free again.
#[tokio::test]
async fn stalled_body_gets_408_and_frees_its_slot() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |s| {
        tight(s);
        s.limits.max_concurrent_requests = 1;
    })
    .await;
    let started = Instant::now();
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nx")
        .await
        .unwrap();
    let (text, closed) = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "the connection stayed open: {text}");
    assert_eq!(statuses(&text), vec![408], "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(rec.seen().is_empty());
    // the only request slot is free again, and a whole body goes through unchanged
    let r = request(gw.addr, "POST", "/api/after", &[], "0123456789").await;
    assert_eq!(r.status, 200);
    assert_eq!(rec.seen()[0].body, b"0123456789");
}

/// A drip feed (one byte every 100 ms) keeps the body "alive" but falls under the minimum rate.
#[tokio::test]
async fn drip_fed_body_hits_the_minimum_rate() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, tight).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answered = String::new();
    for _ in 0..40 {
        if s.write_all(b"x").await.is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answered.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
        if !answered.is_empty() {
            break;
        }
    }
    assert_eq!(statuses(&answered), vec![408], "{answered:?}");
    // 300 ms + n/100 s passes n at about 0.33 s
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(rec.seen().is_empty());
}

/// The same stall over h2c: HEADERS with a content-length, one DATA byte, no END_STREAM.
#[tokio::test]
async fn h2c_stalled_body_gets_408() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, tight).await;
    let (mut send, _conn) = h2c(gw.addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
        .await
        .unwrap();
    let body = StreamBody::new(tokio_stream_from(rx).boxed());
    let req = http::Request::post("http://a/api/x")
        .header("content-length", "10")
        .body(body)
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(3), send.send_request(req))
        .await
        .expect("no answer to a stalled h2 body")
        .unwrap();
    assert_eq!(resp.status(), 408);
    drop(tx);
    assert!(rec.seen().is_empty());
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// An h2c connection that never sends a request (but answers PINGs: hyper's client does) is
/// closed after the first-request deadline; one that went idle after a request, after the idle
/// timeout.
#[tokio::test]
async fn idle_h2c_connections_are_closed() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, tight).await;
    for requests in [0, 1] {
        let (mut send, conn) = h2c(gw.addr).await;
        for _ in 0..requests {
            let req = http::Request::get("http://a/api/x")
                .body(StreamBody::new(futures_util::stream::empty().boxed()))
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap();
        }
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(4), conn)
            .await
            .unwrap_or_else(|_| panic!("h2c connection with {requests} requests still open"))
            .unwrap()
            .ok();
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}

/// One address cannot hold more than its connections: its next connection is closed at once,
/// while another address is served.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |s| {
        s.limits.max_connections_per_client = 3;
        s.limits.header_timeout = Duration::from_secs(10);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.1", gw.addr).await;
        // an answered keep-alive request proves the gateway counted this connection
        s.write_all(b"GET /api/held HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"{\"ok\":true}") {
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        held.push(s);
    }
    // the fourth from the same address is closed without an answer
    let mut s = connect_from("127.0.0.1", gw.addr).await;
    let _ = s.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let (text, closed) = read_until_close(&mut s, Duration::from_secs(3)).await;
    assert!(closed && text.is_empty(), "{text:?}");
    // another client address is served meanwhile
    let mut s = connect_from("127.0.0.2", gw.addr).await;
    s.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_until_close(&mut s, Duration::from_secs(3)).await;
    assert_eq!(statuses(&text), vec![200], "{text}");
    // and the first address gets its share back when one of its connections ends
    drop(held.pop());
    let mut ok = false;
    for _ in 0..50 {
        let mut s = connect_from("127.0.0.1", gw.addr).await;
        let _ = s
            .write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await;
        if statuses(&read_until_close(&mut s, Duration::from_secs(3)).await.0) == vec![200] {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a freed connection slot was never given back");
}

/// One address cannot hold every request slot: stalled bodies from it beyond its share get 429,
/// another address still gets 200.
#[tokio::test]
async fn one_address_cannot_take_every_request_slot() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |s| {
        s.limits.max_concurrent_requests = 4;
        s.limits.max_requests_per_client = 2;
        s.limits.body_timeout = Duration::from_secs(30);
    })
    .await;
    async fn stall(addr: std::net::SocketAddr) -> TcpStream {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nx")
            .await
            .unwrap();
        s
    }
    let mut stalled = [stall(gw.addr).await, stall(gw.addr).await];
    // wait until both stalled requests hold their slots: a third from the address gets 429. A
    // probe can race a stalled request to the last slot; the stalled one then got the 429 and
    // is replaced.
    let mut history = Vec::new();
    for _ in 0..100 {
        let mut s = connect_from("127.0.0.1", gw.addr).await;
        s.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let third = statuses(&read_until_close(&mut s, Duration::from_secs(3)).await.0);
        if third == vec![429] {
            break;
        }
        history.push(third);
        for st in stalled.iter_mut() {
            let mut buf = [0u8; 256];
            if !matches!(st.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            {
                *st = stall(gw.addr).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(history.len() < 100, "never 429: {history:?}");
    let mut s = connect_from("127.0.0.3", gw.addr).await;
    s.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_until_close(&mut s, Duration::from_secs(3)).await;
    assert_eq!(statuses(&text), vec![200], "{text}");
}
