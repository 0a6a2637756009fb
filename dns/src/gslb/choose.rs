//! The GSLB decision: `(name, client location, health) -> regions + ECS scope`, no I/O.

use ipnet::IpNet;

use super::{
    AllDown, ClientExplain, ClientLocation, Explanation, GslbName, Policy, RegionHealth,
    RegionState, Skipped,
};
use crate::zone::Rr;

/// Result of [`choose`]: a set of region indices (bit i = `name.regions[i]`), the ECS scope and
/// what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Chosen regions, bit i = `name.regions[i]` (only a name's first 64 regions count).
    pub regions: u64,
    /// ECS scope prefix length (0 when the answer did not depend on location).
    pub scope: u8,
    /// Whether healthy regions answered or an all-down rule did.
    pub outcome: Outcome,
}

/// Whether healthy regions answered or an all-down rule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// At least one chosen region is up.
    Healthy,
    /// All down; answered per the configured order anyway.
    AllDownFailOpen,
    /// All down; answered with every region's VIPs ([`AllDown::ReturnAll`]).
    AllDownReturnAll,
    /// All down; answered with the fixed addresses ([`AllDown::LastResort`]).
    AllDownLastResort,
    /// All down; answered SERVFAIL ([`AllDown::Servfail`]).
    AllDownServfail,
}

impl Choice {
    /// Region indices in ascending order.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..64).filter(move |i| self.regions & (1u64 << i) != 0)
    }

    /// The answer records of the given family (`want_v6`), multivalue capped at `max`.
    pub fn records<'a>(&self, name: &'a GslbName, want_v6: bool, out: &mut Vec<&'a Rr>) {
        self.each_record(name, want_v6, |rr| out.push(rr));
    }

    /// [`Choice::records`] without a vector: `push` gets each record in answer order.
    pub fn each_record<'a>(&self, name: &'a GslbName, want_v6: bool, mut push: impl FnMut(&'a Rr)) {
        let cap = match name.policy {
            Policy::Multivalue { max } if self.outcome == Outcome::Healthy => max,
            _ => usize::MAX,
        };
        if self.outcome == Outcome::AllDownLastResort {
            let set = if want_v6 {
                &name.last_resort_aaaa
            } else {
                &name.last_resort_a
            };
            set.iter().for_each(push);
            return;
        }
        let mut n = 0usize;
        for i in self.indices() {
            let r = &name.regions[i];
            for rr in if want_v6 { &r.aaaa } else { &r.a } {
                if n < cap {
                    push(rr);
                    n += 1;
                }
            }
        }
    }
}

/// Picks the region(s) for one query. `entropy` is a random number (the weighted policy's only
/// input besides weights); `explain`, when given, is filled with the reasons.
pub fn choose(
    name: &GslbName,
    client: &ClientLocation,
    health: &dyn RegionHealth,
    entropy: u64,
    mut explain: Option<&mut Explanation>,
) -> Choice {
    let n = name.regions.len().min(64);
    if let Some(ex) = explain.as_deref_mut() {
        ex.name = name.name.clone();
        ex.policy = name.policy.label().to_string();
        ex.ttl = name.ttl;
        ex.client = Some(client_explain(client));
    }
    let states: [RegionState; 64] = {
        let mut s = [RegionState::Down; 64];
        for (i, r) in name.regions.iter().take(n).enumerate() {
            s[i] = health.state(&r.name);
        }
        s
    };
    let mut order = [0usize; 64];
    let mut order_len = 0usize;
    let mut scope = 0u8;
    let mut matched = None;
    let push = |order: &mut [usize; 64], len: &mut usize, i: usize| {
        if i < n && !order[..*len].contains(&i) {
            order[*len] = i;
            *len += 1;
        }
    };
    match name.policy {
        Policy::Failover | Policy::Multivalue { .. } | Policy::Weighted => {
            for i in 0..n {
                push(&mut order, &mut order_len, i);
            }
        }
        Policy::Geo => {
            let (pref, sc, why) = geo_preference(name, client, explain.is_some());
            scope = sc;
            matched = why;
            if let Some(p) = pref {
                push(&mut order, &mut order_len, p);
                for &f in &name.regions[p].failover {
                    push(&mut order, &mut order_len, f);
                }
            }
            for i in 0..n {
                push(&mut order, &mut order_len, i);
            }
        }
        Policy::Nearest => {
            let coords = client.geo.and_then(|g| g.coordinates);
            if let Some((lat, lon)) = coords {
                let mut dist = [f64::INFINITY; 64];
                for (i, r) in name.regions.iter().take(n).enumerate() {
                    if let Some((rlat, rlon)) = r.coordinates {
                        dist[i] = great_circle_km(lat, lon, rlat, rlon);
                    }
                }
                // insertion sort on the stack: n is small and this is the hot path
                let mut idx = [0usize; 64];
                for i in 0..n {
                    let mut j = i;
                    while j > 0 && dist[idx[j - 1]] > dist[i] {
                        idx[j] = idx[j - 1];
                        j -= 1;
                    }
                    idx[j] = i;
                }
                for &i in &idx[..n] {
                    push(&mut order, &mut order_len, i);
                }
                scope = location_scope(client);
                if explain.is_some() {
                    matched = Some(format!("coordinates {lat:.4},{lon:.4}: closest first"));
                }
            } else {
                for i in 0..n {
                    push(&mut order, &mut order_len, i);
                }
                if explain.is_some() {
                    matched = Some("no client coordinates: configured order".to_string());
                }
            }
        }
    }
    let order = &order[..order_len];
    let mut chosen = 0u64;
    let mut skipped = 0u64;
    match name.policy {
        Policy::Multivalue { .. } => {
            for &i in order {
                if states[i].is_up() {
                    chosen |= 1 << i;
                } else {
                    skipped |= 1 << i;
                }
            }
        }
        Policy::Weighted => {
            let total: u64 = order
                .iter()
                .filter(|&&i| states[i].is_up())
                .map(|&i| name.regions[i].weight as u64)
                .sum();
            for &i in order {
                if !states[i].is_up() {
                    skipped |= 1 << i;
                }
            }
            if total > 0 {
                let mut pick = entropy % total;
                for &i in order {
                    let w = name.regions[i].weight as u64;
                    if !states[i].is_up() || w == 0 {
                        continue;
                    }
                    if pick < w {
                        chosen = 1 << i;
                        break;
                    }
                    pick -= w;
                }
            }
        }
        _ => {
            for &i in order {
                if states[i].is_up() {
                    chosen = 1 << i;
                    break;
                }
                skipped |= 1 << i;
            }
        }
    }
    let mut outcome = Outcome::Healthy;
    if chosen == 0 {
        outcome = match &name.all_down {
            AllDown::FailOpen => {
                chosen = match name.policy {
                    Policy::Multivalue { .. } => order.iter().fold(0, |m, &i| m | 1 << i),
                    _ => order.first().map_or(0, |&i| 1 << i),
                };
                Outcome::AllDownFailOpen
            }
            AllDown::ReturnAll => {
                chosen = order.iter().fold(0, |m, &i| m | 1 << i);
                Outcome::AllDownReturnAll
            }
            AllDown::LastResort(_) => Outcome::AllDownLastResort,
            AllDown::Servfail => Outcome::AllDownServfail,
        };
    }
    if let Some(ex) = explain {
        ex.matched = matched.unwrap_or_else(|| match name.policy {
            Policy::Weighted => "weighted pick among healthy regions".to_string(),
            Policy::Multivalue { max } => format!("every healthy region, up to {max} addresses"),
            _ => "configured order".to_string(),
        });
        ex.order = order
            .iter()
            .map(|&i| name.regions[i].name.clone())
            .collect();
        ex.skipped = order
            .iter()
            .filter(|&&i| skipped & (1 << i) != 0)
            .map(|&i| Skipped {
                region: name.regions[i].name.clone(),
                state: states[i],
            })
            .collect();
        let choice = Choice {
            regions: chosen,
            scope,
            outcome,
        };
        ex.chosen = choice
            .indices()
            .map(|i| name.regions[i].name.clone())
            .collect();
        let mut rrs = Vec::new();
        choice.records(name, false, &mut rrs);
        choice.records(name, true, &mut rrs);
        ex.addresses = rrs.iter().filter_map(|rr| rdata_addr(&rr.rdata)).collect();
        ex.ecs_scope = scope;
        ex.all_down = match outcome {
            Outcome::Healthy => None,
            Outcome::AllDownFailOpen => {
                Some("all regions down: fail open (configured order)".into())
            }
            Outcome::AllDownReturnAll => Some("all regions down: returning every region".into()),
            Outcome::AllDownLastResort => Some("all regions down: last-resort answer".into()),
            Outcome::AllDownServfail => Some("all regions down: SERVFAIL".into()),
        };
    }
    Choice {
        regions: chosen,
        scope,
        outcome,
    }
}

/// The preferred region for the `geo` policy, the ECS scope, and the map entry that decided.
fn geo_preference(
    name: &GslbName,
    client: &ClientLocation,
    explain: bool,
) -> (Option<usize>, u8, Option<String>) {
    // the reason is only rendered when someone asked for it (the explain API): answering
    // allocates nothing
    let fallback = |scope: u8, why: &dyn Fn() -> String| match name.default_region {
        Some(d) => (
            Some(d),
            scope,
            explain.then(|| format!("{}: default region {}", why(), name.regions[d].name)),
        ),
        None => (
            None,
            scope,
            explain.then(|| format!("{}: configured order", why())),
        ),
    };
    let Some(net) = client.network else {
        return fallback(0, &|| "no client address".into());
    };
    // most specific configured network containing the client's network
    let mut best: Option<(usize, IpNet)> = None;
    for (i, r) in name.regions.iter().enumerate() {
        for cfg in &r.networks {
            if cfg.contains(&net) && best.is_none_or(|(_, b)| cfg.prefix_len() > b.prefix_len()) {
                best = Some((i, *cfg));
            }
        }
    }
    if let Some((i, cfg)) = best {
        // A more specific configured network inside the match would answer differently for
        // part of it: then only the client's own network may be cached.
        let nested = name
            .regions
            .iter()
            .flat_map(|r| &r.networks)
            .any(|o| o.prefix_len() > cfg.prefix_len() && cfg.contains(o));
        let scope = if nested {
            net.prefix_len()
        } else {
            cfg.prefix_len().min(net.prefix_len())
        };
        return (
            Some(i),
            scope,
            explain.then(|| format!("network {cfg} -> {}", name.regions[i].name)),
        );
    }
    let scope = location_scope(client);
    let Some(geo) = client.geo else {
        return fallback(scope, &|| format!("{net} not in the geo database"));
    };
    if let Some(cc) = geo.country {
        if let Some(i) = name.regions.iter().position(|r| r.countries.contains(&cc)) {
            let why = explain.then(|| format!("country {} -> {}", code(cc), name.regions[i].name));
            return (Some(i), scope, why);
        }
    }
    if let Some(cc) = geo.continent {
        if let Some(i) = name.regions.iter().position(|r| r.continents.contains(&cc)) {
            let why =
                explain.then(|| format!("continent {} -> {}", code(cc), name.regions[i].name));
            return (Some(i), scope, why);
        }
    }
    fallback(scope, &|| "no map entry for the client's location".into())
}

/// Scope for answers decided by the geo database: the database network's width, never wider
/// than what the client told us.
fn location_scope(client: &ClientLocation) -> u8 {
    match (client.network, client.geo) {
        (Some(net), Some(g)) => g.prefix.min(net.prefix_len()),
        (Some(net), None) => net.prefix_len(),
        _ => 0,
    }
}

fn code(c: [u8; 2]) -> String {
    String::from_utf8_lossy(&c).into_owned()
}

fn client_explain(client: &ClientLocation) -> ClientExplain {
    ClientExplain {
        network: client.network.map(|n| n.to_string()),
        source: match (client.network, client.from_ecs) {
            (None, _) => "none",
            (Some(_), true) => "ecs",
            (Some(_), false) => "source",
        }
        .to_string(),
        country: client.geo.and_then(|g| g.country).map(code),
        continent: client.geo.and_then(|g| g.continent).map(code),
        coordinates: client.geo.and_then(|g| g.coordinates),
        geo_prefix: client.geo.map(|g| g.prefix),
    }
}

fn rdata_addr(rdata: &[u8]) -> Option<std::net::IpAddr> {
    match rdata.len() {
        4 => Some(<[u8; 4]>::try_from(rdata).ok()?.into()),
        16 => Some(<[u8; 16]>::try_from(rdata).ok()?.into()),
        _ => None,
    }
}

/// Haversine distance in kilometres.
pub(crate) fn great_circle_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().asin()
}
