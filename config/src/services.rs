//! Internal services behind the gateway, with their instances spread over regions and AZs.
#![allow(missing_docs)] // fields and variants are the TOML keys and values of the same name, documented in docs/config.md

use crate::duration::{secs, HumanDuration};
use crate::error::Errors;
use crate::health::{HealthCheck, Passive, Policy, RawHealthCheck, RawPassive};
use crate::region::{name_rule, valid_name, Names};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// Raw `[[services]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: String,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub health: RawHealthCheck,
    #[serde(default)]
    pub passive: RawPassive,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Remote instances (issue 17): when no instance in a gateway's region is healthy, call the
    /// instances of the next region in that region's `failover` order (default on).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub remote_instances: bool,
    /// Call the instances over TLS: `tls = { ca = "ca.pem", server_name = "orders.internal" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawUpstreamTls>,
    pub instances: Vec<RawInstance>,
}

/// Raw `tls = { ca = ..., server_name = ... }` of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// CA bundle (PEM) the instances' certificates are verified against.
    pub ca: String,
    /// Name sent as SNI and verified in the certificate (default: the instance's IP address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Validated upstream TLS of a service (the CA file is read by the gateway and `check`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    pub ca: std::path::PathBuf,
    pub server_name: Option<String>,
}

fn yes() -> bool {
    true
}
fn is_yes(v: &bool) -> bool {
    *v
}

fn default_connect_timeout() -> HumanDuration {
    secs(1)
}

/// Raw `[[services.instances]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    pub name: String,
    pub addr: String,
    pub region: String,
    pub az: String,
    #[serde(default = "one")]
    pub weight: u32,
    /// Run Switchyard's built-in demo implementation of this service at `addr`, in-process.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
}

fn one() -> u32 {
    1
}

/// A validated service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub policy: Policy,
    pub health: HealthCheck,
    pub passive: Passive,
    pub connect_timeout: Duration,
    pub remote_instances: bool,
    pub tls: Option<UpstreamTls>,
    pub instances: Vec<ServiceInstance>,
}

/// A validated service instance (its region and AZ are declared).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceInstance {
    pub name: String,
    pub addr: SocketAddr,
    pub region: String,
    pub az: String,
    pub weight: u32,
    pub demo: bool,
}

impl RawService {
    /// Validates the service at `services[i]`.
    pub fn validate(&self, i: usize, names: &Names, errs: &mut Errors) -> Service {
        let p = format!("services[{i}]");
        if !valid_name(&self.name) {
            errs.push(format!("{p}.name"), name_rule(&self.name));
        }
        if self.instances.is_empty() {
            errs.push(
                format!("{p}.instances"),
                "a service needs at least one instance",
            );
        }
        let instances = self
            .instances
            .iter()
            .enumerate()
            .filter_map(|(j, inst)| {
                let ip = format!("{p}.instances[{j}]");
                if !valid_name(&inst.name) {
                    errs.push(format!("{ip}.name"), name_rule(&inst.name));
                }
                if inst.weight == 0 {
                    errs.push(format!("{ip}.weight"), "weight must be greater than 0");
                }
                if names.check_region(&inst.region, format!("{ip}.region"), errs) {
                    names.check_az(Some(&inst.region), &inst.az, format!("{ip}.az"), errs);
                }
                let addr = match inst.addr.parse::<SocketAddr>() {
                    Ok(a) => a,
                    Err(_) => {
                        errs.push(
                            format!("{ip}.addr"),
                            format!("{:?} is not an address with a port", inst.addr),
                        );
                        return None;
                    }
                };
                Some(ServiceInstance {
                    name: inst.name.clone(),
                    addr,
                    region: inst.region.clone(),
                    az: inst.az.clone(),
                    weight: inst.weight,
                    demo: inst.demo,
                })
            })
            .collect();
        Service {
            name: self.name.clone(),
            policy: self.policy,
            health: self.health.validate(&format!("{p}.health"), errs),
            passive: self.passive.validate(&format!("{p}.passive"), errs),
            connect_timeout: self.connect_timeout.0,
            remote_instances: self.remote_instances,
            tls: self.tls.as_ref().map(|t| {
                if t.ca.is_empty() {
                    errs.push(
                        format!("{p}.tls.ca"),
                        "give the CA bundle (PEM) to verify the instances with",
                    );
                }
                if let Some(n) = &t.server_name {
                    let ok = n.parse::<std::net::IpAddr>().is_ok()
                        || (!n.is_empty()
                            && n.len() <= 253
                            && n.split('.').all(|l| {
                                !l.is_empty()
                                    && l.len() <= 63
                                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                            }));
                    if !ok {
                        errs.push(
                            format!("{p}.tls.server_name"),
                            format!("{n:?} is not a DNS name or an IP address"),
                        );
                    }
                }
                UpstreamTls {
                    ca: t.ca.clone().into(),
                    server_name: t.server_name.clone(),
                }
            }),
            instances,
        }
    }
}
