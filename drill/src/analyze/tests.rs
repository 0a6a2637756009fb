//! Tests of `analyze`.

use super::*;
use crate::model::{CheckParams, DnsAnswer, HealthChange, StepRun};

fn sample(t: u64, group: &str, dns: &str, az: Option<&str>) -> Sample {
    Sample {
        t_ms: t,
        latency_ms: 5,
        group: group.into(),
        client: 0,
        dns_region: Some(dns.into()),
        resolved_ms: Some(t.saturating_sub(t % 2000)),
        vip: None,
        status: az.map(|_| 200),
        error: if az.is_some() {
            None
        } else {
            Some("connect_refused".into())
        },
        instance: az.map(|a| format!("user-{a}")),
        region: az.map(|a| a[..a.len() - 2].to_string()),
        az: az.map(str::to_string),
    }
}

fn step(t: u64, label: &str, fault: bool, recover: bool) -> StepRun {
    StepRun {
        at_ms: t,
        t_ms: t,
        done_ms: t + 2,
        label: label.into(),
        instance: None,
        stop: false,
        start: false,
        fault,
        recover,
        error: None,
    }
}

fn change(t: u64, name: &str, field: &str, from: &str, to: &str) -> HealthChange {
    HealthChange {
        t_ms: t,
        name: name.into(),
        field: field.into(),
        from: from.into(),
        to: to.into(),
    }
}

/// An AZ outage at 1s detected at 1.8s; us-east-a serves until then, one refused request.
fn az_outage() -> Observations {
    let mut samples = Vec::new();
    for i in 0..30u64 {
        let t = i * 100;
        let az = if t < 1800 && i % 2 == 0 {
            "us-east-a"
        } else {
            "us-east-b"
        };
        samples.push(sample(t, "us", "us-east", Some(az)));
    }
    samples.push(sample(1005, "us", "us-east", None));
    Observations {
        duration_ms: 3000,
        client_interval_ms: 100,
        samples,
        health: vec![
            change(300, "user-us-east-a", "health", "unchecked", "up"),
            change(1800, "user-us-east-a", "health", "up", "down"),
        ],
        dns: vec![],
        steps: vec![step(1000, "stop user-us-east-a", true, false)],
        ..Default::default()
    }
}

#[test]
fn timeline_buckets_by_start_second() {
    let t = timeline(&az_outage());
    assert_eq!(t.len(), 3);
    assert_eq!(t[0].ok["us-east-a"], 5);
    assert_eq!(t[0].ok["us-east-b"], 5);
    assert!(t[0].failed.is_empty());
    assert_eq!(t[1].ok["us-east-a"], 4);
    assert_eq!(t[1].ok["us-east-b"], 6);
    assert_eq!(t[1].failed["us-east"], 1);
    assert_eq!(t[2].ok.get("us-east-a"), None);
    assert_eq!(t[2].ok["us-east-b"], 10);
}

#[test]
fn shares_split_at_fault_and_recovery() {
    let mut o = az_outage();
    o.steps
        .push(step(2500, "start user-us-east-a", false, true));
    let s = shares(&o);
    let phases: Vec<(&str, u64, u64)> = s
        .iter()
        .map(|s| (s.phase.as_str(), s.requests, s.failed))
        .collect();
    assert_eq!(
        phases,
        [("before", 10, 0), ("during", 16, 1), ("after", 5, 0)]
    );
    assert_eq!(s[0].by_az["us-east-a"], 0.5);
    assert_eq!(s[2].by_az["us-east-b"], 1.0);
    assert_eq!(s[2].by_region["us-east"], 1.0);
}

#[test]
fn detection_ignores_the_first_check_and_changes_before_the_fault() {
    let mut o = az_outage();
    let d = o.detection().unwrap();
    assert_eq!((d.t_ms, d.to.as_str()), (1800, "down"));
    // With a real stop among the steps, only the stopped instance's change is detection.
    o.health
        .push(change(1001, "gw-us-east-a", "health", "up", "down"));
    assert_eq!(o.detection().unwrap().name, "gw-us-east-a");
    let mut stop = step(1000, "stop user-us-east-a", false, false);
    stop.stop = true;
    stop.instance = Some("user-us-east-a".into());
    o.steps.push(stop);
    assert_eq!(o.detection().unwrap().t_ms, 1800);
    assert_eq!(errors_by_kind(&o)["connect_refused"], 1);
}

#[test]
fn expectations_pass_and_fail_on_exact_numbers() {
    let o = az_outage();
    let v = evaluate(
        &[
            Expectation::DetectWithin {
                within: Duration::from_millis(800),
            },
            Expectation::DetectWithin {
                within: Duration::from_millis(799),
            },
            Expectation::MaxFailed {
                max: 1,
                window: Window::All,
            },
            Expectation::MaxFailed {
                max: 0,
                window: Window::All,
            },
            Expectation::MaxFailed {
                max: 0,
                window: Window::AfterDetect,
            },
            Expectation::LostAtMostInFlight,
            Expectation::MovedAway {
                target: Served::Az("us-east-a".into()),
                within: Duration::from_millis(800),
            },
            Expectation::MovedAway {
                target: Served::Az("us-east-a".into()),
                within: Duration::from_millis(600),
            },
        ],
        &o,
    );
    let got: Vec<(bool, &str)> = v.iter().map(|v| (v.pass, v.detail.as_str())).collect();
    assert_eq!(
        got,
        [
            (true, "user-us-east-a went down after 0.80s"),
            (false, "user-us-east-a went down after 0.80s"),
            (true, "1 of 31 failed"),
            (false, "1 of 31 failed"),
            (true, "0 of 12 failed"),
            // The request started at 1.000s was in flight when the stop was sent.
            (
                true,
                "1 lost before detection (1 in flight at the fault), 0 after detection"
            ),
            (
                true,
                "12 requests from 1.80s to 3.00s: 0 served by az us-east-a, 0 failed"
            ),
            (
                false,
                "14 requests from 1.60s to 3.00s: 1 served by az us-east-a, 0 failed"
            ),
        ]
    );
}

#[test]
fn lost_requests_are_bounded_by_those_in_flight() {
    let mut o = az_outage();
    let judge = |o: &Observations| {
        let v = evaluate(&[Expectation::LostAtMostInFlight], o);
        (v[0].pass, v[0].detail.clone())
    };
    o.samples.push(sample(1100, "us", "us-east", None));
    assert_eq!(
        judge(&o),
        (
            false,
            "2 lost before detection (1 in flight at the fault), 0 after detection".into()
        )
    );
    // A request in flight across the fault moment.
    o.samples.push(Sample {
        latency_ms: 50,
        ..sample(990, "us", "us-east", Some("us-east-a"))
    });
    assert!(judge(&o).0);
    o.samples.push(sample(1900, "us", "us-east", None));
    assert_eq!(
        judge(&o),
        (
            false,
            "2 lost before detection (2 in flight at the fault), 1 after detection".into()
        )
    );
}

fn dns(t: u64, group: &str, region: &str) -> DnsAnswer {
    DnsAnswer {
        t_ms: t,
        group: group.into(),
        answers: vec![],
        region: Some(region.into()),
        ttl_s: 2,
        error: None,
    }
}

#[test]
fn dns_move_and_clients_following_within_ttl() {
    let mut o = Observations {
        duration_ms: 8000,
        client_interval_ms: 250,
        steps: vec![step(1000, "fail region us-east", true, false)],
        dns: vec![
            dns(10, "us", "us-east"),
            dns(12, "eu", "eu-west"),
            dns(2200, "us", "eu-west"),
            // Back home after recovery: later requests to us-east are not stragglers.
            dns(6000, "us", "us-east"),
        ],
        ..Default::default()
    };
    // US clients keep their cached us-east answer until 3.9s, then eu-west.
    for t in (0..8000).step_by(250) {
        let (dns_region, az) = if t < 4000 {
            ("us-east", if t < 1000 { Some("us-east-a") } else { None })
        } else if t < 7000 {
            ("eu-west", Some("eu-west-a"))
        } else {
            ("us-east", Some("us-east-b"))
        };
        o.samples.push(sample(t, "us", dns_region, az));
    }
    let moves = dns_moves(&o);
    assert_eq!(
        moves[1],
        DnsMove {
            group: "us".into(),
            from_region: "us-east".into(),
            to_region: Some("eu-west".into()),
            moved_after_ms: Some(1200),
            ttl_s: 2,
            followed_after_ms: Some(1550),
        }
    );
    assert_eq!(moves[0].moved_after_ms, None);
    let v = evaluate(
        &[
            Expectation::DnsMoves {
                clients: "us".into(),
                within: Duration::from_millis(1500),
            },
            Expectation::DnsMoves {
                clients: "eu".into(),
                within: Duration::from_millis(1500),
            },
            Expectation::ClientsFollow {
                clients: "us".into(),
                within: None,
            },
            Expectation::ClientsFollow {
                clients: "us".into(),
                within: Some(Duration::from_secs(1)),
            },
            Expectation::MaxFailed {
                max: 0,
                window: Window::OutsideFault,
            },
        ],
        &o,
    );
    let got: Vec<(bool, &str)> = v.iter().map(|v| (v.pass, v.detail.as_str())).collect();
    assert_eq!(
        got,
        [
            (true, "us-east → eu-west after 1.20s (TTL 2s)"),
            (false, "DNS kept answering eu-west for eu clients"),
            (
                true,
                "last request to us-east 1.55s after DNS moved (bound 2.35s, TTL 2s)"
            ),
            (
                false,
                "last request to us-east 1.55s after DNS moved (bound 1.00s, TTL 2s)"
            ),
            (true, "0 of 4 failed"),
        ]
    );
}

fn flap(down_ms: u64, cycles: u64) -> Observations {
    let mut o = Observations {
        duration_ms: 6000,
        checked: ["user-a".to_string()].into(),
        ..Default::default()
    };
    o.checks.insert(
        "user-a".into(),
        CheckParams {
            interval_ms: 500,
            timeout_ms: 300,
            jitter: 0.0,
            rise: 2,
            fall: 2,
        },
    );
    for c in 0..cycles {
        let t = 1000 + c * 1000;
        let mut stop = step(t, "stop user-a", c == 0, false);
        stop.instance = Some("user-a".into());
        stop.stop = true;
        let mut start = step(t + down_ms, "start user-a", false, false);
        start.instance = Some("user-a".into());
        start.start = true;
        start.done_ms = t + down_ms;
        o.steps.push(stop);
        o.steps.push(start);
    }
    o
}

#[test]
fn damping_bound_follows_rise_and_fall() {
    // 100 ms outages: (100 + 300) / 500 → at most 1 failed check < fall 2: no change allowed.
    let mut o = flap(100, 3);
    assert_eq!(
        allowed_changes(&o, "user-a").unwrap(),
        (
            0,
            "3 outages, longest 0.10s, fall 2 × interval 0.50s".into()
        )
    );
    o.health
        .push(change(1300, "user-a", "active_check", "up", "down"));
    let e = [Expectation::MaxHealthChanges {
        instance: "user-a".into(),
        max: None,
    }];
    assert!(!evaluate(&e, &o)[0].pass);
    o.checked.clear();
    assert_eq!(
        evaluate(&e, &o)[0].detail,
        "user-a is not actively health-checked by the node: nothing to damp"
    );
    // 800 ms outages can fail 3 checks: down and up again per outage is allowed.
    let mut o = flap(800, 3);
    assert_eq!(allowed_changes(&o, "user-a").unwrap().0, 6);
    o.health
        .push(change(1300, "user-a", "active_check", "up", "down"));
    o.health
        .push(change(1300, "user-a", "health", "up", "down"));
    o.health
        .push(change(2300, "user-a", "active_check", "down", "up"));
    let v = evaluate(&e, &o);
    assert_eq!(
        (v[0].pass, v[0].detail.as_str()),
        (
            true,
            "2 active_check changes (at most 6: 3 outages, longest 0.80s, fall 2 × interval 0.50s); 1 overall health changes"
        )
    );
}

/// US clients on us-east at 10/s; the region goes dark at 1 s (detected at 1.6 s), DNS moves at
/// 1.7 s with a 5 s TTL, so clients holding the old answer fail until ~6.7 s; `late` adds a
/// failure at `late` ms. Recovery at 9 s, then both AZs serve again from 10 s on.
fn region_outage(late: Option<u64>) -> Observations {
    let mut samples = Vec::new();
    for i in 0..130u64 {
        let t = i * 100;
        let az = match t {
            0..1000 => Some(if i % 2 == 0 { "us-east-a" } else { "us-east-b" }),
            1000..6500 if i % 3 == 0 => None,
            10_000.. => Some(if i % 2 == 0 { "us-east-a" } else { "us-east-b" }),
            _ => Some("eu-west-a"),
        };
        samples.push(sample(t, "us", "us-east", az));
    }
    if let Some(t) = late {
        samples.push(sample(t, "us", "us-east", None));
    }
    let mut stop = step(1000, "stop gw-us-east-a", true, false);
    stop.stop = true;
    stop.instance = Some("gw-us-east-a".into());
    let mut start = step(9000, "start gw-us-east-a", false, true);
    start.start = true;
    start.instance = Some("gw-us-east-a".into());
    let dns = |t, region: &str, addr: &str| DnsAnswer {
        t_ms: t,
        group: "us".into(),
        answers: vec![addr.parse().unwrap()],
        region: Some(region.into()),
        ttl_s: 5,
        error: None,
    };
    Observations {
        duration_ms: 13_000,
        client_interval_ms: 100,
        samples,
        health: vec![change(1600, "gw-us-east-a", "health", "up", "down")],
        dns: vec![
            dns(0, "us-east", "127.0.1.1"),
            dns(1700, "eu-west", "127.0.2.1"),
        ],
        steps: vec![stop, start],
        rate: 10,
        ..Default::default()
    }
}

#[test]
fn failures_inside_detection_and_ttl_pass_and_say_why() {
    let obs = region_outage(None);
    let f = failures(&obs, None).unwrap();
    assert_eq!((f.inside, f.unexplained, f.outside), (18, 0, 0));
    // detection 0.6 s + TTL 5 s + one interval 0.1 s, at 10/s
    assert_eq!(f.explained.window_ms(), 5700);
    assert_eq!(f.budget, 57);
    let (pass, detail) = budget::judge_budget(&obs, None);
    assert!(pass, "{detail}");
    assert_eq!(
        detail,
        "18 failed requests (14 % of 130) during the fault, all within 5.70s of what broke = \
         detection 0.60s (gw-us-east-a) + DNS TTL 5s + one request interval 0.10s; budget 57; \
         0 outside the fault window; shrink it with a lower GSLB ttl or faster checks (interval × fall)"
    );
    // a configured budget below what happened fails
    let (pass, detail) = budget::judge_budget(&obs, Some(10));
    assert!(!pass);
    assert!(detail.contains("more than the budget of 10"), "{detail}");
}

#[test]
fn a_failure_the_ttl_does_not_explain_fails_the_budget() {
    let obs = region_outage(Some(8000));
    let (pass, detail) = budget::judge_budget(&obs, None);
    assert!(!pass);
    assert_eq!(
        detail,
        "19 failed requests (15 % of 131) during the fault: 1 not explained, the first at 8.00s \
         (7.00s after the fault, beyond 5.70s = detection 0.60s (gw-us-east-a) + DNS TTL 5s + one \
         request interval 0.10s); 0 outside the fault window"
    );
}

#[test]
fn the_after_phase_wants_every_az_back() {
    let obs = region_outage(None);
    let within = Some(Duration::from_millis(1000));
    let (pass, detail) = budget::judge_recovers(&obs, within);
    assert!(pass, "{detail}");
    assert!(detail.starts_with("30 requests from 10.00s to 13.00s: every AZ and instance"));
    // us-east-b stays dark after recovery
    let mut dark = obs.clone();
    for s in dark.samples.iter_mut().filter(|s| s.t_ms >= 10_000) {
        s.az = Some("us-east-a".into());
        s.instance = Some("user-us-east-a".into());
    }
    let (pass, detail) = budget::judge_recovers(&dark, within);
    assert!(!pass);
    assert_eq!(
        detail,
        "30 requests from 10.00s to 13.00s: AZ us-east-b served nothing (it served 50 % before \
         the fault); instance user-us-east-b served nothing (it served 50 % before the fault)"
    );
    // an after phase the drill did not run long enough to see
    let (pass, detail) = budget::judge_recovers(&obs, Some(Duration::from_secs(5)));
    assert!(!pass);
    assert!(detail.contains("the drill ended too soon"), "{detail}");
}
