//! `GET /v1/explain/dns` and `GET /v1/explain/lb`: why a client would get the answer it gets.

use super::AdminCtx;
use serde_json::{json, Value};
use std::net::IpAddr;
use switchyard_balance::{Choice, MemberSpec, Selector, SelectorOptions};

/// Parses `a=b&c=d` (no percent-decoding needed for names, IPs and CIDRs).
pub fn query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2F", "/").replace("%2f", "/")))
        .collect()
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// Explains a DNS answer; `Err` is (status, message).
pub fn dns(ctx: &AdminCtx, q: &[(String, String)]) -> Result<Value, (u16, String)> {
    let dns = ctx
        .dns
        .as_ref()
        .ok_or((404, "this node runs no DNS server".to_string()))?;
    let mut name = get(q, "name")
        .ok_or((400, "give ?name=".to_string()))?
        .to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    let client: IpAddr = match get(q, "client") {
        Some(c) => c
            .parse()
            .map_err(|_| (400, format!("client {c:?} is not an IP address")))?,
        None => "127.0.0.1".parse().expect("literal"),
    };
    let ecs = match get(q, "ecs") {
        Some(e) => Some(
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    (
                        400,
                        format!("ecs {e:?} is not a network like 81.2.69.160/27"),
                    )
                })?,
        ),
        None => None,
    };
    let why = dns
        .explain(&name, client, ecs)
        .map_err(|e| (404, e.to_string()))?;
    serde_json::to_value(why).map_err(|e| (500, e.to_string()))
}

/// Explains an L4 choice with a side-effect-free copy of the listener's pool selector (same
/// members, weights, AZ weights, policy and the live shared health): which AZ shares apply, which
/// members are available, and which one this client would get.
pub fn lb(ctx: &AdminCtx, q: &[(String, String)]) -> Result<Value, (u16, String)> {
    let world = ctx.world.load();
    let name = get(q, "listener").ok_or((400, "give ?listener=".to_string()))?;
    let client: IpAddr = match get(q, "client") {
        Some(c) => c
            .parse()
            .map_err(|_| (400, format!("client {c:?} is not an IP address")))?,
        None => "127.0.0.1".parse().expect("literal"),
    };
    let (region, listener) = world
        .regions
        .iter()
        .find_map(|r| r.listeners.iter().find(|l| l.name == name).map(|l| (r, l)))
        .ok_or((404, format!("no such listener {name:?}")))?;
    // an SNI listener: `&sni=name` explains the pool that name is routed to
    let sni = listener.sni.as_ref().map(|s| {
        json!({
            "routes": s.routes.iter().map(|r| json!({"names": r.names, "pool": r.pool})).collect::<Vec<_>>(),
            "default": s.default.as_ref().map(|d| &d.0),
            "timeout_ms": s.timeout.as_millis() as u64,
            "proxy_tlvs": s.tlvs,
        })
    });
    let mut pool_index = listener.pool_index;
    if let (Some(s), Some(name)) = (&listener.sni, get(q, "sni")) {
        let name = name.to_ascii_lowercase();
        let table = switchyard_lb::sni::Table::new(s.routes.iter().map(|r| r.names.as_slice()));
        match (table.lookup(&name), &s.default) {
            (Some(i), _) => pool_index = s.routes[i].pool_index,
            (None, Some(d)) => pool_index = d.1,
            (None, None) => {
                return Ok(json!({
                    "listener": listener.name,
                    "region": region.name,
                    "sni": sni,
                    "why": format!("no SNI route takes {name:?} and there is no sni_default: the connection would be closed"),
                }))
            }
        }
    }
    let pool = &region.pools[pool_index];
    let members: Vec<MemberSpec> = pool.members.iter().map(MemberSpec::from).collect();
    let opts = SelectorOptions {
        fail_open: pool.fail_open,
        passive: (&pool.passive).into(),
        max_conns_per_member: pool.max_connections_per_member.map(u64::from),
        region: Some(region.name.clone()),
    };
    let sel = Selector::new(
        members,
        &switchyard_balance::from_config::az_weights(region),
        pool.policy.into(),
        &ctx.registry,
        opts,
    );
    let shares: Vec<Value> = sel
        .shares()
        .into_iter()
        .map(|s| json!({"az": s.az, "weight": s.weight, "share": s.share, "up_members": s.up_members, "members": s.members}))
        .collect();
    let member_states: Vec<Value> = pool
        .members
        .iter()
        .map(|m| {
            let (up, reason) = ctx
                .registry
                .get(&m.addr)
                .map(|h| {
                    let s = h.state();
                    // a passive ejection says how long it still lasts
                    let reason = match (s.ejected_for, s.admin) {
                        (_, Some(m)) => format!("{} by an operator; check {}", match m {
                            switchyard_balance::AdminMode::Drain => "drained",
                            switchyard_balance::AdminMode::Fail => "failed",
                        }, s.check_reason),
                        (Some(left), None) => format!(
                            "ejected, {:.1}s left ({}); check {}",
                            left.as_secs_f64(),
                            s.reason.split("; ejected for").next().unwrap_or(&s.reason),
                            s.check_reason
                        ),
                        (None, None) => s.reason.to_string(),
                    };
                    (s.up, reason)
                })
                .unwrap_or((true, "not checked on this node".into()));
            json!({"name": m.name, "addr": m.addr.to_string(), "az": m.az, "weight": m.weight, "available": up, "reason": reason})
        })
        .collect();
    let (chosen, how) = match sel.choose(client, &[]) {
        Choice::Member(i) => (Some(&pool.members[i]), "healthy member"),
        Choice::FailOpen(i) => (
            Some(&pool.members[i]),
            "every member down: fail_open sends here anyway",
        ),
        Choice::None => (
            None,
            "every member down and fail_open = false: the connection would be refused",
        ),
    };
    // remote spill (issue 17): the same decision the connection path makes
    let spill = switchyard_lb::spill::spec_from_world(&world, region, pool);
    let spilled = spill.as_ref().and_then(|sp| {
        let why = switchyard_lb::spill::decide(sp, &sel)?;
        Some(switchyard_lb::spill::explain(&region.name, sp, why))
    });
    let (chosen, how) = match &spilled {
        Some(text) => (None, text.as_str()),
        None => (chosen, how),
    };
    Ok(json!({
        "listener": listener.name,
        "region": region.name,
        "pool": pool.name,
        "sni": sni,
        "policy": super::status::policy_word(pool.policy),
        "client": client.to_string(),
        "az_shares": shares,
        "members": member_states,
        "chosen": chosen.map(|m| json!({"name": m.name, "addr": m.addr.to_string(), "az": m.az})),
        "why": how,
        "spill_to": spill.iter().flat_map(|sp| sp.targets.iter().map(|t| json!({"region": t.region, "addrs": t.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()}))).collect::<Vec<_>>(),
        "note": match pool.policy {
            switchyard_config::health::Policy::Maglev => "maglev: this client always maps to this member while the member set is unchanged",
            _ => "the AZ is drawn by share, then the policy picks inside it; for rotating policies this is one representative pick",
        },
    }))
}
