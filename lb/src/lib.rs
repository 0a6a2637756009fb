//! # switchyard-lb: the L4 TCP load balancer of a region VIP
//!
//! Listeners ([`listener`]) accept on `SO_REUSEPORT` sockets, one accept loop per socket, with
//! the connection cap checked before `accept` (refused at once with a RST over the cap) and
//! EMFILE/ENFILE backing off. Each connection ([`conn`]) is checked against the per-source rate
//! limit (`switchyard_net::limit`), may carry a PROXY header in (`switchyard_net::proxy`), may
//! pick its pool by the TLS server name of its peeked ClientHello ([`sni`]), gets
//! a backend from the pool's AZ-aware [`Selector`](switchyard_balance::Selector) with connect
//! retry (another AZ first) and passive health, may send a PROXY header out, and is relayed ([`relay`]) by
//! splice(2) through pooled pipes, by a bounded userspace copy, or `auto` (copy for small
//! messages, splice for bulk), with half-close, reset propagation, idle timeout, maximum
//! lifetime and drain deadlines. Pools ([`pool`]) are immutable snapshots in an `ArcSwap`;
//! reload ([`Lb::reload`]) diffs the [`Plan`] ([`diff`], pure) and rebinds only listeners whose
//! sockets changed; removed or drained members keep their connections until the pool's drain
//! deadline. Full and quick mode run one worker thread per CPU (`switchyard_net::workers`:
//! a current-thread runtime each, with its own `SO_REUSEPORT` socket per listener, so a
//! connection lives its whole life on one thread); [`LbOptions::worker_threads`] `None` runs
//! everything on the caller's runtime instead; listening sockets are bound by `switchyard_net::socket`. Metrics are listed in [`metrics`]; a status snapshot (AZ shares,
//! member health with reasons, drain state) in [`status`].
//!
//! ## Wiring (the binary)
//! ```no_run
//! # async fn demo(world: std::sync::Arc<switchyard_config::World>) -> Result<(), switchyard_lb::LbError> {
//! use switchyard_balance::{AdminState, HealthRegistry};
//! let admin = AdminState::new();                       // shared with DNS, gateway, admin API
//! let registry = HealthRegistry::with_admin(admin.clone()); // shared health view
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let lb = switchyard_lb::start(world.clone(), registry.clone(), shutdown.clone()).await?; // bound
//! lb.reload(world).await?;          // on a new validated world
//! let status = lb.status();         // pools, AZ shares, members with health, listeners
//! shutdown.cancel();
//! lb.wait().await;                  // accept loops stopped, connections closed or drained
//! # Ok(()) }
//! ```
//! Quick mode (`switchyard lb --listen A --backend B ...`): [`QuickArgs`] + [`run_quick`].

pub mod conn;
pub mod diff;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod plan;
pub mod pool;
pub mod quick;
pub mod relay;
pub mod sni;
pub mod spill;
pub mod status;
pub mod uring;

pub use error::LbError;
pub use plan::{ListenerSpec, Plan, PoolSpec, SniSpec};
pub use quick::{run_quick, QuickArgs};
pub use status::{LbStatus, ListenerStatus, MemberStatus, PoolStatus};

use conn::ConnCtx;
use listener::{ListenerRt, Settings};
use plan::Key;
use pool::PoolRt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_balance::HealthRegistry;
use switchyard_config::World;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Process-level options (not in the world config).
#[derive(Debug, Clone)]
pub struct LbOptions {
    /// After shutdown, connections get this long to finish before they are closed.
    pub grace: Duration,
    /// Connections across all listeners.
    pub global_max_connections: usize,
    /// Dedicated worker threads (each a current-thread runtime driving its accept loops and
    /// their connections, so a connection never crosses threads: no work stealing, no
    /// cross-thread wake-ups). `None`: accept loops and connections run on the caller's
    /// runtime. [`start`] (full mode) and quick mode use one per CPU
    /// ([`default_worker_threads`]); `Default` keeps `None` for embedders and tests.
    pub worker_threads: Option<usize>,
}

impl Default for LbOptions {
    fn default() -> Self {
        LbOptions {
            grace: Duration::from_secs(10),
            global_max_connections: 100_000,
            worker_threads: None,
        }
    }
}

struct State {
    pools: HashMap<Key, Arc<PoolRt>>,
    listeners: HashMap<Key, Arc<ListenerRt>>,
}

/// A running balancer (cheap to clone).
#[derive(Clone)]
pub struct Lb {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<ConnCtx>,
    workers: Option<switchyard_net::workers::Workers>,
    /// Stops the workers when the last handle is dropped.
    _workers_stop: tokio_util::sync::DropGuard,
    registry: HealthRegistry,
    state: Mutex<State>,
    /// Serialises reloads (the state mutex is never held across an await).
    reload: tokio::sync::Mutex<()>,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Pools that did not exist before.
    pub pools_added: usize,
    /// Pools whose spec changed.
    pub pools_updated: usize,
    /// Pools no longer configured.
    pub pools_removed: usize,
    /// Listeners bound anew.
    pub listeners_bound: usize,
    /// Listeners whose settings were swapped in place.
    pub listeners_updated: usize,
    /// Listeners closed.
    pub listeners_stopped: usize,
    /// Members removed that still drain connections.
    pub members_draining: usize,
}

/// Starts the balancer for every region of `world` this node serves; returns once every
/// listener is bound. Health comes from (and active checkers are registered in) `registry`;
/// build it with [`HealthRegistry::with_admin`] so the admin state applies.
pub async fn start(
    world: Arc<World>,
    registry: HealthRegistry,
    shutdown: CancellationToken,
) -> Result<Lb, LbError> {
    let opts = LbOptions {
        global_max_connections: world.node.lb_max_connections as usize,
        worker_threads: Some(default_worker_threads()),
        ..LbOptions::default()
    };
    start_plan(Plan::from_world(&world), registry, shutdown, opts).await
}

/// One worker thread per CPU the process may use (what full and quick mode run with).
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Like [`start`] with an explicit [`Plan`] and options (quick mode, tests).
pub async fn start_plan(
    plan: Plan,
    registry: HealthRegistry,
    shutdown: CancellationToken,
    opts: LbOptions,
) -> Result<Lb, LbError> {
    metrics::describe();
    let ctx = Arc::new(ConnCtx {
        global: Arc::new(tokio::sync::Semaphore::new(opts.global_max_connections)),
        global_max: opts.global_max_connections.into(),
        freed: Arc::new(tokio::sync::Notify::new()),
        tracker: TaskTracker::new(),
        shutdown: shutdown.clone(),
        hard_stop: CancellationToken::new(),
    });
    // the workers stop at the hard stop, or when the balancer is dropped without one (its
    // caller's runtime went away): never left running with its sockets
    let workers_stop = ctx.hard_stop.child_token();
    let workers = match opts.worker_threads {
        Some(n) => Some(
            switchyard_net::workers::Workers::start(n, "lb-worker", workers_stop.clone())
                .map_err(LbError::Workers)?,
        ),
        None => None,
    };
    let lb = Lb {
        inner: Arc::new(Inner {
            ctx: ctx.clone(),
            workers,
            _workers_stop: workers_stop.drop_guard(),
            registry,
            state: Mutex::new(State {
                pools: HashMap::new(),
                listeners: HashMap::new(),
            }),
            reload: tokio::sync::Mutex::new(()),
        }),
    };
    if let Err(e) = lb.apply(plan) {
        shutdown.cancel();
        return Err(e);
    }
    ctx.tracker.spawn(supervise(lb.clone(), opts.grace));
    Ok(lb)
}

impl Lb {
    /// Applies a new validated world: pools and members change for new connections, removed
    /// members drain, only listeners whose sockets changed rebind. On error (e.g. a new address
    /// cannot be bound) nothing that was running is stopped.
    pub async fn reload(&self, world: Arc<World>) -> Result<ReloadSummary, LbError> {
        self.reload_plan(Plan::from_world(&world)).await
    }

    /// Like [`reload`](Self::reload) with an explicit plan.
    pub async fn reload_plan(&self, plan: Plan) -> Result<ReloadSummary, LbError> {
        let _one = self.inner.reload.lock().await;
        if self.inner.ctx.shutdown.is_cancelled() {
            return Err(LbError::Stopped);
        }
        self.apply(plan)
    }

    /// Resolves when the balancer has shut down (after the shutdown token fired and open
    /// connections finished or were closed at the end of the grace period).
    pub async fn wait(&self) {
        self.inner.ctx.shutdown.cancelled().await;
        self.inner.ctx.tracker.close();
        self.inner.ctx.tracker.wait().await;
    }

    /// The bound addresses of a listener (port 0 resolved), by region and name.
    pub fn listener_addrs(&self, region: &str, name: &str) -> Option<Vec<std::net::SocketAddr>> {
        let st = self.lock();
        st.listeners
            .get(&(region.to_string(), name.to_string()))
            .map(|l| l.bound.clone())
    }

    /// Pools (AZ shares, members with health, drain state) and listeners, for a status page.
    pub fn status(&self) -> LbStatus {
        let st = self.lock();
        status::collect(&st.pools, &st.listeners)
    }

    /// The health entries of every pool member.
    pub fn registry(&self) -> &HealthRegistry {
        &self.inner.registry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plan the balancer runs now, read back from its pools and listeners.
    fn running(st: &State) -> Plan {
        Plan {
            pools: st
                .pools
                .values()
                .map(|p| p.snap.load().spec.clone())
                .collect(),
            listeners: st
                .listeners
                .values()
                .map(|l| l.settings.load().spec.clone())
                .collect(),
            global_max_connections: None,
        }
    }

    /// Carries out [`diff::diff`] of the running plan and `plan`: binds first (so a bind error
    /// leaves everything as it was), then updates pools, then swaps listener settings.
    fn apply(&self, plan: Plan) -> Result<ReloadSummary, LbError> {
        let ctx = &self.inner.ctx;
        let reg = &self.inner.registry;
        let mut sum = ReloadSummary::default();
        diff::check(&plan)?;
        let mut st = self.lock();
        let d = diff::diff(&Self::running(&st), &plan);
        let spec_of = |key: &Key| plan.pools.iter().find(|p| &p.key == key);
        // 1. bind new/changed listeners first, so a bind error leaves everything as it was
        let mut fresh: HashMap<Key, Arc<ListenerRt>> = HashMap::new();
        let mut new_pools: HashMap<Key, Arc<PoolRt>> = HashMap::new();
        for key in &d.listeners_bound {
            let Some(l) = plan.listeners.iter().find(|l| &l.key == key) else {
                continue;
            };
            let pool = match st.pools.get(&l.pool).or_else(|| new_pools.get(&l.pool)) {
                Some(p) => p.clone(),
                None => {
                    let Some(spec) = spec_of(&l.pool) else {
                        continue; // checked above
                    };
                    let p = Arc::new(PoolRt::new(spec.clone(), reg, &ctx.shutdown));
                    new_pools.insert(l.pool.clone(), p.clone());
                    p
                }
            };
            let mut sni_pools = Vec::new();
            for key in l.sni.iter().flat_map(|s| s.pools()) {
                let p = match st.pools.get(key).or_else(|| new_pools.get(key)) {
                    Some(p) => p.clone(),
                    None => {
                        let Some(spec) = spec_of(key) else {
                            continue; // checked above
                        };
                        let p = Arc::new(PoolRt::new(spec.clone(), reg, &ctx.shutdown));
                        new_pools.insert(key.clone(), p.clone());
                        p
                    }
                };
                sni_pools.push((key.clone(), p));
            }
            let sni = sni_rt(l, |k| {
                sni_pools
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|x| x.1.clone())
            });
            let old = st.listeners.get(&l.key).map(|o| o.settings.load_full());
            match ListenerRt::start(
                Settings::new(l.clone(), pool, old.as_deref()).with_sni(sni),
                ctx,
                self.inner.workers.as_ref(),
            ) {
                Ok(rt) => {
                    fresh.insert(l.key.clone(), rt);
                }
                Err(e) => {
                    fresh.values().for_each(|r| r.stop());
                    return Err(e);
                }
            }
        }
        // 2. pools: update in place (members reused by address) or add; removed ones drain
        for key in &d.pools_updated {
            if let (Some(p), Some(spec)) = (st.pools.get(key), spec_of(key)) {
                for (m, deadline) in p.update(spec.clone(), reg, &ctx.shutdown) {
                    pool::arm_drain(m, deadline, &ctx.tracker, ctx.shutdown.clone());
                    sum.members_draining += 1;
                }
                sum.pools_updated += 1;
            }
        }
        for key in &d.pools_added {
            if let Some(spec) = spec_of(key) {
                let p = new_pools
                    .remove(key)
                    .unwrap_or_else(|| Arc::new(PoolRt::new(spec.clone(), reg, &ctx.shutdown)));
                st.pools.insert(key.clone(), p);
                sum.pools_added += 1;
            }
        }
        for key in &d.pools_removed {
            if let Some(p) = st.pools.remove(key) {
                let snap = p.snap.load();
                for m in &snap.members {
                    pool::arm_drain(
                        m.clone(),
                        snap.spec.drain_deadline,
                        &ctx.tracker,
                        ctx.shutdown.clone(),
                    );
                    sum.members_draining += 1;
                }
                sum.pools_removed += 1;
            }
        }
        if let Some(n) = plan.global_max_connections {
            ctx.set_global_max(n);
        }
        // 3. listeners: replace rebound ones, swap settings in place, stop removed ones
        for l in &plan.listeners {
            let pool = st.pools[&l.pool].clone();
            let sni = sni_rt(l, |k| st.pools.get(k).cloned());
            if let Some(rt) = fresh.remove(&l.key) {
                // the new sockets were built with a possibly temporary pool: point at the live one
                let cur = rt.settings.load_full();
                rt.update(Settings::new(l.clone(), pool, Some(&cur)).with_sni(sni));
                if let Some(old) = st.listeners.insert(l.key.clone(), rt) {
                    old.stop();
                }
                sum.listeners_bound += 1;
            } else if let Some(rt) = st.listeners.get(&l.key) {
                let cur = rt.settings.load_full();
                // a pool updated in place keeps its identity, so only a changed spec swaps
                let sni_moved = match (&cur.sni, &sni) {
                    (Some(a), Some(b)) => !a.same_pools(b),
                    (a, b) => a.is_some() != b.is_some(),
                };
                if d.listeners_updated.contains(&l.key)
                    || !Arc::ptr_eq(&cur.pool, &pool)
                    || sni_moved
                {
                    rt.update(Settings::new(l.clone(), pool, Some(&cur)).with_sni(sni));
                    sum.listeners_updated += 1;
                }
            }
        }
        for key in &d.listeners_stopped {
            if let Some(l) = st.listeners.remove(key) {
                l.stop();
                sum.listeners_stopped += 1;
            }
        }
        tracing::info!(?sum, "lb plan applied");
        Ok(sum)
    }
}

/// The running SNI routing of listener `l`, its pools resolved by `pool` (all exist: the plan
/// was checked).
fn sni_rt(l: &ListenerSpec, pool: impl Fn(&Key) -> Option<Arc<PoolRt>>) -> Option<sni::SniRt> {
    let s = l.sni.as_ref()?;
    Some(sni::SniRt {
        table: sni::Table::new(s.routes.iter().map(|r| r.0.as_slice())),
        pools: s.routes.iter().filter_map(|r| pool(&r.1)).collect(),
        default: s.default.as_ref().and_then(&pool),
        timeout: s.timeout,
        tlvs: s.tlvs,
        metrics: metrics::SniMetrics::new(&l.key.1),
    })
}

/// Background duties: arm drain timers when the admin state changes, refresh status gauges,
/// and close remaining connections a grace period after shutdown.
async fn supervise(lb: Lb, grace: Duration) {
    let ctx = lb.inner.ctx.clone();
    let mut admin_rx = lb.inner.registry.admin().map(|a| a.subscribe());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let admin_changed = async {
            match admin_rx.as_mut() {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            _ = admin_changed => {}
            _ = tick.tick() => {}
        }
        let pools: Vec<Arc<PoolRt>> = lb.lock().pools.values().cloned().collect();
        for p in pools {
            for (m, deadline) in p.newly_draining() {
                pool::arm_drain(m, deadline, &ctx.tracker, ctx.shutdown.clone());
            }
            p.export_gauges();
        }
    }
    // grace: connections may finish on their own; then the rest are closed
    let deadline = tokio::time::Instant::now() + grace;
    while ctx.global.available_permits() < ctx.global_max.load(std::sync::atomic::Ordering::Acquire)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ctx.hard_stop.cancel();
}
