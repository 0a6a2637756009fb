//! JWT over real sockets: the 401 / `WWW-Authenticate` shape of an accepted and a rejected token,
//! credentials in the wrong places, JWKS files and URLs. Every token shape (algorithms, key
//! confusion, claims, subjects, roles) is checked without sockets in `src/jwt/tests.rs`.

use crate::harness::*;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::json;
use switchyard_gateway::spec::Policy;

const INVALID: &str = "Bearer error=\"invalid_token\"";

async fn expect_rejected(token: &str) {
    let (up, gw) = simple(Policy::Authenticated).await;
    let r = get_auth(gw.addr, "/api/x", token).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some(INVALID));
    assert_eq!(r.body.trim(), "{\"error\":\"unauthorized\"}");
    assert_eq!(up.hits(), 0, "a rejected request reached the upstream");
}

async fn expect_accepted(token: &str) {
    let (up, gw) = simple(Policy::Authenticated).await;
    let r = get_auth(gw.addr, "/api/x", token).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["user"], "alice");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn valid_hs256_passes() {
    expect_accepted(&sign(Algorithm::HS256, Some("hs"), &claims("alice", &[]))).await;
}

#[tokio::test]
async fn bad_signature_is_rejected() {
    let t = sign(Algorithm::HS256, Some("hs"), &claims("alice", &[]));
    let (head, sig) = t.rsplit_once('.').unwrap();
    let mut sig: Vec<u8> = sig.bytes().collect();
    let mid = sig.len() / 2;
    sig[mid] = if sig[mid] == b'A' { b'B' } else { b'A' };
    expect_rejected(&format!("{head}.{}", String::from_utf8(sig).unwrap())).await;
}

#[tokio::test]
async fn several_different_tokens_are_rejected() {
    let (up, gw) = simple(Policy::Authenticated).await;
    let a = format!("Bearer {}", token("alice", &[]));
    let b = format!("Bearer {}", token("bob", &[]));
    let r = get(
        gw.addr,
        "/api/x",
        &[("Authorization", &a), ("Authorization", &b)],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(INVALID));
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn missing_token_is_401_without_error_code() {
    let (up, gw) = simple(Policy::Authenticated).await;
    let r = get(gw.addr, "/api/x", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn token_in_query_string_is_ignored() {
    let (up, gw) = simple(Policy::Authenticated).await;
    let r = get(
        gw.addr,
        &format!("/api/x?access_token={}", token("alice", &[])),
        &[],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn basic_auth_is_rejected() {
    let (up, gw) = simple(Policy::Authenticated).await;
    let r = get(
        gw.addr,
        "/api/x",
        &[("Authorization", "Basic YWxpY2U6cHc=")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(INVALID));
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn jwks_file_key_verifies() {
    let up = upstream("svc").await;
    let mut spec = base_spec();
    spec.jwt.issuers[0]
        .jwks_files
        .push(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/keys/jwks.json").into());
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Authenticated));
    let gw = gateway(spec).await;
    let t = sign(Algorithm::RS256, Some("rs-jwks"), &claims("alice", &[]));
    assert_eq!(get_auth(gw.addr, "/api/x", &t).await.status, 200);
    // the JWKS key is pinned to RS256: an HS256 token naming it is refused
    let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
    h.kid = Some("rs-jwks".into());
    let t = jsonwebtoken::encode(
        &h,
        &claims("alice", &[]),
        &jsonwebtoken::EncodingKey::from_secret(RS_PUB),
    )
    .unwrap();
    assert_eq!(get_auth(gw.addr, "/api/x", &t).await.status, 401);
}

fn oct_jwks(keys: &[(&str, &[u8])]) -> serde_json::Value {
    let keys: Vec<_> = keys
        .iter()
        .map(|(kid, secret)| {
            json!({"kty": "oct", "kid": kid, "alg": "HS256",
                   "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)})
        })
        .collect();
    json!({ "keys": keys })
}

#[tokio::test]
async fn unknown_kid_refreshes_jwks_url_rate_limited_and_stale_on_failure() {
    use std::sync::{Arc, Mutex};
    let doc = Arc::new(Mutex::new((
        200u16,
        oct_jwks(&[("k1", b"secret-one-0123456789")]),
    )));
    let d = doc.clone();
    let jwks = upstream_with(
        Arc::new(move |_req| {
            let (status, body) = d.lock().unwrap().clone();
            Reply {
                status,
                body,
                delay: std::time::Duration::ZERO,
            }
        }),
        "127.0.0.1:0".parse().unwrap(),
        "jwks",
    )
    .await;
    let up = upstream("svc").await;
    let mut spec = base_spec();
    spec.jwt.issuers[0].jwks_url = Some(format!("http://{}/jwks.json", jwks.addr));
    spec.jwt.issuers[0].jwks_min_refresh = std::time::Duration::from_secs(300);
    let clock = switchyard_gateway::clock::Clock::manual();
    spec.jwt.clock = clock.clone();
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", Policy::Authenticated));
    let gw = gateway(spec).await;
    assert_eq!(jwks.hits(), 1, "fetched once at start");

    let counter = std::sync::atomic::AtomicUsize::new(0);
    let mint = |kid: &str, secret: &[u8]| {
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.kid = Some(kid.into());
        let mut c = claims("alice", &[]);
        c["jti"] = json!(counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst)); // no cache hits
        jsonwebtoken::encode(&h, &c, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
    };
    assert_eq!(
        get_auth(gw.addr, "/api/x", &mint("k1", b"secret-one-0123456789"))
            .await
            .status,
        200
    );
    assert_eq!(jwks.hits(), 1, "known kid: no fetch");

    // rotate: k2 appears; the first request with k2 is within the refresh interval of the start fetch
    *doc.lock().unwrap() = (
        200,
        oct_jwks(&[
            ("k1", b"secret-one-0123456789"),
            ("k2", b"secret-two-0123456789"),
        ]),
    );
    clock.advance(std::time::Duration::from_secs(301));
    let k2 = mint("k2", b"secret-two-0123456789");
    assert_eq!(get_auth(gw.addr, "/api/x", &k2).await.status, 200);
    assert_eq!(jwks.hits(), 2, "unknown kid triggered one refresh");

    // unknown kids do not hammer the JWKS server: one fetch per interval at most
    for _ in 0..5 {
        assert_eq!(
            get_auth(gw.addr, "/api/x", &mint("k9", b"whatever-0123456789"))
                .await
                .status,
            401
        );
    }
    assert_eq!(jwks.hits(), 2, "no fetch within the refresh interval");

    // the JWKS server fails: the cached keys keep working
    *doc.lock().unwrap() = (500, json!({}));
    clock.advance(std::time::Duration::from_secs(301));
    assert_eq!(
        get_auth(gw.addr, "/api/x", &mint("k7", b"whatever-0123456789"))
            .await
            .status,
        401
    );
    assert_eq!(jwks.hits(), 3, "one fetch after the interval (it failed)");
    let fresh_k1 = mint("k1", b"secret-one-0123456789");
    assert_eq!(
        get_auth(gw.addr, "/api/x", &fresh_k1).await.status,
        200,
        "stale cache served"
    );
}
