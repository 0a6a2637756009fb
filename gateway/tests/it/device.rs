//! Device profiles: field trimming for mobile, a different composition, a BFF upstream.

use std::time::Duration;

use crate::compose::world;
use crate::harness::*;
use serde_json::json;
use switchyard_gateway::spec::{DeviceProfileSpec, Policy, ProfileOverride};

fn profiles() -> Vec<DeviceProfileSpec> {
    vec![
        DeviceProfileSpec {
            name: "mobile".into(),
            client_types: vec!["ios".into(), "android".into()],
            user_agent_contains: vec!["iPhone".into(), "Android".into()],
        },
        DeviceProfileSpec {
            name: "web".into(),
            client_types: vec![],
            user_agent_contains: vec!["Mozilla".into()],
        },
    ]
}

fn ok(body: serde_json::Value) -> Behaviour {
    std::sync::Arc::new(move |_r| Reply {
        status: 200,
        body: body.clone(),
        delay: Duration::ZERO,
    })
}

#[tokio::test]
async fn mobile_profile_trims_fields_web_gets_everything() {
    let w = world(
        ok(json!({"recent": [{"id": 1, "total": 9, "lines": [1, 2]}]})),
        ok(json!({"count": 2, "items": []})),
        |s| {
            s.device_profiles = profiles();
            s.routes[0].profiles.push(ProfileOverride {
                profile: "mobile".into(),
                service: None,
                composition: None,
                fields: Some(vec![
                    "user.name".into(),
                    "orders.recent.id".into(),
                    "cart.count".into(),
                    "partial".into(),
                ]),
            });
        },
    )
    .await;
    let t = token("alice", &["customer"]);
    let auth = format!("Bearer {t}");
    let m = get(
        w.gw.addr,
        "/v1/home",
        &[
            ("Authorization", &auth),
            ("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17)"),
        ],
    )
    .await;
    assert_eq!(
        m.json(),
        json!({"user": {"name": "Alice"}, "orders": {"recent": [{"id": 1}]}, "cart": {"count": 2}})
    );
    let m2 = get(
        w.gw.addr,
        "/v1/home",
        &[("Authorization", &auth), ("X-Client-Type", "android")],
    )
    .await;
    assert_eq!(m2.json(), m.json());
    let web = get(
        w.gw.addr,
        "/v1/home",
        &[
            ("Authorization", &auth),
            ("User-Agent", "Mozilla/5.0 (X11; Linux)"),
        ],
    )
    .await
    .json();
    assert_eq!(web["user"]["email"], "a@x");
    assert_eq!(web["orders"]["recent"][0]["total"], 9);
}

#[tokio::test]
async fn mobile_profile_can_use_another_composition() {
    let w = world(ok(json!({"recent": []})), ok(json!({"count": 1})), |s| {
        s.device_profiles = profiles();
        let mut lite = s.compositions[0].clone();
        lite.name = "home-lite".into();
        lite.parts.retain(|p| p.name == "user" || p.name == "cart");
        s.compositions.push(lite);
        s.routes[0].profiles.push(ProfileOverride {
            profile: "mobile".into(),
            service: None,
            composition: Some("home-lite".into()),
            fields: None,
        });
    })
    .await;
    let t = format!("Bearer {}", token("alice", &["customer"]));
    let v = get(
        w.gw.addr,
        "/v1/home",
        &[("Authorization", &t), ("X-Client-Type", "ios")],
    )
    .await
    .json();
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["cart", "user"]);
}

#[tokio::test]
async fn bff_profile_picks_its_upstream() {
    let web = upstream("web-api").await;
    let bff = upstream("mobile-bff").await;
    let mut spec = base_spec();
    spec.device_profiles = profiles();
    spec.services.push(service("web-api", &[(web.addr, "a")]));
    spec.services
        .push(service("mobile-bff", &[(bff.addr, "a")]));
    let mut r = route("feed", "/v1/feed", true, "web-api", Policy::Public);
    r.profiles.push(ProfileOverride {
        profile: "mobile".into(),
        service: Some("mobile-bff".into()),
        composition: None,
        fields: None,
    });
    spec.routes.push(r);
    let gw = gateway(spec).await;
    assert_eq!(
        get(gw.addr, "/v1/feed", &[("X-Client-Type", "ios")])
            .await
            .header("x-backend"),
        Some("mobile-bff")
    );
    assert_eq!(
        get(gw.addr, "/v1/feed", &[("User-Agent", "Android 14")])
            .await
            .header("x-backend"),
        Some("mobile-bff")
    );
    assert_eq!(
        get(gw.addr, "/v1/feed", &[("User-Agent", "curl/8")])
            .await
            .header("x-backend"),
        Some("web-api")
    );
    assert_eq!((web.hits(), bff.hits()), (1, 2));
}
