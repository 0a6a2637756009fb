//! The whole world in one file: the top-level raw document and the validated [`World`].
#![allow(missing_docs)] // fields and variants are the TOML keys and values of the same name, documented in docs/config.md

use crate::dns::{Dns, RawDns};
use crate::error::{ConfigError, ConfigErrors, Errors};
use crate::gateway::{Gateway, KeySource, RawGateway};
use crate::locate::{key_position_of, line_col, path_at, position_of};
use crate::region::{collect_names, RawRegion, Region};
use crate::services::{RawService, Service};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The raw document, exactly as written (serde, unknown keys rejected).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorld {
    #[serde(default)]
    pub node: RawNode,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub geo: RawGeo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RawRegion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<RawService>,
    #[serde(default)]
    pub gateway: RawGateway,
    #[serde(default)]
    pub dns: RawDns,
}

/// Raw `[node]`: which parts of the world this node runs (the CLI's `--region`/`--only` override it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Run only this region's L4 listeners, gateway instances and demo services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Subset of `dns`, `lb`, `gateway`, `services`, `admin`; default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<Vec<String>>,
    /// Global cap on L4 connections across every listener of this process (each listener also
    /// has its own `max_connections`); default 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_max_connections: Option<u32>,
}

/// Default of `node.lb_max_connections`.
pub const DEFAULT_LB_MAX_CONNECTIONS: u32 = 100_000;

/// Raw `[admin]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer token required for mutations; required when `listen` is not loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            listen: default_admin_listen(),
            token: None,
        }
    }
}

fn default_admin_listen() -> String {
    "127.0.0.1:9901".into()
}

/// Raw `[geo]`: MaxMind databases (paths relative to the config file, or `builtin:maxmind-test-country` /
/// `builtin:maxmind-test-city` for the MaxMind test databases compiled into the binary).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_db: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city_db: Option<String>,
}

/// The parts a node can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Dns,
    Lb,
    Gateway,
    Services,
    Admin,
}

impl Part {
    /// Every part, in start order.
    pub const ALL: [Part; 5] = [
        Part::Services,
        Part::Gateway,
        Part::Lb,
        Part::Dns,
        Part::Admin,
    ];

    /// Parses a part name as written in `--only` or `node.only`.
    pub fn parse(s: &str) -> Option<Part> {
        Some(match s {
            "dns" => Part::Dns,
            "lb" => Part::Lb,
            "gateway" => Part::Gateway,
            "services" => Part::Services,
            "admin" => Part::Admin,
            _ => return None,
        })
    }
}

/// Which parts this node runs, for which region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub region: Option<String>,
    pub parts: Vec<Part>,
    /// Global cap on L4 connections across all listeners (acquired before accept).
    pub lb_max_connections: u32,
}

impl Node {
    /// True when this node runs `part`.
    pub fn runs(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }

    /// True when this node runs things of `region` (all regions when no region is set).
    pub fn in_region(&self, region: &str) -> bool {
        self.region.as_deref().is_none_or(|r| r == region)
    }
}

/// Validated admin API settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

/// A geo database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeoSource {
    File(PathBuf),
    /// A database compiled into the binary (`builtin:NAME`).
    Builtin(String),
}

/// Validated geo settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Geo {
    pub country_db: Option<GeoSource>,
    pub city_db: Option<GeoSource>,
}

/// The validated world: every reference resolved, every value typed. Runtime code never re-checks.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub node: Node,
    pub admin: Admin,
    pub geo: Geo,
    pub regions: Vec<Region>,
    pub services: Vec<Service>,
    pub gateway: Gateway,
    pub dns: Dns,
}

impl World {
    /// Looks up a region by name.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// Looks up a service by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Counts for a one-line summary: (regions, AZs, instances, routes, zones).
    pub fn summary(&self) -> String {
        let azs: usize = self.regions.iter().map(|r| r.azs.len()).sum();
        let members: usize = self
            .regions
            .iter()
            .flat_map(|r| &r.pools)
            .map(|p| p.members.len())
            .sum();
        let listeners: usize = self.regions.iter().map(|r| r.listeners.len()).sum();
        let svc_instances: usize = self.services.iter().map(|s| s.instances.len()).sum();
        format!(
            "{} regions, {azs} AZs, {listeners} L4 listeners ({members} pool members), {} gateway instances, {} services ({svc_instances} instances), {} routes, {} zones, {} GSLB names",
            self.regions.len(),
            self.gateway.instances.len(),
            self.services.len(),
            self.gateway.routes.len(),
            self.dns.zones.len(),
            self.dns.gslb.len(),
        )
    }

    /// Applies command-line overrides of `[node]` (`--region`, `--only`).
    pub fn with_node(
        mut self,
        region: Option<String>,
        only: Option<Vec<Part>>,
    ) -> Result<World, String> {
        if let Some(r) = region {
            if self.region(&r).is_none() {
                let known: Vec<_> = self.regions.iter().map(|r| r.name.as_str()).collect();
                return Err(format!(
                    "unknown region {r:?}; the config declares {known:?}"
                ));
            }
            self.node.region = Some(r);
        }
        if let Some(parts) = only {
            self.node.parts = parts;
        }
        Ok(self)
    }
}

impl RawWorld {
    /// Parses TOML text into raw structs. A syntax error stops there (reported with its position);
    /// structural errors (unknown keys, wrong types) are all reported, see [`RawWorld::parse_all`].
    pub fn from_toml(src: &str, origin: &str) -> Result<RawWorld, ConfigErrors> {
        match RawWorld::parse_all(src) {
            (Some(raw), errors) if errors.is_empty() => Ok(raw),
            (_, errors) => Err(ConfigErrors {
                origin: origin.to_string(),
                errors,
            }),
        }
    }

    /// Parses TOML text, collecting every structural error rather than only the first: after
    /// an unknown key or a value of the wrong type, the offending key is taken out of a copy of
    /// the document and the copy parsed again (at most [`MAX_STRUCTURAL_ERRORS`] times). Returns
    /// the raw world of what is left, when it parses, so validation can report its problems
    /// too. Positions refer to `src`.
    pub fn parse_all(src: &str) -> (Option<RawWorld>, Vec<ConfigError>) {
        let mut errors: Vec<ConfigError> = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        let mut text = std::borrow::Cow::Borrowed(src);
        let mut raw = None;
        for _ in 0..MAX_STRUCTURAL_ERRORS {
            let e = match toml::from_str::<RawWorld>(&text) {
                Ok(r) => {
                    raw = Some(r);
                    break;
                }
                Err(e) => e,
            };
            let message = e.message().trim().to_string();
            let path = e.span().and_then(|span| path_at(&text, span.start));
            // a required key we took out because of its own error: nothing new to report
            let table = path.as_deref().unwrap_or("");
            if removed.iter().any(|r| is_missing_field(&message, table, r)) {
                break;
            }
            let Some(path) = path else {
                // a syntax error (only possible in `src` itself), or a missing top-level table
                errors.push(ConfigError {
                    path: "(document)".into(),
                    position: e
                        .span()
                        .filter(|_| removed.is_empty())
                        .map(|s| line_col(src, s.start)),
                    message,
                });
                break;
            };
            let position = if message.starts_with("unknown field") {
                key_position_of(src, &path)
            } else {
                None
            };
            errors.push(ConfigError {
                position: position.or_else(|| position_of(src, &path)),
                path: path.clone(),
                message,
            });
            let key = key_path(&path).to_string();
            match remove_key(&text, &key) {
                Some(next) if !removed.contains(&key) => {
                    removed.push(key);
                    text = std::borrow::Cow::Owned(next);
                }
                _ => break,
            }
        }
        errors.sort_by_key(|e| e.position.unwrap_or((usize::MAX, 0)));
        (raw, errors)
    }

    /// Validates everything at once and returns every problem, positioned in `src` when given.
    pub fn validate(&self, src: Option<&str>, origin: &str) -> Result<World, ConfigErrors> {
        let mut errs = Errors::default();
        let world = self.validate_into(&mut errs);
        if errs.is_empty() {
            return Ok(world);
        }
        let mut errors = errs.into_vec();
        if let Some(src) = src {
            for e in &mut errors {
                e.position = position_of(src, &e.path);
            }
            errors.sort_by_key(|e| e.position.unwrap_or((usize::MAX, 0)));
        }
        Err(ConfigErrors {
            origin: origin.to_string(),
            errors,
        })
    }

    fn validate_into(&self, errs: &mut Errors) -> World {
        let names = collect_names(&self.regions, errs);
        let regions: Vec<Region> = self
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| r.validate(i, &names, errs))
            .collect();
        crate::region::check_spill(&regions, errs);
        if regions.iter().filter(|r| r.default).count() > 1 {
            errs.push("regions", "at most one region may be `default = true`");
        }
        let services: Vec<Service> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| s.validate(i, &names, errs))
            .collect();
        let mut seen = HashMap::new();
        for (i, s) in services.iter().enumerate() {
            if let Some(prev) = seen.insert(s.name.clone(), i) {
                errs.push(
                    format!("services[{i}].name"),
                    format!("duplicate service {:?} (first at services[{prev}])", s.name),
                );
            }
        }
        let service_names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
        let gateway = self.gateway.validate(&names, &service_names, errs);
        let dns = self.dns.validate(&names, errs);

        let admin_listen = match self.admin.listen.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                errs.push(
                    "admin.listen",
                    format!("{:?} is not an address with a port", self.admin.listen),
                );
                "127.0.0.1:9901".parse().expect("literal address")
            }
        };
        if !admin_listen.ip().is_loopback() && self.admin.token.as_deref().unwrap_or("").is_empty()
        {
            errs.push(
                "admin.token",
                format!("the admin API listens on non-loopback {admin_listen}: set a token"),
            );
        }
        let node = self.validate_node(&names, errs);

        // Every listening address is used once. A DNS address serves UDP and TCP, which is one use.
        let mut listens: HashMap<SocketAddr, String> = HashMap::new();
        let mut claim = |addr: SocketAddr, path: String, errs: &mut Errors| {
            if let Some(prev) = listens.get(&addr) {
                errs.push(
                    path,
                    format!("listen address {addr} is already used by {prev}"),
                );
            } else {
                listens.insert(addr, path);
            }
        };
        claim(admin_listen, "admin.listen".into(), errs);
        for (i, a) in dns.listen.iter().enumerate() {
            claim(*a, format!("dns.listen[{i}]"), errs);
        }
        for (key, t) in [("dns.tls", &dns.tls), ("dns.https", &dns.https)] {
            for (i, a) in t.iter().flat_map(|t| t.listen.iter().enumerate()) {
                if a.port() != 0 {
                    claim(*a, format!("{key}.listen[{i}]"), errs);
                }
            }
        }
        for (i, r) in regions.iter().enumerate() {
            for (j, l) in r.listeners.iter().enumerate() {
                for a in &l.addrs {
                    claim(*a, format!("regions[{i}].listeners[{j}].port"), errs);
                }
                for a in l
                    .spill_port
                    .iter()
                    .flat_map(|p| l.addrs.iter().map(move |a| SocketAddr::new(a.ip(), *p)))
                {
                    claim(a, format!("regions[{i}].listeners[{j}].spill_port"), errs);
                }
            }
        }
        for (i, g) in gateway.instances.iter().enumerate() {
            claim(g.listen, format!("gateway.instances[{i}].listen"), errs);
            if let Some(t) = &g.tls {
                claim(t.listen, format!("gateway.instances[{i}].tls.listen"), errs);
                if let Some(r) = t.redirect_listen {
                    claim(
                        r,
                        format!("gateway.instances[{i}].tls.redirect_listen"),
                        errs,
                    );
                }
            }
        }
        for (i, s) in services.iter().enumerate() {
            for (j, inst) in s.instances.iter().enumerate() {
                if inst.demo {
                    claim(
                        inst.addr,
                        format!("services[{i}].instances[{j}].addr"),
                        errs,
                    );
                }
            }
        }

        let geo = Geo {
            country_db: self.geo.country_db.as_deref().map(geo_source),
            city_db: self.geo.city_db.as_deref().map(geo_source),
        };
        World {
            node,
            admin: Admin {
                listen: admin_listen,
                token: self.admin.token.clone(),
            },
            geo,
            regions,
            services,
            gateway,
            dns,
        }
    }

    fn validate_node(&self, names: &crate::region::Names, errs: &mut Errors) -> Node {
        if let Some(r) = &self.node.region {
            names.check_region(r, "node.region".into(), errs);
        }
        let parts = match &self.node.only {
            None => Part::ALL.to_vec(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let p = Part::parse(s);
                    if p.is_none() {
                        errs.push(
                            format!("node.only[{i}]"),
                            format!(
                                "unknown part {s:?}; expected dns, lb, gateway, services or admin"
                            ),
                        );
                    }
                    p
                })
                .collect(),
        };
        let lb_max_connections = self
            .node
            .lb_max_connections
            .unwrap_or(DEFAULT_LB_MAX_CONNECTIONS);
        if lb_max_connections == 0 {
            errs.push("node.lb_max_connections", "must be greater than 0");
        }
        Node {
            region: self.node.region.clone(),
            parts,
            lb_max_connections,
        }
    }
}

fn geo_source(s: &str) -> GeoSource {
    match s.strip_prefix("builtin:") {
        Some(name) => GeoSource::Builtin(name.to_string()),
        None => GeoSource::File(PathBuf::from(s)),
    }
}

impl World {
    /// Makes relative file paths (geo databases, zone files, key files) relative to `base`.
    pub fn resolve_paths(mut self, base: &Path) -> World {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for db in [&mut self.geo.country_db, &mut self.geo.city_db]
            .into_iter()
            .flatten()
        {
            if let GeoSource::File(p) = db {
                fix(p);
            }
        }
        let fix_str = |s: &mut String| {
            if Path::new(s).is_relative() {
                *s = base.join(&*s).to_string_lossy().into_owned();
            }
        };
        for z in &mut self.dns.zones {
            if let Some(f) = &mut z.file {
                fix_str(f);
            }
            for k in &mut z.dnssec_keys {
                fix_str(k);
            }
        }
        for t in [&mut self.dns.tls, &mut self.dns.https]
            .into_iter()
            .flatten()
        {
            for c in &mut t.certs {
                fix(&mut c.cert);
                fix(&mut c.key);
            }
            if let Some(k) = &mut t.ticket_keys {
                fix(k);
            }
        }
        for g in &mut self.gateway.instances {
            if let Some(t) = &mut g.tls {
                t.tls.resolve_paths(base);
            }
        }
        for s in &mut self.services {
            if let Some(t) = &mut s.tls {
                fix(&mut t.ca);
            }
        }
        for k in &mut self.gateway.jwt.keys {
            match &mut k.source {
                KeySource::SecretFile(f) | KeySource::PemFile(f) | KeySource::JwksFile(f) => {
                    fix_str(f)
                }
                KeySource::Secret(_) | KeySource::SecretEnv(_) => {}
            }
        }
        self
    }
}

/// How many structural errors one parse reports at most.
pub const MAX_STRUCTURAL_ERRORS: usize = 32;

/// The key a path ends in (`a.b[2]` → `a.b`): arrays are taken out whole.
fn key_path(path: &str) -> &str {
    let mut p = path;
    while p.ends_with(']') {
        match p.rfind('[') {
            Some(i) => p = &p[..i],
            None => break,
        }
    }
    p
}

/// True when serde says "missing field `k`" for the table at `path` and `path.k` is `removed`
/// (with no `path`, when `removed` ends in `k`).
fn is_missing_field(message: &str, path: &str, removed: &str) -> bool {
    let Some(rest) = message.strip_prefix("missing field `") else {
        return false;
    };
    let field = rest.split('`').next().unwrap_or_default();
    if path.is_empty() {
        // serde gives no position for some of these: match the key's name alone
        removed.rsplit('.').next() == Some(field)
    } else {
        removed == format!("{path}.{field}")
    }
}

/// The document with the key at dotted `path` removed, re-serialised; `None` when it is not
/// there.
fn remove_key(src: &str, path: &str) -> Option<String> {
    let mut doc: toml_edit::DocumentMut = src.parse().ok()?;
    let (parent, key) = match path.rfind('.') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    };
    let parent_item = if parent.is_empty() {
        doc.as_item_mut()
    } else {
        crate::locate::item_mut(doc.as_item_mut(), parent)?
    };
    parent_item.as_table_like_mut()?.remove(key)?;
    Some(doc.to_string())
}
