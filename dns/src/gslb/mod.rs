//! GSLB names: which regions a name can answer with, and the policy that picks among them.
//!
//! The choice itself ([`choose`]) is a pure function of the name, the client's location and a
//! health view, so it is unit-tested and benchmarked without sockets and can explain itself.

pub(crate) mod choose;
mod explain;

pub use choose::{choose, Choice, Outcome};
pub use explain::{ClientExplain, Explanation, Skipped};

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::geo::GeoInfo;
use crate::zone::Rr;

/// How a GSLB name picks its region(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Regions in the configured order; the first healthy one wins.
    Failover,
    /// The client's location (CIDR, then country, then continent) picks the preferred region,
    /// then failover along that region's order.
    Geo,
    /// A random healthy region, in proportion to the configured weights.
    Weighted,
    /// The healthy region closest (great-circle) to the client's coordinates.
    Nearest,
    /// Every healthy region's VIPs, up to `max` addresses.
    Multivalue {
        /// Addresses per answer at most (per address family).
        max: usize,
    },
}

impl Policy {
    /// Whether the answer depends on where the client is (so a geo lookup is needed).
    pub fn uses_location(&self) -> bool {
        matches!(self, Policy::Geo | Policy::Nearest)
    }

    /// The policy's config name (`failover`, `geo`, ...), for explanations and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Policy::Failover => "failover",
            Policy::Geo => "geo",
            Policy::Weighted => "weighted",
            Policy::Nearest => "nearest",
            Policy::Multivalue { .. } => "multivalue",
        }
    }
}

/// What to answer when every region of a name is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AllDown {
    /// Keep answering as if every region were up (the configured order decides), like Route 53.
    FailOpen,
    /// Answer with the VIPs of every region.
    ReturnAll,
    /// Answer with these fixed addresses.
    LastResort(Vec<IpAddr>),
    /// Answer SERVFAIL.
    Servfail,
}

/// A region as one GSLB name sees it: its VIPs as ready records plus the location maps.
#[derive(Debug, Clone)]
pub struct RegionTarget {
    /// Region name.
    pub name: String,
    /// A records of the VIPs, owner = the GSLB name, TTL = the name's TTL.
    pub a: Vec<Rr>,
    /// AAAA records of the VIPs.
    pub aaaa: Vec<Rr>,
    /// Weight under the `weighted` policy.
    pub weight: u32,
    /// ISO continent codes (`EU`, `NA`, ...) that prefer this region.
    pub continents: Vec<[u8; 2]>,
    /// ISO country codes (`GB`, `US`, ...) that prefer this region.
    pub countries: Vec<[u8; 2]>,
    /// Client networks that prefer this region (most specific match wins).
    pub networks: Vec<IpNet>,
    /// Where to go when this region is down, as indices into the name's regions.
    pub failover: Vec<usize>,
    /// (latitude, longitude) for the `nearest` policy.
    pub coordinates: Option<(f64, f64)>,
    /// Answers given with this region (metrics handle resolved when the name is built).
    pub answers: metrics::Counter,
}

/// One GSLB name, ready to answer.
#[derive(Debug)]
pub struct GslbName {
    /// Text form (`api.example.test.`).
    pub name: String,
    /// Lowercase wire form.
    pub wire: Box<[u8]>,
    /// How a region is chosen.
    pub policy: Policy,
    /// Candidate regions, in configured order.
    pub regions: Vec<RegionTarget>,
    /// Region (index) for clients whose location matches no map entry.
    pub default_region: Option<usize>,
    /// TTL of the answers, seconds.
    pub ttl: u32,
    /// What to answer when no region is healthy.
    pub all_down: AllDown,
    /// A records for [`AllDown::LastResort`].
    pub last_resort_a: Vec<Rr>,
    /// AAAA records for [`AllDown::LastResort`].
    pub last_resort_aaaa: Vec<Rr>,
    /// Answers given while every region was down.
    pub all_down_count: metrics::Counter,
    /// Whether the last answer was an all-down one (logs only the transitions).
    pub all_down_now: std::sync::atomic::AtomicBool,
}

impl GslbName {
    /// Counts an answer's outcome and logs when the name enters or leaves the all-down state.
    pub fn note_outcome(&self, outcome: Outcome) {
        use std::sync::atomic::Ordering::Relaxed;
        let down = outcome != Outcome::Healthy;
        if down {
            self.all_down_count.increment(1);
        }
        if self.all_down_now.load(Relaxed) != down && self.all_down_now.swap(down, Relaxed) != down
        {
            if down {
                tracing::warn!(name = %self.name, ?outcome, "every region of the GSLB name is down");
            } else {
                tracing::info!(name = %self.name, "a region of the GSLB name is up again");
            }
        }
    }
}

/// Where the client is, as far as the answer is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientLocation {
    /// The client network after privacy truncation (ECS or source address), if any.
    pub network: Option<IpNet>,
    /// Whether `network` came from EDNS Client Subnet.
    pub from_ecs: bool,
    /// Geo database result for `network` (None when not looked up or not found).
    pub geo: Option<GeoInfo>,
}

/// A region's health as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionState {
    /// Serving: healthy and not overridden.
    Up,
    /// Not enough healthy members / VIP probes failing.
    Down,
    /// Administratively drained: no new clients.
    Drained,
    /// Administratively forced down.
    ForcedDown,
    /// Too few healthy members: the region's balancer spills new connections to another
    /// region (a bridge for clients holding the old answer), so DNS sends no one new here.
    Spilling,
}

impl RegionState {
    /// Whether new clients may be sent to the region.
    pub fn is_up(self) -> bool {
        self == RegionState::Up
    }
}

/// The seam between DNS and the health checkers: the state of a region by name.
pub trait RegionHealth: Send + Sync {
    /// The current state of region `region` (names not known are [`RegionState::Up`]).
    fn state(&self, region: &str) -> RegionState;
}

/// A fixed health snapshot (tests, benchmarks, and the quick mode where every region is up).
#[derive(Debug, Clone, Default)]
pub struct StaticHealth {
    /// Region states by name; a region not listed is up.
    pub states: std::collections::HashMap<String, RegionState>,
}

impl StaticHealth {
    /// Sets the state of `region` (builder style).
    pub fn with(mut self, region: &str, state: RegionState) -> Self {
        self.states.insert(region.to_string(), state);
        self
    }
}

impl RegionHealth for StaticHealth {
    fn state(&self, region: &str) -> RegionState {
        self.states.get(region).copied().unwrap_or(RegionState::Up)
    }
}

#[cfg(test)]
mod tests;
