//! Bearer-token check for admin mutations (constant-time compare).

use super::{AdminCtx, Body};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq;

/// Returns who is acting (for the audit line) or the 401 to send.
pub fn check<B>(ctx: &AdminCtx, req: &Request<B>) -> Result<String, Box<Response<Body>>> {
    let world = ctx.world.load();
    let Some(expected) = world.admin.token.as_deref().filter(|t| !t.is_empty()) else {
        // No token configured: only possible on loopback (validation refuses otherwise).
        return Ok("anonymous (no admin token configured, loopback only)".into());
    };
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !given.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        return Ok("admin-token".into());
    }
    // A missing token and a wrong one are different mistakes (RFC 6750 §3.1).
    let (error, reason, challenge) = if given.is_empty() {
        (
            "no admin token: mutations need Authorization: Bearer <admin token> (--token or SWITCHYARD_ADMIN_TOKEN)",
            "token_missing",
            "Bearer realm=\"switchyard-admin\"",
        )
    } else {
        (
            "admin token rejected: it is not this node's [admin] token",
            "token_rejected",
            "Bearer realm=\"switchyard-admin\", error=\"invalid_token\"",
        )
    };
    let mut resp = super::json(
        StatusCode::UNAUTHORIZED,
        json!({"error": error, "reason": reason}),
    );
    resp.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static(challenge),
    );
    Err(Box::new(resp))
}
