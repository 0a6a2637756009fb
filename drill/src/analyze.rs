//! The pure half of a drill: per-second timeline, traffic shares, error kinds, DNS moves, and each
//! expectation judged against what was observed. No I/O; everything is a function of
//! [`Observations`].

mod budget;

pub(crate) use budget::{failures, Failures};

use super::model::{Observations, Sample};
use super::scenario::{secs, Expectation, Served, Window};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Requests started in one second of the drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Bucket {
    pub second: u64,
    /// Successful requests by the AZ that served them (`?` when the answer did not say).
    pub ok: BTreeMap<String, u64>,
    /// Failed requests by the region DNS gave the client (`dns` when resolution failed).
    pub failed: BTreeMap<String, u64>,
}

/// Buckets samples by the second they started in; every second of the drill has a bucket.
pub(crate) fn timeline(obs: &Observations) -> Vec<Bucket> {
    let seconds = obs.duration_ms.div_ceil(1000).max(1);
    let mut out: Vec<Bucket> = (0..seconds)
        .map(|second| Bucket {
            second,
            ok: BTreeMap::new(),
            failed: BTreeMap::new(),
        })
        .collect();
    for s in &obs.samples {
        let i = ((s.t_ms / 1000) as usize).min(out.len() - 1);
        let b = &mut out[i];
        if s.ok() {
            *b.ok
                .entry(s.az.clone().unwrap_or_else(|| "?".into()))
                .or_default() += 1;
        } else {
            *b.failed
                .entry(s.dns_region.clone().unwrap_or_else(|| "dns".into()))
                .or_default() += 1;
        }
    }
    out
}

/// Share of successful requests per served region and AZ in one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Shares {
    pub phase: String,
    pub from_ms: u64,
    pub to_ms: u64,
    pub requests: u64,
    pub failed: u64,
    pub by_region: BTreeMap<String, f64>,
    pub by_az: BTreeMap<String, f64>,
}

fn shares_in(phase: &str, samples: &[Sample], from: u64, to: u64) -> Shares {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t_ms >= from && s.t_ms < to)
        .collect();
    let ok: Vec<&&Sample> = inside.iter().filter(|s| s.ok()).collect();
    let share = |key: fn(&Sample) -> Option<String>| {
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        for s in &ok {
            *m.entry(key(s).unwrap_or_else(|| "?".into())).or_default() += 1.0;
        }
        for v in m.values_mut() {
            *v /= ok.len() as f64;
        }
        m
    };
    Shares {
        phase: phase.into(),
        from_ms: from,
        to_ms: to,
        requests: inside.len() as u64,
        failed: (inside.len() - ok.len()) as u64,
        by_region: share(|s| s.region.clone()),
        by_az: share(|s| s.az.clone()),
    }
}

/// Traffic shares before the fault, during it, and after recovery.
pub(crate) fn shares(obs: &Observations) -> Vec<Shares> {
    let end = obs.duration_ms + 1;
    match obs.fault_ms() {
        None => vec![shares_in("all", &obs.samples, 0, end)],
        Some(f) => {
            let r = obs.recover_ms().max(f);
            vec![
                shares_in("before", &obs.samples, 0, f),
                shares_in("during", &obs.samples, f, r),
                shares_in("after", &obs.samples, r, end),
            ]
        }
    }
}

/// Failed requests by error kind.
pub(crate) fn errors_by_kind(obs: &Observations) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for e in obs.samples.iter().filter_map(|s| s.error.as_ref()) {
        *m.entry(e.clone()).or_default() += 1;
    }
    m
}

/// How DNS moved one client group away from the region it had before the fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DnsMove {
    pub group: String,
    pub from_region: String,
    pub to_region: Option<String>,
    /// DNS answer changed, after the fault.
    pub moved_after_ms: Option<u64>,
    /// TTL of the answer the clients held before (what bounds how long they keep using it).
    pub ttl_s: u32,
    /// Last request of the group to the old region after DNS moved, after the DNS move.
    pub followed_after_ms: Option<u64>,
}

/// For every group, whether and when DNS moved it after the fault.
pub(crate) fn dns_moves(obs: &Observations) -> Vec<DnsMove> {
    let Some(fault) = obs.fault_ms() else {
        return Vec::new();
    };
    let mut groups: Vec<&str> = obs.dns.iter().map(|d| d.group.as_str()).collect();
    groups.sort();
    groups.dedup();
    groups
        .into_iter()
        .filter_map(|g| {
            let before = obs
                .dns
                .iter()
                .rfind(|d| d.group == g && d.t_ms <= fault && d.error.is_none())?;
            let from = before.region.clone()?;
            let moved = obs.dns.iter().find(|d| {
                d.group == g
                    && d.t_ms > fault
                    && d.error.is_none()
                    && d.region.as_ref() != Some(&from)
            });
            // Stragglers: requests to the old region on an answer fetched before DNS moved.
            let followed_after_ms = moved.map(|m| {
                obs.samples
                    .iter()
                    .filter(|s| {
                        s.group == g
                            && s.t_ms >= m.t_ms
                            && s.dns_region.as_ref() == Some(&from)
                            && s.resolved_ms.is_some_and(|r| r < m.t_ms)
                    })
                    .map(|s| s.t_ms - m.t_ms)
                    .max()
                    .unwrap_or(0)
            });
            Some(DnsMove {
                group: g.to_string(),
                from_region: from,
                to_region: moved.and_then(|m| m.region.clone()),
                moved_after_ms: moved.map(|m| m.t_ms - fault),
                ttl_s: before.ttl_s,
                followed_after_ms,
            })
        })
        .collect()
}

/// An expectation and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Verdict {
    pub expectation: Expectation,
    pub description: String,
    pub pass: bool,
    /// What was measured.
    pub detail: String,
}

fn window_range(obs: &Observations, w: Window) -> Vec<(u64, u64)> {
    let end = u64::MAX;
    let fault = obs.fault_ms().unwrap_or(0);
    let recover = obs.recover_ms();
    match w {
        Window::All => vec![(0, end)],
        Window::BeforeFault => vec![(0, fault)],
        Window::Fault => vec![(fault, recover)],
        Window::AfterDetect => {
            vec![(obs.detection().map(|d| d.t_ms).unwrap_or(fault), end)]
        }
        Window::AfterRecover => vec![(recover, end)],
        Window::OutsideFault => vec![(0, fault), (recover, end)],
    }
}

fn ms(v: u64) -> String {
    secs(Duration::from_millis(v))
}

/// Judges every expectation.
pub(crate) fn evaluate(expect: &[Expectation], obs: &Observations) -> Vec<Verdict> {
    expect
        .iter()
        .map(|e| {
            let (pass, detail) = judge(e, obs);
            Verdict {
                expectation: e.clone(),
                description: e.describe(),
                pass,
                detail,
            }
        })
        .collect()
}

fn judge(e: &Expectation, obs: &Observations) -> (bool, String) {
    let fault = obs.fault_ms();
    match e {
        Expectation::MaxFailed { max, window } => {
            let ranges = window_range(obs, *window);
            // A request still in flight when the fault hit belongs to the fault, not to the
            // window that ends there (it may be reset by the very stop the drill performs).
            let fault_at = obs.fault_ms();
            let counts = |s: &&crate::model::Sample| {
                ranges.iter().any(|(a, b)| {
                    s.t_ms >= *a && s.t_ms < *b && !(Some(*b) == fault_at && s.end_ms() >= *b)
                })
            };
            let failed = obs
                .samples
                .iter()
                .filter(|s| !s.ok())
                .filter(counts)
                .count() as u64;
            let total = obs.samples.iter().filter(counts).count();
            (failed <= *max, format!("{failed} of {total} failed"))
        }
        Expectation::DetectWithin { within } => match (fault, obs.detection()) {
            (None, _) => (false, "no fault step".into()),
            (_, None) => (false, "no health change seen after the fault".into()),
            (Some(f), Some(d)) => {
                let took = d.t_ms - f;
                (
                    took <= within.as_millis() as u64,
                    format!("{} went {} after {}", d.name, d.to, ms(took)),
                )
            }
        },
        Expectation::LostAtMostInFlight => {
            let Some(f) = fault else {
                return (false, "no fault step".into());
            };
            let fault_step = obs.steps.iter().find(|s| s.fault);
            let f_done = fault_step.map(|s| s.done_ms).unwrap_or(f);
            let in_flight = obs
                .samples
                .iter()
                .filter(|s| s.t_ms <= f_done && s.end_ms() >= f)
                .count() as u64;
            let Some(d) = obs.detection() else {
                return (false, "no health change seen after the fault".into());
            };
            let lost = obs
                .samples
                .iter()
                .filter(|s| !s.ok() && s.end_ms() >= f && s.t_ms < d.t_ms)
                .count() as u64;
            let after = obs
                .samples
                .iter()
                .filter(|s| !s.ok() && s.t_ms >= d.t_ms)
                .count() as u64;
            (
                lost <= in_flight && after == 0,
                format!(
                    "{lost} lost before detection ({in_flight} in flight at the fault), {after} after detection"
                ),
            )
        }
        Expectation::MovedAway { target, within } => {
            let Some(f) = fault else {
                return (false, "no fault step".into());
            };
            let from = f + within.as_millis() as u64;
            let to = obs.recover_ms();
            let inside: Vec<&Sample> = obs
                .samples
                .iter()
                .filter(|s| s.t_ms >= from && s.t_ms < to)
                .collect();
            let served = inside.iter().filter(|s| served_by(s, target)).count();
            let failed = inside.iter().filter(|s| !s.ok()).count();
            (
                served == 0 && failed == 0 && !inside.is_empty(),
                format!(
                    "{} requests from {} to {}: {served} served by {}, {failed} failed",
                    inside.len(),
                    ms(from),
                    ms(to),
                    target.label()
                ),
            )
        }
        Expectation::DnsMoves { clients, within } => {
            match dns_moves(obs).into_iter().find(|m| &m.group == clients) {
                None => (
                    false,
                    format!("no DNS answer for {clients} clients before the fault"),
                ),
                Some(m) => match m.moved_after_ms {
                    None => (
                        false,
                        format!("DNS kept answering {} for {clients} clients", m.from_region),
                    ),
                    Some(t) => (
                        t <= within.as_millis() as u64,
                        format!(
                            "{} → {} after {} (TTL {}s)",
                            m.from_region,
                            m.to_region.as_deref().unwrap_or("nothing"),
                            ms(t),
                            m.ttl_s
                        ),
                    ),
                },
            }
        }
        Expectation::ClientsFollow { clients, within } => {
            match dns_moves(obs).into_iter().find(|m| &m.group == clients) {
                Some(DnsMove {
                    followed_after_ms: Some(t),
                    ttl_s,
                    from_region,
                    ..
                }) => {
                    // A caching client uses its answer up to TTL after fetching it, then resolves
                    // at its next request.
                    // through a resolver: its cache may hold the answer up to the record's TTL,
                    // counted down in whole seconds (+1 s of rounding)
                    let rounding = if obs.resolver { 1000 } else { 0 };
                    let bound = within.map(|w| w.as_millis() as u64).unwrap_or(
                        u64::from(ttl_s) * 1000 + obs.client_interval_ms + 100 + rounding,
                    );
                    (
                        t <= bound,
                        format!(
                            "last request to {from_region} {} after DNS moved (bound {}, TTL {ttl_s}s)",
                            ms(t),
                            ms(bound)
                        ),
                    )
                }
                _ => (false, format!("DNS never moved {clients} clients")),
            }
        }
        Expectation::FailuresWithinTtl { clients } => crate::ttl::judge(obs, clients),
        Expectation::FailureBudget { max } => budget::judge_budget(obs, *max),
        Expectation::Recovers { within } => budget::judge_recovers(obs, *within),
        Expectation::RestoredAsFound => budget::judge_restored(obs),
        Expectation::MaxHealthChanges { instance, max } => {
            if !obs.checked.contains(instance) {
                return (
                    false,
                    format!(
                        "{instance} is not actively health-checked by the node: nothing to damp"
                    ),
                );
            }
            // The active check is what rise/fall govern; overall health (which passive
            // ejection and admin levers also move) is reported alongside.
            let count = |field: &str| {
                obs.health
                    .iter()
                    .filter(|h| &h.name == instance && h.field == field && h.is_transition())
                    .count() as u32
            };
            let (changes, overall) = (count("active_check"), count("health"));
            let (bound, why) = match max {
                Some(m) => (*m, "configured".to_string()),
                None => match allowed_changes(obs, instance) {
                    Some((b, why)) => (b, why),
                    None => return (false, format!("no health check parameters for {instance}")),
                },
            };
            (
                changes <= bound,
                format!(
                    "{changes} active_check changes (at most {bound}: {why}); {overall} overall health changes"
                ),
            )
        }
    }
}

fn served_by(s: &Sample, target: &Served) -> bool {
    match target {
        Served::Region(r) => s.region.as_ref() == Some(r),
        Served::Az(a) => s.az.as_ref() == Some(a),
        Served::Instance(i) => s.instance.as_ref() == Some(i),
    }
}

/// How many health changes rise/fall allow for the outages the steps caused on `instance`: an
/// outage of length D can fail at most `floor((D + timeout) / (interval × (1 - jitter))) + 1`
/// checks (a check in flight when it begins fails too); only with `fall` of them can the instance
/// go down, and then come back up: two changes. Admin fail/restore steps count one each.
pub(crate) fn allowed_changes(obs: &Observations, instance: &str) -> Option<(u32, String)> {
    let p = obs.checks.get(instance)?;
    let min_gap = (p.interval_ms as f64 * (1.0 - p.jitter)).max(1.0);
    let mut allowed = 0;
    let mut outages = Vec::new();
    let mut down_since: Option<u64> = None;
    for s in obs
        .steps
        .iter()
        .filter(|s| s.instance.as_deref() == Some(instance))
    {
        if s.stop {
            down_since.get_or_insert(s.t_ms);
        } else if s.start {
            if let Some(t) = down_since.take() {
                outages.push(s.done_ms.saturating_sub(t));
            }
        } else {
            allowed += 1;
        }
    }
    if let Some(t) = down_since {
        outages.push(obs.duration_ms.saturating_sub(t));
    }
    let mut longest = 0;
    for d in &outages {
        let checks = ((*d + p.timeout_ms) as f64 / min_gap).floor() as u32 + 1;
        if checks >= p.fall {
            allowed += 2;
        }
        longest = longest.max(*d);
    }
    Some((
        allowed,
        format!(
            "{} outages, longest {}, fall {} × interval {}",
            outages.len(),
            ms(longest),
            p.fall,
            ms(p.interval_ms)
        ),
    ))
}

#[cfg(test)]
mod tests;
