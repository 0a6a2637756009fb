//! Tests of `gateway`.

use crate::{demo_toml, parse_str};

const EXTRA: &str = r#"
[[gateway.device_profiles]]
name = "handheld"
client_types = ["ios", "android"]
user_agent_contains = ["iPhone", "Android"]

[[gateway.routes]]
name = "home2"
path = "/v2/home"
compose = [
  { key = "user", service = "user", path = "/v1/users/{sub}" },
  { name = "reco", key = "recommendations", service = "order", path = "/v1/orders?fav={user.favorite}", required = false, depends_on = "user" },
]
profiles = [
  { profile = "handheld", fields = ["user.name", "recommendations"] },
]
"#;

#[test]
fn device_profiles_overrides_and_second_stage_parse() {
    let w = parse_str(&format!("{}{EXTRA}", demo_toml()), "<t>").unwrap();
    let g = &w.gateway;
    let handheld = g
        .device_profiles
        .iter()
        .find(|p| p.name == "handheld")
        .unwrap();
    assert_eq!(handheld.client_types, vec!["ios", "android"]);
    let r = g.routes.iter().find(|r| r.name == "home2").unwrap();
    assert_eq!(r.compose[1].name, "reco");
    assert_eq!(r.compose[1].depends_on.as_deref(), Some("user"));
    assert_eq!(r.compose[0].name, "user");
    assert_eq!(r.profiles[0].fields, vec!["user.name", "recommendations"]);
    assert!(g.access_log);
    assert!(r.retry_on_5xx);
}

#[test]
fn unknown_profile_and_late_dependency_are_reported() {
    let bad = EXTRA
        .replace("profile = \"handheld\"", "profile = \"watch\"")
        .replace("depends_on = \"user\"", "depends_on = \"cart\"");
    let e = parse_str(&format!("{}{bad}", demo_toml()), "<t>")
        .unwrap_err()
        .to_string();
    let n = crate::demo_world().gateway.routes.len(); // the appended route's index
    assert!(
        e.contains(&format!("gateway.routes[{n}].profiles[0].profile")),
        "{e}"
    );
    assert!(e.contains("unknown device profile \"watch\""), "{e}");
    assert!(
        e.contains(&format!("gateway.routes[{n}].compose[1].depends_on")),
        "{e}"
    );
}

#[test]
fn jwks_url_must_be_http() {
    let t = demo_toml().replace(
        "roles_claim = \"roles\"",
        "roles_claim = \"roles\"\n  jwks_url = \"https://idp.example.test/jwks\"",
    );
    let e = parse_str(&t, "<t>").unwrap_err().to_string();
    assert!(e.contains("gateway.jwt.jwks_url"), "{e}");
}

#[test]
fn hardening_keys_parse_with_defaults_and_errors() {
    let w = parse_str(demo_toml(), "<t>").unwrap();
    let g = &w.gateway;
    assert!(g.access_log && !g.log_health_probes);
    assert!(g.trusted_forwarders.is_empty());
    assert_eq!(g.strip_request_headers[0], "x-http-method-override");
    assert_eq!(g.limits.body_timeout, std::time::Duration::from_secs(10));
    assert_eq!(g.limits.min_body_rate, 1024);
    assert_eq!(
        g.limits.max_connections_per_client,
        g.limits.max_connections / 4
    );
    let set = demo_toml().replace(
        "trusted_proxies = [\"127.0.0.0/8\"]",
        "trusted_proxies = [\"127.0.0.0/8\"]\naccess_log = \"all\"\ntrusted_forwarders = [\"10.0.0.0/8\"]\nstrip_request_headers = [\"X_Debug\"]",
    );
    let g = parse_str(&set, "<t>").unwrap().gateway;
    assert!(g.access_log && g.log_health_probes);
    assert_eq!(g.trusted_forwarders, vec!["10.0.0.0/8".parse().unwrap()]);
    assert_eq!(g.strip_request_headers, vec!["x-debug"]);
    let bad = demo_toml().replace(
        "trusted_proxies = [\"127.0.0.0/8\"]",
        "trusted_proxies = [\"127.0.0.0/8\"]\naccess_log = \"loud\"\ntrusted_forwarders = [\"nope\"]\nstrip_request_headers = [\"a b\"]",
    );
    let err = parse_str(&bad, "<t>").unwrap_err().to_string();
    for want in [
        "gateway.access_log",
        "gateway.trusted_forwarders",
        "gateway.strip_request_headers[0]",
    ] {
        assert!(err.contains(want), "{want} missing in {err}");
    }
}
