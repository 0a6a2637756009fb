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
