//! Upstream failover through the shared balance crate: killed instances, AZ and region spill.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::*;
use switchyard_balance::{AdminState, AdminTarget, CheckSpec, HealthRegistry};
use switchyard_gateway::spec::Policy;

async fn backends(gw: &Gw, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = get(gw.addr, "/api/x", &[]).await;
        assert_eq!(r.status, 200, "{r:?}");
        *seen
            .entry(r.header("x-backend").unwrap().to_string())
            .or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn killed_instance_causes_no_client_visible_failures() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let mut spec = base_spec();
    spec.services
        .push(service("svc", &[(a.addr, "az1"), (b.addr, "az2")]));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    let gw = gateway(spec).await;
    let seen = backends(&gw, 20).await;
    assert_eq!(seen.get("a"), Some(&10));
    assert_eq!(seen.get("b"), Some(&10));
    a.kill();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before_b = b.hits();
    let seen = backends(&gw, 60).await; // each asserts 200
    assert_eq!(seen.get("b"), Some(&60));
    assert_eq!(b.hits() - before_b, 60);
}

#[tokio::test]
async fn killed_instance_under_concurrent_load_has_zero_failures() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let c = upstream("c").await;
    let mut spec = base_spec();
    spec.services.push(service(
        "svc",
        &[(a.addr, "az1"), (b.addr, "az2"), (c.addr, "az2")],
    ));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    let gw = gateway(spec).await;
    let addr = gw.addr;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            let mut bad = 0;
            for _ in 0..40 {
                if get(addr, "/api/x", &[]).await.status != 200 {
                    bad += 1;
                }
            }
            bad
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    a.kill();
    let mut failures = 0;
    for t in tasks {
        failures += t.await.unwrap();
    }
    assert_eq!(failures, 0);
}

#[tokio::test]
async fn az_down_spills_to_the_other_az() {
    let a1 = upstream("a1").await;
    let a2 = upstream("a2").await;
    let b1 = upstream("b1").await;
    let admin = AdminState::new();
    let registry = HealthRegistry::with_admin(admin.clone());
    let mut spec = base_spec();
    spec.services.push(service(
        "svc",
        &[(a1.addr, "az-a"), (a2.addr, "az-a"), (b1.addr, "az-b")],
    ));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    let gw = gateway_with(spec, registry).await;
    let seen = backends(&gw, 40).await;
    assert_eq!(seen.get("b1"), Some(&20), "each AZ gets half: {seen:?}");
    admin.fail(AdminTarget::Az("az-a".into()));
    let seen = backends(&gw, 20).await;
    assert_eq!(seen, HashMap::from([("b1".to_string(), 20)]));
    admin.restore(AdminTarget::Az("az-a".into()));
    admin.drain(AdminTarget::Instance("svc-2".into()));
    let seen = backends(&gw, 20).await;
    assert_eq!(
        seen.get("b1"),
        None,
        "drained instance gets no new requests: {seen:?}"
    );
}

#[tokio::test]
async fn region_down_spills_to_another_region() {
    let local = upstream("local").await;
    let remote = upstream("remote").await;
    let mut spec = base_spec();
    let mut svc = service("svc", &[(local.addr, "a"), (remote.addr, "x")]);
    svc.instances[1].region = "r2".into();
    spec.services.push(svc);
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    let gw = gateway(spec).await;
    assert_eq!(
        backends(&gw, 10).await,
        HashMap::from([("local".to_string(), 10)])
    );
    local.kill();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        backends(&gw, 10).await,
        HashMap::from([("remote".to_string(), 10)])
    );
}

#[tokio::test]
async fn active_health_check_takes_a_dead_instance_out() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let registry = HealthRegistry::new();
    let mut spec = base_spec();
    let mut svc = service("svc", &[(a.addr, "az1"), (b.addr, "az2")]);
    svc.passive.consecutive_failures = 0; // only the active check may take it out
    svc.check = Some(
        CheckSpec::tcp()
            .with_timing(Duration::from_millis(20), Duration::from_millis(100))
            .with_thresholds(1, 1),
    );
    spec.services.push(svc);
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    let gw = gateway_with(spec, registry.clone()).await;
    a.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while registry.get(&a.addr).is_some_and(|h| h.is_up()) {
        assert!(
            std::time::Instant::now() < deadline,
            "active check never saw the instance down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        backends(&gw, 10).await,
        HashMap::from([("b".to_string(), 10)])
    );
}

#[tokio::test]
async fn idempotent_requests_retry_a_503_on_another_instance_when_configured() {
    use std::sync::Arc;
    let sick = upstream_with(
        Arc::new(|_r| Reply {
            status: 503,
            body: serde_json::json!({"error": "busy"}),
            delay: Duration::ZERO,
        }),
        "127.0.0.1:0".parse().unwrap(),
        "sick",
    )
    .await;
    let well = upstream("well").await;
    let mut spec = base_spec();
    spec.services
        .push(service("svc", &[(sick.addr, "az1"), (well.addr, "az2")]));
    let mut r = route("api", "/api", true, "svc", Policy::Public);
    r.retry_on_5xx = true;
    spec.routes.push(r);
    let mut plain = route("plain", "/plain", true, "svc", Policy::Public);
    plain.retry_on_5xx = false;
    spec.routes.push(plain);
    let gw = gateway(spec).await;
    for _ in 0..6 {
        let r = get(gw.addr, "/api/x", &[]).await;
        assert_eq!((r.status, r.header("x-backend")), (200, Some("well")));
    }
    // POST is not idempotent: the 503 is passed on, never replayed elsewhere
    let mut statuses: Vec<u16> = Vec::new();
    for _ in 0..4 {
        statuses.push(request(gw.addr, "POST", "/api/x", &[], "{}").await.status);
    }
    assert!(statuses.contains(&503), "{statuses:?}");
    // without retry_on_5xx the 503 reaches the client too
    let mut plain_statuses: Vec<u16> = Vec::new();
    for _ in 0..4 {
        plain_statuses.push(get(gw.addr, "/plain/x", &[]).await.status);
    }
    assert!(plain_statuses.contains(&503), "{plain_statuses:?}");
}
