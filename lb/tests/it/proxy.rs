//! PROXY protocol over real sockets: v1/v2 sent to backends, accepted on a listener, and a
//! malformed header closing only its own connection.

use crate::harness::*;
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_config::lb::ProxyVersion;
use switchyard_net::proxy::{self, parse, Parse, MAX_ENCODED};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `proxy::encode` with the configured version.
fn encode(v: ProxyVersion, src: SocketAddr, dst: SocketAddr, out: &mut [u8; MAX_ENCODED]) -> usize {
    let v = match v {
        ProxyVersion::V1 => proxy::Version::V1,
        ProxyVersion::V2 => proxy::Version::V2,
    };
    proxy::encode(v, src, dst, out)
}

/// A backend that reports the PROXY header it receives plus the next 4 bytes.
async fn capture() -> (SocketAddr, tokio::sync::mpsc::Receiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut b = [0u8; 1];
                loop {
                    if let Parse::Complete(h) = parse(&buf) {
                        if buf.len() == h.len + 4 {
                            break;
                        }
                    }
                    if s.read_exact(&mut b).await.is_err() {
                        return;
                    }
                    buf.push(b[0]);
                }
                let _ = tx.send(buf).await;
                let _ = s.write_all(b"ok").await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn proxy_headers_sent_to_backends_carry_the_client_address() {
    for v in [ProxyVersion::V1, ProxyVersion::V2] {
        let (baddr, mut rx) = capture().await;
        let mut p = pool(&[(baddr, "z", 1)]);
        p.check = None;
        p.proxy_protocol = Some(v);
        let t = start_lb(p, listener()).await;
        let mut c = connect_from("127.0.0.9".parse().unwrap(), t.addr)
            .await
            .unwrap();
        let local = c.local_addr().unwrap();
        let mut want = [0u8; MAX_ENCODED];
        let n = encode(v, local, t.addr, &mut want);
        c.write_all(b"data").await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            &got[..n],
            &want[..n],
            "{v:?}: {}",
            String::from_utf8_lossy(&got)
        );
        assert_eq!(&got[n..], b"data");
        match parse(&got) {
            Parse::Complete(h) => assert_eq!(h.addrs, Some((local, t.addr))),
            o => panic!("{o:?}"),
        }
        if v == ProxyVersion::V1 {
            let line = format!(
                "PROXY TCP4 127.0.0.9 {} {} {}\r\n",
                t.addr.ip(),
                local.port(),
                t.addr.port()
            );
            assert_eq!(&got[..n], line.as_bytes());
        }
    }
}

#[tokio::test]
async fn accepted_proxy_header_is_used_and_a_malformed_one_closes_only_its_connection() {
    let real_client: SocketAddr = "203.0.113.7:4242".parse().unwrap();
    let vip: SocketAddr = "198.51.100.1:443".parse().unwrap();
    let mut want = [0u8; MAX_ENCODED];
    let n = encode(ProxyVersion::V1, real_client, vip, &mut want);
    let (baddr, mut rx) = capture().await;
    let mut p = pool(&[(baddr, "z", 1)]);
    p.check = None;
    p.proxy_protocol = Some(ProxyVersion::V1);
    let mut l = listener();
    l.accept_proxy = true;
    let t = start_lb(p, l).await;
    // a malformed header: that connection is closed, nothing reaches the backend
    let mut bad = TcpStream::connect(t.addr).await.unwrap();
    bad.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut b = [0u8; 4];
    let r = tokio::time::timeout(Duration::from_secs(2), bad.read(&mut b))
        .await
        .unwrap();
    assert!(matches!(r, Ok(0) | Err(_)));
    // a good v2 header from "the balancer in front", split in two writes
    let mut hdr = [0u8; MAX_ENCODED];
    let hn = encode(ProxyVersion::V2, real_client, vip, &mut hdr);
    let mut c = TcpStream::connect(t.addr).await.unwrap();
    c.write_all(&hdr[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.write_all(&hdr[5..hn]).await.unwrap();
    c.write_all(b"data").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got[..n], &want[..n], "{}", String::from_utf8_lossy(&got));
    assert_eq!(&got[n..], b"data");
    let mut ok = [0u8; 2];
    c.read_exact(&mut ok).await.unwrap();
    assert_eq!(&ok, b"ok");
}
