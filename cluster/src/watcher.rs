//! [`watch`]: one node's live view of everything under the base prefix ([`View`]): the world's
//! text and revision, registered instances, region reports, observer verdicts, cluster-wide admin
//! actions. It reads the prefix once (which must succeed: that is the "etcd unreachable at start"
//! error), then follows a watch and re-reads on every change. When etcd goes away the last view
//! stays, the [`Link`] says since when, and it reconnects with back-off.

use crate::health::{RegionReport, Verdict};
use crate::link::{Backoff, Link};
use crate::registry::Registration;
use crate::{Client, Error, EtcdUrl};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often a quiet watch is checked by a cheap read (detects a silently broken path).
const PING_EVERY: Duration = Duration::from_secs(1);

/// The world as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldText {
    /// The world's TOML.
    pub text: String,
    /// The key's `mod_revision`: what `/status` reports as the node's config revision.
    pub revision: i64,
}

/// A cluster-wide admin action (`BASE/admin/KIND/NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminEntry {
    /// `region`, `az` or `instance`.
    pub kind: String,
    /// The target's name.
    pub name: String,
    /// `drain` or `fail`.
    pub mode: String,
    /// The node whose admin API took the action.
    pub node: String,
    /// Who asked (the admin API's caller).
    pub who: String,
}

impl AdminEntry {
    /// Its key under the admin prefix.
    pub fn key(&self, admin_prefix: &str) -> String {
        format!("{admin_prefix}{}/{}/{}", self.mode, self.kind, self.name)
    }
}

/// What a node says about itself (`BASE/nodes/NODE`): which world revision it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's name.
    pub node: String,
    /// The world revision it runs (`None`: none yet).
    pub revision: Option<i64>,
    /// Its `--region`, if any.
    pub region: Option<String>,
    /// The parts it runs.
    pub parts: Vec<String>,
}

/// An observer's verdict on a region (`BASE/observers/REGION/NODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserverVote {
    /// The region judged.
    pub region: String,
    /// The observing node.
    pub node: String,
    /// What it sees.
    pub verdict: Verdict,
}

/// Everything under the base prefix at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The store's revision when this view was read.
    pub revision: i64,
    /// The world, if one was pushed.
    pub world: Option<WorldText>,
    /// Instances registered with a lease.
    pub registrations: Vec<Registration>,
    /// What each region's balancer node reports.
    pub reports: Vec<RegionReport>,
    /// Observers' verdicts on regions.
    pub observers: Vec<ObserverVote>,
    /// Cluster-wide admin actions in force.
    pub admin: Vec<AdminEntry>,
    /// What each node says it runs.
    pub nodes: Vec<NodeRecord>,
    /// Records that could not be read (key: reason); logged once per view.
    pub unreadable: Vec<String>,
}

impl View {
    fn from_kvs(url: &EtcdUrl, kvs: Vec<crate::Kv>, revision: i64) -> View {
        let mut v = View {
            revision,
            ..View::default()
        };
        let (reg, health, obs, admin, nodes) = (
            url.registry_prefix(),
            url.health_prefix(),
            url.observers_prefix(),
            url.admin_prefix(),
            url.nodes_prefix(),
        );
        for kv in kvs {
            let bad = |e: &dyn std::fmt::Display| format!("{}: {e}", kv.key);
            if kv.key == url.key {
                v.world = Some(WorldText {
                    text: String::from_utf8_lossy(&kv.value).into_owned(),
                    revision: kv.mod_revision,
                });
            } else if kv.key.starts_with(&reg) {
                match serde_json::from_slice::<Registration>(&kv.value) {
                    Ok(r) => v.registrations.push(r),
                    Err(e) => v.unreadable.push(bad(&e)),
                }
            } else if kv.key.starts_with(&health) {
                match serde_json::from_slice::<RegionReport>(&kv.value) {
                    Ok(r) => v.reports.push(r),
                    Err(e) => v.unreadable.push(bad(&e)),
                }
            } else if let Some(rest) = kv.key.strip_prefix(&obs) {
                let verdict = match &kv.value[..] {
                    b"up" => Verdict::Up,
                    b"down" => Verdict::Down,
                    _ => {
                        v.unreadable.push(bad(&"expected up or down"));
                        continue;
                    }
                };
                if let Some((region, node)) = rest.split_once('/') {
                    v.observers.push(ObserverVote {
                        region: region.to_string(),
                        node: node.to_string(),
                        verdict,
                    });
                }
            } else if kv.key.starts_with(&admin) {
                match serde_json::from_slice::<AdminEntry>(&kv.value) {
                    Ok(a) => v.admin.push(a),
                    Err(e) => v.unreadable.push(bad(&e)),
                }
            } else if kv.key.starts_with(&nodes) {
                match serde_json::from_slice::<NodeRecord>(&kv.value) {
                    Ok(n) => v.nodes.push(n),
                    Err(e) => v.unreadable.push(bad(&e)),
                }
            }
        }
        v
    }
}

/// Reads the base prefix (an error here names the URL), then keeps the returned view current
/// until `shutdown`.
pub async fn watch(
    client: Client,
    url: EtcdUrl,
    link: Arc<Link>,
    shutdown: CancellationToken,
) -> Result<watch::Receiver<Arc<View>>, Error> {
    let base = url.base();
    let (kvs, rev) = client.range_prefix(&base).await?;
    link.up();
    let (tx, rx) = watch::channel(Arc::new(View::from_kvs(&url, kvs, rev)));
    tokio::spawn(async move {
        let mut rev = rev;
        let mut backoff = Backoff::default();
        loop {
            let r = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = follow(&client, &url, &base, &mut rev, &tx, &link) => r,
            };
            let Err(e) = r;
            link.down(&e.to_string());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_wait()) => {}
            }
            // Reconnected (or not): re-read everything before watching again.
            if let Ok((kvs, r)) = client.range_prefix(&base).await {
                rev = r;
                backoff.reset();
                link.up();
                publish(&tx, View::from_kvs(&url, kvs, r));
            }
        }
    });
    Ok(rx)
}

fn publish(tx: &watch::Sender<Arc<View>>, view: View) {
    for u in &view.unreadable {
        tracing::warn!(target: "switchyard::cluster", "unreadable record in etcd: {u}");
    }
    tx.send_if_modified(|cur| {
        // Same content at a later revision (e.g. a lease renewed a key) is not a change.
        let same = View {
            revision: cur.revision,
            ..view.clone()
        };
        if **cur == same {
            return false;
        }
        *cur = Arc::new(view);
        true
    });
}

/// Watches from `rev + 1` and re-reads on every change; returns only with an error.
async fn follow(
    client: &Client,
    url: &EtcdUrl,
    base: &str,
    rev: &mut i64,
    tx: &watch::Sender<Arc<View>>,
    link: &Link,
) -> Result<std::convert::Infallible, Error> {
    let mut w = client.watch_prefix(base, *rev + 1).await?;
    loop {
        tokio::select! {
            r = w.next() => {
                r?;
                let (kvs, r) = client.range_prefix(base).await?;
                *rev = r;
                link.up();
                publish(tx, View::from_kvs(url, kvs, r));
            }
            _ = tokio::time::sleep(PING_EVERY) => {
                client.get(&url.key).await?;
                link.up();
            }
        }
    }
}
