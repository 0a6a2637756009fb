//! Tests of `scenario`.

use super::*;

const GOOD: &str = r#"
name = "crash"
duration = "6s"
rate = 20

[[steps]]
at = "1s"
action = "stop"
instance = "user-us-east-a"

[[steps]]
at = "4s"
action = "start"
instance = "user-us-east-a"
recover = true

[[steps]]
at = "500ms"
action = "drain"
az = "eu-west-b"

[[expect]]
kind = "max_failed"
max = 0
window = "after_detect"

[[expect]]
kind = "detect_within"
within = "1.5s"

[[expect]]
kind = "moved_away"
az = "us-east-a"
within = "2s"

[[expect]]
kind = "clients_follow"
clients = "us"
"#;

#[test]
fn parses_a_scenario_and_sorts_steps() {
    let s = parse(GOOD, "crash.toml").unwrap();
    assert_eq!(s.name, "crash");
    assert_eq!(s.duration, Duration::from_secs(6));
    assert_eq!(s.rate, 20);
    assert_eq!(s.path, "/v1/users/drill");
    assert_eq!(s.clients.len(), 2);
    let labels: Vec<String> = s.steps.iter().map(|s| s.action.label()).collect();
    assert_eq!(
        labels,
        [
            "drain az eu-west-b",
            "stop user-us-east-a",
            "start user-us-east-a"
        ]
    );
    // No step marked: the first one is the fault.
    assert!(s.steps[0].fault && !s.steps[1].fault);
    assert!(s.steps[2].recover);
    assert_eq!(
        s.expect,
        vec![
            Expectation::MaxFailed {
                max: 0,
                window: Window::AfterDetect
            },
            Expectation::DetectWithin {
                within: Duration::from_millis(1500)
            },
            Expectation::MovedAway {
                target: Served::Az("us-east-a".into()),
                within: Duration::from_secs(2)
            },
            Expectation::ClientsFollow {
                clients: "us".into(),
                within: None
            },
        ]
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let e = parse("duration = \"1s\"\nspeed = 3\n", "x.toml").unwrap_err();
    assert!(e.contains("unknown field `speed`"), "{e}");
    let e = parse(
        "duration = \"1s\"\n[[steps]]\nat = \"0s\"\naction = \"stop\"\ninstance = \"a\"\nwhen = 1\n",
        "x.toml",
    )
    .unwrap_err();
    assert!(e.contains("unknown field `when`"), "{e}");
}

#[test]
fn every_problem_is_reported() {
    let src = r#"
duration = "2 parsecs"
rate = 0
[[steps]]
at = "1s"
action = "explode"
instance = "a"
[[steps]]
at = "1s"
action = "drain"
az = "a"
region = "b"
[[steps]]
at = "1s"
action = "start"
az = "a"
[[expect]]
kind = "max_failed"
[[expect]]
kind = "dns_moves"
clients = "mars"
within = "1s"
instance = "x"
[[expect]]
kind = "telepathy"
"#;
    let e = parse(src, "bad.toml").unwrap_err();
    let lines: Vec<&str> = e.lines().skip(1).map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "duration: \"2 parsecs\" is not a duration (unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write e.g. \"500ms\" or \"2s\"",
            "rate: must be at least 1 request per second",
            "steps[0].action: unknown action \"explode\"; expected stop, start, drain, undrain, fail or restore",
            "steps[1]: `drain` needs exactly one of `region`, `az` or `instance`",
            "steps[2]: `start` needs exactly `instance = \"NAME\"` (a demo instance)",
            "expect[0]: `max_failed` needs `max`",
            "expect[1].instance: not used by `dns_moves` (it takes: clients, within)",
            "expect[1].clients: no client group \"mars\" (groups: us, eu)",
            "expect[2].kind: unknown expectation \"telepathy\"; expected max_failed, detect_within, lost_at_most_in_flight, moved_away, dns_moves, clients_follow, max_health_changes, failures_within_ttl, failure_budget or recovers",
        ]
    );
}

#[test]
fn steps_must_fit_in_the_drill() {
    let e = parse(
        "duration = \"2s\"\n[[steps]]\nat = \"3s\"\naction = \"fail\"\nregion = \"us-east\"\n",
        "x.toml",
    )
    .unwrap_err();
    assert!(
        e.contains("steps[0].at: 3.00s is after the end of the drill (2.00s)"),
        "{e}"
    );
}

#[test]
fn undo_restores_what_a_step_changed() {
    let stop = Action::Stop {
        instance: "a".into(),
    };
    assert_eq!(
        stop.undo(),
        Some(Action::Start {
            instance: "a".into()
        })
    );
    let drain = Action::Admin {
        verb: AdminVerb::Drain,
        kind: TargetKind::Az,
        name: "x".into(),
    };
    assert_eq!(drain.undo().unwrap().label(), "undrain az x");
    assert_eq!(
        Action::Start {
            instance: "a".into()
        }
        .undo(),
        None
    );
}
