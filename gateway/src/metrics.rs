//! Metric names and descriptions (one place); the request path only increments.

use std::sync::OnceLock;

use metrics::{counter, describe_counter, describe_histogram, histogram, Counter, Histogram, Unit};

/// Counter: requests, by route and status.
pub const REQUESTS: &str = "switchyard_gateway_requests_total";
/// Histogram: request latency in seconds, by route.
pub const LATENCY: &str = "switchyard_gateway_request_duration_seconds";
/// Counter: failed upstream attempts, by service and kind.
pub const UPSTREAM_ERRORS: &str = "switchyard_gateway_upstream_errors_total";
/// Counter: authentication and authorization failures, by reason.
pub const AUTH_FAILURES: &str = "switchyard_gateway_auth_failures_total";
/// Counter: requests refused by the rate limiter (429).
pub const RATE_LIMITED: &str = "switchyard_gateway_rate_limited_total";
/// Counter: connections ended for HTTP framing violations, by kind.
pub const FRAMING: &str = "switchyard_gateway_framing_violations_total";
/// Counter: composition parts that failed, by part and reason.
pub const COMPOSE_FAILED: &str = "switchyard_gateway_compose_part_failures_total";
/// Counter: JWKS fetches that failed (the last good keys stay in use).
pub const JWKS_FAILED: &str = "switchyard_gateway_jwks_fetch_failures_total";
/// Counter: connections and requests refused by the per-client-address caps.
pub const CLIENT_REFUSED: &str = "switchyard_gateway_client_cap_refusals_total";
/// Counter: client-side deadlines that passed, by phase.
pub const TIMEOUTS: &str = "switchyard_gateway_timeouts_total";
/// Counter: requests answered by the gateway's own `/healthz`.
pub const HEALTH_PROBES: &str = "switchyard_gateway_health_probes_total";

/// Counter: certificate reloads that failed (the previous certificates stay), by instance.
pub const CERT_RELOAD_FAILED: &str = "switchyard_tls_certificate_reload_failures_total";

/// Counts a failed certificate reload.
pub(crate) fn cert_reload_failed(instance: &str) {
    counter!(CERT_RELOAD_FAILED, "listener" => instance.to_string()).increment(1);
}

/// Register descriptions with whatever recorder the binary installed.
pub fn describe() {
    describe_counter!(REQUESTS, "Requests by route and status");
    describe_histogram!(LATENCY, Unit::Seconds, "Request latency by route");
    describe_counter!(UPSTREAM_ERRORS, "Upstream errors by service and kind");
    describe_counter!(AUTH_FAILURES, "Authentication failures by reason");
    describe_counter!(RATE_LIMITED, "Requests rejected by the rate limiter");
    describe_counter!(FRAMING, "Connections closed for HTTP framing violations");
    describe_counter!(
        COMPOSE_FAILED,
        "Composition parts that failed, by part and reason"
    );
    describe_counter!(
        CERT_RELOAD_FAILED,
        "Certificate reloads that failed (the previous certificates stay)"
    );
    describe_counter!(JWKS_FAILED, "JWKS fetches that failed (stale keys kept)");
    describe_counter!(
        CLIENT_REFUSED,
        "Connections closed and requests refused (429) by the per-client-address caps, by what was capped"
    );
    describe_counter!(
        HEALTH_PROBES,
        "Requests answered by the gateway's own /healthz (not in the access log unless access_log = \"all\")"
    );
    describe_counter!(
        TIMEOUTS,
        "Client-side deadlines that passed, by phase (body, h2_idle, h2_first_request)"
    );
}

const STATUSES: usize = 23;

/// Per-route handles, resolved on first use (after the binary installed its recorder) and then
/// only incremented: no label allocation or registry lookup per request.
pub struct RouteMetrics {
    route: &'static str,
    latency: OnceLock<Histogram>,
    requests: [OnceLock<Counter>; STATUSES],
}

impl RouteMetrics {
    /// Handles for one route; nothing is registered until the first request.
    pub fn new(route: &'static str) -> RouteMetrics {
        RouteMetrics {
            route,
            latency: OnceLock::new(),
            requests: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Count a finished request with its status and record its latency in seconds.
    pub fn record(&self, status: u16, secs: f64) {
        let (idx, label) = status_label(status);
        let route = self.route;
        self.requests[idx]
            .get_or_init(|| counter!(REQUESTS, "route" => route, "status" => label))
            .increment(1);
        self.latency
            .get_or_init(|| histogram!(LATENCY, "route" => route))
            .record(secs);
    }
}

fn status_label(s: u16) -> (usize, &'static str) {
    let label = status_text(s);
    let idx = [
        "200", "201", "204", "301", "302", "304", "400", "401", "403", "404", "405", "408", "413",
        "429", "431", "500", "502", "503", "504", "2xx", "3xx", "4xx", "5xx",
    ]
    .iter()
    .position(|x| *x == label)
    .unwrap_or(STATUSES - 1);
    (idx, label)
}

fn status_text(s: u16) -> &'static str {
    match s {
        200 => "200",
        201 => "201",
        204 => "204",
        301 => "301",
        302 => "302",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        429 => "429",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// An upstream attempt failed (`kind`: `connect`, `protocol`, `status_5xx`, ...).
pub fn upstream_error(service: &str, kind: &'static str) {
    counter!(UPSTREAM_ERRORS, "service" => service.to_string(), "kind" => kind).increment(1);
}

/// A request failed authentication or authorization.
pub fn auth_failure(reason: &'static str) {
    counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// The rate limiter refused a request.
pub fn rate_limited() {
    counter!(RATE_LIMITED).increment(1);
}

/// A per-client cap refused a connection (`connections`) or a request (`requests`).
pub fn client_refused(what: &'static str) {
    counter!(CLIENT_REFUSED, "what" => what).increment(1);
}

/// The gateway's own `/healthz` answered a probe.
pub fn health_probe() {
    static C: OnceLock<Counter> = OnceLock::new();
    C.get_or_init(|| counter!(HEALTH_PROBES)).increment(1);
}

/// A client-side deadline passed in `phase`.
pub fn timeout(phase: &'static str) {
    counter!(TIMEOUTS, "phase" => phase).increment(1);
}

/// A connection ended for a framing violation.
pub fn framing_violation(v: crate::framing::Violation) {
    let kind = match v {
        crate::framing::Violation::BadRequest => "bad_request",
        crate::framing::Violation::HeaderTimeout => "header_timeout",
        crate::framing::Violation::HeadTooLarge => "head_too_large",
        crate::framing::Violation::BodyTimeout => "body_timeout",
    };
    counter!(FRAMING, "kind" => kind).increment(1);
}

/// A composition part failed.
pub fn compose_part_failed(part: &str, reason: &str) {
    counter!(COMPOSE_FAILED, "part" => part.to_string(), "reason" => reason.to_string())
        .increment(1);
}

/// A JWKS fetch failed.
pub fn jwks_fetch_failed() {
    counter!(JWKS_FAILED).increment(1);
}
