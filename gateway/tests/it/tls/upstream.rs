//! Upstream TLS: a service whose instances speak TLS is called over TLS, its certificate
//! verified against the service's CA, with the service's `server_name` as SNI (else the
//! instance's IP address, which the certificate must then carry). A certificate from another CA
//! or for another name is a 502; nothing is sent to such an instance.

use super::{issue, tmpdir};
use crate::harness::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use switchyard_config::tls::CertFile;
use switchyard_gateway::spec::{Policy, UpstreamTlsSpec};
use switchyard_tls::demo::DemoCa;
use switchyard_tls::rustls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS instance on 127.0.0.1:0 answering every request with the SNI it was reached by and
/// the request path (keep-alive unless asked to close); the count of requests it received and of TLS handshakes.
async fn tls_instance(cert: &CertFile) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(switchyard_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let handshakes = Arc::new(AtomicUsize::new(0));
    let (count, hs) = (served.clone(), handshakes.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (acceptor, count, hs) = (acceptor.clone(), count.clone(), hs.clone());
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                hs.fetch_add(1, Ordering::SeqCst);
                let sni = s.get_ref().1.server_name().map(str::to_string);
                // bodiless requests, one after another on the connection
                loop {
                    let mut buf = vec![0u8; 8192];
                    let mut have = 0;
                    while !buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf[have..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => have += n,
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let head = String::from_utf8_lossy(&buf[..have]);
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let body = json!({ "sni": sni, "path": path }).to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err()
                        || head.to_ascii_lowercase().contains("connection: close")
                    {
                        let _ = s.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    (addr, served, handshakes)
}

/// One test's files: a CA (`ca.pem`), a second CA that signed nothing here (`other.pem`), and a
/// running TLS instance whose certificate the first CA issued for `orders.internal` and
/// 127.0.0.1.
struct Fixture {
    dir: std::path::PathBuf,
    ca_file: std::path::PathBuf,
    other_file: std::path::PathBuf,
    inst: SocketAddr,
    served: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
}

async fn fixture(tag: &str) -> Fixture {
    let dir = tmpdir(tag);
    let ca = DemoCa::create("upstream test CA").unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let other_file = dir.join("other.pem");
    std::fs::write(
        &other_file,
        DemoCa::create("another CA").unwrap().cert_pem(),
    )
    .unwrap();
    let cert = issue(&ca, &dir, "orders", &["orders.internal", "127.0.0.1"]);
    let (inst, served, handshakes) = tls_instance(&cert).await;
    Fixture {
        dir,
        ca_file,
        other_file,
        inst,
        served,
        handshakes,
    }
}

/// A gateway with `/orders` going to the TLS instance at `inst`, verified with `ca`.
async fn gateway_to(inst: SocketAddr, ca: &Path, server_name: Option<&str>) -> Gw {
    gateway(spec_to(inst, ca, server_name)).await
}

fn spec_to(
    inst: SocketAddr,
    ca: &Path,
    server_name: Option<&str>,
) -> switchyard_gateway::spec::GatewaySpec {
    let mut spec = base_spec();
    let mut svc = service("orders", &[(inst, "a")]);
    svc.tls = Some(UpstreamTlsSpec::load(ca, server_name.map(str::to_string)).unwrap());
    spec.services.push(svc);
    spec.routes
        .push(route("orders", "/orders", true, "orders", Policy::Public));
    spec
}

async fn get(gw: &Gw) -> Resp {
    raw(
        gw.addr,
        b"GET /orders/7 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await
}

#[tokio::test]
async fn instances_are_called_over_tls_verified_with_the_service_ca() {
    let Fixture {
        dir,
        ca_file,
        other_file,
        inst,
        served,
        ..
    } = fixture("upstream").await;

    // with a server name: sent as SNI and verified; without: the instance's IP is verified
    // (an IP address is never sent as SNI)
    for (name, sni) in [
        (Some("orders.internal"), json!("orders.internal")),
        (None, Value::Null),
    ] {
        let gw = gateway_to(inst, &ca_file, name).await;
        let r = get(&gw).await;
        assert_eq!(r.status, 200, "{name:?}: {:?}", r.body);
        assert_eq!(r.json()["sni"], sni, "{name:?}");
        assert!(
            r.json()["path"].as_str().unwrap().ends_with("/7"),
            "{:?}",
            r.body
        );
    }
    assert_eq!(served.load(Ordering::SeqCst), 2);

    // a CA that did not sign the instance's certificate, or a name it does not carry: 502,
    // and the instance never sees the request
    for (ca, name) in [
        (&other_file, Some("orders.internal")),
        (&ca_file, Some("payments.internal")),
    ] {
        let gw = gateway_to(inst, ca, name).await;
        let r = get(&gw).await;
        assert_eq!(r.status, 502, "{ca:?} {name:?}: {:?}", r.body);
    }
    assert_eq!(served.load(Ordering::SeqCst), 2);

    // a CA file that is not PEM is refused with its name
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let e = UpstreamTlsSpec::load(&bad, None).unwrap_err();
    assert!(e.contains("bad.pem: no CERTIFICATE block"), "{e}");
    let e = UpstreamTlsSpec::load(&dir.join("missing.pem"), None).unwrap_err();
    assert!(e.contains("missing.pem: cannot read"), "{e}");
}

/// An `http` health check of a TLS service speaks HTTPS, verified like the calls: the world's
/// check becomes `https`, and the probe passes against the instance only with the right CA and
/// name.
#[tokio::test]
async fn an_http_check_of_a_tls_service_is_made_over_tls() {
    use switchyard_balance::health::check::{probe, CheckTls};
    use switchyard_balance::CheckKind;
    let Fixture {
        ca_file,
        other_file,
        inst,
        served,
        ..
    } = fixture("upstream-check").await;

    // the world: the demo's `order` service with `tls`, its http check turned into https
    let src = switchyard_config::demo_toml().replacen(
        "name = \"order\"\n",
        &format!(
            "name = \"order\"\ntls = {{ ca = {:?}, server_name = \"orders.internal\" }}\n",
            ca_file.display().to_string()
        ),
        1,
    );
    let world = switchyard_config::parse_str(&src, "t.toml").unwrap();
    let spec = switchyard_gateway::GatewaySpec::from_world(&world).unwrap();
    let order = spec.services.iter().find(|s| s.name == "order").unwrap();
    let check = order.check.as_ref().unwrap();
    assert_eq!(check.kind_name(), "https");
    assert!(spec.services.iter().filter(|s| s.name != "order").all(|s| s
        .check
        .as_ref()
        .unwrap()
        .kind_name()
        == "http"));

    let http = CheckKind::Http {
        method: "GET".into(),
        path: "/healthz".into(),
        host: None,
        expect_status: 200..=399,
        body_contains: Some("orders.internal".into()),
    };
    let over = |ca_file: &Path, name: Option<&str>| CheckKind::Tls {
        tls: CheckTls {
            config: UpstreamTlsSpec::load(ca_file, None).unwrap().config,
            server_name: name.map(|n| n.to_string().try_into().unwrap()),
            ca: ca_file.to_path_buf(),
        },
        inner: Box::new(http.clone()),
    };
    probe(inst, &over(&ca_file, Some("orders.internal")))
        .await
        .unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 1);
    for (ca, name) in [
        (&other_file, Some("orders.internal")),
        (&ca_file, Some("payments.internal")),
    ] {
        let e = probe(inst, &over(ca, name)).await.unwrap_err();
        assert!(e.starts_with("tls: "), "{e}");
    }
    // plain HTTP to the TLS port fails, as it did before the check knew TLS
    assert!(probe(inst, &http).await.is_err());
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

/// A reload that reads the same CA keeps the service's pooled TLS connections: no new
/// handshake with the instance for the requests after it.
#[tokio::test]
async fn a_reload_keeps_the_pooled_tls_connections() {
    let f = fixture("upstream-reload").await;
    let gw = gateway_to(f.inst, &f.ca_file, Some("orders.internal")).await;
    // one keep-alive client connection: it lives on one worker, and so does the pooled one
    let mut c = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    let mut ask = async |c: &mut tokio::net::TcpStream| {
        c.write_all(b"GET /orders/7 HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (status, body) = read_one(c, &mut buf).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"path\":\"/orders/7\""), "{body}");
    };
    for _ in 0..3 {
        ask(&mut c).await;
    }
    assert_eq!(f.handshakes.load(Ordering::SeqCst), 1);
    // the same world read again (the CA file re-read, a new TLS configuration built)
    gw.handle
        .reload_spec(spec_to(f.inst, &f.ca_file, Some("orders.internal")))
        .await
        .unwrap();
    for _ in 0..3 {
        ask(&mut c).await;
    }
    assert_eq!(f.served.load(Ordering::SeqCst), 6);
    assert_eq!(
        f.handshakes.load(Ordering::SeqCst),
        1,
        "a reload cost a handshake"
    );
    // another CA (by content) is another client: a new handshake, to a verified instance
    let ca_copy = f.dir.join("ca-copy.pem");
    let mut pem = std::fs::read_to_string(&f.ca_file).unwrap();
    pem.push_str("\n# the same CA, another file content\n");
    std::fs::write(&ca_copy, pem).unwrap();
    gw.handle
        .reload_spec(spec_to(f.inst, &ca_copy, Some("orders.internal")))
        .await
        .unwrap();
    ask(&mut c).await;
    assert_eq!(f.handshakes.load(Ordering::SeqCst), 2);
}
