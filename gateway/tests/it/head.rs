//! HEAD is answered wherever GET is (RFC 9110 §9.3.2): same status and headers, no body, the
//! `Content-Length` GET would have. On a route limited to GET, and on a composition.

use std::sync::Arc;

use crate::harness::*;
use serde_json::json;
use switchyard_gateway::spec::{Action, CompositionSpec, PartSpec};

async fn both(addr: std::net::SocketAddr, path: &str, token: &str) -> (Resp, Resp) {
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    (
        request(addr, "GET", path, &h, "").await,
        request(addr, "HEAD", path, &h, "").await,
    )
}

fn assert_parity(get: &Resp, head: &Resp) {
    assert_eq!(get.status, 200, "{get:?}");
    assert_eq!(head.status, get.status, "{head:?}");
    assert!(head.body.is_empty(), "HEAD has a body: {head:?}");
    assert!(!get.body.is_empty());
    let len = get
        .header("content-length")
        .map(str::to_string)
        .unwrap_or_else(|| get.body.len().to_string());
    assert_eq!(
        head.header("content-length"),
        Some(len.as_str()),
        "{head:?}"
    );
    assert_eq!(head.header("content-type"), get.header("content-type"));
}

#[tokio::test]
async fn head_on_a_get_route_and_on_a_composition() {
    let up = upstream_with(
        Arc::new(|_| Reply {
            status: 200,
            body: json!({"pad": "0123456789"}),
            delay: std::time::Duration::ZERO,
        }),
        "127.0.0.1:0".parse().unwrap(),
        "svc",
    )
    .await;
    let mut spec = base_spec();
    spec.services.push(service("svc", &[(up.addr, "a")]));
    let mut r = route("get-only", "/api", true, "svc", roles_any(&["customer"]));
    r.methods = vec![http::Method::GET];
    spec.routes.push(r);
    spec.compositions.push(CompositionSpec {
        name: "home".into(),
        deadline: std::time::Duration::from_secs(2),
        parts: vec![PartSpec {
            name: "svc".into(),
            service: "svc".into(),
            path: "/part/{sub}".into(),
            key: "svc".into(),
            required: true,
            timeout: std::time::Duration::from_secs(1),
            depends_on: None,
        }],
    });
    let mut home = route("home", "/home", false, "svc", roles_any(&["customer"]));
    home.action = Action::Compose("home".into());
    home.methods = vec![http::Method::GET];
    spec.routes.push(home);
    let gw = gateway(spec).await;
    let t = token("alice", &["customer"]);
    let (get, head) = both(gw.addr, "/api/x", &t).await;
    assert_parity(&get, &head);
    let (get, head) = both(gw.addr, "/home", &t).await;
    assert_parity(&get, &head);
    assert_eq!(get.json()["svc"]["pad"], "0123456789");
    // other methods are still refused, with HEAD in Allow
    let r = request(gw.addr, "DELETE", "/api/x", &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}
