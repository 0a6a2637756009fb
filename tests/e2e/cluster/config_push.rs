//! Pushing worlds through etcd to every node (a bad one rejected everywhere), and a node whose
//! etcd is unreachable at start.

use super::{
    dig_a, ip, push, put_raw, region_node, register_user_extra, status, wait_status, world, US,
};
use crate::harness::{addr, bin, http, poll_until, Node, TempDir};
use serde_json::Value;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};
use switchyard_cluster::testing::Etcd;

#[test]
fn a_pushed_world_reaches_every_node_and_a_bad_one_is_rejected_by_every_node() {
    let etcd = Etcd::start("e2e-push");
    let dir = TempDir::new("cluster-push");
    let file = dir.write("world.toml", &world(100));
    let url = etcd.url("/switchyard/world");
    let rev1 = push(&file, &url);
    let (a1, a2) = (addr(100, "0.1:9901"), addr(100, "0.2:9901"));
    let n1 = region_node(&format!("{url}?node=east&ttl=2s"), "us-east", a1);
    let n2 = region_node(&format!("{url}?node=west&ttl=2s"), "eu-west", a2);
    for a in [a1, a2] {
        let e = &status(a)["etcd"];
        assert_eq!(e["revision"], rev1, "{e}");
        assert_eq!(e["state"], "connected");
    }
    // A new world (an AZ weight changes): every node switches to its revision.
    let changed = world(100).replacen(
        "  [[regions.azs]]\n  name = \"us-east-a\"\n",
        "  [[regions.azs]]\n  name = \"us-east-a\"\n  weight = 3\n",
        1,
    );
    assert_ne!(changed, world(100));
    let file2 = dir.write("world2.toml", &changed);
    let t0 = Instant::now();
    let rev2 = push(&file2, &url);
    assert!(rev2 > rev1);
    for a in [a1, a2] {
        wait_status(
            a,
            Duration::from_secs(5),
            "switch to the new revision",
            |s| s["etcd"]["revision"] == rev2 && s["regions"][0]["azs"][0]["weight"] == 3,
        );
    }
    eprintln!(
        "both nodes run revision {rev2} {:?} after `config push` started",
        t0.elapsed()
    );
    // Any node's status says which revision every node runs.
    let every_node_runs = |rev: i64| {
        move |s: &Value| {
            let mut nodes: Vec<(String, i64)> = s["etcd"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| {
                    (
                        n["node"].as_str().unwrap_or("").to_string(),
                        n["revision"].as_i64().unwrap_or(0),
                    )
                })
                .collect();
            nodes.sort();
            nodes == [("east".to_string(), rev), ("west".to_string(), rev)]
        }
    };
    wait_status(
        a1,
        Duration::from_secs(3),
        "both nodes listed at rev2",
        every_node_runs(rev2),
    );
    // `config push` refuses an invalid file (exit 2, every error) and etcd keeps the world.
    let bad_text = changed.replace("failover = [\"eu-west\"]", "failover = [\"mars\"]");
    let bad = dir.write("bad.toml", &bad_text);
    let out = Command::new(bin())
        .args(["config", "push"])
        .arg(&bad)
        .args(["--to", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("regions[0].failover[0]") && err.contains("mars"),
        "{err}"
    );
    // Written past the check: every node rejects it, logs why, and keeps running rev2.
    let rev3 = put_raw(&etcd, "/switchyard/world", &bad_text);
    for (a, n) in [(a1, &n1), (a2, &n2)] {
        wait_status(a, Duration::from_secs(5), "bad revision rejected", |s| {
            s["etcd"]["rejected_revision"] == rev3
        });
        let e = &status(a)["etcd"];
        assert_eq!(e["revision"], rev2, "{e}");
        assert_eq!(e["latest_revision"], rev3, "{e}");
        n.wait_stderr(
            "reload rejected: the running configuration is unchanged",
            Duration::from_secs(2),
        );
        assert!(
            n.stderr().contains("mars"),
            "the error is logged:\n{}",
            n.stderr()
        );
    }
    wait_status(
        a2,
        Duration::from_secs(3),
        "both nodes still at rev2",
        every_node_runs(rev2),
    );
    // The registry keeps working on top of the last good world.
    let mut reg = register_user_extra("127.100.5.1:7001".parse().unwrap(), &url);
    wait_status(
        a1,
        Duration::from_secs(5),
        "registration applied on rev2",
        |s| {
            s["etcd"]["registered_instances"] == serde_json::json!(["user-extra"])
                && s["etcd"]["revision"] == rev2
                && s["regions"][0]["azs"][0]["weight"] == 3
        },
    );
    reg.kill().unwrap();
    let _ = reg.wait();
    // The nodes still serve (a demo service of each region answers).
    assert_eq!(
        http(addr(100, "11.1:7001"), "GET", "/v1/users/a", &[], "")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http(addr(100, "12.1:7001"), "GET", "/v1/users/a", &[], "")
            .unwrap()
            .status,
        200
    );
    // A good world after the bad one applies again.
    let rev4 = push(&file, &url);
    for a in [a1, a2] {
        wait_status(
            a,
            Duration::from_secs(5),
            "recover with a good revision",
            |s| s["etcd"]["revision"] == rev4 && s["regions"][0]["azs"][0]["weight"] == 1,
        );
    }
}

#[test]
fn etcd_unreachable_at_start_is_a_clear_error_and_later_the_node_keeps_serving() {
    // Nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("etcd://127.0.0.1:{port}/switchyard/world");
    let out = Command::new(bin())
        .args(["run", "--config", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot read the world from {url}")) && err.contains("unreachable"),
        "{err}"
    );

    let mut etcd = Etcd::start("e2e-down");
    let url = etcd.url("/switchyard/world");
    // An etcd without a world: also a clear error.
    let out = Command::new(bin())
        .args(["run", "--config", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("holds no world; publish one with `switchyard config push"));

    let dir = TempDir::new("cluster-down");
    let rev = push(&dir.write("world.toml", &world(101)), &url);
    let admin = addr(101, "0.1:9901");
    let node = Node::start(&["--config", &format!("{url}?node=solo&ttl=2s")]);
    assert_eq!(status(admin)["etcd"]["revision"], rev);
    etcd.kill();
    wait_status(admin, Duration::from_secs(4), "report the lost link", |s| {
        s["etcd"]["state"]
            .as_str()
            .is_some_and(|t| t.starts_with("disconnected since "))
            && s["etcd"]["connected"] == false
    });
    let metric = |line: &str| {
        poll_until(Duration::from_secs(2), || {
            http(admin, "GET", "/metrics", &[], "").is_ok_and(|r| r.body.lines().any(|l| l == line))
        })
        .is_ok()
    };
    assert!(
        metric("switchyard_etcd_connected 0"),
        "metrics say disconnected"
    );
    assert!(metric(&format!("switchyard_etcd_world_revision {rev}")));
    // Still serving the last good world: a demo service and DNS answer.
    assert_eq!(
        http(addr(101, "11.1:7001"), "GET", "/v1/users/a", &[], "")
            .unwrap()
            .status,
        200
    );
    assert_eq!(dig_a(addr(101, "0.1:8053"), US), ip("127.101.1.1"));
    assert_eq!(status(admin)["etcd"]["revision"], rev);
    // etcd back: reconnected (retrying with back-off), same revision.
    etcd.restart();
    wait_status(admin, Duration::from_secs(6), "reconnect", |s| {
        s["etcd"]["state"] == "connected" && s["etcd"]["revision"] == rev
    });
    node.wait_stderr("etcd: connected again", Duration::from_secs(5));
    assert!(
        metric("switchyard_etcd_connected 1"),
        "metrics say connected"
    );
}
