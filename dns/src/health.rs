//! Region health for GSLB answers, read from the process-wide view in `switchyard-balance`:
//! - regions this node runs (L4): up while their pools have at least `min_healthy` healthy
//!   members (the same `BackendHealth` the L4 balancer uses);
//! - other regions: active probes of their VIPs (`probe_port` + `probe` of a GSLB name);
//! - administrative overrides per region (drain, fail) on top of both;
//! - a region whose balancer spills (issue 17: fewer healthy members than a pool's
//!   `spill_below`, with a spill target configured) is [`RegionState::Spilling`], which DNS treats
//!   as down: spilling bridges the TTL, it is not a steady state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use switchyard_balance::{AdminMode, AdminState, BackendHealth, CheckSpec, HealthRegistry, Labels};
use switchyard_config::world::Part;
use switchyard_config::World;
use tokio_util::sync::CancellationToken;

use crate::gslb::{RegionHealth, RegionState};

/// How one region's health is decided.
#[derive(Debug)]
struct RegionView {
    labels: Labels,
    /// Pool members of a region this node runs.
    members: Vec<Arc<BackendHealth>>,
    min_healthy: usize,
    /// Spill threshold (`spill_below`) of the region's pools that can spill, 0 when none can.
    spill_below: usize,
    /// VIP probes of a region this node does not run.
    probes: Vec<Arc<BackendHealth>>,
}

/// The live health view GSLB answers read (lock-free: atomics inside `BackendHealth`).
#[derive(Debug, Default)]
pub struct LiveHealth {
    regions: HashMap<String, RegionView>,
    admin: Option<AdminState>,
}

impl LiveHealth {
    /// Builds the view for `world`, starting active checks through `registry` (pool members of
    /// regions this node runs with their pool's check; VIP probes for the others). Call inside a
    /// tokio runtime; the checks stop with `shutdown`.
    pub fn from_world(
        world: &World,
        registry: &HealthRegistry,
        shutdown: &CancellationToken,
    ) -> Self {
        let runs_lb = world.node.runs(Part::Lb);
        let mut regions = HashMap::new();
        for r in &world.regions {
            let labels = Labels {
                region: Some(r.name.clone()),
                az: None,
                instance: None,
            };
            let local = runs_lb && world.node.in_region(&r.name) && !r.pools.is_empty();
            let mut members = Vec::new();
            let mut probes = Vec::new();
            let mut spill_below = 0;
            if local {
                for pool in r.pools.iter().filter(|p| !p.fail_open) {
                    if !switchyard_config::region::spill_targets(&world.regions, r, pool).is_empty()
                    {
                        spill_below = spill_below.max(pool.spill_below.max(1) as usize);
                    }
                }
                for pool in &r.pools {
                    let spec = CheckSpec::from(&pool.health);
                    for m in &pool.members {
                        let h = registry.ensure_checked(m.addr, &spec, shutdown.clone());
                        registry.set_labels(
                            m.addr,
                            Labels {
                                region: Some(r.name.clone()),
                                az: Some(m.az.clone()),
                                instance: Some(m.name.clone()),
                            },
                        );
                        members.push(h);
                    }
                }
            } else {
                for g in world
                    .dns
                    .gslb
                    .iter()
                    .filter(|g| g.regions.contains(&r.name))
                {
                    let Some(port) = g.probe_port else { continue };
                    let spec = CheckSpec::from(&g.probe);
                    for vip in &r.vips {
                        let addr = SocketAddr::new(*vip, port);
                        if probes.iter().any(|p: &Arc<BackendHealth>| p.addr() == addr) {
                            continue;
                        }
                        let h = registry.ensure_checked(addr, &spec, shutdown.clone());
                        registry.set_labels(addr, labels.clone());
                        probes.push(h);
                    }
                }
            }
            let view = RegionView {
                labels,
                members,
                min_healthy: r.min_healthy.max(1) as usize,
                spill_below,
                probes,
            };
            regions.insert(r.name.clone(), view);
        }
        LiveHealth {
            regions,
            admin: registry.admin().cloned(),
        }
    }

    /// Marks `region` as able to spill while fewer than `below` members are healthy (tests;
    /// [`LiveHealth::from_world`] reads it from the pools' `spill_below` and spill targets).
    pub fn with_spill(mut self, region: &str, below: usize) -> Self {
        if let Some(v) = self.regions.get_mut(region) {
            v.spill_below = below;
        }
        self
    }

    /// A view over explicit backends (tests): `(region, members, min_healthy)`.
    pub fn from_members(
        admin: Option<AdminState>,
        regions: Vec<(String, Vec<Arc<BackendHealth>>, usize)>,
    ) -> Self {
        let regions = regions
            .into_iter()
            .map(|(name, members, min_healthy)| {
                let labels = Labels {
                    region: Some(name.clone()),
                    az: None,
                    instance: None,
                };
                (
                    name,
                    RegionView {
                        labels,
                        members,
                        min_healthy,
                        spill_below: 0,
                        probes: Vec::new(),
                    },
                )
            })
            .collect();
        LiveHealth { regions, admin }
    }
}

impl RegionHealth for LiveHealth {
    fn state(&self, region: &str) -> RegionState {
        let Some(view) = self.regions.get(region) else {
            return RegionState::Up;
        };
        match self.admin.as_ref().and_then(|a| a.mode_for(&view.labels)) {
            Some(AdminMode::Fail) => return RegionState::ForcedDown,
            Some(AdminMode::Drain) => return RegionState::Drained,
            None => {}
        }
        if !view.members.is_empty() {
            let healthy = view.members.iter().filter(|m| m.is_up()).count();
            return if healthy < view.spill_below {
                RegionState::Spilling
            } else if healthy >= view.min_healthy {
                RegionState::Up
            } else {
                RegionState::Down
            };
        }
        if !view.probes.is_empty() && !view.probes.iter().any(|p| p.is_up()) {
            return RegionState::Down;
        }
        RegionState::Up
    }
}
