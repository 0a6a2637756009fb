//! [`Publisher`]: keeps a set of keys alive under one lease. It grants the lease, writes the keys,
//! renews the lease every third of its TTL and writes keys again when they change. When the
//! lease is lost (etcd restarted, the node was cut off longer than the TTL) it grants a new one
//! and writes everything again. On shutdown it revokes the lease so the keys go at once; if the
//! process dies instead, etcd drops them when the TTL runs out.

use crate::link::{Backoff, Link};
use crate::{Client, Error};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Handle to change what is published (cheap to clone).
#[derive(Clone, Debug)]
pub struct Publisher {
    keys: watch::Sender<BTreeMap<String, Vec<u8>>>,
}

impl Publisher {
    /// Starts the publishing task; it runs until `shutdown`, then revokes the lease.
    /// `granted` is told every new lease id (e.g. to log it).
    pub fn start(
        client: Client,
        ttl: Duration,
        link: Arc<Link>,
        shutdown: CancellationToken,
    ) -> (Publisher, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(BTreeMap::new());
        let task = tokio::spawn(run(client, ttl, link, rx, shutdown));
        (Publisher { keys: tx }, task)
    }

    /// Publishes (or replaces) `key`.
    pub fn set(&self, key: String, value: Vec<u8>) {
        self.keys.send_if_modified(|m| {
            if m.get(&key) == Some(&value) {
                return false;
            }
            m.insert(key, value);
            true
        });
    }

    /// Stops publishing `key` (it is deleted).
    pub fn remove(&self, key: &str) {
        self.keys.send_if_modified(|m| m.remove(key).is_some());
    }
}

async fn run(
    client: Client,
    ttl: Duration,
    link: Arc<Link>,
    mut rx: watch::Receiver<BTreeMap<String, Vec<u8>>>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::default();
    let mut lease: Option<i64> = None;
    let mut written: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    loop {
        let step = async {
            let id = match lease {
                Some(id) => id,
                None => {
                    let id = client.grant(ttl).await?;
                    tracing::debug!(target: "switchyard::cluster", lease = id, "lease granted");
                    written.clear();
                    lease = Some(id);
                    id
                }
            };
            let want = rx.borrow_and_update().clone();
            for (k, v) in &want {
                if written.get(k) != Some(v) {
                    client.put(k, v, Some(id)).await?;
                    written.insert(k.clone(), v.clone());
                }
            }
            let gone: Vec<String> = written
                .keys()
                .filter(|k| !want.contains_key(*k))
                .cloned()
                .collect();
            for k in gone {
                client.delete(&k).await?;
                written.remove(&k);
            }
            link.up();
            tokio::select! {
                _ = tokio::time::sleep(ttl / 3) => client.keep_alive(id).await.map(|_| ()),
                _ = rx.changed() => Ok(()),
            }
        };
        let r = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = step => r,
        };
        match r {
            Ok(()) => backoff.reset(),
            Err(Error::LeaseExpired(id)) => {
                tracing::warn!(target: "switchyard::cluster", lease = id, "lease expired; granting a new one");
                lease = None;
            }
            Err(e) => {
                if e.is_transient() {
                    link.down(&e.to_string());
                } else {
                    tracing::warn!(target: "switchyard::cluster", error = %e, "publishing failed");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff.next_wait()) => {}
                }
            }
        }
    }
    if let Some(id) = lease {
        let _ = tokio::time::timeout(Duration::from_secs(1), client.revoke(id)).await;
    }
}
