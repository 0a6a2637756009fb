//! The service registry: instances register themselves under `BASE/registry/SERVICE/NAME` with a
//! lease; every node adds the live ones to the service named in their record. This is a pure
//! rewrite of the validated world ([`overlay`]); the binary then applies the result through its
//! normal reload, so balancing, health checks and draining work exactly as for static instances.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use switchyard_config::region::valid_name;
use switchyard_config::services::ServiceInstance;
use switchyard_config::World;

/// What an instance publishes about itself (JSON in etcd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub service: String,
    pub name: String,
    pub addr: SocketAddr,
    pub region: String,
    pub az: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl Registration {
    /// The default instance name: `SERVICE-IP-PORT` with dots as dashes.
    pub fn default_name(service: &str, addr: SocketAddr) -> String {
        format!("{service}-{}-{}", addr.ip(), addr.port())
            .replace(['.', ':'], "-")
            .chars()
            .take(63)
            .collect()
    }

    /// Its key under the registry prefix.
    pub fn key(&self, registry_prefix: &str) -> String {
        format!("{registry_prefix}{}/{}", self.service, self.name)
    }
}

/// Adds every usable registration to its service. Returns the new world and one message per
/// registration that could not be used (unknown service, region or AZ; bad name or weight).
/// An instance whose name or address the service already has is left as configured (the file
/// wins), without a message.
pub fn overlay(world: &World, regs: &[Registration]) -> (World, Vec<String>) {
    let mut w = world.clone();
    let mut skipped = Vec::new();
    for r in regs {
        let why = if !valid_name(&r.name) {
            Some(format!("invalid instance name {:?}", r.name))
        } else if r.weight == 0 {
            Some("weight 0".to_string())
        } else if w.service(&r.service).is_none() {
            Some(format!("the world has no service {:?}", r.service))
        } else {
            match w.region(&r.region) {
                None => Some(format!("the world has no region {:?}", r.region)),
                Some(region) if region.az(&r.az).is_none() => {
                    Some(format!("region {:?} has no AZ {:?}", r.region, r.az))
                }
                Some(_) => None,
            }
        };
        if let Some(why) = why {
            skipped.push(format!(
                "registered instance {} ({}) of {}: {why}",
                r.name, r.addr, r.service
            ));
            continue;
        }
        let svc = w
            .services
            .iter_mut()
            .find(|s| s.name == r.service)
            .expect("checked above");
        if svc
            .instances
            .iter()
            .any(|i| i.name == r.name || i.addr == r.addr)
        {
            continue;
        }
        svc.instances.push(ServiceInstance {
            name: r.name.clone(),
            addr: r.addr,
            region: r.region.clone(),
            az: r.az.clone(),
            weight: r.weight,
            demo: false,
        });
    }
    (w, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(service: &str, name: &str, addr: &str, region: &str, az: &str) -> Registration {
        Registration {
            service: service.into(),
            name: name.into(),
            addr: addr.parse().unwrap(),
            region: region.into(),
            az: az.into(),
            weight: 1,
        }
    }

    #[test]
    fn adds_known_services_and_reports_the_rest() {
        let world = switchyard_config::demo_world();
        let regs = vec![
            reg(
                "user",
                "user-extra",
                "127.0.5.1:7001",
                "us-east",
                "us-east-a",
            ),
            reg("nope", "x", "127.0.5.2:7001", "us-east", "us-east-a"),
            reg("user", "y", "127.0.5.3:7001", "mars", "us-east-a"),
            reg("user", "z", "127.0.5.4:7001", "us-east", "eu-west-a"),
            // Same address as a configured instance: the file wins.
            reg("user", "dup", "127.0.11.1:7001", "us-east", "us-east-a"),
        ];
        let (w, skipped) = overlay(&world, &regs);
        let user = w.service("user").unwrap();
        assert_eq!(user.instances.len(), 5);
        let added = user.instances.last().unwrap();
        assert_eq!(added.name, "user-extra");
        assert_eq!(added.addr, "127.0.5.1:7001".parse().unwrap());
        assert!(!added.demo);
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].contains("no service \"nope\""));
        assert!(skipped[1].contains("no region \"mars\""));
        assert!(skipped[2].contains("has no AZ \"eu-west-a\""));
        assert_eq!(overlay(&world, &[]).0, world);
    }

    #[test]
    fn default_names_are_valid() {
        let n = Registration::default_name("user", "127.0.5.1:7001".parse().unwrap());
        assert_eq!(n, "user-127-0-5-1-7001");
        assert!(valid_name(&n));
        assert!(valid_name(&Registration::default_name(
            "user",
            "[::1]:80".parse().unwrap()
        )));
    }
}
