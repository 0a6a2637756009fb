//! What a cluster node does in the background, every 100 ms, on the world it runs:
//! - **publish** the health of each region whose balancer it runs (healthy members over the
//!   region's pools, the same view the L4 balancer uses) under its lease;
//! - **observe** (DNS nodes) every region it does not balance: its verdict from the live reports
//!   and its own VIP probes, published as a vote; when at least `quorum` votes say down the
//!   region is failed over through the shared `AdminState` (`fail region`), and restored when
//!   that is no longer so;
//! - **obey** cluster-wide admin actions written by any node's admin API, with an audit line
//!   naming the node and who.

use super::EtcdSource;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchyard_balance::{ActiveState, AdminState, AdminTarget, CheckSpec, HealthRegistry};
use switchyard_cluster::health::{fail_over, verdict};
use switchyard_cluster::{AdminEntry, NodeRecord, RegionReport, Verdict};
use switchyard_config::health::HealthCheck;
use switchyard_config::{Part, World};

const TICK: Duration = Duration::from_millis(100);

/// A VIP probe a DNS node runs itself in cluster mode (taken from the GSLB names).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub region: String,
    pub addr: SocketAddr,
    pub check: HealthCheck,
}

/// Regions of `world` this node balances itself (their health is local, not observed).
fn local_regions(world: &World) -> HashSet<String> {
    world
        .regions
        .iter()
        .filter(|r| {
            world.node.runs(Part::Lb) && world.node.in_region(&r.name) && !r.pools.is_empty()
        })
        .map(|r| r.name.clone())
        .collect()
}

/// The VIP probes of the regions a DNS node observes, and the world without them: in cluster
/// mode the observer probes and decides, and the DNS server sees its verdict as admin state.
pub fn take_probes(mut world: World) -> (World, Vec<Probe>) {
    if !world.node.runs(Part::Dns) {
        return (world, Vec::new());
    }
    let local = local_regions(&world);
    let mut probes: Vec<Probe> = Vec::new();
    for g in &mut world.dns.gslb {
        let Some(port) = g.probe_port.take() else {
            continue;
        };
        for r in world.regions.iter().filter(|r| g.regions.contains(&r.name)) {
            if local.contains(&r.name) {
                continue;
            }
            for vip in &r.vips {
                let addr = SocketAddr::new(*vip, port);
                if !probes.iter().any(|p| p.addr == addr) {
                    probes.push(Probe {
                        region: r.name.clone(),
                        addr,
                        check: g.probe.clone(),
                    });
                }
            }
        }
    }
    (world, probes)
}

/// The background loop; ends with the source's shutdown.
pub async fn run(src: Arc<EtcdSource>, registry: HealthRegistry, admin: AdminState) {
    let mut failed_by_us: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = src.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(world) = (**src.running.load()).clone() else {
            continue;
        };
        let connected = src.link.down_since().is_none();
        metrics::gauge!(super::cluster_metrics::CONNECTED).set(if connected { 1.0 } else { 0.0 });
        publish_reports(&src, &world, &registry);
        publish_node(&src, &world);
        obey_admin(&src, &admin);
        observe(&src, &world, &registry, &admin, &mut failed_by_us);
    }
}

fn publish_reports(src: &EtcdSource, world: &World, registry: &HealthRegistry) {
    let local = local_regions(world);
    for r in &world.regions {
        let key = format!("{}{}/{}", src.url.health_prefix(), r.name, src.node);
        if !local.contains(&r.name) {
            src.publisher.remove(&key);
            continue;
        }
        let healthy = r
            .pools
            .iter()
            .flat_map(|p| &p.members)
            .filter(|m| registry.get(&m.addr).is_some_and(|h| h.is_up()))
            .count() as u32;
        let report = RegionReport {
            region: r.name.clone(),
            node: src.node.clone(),
            healthy,
            min_healthy: r.min_healthy,
        };
        src.publisher
            .set(key, serde_json::to_vec(&report).expect("plain struct"));
    }
}

/// Says which world revision this node runs (so any node's `/status` lists every node's).
fn publish_node(src: &EtcdSource, world: &World) {
    let record = NodeRecord {
        node: src.node.clone(),
        revision: src.state.lock().unwrap_or_else(|e| e.into_inner()).running,
        region: world.node.region.clone(),
        parts: world
            .node
            .parts
            .iter()
            .map(|p| format!("{p:?}").to_lowercase())
            .collect(),
    };
    src.publisher.set(
        format!("{}{}", src.url.nodes_prefix(), src.node),
        serde_json::to_vec(&record).expect("plain struct"),
    );
}

fn observe(
    src: &EtcdSource,
    world: &World,
    registry: &HealthRegistry,
    admin: &AdminState,
    failed_by_us: &mut HashSet<String>,
) {
    if !world.node.runs(Part::Dns) {
        return;
    }
    let probes = src.probes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let connected = src.link.down_since().is_none();
    let view = src.view.borrow().clone();
    let local = local_regions(world);
    let mut observed = Vec::new();
    // held until the next observation: a checker whose backend nobody holds stops
    let mut held = Vec::with_capacity(probes.len());
    for r in world.regions.iter().filter(|r| !local.contains(&r.name)) {
        let mine: Vec<_> = probes
            .iter()
            .filter(|p| p.region == r.name)
            .map(|p| {
                registry.ensure_checked(
                    p.addr,
                    &CheckSpec::from(&p.check),
                    src.shutdown.child_token(),
                )
            })
            .collect();
        let probe_up =
            (!mine.is_empty()).then(|| mine.iter().any(|h| h.active_state() != ActiveState::Down));
        held.extend(mine);
        let reports: Vec<RegionReport> = view
            .reports
            .iter()
            .filter(|x| x.region == r.name)
            .cloned()
            .collect();
        let own = verdict(connected.then_some(&reports[..]), probe_up);
        src.publisher.set(
            format!("{}{}/{}", src.url.observers_prefix(), r.name, src.node),
            own.as_str().as_bytes().to_vec(),
        );
        let others: Vec<Verdict> = if connected {
            view.observers
                .iter()
                .filter(|o| o.region == r.name && o.node != src.node)
                .map(|o| o.verdict)
                .collect()
        } else {
            Vec::new()
        };
        let fail = fail_over(own, &others, src.url.quorum);
        metrics::gauge!(super::cluster_metrics::FAILED_OVER, "region" => r.name.clone())
            .set(if fail { 1.0 } else { 0.0 });
        let target = AdminTarget::Region(r.name.clone());
        if fail {
            if admin.fail(target) {
                tracing::warn!(target: "switchyard::cluster", region = %r.name, probe_up, publishers = reports.len(),
                    votes_down = 1 + others.iter().filter(|v| **v == Verdict::Down).count(), quorum = src.url.quorum,
                    connected, "region failed over: its publisher is gone or reports it down");
            }
            failed_by_us.insert(r.name.clone());
        } else if failed_by_us.remove(&r.name) {
            let operator_fail = view
                .admin
                .iter()
                .any(|a| a.mode == "fail" && a.kind == "region" && a.name == r.name);
            if !operator_fail && admin.restore(target) {
                tracing::info!(target: "switchyard::cluster", region = %r.name, "region restored: up again in the cluster's view");
            }
        }
        observed.push(json!({
            "region": r.name,
            "probe_up": probe_up,
            "publishers": reports.len(),
            "verdict": own.as_str(),
            "votes_down": usize::from(own == Verdict::Down) + others.iter().filter(|v| **v == Verdict::Down).count(),
            "failed_over": fail,
        }));
    }
    *src.observed.lock().unwrap_or_else(|e| e.into_inner()) = observed;
    *src.probe_health.lock().unwrap_or_else(|e| e.into_inner()) = held;
}

fn target_of(kind: &str, name: &str) -> Option<AdminTarget> {
    Some(match kind {
        "region" => AdminTarget::Region(name.to_string()),
        "az" => AdminTarget::Az(name.to_string()),
        "instance" => AdminTarget::Instance(name.to_string()),
        _ => return None,
    })
}

/// Applies cluster-wide admin entries that appeared and undoes those that went.
fn obey_admin(src: &EtcdSource, admin: &AdminState) {
    if src.link.down_since().is_some() {
        return; // keep what we obey until we know better
    }
    let view = src.view.borrow().clone();
    let mut obeyed = src.obeyed.lock().unwrap_or_else(|e| e.into_inner());
    let mut now: HashMap<(String, AdminTarget), &AdminEntry> = HashMap::new();
    for a in &view.admin {
        if let Some(t) = target_of(&a.kind, &a.name) {
            now.insert((a.mode.clone(), t), a);
        }
    }
    for ((mode, t), a) in &now {
        if obeyed.contains_key(&(mode.clone(), t.clone())) {
            continue;
        }
        let changed = match mode.as_str() {
            "drain" => admin.drain(t.clone()),
            "fail" => admin.fail(t.clone()),
            _ => continue,
        };
        tracing::info!(target: "switchyard::audit", who = %a.who, node = %a.node, action = %mode, target = %t, changed, via = "etcd", "cluster admin action");
        obeyed.insert((mode.clone(), t.clone()), 0);
    }
    let gone: Vec<(String, AdminTarget)> = obeyed
        .iter()
        .filter(|(k, since)| !now.contains_key(*k) && view.revision >= **since)
        .map(|(k, _)| k.clone())
        .collect();
    for (mode, t) in gone {
        let changed = match mode.as_str() {
            "drain" => admin.undrain(t.clone()),
            _ => admin.restore(t.clone()),
        };
        let undo = if mode == "drain" {
            "undrain"
        } else {
            "restore"
        };
        tracing::info!(target: "switchyard::audit", action = undo, target = %t, changed, via = "etcd", "cluster admin action withdrawn");
        obeyed.remove(&(mode, t));
    }
}

/// Writes (drain/fail) or deletes (undrain/restore) the cluster-wide entry for an admin action.
/// The action is already applied here: it counts as obeyed, so a withdrawal by another node
/// undoes it here too (even if this node never saw the entry between its write and that delete).
pub fn publish_admin(src: Arc<EtcdSource>, action: &str, target: &AdminTarget, who: &str) {
    let target = target.clone();
    let (kind, name) = match &target {
        AdminTarget::Region(n) => ("region", n),
        AdminTarget::Az(n) => ("az", n),
        AdminTarget::Instance(n) => ("instance", n),
    };
    let (mode, put) = match action {
        "drain" => ("drain", true),
        "undrain" => ("drain", false),
        "fail" => ("fail", true),
        "restore" => ("fail", false),
        _ => return,
    };
    {
        let mut obeyed = src.obeyed.lock().unwrap_or_else(|e| e.into_inner());
        if put {
            obeyed.insert((mode.to_string(), target.clone()), i64::MAX);
        } else {
            obeyed.remove(&(mode.to_string(), target.clone()));
        }
    }
    let entry = AdminEntry {
        kind: kind.into(),
        name: name.clone(),
        mode: mode.into(),
        node: src.node.clone(),
        who: who.into(),
    };
    tokio::spawn(async move {
        let key = entry.key(&src.url.admin_prefix());
        let r = if put {
            let v = serde_json::to_vec(&entry).expect("plain struct");
            src.client.put(&key, &v, None).await.map(|rev| {
                let mut obeyed = src.obeyed.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(since) = obeyed.get_mut(&(entry.mode.clone(), target.clone())) {
                    *since = (*since).min(rev);
                }
            })
        } else {
            src.client.delete(&key).await.map(|_| ())
        };
        if let Err(e) = r {
            tracing::error!(target: "switchyard::cluster", error = %e, key, "admin action not shared through etcd: only this node obeys it");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo(region: Option<&str>, only: &[Part]) -> World {
        switchyard_config::demo_world()
            .with_node(region.map(str::to_string), Some(only.to_vec()))
            .unwrap()
    }

    #[test]
    fn a_dns_only_node_observes_every_region_and_the_dns_server_probes_none() {
        let (w, probes) = take_probes(demo(None, &[Part::Dns, Part::Admin]));
        assert!(w.dns.gslb.iter().all(|g| g.probe_port.is_none()));
        let got: Vec<(String, String)> = probes
            .iter()
            .map(|p| (p.region.clone(), p.addr.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("us-east".to_string(), "127.0.1.1:8080".to_string()),
                ("eu-west".to_string(), "127.0.2.1:8080".to_string())
            ]
        );
    }

    #[test]
    fn a_node_balancing_a_region_observes_only_the_others() {
        let (_, probes) = take_probes(demo(Some("us-east"), &[Part::Dns, Part::Lb]));
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0].region, "eu-west");
        assert_eq!(local_regions(&demo(Some("us-east"), &[Part::Lb])).len(), 1);
    }

    #[test]
    fn nodes_without_dns_keep_the_world_as_is() {
        let w = demo(Some("us-east"), &[Part::Lb, Part::Gateway]);
        let (same, probes) = take_probes(w.clone());
        assert_eq!(same, w);
        assert!(probes.is_empty());
    }
}
