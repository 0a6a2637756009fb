//! The request pipeline: normalise → route → authenticate/authorize → rate limit → body limit →
//! device profile → proxy or compose. Every failure becomes a status here, in one place, with a
//! small JSON body that never carries key material or internals.

// Early returns carry the finished error response (`Err(Response)`), axum style.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
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
    /// The client is a trusted HTTP forwarder (its X-Forwarded-For is extended, not replaced).
    pub xff_trusted: bool,
    /// The connection can be taken over by a WebSocket (HTTP/1.1, not h2c).
    pub upgrades: bool,
    /// The connection's claim on its client address's counters (per-client caps).
    pub slot: crate::clients::ClientSlot,
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

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
static SUNSET: HeaderName = HeaderName::from_static("sunset");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

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
    if req.method() == http::Method::CONNECT {
        return Err(error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    }
    let (parts, body) = req.into_parts();
    let host = request_host(&parts)?.map(str::to_string);
    // raw bytes outside ASCII are not a URI (RFC 3986 §2); some upstreams fold them into
    // ASCII look-alikes (U+2025 "‥" into ".."), so they never pass
    if parts.uri.query().is_some_and(|q| !q.is_ascii()) {
        return Err(error(StatusCode::BAD_REQUEST, "bad_path"));
    }
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
            log.probe = true;
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
    // TRACE reflects the request, credentials included (cross-site tracing): only where a
    // route names it
    if parts.method == http::Method::TRACE && !route.methods.contains(&parts.method) {
        return Err(error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    }

    // rate limit, stage 1: a client address whose bucket is empty is refused before any
    // signature is checked (bad tokens cost a verification each)
    let now = Instant::now();
    let addr = conn.client.ip();
    if let Some(l) = &rt.limiter {
        l.admit_client(addr, now).map_err(|r| {
            log.reason = Some("rate_limited_client");
            rate_limited(r)
        })?;
    }
    let identity = if route.policy == crate::spec::Policy::Public {
        None
    } else {
        Some(rt.auth.authenticate(&parts.headers).await)
    };
    // stage 2: a verified subject is charged to its own bucket; everything else (anonymous,
    // rejected tokens) to the client address's
    if log.enabled {
        if let Some(Ok(id)) = &identity {
            log.sub = Some(id.sub.clone());
        }
    }
    if let Some(l) = &rt.limiter {
        let (stage, checked) = match &identity {
            Some(Ok(id)) => ("rate_limited_subject", l.charge_subject(&id.sub, now)),
            _ => ("rate_limited_client", l.charge_client(addr, now)),
        };
        checked.map_err(|r| {
            log.reason = Some(stage);
            rate_limited(r)
        })?;
    }
    if let Err(denied) = authorize(&route.policy, identity.as_ref()) {
        return Err(match denied {
            Denied::Unauthenticated(e) => {
                crate::metrics::auth_failure(e.as_str());
                log.reason = Some(e.as_str());
                unauthorized(e == crate::jwt::AuthError::Missing)
            }
            Denied::Forbidden => {
                crate::metrics::auth_failure("forbidden");
                log.reason = Some("role_missing");
                error(StatusCode::FORBIDDEN, "forbidden")
            }
        });
    }
    let identity: Option<Arc<Identity>> = identity.and_then(Result::ok);

    let body = read_body(&rt.spec.limits, &parts.headers, body).await?;

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
    strip_protected(&mut headers, rt);
    if let Some(a) = parts.uri.authority() {
        // the request target's authority won (absolute-form, h2 :authority): the upstream
        // sees the same host that routing saw
        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
            headers.insert(header::HOST, v);
        }
    }
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

fn rate_limited(retry: u64) -> Response<Body> {
    crate::metrics::rate_limited();
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    r
}

/// The host a request is for, by RFC 9112 §3.2: exactly one valid `Host` (400 for none on
/// HTTP/1.1, several, or a malformed one); the request target's authority wins over it
/// (absolute-form, §3.2.2; h2 `:authority`, RFC 9113 §8.3.1).
fn request_host(parts: &http::request::Parts) -> Result<Option<&str>, Response<Body>> {
    let bad = || error(StatusCode::BAD_REQUEST, "bad_host");
    let mut all = parts.headers.get_all(header::HOST).iter();
    let header = all.next();
    if all.next().is_some() {
        return Err(bad());
    }
    let header = match header {
        Some(v) => {
            let h = v.to_str().map_err(|_| bad())?;
            if !valid_host(h) {
                return Err(bad());
            }
            Some(h)
        }
        None if parts.version == http::Version::HTTP_11 => return Err(bad()),
        None => None,
    };
    match parts.uri.authority() {
        Some(a) if !valid_host(a.as_str()) || a.as_str().is_empty() => Err(bad()),
        Some(a) => Ok(Some(a.as_str())),
        None => Ok(header),
    }
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2) without userinfo; empty is allowed (RFC 9112
/// §3.2). Checked byte by byte: no allocation per request.
fn valid_host(h: &str) -> bool {
    let b = h.as_bytes();
    if b.is_empty() {
        return true;
    }
    let (host, port) = if b[0] == b'[' {
        // IP-literal
        let Some(end) = b.iter().position(|c| *c == b']') else {
            return false;
        };
        let inner = &b[1..end];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|c| c.is_ascii_hexdigit() || b":.".contains(c))
        {
            return false;
        }
        match &b[end + 1..] {
            [] => (&b[..0], None),
            [b':', port @ ..] => (&b[..0], Some(port)),
            _ => return false,
        }
    } else {
        match b.iter().rposition(|c| *c == b':') {
            Some(i) => (&b[..i], Some(&b[i + 1..])),
            None => (b, None),
        }
    };
    let reg_name = host
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(c));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    reg_name && port_ok && (b[0] == b'[' || !host.is_empty())
}

/// Remove what a client must not set: the identity headers, the forwarding headers the
/// gateway writes, and the configured strip list, in every spelling that normalises to one of
/// them (`X_User_Id` becomes `HTTP_X_USER_ID` in CGI, WSGI, Rack and PHP, the same variable as
/// `X-User-Id`).
fn strip_protected(h: &mut HeaderMap, rt: &Runtime) {
    let protected = [
        &rt.spec.identity.user_id,
        &rt.spec.identity.roles,
        &X_FORWARDED_FOR,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_HOST,
        &FORWARDED,
        &X_REAL_IP,
    ];
    // X-Forwarded-For itself stays for `forwarded_headers`, which extends (trusted forwarder)
    // or replaces it; the others the gateway writes or never forwards
    for n in protected[..2]
        .iter()
        .copied()
        .chain(protected[3..].iter().copied())
        .chain(&rt.spec.strip_request_headers)
    {
        h.remove(n);
    }
    if !h.keys().any(|k| k.as_str().contains('_')) {
        return;
    }
    let doomed: Vec<HeaderName> = h
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k.contains('_')
                && protected
                    .into_iter()
                    .chain(&rt.spec.strip_request_headers)
                    .any(|p| same_name(k, p.as_str()))
        })
        .cloned()
        .collect();
    for n in doomed {
        h.remove(n);
    }
}

/// Header names equal once `_` is read as `-` (both are lower case already).
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'_' && y == b'-'))
}

/// Read a request body within the limits: at most `max_body_bytes` (413), started and never
/// paused beyond `body_timeout`, and complete within `body_timeout + len / min_body_rate`
/// (408). Either refusal closes the connection (the rest of the body is never read).
async fn read_body(
    limits: &crate::spec::Limits,
    headers: &HeaderMap,
    mut body: Incoming,
) -> Result<Bytes, Response<Body>> {
    let max = limits.max_body_bytes;
    let closing = |mut r: Response<Body>| {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let too_large = || closing(error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let timed_out = || {
        crate::metrics::timeout("body");
        closing(error(StatusCode::REQUEST_TIMEOUT, "request_timeout"))
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(too_large());
        }
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let start = tokio::time::Instant::now();
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut received = 0usize;
    loop {
        let by_rate = match limits.min_body_rate {
            0 => std::time::Duration::MAX / 4,
            r => std::time::Duration::from_secs_f64(received as f64 / r as f64),
        };
        let pause = tokio::time::Instant::now() + limits.body_timeout;
        let deadline = pause.min(start + limits.body_timeout + by_rate);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => break,
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(e))) if is_timeout(&e) => return Err(timed_out()),
            Ok(Some(Err(_))) => return Err(closing(error(StatusCode::BAD_REQUEST, "bad_body"))),
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received += data.len();
        if received > max {
            return Err(too_large());
        }
        match &first {
            None if rest.is_empty() => first = Some(data),
            _ => {
                if let Some(f) = first.take() {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| rest.freeze()))
}

/// The body read failed because the framing gate's body deadline passed.
fn is_timeout(e: &hyper::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        src = s.source();
    }
    false
}

/// A header value from a string we built (the buffer moves, no copy).
fn owned_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(s)).ok()
}

fn forwarded_headers(h: &mut HeaderMap, conn: &ConnInfo, host: Option<&str>, rid: &HeaderValue) {
    use std::fmt::Write;
    let ip = conn.client.ip();
    let mut xff = String::with_capacity(48);
    if let (true, Some(prev)) = (
        conn.xff_trusted,
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
    conn: &ConnInfo,
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
        // and only to the protocol that was asked for (RFC 9110 §7.8)
        let mut offered = response.headers().get_all(header::UPGRADE).iter();
        let agreed = offered
            .next()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
            && offered.next().is_none();
        if !websocket || !agreed {
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
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        // both framings from the instance: Transfer-Encoding wins and an intermediary must drop
        // the Content-Length before forwarding (RFC 9112 §6.3)
        parts.headers.remove(header::CONTENT_LENGTH);
    }
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
