//! Identity and forwarding: what a client may not set, which tokens carry a usable identity, and
//! the two rate-limit stages.

use jsonwebtoken::Algorithm;
use serde_json::json;
use switchyard_gateway::spec::RateSpec;

use super::*;
use crate::recorder::OK;

fn request_with(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut r = String::from("GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Identity and forwarding headers set by the client never reach the instance, in any spelling
/// that a CGI/WSGI/Rack upstream reads as the same variable; method and URL override headers are
/// stripped too. The instance sees the gateway's values only.
#[tokio::test]
async fn client_cannot_set_identity_forwarding_or_override_headers() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Authenticated, |_| {}).await;
    let auth = format!("Bearer {}", token("alice", &["customer"]));
    let text = exchange(
        gw.addr,
        &request_with(&[
            ("Authorization", &auth),
            ("X-User-Id", "admin"),
            ("X_User_Id", "admin"),
            ("x-user_id", "admin"),
            ("X_USER_ROLES", "admin"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("X-Real-IP", "6.6.6.6"),
            ("X_Real_Ip", "6.6.6.6"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X_HTTP_Method_Override", "DELETE"),
            ("X-Method-Override", "DELETE"),
            ("X-HTTP-Method", "DELETE"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
        ]),
    )
    .await;
    assert_eq!(statuses(&text), vec![200], "{text}");
    let seen = &rec.seen()[0];
    assert_eq!(seen.spellings("x-user-id"), vec!["x-user-id"]);
    assert_eq!(seen.all("x-user-id"), vec!["alice"]);
    assert_eq!(seen.all("x-user-roles"), vec!["customer"]);
    assert_eq!(seen.spellings("x-user-roles").len(), 1);
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.spellings("x-forwarded-for").len(), 1);
    for gone in [
        "x-real-ip",
        "x-http-method-override",
        "x-method-override",
        "x-http-method",
        "x-original-url",
        "x-rewrite-url",
    ] {
        assert!(
            seen.spellings(gone).is_empty(),
            "{gone}: {:?}",
            seen.headers
        );
    }
}

/// A token needs a usable subject (a non-empty string without control characters, RFC 7519
/// §4.1.2) and roles that survive the comma-joined roles header: otherwise 401, nothing
/// forwarded.
#[tokio::test]
async fn tokens_without_a_usable_identity_are_refused() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Authenticated, |_| {}).await;
    let base = |sub: serde_json::Value, roles: serde_json::Value| {
        let mut c = claims("x", &[]);
        match sub {
            serde_json::Value::Null => {
                c.as_object_mut().unwrap().remove("sub");
            }
            s => c["sub"] = s,
        }
        c["roles"] = roles;
        sign(Algorithm::HS256, Some("hs"), &c)
    };
    let bad = [
        base(serde_json::Value::Null, json!(["customer"])),
        base(json!(42), json!(["customer"])),
        base(json!(""), json!(["customer"])),
        base(json!("eve\r\nX-User-Roles: admin"), json!(["customer"])),
        base(json!("eve"), json!(["x,admin"])),
        base(json!("eve"), json!(["ok", 7])),
        base(json!("eve"), json!([""])),
    ];
    for t in &bad {
        let r = get_auth(gw.addr, "/api/x", t).await;
        assert_eq!(r.status, 401, "{t}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }
    assert!(rec.seen().is_empty(), "{:?}", rec.seen());
    let good = base(json!("eve"), json!(["customer", "beta:tester"]));
    assert_eq!(get_auth(gw.addr, "/api/x", &good).await.status, 200);
    assert_eq!(
        rec.seen()[0].all("x-user-roles"),
        vec!["customer,beta:tester"]
    );
}

/// Stage 1 limits a client address before any signature check: 20 pipelined bad tokens get
/// `burst` 401s, then 429s. A verified subject has its own bucket (stage 2), and another address
/// is not affected.
#[tokio::test]
async fn bad_tokens_are_rate_limited_before_verification() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Authenticated, |s| {
        s.limits.rate = Some(RateSpec {
            per_second: 0.001,
            burst: 5,
        });
    })
    .await;
    let bad = format!("Bearer {}x", token("mallory", &[]));
    let mut pipelined = Vec::new();
    for i in 0..20 {
        let close = if i == 19 { "Connection: close\r\n" } else { "" };
        pipelined.extend_from_slice(
            format!("GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: {bad}\r\n{close}\r\n")
                .as_bytes(),
        );
    }
    let mut s = connect_from("127.0.0.1", gw.addr).await;
    s.write_all(&pipelined).await.unwrap();
    let (text, _) = read_until_close(&mut s, Duration::from_secs(5)).await;
    let got = statuses(&text);
    assert_eq!(got.len(), 20, "{text}");
    assert_eq!(got.iter().filter(|s| **s == 401).count(), 5, "{got:?}");
    assert_eq!(got.iter().filter(|s| **s == 429).count(), 15, "{got:?}");
    assert!(got[..5].iter().all(|s| *s == 401), "{got:?}");
    // another address, with a valid token: its subject's own bucket
    let ok = format!("Bearer {}", token("alice", &[]));
    for _ in 0..5 {
        let mut s = connect_from("127.0.0.2", gw.addr).await;
        s.write_all(&request_with(&[("Authorization", &ok)]))
            .await
            .unwrap();
        let (text, _) = read_until_close(&mut s, Duration::from_secs(3)).await;
        assert_eq!(statuses(&text), vec![200], "{text}");
    }
    let mut s = connect_from("127.0.0.2", gw.addr).await;
    s.write_all(&request_with(&[("Authorization", &ok)]))
        .await
        .unwrap();
    let (text, _) = read_until_close(&mut s, Duration::from_secs(3)).await;
    assert_eq!(statuses(&text), vec![429], "alice's 6th: {text}");
}

/// Through a trusted L4 hop (PROXY header) the client's own X-Forwarded-For is replaced, not
/// extended: the hop vouches for the address, not for the header.
#[tokio::test]
async fn xff_through_a_proxy_protocol_hop_is_replaced() {
    let rec = Recorder::start(OK).await;
    let gw = gateway_to(&rec, Policy::Public, |s| {
        s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let text = exchange(
        gw.addr,
        b"PROXY TCP4 127.0.0.241 127.0.1.1 40000 8080\r\nGET /api/x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), vec![200], "{text}");
    assert_eq!(rec.seen()[0].all("x-forwarded-for"), vec!["127.0.0.241"]);
}
