//! The gateway's own typed model ("spec"): everything the gateway needs, already validated.
//!
//! The binary builds it from the `switchyard-config` world with [`GatewaySpec::from_world`]
//! (see `adapter.rs`); quick mode and tests build it directly. Compiled, request-time structures
//! (router, key set, ...) are derived from it in `runtime.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use jsonwebtoken::Algorithm;

/// The whole gateway section plus the services it routes to.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// Listening instances (one HTTP server each).
    pub instances: Vec<InstanceSpec>,
    /// Request size, deadline and concurrency limits shared by every instance.
    pub limits: Limits,
    /// Peers whose PROXY protocol header is believed (the L4 balancers).
    pub trusted_proxies: Vec<IpNet>,
    /// HTTP-level clients whose `X-Forwarded-For` is extended rather than replaced (HTTP proxies
    /// or CDNs in front). A separate decision from PROXY trust: an L4 hop carries the client's
    /// address in its PROXY header but never vouches for the client's own `X-Forwarded-For`.
    pub trusted_forwarders: Vec<IpNet>,
    /// Request headers removed before forwarding, in every spelling that normalises to the same
    /// name (`_` for `-`, any case): method/URL override headers by default.
    pub strip_request_headers: Vec<HeaderName>,
    /// Token verification: issuers, keys, leeway and the verification cache.
    pub jwt: JwtSpec,
    /// Headers carrying the verified subject and roles to the services.
    pub identity: IdentityHeaders,
    /// Routes in configuration order (the router picks the most specific match).
    pub routes: Vec<RouteSpec>,
    /// Known API versions (first path segment, e.g. `v1`, `v2`).
    pub versions: Vec<String>,
    /// Optional request header naming the API version (`X-Api-Version: v2`): an unversioned path
    /// is routed as `/{version}{path}`.
    pub version_header: Option<HeaderName>,
    /// Named compositions that routes and device profiles refer to.
    pub compositions: Vec<CompositionSpec>,
    /// Device classes, tried in order (see [`crate::device`]).
    pub device_profiles: Vec<DeviceProfileSpec>,
    /// Roles of client-certificate callers by certificate common name or SAN.
    pub client_cert_roles: std::collections::HashMap<String, Vec<String>>,
    /// The services routes proxy to, with their instances and balancing.
    pub services: Vec<ServiceSpec>,
    /// The upstream client: connect and response deadlines, retries, connection pool.
    pub upstream: UpstreamSpec,
    /// One `tracing` line (target `switchyard::access`) per request.
    pub access_log: bool,
    /// Log the health probes of the gateway's own `/healthz` too (else only counted).
    pub log_health_probes: bool,
    /// Cross-origin requests from browsers (off when `None`).
    pub cors: Option<crate::cors::CorsSpec>,
    /// Each region's `failover` order: where a gateway of that region calls remote instances
    /// when none of its own region is healthy (a region not listed: every other region).
    pub region_failover: Vec<(String, Vec<String>)>,
}

/// One gateway listener (`[[gateway.instances]]`): an HTTP server with its own workers.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Instance name (logs, metrics and the `/healthz` answer).
    pub name: String,
    /// Address the listener binds.
    pub listen: SocketAddr,
    /// Region the instance runs in: service instances of this region are preferred, the others
    /// take spill-over (empty: no region preference).
    pub region: String,
    /// Availability zone of the instance (access log and `/healthz`).
    pub az: String,
    /// A second listener terminating TLS (HTTPS; HTTP/2 by ALPN), served by the same handler.
    pub tls: Option<switchyard_config::gateway::GatewayTls>,
}

/// Request size, deadline and concurrency limits (defaults in [`Limits::default`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line + headers; larger heads get 431.
    pub max_header_bytes: usize,
    /// Request bodies; larger get 413.
    pub max_body_bytes: usize,
    /// Time to receive a complete request head once it started (408) and for the first one.
    pub header_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    pub idle_timeout: Duration,
    /// Requests in flight per instance; more get 503.
    pub max_concurrent_requests: usize,
    /// Open client connections per instance; accept waits beyond this.
    pub max_connections: usize,
    /// Per client token bucket, in two stages: by client address before authentication
    /// (requests without a valid token are charged, and an empty bucket refuses before any
    /// signature check), then by subject after it.
    pub rate: Option<RateSpec>,
    /// A request body must start within this and may pause at most this long (408).
    pub body_timeout: Duration,
    /// Minimum body rate in bytes/s on top of `body_timeout` (0: none): a body of n bytes must
    /// arrive within `body_timeout + n / min_body_rate` (408), so a drip feed cannot hold a
    /// request slot.
    pub min_body_rate: u64,
    /// Open connections per client address (the PROXY header's address when trusted).
    pub max_connections_per_client: usize,
    /// Requests in flight per client address; more get 429.
    pub max_requests_per_client: usize,
}

/// Override headers stripped by default (CVE-2018-14773 class: upstream frameworks that honour
/// them let a client bypass method or path rules the gateway enforced).
pub const DEFAULT_STRIPPED: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

/// A token bucket: sustained rate and burst.
#[derive(Debug, Clone, Copy)]
pub struct RateSpec {
    /// Tokens added per second (sustained requests per second).
    pub per_second: f64,
    /// Bucket size: requests allowed at once after a quiet period.
    pub burst: u32,
}

/// JWT verification settings.
#[derive(Debug, Clone)]
pub struct JwtSpec {
    /// Trusted issuers, each with its keys; a token is verified by the key matching its `kid`
    /// and algorithm.
    pub issuers: Vec<IssuerSpec>,
    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub leeway: Duration,
    /// Claim holding roles/scopes: a JSON array of strings or a space separated string.
    pub roles_claim: String,
    /// Bounded verification cache (entries); 0 disables it.
    pub cache_entries: usize,
    /// The clock JWKS refresh intervals are measured with (tests advance a manual one).
    pub clock: crate::clock::Clock,
}

/// One trusted token issuer: the claims it must carry and the keys it signs with.
#[derive(Debug, Clone)]
pub struct IssuerSpec {
    /// Expected `iss`; `None` accepts tokens without checking it.
    pub issuer: Option<String>,
    /// Accepted `aud` values; empty = not checked.
    pub audiences: Vec<String>,
    /// Verification keys given inline in the configuration.
    pub keys: Vec<KeySpec>,
    /// JWKS documents read from disk at start and on every reload.
    pub jwks_files: Vec<PathBuf>,
    /// Plain `http://` URL of a JWKS document, fetched at start and on unknown `kid`.
    pub jwks_url: Option<String>,
    /// Minimum time between two JWKS fetches.
    pub jwks_min_refresh: Duration,
    /// Key used by `switchyard token` / [`crate::mint_token`].
    pub signing: Option<SigningSpec>,
}

/// A verification key; its algorithm is pinned.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// Matched against the token's `kid`; a token without `kid` is tried against every key.
    pub kid: Option<String>,
    /// The only algorithm this key verifies (no HS/RS confusion, no `none`).
    pub alg: Algorithm,
    /// The secret or public key.
    pub material: KeyMaterial,
}

/// What a verification key is made of.
#[derive(Debug, Clone)]
pub enum KeyMaterial {
    /// HMAC secret bytes.
    Secret(Vec<u8>),
    /// PEM public key (RSA, EC P-256, Ed25519) or certificate-less SPKI.
    PublicPem(Vec<u8>),
}

/// The key `switchyard token` signs with.
#[derive(Debug, Clone)]
pub struct SigningSpec {
    /// `kid` written into minted token headers.
    pub kid: Option<String>,
    /// Signing algorithm (must match a verification key of the same issuer).
    pub alg: Algorithm,
    /// The secret or private key.
    pub material: SigningMaterial,
}

/// What a signing key is made of.
#[derive(Debug, Clone)]
pub enum SigningMaterial {
    /// HMAC secret bytes.
    Secret(Vec<u8>),
    /// PKCS#8 PEM private key.
    PrivatePem(Vec<u8>),
}

/// Request headers that carry the verified identity to services (copies sent by the client
/// are removed).
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// The token's `sub` (default `x-user-id`).
    pub user_id: HeaderName,
    /// The token's roles, comma-joined (default `x-user-roles`).
    pub roles: HeaderName,
}

/// One route: what it matches, who may use it, and where it sends the request.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Route name (metrics label, access log).
    pub name: String,
    /// Exact host (`api.example.test`) or suffix wildcard (`*.example.test`); `None` = any.
    pub host: Option<String>,
    /// Pattern: literal segments and `{param}` segments, e.g. `/v1/users/{id}`.
    pub path: String,
    /// Prefix match on whole segments (`/v1/orders` matches `/v1/orders/7`).
    pub prefix: bool,
    /// Empty = any method.
    pub methods: Vec<Method>,
    /// Required headers: exact value, or `*` for "present".
    pub headers: Vec<(HeaderName, String)>,
    /// Deprecated API: responses carry `Deprecation: true` (and `Sunset` when set).
    pub deprecated: bool,
    /// HTTP-date for the `Sunset` header.
    pub sunset: Option<String>,
    /// Who may call the route.
    pub policy: Policy,
    /// Where a matched request goes.
    pub action: Action,
    /// Removed from the front of the path toward the upstream.
    pub strip_prefix: Option<String>,
    /// Upstream path template: `{param}`s, `{rest}` (the part after a prefix match).
    pub rewrite: Option<String>,
    /// Retry idempotent requests on 502/503 from an instance on another instance.
    pub retry_on_5xx: bool,
    /// The caller is its TLS client certificate (checked against the listener's `client_ca`),
    /// not a bearer token: no certificate or an invalid one is 401, missing roles 403.
    pub client_cert: bool,
    /// Per device class overrides.
    pub profiles: Vec<ProfileOverride>,
}

/// Who may call a route (401 without a valid token, 403 without the roles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Anyone; no token is read or verified.
    Public,
    /// Any caller with a valid token.
    Authenticated,
    /// At least one of `any` (when non-empty) and every one of `all`.
    Roles {
        /// Roles of which at least one is required (empty: no such requirement).
        any: Vec<String>,
        /// Roles that are all required.
        all: Vec<String>,
    },
}

/// What a route does with a request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Proxy to a service.
    Service(String),
    /// Proxy to one of several services, by weight (see [`SplitSpec`]).
    Split(SplitSpec),
    /// Run a named composition.
    Compose(String),
}

/// Services sharing a route's traffic by weight.
#[derive(Debug, Clone)]
pub struct SplitSpec {
    /// (service, weight > 0).
    pub targets: Vec<(String, u32)>,
    /// The same subject (or client address) always gets the same service.
    pub sticky: bool,
}

impl SplitSpec {
    /// The service for a request: by `key` (a stable hash of the subject or client address)
    /// when sticky, else by `random`.
    pub fn pick(&self, key: &[u8], random: u32) -> &str {
        let total: u64 = self.targets.iter().map(|(_, w)| u64::from(*w)).sum();
        let point = if self.sticky {
            fnv1a(key)
        } else {
            u64::from(random)
        } % total.max(1);
        let mut acc = 0;
        for (service, w) in &self.targets {
            acc += u64::from(*w);
            if point < acc {
                return service;
            }
        }
        &self.targets[self.targets.len() - 1].0
    }
}

/// FNV-1a: stable across processes and versions, so every gateway instance sends one user to
/// the same side of a split.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// How a route behaves for one device profile.
#[derive(Debug, Clone)]
pub struct ProfileOverride {
    /// Device profile name (`mobile`, `web`, ...).
    pub profile: String,
    /// Backend-for-frontend: send to this service instead.
    pub service: Option<String>,
    /// Use this composition instead.
    pub composition: Option<String>,
    /// Keep only these dotted JSON paths of the response.
    pub fields: Option<Vec<String>>,
}

/// Several service calls merged into one JSON response.
#[derive(Debug, Clone)]
pub struct CompositionSpec {
    /// Composition name, referred to by routes and profile overrides.
    pub name: String,
    /// Overall deadline for all parts.
    pub deadline: Duration,
    /// The service calls; independent parts run concurrently.
    pub parts: Vec<PartSpec>,
}

/// One service call of a composition.
#[derive(Debug, Clone)]
pub struct PartSpec {
    /// Part name (metrics label, `depends_on` target, default merge key).
    pub name: String,
    /// Service the part calls.
    pub service: String,
    /// Upstream path template: `{sub}`, `{claim}`, `{param}`, `{part.field}` (second stage).
    pub path: String,
    /// Key under which the JSON body is merged (default = name).
    pub key: String,
    /// A failed required part fails the whole composition (502); an optional one is left out.
    pub required: bool,
    /// Deadline of this part's call.
    pub timeout: Duration,
    /// Run after this part and interpolate its fields.
    pub depends_on: Option<String>,
}

/// A device class that routes can override behaviour for.
#[derive(Debug, Clone)]
pub struct DeviceProfileSpec {
    /// Profile name, as used in route overrides (`mobile`, `web`, ...).
    pub name: String,
    /// `X-Client-Type` values (case-insensitive) selecting this profile.
    pub client_types: Vec<String>,
    /// Case-insensitive `User-Agent` substrings selecting this profile.
    pub user_agent_contains: Vec<String>,
}

/// A service behind the gateway and how its instances are balanced.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Service name, referred to by routes and composition parts.
    pub name: String,
    /// Balancing policy over the instances (shared with the L4 balancer).
    pub policy: switchyard_balance::Policy,
    /// Active health check run through the shared `HealthRegistry` (`None` = passive only).
    pub check: Option<switchyard_balance::CheckSpec>,
    /// Passive health: connect failures eject an instance for a while (circuit breaker).
    pub passive: switchyard_balance::PassiveSpec,
    /// The instances, in every region.
    pub instances: Vec<ServiceInstanceSpec>,
    /// Call instances of other regions (in the failover order) when none of the gateway's own
    /// region is healthy.
    pub remote_instances: bool,
    /// Call the instances over TLS (`None`: plain HTTP).
    pub tls: Option<UpstreamTlsSpec>,
}

/// TLS from the gateway to a service's instances.
#[derive(Debug, Clone)]
pub struct UpstreamTlsSpec {
    /// Verifies the instances' certificates against the service's CA bundle.
    pub config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
    /// Sent as SNI and verified in the certificate (`None`: the instance's IP address).
    pub server_name: Option<tokio_rustls::rustls::pki_types::ServerName<'static>>,
    /// A digest of the CA bundle's bytes: a reload that reads the same CA keeps the service's
    /// pooled TLS connections.
    pub ca_digest: u64,
}

impl UpstreamTlsSpec {
    /// Reads the CA bundle (PEM) at `ca`; the error is for the operator.
    pub fn load(ca: &std::path::Path, server_name: Option<String>) -> Result<Self, String> {
        use tokio_rustls::rustls;
        // no ALPN: the connector sets http/1.1
        let config =
            switchyard_tls::server::client_config(ca, Vec::new()).map_err(|e| e.to_string())?;
        let server_name = server_name
            .map(|n| {
                rustls::pki_types::ServerName::try_from(n.clone())
                    .map_err(|e| format!("server_name {n:?}: {e}"))
            })
            .transpose()?;
        let bytes = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let ca_digest = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            h.finish()
        };
        Ok(UpstreamTlsSpec {
            config,
            server_name,
            ca_digest,
        })
    }
}

/// One instance of a service.
#[derive(Debug, Clone)]
pub struct ServiceInstanceSpec {
    /// Instance name (logs, health registry).
    pub name: String,
    /// Plain-HTTP address of the instance.
    pub addr: SocketAddr,
    /// Region: instances outside the gateway instance's region are used only when none inside
    /// is up.
    pub region: String,
    /// Availability zone: within a region, the selector prefers the gateway's own zone.
    pub az: String,
    /// Relative share of traffic.
    pub weight: u32,
}

/// The upstream HTTP client's deadlines, retries and pool (defaults in
/// [`UpstreamSpec::default`]).
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    /// Deadline for a TCP connect to an instance (then the next instance is tried).
    pub connect_timeout: Duration,
    /// Deadline for an upstream response head (504 past it).
    pub timeout: Duration,
    /// Instances tried per request (1 = no retry).
    pub attempts: u32,
    /// Idle pooled connections are closed after this.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept per instance address.
    pub pool_max_idle_per_host: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_concurrent_requests: 10_000,
            max_connections: 20_000,
            rate: None,
            body_timeout: Duration::from_secs(10),
            min_body_rate: 1024,
            max_connections_per_client: 5_000,
            max_requests_per_client: 2_500,
        }
    }
}

impl Default for UpstreamSpec {
    fn default() -> Self {
        UpstreamSpec {
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            attempts: 2,
            pool_idle_timeout: Duration::from_secs(30),
            pool_max_idle_per_host: 256,
        }
    }
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        IdentityHeaders {
            user_id: HeaderName::from_static("x-user-id"),
            roles: HeaderName::from_static("x-user-roles"),
        }
    }
}

impl Default for JwtSpec {
    fn default() -> Self {
        JwtSpec {
            issuers: Vec::new(),
            leeway: Duration::from_secs(30),
            roles_claim: "roles".into(),
            cache_entries: 65_536,
            clock: crate::clock::Clock::default(),
        }
    }
}

impl GatewaySpec {
    /// An empty spec with defaults (no instances, routes or services).
    pub fn empty() -> Self {
        GatewaySpec {
            instances: Vec::new(),
            limits: Limits::default(),
            trusted_proxies: Vec::new(),
            trusted_forwarders: Vec::new(),
            strip_request_headers: DEFAULT_STRIPPED
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            jwt: JwtSpec::default(),
            identity: IdentityHeaders::default(),
            routes: Vec::new(),
            versions: Vec::new(),
            version_header: None,
            compositions: Vec::new(),
            device_profiles: Vec::new(),
            client_cert_roles: Default::default(),
            services: Vec::new(),
            upstream: UpstreamSpec::default(),
            access_log: false,
            log_health_probes: false,
            cors: None,
            region_failover: Vec::new(),
        }
    }
}

impl RouteSpec {
    /// A route with defaults: any host/method, authenticated, proxied to `service`.
    pub fn new(name: &str, path: &str, prefix: bool, service: &str) -> Self {
        RouteSpec {
            name: name.into(),
            host: None,
            path: path.into(),
            prefix,
            methods: Vec::new(),
            headers: Vec::new(),
            deprecated: false,
            sunset: None,
            policy: Policy::Authenticated,
            action: Action::Service(service.into()),
            strip_prefix: None,
            rewrite: None,
            retry_on_5xx: false,
            client_cert: false,
            profiles: Vec::new(),
        }
    }
}
