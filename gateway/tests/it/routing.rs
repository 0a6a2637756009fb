//! The routing table over real HTTP: specificity, 404/405, versions, rewrite, deprecation.

use crate::harness::*;
use http::Method;
use switchyard_gateway::spec::Policy;

async fn world() -> (Vec<Upstream>, Gw) {
    let ups = vec![
        upstream("users-v1").await,
        upstream("users-v2").await,
        upstream("me").await,
        upstream("orders").await,
        upstream("internal").await,
    ];
    let mut spec = base_spec();
    for u in ["users-v1", "users-v2", "me", "orders", "internal"] {
        let i = ["users-v1", "users-v2", "me", "orders", "internal"]
            .iter()
            .position(|x| *x == u)
            .unwrap();
        spec.services.push(service(u, &[(ups[i].addr, "a")]));
    }
    let mut v1 = route(
        "users-v1",
        "/v1/users/{id}",
        false,
        "users-v1",
        Policy::Public,
    );
    v1.methods = vec![Method::GET];
    v1.deprecated = true;
    v1.sunset = Some("Wed, 30 Jun 2027 23:59:59 GMT".into());
    v1.rewrite = Some("/users/{id}".into());
    let mut v2 = route(
        "users-v2",
        "/v2/users/{id}",
        false,
        "users-v2",
        Policy::Public,
    );
    v2.methods = vec![Method::GET, Method::PUT];
    v2.strip_prefix = Some("/v2".into());
    let mut me = route("me", "/v1/users/me", false, "me", Policy::Public);
    me.methods = vec![Method::GET];
    let mut orders = route("orders", "/v1/orders", true, "orders", Policy::Public);
    orders.rewrite = Some("/api/orders{rest}".into());
    let mut internal = route(
        "internal",
        "/v1/users/{id}",
        false,
        "internal",
        Policy::Public,
    );
    internal.host = Some("*.internal.test".into());
    let mut beta = route("beta", "/v2/users/{id}", false, "internal", Policy::Public);
    beta.headers = vec![(http::HeaderName::from_static("x-beta"), "1".into())];
    spec.routes = vec![v1, v2, me, orders, internal, beta];
    spec.versions = vec!["v1".into(), "v2".into()];
    spec.version_header = Some(http::HeaderName::from_static("x-api-version"));
    (ups, gateway(spec).await)
}

#[tokio::test]
async fn param_route_with_rewrite_and_deprecation_headers() {
    let (_u, gw) = world().await;
    let r = get(gw.addr, "/v1/users/42?fields=name", &[]).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["service"], "users-v1");
    assert_eq!(v["path"], "/users/42?fields=name");
    assert_eq!(r.header("deprecation"), Some("true"));
    assert_eq!(r.header("sunset"), Some("Wed, 30 Jun 2027 23:59:59 GMT"));
}

#[tokio::test]
async fn v2_strips_prefix_and_is_not_deprecated() {
    let (_u, gw) = world().await;
    let r = get(gw.addr, "/v2/users/42", &[]).await;
    assert_eq!(r.json()["service"], "users-v2");
    assert_eq!(r.json()["path"], "/users/42");
    assert_eq!(r.header("deprecation"), None);
}

#[tokio::test]
async fn literal_beats_param() {
    let (_u, gw) = world().await;
    assert_eq!(
        get(gw.addr, "/v1/users/me", &[]).await.json()["service"],
        "me"
    );
    assert_eq!(
        get(gw.addr, "/v1/users/meh", &[]).await.json()["service"],
        "users-v1"
    );
}

#[tokio::test]
async fn host_and_header_routes_are_more_specific() {
    let (_u, gw) = world().await;
    let r = raw(
        gw.addr,
        b"GET /v1/users/1 HTTP/1.1\r\nHost: api.internal.test:8000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.json()["service"], "internal");
    assert_eq!(
        get(gw.addr, "/v2/users/1", &[("X-Beta", "1")]).await.json()["service"],
        "internal"
    );
    assert_eq!(
        get(gw.addr, "/v2/users/1", &[("X-Beta", "0")]).await.json()["service"],
        "users-v2"
    );
}

#[tokio::test]
async fn prefix_route_rewrites_rest() {
    let (_u, gw) = world().await;
    let v = get(gw.addr, "/v1/orders/7/items", &[]).await.json();
    assert_eq!(v["service"], "orders");
    assert_eq!(v["path"], "/api/orders/7/items");
    assert_eq!(
        get(gw.addr, "/v1/orders", &[]).await.json()["path"],
        "/api/orders"
    );
    assert_eq!(get(gw.addr, "/v1/ordersx", &[]).await.status, 404);
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let (ups, gw) = world().await;
    let r = get(gw.addr, "/v3/users/1", &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body.trim(), "{\"error\":\"not_found\"}");
    let r = request(gw.addr, "DELETE", "/v2/users/1", &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT"));
    assert!(ups.iter().all(|u| u.hits() == 0));
}

#[tokio::test]
async fn version_header_selects_version_for_unversioned_paths() {
    let (_u, gw) = world().await;
    let v = get(gw.addr, "/users/5", &[("X-Api-Version", "v2")])
        .await
        .json();
    assert_eq!(v["service"], "users-v2");
    assert_eq!(
        get(gw.addr, "/users/5", &[("X-Api-Version", "v9")])
            .await
            .status,
        400
    );
    assert_eq!(get(gw.addr, "/users/5", &[]).await.status, 404);
}
