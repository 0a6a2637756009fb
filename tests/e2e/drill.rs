//! `switchyard drill`: the real binary drills a demo world it starts itself (no `--target`, nothing
//! answering at the world's admin address), with real clients, and writes a table, `report.json`
//! and `timeline.svg`. Each test moves the world to its own `127.N.x.y` (N in 80..=99).
//!
//! The `direct_*` tests send requests straight to a demo service (`--direct`), so they need only
//! the demo services and the admin API; the built-in drills go through DNS → L4 → gateway.

use crate::harness::{addr, bin, demo_config, http, poll_until, Node, TempDir};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn drill(dir: &TempDir, args: &[&str]) -> (Output, serde_json::Value, String) {
    let out_dir = dir.0.join("report");
    let out = Command::new(bin())
        .arg("drill")
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env_remove("SWITCHYARD_DRILL_TOKEN")
        .output()
        .expect("run switchyard drill");
    let json = std::fs::read_to_string(out_dir.join("report.json")).unwrap_or_else(|e| {
        panic!(
            "no report.json ({e}); stdout:\n{}\nstderr:\n{}\nworld log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(out_dir.join("world.log")).unwrap_or_default()
        )
    });
    let report: serde_json::Value = serde_json::from_str(&json).expect("report.json parses");
    let svg = std::fs::read_to_string(out_dir.join("timeline.svg")).expect("timeline.svg");
    (out, report, svg)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A small XML well-formedness check: one root, tags nest and close, attributes quoted, only the
/// predefined entities. Returns element names in order.
fn check_xml(doc: &str) -> Result<Vec<String>, String> {
    let mut rest = doc
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .ok_or("no XML declaration")?;
    let (mut stack, mut names, mut roots) = (Vec::<String>::new(), Vec::new(), 0);
    let text_ok = |t: &str| -> Result<(), String> {
        let mut r = t;
        while let Some(i) = r.find('&') {
            let end = r[i..].find(';').ok_or("bare &")? + i;
            if !["amp", "lt", "gt", "quot", "apos"].contains(&&r[i + 1..end]) {
                return Err(format!("unknown entity {}", &r[i..=end]));
            }
            r = &r[end + 1..];
        }
        Ok(())
    };
    while let Some(i) = rest.find('<') {
        text_ok(&rest[..i])?;
        let end = rest[i..].find('>').ok_or("unclosed tag")? + i;
        let tag = &rest[i + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name) {
                return Err(format!("mismatched </{name}>"));
            }
            continue;
        }
        let closed = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag
            .split_whitespace()
            .next()
            .ok_or("empty tag")?
            .to_string();
        if stack.is_empty() {
            roots += 1;
        }
        // Attributes: name="value" pairs.
        let mut a = tag[name.len()..].trim();
        while !a.is_empty() {
            let eq = a
                .find('=')
                .ok_or(format!("attribute without value in <{name}>"))?;
            let v = &a[eq + 1..];
            if !v.starts_with('"') {
                return Err(format!("unquoted attribute in <{name}>"));
            }
            let close = v[1..].find('"').ok_or("unterminated attribute")? + 1;
            text_ok(&v[1..close])?;
            a = v[close + 1..].trim_start();
        }
        names.push(name.clone());
        if !closed {
            stack.push(name);
        }
    }
    if !stack.is_empty() || roots != 1 || !rest.trim().is_empty() {
        return Err(format!(
            "unbalanced document: open {stack:?}, {roots} roots"
        ));
    }
    Ok(names)
}

fn scenario(dir: &TempDir, name: &str, body: &str) -> String {
    dir.write(name, body).to_str().unwrap().to_string()
}

#[test]
fn direct_drill_passes_writes_json_and_svg() {
    let dir = TempDir::new("drill-direct-pass");
    let cfg = demo_config(&dir, 81);
    // Clients hit user-eu-west-a directly while user-us-east-a is stopped and started again.
    let file = scenario(
        &dir,
        "s.toml",
        r#"
name = "bystander"
description = "a neighbour crashes; our instance keeps serving"
duration = "2500ms"
rate = 20
[[steps]]
at = "500ms"
action = "stop"
instance = "user-us-east-a"
[[steps]]
at = "1500ms"
action = "start"
instance = "user-us-east-a"
recover = true
[[expect]]
kind = "max_failed"
max = 0
[[expect]]
kind = "moved_away"
instance = "user-us-east-a"
within = "0s"
"#,
    );
    let (out, r, svg) = drill(
        &dir,
        &[
            &file,
            "--config",
            cfg.to_str().unwrap(),
            "--direct",
            "127.81.12.1:7001",
        ],
    );
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["pass"], true);
    assert_eq!(r["scenario"]["name"], "bystander");
    assert_eq!(r["target"], "http://127.81.0.1:9901");
    // The load runs past the scenario's 2.5 s: the "after" phase needs the stopped instance's
    // rise time (1.8 s) + 0.5 s after recovery, then 2 s of traffic: 1.5 + 2.3 + 2 = 5.8 s.
    assert_eq!(r["duration_ms"], 5800);
    let requests = r["requests"].as_u64().unwrap();
    // 20/s for 5.8 s: 116 ticks, never more (an overloaded machine skips late ones).
    assert!((58..=116).contains(&requests), "{requests} requests");
    assert_eq!(r["ok"], r["requests"]);
    assert_eq!(r["failed"], 0);
    let samples = r["samples"].as_array().unwrap();
    assert!(samples.iter().all(|s| s["instance"] == "user-eu-west-a"
        && s["az"] == "eu-west-a"
        && s["status"] == 200));
    let steps: Vec<(&str, bool)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["label"].as_str().unwrap(), s["error"].is_null()))
        .collect();
    assert_eq!(
        steps,
        [
            ("stop user-us-east-a", true),
            ("start user-us-east-a", true)
        ]
    );
    assert_eq!(r["timeline"].as_array().unwrap().len(), 6);
    let second = r["timeline"][1]["ok"]["eu-west-a"].as_u64().unwrap();
    assert!((10..=20).contains(&second), "{second} in the second second");
    assert_eq!(r["shares"][0]["phase"], "before");
    assert_eq!(r["shares"][1]["by_az"]["eu-west-a"], 1.0);
    let verdicts: Vec<bool> = r["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pass"].as_bool().unwrap())
        .collect();
    // the two stated, then the implicit failure budget, after phase and restore check
    assert_eq!(verdicts, [true; 5], "{text}");
    assert!(
        text.contains("  PASS  at most 0 failed requests (window all): 0 of "),
        "{text}"
    );
    assert!(
        text.contains("  PASS  failures during the fault explained by detection and DNS: no failed request during the fault; 0 outside the fault window\n"),
        "{text}"
    );
    assert!(
        text.contains("  PASS  traffic back to the pre-fault shape from recovery + 2.30s: "),
        "{text}"
    );
    assert!(
        text.contains(
            "  PASS  the node is left as the drill found it: /status as before the drill after "
        ),
        "{text}"
    );
    assert!(
        text.contains("result: PASS (5/5 expectations hold)"),
        "{text}"
    );
    let names = check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert_eq!(names[0], "svg");
    // One line for the AZ that served, one for failures; both steps marked.
    assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 2);
    assert!(svg.contains(">fault: stop user-us-east-a</text>"));
    assert!(svg.contains(">recovery: start user-us-east-a</text>"));
    assert!(Path::new(&dir.0.join("report/world.log")).exists());
}

#[test]
fn impossible_expectation_exits_1_and_errors_are_counted() {
    let dir = TempDir::new("drill-direct-fail");
    let cfg = demo_config(&dir, 82);
    // The instance the clients use is stopped: nothing balances around it in direct mode.
    let file = scenario(
        &dir,
        "s.toml",
        r#"
duration = "2s"
rate = 20
[[steps]]
at = "700ms"
action = "stop"
instance = "user-eu-west-a"
[[steps]]
at = "1300ms"
action = "start"
instance = "user-eu-west-a"
recover = true
[[expect]]
kind = "max_failed"
max = 0
window = "before_fault"
[[expect]]
kind = "max_failed"
max = 0
[[expect]]
kind = "detect_within"
within = "1ms"
"#,
    );
    let (out, r, svg) = drill(
        &dir,
        &[
            &file,
            "--config",
            cfg.to_str().unwrap(),
            "--direct",
            "127.82.12.1:7001",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(r["pass"], false);
    let failed = r["failed"].as_u64().unwrap();
    // 0.6 s down at 20/s: about 12 refused.
    assert!((8..=16).contains(&failed), "{failed} failed\n{text}");
    // Refused connections (a request caught mid-flight by the stop would be a reset).
    let refused = r["errors_by_kind"]["connect_refused"].as_u64().unwrap();
    assert!(refused + 1 >= failed, "{}", r["errors_by_kind"]);
    let verdicts: Vec<bool> = r["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pass"].as_bool().unwrap())
        .collect();
    assert_eq!(verdicts[..3], [true, false, false], "{text}");
    // Every failure happened while the instance was down (nothing detects a stop in direct mode
    // but the restart): explained; the instance serves again; the node is as found.
    assert_eq!(verdicts[3..], [true, true, true], "{text}");
    assert!(text.contains("during the fault, all within "), "{text}");
    assert!(
        text.contains("client errors       connect_refused "),
        "{text}"
    );
    assert!(
        text.contains("result: FAIL (4/6 expectations hold)"),
        "{text}"
    );
    check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
}

#[test]
fn bad_scenarios_are_refused_with_every_problem() {
    let dir = TempDir::new("drill-bad");
    let file = scenario(
        &dir,
        "s.toml",
        "duration = \"1s\"\nrate = 0\n[[steps]]\nat = \"2s\"\naction = \"nap\"\n\
         [[steps]]\nat = \"500ms\"\naction = \"drain\"\naz = \"mars-1a\"\n",
    );
    let out = Command::new(bin())
        .args(["drill", &file, "--out"])
        .arg(dir.0.join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rate: must be at least 1 request per second"),
        "{err}"
    );
    assert!(
        err.contains("steps[0].at: 2.00s is after the end of the drill (1.00s)"),
        "{err}"
    );
    assert!(
        err.contains("steps[0].action: unknown action \"nap\""),
        "{err}"
    );
    // names the world does not know are reported in the same run as the file's own mistakes
    assert!(err.contains("  no AZ \"mars-1a\" in the world"), "{err}");
    let out = Command::new(bin())
        .args(["drill", "tsunami"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "\"tsunami\" is neither a built-in scenario (instance-crash, az-outage, region-outage, planned-drain, flap, region-blackout) nor a scenario file"
    ));
}

/// A built-in drill through the whole chain; asserts it passes and returns the report.
fn builtin(net: u8, name: &str, edit: impl Fn(String) -> String) -> serde_json::Value {
    builtin_svg(net, name, edit).0
}

/// [`builtin`], with the chart.
fn builtin_svg(
    net: u8,
    name: &str,
    edit: impl Fn(String) -> String,
) -> (serde_json::Value, String) {
    let dir = TempDir::new(&format!("drill-{name}-{net}")); // two tests may drill one scenario
    let world = edit(switchyard_config::demo_toml_on(net));
    let cfg = dir.write("world.toml", &world);
    let (out, r, svg) = drill(
        &dir,
        &[name, "--config", cfg.to_str().unwrap(), "--rate", "20"],
    );
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\nworld log:\n{}",
        std::fs::read_to_string(dir.0.join("report/world.log")).unwrap_or_default()
    );
    assert_eq!(r["pass"], true);
    check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    (r, svg)
}

fn seconds(v: &serde_json::Value) -> Duration {
    Duration::from_millis(v.as_u64().expect("milliseconds"))
}

#[test]
fn builtin_planned_drain_loses_nothing() {
    let r = builtin(83, "planned-drain", |t| t);
    assert_eq!(r["failed"], 0);
    // Both AZs of us-east served before the drain; US clients went through us-east.
    assert!(r["shares"][0]["by_az"]["us-east-a"].as_f64().unwrap() > 0.0);
    assert!(r["shares"][0]["by_az"]["eu-west-a"].as_f64().unwrap() > 0.0);
}

#[test]
fn builtin_instance_crash_is_detected_and_contained() {
    let r = builtin(84, "instance-crash", |t| t);
    assert!(seconds(&r["time_to_detect_ms"]) <= Duration::from_millis(1800));
    assert_eq!(r["detected"]["name"], "user-us-east-a");
}

#[test]
fn builtin_az_outage_moves_new_connections() {
    let r = builtin(85, "az-outage", |t| t);
    assert_eq!(r["shares"][1]["phase"], "during");
    assert!(r["time_to_detect_ms"].is_u64());
}

#[test]
fn builtin_region_outage_moves_us_clients_within_one_ttl() {
    // A 2 s TTL keeps the drill short; the drill's bounds follow the world's TTL.
    let (r, svg) = builtin_svg(86, "region-outage", |t| {
        t.replace("ttl = \"10s\"", "ttl = \"2s\"")
    });
    // the chart tells the story: fault, detection, DNS moving the US clients, the clients
    // following, recovery
    for class in [
        "fault",
        "detected",
        "dns-moved",
        "clients-followed",
        "recovery",
    ] {
        assert!(
            svg.contains(&format!("<g class=\"marker {class}\">")),
            "no {class} marker:\n{svg}"
        );
    }
    assert!(
        svg.contains(">DNS moved us clients to eu-west (TTL 2s)</text>"),
        "{svg}"
    );
    // the front door spills while DNS converges (issue 17): nothing fails during the fault, so
    // the budget (detection + TTL, see the blackout drill) has nothing to explain
    let budget = r["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["expectation"]["kind"] == "failure_budget")
        .unwrap()
        .clone();
    assert_eq!(budget["pass"], true);
    assert_eq!(
        budget["detail"], "no failed request during the fault; 0 outside the fault window",
        "{budget}"
    );
    let us = r["dns_moves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["group"] == "us")
        .unwrap()
        .clone();
    assert_eq!(us["from_region"], "us-east");
    assert_eq!(us["to_region"], "eu-west");
    assert_eq!(us["ttl_s"], 2);
    assert!(seconds(&us["moved_after_ms"]) <= Duration::from_millis(1800));
    // A client uses an answer fetched before the move for at most one TTL.
    assert!(seconds(&us["followed_after_ms"]) < Duration::from_secs(2));
}

/// The expectation whose description starts with `what`, as (pass, detail).
fn verdict(r: &serde_json::Value, what: &str) -> (bool, String) {
    let e = r["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["description"].as_str().unwrap().starts_with(what))
        .unwrap_or_else(|| panic!("no expectation {what:?} in {}", r["expectations"]));
    (
        e["pass"].as_bool().unwrap(),
        e["detail"].as_str().unwrap().to_string(),
    )
}

#[test]
fn builtin_region_outage_loses_nothing_after_detection() {
    // The front door stays: us-east's balancer spills to eu-west while DNS converges (issue 17).
    let r = builtin(91, "region-outage", |t| {
        t.replace("ttl = \"10s\"", "ttl = \"2s\"")
    });
    let (pass, detail) = verdict(&r, "lose at most the requests in flight");
    assert!(pass, "{detail}");
    assert!(detail.ends_with(", 0 after detection"), "{detail}");
    // nothing outside the fault either: at most the requests in flight at the stop failed
    let in_flight: u64 = detail
        .split('(')
        .nth(1)
        .and_then(|x| x.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        r["failed"].as_u64().unwrap() <= in_flight,
        "{}",
        r["failed"]
    );
}

#[test]
fn builtin_region_blackout_failures_are_explained_by_the_ttl() {
    // The front door is gone too: clients fail until DNS moved them and their answer expired.
    let r = builtin(92, "region-blackout", |t| {
        t.replace("ttl = \"10s\"", "ttl = \"2s\"")
    });
    let (pass, detail) = verdict(&r, "every failure explained by DNS caching");
    assert!(pass, "{detail}");
    assert!(detail.contains("all explained"), "{detail}");
    assert!(detail.contains("(TTL 2s)"), "{detail}");
    assert!(
        r["failed"].as_u64().unwrap() > 0,
        "the blackout must cost something"
    );
    assert!(
        r["scenario"]["description"]
            .as_str()
            .unwrap()
            .contains("detection 1.80s + TTL 2s"),
        "{}",
        r["scenario"]["description"]
    );
}

#[test]
fn builtin_flap_is_damped() {
    let r = builtin(87, "flap", |t| t);
    let detail = r["expectations"][1]["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains(" active_check changes (at most "),
        "{detail}"
    );
    // Outages as they really ran; under 150 ms + 300 ms timeout no two 450 ms-spaced checks can
    // both fail, so fall = 2 must keep the instance up.
    let steps = r["steps"].as_array().unwrap();
    let longest = steps
        .chunks(2)
        .map(|p| p[1]["done_ms"].as_u64().unwrap() - p[0]["t_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    if longest < 150 {
        let changes = r["health_changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["name"] == "user-us-east-a" && h["field"] == "active_check")
            .count();
        assert_eq!(changes, 0, "{}", r["health_changes"]);
    }
}

#[test]
fn drill_against_a_running_node_leaves_it_as_found() {
    let dir = TempDir::new("drill-target");
    let cfg = demo_config(&dir, 88);
    let node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let admin = addr(88, "0.1:9901");
    // Breaks two things and never repairs them: the drill must undo both at the end.
    let file = scenario(
        &dir,
        "s.toml",
        r#"
duration = "1200ms"
rate = 10
[[steps]]
at = "300ms"
action = "stop"
instance = "user-us-east-a"
[[steps]]
at = "500ms"
action = "drain"
az = "eu-west-b"
[[expect]]
kind = "max_failed"
max = 0
"#,
    );
    let (out, r, _) = drill(
        &dir,
        &[
            &file,
            "--config",
            cfg.to_str().unwrap(),
            "--target",
            "http://127.88.0.1:9901",
            "--direct",
            "127.88.12.1:7001",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(r["target"], "http://127.88.0.1:9901");
    assert_eq!(r["requests"], 12);
    assert!(
        !dir.0.join("report/world.log").exists(),
        "no world of its own"
    );
    let s = http(admin, "GET", "/status", &[], "").unwrap().json();
    assert_eq!(s["admin_overrides"], serde_json::json!([]));
    let user = s["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["instances"].as_array().unwrap())
        .find(|i| i["name"] == "user-us-east-a")
        .unwrap()
        .clone();
    assert_eq!(user["demo_running"], true);
    // A wrong admin token is caught before anything is broken.
    let out = Command::new(bin())
        .args(["drill", &file, "--config", cfg.to_str().unwrap()])
        .args([
            "--target",
            "http://127.88.0.1:9901",
            "--admin-token",
            "wrong",
        ])
        .arg("--out")
        .arg(dir.0.join("wrong"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the admin API refused the admin token (401, admin token rejected: "),
        "{err}"
    );
    drop(node);
    // An explicit target that does not answer is an error, not a world of the drill's own.
    let out = Command::new(bin())
        .args([
            "drill",
            "planned-drain",
            "--target",
            "http://127.88.0.1:9901",
        ])
        .arg("--out")
        .arg(dir.0.join("again"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("no admin API answers at http://127.88.0.1:9901"));
}

/// Each instance's state word, ejection and admin mode as `/status` shows them, and the AZ shares:
/// what "left as found" compares.
fn node_state(net: u8) -> Vec<(String, String)> {
    let s = http(addr(net, "0.1:9901"), "GET", "/status", &[], "")
        .unwrap()
        .json();
    let mut out = Vec::new();
    for r in s["regions"].as_array().unwrap() {
        for a in r["azs"].as_array().unwrap() {
            out.push((
                format!("az {}", a["name"]),
                format!("share {} admin {}", a["share"], a["admin"]),
            ));
        }
        for m in r["pools"][0]["members"].as_array().unwrap() {
            out.push((
                m["name"].to_string(),
                format!("{} {} {}", m["state"], m["ejected_for_ms"], m["admin"]),
            ));
        }
    }
    for sv in s["services"].as_array().unwrap() {
        for i in sv["instances"].as_array().unwrap() {
            out.push((
                i["name"].to_string(),
                format!(
                    "{} {} {} {}",
                    i["state"], i["ejected_for_ms"], i["admin"], i["demo_running"]
                ),
            ));
        }
    }
    out.push(("overrides".into(), s["admin_overrides"].to_string()));
    out
}

#[test]
fn a_drill_twice_in_a_row_restores_the_node_and_gives_the_same_verdicts() {
    let net = 170;
    let dir = TempDir::new("drill-twice");
    let cfg = demo_config(&dir, net);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let target = "127.170.0.1:9901"; // a bare HOST:PORT, as --admin-listen takes it
    let healthy = |st: &[(String, String)]| {
        st.iter()
            .filter(|(k, _)| !k.starts_with("az ") && k != "overrides")
            .all(|(_, v)| v.starts_with("\"up\" null null"))
    };
    poll_until(Duration::from_secs(10), || healthy(&node_state(net)))
        .unwrap_or_else(|_| panic!("{:?}", node_state(net)));
    let mut verdicts = Vec::new();
    for round in 0..2 {
        let before = node_state(net);
        let d = TempDir::new(&format!("drill-twice-{round}"));
        let (out, r, _) = drill(
            &d,
            &[
                "instance-crash",
                "--config",
                cfg.to_str().unwrap(),
                "--target",
                target,
                "--rate",
                "20",
            ],
        );
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "round {round}:\n{text}");
        assert!(text.contains("left as found       yes after "), "{text}");
        assert_eq!(r["restore"]["differences"], serde_json::json!([]));
        verdicts.push(
            r["expectations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v["description"].clone(), v["pass"].clone()))
                .collect::<Vec<_>>(),
        );
        // the node as the drill found it: same health, same shares, no ejection, no override
        assert_eq!(node_state(net), before, "round {round}:\n{text}");
    }
    assert_eq!(verdicts[0], verdicts[1]);

    // A "recovery" that leaves an AZ dark fails the after phase, and names the AZ.
    let file = scenario(
        &dir,
        "dark.toml",
        r#"
duration = "2s"
rate = 20
[[steps]]
at = "500ms"
action = "drain"
az = "us-east-a"
[[steps]]
at = "1s"
action = "drain"
az = "eu-west-b"
recover = true
"#,
    );
    let d = TempDir::new("drill-dark");
    let (out, r, _) = drill(
        &d,
        &[&file, "--config", cfg.to_str().unwrap(), "--target", target],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let after = r["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["expectation"]["kind"] == "recovers")
        .unwrap()
        .clone();
    assert_eq!(after["pass"], false, "{text}");
    let detail = after["detail"].as_str().unwrap();
    assert!(
        detail.contains("AZ us-east-a served nothing (it served ")
            && detail.contains("AZ eu-west-b served nothing"),
        "{detail}"
    );
    // ... and the drains are undone all the same
    assert_eq!(r["restore"]["differences"], serde_json::json!([]), "{text}");

    // A node that is not healthy is refused before anything breaks, with what is wrong.
    let token = ["Authorization: Bearer demo-admin-token"];
    let drained = http(
        addr(net, "0.1:9901"),
        "POST",
        "/v1/azs/eu-west-b/drain",
        &token,
        "",
    )
    .unwrap();
    assert_eq!(drained.status, 200);
    let out = Command::new(bin())
        .args(["drill", "planned-drain", "--config", cfg.to_str().unwrap()])
        .args(["--target", target, "--out"])
        .arg(dir.0.join("refused"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the node is not healthy, so the drill would measure an outage it did not cause:\n  drain az eu-west-b: in force\n")
            && err.contains("or pass --force"),
        "{err}"
    );
    http(
        addr(net, "0.1:9901"),
        "POST",
        "/v1/azs/eu-west-b/undrain",
        &token,
        "",
    )
    .unwrap();
}

/// unbound on `ip`, a stub for `example.test.` at `auth`, forwarding the clients' ECS (as a
/// resolver in front of a delegated test domain would); returns it and its address.
fn unbound(dir: &TempDir, ip: &str, auth: std::net::SocketAddr) -> (std::process::Child, String) {
    let bin = ["/usr/sbin/unbound", "/usr/bin/unbound"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect(
            "the drill-through-a-resolver test needs unbound: `apt-get install -y unbound`, or run \
             scripts/test, which installs it when missing",
        );
    let port = {
        let t = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
        t.local_addr().unwrap().port()
    };
    let d = dir.0.display();
    let conf = format!(
        "server:\n  interface: {ip}\n  port: {port}\n  do-daemonize: no\n  username: \"\"\n  \
         chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  \
         verbosity: 1\n  do-ip6: no\n  num-threads: 1\n  outgoing-interface: {ip}\n  \
         do-not-query-localhost: no\n  qname-minimisation: no\n  access-control: 127.0.0.0/8 allow\n  \
         local-zone: \"test.\" nodefault\n  module-config: \"subnetcache iterator\"\n  \
         send-client-subnet: {}\n  client-subnet-always-forward: yes\n  max-client-subnet-ipv4: 24\n  \
         harden-referral-path: no\n  target-fetch-policy: \"0 0 0 0 0\"\n\
         stub-zone:\n  name: \".\"\n  stub-addr: 127.0.0.9@9\n\
         stub-zone:\n  name: \"example.test.\"\n  stub-addr: {}@{}\n",
        auth.ip(),
        auth.ip(),
        auth.port()
    );
    let path = dir.write("unbound.conf", &conf);
    let child = Command::new(bin)
        .args(["-d", "-c"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("unbound starts");
    (child, format!("{ip}:{port}"))
}

#[test]
fn a_drill_through_a_caching_resolver_measures_both_paths() {
    let net = 173;
    let dir = TempDir::new("drill-resolver");
    let world = switchyard_config::demo_toml_on(net).replace("ttl = \"10s\"", "ttl = \"2s\"");
    let cfg = dir.write("world.toml", &world);
    let _node = Node::start(&["--config", cfg.to_str().unwrap()]);
    let (mut u, resolver) = unbound(&dir, "127.173.0.53", addr(net, "0.1:8053"));
    // unbound answers (anything) once it is up
    let sock = std::net::UdpSocket::bind("127.173.0.54:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07version\x07invalid\x00\x00\x01\x00\x01";
    let up = poll_until(Duration::from_secs(10), || {
        let _ = sock.send_to(q, &resolver);
        let mut buf = [0u8; 512];
        sock.recv(&mut buf).is_ok()
    });
    assert!(up.is_ok(), "unbound did not start");
    let (out, r, _) = drill(
        &dir,
        &[
            "region-outage",
            "--config",
            cfg.to_str().unwrap(),
            "--target",
            "127.173.0.1:9901",
            "--resolver",
            &resolver,
            "--rate",
            "20",
        ],
    );
    let _ = u.kill();
    let _ = u.wait();
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}\nunbound: {}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.0.join("unbound.log")).unwrap_or_default()
    );
    // the report says which path was measured
    assert_eq!(
        r["dns"],
        format!(
            "127.173.0.1:8053 (clients through the resolver {resolver} with RD=1; DNS moves measured at 127.173.0.1:8053)"
        )
    );
    // the US clients got us-east through the resolver (ECS forwarded), then followed the move
    let us_first = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["group"] == "us")
        .unwrap()
        .clone();
    assert_eq!(us_first["dns_region"], "us-east");
    let follow = r["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["expectation"]["kind"] == "clients_follow")
        .unwrap()
        .clone();
    // bound: TTL 2 s + one request interval 0.4 s + 0.1 s + 1 s of resolver rounding
    assert!(
        follow["detail"]
            .as_str()
            .unwrap()
            .contains("(bound 3.50s, TTL 2s)"),
        "{follow}"
    );
}
