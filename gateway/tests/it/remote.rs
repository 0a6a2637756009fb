//! Remote instances (issue 17): a service with no healthy instance in the gateway's region is
//! served by the next region of the failover order, with the same identity headers; with none
//! anywhere (or `remote_instances = false`), the usual 503.

use crate::harness::*;
use switchyard_gateway::spec::{GatewaySpec, Policy};

/// Instance `local` in r1 (the gateway's region), `second` in r2, `first` in r3; r1 fails
/// over to r3, then r2.
fn spec(local: &Upstream, first: &Upstream, second: &Upstream, remote: bool) -> GatewaySpec {
    let mut spec = base_spec();
    let mut svc = service(
        "svc",
        &[(local.addr, "a"), (second.addr, "r2a"), (first.addr, "r3a")],
    );
    svc.instances[1].region = "r2".into();
    svc.instances[2].region = "r3".into();
    svc.remote_instances = remote;
    spec.services.push(svc);
    spec.region_failover = vec![("r1".into(), vec!["r3".into(), "r2".into()])];
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Authenticated));
    spec
}

async fn who(gw: &Gw, tok: &str) -> (u16, Option<String>, String) {
    let r = get_auth(gw.addr, "/api/x", tok).await;
    (r.status, r.header("x-backend").map(str::to_string), r.body)
}

#[tokio::test]
async fn no_healthy_local_instance_goes_to_the_next_region_of_the_failover_order() {
    let (local, first, second) = (
        upstream("local").await,
        upstream("first").await,
        upstream("second").await,
    );
    let gw = gateway(spec(&local, &first, &second, true)).await;
    let tok = token("alice", &["customer"]);
    for _ in 0..3 {
        assert_eq!(who(&gw, &tok).await.1.as_deref(), Some("local"));
    }
    local.kill();
    // the first request after the kill retries on r3 (connect refused); later ones skip the
    // ejected local instance
    for _ in 0..5 {
        let (status, backend, body) = who(&gw, &tok).await;
        assert_eq!((status, backend.as_deref()), (200, Some("first")), "{body}");
        // the same identity headers as for a local call
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["user"], "alice", "{body}");
        assert_eq!(v["roles"], "customer", "{body}");
    }
    assert_eq!(second.hits(), 0, "r2 comes after r3 in the failover order");
    first.kill();
    for _ in 0..3 {
        assert_eq!(who(&gw, &tok).await.1.as_deref(), Some("second"));
    }
    second.kill();
    // the request that finds r2 dead gets 502 (connect refused); then every instance is
    // ejected and the answer is the usual 503
    let (status, _, body) = who(&gw, &tok).await;
    assert!(status == 502 || status == 503, "{status} {body}");
    let (status, _, body) = who(&gw, &tok).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn remote_instances_off_keeps_a_service_in_its_region() {
    let (local, first, second) = (
        upstream("local").await,
        upstream("first").await,
        upstream("second").await,
    );
    let gw = gateway(spec(&local, &first, &second, false)).await;
    let tok = token("alice", &["customer"]);
    assert_eq!(who(&gw, &tok).await.1.as_deref(), Some("local"));
    local.kill();
    for _ in 0..3 {
        let (status, _, body) = who(&gw, &tok).await;
        assert!(status == 502 || status == 503, "{status} {body}");
    }
    assert_eq!(first.hits() + second.hits(), 0);
}
