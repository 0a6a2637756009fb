//! Issue 17, `region-blackout`: which failures DNS caching explains. When a region's front door
//! is gone, clients can only follow DNS, so a failure is *explained* when it is a request of the
//! broken region's clients, on an answer for that region fetched before DNS moved, started while
//! that answer was still within its TTL (plus one request interval, as a caching client resolves
//! again at its next request). Anything else (another group, a fresh answer, a stale answer used
//! past its TTL) is unexplained. Pure: a function of [`Observations`].

use super::analyze::dns_moves;
use super::model::{Observations, Sample};
use super::scenario::secs;
use std::time::Duration;

/// How the failures after the fault split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TtlAccount {
    /// Failed requests started at or after the fault.
    pub failed: u64,
    /// Of those, explained by detection + the cached answer's TTL.
    pub explained: u64,
    /// The first unexplained one (start ms, group, error).
    pub first_unexplained: Option<(u64, String, String)>,
    /// Last explained failure, ms after the fault.
    pub last_explained_ms: Option<u64>,
}

/// Accounts for every failure after the fault of `clients`' (or anyone's) requests.
pub(crate) fn account(obs: &Observations, clients: &str) -> Option<(TtlAccount, u64, u32)> {
    let fault = obs.fault_ms()?;
    let mv = dns_moves(obs).into_iter().find(|m| m.group == clients)?;
    let moved_at = fault + mv.moved_after_ms?;
    let ttl_ms = u64::from(mv.ttl_s) * 1000 + obs.client_interval_ms + 100;
    let explained = |s: &Sample| {
        s.group == clients
            && s.dns_region.as_deref() == Some(mv.from_region.as_str())
            && s.resolved_ms
                .is_some_and(|r| r < moved_at && s.t_ms <= r + ttl_ms)
    };
    let mut acc = TtlAccount {
        failed: 0,
        explained: 0,
        first_unexplained: None,
        last_explained_ms: None,
    };
    for s in obs.samples.iter().filter(|s| !s.ok() && s.t_ms >= fault) {
        acc.failed += 1;
        if explained(s) {
            acc.explained += 1;
            acc.last_explained_ms = acc.last_explained_ms.max(Some(s.t_ms - fault));
        } else if acc.first_unexplained.as_ref().is_none_or(|f| s.t_ms < f.0) {
            acc.first_unexplained =
                Some((s.t_ms, s.group.clone(), s.error.clone().unwrap_or_default()));
        }
    }
    Some((acc, moved_at - fault, mv.ttl_s))
}

/// The verdict of `FailuresWithinTtl`: pass when every failure after the fault is explained.
pub(crate) fn judge(obs: &Observations, clients: &str) -> (bool, String) {
    let Some((acc, moved_ms, ttl_s)) = account(obs, clients) else {
        return (false, format!("DNS never moved {clients} clients"));
    };
    let ms = |v: u64| secs(Duration::from_millis(v));
    let why = format!(
        "{clients} clients on the old answer until DNS moved ({} after the fault) and their cached answer expired (TTL {ttl_s}s)",
        ms(moved_ms)
    );
    match &acc.first_unexplained {
        None => (
            true,
            format!(
                "{} failed after the fault, all explained: {why}{}",
                acc.failed,
                acc.last_explained_ms
                    .map(|t| format!("; the last started {} after the fault", ms(t)))
                    .unwrap_or_default()
            ),
        ),
        Some((t, group, err)) => (
            false,
            format!(
                "{} of {} failures not explained by DNS caching; first: {group} request at {} ({err})",
                acc.failed - acc.explained,
                acc.failed,
                ms(*t)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DnsAnswer, StepRun};

    fn sample(t: u64, group: &str, region: &str, resolved: u64, error: Option<&str>) -> Sample {
        Sample {
            t_ms: t,
            latency_ms: 1,
            group: group.into(),
            client: 0,
            dns_region: Some(region.into()),
            resolved_ms: Some(resolved),
            vip: None,
            status: error.is_none().then_some(200),
            error: error.map(str::to_string),
            instance: None,
            region: None,
            az: None,
        }
    }

    fn dns(t: u64, region: &str) -> DnsAnswer {
        DnsAnswer {
            t_ms: t,
            group: "us".into(),
            answers: vec![],
            region: Some(region.into()),
            ttl_s: 10,
            error: None,
        }
    }

    fn obs(samples: Vec<Sample>) -> Observations {
        Observations {
            duration_ms: 20_000,
            client_interval_ms: 200,
            samples,
            dns: vec![dns(0, "us-east"), dns(1_800, "eu-west")],
            steps: vec![StepRun {
                at_ms: 1000,
                t_ms: 1000,
                done_ms: 1001,
                label: "stop us-east-http".into(),
                instance: Some("us-east-http".into()),
                stop: true,
                start: false,
                fault: true,
                recover: false,
                error: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn failures_on_a_cached_answer_within_its_ttl_are_explained() {
        let o = obs(vec![
            sample(500, "us", "us-east", 0, None),
            sample(1_200, "us", "us-east", 900, Some("connect_refused")),
            // fetched just before the move, used until its TTL ran out
            sample(11_000, "us", "us-east", 1_700, Some("connect_refused")),
            sample(12_000, "us", "eu-west", 11_900, None),
        ]);
        let (pass, detail) = judge(&o, "us");
        assert!(pass, "{detail}");
        assert_eq!(
            detail,
            "2 failed after the fault, all explained: us clients on the old answer until DNS moved (0.80s after the fault) and their cached answer expired (TTL 10s); the last started 10.00s after the fault"
        );
    }

    #[test]
    fn a_failure_past_the_ttl_or_of_another_group_is_not() {
        let (pass, detail) = judge(
            &obs(vec![
                sample(1_200, "us", "us-east", 900, Some("reset")),
                // past TTL + one interval (+ 100 ms slack)
                sample(12_001, "us", "us-east", 1_700, Some("connect_refused")),
                sample(3_000, "eu", "eu-west", 2_900, Some("http_503")),
            ]),
            "us",
        );
        assert!(!pass);
        assert_eq!(
            detail,
            "2 of 3 failures not explained by DNS caching; first: eu request at 3.00s (http_503)"
        );
    }
}
