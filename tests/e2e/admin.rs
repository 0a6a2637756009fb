//! The admin API over real HTTP: reads, auth on mutations, 404s, drain/fail state, demo
//! instance stop/start, reload with errors, and refusal of an unprotected public admin address.

use crate::harness::{addr, bin, demo_config, http, poll_until, Node, TempDir};
use std::time::Duration;

const AUTH: &str = "Authorization: Bearer demo-admin-token";

#[test]
fn reads_are_open_and_shaped() {
    let dir = TempDir::new("admin-read");
    let cfg = demo_config(&dir, 71);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(71, "0.1:9901");
    let r = http(admin, "GET", "/healthz", &[], "").unwrap();
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("alive"))
    );
    // Ready once listeners are bound and every backend had its first health check.
    poll_until(Duration::from_secs(10), || {
        http(admin, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    })
    .expect("never ready");
    let r = http(admin, "GET", "/readyz", &[], "").unwrap();
    assert_eq!(r.json()["status"], "ready");
    let s = http(admin, "GET", "/status", &[], "").unwrap().json();
    let regions: Vec<&str> = s["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["us-east", "eu-west"]);
    let pool = &s["regions"][0]["pools"][0];
    assert_eq!(pool["name"], "us-east-gateways");
    assert_eq!(pool["members"][0]["name"], "gw-us-east-a");
    assert_eq!(pool["members"][0]["addr"], "127.71.1.11:8000");
    assert_eq!(pool["members"][0]["az"], "us-east-a");
    assert!(pool["members"][0]["health"].is_string());
    assert_eq!(s["services"].as_array().unwrap().len(), 4);
    assert_eq!(s["services"][0]["instances"][0]["demo_running"], true);
    assert_eq!(s["admin_overrides"], serde_json::json!([]));
    let m = http(admin, "GET", "/metrics", &[], "").unwrap();
    assert_eq!(m.status, 200);
    assert_eq!(m.header("content-type"), Some("text/plain; version=0.0.4"));
    let r = http(admin, "GET", "/nope", &[], "").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no such admin endpoint: /nope");
}

#[test]
fn mutations_need_the_token_and_known_names() {
    let dir = TempDir::new("admin-auth");
    let cfg = demo_config(&dir, 72);
    let node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(72, "0.1:9901");
    let r = http(admin, "POST", "/v1/regions/us-east/drain", &[], "").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"switchyard-admin\"")
    );
    assert_eq!(r.json()["reason"], "token_missing");
    let r = http(
        admin,
        "POST",
        "/v1/regions/us-east/drain",
        &["Authorization: Bearer wrong"],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 401);
    // a wrong token is not a missing one (RFC 6750 §3.1)
    assert_eq!(
        (r.json()["reason"].as_str(), r.json()["error"].as_str()),
        (
            Some("token_rejected"),
            Some("admin token rejected: it is not this node's [admin] token")
        )
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"switchyard-admin\", error=\"invalid_token\"")
    );
    // unknown names list the known ones
    let r = http(admin, "POST", "/v1/regions/atlantis/drain", &[AUTH], "").unwrap();
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (
            404,
            Some("no such region \"atlantis\"; known: eu-west, us-east")
        )
    );
    let r = http(admin, "POST", "/v1/azs/us-central-a/drain", &[AUTH], "").unwrap();
    assert_eq!(
        r.json()["error"],
        "no such AZ \"us-central-a\"; known: eu-west-a, eu-west-b, us-east-a, us-east-b"
    );
    // every answer names the node that gave it
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        r.header("x-switchyard-node"),
        Some(format!("{} 127.72.0.1:9901", host.trim()).as_str())
    );
    let r = http(admin, "POST", "/v1/azs/us-east-a/explode", &[AUTH], "").unwrap();
    assert_eq!(r.status, 404);
    let r = http(admin, "POST", "/v1/regions/us-east/drain", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["changed"], true);
    let r = http(admin, "POST", "/v1/azs/eu-west-b/fail", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200);
    let s = http(admin, "GET", "/status", &[], "").unwrap().json();
    assert_eq!(s["regions"][0]["admin"], "drain");
    assert_eq!(s["regions"][1]["azs"][1]["admin"], "fail");
    let overrides = s["admin_overrides"].as_array().unwrap();
    assert_eq!(overrides.len(), 2);
    let r = http(admin, "POST", "/v1/regions/us-east/undrain", &[AUTH], "").unwrap();
    assert_eq!(r.status, 200);
    let s = http(admin, "GET", "/status", &[], "").unwrap().json();
    assert_eq!(s["regions"][0]["admin"], serde_json::Value::Null);
    node.wait_stderr("admin action", Duration::from_secs(5));
    assert!(
        node.stderr().contains("action=\"drain\"") || node.stderr().contains("action=drain"),
        "{}",
        node.stderr()
    );
}

#[test]
fn demo_instances_stop_and_start_for_real() {
    let dir = TempDir::new("admin-demo");
    let cfg = demo_config(&dir, 73);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(73, "0.1:9901");
    let user_a = addr(73, "11.1:7001");
    assert_eq!(
        http(user_a, "GET", "/healthz", &[], "").unwrap().status,
        200
    );
    let r = http(
        admin,
        "POST",
        "/v1/demo/instances/user-us-east-a/stop",
        &[AUTH],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        http(user_a, "GET", "/healthz", &[], "").is_err(),
        "stopped instance still answers"
    );
    let r = http(
        admin,
        "POST",
        "/v1/demo/instances/user-us-east-a/stop",
        &[AUTH],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 404);
    let r = http(
        admin,
        "POST",
        "/v1/demo/instances/user-us-east-a/start",
        &[AUTH],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    poll_until(Duration::from_secs(5), || {
        http(user_a, "GET", "/healthz", &[], "").is_ok_and(|r| r.status == 200)
    })
    .expect("restarted instance answers");
}

#[test]
fn reload_through_the_api_reports_every_error() {
    let dir = TempDir::new("admin-reload");
    let cfg = demo_config(&dir, 74);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(74, "0.1:9901");
    let good = switchyard_config::demo_toml_on(74);
    std::fs::write(
        &cfg,
        good.replacen("policy = \"geo\"", "policy = \"coin\"", 1)
            .replacen("service = \"cart\"", "service = \"bin\"", 1),
    )
    .unwrap();
    let r = http(admin, "POST", "/v1/reload", &[AUTH], "").unwrap();
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(v["reloaded"], false);
    let errors = v["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("unknown GSLB policy \"coin\"")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("unknown service \"bin\"")),
        "{errors:?}"
    );
    std::fs::write(&cfg, good).unwrap();
    let r = http(admin, "POST", "/v1/reload", &[AUTH], "").unwrap();
    assert_eq!(
        (r.status, r.json()["reloaded"].as_bool()),
        (200, Some(true))
    );
}

#[test]
fn a_public_admin_address_without_a_token_is_refused_at_start() {
    let dir = TempDir::new("admin-public");
    let src = switchyard_config::demo_toml_on(75).replace(
        "listen = \"127.75.0.1:9901\"\n# Documented demo token (loopback only). Use your own secret in a real deployment.\ntoken = \"demo-admin-token\"",
        "listen = \"0.0.0.0:9901\"",
    );
    let cfg = dir.write("public.toml", &src);
    let out = std::process::Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "admin.token: the admin API listens on non-loopback 0.0.0.0:9901: set a token"
        ),
        "{err}"
    );
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_drives_the_admin_api() {
    let dir = TempDir::new("admin-cli");
    let cfg = demo_config(&dir, 76);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    // --admin takes HOST:PORT as --admin-listen does, or a URL
    let url = "127.76.0.1:9901";
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let node = format!("node {} at 127.76.0.1:9901", host.trim());
    let (code, out, err) = cli(&["status", "--admin", url]);
    assert_eq!(code, 0, "{err}");
    // the node that answered, then the world in the config's words (no Rust Debug output)
    assert!(
        out.starts_with(&format!("{node}\nregion us-east  vips 127.76.1.1\n")),
        "{out}"
    );
    assert!(
        out.contains("  pool us-east-gateways (least_connections, 2 healthy)\n"),
        "{out}"
    );
    assert!(out.contains("service cart\n"), "{out}");
    assert!(!out.contains("null") && !out.contains("[\""), "{out}");
    let (code, out, _) = cli(&[
        "drain",
        "az",
        "us-east-a",
        "--admin",
        "http://127.76.0.1:9901/",
    ]);
    assert_eq!((code, out), (0, format!("drain: az us-east-a ({node})\n")));
    let (code, out, _) = cli(&["status", "--admin", url, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["regions"][0]["azs"][0]["admin"], "drain");
    // a drained member reads "drained", with what its check says
    let (_, out, _) = cli(&["status", "--admin", url]);
    let line = out
        .lines()
        .find(|l| l.contains("gw-us-east-a "))
        .unwrap()
        .to_string();
    assert!(line.contains(" drained  check http: ok"), "{line}");
    let (code, _, err) = cli(&[
        "fail", "region", "us-east", "--admin", url, "--token", "nope",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "{node} answered 401: admin token rejected: it is not this node's [admin] token"
        )),
        "{err}"
    );
    let (code, _, err) = cli(&["fail", "region", "us-east", "--admin", url, "--token", ""]);
    assert_eq!(code, 1);
    assert!(err.contains("answered 401: no admin token: "), "{err}");
    let (code, _, err) = cli(&["restore", "instance", "ghost", "--admin", url]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "{node} answered 404: no such instance \"ghost\"; known: cart-eu-west-a, "
        )),
        "{err}"
    );
    let (code, _, err) = cli(&["drain", "region", "us-central", "--admin", url]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no such region \"us-central\"; known: eu-west, us-east"),
        "{err}"
    );
    let (code, _, err) = cli(&["status", "--admin", "127.76.0.1:9901/status"]);
    assert_eq!(code, 2);
    assert!(err.contains("write HOST:PORT or http://HOST:PORT"), "{err}");
    let (code, out, _) = cli(&["instance", "stop", "cart-eu-west-b", "--admin", url]);
    assert_eq!(
        (code, out),
        (0, format!("stop: demo instance cart-eu-west-b ({node})\n"))
    );
    let (code, out, _) = cli(&["status", "--admin", url]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains("cart-eu-west-b") && l.contains("(demo instance stopped)")),
        "{out}"
    );
    let (code, _, err) = cli(&["status", "--admin", "http://127.76.0.1:1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach the admin API at http://127.76.0.1:1"),
        "{err}"
    );
}

#[test]
fn a_passive_ejection_is_shown_with_its_time_left_and_lifted_by_a_restart() {
    let net = 174;
    let dir = TempDir::new("admin-ejection");
    // the user service: one connect failure ejects for a minute; the active check is slow, so
    // only passive health can take user-us-east-a out during this test
    let world = switchyard_config::demo_toml_on(net).replacen(
        "name = \"user\"\npolicy = \"round_robin\"\nhealth = { type = \"http\", path = \"/healthz\", interval = \"500ms\"",
        "name = \"user\"\npolicy = \"round_robin\"\npassive = { consecutive_failures = 1, ejection = \"60s\" }\nhealth = { type = \"http\", path = \"/healthz\", interval = \"30s\"",
        1,
    );
    assert!(world.contains("ejection = \"60s\""));
    let cfg = dir.write("world.toml", &world);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(net, "0.1:9901");
    let stop = http(
        admin,
        "POST",
        "/v1/demo/instances/user-us-east-a/stop",
        &[AUTH],
        "",
    )
    .unwrap();
    assert_eq!(stop.status, 200);
    let token = std::process::Command::new(bin())
        .args(["token", "--sub", "alice", "--roles", "customer"])
        .output()
        .unwrap();
    let bearer = format!(
        "Authorization: Bearer {}",
        String::from_utf8_lossy(&token.stdout).trim()
    );
    let gw = addr(net, "1.11:8000");
    let user = |s: &serde_json::Value| {
        s["services"][0]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "user-us-east-a")
            .unwrap()
            .clone()
    };
    // requests through the gateway meet the stopped instance and eject it
    poll_until(Duration::from_secs(10), || {
        let _ = http(gw, "GET", "/v1/users/alice", &[bearer.as_str()], "");
        let s = http(admin, "GET", "/status", &[], "").unwrap().json();
        user(&s)["state"] == "ejected"
    })
    .expect("user-us-east-a was never ejected");
    let s = http(admin, "GET", "/status", &[], "").unwrap().json();
    let u = user(&s);
    assert!(u["ejected_for_ms"].as_u64().unwrap() > 50_000, "{u}");
    assert_eq!(u["ejections"], 1);
    assert_eq!(u["rise"], 2);
    // the counter is described like every other metric
    let m = http(admin, "GET", "/metrics", &[], "").unwrap().body;
    assert!(
        m.contains("# HELP switchyard_backend_ejections_total Passive ejections per backend"),
        "{m}"
    );
    // the CLI shows it in words, with the time left and what the active check says
    let out = std::process::Command::new(bin())
        .args(["status", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = out.lines().find(|l| l.contains("user-us-east-a ")).unwrap();
    assert!(
        line.contains(" ejected  ")
            && line.contains("s left (passive: 1 connect failures in a row); check http: ok"),
        "{line}"
    );
    // starting the instance again lifts the ejection at once (no minute of ejection left over)
    let start = http(
        admin,
        "POST",
        "/v1/demo/instances/user-us-east-a/start",
        &[AUTH],
        "",
    )
    .unwrap();
    assert_eq!(start.status, 200);
    assert_eq!(
        start.json()["unejected"],
        serde_json::json!(["user-us-east-a"])
    );
    let u = user(&http(admin, "GET", "/status", &[], "").unwrap().json());
    assert_eq!(
        (u["state"].as_str(), &u["ejected_for_ms"]),
        (Some("up"), &serde_json::Value::Null),
        "{u}"
    );
}
