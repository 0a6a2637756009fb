//! Criterion benches of the pure deciding code: route match, path normalisation, JSON merge and
//! trim, JWT verification per algorithm (cold = signature check, cached = verification cache hit).
#![allow(missing_docs)] // criterion's macros define undocumented pub fns

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use switchyard_gateway::jwt::{KeySet, VerifyCache};
use switchyard_gateway::router::Router;
use switchyard_gateway::spec::{IssuerSpec, JwtSpec, KeyMaterial, KeySpec, RouteSpec};

const RS_KEY: &[u8] = include_bytes!("../tests/it/keys/rs.key");
const RS_PUB: &[u8] = include_bytes!("../tests/it/keys/rs.pub");
const ES_KEY: &[u8] = include_bytes!("../tests/it/keys/es.key");
const ES_PUB: &[u8] = include_bytes!("../tests/it/keys/es.pub");
const ED_KEY: &[u8] = include_bytes!("../tests/it/keys/ed.key");
const ED_PUB: &[u8] = include_bytes!("../tests/it/keys/ed.pub");
const SECRET: &[u8] = b"bench-secret-0123456789abcdef";

fn routes() -> Vec<RouteSpec> {
    let mut v = Vec::new();
    for (name, path, prefix) in [
        ("users-v1", "/v1/users/{id}", false),
        ("users-v2", "/v2/users/{id}", false),
        ("orders", "/v1/orders", true),
        ("payments", "/v1/payments", false),
        ("cart", "/v1/cart", true),
        ("admin", "/v1/admin", true),
        ("home", "/v1/home", false),
        ("health", "/healthz", false),
    ] {
        let mut r = RouteSpec::new(name, path, prefix, "svc");
        r.methods = vec![Method::GET];
        v.push(r);
    }
    v
}

fn bench_router(c: &mut Criterion) {
    let router = Router::new(&routes());
    let h = HeaderMap::new();
    c.bench_function("route_match/param", |b| {
        b.iter(|| {
            router.lookup(
                Some("api.example.test"),
                black_box("/v2/users/42"),
                &Method::GET,
                &h,
            )
        })
    });
    c.bench_function("route_match/prefix_deep", |b| {
        b.iter(|| router.lookup(None, black_box("/v1/orders/1001/items"), &Method::GET, &h))
    });
    c.bench_function("route_match/miss_404", |b| {
        b.iter(|| router.lookup(None, black_box("/v3/nothing/here"), &Method::GET, &h))
    });
    c.bench_function("path_normalize/clean", |b| {
        b.iter(|| switchyard_gateway::path::normalize(black_box("/v1/users/42")).map(|c| c.len()))
    });
    c.bench_function("path_normalize/tricky", |b| {
        b.iter(|| {
            switchyard_gateway::path::normalize(black_box("/v1/%61dmin/../users/./x"))
                .map(|c| c.len())
        })
    });
}

fn bench_json(c: &mut Criterion) {
    let user = json!({"id": "alice", "name": "Alice", "email": "a@x", "address": {"city": "X", "zip": "1"}});
    let orders = json!({"recent": (0..10).map(|i| json!({"id": i, "total": i * 3, "lines": [1, 2, 3]})).collect::<Vec<_>>()});
    let cart = json!({"count": 2, "items": [{"sku": 1}, {"sku": 2}]});
    c.bench_function("json_merge/3_parts", |b| {
        b.iter(|| {
            switchyard_gateway::json::merge(vec![
                ("user".into(), user.clone()),
                ("orders".into(), orders.clone()),
                ("cart".into(), cart.clone()),
            ])
        })
    });
    let merged = switchyard_gateway::json::merge(vec![
        ("user".into(), user),
        ("orders".into(), orders),
        ("cart".into(), cart),
    ]);
    let allow =
        switchyard_gateway::json::AllowList::new(&["user.name", "orders.recent.id", "cart.count"]);
    c.bench_function("json_trim/mobile_allow_list", |b| {
        b.iter(|| allow.trim(merged.clone()))
    });
}

fn bench_jwt(c: &mut Criterion) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({"sub": "bench", "roles": ["customer"], "iss": "b", "aud": "b", "exp": now + 3600});
    let keys = [
        (
            Algorithm::HS256,
            "hs",
            KeyMaterial::Secret(SECRET.to_vec()),
            EncodingKey::from_secret(SECRET),
        ),
        (
            Algorithm::RS256,
            "rs",
            KeyMaterial::PublicPem(RS_PUB.to_vec()),
            EncodingKey::from_rsa_pem(RS_KEY).unwrap(),
        ),
        (
            Algorithm::ES256,
            "es",
            KeyMaterial::PublicPem(ES_PUB.to_vec()),
            EncodingKey::from_ec_pem(ES_KEY).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            "ed",
            KeyMaterial::PublicPem(ED_PUB.to_vec()),
            EncodingKey::from_ed_pem(ED_KEY).unwrap(),
        ),
    ];
    let spec = JwtSpec {
        issuers: vec![IssuerSpec {
            issuer: Some("b".into()),
            audiences: vec!["b".into()],
            keys: keys
                .iter()
                .map(|(alg, kid, m, _)| KeySpec {
                    kid: Some(kid.to_string()),
                    alg: *alg,
                    material: m.clone(),
                })
                .collect(),
            jwks_files: vec![],
            jwks_url: None,
            jwks_min_refresh: Duration::from_secs(10),
            signing: None,
        }],
        ..JwtSpec::default()
    };
    let set = KeySet::from_spec(&spec).unwrap();
    let cache = VerifyCache::new(1024);
    for (alg, kid, _, enc) in &keys {
        let mut h = Header::new(*alg);
        h.kid = Some(kid.to_string());
        let token = jsonwebtoken::encode(&h, &claims, enc).unwrap();
        c.bench_function(&format!("jwt_verify/{alg:?}/cold"), |b| {
            b.iter(|| set.verify(black_box(&token), "roles", 30).unwrap())
        });
        let id = std::sync::Arc::new(set.verify(&token, "roles", 30).unwrap());
        cache.put(&token, id, now);
        c.bench_function(&format!("jwt_verify/{alg:?}/cached"), |b| {
            b.iter(|| cache.get(black_box(&token), now).unwrap())
        });
    }
}

criterion_group!(benches, bench_router, bench_json, bench_jwt);
criterion_main!(benches);
