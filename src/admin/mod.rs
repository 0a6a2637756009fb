//! The admin API (HTTP, default `127.0.0.1:9901`): status, metrics, health, and the operator's
//! levers (drain / fail / restore, reload, demo instance stop/start).
//!
//! Reads are open on the (loopback by default) admin address; every mutation needs
//! `Authorization: Bearer <admin token>` (constant-time compare) and writes one audit log line.
//! Unknown paths and names get a 404 with a JSON error. `GET /` is the web console (see
//! `console`), `GET /v1/events` the live event stream it follows (see `events`).

mod auth;
mod console;
mod drills;
pub mod events;
mod explain;
mod status;

use crate::demo_services::DemoFleet;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use switchyard_balance::{AdminState, AdminTarget, HealthRegistry};
use switchyard_config::World;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A request from the admin API to the run loop (which owns the running parts); the reply
/// carries every error, if any.
pub enum Control {
    /// Reload the config (same rules as SIGHUP).
    Reload(oneshot::Sender<Result<(), String>>),
    /// Stop (`true`) or start (`false`) an in-process gateway instance for real: its listener
    /// closes and its connections end, like a crashed process. `Ok(false)`: not applicable.
    Gateway(String, bool, oneshot::Sender<Result<bool, String>>),
}

/// Kept for readability at call sites.
pub type ReloadRequest = Control;

/// What the admin API reads and pulls.
pub struct AdminCtx {
    pub world: ArcSwap<World>,
    pub registry: HealthRegistry,
    pub admin: AdminState,
    pub lb: Option<Arc<switchyard_lb::Lb>>,
    pub dns: Option<Arc<switchyard_dns::Dns>>,
    /// The gateway (its TLS listeners' certificates for `/status`).
    pub gateway: Option<switchyard_gateway::Handle>,
    pub demo: Option<DemoFleet>,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub prometheus: Option<PrometheusHandle>,
    /// Every listener bound and the first health round done.
    pub ready: AtomicBool,
    /// Live events (`GET /v1/events`).
    pub events: Arc<events::Events>,
    /// Drills started from the console (`/v1/drills`).
    pub drills: drills::Drills,
}

impl AdminCtx {
    /// Tells the event stream that a reload was applied (`Ok`) or refused (`Err`, the errors).
    pub fn reload_outcome(&self, source: &str, outcome: &Result<(), String>) {
        match outcome {
            Ok(()) => self.events.reloaded(source),
            Err(e) => self.events.reload_rejected(source, e),
        }
    }

    /// The config file the node runs (drills started from the console use it too).
    pub fn set_config_path(&self, path: std::path::PathBuf) {
        self.drills.set_config(path);
    }
}

type Body = BoxBody<Bytes, std::convert::Infallible>;

/// A complete (non-streaming) body.
fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// Binds the admin address and serves until `shutdown`.
pub async fn start(
    ctx: Arc<AdminCtx>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let addr = ctx.world.load().admin.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("admin API cannot listen on {addr}: {e}"))?;
    events::spawn_watcher(
        ctx.events.clone(),
        ctx.registry.clone(),
        ctx.admin.clone(),
        shutdown.child_token(),
    );
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    };
                    let ctx = ctx.clone();
                    let stop = shutdown.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let ctx = ctx.clone();
                            let stop = stop.clone();
                            async move {
                                let mut resp = handle(&ctx, req, peer, &stop).await;
                                if let Ok(v) = hyper::header::HeaderValue::from_str(&node_label(&ctx)) {
                                    resp.headers_mut().insert(NODE_HEADER, v);
                                }
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        }
    }))
}

/// Every admin answer names the node that gave it: `NAME ADDR` (the etcd node name, else the
/// host name, and the admin address), so a CLI pointed at the wrong node says so.
pub const NODE_HEADER: &str = "x-switchyard-node";

fn node_label(ctx: &AdminCtx) -> String {
    let etcd = crate::etcd::status();
    let name = etcd["node"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "switchyard".into());
    format!("{name} {}", ctx.world.load().admin.listen)
}

/// JSON response helper: every answer, errors included, is JSON.
pub fn json(status: StatusCode, v: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(v.to_string()))
        .expect("static response parts are valid")
}

fn not_found(what: String) -> Response<Body> {
    json(StatusCode::NOT_FOUND, json!({"error": what}))
}

async fn handle(
    ctx: &AdminCtx,
    req: Request<Incoming>,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (req.method(), segs.as_slice()) {
        (&Method::GET, [] | ["console.js" | "console.css"]) => console::asset(&path),
        (&Method::GET, ["v1", "events"]) => events_endpoint(ctx, &req, shutdown),
        // the drill list and timelines read report files: off the async workers
        (&Method::GET, ["v1", "drills"]) => {
            let drills = ctx.drills.clone();
            match tokio::task::spawn_blocking(move || drills.list()).await {
                Ok(list) => json(StatusCode::OK, list),
                Err(_) => json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "drill list failed"}),
                ),
            }
        }
        (&Method::GET, ["v1", "drills", id, "timeline.svg"]) => {
            let (drills, id) = (ctx.drills.clone(), id.to_string());
            tokio::task::spawn_blocking(move || drills.timeline(&id))
                .await
                .unwrap_or_else(|_| not_found("no such timeline".into()))
        }
        (&Method::GET, ["healthz"]) => json(StatusCode::OK, json!({"status": "alive"})),
        (&Method::GET, ["readyz"]) => {
            // Ready: every listener bound (set once all parts started) and every health-checked
            // backend has had its first check.
            let unchecked = ctx
                .registry
                .snapshot()
                .iter()
                .filter(|b| b.active == switchyard_balance::ActiveState::Unchecked)
                .count();
            if !ctx.ready.load(Ordering::Acquire) {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "starting", "reason": "listeners not bound yet"}),
                )
            } else if unchecked > 0 {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "starting", "reason": format!("{unchecked} backends not checked yet")}),
                )
            } else {
                json(StatusCode::OK, json!({"status": "ready"}))
            }
        }
        (&Method::GET, ["status"]) => json(StatusCode::OK, status::status(ctx)),
        (&Method::GET, ["v1", "explain", what @ ("dns" | "lb")]) => {
            let q = explain::query(req.uri().query());
            let answer = if *what == "dns" {
                explain::dns(ctx, &q)
            } else {
                explain::lb(ctx, &q)
            };
            match answer {
                Ok(v) => json(StatusCode::OK, v),
                Err((code, msg)) => json(
                    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
                    json!({"error": msg}),
                ),
            }
        }
        (&Method::GET, ["metrics"]) => {
            let text = ctx
                .prometheus
                .as_ref()
                .map(|h| h.render())
                .unwrap_or_default();
            Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(full(text))
                .expect("static response parts are valid")
        }
        (&Method::POST, _) => {
            let who = match auth::check(ctx, &req) {
                Ok(who) => who,
                Err(resp) => return *resp,
            };
            mutate(ctx, &segs, &who, peer).await
        }
        (_, ["healthz" | "readyz" | "status" | "metrics"]) => {
            json(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "use GET"}))
        }
        _ => not_found(format!("no such admin endpoint: {path}")),
    }
}

async fn mutate(ctx: &AdminCtx, segs: &[&str], who: &str, peer: SocketAddr) -> Response<Body> {
    let result = match segs {
        ["v1", "reload"] => {
            let (tx, rx) = oneshot::channel();
            if ctx.reload.send(Control::Reload(tx)).await.is_err() {
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "shutting down"}),
                );
            }
            match rx.await {
                Ok(Ok(())) => Ok(json!({"reloaded": true})),
                Ok(Err(errors)) => {
                    audit(who, peer, "reload", "rejected");
                    return json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"reloaded": false, "errors": errors.lines().collect::<Vec<_>>()}),
                    );
                }
                Err(_) => {
                    return json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": "shutting down"}),
                    )
                }
            }
            .inspect(|_| audit(who, peer, "reload", "ok"))
        }
        ["v1", "drills", scenario] => {
            let token = ctx.world.load().admin.token.clone();
            let addr = ctx.world.load().admin.listen;
            match ctx.drills.start(scenario, addr, token, &ctx.events) {
                Ok(v) => {
                    audit(who, peer, "drill", scenario);
                    Ok(v)
                }
                Err((code, msg)) => return json(code, json!({"error": msg})),
            }
        }
        ["v1", kind @ ("regions" | "azs" | "instances"), name, action] => {
            let world = ctx.world.load();
            let target = match target(&world, kind, name) {
                Some(t) => t,
                None => {
                    let known = known_names(&world, kind);
                    return json(
                        StatusCode::NOT_FOUND,
                        json!({"error": format!("no such {} {name:?}; known: {}", singular(kind), known.join(", ")), "known": known}),
                    );
                }
            };
            let mut changed = match *action {
                "drain" => ctx.admin.drain(target.clone()),
                "undrain" => ctx.admin.undrain(target.clone()),
                "fail" => ctx.admin.fail(target.clone()),
                "restore" => ctx.admin.restore(target.clone()),
                _ => {
                    return not_found(format!(
                        "no such action {action:?}; use drain, undrain, fail or restore"
                    ))
                }
            };
            // `restore` hands the target back to health-check control entirely: a passive
            // ejection of what it names is lifted too.
            let unejected = if *action == "restore" {
                clear_passive(ctx, &world, &target)
            } else {
                Vec::new()
            };
            changed |= !unejected.is_empty();
            audit(who, peer, action, &target.to_string());
            crate::etcd::admin_action(action, &target, who);
            Ok(
                json!({"target": target.to_string(), "action": action, "changed": changed, "unejected": unejected}),
            )
        }
        ["v1", "demo", "instances", name, action @ ("stop" | "start")] => {
            let world = ctx.world.load();
            // gateway instances and L4 listeners (drills) stop inside the run loop
            let is_gateway = world.gateway.instances.iter().any(|g| g.name == *name)
                || crate::run::is_listener(&world, name);
            drop(world);
            let done = if is_gateway {
                let (tx, rx) = oneshot::channel();
                if ctx
                    .reload
                    .send(Control::Gateway(name.to_string(), *action == "stop", tx))
                    .await
                    .is_err()
                {
                    return json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": "shutting down"}),
                    );
                }
                rx.await
                    .unwrap_or_else(|_| Err("shutting down".into()))
                    .map_err(anyhow::Error::msg)
            } else {
                let Some(demo) = &ctx.demo else {
                    return not_found("this node runs no demo services".into());
                };
                if *action == "stop" {
                    Ok(demo.stop(name).await)
                } else {
                    demo.restart(name).await
                }
            };
            match done {
                Ok(true) => {
                    audit(who, peer, action, &format!("demo instance {name}"));
                    // A started instance is a new process: the old one's passive ejection
                    // (connect failures while it was down) no longer says anything about it.
                    let unejected = if *action == "start" {
                        clear_passive(
                            ctx,
                            &ctx.world.load(),
                            &AdminTarget::Instance(name.to_string()),
                        )
                    } else {
                        Vec::new()
                    };
                    Ok(json!({"instance": name, "action": action, "unejected": unejected}))
                }
                Ok(false) => {
                    return not_found(format!(
                        "no {} demo instance {name:?}",
                        if *action == "stop" {
                            "running"
                        } else {
                            "stopped"
                        }
                    ))
                }
                Err(e) => Err(format!("{e:#}")),
            }
        }
        _ => return not_found(format!("no such admin action: /{}", segs.join("/"))),
    };
    match result {
        Ok(v) => json(StatusCode::OK, v),
        Err(e) => json(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": e})),
    }
}

/// `GET /v1/events`: Server-Sent Events for `Accept: text/event-stream` (replaying after
/// `Last-Event-ID`), else the recent events as JSON (`?since=ID`), for polling clients.
fn events_endpoint<B>(
    ctx: &AdminCtx,
    req: &Request<B>,
    shutdown: &CancellationToken,
) -> Response<Body> {
    let wants_sse = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let since: Option<u64> = explain::query(req.uri().query())
        .into_iter()
        .find(|(k, _)| k == "since")
        .and_then(|(_, v)| v.parse().ok());
    if !wants_sse {
        let since = since.unwrap_or(0);
        return json(
            StatusCode::OK,
            json!({"revision": ctx.events.revision(), "clients": ctx.events.clients(), "events": ctx.events.since(since)}),
        );
    }
    let last = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(since);
    match ctx.events.subscribe(last, shutdown.child_token()) {
        Some(body) => Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-store")
            .header("x-accel-buffering", "no")
            .body(body)
            .expect("static response parts are valid"),
        None => json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": format!("too many event clients (at most {}); poll GET /v1/events instead", events::MAX_CLIENTS)}),
        ),
    }
}

/// Resolves a mutation target against the world: only declared names are accepted.
fn target(world: &World, kind: &str, name: &str) -> Option<AdminTarget> {
    match kind {
        "regions" => world
            .region(name)
            .map(|_| AdminTarget::Region(name.to_string())),
        "azs" => world
            .regions
            .iter()
            .any(|r| r.az(name).is_some())
            .then(|| AdminTarget::Az(name.to_string())),
        _ => {
            let known = world
                .regions
                .iter()
                .flat_map(|r| &r.pools)
                .flat_map(|p| &p.members)
                .any(|m| m.name == name)
                || world.gateway.instances.iter().any(|g| g.name == name)
                || world
                    .services
                    .iter()
                    .flat_map(|s| &s.instances)
                    .any(|i| i.name == name);
            known.then(|| AdminTarget::Instance(name.to_string()))
        }
    }
}

fn singular(kind: &str) -> &str {
    match kind {
        "azs" => "AZ",
        k => k.trim_end_matches('s'),
    }
}

/// Every name of `kind` (`regions`, `azs`, `instances`) the world declares, for "no such" errors.
fn known_names(world: &World, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = match kind {
        "regions" => world.regions.iter().map(|r| r.name.clone()).collect(),
        "azs" => world
            .regions
            .iter()
            .flat_map(|r| &r.azs)
            .map(|a| a.name.clone())
            .collect(),
        _ => backends(world)
            .into_iter()
            .map(|(name, ..)| name.to_string())
            .collect(),
    };
    v.sort();
    v.dedup();
    v
}

/// Every health-checked thing of the world: (instance name, region, AZ, address).
fn backends(world: &World) -> Vec<(&str, &str, &str, SocketAddr)> {
    let mut v = Vec::new();
    for r in &world.regions {
        for m in r.pools.iter().flat_map(|p| &p.members) {
            v.push((m.name.as_str(), r.name.as_str(), m.az.as_str(), m.addr));
        }
    }
    for g in &world.gateway.instances {
        v.push((g.name.as_str(), g.region.as_str(), g.az.as_str(), g.listen));
    }
    for i in world.services.iter().flat_map(|s| &s.instances) {
        v.push((i.name.as_str(), i.region.as_str(), i.az.as_str(), i.addr));
    }
    v
}

/// Lifts the passive ejection of every backend `target` names; returns the names lifted.
fn clear_passive(ctx: &AdminCtx, world: &World, target: &AdminTarget) -> Vec<String> {
    let mut lifted: Vec<String> = backends(world)
        .into_iter()
        .filter(|(name, region, az, _)| match target {
            AdminTarget::Region(r) => region == r,
            AdminTarget::Az(a) => az == a,
            AdminTarget::Instance(i) => name == i,
        })
        .filter(|(.., addr)| ctx.registry.get(addr).is_some_and(|h| h.clear_passive()))
        .map(|(name, ..)| name.to_string())
        .collect();
    lifted.sort();
    lifted.dedup();
    lifted
}

/// One audit line per mutation: who, from where, what. (The time is the log line's timestamp.)
fn audit(who: &str, peer: SocketAddr, action: &str, target: &str) {
    tracing::info!(target: "switchyard::audit", who, %peer, action, target, "admin action");
}
