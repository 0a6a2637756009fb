//! Per-client-address caps: open connections and requests in flight.
//!
//! Without them one address can hold a whole instance's `max_connections` (idle h2c
//! connections, slowloris) or `max_concurrent_requests` (stalled bodies) and every other client
//! waits. The table is looked up once per connection (a sharded lock, off the request path); the
//! connection then keeps its [`ClientSlot`] and counts its requests with atomics only.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

/// Counters of one client address, shared by all its connections on one gateway instance.
#[derive(Debug, Default)]
pub struct ClientCounts {
    conns: AtomicUsize,
    requests: AtomicUsize,
}

/// One instance's table of client addresses with open connections.
pub struct ClientTable {
    shards: Vec<Mutex<HashMap<IpAddr, Arc<ClientCounts>>>>,
    hasher: std::collections::hash_map::RandomState,
    max_conns: usize,
}

/// A connection's claim on its client's counters; released on drop.
pub struct ClientSlot {
    table: Arc<ClientTable>,
    ip: IpAddr,
    counts: Arc<ClientCounts>,
}

/// A request's claim on its client's in-flight count; released on drop.
pub struct RequestSlot<'a>(&'a ClientCounts);

impl ClientTable {
    /// A table allowing `max_conns` open connections per client address.
    pub fn new(max_conns: usize) -> Arc<ClientTable> {
        Arc::new(ClientTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            max_conns: max_conns.max(1),
        })
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, Arc<ClientCounts>>> {
        &self.shards[(self.hasher.hash_one(ip) as usize) % SHARDS]
    }

    /// Claim a connection for `ip`; `None` when the address already holds its share.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut shard = self.shard(&ip).lock().unwrap_or_else(|e| e.into_inner());
        let counts = shard.entry(ip).or_default().clone();
        if counts.conns.load(Ordering::Relaxed) >= self.max_conns {
            return None;
        }
        counts.conns.fetch_add(1, Ordering::Relaxed);
        Some(ClientSlot {
            table: self.clone(),
            ip,
            counts,
        })
    }

    /// Addresses with at least one open connection.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// No address has an open connection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ClientSlot {
    /// Claim one request in flight; `None` when the address already has `max` in flight.
    pub fn request(&self, max: usize) -> Option<RequestSlot<'_>> {
        let prev = self.counts.requests.fetch_add(1, Ordering::Relaxed);
        if prev >= max {
            self.counts.requests.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(RequestSlot(&self.counts))
    }
}

impl Drop for RequestSlot<'_> {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut shard = self
            .table
            .shard(&self.ip)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.counts.conns.fetch_sub(1, Ordering::Relaxed) == 1 {
            // the last connection of this address: forget it (the map holds only live clients)
            shard.remove(&self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_connections_per_address_and_forgets_closed_ones() {
        let t = ClientTable::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = t.open(a).unwrap();
        let a2 = t.open(a).unwrap();
        assert!(t.open(a).is_none(), "a third connection from one address");
        let b1 = t.open(b).unwrap();
        assert_eq!(t.len(), 2);
        drop(a1);
        let a3 = t.open(a).unwrap();
        drop((a2, a3, b1));
        assert!(t.is_empty());
    }

    #[test]
    fn caps_requests_per_address_across_connections() {
        let t = ClientTable::new(10);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let (c1, c2) = (t.open(a).unwrap(), t.open(a).unwrap());
        let r1 = c1.request(2).unwrap();
        let r2 = c2.request(2).unwrap();
        assert!(c1.request(2).is_none());
        drop(r1);
        let r3 = c2.request(2).unwrap();
        drop((r2, r3));
        assert!(c1.request(2).is_some());
    }
}
