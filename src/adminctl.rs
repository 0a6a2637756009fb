//! The CLI side of the admin API: `status`, `drain|undrain|fail|restore`, `reload`, `instance`.
//! Human output by default, the raw JSON with `--json`. Requests go through
//! `switchyard-admin-client`, which the drill uses too.

use crate::cli::{
    AdminArgs, ExplainArgs, ExplainWhat, InstanceAction, InstanceArgs, TargetArgs, TargetKind,
};
use anyhow::bail;
use serde_json::Value;
use std::fmt::Write as _;

/// Sends one request to the admin API; returns (status, JSON body, the node that answered).
async fn call(admin: &AdminArgs, method: &str, path: &str) -> anyhow::Result<(u16, Value, String)> {
    let r = admin.client().request(method, path).await?;
    let node = answered_by(r.node.as_deref(), &admin.admin);
    Ok((r.status, r.body, node))
}

/// `node NAME at ADDR` from the admin API's node header (the URL asked when it has none).
fn answered_by(header: Option<&str>, url: &str) -> String {
    match header.and_then(|h| h.split_once(' ')) {
        Some((name, addr)) => format!("node {name} at {addr}"),
        None => format!("the node at {url}"),
    }
}

fn fail_on_error(status: u16, v: &Value, node: &str) -> anyhow::Result<()> {
    if status >= 400 {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        if let Some(errors) = v.get("errors").and_then(Value::as_array) {
            let list: Vec<String> = errors
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect();
            bail!("{node} answered {status}:\n{}", list.join("\n"));
        }
        bail!("{node} answered {status}: {msg}");
    }
    Ok(())
}

/// `switchyard status`.
pub async fn status(admin: &AdminArgs) -> anyhow::Result<()> {
    let (code, v, node) = call(admin, "GET", "/status").await?;
    fail_on_error(code, &v, &node)?;
    if admin.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{node}{}", node_parts(&v));
        print!("{}", render_status(&v));
    }
    Ok(())
}

/// `: region us-east, parts lb, gateway` (nothing for a node that runs everything everywhere).
fn node_parts(v: &Value) -> String {
    let region = v["node"]["region"].as_str();
    let parts: Vec<&str> = v["node"]["parts"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    if let Some(r) = region {
        out.push(format!("region {r}"));
    }
    if !parts.is_empty() && parts.len() < 5 {
        out.push(format!("parts {}", parts.join(", ")));
    }
    if out.is_empty() {
        String::new()
    } else {
        format!(" ({})", out.join("; "))
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn admin_mark(v: &Value) -> String {
    v.as_str().map(|m| format!(" [{m}]")).unwrap_or_default()
}

/// A JSON value as an operator writes it: strings bare, lists comma-separated, null as `-`.
fn list(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(list).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// One member's health in words: the state (`up`, `down`, `ejected`, `drained`, `failed`,
/// `unchecked`), then why: the time an ejection has left and its cause, then the active check.
fn health_words(m: &Value) -> String {
    if m.get("active_check").is_none() {
        return format!("{:<9}{}", "-", s(&m["reason"]));
    }
    let state = m["state"].as_str().unwrap_or_else(|| s(&m["health"]));
    let check = m["check_reason"]
        .as_str()
        .unwrap_or_else(|| s(&m["reason"]));
    let mut why = Vec::new();
    if let Some(ms) = m["ejected_for_ms"].as_u64() {
        let cause = s(&m["reason"]);
        let cause = cause.split("; ejected for").next().unwrap_or(cause);
        why.push(format!(
            "{}{:.1}s left ({cause})",
            if state == "ejected" { "" } else { "ejected, " },
            ms as f64 / 1000.0
        ));
    }
    if state == "failed" {
        why.push("forced down by an operator".into());
    }
    why.push(format!("check {check}"));
    format!("{state:<9}{}", why.join("; "))
}

/// Renders the status document for humans.
pub fn render_status(v: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    for r in v["regions"].as_array().unwrap_or(&empty) {
        let here = r["runs_here"] != Value::Bool(false);
        let _ = writeln!(
            out,
            "region {}{}  vips {}{}",
            s(&r["name"]),
            admin_mark(&r["admin"]),
            list(&r["vips"]),
            if here { "" } else { "  (not run on this node)" }
        );
        for az in r["azs"].as_array().unwrap_or(&empty) {
            let share = az
                .get("share")
                .and_then(Value::as_f64)
                .map(|x| format!("  share {:.0}%", x * 100.0))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  az {}{}{share}",
                s(&az["name"]),
                admin_mark(&az["admin"])
            );
        }
        for p in r["pools"].as_array().unwrap_or(&empty) {
            let spilling = p["spilling"]
                .as_str()
                .map(|w| format!("  SPILLING: {w}"))
                .unwrap_or_default();
            let members = p["members"].as_array().unwrap_or(&empty);
            let checked = members.iter().any(|m| m.get("active_check").is_some());
            let healthy = if checked {
                format!("{} healthy", p["healthy_members"])
            } else {
                "not checked on this node".to_string()
            };
            let _ = writeln!(
                out,
                "  pool {} ({}, {healthy}){spilling}",
                s(&p["name"]),
                s(&p["policy"]),
            );
            for m in members {
                let _ = writeln!(
                    out,
                    "    {:<16} {:<21} {:<10} {}  conns {}",
                    s(&m["name"]),
                    s(&m["addr"]),
                    s(&m["az"]),
                    health_words(m),
                    m["active_connections"].as_u64().unwrap_or(0),
                );
            }
        }
    }
    for sv in v["services"].as_array().unwrap_or(&empty) {
        let _ = writeln!(out, "service {}", s(&sv["name"]));
        for i in sv["instances"].as_array().unwrap_or(&empty) {
            // A demo instance this node does not run is not "stopped": another node runs it.
            let stopped = if i["demo_running"] == Value::Bool(false)
                && i["runs_here"] != Value::Bool(false)
            {
                "  (demo instance stopped)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {:<18} {:<18} {:<10} {}{stopped}",
                s(&i["name"]),
                s(&i["addr"]),
                s(&i["az"]),
                health_words(i),
            );
        }
    }
    for d in v["dns"].as_array().unwrap_or(&empty) {
        let _ = writeln!(
            out,
            "dns {} ({}): {}",
            s(&d["name"]),
            s(&d["policy"]),
            list(&d["preferred"])
        );
    }
    let etcd = &v["etcd"];
    if !etcd.is_null() {
        let _ = writeln!(
            out,
            "etcd {} node {}: {} (world revision {}, store revision {})",
            s(&etcd["url"]),
            s(&etcd["node"]),
            s(&etcd["state"]),
            etcd["revision"],
            etcd["store_revision"]
        );
        for n in etcd["nodes"].as_array().unwrap_or(&empty) {
            let _ = writeln!(
                out,
                "  node {:<12} revision {}  region {}",
                s(&n["node"]),
                n["revision"],
                s(&n["region"])
            );
        }
        for r in etcd["region_reports"].as_array().unwrap_or(&empty) {
            let _ = writeln!(
                out,
                "  region {} from {}: {} healthy (min {}){}",
                s(&r["region"]),
                s(&r["node"]),
                r["healthy"],
                r["min_healthy"],
                if r["up"] == Value::Bool(true) {
                    ""
                } else {
                    " DOWN"
                }
            );
        }
    }
    let overrides = v["admin_overrides"].as_array().unwrap_or(&empty);
    if !overrides.is_empty() {
        let list: Vec<String> = overrides
            .iter()
            .map(|o| format!("{} {} {}", s(&o["mode"]), s(&o["kind"]), s(&o["name"])))
            .collect();
        let _ = writeln!(out, "overrides: {}", list.join(", "));
    }
    out
}

/// `switchyard drain|undrain|fail|restore KIND NAME`.
pub async fn action(action: &str, args: &TargetArgs) -> anyhow::Result<()> {
    let kind = match args.kind {
        TargetKind::Region => "regions",
        TargetKind::Az => "azs",
        TargetKind::Instance => "instances",
    };
    let (code, v, node) = call(
        &args.admin,
        "POST",
        &format!("/v1/{kind}/{}/{action}", args.name),
    )
    .await?;
    fail_on_error(code, &v, &node)?;
    if args.admin.json {
        println!("{v}");
    } else {
        let changed = if v["changed"] == Value::Bool(true) {
            ""
        } else {
            " (no change)"
        };
        let lifted = list(&v["unejected"]);
        let lifted = if lifted == "-" {
            String::new()
        } else {
            format!("; passive ejection lifted: {lifted}")
        };
        println!("{action}: {}{changed}{lifted} ({node})", s(&v["target"]));
    }
    Ok(())
}

/// `switchyard reload`.
pub async fn reload(admin: &AdminArgs) -> anyhow::Result<()> {
    let (code, v, node) = call(admin, "POST", "/v1/reload").await?;
    fail_on_error(code, &v, &node)?;
    if admin.json {
        println!("{v}");
    } else {
        println!("reloaded ({node})");
    }
    Ok(())
}

/// `switchyard instance stop|start NAME`.
pub async fn instance(args: &InstanceArgs) -> anyhow::Result<()> {
    let action = match args.action {
        InstanceAction::Stop => "stop",
        InstanceAction::Start => "start",
    };
    let (code, v, node) = call(
        &args.admin,
        "POST",
        &format!("/v1/demo/instances/{}/{action}", args.name),
    )
    .await?;
    fail_on_error(code, &v, &node)?;
    println!("{action}: demo instance {} ({node})", args.name);
    Ok(())
}

/// `switchyard explain dns|lb ...`.
pub async fn explain(args: &ExplainArgs) -> anyhow::Result<()> {
    let (admin, path) = match &args.what {
        ExplainWhat::Dns {
            name,
            client,
            ecs,
            admin,
        } => {
            let mut p = format!("/v1/explain/dns?name={name}&client={client}");
            if let Some(e) = ecs {
                p.push_str(&format!("&ecs={e}"));
            }
            (admin, p)
        }
        ExplainWhat::Lb {
            listener,
            client,
            admin,
        } => (
            admin,
            format!("/v1/explain/lb?listener={listener}&client={client}"),
        ),
    };
    let (code, v, node) = call(admin, "GET", &path).await?;
    fail_on_error(code, &v, &node)?;
    if admin.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut out = String::new();
    match &args.what {
        ExplainWhat::Dns { .. } => {
            let _ = writeln!(
                out,
                "{} ({}): answer {} (ttl {}s, ecs scope /{})",
                s(&v["name"]),
                s(&v["policy"]),
                v["addresses"],
                v["ttl"],
                v["ecs_scope"]
            );
            if let Some(c) = v.get("client").filter(|c| !c.is_null()) {
                let _ = writeln!(out, "  client: {}", c);
            }
            let _ = writeln!(out, "  matched: {}", s(&v["matched"]));
            let _ = writeln!(out, "  order: {}  chosen: {}", v["order"], v["chosen"]);
            for sk in v["skipped"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "  skipped: {sk}");
            }
            if let Some(a) = v["all_down"].as_str() {
                let _ = writeln!(out, "  all regions down: {a}");
            }
            let _ = writeln!(
                out,
                "  dnssec: {}",
                v["dnssec"].as_str().unwrap_or("unsigned")
            );
        }
        ExplainWhat::Lb { .. } => {
            let chosen = match v["chosen"].as_object() {
                Some(c) => format!("{} {} ({})", s(&c["name"]), s(&c["addr"]), s(&c["az"])),
                None => "nothing".to_string(),
            };
            let _ = writeln!(
                out,
                "{} ({}, pool {}, {}): client {} -> {chosen}: {}",
                s(&v["listener"]),
                s(&v["region"]),
                s(&v["pool"]),
                s(&v["policy"]),
                s(&v["client"]),
                s(&v["why"])
            );
            for a in v["az_shares"].as_array().into_iter().flatten() {
                let share = a["share"].as_f64().unwrap_or(0.0) * 100.0;
                let _ = writeln!(
                    out,
                    "  az {:<12} share {share:>5.1}%  up {}/{}",
                    s(&a["az"]),
                    a["up_members"],
                    a["members"]
                );
            }
            for m in v["members"].as_array().into_iter().flatten() {
                let avail = if m["available"] == Value::Bool(true) {
                    "available"
                } else {
                    "unavailable"
                };
                let _ = writeln!(
                    out,
                    "  member {:<16} {:<21} {:<11} {avail:<11} {}",
                    s(&m["name"]),
                    s(&m["addr"]),
                    s(&m["az"]),
                    s(&m["reason"])
                );
            }
            let _ = writeln!(out, "  note: {}", s(&v["note"]));
        }
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passive_ejection_and_drains_are_shown_in_words() {
        let v = json!({
            "regions": [{"name": "us-east", "vips": ["127.0.1.1"], "admin": null, "azs": [],
                "pools": [{"name": "gws", "policy": "least_connections", "healthy_members": 0, "members": [
                    {"name": "gw-a", "addr": "127.0.1.11:8000", "az": "us-east-a", "health": "down",
                     "state": "ejected", "active_check": "up", "ejected_for_ms": 8200,
                     "reason": "passive: 3 connect failures in a row; ejected for 10s",
                     "check_reason": "http: ok, 2 in a row", "active_connections": 0},
                    {"name": "gw-b", "addr": "127.0.1.12:8000", "az": "us-east-b", "health": "down",
                     "state": "drained", "active_check": "up", "ejected_for_ms": null,
                     "reason": "http: ok", "check_reason": "http: ok", "active_connections": 3}
                ]}]}],
            "etcd": {"url": "etcd://x", "node": "n1", "state": "ok", "revision": 3, "store_revision": 9,
                     "nodes": [{"node": "n1", "revision": 3, "region": null}]},
        });
        let out = render_status(&v);
        assert!(out.starts_with("region us-east  vips 127.0.1.1\n"), "{out}");
        assert!(
            out.contains("gw-a             127.0.1.11:8000       us-east-a  ejected  8.2s left (passive: 3 connect failures in a row); check http: ok, 2 in a row  conns 0\n"),
            "{out}"
        );
        assert!(
            out.contains("us-east-b  drained  check http: ok  conns 3\n"),
            "{out}"
        );
        assert!(
            out.contains("  node n1           revision 3  region -\n"),
            "{out}"
        );
    }
}
