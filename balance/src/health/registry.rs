//! The process-wide health registry: exactly one [`BackendHealth`] per backend address and at
//! most one active checker task per address, whichever pools or services use it.

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
    /// wins while it runs). The checker stops when `shutdown` (or [`stop_checker`]) fires.
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
        tokio::spawn(run_checker(h.clone(), spec.clone(), token));
        h
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

async fn run_checker(h: Arc<BackendHealth>, spec: CheckSpec, stop: CancellationToken) {
    // a replacement checker continues from the backend's current verdict
    let mut flap = Flap::new(h.active_state() != super::ActiveState::Down);
    let kind = spec.kind_name();
    loop {
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
        match flap.observe(ok, spec.rise, spec.fall) {
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
