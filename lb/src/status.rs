//! A status snapshot for the admin API / status page: why traffic goes where it goes.
#![allow(missing_docs)] // the JSON shape of `/status`'s L4 part, documented in docs/admin.md

use crate::listener::ListenerRt;
use crate::plan::Key;
use crate::pool::PoolRt;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use switchyard_balance::{ActiveState, AzShare};

#[derive(Debug, Clone, Serialize)]
pub struct SniRouteStatus {
    pub names: Vec<String>,
    pub pool: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LbStatus {
    pub pools: Vec<PoolStatus>,
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    pub region: String,
    pub name: String,
    pub policy: &'static str,
    pub fail_open: bool,
    /// Current share of new connections per AZ.
    pub shares: Vec<AzShareStatus>,
    pub members: Vec<MemberStatus>,
    /// New connections that found every member down.
    pub all_down_picks: u64,
    /// `spilled to eu-west: no healthy member in us-east` while every new connection spills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spilling: Option<String>,
    /// Regions this pool spills to, in order (empty: it refuses when nothing is healthy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spill_to: Vec<String>,
    /// Connections spilled since the pool version was built.
    pub spilled: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AzShareStatus {
    pub az: String,
    pub weight: u32,
    pub share: f64,
    pub up_members: usize,
    pub members: usize,
}

impl From<AzShare> for AzShareStatus {
    fn from(s: AzShare) -> Self {
        AzShareStatus {
            az: s.az,
            weight: s.weight,
            share: s.share,
            up_members: s.up_members,
            members: s.members,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub name: String,
    pub addr: SocketAddr,
    pub az: String,
    pub weight: u32,
    /// Takes new connections (active check, passive ejection and admin state combined).
    pub up: bool,
    /// `up`, `down` or `unchecked`.
    pub active_check: &'static str,
    /// Remaining passive ejection in milliseconds.
    pub ejected_ms: Option<u64>,
    /// `drain` or `fail` when the admin state applies.
    pub admin: Option<&'static str>,
    /// Why the last state change happened.
    pub reason: String,
    /// Open connections through this pool.
    pub active_connections: u64,
    /// Open connections to this address from anything in the process.
    pub backend_connections: u64,
    pub draining: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListenerStatus {
    pub region: String,
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    pub pool: String,
    /// SNI routes (names → pool), in order; empty for a listener that does not route by SNI.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sni: Vec<SniRouteStatus>,
    /// Where connections no SNI route takes go (`None`: closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni_default: Option<String>,
    pub active_connections: usize,
    pub max_connections: u32,
}

pub(crate) fn collect(
    pools: &HashMap<Key, Arc<PoolRt>>,
    listeners: &HashMap<Key, Arc<ListenerRt>>,
) -> LbStatus {
    let mut ps: Vec<PoolStatus> = pools
        .values()
        .map(|p| {
            let snap = p.snap.load();
            let sel = &snap.selector;
            PoolStatus {
                region: snap.spec.key.0.clone(),
                name: snap.spec.key.1.clone(),
                policy: sel.policy().as_str(),
                fail_open: snap.spec.fail_open,
                shares: sel.shares().into_iter().map(Into::into).collect(),
                members: snap
                    .members
                    .iter()
                    .map(|m| {
                        let h = m.health.state();
                        MemberStatus {
                            name: m.spec.name.clone(),
                            addr: m.spec.addr,
                            az: m.spec.az.clone(),
                            weight: m.spec.weight,
                            up: h.up,
                            active_check: match h.active {
                                ActiveState::Up => "up",
                                ActiveState::Down => "down",
                                ActiveState::Unchecked => "unchecked",
                            },
                            ejected_ms: h.ejected_for.map(|d| d.as_millis() as u64),
                            admin: h.admin.map(|a| a.as_str()),
                            reason: h.reason.to_string(),
                            active_connections: m.active(),
                            backend_connections: h.active_conns,
                            draining: m.is_draining(),
                        }
                    })
                    .collect(),
                all_down_picks: sel.all_down_count(),
                spilling: snap.spill.as_ref().and_then(|sp| {
                    let why = crate::spill::decide(&sp.spec, sel)?;
                    Some(crate::spill::explain(&snap.spec.key.0, &sp.spec, why))
                }),
                spill_to: snap
                    .spill
                    .iter()
                    .flat_map(|sp| sp.spec.targets.iter().map(|t| t.region.clone()))
                    .collect(),
                spilled: snap.spill.as_ref().map_or(0, |sp| {
                    sp.spilled.load(std::sync::atomic::Ordering::Relaxed)
                }),
            }
        })
        .collect();
    ps.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
    let mut ls: Vec<ListenerStatus> = listeners
        .values()
        .map(|l| {
            let s = l.settings.load();
            ListenerStatus {
                region: s.spec.key.0.clone(),
                name: s.spec.key.1.clone(),
                addrs: l.bound.clone(),
                pool: s.spec.pool.1.clone(),
                sni: s
                    .spec
                    .sni
                    .iter()
                    .flat_map(|x| &x.routes)
                    .map(|(names, pool)| SniRouteStatus {
                        names: names.clone(),
                        pool: pool.1.clone(),
                    })
                    .collect(),
                sni_default: s
                    .spec
                    .sni
                    .as_ref()
                    .and_then(|x| x.default.as_ref())
                    .map(|d| d.1.clone()),
                active_connections: l.active(),
                max_connections: s.spec.max_connections,
            }
        })
        .collect();
    ls.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
    LbStatus {
        pools: ps,
        listeners: ls,
    }
}
