//! Reload: routes swap in place, the listener and open connections stay.

use crate::harness::*;
use switchyard_gateway::spec::Policy;

#[tokio::test]
async fn reload_swaps_routes_without_rebinding() {
    let up = upstream("svc").await;
    let mut spec = base_spec();
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes
        .push(route("old", "/old", true, "svc", Policy::Public));
    let gw = gateway(spec.clone()).await;
    assert_eq!(get(gw.addr, "/old/x", &[]).await.status, 200);
    assert_eq!(get(gw.addr, "/new/x", &[]).await.status, 404);

    spec.instances[0].listen = gw.addr; // same instance, same address: not rebound
    spec.routes = vec![route("new", "/new", true, "svc", roles_any(&["admin"]))];
    gw.handle.reload_spec(spec.clone()).await.unwrap();
    assert_eq!(gw.handle.local_addr("gw"), Some(gw.addr));
    assert_eq!(get(gw.addr, "/old/x", &[]).await.status, 404);
    assert_eq!(get(gw.addr, "/new/x", &[]).await.status, 401);
    assert_eq!(
        get_auth(gw.addr, "/new/x", &token("root", &["admin"]))
            .await
            .status,
        200
    );

    // a broken key keeps the old runtime
    spec.jwt.issuers[0].keys[1].material =
        switchyard_gateway::spec::KeyMaterial::PublicPem(b"not a pem".to_vec());
    assert!(gw.handle.reload_spec(spec).await.is_err());
    assert_eq!(
        get_auth(gw.addr, "/new/x", &token("root", &["admin"]))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_second_gateway_on_the_same_address_is_refused() {
    let (_up, gw) = simple(Policy::Public).await;
    let mut spec = base_spec();
    spec.instances[0].listen = gw.addr;
    let stop = tokio_util::sync::CancellationToken::new();
    let err = switchyard_gateway::start_spec(
        spec,
        switchyard_balance::HealthRegistry::new(),
        stop.clone(),
    )
    .await
    .err()
    .expect("the address is taken");
    assert!(
        matches!(err, switchyard_gateway::Error::Bind { .. }),
        "{err}"
    );
    stop.cancel();
}

#[tokio::test]
async fn instance_removed_then_added_again_rebinds_the_same_address() {
    let up = upstream("svc").await;
    let mut spec = base_spec();
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Public));
    let gw = gateway(spec.clone()).await;
    spec.instances[0].listen = gw.addr;
    let kept = spec.instances.clone();
    spec.instances.clear();
    gw.handle.reload_spec(spec.clone()).await.unwrap();
    assert!(gw.handle.local_addr("gw").is_none());
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "listener closed"
    );
    spec.instances = kept;
    gw.handle.reload_spec(spec).await.unwrap();
    assert_eq!(gw.handle.local_addr("gw"), Some(gw.addr));
    assert_eq!(get(gw.addr, "/api/x", &[]).await.status, 200);
}
