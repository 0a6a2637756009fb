//! # switchyard-testkit: helpers the test suites share (a dev-dependency only)
//!
//! ## Layout
//! - [`eventually`] / [`eventually_blocking`]: poll a condition until it holds or a deadline
//!   passes (the one poll-until helper; suites wrap it with their own failure messages);
//! - [`http`]: one HTTP/1.1 request over a real socket and a small response reader
//!   (chunked bodies included), for end-to-end tests;
//! - [`Rng`]: a seeded generator for property tests, so a failure replays exactly.

pub mod http;

use std::future::Future;
use std::time::{Duration, Instant};

/// How often the condition is polled.
const EVERY: Duration = Duration::from_millis(10);

/// Polls `f` every 10 ms until it returns true or `within` passes; returns the time it took,
/// or `None` when it never held. `f` is tried once more at the deadline.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// [`eventually`] for tests without a runtime: sleeps the thread between polls.
pub fn eventually_blocking(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_when_the_condition_holds_and_gives_up_at_the_deadline() {
        let mut n = 0;
        let took = eventually(Duration::from_secs(5), || {
            n += 1;
            std::future::ready(n == 3)
        })
        .await;
        assert!(took.is_some_and(|d| d < Duration::from_secs(5)));
        assert_eq!(n, 3);
        let t0 = Instant::now();
        assert_eq!(
            eventually(Duration::from_millis(30), || std::future::ready(false)).await,
            None
        );
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn the_blocking_twin_behaves_the_same() {
        let mut n = 0;
        assert!(eventually_blocking(Duration::from_secs(5), || {
            n += 1;
            n == 2
        })
        .is_some());
        assert_eq!(
            eventually_blocking(Duration::from_millis(20), || false),
            None
        );
    }
}

/// xorshift64*: a small seeded generator for bounded property tests (a failure replays exactly,
/// with no extra crate).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 0
    }
}
