//! Raw `[gateway]` tables as they are written in TOML (serde structs with their defaults),
//! before validation.
#![allow(missing_docs)] // fields and variants are the TOML keys and values of the same name, documented in docs/config.md

use crate::duration::{millis, secs, HumanDuration};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Raw `[gateway]` table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<RawGatewayInstance>,
    #[serde(default)]
    pub limits: RawLimits,
    /// Peers allowed to send a PROXY protocol header (the L4 balancers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// HTTP proxies whose `X-Forwarded-For` is extended (everyone else's is replaced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_forwarders: Vec<String>,
    /// Request headers never forwarded (every `_`/case spelling); default: the method and URL
    /// override headers.
    #[serde(default = "default_stripped")]
    pub strip_request_headers: Vec<String>,
    #[serde(default)]
    pub jwt: RawJwt,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RawRoute>,
    /// Device classes for per-device responses (`mobile`, `web`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_profiles: Vec<RawDeviceProfile>,
    /// Request header naming the API version for unversioned paths (e.g. `X-Api-Version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_header: Option<String>,
    /// One access log line per request (target `switchyard::access`): `true` (requests, not the
    /// health probes of the gateway's own `/healthz`, which are counted instead), `"all"`
    /// (probes too), `false`.
    #[serde(default)]
    pub access_log: RawAccessLog,
    /// Headers carrying the verified identity upstream (client copies are always removed).
    #[serde(default)]
    pub identity_headers: RawIdentityHeaders,
    /// Cross-origin requests from browsers; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<super::RawCors>,
    /// Roles of client-certificate callers, by their certificate's common name or a SAN.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub client_cert_roles: HashMap<String, Vec<String>>,
}

fn default_stripped() -> Vec<String> {
    [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "X-Original-URL",
        "X-Rewrite-URL",
    ]
    .map(String::from)
    .to_vec()
}

/// `access_log = true | false | "all" | "requests" | "off"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawAccessLog {
    Bool(bool),
    Mode(String),
}

impl Default for RawAccessLog {
    fn default() -> Self {
        RawAccessLog::Bool(true)
    }
}

/// Raw `[gateway.identity_headers]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityHeaders {
    #[serde(default = "default_user_header")]
    pub user_id: String,
    #[serde(default = "default_roles_header")]
    pub roles: String,
}

impl Default for RawIdentityHeaders {
    fn default() -> Self {
        RawIdentityHeaders {
            user_id: default_user_header(),
            roles: default_roles_header(),
        }
    }
}

fn default_user_header() -> String {
    "X-User-Id".into()
}
fn default_roles_header() -> String {
    "X-User-Roles".into()
}

/// Raw `[[gateway.device_profiles]]` entry: chosen by `X-Client-Type` (the name or one of
/// `client_types`), else by a case-insensitive `User-Agent` substring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeviceProfile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_agent_contains: Vec<String>,
}

/// Raw per-route device override (`profiles = [{ profile = "mobile", fields = [...] }]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfileOverride {
    pub profile: String,
    /// Backend-for-frontend: another service for this device class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Another composition for this device class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compose: Vec<RawPart>,
    /// Keep only these dotted JSON paths of the response (`user.name`, `orders.items.id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Raw `[[gateway.instances]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayInstance {
    pub name: String,
    pub listen: String,
    pub region: String,
    pub az: String,
    /// A second listener of this instance that terminates TLS (HTTPS, HTTP/2 by ALPN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawGatewayTls>,
}

/// Raw `tls = { listen = "...", certs = [...], ... }` of a gateway instance: the TLS listener's
/// address, the common TLS keys (`crate::tls::RawTls`) and the HTTPS-only ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayTls {
    pub listen: String,
    pub certs: Vec<crate::tls::RawCert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
    #[serde(default = "default_tls_handshake_timeout")]
    pub handshake_timeout: HumanDuration,
    #[serde(default = "default_tls_session_cache")]
    pub session_cache: usize,
    /// Session-ticket keys shared with other appliances (`crate::tls::RawTls::ticket_keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_keys: Option<String>,
    /// `Strict-Transport-Security: max-age=...` on every HTTPS answer; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<HumanDuration>,
    /// A plain HTTP listener that answers every request with a redirect to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_listen: Option<String>,
}

fn default_tls_handshake_timeout() -> HumanDuration {
    secs(10)
}
fn default_tls_session_cache() -> usize {
    4096
}

impl RawGatewayTls {
    /// The keys every TLS listener shares.
    pub fn common(&self) -> crate::tls::RawTls {
        crate::tls::RawTls {
            certs: self.certs.clone(),
            alpn: self.alpn.clone(),
            client_ca: self.client_ca.clone(),
            handshake_timeout: self.handshake_timeout,
            session_cache: self.session_cache,
            ticket_keys: self.ticket_keys.clone(),
        }
    }
}

/// Raw `[gateway.limits]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "default_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout: HumanDuration,
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout: HumanDuration,
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
    /// Requests per second per client address (or per token subject), token bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<f64>,
    #[serde(default = "default_burst")]
    pub rate_burst: u32,
    /// Idle keep-alive client connections are closed after this.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Open client connections per gateway instance.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Instances tried per request (connect failures; idempotent 502/503 with `retry_on_5xx`).
    #[serde(default = "default_attempts")]
    pub upstream_attempts: u32,
    /// A request body must start within this and never pause longer (408).
    #[serde(default = "default_body_timeout")]
    pub body_timeout: HumanDuration,
    /// Minimum request body rate in bytes/s beyond `body_timeout` (0: none).
    #[serde(default = "default_min_body_rate")]
    pub min_body_rate: u64,
    /// Open connections per client address (default: a quarter of `max_connections`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_client: Option<usize>,
    /// Requests in flight per client address (default: a quarter of
    /// `max_concurrent_requests`); more get 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_client: Option<usize>,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_header_bytes: default_header_bytes(),
            max_body_bytes: default_body_bytes(),
            header_read_timeout: default_header_timeout(),
            upstream_timeout: default_upstream_timeout(),
            max_concurrent_requests: default_concurrency(),
            rate_per_second: None,
            rate_burst: default_burst(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            upstream_attempts: default_attempts(),
            body_timeout: default_body_timeout(),
            min_body_rate: default_min_body_rate(),
            max_connections_per_client: None,
            max_requests_per_client: None,
        }
    }
}

fn default_body_timeout() -> HumanDuration {
    secs(10)
}
fn default_min_body_rate() -> u64 {
    1024
}
fn default_attempts() -> u32 {
    2
}

fn default_idle_timeout() -> HumanDuration {
    secs(60)
}
fn default_max_connections() -> usize {
    20_000
}
fn default_jwks_refresh() -> HumanDuration {
    secs(10)
}

fn default_header_bytes() -> usize {
    16 * 1024
}
fn default_body_bytes() -> usize {
    1 << 20
}
fn default_header_timeout() -> HumanDuration {
    secs(5)
}
fn default_upstream_timeout() -> HumanDuration {
    secs(5)
}
fn default_concurrency() -> usize {
    4096
}
fn default_burst() -> u32 {
    50
}

/// Raw `[gateway.jwt]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    /// Claim that holds the roles (a list of strings or a space-separated string).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<RawJwtKey>,
    /// `http://` JWKS URL fetched at start and on an unknown `kid` (stale keys kept on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// At most one JWKS fetch per this interval.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_min_refresh: HumanDuration,
}

impl Default for RawJwt {
    fn default() -> Self {
        RawJwt {
            leeway: default_leeway(),
            roles_claim: default_roles_claim(),
            issuer: None,
            audience: None,
            keys: Vec::new(),
            jwks_url: None,
            jwks_min_refresh: default_jwks_refresh(),
        }
    }
}

fn default_leeway() -> HumanDuration {
    millis(30_000)
}
fn default_roles_claim() -> String {
    "roles".into()
}

/// Raw `[[gateway.jwt.keys]]` entry: exactly one key source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwtKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The one algorithm this key accepts: HS256, RS256, ES256 or EdDSA.
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// `switchyard token` may sign with this key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sign: bool,
}

/// Raw `[[gateway.routes]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Exact path, may contain `{param}` segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Path prefix (segment-wise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub headers: HashMap<String, String>,
    /// `public`, `authenticated` (default) or `roles`.
    #[serde(default = "default_auth")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles_any: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles_all: Vec<String>,
    /// Target service (not for composite routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Instead of `service`: several services sharing the route's traffic by weight (a canary
    /// or a gradual move to a new version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<RawSplit>,
    /// With `split`: the same subject (or client address, without a token) always gets the same
    /// service, on every gateway instance (default); `false` picks per request.
    #[serde(default = "yes")]
    pub sticky: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    /// Parts of a composite route, fanned out concurrently and merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compose: Vec<RawPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<HumanDuration>,
    /// Retry idempotent requests on another instance after a 502/503.
    #[serde(default = "yes")]
    pub retry_on_5xx: bool,
    /// The caller is identified by its TLS client certificate instead of a bearer token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_cert: bool,
    /// Per device class: BFF service, other composition, field allow-list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<RawProfileOverride>,
}

/// One target of a route's `split`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplit {
    pub service: String,
    pub weight: u32,
}

fn default_auth() -> String {
    "authenticated".into()
}

/// Raw composition part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPart {
    /// Part name (for `depends_on` and `{name.field}`); default: `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub key: String,
    pub service: String,
    /// Upstream path with `{sub}`, `{param}` or `{part.field}` interpolation.
    pub path: String,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Second stage: run after this part and interpolate its fields (`{user.favorite}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<String>,
}

fn yes() -> bool {
    true
}
