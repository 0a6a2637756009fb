//! `switchyard bench` against a running demo world, with no target given: the defaults from the
//! world's config (DNS, GSLB name, VIP port, routes, signed tokens) make `bench chain` and
//! `bench dns` work as they are; `bench compare` reads their JSON.

use crate::harness::{addr, bin, demo_config, http, poll_until, Node, TempDir};
use std::process::Command;
use std::time::Duration;

fn bench(args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("bench")
        .args(args)
        .output()
        .expect("run switchyard bench");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench {args:?} failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn bench_chain_and_dns_just_work_against_the_demo_world() {
    let dir = TempDir::new("bench");
    let cfg = demo_config(&dir, 164);
    let cfg = cfg.to_str().unwrap();
    let _node = Node::start(&["--config", cfg]);
    let admin = addr(164, "0.1:9901");
    poll_until(Duration::from_secs(10), || {
        http(admin, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    })
    .expect("never ready");
    let a = dir.0.join("a.json");
    let svg = dir.0.join("a.svg");
    let table = bench(&[
        "chain",
        "--config",
        cfg,
        "--duration",
        "1s",
        "-c",
        "2",
        "-q",
        "--json",
        a.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(
        table.contains("switchyard bench chain: api.example.test. via 127.164.0.1:8053"),
        "{table}"
    );
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    assert_eq!(r["errors"], serde_json::json!({}), "{table}");
    assert!(r["ok"].as_u64().unwrap() > 10, "{table}");
    for phase in ["dns", "connect", "ttfb"] {
        assert!(
            r["phases"][phase]["count"].as_u64().unwrap() >= 2,
            "{phase}: {table}"
        );
    }
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

    let b = dir.0.join("b.json");
    let table = bench(&[
        "dns",
        "--config",
        cfg,
        "--duration",
        "1s",
        "-c",
        "2",
        "-q",
        "--ecs",
        "81.2.69.160/27",
        "--json",
        b.to_str().unwrap(),
    ]);
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&b).unwrap()).unwrap();
    assert_eq!(r["errors"], serde_json::json!({}), "{table}");
    assert!(r["ok"].as_u64().unwrap() > 10, "{table}");

    let cmp = bench(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(cmp.contains("throughput/s") && cmp.contains("B/A"), "{cmp}");
}
