//! `GET /status`: the whole world as this node sees it. Field names are stable (see README).

use super::AdminCtx;
use serde_json::{json, Value};
use std::net::SocketAddr;
use switchyard_balance::{ActiveState, AdminMode, AdminTarget};

/// Health of one backend address as JSON: `health` is `up`, `down` or `unchecked`; `state` says
/// why in one word (`up`, `down`, `ejected`, `drained`, `failed`, `unchecked`), the rest is
/// what the console and the CLI show on hover: the last check, the rise/fall counter, passive
/// ejection with the time left.
fn health(ctx: &AdminCtx, addr: SocketAddr) -> Value {
    match ctx.registry.get(&addr) {
        Some(h) => {
            let s = h.state();
            let active = match s.active {
                ActiveState::Unchecked => "unchecked",
                ActiveState::Up => "up",
                ActiveState::Down => "down",
            };
            let state = match (s.admin, s.ejected_for, s.active) {
                (Some(AdminMode::Fail), ..) => "failed",
                (Some(AdminMode::Drain), ..) => "drained",
                (_, Some(_), _) => "ejected",
                (_, _, ActiveState::Down) => "down",
                (_, _, ActiveState::Unchecked) => "unchecked",
                _ => "up",
            };
            let spec = ctx.registry.checker_spec(&addr);
            json!({
                "health": if s.up { "up" } else { "down" },
                "state": state,
                "active_check": active,
                "ejected_for_ms": s.ejected_for.map(|d| d.as_millis() as u64),
                "reason": &*s.reason,
                "check_reason": &*s.check_reason,
                "last_check_ms_ago": s.last_check_ago.map(|d| d.as_millis() as u64),
                "last_check_ok": s.last_check_ok,
                "check_streak": s.streak,
                "rise": spec.as_ref().map(|c| c.rise),
                "fall": spec.as_ref().map(|c| c.fall),
                "passive_failures": s.passive_failures,
                "ejections": s.ejections,
                "active_connections": s.active_conns,
                "total_connections": s.total_conns,
            })
        }
        None => {
            json!({"health": "unchecked", "state": "unchecked", "reason": "no health check on this node"})
        }
    }
}

/// A balancing policy in the config's own word (`least_connections`, not `LeastConnections`).
pub(super) fn policy_word(p: switchyard_config::health::Policy) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

fn mode(ctx: &AdminCtx, target: AdminTarget) -> Value {
    ctx.admin
        .list()
        .into_iter()
        .find(|(t, _)| *t == target)
        .map(|(_, m)| Value::from(m.as_str()))
        .unwrap_or(Value::Null)
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

/// Builds the status document.
pub fn status(ctx: &AdminCtx) -> Value {
    let world = ctx.world.load();
    let lb = ctx.lb.as_ref().map(|lb| lb.status());
    let share_of = |region: &str, az: &str| -> Value {
        lb.as_ref()
            .and_then(|st| {
                st.pools
                    .iter()
                    .filter(|p| p.region == region)
                    .flat_map(|p| &p.shares)
                    .find(|s| s.az == az)
                    .map(|s| Value::from(s.share))
            })
            .unwrap_or(Value::Null)
    };
    let regions: Vec<Value> = world
        .regions
        .iter()
        .map(|r| {
            let azs: Vec<Value> = r
                .azs
                .iter()
                .map(|a| {
                    json!({"name": a.name, "weight": a.weight, "share": share_of(&r.name, &a.name),
                           "admin": mode(ctx, AdminTarget::Az(a.name.clone()))})
                })
                .collect();
            let pools: Vec<Value> = r
                .pools
                .iter()
                .map(|p| {
                    let members: Vec<Value> = p
                        .members
                        .iter()
                        .map(|m| {
                            merge(
                                json!({"name": m.name, "addr": m.addr.to_string(), "az": m.az, "weight": m.weight,
                                       "admin": mode(ctx, AdminTarget::Instance(m.name.clone()))}),
                                health(ctx, m.addr),
                            )
                        })
                        .collect();
                    let healthy = members.iter().filter(|m| m["health"] == "up").count();
                    // remote spill (issue 17): "spilled to eu-west: no healthy member in us-east"
                    let spilling = lb.as_ref().and_then(|st| {
                        st.pools
                            .iter()
                            .find(|x| x.region == r.name && x.name == p.name)
                            .and_then(|x| x.spilling.clone())
                    });
                    json!({"name": p.name, "policy": policy_word(p.policy), "healthy_members": healthy, "spilling": spilling, "members": members})
                })
                .collect();
            let listeners: Vec<Value> = r
                .listeners
                .iter()
                .map(|l| json!({"name": l.name, "addrs": l.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(), "pool": l.pool, "sni": l.sni.as_ref().map(|s| s.routes.iter().map(|r| json!({"names": r.names, "pool": r.pool})).collect::<Vec<_>>()), "sni_default": l.sni.as_ref().and_then(|s| s.default.as_ref()).map(|d| &d.0)}))
                .collect();
            json!({
                "name": r.name,
                "vips": r.vips.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                "runs_here": world.node.in_region(&r.name),
                "admin": mode(ctx, AdminTarget::Region(r.name.clone())),
                "azs": azs,
                "pools": pools,
                "listeners": listeners,
            })
        })
        .collect();
    let gateways: Vec<Value> = world
        .gateway
        .instances
        .iter()
        .map(|g| {
            merge(
                json!({"name": g.name, "listen": g.listen.to_string(), "region": g.region, "az": g.az,
                       "admin": mode(ctx, AdminTarget::Instance(g.name.clone()))}),
                health(ctx, g.listen),
            )
        })
        .collect();
    let running: Vec<String> = ctx
        .demo
        .as_ref()
        .map(|d| d.running().into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    let services: Vec<Value> = world
        .services
        .iter()
        .map(|s| {
            let instances: Vec<Value> = s
                .instances
                .iter()
                .map(|i| {
                    let mut v = merge(
                        json!({"name": i.name, "addr": i.addr.to_string(), "region": i.region, "az": i.az, "weight": i.weight,
                               "admin": mode(ctx, AdminTarget::Instance(i.name.clone()))}),
                        health(ctx, i.addr),
                    );
                    if i.demo {
                        v["demo_running"] = Value::Bool(running.contains(&i.name));
                        // does this node run this demo instance at all (region, `--only`)?
                        v["runs_here"] = Value::Bool(
                            world.node.runs(switchyard_config::world::Part::Services)
                                && world.node.in_region(&i.region),
                        );
                    }
                    v
                })
                .collect();
            json!({"name": s.name, "policy": policy_word(s.policy), "instances": instances})
        })
        .collect();
    let overrides: Vec<Value> = ctx
        .admin
        .list()
        .into_iter()
        .map(|(t, m)| {
            let (kind, name) = match t {
                AdminTarget::Region(n) => ("region", n),
                AdminTarget::Az(n) => ("az", n),
                AdminTarget::Instance(n) => ("instance", n),
            };
            json!({"kind": kind, "name": name, "mode": match m { AdminMode::Drain => "drain", AdminMode::Fail => "fail" }})
        })
        .collect();
    let dns: Vec<Value> = match &ctx.dns {
        Some(d) => world
            .dns
            .gslb
            .iter()
            .map(|g| {
                let why = d.explain(&g.name, "127.0.0.1".parse().expect("literal"), None).ok();
                json!({
                    "name": g.name,
                    "policy": format!("{:?}", g.policy).to_lowercase(),
                    "regions": g.regions,
                    "preferred": why.as_ref().map(|w| w.chosen.clone()),
                    "skipped": why.as_ref().map(|w| serde_json::to_value(&w.skipped).unwrap_or(Value::Null)),
                    "ttl": g.ttl.as_secs(),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let now = switchyard_tls::unix_now();
    let tls: Vec<Value> = ctx
        .gateway
        .as_ref()
        .map(|g| g.tls_status())
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let certs: Vec<Value> = t
                .certs
                .iter()
                .map(|c| {
                    json!({"file": c.file.display().to_string(), "names": c.names, "subject": c.subject,
                           "not_after": c.not_after, "expires_in_s": c.seconds_left(now)})
                })
                .collect();
            json!({"instance": t.instance, "listen": t.listen.to_string(), "certificates": certs})
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "tls": tls,
        "dns": dns,
        "lb": lb.map(|l| serde_json::to_value(l).unwrap_or(Value::Null)),
        "node": {
            "region": world.node.region,
            "parts": world.node.parts.iter().map(|p| format!("{p:?}").to_lowercase()).collect::<Vec<_>>(),
        },
        "ready": ctx.ready.load(std::sync::atomic::Ordering::Acquire),
        "regions": regions,
        "gateway_instances": gateways,
        "services": services,
        "admin_overrides": overrides,
        "etcd": crate::etcd::status(),
    })
}
