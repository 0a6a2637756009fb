//! The gateway's monotonic clock for decisions that wait (JWKS refresh intervals): real time,
//! or real time plus an offset a test advances instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock. `Clock::default()` is real time; [`Clock::manual`] adds an offset that
/// [`Clock::advance`] moves forward (every clone shares it).
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// Real time plus an offset that starts at zero and moves only with [`Clock::advance`].
    pub fn manual() -> Clock {
        Clock(Some(Arc::new(AtomicU64::new(0))))
    }

    /// Now, by this clock.
    pub fn now(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(off) => Instant::now() + Duration::from_micros(off.load(Ordering::Acquire)),
        }
    }

    /// Move a manual clock forward (no effect on a real-time clock).
    pub fn advance(&self, by: Duration) {
        if let Some(off) = &self.0 {
            off.fetch_add(by.as_micros() as u64, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_when_told() {
        let c = Clock::manual();
        let shared = c.clone();
        let before = c.now();
        shared.advance(Duration::from_secs(3600));
        assert!(c.now() >= before + Duration::from_secs(3600));
        let real = Clock::default();
        real.advance(Duration::from_secs(3600));
        assert!(real.now() < Instant::now() + Duration::from_secs(1));
    }
}
