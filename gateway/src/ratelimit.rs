//! Per-client token buckets, in two stages ([`Limiters`]): by client address before
//! authentication, by subject after it.
//!
//! [`Bucket::take`] is a pure function of the bucket, the rate and the time, so it is unit tested
//! without clocks; [`RateLimiter`] keeps a bounded, sharded map of buckets. Keys are typed (an
//! address, a subject), so a lookup formats nothing and allocates only for a new key.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
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
        self.peek(rate, now)?;
        self.tokens -= 1.0;
        Ok(())
    }

    /// Whether a token is available (refilled to `now`), without taking it.
    pub fn peek(&mut self, rate: RateSpec, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst as f64);
        self.last = now;
        if self.tokens >= 1.0 {
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

/// A bounded, sharded map of token buckets keyed by `K`.
pub struct RateLimiter<K> {
    rate: RateSpec,
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
    hasher: std::collections::hash_map::RandomState,
}

/// The two stages of per-client limiting (one rate for both).
pub struct Limiters {
    /// Before authentication, by client address: charged for requests without a verified
    /// token (anonymous or rejected), consulted (not charged) before any signature check, so
    /// a client sending bad tokens is refused (429) without costing a verification.
    pub by_addr: RateLimiter<IpAddr>,
    /// After authentication, by token subject.
    pub by_sub: RateLimiter<String>,
}

impl Limiters {
    /// Both stages at `rate`.
    pub fn new(rate: RateSpec) -> Limiters {
        Limiters {
            by_addr: RateLimiter::new(rate),
            by_sub: RateLimiter::new(rate),
        }
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub fn new(rate: RateSpec) -> RateLimiter<K> {
        RateLimiter {
            rate,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    /// Take a token: `Err(retry_after_secs)` when the key is over its rate.
    pub fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with(key, now, |b, rate| b.take(rate, now))
    }

    /// Whether the key has a token left, without taking it (`Err(retry_after_secs)`).
    pub fn peek<Q>(&self, key: &Q, now: Instant) -> Result<(), u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with(key, now, |b, rate| b.peek(rate, now))
    }

    fn with<Q>(
        &self,
        key: &Q,
        now: Instant,
        f: impl FnOnce(&mut Bucket, RateSpec) -> Result<(), Duration>,
    ) -> Result<(), u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut shard = self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let rate = self.rate;
        if let Some(bucket) = shard.get_mut(key) {
            return f(bucket, rate).map_err(retry_secs);
        }
        if shard.len() >= MAX_PER_SHARD {
            // drop buckets that have refilled completely: they carry no state
            shard.retain(|_, b| {
                let refill = now.saturating_duration_since(b.last).as_secs_f64() * rate.per_second;
                b.tokens + refill < rate.burst as f64
            });
            if shard.len() >= MAX_PER_SHARD {
                shard.clear();
            }
        }
        let bucket = shard
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::full(rate, now));
        f(bucket, rate).map_err(retry_secs)
    }
}

fn retry_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
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
        let l = RateLimiter::<String>::new(RateSpec {
            per_second: 0.5,
            burst: 1,
        });
        let t = Instant::now();
        assert_eq!(l.check("alice", t), Ok(()));
        assert_eq!(l.check("alice", t), Err(2));
        assert_eq!(l.check("bob", t), Ok(()));
    }

    #[test]
    fn peek_does_not_take() {
        let l = RateLimiter::<IpAddr>::new(RateSpec {
            per_second: 1.0,
            burst: 2,
        });
        let (a, t) = (IpAddr::from([192, 0, 2, 1]), Instant::now());
        for _ in 0..5 {
            assert_eq!(l.peek(&a, t), Ok(()));
        }
        assert_eq!(l.check(&a, t), Ok(()));
        assert_eq!(l.check(&a, t), Ok(()));
        assert_eq!(l.peek(&a, t), Err(1));
        assert_eq!(l.peek(&a, t + Duration::from_secs(1)), Ok(()));
    }
}
