//! The web console at `GET /`: one page (HTML, CSS and JavaScript embedded in the binary with
//! `include_str!`, no build step, no CDN) that reads the same endpoints as the CLI (`/status`,
//! `/metrics`, `/v1/explain/dns`, `/v1/events`, `/v1/drills`) and sends the same admin actions
//! with the token the operator typed (kept in `sessionStorage`, sent as a header).
//! A strict Content-Security-Policy allows only these files and same-origin requests.

use super::{full, Body};
use hyper::{Response, StatusCode};

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Serves `/`, `/console.js` or `/console.css`.
pub fn asset(path: &str) -> Response<Body> {
    let (body, kind) = match path {
        "/console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/console.css" => (STYLE, "text/css; charset=utf-8"),
        _ => (INDEX, "text/html; charset=utf-8"),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", kind)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-cache")
        .body(full(body))
        .expect("static response parts are valid")
}
