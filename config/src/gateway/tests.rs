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

#[test]
fn tls_listeners_are_validated_with_located_errors() {
    assert!(crate::demo_world().gateway.instances[0].tls.is_none());
    let w = parse_str(crate::demo_toml_https(), "<t>").unwrap();
    assert_eq!(
        w.summary(),
        "2 regions, 4 AZs, 4 L4 listeners (8 pool members), 4 gateway instances, 4 services (16 instances), 7 routes, 1 zones, 1 GSLB names"
    );
    let t = w.gateway.instances[0].tls.as_ref().unwrap();
    assert_eq!(t.listen, "127.0.1.11:8443".parse().unwrap());
    assert_eq!(t.tls.certs[0].cert, std::path::PathBuf::from("tls/api.pem"));
    assert_eq!(t.tls.alpn, ["h2", "http/1.1"]);
    assert_eq!(t.hsts, Some(std::time::Duration::from_secs(86400)));
    let resolved = w.resolve_paths(std::path::Path::new("/state"));
    let t = resolved.gateway.instances[0].tls.as_ref().unwrap();
    assert_eq!(
        t.tls.certs[0].key,
        std::path::PathBuf::from("/state/tls/api.key")
    );

    let bad = crate::demo_toml_https()
        .replacen(
            r#"tls = { listen = "127.0.1.11:8443", certs = [{ cert = "tls/api.pem", key = "tls/api.key" }], hsts = "1d" }"#,
            r#"tls = { listen = "127.0.1.11", certs = [], alpn = ["spdy/3"] }"#,
            1,
        )
        .replacen(
            r#"tls = { listen = "127.0.1.12:8443", certs = [{ cert = "tls/api.pem", key = "tls/api.key" }]"#,
            r#"tls = { listen = "127.0.1.11:8000", certs = [{ cert = "", key = "k.pem" }]"#,
            1,
        );
    let e = parse_str(&bad, "<t>").unwrap_err().to_string();
    for want in [
        "gateway.instances[0].tls.certs: give at least one certificate",
        "gateway.instances[0].tls.alpn[0]: \"spdy/3\": the gateway speaks",
        "gateway.instances[0].tls.listen: \"127.0.1.11\" is not an address with a port",
        "gateway.instances[1].tls.certs[0].cert: must name a PEM file",
        "gateway.instances[1].tls.listen:",
    ] {
        assert!(e.contains(want), "{want} missing in:\n{e}");
    }
    // every error has a line:column
    for l in e.lines().skip(1) {
        let pos = l.trim_start().strip_prefix("<t>:").unwrap_or("");
        let line_col = pos.split(':').take(2).all(|n| n.parse::<usize>().is_ok());
        assert!(line_col, "no line:column in {l:?}");
    }
}
