//! [`KeySet::verify`] table-driven, without sockets: every accepted and rejected shape with the
//! exact reason (the socket tests in `tests/it/jwt.rs` keep the 401 / `WWW-Authenticate` shape).

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::spec::{IssuerSpec, JwtSpec, KeyMaterial, KeySpec};

const HS: &[u8] = b"unit-secret-0123456789abcdef0123456789";
const RS_KEY: &[u8] = include_bytes!("../../tests/it/keys/rs.key");
const RS_PUB: &[u8] = include_bytes!("../../tests/it/keys/rs.pub");
const ES_KEY: &[u8] = include_bytes!("../../tests/it/keys/es.key");
const ES_PUB: &[u8] = include_bytes!("../../tests/it/keys/es.pub");
const ED_KEY: &[u8] = include_bytes!("../../tests/it/keys/ed.key");
const ED_PUB: &[u8] = include_bytes!("../../tests/it/keys/ed.pub");
const LEEWAY: u64 = 30;

fn keyset() -> KeySet {
    let key = |kid: &str, alg, material| KeySpec {
        kid: Some(kid.into()),
        alg,
        material,
    };
    let spec = JwtSpec {
        issuers: vec![IssuerSpec {
            issuer: Some("iss".into()),
            audiences: vec!["aud".into()],
            keys: vec![
                key("hs", Algorithm::HS256, KeyMaterial::Secret(HS.to_vec())),
                key(
                    "rs",
                    Algorithm::RS256,
                    KeyMaterial::PublicPem(RS_PUB.to_vec()),
                ),
                key(
                    "es",
                    Algorithm::ES256,
                    KeyMaterial::PublicPem(ES_PUB.to_vec()),
                ),
                key(
                    "ed",
                    Algorithm::EdDSA,
                    KeyMaterial::PublicPem(ED_PUB.to_vec()),
                ),
            ],
            jwks_files: vec![],
            jwks_url: None,
            jwks_min_refresh: Duration::from_secs(1),
            signing: None,
        }],
        leeway: Duration::from_secs(LEEWAY),
        ..JwtSpec::default()
    };
    KeySet::from_spec(&spec).unwrap()
}

fn now() -> i64 {
    unix_now() as i64
}

fn claims() -> Value {
    json!({"sub": "alice", "roles": ["customer"], "iss": "iss", "aud": "aud",
           "iat": now(), "exp": now() + 600})
}

fn sign_with(alg: Algorithm, kid: Option<&str>, c: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RS_KEY).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(ES_KEY).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_KEY).unwrap(),
        _ => unreachable!(),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, c, &key).unwrap()
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims();
    f(&mut c);
    c
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn verify_table() {
    let hs = |c: &Value| sign_with(Algorithm::HS256, Some("hs"), c);
    let rs_token = sign_with(Algorithm::RS256, Some("rs"), &claims());
    let rs_parts: Vec<&str> = rs_token.split('.').collect();
    // an HS256 token "signed" with the RS256 public key as secret (key confusion)
    let confused = jsonwebtoken::encode(
        &{
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("rs".into());
            h
        },
        &claims(),
        &EncodingKey::from_secret(RS_PUB),
    )
    .unwrap();
    // one character in the middle of the signature changed (the last one may not decode)
    let good = hs(&claims());
    let mid = good.rfind('.').unwrap() + 20;
    let c = if &good[mid..=mid] == "A" { "B" } else { "A" };
    let flipped = format!("{}{c}{}", &good[..mid], &good[mid + 1..]);
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "hs"})),
        b64(&claims())
    );
    let cases: Vec<(&str, String, Result<(), AuthError>)> = vec![
        ("HS256", hs(&claims()), Ok(())),
        ("RS256", rs_token.clone(), Ok(())),
        (
            "ES256",
            sign_with(Algorithm::ES256, Some("es"), &claims()),
            Ok(()),
        ),
        (
            "EdDSA",
            sign_with(Algorithm::EdDSA, Some("ed"), &claims()),
            Ok(()),
        ),
        (
            "no kid: tried by algorithm",
            sign_with(Algorithm::ES256, None, &claims()),
            Ok(()),
        ),
        (
            "expired within leeway",
            hs(&with(|c| c["exp"] = json!(now() - 5))),
            Ok(()),
        ),
        // "none" is not an algorithm jsonwebtoken knows: the header itself does not parse
        ("alg none", none, Err(AuthError::Malformed)),
        ("HS/RS confusion", confused, Err(AuthError::Algorithm)),
        (
            "unknown kid",
            sign_with(Algorithm::HS256, Some("zz"), &claims()),
            Err(AuthError::UnknownKid),
        ),
        ("bad signature", flipped, Err(AuthError::BadSignature)),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                rs_parts[0],
                b64(&with(|c| c["roles"] = json!(["admin"]))),
                rs_parts[2]
            ),
            Err(AuthError::BadSignature),
        ),
        (
            "expired",
            hs(&with(|c| c["exp"] = json!(now() - 120))),
            Err(AuthError::Expired),
        ),
        (
            "not yet valid",
            hs(&with(|c| c["nbf"] = json!(now() + 300))),
            Err(AuthError::NotYetValid),
        ),
        (
            "wrong issuer",
            hs(&with(|c| c["iss"] = json!("evil"))),
            Err(AuthError::Issuer),
        ),
        (
            "missing issuer",
            hs(&with(|c| {
                c.as_object_mut().unwrap().remove("iss");
            })),
            Err(AuthError::Issuer),
        ),
        (
            "wrong audience",
            hs(&with(|c| c["aud"] = json!("other"))),
            Err(AuthError::Audience),
        ),
        (
            "missing exp",
            hs(&with(|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            Err(AuthError::Malformed),
        ),
        ("garbage", "not.a.jwt".into(), Err(AuthError::Malformed)),
        (
            "missing sub",
            hs(&with(|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
            Err(AuthError::Subject),
        ),
        (
            "numeric sub",
            hs(&with(|c| c["sub"] = json!(7))),
            Err(AuthError::Subject),
        ),
        (
            "empty sub",
            hs(&with(|c| c["sub"] = json!(""))),
            Err(AuthError::Subject),
        ),
        (
            "CRLF in sub",
            hs(&with(|c| c["sub"] = json!("a\r\nX-Admin: 1"))),
            Err(AuthError::Subject),
        ),
        (
            "comma in a role",
            hs(&with(|c| c["roles"] = json!(["x,admin"]))),
            Err(AuthError::Roles),
        ),
        (
            "non-string role",
            hs(&with(|c| c["roles"] = json!(["a", 1]))),
            Err(AuthError::Roles),
        ),
        (
            "roles an object",
            hs(&with(|c| c["roles"] = json!({"a": 1}))),
            Err(AuthError::Roles),
        ),
    ];
    let keys = keyset();
    let wrong: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, token, want)| {
            let got = keys.verify(&token, "roles", LEEWAY).map(|_| ());
            (got != want).then(|| format!("{name}: got {got:?}, want {want:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn identity_carries_subject_roles_and_headers() {
    let keys = keyset();
    let t = sign_with(
        Algorithm::HS256,
        Some("hs"),
        &with(|c| c["scope"] = json!("read write")),
    );
    let id = keys.verify(&t, "roles", LEEWAY).unwrap();
    assert_eq!(id.sub, "alice");
    assert_eq!(id.roles, vec!["customer"]);
    assert_eq!(id.sub_header, "alice");
    assert_eq!(id.roles_header, "customer");
    // a space-separated scope claim works as the roles claim
    let id = keys.verify(&t, "scope", LEEWAY).unwrap();
    assert_eq!(id.roles, vec!["read", "write"]);
    assert_eq!(id.roles_header, "read,write");
}

#[test]
fn cache_serves_until_expiry_and_stays_bounded() {
    let keys = keyset();
    let cache = VerifyCache::new(32);
    let t = sign_with(Algorithm::HS256, Some("hs"), &claims());
    let id = Arc::new(keys.verify(&t, "roles", LEEWAY).unwrap());
    let n = unix_now();
    cache.put(&t, id.clone(), n);
    assert!(cache.get(&t, n).is_some());
    // past exp + leeway it is not served
    assert!(cache.get(&t, n + 600 + LEEWAY + 1).is_none());
    for i in 0..1000 {
        let t = sign_with(
            Algorithm::HS256,
            Some("hs"),
            &with(|c| c["sub"] = json!(format!("u{i}"))),
        );
        cache.put(&t, Arc::new(keys.verify(&t, "roles", LEEWAY).unwrap()), n);
    }
    assert!(cache.len() <= 32 + 16, "{} entries", cache.len());
}
