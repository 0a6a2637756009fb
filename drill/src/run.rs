//! One drill end to end: load the world and the scenario, check the names, pick or start the
//! target, wait until it is ready, run load + watchers + steps, undo what the steps left broken,
//! then report (table, JSON, SVG).

use super::client::{self, Counters, LoadSpec};
use super::model::{Observations, StepRun};
use super::report::Report;
use super::scenario::{Action, Expectation, Scenario, Served};
use super::target::{self, OwnWorld};
use super::{builtin, observe, svg, DrillOptions};
use anyhow::{anyhow, bail, Context};
use hickory_proto::rr::Name;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_admin_client::AdminClient;
use switchyard_config::World;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) async fn drill(args: DrillOptions) -> anyhow::Result<u8> {
    let world = match &args.config {
        Some(p) => switchyard_config::load_file(p).map_err(|e| anyhow!("{e}"))?,
        None => switchyard_config::demo_world(),
    };
    let mut scenario = load_scenario(&args.scenario, &world)?;
    if let Some(r) = args.rate {
        if r == 0 {
            bail!("--rate must be at least 1");
        }
        scenario.rate = r;
    }
    if let Some(d) = args.duration {
        if let Some(last) = scenario.steps.iter().map(|s| s.at).max() {
            if d < last {
                bail!(
                    "--duration {:?} ends before the last step (at {:?})",
                    d,
                    last
                );
            }
        }
        scenario.duration = d;
    }
    check_names(&scenario, &world).map_err(|e| anyhow!("scenario {}:\n  {e}", scenario.name))?;
    implicit_expectations(&mut scenario, &world, args.duration.is_some());
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    eprintln!("drill: report to {}", args.out.display());

    let admin_token = args
        .admin_token
        .clone()
        .or_else(|| world.admin.token.clone())
        .unwrap_or_default();
    let (target_url, own) = match &args.target {
        Some(t) => {
            if !target::answers(t).await {
                bail!("no admin API answers at {t}");
            }
            (t.clone(), None)
        }
        None => {
            let url = format!("http://{}", world.admin.listen);
            if target::answers(&url).await {
                eprintln!("drill: using the node already running at {url}");
                (url, None)
            } else {
                eprintln!("drill: nothing answers at {url}; starting the world for this drill");
                let w =
                    OwnWorld::start(args.config.as_deref(), &args.out.join("world.log")).await?;
                (url, Some(w))
            }
        }
    };
    let admin = AdminClient::new(target_url.clone(), admin_token);
    let outcome = drive(&args, &world, &scenario, &admin, own.is_some()).await;
    if let Some(w) = own {
        w.stop().await;
    }
    let (obs, poll_errors, dns) = outcome?;
    let dns = match (args.direct, args.resolver) {
        (Some(d), _) => format!("skipped (direct to {d})"),
        (None, Some(r)) => format!(
            "{dns} (clients through the resolver {r} with RD=1; DNS moves measured at {dns})"
        ),
        (None, None) => dns.to_string(),
    };
    let report = Report::build(scenario, target_url, dns, obs, poll_errors);
    let json = serde_json::to_string_pretty(&report)?;
    let json_path = args.out.join("report.json");
    std::fs::write(&json_path, json)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let svg_path = args.out.join("timeline.svg");
    let title = format!(
        "switchyard drill {} — {}",
        report.scenario.name,
        if report.pass { "PASS" } else { "FAIL" }
    );
    std::fs::write(
        &svg_path,
        svg::render(
            &title,
            &report.samples,
            report.duration_ms,
            &report.chart_events(),
        ),
    )
    .with_context(|| format!("cannot write {}", svg_path.display()))?;
    print!("{}", report.render());
    println!(
        "report: {}  chart: {}",
        json_path.display(),
        svg_path.display()
    );
    let _ = std::io::stdout().flush();
    Ok(if report.pass { 0 } else { 1 })
}

fn load_scenario(arg: &str, world: &World) -> anyhow::Result<Scenario> {
    if let Some(s) = builtin::scenario(arg, world) {
        return s.map_err(|e| anyhow!("built-in scenario {arg}: {e}"));
    }
    let path = Path::new(arg);
    if !path.exists() {
        bail!(
            "{arg:?} is neither a built-in scenario ({}) nor a scenario file",
            builtin::NAMES.join(", ")
        );
    }
    let src =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let names = |s: &Scenario| match check_names(s, world) {
        Ok(()) => Vec::new(),
        Err(e) => e.split("\n  ").map(str::to_string).collect(),
    };
    super::scenario::parse_checked(&src, &path.display().to_string(), &names)
        .map_err(|e| anyhow!(e))
}

/// Every name a scenario uses must exist in the world (before anything is broken).
fn check_names(s: &Scenario, world: &World) -> Result<(), String> {
    // What `stop`/`start` can act on: demo service instances, gateway instances and L4
    // listeners (`region-blackout`).
    let demo: Vec<&str> = world
        .services
        .iter()
        .flat_map(|s| &s.instances)
        .filter(|i| i.demo)
        .map(|i| i.name.as_str())
        .chain(world.gateway.instances.iter().map(|g| g.name.as_str()))
        .chain(
            world
                .regions
                .iter()
                .flat_map(|r| &r.listeners)
                .map(|l| l.name.as_str()),
        )
        .collect();
    let instances: Vec<&str> = world
        .regions
        .iter()
        .flat_map(|r| &r.pools)
        .flat_map(|p| &p.members)
        .map(|m| m.name.as_str())
        .chain(world.gateway.instances.iter().map(|g| g.name.as_str()))
        .chain(
            world
                .services
                .iter()
                .flat_map(|s| &s.instances)
                .map(|i| i.name.as_str()),
        )
        .collect();
    let azs: Vec<&str> = world
        .regions
        .iter()
        .flat_map(|r| &r.azs)
        .map(|a| a.name.as_str())
        .collect();
    let regions: Vec<&str> = world.regions.iter().map(|r| r.name.as_str()).collect();
    let mut errs = Vec::new();
    let mut known = |kind: &str, name: &str, list: &[&str]| {
        if !list.contains(&name) {
            errs.push(format!("no {kind} {name:?} in the world"));
        }
    };
    for st in &s.steps {
        match &st.action {
            Action::Stop { instance } | Action::Start { instance } => {
                known("demo service or gateway instance", instance, &demo)
            }
            Action::Admin { kind, name, .. } => match kind {
                super::scenario::TargetKind::Region => known("region", name, &regions),
                super::scenario::TargetKind::Az => known("AZ", name, &azs),
                super::scenario::TargetKind::Instance => known("instance", name, &instances),
            },
        }
    }
    for e in &s.expect {
        match e {
            Expectation::MovedAway { target, .. } => match target {
                Served::Region(n) => known("region", n, &regions),
                Served::Az(n) => known("AZ", n, &azs),
                Served::Instance(n) => known("instance", n, &instances),
            },
            Expectation::MaxHealthChanges { instance, .. } => {
                known("instance", instance, &instances)
            }
            _ => {}
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n  "))
    }
}

/// Every scenario is also judged by what it must not get wrong: failures during the fault are
/// explained (`failure_budget`), traffic comes back after recovery (`recovers`: the load runs long
/// enough after the last step for the broken things to rise, and for moved clients to outlive
/// one TTL), and the node is left as found (`restored_as_found`). A scenario that states one of
/// them keeps its own.
fn implicit_expectations(s: &mut Scenario, world: &World, fixed_duration: bool) {
    fn has(s: &Scenario, f: fn(&Expectation) -> bool) -> bool {
        s.expect.iter().any(f)
    }
    if !s.steps.is_empty() && !has(s, |e| matches!(e, Expectation::FailureBudget { .. })) {
        s.expect.push(Expectation::FailureBudget { max: None });
    }
    if let Some(recover) = s.steps.iter().find(|st| st.recover).map(|st| st.at) {
        let within = after_budget(s, world, recover);
        match s
            .expect
            .iter_mut()
            .find(|e| matches!(e, Expectation::Recovers { .. }))
        {
            Some(Expectation::Recovers { within: w @ None }) => *w = Some(within),
            Some(_) => {}
            None => s.expect.push(Expectation::Recovers {
                within: Some(within),
            }),
        }
        let w = s
            .expect
            .iter()
            .find_map(|e| match e {
                Expectation::Recovers { within } => *within,
                _ => None,
            })
            .unwrap_or(within);
        // the after phase: at least two seconds of traffic once recovery had time to show
        let needed = recover + w + Duration::from_secs(2);
        if !fixed_duration && s.duration < needed {
            s.duration = needed;
        }
    }
    if !s.steps.is_empty() && !has(s, |e| matches!(e, Expectation::RestoredAsFound)) {
        s.expect.push(Expectation::RestoredAsFound);
    }
}

/// How long after the recovery step traffic needs to be back: the last step's offset, plus the
/// slowest rise of a restarted instance (`interval × (rise + 1)` stretched by jitter, plus a
/// `/status` poll), plus, when DNS moved clients, one TTL and one request interval.
fn after_budget(s: &Scenario, world: &World, recover: Duration) -> Duration {
    let last = s.steps.iter().map(|st| st.at).max().unwrap_or(recover);
    let broke = s.steps.iter().any(|st| {
        matches!(
            st.action,
            Action::Stop { .. }
                | Action::Admin {
                    verb: super::scenario::AdminVerb::Fail,
                    ..
                }
        )
    });
    let rise = if broke {
        builtin::check_params(world)
            .values()
            .map(|p| {
                Duration::from_millis(p.interval_ms * u64::from(p.rise + 1)).mul_f64(1.0 + p.jitter)
            })
            .max()
            .unwrap_or_default()
            + Duration::from_millis(150)
    } else {
        Duration::ZERO
    };
    let dns = s.expect.iter().any(|e| {
        matches!(
            e,
            Expectation::DnsMoves { .. } | Expectation::ClientsFollow { .. }
        )
    }) || s.steps.iter().any(|st| {
        matches!(
            st.action,
            Action::Admin {
                kind: super::scenario::TargetKind::Region,
                ..
            }
        )
    });
    let follow = if dns {
        let ttl = world.dns.gslb.first().map(|g| g.ttl).unwrap_or_default();
        let clients: u32 = s.clients.iter().map(|c| c.count).sum();
        ttl + Duration::from_secs_f64(f64::from(clients) / f64::from(s.rate.max(1)))
    } else {
        Duration::ZERO
    };
    (last - recover) + rise + follow + Duration::from_millis(500)
}

/// The node's state before the drill: refuses to start on an unhealthy world (it would measure
/// an outage it did not cause) unless `force`.
async fn healthy_at_start(
    admin: &AdminClient,
    force: bool,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let (code, v) = admin.call("GET", "/status").await?;
    if code != 200 {
        bail!("the admin API answered {code} to GET /status");
    }
    let state = observe::world_state(&v);
    let problems = observe::problems(&state);
    if !problems.is_empty() {
        let list = problems.join("\n  ");
        if !force {
            bail!(
                "the node is not healthy, so the drill would measure an outage it did not cause:\n  {list}\nwait for it to recover (or undo what is in force), or pass --force"
            );
        }
        eprintln!("drill: warning: starting on an unhealthy node (--force):\n  {list}");
    }
    Ok(state)
}

/// After the undo steps: lifts passive ejections the drill caused (`restore instance NAME`) and
/// waits (bounded by the slowest rise, plus 2 s) until `/status` looks as it did before.
async fn restore_as_found(
    admin: &AdminClient,
    world: &World,
    before: &std::collections::BTreeMap<String, String>,
) -> super::model::Restore {
    let t0 = Instant::now();
    let slowest = builtin::check_params(world)
        .values()
        .map(|p| {
            Duration::from_millis(p.interval_ms * u64::from(p.rise + 2)).mul_f64(1.0 + p.jitter)
        })
        .max()
        .unwrap_or_default();
    let deadline = t0 + (slowest + Duration::from_secs(2)).min(Duration::from_secs(30));
    let mut lifted = Vec::new();
    let mut differences;
    loop {
        differences = match admin.call("GET", "/status").await {
            Ok((200, v)) => {
                let now = observe::world_state(&v);
                for (name, state) in &now {
                    let was_ejected = before.get(name).is_some_and(|b| b.starts_with("ejected"));
                    if state.starts_with("ejected") && !was_ejected && !lifted.contains(name) {
                        let lever = Action::Admin {
                            verb: super::scenario::AdminVerb::Restore,
                            kind: super::scenario::TargetKind::Instance,
                            name: name.clone(),
                        };
                        match apply(admin, &lever).await {
                            Ok(()) => lifted.push(name.clone()),
                            Err(e) => eprintln!(
                                "drill: warning: could not lift the ejection of {name}: {e}"
                            ),
                        }
                    }
                }
                observe::differences(before, &now)
            }
            Ok((code, _)) => vec![format!("GET /status answered {code}")],
            Err(e) => vec![format!("GET /status: {e}")],
        };
        if differences.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    super::model::Restore {
        waited_ms: t0.elapsed().as_millis() as u64,
        lifted,
        differences,
    }
}

/// Waits until the node is ready, every checked instance has a health verdict, and DNS answers.
async fn preflight(admin: &AdminClient, spec: &LoadSpec, steps: bool) -> anyhow::Result<()> {
    if steps {
        // A mutation on a name that cannot exist: 404 proves the token, 401 refuses it, and
        // nothing changes either way.
        match admin.call("POST", "/v1/regions/drill-token-check/drain").await {
            Ok((401, v)) => bail!(
                "the admin API refused the admin token (401, {}): pass --admin-token or set SWITCHYARD_ADMIN_TOKEN",
                v["error"].as_str().unwrap_or("no reason given")
            ),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = admin.call("GET", "/status").await;
        let settled = match &status {
            // Every actively checked instance has had its first verdict.
            Ok((200, v)) => {
                v["ready"] != serde_json::Value::Bool(false)
                    && observe::health_fields(v)
                        .iter()
                        .filter(|((_, f), _)| f == "active_check")
                        .all(|(_, h)| h != "unchecked")
            }
            _ => false,
        };
        if settled {
            break;
        }
        if Instant::now() > deadline {
            eprintln!(
                "drill: warning: some instances still have no health verdict; starting anyway"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for g in spec.groups.iter().filter(|_| spec.direct.is_none()) {
        super::dns::resolve(
            spec.dns,
            &spec.name,
            g.ecs,
            Duration::from_millis(500),
            false,
        )
        .await
        .map_err(|e| {
            anyhow!(
                "DNS at {} does not answer {} for {} clients ({e}); is the DNS server running?",
                spec.dns,
                spec.name,
                g.name
            )
        })?;
        if let Some(r) = spec.resolver {
            super::dns::resolve(r, &spec.name, g.ecs, Duration::from_secs(2), true)
                .await
                .map_err(|e| {
                    anyhow!(
                        "the resolver at {r} does not answer {} for {} clients ({e}); does it reach the DNS server at {}?",
                        spec.name,
                        g.name,
                        spec.dns
                    )
                })?;
        }
    }
    Ok(())
}

fn load_spec(
    args: &DrillOptions,
    world: &World,
    scenario: &Scenario,
    bearer: String,
) -> anyhow::Result<LoadSpec> {
    let dns = args
        .dns
        .or_else(|| target::dns_addr(world))
        .ok_or_else(|| anyhow!("the world has no DNS listener; pass --dns"))?;
    let gslb = world
        .dns
        .gslb
        .first()
        .ok_or_else(|| anyhow!("the world has no GSLB name to resolve"))?;
    let name = Name::from_str(&gslb.name).map_err(|e| anyhow!("GSLB name {}: {e}", gslb.name))?;
    let port = world
        .regions
        .iter()
        .flat_map(|r| &r.listeners)
        .flat_map(|l| &l.addrs)
        .map(SocketAddr::port)
        .next()
        .or(gslb.probe_port)
        .ok_or_else(|| anyhow!("the world has no L4 listener to send requests to"))?;
    let mut vip_regions: HashMap<IpAddr, String> = HashMap::new();
    for r in &world.regions {
        for v in &r.vips {
            vip_regions.insert(*v, r.name.clone());
        }
    }
    Ok(LoadSpec {
        dns,
        name,
        port,
        path: scenario.path.clone(),
        host: gslb.name.trim_end_matches('.').to_string(),
        bearer,
        rate: scenario.rate,
        duration: scenario.duration,
        groups: scenario.clients.clone(),
        vip_regions,
        direct: args.direct,
        resolver: args.resolver,
    })
}

type Outcome = (Observations, u32, SocketAddr);

async fn drive(
    args: &DrillOptions,
    world: &World,
    scenario: &Scenario,
    admin: &AdminClient,
    own_world: bool,
) -> anyhow::Result<Outcome> {
    let bearer = match &args.token {
        Some(t) => t.clone(),
        None => target::mint_token(world)?,
    };
    let spec = Arc::new(load_spec(args, world, scenario, bearer)?);
    preflight(admin, &spec, !scenario.steps.is_empty()).await?;
    let found = healthy_at_start(admin, args.force).await?;

    let t0 = Instant::now();
    let stop = CancellationToken::new();
    let status = tokio::spawn(observe::watch_status(admin.clone(), t0, stop.clone()));
    let dns = tokio::spawn(observe::watch_dns(
        spec.dns,
        spec.name.clone(),
        if spec.direct.is_some() {
            Vec::new()
        } else {
            spec.groups.clone()
        },
        spec.vip_regions.clone(),
        t0,
        stop.clone(),
    ));
    let counters = Arc::new(Counters::default());
    let load = tokio::spawn(client::run(spec.clone(), t0, counters.clone()));
    let progress = tokio::spawn(progress(
        scenario.name.clone(),
        scenario.duration,
        t0,
        counters,
        stop.clone(),
    ));
    let pending = Mutex::new(Vec::new());
    let load_abort = load.abort_handle();
    let main = async {
        let steps = run_steps(admin, scenario, t0, &pending).await;
        (steps, load.await.unwrap_or_default())
    };
    // Ctrl-C stops the drill but still repairs what the steps broke.
    let finished = tokio::select! {
        done = main => Some(done),
        _ = tokio::signal::ctrl_c() => None,
    };
    load_abort.abort();
    stop.cancel();
    let _ = progress.await;
    let watch = status.await.unwrap_or_default();
    let dns_answers = dns.await.unwrap_or_default();
    // Leave the world as it was found (a world of our own that was interrupted is going away:
    // Ctrl-C reached it too).
    let mut undo = std::mem::take(&mut *pending.lock().expect("pending lock"));
    undo.dedup();
    if finished.is_none() && own_world {
        undo.clear();
    }
    for a in &undo {
        if let Err(e) = apply(admin, a).await {
            eprintln!("drill: warning: could not undo ({}): {e}", a.label());
        }
    }
    let restore = if finished.is_some() && !scenario.steps.is_empty() {
        Some(restore_as_found(admin, world, &found).await)
    } else {
        None
    };
    let Some((steps, samples)) = finished else {
        let list: Vec<String> = undo.iter().map(Action::label).collect();
        bail!(
            "interrupted; undone: {}",
            if list.is_empty() {
                "nothing".to_string()
            } else {
                list.join(", ")
            }
        );
    };
    let obs = Observations {
        duration_ms: scenario.duration.as_millis() as u64,
        client_interval_ms: spec.client_interval().as_millis() as u64,
        samples,
        health: watch.changes,
        dns: dns_answers,
        steps,
        checks: builtin::check_params(world),
        checked: watch.checked,
        rate: scenario.rate,
        restore,
        resolver: spec.resolver.is_some() && spec.direct.is_none(),
    };
    Ok((obs, watch.errors, spec.dns))
}

/// Sends one step to the admin API.
async fn apply(admin: &AdminClient, a: &Action) -> Result<(), String> {
    let path = match a {
        Action::Stop { instance } => format!("/v1/demo/instances/{instance}/stop"),
        Action::Start { instance } => format!("/v1/demo/instances/{instance}/start"),
        Action::Admin { verb, kind, name } => {
            format!("/v1/{}/{name}/{}", kind.plural(), verb.as_str())
        }
    };
    match admin.call("POST", &path).await {
        Ok((code, _)) if code < 400 => Ok(()),
        Ok((code, v)) => Err(format!(
            "admin API answered {code}: {}",
            v.get("error").and_then(|e| e.as_str()).unwrap_or("")
        )),
        Err(e) => Err(format!("{:#}", anyhow::Error::from(e))),
    }
}

/// Runs the steps at their times; returns what ran. `pending` holds the actions that undo what
/// is still broken (kept up to date, so an interrupted drill can repair too).
async fn run_steps(
    admin: &AdminClient,
    scenario: &Scenario,
    t0: Instant,
    pending: &Mutex<Vec<Action>>,
) -> Vec<StepRun> {
    let mut runs = Vec::new();
    for st in &scenario.steps {
        tokio::time::sleep_until(t0 + st.at).await;
        let sent = Instant::now();
        let result = apply(admin, &st.action).await;
        let done = Instant::now();
        if result.is_ok() {
            let mut pending = pending.lock().expect("pending lock");
            match st.action.undo() {
                Some(u) => pending.push(u),
                None => pending.retain(|p| *p != st.action),
            }
        }
        let instance = match &st.action {
            Action::Stop { instance } | Action::Start { instance } => Some(instance.clone()),
            Action::Admin { name, kind, .. } if *kind == super::scenario::TargetKind::Instance => {
                Some(name.clone())
            }
            Action::Admin { .. } => None,
        };
        runs.push(StepRun {
            at_ms: st.at.as_millis() as u64,
            t_ms: sent.saturating_duration_since(t0).as_millis() as u64,
            done_ms: done.saturating_duration_since(t0).as_millis() as u64,
            label: st.action.label(),
            instance,
            stop: matches!(st.action, Action::Stop { .. }),
            start: matches!(st.action, Action::Start { .. }),
            fault: st.fault,
            recover: st.recover,
            error: result.err(),
        });
    }
    runs
}

/// A progress bar on a terminal; silent otherwise.
async fn progress(
    name: String,
    total: Duration,
    t0: Instant,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let tty = std::io::stderr().is_terminal();
    if !tty {
        eprintln!("drill {name}: running for {:.1}s", total.as_secs_f64());
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let el = t0.elapsed().min(total);
        let frac = el.as_secs_f64() / total.as_secs_f64().max(0.001);
        let filled = (frac * 30.0).round() as usize;
        eprint!(
            "\r  {name} [{}{}] {:>5.1}/{:.1}s  sent {} ok {} failed {}   ",
            "#".repeat(filled),
            ".".repeat(30 - filled.min(30)),
            el.as_secs_f64(),
            total.as_secs_f64(),
            counters.sent.load(Ordering::Relaxed),
            counters.ok.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed),
        );
    }
    eprintln!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_use_only_names_of_the_world() {
        let w = switchyard_config::demo_world();
        for n in builtin::NAMES {
            let s = builtin::scenario(n, &w).unwrap().unwrap();
            check_names(&s, &w).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }

    #[test]
    fn unknown_names_are_refused_before_anything_breaks() {
        let w = switchyard_config::demo_world();
        let s = super::super::scenario::parse(
            r#"
duration = "3s"
[[steps]]
at = "1s"
action = "stop"
instance = "gw-mars-a"
[[steps]]
at = "1s"
action = "drain"
az = "mars-1a"
[[expect]]
kind = "moved_away"
region = "atlantis"
within = "1s"
"#,
            "x.toml",
        )
        .unwrap();
        assert_eq!(
            check_names(&s, &w).unwrap_err(),
            "no demo service or gateway instance \"gw-mars-a\" in the world\n  no AZ \"mars-1a\" in the world\n  no region \"atlantis\" in the world"
        );
        let e = load_scenario("no-such-drill", &w).unwrap_err().to_string();
        assert!(e.starts_with("\"no-such-drill\" is neither a built-in scenario (instance-crash, az-outage, region-outage, planned-drain, flap, region-blackout)"), "{e}");
    }
}
