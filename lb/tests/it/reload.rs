//! Reload during traffic: zero failed connections, established connections unaffected, removed
//! members drain, only changed listeners rebind.

use crate::harness::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_balance::Policy;
use switchyard_lb::Plan;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A pool whose member names are stable across reloads (named after their address).
fn stable(members: &[(std::net::SocketAddr, &str, u32)]) -> switchyard_lb::PoolSpec {
    let mut p = pool(members);
    for m in &mut p.members {
        m.name = m.addr.to_string();
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_during_traffic_drops_nothing() {
    let bs: Vec<Backend> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(Backend::start(Behaviour::Named(format!("b{i}"))).await);
        }
        v
    };
    let p0 = stable(&[(bs[0].addr, "a", 1), (bs[1].addr, "b", 1)]);
    let t = start_lb(p0.clone(), listener()).await;
    // an established connection on b0 must live through every reload
    let mut long = loop {
        let mut s = TcpStream::connect(t.addr).await.unwrap();
        if which_backend(&mut s).await.unwrap() == "b0" {
            break s;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), t.addr);
            tokio::spawn(async move {
                for _ in 0..5000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match round_trip(addr).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let reload = |p: switchyard_lb::PoolSpec, l: switchyard_lb::ListenerSpec| {
        let lb = t.lb.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            lb.reload_plan(Plan {
                global_max_connections: None,
                pools: vec![p],
                listeners: vec![l],
            })
            .await
            .unwrap()
        }
    };
    // 1. add a member
    let mut p1 = stable(&[
        (bs[0].addr, "a", 1),
        (bs[1].addr, "b", 1),
        (bs[2].addr, "b", 1),
    ]);
    let s = reload(p1.clone(), listener()).await;
    assert_eq!((s.pools_updated, s.listeners_bound), (1, 0));
    // 2. change the policy and a listener setting that needs no new socket
    p1.policy = Policy::LeastConnections;
    let mut l2 = listener();
    l2.idle_timeout = Duration::from_secs(120);
    let s = reload(p1.clone(), l2.clone()).await;
    assert_eq!((s.listeners_updated, s.listeners_bound), (1, 0));
    // 3. remove b0 (it drains: the long connection stays until the deadline, which is long)
    let p3 = stable(&[(bs[1].addr, "b", 1), (bs[2].addr, "b", 1)]);
    let s = reload(p3, l2).await;
    assert_eq!(s.members_draining, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("reload: {ok} connections ok, {failed} failed");
    assert!(ok > 50, "{ok}");
    assert_eq!(failed, 0);
    // the established connection still echoes
    long.write_all(b"still").await.unwrap();
    let mut b = [0u8; 5];
    long.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"still");
    // and no new connection reaches the removed member
    for _ in 0..10 {
        assert_ne!(round_trip(t.addr).await.unwrap(), "b0");
    }
}

#[tokio::test]
async fn listener_rebinds_only_when_its_sockets_change() {
    let b = Backend::start(Behaviour::Named("b".into())).await;
    let p = pool(&[(b.addr, "z", 1)]);
    let t = start_lb(p.clone(), listener()).await;
    let old = t.addr;
    let mut kept = TcpStream::connect(old).await.unwrap();
    assert_eq!(which_backend(&mut kept).await.unwrap(), "b");
    // a second listener appears; the first is untouched
    let mut l2 = listener();
    l2.key.1 = "l2".into();
    let s =
        t.lb.reload_plan(Plan {
            global_max_connections: None,
            pools: vec![p.clone()],
            listeners: vec![listener(), l2],
        })
        .await
        .unwrap();
    assert_eq!((s.listeners_bound, s.listeners_updated), (1, 0));
    let a2 = t.lb.listener_addrs("test", "l2").unwrap()[0];
    assert_eq!(round_trip(a2).await.unwrap(), "b");
    assert_eq!(t.lb.listener_addrs("test", "l").unwrap()[0], old);
    // the first one's backlog changes: it rebinds (new sockets, new port since it was 0)
    let mut l1 = listener();
    l1.backlog = 77;
    let s =
        t.lb.reload_plan(Plan {
            global_max_connections: None,
            pools: vec![p],
            listeners: vec![l1],
        })
        .await
        .unwrap();
    assert_eq!((s.listeners_bound, s.listeners_stopped), (1, 1));
    let new = t.lb.listener_addrs("test", "l").unwrap()[0];
    assert_eq!(round_trip(new).await.unwrap(), "b");
    // the connection accepted by the old sockets is unaffected
    kept.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    kept.read_exact(&mut one).await.unwrap();
    assert_eq!(&one, b"x");
}

/// A connection the balancer refused: reset or closed at once, without a byte from a backend.
async fn is_refused(c: std::io::Result<TcpStream>) -> bool {
    let Ok(mut s) = c else { return true };
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_connection_cap_follows_reload() {
    let b = Backend::start(Behaviour::Named("b".into())).await;
    let (p, l) = (pool(&[(b.addr, "z", 1)]), listener());
    let t = start_lb(p.clone(), l.clone()).await;
    let plan = |cap: usize| Plan {
        global_max_connections: Some(cap),
        pools: vec![p.clone()],
        listeners: vec![l.clone()],
    };
    t.lb.reload_plan(plan(1)).await.unwrap();
    let mut first = TcpStream::connect(t.addr).await.unwrap();
    assert_eq!(which_backend(&mut first).await.unwrap(), "b");
    assert!(
        is_refused(TcpStream::connect(t.addr).await).await,
        "over the global cap of 1"
    );
    // growing the cap lets a second connection in
    t.lb.reload_plan(plan(2)).await.unwrap();
    let mut second = TcpStream::connect(t.addr).await.unwrap();
    assert_eq!(which_backend(&mut second).await.unwrap(), "b");
    // shrinking below what is open cuts nothing, refuses new connections...
    t.lb.reload_plan(plan(1)).await.unwrap();
    assert!(is_refused(TcpStream::connect(t.addr).await).await);
    for s in [&mut first, &mut second] {
        s.write_all(b"still here").await.unwrap();
        let mut buf = [0u8; 10];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still here");
    }
    // ...and still refuses with one left open (the cap is 1)...
    drop(second);
    assert!(is_refused(TcpStream::connect(t.addr).await).await);
    // ...until the process is under the new cap
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // a refusal's RST may beat the client's view of the handshake: then connect fails
        if let Ok(mut s) = TcpStream::connect(t.addr).await {
            if which_backend(&mut s).await.ok().as_deref() == Some("b") {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never accepted again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_removed_member_is_no_longer_health_checked() {
    let b0 = Backend::start(Behaviour::Named("b0".into())).await;
    let b1 = Backend::start(Behaviour::Named("b1".into())).await;
    // a removed member drains (and stays checked) until this deadline
    let drained = |mut p: switchyard_lb::PoolSpec| {
        p.drain_deadline = Duration::from_millis(100);
        p
    };
    let (p, l) = (
        drained(pool(&[(b0.addr, "z", 1), (b1.addr, "z", 1)])),
        listener(),
    );
    let t = start_lb(p, l.clone()).await;
    wait_until(Duration::from_secs(5), "both up", || {
        is_up(&t, b0.addr) && is_up(&t, b1.addr)
    })
    .await;
    assert!(t.registry.is_checked(&b1.addr));
    t.lb.reload_plan(Plan {
        global_max_connections: None,
        pools: vec![drained(pool(&[(b0.addr, "z", 1)]))],
        listeners: vec![l],
    })
    .await
    .unwrap();
    // its checker stops within a few check intervals, and it leaves the registry
    wait_until(Duration::from_secs(5), "b1's checker stops", || {
        !t.registry.is_checked(&b1.addr) && t.registry.get(&b1.addr).is_none()
    })
    .await;
    // the member that stayed is still checked
    assert!(t.registry.is_checked(&b0.addr));
    assert_eq!(round_trip(t.addr).await.unwrap(), "b0");
}

/// A member removed by a reload and brought back by the next one, before its drain deadline,
/// keeps its connections: the removal's drain is cancelled (HAProxy cuts none either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_and_readded_keeps_its_connections() {
    let b0 = Backend::start(Behaviour::Named("b0".into())).await;
    let b1 = Backend::start(Behaviour::Named("b1".into())).await;
    let deadline = |mut p: switchyard_lb::PoolSpec| {
        p.drain_deadline = Duration::from_millis(500);
        p
    };
    let both = deadline(stable(&[(b0.addr, "z", 1), (b1.addr, "z", 1)]));
    let l = listener();
    let t = start_lb(both.clone(), l.clone()).await;
    let mut held = loop {
        let mut s = TcpStream::connect(t.addr).await.unwrap();
        if which_backend(&mut s).await.unwrap() == "b1" {
            break s;
        }
    };
    let plan = |p: switchyard_lb::PoolSpec| Plan {
        global_max_connections: None,
        pools: vec![p],
        listeners: vec![l.clone()],
    };
    let t0 = std::time::Instant::now();
    t.lb.reload_plan(plan(deadline(stable(&[(b0.addr, "z", 1)]))))
        .await
        .unwrap();
    t.lb.reload_plan(plan(both)).await.unwrap();
    tokio::time::sleep_until((t0 + Duration::from_millis(800)).into()).await;
    held.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(2), held.read_exact(&mut b))
        .await
        .expect("no echo")
        .expect("cut at the removal's drain deadline");
    assert_eq!(&b, b"ping");
    assert_eq!(t.lb.status().pools[0].members.len(), 2);
}
