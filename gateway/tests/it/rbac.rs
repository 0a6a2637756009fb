//! Authorization: 401 vs 403, identity headers.

use crate::harness::*;
use switchyard_gateway::spec::Policy;

#[tokio::test]
async fn no_token_401_wrong_role_403_right_role_200() {
    let (up, gw) = simple(roles_any(&["admin", "support"])).await;
    assert_eq!(get(gw.addr, "/api/x", &[]).await.status, 401);
    let r = get_auth(gw.addr, "/api/x", &token("alice", &["customer"])).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("www-authenticate"), None);
    assert_eq!(up.hits(), 0);
    let r = get_auth(gw.addr, "/api/x", &token("alice", &["support"])).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn all_of_roles_requires_every_role() {
    let (up, gw) = simple(Policy::Roles {
        any: vec![],
        all: vec!["admin".into(), "auditor".into()],
    })
    .await;
    assert_eq!(
        get_auth(gw.addr, "/api/x", &token("a", &["admin"]))
            .await
            .status,
        403
    );
    assert_eq!(
        get_auth(gw.addr, "/api/x", &token("a", &["admin", "auditor"]))
            .await
            .status,
        200
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn space_separated_scope_claim_works() {
    let up = upstream("svc").await;
    let mut spec = base_spec();
    spec.jwt.roles_claim = "scope".into();
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes.push(route(
        "api",
        "/api",
        true,
        "svc",
        roles_any(&["orders:read"]),
    ));
    let gw = gateway(spec).await;
    let mut c = claims("alice", &[]);
    c["scope"] = serde_json::json!("users:read orders:read");
    let t = sign(jsonwebtoken::Algorithm::HS256, Some("hs"), &c);
    assert_eq!(get_auth(gw.addr, "/api/x", &t).await.status, 200);
}

#[tokio::test]
async fn spoofed_identity_headers_are_replaced() {
    let (_up, gw) = simple(Policy::Authenticated).await;
    let t = format!("Bearer {}", token("alice", &["customer", "beta"]));
    let r = get(
        gw.addr,
        "/api/x",
        &[
            ("Authorization", &t),
            ("X-User-Id", "root"),
            ("X-User-Roles", "admin"),
            ("x-user-id", "root2"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["user"], "alice");
    assert_eq!(v["roles"], "customer,beta");
}

#[tokio::test]
async fn spoofed_identity_headers_are_stripped_on_public_routes() {
    let (_up, gw) = simple(Policy::Public).await;
    let r = get(
        gw.addr,
        "/api/x",
        &[("X-User-Id", "root"), ("X-User-Roles", "admin")],
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["user"], serde_json::Value::Null);
    assert_eq!(v["roles"], serde_json::Value::Null);
}
