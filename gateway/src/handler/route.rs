//! Step 1: which route a request is for. Host rules, the target's bytes, path normalisation
//! and versions, CORS preflights (answered here, before authentication), the router, the
//! gateway's own `/healthz`, and methods a route does not allow.

use std::borrow::Cow;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::headers::request_host;
use super::{error, json_response, Body, InstanceCtx, Log};
use crate::router::{self, Lookup};
use crate::runtime::Runtime;

/// A request matched to a route (its body travels separately: the next step consumes it).
pub(super) struct Routed {
    /// Method, target, version and headers as received.
    pub(super) parts: http::request::Parts,
    /// The host routing used (the target's authority, else `Host`).
    pub(super) host: Option<String>,
    /// The normalised path when it differs from the target's (else the target's is used).
    rewritten: Option<String>,
    /// Index of the route in the spec.
    pub(super) idx: usize,
    /// `{param}` values and the prefix remainder.
    pub(super) params: router::Params,
}

impl Routed {
    /// The normalised path: what routing and authorization saw, and what is forwarded.
    pub(super) fn path(&self) -> &str {
        self.rewritten
            .as_deref()
            .unwrap_or_else(|| self.parts.uri.path())
    }
}

/// Route `req`, or answer it (`Err`: an error, a preflight's 204 or the health endpoint).
pub(super) fn route(
    rt: &Runtime,
    inst: &InstanceCtx,
    req: Request<Incoming>,
    log: &mut Log,
) -> Result<(Routed, Incoming), Response<Body>> {
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
                    Err(r)
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
            return Err(json_response(
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

    let rewritten = match path {
        Cow::Borrowed(_) => None,
        Cow::Owned(p) => Some(p),
    };
    Ok((
        Routed {
            parts,
            host,
            rewritten,
            idx,
            params,
        },
        body,
    ))
}

/// Apply the optional version header to an unversioned path.
pub(super) fn versioned<'a>(
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
