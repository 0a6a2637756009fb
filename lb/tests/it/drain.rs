//! Drain: a long-lived connection survives a drain until it ends; new connections avoid the
//! drained member; the deadline closes stragglers (and counts them).

use crate::harness::*;
use std::time::{Duration, Instant};
use switchyard_balance::AdminTarget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn echo_once(s: &mut TcpStream) -> std::io::Result<()> {
    s.write_all(b"ping").await?;
    let mut b = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut b)).await??;
    assert_eq!(&b, b"ping");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_keeps_established_avoids_new_and_deadline_closes_stragglers() {
    let a = Backend::start(Behaviour::Named("a".into())).await;
    let b = Backend::start(Behaviour::Named("b".into())).await;
    let mut p = pool(&[(a.addr, "z", 1), (b.addr, "z", 1)]);
    p.drain_deadline = Duration::from_millis(400);
    let t = start_lb(p, listener()).await;
    // two long-lived connections on "a": one ends by itself, one is a straggler
    let mut on_a = Vec::new();
    while on_a.len() < 2 {
        let mut s = TcpStream::connect(t.addr).await.unwrap();
        if which_backend(&mut s).await.unwrap() == "a" {
            on_a.push(s);
        }
    }
    let mut straggler = on_a.pop().unwrap();
    let mut polite = on_a.pop().unwrap();
    let t0 = Instant::now();
    t.admin.drain(AdminTarget::Instance("m0".into()));
    for _ in 0..20 {
        assert_eq!(
            round_trip(t.addr).await.unwrap(),
            "b",
            "new connections avoid the drained member"
        );
    }
    // established connections still work during the drain
    echo_once(&mut polite).await.unwrap();
    echo_once(&mut straggler).await.unwrap();
    let st = t.lb.status();
    assert!(st.pools[0].members[0].draining);
    assert_eq!(st.pools[0].members[0].admin, Some("drain"));
    polite.shutdown().await.unwrap(); // ends on its own before the deadline
    let mut rest = Vec::new();
    polite.read_to_end(&mut rest).await.unwrap();
    // the straggler is closed by the deadline, not before
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(3), straggler.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    let closed_at = t0.elapsed();
    assert!(
        closed_at >= Duration::from_millis(350),
        "closed too early: {closed_at:?}"
    );
    assert!(
        closed_at < Duration::from_millis(1500),
        "closed too late: {closed_at:?}"
    );
    wait_until(Duration::from_secs(1), "no connection left on a", || {
        t.lb.status().pools[0].members[0].active_connections == 0
    })
    .await;
    // undrain: traffic returns
    t.admin.undrain(AdminTarget::Instance("m0".into()));
    let mut names = Vec::new();
    for _ in 0..10 {
        names.push(round_trip(t.addr).await.unwrap());
    }
    assert!(names.iter().any(|n| n == "a"));
}

#[tokio::test]
async fn az_drain_moves_new_traffic_to_the_other_az() {
    let a = Backend::start(Behaviour::Named("a".into())).await;
    let b = Backend::start(Behaviour::Named("b".into())).await;
    let t = start_lb(pool(&[(a.addr, "az1", 1), (b.addr, "az2", 1)]), listener()).await;
    t.admin.drain(AdminTarget::Az("az1".into()));
    for _ in 0..10 {
        assert_eq!(round_trip(t.addr).await.unwrap(), "b");
    }
    let shares = &t.lb.status().pools[0].shares;
    assert_eq!((shares[0].share, shares[1].share), (0.0, 1.0));
}

/// Drain, undrain, drain again: the second drain gets its own full deadline; the first drain's
/// timer (still running when the member was undrained) cuts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_drain_gets_its_own_deadline() {
    let a = Backend::start(Behaviour::Named("a".into())).await;
    let b = Backend::start(Behaviour::Named("b".into())).await;
    let mut p = pool(&[(a.addr, "z", 1), (b.addr, "z", 1)]);
    p.drain_deadline = Duration::from_millis(1200);
    let t = start_lb(p, listener()).await;
    let mut held = loop {
        let mut s = TcpStream::connect(t.addr).await.unwrap();
        if which_backend(&mut s).await.unwrap() == "a" {
            break s;
        }
    };
    let t0 = Instant::now();
    t.admin.drain(AdminTarget::Instance("m0".into()));
    wait_until(Duration::from_secs(2), "drained", || {
        t.lb.status().pools[0].members[0].draining
    })
    .await;
    // the drain loop looks at the members on every admin change and at least every 250 ms:
    // by then the first drain's timer runs
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.admin.undrain(AdminTarget::Instance("m0".into()));
    wait_until(Duration::from_secs(2), "undrained", || {
        !t.lb.status().pools[0].members[0].draining
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t2 = Instant::now();
    t.admin.drain(AdminTarget::Instance("m0".into()));
    // past the first drain's deadline the connection still works
    let first_deadline = t0 + Duration::from_millis(1200);
    tokio::time::sleep_until((first_deadline + Duration::from_millis(150)).into()).await;
    assert!(
        t2.elapsed() < Duration::from_millis(1200),
        "the machine was too slow to tell the deadlines apart"
    );
    echo_once(&mut held)
        .await
        .expect("cut at the first drain's deadline");
    // and the second drain's deadline closes it
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(3), held.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t2.elapsed() >= Duration::from_millis(1150),
        "{:?}",
        t2.elapsed()
    );
}
