//! The drill report: built from the observations (pure), printed as a table, written as JSON.

use super::analyze::{self, Bucket, DnsMove, Failures, Shares, Verdict};
use super::model::{DnsAnswer, HealthChange, Observations, Restore, Sample, StepRun};
use super::scenario::Expectation;
use super::scenario::{secs, Scenario};
use super::svg;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

/// Latency percentiles of successful requests, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Latency {
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// Everything the drill found, in the JSON file's shape (field names are stable).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub scenario: Scenario,
    pub target: String,
    pub dns: String,
    pub duration_ms: u64,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub latency: Option<Latency>,
    pub steps: Vec<StepRun>,
    pub timeline: Vec<Bucket>,
    pub time_to_detect_ms: Option<u64>,
    pub detected: Option<HealthChange>,
    pub dns_moves: Vec<DnsMove>,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Failed requests during the fault and outside it, and what explains them.
    pub failures: Option<Failures>,
    /// The node's state after the drill undid its steps.
    pub restore: Option<Restore>,
    pub shares: Vec<Shares>,
    pub expectations: Vec<Verdict>,
    pub pass: bool,
    pub health_changes: Vec<HealthChange>,
    pub dns_answers: Vec<DnsAnswer>,
    pub status_poll_errors: u32,
    pub samples: Vec<Sample>,
}

fn latency(samples: &[Sample]) -> Option<Latency> {
    let mut l: Vec<u64> = samples
        .iter()
        .filter(|s| s.ok())
        .map(|s| s.latency_ms)
        .collect();
    if l.is_empty() {
        return None;
    }
    l.sort_unstable();
    let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
    Some(Latency {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: l[l.len() - 1],
    })
}

impl Report {
    /// Builds the report; pure.
    pub(crate) fn build(
        scenario: Scenario,
        target: String,
        dns: String,
        obs: Observations,
        status_poll_errors: u32,
    ) -> Report {
        let expectations = analyze::evaluate(&scenario.expect, &obs);
        let budget = scenario.expect.iter().find_map(|e| match e {
            Expectation::FailureBudget { max } => *max,
            _ => None,
        });
        let detected = obs.detection().cloned();
        let fault = obs.fault_ms();
        let ok = obs.samples.iter().filter(|s| s.ok()).count() as u64;
        Report {
            target,
            dns,
            duration_ms: obs.duration_ms,
            requests: obs.samples.len() as u64,
            ok,
            failed: obs.samples.len() as u64 - ok,
            latency: latency(&obs.samples),
            timeline: analyze::timeline(&obs),
            time_to_detect_ms: detected
                .as_ref()
                .zip(fault)
                .map(|(d, f)| d.t_ms.saturating_sub(f)),
            detected,
            dns_moves: analyze::dns_moves(&obs),
            errors_by_kind: analyze::errors_by_kind(&obs),
            failures: analyze::failures(&obs, budget),
            restore: obs.restore.clone(),
            shares: analyze::shares(&obs),
            pass: expectations.iter().all(|v| v.pass),
            expectations,
            steps: obs.steps,
            health_changes: obs.health,
            dns_answers: obs.dns,
            status_poll_errors,
            samples: obs.samples,
            scenario,
        }
    }

    /// The human table.
    pub(crate) fn render(&self) -> String {
        let ms = |v: u64| secs(Duration::from_millis(v));
        let mut o = String::new();
        let _ = writeln!(
            o,
            "drill {}: {}",
            self.scenario.name, self.scenario.description
        );
        let _ = writeln!(
            o,
            "  target {}  dns {}  {} requests/s for {}",
            self.target,
            self.dns,
            self.scenario.rate,
            ms(self.duration_ms)
        );
        let _ = writeln!(o, "\nsteps");
        for s in &self.steps {
            let mark = match (s.fault, s.recover) {
                (true, _) => "  <- fault",
                (_, true) => "  <- recovery",
                _ => "",
            };
            let err = s
                .error
                .as_ref()
                .map(|e| format!("  FAILED: {e}"))
                .unwrap_or_default();
            let _ = writeln!(o, "  {:>7}  {}{mark}{err}", ms(s.t_ms), s.label);
        }
        // Timeline.
        let azs: BTreeSet<&String> = self.timeline.iter().flat_map(|b| b.ok.keys()).collect();
        let failed: BTreeSet<&String> =
            self.timeline.iter().flat_map(|b| b.failed.keys()).collect();
        let _ = writeln!(
            o,
            "\ntimeline (requests started per second: ok by serving AZ | failed by DNS region)"
        );
        let mut header = String::from("   sec");
        for a in &azs {
            let _ = write!(header, " {:>10}", short(a));
        }
        header.push_str(" |");
        for r in &failed {
            let _ = write!(header, " {:>10}", format!("x {}", short(r)));
        }
        let _ = writeln!(o, "{header}");
        for b in &self.timeline {
            let mut line = format!("  {:>4}", b.second);
            for a in &azs {
                let _ = write!(line, " {:>10}", b.ok.get(*a).copied().unwrap_or(0));
            }
            line.push_str(" |");
            for r in &failed {
                let _ = write!(line, " {:>10}", b.failed.get(*r).copied().unwrap_or(0));
            }
            let marks: Vec<&str> = self
                .steps
                .iter()
                .filter(|s| s.t_ms / 1000 == b.second && (s.fault || s.recover))
                .map(|s| if s.fault { "fault" } else { "recovery" })
                .collect();
            if !marks.is_empty() {
                let _ = write!(line, "   <- {}", marks.join(", "));
            }
            let _ = writeln!(o, "{line}");
        }
        let _ = writeln!(o);
        match (&self.detected, self.time_to_detect_ms) {
            (Some(d), Some(t)) => {
                let _ = writeln!(
                    o,
                    "time to detect      {} ({} {} {} -> {})",
                    ms(t),
                    d.name,
                    d.field,
                    d.from,
                    d.to
                );
            }
            _ => {
                let _ = writeln!(
                    o,
                    "time to detect      no health change seen after the fault"
                );
            }
        }
        for m in &self.dns_moves {
            match (m.moved_after_ms, &m.to_region) {
                (Some(t), to) => {
                    let follow = m
                        .followed_after_ms
                        .map(|f| format!("; clients followed {} later", ms(f)))
                        .unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "dns {:<16}{} -> {} {} after the fault (TTL {}s bounds the move){follow}",
                        m.group,
                        m.from_region,
                        to.as_deref().unwrap_or("no answer"),
                        ms(t),
                        m.ttl_s
                    );
                }
                (None, _) => {
                    let _ = writeln!(
                        o,
                        "dns {:<16}stayed on {} (TTL {}s)",
                        m.group, m.from_region, m.ttl_s
                    );
                }
            }
        }
        let _ = writeln!(
            o,
            "requests            {} sent, {} ok, {} failed{}",
            self.requests,
            self.ok,
            self.failed,
            self.latency
                .as_ref()
                .map(|l| format!(
                    "; latency p50 {}ms p99 {}ms max {}ms",
                    l.p50_ms, l.p99_ms, l.max_ms
                ))
                .unwrap_or_default()
        );
        if let Some(f) = &self.failures {
            let why = if f.inside == 0 {
                String::new()
            } else if f.unexplained == 0 {
                format!(
                    ", all within {} of what broke = {}",
                    ms(f.explained.window_ms()),
                    f.explained.why()
                )
            } else {
                format!(
                    ", {} of them NOT explained by {} = {}",
                    f.unexplained,
                    ms(f.explained.window_ms()),
                    f.explained.why()
                )
            };
            let _ = writeln!(
                o,
                "failed requests     {} during the fault{why}; {} outside it",
                f.inside, f.outside
            );
        }
        if let Some(r) = &self.restore {
            let lifted = if r.lifted.is_empty() {
                String::new()
            } else {
                format!(" (lifted passive ejection: {})", r.lifted.join(", "))
            };
            let _ = writeln!(
                o,
                "left as found       {} after {}{lifted}",
                if r.differences.is_empty() {
                    "yes".to_string()
                } else {
                    format!("NO: {}", r.differences.join("; "))
                },
                ms(r.waited_ms)
            );
        }
        if !self.errors_by_kind.is_empty() {
            let list: Vec<String> = self
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(o, "client errors       {}", list.join(", "));
        }
        let _ = writeln!(o, "\ntraffic shares (successful requests by serving AZ)");
        for s in &self.shares {
            let list: Vec<String> = s
                .by_az
                .iter()
                .map(|(k, v)| format!("{k} {:.0}%", v * 100.0))
                .collect();
            let _ = writeln!(
                o,
                "  {:<7} {:>7}-{:<7} {:>4} req {:>3} failed  {}",
                s.phase,
                ms(s.from_ms),
                ms(s.to_ms.min(self.duration_ms)),
                s.requests,
                s.failed,
                list.join("  ")
            );
        }
        let _ = writeln!(o, "\nexpectations");
        for v in &self.expectations {
            let _ = writeln!(
                o,
                "  {}  {}: {}",
                if v.pass { "PASS" } else { "FAIL" },
                v.description,
                v.detail
            );
        }
        if self.expectations.is_empty() {
            let _ = writeln!(o, "  (none)");
        }
        if self.status_poll_errors > 0 {
            let _ = writeln!(
                o,
                "note: {} /status polls failed (health timing may be coarser)",
                self.status_poll_errors
            );
        }
        let passed = self.expectations.iter().filter(|v| v.pass).count();
        let _ = writeln!(
            o,
            "\nresult: {} ({passed}/{} expectations hold)",
            if self.pass { "PASS" } else { "FAIL" },
            self.expectations.len()
        );
        o
    }
}

impl Report {
    /// What the chart marks: the steps (fault and recovery named), when the fault was detected,
    /// when DNS moved each client group and when those clients followed.
    pub(crate) fn chart_events(&self) -> Vec<svg::Event> {
        let mut v = svg::step_events(&self.steps);
        let fault = self.steps.iter().find(|s| s.fault).map(|s| s.t_ms);
        if let (Some(d), Some(f), Some(t)) = (&self.detected, fault, self.time_to_detect_ms) {
            v.push(svg::Event {
                t_ms: f + t,
                kind: svg::Kind::Detected,
                label: format!(
                    "detected: {} {} after {}",
                    d.name,
                    d.to,
                    secs(Duration::from_millis(t))
                ),
                error: false,
            });
        }
        for m in &self.dns_moves {
            let (Some(f), Some(moved)) = (fault, m.moved_after_ms) else {
                continue;
            };
            v.push(svg::Event {
                t_ms: f + moved,
                kind: svg::Kind::DnsMoved,
                label: format!(
                    "DNS moved {} clients to {} (TTL {}s)",
                    m.group,
                    m.to_region.as_deref().unwrap_or("nothing"),
                    m.ttl_s
                ),
                error: false,
            });
            if let Some(after) = m.followed_after_ms {
                v.push(svg::Event {
                    t_ms: f + moved + after,
                    kind: svg::Kind::ClientsFollowed,
                    label: format!("{} clients followed", m.group),
                    error: false,
                });
            }
        }
        v
    }
}

/// Column label: long names are cut from the left (the AZ suffix is what differs).
fn short(s: &str) -> String {
    let n = s.chars().count();
    if n <= 10 {
        s.to_string()
    } else {
        s.chars().skip(n - 10).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;

    #[test]
    fn report_renders_and_serializes() {
        let scenario = builtin::scenario("planned-drain", &switchyard_config::demo_world())
            .unwrap()
            .unwrap();
        let mut obs = Observations {
            duration_ms: 2500,
            client_interval_ms: 200,
            ..Default::default()
        };
        for t in (0..2500).step_by(100) {
            obs.samples.push(Sample {
                t_ms: t,
                latency_ms: 3 + t % 7,
                group: "us".into(),
                client: 0,
                dns_region: Some("us-east".into()),
                resolved_ms: None,
                vip: None,
                status: Some(200),
                error: (t == 1200).then(|| "reset".to_string()),
                instance: None,
                region: Some("us-east".into()),
                az: Some(if t < 1000 { "us-east-a" } else { "us-east-b" }.into()),
            });
        }
        obs.steps.push(StepRun {
            at_ms: 1000,
            t_ms: 1001,
            done_ms: 1002,
            label: "drain az us-east-a".into(),
            instance: None,
            stop: false,
            start: false,
            fault: true,
            recover: false,
            error: None,
        });
        let r = Report::build(scenario, "http://x".into(), "127.0.0.1:8053".into(), obs, 0);
        assert!(!r.pass);
        assert_eq!((r.requests, r.ok, r.failed), (25, 24, 1));
        assert_eq!(r.latency.as_ref().unwrap().max_ms, 9);
        let text = r.render();
        assert!(
            text.contains("   sec  us-east-a  us-east-b |  x us-east\n"),
            "{text}"
        );
        assert!(
            text.contains("     1          0          9 |          1   <- fault\n"),
            "{text}"
        );
        assert!(text.contains("  FAIL  at most 0 failed requests (window all): 1 of 25 failed\n"));
        assert!(text.contains("client errors       reset 1\n"));
        assert!(text
            .contains("  PASS  at most 0 failed requests (window before_fault): 0 of 10 failed\n"));
        assert!(
            text.ends_with("result: FAIL (1/2 expectations hold)\n"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["scenario"]["steps"][0]["action"], "admin");
        assert_eq!(v["timeline"][1]["failed"]["us-east"], 1);
        assert_eq!(v["expectations"][0]["expectation"]["kind"], "max_failed");
        assert_eq!(v["pass"], false);
    }
}
