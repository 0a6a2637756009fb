//! The scenario file: raw TOML structs (unknown keys rejected) and their validation into a
//! [`Scenario`] in one pass that reports every problem, plus the defaults a file may leave out.

use super::model::{
    Action, AdminVerb, ClientGroup, Expectation, Scenario, Served, Step, Subnet, TargetKind, Window,
};
use super::secs;
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    #[serde(default)]
    description: String,
    duration: String,
    #[serde(default = "default_rate")]
    rate: u32,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    clients: Vec<RawClientGroup>,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    expect: Vec<RawExpect>,
}

fn default_rate() -> u32 {
    40
}

/// The default request: a customer reading a user through the gateway.
pub(crate) fn default_path() -> String {
    "/v1/users/drill".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientGroup {
    name: String,
    ecs: String,
    #[serde(default = "default_clients")]
    count: u32,
}

fn default_clients() -> u32 {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: String,
    action: String,
    region: Option<String>,
    az: Option<String>,
    instance: Option<String>,
    #[serde(default)]
    fault: bool,
    #[serde(default)]
    recover: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    kind: String,
    max: Option<u64>,
    window: Option<String>,
    within: Option<String>,
    clients: Option<String>,
    region: Option<String>,
    az: Option<String>,
    instance: Option<String>,
}

/// The US and EU clients of the demo world (MaxMind test networks).
pub(crate) fn default_clients_groups() -> Vec<ClientGroup> {
    vec![
        ClientGroup {
            name: "us".into(),
            ecs: "216.160.83.56/29".parse().expect("static subnet"),
            count: default_clients(),
        },
        ClientGroup {
            name: "eu".into(),
            ecs: "81.2.69.160/27".parse().expect("static subnet"),
            count: default_clients(),
        },
    ]
}

fn duration(s: &str, path: &str, errs: &mut Vec<String>) -> Duration {
    humantime::parse_duration(s).unwrap_or_else(|e| {
        errs.push(format!(
            "{path}: {s:?} is not a duration ({e}); write e.g. \"500ms\" or \"2s\""
        ));
        Duration::ZERO
    })
}

/// Parses and validates a scenario file's text; `origin` names it in errors. Every problem is
/// reported, one per line.
#[cfg(test)]
pub(crate) fn parse(src: &str, origin: &str) -> Result<Scenario, String> {
    parse_checked(src, origin, &|_| Vec::new())
}

/// [`parse`], with `names` also run on what could be read (every name the scenario uses must
/// exist in the world), so a file with several kinds of mistakes reports them all at once.
pub(crate) fn parse_checked(
    src: &str,
    origin: &str,
    names: &dyn Fn(&Scenario) -> Vec<String>,
) -> Result<Scenario, String> {
    let raw: RawScenario = toml::from_str(src).map_err(|e| format!("{origin}: {e}"))?;
    let mut errs = Vec::new();
    let dur = duration(&raw.duration, "duration", &mut errs);
    if dur.is_zero() && errs.is_empty() {
        errs.push("duration: must be more than zero".into());
    }
    if raw.rate == 0 {
        errs.push("rate: must be at least 1 request per second".into());
    }
    if !raw.path.starts_with('/') {
        errs.push(format!("path: {:?} must start with '/'", raw.path));
    }
    let clients = if raw.clients.is_empty() {
        default_clients_groups()
    } else {
        raw.clients
            .iter()
            .enumerate()
            .map(|(i, c)| ClientGroup {
                name: c.name.clone(),
                ecs: c.ecs.parse().unwrap_or_else(|e| {
                    errs.push(format!("clients[{i}].ecs: {e}"));
                    Subnet {
                        addr: IpAddr::from([0, 0, 0, 0]),
                        prefix: 0,
                    }
                }),
                count: c.count,
            })
            .collect()
    };
    for (i, c) in clients.iter().enumerate() {
        if c.count == 0 {
            errs.push(format!("clients[{i}].count: must be at least 1"));
        }
        if clients[..i].iter().any(|o| o.name == c.name) {
            errs.push(format!("clients[{i}].name: {:?} is used twice", c.name));
        }
    }
    let steps: Vec<Step> = raw
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| step(s, i, dur, &mut errs))
        .collect();
    let expect: Vec<Expectation> = raw
        .expect
        .iter()
        .enumerate()
        .filter_map(|(i, e)| expectation(e, i, &clients, &mut errs))
        .collect();
    if steps.iter().filter(|s| s.fault).count() > 1 {
        errs.push("steps: at most one step may be marked `fault = true`".into());
    }
    if steps.iter().filter(|s| s.recover).count() > 1 {
        errs.push("steps: at most one step may be marked `recover = true`".into());
    }
    let mut steps = steps;
    steps.sort_by_key(|s| s.at);
    if !steps.is_empty() && !steps.iter().any(|s| s.fault) {
        steps[0].fault = true;
    }
    let scenario = Scenario {
        name: raw.name.unwrap_or_else(|| origin.to_string()),
        description: raw.description,
        duration: dur,
        rate: raw.rate,
        path: raw.path,
        clients,
        steps,
        expect,
    };
    errs.extend(names(&scenario));
    if !errs.is_empty() {
        return Err(format!("{origin}:\n  {}", errs.join("\n  ")));
    }
    Ok(scenario)
}

fn step(s: &RawStep, i: usize, total: Duration, errs: &mut Vec<String>) -> Option<Step> {
    let p = format!("steps[{i}]");
    let at = duration(&s.at, &format!("{p}.at"), errs);
    // (A zero total means the duration itself was invalid: already reported.)
    if at > total && !total.is_zero() {
        errs.push(format!(
            "{p}.at: {} is after the end of the drill ({})",
            secs(at),
            secs(total)
        ));
    }
    let targets: Vec<(TargetKind, &String)> = [
        (TargetKind::Region, &s.region),
        (TargetKind::Az, &s.az),
        (TargetKind::Instance, &s.instance),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .collect();
    let action = match s.action.as_str() {
        "stop" | "start" => match (targets.as_slice(), s.action.as_str()) {
            ([(TargetKind::Instance, n)], "stop") => Action::Stop {
                instance: (*n).clone(),
            },
            ([(TargetKind::Instance, n)], _) => Action::Start {
                instance: (*n).clone(),
            },
            _ => {
                errs.push(format!(
                    "{p}: `{}` needs exactly `instance = \"NAME\"` (a demo instance)",
                    s.action
                ));
                return None;
            }
        },
        v @ ("drain" | "undrain" | "fail" | "restore") => {
            let verb = match v {
                "drain" => AdminVerb::Drain,
                "undrain" => AdminVerb::Undrain,
                "fail" => AdminVerb::Fail,
                _ => AdminVerb::Restore,
            };
            match targets.as_slice() {
                [(kind, name)] => Action::Admin {
                    verb,
                    kind: *kind,
                    name: (*name).clone(),
                },
                _ => {
                    errs.push(format!(
                        "{p}: `{v}` needs exactly one of `region`, `az` or `instance`"
                    ));
                    return None;
                }
            }
        }
        other => {
            errs.push(format!(
                "{p}.action: unknown action {other:?}; expected stop, start, drain, undrain, fail or restore"
            ));
            return None;
        }
    };
    Some(Step {
        at,
        action,
        fault: s.fault,
        recover: s.recover,
    })
}

fn expectation(
    e: &RawExpect,
    i: usize,
    clients: &[ClientGroup],
    errs: &mut Vec<String>,
) -> Option<Expectation> {
    let p = format!("expect[{i}]");
    // Which fields each kind takes; anything else set is an error.
    let allowed: &[&str] = match e.kind.as_str() {
        "max_failed" => &["max", "window"],
        "detect_within" => &["within"],
        "lost_at_most_in_flight" => &[],
        "moved_away" => &["within", "region", "az", "instance"],
        "dns_moves" => &["clients", "within"],
        "clients_follow" => &["clients", "within"],
        "max_health_changes" => &["instance", "max"],
        "failures_within_ttl" => &["clients"],
        "failure_budget" => &["max"],
        "recovers" => &["within"],
        other => {
            errs.push(format!(
                "{p}.kind: unknown expectation {other:?}; expected max_failed, detect_within, \
                 lost_at_most_in_flight, moved_away, dns_moves, clients_follow, \
                 max_health_changes, failures_within_ttl, failure_budget or recovers"
            ));
            return None;
        }
    };
    let set = [
        ("max", e.max.is_some()),
        ("window", e.window.is_some()),
        ("within", e.within.is_some()),
        ("clients", e.clients.is_some()),
        ("region", e.region.is_some()),
        ("az", e.az.is_some()),
        ("instance", e.instance.is_some()),
    ];
    let before = errs.len();
    for (field, present) in set {
        if present && !allowed.contains(&field) {
            errs.push(format!(
                "{p}.{field}: not used by `{}` (it takes: {})",
                e.kind,
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
    }
    let mut need = |field: &str, v: bool| {
        if !v {
            errs.push(format!("{p}: `{}` needs `{field}`", e.kind));
        }
    };
    match e.kind.as_str() {
        "max_failed" => need("max", e.max.is_some()),
        "detect_within" => need("within", e.within.is_some()),
        "moved_away" => need("within", e.within.is_some()),
        "dns_moves" => {
            need("clients", e.clients.is_some());
            need("within", e.within.is_some());
        }
        "clients_follow" => need("clients", e.clients.is_some()),
        "max_health_changes" => need("instance", e.instance.is_some()),
        "failures_within_ttl" => need("clients", e.clients.is_some()),
        _ => {}
    }
    if let Some(c) = &e.clients {
        if !clients.iter().any(|g| &g.name == c) {
            errs.push(format!(
                "{p}.clients: no client group {c:?} (groups: {})",
                clients
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let within = e
        .within
        .as_ref()
        .map(|w| duration(w, &format!("{p}.within"), errs));
    let window = match &e.window {
        None => Window::All,
        Some(w) => Window::parse(w).unwrap_or_else(|| {
            errs.push(format!(
                "{p}.window: unknown window {w:?}; expected all, before_fault, fault, \
                 after_detect, after_recover or outside_fault"
            ));
            Window::All
        }),
    };
    let served = match (&e.region, &e.az, &e.instance) {
        (Some(r), None, None) => Some(Served::Region(r.clone())),
        (None, Some(a), None) => Some(Served::Az(a.clone())),
        (None, None, Some(n)) => Some(Served::Instance(n.clone())),
        _ => None,
    };
    if e.kind == "moved_away" && served.is_none() {
        errs.push(format!(
            "{p}: `moved_away` needs exactly one of `region`, `az` or `instance`"
        ));
    }
    let max_u32 = e.max.map(|m| u32::try_from(m).unwrap_or(u32::MAX));
    if errs.len() > before {
        return None;
    }
    Some(match e.kind.as_str() {
        "max_failed" => Expectation::MaxFailed {
            max: e.max?,
            window,
        },
        "detect_within" => Expectation::DetectWithin { within: within? },
        "lost_at_most_in_flight" => Expectation::LostAtMostInFlight,
        "moved_away" => Expectation::MovedAway {
            target: served?,
            within: within?,
        },
        "dns_moves" => Expectation::DnsMoves {
            clients: e.clients.clone()?,
            within: within?,
        },
        "clients_follow" => Expectation::ClientsFollow {
            clients: e.clients.clone()?,
            within,
        },
        "failures_within_ttl" => Expectation::FailuresWithinTtl {
            clients: e.clients.clone()?,
        },
        "failure_budget" => Expectation::FailureBudget { max: e.max },
        "recovers" => Expectation::Recovers { within },
        _ => Expectation::MaxHealthChanges {
            instance: e.instance.clone()?,
            max: max_u32,
        },
    })
}
