//! The CLI side of the admin API: `status`, `drain|undrain|fail|restore`, `reload`, `instance`.
//! Human output by default, the raw JSON with `--json`. Requests go through
//! `switchyard-admin-client`, which the drill uses too.

use crate::cli::{
    AdminArgs, ExplainArgs, ExplainWhat, InstanceAction, InstanceArgs, TargetArgs, TargetKind,
};
use anyhow::bail;
use serde_json::Value;
use std::fmt::Write as _;

/// Sends one request to the admin API; returns (status, JSON body).
async fn call(admin: &AdminArgs, method: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    Ok(admin.client().call(method, path).await?)
}

fn fail_on_error(status: u16, v: &Value) -> anyhow::Result<()> {
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
            bail!("admin API answered {status}:\n{}", list.join("\n"));
        }
        bail!("admin API answered {status}: {msg}");
    }
    Ok(())
}

/// `switchyard status`.
pub async fn status(admin: &AdminArgs) -> anyhow::Result<()> {
    let (code, v) = call(admin, "GET", "/status").await?;
    fail_on_error(code, &v)?;
    if admin.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render_status(&v));
    }
    Ok(())
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn admin_mark(v: &Value) -> String {
    v.as_str().map(|m| format!(" [{m}]")).unwrap_or_default()
}

/// Renders the status document for humans.
pub fn render_status(v: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    for r in v["regions"].as_array().unwrap_or(&empty) {
        let _ = writeln!(
            out,
            "region {}{}  vips {}",
            s(&r["name"]),
            admin_mark(&r["admin"]),
            r["vips"]
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
            let _ = writeln!(
                out,
                "  pool {} ({}, {} healthy){spilling}",
                s(&p["name"]),
                s(&p["policy"]),
                p["healthy_members"]
            );
            for m in p["members"].as_array().unwrap_or(&empty) {
                let _ = writeln!(
                    out,
                    "    {:<16} {:<21} {:<10} {:<5}{} conns {}  {}",
                    s(&m["name"]),
                    s(&m["addr"]),
                    s(&m["az"]),
                    s(&m["health"]),
                    admin_mark(&m["admin"]),
                    m["active_connections"].as_u64().unwrap_or(0),
                    s(&m["reason"])
                );
            }
        }
    }
    for sv in v["services"].as_array().unwrap_or(&empty) {
        let _ = writeln!(out, "service {}", s(&sv["name"]));
        for i in sv["instances"].as_array().unwrap_or(&empty) {
            let stopped = if i["demo_running"] == Value::Bool(false) {
                " (demo stopped)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {:<18} {:<18} {:<10} {:<5}{}{stopped}  {}",
                s(&i["name"]),
                s(&i["addr"]),
                s(&i["az"]),
                s(&i["health"]),
                admin_mark(&i["admin"]),
                s(&i["reason"])
            );
        }
    }
    for d in v["dns"].as_array().unwrap_or(&empty) {
        let _ = writeln!(
            out,
            "dns {} ({}): {}",
            s(&d["name"]),
            s(&d["policy"]),
            d["preferred"]
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
                n["region"]
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
    let (code, v) = call(
        &args.admin,
        "POST",
        &format!("/v1/{kind}/{}/{action}", args.name),
    )
    .await?;
    fail_on_error(code, &v)?;
    if args.admin.json {
        println!("{v}");
    } else {
        let changed = if v["changed"] == Value::Bool(true) {
            ""
        } else {
            " (no change)"
        };
        println!("{action}: {}{changed}", s(&v["target"]));
    }
    Ok(())
}

/// `switchyard reload`.
pub async fn reload(admin: &AdminArgs) -> anyhow::Result<()> {
    let (code, v) = call(admin, "POST", "/v1/reload").await?;
    fail_on_error(code, &v)?;
    if admin.json {
        println!("{v}");
    } else {
        println!("reloaded");
    }
    Ok(())
}

/// `switchyard instance stop|start NAME`.
pub async fn instance(args: &InstanceArgs) -> anyhow::Result<()> {
    let action = match args.action {
        InstanceAction::Stop => "stop",
        InstanceAction::Start => "start",
    };
    let (code, v) = call(
        &args.admin,
        "POST",
        &format!("/v1/demo/instances/{}/{action}", args.name),
    )
    .await?;
    fail_on_error(code, &v)?;
    println!("{action}: demo instance {}", args.name);
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
    let (code, v) = call(admin, "GET", &path).await?;
    fail_on_error(code, &v)?;
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
