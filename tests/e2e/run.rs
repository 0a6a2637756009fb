//! `switchyard run`: the demo world answers; SIGHUP reloads (or keeps the old world); SIGTERM exits 0.

use crate::harness::{addr, demo_config, http, poll_until, Node, TempDir};
use std::time::{Duration, Instant};

#[test]
fn demo_services_answer_with_their_identity() {
    let dir = TempDir::new("run-demo");
    let cfg = demo_config(&dir, 61);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let cases = [
        (
            "11.1:7001",
            "/v1/users/alice",
            "user",
            "user-us-east-a",
            "us-east",
            "us-east-a",
        ),
        (
            "11.2:7002",
            "/v1/orders?user=alice",
            "order",
            "order-us-east-b",
            "us-east",
            "us-east-b",
        ),
        (
            "12.1:7004",
            "/v1/cart/alice",
            "cart",
            "cart-eu-west-a",
            "eu-west",
            "eu-west-a",
        ),
        (
            "12.2:7001",
            "/v2/users/bob",
            "user",
            "user-eu-west-b",
            "eu-west",
            "eu-west-b",
        ),
    ];
    for (a, path, service, instance, region, az) in cases {
        let r = http(addr(61, a), "GET", path, &[], "").unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        assert_eq!(v["service"], service);
        assert_eq!(v["instance"], instance);
        assert_eq!(v["region"], region);
        assert_eq!(v["az"], az);
    }
    let v = http(addr(61, "11.1:7001"), "GET", "/v1/users/alice", &[], "")
        .unwrap()
        .json();
    assert_eq!(v["user"]["name"], "Alice");
    let r = http(
        addr(61, "12.2:7003"),
        "POST",
        "/v1/payments",
        &["Content-Type: application/json"],
        "{\"amount_cents\":1999}",
    )
    .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["payment"]["status"], "approved");
    assert_eq!(r.json()["payment"]["amount_cents"], 1999);
}

#[test]
fn sighup_with_a_broken_file_keeps_the_old_world_and_a_good_one_applies() {
    let dir = TempDir::new("run-hup");
    let cfg = demo_config(&dir, 62);
    let node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let cart_b = addr(62, "12.2:7004");
    assert_eq!(
        http(cart_b, "GET", "/v1/cart/x", &[], "").unwrap().status,
        200
    );

    // Broken: an unknown AZ. The old world keeps serving, every error is logged.
    let good = switchyard_config::demo_toml_on(62);
    std::fs::write(
        &cfg,
        good.replacen(
            "az = \"eu-west-b\", demo = true",
            "az = \"mars-1\", demo = true",
            1,
        ),
    )
    .unwrap();
    node.signal(libc::SIGHUP);
    node.wait_stderr("reload rejected", Duration::from_secs(10));
    assert!(
        node.stderr().contains("unknown AZ \\\"mars-1\\\"")
            || node.stderr().contains("unknown AZ \"mars-1\""),
        "{}",
        node.stderr()
    );
    assert_eq!(
        http(cart_b, "GET", "/v1/cart/x", &[], "").unwrap().status,
        200
    );

    // Good: cart-eu-west-b removed; the reload applies and that instance stops listening.
    let without = good.replacen(
        "  { name = \"cart-eu-west-b\", addr = \"127.62.12.2:7004\", region = \"eu-west\", az = \"eu-west-b\", demo = true },\n",
        "",
        1,
    );
    assert_ne!(without, good);
    std::fs::write(&cfg, without).unwrap();
    node.signal(libc::SIGHUP);
    node.wait_stderr("configuration reloaded", Duration::from_secs(10));
    poll_until(Duration::from_secs(5), || {
        http(cart_b, "GET", "/v1/cart/x", &[], "").is_err()
    })
    .expect("removed instance still answers");
    assert_eq!(
        http(addr(62, "12.1:7004"), "GET", "/v1/cart/x", &[], "")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn sigterm_exits_zero_within_the_grace_period() {
    let dir = TempDir::new("run-term");
    let cfg = demo_config(&dir, 63);
    let mut node = Node::start(&["--config", cfg.to_str().unwrap(), "--grace", "2s"]);
    let t0 = Instant::now();
    node.signal(libc::SIGTERM);
    let st = node.wait_exit(Duration::from_secs(5));
    assert_eq!(st.code(), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    assert!(http(addr(63, "11.1:7001"), "GET", "/healthz", &[], "").is_err());
}
