//! The reload decision, sozu style: [`diff`] compares the running [`Plan`] with a new one and
//! says what to bind, update, add and remove, from the specs alone (no sockets, no runtime), so
//! it is unit-tested on its own. `Lb::apply` carries the decision out.

use crate::plan::{Key, Plan};
use crate::LbError;

/// What applying a new plan over the running one changes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlanDiff {
    /// Pools to create.
    pub pools_added: Vec<Key>,
    /// Pools whose spec changed: updated in place (members kept by address, removed ones drain).
    pub pools_updated: Vec<Key>,
    /// Pools no longer in the plan: every member drains.
    pub pools_removed: Vec<Key>,
    /// Listeners that need new sockets: new ones, or whose addresses, backlog or workers changed.
    pub listeners_bound: Vec<Key>,
    /// Listeners whose other settings changed: swapped in place, sockets and connections kept.
    pub listeners_updated: Vec<Key>,
    /// Listeners no longer in the plan: closed.
    pub listeners_stopped: Vec<Key>,
}

impl PlanDiff {
    /// True when applying the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == PlanDiff::default()
    }
}

/// Checks that a plan can run: every listener's pool exists and no pool is empty.
pub fn check(plan: &Plan) -> Result<(), LbError> {
    for l in &plan.listeners {
        let sni_pools = l.sni.iter().flat_map(|s| s.pools());
        for key in std::iter::once(&l.pool).chain(sni_pools) {
            if !plan.pools.iter().any(|p| &p.key == key) {
                return Err(LbError::UnknownPool {
                    listener: l.key.1.clone(),
                    pool: key.1.clone(),
                });
            }
        }
    }
    if let Some(p) = plan.pools.iter().find(|p| p.members.is_empty()) {
        return Err(LbError::EmptyPool {
            pool: p.key.1.clone(),
        });
    }
    Ok(())
}

/// What it takes to go from `running` to `new`. Keys come in `new`'s order; removed ones in
/// `running`'s.
pub fn diff(running: &Plan, new: &Plan) -> PlanDiff {
    let mut d = PlanDiff::default();
    for p in &new.pools {
        match running.pools.iter().find(|o| o.key == p.key) {
            None => d.pools_added.push(p.key.clone()),
            Some(o) if o != p => d.pools_updated.push(p.key.clone()),
            Some(_) => {}
        }
    }
    for o in &running.pools {
        if !new.pools.iter().any(|p| p.key == o.key) {
            d.pools_removed.push(o.key.clone());
        }
    }
    for l in &new.listeners {
        match running.listeners.iter().find(|o| o.key == l.key) {
            Some(o) if o.bind_key() == l.bind_key() => {
                if o != l {
                    d.listeners_updated.push(l.key.clone());
                }
            }
            _ => d.listeners_bound.push(l.key.clone()),
        }
    }
    for o in &running.listeners {
        if !new.listeners.iter().any(|l| l.key == o.key) {
            d.listeners_stopped.push(o.key.clone());
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ListenerSpec, PoolSpec};
    use switchyard_balance::{MemberSpec, Policy};

    fn key(name: &str) -> Key {
        ("r".into(), name.into())
    }

    fn pool(name: &str, members: &[&str]) -> PoolSpec {
        PoolSpec::new(
            "r",
            name,
            members
                .iter()
                .map(|a| MemberSpec::new(*a, a.parse().unwrap(), "z", 1))
                .collect(),
        )
    }

    fn listener(name: &str, addr: &str, pool: &str) -> ListenerSpec {
        ListenerSpec::new("r", name, vec![addr.parse().unwrap()], pool)
    }

    fn plan(pools: Vec<PoolSpec>, listeners: Vec<ListenerSpec>) -> Plan {
        Plan {
            pools,
            listeners,
            global_max_connections: None,
        }
    }

    fn base() -> Plan {
        plan(
            vec![
                pool("web", &["10.0.0.1:80", "10.0.0.2:80"]),
                pool("db", &["10.0.1.1:5432"]),
            ],
            vec![
                listener("http", "127.0.0.1:8080", "web"),
                listener("pg", "127.0.0.1:5432", "db"),
            ],
        )
    }

    #[test]
    fn the_same_plan_changes_nothing() {
        assert!(diff(&base(), &base()).is_empty());
    }

    #[test]
    fn from_nothing_everything_is_added_and_bound() {
        assert_eq!(
            diff(&Plan::default(), &base()),
            PlanDiff {
                pools_added: vec![key("web"), key("db")],
                listeners_bound: vec![key("http"), key("pg")],
                ..PlanDiff::default()
            }
        );
    }

    #[test]
    fn a_member_change_updates_the_pool_only() {
        let mut new = base();
        new.pools[0] = pool("web", &["10.0.0.1:80", "10.0.0.3:80"]);
        assert_eq!(
            diff(&base(), &new),
            PlanDiff {
                pools_updated: vec![key("web")],
                ..PlanDiff::default()
            }
        );
        new.pools[0].policy = Policy::LeastConnections;
        assert_eq!(diff(&base(), &new).pools_updated, vec![key("web")]);
    }

    #[test]
    fn only_socket_changes_rebind() {
        let mut new = base();
        new.listeners[0].idle_timeout = std::time::Duration::from_secs(1);
        new.listeners[0].max_connections = 7;
        new.listeners[0].source_rate = Some((10.0, 5));
        assert_eq!(
            diff(&base(), &new),
            PlanDiff {
                listeners_updated: vec![key("http")],
                ..PlanDiff::default()
            }
        );
        for change in [
            |l: &mut ListenerSpec| l.addrs = vec!["127.0.0.2:8080".parse().unwrap()],
            |l: &mut ListenerSpec| l.backlog = 10,
            |l: &mut ListenerSpec| l.workers = Some(3),
        ] {
            let mut new = base();
            change(&mut new.listeners[1]);
            assert_eq!(
                diff(&base(), &new),
                PlanDiff {
                    listeners_bound: vec![key("pg")],
                    ..PlanDiff::default()
                }
            );
        }
    }

    #[test]
    fn removals_and_a_listener_moved_to_a_new_pool() {
        let new = plan(
            vec![
                pool("web", &["10.0.0.1:80", "10.0.0.2:80"]),
                pool("api", &["10.0.2.1:80"]),
            ],
            vec![listener("http", "127.0.0.1:8080", "api")],
        );
        assert_eq!(
            diff(&base(), &new),
            PlanDiff {
                pools_added: vec![key("api")],
                pools_removed: vec![key("db")],
                listeners_updated: vec![key("http")],
                listeners_stopped: vec![key("pg")],
                ..PlanDiff::default()
            }
        );
    }

    #[test]
    fn check_refuses_unknown_and_empty_pools() {
        assert!(check(&base()).is_ok());
        let mut p = base();
        p.listeners[0].pool = key("nope");
        assert!(matches!(
            check(&p),
            Err(LbError::UnknownPool { listener, pool }) if listener == "http" && pool == "nope"
        ));
        let mut p = base();
        p.pools[1].members.clear();
        assert!(matches!(check(&p), Err(LbError::EmptyPool { pool }) if pool == "db"));
    }
}
