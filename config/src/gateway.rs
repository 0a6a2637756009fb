//! The L7 gateway: instances, limits, JWT keys, routes and compositions.

use crate::duration::{millis, secs, HumanDuration};
use crate::error::Errors;
use crate::region::{name_rule, valid_name, Names};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

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
    /// One access log line per request (target `switchyard::access`).
    #[serde(default = "yes")]
    pub access_log: bool,
    /// Headers carrying the verified identity upstream (client copies are always removed).
    #[serde(default)]
    pub identity_headers: RawIdentityHeaders,
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
        }
    }
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
    /// Per device class: BFF service, other composition, field allow-list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<RawProfileOverride>,
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

/// A validated gateway section.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub instances: Vec<GatewayInstance>,
    pub limits: Limits,
    pub trusted_proxies: Vec<IpNet>,
    pub jwt: Jwt,
    pub routes: Vec<Route>,
    pub device_profiles: Vec<DeviceProfile>,
    pub version_header: Option<String>,
    pub access_log: bool,
    /// (user id header, roles header).
    pub identity_headers: (String, String),
}

/// A validated device profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProfile {
    pub name: String,
    pub client_types: Vec<String>,
    pub user_agent_contains: Vec<String>,
}

/// A validated per-route device override.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileOverride {
    pub profile: String,
    /// Index into `World::services` (resolved).
    pub service: Option<usize>,
    pub compose: Vec<Part>,
    pub fields: Vec<String>,
}

/// A validated gateway instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayInstance {
    pub name: String,
    pub listen: SocketAddr,
    pub region: String,
    pub az: String,
}

/// Validated limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub header_read_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub rate_per_second: Option<f64>,
    pub rate_burst: u32,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub upstream_attempts: u32,
}

/// Validated JWT settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt {
    pub leeway: Duration,
    pub roles_claim: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub keys: Vec<JwtKey>,
    pub jwks_url: Option<String>,
    pub jwks_min_refresh: Duration,
}

/// Where a key's material comes from (read by the gateway at start and on reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Secret(String),
    SecretFile(String),
    SecretEnv(String),
    PemFile(String),
    JwksFile(String),
}

/// A validated JWT key with its pinned algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtKey {
    pub kid: Option<String>,
    pub alg: String,
    pub source: KeySource,
    pub sign: bool,
}

/// Who may call a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Public,
    Authenticated,
    Roles { any: Vec<String>, all: Vec<String> },
}

/// A validated route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub host: Option<String>,
    pub path: Option<String>,
    pub prefix: Option<String>,
    pub methods: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub access: Access,
    /// Index into `World::services` (resolved).
    pub service: Option<usize>,
    pub strip_prefix: Option<String>,
    pub rewrite: Option<String>,
    pub deprecated: bool,
    pub sunset: Option<String>,
    pub compose: Vec<Part>,
    pub deadline: Duration,
    pub retry_on_5xx: bool,
    pub profiles: Vec<ProfileOverride>,
}

/// A validated composition part.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: String,
    pub key: String,
    /// Index into `World::services` (resolved).
    pub service: usize,
    pub path: String,
    pub required: bool,
    pub timeout: Option<Duration>,
    pub depends_on: Option<String>,
}

const ALGS: [&str; 4] = ["HS256", "RS256", "ES256", "EdDSA"];

impl RawGateway {
    /// Validates the gateway section; `services` are the declared service names in order.
    pub fn validate(&self, names: &Names, services: &[String], errs: &mut Errors) -> Gateway {
        let instances = self
            .instances
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let p = format!("gateway.instances[{i}]");
                if !valid_name(&g.name) {
                    errs.push(format!("{p}.name"), name_rule(&g.name));
                }
                if names.check_region(&g.region, format!("{p}.region"), errs) {
                    names.check_az(Some(&g.region), &g.az, format!("{p}.az"), errs);
                }
                match g.listen.parse() {
                    Ok(listen) => Some(GatewayInstance {
                        name: g.name.clone(),
                        listen,
                        region: g.region.clone(),
                        az: g.az.clone(),
                    }),
                    Err(_) => {
                        errs.push(
                            format!("{p}.listen"),
                            format!("{:?} is not an address with a port", g.listen),
                        );
                        None
                    }
                }
            })
            .collect();
        let trusted_proxies = errs.networks(&self.trusted_proxies, "gateway.trusted_proxies");
        let l = &self.limits;
        if l.max_concurrent_requests == 0 {
            errs.push(
                "gateway.limits.max_concurrent_requests",
                "must be greater than 0",
            );
        }
        if let Some(r) = l.rate_per_second {
            if r <= 0.0 || !r.is_finite() {
                errs.push("gateway.limits.rate_per_second", "must be greater than 0");
            }
        }
        let limits = Limits {
            max_header_bytes: l.max_header_bytes,
            max_body_bytes: l.max_body_bytes,
            header_read_timeout: l.header_read_timeout.0,
            upstream_timeout: l.upstream_timeout.0,
            max_concurrent_requests: l.max_concurrent_requests,
            rate_per_second: l.rate_per_second,
            rate_burst: l.rate_burst.max(1),
            idle_timeout: l.idle_timeout.0,
            max_connections: l.max_connections.max(1),
            upstream_attempts: l.upstream_attempts.clamp(1, 10),
        };
        let keys = self
            .jwt
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let p = format!("gateway.jwt.keys[{i}]");
                if !ALGS.contains(&k.alg.as_str()) {
                    errs.push(
                        format!("{p}.alg"),
                        format!(
                            "unsupported algorithm {:?}; expected one of {ALGS:?}",
                            k.alg
                        ),
                    );
                }
                let mut sources = Vec::new();
                if let Some(s) = &k.secret {
                    sources.push(KeySource::Secret(s.clone()));
                }
                if let Some(s) = &k.secret_file {
                    sources.push(KeySource::SecretFile(s.clone()));
                }
                if let Some(s) = &k.secret_env {
                    sources.push(KeySource::SecretEnv(s.clone()));
                }
                if let Some(s) = &k.pem_file {
                    sources.push(KeySource::PemFile(s.clone()));
                }
                if let Some(s) = &k.jwks_file {
                    sources.push(KeySource::JwksFile(s.clone()));
                }
                if sources.len() != 1 {
                    errs.push(
                        p.clone(),
                        "give exactly one of secret, secret_file, secret_env, pem_file, jwks_file",
                    );
                }
                let source = sources
                    .into_iter()
                    .next()
                    .unwrap_or(KeySource::Secret(String::new()));
                let symmetric = k.alg == "HS256";
                let secret_like = matches!(
                    source,
                    KeySource::Secret(_) | KeySource::SecretFile(_) | KeySource::SecretEnv(_)
                );
                if symmetric != secret_like && !matches!(source, KeySource::JwksFile(_)) {
                    errs.push(
                        format!("{p}.alg"),
                        format!(
                            "{} needs {}",
                            k.alg,
                            if symmetric {
                                "a shared secret"
                            } else {
                                "a PEM or JWKS key"
                            }
                        ),
                    );
                }
                JwtKey {
                    kid: k.kid.clone(),
                    alg: k.alg.clone(),
                    source,
                    sign: k.sign,
                }
            })
            .collect();
        let jwt = Jwt {
            leeway: self.jwt.leeway.0,
            roles_claim: self.jwt.roles_claim.clone(),
            issuer: self.jwt.issuer.clone(),
            audience: self.jwt.audience.clone(),
            keys,
            jwks_url: self.jwt.jwks_url.clone(),
            jwks_min_refresh: self.jwt.jwks_min_refresh.0,
        };
        if let Some(u) = &jwt.jwks_url {
            if !u.starts_with("http://") {
                errs.push(
                    "gateway.jwt.jwks_url",
                    "only http:// URLs are supported (fetch over a trusted network)",
                );
            }
        }
        let service_index = |name: &str, path: String, errs: &mut Errors| -> Option<usize> {
            let idx = services.iter().position(|s| s == name);
            if idx.is_none() {
                errs.push(
                    path,
                    format!("unknown service {name:?}; declare it under [[services]]"),
                );
            }
            idx
        };
        let mut routes = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let p = format!("gateway.routes[{i}]");
            if r.path.is_some() == r.prefix.is_some() {
                errs.push(
                    p.clone(),
                    "give exactly one of `path` (exact, may have {param} segments) or `prefix`",
                );
            }
            for (k, v) in [("path", &r.path), ("prefix", &r.prefix)] {
                if let Some(v) = v {
                    if !v.starts_with('/') {
                        errs.push(format!("{p}.{k}"), "must start with '/'");
                    }
                }
            }
            let access = match r.auth.as_str() {
                "public" => Access::Public,
                "authenticated" => Access::Authenticated,
                "roles" => {
                    if r.roles_any.is_empty() && r.roles_all.is_empty() {
                        errs.push(
                            format!("{p}.auth"),
                            "auth = \"roles\" needs roles_any or roles_all",
                        );
                    }
                    Access::Roles {
                        any: r.roles_any.clone(),
                        all: r.roles_all.clone(),
                    }
                }
                o => {
                    errs.push(format!("{p}.auth"), format!("{o:?} is not an access policy; expected \"public\", \"authenticated\" or \"roles\""));
                    Access::Authenticated
                }
            };
            let service = match (&r.service, r.compose.is_empty()) {
                (Some(s), true) => service_index(s, format!("{p}.service"), errs),
                (None, false) => None,
                _ => {
                    errs.push(
                        p.clone(),
                        "a route needs exactly one of `service` or `compose` parts",
                    );
                    None
                }
            };
            let compose = validate_parts(&r.compose, &format!("{p}.compose"), &service_index, errs);
            let profiles = r
                .profiles
                .iter()
                .enumerate()
                .map(|(j, o)| {
                    let op = format!("{p}.profiles[{j}]");
                    if !self.device_profiles.iter().any(|d| d.name == o.profile) {
                        errs.push(
                            format!("{op}.profile"),
                            format!("unknown device profile {:?}; declare it under [[gateway.device_profiles]]", o.profile),
                        );
                    }
                    let service = o
                        .service
                        .as_ref()
                        .and_then(|s| service_index(s, format!("{op}.service"), errs));
                    if o.service.is_some() && !o.compose.is_empty() {
                        errs.push(op.clone(), "give at most one of `service` or `compose`");
                    }
                    ProfileOverride {
                        profile: o.profile.clone(),
                        service,
                        compose: validate_parts(&o.compose, &format!("{op}.compose"), &service_index, errs),
                        fields: o.fields.clone(),
                    }
                })
                .collect();
            let mut headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            headers.sort();
            routes.push(Route {
                name: r.name.clone(),
                host: r.host.clone(),
                path: r.path.clone(),
                prefix: r.prefix.clone(),
                methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                headers,
                access,
                service,
                strip_prefix: r.strip_prefix.clone(),
                rewrite: r.rewrite.clone(),
                deprecated: r.deprecated,
                sunset: r.sunset.clone(),
                compose,
                deadline: r.deadline.map(|d| d.0).unwrap_or(limits.upstream_timeout),
                retry_on_5xx: r.retry_on_5xx,
                profiles,
            });
        }
        let mut device_profiles: Vec<DeviceProfile> = Vec::new();
        for (i, d) in self.device_profiles.iter().enumerate() {
            if device_profiles.iter().any(|x| x.name == d.name) || d.name == "default" {
                errs.push(
                    format!("gateway.device_profiles[{i}].name"),
                    format!("{:?} is reserved or declared twice", d.name),
                );
            }
            device_profiles.push(DeviceProfile {
                name: d.name.clone(),
                client_types: d.client_types.clone(),
                user_agent_contains: d.user_agent_contains.clone(),
            });
        }
        let ih = &self.identity_headers;
        for (k, h) in [("user_id", &ih.user_id), ("roles", &ih.roles)] {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                errs.push(
                    format!("gateway.identity_headers.{k}"),
                    format!("{h:?} is not a header name"),
                );
            }
        }
        if ih.user_id.eq_ignore_ascii_case(&ih.roles) {
            errs.push("gateway.identity_headers", "user_id and roles must differ");
        }
        if let Some(h) = &self.version_header {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                errs.push(
                    "gateway.version_header",
                    format!("{h:?} is not a header name"),
                );
            }
        }
        Gateway {
            instances,
            limits,
            trusted_proxies,
            jwt,
            routes,
            device_profiles,
            version_header: self.version_header.clone(),
            access_log: self.access_log,
            identity_headers: (ih.user_id.clone(), ih.roles.clone()),
        }
    }
}

/// Validates composition parts: services resolve, names are unique, `depends_on` names an
/// earlier part.
fn validate_parts(
    parts: &[RawPart],
    path: &str,
    service_index: &dyn Fn(&str, String, &mut Errors) -> Option<usize>,
    errs: &mut Errors,
) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let name = part.name.clone().unwrap_or_else(|| part.key.clone());
        if out.iter().any(|p| p.name == name) {
            errs.push(
                format!("{path}[{j}].name"),
                format!("part {name:?} is declared twice"),
            );
        }
        if let Some(d) = &part.depends_on {
            if !out.iter().any(|p| &p.name == d) {
                errs.push(
                    format!("{path}[{j}].depends_on"),
                    format!("{d:?} is not an earlier part of this composition"),
                );
            }
        }
        let Some(service) = service_index(&part.service, format!("{path}[{j}].service"), errs)
        else {
            continue;
        };
        out.push(Part {
            name,
            key: part.key.clone(),
            service,
            path: part.path.clone(),
            required: part.required,
            timeout: part.timeout.map(|d| d.0),
            depends_on: part.depends_on.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests;
