//! The process-wide health registry: exactly one [`BackendHealth`] per backend address and at
//! most one active checker task per address, whichever pools or services use it.
//!
//! Users (pools, selectors, DNS views) hold the `Arc<BackendHealth>` they were given for as long
//! as they use the backend. A checker whose backend nobody else holds any more (a reload or a
//! registry change removed it everywhere) stops and the entry is forgotten, so removed backends
//! are not probed for ever; see [`UNUSED_ROUNDS`].

use super::check::{probe, CheckSpec};
use super::flap::{Flap, Transition};
use super::{BackendHealth, HealthState};
use crate::admin::{AdminState, Labels};
use arc_swap::ArcSwap;
use rand::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A checker stops after this many consecutive rounds in which only the registry and the
/// checker itself held its backend.
pub const UNUSED_ROUNDS: u32 = 2;

/// One entry of [`HealthRegistry::snapshot`].
pub type BackendSnapshot = HealthState;

struct Inner {
    map: ArcSwap<HashMap<SocketAddr, Arc<BackendHealth>>>,
    /// Running checkers: their stop token and the spec they run.
    write: Mutex<HashMap<SocketAddr, (CancellationToken, CheckSpec)>>,
    admin: Option<AdminState>,
    epoch: Instant,
}

/// Shared registry (cheap to clone).
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("backends", &self.inner.map.load().len())
            .finish()
    }
}

impl HealthRegistry {
    /// A registry whose backends ignore administrative state.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// A registry whose backends obey `admin` (drain / forced down).
    pub fn with_admin(admin: AdminState) -> Self {
        Self::build(Some(admin))
    }

    fn build(admin: Option<AdminState>) -> Self {
        HealthRegistry {
            inner: Arc::new(Inner {
                map: ArcSwap::from_pointee(HashMap::new()),
                write: Mutex::new(HashMap::new()),
                admin,
                epoch: Instant::now(),
            }),
        }
    }

    /// The admin state every backend of this registry consults.
    pub fn admin(&self) -> Option<&AdminState> {
        self.inner.admin.as_ref()
    }

    /// Lock-free lookup.
    pub fn get(&self, addr: &SocketAddr) -> Option<Arc<BackendHealth>> {
        self.inner.map.load().get(addr).cloned()
    }

    /// Gets or creates the entry for `addr` without starting a checker.
    pub fn handle(&self, addr: SocketAddr) -> Arc<BackendHealth> {
        if let Some(h) = self.get(&addr) {
            return h;
        }
        let _w = self.lock();
        self.insert_locked(addr)
    }

    fn insert_locked(&self, addr: SocketAddr) -> Arc<BackendHealth> {
        let cur = self.inner.map.load();
        if let Some(h) = cur.get(&addr) {
            return h.clone();
        }
        let h = Arc::new(BackendHealth::new(
            addr,
            self.inner.epoch,
            self.inner.admin.clone(),
        ));
        let mut next = HashMap::clone(&cur);
        next.insert(addr, h.clone());
        self.inner.map.store(Arc::new(next));
        h
    }

    /// Sets the names `addr` is known by (for administrative targets).
    pub fn set_labels(&self, addr: SocketAddr, labels: Labels) {
        self.handle(addr).set_labels(labels);
    }

    /// Gets or creates the entry and makes sure one active checker runs for it (the first spec
    /// wins while it runs). The checker stops when `shutdown` (or [`stop_checker`]) fires, or
    /// [`UNUSED_ROUNDS`] rounds after the last `Arc` outside the registry was dropped: hold the
    /// returned `Arc` for as long as the backend is in use.
    /// Must be called inside a tokio runtime.
    ///
    /// [`stop_checker`]: Self::stop_checker
    pub fn ensure_checked(
        &self,
        addr: SocketAddr,
        spec: &CheckSpec,
        shutdown: CancellationToken,
    ) -> Arc<BackendHealth> {
        self.checker(addr, spec, shutdown, false)
    }

    /// Like [`ensure_checked`](Self::ensure_checked), but a checker running another spec is
    /// replaced by one running `spec` (for reloads that change a pool's check). The backend's
    /// current verdict carries over.
    pub fn update_checker(
        &self,
        addr: SocketAddr,
        spec: &CheckSpec,
        shutdown: CancellationToken,
    ) -> Arc<BackendHealth> {
        self.checker(addr, spec, shutdown, true)
    }

    fn checker(
        &self,
        addr: SocketAddr,
        spec: &CheckSpec,
        shutdown: CancellationToken,
        replace: bool,
    ) -> Arc<BackendHealth> {
        let mut checkers = self.lock();
        let h = self.insert_locked(addr);
        if let Some((t, running)) = checkers.get(&addr) {
            if !t.is_cancelled() {
                if !replace || running == spec {
                    return h;
                }
                t.cancel();
            }
        }
        let token = shutdown.child_token();
        checkers.insert(addr, (token.clone(), spec.clone()));
        tokio::spawn(run_checker(self.clone(), h.clone(), spec.clone(), token));
        h
    }

    /// Stops the checker of `h` and forgets the backend when nobody but the registry (its map)
    /// and the checker holds it. Called by the checker itself; `stop` is its token.
    fn retire_if_unused(&self, h: &Arc<BackendHealth>, stop: &CancellationToken) -> bool {
        // held: the map's reference and the checker's
        const HELD: usize = 2;
        let mut checkers = self.lock();
        // a replaced checker's token is cancelled under this lock: not ours to retire any more
        if stop.is_cancelled() || Arc::strong_count(h) > HELD {
            return false;
        }
        let addr = h.addr();
        let cur = self.inner.map.load_full();
        if !cur.get(&addr).is_some_and(|x| Arc::ptr_eq(x, h)) {
            return false;
        }
        let mut next = HashMap::clone(&cur);
        next.remove(&addr);
        self.inner.map.store(Arc::new(next));
        drop(cur);
        // A lock-free reader (`get`, `handle`) may have cloned it from the old map meanwhile:
        // then it is in use after all, so put it back. (Users that matter take it through
        // `ensure_checked`, under the lock, so they never race this.)
        if Arc::strong_count(h) > HELD {
            let cur = self.inner.map.load();
            let mut back = HashMap::clone(&cur);
            back.insert(addr, h.clone());
            self.inner.map.store(Arc::new(back));
            return false;
        }
        checkers.remove(&addr);
        stop.cancel();
        true
    }

    /// The spec of the checker running for `addr`, if any.
    pub fn checker_spec(&self, addr: &SocketAddr) -> Option<CheckSpec> {
        self.lock()
            .get(addr)
            .filter(|(t, _)| !t.is_cancelled())
            .map(|(_, s)| s.clone())
    }

    /// Stops the active checker of `addr` (e.g. no pool uses it any more). The last verdict stays.
    pub fn stop_checker(&self, addr: &SocketAddr) {
        if let Some((t, _)) = self.lock().remove(addr) {
            t.cancel();
        }
    }

    /// Is an active checker running for `addr`?
    pub fn is_checked(&self, addr: &SocketAddr) -> bool {
        self.lock()
            .get(addr)
            .is_some_and(|(t, _)| !t.is_cancelled())
    }

    /// Every backend's state, sorted by address.
    pub fn snapshot(&self) -> Vec<BackendSnapshot> {
        let mut v: Vec<_> = self.inner.map.load().values().map(|h| h.state()).collect();
        v.sort_by_key(|s| s.addr);
        v
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, (CancellationToken, CheckSpec)>> {
        self.inner.write.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn run_checker(
    registry: HealthRegistry,
    h: Arc<BackendHealth>,
    spec: CheckSpec,
    stop: CancellationToken,
) {
    // a replacement checker continues from the backend's current verdict
    let mut flap = Flap::new(h.active_state() != super::ActiveState::Down);
    let kind = spec.kind_name();
    let mut unused_rounds = 0;
    loop {
        // the map's reference and ours: nobody uses this backend any more
        unused_rounds = if Arc::strong_count(&h) <= 2 {
            unused_rounds + 1
        } else {
            0
        };
        if unused_rounds >= UNUSED_ROUNDS && registry.retire_if_unused(&h, &stop) {
            tracing::debug!(backend = %h.addr(), "health checker stopped: no pool uses the backend any more");
            return;
        }
        let res = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(spec.timeout, probe(h.addr(), &spec.kind)) => r,
        };
        let res = match res {
            Ok(r) => r,
            Err(_) => Err(format!("timeout after {:?}", spec.timeout)),
        };
        let ok = res.is_ok();
        let was_unchecked = h.active_state() == super::ActiveState::Unchecked;
        let transition = flap.observe(ok, spec.rise, spec.fall);
        h.record_check(ok, flap.streak());
        match transition {
            Some(Transition::WentDown) => h.set_active(
                false,
                format!(
                    "{kind}: {}, {} in a row",
                    res.err().unwrap_or_default(),
                    spec.fall.max(1)
                ),
            ),
            Some(Transition::WentUp) => {
                h.set_active(true, format!("{kind}: ok, {} in a row", spec.rise.max(1)))
            }
            None if ok && was_unchecked => h.set_active(true, format!("{kind}: ok")),
            None => {}
        }
        let jitter = spec.interval.mul_f64(spec.jitter.clamp(0.0, 1.0));
        let wait = spec.interval
            + if jitter.is_zero() {
                Duration::ZERO
            } else {
                rand::rng().random_range(Duration::ZERO..=jitter)
            };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::ActiveState;

    fn quick() -> CheckSpec {
        CheckSpec::tcp()
            .with_timing(Duration::from_millis(20), Duration::from_millis(200))
            .with_thresholds(2, 2)
    }

    async fn wait_for(h: &BackendHealth, want: ActiveState) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while h.active_state() != want {
            assert!(
                Instant::now() < deadline,
                "{} never became {want:?}",
                h.addr()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn one_entry_per_address_and_checker_follows_backend() {
        let reg = HealthRegistry::new();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stop = CancellationToken::new();
        let a = reg.ensure_checked(addr, &quick(), stop.clone());
        let b = reg.ensure_checked(addr, &quick(), stop.clone());
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&a, &reg.get(&addr).unwrap()));
        wait_for(&a, ActiveState::Up).await;
        drop(l);
        wait_for(&a, ActiveState::Down).await;
        assert!(a.reason().starts_with("tcp: connect"), "{}", a.reason());
        assert!(a.reason().ends_with("2 in a row"), "{}", a.reason());
        let l = tokio::net::TcpListener::bind(addr).await.unwrap();
        wait_for(&a, ActiveState::Up).await;
        assert_eq!(reg.snapshot().len(), 1);
        stop.cancel();
        drop(l);
    }

    /// Counts the probe connections a listener accepts.
    async fn counting_listener() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let n2 = n.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                n2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(s);
            }
        });
        (addr, n)
    }

    #[tokio::test]
    async fn a_checker_stops_once_nobody_holds_its_backend() {
        let reg = HealthRegistry::new();
        let (addr, probes) = counting_listener().await;
        let stop = CancellationToken::new();
        let h = reg.ensure_checked(addr, &quick(), stop.clone());
        wait_for(&h, ActiveState::Up).await;
        // held: it keeps being checked, round after round
        let before = probes.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(reg.is_checked(&addr));
        assert!(probes.load(std::sync::atomic::Ordering::Relaxed) >= before + 3);
        // released (a reload removed it everywhere): the checker stops, the entry goes
        drop(h);
        let deadline = Instant::now() + Duration::from_secs(5);
        while reg.is_checked(&addr) || reg.get(&addr).is_some() {
            assert!(Instant::now() < deadline, "checker still running");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(reg.snapshot().is_empty());
        let after = probes.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            probes.load(std::sync::atomic::Ordering::Relaxed) <= after + 1,
            "still probing"
        );
        // used again later: a new checker starts from scratch
        let h = reg.ensure_checked(addr, &quick(), stop.clone());
        assert!(reg.is_checked(&addr));
        wait_for(&h, ActiveState::Up).await;
        stop.cancel();
    }

    #[tokio::test]
    async fn update_checker_replaces_a_different_spec_and_keeps_the_verdict() {
        let reg = HealthRegistry::new();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let stop = CancellationToken::new();
        let h = reg.ensure_checked(addr, &quick(), stop.clone());
        wait_for(&h, ActiveState::Down).await;
        // first spec wins for ensure_checked...
        let other = quick().with_thresholds(1, 1);
        reg.ensure_checked(addr, &other, stop.clone());
        assert_eq!(reg.checker_spec(&addr), Some(quick()));
        // ...update_checker replaces it, starting from "down"
        reg.update_checker(addr, &other, stop.clone());
        assert_eq!(reg.checker_spec(&addr), Some(other.clone()));
        let _l = tokio::net::TcpListener::bind(addr).await.unwrap();
        wait_for(&h, ActiveState::Up).await;
        assert!(h.reason().ends_with("1 in a row"), "{}", h.reason());
        stop.cancel();
    }
}
