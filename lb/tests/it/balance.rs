//! Backend choice over real connections: weights per policy, Maglev disruption bound, connect
//! retry hiding a dead backend, AZ spill-over and return.

use crate::harness::*;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use switchyard_balance::Policy;
use tokio::net::TcpStream;

async fn named(n: usize) -> Vec<Backend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(Backend::start(Behaviour::Named(format!("b{i}"))).await);
    }
    v
}

fn client_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 1 + (i / 250) as u8, (i % 250) as u8, 7))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_follows_weights_for_every_policy() {
    let bs = named(3).await;
    let weights = [1u32, 2, 1];
    for policy in [
        Policy::RoundRobin,
        Policy::Random,
        Policy::LeastConnections,
        Policy::PowerOfTwo,
        Policy::Maglev,
    ] {
        let members: Vec<(SocketAddr, &str, u32)> = bs
            .iter()
            .zip(weights)
            .map(|(b, w)| (b.addr, "a", w))
            .collect();
        let mut p = pool(&members);
        p.policy = policy;
        let t = start_lb(p, listener()).await;
        const N: usize = 400;
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut held = Vec::new(); // connections stay open: what the connection-count policies see
        for i in 0..N {
            let mut s = connect_from(client_ip(i), t.addr).await.unwrap();
            *counts
                .entry(which_backend(&mut s).await.unwrap())
                .or_default() += 1;
            held.push(s);
        }
        let c = |n: &str| counts.get(n).copied().unwrap_or(0);
        let (b0, b1, b2) = (c("b0"), c("b1"), c("b2"));
        assert_eq!(b0 + b1 + b2, N);
        let tol = match policy {
            Policy::RoundRobin | Policy::LeastConnections => 2,
            Policy::PowerOfTwo => 20,
            _ => 45, // random draws: ~4.5 standard deviations
        };
        for (got, want) in [(b0, 100), (b1, 200), (b2, 100)] {
            assert!(got.abs_diff(want) <= tol, "{policy:?}: {b0}/{b1}/{b2}");
        }
        if policy == Policy::Maglev {
            // sticky: the same client address lands on the same backend
            for i in 0..20 {
                let mut a = connect_from(client_ip(i), t.addr).await.unwrap();
                let mut b = connect_from(client_ip(i), t.addr).await.unwrap();
                assert_eq!(
                    which_backend(&mut a).await.unwrap(),
                    which_backend(&mut b).await.unwrap()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_moves_about_one_nth_when_a_backend_leaves() {
    let bs = named(5).await;
    let members: Vec<(SocketAddr, &str, u32)> = bs.iter().map(|b| (b.addr, "a", 1)).collect();
    let mut p = pool(&members);
    p.policy = Policy::Maglev;
    let t = start_lb(p.clone(), listener()).await;
    const N: usize = 500;
    let mut before = Vec::new();
    for i in 0..N {
        let mut s = connect_from(client_ip(i), t.addr).await.unwrap();
        before.push(which_backend(&mut s).await.unwrap());
    }
    // b3 leaves the pool (reload): Maglev rebuilds its table
    p.members.remove(3);
    let plan = switchyard_lb::Plan {
        global_max_connections: None,
        pools: vec![p],
        listeners: vec![listener()], // same sockets: no rebind
    };
    t.lb.reload_plan(plan).await.unwrap();
    let mut moved = 0;
    let mut moved_others = 0;
    for (i, old) in before.iter().enumerate() {
        let mut s = connect_from(client_ip(i), t.addr).await.unwrap();
        let now = which_backend(&mut s).await.unwrap();
        assert_ne!(now, "b3");
        if &now != old {
            moved += 1;
            if old != "b3" {
                moved_others += 1;
            }
        }
    }
    let on_b3 = before.iter().filter(|b| *b == "b3").count();
    let frac = moved as f64 / N as f64;
    eprintln!("maglev: {moved}/{N} moved ({on_b3} were on b3, {moved_others} others)");
    assert!(frac <= 0.2 * 1.3 + 0.02, "moved {frac}");
    assert!(
        moved_others as f64 <= 0.05 * N as f64,
        "{moved_others} clients of surviving backends moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_retry_hides_a_dead_backend() {
    let bs = named(2).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed: connects are refused
    let mut p = pool(&[(dead, "a", 1), (bs[0].addr, "a", 1), (bs[1].addr, "b", 1)]);
    p.check = None; // no active checks: only retry stands between the client and the dead one
    p.connect_attempts = 3;
    let t = start_lb(p, listener()).await;
    let mut failures = 0;
    for _ in 0..200 {
        match round_trip(t.addr).await {
            Ok(name) => assert!(name == "b0" || name == "b1"),
            Err(_) => failures += 1,
        }
    }
    assert_eq!(failures, 0);
    let st = t.lb.status();
    let dead_m = st.pools[0].members.iter().find(|m| m.addr == dead).unwrap();
    assert_eq!(dead_m.active_connections, 0);
    assert!(bs[0].count() + bs[1].count() == 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_spill_over_and_return() {
    let mut bs = named(3).await;
    // AZ a: b0, b1; AZ b: b2 -> each AZ gets half
    let p = pool(&[
        (bs[0].addr, "a", 1),
        (bs[1].addr, "a", 1),
        (bs[2].addr, "b", 1),
    ]);
    let t = start_lb(p, listener()).await;
    let count = |t: &TestLb| {
        let t = t.addr;
        async move {
            let mut c: HashMap<String, usize> = HashMap::new();
            for _ in 0..100 {
                *c.entry(round_trip(t).await.unwrap()).or_default() += 1;
            }
            c
        }
    };
    let c = count(&t).await;
    assert_eq!(c.get("b2"), Some(&50), "{c:?}");
    // all of AZ a goes down
    bs[0].kill();
    bs[1].kill();
    wait_until(Duration::from_secs(3), "AZ a down", || {
        !is_up(&t, bs[0].addr) && !is_up(&t, bs[1].addr)
    })
    .await;
    let shares = &t.lb.status().pools[0].shares;
    assert_eq!((shares[0].share, shares[1].share), (0.0, 1.0));
    let c = count(&t).await;
    assert_eq!(c.get("b2"), Some(&100), "{c:?}");
    // it recovers: shares and traffic return
    bs[0].restart().await;
    bs[1].restart().await;
    wait_until(Duration::from_secs(3), "AZ a up", || {
        is_up(&t, bs[0].addr) && is_up(&t, bs[1].addr)
    })
    .await;
    let shares = &t.lb.status().pools[0].shares;
    assert_eq!((shares[0].share, shares[1].share), (0.5, 0.5));
    let c = count(&t).await;
    assert_eq!(c.get("b2"), Some(&50), "{c:?}");
    assert_eq!(
        c.get("b0").copied().unwrap_or(0) + c.get("b1").copied().unwrap_or(0),
        50
    );
}

#[tokio::test]
async fn all_members_down_refuses_promptly_or_fails_open() {
    let b = Backend::start(Behaviour::Named("b0".into())).await;
    let t = start_lb(pool(&[(b.addr, "a", 1)]), listener()).await;
    t.admin
        .fail(switchyard_balance::AdminTarget::Instance("m0".into()));
    let t0 = std::time::Instant::now();
    // refused with a RST, which may even beat the client's view of the handshake
    let refused = match TcpStream::connect(t.addr).await {
        Err(_) => true,
        Ok(mut s) => which_backend(&mut s).await.is_err(),
    };
    assert!(refused);
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert!(t.lb.status().pools[0].all_down_picks >= 1);
    let mut p = pool(&[(b.addr, "a", 1)]);
    p.fail_open = true;
    let t = start_lb(p, listener()).await;
    t.admin
        .fail(switchyard_balance::AdminTarget::Instance("m0".into()));
    assert_eq!(round_trip(t.addr).await.unwrap(), "b0");
    assert!(t.lb.status().pools[0].all_down_picks >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_moves_on_to_another_backend() {
    // a backend whose accept queue is full: SYNs are dropped, connects hang
    let stuck = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    stuck
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    stuck.listen(0).unwrap();
    let stuck_addr = stuck.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(stuck_addr)).await
        {
            fillers.push(s);
        }
    }
    let hangs = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(stuck_addr))
        .await
        .is_err();
    assert!(
        hangs,
        "the stuck backend should not complete handshakes any more"
    );
    let good = Backend::start(Behaviour::Named("good".into())).await;
    let mut p = pool(&[(stuck_addr, "a", 1), (good.addr, "b", 1)]);
    p.check = None;
    let mut l = listener();
    l.connect_timeout = Duration::from_millis(150);
    let t = start_lb(p, l).await;
    let mut waited = 0;
    for _ in 0..4 {
        let t0 = std::time::Instant::now();
        assert_eq!(round_trip(t.addr).await.unwrap(), "good");
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(1), "{took:?}");
        if took >= Duration::from_millis(140) {
            waited += 1; // went to the stuck backend first and timed out
        }
    }
    assert_eq!(
        waited, 2,
        "round robin sends every other connection to the stuck backend first"
    );
}
