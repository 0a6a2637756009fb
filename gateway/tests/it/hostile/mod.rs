//! The hostile-client suite: one test per attack class a security review tried against the
//! gateway (raw sockets, HTTP/1.1 and h2c), asserting both what the client got and what reached
//! the instance (a [`Recorder`]). Classes that already held are here too, so none regresses.
//!
//! - `availability`: stalled and drip-fed bodies, idle h2c, per-address caps;
//! - `framing`: line endings, smuggling shapes, one response per request, Host rules, targets;
//! - `identity`: forwarding and identity spoofing, tokens without a usable subject, roles,
//!   override headers, the two rate-limit stages;
//! - `upstream`: what an instance answers (both framings, a 101 for another protocol).

mod availability;
mod framing;
mod identity;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use switchyard_gateway::spec::{GatewaySpec, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::*;
use crate::recorder::Recorder;

/// A gateway routing `/api` (prefix, `policy`) to `rec`, after `tune` adjusted the spec.
async fn gateway_to(rec: &Recorder, policy: Policy, tune: impl FnOnce(&mut GatewaySpec)) -> Gw {
    let mut spec = base_spec();
    spec.services.push(service("svc", &[(rec.addr, "a")]));
    spec.routes.push(route("api", "/api", true, "svc", policy));
    tune(&mut spec);
    gateway(spec).await
}

/// Connect from a chosen loopback source address (another "client").
async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(src.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    sock.connect(to).await.unwrap()
}

/// Everything the server sends until it closes (bounded by `limit`), and whether it closed.
async fn read_until_close(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(limit, s.read_to_end(&mut buf))
        .await
        .is_ok();
    (String::from_utf8_lossy(&buf).to_string(), closed)
}

/// Send `bytes` on a new connection; everything answered until the server closes (5 s at most).
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_until_close(&mut s, Duration::from_secs(5)).await.0
}

/// Each request (a whole connection's bytes) gets exactly one response, with `status`.
async fn each_answered(addr: SocketAddr, requests: &[&[u8]], status: u16) {
    for bytes in requests {
        let text = exchange(addr, bytes).await;
        assert_eq!(
            statuses(&text),
            vec![status],
            "{:?} -> {text}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// An h2c (prior knowledge) client connection; the connection task's handle comes back too.
async fn h2c(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<
        http_body_util::StreamBody<
            futures_util::stream::BoxStream<
                'static,
                Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>,
            >,
        >,
    >,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    (send, tokio::spawn(conn))
}

/// Status codes of every response in a byte stream, in order.
fn statuses(stream: &str) -> Vec<u16> {
    stream
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| stream[i + 9..].get(..3)?.parse().ok())
        .collect()
}
