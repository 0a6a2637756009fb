//! Weighted traffic split between services (canary releases): per request, or sticky per
//! subject / client address.

use crate::harness::*;
use std::collections::HashMap;
use switchyard_gateway::spec::{Action, Policy, SplitSpec};

async fn world(sticky: bool, policy: Policy) -> (Upstream, Upstream, Gw) {
    let (stable, canary) = (upstream("stable").await, upstream("canary").await);
    let mut spec = base_spec();
    spec.services.push(service("stable", &[(stable.addr, "a")]));
    spec.services.push(service("canary", &[(canary.addr, "a")]));
    let mut r = route("api", "/api", true, "stable", policy);
    r.action = Action::Split(SplitSpec {
        targets: vec![("stable".into(), 90), ("canary".into(), 10)],
        sticky,
    });
    spec.routes.push(r);
    (stable, canary, gateway(spec).await)
}

#[tokio::test]
async fn a_per_request_split_follows_the_weights() {
    let (stable, canary, gw) = world(false, Policy::Public).await;
    for _ in 0..1000 {
        assert_eq!(
            get(gw.addr, "/api/x", &[("Connection", "close")])
                .await
                .status,
            200
        );
    }
    // binomial(1000, 0.1): mean 100, sd 9.5
    let c = canary.hits();
    assert!((55..=145).contains(&c), "canary got {c} of 1000");
    assert_eq!(stable.hits() + c, 1000);
}

#[tokio::test]
async fn a_sticky_split_keeps_each_subject_on_one_side() {
    let (_stable, canary, gw) = world(true, Policy::Authenticated).await;
    let mut side: HashMap<String, String> = HashMap::new();
    for n in 0..200 {
        let sub = format!("user-{n}");
        let t = token(&sub, &[]);
        for _ in 0..3 {
            let r = get_auth(gw.addr, "/api/x", &t).await;
            assert_eq!(r.status, 200);
            let got = r.json()["service"].as_str().unwrap().to_string();
            let first = side.entry(sub.clone()).or_insert_with(|| got.clone());
            assert_eq!(*first, got, "{sub} moved between services");
        }
    }
    // about 10% of the subjects are on the canary: mean 20, sd 4.2
    let on_canary = side.values().filter(|s| *s == "canary").count();
    assert!((6..=40).contains(&on_canary), "{on_canary} of 200 subjects");
    assert_eq!(canary.hits(), on_canary * 3);
}
