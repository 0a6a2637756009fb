//! Per-backend health: one [`BackendHealth`] per address, read lock-free on every pick.
//!
//! Three inputs decide [`BackendHealth::is_up`]: the active checker's verdict (rise/fall, see
//! [`flap`]), passive ejection (consecutive connect failures eject for a back-off period) and the
//! administrative state (drain / forced down, see [`crate::admin`]).

pub mod check;
pub mod flap;
pub mod registry;

use crate::admin::{AdminMode, AdminState, Labels};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Passive health settings of a pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassiveSpec {
    /// Consecutive connect failures (or resets) that eject a backend; 0 disables passive checks.
    pub consecutive_failures: u32,
    /// How long an ejected backend is kept out.
    pub ejection: Duration,
    /// At most this percentage of a pool may be ejected at once (0-100).
    pub max_ejected_percent: u8,
}

impl Default for PassiveSpec {
    fn default() -> Self {
        PassiveSpec {
            consecutive_failures: 5,
            ejection: Duration::from_secs(10),
            max_ejected_percent: 50,
        }
    }
}

/// The active checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveState {
    /// No probe has completed yet (counted as up: backends start optimistic).
    Unchecked,
    /// The last `rise` probes succeeded.
    Up,
    /// The last `fall` probes failed.
    Down,
}

const A_UNCHECKED: u8 = 0;
const A_UP: u8 = 1;
const A_DOWN: u8 = 2;
const CACHE_INVALID: u64 = u64::MAX;

/// A point-in-time view of one backend, for status pages and tests.
#[derive(Debug, Clone)]
pub struct HealthState {
    /// The backend's address.
    pub addr: SocketAddr,
    /// The combined verdict ([`BackendHealth::is_up`]).
    pub up: bool,
    /// The active checks' verdict.
    pub active: ActiveState,
    /// Remaining passive ejection, if ejected.
    pub ejected_for: Option<Duration>,
    /// An administrative drain or fail, if any applies.
    pub admin: Option<AdminMode>,
    /// Why the last state change happened ("http: status 503, 3 in a row").
    pub reason: Arc<str>,
    /// The active check's own last verdict reason (passive ejection does not overwrite it).
    pub check_reason: Arc<str>,
    /// How long ago the last active check completed (None: no check has completed).
    pub last_check_ago: Option<Duration>,
    /// Whether the last completed active check succeeded.
    pub last_check_ok: Option<bool>,
    /// Active check results in a row that disagree with the current verdict (the rise or fall
    /// counter: `rise`/`fall` of them change it).
    pub streak: u32,
    /// Consecutive passive connect failures since the last success or ejection.
    pub passive_failures: u32,
    /// Passive ejections since the last successful connection.
    pub ejections: u32,
    /// The names admin targets match against.
    pub labels: Labels,
    /// Connections open now.
    pub active_conns: u64,
    /// Connections since the backend was created.
    pub total_conns: u64,
}

/// Health of one backend address (shared by every pool that uses it).
pub struct BackendHealth {
    addr: SocketAddr,
    epoch: Instant,
    active: AtomicU8,
    /// Nanoseconds since `epoch` until which the backend is ejected; 0 = not ejected.
    ejected_until: AtomicU64,
    passive_fails: AtomicU32,
    /// Ejections since the last successful connection (doubles the ejection, capped at 8x).
    ejections: AtomicU32,
    conns: AtomicU64,
    total: AtomicU64,
    reason: ArcSwap<Box<str>>,
    /// The active check's last verdict reason (kept apart from `reason`, which ejection sets).
    check_reason: ArcSwap<Box<str>>,
    /// Nanoseconds since `epoch` when the last active check completed; 0 = none yet.
    last_check: AtomicU64,
    /// 0: none yet, 1: the last check succeeded, 2: it failed.
    last_ok: AtomicU8,
    /// Check results in a row disagreeing with the verdict (written by the checker).
    streak: AtomicU32,
    labels: ArcSwap<Labels>,
    admin: Option<AdminState>,
    /// `(admin version << 2) | mode bits`, so `is_up` only consults the admin map on change.
    admin_cache: AtomicU64,
}

impl std::fmt::Debug for BackendHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendHealth")
            .field("addr", &self.addr)
            .field("up", &self.is_up())
            .finish()
    }
}

impl BackendHealth {
    pub(crate) fn new(addr: SocketAddr, epoch: Instant, admin: Option<AdminState>) -> Self {
        BackendHealth {
            addr,
            epoch,
            active: AtomicU8::new(A_UNCHECKED),
            ejected_until: AtomicU64::new(0),
            passive_fails: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            conns: AtomicU64::new(0),
            total: AtomicU64::new(0),
            reason: ArcSwap::from_pointee("not checked yet".into()),
            check_reason: ArcSwap::from_pointee("not checked yet".into()),
            last_check: AtomicU64::new(0),
            last_ok: AtomicU8::new(0),
            streak: AtomicU32::new(0),
            labels: ArcSwap::from_pointee(Labels::default()),
            admin,
            admin_cache: AtomicU64::new(CACHE_INVALID),
        }
    }

    /// A standalone backend (no registry, no admin state): for tests and benches.
    pub fn detached(addr: SocketAddr) -> Arc<Self> {
        Arc::new(Self::new(addr, Instant::now(), None))
    }

    /// The backend's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Active check up (or unchecked) AND not passively ejected AND not drained/forced down.
    #[inline]
    pub fn is_up(&self) -> bool {
        self.active.load(Ordering::Relaxed) != A_DOWN
            && !self.is_ejected()
            && self.admin_mode().is_none()
    }

    /// The active checker's verdict alone.
    pub fn active_state(&self) -> ActiveState {
        match self.active.load(Ordering::Relaxed) {
            A_UP => ActiveState::Up,
            A_DOWN => ActiveState::Down,
            _ => ActiveState::Unchecked,
        }
    }

    /// Passively ejected right now?
    #[inline]
    pub fn is_ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && self.now_nanos() < until
    }

    /// The administrative mode that applies to this backend's labels, if any.
    #[inline]
    pub fn admin_mode(&self) -> Option<AdminMode> {
        let admin = self.admin.as_ref()?;
        let v = admin.version();
        let c = self.admin_cache.load(Ordering::Relaxed);
        let bits = if c != CACHE_INVALID && c >> 2 == v {
            (c & 3) as u8
        } else {
            let bits = match admin.mode_for(&self.labels.load()) {
                None => 0,
                Some(AdminMode::Drain) => 1,
                Some(AdminMode::Fail) => 2,
            };
            self.admin_cache
                .store((v << 2) | bits as u64, Ordering::Relaxed);
            bits
        };
        match bits {
            1 => Some(AdminMode::Drain),
            2 => Some(AdminMode::Fail),
            _ => None,
        }
    }

    /// Names used to match administrative targets (region, AZ, instance).
    pub fn set_labels(&self, labels: Labels) {
        if **self.labels.load() != labels {
            self.labels.store(Arc::new(labels));
            self.admin_cache.store(CACHE_INVALID, Ordering::Relaxed);
        }
    }

    /// The names admin targets match against.
    pub fn labels(&self) -> Labels {
        Labels::clone(&self.labels.load())
    }

    /// Connections currently open to this backend (all pools).
    #[inline]
    pub fn active_conns(&self) -> u64 {
        self.conns.load(Ordering::Relaxed)
    }

    /// Connections ever opened to this backend.
    pub fn total_conns(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts one open connection until the guard is dropped.
    #[inline]
    pub fn conn_guard(self: &Arc<Self>) -> ConnGuard {
        self.conns.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        ConnGuard(self.clone())
    }

    /// The reason of the last state change.
    pub fn reason(&self) -> Arc<str> {
        Arc::from(&**self.reason.load_full())
    }

    /// A full view for status output.
    pub fn state(&self) -> HealthState {
        let until = self.ejected_until.load(Ordering::Relaxed);
        let now = self.now_nanos();
        HealthState {
            addr: self.addr,
            up: self.is_up(),
            active: self.active_state(),
            ejected_for: (until != 0 && now < until).then(|| Duration::from_nanos(until - now)),
            admin: self.admin_mode(),
            reason: self.reason(),
            check_reason: Arc::from(&**self.check_reason.load_full()),
            last_check_ago: match self.last_check.load(Ordering::Relaxed) {
                0 => None,
                t => Some(Duration::from_nanos(now.saturating_sub(t))),
            },
            last_check_ok: match self.last_ok.load(Ordering::Relaxed) {
                1 => Some(true),
                2 => Some(false),
                _ => None,
            },
            streak: self.streak.load(Ordering::Relaxed),
            passive_failures: self.passive_fails.load(Ordering::Relaxed),
            ejections: self.ejections.load(Ordering::Relaxed),
            labels: self.labels(),
            active_conns: self.active_conns(),
            total_conns: self.total_conns(),
        }
    }

    /// Passive: a connection to this backend worked; resets the failure streak.
    #[inline]
    pub fn record_success(&self) {
        if self.passive_fails.load(Ordering::Relaxed) != 0 {
            self.passive_fails.store(0, Ordering::Relaxed);
        }
        if self.ejections.load(Ordering::Relaxed) != 0 && !self.is_ejected() {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// Passive: a connect failed (or the backend reset). Once `spec.consecutive_failures` happen
    /// in a row, and `may_eject()` agrees (the pool's ejection cap), the backend is ejected for
    /// `spec.ejection`, doubled for each ejection since the last success (capped at 8x).
    /// Returns true if this call ejected it.
    pub fn record_connect_failure(
        &self,
        spec: &PassiveSpec,
        may_eject: impl FnOnce() -> bool,
    ) -> bool {
        if spec.consecutive_failures == 0 {
            return false;
        }
        let n = self.passive_fails.fetch_add(1, Ordering::Relaxed) + 1;
        if n < spec.consecutive_failures || self.is_ejected() || !may_eject() {
            return false;
        }
        self.passive_fails.store(0, Ordering::Relaxed);
        let k = self.ejections.fetch_add(1, Ordering::Relaxed).min(3);
        self.eject(
            spec.ejection * (1 << k),
            &format!("passive: {n} connect failures in a row"),
        );
        true
    }

    /// Ejects the backend for `dur` (passive health).
    pub fn eject(&self, dur: Duration, why: &str) {
        let until = self.now_nanos() + dur.as_nanos() as u64;
        self.ejected_until.store(until.max(1), Ordering::Relaxed);
        let reason = format!("{why}; ejected for {dur:?}");
        tracing::warn!(backend = %self.addr, %reason, "backend ejected");
        self.reason.store(Arc::new(reason.into()));
        metrics::counter!(crate::metrics::EJECTIONS, "backend" => self.addr.to_string())
            .increment(1);
    }

    /// Lifts a passive ejection and forgets the failure streak and the ejection count (an
    /// operator's `restore`, or a demo instance started again: the old process's history is
    /// void). The reason goes back to the active check's. Returns true if it was ejected.
    pub fn clear_passive(&self) -> bool {
        let was = self.is_ejected();
        self.ejected_until.store(0, Ordering::Relaxed);
        self.passive_fails.store(0, Ordering::Relaxed);
        self.ejections.store(0, Ordering::Relaxed);
        if was {
            tracing::info!(backend = %self.addr, "passive ejection lifted");
            self.reason.store(self.check_reason.load_full());
        }
        was
    }

    /// Records one completed active check (the checker calls it once per probe, never per
    /// request): its time, result and the rise/fall counter after it.
    pub(crate) fn record_check(&self, ok: bool, streak: u32) {
        self.last_check
            .store(self.now_nanos().max(1), Ordering::Relaxed);
        self.last_ok
            .store(if ok { 1 } else { 2 }, Ordering::Relaxed);
        self.streak.store(streak, Ordering::Relaxed);
    }

    /// Sets the active verdict; logs and exports only when it changes.
    pub(crate) fn set_active(&self, up: bool, reason: String) {
        let new = if up { A_UP } else { A_DOWN };
        let old = self.active.swap(new, Ordering::AcqRel);
        if old == new || (old == A_UNCHECKED && up) {
            if old == A_UNCHECKED {
                let r: Arc<Box<str>> = Arc::new(reason.into());
                self.check_reason.store(r.clone());
                self.reason.store(r);
            }
            return;
        }
        if up {
            tracing::info!(backend = %self.addr, %reason, "backend up");
        } else {
            tracing::warn!(backend = %self.addr, %reason, "backend down");
        }
        metrics::gauge!(crate::metrics::HEALTH_UP, "backend" => self.addr.to_string()).set(if up {
            1.0
        } else {
            0.0
        });
        let r: Arc<Box<str>> = Arc::new(reason.into());
        self.check_reason.store(r.clone());
        self.reason.store(r);
    }

    #[inline]
    fn now_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Holds one active connection on a backend; decrements the counter on drop.
#[derive(Debug)]
pub struct ConnGuard(Arc<BackendHealth>);

impl ConnGuard {
    /// The backend this guard counts a connection on.
    pub fn backend(&self) -> &Arc<BackendHealth> {
        &self.0
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.conns.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::AdminTarget;

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn passive_ejects_after_streak_and_respects_cap() {
        let h = BackendHealth::detached(addr());
        let spec = PassiveSpec {
            consecutive_failures: 3,
            ejection: Duration::from_secs(60),
            max_ejected_percent: 50,
        };
        assert!(!h.record_connect_failure(&spec, || true));
        h.record_success();
        assert!(!h.record_connect_failure(&spec, || true));
        assert!(!h.record_connect_failure(&spec, || true));
        assert!(!h.record_connect_failure(&spec, || false), "cap refuses");
        assert!(h.is_up());
        assert!(h.record_connect_failure(&spec, || true));
        assert!(!h.is_up());
        assert!(h.state().ejected_for.is_some());
        assert!(h.reason().contains("passive"));
    }

    #[test]
    fn clear_passive_lifts_the_ejection_and_keeps_the_check_reason() {
        let h = BackendHealth::detached(addr());
        let spec = PassiveSpec {
            consecutive_failures: 2,
            ejection: Duration::from_secs(60),
            max_ejected_percent: 100,
        };
        h.set_active(true, "http: ok".into());
        h.record_check(true, 0);
        assert!(!h.record_connect_failure(&spec, || true));
        assert_eq!(h.state().passive_failures, 1);
        assert!(h.record_connect_failure(&spec, || true));
        let s = h.state();
        assert!(!s.up);
        assert_eq!((s.ejections, &*s.check_reason), (1, "http: ok"));
        assert!(s.reason.starts_with("passive: 2 connect failures in a row"));
        assert_eq!(s.last_check_ok, Some(true));
        assert!(s.last_check_ago.is_some());
        assert!(h.clear_passive());
        let s = h.state();
        assert!(s.up && s.ejected_for.is_none());
        assert_eq!(
            (s.ejections, s.passive_failures, &*s.reason),
            (0, 0, "http: ok")
        );
        assert!(!h.clear_passive(), "nothing left to lift");
        // the next ejection starts from the base back-off again
        h.record_connect_failure(&spec, || true);
        h.record_connect_failure(&spec, || true);
        assert!(h.state().ejected_for.unwrap() <= Duration::from_secs(60));
    }

    #[test]
    fn ejection_expires() {
        let h = BackendHealth::detached(addr());
        h.eject(Duration::from_millis(1), "test");
        std::thread::sleep(Duration::from_millis(3));
        assert!(h.is_up());
    }

    #[test]
    fn admin_state_combines() {
        let admin = AdminState::new();
        let h = BackendHealth::new(addr(), Instant::now(), Some(admin.clone()));
        h.set_labels(Labels {
            region: Some("us".into()),
            az: Some("us-a".into()),
            instance: Some("gw1".into()),
        });
        assert!(h.is_up());
        admin.drain(AdminTarget::Az("us-a".into()));
        assert!(!h.is_up());
        assert_eq!(h.admin_mode(), Some(AdminMode::Drain));
        admin.undrain(AdminTarget::Az("us-a".into()));
        assert!(h.is_up());
    }

    #[test]
    fn conn_guard_counts() {
        let h = BackendHealth::detached(addr());
        let g = h.conn_guard();
        assert_eq!(h.active_conns(), 1);
        drop(g);
        assert_eq!((h.active_conns(), h.total_conns()), (0, 1));
    }

    #[test]
    fn active_transitions() {
        let h = BackendHealth::detached(addr());
        h.set_active(true, "ok".into());
        assert_eq!(h.active_state(), ActiveState::Up);
        h.set_active(false, "tcp: refused, 3 in a row".into());
        assert!(!h.is_up());
        assert_eq!(&*h.reason(), "tcp: refused, 3 in a row");
    }
}
