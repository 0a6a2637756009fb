//! Test harness: tiny upstream servers, a raw HTTP/1.1 client, token minting, a gateway builder.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use switchyard_balance::HealthRegistry;
use switchyard_gateway::spec::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub const HS_SECRET: &[u8] = b"test-secret-0123456789abcdef0123456789";
pub const RS_KEY: &[u8] = include_bytes!("keys/rs.key");
pub const RS_PUB: &[u8] = include_bytes!("keys/rs.pub");
pub const ES_KEY: &[u8] = include_bytes!("keys/es.key");
pub const ES_PUB: &[u8] = include_bytes!("keys/es.pub");
pub const ED_KEY: &[u8] = include_bytes!("keys/ed.key");
pub const ED_PUB: &[u8] = include_bytes!("keys/ed.pub");
pub const ISS: &str = "test-iss";
pub const AUD: &str = "test-aud";

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sign arbitrary claims with one of the test keys.
pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RS_KEY).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(ES_KEY).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_KEY).unwrap(),
        _ => unreachable!(),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

pub fn claims(sub: &str, roles: &[&str]) -> Value {
    json!({"sub": sub, "roles": roles, "iss": ISS, "aud": AUD, "iat": now(), "exp": now() + 600})
}

/// A valid HS256 token.
pub fn token(sub: &str, roles: &[&str]) -> String {
    sign(Algorithm::HS256, Some("hs"), &claims(sub, roles))
}

// ---------------------------------------------------------------------------------------------
// upstreams

/// What an upstream does for one request.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub delay: Duration,
}

pub type Behaviour = Arc<dyn Fn(&Request<Incoming>) -> Reply + Send + Sync>;

pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Upstream {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    /// Close the listener and every open connection.
    pub fn kill(&self) {
        self.stop.cancel();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn header_str(req: &Request<Incoming>, name: &str) -> Value {
    match req.headers().get(name).and_then(|v| v.to_str().ok()) {
        Some(s) => Value::String(s.to_string()),
        None => Value::Null,
    }
}

/// The default echo: who answered and what it saw.
pub fn echo(name: &str) -> Behaviour {
    let name = name.to_string();
    Arc::new(move |req| Reply {
        status: 200,
        body: json!({
            "service": name,
            "method": req.method().as_str(),
            "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            "user": header_str(req, "x-user-id"),
            "roles": header_str(req, "x-user-roles"),
            "xff": header_str(req, "x-forwarded-for"),
            "forwarded": header_str(req, "forwarded"),
            "request_id": header_str(req, "x-request-id"),
            "traceparent": header_str(req, "traceparent"),
        }),
        delay: Duration::ZERO,
    })
}

pub async fn upstream(name: &str) -> Upstream {
    upstream_with(echo(name), "127.0.0.1:0".parse().unwrap(), name).await
}

pub async fn upstream_with(b: Behaviour, addr: SocketAddr, name: &str) -> Upstream {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (h, s) = (hits.clone(), stop.clone());
    let name = name.to_string();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = s.cancelled() => return,
            };
            let (b, h, s, name) = (b.clone(), h.clone(), s.clone(), name.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let b = b.clone();
                    let name = name.clone();
                    h.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let reply = b(&req);
                        let _ = req.into_body().collect().await;
                        if !reply.delay.is_zero() {
                            tokio::time::sleep(reply.delay).await;
                        }
                        let mut r = Response::new(Full::new(Bytes::from(reply.body.to_string())));
                        *r.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                        r.headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        r.headers_mut().insert("x-backend", name.parse().unwrap());
                        Ok::<_, Infallible>(r)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = s.cancelled() => {}
                }
            });
        }
    });
    Upstream { addr, hits, stop }
}

// ---------------------------------------------------------------------------------------------
// raw HTTP client

/// A parsed response (the project's one HTTP/1 reader, from `switchyard-testkit`).
pub use switchyard_testkit::http::Response as Resp;

/// Send raw bytes, read until the server closes (or 5 s), parse the first response.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_response(&mut s).await
}

/// One message head (bodyless requests and responses only), `None` at EOF.
pub async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Read one response with a `Content-Length` body from a keep-alive connection.
pub async fn read_one(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String) {
    let head = tokio::time::timeout(std::time::Duration::from_secs(5), read_head(s, buf))
        .await
        .expect("response in time")
        .expect("a response before EOF");
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("content-length");
    while buf.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "EOF inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[..len]).to_string();
    buf.drain(..len);
    (status, body)
}

pub async fn read_response(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    parse(&buf)
}

pub fn parse(buf: &[u8]) -> Resp {
    switchyard_testkit::http::parse_response(buf).unwrap_or_else(|| Resp {
        status: 0,
        headers: vec![],
        body: String::from_utf8_lossy(buf).to_string(),
    })
}

/// GET with extra headers (`Connection: close`).
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", path, headers, "").await
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    raw(addr, req.as_bytes()).await
}

pub async fn get_auth(addr: SocketAddr, path: &str, token: &str) -> Resp {
    let h = format!("Bearer {token}");
    get(addr, path, &[("Authorization", &h)]).await
}

// ---------------------------------------------------------------------------------------------
// gateway

pub fn service(name: &str, addrs: &[(SocketAddr, &str)]) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        policy: switchyard_balance::Policy::RoundRobin,
        check: None,
        passive: switchyard_balance::PassiveSpec {
            consecutive_failures: 1,
            ejection: Duration::from_secs(30),
            max_ejected_percent: 100,
        },
        remote_instances: true,
        tls: None,
        instances: addrs
            .iter()
            .enumerate()
            .map(|(i, (a, az))| ServiceInstanceSpec {
                name: format!("{name}-{i}"),
                addr: *a,
                region: "r1".into(),
                az: az.to_string(),
                weight: 1,
            })
            .collect(),
    }
}

pub fn route(name: &str, path: &str, prefix: bool, service: &str, policy: Policy) -> RouteSpec {
    let mut r = RouteSpec::new(name, path, prefix, service);
    r.policy = policy;
    r
}

pub fn roles_any(r: &[&str]) -> Policy {
    Policy::Roles {
        any: r.iter().map(|s| s.to_string()).collect(),
        all: vec![],
    }
}

/// A spec with one instance on 127.0.0.1:0, all four key types, issuer and audience checks.
pub fn base_spec() -> GatewaySpec {
    let mut spec = GatewaySpec::empty();
    spec.instances.push(InstanceSpec {
        name: "gw".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        region: "r1".into(),
        az: "a".into(),
        tls: None,
    });
    spec.jwt.issuers.push(IssuerSpec {
        issuer: Some(ISS.into()),
        audiences: vec![AUD.into()],
        keys: vec![
            KeySpec {
                kid: Some("hs".into()),
                alg: Algorithm::HS256,
                material: KeyMaterial::Secret(HS_SECRET.to_vec()),
            },
            KeySpec {
                kid: Some("rs".into()),
                alg: Algorithm::RS256,
                material: KeyMaterial::PublicPem(RS_PUB.to_vec()),
            },
            KeySpec {
                kid: Some("es".into()),
                alg: Algorithm::ES256,
                material: KeyMaterial::PublicPem(ES_PUB.to_vec()),
            },
            KeySpec {
                kid: Some("ed".into()),
                alg: Algorithm::EdDSA,
                material: KeyMaterial::PublicPem(ED_PUB.to_vec()),
            },
        ],
        jwks_files: vec![],
        jwks_url: None,
        jwks_min_refresh: Duration::from_millis(200),
        signing: None,
    });
    spec.upstream.timeout = Duration::from_secs(2);
    spec.upstream.connect_timeout = Duration::from_millis(300);
    spec
}

pub struct Gw {
    pub addr: SocketAddr,
    pub handle: switchyard_gateway::Handle,
    pub stop: CancellationToken,
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn gateway(spec: GatewaySpec) -> Gw {
    gateway_with(spec, HealthRegistry::new()).await
}

pub async fn gateway_with(spec: GatewaySpec, registry: HealthRegistry) -> Gw {
    let stop = CancellationToken::new();
    let handle = switchyard_gateway::start_spec(spec, registry, stop.clone())
        .await
        .unwrap();
    let addr = handle.local_addr("gw").unwrap();
    Gw { addr, handle, stop }
}

/// One upstream "svc" and a gateway routing `/api` (prefix) to it with the given policy.
pub async fn simple(policy: Policy) -> (Upstream, Gw) {
    let up = upstream("svc").await;
    let mut spec = base_spec();
    spec.services.push(service("svc", &[(up.addr, "a")]));
    spec.routes.push(route("api", "/api", true, "svc", policy));
    let gw = gateway(spec).await;
    (up, gw)
}
