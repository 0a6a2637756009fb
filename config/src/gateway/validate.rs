//! Validation of the raw gateway section into the typed model: instances, limits, JWT keys,
//! routes, compositions, device profiles and identity headers.

use super::model::{
    Access, DeviceProfile, Gateway, GatewayInstance, Jwt, JwtKey, KeySource, Limits, Part,
    ProfileOverride, Route,
};
use super::raw::{RawGateway, RawPart};
use crate::error::Errors;
use crate::region::{name_rule, valid_name, Names};

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
                let tls = g
                    .tls
                    .as_ref()
                    .and_then(|t| validate_tls(t, &format!("{p}.tls"), errs));
                match g.listen.parse() {
                    Ok(listen) => Some(GatewayInstance {
                        name: g.name.clone(),
                        listen,
                        region: g.region.clone(),
                        az: g.az.clone(),
                        tls,
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
        let trusted_forwarders =
            errs.networks(&self.trusted_forwarders, "gateway.trusted_forwarders");
        let mut strip_request_headers = Vec::new();
        for (i, h) in self.strip_request_headers.iter().enumerate() {
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                errs.push(
                    format!("gateway.strip_request_headers[{i}]"),
                    format!("{h:?} is not a header name"),
                );
            } else {
                strip_request_headers.push(h.to_ascii_lowercase().replace('_', "-"));
            }
        }
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
        if l.body_timeout.0.is_zero() {
            errs.push("gateway.limits.body_timeout", "must be greater than 0");
        }
        let max_connections = l.max_connections.max(1);
        let per_client = |v: Option<usize>, of: usize, key: &str, errs: &mut Errors| match v {
            Some(0) => {
                errs.push(format!("gateway.limits.{key}"), "must be greater than 0");
                1
            }
            Some(n) => n,
            None => (of / 4).max(1),
        };
        let max_connections_per_client = per_client(
            l.max_connections_per_client,
            max_connections,
            "max_connections_per_client",
            errs,
        );
        let max_requests_per_client = per_client(
            l.max_requests_per_client,
            l.max_concurrent_requests,
            "max_requests_per_client",
            errs,
        );
        let limits = Limits {
            max_header_bytes: l.max_header_bytes,
            max_body_bytes: l.max_body_bytes,
            header_read_timeout: l.header_read_timeout.0,
            upstream_timeout: l.upstream_timeout.0,
            max_concurrent_requests: l.max_concurrent_requests,
            rate_per_second: l.rate_per_second,
            rate_burst: l.rate_burst.max(1),
            idle_timeout: l.idle_timeout.0,
            max_connections,
            upstream_attempts: l.upstream_attempts.clamp(1, 10),
            body_timeout: l.body_timeout.0,
            min_body_rate: l.min_body_rate,
            max_connections_per_client,
            max_requests_per_client,
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
            let targets = usize::from(r.service.is_some())
                + usize::from(!r.split.is_empty())
                + usize::from(!r.compose.is_empty());
            if targets != 1 {
                errs.push(
                    p.clone(),
                    "a route needs exactly one of `service`, `split` or `compose` parts",
                );
            }
            let service = r
                .service
                .as_ref()
                .and_then(|s| service_index(s, format!("{p}.service"), errs));
            let split: Vec<(usize, u32)> = r
                .split
                .iter()
                .enumerate()
                .filter_map(|(j, t)| {
                    if t.weight == 0 {
                        errs.push(
                            format!("{p}.split[{j}].weight"),
                            "weight must be greater than 0",
                        );
                    }
                    if r.split[..j].iter().any(|o| o.service == t.service) {
                        errs.push(
                            format!("{p}.split[{j}].service"),
                            format!("{:?} is listed twice", t.service),
                        );
                    }
                    service_index(&t.service, format!("{p}.split[{j}].service"), errs)
                        .map(|i| (i, t.weight.max(1)))
                })
                .collect();
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
                split,
                sticky: r.sticky,
                strip_prefix: r.strip_prefix.clone(),
                rewrite: r.rewrite.clone(),
                deprecated: r.deprecated,
                sunset: r.sunset.clone(),
                compose,
                deadline: r.deadline.map(|d| d.0).unwrap_or(limits.upstream_timeout),
                retry_on_5xx: r.retry_on_5xx,
                client_cert: r.client_cert,
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
        let (access_log, log_health_probes) = match &self.access_log {
            super::RawAccessLog::Bool(b) => (*b, false),
            super::RawAccessLog::Mode(m) => match m.as_str() {
                "all" => (true, true),
                "requests" => (true, false),
                "off" => (false, false),
                other => {
                    errs.push(
                        "gateway.access_log",
                        format!(
                            "{other:?}: expected true, false, \"all\", \"requests\" or \"off\""
                        ),
                    );
                    (true, false)
                }
            },
        };
        Gateway {
            instances,
            limits,
            trusted_proxies,
            trusted_forwarders,
            strip_request_headers,
            jwt,
            routes,
            device_profiles,
            version_header: self.version_header.clone(),
            access_log,
            log_health_probes,
            identity_headers: (ih.user_id.clone(), ih.roles.clone()),
            cors: self.cors.as_ref().map(|c| c.validate(errs)),
            client_cert_roles: {
                let mut v: Vec<(String, Vec<String>)> = self
                    .client_cert_roles
                    .iter()
                    .map(|(k, r)| (k.clone(), r.clone()))
                    .collect();
                v.sort();
                v
            },
        }
    }
}

/// Validates composition parts: services resolve, names are unique, `depends_on` names an
/// earlier part.
/// A gateway instance's `tls` table (None when its addresses do not parse; errors recorded).
fn validate_tls(
    t: &super::raw::RawGatewayTls,
    p: &str,
    errs: &mut Errors,
) -> Option<super::model::GatewayTls> {
    let tls = t.common().validate(p, &["h2", "http/1.1"], errs);
    for (i, a) in tls.alpn.iter().enumerate() {
        if a != "h2" && a != "http/1.1" {
            errs.push(
                format!("{p}.alpn[{i}]"),
                format!("{a:?}: the gateway speaks \"h2\" and \"http/1.1\""),
            );
        }
    }
    let addr = |s: &str, key: &str, errs: &mut Errors| {
        let a = s.parse().ok();
        if a.is_none() {
            errs.push(
                format!("{p}.{key}"),
                format!("{s:?} is not an address with a port"),
            );
        }
        a
    };
    let listen = addr(&t.listen, "listen", errs);
    let redirect_listen = match &t.redirect_listen {
        Some(r) => Some(addr(r, "redirect_listen", errs)?),
        None => None,
    };
    Some(super::model::GatewayTls {
        listen: listen?,
        tls,
        hsts: t.hsts.map(|h| h.0),
        redirect_listen,
    })
}

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
