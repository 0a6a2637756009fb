//! Certificates reload under steady HTTPS load: no request fails, new handshakes show the new
//! certificate; a broken file keeps the old certificate and the reload says which file and why.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request on a new TLS connection; returns the certificate names seen and the status line.
async fn one(
    cfg: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    token: &str,
) -> Result<(Vec<String>, String), String> {
    let mut s = connect(cfg, addr, "api.example.test")
        .await
        .map_err(|e| e.to_string())?;
    let names = peer_names(&s);
    let req = format!(
        "GET /api/x HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    let status = text.lines().next().unwrap_or("").to_string();
    Ok((names, status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_loses_nothing_and_a_broken_file_keeps_the_old_certificate() {
    let w = world("reload", |_, _, _| {}).await;
    // no resumption: a resumed session shows the certificate of its first handshake
    let mut c = (*client_config(&w.ca_file, &["http/1.1"])).clone();
    c.resumption = rustls::client::Resumption::disabled();
    let cfg = Arc::new(c);
    let tok = token("alice", &["admin"]);
    let cert = CertFile {
        cert: w.dir.join("api.pem"),
        key: w.dir.join("api.key"),
    };
    let (ok, failed, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(std::sync::Mutex::new(Vec::<String>::new())),
        Arc::new(AtomicBool::new(false)),
    );
    // steady load: 4 clients, a new connection per request, bounded in count and time
    let mut load = Vec::new();
    for _ in 0..4 {
        let (cfg, tok, ok, failed, stop) = (
            cfg.clone(),
            tok.clone(),
            ok.clone(),
            failed.clone(),
            stop.clone(),
        );
        let addr = w.tls_addr;
        load.push(tokio::spawn(async move {
            let t = Instant::now();
            for _ in 0..5000 {
                if stop.load(Ordering::Relaxed) || t.elapsed() > Duration::from_secs(30) {
                    break;
                }
                match one(&cfg, addr, &tok).await {
                    Ok((_, status)) if status == "HTTP/1.1 200 OK" => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((_, status)) => failed.lock().unwrap().push(status),
                    Err(e) => failed.lock().unwrap().push(e),
                }
            }
        }));
    }
    let wait_ok = |n: usize| {
        let ok = ok.clone();
        async move {
            let t = Instant::now();
            while ok.load(Ordering::Relaxed) < n && t.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_ok(20).await;
    // rotate: new certificate with an extra name (written beside and renamed, as tools do)
    let new_names = ["api.example.test", "127.0.0.1", "rotated.example.test"];
    issue(&w.ca, &w.dir, "api", &new_names);
    let t = Instant::now();
    loop {
        let (names, _) = one(&cfg, w.tls_addr, &tok).await.unwrap();
        if names == new_names {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "new handshakes still show {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at_rotation = ok.load(Ordering::Relaxed);
    wait_ok(at_rotation + 20).await;
    // broken: garbage in the key file; the poll and an explicit reload both keep the old one
    std::fs::write(
        &cert.key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = w.gw.handle.reload_certs().unwrap_err().to_string();
    assert!(err.contains(&cert.key.display().to_string()), "{err}");
    assert!(err.contains("gw"), "names the instance: {err}");
    tokio::time::sleep(Duration::from_millis(1500)).await; // at least one poll of the files
    let (names, status) = one(&cfg, w.tls_addr, &tok).await.unwrap();
    assert_eq!(names, new_names);
    assert_eq!(status, "HTTP/1.1 200 OK");
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.load(Ordering::Relaxed) >= at_rotation + 20);
    let status = w.gw.handle.tls_status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].certs[0].names, new_names);
}

#[tokio::test]
async fn a_second_connection_resumes_with_a_ticket() {
    let w = world("resume", |_, _, _| {}).await;
    let cfg = client_config(&w.ca_file, &["http/1.1"]);
    let tok = token("alice", &["admin"]);
    // the first connection reads its answer (and with it the server's tickets)
    let (_, status) = one(&cfg, w.tls_addr, &tok).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let s = connect(&cfg, w.tls_addr, "api.example.test").await.unwrap();
    assert_eq!(
        s.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    // and the resumed session serves requests too
    let (_, status) = one(&cfg, w.tls_addr, &tok).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
}

/// Gateways given the same ticket-key file (appliances behind one name) resume each other's
/// sessions; one with other keys makes a full handshake instead.
#[tokio::test]
async fn sessions_resume_across_gateways_that_share_ticket_keys() {
    use base64::Engine;
    let dir = tmpdir("ticket-keys");
    let ca = DemoCa::create("gateway test CA").unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let cert = issue(&ca, &dir, "api", &["api.example.test", "127.0.0.1"]);
    let b64 = |seed: u8| base64::engine::general_purpose::STANDARD.encode([seed; 48]);
    let shared = dir.join("shared.key");
    // the first key issues, the second (an older one) still opens
    std::fs::write(
        &shared,
        format!("# rotated 2026-12-04\n{}\n{}\n", b64(7), b64(6)),
    )
    .unwrap();
    let other = dir.join("other.key");
    std::fs::write(&other, format!("{}\n", b64(9))).unwrap();
    let up = upstream_with(proto_echo(), "127.0.0.1:0".parse().unwrap(), "svc").await;
    let start = |keys: &std::path::Path| {
        let mut spec = base_spec();
        spec.services.push(service("svc", &[(up.addr, "a")]));
        spec.routes
            .push(route("api", "/api", true, "svc", roles_any(&["admin"])));
        let mut tls = tls_spec(vec![cert.clone()]);
        tls.tls.ticket_keys = Some(keys.to_path_buf());
        spec.instances[0].tls = Some(tls);
        gateway(spec)
    };
    let a = start(&shared).await;
    let b = start(&shared).await;
    let c = start(&other).await;
    let addr = |g: &Gw| g.handle.local_tls_addr("gw").unwrap();
    let tok = token("alice", &["admin"]);
    let kind =
        |s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| s.get_ref().1.handshake_kind();

    let cfg = client_config(&ca_file, &["http/1.1"]);
    let (_, status) = one(&cfg, addr(&a), &tok).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let s = connect(&cfg, addr(&b), "api.example.test").await.unwrap();
    assert_eq!(kind(&s), Some(rustls::HandshakeKind::Resumed));

    let cfg = client_config(&ca_file, &["http/1.1"]);
    let (_, status) = one(&cfg, addr(&a), &tok).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let s = connect(&cfg, addr(&c), "api.example.test").await.unwrap();
    assert_eq!(kind(&s), Some(rustls::HandshakeKind::Full));
    // and the full handshake serves requests
    let (_, status) = one(&cfg, addr(&c), &tok).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
}

/// A broken ticket-key file is refused with the file and the line named.
#[tokio::test]
async fn a_broken_ticket_key_file_is_refused_by_name() {
    let dir = tmpdir("ticket-keys-bad");
    let ca = DemoCa::create("gateway test CA").unwrap();
    let cert = issue(&ca, &dir, "api", &["api.example.test"]);
    let bad = dir.join("bad.key");
    std::fs::write(&bad, "not a key\n").unwrap();
    let mut spec = base_spec();
    let mut tls = tls_spec(vec![cert]);
    tls.tls.ticket_keys = Some(bad.clone());
    spec.instances[0].tls = Some(tls);
    let stop = tokio_util::sync::CancellationToken::new();
    let err = switchyard_gateway::start_spec(spec, Default::default(), stop)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("line 1: not base64"),
        "{err}"
    );
}
