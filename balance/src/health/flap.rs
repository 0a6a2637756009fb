//! The anti-flap state machine for active checks: `fall` consecutive failures take an up backend
//! down, `rise` consecutive successes bring a down backend up. Pure: no clock, no I/O.

/// A state change decided by [`Flap::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `rise` successes in a row while down.
    WentUp,
    /// `fall` failures in a row while up.
    WentDown,
}

/// Rise/fall counter for one backend. Starts up (optimistic) and unconfirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flap {
    up: bool,
    /// Consecutive results that disagree with the current state.
    streak: u32,
}

impl Default for Flap {
    fn default() -> Self {
        Flap {
            up: true,
            streak: 0,
        }
    }
}

impl Flap {
    /// A machine in the given state.
    pub fn new(up: bool) -> Self {
        Flap { up, streak: 0 }
    }
    /// The current verdict.
    pub fn is_up(&self) -> bool {
        self.up
    }
    /// Results in a row that disagree with the current state.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// Feeds one check result; returns the transition if the state changed.
    pub fn observe(&mut self, ok: bool, rise: u32, fall: u32) -> Option<Transition> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { fall } else { rise }.max(1);
        if self.streak < needed {
            return None;
        }
        self.up = ok;
        self.streak = 0;
        Some(if ok {
            Transition::WentUp
        } else {
            Transition::WentDown
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_then_rise() {
        let mut f = Flap::default();
        assert_eq!(f.observe(false, 2, 3), None);
        assert_eq!(f.observe(false, 2, 3), None);
        assert_eq!(f.observe(false, 2, 3), Some(Transition::WentDown));
        assert!(!f.is_up());
        assert_eq!(f.observe(true, 2, 3), None);
        assert_eq!(f.observe(true, 2, 3), Some(Transition::WentUp));
    }

    #[test]
    fn interrupted_streak_does_not_flap() {
        let mut f = Flap::default();
        for _ in 0..10 {
            assert_eq!(f.observe(false, 2, 3), None);
            assert_eq!(f.observe(false, 2, 3), None);
            assert_eq!(f.observe(true, 2, 3), None);
        }
        assert!(f.is_up());
        let mut d = Flap::new(false);
        for _ in 0..10 {
            assert_eq!(d.observe(true, 2, 3), None);
            assert_eq!(d.observe(false, 2, 3), None);
        }
        assert!(!d.is_up());
    }

    #[test]
    fn thresholds_of_zero_act_as_one() {
        let mut f = Flap::default();
        assert_eq!(f.observe(false, 0, 0), Some(Transition::WentDown));
        assert_eq!(f.observe(true, 0, 0), Some(Transition::WentUp));
    }
}
