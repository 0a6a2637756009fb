//! Verdicts that explain themselves: which failed requests the fault explains (detection of what
//! broke, then the time clients need to follow: one request interval, or the DNS TTL when DNS
//! moved them), the "after" phase (traffic back to its pre-fault shape), and whether the node was
//! left as found. Pure functions of [`Observations`].

use super::{dns_moves, ms};
use crate::model::{Observations, Sample};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Slack for a request that started just as the explained time ended (clock granularity of the
/// watchers: one `/status` poll).
const SLACK_MS: u64 = 100;

/// The time after the fault inside which failures are explained, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Explained {
    /// Explained spans `[from, to)` in ms since the start (one per stop or fail step).
    pub spans: Vec<(u64, u64)>,
    /// The fault's explained time: detection + follow (the first span's length).
    pub detect_ms: u64,
    /// What was detected last, e.g. `order-us-east-a` (None: nothing broken was detected).
    pub detected_last: Option<String>,
    /// Instances whose breaking explains failures.
    pub broken: usize,
    /// DNS TTL that clients had to wait out (None: DNS did not move anyone).
    pub ttl_s: Option<u32>,
    /// A resolver's rounding of the TTL (1 s through a resolver, else 0).
    pub rounding_ms: u64,
    pub interval_ms: u64,
}

impl Explained {
    /// The length of the fault's explanation, `detection + TTL + interval`.
    pub(crate) fn window_ms(&self) -> u64 {
        self.detect_ms + self.follow_ms()
    }

    fn follow_ms(&self) -> u64 {
        self.ttl_s
            .map_or(0, |t| u64::from(t) * 1000 + self.rounding_ms)
            + self.interval_ms
    }

    fn covers(&self, s: &Sample) -> bool {
        self.spans
            .iter()
            .any(|(a, b)| s.end_ms() >= *a && s.t_ms < b + SLACK_MS)
    }

    /// `detection 1.80s (order-us-east-a, the last of 16) + DNS TTL 10s + one request interval 0.20s`.
    pub(crate) fn why(&self) -> String {
        let mut parts = vec![match &self.detected_last {
            Some(n) if self.broken > 1 => format!(
                "detection {} ({n}, the last of {} broken)",
                ms(self.detect_ms),
                self.broken
            ),
            Some(n) => format!("detection {} ({n})", ms(self.detect_ms)),
            None => format!("outage {} (nothing detected)", ms(self.detect_ms)),
        }];
        if let Some(t) = self.ttl_s {
            parts.push(format!("DNS TTL {t}s"));
            if self.rounding_ms > 0 {
                parts.push(format!("resolver rounding {}", ms(self.rounding_ms)));
            }
        }
        parts.push(format!("one request interval {}", ms(self.interval_ms)));
        parts.join(" + ")
    }
}

/// When `name` was first seen down at or after `from` (the drill's detection of it).
fn detected(obs: &Observations, name: &str, from: u64) -> Option<u64> {
    obs.health
        .iter()
        .filter(|h| h.name == name && h.field == "health" && h.to == "down" && h.t_ms >= from)
        .map(|h| h.t_ms)
        .min()
}

/// What the steps broke and how long that explains failures.
pub(crate) fn explained(obs: &Observations) -> Explained {
    let moved = dns_moves(obs)
        .into_iter()
        .filter(|m| m.moved_after_ms.is_some())
        .map(|m| m.ttl_s)
        .max();
    let interval = obs.client_interval_ms;
    let rounding = if obs.resolver { 1000 } else { 0 };
    let follow = moved.map_or(0, |t| u64::from(t) * 1000 + rounding) + interval;
    let mut spans = Vec::new();
    let mut last: Option<(u64, String)> = None;
    let mut broken = 0;
    for (i, st) in obs.steps.iter().enumerate() {
        let failed_by_operator = !st.stop && !st.start && st.label.starts_with("fail ");
        if !st.stop && !failed_by_operator {
            continue;
        }
        broken += 1;
        let name = st.instance.clone().unwrap_or_else(|| st.label.clone());
        // detection of what this step broke; a fail lever is known at once; an instance never
        // seen down (damped, or not checked) is explained only while it was down
        let back = obs.steps[i + 1..]
            .iter()
            .find(|s| s.start && s.instance == st.instance)
            .map(|s| s.done_ms);
        let seen = if failed_by_operator {
            Some(st.done_ms)
        } else {
            st.instance
                .as_deref()
                .and_then(|n| detected(obs, n, st.t_ms))
                .filter(|t| back.is_none_or(|b| *t <= b + SLACK_MS))
        };
        let until = seen.or(back).unwrap_or(st.done_ms);
        let took = until.saturating_sub(st.t_ms);
        if seen.is_some() && last.as_ref().is_none_or(|(t, _)| took > *t) {
            last = Some((took, name));
        }
        spans.push((st.t_ms, until + follow));
    }
    let detect_ms = match &last {
        Some((t, _)) => *t,
        None => spans
            .iter()
            .map(|(a, b)| (b - a).saturating_sub(follow))
            .max()
            .unwrap_or(0),
    };
    Explained {
        spans,
        detect_ms,
        detected_last: last.map(|(_, n)| n),
        broken,
        ttl_s: moved,
        rounding_ms: rounding,
        interval_ms: interval,
    }
}

/// Failed requests inside and outside the fault window, and the explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Failures {
    /// Failed requests whose life overlaps the fault window.
    pub inside: u64,
    /// Of those, the ones the fault does not explain.
    pub unexplained: u64,
    /// The first unexplained one's start, ms since the start.
    pub first_unexplained_ms: Option<u64>,
    /// Failed requests before the fault or after recovery.
    pub outside: u64,
    pub total_requests: u64,
    /// The budget: the configured maximum, else the rate × the explained time.
    pub budget: u64,
    pub explained: Explained,
}

/// Counts failures against the explanation; `max` overrides the derived budget.
pub(crate) fn failures(obs: &Observations, max: Option<u64>) -> Option<Failures> {
    let fault = obs.fault_ms()?;
    // a request refused while the recovery step was still being carried out belongs to the fault
    let recover = obs
        .steps
        .iter()
        .find(|s| s.recover)
        .map_or(obs.recover_ms(), |s| s.done_ms + SLACK_MS);
    let ex = explained(obs);
    let failed: Vec<&Sample> = obs.samples.iter().filter(|s| !s.ok()).collect();
    let inside: Vec<&&Sample> = failed
        .iter()
        .filter(|s| s.end_ms() >= fault && s.t_ms < recover)
        .collect();
    let unexplained: Vec<&&&Sample> = inside.iter().filter(|s| !ex.covers(s)).collect();
    // the union of the explained spans, for the derived budget
    let mut spans = ex.spans.clone();
    spans.sort_unstable();
    let mut covered = 0u64;
    let mut end = 0u64;
    for (a, b) in spans {
        let a = a.max(end);
        if b > a {
            covered += b - a;
            end = b;
        }
    }
    let budget = max.unwrap_or_else(|| {
        (u64::from(obs.rate) * covered)
            .div_ceil(1000)
            .max(u64::from(!ex.spans.is_empty()))
    });
    Some(Failures {
        inside: inside.len() as u64,
        unexplained: unexplained.len() as u64,
        first_unexplained_ms: unexplained.iter().map(|s| s.t_ms).min(),
        outside: (failed.len() - inside.len()) as u64,
        total_requests: obs.samples.len() as u64,
        budget,
        explained: ex,
    })
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "0 %".into()
    } else {
        format!("{:.0} %", n as f64 * 100.0 / of as f64)
    }
}

/// The `failure_budget` verdict.
pub(crate) fn judge_budget(obs: &Observations, max: Option<u64>) -> (bool, String) {
    let Some(f) = failures(obs, max) else {
        return (false, "no fault step".into());
    };
    let ex = &f.explained;
    let knob = if ex.ttl_s.is_some() {
        "shrink it with a lower GSLB ttl or faster checks (interval × fall)"
    } else {
        "shrink it with faster checks (interval × fall) or passive ejection"
    };
    let head = format!(
        "{} failed requests ({} of {}) during the fault",
        f.inside,
        pct(f.inside, f.total_requests),
        f.total_requests
    );
    let outside = format!("{} outside the fault window", f.outside);
    if f.inside == 0 {
        return (
            true,
            format!("no failed request during the fault; {outside}"),
        );
    }
    if f.unexplained > 0 {
        let first = f.first_unexplained_ms.unwrap_or(0);
        let fault = obs.fault_ms().unwrap_or(0);
        return (
            false,
            format!(
                "{head}: {} not explained, the first at {} ({} after the fault, beyond {} = {}); {outside}",
                f.unexplained,
                ms(first),
                ms(first.saturating_sub(fault)),
                ms(ex.window_ms()),
                ex.why()
            ),
        );
    }
    if f.inside > f.budget {
        return (
            false,
            format!(
                "{head}: more than the budget of {} (rate {}/s × the explained time); {outside}",
                f.budget, obs.rate
            ),
        );
    }
    (
        true,
        format!(
            "{head}, all within {} of what broke = {}; budget {}; {outside}; {knob}",
            ms(ex.window_ms()),
            ex.why(),
            f.budget
        ),
    )
}

/// The `recovers` verdict: the "after" phase.
pub(crate) fn judge_recovers(obs: &Observations, within: Option<Duration>) -> (bool, String) {
    let Some(fault) = obs.fault_ms() else {
        return (false, "no fault step".into());
    };
    let Some(recover) = obs.steps.iter().find(|s| s.recover).map(|s| s.t_ms) else {
        return (false, "no recovery step".into());
    };
    let from = recover + within.map_or(0, |w| w.as_millis() as u64);
    let to = obs.duration_ms;
    let before: Vec<&Sample> = obs
        .samples
        .iter()
        .filter(|s| s.ok() && s.end_ms() < fault)
        .collect();
    let after: Vec<&Sample> = obs.samples.iter().filter(|s| s.t_ms >= from).collect();
    if after.is_empty() {
        return (
            false,
            format!(
                "no request from {} (recovery + {}) to the end at {}: the drill ended too soon to see it; raise --duration",
                ms(from),
                ms(from - recover),
                ms(to)
            ),
        );
    }
    let count = |set: &[&Sample], key: fn(&Sample) -> Option<&String>| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for s in set.iter().filter(|s| s.ok()) {
            if let Some(k) = key(s) {
                *m.entry(k.clone()).or_default() += 1;
            }
        }
        m
    };
    let (az_before, az_after) = (
        count(&before, |s| s.az.as_ref()),
        count(&after, |s| s.az.as_ref()),
    );
    let (in_before, in_after) = (
        count(&before, |s| s.instance.as_ref()),
        count(&after, |s| s.instance.as_ref()),
    );
    let failed = after.iter().filter(|s| !s.ok()).count();
    let mut dark: Vec<String> = Vec::new();
    for (what, b, a) in [
        ("AZ", &az_before, &az_after),
        ("instance", &in_before, &in_after),
    ] {
        for (name, n) in b {
            if !a.contains_key(name) {
                dark.push(format!(
                    "{what} {name} served nothing (it served {} before the fault)",
                    pct(*n, before.len() as u64)
                ));
            }
        }
    }
    let window = format!("{} requests from {} to {}", after.len(), ms(from), ms(to));
    if !dark.is_empty() || failed > 0 {
        let mut why = dark;
        if failed > 0 {
            why.push(format!("{failed} failed"));
        }
        return (false, format!("{window}: {}", why.join("; ")));
    }
    let shares: Vec<String> = az_after
        .iter()
        .map(|(k, v)| format!("{k} {}", pct(*v, after.len() as u64)))
        .collect();
    (
        true,
        format!(
            "{window}: every AZ and instance that served before serves again ({}), none failed",
            shares.join(", ")
        ),
    )
}

/// The `restored_as_found` verdict.
pub(crate) fn judge_restored(obs: &Observations) -> (bool, String) {
    let Some(r) = &obs.restore else {
        return (
            false,
            "the node's state after the drill was not checked".into(),
        );
    };
    let lifted = if r.lifted.is_empty() {
        String::new()
    } else {
        format!("; passive ejection lifted: {}", r.lifted.join(", "))
    };
    if r.differences.is_empty() {
        (
            true,
            format!(
                "/status as before the drill after {}{lifted}",
                ms(r.waited_ms)
            ),
        )
    } else {
        (
            false,
            format!(
                "after {}: {}{lifted}",
                ms(r.waited_ms),
                r.differences.join("; ")
            ),
        )
    }
}
