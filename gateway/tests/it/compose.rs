//! Composition: concurrent parts, optional/required failures, second stage, deadlines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::json;
use switchyard_gateway::spec::{Action, CompositionSpec, GatewaySpec, PartSpec};

fn fixed(status: u16, body: serde_json::Value, delay_ms: u64) -> Behaviour {
    Arc::new(move |req| {
        let mut b = body.clone();
        b["path"] = json!(req.uri().path_and_query().unwrap().as_str());
        b["user"] = json!(req.headers().get("x-user-id").and_then(|v| v.to_str().ok()));
        Reply {
            status,
            body: b,
            delay: Duration::from_millis(delay_ms),
        }
    })
}

fn part(name: &str, service: &str, path: &str, required: bool, timeout_ms: u64) -> PartSpec {
    PartSpec {
        name: name.into(),
        service: service.into(),
        path: path.into(),
        key: name.into(),
        required,
        timeout: Duration::from_millis(timeout_ms),
        depends_on: None,
    }
}

pub struct World {
    pub _ups: Vec<Upstream>,
    pub gw: Gw,
}

/// user (fast), orders (configurable), cart (configurable), reco (depends on user.favorite).
pub async fn world(
    orders: Behaviour,
    cart: Behaviour,
    tune: impl FnOnce(&mut GatewaySpec),
) -> World {
    let user = upstream_with(
        fixed(
            200,
            json!({"id": "alice", "name": "Alice", "email": "a@x", "favorite": "sku 9"}),
            0,
        ),
        "127.0.0.1:0".parse().unwrap(),
        "user",
    )
    .await;
    let orders = upstream_with(orders, "127.0.0.1:0".parse().unwrap(), "orders").await;
    let cart = upstream_with(cart, "127.0.0.1:0".parse().unwrap(), "cart").await;
    let reco = upstream_with(
        fixed(
            200,
            json!({"items": [{"sku": 1, "title": "t", "price": 3}]}),
            0,
        ),
        "127.0.0.1:0".parse().unwrap(),
        "reco",
    )
    .await;
    let mut spec = base_spec();
    spec.services.push(service("user", &[(user.addr, "a")]));
    spec.services.push(service("orders", &[(orders.addr, "a")]));
    spec.services.push(service("cart", &[(cart.addr, "a")]));
    spec.services.push(service("reco", &[(reco.addr, "a")]));
    let mut reco_part = part("reco", "reco", "/reco/{user.favorite}", false, 500);
    reco_part.depends_on = Some("user".into());
    spec.compositions.push(CompositionSpec {
        name: "home".into(),
        deadline: Duration::from_millis(800),
        parts: vec![
            part("user", "user", "/users/{sub}", true, 500),
            part("orders", "orders", "/orders?user={sub}&limit=3", false, 300),
            part("cart", "cart", "/cart/{sub}", false, 300),
            reco_part,
        ],
    });
    let mut home = route("home", "/v1/home", false, "user", roles_any(&["customer"]));
    home.action = Action::Compose("home".into());
    spec.routes.push(home);
    tune(&mut spec);
    World {
        _ups: vec![user, orders, cart, reco],
        gw: gateway(spec).await,
    }
}

#[tokio::test]
async fn all_parts_merge_under_keys_with_claims_interpolated() {
    let w = world(
        fixed(200, json!({"recent": [1, 2]}), 0),
        fixed(200, json!({"count": 2}), 0),
        |_| {},
    )
    .await;
    let r = get_auth(w.gw.addr, "/v1/home", &token("alice", &["customer"])).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["user"]["name"], "Alice");
    assert_eq!(v["user"]["path"], "/users/alice");
    assert_eq!(v["user"]["user"], "alice", "identity header sent to parts");
    assert_eq!(v["orders"]["path"], "/orders?user=alice&limit=3");
    assert_eq!(v["cart"]["count"], 2);
    assert_eq!(
        v["reco"]["path"], "/reco/sku%209",
        "second stage uses the first part's field, encoded"
    );
    assert!(v.get("partial").is_none());
}

#[tokio::test]
async fn slow_and_failing_optional_parts_give_200_with_partial() {
    let started = Instant::now();
    let w = world(
        fixed(200, json!({}), 2000),
        fixed(500, json!({}), 0),
        |_| {},
    )
    .await;
    let r = get_auth(w.gw.addr, "/v1/home", &token("alice", &["customer"])).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["user"]["name"], "Alice");
    assert!(v.get("orders").is_none());
    assert!(v.get("cart").is_none());
    let failed = v["partial"]["failed"].as_array().unwrap();
    let reasons: Vec<(String, String)> = failed
        .iter()
        .map(|f| {
            (
                f["part"].as_str().unwrap().to_string(),
                f["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("orders".into(), "timeout".into()),
            ("cart".into(), "status_500".into())
        ]
    );
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "per-part timeout honoured"
    );
}

#[tokio::test]
async fn failing_required_part_gives_502_with_partial() {
    let w = world(fixed(200, json!({}), 0), fixed(200, json!({}), 0), |s| {
        s.compositions[0].parts[2].required = true;
        s.services[2].instances[0].addr = "127.0.0.1:1".parse().unwrap(); // cart: nothing listens
    })
    .await;
    let r = get_auth(w.gw.addr, "/v1/home", &token("alice", &["customer"])).await;
    assert_eq!(r.status, 502);
    let v = r.json();
    assert_eq!(v["error"], "composition_failed");
    assert_eq!(v["partial"]["failed"][0]["part"], "cart");
    assert_eq!(v["partial"]["failed"][0]["required"], true);
    assert!(v.get("user").is_none());
}

#[tokio::test]
async fn slow_required_part_gives_504_within_the_deadline() {
    let w = world(fixed(200, json!({}), 3000), fixed(200, json!({}), 0), |s| {
        s.compositions[0].parts[1].required = true;
        s.compositions[0].parts[1].timeout = Duration::from_secs(5); // bounded by the 800 ms deadline
    })
    .await;
    let start = Instant::now();
    let r = get_auth(w.gw.addr, "/v1/home", &token("alice", &["customer"])).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["partial"]["failed"][0]["reason"], "timeout");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[tokio::test]
async fn second_stage_is_skipped_when_its_dependency_fails() {
    let w = world(fixed(200, json!({}), 0), fixed(200, json!({}), 0), |s| {
        s.compositions[0].parts[0].required = false;
        s.services[0].instances[0].addr = "127.0.0.1:1".parse().unwrap(); // user down
    })
    .await;
    let r = get_auth(w.gw.addr, "/v1/home", &token("alice", &["customer"])).await;
    assert_eq!(r.status, 200);
    let failed = r.json()["partial"]["failed"].clone();
    assert_eq!(failed[0]["part"], "user");
    assert_eq!(failed[1]["part"], "reco");
    assert_eq!(failed[1]["reason"], "dependency_failed");
}

#[tokio::test]
async fn composition_requires_the_role() {
    let w = world(fixed(200, json!({}), 0), fixed(200, json!({}), 0), |_| {}).await;
    assert_eq!(get(w.gw.addr, "/v1/home", &[]).await.status, 401);
    assert_eq!(
        get_auth(w.gw.addr, "/v1/home", &token("alice", &["guest"]))
            .await
            .status,
        403
    );
    assert_eq!(w._ups.iter().map(|u| u.hits()).sum::<usize>(), 0);
}
