//! L4 SNI routing through the binary: a world whose listener routes by server name, what
//! `/v1/explain/lb?sni=` and `/status` say about it, and a real TLS client routed by its SNI.

use crate::harness::{addr, http, Node, TempDir};
use std::process::{Command, Stdio};

#[test]
fn explain_and_status_show_sni_routes_and_clients_follow_them() {
    let net = 69;
    let dir = TempDir::new("sni");
    // us-east's listener routes api.example.test and *.apps.example.test to the gateways, and
    // closes anything else (no sni_default)
    let toml = switchyard_config::demo_toml_on(net).replacen(
        "  pool = \"us-east-gateways\"\n",
        "  sni = [{ names = [\"api.example.test\", \"*.apps.example.test\"], pool = \"us-east-gateways\" }]\n  sni_timeout = \"2s\"\n",
        1,
    );
    assert!(toml.contains("sni = ["), "the demo's listener line moved");
    let cfg = dir.write("world.toml", &toml);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(net, "0.1:9901");
    let explain = |q: &str| {
        http(
            admin,
            "GET",
            &format!("/v1/explain/lb?listener=us-east-http{q}"),
            &[],
            "",
        )
        .unwrap()
        .json()
    };
    let v = explain("&sni=X.Apps.Example.Test");
    assert_eq!(v["pool"], "us-east-gateways", "{v}");
    assert_eq!(
        v["sni"]["routes"][0]["names"][1], "*.apps.example.test",
        "{v}"
    );
    assert!(v["sni"]["default"].is_null(), "{v}");
    let v = explain("&sni=other.test");
    assert!(
        v["why"].as_str().unwrap().contains("would be closed"),
        "{v}"
    );
    let s = http(admin, "GET", "/status", &[], "").unwrap().json();
    let text = s.to_string();
    assert!(text.contains("*.apps.example.test"), "{text}");

    // a real TLS client: its ClientHello reaches a (plain HTTP) gateway untouched, which answers
    // 400 to bytes that are not HTTP; another name is closed by the balancer before any backend
    let vip = addr(net, "1.1:8080").to_string();
    let run = |name: &str| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &vip, "-servername", name])
            .stdin(Stdio::null())
            .output()
            .expect("openssl on PATH (scripts/test installs it)");
        assert!(
            !out.status.success(),
            "{name}: no TLS server behind the balancer"
        );
    };
    run("api.example.test");
    run("www.apps.example.test");
    run("other.test");
    // the balancer's counters say which were routed and which were closed
    let m = http(admin, "GET", "/metrics", &[], "").unwrap();
    let m = m.body;
    let value = |needle: &str| {
        m.lines()
            .find(|l| l.starts_with("switchyard_lb_") && l.contains(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {needle} in\n{m}"))
    };
    assert_eq!(
        value("sni_total{listener=\"us-east-http\",result=\"matched\"}"),
        2.0
    );
    assert_eq!(
        value("sni_total{listener=\"us-east-http\",result=\"unmatched\"}"),
        1.0
    );
    assert_eq!(
        value("refused_total{listener=\"us-east-http\",reason=\"sni\"}"),
        1.0
    );
}
