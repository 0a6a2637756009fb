//! The request pipeline, in three steps: [`route`] (host rules, path normalisation, CORS
//! preflight, the router, the gateway's own `/healthz`) → [`admit`] (two-stage rate limit,
//! authentication, authorization, the body within its limits and deadline) → [`forward`]
//! (device profile, identity and forwarding headers, proxy or compose). Every failure becomes a
//! status in these steps, with a small JSON body that never carries key material or internals;
//! [`handle`] adds the request id, CORS and the access log line.
//!
//! ## Layout
//! - `mod.rs`: the connection and instance context, [`handle`], the step order;
//! - `route.rs`, `admit.rs`, `forward.rs`: the three steps;
//! - `headers.rs`: header rules (hop-by-hop, protected spellings, Host, forwarding, request id);
//! - `body.rs`: reading a request body within its size and deadline.

// Early returns carry the finished error response (`Err(Response)`), axum style.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use crate::runtime::Runtime;

/// Response body: a buffered one (the gateway's own or a trimmed one) or an instance's streamed
/// through.
pub type Body = Either<Full<Bytes>, Incoming>;

/// The gateway instance a connection arrived on.
pub struct InstanceCtx {
    /// Instance name (access log, `/healthz`).
    pub name: String,
    /// This worker thread's pooled upstream client.
    pub http: crate::upstream::HttpClient,
    /// The instance's region, choosing which upstreams are local (`None`: no preference).
    pub region: Option<String>,
    /// The instance's availability zone (`/healthz`).
    pub az: String,
    /// Requests in flight on this instance (`max_concurrent_requests`; none left: 503).
    pub concurrency: Arc<Semaphore>,
    /// Per-client-address connection and request counts of this instance.
    pub clients: Arc<crate::clients::ClientTable>,
}

/// Who is on the other end of a connection.
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The real client (from a trusted PROXY header, else the peer).
    pub client: SocketAddr,
    /// `client`'s address as header text, rendered once per connection (X-Forwarded-For,
    /// Forwarded).
    pub client_ip: http::HeaderValue,
    /// The client is a trusted HTTP forwarder (its X-Forwarded-For is extended, not replaced).
    pub xff_trusted: bool,
    /// The connection can be taken over by a WebSocket (HTTP/1.1, not h2c).
    pub upgrades: bool,
    /// The connection's claim on its client address's counters (per-client caps).
    pub slot: crate::clients::ClientSlot,
    /// Set on a TLS listener's connections.
    pub tls: Option<TlsConn>,
}

/// A host name fit for a redirect's `Location` (letters, digits, `-`, `.`; or an IP literal).
pub(crate) fn valid_redirect_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || b == b'-'
                || b == b'.'
                || b == b'['
                || b == b']'
                || b == b':'
        })
}

/// What TLS established for a connection.
pub struct TlsConn {
    /// The client certificate, checked against the listener's CA bundle.
    pub client_cert: switchyard_tls::ClientCert,
    /// `Strict-Transport-Security` for every answer (the listener's `hsts`).
    pub hsts: Option<http::HeaderValue>,
    /// The caller as routes with `client_cert` see it (mapped once per connection).
    pub identity: Result<Arc<crate::jwt::Identity>, crate::jwt::AuthError>,
    /// A verified client certificate's subject, forwarded as `X-Client-Cert-Subject`.
    pub subject: Option<http::HeaderValue>,
}

#[derive(Default)]
struct Log {
    /// Filled only when the access log is on.
    enabled: bool,
    /// Index of the matched route.
    route: Option<usize>,
    /// The normalised path (what routing and authorization saw).
    path: Option<String>,
    upstream: Option<(String, SocketAddr)>,
    az: Option<String>,
    sub: Option<String>,
    /// Why the gateway refused the request (401/403/429/...), in the log's words.
    reason: Option<&'static str>,
    /// Answered by the gateway's own `/healthz` (a probe).
    probe: bool,
}

mod admit;
mod body;
mod forward;
mod headers;
mod route;

use headers::{request_id, X_REQUEST_ID};

/// A small JSON error response.
pub fn error(status: StatusCode, code: &'static str) -> Response<Body> {
    let body = format!("{{\"error\":\"{code}\"}}\n");
    let mut r = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn unauthorized(missing: bool) -> Response<Body> {
    let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
    let v = if missing {
        "Bearer"
    } else {
        "Bearer error=\"invalid_token\""
    };
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
    r
}

/// Entry point from the server: never fails, always answers.
pub async fn handle(
    rt: Arc<Runtime>,
    inst: Arc<InstanceCtx>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let rid = request_id(req.headers());
    // a preflight's answer is complete as `pipeline` makes it (and a refused one gets no CORS
    // headers); other responses to an allowed origin get them added below
    let origin = match &rt.spec.cors {
        Some(_) if !crate::cors::is_preflight(req.method(), req.headers()) => {
            req.headers().get(header::ORIGIN).cloned()
        }
        _ => None,
    };
    let mut log = Log {
        enabled: rt.spec.access_log,
        ..Default::default()
    };
    let mut resp = match pipeline(&rt, &inst, &conn, req, &rid, &mut log).await {
        Ok(r) | Err(r) => r,
    };
    resp.headers_mut().insert(X_REQUEST_ID.clone(), rid.clone());
    if let (Some(cors), Some(origin)) = (&rt.spec.cors, &origin) {
        crate::cors::decorate(cors, origin, &mut resp);
    }
    let status = resp.status().as_u16();
    let metrics = log.route.unwrap_or(rt.route_metrics.len() - 1);
    rt.route_metrics[metrics].record(status, start.elapsed().as_secs_f64());
    if log.probe {
        crate::metrics::health_probe();
    }
    if rt.spec.access_log && (!log.probe || rt.spec.log_health_probes) {
        let upstream_addr = log.upstream.as_ref().map(|u| u.1.to_string());
        tracing::info!(
            target: "switchyard::access",
            instance = %inst.name,
            client = %conn.client.ip(),
            method = %method,
            path = log.path.as_deref().unwrap_or("-"),
            route = log.route.map(|i| rt.spec.routes[i].name.as_str()).unwrap_or("-"),
            status,
            upstream = log.upstream.as_ref().map(|u| u.0.as_str()).unwrap_or("-"),
            upstream_addr = upstream_addr.as_deref().unwrap_or("-"),
            az = log.az.as_deref().unwrap_or("-"),
            sub = log.sub.as_deref().unwrap_or("-"),
            reason = log.reason.unwrap_or("-"),
            micros = start.elapsed().as_micros() as u64,
            request_id = rid.to_str().unwrap_or("-"),
        );
    }
    Ok(resp)
}

async fn pipeline(
    rt: &Runtime,
    inst: &InstanceCtx,
    conn: &ConnInfo,
    req: Request<Incoming>,
    rid: &HeaderValue,
    log: &mut Log,
) -> Result<Response<Body>, Response<Body>> {
    let _permit = inst
        .concurrency
        .try_acquire()
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "overloaded"))?;
    let _client_permit = conn
        .slot
        .request(rt.spec.limits.max_requests_per_client)
        .ok_or_else(|| {
            crate::metrics::client_refused("requests");
            error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests_in_flight")
        })?;
    let (routed, body) = route::route(rt, inst, req, log)?;
    let admitted = admit::admit(rt, conn, &routed, body, log).await?;
    forward::forward(rt, inst, conn, routed, admitted, rid, log).await
}
