//! `switchyard run`: start this node's parts of the world, print what listens where, then serve
//! until SIGINT/SIGTERM (graceful shutdown) while SIGHUP reloads the config off to the side.

use crate::admin::{AdminCtx, Control, ReloadRequest};
use crate::cli::RunArgs;
use crate::demo_services::DemoFleet;
use anyhow::{anyhow, Context};
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_balance::{AdminState, HealthRegistry};
use switchyard_config::{Part, World};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where the world comes from, so a reload reads the same place again.
#[derive(Debug, Clone)]
pub enum Source {
    Demo,
    File(PathBuf),
    /// A world kept in etcd and followed by a watch (see `crate::etcd`).
    Etcd(Arc<crate::etcd::EtcdSource>),
}

/// The node's `--region`/`--only` choice, applied to every world loaded (start and reloads).
#[derive(Debug, Clone)]
pub struct Selection {
    region: Option<String>,
    only: Option<Vec<Part>>,
    admin_listen: Option<std::net::SocketAddr>,
    dns_listen: Option<Vec<std::net::SocketAddr>>,
    /// The demo world's state directory (its TLS files are resolved there).
    state_dir: PathBuf,
}

impl Source {
    /// Loads and validates the world; every error is in the message.
    pub fn load(&self, sel: &Selection) -> anyhow::Result<World> {
        let world = match self {
            Source::Demo => {
                crate::demo_tls::ensure(&sel.state_dir)?;
                crate::dnssec_cmd::sign_demo(switchyard_config::demo_world_https())
                    .resolve_paths(&sel.state_dir)
            }
            Source::File(p) => switchyard_config::load_file(p).map_err(|e| anyhow!("{e}"))?,
            Source::Etcd(e) => e.load()?,
        };
        let mut world = world
            .with_node(sel.region.clone(), sel.only.clone())
            .map_err(|e| anyhow!(e))?;
        if let Some(a) = sel.admin_listen {
            world.admin.listen = a;
        }
        if let Some(d) = &sel.dns_listen {
            world.dns.listen = d.clone();
        }
        Ok(match self {
            Source::Etcd(e) => e.for_node(world),
            _ => world,
        })
    }
}

/// Everything this node runs, and the shared views they read (one health registry, one admin
/// state: DNS, L4 and the gateway all obey the same drain/fail/restore).
pub struct Parts {
    world: Arc<World>,
    demo: Option<DemoFleet>,
    gateway: Option<switchyard_gateway::Handle>,
    lb: Option<Arc<switchyard_lb::Lb>>,
    dns: Option<Arc<switchyard_dns::Dns>>,
    admin_ctx: Option<Arc<AdminCtx>>,
    /// The shared views, for the cluster tasks (etcd).
    registry: HealthRegistry,
    admin: AdminState,
    /// Gateway instances stopped through the admin API (drills); kept across reloads.
    stopped_gateways: HashSet<String>,
    /// L4 listeners stopped for a drill (`region-blackout`), by name: the balancer runs the
    /// world without them (spill ingress included) until they are started again.
    stopped_listeners: HashSet<String>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    shutdown: CancellationToken,
}

impl Parts {
    /// Starts (binds) every part the node runs; returns when all are listening.
    pub async fn start(
        world: Arc<World>,
        shutdown: CancellationToken,
        reload: mpsc::Sender<ReloadRequest>,
        prometheus: Option<PrometheusHandle>,
    ) -> anyhow::Result<Parts> {
        let admin = AdminState::new();
        let registry = HealthRegistry::with_admin(admin.clone());
        if world.node.runs(Part::Admin) {
            // Checked first: a second `switchyard run` would otherwise stop at whichever demo
            // port happens to be bound first, naming an address that explains nothing.
            if let Err(e) = std::net::TcpListener::bind(world.admin.listen) {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    anyhow::bail!(
                        "the admin address {} is in use: another Switchyard seems to be running \
                         (`switchyard status --admin {}` asks it); stop it, or pass --admin-listen",
                        world.admin.listen,
                        world.admin.listen
                    );
                }
            }
        }
        let demo = if world.node.runs(Part::Services) {
            Some(DemoFleet::start(&world).await?)
        } else {
            None
        };
        let gateway = if world.node.runs(Part::Gateway) {
            let gw_world = Arc::new(gateway_world(&world, &HashSet::new()));
            Some(
                switchyard_gateway::start(gw_world, registry.clone(), shutdown.child_token())
                    .await
                    .context("gateway")?,
            )
        } else {
            None
        };
        let lb = if world.node.runs(Part::Lb) {
            Some(Arc::new(
                switchyard_lb::start(world.clone(), registry.clone(), shutdown.child_token())
                    .await
                    .context("L4 balancer")?,
            ))
        } else {
            None
        };
        let dns = if world.node.runs(Part::Dns) {
            Some(Arc::new(
                switchyard_dns::start(world.clone(), registry.clone(), shutdown.child_token())
                    .await
                    .context("DNS server")?,
            ))
        } else {
            None
        };
        let (admin_ctx, admin_task) = if world.node.runs(Part::Admin) {
            let ctx = Arc::new(AdminCtx {
                world: ArcSwap::new(world.clone()),
                registry: registry.clone(),
                admin: admin.clone(),
                lb: lb.clone(),
                dns: dns.clone(),
                gateway: gateway.clone(),
                demo: demo.clone(),
                reload,
                prometheus,
                ready: AtomicBool::new(false),
                events: Default::default(),
                drills: Default::default(),
            });
            let task = crate::admin::start(ctx.clone(), shutdown.child_token()).await?;
            (Some(ctx), Some(task))
        } else {
            (None, None)
        };
        if let Some(ctx) = &admin_ctx {
            ctx.ready.store(true, Ordering::Release);
        }
        Ok(Parts {
            world,
            demo,
            gateway,
            lb,
            dns,
            admin_ctx,
            registry,
            admin,
            stopped_gateways: HashSet::new(),
            stopped_listeners: HashSet::new(),
            admin_task,
            shutdown,
        })
    }

    /// Applies a new validated world to every part.
    pub async fn reload(&mut self, world: Arc<World>) -> anyhow::Result<()> {
        if let Some(demo) = &self.demo {
            demo.apply(&world).await?;
        }
        if let Some(gw) = &self.gateway {
            gw.reload(Arc::new(gateway_world(&world, &self.stopped_gateways)))
                .await
                .context("gateway")?;
        }
        if let Some(lb) = &self.lb {
            lb.reload(Arc::new(lb_world(&world, &self.stopped_listeners)))
                .await
                .context("L4 balancer")?;
        }
        if let Some(dns) = &self.dns {
            dns.reload(world.clone()).context("DNS server")?;
        }
        if let Some(ctx) = &self.admin_ctx {
            ctx.world.store(world.clone());
        }
        self.world = world;
        Ok(())
    }

    /// Stops (or starts again) one gateway instance of this node for real (drills).
    pub async fn gateway_instance(&mut self, name: &str, stop: bool) -> Result<bool, String> {
        if is_listener(&self.world, name) {
            return self.listener(name, stop).await;
        }
        let Some(gw) = &self.gateway else {
            return Ok(false);
        };
        let known = self
            .world
            .gateway
            .instances
            .iter()
            .any(|g| g.name == name && self.world.node.in_region(&g.region));
        let changed = if stop {
            self.stopped_gateways.insert(name.to_string())
        } else {
            self.stopped_gateways.remove(name)
        };
        if !known || !changed {
            return Ok(false);
        }
        gw.reload(Arc::new(gateway_world(&self.world, &self.stopped_gateways)))
            .await
            .map(|_| true)
            .map_err(|e| e.to_string())
    }

    /// Stops (or starts again) one L4 listener of this node and its spill ingress (drills:
    /// `region-blackout`). Established connections are not cut.
    async fn listener(&mut self, name: &str, stop: bool) -> Result<bool, String> {
        let Some(lb) = &self.lb else {
            return Ok(false);
        };
        let changed = if stop {
            self.stopped_listeners.insert(name.to_string())
        } else {
            self.stopped_listeners.remove(name)
        };
        if !changed {
            return Ok(false);
        }
        lb.reload(Arc::new(lb_world(&self.world, &self.stopped_listeners)))
            .await
            .map(|_| true)
            .map_err(|e| e.to_string())
    }

    /// Stops accepting, lets in-flight work finish within `grace`, then returns.
    pub async fn stop(self, grace: Duration) {
        self.shutdown.cancel();
        let Parts {
            dns,
            lb,
            gateway,
            demo,
            admin_ctx,
            admin_task,
            ..
        } = self;
        let drain = async move {
            if let Some(task) = admin_task {
                let _ = task.await;
            }
            drop(admin_ctx);
            // Front to back: DNS and L4 stop taking new work, then the gateway, then services.
            if let Some(dns) = &dns {
                dns.wait().await;
            }
            if let Some(lb) = &lb {
                lb.wait().await;
            }
            if let Some(gw) = &gateway {
                gw.wait().await;
            }
            if let Some(demo) = &demo {
                demo.shutdown().await;
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(?grace, "grace period over; closing what is left");
        }
    }

    /// Tells the admin API's event stream how a reload went.
    fn reload_event(&self, source: &str, outcome: &Result<(), String>) {
        if let Some(ctx) = &self.admin_ctx {
            ctx.reload_outcome(source, outcome);
        }
    }

    /// The world currently running.
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }
}

/// Runs until a termination signal.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let (source, mut etcd_changes) = match &args.config {
        Some(p) if crate::etcd::is_etcd(p) => {
            let (src, changes) = crate::etcd::EtcdSource::connect(&p.to_string_lossy()).await?;
            (Source::Etcd(src), Some(changes))
        }
        Some(p) => (Source::File(p.clone()), None),
        None => (Source::Demo, None),
    };
    let only = match &args.only {
        Some(list) => Some(
            list.iter()
                .map(|s| Part::parse(s).ok_or_else(|| anyhow!("unknown part {s:?} in --only; expected dns, lb, gateway, services or admin")))
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
        None => None,
    };
    let sel = Selection {
        region: args.region.clone(),
        only,
        admin_listen: args.admin_listen,
        dns_listen: args.dns_listen.clone(),
        state_dir: crate::demo_tls::state_dir(args.state_dir.as_deref()),
    };
    if args.print_config {
        if let Source::Demo = source {
            crate::demo_tls::ensure(&sel.state_dir)?;
        }
        match &source {
            // the whole demo, its certificate paths made absolute (the file works anywhere)
            Source::Demo => print!(
                "{}",
                switchyard_config::demo_toml_https()
                    .replace("\"tls/", &format!("\"{}/tls/", sel.state_dir.display()))
            ),
            Source::File(p) => print!(
                "{}",
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?
            ),
            Source::Etcd(e) => print!("{}", e.text()),
        }
        return Ok(());
    }
    let world = Arc::new(source.load(&sel)?);
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;

    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
        .ok();
    switchyard_balance::metrics::describe();
    switchyard_lb::metrics::describe();
    switchyard_dns::metrics::describe();
    switchyard_gateway::metrics::describe();
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let root = CancellationToken::new();
    let mut parts = Parts::start(world.clone(), root.child_token(), reload_tx, prometheus).await?;
    if let Source::Etcd(e) = &source {
        e.applied(parts.world());
        e.start_tasks(parts.registry.clone(), parts.admin.clone());
    }
    if let (Source::File(p), Some(ctx)) = (&source, &parts.admin_ctx) {
        ctx.set_config_path(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    }
    let health = first_health_round(&parts.registry).await;
    crate::run::banner(&source, parts.world(), &sel.state_dir, &health);
    crate::systemd::ready();

    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration");
                let r = reload(&source, &sel, &mut parts).await;
                parts.reload_event("SIGHUP", &r);
            }
            Some(ctl) = reload_rx.recv() => match ctl {
                Control::Reload(reply) => {
                    tracing::info!("admin API: reloading configuration");
                    let r = reload(&source, &sel, &mut parts).await;
                    parts.reload_event("admin API", &r);
                    let _ = reply.send(r);
                }
                Control::Gateway(name, stop, reply) => {
                    let r = parts.gateway_instance(&name, stop).await;
                    tracing::info!(instance = %name, stop, result = ?r, "admin API: gateway instance");
                    let _ = reply.send(r);
                }
            },
            Some(()) = crate::etcd::next_change(&mut etcd_changes) => {
                tracing::info!("etcd: the world or the registry changed; reloading");
                let r = reload(&source, &sel, &mut parts).await;
                parts.reload_event("etcd", &r);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    crate::systemd::stopping();
    tracing::info!(grace = ?args.grace, "shutting down");
    if let Source::Etcd(e) = &source {
        e.stop().await;
    }
    parts.stop(args.grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// The gateway part of the world restricted to this node's region (every node may load the same
/// file; only its own instances bind).
fn gateway_world(world: &World, stopped: &HashSet<String>) -> World {
    let mut w = world.clone();
    w.gateway
        .instances
        .retain(|g| world.node.in_region(&g.region) && !stopped.contains(&g.name));
    w
}

/// Whether `name` is an L4 listener of a region this node runs.
pub fn is_listener(world: &World, name: &str) -> bool {
    world
        .regions
        .iter()
        .filter(|r| world.node.in_region(&r.name))
        .any(|r| r.listeners.iter().any(|l| l.name == name))
}

/// The world the balancer runs: without the listeners a drill stopped.
fn lb_world(world: &World, stopped: &HashSet<String>) -> World {
    let mut w = world.clone();
    for r in &mut w.regions {
        r.listeners.retain(|l| !stopped.contains(&l.name));
    }
    w
}

/// Reloads, telling systemd (`RELOADING=1` ... `READY=1`) while it runs.
async fn reload(source: &Source, sel: &Selection, parts: &mut Parts) -> Result<(), String> {
    crate::systemd::reloading();
    let r = reload_now(source, sel, parts).await;
    crate::systemd::ready();
    r
}

/// Loads, validates and applies the world again; on any error the running world stays and every
/// error is logged (and returned, for the admin API).
async fn reload_now(source: &Source, sel: &Selection, parts: &mut Parts) -> Result<(), String> {
    match source.load(sel) {
        Ok(w) => match parts.reload(Arc::new(w)).await {
            Ok(()) => {
                if let Source::Etcd(e) = source {
                    e.applied(parts.world());
                }
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!(error = %msg, "reload failed while applying; parts keep what they could not change");
                Err(msg)
            }
        },
        Err(e) => {
            let msg = format!("{e:#}");
            for line in msg.lines() {
                tracing::error!("{line}");
            }
            tracing::error!("reload rejected: the running configuration is unchanged");
            if let Source::Etcd(e) = source {
                e.rejected();
            }
            Err(msg)
        }
    }
}

/// Prints what listens where and commands to try.
/// Waits (at most 5 s) until every checked backend has had its first check, so the banner is
/// the last thing on screen and can say what is healthy; returns that line.
async fn first_health_round(registry: &HealthRegistry) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let snap = registry.snapshot();
        let unchecked = snap
            .iter()
            .filter(|b| b.active == switchyard_balance::ActiveState::Unchecked)
            .count();
        if unchecked == 0 || tokio::time::Instant::now() >= deadline {
            let down: Vec<String> = snap
                .iter()
                .filter(|b| b.active == switchyard_balance::ActiveState::Down)
                .map(|b| match &b.labels.instance {
                    Some(n) => n.clone(),
                    None => b.addr.to_string(),
                })
                .collect();
            let up = snap.len() - unchecked - down.len();
            let mut line = format!("  health:  {up} of {} backends up", snap.len());
            if !down.is_empty() {
                line.push_str(&format!(", down: {}", down.join(", ")));
            }
            if unchecked > 0 {
                line.push_str(&format!(", {unchecked} not checked yet"));
            }
            return line + "\n";
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub fn banner(source: &Source, world: &World, state_dir: &Path, health: &str) {
    let mut out = String::new();
    let origin = match source {
        Source::Demo => {
            "the embedded demo world (print it with `switchyard demo-config`)".to_string()
        }
        Source::File(p) => p.display().to_string(),
        Source::Etcd(e) => e.display(),
    };
    out.push_str(&format!(
        "switchyard {} running {origin}\n",
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str(&format!("  world: {}\n", world.summary()));
    out.push_str(health);
    if world.node.runs(Part::Dns) {
        for a in &world.dns.listen {
            out.push_str(&format!("  dns      {a} (udp+tcp)\n"));
        }
        for a in world.dns.tls.iter().flat_map(|t| &t.listen) {
            out.push_str(&format!("  dns      {a} (tls)\n"));
        }
        if let Some(t) = &world.dns.https {
            for a in &t.listen {
                out.push_str(&format!("  dns      https://{a}{}\n", t.path));
            }
        }
    }
    if world.node.runs(Part::Lb) {
        for r in world
            .regions
            .iter()
            .filter(|r| world.node.in_region(&r.name))
        {
            for l in &r.listeners {
                for a in &l.addrs {
                    out.push_str(&format!(
                        "  l4       {a}  {} ({}) -> pool {}\n",
                        l.name, r.name, l.pool
                    ));
                }
            }
        }
    }
    if world.node.runs(Part::Gateway) {
        for g in world
            .gateway
            .instances
            .iter()
            .filter(|g| world.node.in_region(&g.region))
        {
            out.push_str(&format!("  gateway  {}  {} ({})\n", g.listen, g.name, g.az));
            if let Some(t) = &g.tls {
                out.push_str(&format!(
                    "  gateway  {}  {} ({}) https\n",
                    t.listen, g.name, g.az
                ));
            }
        }
    }
    if world.node.runs(Part::Services) {
        for s in &world.services {
            for i in s
                .instances
                .iter()
                .filter(|i| i.demo && world.node.in_region(&i.region))
            {
                out.push_str(&format!("  service  {}  {} ({})\n", i.addr, i.name, i.az));
            }
        }
    }
    if world.node.runs(Part::Admin) {
        out.push_str(&format!("  admin    http://{}\n", world.admin.listen));
    }
    if matches!(source, Source::Demo) {
        out.push_str(&demo_tips(world, state_dir));
    }
    out.push_str("ready\n");
    print!("{out}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

fn demo_tips(world: &World, state_dir: &Path) -> String {
    let dns = world
        .dns
        .listen
        .first()
        .map(|a| (a.ip().to_string(), a.port()));
    let mut t = String::from("\nTry:\n");
    if let Some((ip, port)) = dns {
        t.push_str(&format!("  dig @{ip} -p {port} api.example.test A +subnet=81.2.69.160/27   # a GB client: eu-west 127.0.2.1\n"));
        t.push_str(&format!("  dig @{ip} -p {port} api.example.test A                          # unknown location: us-east 127.0.1.1\n"));
    }
    if let Some(s) = world.services.first().and_then(|s| s.instances.first()) {
        t.push_str(&format!(
            "  curl http://{}/v1/users/alice                  # a demo service, directly\n",
            s.addr
        ));
    }
    t.push_str("  TOKEN=$(switchyard token --sub alice --roles customer)\n");
    t.push_str("  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.1.1:8080/v1/home   # DNS VIP -> L4 -> gateway -> services\n");
    if let Some(vip) = world.regions.first().and_then(|r| r.vips.first()) {
        let ca = crate::demo_tls::state_dir(Some(state_dir)).join("tls/ca.pem");
        t.push_str(&format!(
            "  curl --cacert {} --resolve api.example.test:8443:{vip} -H \"Authorization: Bearer $TOKEN\" https://api.example.test:8443/v1/home   # HTTPS (HTTP/2): TLS through L4 to the gateway; the CA: switchyard demo-ca\n",
            ca.display()
        ));
    }
    let ca = crate::demo_tls::state_dir(Some(state_dir)).join("tls/ca.pem");
    if let Some(a) = world.dns.tls.as_ref().and_then(|t| t.listen.first()) {
        t.push_str(&format!(
            "  kdig @{} -p {} +tls +tls-ca={} +tls-hostname=dns.example.test api.example.test   # DNS over TLS\n",
            a.ip(),
            a.port(),
            ca.display()
        ));
    }
    if let Some((a, path)) = world
        .dns
        .https
        .as_ref()
        .and_then(|t| Some((t.listen.first()?, &t.path)))
    {
        t.push_str(&format!(
            "  kdig @{} -p {} +https={path} +tls-ca={} +tls-hostname=dns.example.test api.example.test   # DNS over HTTPS (or curl --cacert ... -H 'accept: application/dns-message' 'https://{a}{path}?dns=...')\n",
            a.ip(),
            a.port(),
            ca.display()
        ));
    }
    t.push_str(&format!(
        "  admin token: {}\n",
        switchyard_config::DEMO_ADMIN_TOKEN
    ));
    t
}
