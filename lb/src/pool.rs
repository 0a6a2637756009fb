//! A pool at run time: an immutable [`PoolSnap`] (selector + member runtimes) in an `ArcSwap`,
//! replaced on reload, and the drain bookkeeping of its members.
//!
//! A member keeps its [`MemberRt`] across reloads (same address), so its open connections, its
//! counters and its drain timer survive. A member that is removed, or drained/forced down by the
//! admin state, keeps its connections until the pool's drain deadline, then they are closed.

use crate::metrics::BackendMetrics;
use crate::plan::PoolSpec;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const CLOSED: u8 = 2;
use std::sync::Arc;
use std::time::Duration;
use switchyard_balance::{BackendHealth, HealthRegistry, MemberSpec, Selector, SelectorOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One member of one pool at run time.
#[derive(Debug)]
pub struct MemberRt {
    /// The member as configured.
    pub spec: MemberSpec,
    /// Its shared health entry.
    pub health: Arc<BackendHealth>,
    /// Metric handles, resolved once.
    pub metrics: BackendMetrics,
    /// Cancelled by a drain deadline; connections select on it. Replaced after firing.
    close: ArcSwap<CancellationToken>,
    /// Open connections through this pool to this member.
    active: AtomicU64,
    /// `IDLE`, `ARMED` (a drain timer runs) or `CLOSED` (deadline passed, still drained).
    drain_state: AtomicU8,
    /// Which drain a timer belongs to: undraining (or re-adding a removed member) moves it on,
    /// so the timer of an earlier drain never cuts connections at its own, earlier deadline.
    drain_epoch: AtomicU64,
    /// No longer in the pool's current snapshot.
    removed: AtomicBool,
}

impl MemberRt {
    fn new(pool: &str, spec: MemberSpec, health: Arc<BackendHealth>) -> Self {
        MemberRt {
            metrics: BackendMetrics::new(pool, &spec.name, spec.addr),
            spec,
            health,
            close: ArcSwap::from_pointee(CancellationToken::new()),
            active: AtomicU64::new(0),
            drain_state: AtomicU8::new(IDLE),
            drain_epoch: AtomicU64::new(0),
            removed: AtomicBool::new(false),
        }
    }

    /// The drain in progress (if any) is over without a cut: its timer is superseded and a
    /// later drain arms a new one with a full deadline.
    fn cancel_drain(&self) {
        self.drain_epoch.fetch_add(1, Ordering::AcqRel);
        if self.drain_state.swap(IDLE, Ordering::AcqRel) == ARMED {
            tracing::info!(member = %self.spec.name, backend = %self.spec.addr, "drain cancelled before its deadline");
        }
    }

    /// The token that a drain deadline cancels, for a connection starting now.
    pub fn close_token(&self) -> CancellationToken {
        CancellationToken::clone(&self.close.load())
    }

    /// Connections open to it now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts an open connection until the guard drops.
    pub fn open(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.metrics.active.increment(1.0);
        ActiveGuard(self.clone())
    }

    /// Drained, forced down or removed: no new connections, existing ones until the deadline.
    pub fn is_draining(&self) -> bool {
        self.removed.load(Ordering::Relaxed) || self.health.admin_mode().is_some()
    }
}

/// See [`MemberRt::open`].
#[derive(Debug)]
pub struct ActiveGuard(Arc<MemberRt>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.active.decrement(1.0);
    }
}

/// One version of a pool.
#[derive(Debug)]
pub struct PoolSnap {
    /// The pool as configured.
    pub spec: PoolSpec,
    /// Chooses among the members.
    pub selector: Selector,
    /// Index-aligned with the selector's members.
    pub members: Vec<Arc<MemberRt>>,
    az_share_gauges: Vec<metrics::Gauge>,
    all_down: metrics::Counter,
    /// Milliseconds (since the snapshot was built) of the last all-down log line.
    all_down_logged: AtomicU64,
    built: std::time::Instant,
    /// Remote spill (issue 17), if any target region has a spill ingress.
    pub spill: Option<crate::spill::SpillRt>,
}

impl PoolSnap {
    /// A new connection found every member down: counted always, logged at most once a second.
    pub fn note_all_down(&self, fail_open: bool) {
        self.all_down.increment(1);
        let now = self.built.elapsed().as_millis() as u64 + 1000;
        let last = self.all_down_logged.load(Ordering::Relaxed);
        if now >= last + 1000
            && self
                .all_down_logged
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let what = if fail_open {
                "fail-open: trying a down member"
            } else if self.spill.is_some() {
                "spilling new connections to another region"
            } else {
                "refusing new connections"
            };
            tracing::warn!(
                pool = %self.spec.key.1,
                region = %self.spec.key.0,
                picks = self.selector.all_down_count(),
                "every member down: {what}"
            );
        }
    }
}

impl PoolSnap {
    /// A connection spilled to `to`: logged at most once a second (shares the all-down clock).
    pub fn note_spill(&self, to: &str, why: crate::spill::Why) {
        let now = self.built.elapsed().as_millis() as u64 + 1000;
        let last = self.all_down_logged.load(Ordering::Relaxed);
        if now >= last + 1000
            && self
                .all_down_logged
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                pool = %self.spec.key.1,
                region = %self.spec.key.0,
                to,
                "spilled to {to}: {}",
                why.describe(&self.spec.key.0)
            );
        }
    }

    /// Why every new connection spills now (`None`: not spilling, or no spill configured).
    pub fn spilling(&self) -> Option<crate::spill::Why> {
        crate::spill::decide(&self.spill.as_ref()?.spec, &self.selector)
    }
}

/// A pool at run time.
#[derive(Debug)]
pub struct PoolRt {
    /// The current version; swapped by reloads.
    pub snap: ArcSwap<PoolSnap>,
    /// Members a reload removed, by address, while their connections drain: a reload that
    /// brings one back takes its runtime (connections, counters) back and cancels its drain.
    /// Weak: the drain timer and the open connections keep a member alive, nothing else (its
    /// health entry, and so its checker, go with the last of them).
    retired: std::sync::Mutex<HashMap<SocketAddr, std::sync::Weak<MemberRt>>>,
}

impl PoolRt {
    /// Builds the first version; starts active checkers through `registry`.
    pub fn new(spec: PoolSpec, registry: &HealthRegistry, shutdown: &CancellationToken) -> Self {
        PoolRt {
            snap: ArcSwap::from_pointee(build(spec, registry, shutdown, &HashMap::new(), false)),
            retired: Default::default(),
        }
    }

    /// Installs a new version, reusing member runtimes by address; returns the removed members
    /// (the caller arms their drain timers).
    pub fn update(
        &self,
        spec: PoolSpec,
        registry: &HealthRegistry,
        shutdown: &CancellationToken,
    ) -> Vec<(Arc<MemberRt>, Duration)> {
        let old = self.snap.load_full();
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        // members finished draining (timer done, nothing open) are gone
        retired.retain(|_, m| m.strong_count() > 0);
        let mut by_addr: HashMap<SocketAddr, Arc<MemberRt>> = retired
            .iter()
            .filter_map(|(a, m)| Some((*a, m.upgrade()?)))
            .collect();
        by_addr.extend(old.members.iter().map(|m| (m.spec.addr, m.clone())));
        // a changed check replaces running checkers; otherwise the first spec keeps running
        let replace = old.spec.check != spec.check;
        let next = build(spec, registry, shutdown, &by_addr, replace);
        for m in &next.members {
            if let Some(back) = retired.remove(&m.spec.addr) {
                if std::ptr::eq(back.as_ptr(), Arc::as_ptr(m)) {
                    // removed by an earlier reload and back before its deadline: it keeps its
                    // connections (HAProxy cuts none either)
                    m.cancel_drain();
                }
            }
        }
        let removed = old
            .members
            .iter()
            .filter(|m| !next.members.iter().any(|n| Arc::ptr_eq(n, m)))
            .map(|m| {
                m.removed.store(true, Ordering::Relaxed);
                retired.insert(m.spec.addr, Arc::downgrade(m));
                (m.clone(), old.spec.drain_deadline)
            })
            .collect();
        self.snap.store(Arc::new(next));
        removed
    }

    /// Members of the current version that are drained or forced down and have no timer yet.
    pub fn newly_draining(&self) -> Vec<(Arc<MemberRt>, Duration)> {
        let snap = self.snap.load();
        for m in snap.members.iter().filter(|m| !m.is_draining()) {
            // undrained (before or after its deadline): a later drain arms a new timer with a
            // full deadline, and the old timer, if still running, does nothing
            if m.drain_state.load(Ordering::Acquire) != IDLE {
                m.cancel_drain();
            }
        }
        snap.members
            .iter()
            .filter(|m| m.is_draining() && m.drain_state.load(Ordering::Relaxed) == IDLE)
            .map(|m| (m.clone(), snap.spec.drain_deadline))
            .collect()
    }

    /// Refreshes the status gauges (health, drain, AZ shares).
    pub fn export_gauges(&self) {
        let snap = self.snap.load();
        for m in &snap.members {
            m.metrics.up.set(if m.health.is_up() { 1.0 } else { 0.0 });
            m.metrics
                .draining
                .set(if m.is_draining() && m.active() > 0 {
                    1.0
                } else {
                    0.0
                });
        }
        for (g, s) in snap.az_share_gauges.iter().zip(snap.selector.shares()) {
            g.set(s.share);
        }
        if let Some(sp) = &snap.spill {
            sp.spilling
                .set(if snap.spilling().is_some() { 1.0 } else { 0.0 });
        }
    }
}

fn build(
    spec: PoolSpec,
    registry: &HealthRegistry,
    shutdown: &CancellationToken,
    reuse: &HashMap<SocketAddr, Arc<MemberRt>>,
    replace_checks: bool,
) -> PoolSnap {
    let (region, name) = (&spec.key.0, &spec.key.1);
    let opts = SelectorOptions {
        fail_open: spec.fail_open,
        passive: spec.passive,
        max_conns_per_member: spec.max_conns_per_member,
        region: Some(region.clone()),
    };
    // Checkers first, their backends held while the selector takes its own references (a
    // checker whose backend nobody holds stops).
    let _held: Vec<_> = spec
        .members
        .iter()
        .filter_map(|m| match &spec.check {
            Some(check) if replace_checks => {
                Some(registry.update_checker(m.addr, check, shutdown.clone()))
            }
            Some(check) => Some(registry.ensure_checked(m.addr, check, shutdown.clone())),
            None => None,
        })
        .collect();
    let selector = Selector::new(
        spec.members.clone(),
        &spec.az_weights,
        spec.policy,
        registry,
        opts,
    );
    let members: Vec<Arc<MemberRt>> = spec
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| match reuse.get(&m.addr) {
            Some(rt) if rt.spec == *m => {
                rt.removed.store(false, Ordering::Relaxed);
                rt.clone()
            }
            _ => Arc::new(MemberRt::new(name, m.clone(), selector.health(i).clone())),
        })
        .collect();
    let az_share_gauges = selector
        .shares()
        .iter()
        .map(|s| {
            metrics::gauge!(crate::metrics::AZ_SHARE, "region" => region.clone(), "pool" => name.clone(), "az" => s.az.clone())
        })
        .collect();
    let spill = spec
        .spill
        .clone()
        .map(|sp| crate::spill::SpillRt::new(region, name, sp));
    PoolSnap {
        spill,
        all_down: metrics::counter!(crate::metrics::POOL_ALL_DOWN, "region" => region.clone(), "pool" => name.clone()),
        all_down_logged: AtomicU64::new(0),
        built: std::time::Instant::now(),
        spec,
        selector,
        members,
        az_share_gauges,
    }
}

/// Arms a drain timer: after `deadline`, if the member is still drained (or removed), its open
/// connections are closed and counted.
pub fn arm_drain(
    m: Arc<MemberRt>,
    deadline: Duration,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    if m.drain_state
        .compare_exchange(IDLE, ARMED, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    let epoch = m.drain_epoch.load(Ordering::Acquire);
    tracing::info!(member = %m.spec.name, backend = %m.spec.addr, open = m.active(), ?deadline, "draining");
    tracker.spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(deadline) => {}
            // shutdown has its own grace period
            _ = shutdown.cancelled() => return,
        }
        if m.drain_epoch.load(Ordering::Acquire) != epoch {
            return; // undrained or re-added meanwhile: superseded
        }
        if m.is_draining() {
            let open = m.active();
            if open > 0 {
                tracing::warn!(member = %m.spec.name, backend = %m.spec.addr, closed = open, "drain deadline: closing connections");
                m.metrics.drain_closed.increment(open);
            }
            let old = m.close.swap(Arc::new(CancellationToken::new()));
            old.cancel();
            m.drain_state.store(CLOSED, Ordering::Release);
        } else {
            tracing::info!(member = %m.spec.name, "drain cancelled before its deadline");
            m.drain_state.store(IDLE, Ordering::Release);
        }
    });
}
