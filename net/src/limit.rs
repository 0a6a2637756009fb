//! Token buckets: [`Bucket`] is the arithmetic, a pure function of the bucket, the [`Rate`] and
//! the time (so it is tested without clocks); [`KeyedLimiter`] keeps one bucket per key in a
//! sharded map, so concurrent callers rarely touch the same lock, with a bounded size.
//!
//! Used for the L4 balancer's per-source connection rate (key: client IP) and the gateway's
//! request rate (key: subject, else client address).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate: `per_second` tokens refilled, at most `burst` held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens a bucket holds (and holds when new).
    pub burst: u32,
}

/// The wait reported when the rate refills nothing.
const NEVER: Duration = Duration::from_secs(3600);

/// One token bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A bucket holding `rate.burst` tokens at `now`.
    pub fn full(rate: Rate, now: Instant) -> Self {
        Bucket {
            tokens: rate.burst as f64,
            last: now,
        }
    }

    /// Takes one token at `now`, or says how long until one is available (an hour when the
    /// rate refills nothing).
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.peek(rate, now)?;
        self.tokens -= 1.0;
        Ok(())
    }

    /// Whether a token is available at `now` (refilled up to it), without taking it.
    pub fn peek(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.per_second).min(rate.burst as f64);
        self.last = now;
        if self.tokens >= 1.0 {
            Ok(())
        } else if rate.per_second <= 0.0 {
            Err(NEVER)
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate.per_second).min(NEVER))
        }
    }

    fn is_full_at(&self, rate: Rate, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * rate.per_second;
        self.tokens + refill >= rate.burst as f64
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

const SHARDS: usize = 32;
/// Default bound on buckets per shard (so 131 072 keys in all).
const MAX_PER_SHARD: usize = 4096;

/// One token bucket per key, in a sharded map of bounded size.
///
/// When a shard is full and a new key arrives, buckets that have refilled completely are
/// dropped (they carry no state); if the shard is still full it is cleared, which forgives
/// every key in it: memory stays bounded whatever the number of keys an attacker uses.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate: Rate,
    max_per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
    shards: Box<[Mutex<HashMap<K, Bucket>>]>,
}

impl<K: Hash + Eq> KeyedLimiter<K> {
    /// A limiter of `rate` per key (a burst of 0 counts as 1).
    pub fn new(rate: Rate) -> Self {
        Self::with_capacity(rate, SHARDS * MAX_PER_SHARD)
    }

    /// Like [`new`](Self::new), holding at most about `keys` buckets.
    pub fn with_capacity(rate: Rate, keys: usize) -> Self {
        KeyedLimiter {
            rate: Rate {
                per_second: rate.per_second,
                burst: rate.burst.max(1),
            },
            max_per_shard: keys.div_ceil(SHARDS).max(1),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// The rate per key.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Same rate as `rate` (after the same normalisation as [`new`](Self::new))?
    pub fn same_rate(&self, rate: Rate) -> bool {
        self.rate.per_second == rate.per_second && self.rate.burst == rate.burst.max(1)
    }

    /// Takes a token for `key` at `now`, or says how long until one is available. Allocates
    /// only when a key is seen for the first time (`Q::to_owned`).
    pub fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        self.with(key, now, Bucket::take)
    }

    /// Whether `key` has a token left at `now`, without taking it (a stage that is consulted
    /// before an expensive step and charged only for some outcomes).
    pub fn peek<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        self.with(key, now, Bucket::peek)
    }

    fn with<Q>(
        &self,
        key: &Q,
        now: Instant,
        f: fn(&mut Bucket, Rate, Instant) -> Result<(), Duration>,
    ) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        let rate = self.rate;
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get_mut(key) {
            return f(b, rate, now);
        }
        if map.len() >= self.max_per_shard {
            map.retain(|_, b| !b.is_full_at(rate, now));
            if map.len() >= self.max_per_shard {
                map.clear();
            }
        }
        let mut b = Bucket::full(rate, now);
        let r = f(&mut b, rate, now);
        map.insert(key.to_owned().into(), b);
        r
    }

    /// Buckets held now (for tests and status).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn rate(per_second: f64, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    // from lb/src/limits.rs
    #[test]
    fn bucket_allows_burst_then_rate() {
        let r = rate(10.0, 3);
        let t0 = Instant::now();
        let mut b = Bucket::full(r, t0);
        assert!((0..3).all(|_| b.take(r, t0).is_ok()));
        assert!(b.take(r, t0).is_err());
        assert!(b.take(r, t0 + Duration::from_millis(50)).is_err());
        assert!(b.take(r, t0 + Duration::from_millis(150)).is_ok());
        // never more than the burst, however long the pause
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| b.take(r, later).is_ok()).count(), 3);
    }

    // from gateway/src/ratelimit.rs
    #[test]
    fn bucket_refills_at_rate() {
        let r = rate(2.0, 3);
        let t0 = Instant::now();
        let mut b = Bucket::full(r, t0);
        assert!(b.take(r, t0).is_ok());
        assert!(b.take(r, t0).is_ok());
        assert!(b.take(r, t0).is_ok());
        let wait = b.take(r, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(r, t0 + Duration::from_millis(500)).is_ok());
        assert!(b.take(r, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn a_zero_rate_never_refills() {
        let r = rate(0.0, 1);
        let t0 = Instant::now();
        let mut b = Bucket::full(r, t0);
        assert!(b.take(r, t0).is_ok());
        assert_eq!(b.take(r, t0 + Duration::from_secs(1000)), Err(NEVER));
    }

    // from lb/src/limits.rs
    #[test]
    fn sources_are_independent() {
        let l = KeyedLimiter::<IpAddr>::new(rate(1.0, 2));
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.check(&a, t).is_ok() && l.check(&a, t).is_ok());
        assert!(l.check(&a, t).is_err());
        assert!(l.check(&b, t).is_ok());
    }

    // from gateway/src/ratelimit.rs: string keys looked up by &str, Retry-After in seconds
    #[test]
    fn limiter_keys_are_independent() {
        let l = KeyedLimiter::<Box<str>>::new(rate(0.5, 1));
        let t = Instant::now();
        assert_eq!(l.check("alice", t), Ok(()));
        assert_eq!(l.check("alice", t).map_err(retry_after_secs), Err(2));
        assert_eq!(l.check("bob", t), Ok(()));
    }

    #[test]
    fn burst_zero_counts_as_one_and_same_rate_normalises() {
        let l = KeyedLimiter::<u32>::new(rate(1.0, 0));
        assert_eq!(l.rate(), rate(1.0, 1));
        assert!(l.same_rate(rate(1.0, 0)) && l.same_rate(rate(1.0, 1)));
        assert!(!l.same_rate(rate(2.0, 1)));
        let t = Instant::now();
        assert!(l.check(&7, t).is_ok());
        assert!(l.check(&7, t).is_err());
    }

    #[test]
    fn the_map_stays_bounded() {
        let l = KeyedLimiter::<u32>::with_capacity(rate(1.0, 2), SHARDS * 4);
        let t0 = Instant::now();
        // many keys, each with a spent token: the shards fill, then get swept or cleared
        for k in 0..10_000u32 {
            let _ = l.check(&k, t0);
            assert!(l.len() <= SHARDS * 4, "{} buckets after key {k}", l.len());
        }
        // a key seen again within the bound keeps its (spent) bucket
        let l = KeyedLimiter::<u32>::with_capacity(rate(1.0, 1), SHARDS * 4);
        assert!(l.check(&1, t0).is_ok());
        assert!(l.check(&1, t0).is_err());
    }
}
