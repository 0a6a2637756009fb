//! Per-source new-connection rate limit: a token bucket per client IP, in a sharded map so
//! concurrent accepts rarely touch the same lock. The bucket arithmetic is pure ([`Bucket`]).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A bucket holding `burst` tokens at `now`.
    pub fn full(burst: u32, now: Instant) -> Self {
        Bucket {
            tokens: burst as f64,
            last: now,
        }
    }

    /// Takes one token if available at `now`.
    pub fn take(&mut self, per_second: f64, burst: u32, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * per_second).min(burst as f64);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

const SHARDS: usize = 32;
/// Entries per shard before idle (full) buckets are swept.
const SWEEP_AT: usize = 4096;

/// Per-source limiter of one listener.
#[derive(Debug)]
pub struct SourceLimiter {
    per_second: f64,
    burst: u32,
    hasher: std::collections::hash_map::RandomState,
    shards: Box<[Mutex<HashMap<IpAddr, Bucket>>]>,
}

impl SourceLimiter {
    /// A limiter that refills `per_second` tokens per source, holding at most `burst`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        SourceLimiter {
            per_second,
            burst: burst.max(1),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Same settings?
    pub fn same_rate(&self, per_second: f64, burst: u32) -> bool {
        self.per_second == per_second && self.burst == burst.max(1)
    }

    /// May `ip` open a new connection now?
    pub fn allow(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let shard = &self.shards[self.hasher.hash_one(ip) as usize % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            let full_after = self.burst as f64 / self.per_second;
            map.retain(|_, b| now.saturating_duration_since(b.last).as_secs_f64() < full_after);
        }
        map.entry(ip)
            .or_insert_with(|| Bucket::full(self.burst, now))
            .take(self.per_second, self.burst, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        assert!((0..3).all(|_| b.take(10.0, 3, t0)));
        assert!(!b.take(10.0, 3, t0));
        assert!(!b.take(10.0, 3, t0 + Duration::from_millis(50)));
        assert!(b.take(10.0, 3, t0 + Duration::from_millis(150)));
        // never more than the burst, however long the pause
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| b.take(10.0, 3, later)).count(), 3);
    }

    #[test]
    fn sources_are_independent() {
        let l = SourceLimiter::new(1.0, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.allow(a) && l.allow(a));
        assert!(!l.allow(a));
        assert!(l.allow(b));
    }
}
