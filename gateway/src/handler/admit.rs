//! Step 2: whether a routed request may go on. The two rate-limit stages (client address
//! before any signature check, subject after it), authentication and authorization (401/403),
//! then the body within its size and deadline.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use hyper::body::Incoming;

use super::body::read_body;
use super::route::Routed;
use super::{error, unauthorized, Body, ConnInfo, Log};
use crate::auth::{authorize, Denied};
use crate::jwt::Identity;
use crate::runtime::Runtime;

/// A request allowed through, with its identity (none on public routes) and its whole body.
pub(super) struct Admitted {
    /// The verified caller.
    pub(super) identity: Option<Arc<Identity>>,
    /// The request body, read within its limits.
    pub(super) body: Bytes,
}

/// Admit `routed` (whose body is `body`), or answer it (429, 401, 403, 408, 413, 400).
pub(super) async fn admit(
    rt: &Runtime,
    conn: &ConnInfo,
    routed: &Routed,
    body: Incoming,
    log: &mut Log,
) -> Result<Admitted, Response<Body>> {
    let route = &rt.spec.routes[routed.idx];
    let parts = &routed.parts;
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
    } else if route.client_cert {
        Some(match &conn.tls {
            Some(t) => t.identity.clone(),
            None => Err(crate::jwt::AuthError::NoClientCert),
        })
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
    Ok(Admitted { identity, body })
}

pub(super) fn rate_limited(retry: u64) -> Response<Body> {
    crate::metrics::rate_limited();
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    r
}
