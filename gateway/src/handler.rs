//! The request pipeline: normalise → route → authenticate/authorize → rate limit → body limit →
//! device profile → proxy or compose. Every failure becomes a status here, in one place, with a
//! small JSON body that never carries key material or internals.

// Early returns carry the finished error response (`Err(Response)`), axum style.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body as _, Incoming};
use tokio::sync::Semaphore;

use crate::auth::{authorize, Denied};
use crate::compose::{self, ComposeCtx};
use crate::device;
use crate::jwt::Identity;
use crate::router::{self, Lookup};
use crate::runtime::Runtime;
use crate::spec::{Action, RouteSpec};
use crate::upstream::{self, Outbound, UpstreamError};

pub type Body = Either<Full<Bytes>, Incoming>;

/// The gateway instance a connection arrived on.
pub struct InstanceCtx {
    pub name: String,
    /// This worker thread's pooled upstream client.
    pub http: crate::upstream::HttpClient,
    pub region: Option<String>,
    pub az: String,
    pub concurrency: Arc<Semaphore>,
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The real client (from a trusted PROXY header, else the peer).
    pub client: SocketAddr,
    /// The peer is a trusted proxy (its X-Forwarded-For is extended, not replaced).
    pub trusted: bool,
    /// The connection can be taken over by a WebSocket (HTTP/1.1, not h2c).
    pub upgrades: bool,
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
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
static SUNSET: HeaderName = HeaderName::from_static("sunset");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

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

fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
        {
            return v.clone();
        }
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id: u128 = rand::random();
    let mut buf = [0u8; 32];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1), plus those named in `Connection`.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ] {
        h.remove(n);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

/// Entry point from the server: never fails, always answers.
pub async fn handle(
    rt: Arc<Runtime>,
    inst: Arc<InstanceCtx>,
    conn: ConnInfo,
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
    let mut resp = match pipeline(&rt, &inst, conn, req, &rid, &mut log).await {
        Ok(r) | Err(r) => r,
    };
    resp.headers_mut().insert(X_REQUEST_ID.clone(), rid.clone());
    if let (Some(cors), Some(origin)) = (&rt.spec.cors, &origin) {
        crate::cors::decorate(cors, origin, &mut resp);
    }
    let status = resp.status().as_u16();
    let metrics = log.route.unwrap_or(rt.route_metrics.len() - 1);
    rt.route_metrics[metrics].record(status, start.elapsed().as_secs_f64());
    if rt.spec.access_log {
        tracing::info!(
            target: "switchyard::access",
            instance = %inst.name,
            client = %conn.client.ip(),
            method = %method,
            path = log.path.as_deref().unwrap_or("-"),
            route = log.route.map(|i| rt.spec.routes[i].name.as_str()).unwrap_or("-"),
            status,
            upstream = log.upstream.as_ref().map(|u| u.0.as_str()).unwrap_or("-"),
            upstream_addr = ?log.upstream.as_ref().map(|u| u.1),
            az = log.az.as_deref().unwrap_or("-"),
            sub = log.sub.as_deref().unwrap_or("-"),
            micros = start.elapsed().as_micros() as u64,
            request_id = rid.to_str().unwrap_or("-"),
        );
    }
    Ok(resp)
}

async fn pipeline(
    rt: &Runtime,
    inst: &InstanceCtx,
    conn: ConnInfo,
    req: Request<Incoming>,
    rid: &HeaderValue,
    log: &mut Log,
) -> Result<Response<Body>, Response<Body>> {
    let _permit = inst
        .concurrency
        .try_acquire()
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "overloaded"))?;
    if req.method() == http::Method::CONNECT {
        return Err(error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    }
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .map(str::to_string);
    let normalised = crate::path::normalize(parts.uri.path())
        .map_err(|_| error(StatusCode::BAD_REQUEST, "bad_path"))?;
    let path = versioned(rt, &parts.headers, normalised)?;
    if log.enabled {
        log.path = Some(path.to_string());
    }

    if let Some(cors) = &rt.spec.cors {
        if crate::cors::is_preflight(&parts.method, &parts.headers) {
            // answered here, before authentication: browsers send no credentials on a preflight
            let routed = crate::cors::requested_method(&parts.headers).is_some_and(|m| {
                matches!(
                    rt.router.lookup(host.as_deref(), &path, &m, &parts.headers),
                    Lookup::Found(..)
                )
            });
            return match crate::cors::preflight(cors, &parts.headers, routed) {
                Ok(h) => {
                    let mut r = Response::new(Either::Left(Full::default()));
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    r.headers_mut().extend(h);
                    Ok(r)
                }
                Err(crate::cors::Refused::NotFound) => {
                    Err(error(StatusCode::NOT_FOUND, "not_found"))
                }
                Err(crate::cors::Refused::Forbidden) => {
                    Err(error(StatusCode::FORBIDDEN, "cors_forbidden"))
                }
            };
        }
    }
    let (idx, params) = match rt.router.lookup(
        host.as_deref(),
        &path,
        &parts.method,
        &parts.headers,
    ) {
        Lookup::Found(i, p) => (i, p),
        // The gateway's own health endpoint (what the L4 balancer checks), unless a route
        // claims the path.
        Lookup::NotFound
            if path == "/healthz"
                && matches!(parts.method, http::Method::GET | http::Method::HEAD) =>
        {
            return Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok", "instance": inst.name, "az": inst.az, "region": inst.region}),
            ));
        }
        Lookup::NotFound => return Err(error(StatusCode::NOT_FOUND, "not_found")),
        Lookup::MethodNotAllowed(allow) => {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            if let Ok(v) = HeaderValue::from_str(&allow) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return Err(r);
        }
    };
    let route = &rt.spec.routes[idx];
    log.route = Some(idx);

    let identity = if route.policy == crate::spec::Policy::Public {
        None
    } else {
        Some(rt.auth.authenticate(&parts.headers).await)
    };
    if let Err(denied) = authorize(&route.policy, identity.as_ref()) {
        return Err(match denied {
            Denied::Unauthenticated(e) => {
                crate::metrics::auth_failure(e.as_str());
                unauthorized(e == crate::jwt::AuthError::Missing)
            }
            Denied::Forbidden => {
                crate::metrics::auth_failure("forbidden");
                error(StatusCode::FORBIDDEN, "forbidden")
            }
        });
    }
    let identity: Option<Arc<Identity>> = identity.and_then(Result::ok);
    if log.enabled {
        log.sub = identity.as_ref().map(|i| i.sub.clone());
    }

    if let Some(limiter) = &rt.limiter {
        let key = match &identity {
            Some(id) => format!("s:{}", id.sub),
            None => format!("a:{}", conn.client.ip()),
        };
        if let Err(retry) = limiter.check(&key, Instant::now()) {
            crate::metrics::rate_limited();
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry));
            return Err(r);
        }
    }

    let body = read_body(rt, &parts.headers, body).await?;

    let profile = device::classify(&rt.spec.device_profiles, &parts.headers);
    let over = route.profiles.iter().find(|p| p.profile == profile);
    let allow = rt.allow_lists[idx]
        .iter()
        .find(|(p, _)| p == profile)
        .map(|(_, a)| a);

    let composition = over
        .and_then(|o| o.composition.as_deref())
        .or(match &route.action {
            Action::Compose(c) => Some(c.as_str()),
            Action::Service(_) | Action::Split(_) => None,
        });
    // a composition answers with its own JSON: nothing to upgrade to
    let ws = conn.upgrades
        && composition.is_none()
        && crate::websocket::is_upgrade(&parts.method, parts.version, &parts.headers);
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    if ws {
        crate::websocket::restore_headers(&mut headers);
    }
    headers.remove(&rt.spec.identity.user_id);
    headers.remove(&rt.spec.identity.roles);
    if let Some(id) = &identity {
        headers.insert(rt.spec.identity.user_id.clone(), id.sub_header.clone());
        headers.insert(rt.spec.identity.roles.clone(), id.roles_header.clone());
    }
    forwarded_headers(&mut headers, conn, host.as_deref(), rid);

    let upstreams = rt.upstreams(&inst.region);
    let mut resp = if let Some(name) = composition {
        let comp = rt
            .compositions
            .get(name)
            .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "internal"))?;
        let mut part_headers = HeaderMap::new();
        for n in [
            &rt.spec.identity.user_id,
            &rt.spec.identity.roles,
            &X_REQUEST_ID,
            &TRACEPARENT,
            &X_FORWARDED_FOR,
        ] {
            if let Some(v) = headers.get(n) {
                part_headers.insert(n.clone(), v.clone());
            }
        }
        let ctx = ComposeCtx {
            http: &inst.http,
            upstreams,
            client_ip: conn.client.ip(),
            identity: identity.as_deref(),
            params: &params,
            headers: &part_headers,
            attempts: rt.spec.upstream.attempts,
        };
        let (status, mut value) = compose::run(&ctx, comp).await;
        if let (Some(a), true) = (allow, status.is_success()) {
            value = a.trim(value);
        }
        json_response(status, &value)
    } else {
        let service = match (over.and_then(|o| o.service.as_deref()), &route.action) {
            (Some(s), _) => s,
            (None, Action::Service(s)) => s.as_str(),
            (None, Action::Split(split)) => {
                let ip = match conn.client.ip() {
                    std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    std::net::IpAddr::V6(v6) => v6.octets(),
                };
                let key = identity.as_ref().map_or(&ip[..], |id| id.sub.as_bytes());
                split.pick(key, rand::random())
            }
            (None, Action::Compose(_)) => unreachable!("compositions handled above"),
        };
        proxy(
            rt,
            inst,
            route,
            upstreams,
            service,
            conn,
            &parts.method,
            &path,
            parts.uri.query(),
            &params,
            &headers,
            body,
            allow,
            ws,
            log,
        )
        .await?
    };
    if route.deprecated {
        resp.headers_mut()
            .insert(DEPRECATION.clone(), HeaderValue::from_static("true"));
        if let Some(v) = route
            .sunset
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            resp.headers_mut().insert(SUNSET.clone(), v);
        }
    }
    Ok(resp)
}

/// Apply the optional version header to an unversioned path.
fn versioned<'a>(
    rt: &Runtime,
    headers: &HeaderMap,
    path: std::borrow::Cow<'a, str>,
) -> Result<std::borrow::Cow<'a, str>, Response<Body>> {
    let Some(name) = &rt.spec.version_header else {
        return Ok(path);
    };
    let Some(v) = headers.get(name) else {
        return Ok(path);
    };
    let first = path[1..].split('/').next().unwrap_or("");
    if rt.spec.versions.iter().any(|known| known == first) {
        return Ok(path);
    }
    match v
        .to_str()
        .ok()
        .filter(|v| rt.spec.versions.iter().any(|k| k == v))
    {
        Some(v) => Ok(format!("/{v}{path}").into()),
        None => Err(error(StatusCode::BAD_REQUEST, "unknown_version")),
    }
}

async fn read_body(
    rt: &Runtime,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Bytes, Response<Body>> {
    let max = rt.spec.limits.max_body_bytes;
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            let mut r = too_large();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Err(r);
        }
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let mut r = too_large();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
        Err(_) => Err(error(StatusCode::BAD_REQUEST, "bad_body")),
    }
}

/// A header value from a string we built (the buffer moves, no copy).
fn owned_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(s)).ok()
}

fn forwarded_headers(h: &mut HeaderMap, conn: ConnInfo, host: Option<&str>, rid: &HeaderValue) {
    use std::fmt::Write;
    let ip = conn.client.ip();
    let mut xff = String::with_capacity(48);
    if let (true, Some(prev)) = (
        conn.trusted,
        h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()),
    ) {
        let _ = write!(xff, "{prev}, ");
    }
    let _ = write!(xff, "{ip}");
    if let Some(v) = owned_value(xff) {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    let mut fwd = String::with_capacity(64);
    let _ = if ip.is_ipv6() {
        write!(fwd, "for=\"[{ip}]\"")
    } else {
        write!(fwd, "for={ip}")
    };
    if let Some(host) = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"')) {
        let _ = write!(fwd, ";host=\"{host}\"");
    }
    fwd.push_str(";proto=http");
    if let Some(v) = owned_value(fwd) {
        h.insert(FORWARDED.clone(), v);
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        h.insert(X_FORWARDED_HOST.clone(), v);
    }
    h.insert(X_REQUEST_ID.clone(), rid.clone());
}

#[allow(clippy::too_many_arguments)]
async fn proxy(
    rt: &Runtime,
    inst: &InstanceCtx,
    route: &RouteSpec,
    upstreams: &upstream::Upstreams,
    service: &str,
    conn: ConnInfo,
    method: &http::Method,
    path: &str,
    query: Option<&str>,
    params: &router::Params,
    headers: &HeaderMap,
    body: Bytes,
    allow: Option<&crate::json::AllowList>,
    websocket: bool,
    log: &mut Log,
) -> Result<Response<Body>, Response<Body>> {
    let pool = upstreams
        .get(service)
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "no_upstream"))?;
    let mut pq = router::upstream_path(route, path, params);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    let out = Outbound {
        method,
        path_and_query: &pq,
        headers,
        body,
    };
    let retry_5xx = route.retry_on_5xx && upstream::is_idempotent(method);
    let deadline = tokio::time::Instant::now() + rt.spec.upstream.timeout;
    let sent = upstream::send(
        &inst.http,
        pool,
        conn.client.ip(),
        &out,
        rt.spec.upstream.attempts,
        retry_5xx,
        deadline,
    )
    .await
    .map_err(|e| match e {
        UpstreamError::NoInstance => error(StatusCode::SERVICE_UNAVAILABLE, "no_upstream"),
        UpstreamError::Connect | UpstreamError::Protocol => {
            error(StatusCode::BAD_GATEWAY, "bad_gateway")
        }
        UpstreamError::Timeout => error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
    })?;
    let member = pool.member(sent.pick);
    if log.enabled {
        log.upstream = Some((member.name.clone(), member.addr));
        log.az = Some(member.az.clone());
    }
    let mut response = sent.response;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        // only to the handshake it was asked for; anything else is the instance's mistake
        if !websocket {
            return Err(error(StatusCode::BAD_GATEWAY, "bad_gateway"));
        }
        let upgraded = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        crate::websocket::restore_headers(&mut parts.headers);
        parts.extensions.insert(crate::websocket::Pending(upgraded));
        return Ok(Response::from_parts(parts, Either::Left(Full::default())));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(allow) = allow {
        let bytes = tokio::time::timeout_at(deadline, Limited::new(body, 4 << 20).collect())
            .await
            .map_err(|_| error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"))?
            .map_err(|_| error(StatusCode::BAD_GATEWAY, "bad_gateway"))?
            .to_bytes();
        let out = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => Bytes::from(serde_json::to_vec(&allow.trim(v)).unwrap_or_default()),
            Err(_) => bytes,
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        return Ok(Response::from_parts(parts, Either::Left(Full::new(out))));
    }
    Ok(Response::from_parts(parts, Either::Right(body)))
}
