//! Path tricks never reach the admin upstream without the admin role.

use crate::harness::*;
use switchyard_gateway::spec::Policy;

async fn world() -> (Upstream, Upstream, Gw) {
    let users = upstream("users").await;
    let admin = upstream("admin").await;
    let mut spec = base_spec();
    spec.services.push(service("users", &[(users.addr, "a")]));
    spec.services.push(service("admin", &[(admin.addr, "a")]));
    spec.routes.push(route(
        "users",
        "/v1/users",
        true,
        "users",
        roles_any(&["customer"]),
    ));
    spec.routes.push(route(
        "admin",
        "/v1/admin",
        true,
        "admin",
        roles_any(&["admin"]),
    ));
    spec.routes
        .push(route("health", "/healthz", false, "users", Policy::Public));
    (users, admin, gateway(spec).await)
}

async fn status(gw: &Gw, path: &str) -> (u16, serde_json::Value) {
    let r = get_auth(gw.addr, path, &token("mallory", &["customer"])).await;
    let v = if r.status == 200 {
        r.json()
    } else {
        serde_json::Value::Null
    };
    (r.status, v)
}

#[tokio::test]
async fn dot_segments_resolve_before_routing() {
    let (_u, admin, gw) = world().await;
    let (s, v) = status(&gw, "/v1/admin/../users/x").await;
    assert_eq!(s, 200);
    assert_eq!(v["service"], "users");
    assert_eq!(v["path"], "/v1/users/x");
    assert_eq!(admin.hits(), 0);
}

#[tokio::test]
async fn encoded_unreserved_is_decoded_then_authorized() {
    let (_u, admin, gw) = world().await;
    assert_eq!(status(&gw, "/v1/%61dmin/").await.0, 403);
    assert_eq!(status(&gw, "/v1/%61%64%6D%69%6E/x").await.0, 403);
    assert_eq!(admin.hits(), 0);
}

#[tokio::test]
async fn encoded_slash_is_400() {
    let (_u, admin, gw) = world().await;
    assert_eq!(status(&gw, "/v1/admin%2Fx").await.0, 400);
    assert_eq!(status(&gw, "/v1/users/..%2f..%2fadmin").await.0, 400);
    assert_eq!(status(&gw, "/v1/users/%5c..%5cadmin").await.0, 400);
    assert_eq!(status(&gw, "/v1/users/x%00").await.0, 400);
    assert_eq!(status(&gw, "/v1/admin;jsessionid=1/x").await.0, 400);
    assert_eq!(status(&gw, "/v1/users/..;/admin").await.0, 400);
    assert_eq!(admin.hits(), 0);
}

#[tokio::test]
async fn double_slash_is_the_same_route() {
    let (_u, admin, gw) = world().await;
    assert_eq!(status(&gw, "//v1/admin").await.0, 403);
    assert_eq!(status(&gw, "/v1//admin/x").await.0, 403);
    assert_eq!(admin.hits(), 0);
}

#[tokio::test]
async fn escaping_root_and_backslash_are_400() {
    let (_u, admin, gw) = world().await;
    assert_eq!(status(&gw, "/../v1/admin").await.0, 400);
    assert_eq!(status(&gw, "/v1/%2e%2e/%2e%2e/v1/admin").await.0, 400);
    let r = raw(
        gw.addr,
        b"GET /v1\\admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(admin.hits(), 0);
}

#[tokio::test]
async fn admin_role_still_reaches_admin() {
    let (_u, admin, gw) = world().await;
    let r = get_auth(gw.addr, "/v1/%61dmin/stats", &token("root", &["admin"])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/v1/admin/stats");
    assert_eq!(admin.hits(), 1);
}
