//! HTTP/2 abuse over TLS: rapid reset (CVE-2023-44487), a CONTINUATION flood, more streams than
//! allowed. Each is bounded (the connection ends or the excess is refused) and another client is
//! served meanwhile.

use std::time::{Duration, Instant};

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, ty, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK: GET https://a/api/x (indexed :method, :scheme, literal :path and :authority).
fn request_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x87, 0x04, 6];
    b.extend_from_slice(b"/api/x");
    b.extend_from_slice(&[0x01, 1, b'a']);
    b
}

/// Frame types received (up to `limit` or `wait` without data, or EOF); `eof` says whether
/// the server closed.
async fn read_frames<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    wait: Duration,
    limit: usize,
) -> (Vec<(u8, u32)>, bool) {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        while buf.len() >= 9 {
            let n = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
            if buf.len() < 9 + n {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            frames.push((buf[3], stream));
            buf.drain(..9 + n);
        }
        if frames.len() >= limit {
            return (frames, false);
        }
        match tokio::time::timeout(wait, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (frames, true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (frames, false),
        }
    }
}

/// A well-behaved HTTP/2 request from another client must succeed promptly.
async fn other_client_served(w: &TlsWorld) {
    let t = Instant::now();
    let cfg = client_config(&w.ca_file, &["h2"]);
    let s = connect(&cfg, w.tls_addr, "api.example.test").await.unwrap();
    let (mut client, conn) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("https://api.example.test/api/x")
        .header(
            "authorization",
            format!("Bearer {}", token("alice", &["admin"])),
        )
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .expect("answered within 5 s")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(5));
}

async fn h2_raw(w: &TlsWorld) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let cfg = client_config(&w.ca_file, &["h2"]);
    let mut s = connect(&cfg, w.tls_addr, "api.example.test").await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    s.write_all(PREFACE).await.unwrap();
    s.write_all(&frame(0x4, 0, 0, &[])).await.unwrap(); // SETTINGS
    s
}

#[tokio::test]
async fn rapid_reset_ends_the_connection() {
    let w = world("rapid", |_, _, _| {}).await;
    let mut s = h2_raw(&w).await;
    let block = request_block();
    // HEADERS (END_STREAM|END_HEADERS) immediately followed by RST_STREAM(CANCEL), 5,000 times
    let mut burst = Vec::new();
    let mut id = 1u32;
    let mut goaway = false;
    let t = Instant::now();
    for _ in 0..50 {
        burst.clear();
        for _ in 0..100 {
            burst.extend(frame(0x1, 0x5, id, &block));
            burst.extend(frame(0x3, 0, id, &8u32.to_be_bytes()));
            id += 2;
        }
        if s.write_all(&burst).await.is_err() {
            goaway = true;
            break;
        }
    }
    let (frames, eof) = read_frames(&mut s, Duration::from_secs(2), 100_000).await;
    goaway |= frames.iter().any(|f| f.0 == 0x7) || eof;
    assert!(
        goaway,
        "the server should give up on a rapid-reset client ({} frames back)",
        frames.len()
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    other_client_served(&w).await;
}

#[tokio::test]
async fn a_continuation_flood_is_cut_off() {
    let w = world("cont", |_, _, _| {}).await;
    let mut s = h2_raw(&w).await;
    let block = request_block();
    s.write_all(&frame(0x1, 0x1, 1, &block)).await.unwrap(); // HEADERS, END_STREAM, no END_HEADERS
                                                             // up to 8 MB of CONTINUATION frames that never end the header block
    let junk = frame(0x9, 0, 1, &[b'a'; 16384]);
    let mut sent = 0usize;
    let mut cut = false;
    for _ in 0..512 {
        if s.write_all(&junk).await.is_err() {
            cut = true;
            break;
        }
        sent += junk.len();
    }
    let (frames, eof) = read_frames(&mut s, Duration::from_secs(2), 1000).await;
    cut |= eof || frames.iter().any(|f| f.0 == 0x7);
    assert!(
        cut,
        "sent {sent} bytes of CONTINUATION without being cut off"
    );
    assert!(
        !frames.iter().any(|f| f.0 == 0x1 && f.1 == 1),
        "no response to the flooded stream"
    );
    other_client_served(&w).await;
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused() {
    let w = world("streams", |_, _, _| {}).await;
    let mut s = h2_raw(&w).await;
    let block = request_block();
    // 300 requests whose bodies never come (no END_STREAM): each stays open
    let mut burst = Vec::new();
    for i in 0..300u32 {
        burst.extend(frame(0x1, 0x4, 1 + 2 * i, &block));
    }
    s.write_all(&burst).await.unwrap();
    let (frames, _) = read_frames(&mut s, Duration::from_secs(2), 100_000).await;
    let refused = frames.iter().filter(|f| f.0 == 0x3).count();
    let goaway = frames.iter().any(|f| f.0 == 0x7);
    assert!(
        refused >= 44 || goaway,
        "{refused} RST_STREAM for 300 streams over a limit of 256"
    );
    other_client_served(&w).await;
}
