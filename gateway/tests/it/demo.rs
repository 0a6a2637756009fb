//! The embedded demo world (moved to 127.231.x.y) served by the gateway over stand-in services.

use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;
use serde_json::json;
use switchyard_balance::HealthRegistry;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn demo_world_home_users_admin_and_tokens() {
    let world =
        switchyard_config::parse_str(&switchyard_config::demo_toml_on(231), "<demo>").unwrap();
    let mut ups = Vec::new();
    for s in &world.services {
        for i in &s.instances {
            let (name, az) = (s.name.clone(), i.az.clone());
            let b: Behaviour = Arc::new(move |req| Reply {
                status: 200,
                body: json!({"service": name, "az": az, "path": req.uri().path_and_query().unwrap().as_str(),
                             "user": req.headers().get("x-user-id").and_then(|v| v.to_str().ok())}),
                delay: Duration::ZERO,
            });
            ups.push(upstream_with(b, i.addr, &i.name).await);
        }
    }
    let stop = CancellationToken::new();
    let world = Arc::new(world);
    let gw = switchyard_gateway::start(world.clone(), HealthRegistry::new(), stop.clone())
        .await
        .unwrap();
    assert_eq!(gw.local_addrs().len(), 4);
    let addr = gw.local_addr("gw-us-east-a").unwrap();
    assert_eq!(addr, "127.231.1.11:8000".parse().unwrap());

    let alice = switchyard_gateway::mint_token(
        &world,
        "alice",
        &["customer".into()],
        Duration::from_secs(60),
    )
    .unwrap();
    let r = get_auth(addr, "/v1/home", &alice).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["user"]["path"], "/v1/users/alice");
    assert_eq!(v["user"]["user"], "alice");
    assert_eq!(
        v["user"]["az"].as_str().map(|az| az.starts_with("us-east")),
        Some(true),
        "local region first"
    );
    assert_eq!(v["orders"]["path"], "/v1/orders?user=alice&limit=3");
    assert_eq!(v["cart"]["service"], "cart");

    assert_eq!(get(addr, "/v1/home", &[]).await.status, 401);
    let guest =
        switchyard_gateway::mint_token(&world, "bob", &["guest".into()], Duration::from_secs(60))
            .unwrap();
    assert_eq!(get_auth(addr, "/v1/home", &guest).await.status, 403);
    assert_eq!(get_auth(addr, "/v1/admin/stats", &alice).await.status, 403);
    let r = get_auth(addr, "/v1/users/42", &alice).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("deprecation"), Some("true"));
    assert!(r.header("sunset").is_some());
    assert_eq!(
        get_auth(addr, "/v2/users/42", &alice)
            .await
            .header("deprecation"),
        None
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(8), gw.wait())
        .await
        .unwrap();
}

#[tokio::test]
async fn config_device_profiles_second_stage_and_version_header() {
    let extra = r#"
[[gateway.device_profiles]]
name = "tablet"
client_types = ["tablet"]

[[gateway.routes]]
name = "home-v2"
path = "/v2/home"
auth = "roles"
roles_any = ["customer"]
compose = [
  { key = "user", service = "user", path = "/v1/users/{sub}" },
  { name = "more", key = "more", service = "order", path = "/v1/orders/{user.az}", required = false, depends_on = "user" },
]
profiles = [ { profile = "tablet", fields = ["user.service", "more.path"] } ]
"#;
    let toml = switchyard_config::demo_toml_on(232)
        .replace(
            "[gateway]\n",
            "[gateway]\nversion_header = \"X-Api-Version\"\n",
        )
        // the cart route's traffic, all of it, to the order service
        .replacen(
            "service = \"cart\"",
            "split = [{ service = \"order\", weight = 1 }]",
            1,
        );
    let cors = "\n[gateway.cors]\nallow_origins = [\"https://app.example.test\"]\n";
    let world = switchyard_config::parse_str(&format!("{toml}{extra}{cors}"), "<demo>").unwrap();
    let mut ups = Vec::new();
    for s in &world.services {
        for i in &s.instances {
            let (name, az) = (s.name.clone(), i.az.clone());
            let b: Behaviour = Arc::new(move |req| Reply {
                status: 200,
                body: json!({"service": name, "az": az, "path": req.uri().path_and_query().unwrap().as_str()}),
                delay: Duration::ZERO,
            });
            ups.push(upstream_with(b, i.addr, &i.name).await);
        }
    }
    let stop = CancellationToken::new();
    let world = Arc::new(world);
    let gw = switchyard_gateway::start(world.clone(), HealthRegistry::new(), stop.clone())
        .await
        .unwrap();
    let addr = gw.local_addr("gw-eu-west-b").unwrap();
    let t = switchyard_gateway::mint_token(
        &world,
        "alice",
        &["customer".into()],
        Duration::from_secs(60),
    )
    .unwrap();
    let auth = format!("Bearer {t}");
    let v = get(addr, "/v2/home", &[("Authorization", &auth)])
        .await
        .json();
    let az = v["user"]["az"].as_str().unwrap().to_string();
    assert!(az.starts_with("eu-west"), "{v}");
    assert_eq!(v["more"]["path"], format!("/v1/orders/{az}"));
    let m = get(
        addr,
        "/v2/home",
        &[("Authorization", &auth), ("X-Client-Type", "tablet")],
    )
    .await
    .json();
    assert_eq!(
        m["user"],
        json!({"service": "user"}),
        "trimmed to the allow-list: {m}"
    );
    assert_eq!(m["more"].as_object().map(|o| o.len()), Some(1), "{m}");
    assert!(m["more"]["path"]
        .as_str()
        .unwrap()
        .starts_with("/v1/orders/eu-west"));
    // version header: /users/7 with X-Api-Version v2 is /v2/users/7
    let r = get(
        addr,
        "/users/7",
        &[("Authorization", &auth), ("X-Api-Version", "v2")],
    )
    .await;
    assert_eq!(r.json()["path"], "/v2/users/7");
    // a split from the config
    let r = get(addr, "/v1/cart/7", &[("Authorization", &auth)]).await;
    assert_eq!(r.json()["service"], "order");
    // [gateway.cors] from the config: a browser's preflight is answered by the gateway
    let r = raw(
        addr,
        b"OPTIONS /v2/home HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example.test\r\n\
          Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.test")
    );
    stop.cancel();
}

/// The device-profile lines proposed for the embedded demo world (mobile trims the home screen,
/// web gets everything), checked against the demo as it is.
pub const DEMO_PROFILES: &str = r#"
  [[gateway.device_profiles]]
  name = "mobile"
  client_types = ["mobile", "ios", "android"]
  user_agent_contains = ["iPhone", "Android", "Mobile"]

  [[gateway.device_profiles]]
  name = "web"
  client_types = ["web"]
  user_agent_contains = ["Mozilla"]
"#;
pub const DEMO_HOME_PROFILES: &str = r#"  profiles = [
    { profile = "mobile", fields = ["user.user.id", "user.user.name", "orders.orders.id", "orders.orders.status", "cart.cart.items", "cart.cart.total_cents", "partial"] },
  ]
"#;

#[tokio::test]
async fn proposed_demo_profiles_trim_the_home_screen_for_mobile() {
    let base = switchyard_config::demo_toml_on(233);
    // The demo world carries these profiles now; keep the constants in step with it.
    assert!(
        base.contains(DEMO_PROFILES.trim()),
        "the demo's device profiles changed"
    );
    assert!(
        base.contains(DEMO_HOME_PROFILES.trim()),
        "the demo's home profiles changed"
    );
    let toml = base;
    let world = Arc::new(switchyard_config::parse_str(&toml, "<demo>").unwrap());
    let mut ups = Vec::new();
    for s in &world.services {
        for i in &s.instances {
            let name = s.name.clone();
            let b: Behaviour = Arc::new(move |_req| Reply {
                status: 200,
                body: match name.as_str() {
                    "user" => {
                        json!({"service": "user", "version": 1, "user": {"id": "alice", "name": "Alice", "email": "alice@example.test"}})
                    }
                    "order" => {
                        json!({"service": "order", "orders": [{"id": "o-1000", "user": "alice", "total_cents": 1250, "status": "shipped"}]})
                    }
                    _ => {
                        json!({"service": "cart", "cart": {"user": "alice", "items": 3, "total_cents": 4797, "currency": "USD"}})
                    }
                },
                delay: Duration::ZERO,
            });
            ups.push(upstream_with(b, i.addr, &i.name).await);
        }
    }
    let stop = CancellationToken::new();
    let gw = switchyard_gateway::start(world.clone(), HealthRegistry::new(), stop.clone())
        .await
        .unwrap();
    let addr = gw.local_addr("gw-us-east-b").unwrap();
    let t = switchyard_gateway::mint_token(
        &world,
        "alice",
        &["customer".into()],
        Duration::from_secs(60),
    )
    .unwrap();
    let auth = format!("Bearer {t}");
    let mobile = get(
        addr,
        "/v1/home",
        &[
            ("Authorization", &auth),
            ("User-Agent", "Mozilla/5.0 (iPhone)"),
        ],
    )
    .await
    .json();
    assert_eq!(
        mobile,
        json!({"user": {"user": {"id": "alice", "name": "Alice"}},
               "orders": {"orders": [{"id": "o-1000", "status": "shipped"}]},
               "cart": {"cart": {"items": 3, "total_cents": 4797}}})
    );
    let web = get(
        addr,
        "/v1/home",
        &[
            ("Authorization", &auth),
            ("User-Agent", "Mozilla/5.0 (X11)"),
        ],
    )
    .await
    .json();
    assert_eq!(web["user"]["user"]["email"], "alice@example.test");
    assert_eq!(web["cart"]["cart"]["currency"], "USD");
    stop.cancel();
}
