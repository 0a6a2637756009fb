//! The gateway's TLS listener with real clients: curl (HTTP/1.1 and HTTP/2), `openssl s_client`
//! (SNI, ALPN, protocol versions), rustls and h2 clients (reload under load, HTTP/2 abuse).
//! Certificates come from a throw-away demo CA per test.

mod abuse;
mod https;
mod mtls;
mod reload;
mod sni;
mod testssl;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;
use switchyard_config::gateway::GatewayTls;
use switchyard_config::tls::{CertFile, Tls};
use switchyard_gateway::spec::GatewaySpec;
use switchyard_tls::demo::{DemoCa, IssueOptions};
use switchyard_tls::rustls;

/// A fresh folder for one test's files.
pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sy-gw-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Issues `names` from `ca` into `dir/{file}.pem` + `.key`.
pub fn issue(ca: &DemoCa, dir: &Path, file: &str, names: &[&str]) -> CertFile {
    let f = CertFile {
        cert: dir.join(format!("{file}.pem")),
        key: dir.join(format!("{file}.key")),
    };
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    ca.issue(&names, &IssueOptions::default())
        .unwrap()
        .write(&f.cert, &f.key)
        .unwrap();
    f
}

/// A TLS listener spec on 127.0.0.1:0 with these certificates.
pub fn tls_spec(certs: Vec<CertFile>) -> GatewayTls {
    GatewayTls {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Tls {
            certs,
            alpn: vec!["h2".into(), "http/1.1".into()],
            client_ca: None,
            handshake_timeout: Duration::from_secs(2),
            session_cache: 64,
            ticket_keys: None,
        },
        hsts: Some(Duration::from_secs(86400)),
        redirect_listen: None,
    }
}

/// A gateway with one upstream `svc` on `/api` (roles `admin`) and a TLS listener.
pub struct TlsWorld {
    pub dir: PathBuf,
    pub ca: DemoCa,
    pub ca_file: PathBuf,
    pub _up: Upstream,
    pub gw: Gw,
    pub tls_addr: SocketAddr,
}

pub async fn world(tag: &str, tweak: impl FnOnce(&mut GatewaySpec, &DemoCa, &Path)) -> TlsWorld {
    let dir = tmpdir(tag);
    let ca = DemoCa::create("gateway test CA").unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let cert = issue(&ca, &dir, "api", &["api.example.test", "127.0.0.1"]);
    let up = upstream_with(proto_echo(), "127.0.0.1:0".parse().unwrap(), "svc").await;
    let mut spec = base_spec();
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes
        .push(route("api", "/api", true, "svc", roles_any(&["admin"])));
    spec.instances[0].tls = Some(tls_spec(vec![cert]));
    tweak(&mut spec, &ca, &dir);
    let gw = gateway(spec).await;
    let tls_addr = gw.handle.local_tls_addr("gw").unwrap();
    TlsWorld {
        dir,
        ca,
        ca_file,
        _up: up,
        gw,
        tls_addr,
    }
}

/// The harness echo plus what TLS adds upstream.
pub fn proto_echo() -> Behaviour {
    let base = echo("svc");
    Arc::new(move |req| {
        let mut r = base(req);
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        r.body["proto"] = h("x-forwarded-proto").into();
        r.body["client_cert"] = h("x-client-cert-subject").into();
        r
    })
}

/// Runs a tool found on PATH (failing clearly when it is missing) and returns (success,
/// stdout, stderr).
pub async fn run(tool: &str, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{tool} is needed on PATH for this test (scripts/test installs it): {e}")
        });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("tool finished within 20 s")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A rustls client config trusting `ca_file`, offering `alpn`.
pub fn client_config(ca_file: &Path, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    switchyard_tls::server::client_config(
        ca_file,
        alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
    )
    .unwrap()
}

/// Connects with TLS to `addr` as `sni`.
pub async fn connect(
    cfg: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(name, tcp)
        .await
}

/// The SAN names of the certificate the server presented.
pub fn peer_names(s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<String> {
    let chain = s.get_ref().1.peer_certificates().unwrap();
    switchyard_tls::cert::inspect(Path::new("-"), &chain[0])
        .unwrap()
        .names
}
