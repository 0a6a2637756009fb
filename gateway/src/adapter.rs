//! From the `switchyard-config` world to the gateway's [`GatewaySpec`]: key material is read here
//! (secret files, environment, PEM and JWKS files), so a reload re-reads rotated keys. Policies,
//! health checks and passive settings convert through `switchyard-balance`'s shared `From` impls.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method};
use jsonwebtoken::Algorithm;
use switchyard_config::gateway::{Access, KeySource};
use switchyard_config::World;

use crate::spec::*;
use crate::Error;

fn read(path: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Key(format!("reading {path}: {e}")))
}

fn secret(source: &KeySource) -> Result<Option<Vec<u8>>, Error> {
    Ok(match source {
        KeySource::Secret(s) => Some(s.as_bytes().to_vec()),
        KeySource::SecretFile(p) => {
            let mut b = read(p)?;
            while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                b.pop();
            }
            Some(b)
        }
        KeySource::SecretEnv(v) => Some(
            std::env::var(v)
                .map_err(|_| Error::Key(format!("environment variable {v} is not set")))?
                .into_bytes(),
        ),
        _ => None,
    })
}

impl GatewaySpec {
    /// Build the gateway spec from a validated world.
    pub fn from_world(world: &World) -> Result<GatewaySpec, Error> {
        let g = &world.gateway;
        let mut spec = GatewaySpec::empty();
        spec.access_log = g.access_log;
        spec.log_health_probes = g.log_health_probes;
        let header = |h: &str| {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| Error::Config(format!("bad header name {h}")))
        };
        spec.client_cert_roles = g.client_cert_roles.iter().cloned().collect();
        spec.identity.user_id = header(&g.identity_headers.0)?;
        spec.identity.roles = header(&g.identity_headers.1)?;
        spec.upstream.attempts = g.limits.upstream_attempts;
        spec.version_header = match &g.version_header {
            Some(h) => Some(
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| Error::Config(format!("bad version_header {h}")))?,
            ),
            None => None,
        };
        spec.device_profiles = g
            .device_profiles
            .iter()
            .map(|d| DeviceProfileSpec {
                name: d.name.clone(),
                client_types: d.client_types.clone(),
                user_agent_contains: d.user_agent_contains.clone(),
            })
            .collect();
        spec.instances = g
            .instances
            .iter()
            .filter(|i| world.node.in_region(&i.region))
            .map(|i| InstanceSpec {
                name: i.name.clone(),
                listen: i.listen,
                region: i.region.clone(),
                az: i.az.clone(),
                tls: i.tls.clone(),
            })
            .collect();
        spec.region_failover = world
            .regions
            .iter()
            .map(|r| (r.name.clone(), r.failover.clone()))
            .collect();
        spec.cors = match &g.cors {
            Some(c) => Some(
                crate::cors::CorsSpec::new(
                    c.allow_origins.clone(),
                    &c.allow_methods,
                    &c.allow_headers,
                    &c.expose_headers,
                    c.allow_credentials,
                    c.max_age,
                )
                .map_err(Error::Config)?,
            ),
            None => None,
        };
        spec.trusted_proxies = g.trusted_proxies.clone();
        spec.trusted_forwarders = g.trusted_forwarders.clone();
        spec.strip_request_headers = g
            .strip_request_headers
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| Error::Config(format!("bad strip_request_headers entry {h}")))
            })
            .collect::<Result<_, _>>()?;
        spec.limits.max_header_bytes = g.limits.max_header_bytes;
        spec.limits.max_body_bytes = g.limits.max_body_bytes;
        spec.limits.header_timeout = g.limits.header_read_timeout;
        spec.limits.max_concurrent_requests = g.limits.max_concurrent_requests;
        spec.limits.idle_timeout = g.limits.idle_timeout;
        spec.limits.max_connections = g.limits.max_connections;
        spec.limits.body_timeout = g.limits.body_timeout;
        spec.limits.min_body_rate = g.limits.min_body_rate;
        spec.limits.max_connections_per_client = g.limits.max_connections_per_client;
        spec.limits.max_requests_per_client = g.limits.max_requests_per_client;
        spec.limits.rate = g.limits.rate_per_second.map(|r| RateSpec {
            per_second: r,
            burst: g.limits.rate_burst,
        });
        spec.upstream.timeout = g.limits.upstream_timeout;
        if let Some(ct) = world.services.iter().map(|s| s.connect_timeout).min() {
            spec.upstream.connect_timeout = ct;
        }

        spec.jwt.issuers.push(issuer(g)?);
        spec.jwt.leeway = g.jwt.leeway;
        spec.jwt.roles_claim = g.jwt.roles_claim.clone();
        for r in &g.routes {
            route(world, r, &mut spec)?;
        }
        spec.services = services(world)?;
        Ok(spec)
    }
}

/// The issuer of `[gateway.jwt]`: verification keys, JWKS files and URL, the signing key.
fn issuer(g: &switchyard_config::gateway::Gateway) -> Result<IssuerSpec, Error> {
    let mut issuer = IssuerSpec {
        issuer: g.jwt.issuer.clone(),
        audiences: g.jwt.audience.iter().cloned().collect(),
        keys: Vec::new(),
        jwks_files: Vec::new(),
        jwks_url: g.jwt.jwks_url.clone(),
        jwks_min_refresh: g.jwt.jwks_min_refresh,
        signing: None,
    };
    for k in &g.jwt.keys {
        let alg: Algorithm = k
            .alg
            .parse()
            .map_err(|_| Error::Key(format!("unknown algorithm {}", k.alg)))?;
        if let KeySource::JwksFile(p) = &k.source {
            issuer.jwks_files.push(PathBuf::from(p));
            continue;
        }
        let material = match secret(&k.source)? {
            Some(s) => {
                if k.sign && issuer.signing.is_none() {
                    issuer.signing = Some(SigningSpec {
                        kid: k.kid.clone(),
                        alg,
                        material: SigningMaterial::Secret(s.clone()),
                    });
                }
                KeyMaterial::Secret(s)
            }
            None => {
                let KeySource::PemFile(p) = &k.source else {
                    continue;
                };
                let pem = read(p)?;
                if pem.windows(7).any(|w| w == b"PRIVATE") {
                    if k.sign && issuer.signing.is_none() {
                        issuer.signing = Some(SigningSpec {
                            kid: k.kid.clone(),
                            alg,
                            material: SigningMaterial::PrivatePem(pem),
                        });
                    }
                    continue;
                }
                KeyMaterial::PublicPem(pem)
            }
        };
        issuer.keys.push(KeySpec {
            kid: k.kid.clone(),
            alg,
            material,
        });
    }
    Ok(issuer)
}

/// One `[[gateway.routes]]` entry into `spec` (its compositions and API version too).
fn route(
    world: &World,
    r: &switchyard_config::gateway::Route,
    spec: &mut GatewaySpec,
) -> Result<(), Error> {
    let (path, prefix) = match (&r.path, &r.prefix) {
        (Some(p), _) => (p.clone(), false),
        (None, Some(p)) => (p.clone(), true),
        (None, None) => return Err(Error::Config(format!("route {} has no path", r.name))),
    };
    let action = match r.service {
        Some(i) => Action::Service(world.services[i].name.clone()),
        None if !r.split.is_empty() => Action::Split(SplitSpec {
            targets: r
                .split
                .iter()
                .map(|(i, w)| (world.services[*i].name.clone(), *w))
                .collect(),
            sticky: r.sticky,
        }),
        None => {
            let parts = parts(world, &r.compose, r.deadline);
            spec.compositions.push(CompositionSpec {
                name: r.name.clone(),
                deadline: r.deadline,
                parts,
            });
            Action::Compose(r.name.clone())
        }
    };
    let mut profiles = Vec::new();
    for o in &r.profiles {
        let composition = (!o.compose.is_empty()).then(|| {
            let name = format!("{}@{}", r.name, o.profile);
            let parts = parts(world, &o.compose, r.deadline);
            spec.compositions.push(CompositionSpec {
                name: name.clone(),
                deadline: r.deadline,
                parts,
            });
            name
        });
        profiles.push(ProfileOverride {
            profile: o.profile.clone(),
            service: o.service.map(|i| world.services[i].name.clone()),
            composition,
            fields: (!o.fields.is_empty()).then(|| o.fields.clone()),
        });
    }
    let methods = r
        .methods
        .iter()
        .map(|m| {
            Method::from_bytes(m.as_bytes())
                .map_err(|_| Error::Config(format!("route {}: bad method {m}", r.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let headers = r
        .headers
        .iter()
        .map(|(k, v)| {
            HeaderName::from_bytes(k.as_bytes())
                .map(|n| (n, v.clone()))
                .map_err(|_| Error::Config(format!("route {}: bad header {k}", r.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let policy = match &r.access {
        Access::Public => Policy::Public,
        Access::Authenticated => Policy::Authenticated,
        Access::Roles { any, all } => Policy::Roles {
            any: any.clone(),
            all: all.clone(),
        },
    };
    if let Some(v) = path
        .split('/')
        .nth(1)
        .filter(|s| s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        if !spec.versions.iter().any(|x| x == v) {
            spec.versions.push(v.to_string());
        }
    }
    spec.routes.push(RouteSpec {
        name: r.name.clone(),
        host: r.host.clone(),
        path,
        prefix,
        methods,
        headers,
        deprecated: r.deprecated,
        sunset: r.sunset.clone(),
        policy,
        action,
        strip_prefix: r.strip_prefix.clone(),
        rewrite: r.rewrite.clone(),
        retry_on_5xx: r.retry_on_5xx,
        client_cert: r.client_cert,
        profiles,
    });
    Ok(())
}

/// The world's services with their instances, as the gateway balances them.
fn services(world: &World) -> Result<Vec<ServiceSpec>, Error> {
    world
        .services
        .iter()
        .map(|s| {
            let tls = match &s.tls {
                Some(t) => Some(
                    crate::spec::UpstreamTlsSpec::load(&t.ca, t.server_name.clone())
                        .map_err(|e| Error::Config(format!("services {:?} tls.ca: {e}", s.name)))?,
                ),
                None => None,
            };
            let mut check: switchyard_balance::CheckSpec = (&s.health).into();
            // an http check of a TLS service speaks HTTPS, verified as the calls are
            if let (Some(t), Some(cfg), switchyard_balance::CheckKind::Http { .. }) =
                (&tls, &s.tls, &check.kind)
            {
                let inner = std::mem::replace(&mut check.kind, switchyard_balance::CheckKind::Tcp);
                check.kind = switchyard_balance::CheckKind::Tls {
                    tls: switchyard_balance::health::check::CheckTls {
                        config: t.config.clone(),
                        server_name: t.server_name.clone(),
                        ca: cfg.ca.clone(),
                    },
                    inner: Box::new(inner),
                };
            }
            Ok(ServiceSpec {
                tls,
                name: s.name.clone(),
                policy: s.policy.into(),
                check: Some(check),
                passive: (&s.passive).into(),
                remote_instances: s.remote_instances,
                instances: s
                    .instances
                    .iter()
                    .map(|i| ServiceInstanceSpec {
                        name: i.name.clone(),
                        addr: i.addr,
                        region: i.region.clone(),
                        az: i.az.clone(),
                        weight: i.weight,
                    })
                    .collect(),
            })
        })
        .collect()
}

fn parts(
    world: &World,
    parts: &[switchyard_config::gateway::Part],
    deadline: Duration,
) -> Vec<PartSpec> {
    parts
        .iter()
        .map(|p| PartSpec {
            name: p.name.clone(),
            service: world.services[p.service].name.clone(),
            path: p.path.clone(),
            key: p.key.clone(),
            required: p.required,
            timeout: p.timeout.unwrap_or(deadline),
            depends_on: p.depends_on.clone(),
        })
        .collect()
}
