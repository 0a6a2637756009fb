//! Remote spill (issue 17) over real sockets: two balancers, "east" and "west", each with a
//! spill ingress. With every east member down a new connection reaches west's member with the
//! real client address (PROXY v2 through both hops); a spilled connection arriving at a region
//! with nothing healthy is refused, never bounced back; connections are not moved, and new ones
//! return to a local member as soon as it is up again. Reloads add spill targets without
//! touching open connections.

use crate::harness::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_balance::{HealthRegistry, MemberSpec};
use switchyard_lb::plan::{SpillSpec, SpillTarget};
use switchyard_lb::{start_plan, Lb, LbOptions, ListenerSpec, Plan, PoolSpec};
use switchyard_net::proxy::{parse, Parse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A gateway stand-in behind PROXY v2: reads the header, greets with `name client-addr\n`,
/// then echoes. Health-check connections (no header, closed at once) are ignored.
struct Gw {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Gw {
    async fn start(name: &str, addr: SocketAddr) -> Gw {
        let l = TcpListener::bind(addr).await.unwrap();
        let addr = l.local_addr().unwrap();
        let (served, stop) = (Arc::new(AtomicUsize::new(0)), CancellationToken::new());
        let (name, n, s) = (name.to_string(), served.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (mut c, _) = tokio::select! {
                    r = l.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = s.cancelled() => return,
                };
                let (name, n, s) = (name.clone(), n.clone(), s.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(&mut c, &name, &n) => {}
                        _ = s.cancelled() => {}
                    }
                });
            }
        });
        Gw { addr, served, stop }
    }

    fn kill(&self) {
        self.stop.cancel();
    }
}

async fn serve(c: &mut TcpStream, name: &str, served: &AtomicUsize) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    let src = loop {
        match parse(&buf) {
            Parse::Complete(h) => break h.addrs.map(|(s, _)| s.to_string()),
            Parse::Incomplete => {}
            _ => return,
        }
        if c.read_exact(&mut b).await.is_err() {
            return; // a health check
        }
        buf.push(b[0]);
    };
    served.fetch_add(1, Ordering::Relaxed);
    let hello = format!("{name} {}\n", src.unwrap_or_else(|| "local".into()));
    if c.write_all(hello.as_bytes()).await.is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = c.read(&mut buf).await {
        if n == 0 || c.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// One region's balancer: a pool over `members` (PROXY v2 to them) and a listener with its
/// spill ingress, both on 127.0.0.1:0.
struct Region {
    lb: Lb,
    vip: SocketAddr,
    ingress: SocketAddr,
    registry: HealthRegistry,
    plan: Plan,
    _shutdown: tokio_util::sync::DropGuard,
}

fn plan(region: &str, members: &[SocketAddr], spill: Option<SpillSpec>) -> Plan {
    let ms = members
        .iter()
        .enumerate()
        .map(|(i, a)| MemberSpec::new(format!("{region}-{i}"), *a, format!("{region}-a"), 1))
        .collect();
    let mut p = PoolSpec::new(region, "gw", ms);
    p.check = Some(fast_check());
    p.passive.consecutive_failures = 0;
    p.proxy_protocol = Some(switchyard_config::lb::ProxyVersion::V2);
    p.spill = spill;
    let mut l = ListenerSpec::new(region, "http", vec!["127.0.0.1:0".parse().unwrap()], "gw");
    l.workers = Some(1);
    l.connect_timeout = Duration::from_millis(500);
    l.io_engine = crate::harness::engine();
    let ingress = switchyard_lb::spill::ingress(&l, 0);
    Plan {
        pools: vec![p],
        listeners: vec![l, ingress],
        global_max_connections: None,
    }
}

async fn region(name: &str, members: &[SocketAddr], spill: Option<SpillSpec>) -> Region {
    raise_nofile();
    let registry = HealthRegistry::new();
    let shutdown = CancellationToken::new();
    let plan = plan(name, members, spill);
    let opts = LbOptions {
        grace: Duration::from_millis(200),
        worker_threads: None,
        ..LbOptions::default()
    };
    let lb = start_plan(plan.clone(), registry.clone(), shutdown.clone(), opts)
        .await
        .unwrap();
    let vip = lb.listener_addrs(name, "http").unwrap()[0];
    let ingress = lb.listener_addrs(name, "http.spill").unwrap()[0];
    Region {
        lb,
        vip,
        ingress,
        registry,
        plan,
        _shutdown: shutdown.drop_guard(),
    }
}

fn to(region: &str, addr: SocketAddr) -> Option<SpillSpec> {
    Some(SpillSpec {
        below: 1,
        targets: vec![SpillTarget {
            region: region.into(),
            addrs: vec![addr],
        }],
    })
}

async fn up(r: &Region, addr: SocketAddr, want: bool) {
    let reg = r.registry.clone();
    wait_until(Duration::from_secs(5), "health", move || {
        reg.get(&addr).is_some_and(|h| h.is_up() == want)
    })
    .await;
}

/// Connects from 127.0.0.9 and reads the greeting.
async fn hello(to: SocketAddr) -> std::io::Result<(TcpStream, String)> {
    let mut s = connect_from("127.0.0.9".parse().unwrap(), to).await?;
    let g = which_backend(&mut s).await?;
    Ok((s, g))
}

async fn echo(s: &mut TcpStream) {
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spill_reaches_the_next_region_with_the_client_address_and_comes_back() {
    let east_gw = Gw::start("east-gw", "127.0.0.1:0".parse().unwrap()).await;
    let west_gw = Gw::start("west-gw", "127.0.0.1:0".parse().unwrap()).await;
    let west = region("west", &[west_gw.addr], None).await;
    let mut east = region("east", &[east_gw.addr], None).await;
    up(&east, east_gw.addr, true).await;
    up(&west, west_gw.addr, true).await;

    // a connection while east is healthy; then spill is added by a reload, which cuts nothing
    let (mut before, g) = hello(east.vip).await.unwrap();
    assert!(g.starts_with("east-gw 127.0.0.9:"), "{g}");
    east.plan.pools[0].spill = to("west", west.ingress);
    let sum = east.lb.reload_plan(east.plan.clone()).await.unwrap();
    assert_eq!((sum.pools_updated, sum.listeners_bound), (1, 0), "{sum:?}");
    echo(&mut before).await;
    let st = east.lb.status();
    assert_eq!(st.pools[0].spill_to, ["west"]);
    assert_eq!(st.pools[0].spilling, None);

    // every east member down: new connections reach west's gateway, client address intact
    east_gw.kill();
    up(&east, east_gw.addr, false).await;
    for _ in 0..3 {
        let (mut s, g) = hello(east.vip).await.unwrap();
        assert!(g.starts_with("west-gw 127.0.0.9:"), "{g}");
        echo(&mut s).await;
    }
    let st = east.lb.status();
    assert_eq!(
        st.pools[0].spilling.as_deref(),
        Some("spilled to west: no healthy member in east")
    );
    assert_eq!(st.pools[0].spilled, 3);
    let (mut spilled, _) = hello(east.vip).await.unwrap();

    // one east member back: new connections return to it, the spilled one stays where it is
    let east_gw = Gw::start("east-gw", east_gw.addr).await;
    up(&east, east_gw.addr, true).await;
    let (_, g) = hello(east.vip).await.unwrap();
    assert!(g.starts_with("east-gw 127.0.0.9:"), "{g}");
    echo(&mut spilled).await;
    assert_eq!(east.lb.status().pools[0].spilling, None);
    assert_eq!(west_gw.served.load(Ordering::Relaxed), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spilled_connection_is_never_spilled_again() {
    let east_gw = Gw::start("east-gw", "127.0.0.1:0".parse().unwrap()).await;
    let west_gw = Gw::start("west-gw", "127.0.0.1:0".parse().unwrap()).await;
    // both regions spill to each other
    let mut east = region("east", &[east_gw.addr], None).await;
    let west = region("west", &[west_gw.addr], to("east", east.ingress)).await;
    east.plan.pools[0].spill = to("west", west.ingress);
    east.lb.reload_plan(east.plan.clone()).await.unwrap();
    up(&east, east_gw.addr, true).await;
    up(&west, west_gw.addr, true).await;

    // both degraded at once: east spills to west's ingress, which refuses instead of bouncing
    east_gw.kill();
    west_gw.kill();
    up(&east, east_gw.addr, false).await;
    up(&west, west_gw.addr, false).await;
    assert!(hello(east.vip).await.is_err(), "refused, not bounced");
    assert!(hello(west.vip).await.is_err());
    let (e, w) = (east.lb.status(), west.lb.status());
    assert_eq!((e.pools[0].spilled, w.pools[0].spilled), (1, 1));
    // no ingress connection was forwarded anywhere: the only PROXY hops were the two spills
    assert_eq!(
        west_gw.served.load(Ordering::Relaxed) + east_gw.served.load(Ordering::Relaxed),
        0
    );

    // a client that dials an ingress directly gets the same refusal, and without a PROXY
    // header at all it is refused too
    let mut s = TcpStream::connect(west.ingress).await.unwrap();
    let mut hdr = [0u8; switchyard_net::proxy::MAX_ENCODED];
    let n = switchyard_net::proxy::encode(
        switchyard_net::proxy::Version::V2,
        "127.0.0.9:1234".parse().unwrap(),
        west.vip,
        &mut hdr,
    );
    s.write_all(&hdr[..n]).await.unwrap();
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
        .await
        .unwrap();
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
}
