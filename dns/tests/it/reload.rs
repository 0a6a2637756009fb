//! Hot reload of zones without dropping queries; a bad reload keeps the running config.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use switchyard_dns::gslb::StaticHealth;

use crate::harness::*;

#[tokio::test]
async fn reload_swaps_zones_without_losing_queries() {
    let s = static_server().await;
    let addr = s.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, answered, lost) = (stop.clone(), answered.clone(), lost.clone());
        tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut buf = [0u8; 1500];
            for _ in 0..5000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let q = query("www.example.test.", RecordType::A);
                sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
                match tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await {
                    Ok(Ok((n, _))) => {
                        let r = decode(&buf[..n], q.metadata.id);
                        assert_eq!(rcode(&r), 0);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let handle = s.handle.as_ref().unwrap();
    for i in 0..20u8 {
        let mut sp = spec(Vec::new());
        sp.zones[0].text = ZONE.replace("192.0.2.10", &format!("192.0.2.{}", 100 + i));
        handle
            .reload(sp, Arc::new(StaticHealth::default()))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // a broken zone is rejected and the last good one keeps serving
    let mut bad = spec(Vec::new());
    bad.zones[0].text = ZONE.replace("IN SOA", "IN TXT");
    assert!(handle
        .reload(bad, Arc::new(StaticHealth::default()))
        .is_err());
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();
    assert_eq!(
        lost.load(Ordering::Relaxed),
        0,
        "no query lost during reloads"
    );
    assert!(answered.load(Ordering::Relaxed) > 20);
    let r = udp(s.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(addrs(&r.answers), vec![ip("192.0.2.119")]);
}

/// A server whose runtime goes away (a test ending, say) stops its UDP worker threads too,
/// instead of answering on its port for ever with the last snapshot.
#[test]
fn udp_workers_stop_when_their_runtime_is_dropped() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(static_server());
    let addr = server.addr;
    let q = query("www.example.test.", RecordType::A).to_vec().unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let answered = |sock: &std::net::UdpSocket| {
        let mut buf = [0u8; 1500];
        sock.send_to(&q, addr).is_ok() && sock.recv_from(&mut buf).is_ok()
    };
    assert!(answered(&sock), "served while the runtime runs");
    // the runtime goes first; the server's token is never cancelled while it runs
    std::mem::forget(server);
    drop(rt);
    let t0 = std::time::Instant::now();
    while answered(&sock) {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "UDP workers still answering after their runtime was dropped"
        );
    }
}
