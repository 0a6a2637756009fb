//! Watching the world during a drill: the admin API's `/status` polled every 100 ms (each health
//! change timed), and DNS asked for every client group every 100 ms without a cache (each change
//! of answer timed). Both stop when the drill's token is cancelled and return what they saw.

use super::dns;
use super::model::{DnsAnswer, HealthChange};
use super::scenario::ClientGroup;
use hickory_proto::rr::Name;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use switchyard_admin_client::AdminClient;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(100);

/// Health fields by (instance name, field) from a `/status` document. Pool members and service
/// instances; gateway instances that are also pool members appear once.
pub(crate) fn health_fields(status: &Value) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let empty = Vec::new();
    let arr = |v: &Value| v.as_array().unwrap_or(&empty).clone();
    let mut things = Vec::new();
    for r in arr(&status["regions"]) {
        for p in arr(&r["pools"]) {
            things.extend(arr(&p["members"]));
        }
    }
    things.extend(arr(&status["gateway_instances"]));
    for s in arr(&status["services"]) {
        things.extend(arr(&s["instances"]));
    }
    for t in things {
        let Some(name) = t["name"].as_str() else {
            continue;
        };
        for field in ["health", "active_check"] {
            if let Some(v) = t[field].as_str() {
                out.entry((name.to_string(), field.to_string()))
                    .or_insert_with(|| v.to_string());
            }
        }
    }
    out
}

/// How the node looks to an operator, for "healthy at start" and "left as found": every
/// instance's state word (`up`, `down`, `ejected 8.2s (passive: ...)`, `drained`, `failed`,
/// `demo instance stopped`) and every admin override (`drain az us-east-a`). Instances the node
/// does not check are left out.
pub(crate) fn world_state(status: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let empty = Vec::new();
    let arr = |v: &Value| v.as_array().unwrap_or(&empty).clone();
    let mut things = Vec::new();
    for r in arr(&status["regions"]) {
        for p in arr(&r["pools"]) {
            things.extend(arr(&p["members"]));
        }
    }
    things.extend(arr(&status["gateway_instances"]));
    for s in arr(&status["services"]) {
        things.extend(arr(&s["instances"]));
    }
    for t in things {
        let Some(name) = t["name"].as_str() else {
            continue;
        };
        if t["demo_running"] == Value::Bool(false) && t["runs_here"] != Value::Bool(false) {
            out.insert(name.to_string(), "demo instance stopped".to_string());
            continue;
        }
        if t.get("active_check").is_none() {
            continue; // not checked on this node
        }
        let state = t["state"]
            .as_str()
            .or_else(|| t["health"].as_str())
            .unwrap_or("?");
        let word = match (state, t["ejected_for_ms"].as_u64()) {
            ("ejected", _) => format!(
                "ejected ({})",
                t["reason"]
                    .as_str()
                    .unwrap_or("")
                    .split("; ejected for")
                    .next()
                    .unwrap_or("")
            ),
            ("down", _) => format!("down ({})", t["reason"].as_str().unwrap_or("")),
            (s, _) => s.to_string(),
        };
        out.entry(name.to_string()).or_insert(word);
    }
    for o in arr(&status["admin_overrides"]) {
        let label = format!(
            "{} {} {}",
            o["mode"].as_str().unwrap_or("?"),
            o["kind"].as_str().unwrap_or("?"),
            o["name"].as_str().unwrap_or("?")
        );
        out.insert(label, "in force".to_string());
    }
    out
}

/// What is not healthy in a [`world_state`], one line each.
pub(crate) fn problems(state: &BTreeMap<String, String>) -> Vec<String> {
    // admin overrides first: the drained or failed instances below follow from them
    let mut v: Vec<(bool, String)> = state
        .iter()
        .filter(|(_, v)| v.as_str() != "up")
        .map(|(k, v)| (v != "in force", format!("{k}: {v}")))
        .collect();
    v.sort();
    v.into_iter().map(|(_, line)| line).collect()
}

/// What differs between two [`world_state`]s, one line each (`user-us-east-a: ejected (...)
/// (was up)`). States are compared by their first word: the reason may change.
pub(crate) fn differences(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    let word = |v: &str| v.split(' ').next().unwrap_or("").to_string();
    let mut out = Vec::new();
    for (k, a) in after {
        match before.get(k) {
            Some(b) if word(b) == word(a) => {}
            Some(b) => out.push(format!("{k}: {a} (was {})", word(b))),
            None => out.push(format!("{k}: {a} (was not)")),
        }
    }
    for (k, b) in before {
        if !after.contains_key(k) {
            out.push(format!("{k}: no longer {}", word(b)));
        }
    }
    out
}

/// The changes between two snapshots, at `t_ms`.
pub(crate) fn diff(
    before: &BTreeMap<(String, String), String>,
    after: &BTreeMap<(String, String), String>,
    t_ms: u64,
) -> Vec<HealthChange> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let old = before.get(k)?;
            (old != v).then(|| HealthChange {
                t_ms,
                name: k.0.clone(),
                field: k.1.clone(),
                from: old.clone(),
                to: v.clone(),
            })
        })
        .collect()
}

/// What the status watcher saw.
#[derive(Debug, Default)]
pub(crate) struct StatusWatch {
    pub changes: Vec<HealthChange>,
    /// Instances with an active check verdict (not `unchecked`) at some point.
    pub checked: BTreeSet<String>,
    pub errors: u32,
}

/// Polls `/status` until `stop`.
pub(crate) async fn watch_status(
    admin: AdminClient,
    t0: Instant,
    stop: CancellationToken,
) -> StatusWatch {
    let mut last: Option<BTreeMap<(String, String), String>> = None;
    let mut w = StatusWatch::default();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let sent = Instant::now();
        let polled =
            tokio::time::timeout(Duration::from_secs(2), admin.call("GET", "/status")).await;
        match polled {
            Ok(Ok((200, v))) => {
                // The state is from somewhere between sending and answering: take the midpoint.
                let t = sent + Instant::now().saturating_duration_since(sent) / 2;
                let t_ms = t.saturating_duration_since(t0).as_millis() as u64;
                let now = health_fields(&v);
                if let Some(prev) = &last {
                    w.changes.extend(diff(prev, &now, t_ms));
                }
                for ((name, field), value) in &now {
                    if field == "active_check" && value != "unchecked" {
                        w.checked.insert(name.clone());
                    }
                }
                last = Some(now);
            }
            _ => w.errors += 1,
        }
    }
    w
}

/// Asks DNS for every group every 100 ms until `stop`; records the first answer and each change.
pub(crate) async fn watch_dns(
    server: SocketAddr,
    name: Name,
    groups: Vec<ClientGroup>,
    vip_regions: HashMap<IpAddr, String>,
    t0: Instant,
    stop: CancellationToken,
) -> Vec<DnsAnswer> {
    let mut out: Vec<DnsAnswer> = Vec::new();
    let mut last: HashMap<String, (Vec<IpAddr>, Option<String>)> = HashMap::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        for g in &groups {
            let sent = Instant::now();
            // the authoritative server itself: when it moves clients, not when a cache lets them
            let r = dns::resolve(server, &name, g.ecs, Duration::from_millis(300), false).await;
            let t_ms = sent.saturating_duration_since(t0).as_millis() as u64;
            let (addrs, ttl, error) = match r {
                Ok(a) => (a.addrs, a.ttl_s, None),
                Err(e) => (Vec::new(), 0, Some(e)),
            };
            let key = (addrs.clone(), error.clone());
            if last.get(&g.name) == Some(&key) {
                continue;
            }
            last.insert(g.name.clone(), key);
            out.push(DnsAnswer {
                t_ms,
                group: g.name.clone(),
                region: addrs.first().and_then(|a| vip_regions.get(a)).cloned(),
                answers: addrs,
                ttl_s: ttl,
                error,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_fields_and_their_changes() {
        let a = json!({
            "regions": [{"pools": [{"members": [
                {"name": "gw-a", "health": "up", "active_check": "up"},
                {"name": "gw-b", "health": "unchecked"}
            ]}]}],
            "gateway_instances": [{"name": "gw-a", "health": "down"}],
            "services": [{"instances": [{"name": "user-a", "health": "up", "active_check": "up"}]}]
        });
        let before = health_fields(&a);
        assert_eq!(before.len(), 5);
        assert_eq!(before[&("gw-a".to_string(), "health".to_string())], "up");
        let mut b = a.clone();
        b["services"][0]["instances"][0]["health"] = json!("down");
        b["regions"][0]["pools"][0]["members"][1]["health"] = json!("up");
        let changes = diff(&before, &health_fields(&b), 1234);
        assert_eq!(
            changes,
            vec![
                HealthChange {
                    t_ms: 1234,
                    name: "gw-b".into(),
                    field: "health".into(),
                    from: "unchecked".into(),
                    to: "up".into()
                },
                HealthChange {
                    t_ms: 1234,
                    name: "user-a".into(),
                    field: "health".into(),
                    from: "up".into(),
                    to: "down".into()
                },
            ]
        );
    }
}
