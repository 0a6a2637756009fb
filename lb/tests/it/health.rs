//! Active health over real sockets: a killed backend is marked down within fall × interval
//! (+ timeout), gets no new connection after that, and comes back after `rise` successes.

use crate::harness::*;
use std::collections::HashMap;
use std::time::Duration;
use switchyard_balance::{CheckKind, CheckSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Scheduling slack on a loaded 2-core machine (the checks run every 20 ms).
const SLACK: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_is_marked_down_in_time_and_back_after_rise() {
    let mut a = Backend::start(Behaviour::Named("a".into())).await;
    let b = Backend::start(Behaviour::Named("b".into())).await;
    let mut p = pool(&[(a.addr, "z", 1), (b.addr, "z", 1)]);
    let check = fast_check().with_thresholds(2, 3); // interval 20 ms, timeout 100 ms, fall 3
    p.check = Some(check.clone());
    let t = start_lb(p, listener()).await;
    wait_until(Duration::from_secs(2), "first checks", || {
        t.registry.get(&a.addr).unwrap().active_state() == switchyard_balance::ActiveState::Up
    })
    .await;
    a.kill();
    let took = wait_until(Duration::from_secs(3), "a marked down", || {
        !is_up(&t, a.addr)
    })
    .await;
    // fall × interval + timeout, plus scheduling slack for a loaded 2-core machine
    let bound = check.interval * check.fall + check.timeout + SLACK;
    assert!(took <= bound, "down after {took:?}, bound {bound:?}");
    let st = t.lb.status();
    let m = st.pools[0]
        .members
        .iter()
        .find(|m| m.addr == a.addr)
        .unwrap();
    assert_eq!(m.active_check, "down");
    assert!(
        m.reason.starts_with("tcp: connect") && m.reason.ends_with("3 in a row"),
        "{}",
        m.reason
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..50 {
        *seen.entry(round_trip(t.addr).await.unwrap()).or_default() += 1;
    }
    assert_eq!(
        seen.get("b"),
        Some(&50),
        "no new connection to the dead backend"
    );
    a.restart().await;
    let took = wait_until(Duration::from_secs(3), "a back up", || is_up(&t, a.addr)).await;
    let bound = check.interval * (check.rise + 1) + SLACK;
    assert!(took <= bound, "up after {took:?}, bound {bound:?}");
    assert!(t.lb.status().pools[0].members[0]
        .reason
        .contains("2 in a row"));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..20 {
        *seen.entry(round_trip(t.addr).await.unwrap()).or_default() += 1;
    }
    assert_eq!(seen.get("a"), Some(&10));
}

#[tokio::test]
async fn http_check_follows_status_and_body() {
    // a tiny HTTP server whose answer the test flips
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h2 = healthy.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let ok = h2.load(std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply: &[u8] = if ok {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nready"
                } else {
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
                };
                let _ = s.write_all(reply).await;
            });
        }
    });
    let mut p = pool(&[(addr, "z", 1)]);
    let mut c = CheckSpec {
        kind: CheckKind::Http {
            method: "GET".into(),
            path: "/healthz".into(),
            host: None,
            expect_status: 200..=299,
            body_contains: Some("ready".into()),
        },
        ..fast_check()
    };
    c.fall = 2;
    p.check = Some(c);
    let t = start_lb(p, listener()).await;
    wait_until(Duration::from_secs(2), "checked up", || {
        t.registry.get(&addr).unwrap().active_state() == switchyard_balance::ActiveState::Up
    })
    .await;
    healthy.store(false, std::sync::atomic::Ordering::Relaxed);
    wait_until(Duration::from_secs(2), "http down", || !is_up(&t, addr)).await;
    let reason = t.registry.get(&addr).unwrap().reason();
    assert!(reason.contains("http: status 503"), "{reason}");
    healthy.store(true, std::sync::atomic::Ordering::Relaxed);
    wait_until(Duration::from_secs(2), "http up", || is_up(&t, addr)).await;
}

#[tokio::test]
async fn reload_with_a_new_check_replaces_the_running_checker() {
    let b = Backend::start(Behaviour::Named("b".into())).await;
    let p = pool(&[(b.addr, "z", 1)]);
    let t = start_lb(p.clone(), listener()).await;
    wait_until(Duration::from_secs(2), "tcp check up", || {
        t.registry.get(&b.addr).unwrap().active_state() == switchyard_balance::ActiveState::Up
    })
    .await;
    // the backend does not speak HTTP: an HTTP check must take it down
    let mut p2 = p.clone();
    p2.check = Some(CheckSpec {
        kind: CheckKind::Http {
            method: "GET".into(),
            path: "/".into(),
            host: None,
            expect_status: 200..=299,
            body_contains: None,
        },
        ..fast_check()
    });
    let s =
        t.lb.reload_plan(switchyard_lb::Plan {
            global_max_connections: None,
            pools: vec![p2.clone()],
            listeners: vec![listener()],
        })
        .await
        .unwrap();
    assert_eq!(s.pools_updated, 1);
    assert_eq!(t.registry.checker_spec(&b.addr), p2.check);
    wait_until(Duration::from_secs(2), "http check down", || {
        !is_up(&t, b.addr)
    })
    .await;
    let reason = t.registry.get(&b.addr).unwrap().reason();
    assert!(reason.starts_with("http:"), "{reason}");
}
