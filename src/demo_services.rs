//! The demo world's services (user, order, payment, cart): small real HTTP/1.1 JSON servers that
//! run in-process at the addresses the config gives instances with `demo = true`. Every answer says
//! which instance, region and AZ served it, so anyone can watch balancing and failover happen.
//!
//! Instances can be stopped and started again (drills use this): stopping closes the listener and
//! resets open connections, exactly like a crashed process, so health checks notice on their own.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use socket2::SockRef;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_config::services::ServiceInstance;
use switchyard_config::World;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Identity of one running demo instance.
#[derive(Debug, Clone)]
struct Ident {
    service: String,
    instance: String,
    region: String,
    az: String,
}

struct Running {
    spec: ServiceInstance,
    service: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Every demo instance this node runs, by instance name. Control-plane only (start/stop/reload);
/// requests never touch the lock.
#[derive(Default, Clone)]
pub struct DemoFleet {
    running: Arc<Mutex<BTreeMap<String, Running>>>,
    stopped: Arc<Mutex<BTreeMap<String, (String, ServiceInstance)>>>,
}

// `stop`, `restart` and `running` serve the admin API's drills.
#[allow(dead_code)]
impl DemoFleet {
    /// Binds and starts every `demo = true` instance of the node's region(s).
    pub async fn start(world: &World) -> anyhow::Result<DemoFleet> {
        let fleet = DemoFleet::default();
        fleet.apply(world).await?;
        Ok(fleet)
    }

    /// Makes the running set match `world`: starts new or changed instances, stops removed ones.
    pub async fn apply(&self, world: &World) -> anyhow::Result<()> {
        let mut wanted = BTreeMap::new();
        for s in &world.services {
            for i in s
                .instances
                .iter()
                .filter(|i| i.demo && world.node.in_region(&i.region))
            {
                wanted.insert(i.name.clone(), (s.name.clone(), i.clone()));
            }
        }
        let stale: Vec<Running> = {
            let mut running = self.running.lock().expect("demo fleet lock");
            let names: Vec<String> = running
                .iter()
                .filter(|(n, r)| {
                    wanted
                        .get(*n)
                        .is_none_or(|(svc, spec)| *svc != r.service || *spec != r.spec)
                })
                .map(|(n, _)| n.clone())
                .collect();
            names
                .into_iter()
                .filter_map(|n| running.remove(&n))
                .collect()
        };
        for r in stale {
            r.stop.cancel();
            let _ = r.task.await;
        }
        self.stopped
            .lock()
            .expect("demo fleet lock")
            .retain(|n, _| wanted.contains_key(n));
        for (name, (service, spec)) in wanted {
            let already = self
                .running
                .lock()
                .expect("demo fleet lock")
                .contains_key(&name)
                || self
                    .stopped
                    .lock()
                    .expect("demo fleet lock")
                    .contains_key(&name);
            if !already {
                self.spawn(service, spec).await?;
            }
        }
        Ok(())
    }

    /// Starts one demo instance of `service` outside any world (`switchyard register --demo`).
    pub async fn spawn_instance(
        &self,
        service: String,
        spec: ServiceInstance,
    ) -> anyhow::Result<()> {
        self.spawn(service, spec).await
    }

    async fn spawn(&self, service: String, spec: ServiceInstance) -> anyhow::Result<()> {
        let listener = TcpListener::bind(spec.addr).await.with_context(|| {
            format!("demo service {} cannot listen on {}", spec.name, spec.addr)
        })?;
        let ident = Arc::new(Ident {
            service: service.clone(),
            instance: spec.name.clone(),
            region: spec.region.clone(),
            az: spec.az.clone(),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, ident, stop.clone()));
        self.running.lock().expect("demo fleet lock").insert(
            spec.name.clone(),
            Running {
                spec,
                service,
                stop,
                task,
            },
        );
        Ok(())
    }

    /// Stops an instance as if it crashed (listener closed, connections reset). False if unknown.
    pub async fn stop(&self, name: &str) -> bool {
        let r = self.running.lock().expect("demo fleet lock").remove(name);
        match r {
            Some(r) => {
                r.stop.cancel();
                let _ = r.task.await;
                self.stopped
                    .lock()
                    .expect("demo fleet lock")
                    .insert(name.to_string(), (r.service, r.spec));
                true
            }
            None => false,
        }
    }

    /// Starts a stopped instance again. False if it is not a stopped instance.
    pub async fn restart(&self, name: &str) -> anyhow::Result<bool> {
        let s = self.stopped.lock().expect("demo fleet lock").remove(name);
        match s {
            Some((service, spec)) => self.spawn(service, spec).await.map(|_| true),
            None => Ok(false),
        }
    }

    /// Names and addresses of running instances.
    pub fn running(&self) -> Vec<(String, SocketAddr)> {
        self.running
            .lock()
            .expect("demo fleet lock")
            .values()
            .map(|r| (r.spec.name.clone(), r.spec.addr))
            .collect()
    }

    /// Stops everything (shutdown).
    pub async fn shutdown(&self) {
        let all: Vec<Running> = std::mem::take(&mut *self.running.lock().expect("demo fleet lock"))
            .into_values()
            .collect();
        for r in all {
            r.stop.cancel();
            let _ = r.task.await;
        }
    }
}

async fn serve(listener: TcpListener, ident: Arc<Ident>, stop: CancellationToken) {
    let mut conns = JoinSet::new();
    let counter = Arc::new(AtomicU64::new(0));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "demo service accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let ident = ident.clone();
                let counter = counter.clone();
                let stop = stop.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, ident.clone(), peer, counter.clone()));
                    let sock = SockRef::from(&stream).try_clone().ok();
                    let conn = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.cancelled() => {
                            // A crash resets connections rather than closing them politely.
                            if let Some(s) = sock {
                                let _ = s.set_linger(Some(Duration::ZERO));
                            }
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

type Body = Full<Bytes>;

async fn handle(
    req: Request<Incoming>,
    ident: Arc<Ident>,
    peer: SocketAddr,
    counter: Arc<AtomicU64>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let user = header("x-user-id");
    let forwarded_for = header("x-forwarded-for");
    let request_id = header("x-request-id");
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "body too large"}),
            ))
        }
    };
    if path == "/healthz" {
        return Ok(json_response(
            StatusCode::OK,
            json!({"status": "ok", "instance": ident.instance}),
        ));
    }
    let (status, data) = answer(
        &ident.service,
        &method,
        &path,
        &query,
        &body,
        user.as_deref(),
        n,
    );
    let mut v = json!({
        "service": ident.service,
        "instance": ident.instance,
        "region": ident.region,
        "az": ident.az,
        "path": path,
        "peer": peer.to_string(),
    });
    if let Some(u) = user {
        v["user_id"] = Value::String(u);
    }
    if let Some(f) = forwarded_for {
        v["forwarded_for"] = Value::String(f);
    }
    if let Some(r) = request_id {
        v["request_id"] = Value::String(r);
    }
    if let (Value::Object(out), Value::Object(extra)) = (&mut v, data) {
        out.extend(extra);
    }
    Ok(json_response(status, v))
}

/// The plausible data each demo service returns, by path.
fn answer(
    service: &str,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
    user: Option<&str>,
    n: u64,
) -> (StatusCode, Value) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let id = segs.last().copied().unwrap_or("me");
    match (service, segs.as_slice()) {
        ("user", ["v2", "users", _]) => (
            StatusCode::OK,
            json!({"version": 2, "user": {"id": id, "display_name": display_name(id), "contact": {"email": format!("{id}@example.test")}, "tier": "gold"}}),
        ),
        ("user", [_, "users", _]) => (
            StatusCode::OK,
            json!({"version": 1, "user": {"id": id, "name": display_name(id), "email": format!("{id}@example.test")}}),
        ),
        ("user", [_, "admin", ..]) => (
            StatusCode::OK,
            json!({"admin": {"users": 2, "action": segs.get(2).copied().unwrap_or("overview")}}),
        ),
        ("order", _) => {
            let who = query_param(query, "user")
                .or(user)
                .unwrap_or("anonymous")
                .to_string();
            let limit = query_param(query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(5usize)
                .min(20);
            let orders: Vec<Value> = (0..limit)
                .map(|i| json!({"id": format!("o-{}", 1000 + i), "user": who, "total_cents": 1250 + 100 * i as u64, "status": if i == 0 {"shipped"} else {"delivered"}}))
                .collect();
            (StatusCode::OK, json!({"orders": orders}))
        }
        ("cart", _) => (
            StatusCode::OK,
            json!({"cart": {"user": user.unwrap_or(id), "items": 3, "total_cents": 4797, "currency": "USD"}}),
        ),
        ("payment", _) if method == Method::POST => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            (
                StatusCode::CREATED,
                json!({"payment": {"id": format!("p-{n}"), "status": "approved", "amount_cents": request.get("amount_cents").cloned().unwrap_or(json!(0))}}),
            )
        }
        ("payment", _) => (StatusCode::METHOD_NOT_ALLOWED, json!({"error": "use POST"})),
        _ => (StatusCode::NOT_FOUND, json!({"error": "no such resource"})),
    }
}

fn display_name(id: &str) -> String {
    let mut c = id.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => "Someone".into(),
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

fn json_response(status: StatusCode, v: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("static response parts are valid")
}
