//! Per-client rate limiting in two stages ([`Limiters`]): by client address before
//! authentication, by subject after it. The buckets and the bounded, sharded keyed map are
//! `switchyard-net`'s (shared with the L4 balancer's per-source limits); keys are typed (an
//! address, a subject), so a lookup formats nothing and allocates only for a new key.

use std::net::IpAddr;
use std::time::Instant;

use switchyard_net::limit::{retry_after_secs, KeyedLimiter, Rate};

use crate::spec::RateSpec;

/// The two stages of per-client limiting (one rate for both).
pub struct Limiters {
    /// Before authentication, by client address: charged for requests without a verified
    /// token (anonymous or rejected), consulted (not charged) before any signature check, so
    /// a client sending bad tokens is refused (429) without costing a verification.
    by_addr: KeyedLimiter<IpAddr>,
    /// After authentication, by token subject.
    by_sub: KeyedLimiter<String>,
}

impl Limiters {
    /// Both stages at `rate`.
    pub fn new(rate: RateSpec) -> Limiters {
        let rate = Rate {
            per_second: rate.per_second,
            burst: rate.burst,
        };
        Limiters {
            by_addr: KeyedLimiter::new(rate),
            by_sub: KeyedLimiter::new(rate),
        }
    }

    /// Stage 1 gate: `Err(retry_after_secs)` when `addr`'s bucket is empty (nothing taken).
    pub fn admit_client(&self, addr: IpAddr, now: Instant) -> Result<(), u64> {
        self.by_addr.peek(&addr, now).map_err(retry_after_secs)
    }

    /// Charge a request without a verified token to its client address.
    pub fn charge_client(&self, addr: IpAddr, now: Instant) -> Result<(), u64> {
        self.by_addr.check(&addr, now).map_err(retry_after_secs)
    }

    /// Charge a verified request to its subject.
    pub fn charge_subject(&self, sub: &str, now: Instant) -> Result<(), u64> {
        self.by_sub.check(sub, now).map_err(retry_after_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bad_tokens_empty_the_address_bucket_and_subjects_keep_their_own() {
        let l = Limiters::new(RateSpec {
            per_second: 1.0,
            burst: 2,
        });
        let (a, t) = (IpAddr::from([192, 0, 2, 1]), Instant::now());
        for _ in 0..5 {
            assert_eq!(l.admit_client(a, t), Ok(()), "peeking takes nothing");
        }
        assert_eq!(l.charge_client(a, t), Ok(()));
        assert_eq!(l.charge_client(a, t), Ok(()));
        assert_eq!(l.admit_client(a, t), Err(1));
        assert_eq!(l.admit_client(a, t + Duration::from_secs(1)), Ok(()));
        assert_eq!(l.charge_subject("alice", t), Ok(()));
        assert_eq!(l.charge_subject("alice", t), Ok(()));
        assert_eq!(l.charge_subject("alice", t), Err(1));
        assert_eq!(l.charge_subject("bob", t), Ok(()));
    }
}
