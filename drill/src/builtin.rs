//! The built-in scenarios, derived from the world so their timing follows its health settings:
//! `instance-crash`, `az-outage`, `region-outage`, `planned-drain`, `flap`, `region-blackout`.
//! They assume the demo world's shape: the first region is where things break, its clients are
//! the first client group.
//!
//! `region-outage` stops a region's gateways and services but not its balancers: with remote
//! spill (issue 17) the region's front door keeps serving the clients that still hold its DNS
//! answer, so no request may fail after detection. `region-blackout` also stops the region's L4
//! listeners: clients can only follow DNS, and every failure must be one that detection plus
//! the answer's TTL explains (`ttl.rs`).
//!
//! Detection budgets are the promise, `fall × interval + one interval`, stretched by the
//! check jitter, plus one `/status` poll (the drill sees a change up to 100 ms + a round trip
//! late).

use super::model::CheckParams;
use super::scenario::secs;
use super::scenario::{
    default_clients_groups, default_path, Action, AdminVerb, Expectation, Scenario, Served, Step,
    TargetKind, Window,
};
use std::collections::BTreeMap;
use std::time::Duration;
use switchyard_config::health::HealthCheck;
use switchyard_config::World;

/// Names of the built-in scenarios.
pub(crate) const NAMES: [&str; 6] = [
    "instance-crash",
    "az-outage",
    "region-outage",
    "planned-drain",
    "flap",
    "region-blackout",
];

/// Slack for observing a change through `/status` polling.
const OBSERVE: Duration = Duration::from_millis(150);
/// Default total request rate.
const RATE: u32 = 40;

/// Health check parameters of every checked instance (pool members and service instances).
pub(crate) fn check_params(world: &World) -> BTreeMap<String, CheckParams> {
    let p = |h: &HealthCheck| CheckParams {
        interval_ms: h.interval.as_millis() as u64,
        timeout_ms: h.timeout.as_millis() as u64,
        jitter: h.jitter,
        rise: h.rise,
        fall: h.fall,
    };
    let mut out = BTreeMap::new();
    for r in &world.regions {
        for pool in &r.pools {
            for m in &pool.members {
                out.insert(m.name.clone(), p(&pool.health));
            }
        }
    }
    for s in &world.services {
        for i in &s.instances {
            out.insert(i.name.clone(), p(&s.health));
        }
    }
    out
}

/// `fall × interval + interval`, stretched by jitter, plus the observation slack.
fn detect_budget(h: &HealthCheck) -> Duration {
    let base = h.interval * (h.fall + 1);
    base.mul_f64(1.0 + h.jitter) + OBSERVE
}

/// Time for a restarted instance to be seen up again.
fn rise_time(h: &HealthCheck) -> Duration {
    h.interval * (h.rise + 1)
}

struct Shape<'a> {
    region: &'a switchyard_config::region::Region,
    az: &'a str,
    pool_health: &'a HealthCheck,
    svc_health: &'a HealthCheck,
    /// The first service's instance in the region's first AZ.
    svc_instance: String,
    /// Demo service instances in the region / in the AZ.
    region_services: Vec<String>,
    az_services: Vec<String>,
    /// L4 pool members (gateway instances) in the region / in the AZ.
    region_members: Vec<String>,
    az_members: Vec<String>,
    /// Names of the world's gateway instances (these can be stopped for real).
    gateways: Vec<String>,
    /// The region's L4 listeners (stopped by `region-blackout`).
    listeners: Vec<String>,
    ttl: Duration,
}

fn shape(world: &World) -> Result<Shape<'_>, String> {
    let region = world
        .regions
        .first()
        .ok_or("the world has no region to break")?;
    let az = region
        .azs
        .first()
        .map(|a| a.name.as_str())
        .ok_or_else(|| format!("region {} has no AZ", region.name))?;
    let pool = region
        .pools
        .first()
        .ok_or_else(|| format!("region {} has no pool", region.name))?;
    let service = world.services.first().ok_or("the world has no service")?;
    let svc_instance = service
        .instances
        .iter()
        .find(|i| i.region == region.name && i.az == az && i.demo)
        .map(|i| i.name.clone())
        .ok_or_else(|| {
            format!(
                "service {} has no demo instance in {}/{az} to stop",
                service.name, region.name
            )
        })?;
    let demo = |f: &dyn Fn(&switchyard_config::services::ServiceInstance) -> bool| {
        world
            .services
            .iter()
            .flat_map(|s| &s.instances)
            .filter(|i| i.demo && f(i))
            .map(|i| i.name.clone())
            .collect::<Vec<_>>()
    };
    let members = |f: &dyn Fn(&switchyard_config::lb::Member) -> bool| {
        region
            .pools
            .iter()
            .flat_map(|p| &p.members)
            .filter(|m| f(m))
            .map(|m| m.name.clone())
            .collect::<Vec<_>>()
    };
    let ttl = world
        .dns
        .gslb
        .first()
        .map(|g| g.ttl)
        .ok_or("the world has no GSLB name")?;
    Ok(Shape {
        region,
        az,
        pool_health: &pool.health,
        svc_health: &service.health,
        svc_instance,
        region_services: demo(&|i| i.region == region.name),
        az_services: demo(&|i| i.region == region.name && i.az == az),
        region_members: members(&|_| true),
        az_members: members(&|m| m.az == az),
        gateways: world
            .gateway
            .instances
            .iter()
            .map(|g| g.name.clone())
            .collect(),
        listeners: region.listeners.iter().map(|l| l.name.clone()).collect(),
        ttl,
    })
}

fn step(at: Duration, action: Action) -> Step {
    Step {
        at,
        action,
        fault: false,
        recover: false,
    }
}

fn admin(verb: AdminVerb, kind: TargetKind, name: &str) -> Action {
    Action::Admin {
        verb,
        kind,
        name: name.to_string(),
    }
}

/// Takes instances down: demo services and gateway instances stop for real; other L4 members are
/// forced down with `fail`. Then brings them back: services first,
/// and the members once the services had time to rise, so nothing comes back half-ready.
fn outage(
    at: Duration,
    back: Duration,
    services: &[String],
    members: &[String],
    svc_rise: Duration,
    is_gateway: &dyn Fn(&str) -> bool,
) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    // Gateway instances of this world stop for real (listener closed, connections reset), so
    // health checks must detect the outage; other pool members can only be forced down.
    let (gateways, others): (Vec<&String>, Vec<&String>) =
        members.iter().partition(|m| is_gateway(m));
    for m in &gateways {
        steps.push(step(
            at,
            Action::Stop {
                instance: (*m).clone(),
            },
        ));
    }
    for m in &others {
        steps.push(step(at, admin(AdminVerb::Fail, TargetKind::Instance, m)));
    }
    for s in services {
        steps.push(step(
            at,
            Action::Stop {
                instance: s.clone(),
            },
        ));
    }
    for s in services {
        steps.push(step(
            back,
            Action::Start {
                instance: s.clone(),
            },
        ));
    }
    let restore_at = if members.is_empty() {
        back
    } else {
        back + svc_rise
    };
    for m in gateways {
        steps.push(step(
            restore_at,
            Action::Start {
                instance: m.clone(),
            },
        ));
    }
    for m in others {
        steps.push(step(
            restore_at,
            admin(AdminVerb::Restore, TargetKind::Instance, m),
        ));
    }
    if let Some(first) = steps.first_mut() {
        first.fault = true;
    }
    // The fault ends when the first instance comes back (traffic may reach it from then on).
    if let Some(back) = steps.iter_mut().find(|s| s.at >= back) {
        back.recover = true;
    }
    steps
}

/// `region-blackout`: the region's L4 listeners stop first (the fault) and start again first
/// (the recovery: the front door is back, spilling until the gateways return).
fn front_door(steps: &mut Vec<Step>, at: Duration, back: Duration, listeners: &[String]) {
    for st in steps.iter_mut() {
        st.fault = false;
        st.recover = false;
    }
    let first_back = steps
        .iter()
        .position(|st| st.at >= back)
        .unwrap_or(steps.len());
    for (k, l) in listeners.iter().enumerate() {
        let mut up = step(
            back,
            Action::Start {
                instance: l.clone(),
            },
        );
        up.recover = k == 0;
        steps.insert(first_back + k, up);
    }
    for l in listeners.iter().rev() {
        steps.insert(
            0,
            step(
                at,
                Action::Stop {
                    instance: l.clone(),
                },
            ),
        );
    }
    if let Some(first) = steps.first_mut() {
        first.fault = true;
    }
}

/// Builds a built-in scenario for `world`; None if `name` is not a built-in.
pub(crate) fn scenario(name: &str, world: &World) -> Option<Result<Scenario, String>> {
    if !NAMES.contains(&name) {
        return None;
    }
    Some(shape(world).map(|s| build(name, &s)))
}

fn build(name: &str, s: &Shape<'_>) -> Scenario {
    let clients = default_clients_groups();
    let first_group = clients[0].name.clone();
    let client_interval = Duration::from_secs_f64(
        f64::from(clients.iter().map(|c| c.count).sum::<u32>()) / f64::from(RATE),
    );
    let start = Duration::from_secs(1);
    let svc_budget = detect_budget(s.svc_health);
    let pool_budget = detect_budget(s.pool_health);
    let both = svc_budget.max(pool_budget);
    let svc_rise = rise_time(s.svc_health);
    let (description, steps, expect, duration) = match name {
        "instance-crash" => {
            let back = start + svc_budget + Duration::from_millis(1500);
            let mut steps = vec![
                step(
                    start,
                    Action::Stop {
                        instance: s.svc_instance.clone(),
                    },
                ),
                step(
                    back,
                    Action::Start {
                        instance: s.svc_instance.clone(),
                    },
                ),
            ];
            steps[0].fault = true;
            steps[1].recover = true;
            (
                format!(
                    "service instance {} crashes (listener closed, connections reset) and comes back",
                    s.svc_instance
                ),
                steps,
                vec![
                    Expectation::DetectWithin { within: svc_budget },
                    Expectation::LostAtMostInFlight,
                ],
                back + svc_rise + Duration::from_secs(1),
            )
        }
        "az-outage" => {
            let back = start + both + Duration::from_millis(1500);
            let steps = outage(start, back, &s.az_services, &s.az_members, svc_rise, &|n| {
                s.gateways.iter().any(|g| g == n)
            });
            let end = steps.last().map(|l| l.at).unwrap_or(back) + Duration::from_secs(1);
            (
                format!(
                    "every instance in AZ {} stops (its services and gateway stop) and comes back",
                    s.az
                ),
                steps,
                vec![
                    Expectation::DetectWithin { within: both },
                    Expectation::MovedAway {
                        target: Served::Az(s.az.to_string()),
                        within: both,
                    },
                ],
                end,
            )
        }
        "region-outage" | "region-blackout" => {
            let follow = pool_budget + s.ttl + client_interval + Duration::from_millis(100);
            let back = start + follow + Duration::from_millis(1500);
            let mut steps = outage(
                start,
                back,
                &s.region_services,
                &s.region_members,
                svc_rise,
                &|n| s.gateways.iter().any(|g| g == n),
            );
            let blackout = name == "region-blackout";
            if blackout {
                front_door(&mut steps, start, back, &s.listeners);
            }
            let end = steps.last().map(|l| l.at).unwrap_or(back) + Duration::from_secs(2);
            let region = &s.region.name;
            let mut expect = vec![
                Expectation::DnsMoves {
                    clients: first_group.clone(),
                    within: pool_budget,
                },
                Expectation::ClientsFollow {
                    clients: first_group.clone(),
                    within: None,
                },
            ];
            let description = if blackout {
                // the front door is gone: only DNS can move the clients
                expect.extend([
                    Expectation::FailuresWithinTtl {
                        clients: first_group,
                    },
                    Expectation::MovedAway {
                        target: Served::Region(region.clone()),
                        within: follow,
                    },
                ]);
                format!(
                    "region {region} goes dark, front door included (its L4 listeners, gateways and services stop): \
                     its clients fail until DNS moves them and their cached answer expires (detection {} + TTL {}s)",
                    secs(pool_budget),
                    s.ttl.as_secs()
                )
            } else {
                // the front door stays: it spills to the next region while DNS converges
                expect.extend([
                    Expectation::LostAtMostInFlight,
                    Expectation::MovedAway {
                        target: Served::Region(region.clone()),
                        within: pool_budget,
                    },
                ]);
                format!(
                    "region {region} goes dark behind its front door (its gateways and services stop, its L4 \
                     listeners stay): they spill to the next region, so no request may fail after detection"
                )
            };
            expect.push(Expectation::MaxFailed {
                max: 0,
                window: Window::OutsideFault,
            });
            (description, steps, expect, end)
        }
        "planned-drain" => {
            let back = start + Duration::from_secs(3);
            let mut steps = vec![
                step(start, admin(AdminVerb::Drain, TargetKind::Az, s.az)),
                step(back, admin(AdminVerb::Undrain, TargetKind::Az, s.az)),
            ];
            steps[0].fault = true;
            steps[1].recover = true;
            (
                format!(
                    "AZ {} is drained (existing connections finish within the pool's drain deadline), then undrained",
                    s.az
                ),
                steps,
                vec![Expectation::MaxFailed {
                    max: 0,
                    window: Window::All,
                }],
                back + Duration::from_secs(2),
            )
        }
        _ => {
            // flap: outages too short for `fall` failed checks, then long enough up to settle.
            let down = (s.svc_health.interval / 5).min(Duration::from_millis(100));
            let cycle = s.svc_health.interval * 3 / 2;
            let mut steps = Vec::new();
            for k in 0..4u32 {
                let at = start + cycle * k;
                steps.push(step(
                    at,
                    Action::Stop {
                        instance: s.svc_instance.clone(),
                    },
                ));
                steps.push(step(
                    at + down,
                    Action::Start {
                        instance: s.svc_instance.clone(),
                    },
                ));
            }
            steps[0].fault = true;
            let last = steps.len() - 1;
            steps[last].recover = true;
            let end = steps[last].at + svc_rise + Duration::from_secs(1);
            (
                format!(
                    "service instance {} flaps: down {}ms every {}ms, four times; health must damp it",
                    s.svc_instance,
                    down.as_millis(),
                    cycle.as_millis()
                ),
                steps,
                vec![Expectation::MaxHealthChanges {
                    instance: s.svc_instance.clone(),
                    max: None,
                }],
                end,
            )
        }
    };
    // Every drill first checks its baseline: nothing fails before the fault.
    let mut expect = expect;
    expect.insert(
        0,
        Expectation::MaxFailed {
            max: 0,
            window: Window::BeforeFault,
        },
    );
    Scenario {
        name: name.to_string(),
        description,
        duration,
        rate: RATE,
        path: default_path(),
        clients,
        steps,
        expect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> World {
        switchyard_config::demo_world()
    }

    fn labels(s: &Scenario) -> Vec<(u64, String, bool, bool)> {
        s.steps
            .iter()
            .map(|st| {
                (
                    st.at.as_millis() as u64,
                    st.action.label(),
                    st.fault,
                    st.recover,
                )
            })
            .collect()
    }

    #[test]
    fn instance_crash_follows_the_service_health_settings() {
        let s = scenario("instance-crash", &demo()).unwrap().unwrap();
        // interval 500ms, fall 2, jitter 0.1 (demo): (3 × 500ms) × 1.1 + 150ms = 1.8s.
        assert_eq!(
            s.expect[1..],
            vec![
                Expectation::DetectWithin {
                    within: Duration::from_millis(1800)
                },
                Expectation::LostAtMostInFlight
            ]
        );
        assert_eq!(
            labels(&s),
            [
                (1000, "stop user-us-east-a".into(), true, false),
                (4300, "start user-us-east-a".into(), false, true),
            ]
        );
        assert_eq!(s.duration, Duration::from_millis(6800));
    }

    #[test]
    fn az_outage_stops_the_az_and_its_gateway() {
        let s = scenario("az-outage", &demo()).unwrap().unwrap();
        let l = labels(&s);
        assert_eq!(l[0], (1000, "stop gw-us-east-a".into(), true, false));
        assert_eq!(
            l[1..5].iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            [
                "stop user-us-east-a",
                "stop order-us-east-a",
                "stop payment-us-east-a",
                "stop cart-us-east-a"
            ]
        );
        assert_eq!(
            l.last().unwrap(),
            &(5800, "start gw-us-east-a".into(), false, false)
        );
        assert_eq!(l[5], (4300, "start user-us-east-a".into(), false, true));
        assert!(matches!(
            &s.expect[2],
            Expectation::MovedAway { target: Served::Az(a), .. } if a == "us-east-a"
        ));
    }

    #[test]
    fn region_outage_waits_for_one_ttl() {
        let s = scenario("region-outage", &demo()).unwrap().unwrap();
        let l = labels(&s);
        assert_eq!(l.len(), 2 + 8 + 8 + 2);
        assert_eq!(l[0].1, "stop gw-us-east-a");
        // 1s + (1.8s detection + 10s TTL + 0.2s client interval + 0.1s) + 1.5s.
        assert_eq!(l[10].0, 14_600);
        assert_eq!(s.duration, Duration::from_millis(14_600 + 1500 + 2000));
        assert_eq!(
            s.expect[1],
            Expectation::DnsMoves {
                clients: "us".into(),
                within: Duration::from_millis(1800)
            }
        );
    }

    #[test]
    fn region_outage_expects_nothing_lost_after_detection() {
        let s = scenario("region-outage", &demo()).unwrap().unwrap();
        assert_eq!(
            s.expect[3..],
            [
                Expectation::LostAtMostInFlight,
                Expectation::MovedAway {
                    target: Served::Region("us-east".into()),
                    within: Duration::from_millis(1800)
                },
                Expectation::MaxFailed {
                    max: 0,
                    window: Window::OutsideFault
                }
            ]
        );
        assert!(!labels(&s).iter().any(|l| l.1.contains("us-east-http")));
    }

    #[test]
    fn region_blackout_stops_the_front_door_first_and_brings_it_back_first() {
        let s = scenario("region-blackout", &demo()).unwrap().unwrap();
        let l = labels(&s);
        assert_eq!(l.len(), 2 + 2 + 8 + 8 + 2);
        assert_eq!(l[0], (1000, "stop us-east-http".into(), true, false));
        assert_eq!(l[1], (1000, "stop gw-us-east-a".into(), false, false));
        assert_eq!(l.iter().filter(|x| x.2).count(), 1);
        let back = l.iter().position(|x| x.3).unwrap();
        assert_eq!(l[back], (14_600, "start us-east-http".into(), false, true));
        assert_eq!(l[back + 1].1, "start user-us-east-a");
        assert_eq!(
            s.expect[3],
            Expectation::FailuresWithinTtl {
                clients: "us".into()
            }
        );
        assert!(
            s.description.contains("detection 1.80s + TTL 10s"),
            "{}",
            s.description
        );
    }

    #[test]
    fn flap_outages_are_shorter_than_fall_allows() {
        let s = scenario("flap", &demo()).unwrap().unwrap();
        let l = labels(&s);
        assert_eq!(l.len(), 8);
        assert_eq!(l[0], (1000, "stop user-us-east-a".into(), true, false));
        assert_eq!(l[1], (1100, "start user-us-east-a".into(), false, false));
        assert_eq!(l[2].0, 1750);
        assert!(l[7].3);
        assert_eq!(check_params(&demo())["user-us-east-a"].fall, 2);
    }

    #[test]
    fn planned_drain_and_unknown_names() {
        let s = scenario("planned-drain", &demo()).unwrap().unwrap();
        assert_eq!(
            labels(&s),
            [
                (1000, "drain az us-east-a".into(), true, false),
                (4000, "undrain az us-east-a".into(), false, true)
            ]
        );
        assert!(scenario("meteor-strike", &demo()).is_none());
    }
}
