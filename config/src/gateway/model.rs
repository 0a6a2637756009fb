//! The validated, typed gateway model that `RawGateway::validate` produces.
#![allow(missing_docs)] // fields and variants are the TOML keys and values of the same name, documented in docs/config.md

use ipnet::IpNet;
use std::net::SocketAddr;
use std::time::Duration;

/// A validated gateway section.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub instances: Vec<GatewayInstance>,
    pub limits: Limits,
    pub trusted_proxies: Vec<IpNet>,
    /// HTTP proxies whose `X-Forwarded-For` is extended.
    pub trusted_forwarders: Vec<IpNet>,
    /// Lower-case header names never forwarded.
    pub strip_request_headers: Vec<String>,
    pub jwt: Jwt,
    pub routes: Vec<Route>,
    pub device_profiles: Vec<DeviceProfile>,
    pub version_header: Option<String>,
    pub access_log: bool,
    /// Health probes of the gateway's own `/healthz` are logged too (`access_log = "all"`).
    pub log_health_probes: bool,
    /// (user id header, roles header).
    pub identity_headers: (String, String),
    pub cors: Option<super::Cors>,
    /// Client-certificate name (CN or SAN) → roles.
    pub client_cert_roles: Vec<(String, Vec<String>)>,
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
    pub tls: Option<GatewayTls>,
}

/// A gateway instance's TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayTls {
    pub listen: SocketAddr,
    pub tls: crate::tls::Tls,
    pub hsts: Option<Duration>,
    pub redirect_listen: Option<SocketAddr>,
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
    pub body_timeout: Duration,
    pub min_body_rate: u64,
    pub max_connections_per_client: usize,
    pub max_requests_per_client: usize,
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
    /// Instead of `service`: (index into `World::services`, weight > 0).
    pub split: Vec<(usize, u32)>,
    pub sticky: bool,
    pub strip_prefix: Option<String>,
    pub rewrite: Option<String>,
    pub deprecated: bool,
    pub sunset: Option<String>,
    pub compose: Vec<Part>,
    pub deadline: Duration,
    pub retry_on_5xx: bool,
    pub client_cert: bool,
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
