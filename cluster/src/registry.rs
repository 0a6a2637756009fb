//! The registry: instances register themselves under `BASE/registry/GROUP/NAME` with a lease;
//! every node adds the live ones to the service (gateway upstream) or the L4 pool named in their
//! record. This is a pure rewrite of the validated world ([`overlay`]); the binary then applies
//! the result through its normal reload, so balancing, health checks and draining work exactly
//! as for static instances and members.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use switchyard_config::lb::Member;
use switchyard_config::region::valid_name;
use switchyard_config::services::ServiceInstance;
use switchyard_config::World;

/// What an instance publishes about itself (JSON in etcd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The service this instance belongs to (empty when it joins an L4 pool instead).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// The L4 pool of `region` this member joins, instead of a service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Instance name (admin targets, logs).
    pub name: String,
    /// Where it serves.
    pub addr: SocketAddr,
    /// Its region.
    pub region: String,
    /// Its availability zone.
    pub az: String,
    #[serde(default = "one")]
    /// Relative weight (default 1).
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl Registration {
    /// The default instance name: `GROUP-IP-PORT` (group: the service or pool) with dots as dashes.
    pub fn default_name(group: &str, addr: SocketAddr) -> String {
        format!("{group}-{}-{}", addr.ip(), addr.port())
            .replace(['.', ':'], "-")
            .chars()
            .take(63)
            .collect()
    }

    /// The service or pool it joins.
    pub fn group(&self) -> &str {
        self.pool.as_deref().unwrap_or(&self.service)
    }

    /// Its key under the registry prefix.
    pub fn key(&self, registry_prefix: &str) -> String {
        format!("{registry_prefix}{}/{}", self.group(), self.name)
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
        if let Err(why) = add(&mut w, r) {
            skipped.push(format!(
                "registered instance {} ({}) of {}: {why}",
                r.name,
                r.addr,
                r.group()
            ));
        }
    }
    (w, skipped)
}

/// Adds one registration; `Ok` also when the world already has it.
fn add(w: &mut World, r: &Registration) -> Result<(), String> {
    if !valid_name(&r.name) {
        return Err(format!("invalid instance name {:?}", r.name));
    }
    if r.weight == 0 {
        return Err("weight 0".into());
    }
    if r.pool.is_some() != r.service.is_empty() {
        return Err("name either a service or a pool".into());
    }
    let region = w
        .region(&r.region)
        .ok_or_else(|| format!("the world has no region {:?}", r.region))?;
    if region.az(&r.az).is_none() {
        return Err(format!("region {:?} has no AZ {:?}", r.region, r.az));
    }
    if let Some(pool) = &r.pool {
        let region = w
            .regions
            .iter_mut()
            .find(|x| x.name == r.region)
            .expect("checked above");
        let p = region
            .pools
            .iter_mut()
            .find(|p| &p.name == pool)
            .ok_or_else(|| format!("region {:?} has no pool {pool:?}", r.region))?;
        if !p
            .members
            .iter()
            .any(|m| m.name == r.name || m.addr == r.addr)
        {
            p.members.push(Member {
                name: r.name.clone(),
                addr: r.addr,
                az: r.az.clone(),
                weight: r.weight,
            });
        }
        return Ok(());
    }
    let svc = w
        .services
        .iter_mut()
        .find(|s| s.name == r.service)
        .ok_or_else(|| format!("the world has no service {:?}", r.service))?;
    if !svc
        .instances
        .iter()
        .any(|i| i.name == r.name || i.addr == r.addr)
    {
        svc.instances.push(ServiceInstance {
            name: r.name.clone(),
            addr: r.addr,
            region: r.region.clone(),
            az: r.az.clone(),
            weight: r.weight,
            demo: false,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(service: &str, name: &str, addr: &str, region: &str, az: &str) -> Registration {
        Registration {
            service: service.into(),
            pool: None,
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
    fn pool_members_join_their_regions_pool() {
        let world = switchyard_config::demo_world();
        let mut m = reg("", "gw-extra", "127.0.1.13:8000", "us-east", "us-east-b");
        m.pool = Some("us-east-gateways".into());
        let mut wrong_region = m.clone();
        wrong_region.region = "eu-west".into();
        wrong_region.az = "eu-west-a".into();
        let mut both = m.clone();
        both.service = "user".into();
        let (w, skipped) = overlay(&world, &[m, wrong_region, both]);
        let members = &w.region("us-east").unwrap().pools[0].members;
        assert_eq!(members.len(), 3);
        assert_eq!(members[2].name, "gw-extra");
        assert_eq!(members[2].az, "us-east-b");
        assert_eq!(w.region("eu-west").unwrap().pools[0].members.len(), 2);
        assert_eq!(w.services, world.services, "services untouched");
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("region \"eu-west\" has no pool \"us-east-gateways\""));
        assert!(skipped[1].contains("either a service or a pool"));
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
