//! Region health through leases, decided without I/O.
//!
//! A node that runs a region's balancer publishes a [`RegionReport`] under its lease. A DNS node
//! forms its own verdict per region from the live reports and its own probes of the region's
//! VIP ([`verdict`]), publishes that verdict as an observer, and fails the region over only when
//! at least `quorum` observers (itself included) say it is down ([`fail_over`]).

use serde::{Deserialize, Serialize};

/// What a region's balancer node publishes about the region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionReport {
    /// The region reported on.
    pub region: String,
    /// The node that publishes the report.
    pub node: String,
    /// Healthy members over all the region's pools on that node.
    pub healthy: u32,
    /// The region's `min_healthy`.
    pub min_healthy: u32,
}

impl RegionReport {
    /// The publisher considers the region serviceable.
    pub fn up(&self) -> bool {
        self.healthy >= self.min_healthy.max(1)
    }
}

/// One observer's view of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The observer reaches the region.
    Up,
    /// The observer cannot reach the region.
    Down,
}

impl Verdict {
    /// The lowercase name stored in etcd.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Up => "up",
            Verdict::Down => "down",
        }
    }
}

/// A DNS node's verdict on a region from the live reports of its publishers (`None` when this
/// node cannot know them: not connected to etcd) and its own VIP probe (`None`: no probe).
///
/// - a live publisher that reports the region up wins: the region is up, whatever our probe says
///   (our own path to the VIP may be what is broken);
/// - live publishers that all report it down: down;
/// - no live publisher (its lease ended: the node died or was cut off) and the VIP fails our
///   probe: down; a VIP that still answers keeps the region up.
pub fn verdict(reports: Option<&[RegionReport]>, probe_up: Option<bool>) -> Verdict {
    match reports {
        Some(rs) if !rs.is_empty() => {
            if rs.iter().any(RegionReport::up) {
                Verdict::Up
            } else {
                Verdict::Down
            }
        }
        _ => match probe_up {
            Some(false) => Verdict::Down,
            _ => Verdict::Up,
        },
    }
}

/// Whether to fail a region over: our own verdict plus the other live observers' verdicts must
/// give at least `quorum` votes for down. With `quorum = 1` our own view decides.
pub fn fail_over(own: Verdict, others: &[Verdict], quorum: u32) -> bool {
    let down =
        usize::from(own == Verdict::Down) + others.iter().filter(|v| **v == Verdict::Down).count();
    own == Verdict::Down && down >= quorum.max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(healthy: u32) -> RegionReport {
        RegionReport {
            region: "us-east".into(),
            node: "n1".into(),
            healthy,
            min_healthy: 1,
        }
    }

    #[test]
    fn publishers_win_over_probes() {
        assert_eq!(verdict(Some(&[rep(2)]), Some(false)), Verdict::Up);
        assert_eq!(verdict(Some(&[rep(0)]), Some(true)), Verdict::Down);
        assert_eq!(verdict(Some(&[rep(0), rep(1)]), Some(false)), Verdict::Up);
    }

    #[test]
    fn without_publishers_the_probe_decides() {
        assert_eq!(verdict(Some(&[]), Some(false)), Verdict::Down);
        assert_eq!(verdict(Some(&[]), Some(true)), Verdict::Up);
        assert_eq!(verdict(None, Some(false)), Verdict::Down);
        assert_eq!(verdict(None, None), Verdict::Up);
        assert_eq!(verdict(Some(&[]), None), Verdict::Up);
    }

    #[test]
    fn quorum_counts_down_votes_including_ours() {
        use Verdict::*;
        assert!(fail_over(Down, &[], 1));
        assert!(!fail_over(Down, &[], 2));
        assert!(fail_over(Down, &[Down], 2));
        assert!(!fail_over(Down, &[Up], 2));
        assert!(
            !fail_over(Up, &[Down, Down], 2),
            "we never fail what we see up"
        );
        assert!(!fail_over(Up, &[], 1));
    }
}
