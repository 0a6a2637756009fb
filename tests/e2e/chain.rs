//! The whole chain of the demo world: DNS picks the region, the region's L4 VIP balances to a
//! gateway, the gateway authenticates and composes, demo services answer. And region failover:
//! when us-east's gateways really stop, US clients are sent to eu-west.

use crate::harness::{addr, demo_config, http, poll_until, Node, TempDir};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

const AUTH: &str = "Authorization: Bearer demo-admin-token";

/// One UDP query, optionally with ECS; returns the decoded reply.
fn dig(server: SocketAddr, name: &str, qtype: RecordType, ecs: Option<(&str, u8)>) -> Message {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    if let Some((ip, prefix)) = ecs {
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            ip.parse().unwrap(),
            prefix,
            0,
        )));
    }
    m.set_edns(e);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&m.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("DNS answer");
    let r = Message::from_vec(&buf[..n]).expect("decodable answer");
    assert_eq!(r.metadata.id, 4242);
    r
}

fn a_records(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

fn ecs_scope(m: &Message) -> Option<u8> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(cs) => Some(cs.scope_prefix()),
        _ => None,
    }
}

fn token(sub: &str, roles: &str) -> String {
    let out = std::process::Command::new(crate::harness::bin())
        .args(["token", "--sub", sub, "--roles", roles])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Waits until a region's VIP serves the gateway's health endpoint through L4.
fn wait_vip(vip: SocketAddr) {
    poll_until(Duration::from_secs(15), || {
        http(vip, "GET", "/healthz", &[], "").is_ok_and(|r| r.status == 200)
    })
    .unwrap_or_else(|_| panic!("{vip} never became healthy"));
}

#[test]
fn dns_hands_out_the_clients_region() {
    let dir = TempDir::new("chain-dns");
    let cfg = demo_config(&dir, 64);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let dns = addr(64, "0.1:8053");
    wait_vip(addr(64, "1.1:8080"));
    wait_vip(addr(64, "2.1:8080"));
    let gb = dig(
        dns,
        "api.example.test.",
        RecordType::A,
        Some(("81.2.69.160", 27)),
    );
    assert_eq!(gb.metadata.response_code, ResponseCode::NoError);
    assert!(gb.metadata.authoritative);
    assert_eq!(
        a_records(&gb),
        vec!["127.64.2.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(gb.answers[0].ttl, 10);
    assert_eq!(ecs_scope(&gb), Some(24));
    let us = dig(
        dns,
        "api.example.test.",
        RecordType::A,
        Some(("216.160.83.56", 29)),
    );
    assert_eq!(
        a_records(&us),
        vec!["127.64.1.1".parse::<IpAddr>().unwrap()]
    );
    let local = dig(dns, "api.example.test.", RecordType::A, None);
    assert_eq!(
        a_records(&local),
        vec!["127.64.1.1".parse::<IpAddr>().unwrap()]
    );
    let nx = dig(dns, "nope.example.test.", RecordType::A, None);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities.len(), 1);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(
        nx.authorities[0].ttl, 60,
        "negative TTL = min(SOA TTL 300, MINIMUM 60)"
    );
    let out = dig(dns, "example.com.", RecordType::A, None);
    assert_eq!(out.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn home_screen_through_vip_l4_gateway_and_services() {
    let dir = TempDir::new("chain-home");
    let cfg = demo_config(&dir, 65);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let vip = addr(65, "1.1:8080");
    wait_vip(vip);
    let alice = format!("Authorization: Bearer {}", token("alice", "customer"));
    let r = http(vip, "GET", "/v1/home", &[&alice], "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["user"]["user"]["id"], "alice", "{v}");
    assert_eq!(v["user"]["region"], "us-east", "{v}");
    assert_eq!(
        v["user"]["user_id"], "alice",
        "identity header reaches the service: {v}"
    );
    assert_eq!(
        v["orders"]["orders"].as_array().map(Vec::len),
        Some(3),
        "{v}"
    );
    assert_eq!(v["cart"]["cart"]["items"], 3, "{v}");
    // A phone gets the trimmed home screen (the demo's mobile profile allow-list).
    let r = http(
        vip,
        "GET",
        "/v1/home",
        &[&alice, "X-Client-Type: mobile"],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let m = r.json();
    assert_eq!(m["user"]["user"]["name"], "Alice", "{m}");
    assert!(
        m["user"]["user"].get("email").is_none(),
        "mobile keeps only allowed fields: {m}"
    );
    assert!(m["user"].get("instance").is_none(), "{m}");
    assert_eq!(m["cart"]["cart"]["items"], 3, "{m}");
    let r = http(vip, "GET", "/v1/home", &[], "").unwrap();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Bearer")));
    let guest = format!("Authorization: Bearer {}", token("bob", "guest"));
    assert_eq!(
        http(vip, "GET", "/v1/home", &[&guest], "").unwrap().status,
        403
    );
    // eu-west's VIP serves eu-west instances.
    let eu = addr(65, "2.1:8080");
    wait_vip(eu);
    let v = http(eu, "GET", "/v1/users/alice", &[&alice], "")
        .unwrap()
        .json();
    assert_eq!(v["region"], "eu-west", "{v}");
    // The real client address crossed L4 via PROXY protocol v2.
    assert_eq!(v["forwarded_for"], "127.0.0.1", "{v}");
}

#[test]
fn us_clients_move_to_eu_west_when_us_east_gateways_stop() {
    let dir = TempDir::new("chain-failover");
    let cfg = demo_config(&dir, 66);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let dns = addr(66, "0.1:8053");
    let admin = addr(66, "0.1:9901");
    wait_vip(addr(66, "1.1:8080"));
    let us = || {
        a_records(&dig(
            dns,
            "api.example.test.",
            RecordType::A,
            Some(("216.160.83.56", 29)),
        ))
    };
    let east: Vec<IpAddr> = vec!["127.66.1.1".parse().unwrap()];
    let west: Vec<IpAddr> = vec!["127.66.2.1".parse().unwrap()];
    assert_eq!(us(), east);
    for gw in ["gw-us-east-a", "gw-us-east-b"] {
        let r = http(
            admin,
            "POST",
            &format!("/v1/demo/instances/{gw}/stop"),
            &[AUTH],
            "",
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // fall (2) x interval (500 ms) + timeout + one interval, with slack for a loaded CI machine.
    let t0 = std::time::Instant::now();
    let mut answers = Vec::new();
    poll_until(Duration::from_secs(6), || {
        let a = us();
        answers.push(a.clone());
        a == west
    })
    .expect("US clients were never sent to eu-west");
    let moved = t0.elapsed();
    assert!(moved < Duration::from_secs(4), "took {moved:?}");
    // Once moved, answers stay moved (no flapping) while the gateways are down.
    for _ in 0..20 {
        assert_eq!(us(), west);
        std::thread::sleep(Duration::from_millis(25));
    }
    // A client still holding the us-east answer is served anyway: us-east's front door spills
    // to eu-west (issue 17), and the gateway there sees the real client address.
    let alice = format!("Authorization: Bearer {}", token("alice", "customer"));
    let r = http(
        addr(66, "1.1:8080"),
        "GET",
        "/v1/users/alice",
        &[&alice],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["region"], "eu-west", "{v}");
    assert_eq!(v["forwarded_for"], "127.0.0.1", "{v}");
    let why = http(
        admin,
        "GET",
        "/v1/explain/lb?listener=us-east-http",
        &[],
        "",
    )
    .unwrap()
    .json();
    assert_eq!(
        why["why"], "spilled to eu-west: no healthy member in us-east",
        "{why}"
    );
    assert_eq!(why["spill_to"][0]["region"], "eu-west", "{why}");
    let m = http(admin, "GET", "/metrics", &[], "").unwrap().body;
    assert!(
        m.contains("switchyard_lb_spilled_connections_total{from=\"us-east\",to=\"eu-west\"} 1"),
        "{m}"
    );
    for gw in ["gw-us-east-a", "gw-us-east-b"] {
        assert_eq!(
            http(
                admin,
                "POST",
                &format!("/v1/demo/instances/{gw}/start"),
                &[AUTH],
                ""
            )
            .unwrap()
            .status,
            200
        );
    }
    poll_until(Duration::from_secs(6), || us() == east)
        .expect("US clients never came back to us-east");
    // The user service stops in us-east: us-east's gateways call eu-west's instances (remote
    // instances, issue 17) with the same identity headers.
    for inst in ["user-us-east-a", "user-us-east-b"] {
        let path = format!("/v1/demo/instances/{inst}/stop");
        let r = http(admin, "POST", &path, &[AUTH], "").unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut last = String::new();
    poll_until(Duration::from_secs(6), || {
        let r = http(
            addr(66, "1.1:8080"),
            "GET",
            "/v1/users/alice",
            &[&alice],
            "",
        )
        .unwrap();
        last = r.body.clone();
        r.status == 200 && r.json()["region"] == "eu-west" && r.json()["user_id"] == "alice"
    })
    .unwrap_or_else(|_| panic!("us-east's gateways never called eu-west's user instances: {last}"));
    let m = http(admin, "GET", "/metrics", &[], "").unwrap().body;
    assert!(
        m.contains("switchyard_gateway_upstream_spilled_total{service=\"user\",from=\"us-east\",to=\"eu-west\"}"),
        "{m}"
    );
}

/// Checks Prometheus text exposition format line by line; returns the metric names seen.
fn parse_prometheus(text: &str) -> Vec<String> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut names = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            assert!(
                kind == "HELP" || kind == "TYPE",
                "bad comment line {line:?}"
            );
            assert!(
                valid_name(parts.next().unwrap_or("")),
                "bad name in {line:?}"
            );
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "bad type in {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value in {line:?}"
        );
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad metric name in {line:?}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "bad labels in {line:?}"
                );
            }
        }
        names.push(name.to_string());
    }
    names
}

#[test]
fn metrics_from_every_subsystem_parse_as_prometheus_text() {
    let dir = TempDir::new("chain-metrics");
    let cfg = demo_config(&dir, 67);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let vip = addr(67, "1.1:8080");
    wait_vip(vip);
    let alice = format!("Authorization: Bearer {}", token("alice", "customer"));
    assert_eq!(
        http(vip, "GET", "/v1/users/alice", &[&alice], "")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http(vip, "GET", "/v1/users/alice", &[], "").unwrap().status,
        401
    );
    dig(
        addr(67, "0.1:8053"),
        "api.example.test.",
        RecordType::A,
        Some(("81.2.69.160", 27)),
    );
    let m = http(addr(67, "0.1:9901"), "GET", "/metrics", &[], "").unwrap();
    assert_eq!(m.status, 200);
    let names = parse_prometheus(&m.body);
    for want in [
        "switchyard_lb_accepted_total",
        "switchyard_lb_backend_connections_total",
        "switchyard_dns_queries_total",
        "switchyard_dns_gslb_answers_total",
        "switchyard_gateway_requests_total",
        "switchyard_gateway_auth_failures_total",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from /metrics:\n{}",
            m.body
        );
    }
    assert!(
        m.body.contains("# HELP switchyard_lb_accepted_total "),
        "metrics are described"
    );
}

#[test]
fn explain_says_why_for_dns_and_l4() {
    let dir = TempDir::new("chain-explain");
    let cfg = demo_config(&dir, 68);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    wait_vip(addr(68, "1.1:8080"));
    let admin = addr(68, "0.1:9901");
    let v = http(
        admin,
        "GET",
        "/v1/explain/dns?name=api.example.test&client=127.0.0.1&ecs=81.2.69.160/27",
        &[],
        "",
    )
    .unwrap()
    .json();
    assert_eq!(v["chosen"], serde_json::json!(["eu-west"]), "{v}");
    assert_eq!(v["addresses"], serde_json::json!(["127.68.2.1"]), "{v}");
    assert_eq!(v["matched"], "continent EU -> eu-west", "{v}");
    assert_eq!(v["client"]["country"], "GB", "{v}");
    assert_eq!(v["client"]["source"], "ecs", "{v}");
    assert_eq!(
        (v["ttl"].as_u64(), v["ecs_scope"].as_u64()),
        (Some(10), Some(24)),
        "{v}"
    );
    let r = http(
        admin,
        "GET",
        "/v1/explain/dns?name=nope.example.test",
        &[],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http(
        admin,
        "GET",
        "/v1/explain/dns?name=api.example.test&client=banana",
        &[],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    // Fail us-east-a's gateway: the L4 explanation shows all of us-east's share on us-east-b.
    assert_eq!(
        http(
            admin,
            "POST",
            "/v1/instances/gw-us-east-a/fail",
            &[AUTH],
            ""
        )
        .unwrap()
        .status,
        200
    );
    let v = http(
        admin,
        "GET",
        "/v1/explain/lb?listener=us-east-http&client=10.1.2.3",
        &[],
        "",
    )
    .unwrap()
    .json();
    assert_eq!(v["chosen"]["name"], "gw-us-east-b", "{v}");
    let shares: Vec<(String, f64)> = v["az_shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["az"].as_str().unwrap().to_string(),
                a["share"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shares,
        vec![
            ("us-east-a".to_string(), 0.0),
            ("us-east-b".to_string(), 1.0)
        ],
        "{v}"
    );
    // the failed member says so, with what its check says
    let failed = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "gw-us-east-a")
        .unwrap()
        .clone();
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("failed by an operator; check "),
        "{failed}"
    );
    let r = http(admin, "GET", "/v1/explain/lb?listener=nope", &[], "").unwrap();
    assert_eq!(r.status, 404);
}
