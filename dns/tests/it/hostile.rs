//! Hostile input: the server answers FORMERR or drops, never crashes, keeps answering.

use std::time::Duration;

use hickory_proto::rr::RecordType;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::harness::*;

async fn still_answers(s: &Server) {
    let r = udp(s.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(addrs(&r.answers), vec![ip("192.0.2.10")]);
}

#[tokio::test]
async fn random_bytes_and_truncated_headers_while_good_queries_are_answered() {
    let s = static_server().await;
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let good = query("www.example.test.", RecordType::A).to_vec().unwrap();
    for round in 0..20 {
        for _ in 0..100 {
            let len = rng.random_range(0..300);
            let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) && b.len() > 20 {
                // mostly-valid header so the parser goes deeper
                b[..12].copy_from_slice(&good[..12]);
                b[2] &= 0x7F;
            }
            junk.send_to(&b, s.addr).await.unwrap();
        }
        for len in 0..12 {
            junk.send_to(&good[..len], s.addr).await.unwrap();
        }
        // mutated good queries
        for _ in 0..50 {
            let mut b = good.clone();
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
            b.truncate(rng.random_range(12..=b.len()));
            junk.send_to(&b, s.addr).await.unwrap();
        }
        let r = udp(s.addr, &query("www.example.test.", RecordType::A)).await;
        assert_eq!(addrs(&r.answers), vec![ip("192.0.2.10")], "round {round}");
    }
    // replies to junk are responses with QR=1 (never a crash, never an echo of garbage as-is)
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(50), junk.recv_from(&mut buf)).await
    {
        assert!(n >= 12 && buf[2] & 0x80 != 0);
    }
}

#[tokio::test]
async fn compression_pointer_loops_get_formerr() {
    let s = static_server().await;
    // question name = pointer to itself; and a two-pointer loop
    for name in [
        &[0xC0u8, 0x0C][..],
        &[0x01, b'a', 0xC0, 0x0C][..],
        &[0xC0, 0x0E, 0xC0, 0x0C][..],
    ] {
        let mut m = vec![0x55, 0x66, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(name);
        m.extend_from_slice(&[0, 1, 0, 1]);
        let r = udp_raw(s.addr, &m).await.expect("FORMERR");
        assert_eq!((&r[..2], r[3] & 0x0F), (&[0x55, 0x66][..], 1));
    }
    still_answers(&s).await;
}

#[tokio::test]
async fn oversized_and_short_tcp_length_prefixes_close_the_connection() {
    let s = static_server().await;
    for prefix in [[0xFF, 0xFF], [0x00, 0x05], [0x00, 0x00]] {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(&prefix).await.unwrap();
        c.write_all(&[0u8; 8]).await.unwrap();
        assert!(
            tcp_read(&mut c).await.is_none(),
            "{prefix:?}: closed without an answer"
        );
    }
    still_answers(&s).await;
    let r = tcp(s.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(rcode(&r), 0);
}

#[tokio::test]
async fn half_open_tcp_flood_does_not_stop_service() {
    let s = static_server().await; // cap 32 connections, idle timeout 500 ms
    let mut idle = Vec::new();
    for i in 0..100 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        if i % 2 == 0 {
            // half a message, then silence
            c.write_all(&[0x00, 0x20, 0x01]).await.unwrap();
        }
        idle.push(c);
        if i % 10 == 0 {
            still_answers(&s).await;
        }
    }
    still_answers(&s).await;
    // once the idle timeout frees the slots, TCP works again
    let q = query("www.example.test.", RecordType::A);
    let bytes = q.to_vec().unwrap();
    let ok = eventually(Duration::from_secs(5), || {
        let bytes = bytes.clone();
        async move {
            let Ok(mut c) = TcpStream::connect(s.addr).await else {
                return false;
            };
            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            if c.write_all(&framed).await.is_err() {
                return false;
            }
            tcp_read(&mut c).await.is_some()
        }
    })
    .await;
    assert!(
        ok.is_some(),
        "TCP service resumes after idle connections time out"
    );
    drop(idle);
}
