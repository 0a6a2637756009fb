//! The etcd glue of the binary (`switchyard-cluster` does the talking): the world as a
//! [`Source`](crate::run::Source) read from etcd and followed by a watch, the `/status` block,
//! and the background tasks a node runs when it takes part in a cluster (see `tasks`).
//!
//! Every new revision of the world key, and every change of the registered instances, goes
//! through the same `reload()` as SIGHUP: validated off to the side, applied on success, rejected
//! with every error logged (the old world keeps running) otherwise.

mod cluster_metrics;
mod commands;
mod tasks;

pub use commands::{config, register, ConfigArgs, RegisterArgs};

use anyhow::anyhow;
use arc_swap::ArcSwap;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, OnceLock};
use switchyard_cluster::watcher::{self, View};
use switchyard_cluster::{registry, Client, EtcdUrl, Link, Publisher};
use switchyard_config::World;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// The one etcd source of this process, for `/status` (set once by [`EtcdSource::connect`]).
static CURRENT: OnceLock<Arc<EtcdSource>> = OnceLock::new();

/// True when a `--config` value names etcd rather than a file.
pub fn is_etcd(config: &std::path::Path) -> bool {
    config.to_str().is_some_and(|s| s.starts_with("etcd://"))
}

/// The world read from etcd and kept current by a watch.
pub struct EtcdSource {
    url: EtcdUrl,
    node: String,
    client: Client,
    link: Arc<Link>,
    view: watch::Receiver<Arc<View>>,
    state: Mutex<Revisions>,
    /// The world this node runs (after a successful start or reload).
    running: ArcSwap<Option<Arc<World>>>,
    publisher: Publisher,
    publisher_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// DNS observer state, for `/status`.
    observed: Mutex<Vec<Value>>,
    /// The VIP probes this node runs as a DNS observer (taken out of the world it runs).
    probes: Mutex<Vec<tasks::Probe>>,
    /// The probes' health entries, held so their checkers keep running between observations.
    probe_health: Mutex<Vec<Arc<switchyard_balance::BackendHealth>>>,
    /// Cluster-wide admin entries this node obeys, (mode, target) -> the store revision from
    /// which their absence means "withdrawn" (0: seen in etcd; the put's revision for our own
    /// writes; `i64::MAX` while our put is in flight or failed: then only we undo it).
    obeyed: Mutex<std::collections::HashMap<(String, switchyard_balance::AdminTarget), i64>>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for EtcdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSource")
            .field("url", &self.url.display())
            .field("node", &self.node)
            .finish()
    }
}

/// Which revisions of the world key this node has run, tried and refused.
#[derive(Debug, Default)]
struct Revisions {
    /// The last world text that validated and applied, and its revision.
    good: Option<(String, i64)>,
    /// The revision `load` handed out last (applied or not yet).
    tried: Option<(String, i64)>,
    running: Option<i64>,
    rejected: Option<i64>,
    registered: Vec<String>,
}

impl EtcdSource {
    /// Reads the world from etcd (a clear error naming the URL when etcd does not answer or
    /// holds no world), starts following it and returns the source plus a channel that fires
    /// whenever the world or the registry changed.
    pub async fn connect(url: &str) -> anyhow::Result<(Arc<EtcdSource>, mpsc::Receiver<()>)> {
        let url = EtcdUrl::parse(url)?;
        let client = Client::new(&url.endpoint);
        let link = Arc::new(Link::default());
        let shutdown = CancellationToken::new();
        let view = watcher::watch(client.clone(), url.clone(), link.clone(), shutdown.clone())
            .await
            .map_err(|e| anyhow!("cannot read the world from {}: {e}", url.display()))?;
        if view.borrow().world.is_none() {
            shutdown.cancel();
            return Err(anyhow!(
                "{} holds no world; publish one with `switchyard config push FILE --to {}`",
                url.display(),
                url.display()
            ));
        }
        let (publisher, task) =
            Publisher::start(client.clone(), url.ttl, link.clone(), shutdown.clone());
        let src = Arc::new(EtcdSource {
            node: url.node_name(),
            url,
            client,
            link,
            view,
            state: Mutex::default(),
            running: ArcSwap::from_pointee(None),
            publisher,
            publisher_task: Mutex::new(Some(task)),
            observed: Mutex::default(),
            probes: Mutex::default(),
            probe_health: Mutex::default(),
            obeyed: Mutex::default(),
            shutdown,
        });
        let _ = CURRENT.set(src.clone());
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(poke_on_change(src.view.clone(), tx, src.shutdown.clone()));
        Ok((src, rx))
    }

    /// The world to run now: the newest revision of the world key (unless that one was already
    /// refused: then the last good one) plus the live registered instances.
    pub fn load(&self) -> anyhow::Result<World> {
        let view = self.view.borrow().clone();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let newest = view
            .world
            .as_ref()
            .map(|w| (w.text.clone(), w.revision))
            .ok_or_else(|| anyhow!("{} holds no world any more", self.url.display()))?;
        let (text, rev) = if Some(newest.1) == st.rejected {
            st.good.clone().unwrap_or(newest)
        } else {
            newest
        };
        let origin = format!("{}@{rev}", self.url.display());
        st.tried = Some((text.clone(), rev));
        let world = switchyard_config::parse_str(&text, &origin).map_err(|e| anyhow!("{e}"))?;
        let (world, skipped) = registry::overlay(&world, &view.registrations);
        for s in &skipped {
            tracing::warn!(target: "switchyard::cluster", "{s}");
        }
        st.registered = view
            .registrations
            .iter()
            .map(|r| r.name.clone())
            .filter(|n| {
                let in_service = world
                    .services
                    .iter()
                    .flat_map(|s| &s.instances)
                    .any(|i| &i.name == n);
                let in_pool = world
                    .regions
                    .iter()
                    .flat_map(|r| &r.pools)
                    .flat_map(|p| &p.members)
                    .any(|m| &m.name == n);
                in_service || in_pool
            })
            .collect();
        Ok(world)
    }

    /// The node's view of the loaded world (after `--region`/`--only`): on a DNS node the VIP
    /// probes move from the DNS server to the cluster observer (see `tasks`).
    pub fn for_node(&self, world: World) -> World {
        let (world, probes) = tasks::take_probes(world);
        *self.probes.lock().unwrap_or_else(|e| e.into_inner()) = probes;
        world
    }

    /// The world from the last `load` was refused (invalid, or not usable by this node): that
    /// revision is not tried again; registry changes apply on top of the last good world.
    pub fn rejected(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, rev)) = st.tried.clone() else {
            return;
        };
        if st.good.as_ref().is_some_and(|(_, good)| *good == rev) {
            return; // the last good world itself failed for this node: nothing to fall back to
        }
        if st.rejected != Some(rev) {
            metrics::counter!(cluster_metrics::REJECTED).increment(1);
            tracing::error!(target: "switchyard::cluster", revision = rev, "world from etcd rejected; keeping revision {:?}", st.running);
        }
        st.rejected = Some(rev);
    }

    /// The world from the last `load` runs now.
    pub fn applied(&self, world: &Arc<World>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((text, rev)) = st.tried.clone() {
            if st.running != Some(rev) {
                tracing::info!(target: "switchyard::cluster", revision = rev, node = %self.node, "running world revision");
            }
            st.running = Some(rev);
            st.good = Some((text, rev));
            metrics::gauge!(cluster_metrics::REVISION).set(rev as f64);
        }
        metrics::gauge!(cluster_metrics::REGISTERED).set(st.registered.len() as f64);
        self.running.store(Arc::new(Some(world.clone())));
    }

    /// Starts what a cluster node does besides following the world: publish the health of the
    /// regions it balances, observe the others (DNS nodes), obey cluster-wide admin actions.
    pub fn start_tasks(
        self: &Arc<Self>,
        registry: switchyard_balance::HealthRegistry,
        admin: switchyard_balance::AdminState,
    ) {
        cluster_metrics::describe();
        tokio::spawn(tasks::run(self.clone(), registry, admin));
    }

    /// Stops following etcd and revokes this node's lease (its published keys go at once).
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let task = self
            .publisher_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
        }
    }

    /// The newest world text in etcd (`run --print-config`).
    pub fn text(&self) -> String {
        self.view
            .borrow()
            .world
            .as_ref()
            .map(|w| w.text.clone())
            .unwrap_or_default()
    }

    /// `etcd://HOST:PORT/KEY` for messages.
    pub fn display(&self) -> String {
        self.url.display()
    }

    fn status(&self) -> Value {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let view = self.view.borrow().clone();
        let down = self.link.down_since();
        json!({
            "url": self.url.display(),
            "node": self.node,
            "state": self.link.describe(),
            "connected": down.is_none(),
            "disconnected_since": down.as_ref().map(|(t, _)| humantime::format_rfc3339_millis(*t).to_string()),
            "error": down.map(|(_, why)| why),
            "revision": st.running,
            "latest_revision": view.world.as_ref().map(|w| w.revision),
            "rejected_revision": st.rejected,
            "store_revision": view.revision,
            "ttl_seconds": self.url.ttl.as_secs(),
            "quorum": self.url.quorum,
            "registered_instances": st.registered,
            "region_reports": view.reports.iter().map(|r| json!({"region": r.region, "node": r.node, "healthy": r.healthy, "min_healthy": r.min_healthy, "up": r.up()})).collect::<Vec<_>>(),
            "observers": view.observers.iter().map(|o| json!({"region": o.region, "node": o.node, "verdict": o.verdict.as_str()})).collect::<Vec<_>>(),
            "observed": self.observed.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            "nodes": view.nodes.iter().map(|n| json!({"node": n.node, "revision": n.revision, "region": n.region, "parts": n.parts})).collect::<Vec<_>>(),
            "admin": view.admin.iter().map(|a| json!({"kind": a.kind, "name": a.name, "mode": a.mode, "node": a.node, "who": a.who})).collect::<Vec<_>>(),
        })
    }
}

/// The `etcd` block of `/status` (`null` when the node does not use etcd).
pub fn status() -> Value {
    CURRENT.get().map(|s| s.status()).unwrap_or(Value::Null)
}

/// Writes an admin action of this node's API to etcd so every node obeys it (no-op without etcd).
pub fn admin_action(action: &str, target: &switchyard_balance::AdminTarget, who: &str) {
    if let Some(src) = CURRENT.get() {
        tasks::publish_admin(src.clone(), action, target, who);
    }
}

/// Fires `tx` whenever the world revision or the registered instances change (coalesced).
async fn poke_on_change(
    mut view: watch::Receiver<Arc<View>>,
    tx: mpsc::Sender<()>,
    shutdown: CancellationToken,
) {
    let key = |v: &View| (v.world.clone(), v.registrations.clone());
    let mut last = key(&view.borrow_and_update());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = view.changed() => if r.is_err() { return },
        }
        let now = key(&view.borrow_and_update());
        if now != last {
            last = now;
            let _ = tx.try_send(());
        }
    }
}

/// The next change notice of an etcd source; never resolves for other sources (nor once the
/// source stopped), so a `select!` loop never spins on it.
pub async fn next_change(changes: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    if let Some(rx) = changes {
        if let Some(()) = rx.recv().await {
            return Some(());
        }
    }
    std::future::pending().await
}
