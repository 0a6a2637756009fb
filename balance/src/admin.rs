//! Administrative state: operators (admin API, drills) drain or force down a region, an AZ or an
//! instance by name. DNS, L4 and the gateway all obey it through [`BackendHealth::is_up`].
//!
//! Reads are lock-free: a snapshot in an `ArcSwap` plus a version counter that backends use to
//! cache their verdict. Writes are rare and serialised by a mutex.
//!
//! [`BackendHealth::is_up`]: crate::BackendHealth::is_up

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What an administrative action applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AdminTarget {
    /// Every backend of the region.
    Region(String),
    /// Every backend of the availability zone.
    Az(String),
    /// One backend, by instance name.
    Instance(String),
}

impl fmt::Display for AdminTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminTarget::Region(n) => write!(f, "region {n}"),
            AdminTarget::Az(n) => write!(f, "az {n}"),
            AdminTarget::Instance(n) => write!(f, "instance {n}"),
        }
    }
}

/// The effective administrative mode of a backend (forced down wins over drain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminMode {
    /// No new connections; existing ones run until they end or a drain deadline closes them.
    Drain,
    /// Forced down: no new connections, reported down everywhere (DNS included).
    Fail,
}

impl AdminMode {
    /// The lowercase name used in the admin API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminMode::Drain => "drain",
            AdminMode::Fail => "fail",
        }
    }
}

const DRAIN: u8 = 1;
const FAIL: u8 = 2;

/// The names a backend is known by, used to match administrative targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// The region the backend runs in.
    pub region: Option<String>,
    /// The availability zone the backend runs in.
    pub az: Option<String>,
    /// The backend's instance name.
    pub instance: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct Snapshot {
    flags: HashMap<AdminTarget, u8>,
}

impl Snapshot {
    fn bits(&self, labels: &Labels) -> u8 {
        if self.flags.is_empty() {
            return 0;
        }
        let mut bits = 0;
        let mut add = |t: AdminTarget| bits |= self.flags.get(&t).copied().unwrap_or(0);
        if let Some(r) = &labels.region {
            add(AdminTarget::Region(r.clone()));
        }
        if let Some(a) = &labels.az {
            add(AdminTarget::Az(a.clone()));
        }
        if let Some(i) = &labels.instance {
            add(AdminTarget::Instance(i.clone()));
        }
        bits
    }
}

struct Inner {
    snap: ArcSwap<Snapshot>,
    version: AtomicU64,
    tx: watch::Sender<u64>,
    write: Mutex<()>,
}

/// Shared administrative state (cheap to clone).
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

impl Default for AdminState {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminState")
            .field("version", &self.version())
            .finish()
    }
}

impl AdminState {
    /// An empty state: nothing drained or failed.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(0);
        AdminState {
            inner: Arc::new(Inner {
                snap: ArcSwap::from_pointee(Snapshot::default()),
                version: AtomicU64::new(0),
                tx,
                write: Mutex::new(()),
            }),
        }
    }

    /// Stop sending new connections to `target`; existing ones may finish.
    pub fn drain(&self, target: AdminTarget) -> bool {
        self.update(target, DRAIN, true)
    }
    /// Undo [`drain`](Self::drain).
    pub fn undrain(&self, target: AdminTarget) -> bool {
        self.update(target, DRAIN, false)
    }
    /// Force `target` down.
    pub fn fail(&self, target: AdminTarget) -> bool {
        self.update(target, FAIL, true)
    }
    /// Undo [`fail`](Self::fail).
    pub fn restore(&self, target: AdminTarget) -> bool {
        self.update(target, FAIL, false)
    }

    /// Monotonic version, bumped on every change (lock-free read).
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// A `watch` of [`version`](Self::version), to react to changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.tx.subscribe()
    }

    /// The effective mode for a backend with these names, if any.
    pub fn mode_for(&self, labels: &Labels) -> Option<AdminMode> {
        mode_of(self.inner.snap.load().bits(labels))
    }

    /// Every active administrative entry, sorted, for status output.
    pub fn list(&self) -> Vec<(AdminTarget, AdminMode)> {
        let snap = self.inner.snap.load();
        let mut out: Vec<_> = snap
            .flags
            .iter()
            .flat_map(|(t, &b)| {
                let mut v = Vec::new();
                if b & FAIL != 0 {
                    v.push((t.clone(), AdminMode::Fail));
                }
                if b & DRAIN != 0 {
                    v.push((t.clone(), AdminMode::Drain));
                }
                v
            })
            .collect();
        out.sort_by_key(|(t, m)| (t.to_string(), m.as_str()));
        out
    }

    fn update(&self, target: AdminTarget, bit: u8, set: bool) -> bool {
        let _w = self.inner.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Snapshot::clone(&self.inner.snap.load());
        let old = next.flags.get(&target).copied().unwrap_or(0);
        let new = if set { old | bit } else { old & !bit };
        if new == old {
            return false;
        }
        if new == 0 {
            next.flags.remove(&target);
        } else {
            next.flags.insert(target.clone(), new);
        }
        self.inner.snap.store(Arc::new(next));
        let v = self.inner.version.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner.tx.send_replace(v);
        let what = if bit == FAIL { "fail" } else { "drain" };
        tracing::info!(%target, action = what, set, version = v, "admin state changed");
        true
    }
}

fn mode_of(bits: u8) -> Option<AdminMode> {
    if bits & FAIL != 0 {
        Some(AdminMode::Fail)
    } else if bits & DRAIN != 0 {
        Some(AdminMode::Drain)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(r: &str, a: &str, i: &str) -> Labels {
        Labels {
            region: Some(r.into()),
            az: Some(a.into()),
            instance: Some(i.into()),
        }
    }

    #[test]
    fn fail_wins_over_drain_and_versions_bump() {
        let s = AdminState::new();
        let l = labels("us", "us-a", "gw1");
        assert_eq!(s.mode_for(&l), None);
        assert!(s.drain(AdminTarget::Az("us-a".into())));
        assert!(
            !s.drain(AdminTarget::Az("us-a".into())),
            "no-op is not a change"
        );
        assert_eq!(s.mode_for(&l), Some(AdminMode::Drain));
        assert!(s.fail(AdminTarget::Instance("gw1".into())));
        assert_eq!(s.mode_for(&l), Some(AdminMode::Fail));
        assert_eq!(s.mode_for(&labels("us", "us-b", "gw2")), None);
        assert!(s.restore(AdminTarget::Instance("gw1".into())));
        assert!(s.undrain(AdminTarget::Az("us-a".into())));
        assert_eq!(s.mode_for(&l), None);
        assert_eq!(s.version(), 4);
        assert!(s.list().is_empty());
    }

    #[test]
    fn region_drain_applies_to_all_members() {
        let s = AdminState::new();
        s.drain(AdminTarget::Region("eu".into()));
        assert_eq!(
            s.mode_for(&labels("eu", "eu-b", "x")),
            Some(AdminMode::Drain)
        );
        assert_eq!(s.mode_for(&labels("us", "eu-b", "x")), None);
        assert_eq!(
            s.list(),
            vec![(AdminTarget::Region("eu".into()), AdminMode::Drain)]
        );
    }
}
