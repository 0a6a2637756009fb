//! Failover with real backends and real health checks: stop every member of us-east's pool and
//! the US client is sent to eu-west within fall x interval + one interval; restore them and it
//! comes back after `rise` successes; the answers in between never flap.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use switchyard_balance::{AdminState, AdminTarget, HealthRegistry};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

const INTERVAL_MS: u64 = 100;
const RISE: u64 = 3;
const FALL: u64 = 2;
/// Scheduling slack on a busy 2-core machine.
const SLACK_MS: u64 = 600;

/// A backend that accepts and closes connections; aborting the task closes the port.
async fn backend(addr: SocketAddr) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind(addr).await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    (addr, task)
}

fn world(us: [SocketAddr; 2], eu: SocketAddr) -> switchyard_config::World {
    let toml = format!(
        r#"
[node]
only = ["dns", "lb"]
[geo]
country_db = "builtin:maxmind-test-country"

[[regions]]
name = "us-east"
vips = ["127.0.1.1"]
continents = ["NA"]
failover = ["eu-west"]
default = true
min_healthy = 1
  [[regions.azs]]
  name = "us-east-a"
  [[regions.azs]]
  name = "us-east-b"
  [[regions.pools]]
  name = "us-east-gw"
  members = [
    {{ name = "us-a", addr = "{}", az = "us-east-a" }},
    {{ name = "us-b", addr = "{}", az = "us-east-b" }},
  ]
  [regions.pools.health]
  type = "tcp"
  interval = "{INTERVAL_MS}ms"
  timeout = "80ms"
  jitter = 0.0
  rise = {RISE}
  fall = {FALL}

[[regions]]
name = "eu-west"
vips = ["127.0.2.1"]
continents = ["EU"]
failover = ["us-east"]
  [[regions.azs]]
  name = "eu-west-a"
  [[regions.pools]]
  name = "eu-west-gw"
  members = [ {{ name = "eu-a", addr = "{}", az = "eu-west-a" }} ]
  [regions.pools.health]
  type = "tcp"
  interval = "{INTERVAL_MS}ms"
  timeout = "80ms"
  jitter = 0.0
  rise = {RISE}
  fall = {FALL}

[dns]
listen = ["127.0.0.1:0"]
workers = 1
  [[dns.zones]]
  origin = "example.test."
  ns = ["ns1.example.test."]
  soa = {{ mname = "ns1.example.test.", rname = "hostmaster.example.test.", minimum = 60 }}
  records = [ {{ name = "ns1", type = "A", data = "127.0.0.1" }} ]
  [[dns.gslb]]
  name = "api.example.test."
  policy = "geo"
  regions = ["us-east", "eu-west"]
  ttl = "5s"
"#,
        us[0], us[1], eu
    );
    switchyard_config::parse_str(&toml, "failover-test").expect("valid test world")
}

async fn us_answer(dns: SocketAddr) -> IpAddr {
    let q = with_edns(
        query("api.example.test.", RecordType::A),
        1232,
        Some(("216.160.83.56", 29)),
    );
    let r = udp(dns, &q).await;
    let a = addrs(&r.answers);
    assert_eq!(a.len(), 1);
    a[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_failover_and_recovery_with_real_backends() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (us_a, us_a_task) = backend(any).await;
    let (us_b, us_b_task) = backend(any).await;
    let (eu, _eu_task) = backend(any).await;
    let token = CancellationToken::new();
    let admin = AdminState::new();
    let registry = HealthRegistry::with_admin(admin.clone());
    let dns = switchyard_dns::start(
        Arc::new(world([us_a, us_b], eu)),
        registry.clone(),
        token.clone(),
    )
    .await
    .unwrap();
    let addr = dns.local_addrs()[0];
    // checks have run and everything is up
    let up = eventually(Duration::from_secs(3), || {
        let r = registry.clone();
        async move {
            r.get(&us_a)
                .is_some_and(|h| h.active_state() == switchyard_balance::ActiveState::Up)
        }
    })
    .await;
    assert!(up.is_some());
    assert_eq!(us_answer(addr).await, ip("127.0.1.1"));

    // sample the US client's answer every 10 ms
    let samples: Arc<Mutex<Vec<(Instant, IpAddr)>>> = Arc::default();
    let stop = CancellationToken::new();
    let sampler = {
        let (samples, stop) = (samples.clone(), stop.clone());
        tokio::spawn(async move {
            for _ in 0..2000 {
                if stop.is_cancelled() {
                    break;
                }
                let a = us_answer(addr).await;
                samples.lock().unwrap().push((Instant::now(), a));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    // every member of us-east goes down
    let t_down = Instant::now();
    us_a_task.abort();
    us_b_task.abort();
    let _ = (us_a_task.await, us_b_task.await);
    let switched = eventually(Duration::from_secs(3), || async {
        us_answer(addr).await == ip("127.0.2.1")
    })
    .await;
    let took = t_down.elapsed();
    assert!(switched.is_some(), "US client moved to eu-west");
    let bound = Duration::from_millis(FALL * INTERVAL_MS + INTERVAL_MS + SLACK_MS);
    assert!(took <= bound, "failover took {took:?} (bound {bound:?})");
    eprintln!("failover: US client on eu-west {took:?} after us-east went down (bound {bound:?})");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // they come back
    let t_up = Instant::now();
    let (_, a2) = backend(us_a).await;
    let (_, b2) = backend(us_b).await;
    let back = eventually(Duration::from_secs(3), || async {
        us_answer(addr).await == ip("127.0.1.1")
    })
    .await;
    let took = t_up.elapsed();
    assert!(back.is_some(), "US client returned to us-east");
    assert!(
        took >= Duration::from_millis((RISE - 1) * INTERVAL_MS - 20),
        "came back after {took:?}: before rise successes"
    );
    let bound = Duration::from_millis(RISE * INTERVAL_MS + INTERVAL_MS + SLACK_MS);
    assert!(took <= bound, "recovery took {took:?} (bound {bound:?})");
    eprintln!("recovery: US client back on us-east {took:?} after its backends returned (bound {bound:?})");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    sampler.await.unwrap();

    // no flapping: us-east..., eu-west..., us-east...
    let seq: Vec<IpAddr> = samples.lock().unwrap().iter().map(|(_, a)| *a).collect();
    let mut runs: Vec<IpAddr> = Vec::new();
    for a in &seq {
        if runs.last() != Some(a) {
            runs.push(*a);
        }
    }
    assert_eq!(
        runs,
        vec![ip("127.0.1.1"), ip("127.0.2.1"), ip("127.0.1.1")],
        "{} samples",
        seq.len()
    );

    // an administrative drain of the region moves clients too, restore brings them back
    admin.drain(AdminTarget::Region("us-east".into()));
    assert_eq!(us_answer(addr).await, ip("127.0.2.1"));
    let ex = dns
        .explain("api.example.test.", ip("216.160.83.56"), None)
        .unwrap();
    assert_eq!(ex.skipped.len(), 1);
    assert_eq!(ex.skipped[0].region, "us-east");
    admin.undrain(AdminTarget::Region("us-east".into()));
    assert_eq!(us_answer(addr).await, ip("127.0.1.1"));
    drop((a2, b2));
    token.cancel();
    dns.wait().await;
}
