//! Why a GSLB name answered what it did: served by the admin API (`explain dns`).

use std::net::IpAddr;

use serde::Serialize;

use super::RegionState;

/// The full story of one GSLB decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Explanation {
    /// The GSLB name (`api.example.test.`).
    pub name: String,
    /// `failover`, `geo`, `weighted`, `nearest` or `multivalue`.
    pub policy: String,
    /// Where the client was placed, when the policy looks at location.
    pub client: Option<ClientExplain>,
    /// Which map entry (or rule) picked the preferred region, e.g. `country GB -> eu-west`.
    pub matched: String,
    /// Regions in the order they were considered.
    pub order: Vec<String>,
    /// Regions passed over, with their state.
    pub skipped: Vec<Skipped>,
    /// Regions whose VIPs are in the answer.
    pub chosen: Vec<String>,
    /// The addresses of the chosen regions (both families).
    pub addresses: Vec<IpAddr>,
    /// TTL of the answer.
    pub ttl: u32,
    /// ECS scope prefix length returned to resolvers (0: the answer does not depend on location).
    pub ecs_scope: u8,
    /// Set when every region was down: what the name's all-down rule did.
    pub all_down: Option<String>,
    /// Whether the answer is DNSSEC-signed (for queries with the DO bit) and with which key,
    /// e.g. `signed by example.test. key 55363 (algorithm 13)`; `None`: unsigned zone.
    pub dnssec: Option<String>,
}

/// The client as the decision saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClientExplain {
    /// The network used for the lookup, after privacy truncation (`81.2.69.0/24`).
    pub network: Option<String>,
    /// `ecs`, `source` or `none`.
    pub source: String,
    /// ISO 3166-1 country code from the geo database.
    pub country: Option<String>,
    /// Continent code from the geo database.
    pub continent: Option<String>,
    /// Latitude and longitude from the geo database (City databases).
    pub coordinates: Option<(f64, f64)>,
    /// Prefix length of the geo database network that matched.
    pub geo_prefix: Option<u8>,
}

/// A region that was considered and passed over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// Region name.
    pub region: String,
    /// Why it was passed over.
    pub state: RegionState,
}
