//! CORS: preflights answered by the gateway before authentication, allowed origins echoed on
//! every response (errors included), other origins get nothing.

use crate::harness::*;
use switchyard_gateway::cors::CorsSpec;
use switchyard_gateway::spec::Policy;

const APP: &str = "https://app.example.test";

fn cors(origins: Option<&[&str]>, credentials: bool) -> CorsSpec {
    CorsSpec::new(
        origins.map(|o| o.iter().map(|s| s.to_string()).collect()),
        &["GET".into(), "POST".into()],
        &["authorization".into(), "content-type".into()],
        &["x-request-id".into()],
        credentials,
        std::time::Duration::from_secs(600),
    )
    .unwrap()
}

async fn world(c: Option<CorsSpec>) -> (Upstream, Gw) {
    let up = upstream("svc").await;
    let mut spec = base_spec();
    spec.cors = c;
    spec.services.push(service("svc", &[(up.addr, "a")]));
    let mut r = route("api", "/api", true, "svc", Policy::Authenticated);
    r.methods = vec![http::Method::GET, http::Method::POST];
    spec.routes.push(r);
    (up, gateway(spec).await)
}

async fn preflight(gw: &Gw, origin: &str, method: &str, path: &str) -> Resp {
    get_like(
        gw,
        "OPTIONS",
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    )
    .await
}

async fn get_like(gw: &Gw, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(gw.addr, req.as_bytes()).await
}

#[tokio::test]
async fn a_preflight_is_answered_before_authentication() {
    let (up, gw) = world(Some(cors(Some(&[APP]), true))).await;
    let r = preflight(&gw, APP, "POST", "/api/orders").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("vary"), Some("origin"));
    assert_eq!(up.hits(), 0, "a preflight never reaches the instance");
    // origin compared without regard to case
    let r = preflight(&gw, "HTTPS://APP.example.test", "GET", "/api/x").await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn a_preflight_from_another_origin_or_for_another_method_or_path_is_refused() {
    let (up, gw) = world(Some(cors(Some(&[APP]), false))).await;
    for (origin, method, path, status) in [
        ("https://evil.example", "GET", "/api/x", 403),
        (APP, "DELETE", "/api/x", 403),
        (APP, "GET", "/nowhere", 404),
    ] {
        let r = preflight(&gw, origin, method, path).await;
        assert_eq!(r.status, status, "{origin} {method} {path}");
        assert_eq!(r.header("access-control-allow-origin"), None);
        assert_eq!(r.header("access-control-allow-methods"), None);
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn responses_to_an_allowed_origin_carry_the_cors_headers_errors_included() {
    let (up, gw) = world(Some(cors(Some(&[APP]), false))).await;
    let auth = format!("Bearer {}", token("ana", &[]));
    let r = get_like(
        &gw,
        "GET",
        "/api/x",
        &[("Origin", APP), ("Authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(r.header("vary"), Some("origin"));
    // a 401 is readable by the script too
    let r = get_like(&gw, "GET", "/api/x", &[("Origin", APP)]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    // another origin: served (the browser enforces), but without CORS headers
    let r = get_like(
        &gw,
        "GET",
        "/api/x",
        &[("Origin", "https://evil.example"), ("Authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("vary"), Some("origin"));
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn any_origin_is_answered_with_a_star() {
    let (_up, gw) = world(Some(cors(None, false))).await;
    let r = preflight(&gw, "https://whoever.example", "GET", "/api/x").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn without_cors_an_options_request_is_routed_like_any_other() {
    let (up, gw) = world(None).await;
    let r = preflight(&gw, APP, "GET", "/api/x").await;
    // the route serves GET and POST only
    assert_eq!(r.status, 405);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(up.hits(), 0);
}
