//! Admin levers in a cluster: an action taken on one node is obeyed by every node, with an
//! audit line.

use super::{push, region_node, wait_status, world, AUTH};
use crate::harness::{addr, http, TempDir};
use serde_json::Value;
use std::time::Duration;
use switchyard_cluster::testing::Etcd;

#[test]
fn an_admin_action_on_one_node_is_obeyed_by_every_node_with_an_audit_line() {
    let etcd = Etcd::start("e2e-admin");
    let dir = TempDir::new("cluster-admin");
    let url = etcd.url("/switchyard/world");
    push(&dir.write("world.toml", &world(106)), &url);
    let (ae, aw) = (addr(106, "0.1:9901"), addr(106, "0.2:9901"));
    let east = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", ae);
    let _west = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", aw);
    // Drain an AZ of us-east through the *eu-west* node's API.
    let r = http(aw, "POST", "/v1/azs/us-east-a/drain", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let drained = |s: &Value| {
        s["admin_overrides"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["kind"] == "az" && o["name"] == "us-east-a" && o["mode"] == "drain")
    };
    wait_status(
        ae,
        Duration::from_secs(3),
        "us-east node drains us-east-a",
        drained,
    );
    east.wait_stderr("cluster admin action", Duration::from_secs(5));
    let line = east
        .stderr()
        .lines()
        .find(|l| l.contains("cluster admin action"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("node=west")
            && line.contains("action=drain")
            && line.contains("az us-east-a"),
        "{line}"
    );
    assert!(line.contains("who="), "{line}");
    // The L4 balancer of us-east obeys: no share for the drained AZ.
    wait_status(ae, Duration::from_secs(3), "share moves away", |s| {
        s["regions"][0]["azs"][0]["share"].as_f64() == Some(0.0)
    });
    // Undone on the us-east node itself: gone everywhere.
    let r = http(ae, "POST", "/v1/azs/us-east-a/undrain", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(
        aw,
        Duration::from_secs(3),
        "undrained on eu-west too",
        |s| !drained(s),
    );
    wait_status(ae, Duration::from_secs(3), "undrained on us-east", |s| {
        !drained(s)
    });
}
