//! Regions and their availability zones: where clients are, what DNS hands out, failover order.
#![allow(missing_docs)] // fields and variants are the TOML keys and values of the same name, documented in docs/config.md

use crate::error::Errors;
use crate::lb::{Listener, Pool, RawListener, RawPool};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::IpAddr;

/// Raw `[[regions]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub name: String,
    /// Addresses DNS hands out for this region; its L4 listeners bind them.
    pub vips: Vec<String>,
    /// Two-letter continent codes whose clients prefer this region (`NA`, `SA`, `EU`, `AF`, `AS`, `OC`, `AN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continents: Vec<String>,
    /// ISO 3166 country codes whose clients prefer this region (more specific than continents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// Client networks that prefer this region (most specific of all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Regions to fail over to, in order, when this one is down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<String>,
    /// Latitude and longitude, for the `nearest` DNS policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<[f64; 2]>,
    /// Clients whose location is unknown go to the default region (at most one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// The region is up while its pools have at least this many healthy members.
    #[serde(default = "one")]
    pub min_healthy: u32,
    pub azs: Vec<RawAz>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<RawPool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<RawListener>,
}

fn one() -> u32 {
    1
}

/// Raw `[[regions.azs]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAz {
    pub name: String,
    /// Share of the region's traffic relative to the other AZs (equal by default).
    #[serde(default = "one")]
    pub weight: u32,
}

/// A validated region.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub name: String,
    pub vips: Vec<IpAddr>,
    pub continents: Vec<String>,
    pub countries: Vec<String>,
    pub networks: Vec<IpNet>,
    /// Names of the regions to fail over to, in order (all declared, never this one).
    pub failover: Vec<String>,
    pub coordinates: Option<(f64, f64)>,
    pub default: bool,
    pub min_healthy: u32,
    pub azs: Vec<Az>,
    pub pools: Vec<Pool>,
    pub listeners: Vec<Listener>,
}

impl Region {
    /// Looks up an AZ of this region by name.
    pub fn az(&self, name: &str) -> Option<&Az> {
        self.azs.iter().find(|a| a.name == name)
    }

    /// Looks up a pool of this region by name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// A validated availability zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Az {
    pub name: String,
    pub weight: u32,
}

const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Names of every region and of every AZ (with its region), for reference checks elsewhere.
#[derive(Debug, Default)]
pub struct Names {
    pub regions: HashSet<String>,
    /// (region, az)
    pub azs: HashSet<(String, String)>,
}

impl Names {
    /// Checks that `az` is declared (in `region` when given) and records an error otherwise.
    pub fn check_az(&self, region: Option<&str>, az: &str, path: String, errs: &mut Errors) {
        let ok = match region {
            Some(r) => self.azs.contains(&(r.to_string(), az.to_string())),
            None => self.azs.iter().any(|(_, a)| a == az),
        };
        if !ok {
            let where_ = region
                .map(|r| format!(" of region {r:?}"))
                .unwrap_or_default();
            errs.push(
                path,
                format!("unknown AZ {az:?}{where_}; declare it under [[regions.azs]]"),
            );
        }
    }

    /// Checks that `region` is declared.
    pub fn check_region(&self, region: &str, path: String, errs: &mut Errors) -> bool {
        let ok = self.regions.contains(region);
        if !ok {
            errs.push(path, format!("unknown region {region:?}"));
        }
        ok
    }
}

/// Collects region and AZ names (reporting duplicates) before anything refers to them.
pub fn collect_names(raw: &[RawRegion], errs: &mut Errors) -> Names {
    let mut names = Names::default();
    for (i, r) in raw.iter().enumerate() {
        if !valid_name(&r.name) {
            errs.push(format!("regions[{i}].name"), name_rule(&r.name));
        }
        if !names.regions.insert(r.name.clone()) {
            errs.push(
                format!("regions[{i}].name"),
                format!("duplicate region {:?}", r.name),
            );
        }
        for (j, az) in r.azs.iter().enumerate() {
            if !valid_name(&az.name) {
                errs.push(format!("regions[{i}].azs[{j}].name"), name_rule(&az.name));
            }
            if names.azs.iter().any(|(_, a)| a == &az.name) {
                errs.push(
                    format!("regions[{i}].azs[{j}].name"),
                    format!("duplicate AZ {:?} (AZ names are global)", az.name),
                );
            }
            names.azs.insert((r.name.clone(), az.name.clone()));
        }
    }
    names
}

/// Names are used in URLs, metrics labels and DNS: keep them simple.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The message for a name that [`valid_name`] rejects.
pub fn name_rule(s: &str) -> String {
    format!("invalid name {s:?}: use 1-63 letters, digits, '-' or '_'")
}

impl RawRegion {
    /// Validates one region (pools and listeners included).
    pub fn validate(&self, i: usize, names: &Names, errs: &mut Errors) -> Region {
        let p = format!("regions[{i}]");
        let vips: Vec<IpAddr> = errs.parse_list(&self.vips, &format!("{p}.vips"), "an IP address");
        if self.vips.is_empty() {
            errs.push(format!("{p}.vips"), "a region needs at least one VIP");
        }
        for (j, c) in self.continents.iter().enumerate() {
            if !CONTINENTS.contains(&c.as_str()) {
                errs.push(
                    format!("{p}.continents[{j}]"),
                    format!("unknown continent {c:?}; expected one of {CONTINENTS:?}"),
                );
            }
        }
        for (j, c) in self.countries.iter().enumerate() {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                errs.push(
                    format!("{p}.countries[{j}]"),
                    format!("{c:?} is not an ISO 3166 alpha-2 code (e.g. \"US\")"),
                );
            }
        }
        let networks = errs.networks(&self.networks, &format!("{p}.networks"));
        for (j, f) in self.failover.iter().enumerate() {
            if f == &self.name {
                errs.push(
                    format!("{p}.failover[{j}]"),
                    "a region cannot fail over to itself",
                );
            } else {
                names.check_region(f, format!("{p}.failover[{j}]"), errs);
            }
        }
        if let Some([lat, lon]) = self.coordinates {
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                errs.push(
                    format!("{p}.coordinates"),
                    "expected [latitude (-90..90), longitude (-180..180)]",
                );
            }
        }
        if self.azs.is_empty() {
            errs.push(format!("{p}.azs"), "a region needs at least one AZ");
        }
        let azs = self
            .azs
            .iter()
            .enumerate()
            .map(|(j, a)| {
                if a.weight == 0 {
                    errs.push(
                        format!("{p}.azs[{j}].weight"),
                        "weight must be greater than 0",
                    );
                }
                Az {
                    name: a.name.clone(),
                    weight: a.weight,
                }
            })
            .collect();
        let pools: Vec<Pool> = self
            .pools
            .iter()
            .enumerate()
            .map(|(j, pool)| pool.validate(&format!("{p}.pools[{j}]"), &self.name, names, errs))
            .collect();
        let mut seen = HashSet::new();
        for (j, pool) in pools.iter().enumerate() {
            if !seen.insert(pool.name.clone()) {
                errs.push(
                    format!("{p}.pools[{j}].name"),
                    format!("duplicate pool {:?}", pool.name),
                );
            }
        }
        let listeners = self
            .listeners
            .iter()
            .enumerate()
            .map(|(j, l)| l.validate(&format!("{p}.listeners[{j}]"), &vips, &pools, errs))
            .collect();
        Region {
            name: self.name.clone(),
            vips,
            continents: self.continents.clone(),
            countries: self.countries.clone(),
            networks,
            failover: self.failover.clone(),
            coordinates: self.coordinates.map(|[a, b]| (a, b)),
            default: self.default,
            min_healthy: self.min_healthy,
            azs,
            pools,
            listeners,
        }
    }
}

// --- remote spill (issue 17) ---

/// Where `pool` of `region` spills new connections, in order: each target region with the
/// spill ingress addresses of its listeners (`spill_port` on every listener address). The
/// regions are the pool's `spill_to`, else the region's `failover` order; a default target
/// without a spill ingress is skipped (an explicit one is a validation error).
pub fn spill_targets<'a>(
    regions: &'a [Region],
    region: &Region,
    pool: &crate::lb::Pool,
) -> Vec<(&'a Region, Vec<std::net::SocketAddr>)> {
    let names = pool.spill_to.as_ref().unwrap_or(&region.failover);
    names
        .iter()
        .filter(|n| **n != region.name)
        .filter_map(|n| regions.iter().find(|r| &r.name == n))
        .filter_map(|r| {
            let addrs: Vec<std::net::SocketAddr> = r
                .listeners
                .iter()
                .filter_map(|l| l.spill_port.map(|p| (l, p)))
                .flat_map(|(l, p)| {
                    l.addrs
                        .iter()
                        .map(move |a| std::net::SocketAddr::new(a.ip(), p))
                })
                .collect();
            (!addrs.is_empty()).then_some((r, addrs))
        })
        .collect()
}

/// Cross-region spill checks, once every region is validated: a region named in a pool's
/// `spill_to` must have a spill ingress (a listener with `spill_port`).
pub fn check_spill(regions: &[Region], errs: &mut Errors) {
    for (i, r) in regions.iter().enumerate() {
        for (j, pool) in r.pools.iter().enumerate() {
            let Some(to) = &pool.spill_to else { continue };
            for (k, name) in to.iter().enumerate() {
                let Some(target) = regions.iter().find(|t| &t.name == name && t.name != r.name)
                else {
                    continue; // unknown or self: reported by the pool's own validation
                };
                if !target.listeners.iter().any(|l| l.spill_port.is_some()) {
                    errs.push(
                        format!("regions[{i}].pools[{j}].spill_to[{k}]"),
                        format!(
                            "region {name:?} has no spill ingress; give one of its listeners a `spill_port`"
                        ),
                    );
                }
            }
        }
    }
}
// --- end remote spill ---
