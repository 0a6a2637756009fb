//! Region failover through the cluster's shared GSLB view: a killed region node moves DNS
//! clients within the lease TTL plus the probe's fall, while a node merely cut off from etcd
//! (a publisher, or a DNS node when a quorum still sees the region) does not fail a region over.

use super::{
    dig_a, dns_node, ip, push, region_node, status, wait_status, world, PROBE_FALL, TTL, US,
};
use crate::harness::{addr, poll_until, TempDir};
use serde_json::Value;
use std::time::{Duration, Instant};
use switchyard_cluster::testing::{Etcd, Proxy};

#[test]
fn a_killed_region_node_moves_dns_clients_within_lease_ttl_plus_probe_fall() {
    let etcd = Etcd::start("e2e-region");
    let dir = TempDir::new("cluster-region");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(103)), &url);
    let (ae, aw, ad) = (
        addr(103, "0.1:9901"),
        addr(103, "0.2:9901"),
        addr(103, "0.3:9901"),
    );
    let dns = addr(103, "0.1:8053");
    let mut east = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", ae);
    let _west = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", aw);
    let d = dns_node(&format!("{url}?node=dns1&ttl=2s"), ad, dns);
    // The DNS node sees both publishers and answers US clients with us-east.
    wait_status(
        ad,
        Duration::from_secs(8),
        "both regions published and up",
        |s| {
            let o = s["etcd"]["observed"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            o.len() == 2
                && o.iter()
                    .all(|r| r["publishers"] == 1 && r["verdict"] == "up" && r["probe_up"] == true)
        },
    );
    assert_eq!(dig_a(dns, US), ip("127.103.1.1"));
    // The us-east node dies (SIGKILL: its lease must run out).
    east.child.kill().unwrap();
    let _ = east.child.wait();
    let t0 = Instant::now();
    poll_until(TTL + PROBE_FALL + Duration::from_secs(3), || {
        dig_a(dns, US) == ip("127.103.2.1")
    })
    .unwrap_or_else(|_| panic!("US clients never moved; {}", status(ad)["etcd"]));
    let moved = t0.elapsed();
    eprintln!("DNS moved us-east's clients {moved:?} after the region node was killed (lease TTL {TTL:?}, probe fall {PROBE_FALL:?})");
    assert!(
        moved <= TTL + PROBE_FALL + Duration::from_millis(1500),
        "moved after {moved:?}"
    );
    assert!(
        moved >= Duration::from_millis(900),
        "moved before the lease could expire: {moved:?}"
    );
    d.wait_stderr("region failed over", Duration::from_secs(5));
    let s = status(ad);
    assert_eq!(
        s["admin_overrides"][0]["name"], "us-east",
        "{}",
        s["admin_overrides"]
    );
    // The node comes back: its clients come back.
    let _east = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", ae);
    poll_until(Duration::from_secs(8), || {
        dig_a(dns, US) == ip("127.103.1.1")
    })
    .unwrap_or_else(|_| panic!("US clients never came back; {}", status(ad)["etcd"]));
}

#[test]
fn a_publisher_cut_off_from_etcd_does_not_fail_its_region_while_its_vip_answers() {
    let etcd = Etcd::start("e2e-cut");
    let dir = TempDir::new("cluster-cut");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(104)), &url);
    let proxy = Proxy::start(etcd.endpoint);
    let (ae, aw, ad) = (
        addr(104, "0.1:9901"),
        addr(104, "0.2:9901"),
        addr(104, "0.3:9901"),
    );
    let dns = addr(104, "0.1:8053");
    let _east = region_node(
        &proxy.url("/switchyard/world?node=east&ttl=2s"),
        "us-east",
        ae,
    );
    let _west = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", aw);
    let _d = dns_node(&format!("{url}?node=dns1&ttl=2s"), ad, dns);
    wait_status(ad, Duration::from_secs(8), "us-east published", |s| {
        s["etcd"]["observed"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["region"] == "us-east" && r["publishers"] == 1)
    });
    proxy.cut();
    // us-east's lease runs out: the DNS node sees no publisher, but the VIP still answers.
    wait_status(
        ad,
        TTL + Duration::from_secs(3),
        "us-east publisher gone",
        |s| {
            s["etcd"]["observed"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["region"] == "us-east" && r["publishers"] == 0 && r["probe_up"] == true)
        },
    );
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(dig_a(dns, US), ip("127.104.1.1"));
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the cut-off node says so in its own status.
    wait_status(ae, Duration::from_secs(3), "disconnected", |s| {
        s["etcd"]["connected"] == false
    });
    proxy.heal();
    wait_status(ad, Duration::from_secs(6), "us-east published again", |s| {
        s["etcd"]["observed"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["region"] == "us-east" && r["publishers"] == 1)
    });
}

#[test]
fn with_a_quorum_a_dns_node_cut_off_from_etcd_does_not_fail_over_on_its_own_view() {
    let etcd = Etcd::start("e2e-quorum");
    let dir = TempDir::new("cluster-quorum");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(105)), &url);
    let proxy1 = Proxy::start(etcd.endpoint);
    let proxy4 = Proxy::start(etcd.endpoint);
    let a = |n: u8| addr(105, &format!("0.{n}:9901"));
    let d = |n: u8| addr(105, &format!("0.{n}:8053"));
    let mut east = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", a(1));
    let _west = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", a(2));
    // d1: quorum 2, cut off. d2, d3: quorum 2, connected. d4: no quorum, cut off.
    let _d1 = dns_node(
        &proxy1.url("/switchyard/world?node=d1&ttl=2s&quorum=2"),
        a(3),
        d(3),
    );
    let _d2 = dns_node(&format!("{url}?node=d2&ttl=2s&quorum=2"), a(4), d(4));
    let _d3 = dns_node(&format!("{url}?node=d3&ttl=2s&quorum=2"), a(5), d(5));
    let _d4 = dns_node(&proxy4.url("/switchyard/world?node=d4&ttl=2s"), a(6), d(6));
    for n in 3..=6 {
        wait_status(a(n), Duration::from_secs(8), "us-east up", |s| {
            s["etcd"]["observed"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["region"] == "us-east" && r["publishers"] == 1 && r["probe_up"] == true)
        });
        assert_eq!(dig_a(d(n), US), ip("127.105.1.1"));
    }
    proxy1.cut();
    proxy4.cut();
    wait_status(a(3), Duration::from_secs(3), "d1 cut off", |s| {
        s["etcd"]["connected"] == false
    });
    wait_status(a(6), Duration::from_secs(3), "d4 cut off", |s| {
        s["etcd"]["connected"] == false
    });
    east.child.kill().unwrap();
    let _ = east.child.wait();
    let t0 = Instant::now();
    // d2 and d3 agree (two votes): they fail over. d4 acts alone on its own probe.
    let mut moved: Vec<Option<Duration>> = vec![None; 3];
    let nodes = [4u8, 5, 6];
    poll_until(TTL + PROBE_FALL + Duration::from_secs(3), || {
        for (i, n) in nodes.iter().enumerate() {
            if moved[i].is_none() && dig_a(d(*n), US) == ip("127.105.2.1") {
                moved[i] = Some(t0.elapsed());
            }
        }
        moved.iter().all(Option::is_some)
    })
    .unwrap_or_else(|_| panic!("not every connected or quorum-less DNS node moved: {moved:?}"));
    eprintln!(
        "US clients moved after: d2 (quorum 2) {:?}, d3 (quorum 2) {:?}, d4 (no quorum, cut off) {:?}",
        moved[0].unwrap(),
        moved[1].unwrap(),
        moved[2].unwrap()
    );
    // Without a quorum the cut-off node decides on its probe alone: before the lease ran out.
    assert!(moved[2].unwrap() < moved[0].unwrap(), "{moved:?}");
    // d1 has one vote (its own) and no way to learn the others': it keeps its answer.
    let s = status(a(3));
    let o: Vec<&Value> = s["etcd"]["observed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["region"] == "us-east")
        .collect();
    assert_eq!(
        o[0]["verdict"], "down",
        "d1 sees it down itself: {}",
        s["etcd"]
    );
    assert_eq!(o[0]["failed_over"], false, "{}", s["etcd"]);
    assert_eq!(dig_a(d(3), US), ip("127.105.1.1"));
    // Healed, d1 counts the others' votes and follows.
    proxy1.heal();
    poll_until(Duration::from_secs(6), || {
        dig_a(d(3), US) == ip("127.105.2.1")
    })
    .unwrap_or_else(|_| panic!("d1 never followed after healing; {}", status(a(3))["etcd"]));
}
