//! Per-client token buckets (key: subject when authenticated, else client address).
//!
//! [`Bucket::take`] is a pure function of the bucket, the rate and the time, so it is unit tested
//! without clocks; [`RateLimiter`] keeps a bounded, sharded map of buckets.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::spec::RateSpec;

#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(rate: RateSpec, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst as f64,
            last: now,
        }
    }

    /// Take one token, or say how long until one is available.
    pub fn take(&mut self, rate: RateSpec, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst as f64);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if rate.per_second <= 0.0 {
            Err(Duration::from_secs(3600))
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / rate.per_second,
            ))
        }
    }
}

const SHARDS: usize = 16;
const MAX_PER_SHARD: usize = 8192;

pub struct RateLimiter {
    rate: RateSpec,
    shards: Vec<Mutex<HashMap<Box<str>, Bucket>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl RateLimiter {
    pub fn new(rate: RateSpec) -> RateLimiter {
        RateLimiter {
            rate,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    /// `Err(retry_after_secs)` when the key is over its rate.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut shard = self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if shard.len() >= MAX_PER_SHARD && !shard.contains_key(key) {
            let rate = self.rate;
            // drop buckets that have refilled completely: they carry no state
            shard.retain(|_, b| {
                let refill = now.saturating_duration_since(b.last).as_secs_f64() * rate.per_second;
                b.tokens + refill < rate.burst as f64
            });
            if shard.len() >= MAX_PER_SHARD {
                shard.clear();
            }
        }
        let rate = self.rate;
        let bucket = shard
            .entry(key.into())
            .or_insert_with(|| Bucket::full(rate, now));
        bucket
            .take(rate, now)
            .map_err(|d| d.as_secs_f64().ceil().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_rate() {
        let rate = RateSpec {
            per_second: 2.0,
            burst: 3,
        };
        let t0 = Instant::now();
        let mut b = Bucket::full(rate, t0);
        assert!(b.take(rate, t0).is_ok());
        assert!(b.take(rate, t0).is_ok());
        assert!(b.take(rate, t0).is_ok());
        let wait = b.take(rate, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(rate, t0 + Duration::from_millis(500)).is_ok());
        assert!(b.take(rate, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn limiter_keys_are_independent() {
        let l = RateLimiter::new(RateSpec {
            per_second: 0.5,
            burst: 1,
        });
        let t = Instant::now();
        assert_eq!(l.check("alice", t), Ok(()));
        assert_eq!(l.check("alice", t), Err(2));
        assert_eq!(l.check("bob", t), Ok(()));
    }
}
