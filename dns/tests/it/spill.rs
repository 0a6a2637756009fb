//! Issue 17: a region whose balancer spills (fewer healthy pool members than `spill_below`, with
//! a spill target) is unhealthy for DNS at once - its answers move away and `explain` says
//! `spilling` - even while `min_healthy` alone would keep it up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use switchyard_balance::{ActiveState, HealthRegistry};
use switchyard_dns::RegionState;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// A TCP backend that accepts and closes; aborting the task closes the port.
async fn backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
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
  [[regions.pools]]
  name = "us-east-gw"
  spill_below = 2
  members = [
    {{ name = "us-a", addr = "{}", az = "us-east-a" }},
    {{ name = "us-b", addr = "{}", az = "us-east-a" }},
  ]
  [regions.pools.health]
  type = "tcp"
  interval = "100ms"
  timeout = "80ms"
  jitter = 0.0
  rise = 2
  fall = 2

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
  interval = "100ms"
  timeout = "80ms"
  [[regions.listeners]]
  name = "eu-west-http"
  port = 18080
  spill_port = 18081
  pool = "eu-west-gw"

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
    switchyard_config::parse_str(&toml, "spill-test").expect("valid test world")
}

async fn us_answer(dns: SocketAddr) -> std::net::IpAddr {
    let q = with_edns(
        query("api.example.test.", RecordType::A),
        1232,
        Some(("216.160.83.56", 29)),
    );
    let a = addrs(&udp(dns, &q).await.answers);
    assert_eq!(a.len(), 1, "{a:?}");
    a[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spilling_region_is_unhealthy_for_dns_and_says_so() {
    let (us_a, us_a_task) = backend().await;
    let (us_b, _us_b_task) = backend().await;
    let (eu, _eu_task) = backend().await;
    let token = CancellationToken::new();
    let registry = HealthRegistry::new();
    let dns = switchyard_dns::start(
        Arc::new(world([us_a, us_b], eu)),
        registry.clone(),
        token.clone(),
    )
    .await
    .unwrap();
    let addr = dns.local_addrs()[0];
    let checked = |a: SocketAddr, want: ActiveState| {
        let r = registry.clone();
        async move { r.get(&a).is_some_and(|h| h.active_state() == want) }
    };
    assert!(
        eventually(Duration::from_secs(3), || checked(us_a, ActiveState::Up))
            .await
            .is_some()
    );
    assert!(
        eventually(Duration::from_secs(3), || checked(us_b, ActiveState::Up))
            .await
            .is_some()
    );
    assert_eq!(us_answer(addr).await, ip("127.0.1.1"));

    // one of two members down: min_healthy (1) still holds, but spill_below (2) does not
    us_a_task.abort();
    let _ = us_a_task.await;
    assert!(
        eventually(Duration::from_secs(3), || checked(us_a, ActiveState::Down))
            .await
            .is_some()
    );
    assert_eq!(us_answer(addr).await, ip("127.0.2.1"));
    let why = dns
        .explain("api.example.test.", ip("216.160.83.56"), None)
        .unwrap();
    assert_eq!(why.chosen, ["eu-west"], "{why:?}");
    assert!(
        why.skipped
            .iter()
            .any(|s| s.region == "us-east" && s.state == RegionState::Spilling),
        "{why:?}"
    );
    assert_eq!(
        serde_json::to_value(RegionState::Spilling).unwrap(),
        serde_json::json!("spilling")
    );
    token.cancel();
}
