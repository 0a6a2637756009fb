//! curl over HTTPS, HTTP/1.1 and HTTP/2 (ALPN), through JWT, roles and a composition; what the
//! instance sees (`X-Forwarded-Proto: https`, never the client's copy); HSTS; the cleartext
//! listener of the same instance unchanged.

use std::time::Duration;

use super::*;
use serde_json::Value;
use switchyard_gateway::spec::{Action, CompositionSpec, PartSpec};

/// curl to `https://api.example.test:PORT{path}` pinned to the TLS listener; returns (HTTP
/// version, status, headers, body).
async fn curl(
    w: &TlsWorld,
    version: &str,
    path: &str,
    headers: &[&str],
) -> (String, u16, String, String) {
    let port = w.tls_addr.port();
    let resolve = format!("api.example.test:{port}:127.0.0.1");
    let url = format!("https://api.example.test:{port}{path}");
    let mut args = vec![
        "-sS",
        version,
        "--cacert",
        w.ca_file.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-D",
        "-",
        "-w",
        "\n%{http_version} %{http_code}",
        &url,
    ];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    let (ok, out, err) = run("curl", &args, b"").await;
    assert!(ok, "curl failed: {err}");
    let (rest, last) = out.rsplit_once('\n').unwrap();
    let (v, code) = last.split_once(' ').unwrap();
    let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (
        v.to_string(),
        code.parse().unwrap(),
        head.to_ascii_lowercase(),
        body.to_string(),
    )
}

#[tokio::test]
async fn curl_http1_and_http2_through_jwt_roles_and_composition() {
    let w = world("https", |spec, _, _| {
        spec.compositions.push(CompositionSpec {
            name: "both".into(),
            deadline: Duration::from_secs(2),
            parts: vec![PartSpec {
                name: "me".into(),
                service: "svc".into(),
                path: "/me/{sub}".into(),
                key: "me".into(),
                required: true,
                timeout: Duration::from_secs(1),
                depends_on: None,
            }],
        });
        let mut r = route("both", "/both", false, "svc", roles_any(&["admin"]));
        r.action = Action::Compose("both".into());
        spec.routes.push(r);
    })
    .await;
    let admin = format!("Authorization: Bearer {}", token("alice", &["admin"]));
    let viewer = format!("Authorization: Bearer {}", token("bob", &["viewer"]));
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (v, code, head, body) = curl(
            &w,
            flag,
            "/api/x",
            &[&admin, "X-Forwarded-Proto: gopher", "X-User-Id: mallory"],
        )
        .await;
        assert_eq!((v.as_str(), code), (version, 200), "{flag}: {head}{body}");
        let b: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(b["proto"], "https", "{flag}: the client's copy is replaced");
        assert_eq!(b["user"], "alice", "{flag}");
        assert_eq!(b["roles"], "admin", "{flag}");
        assert!(
            b["forwarded"].as_str().unwrap().ends_with(";proto=https"),
            "{b}"
        );
        assert!(
            head.contains("strict-transport-security: max-age=86400"),
            "{head}"
        );
        let (_, code, _, _) = curl(&w, flag, "/api/x", &[]).await;
        assert_eq!(code, 401, "{flag}: no token");
        let (_, code, _, _) = curl(&w, flag, "/api/x", &[&viewer]).await;
        assert_eq!(code, 403, "{flag}: wrong role");
        let (v, code, _, body) = curl(&w, flag, "/both", &[&admin]).await;
        assert_eq!((v.as_str(), code), (version, 200), "{flag}: {body}");
        let b: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(b["me"]["path"], "/me/alice", "{flag}: {b}");
    }
    // the same instance's cleartext listener: http, no HSTS
    let r = get_auth(w.gw.addr, "/api/x", &token("alice", &["admin"])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["proto"], "http");
    assert!(r.header("strict-transport-security").is_none());
}

#[tokio::test]
async fn a_stalled_handshake_is_closed_and_plain_http_on_the_tls_port_fails() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = world("stall", |spec, _, _| {
        spec.instances[0]
            .tls
            .as_mut()
            .unwrap()
            .tls
            .handshake_timeout = Duration::from_millis(300);
    })
    .await;
    // a client that connects and says nothing is closed after the handshake timeout
    let mut s = tokio::net::TcpStream::connect(w.tls_addr).await.unwrap();
    let mut buf = [0u8; 64];
    let t = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed by the handshake timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    // cleartext HTTP on the TLS port gets no HTTP answer
    let mut s = tokio::net::TcpStream::connect(w.tls_addr).await.unwrap();
    s.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(!out.starts_with(b"HTTP/"), "{out:?}");
}

#[tokio::test]
async fn the_redirect_listener_sends_every_request_to_https() {
    // a free port for the redirect listener (it has no port-0 accessor)
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redirect: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let w = world("redirect", |spec, _, _| {
        spec.instances[0].tls.as_mut().unwrap().redirect_listen = Some(redirect);
    })
    .await;
    let r = raw(
        redirect,
        b"GET /api/x?y=1 HTTP/1.1\r\nHost: api.example.test:8080\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 308);
    let want = format!("https://api.example.test:{}/api/x?y=1", w.tls_addr.port());
    assert_eq!(r.header("location"), Some(want.as_str()));
    // a hostile Host does not reach the Location header
    let r = raw(redirect, b"GET / HTTP/1.1\r\nHost: evil\"x\r\n\r\n").await;
    assert!(
        r.header("location").is_none_or(|l| !l.contains('"')),
        "{r:?}"
    );
}
